# syntax=docker/dockerfile:1
# acmebridge container image: a static binary on distroless, running as the
# image's non-root user (65532). Not built in this repository's CI (there is
# no container engine there); deploy/docker_test.go runs the build stage's
# `go build` command with the same flags and checks the binary is static.
#
#   docker build -t acmebridge --build-arg VERSION=$(git describe --always) .
#   docker run -p 8555:8555 -v acmebridge:/var/lib/acmebridge acmebridge
#
# The baked-in config (deploy/docker/config.yaml) is the quickstart on every
# interface; mount your own at /etc/acmebridge/config.yaml.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/acmebridge ./cmd/acmebridge
# The state volume's mount point, owned by the non-root user so a fresh
# named volume is writable.
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/acmebridge /usr/bin/acmebridge
COPY --from=build --chown=65532:65532 --chmod=0700 /out/state /var/lib/acmebridge
COPY deploy/docker/config.yaml /etc/acmebridge/config.yaml
USER nonroot:nonroot
WORKDIR /var/lib/acmebridge
# Admin commands in the container (docker exec CONTAINER acmebridge eab create)
# find the server and its token here.
ENV ACMEBRIDGE_ADMIN=http://127.0.0.1:8556 \
    ACMEBRIDGE_ADMIN_TOKEN_FILE=/var/lib/acmebridge/admin.token
VOLUME ["/var/lib/acmebridge"]
# 8555: ACME (HTTPS unless server.tls.disabled); 8556: admin API, metrics, health.
EXPOSE 8555 8556
ENTRYPOINT ["/usr/bin/acmebridge"]
CMD ["serve", "--config", "/etc/acmebridge/config.yaml"]
