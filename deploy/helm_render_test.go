package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const (
	chartDir    = "helm/acmebridge"
	helmVersion = "v3.22.0" // the Makefile's HELM_VERSION
)

// helmBin finds helm: ACMEBRIDGE_HELM_BIN (the Makefile exports it), else
// where `make deps` installs it.
func helmBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("ACMEBRIDGE_HELM_BIN")
	if p == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			require.NoError(t, err)
			cache = filepath.Join(home, ".cache")
		}
		p = filepath.Join(cache, "acmebridge", "helm-"+helmVersion, "helm")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm not found at %s (%v): run `make deps`, or GOBIN=%s go install helm.sh/helm/v3/cmd/helm@%s",
			p, err, filepath.Dir(p), helmVersion)
	}
	return p
}

// helm runs helm with its own scratch config, cache and data directories.
func helm(t *testing.T, args ...string) (string, int) {
	t.Helper()
	scratch := t.TempDir()
	env := append(os.Environ(), "HELM_CONFIG_HOME="+filepath.Join(scratch, "config"),
		"HELM_CACHE_HOME="+filepath.Join(scratch, "cache"), "HELM_DATA_HOME="+filepath.Join(scratch, "data"))
	return runCmd(t, env, "", helmBin(t), args...)
}

// k8sObject is a rendered manifest: the fields the tests read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"` // ConfigMap, Secret
	node yaml.Node
}

// decode decodes the whole object into v (a kind-specific struct).
func (o *k8sObject) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, o.node.Decode(v), "%s %s", o.Kind, o.Metadata.Name)
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deployment struct {
	Spec struct {
		Replicas int           `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
	SecurityContext              struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    int64 `yaml:"runAsUser"`
		FSGroup      int64 `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Containers                []container `yaml:"containers"`
	Volumes                   []volume    `yaml:"volumes"`
	TopologySpreadConstraints []struct {
		LabelSelector labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []envVar `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe   *probe `yaml:"livenessProbe"`
	ReadinessProbe  *probe `yaml:"readinessProbe"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []volumeMount `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *keyRef `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type probe struct {
	HTTPGet *struct {
		Path   string `yaml:"path"`
		Port   string `yaml:"port"`
		Scheme string `yaml:"scheme"`
	} `yaml:"httpGet"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
	SubPath   string `yaml:"subPath"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName string `yaml:"secretName"`
		Items      []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"secret"`
	EmptyDir  *struct{} `yaml:"emptyDir"`
	Projected *struct {
		Sources []struct {
			ServiceAccountToken *struct {
				Path              string `yaml:"path"`
				Audience          string `yaml:"audience"`
				ExpirationSeconds int    `yaml:"expirationSeconds"`
			} `yaml:"serviceAccountToken"`
		} `yaml:"sources"`
	} `yaml:"projected"`
}

type service struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

// rendered is the output of one `helm template`.
type rendered struct {
	objects []*k8sObject
}

// renderChart runs helm template with the given extra arguments (values
// files, --set) and parses every document.
func renderChart(t *testing.T, args ...string) *rendered {
	t.Helper()
	out, code := helm(t, append([]string{"template", "rel", chartDir, "--namespace", "pki"}, args...)...)
	require.Equal(t, 0, code, "helm template %s:\n%s", strings.Join(args, " "), out)
	r := &rendered{}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(out)))
	for {
		o := &k8sObject{}
		err := dec.Decode(&o.node)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "helm template output:\n%s", out)
		if o.node.Kind == 0 {
			continue // an empty document
		}
		require.NoError(t, o.node.Decode(o))
		require.NotEmpty(t, o.Kind, "a document without kind")
		r.objects = append(r.objects, o)
	}
	return r
}

// all returns the objects of a kind.
func (r *rendered) all(kind string) []*k8sObject {
	var out []*k8sObject
	for _, o := range r.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// only returns the one object of a kind.
func (r *rendered) only(t *testing.T, kind string) *k8sObject {
	t.Helper()
	objs := r.all(kind)
	require.Len(t, objs, 1, "one %s", kind)
	return objs[0]
}

// deployment returns the Deployment and its one container.
func (r *rendered) deployment(t *testing.T) (*deployment, *container) {
	t.Helper()
	var d deployment
	r.only(t, "Deployment").decode(t, &d)
	require.Len(t, d.Spec.Template.Spec.Containers, 1)
	return &d, &d.Spec.Template.Spec.Containers[0]
}

// configText returns the config.yaml the ConfigMap carries.
func (r *rendered) configText(t *testing.T) string {
	t.Helper()
	cm := r.only(t, "ConfigMap")
	c, ok := cm.Data["config.yaml"]
	require.True(t, ok, "ConfigMap %s has no config.yaml", cm.Metadata.Name)
	return c
}

// writeConfig writes the rendered config.yaml into a file.
func (r *rendered) writeConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte(r.configText(t)), 0o600))
	return p
}
