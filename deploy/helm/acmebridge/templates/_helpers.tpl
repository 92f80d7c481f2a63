{{/* Names and labels. */}}
{{- define "acmebridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "acmebridge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "acmebridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "acmebridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "acmebridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "acmebridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "acmebridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "acmebridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the container. */}}
{{- define "acmebridge.configPath" -}}/etc/acmebridge/config/config.yaml{{- end -}}
{{- define "acmebridge.adminTokenPath" -}}/etc/acmebridge/secrets/admin/token{{- end -}}
{{/* The directory of the i-th scoped admin token's Secret (directoryTokens). */}}
{{- define "acmebridge.directoryTokenDir" -}}/etc/acmebridge/secrets/directory-token-{{ . }}{{- end -}}

{{/* The ACME Service's port: 443 when the pods serve TLS, else 80. */}}
{{- define "acmebridge.acmeServicePort" -}}
{{- if .Values.service.acme.port -}}
{{- .Values.service.acme.port -}}
{{- else if .Values.tls.existingSecret -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/*
acmebridge.config renders config.yaml: .Values.config verbatim, with the
keys the chart owns (data_dir, server listener and TLS, admin, store) set
from the other values, then upstreams and policy.
*/}}
{{- define "acmebridge.config" -}}
{{- $v := .Values -}}
{{- if not $v.externalURL -}}{{- fail "externalURL must be set (server.external_url)" -}}{{- end -}}
{{- if not $v.redis.addrs -}}{{- fail "redis.addrs must name at least one Redis host:port" -}}{{- end -}}
{{- if not $v.storeKey.existingSecret -}}{{- fail "storeKey.existingSecret must name the Secret holding the store key" -}}{{- end -}}
{{- $cfg := deepCopy ($v.config | default dict) -}}
{{- $_ := set $cfg "data_dir" "/var/lib/acmebridge" -}}
{{- $tls := dict "disabled" true -}}
{{- if $v.tls.existingSecret -}}
{{- $tls = dict "cert_file" "/etc/acmebridge/tls/tls.crt" "key_file" "/etc/acmebridge/tls/tls.key" -}}
{{- end -}}
{{- $server := dict "listen" (printf ":%d" (int $v.ports.acme)) "external_url" $v.externalURL "tls" $tls -}}
{{- with $v.trustedProxies -}}{{- $_ := set $server "trusted_proxies" . -}}{{- end -}}
{{- $_ := set $cfg "server" (merge $server (get $cfg "server" | default dict)) -}}
{{- $admin := dict "listen" (printf ":%d" (int $v.ports.admin)) "token_file" (include "acmebridge.adminTokenPath" .) -}}
{{- with $v.directoryTokens -}}
{{- $tokens := list -}}
{{- range $i, $t := . -}}
{{- if not $t.directory -}}{{- fail (printf "directoryTokens[%d].directory must name a directory (or \"/\" for the top level)" $i) -}}{{- end -}}
{{- if not $t.existingSecret -}}{{- fail (printf "directoryTokens[%d].existingSecret must name the Secret holding the token" $i) -}}{{- end -}}
{{- $tokens = append $tokens (dict "directory" $t.directory "token_file" (printf "%s/token" (include "acmebridge.directoryTokenDir" $i))) -}}
{{- end -}}
{{- $_ := set $admin "directory_tokens" $tokens -}}
{{- end -}}
{{- if $v.adminTLS.existingSecret -}}
{{- $_ := set $admin "tls" (dict "cert_file" "/etc/acmebridge/admin-tls/tls.crt" "key_file" "/etc/acmebridge/admin-tls/tls.key" "ca_file" "/etc/acmebridge/admin-tls/ca.crt") -}}
{{- end -}}
{{- $_ := set $cfg "admin" (merge $admin (get $cfg "admin" | default dict)) -}}
{{- $r := $v.redis -}}
{{- $redis := dict "addrs" $r.addrs "db" (int $r.db) "key_prefix" $r.keyPrefix -}}
{{- with $r.masterName -}}{{- $_ := set $redis "master_name" . -}}{{- end -}}
{{- if and $r.durability (gt (int $r.durability.replicas) 0) -}}
{{- $_ := set $redis "durability" (dict "replicas" (int $r.durability.replicas) "timeout" ($r.durability.timeout | default "1s")) -}}
{{- end -}}
{{- with $r.username -}}{{- $_ := set $redis "username" . -}}{{- end -}}
{{- if $r.password.existingSecret -}}{{- $_ := set $redis "password_env" "ACMEBRIDGE_REDIS_PASSWORD" -}}{{- end -}}
{{- if $r.tls.enabled -}}
{{- $rtls := dict "enabled" true -}}
{{- with $r.tls.serverName -}}{{- $_ := set $rtls "server_name" . -}}{{- end -}}
{{- if $r.tls.existingSecret -}}
{{- $_ := set $rtls "ca_file" "/etc/acmebridge/redis-tls/ca.crt" -}}
{{- if $r.tls.clientCertificate -}}
{{- $_ := set $rtls "cert_file" "/etc/acmebridge/redis-tls/tls.crt" -}}
{{- $_ := set $rtls "key_file" "/etc/acmebridge/redis-tls/tls.key" -}}
{{- end -}}
{{- end -}}
{{- $_ := set $redis "tls" $rtls -}}
{{- end -}}
{{- $store := deepCopy (get $cfg "store" | default dict) -}}
{{- $_ := set $store "driver" "redis" -}}
{{- $_ := set $store "redis" (merge $redis (get $store "redis" | default dict)) -}}
{{- $_ := set $cfg "store" $store -}}
{{- with $v.upstreams -}}{{- $_ := set $cfg "upstreams" . -}}{{- end -}}
{{- with $v.directories -}}{{- $_ := set $cfg "directories" . -}}{{- end -}}
{{- if not (hasKey $cfg "reload") -}}
{{- $_ := set $cfg "reload" (dict "watch_interval" "5s") -}}
{{- end -}}
{{- if $v.policy -}}
{{- $_ := set $cfg "policy" $v.policy -}}
{{- else if $v.upstreams -}}
{{- $_ := set $cfg "policy" (dict "default" (dict "upstreams" (list (index $v.upstreams 0).name))) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The admin Service's in-cluster host name (the admin certificate's name). */}}
{{- define "acmebridge.adminHost" -}}
{{ include "acmebridge.fullname" . }}-admin.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* The hash of the config keys only a restart can change (acmebridge's
configs.RestartKeys: data_dir, server.listen/external_url/tls, admin, store,
audit.file, orders.workers, log.format): the pods roll when it changes, and
reload the file for any other change. */}}
{{- define "acmebridge.restartChecksum" -}}
{{- $c := fromYaml (include "acmebridge.config" .) -}}
{{- $server := get $c "server" | default dict -}}
{{- $orders := get $c "orders" | default dict -}}
{{- $audit := get $c "audit" | default dict -}}
{{- $log := get $c "log" | default dict -}}
{{- $keys := dict "data_dir" (get $c "data_dir") "server.listen" (get $server "listen") "server.external_url" (get $server "external_url") "server.tls" (get $server "tls") "admin" (get $c "admin") "store" (get $c "store") "audit.file" (get $audit "file") "orders.workers" (get $orders "workers") "log.format" (get $log "format") -}}
{{- toYaml $keys | sha256sum -}}
{{- end -}}
