# syntax=docker/dockerfile:1
#
# The kustode image: one static binary on distroless, running as the nonroot
# user (65532). By default it runs the in-cluster monitor; any other command
# works too (docker run IMAGE scan /manifests).
#
#   docker build -t kustode \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse HEAD)" .
#
# Multi-platform: docker buildx build --platform linux/amd64,linux/arm64 ...
# (the builder cross-compiles; nothing runs under emulation).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
# The sources; .dockerignore keeps out what the binary does not need.
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS
ARG TARGETARCH
# The same flags as the Makefile's build target.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    go build -trimpath \
      -ldflags "-s -w -X github.com/kustode/kustode/internal/version.version=${VERSION} -X github.com/kustode/kustode/internal/version.commit=${COMMIT}" \
      -o /out/kustode ./cmd/kustode

# No shell, no package manager; CA certificates and /etc/passwd with nonroot.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="kustode" \
      org.opencontainers.image.description="Kubernetes security monitor" \
      org.opencontainers.image.source="https://github.com/kustode/kustode" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/kustode /kustode
USER 65532:65532
# The API and dashboard, and the audit webhook (deploy/helm/kustode).
EXPOSE 8080 8443
ENTRYPOINT ["/kustode"]
CMD ["serve", "--config", "/etc/kustode/config.yaml"]
