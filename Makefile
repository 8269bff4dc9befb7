# kustode — run `make help` for the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
BIN_DIR   ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w \
	-X github.com/kustode/kustode/internal/version.version=$(VERSION) \
	-X github.com/kustode/kustode/internal/version.commit=$(COMMIT)
TOOLS     := $(GO) tool -modfile=hack/tools/go.mod
# Packages of the main module (excludes the separate modules under hack/).
PKGS      := ./...
E2E_PKGS  := ./test/e2e/...
# Go test flags for `make unit`, `make e2e` (e.g. TESTFLAGS=-run=Smoke).
TESTFLAGS ?=

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "; printf "Usage: make TARGET\n\nTargets:\n"} \
		/^[a-zA-Z0-9_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/kustode (static, with version information).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN_DIR)/kustode ./cmd/kustode

.PHONY: test
test: unit e2e ## Everything CI runs: unit and end-to-end tests.

.PHONY: unit
unit: ## Fast tests: no cluster, no network beyond loopback.
	$(GO) test -race -count=1 $(TESTFLAGS) $(PKGS)

.PHONY: k8s-assets
k8s-assets: ## Build (or find cached) etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok.
	@hack/k8s-assets.sh >/dev/null

.PHONY: e2e
e2e: ## End-to-end tests against a real control plane (builds it on first use).
	@assets=$$(hack/k8s-assets.sh) && \
	echo "e2e: control-plane binaries in $$assets" && \
	KUBEBUILDER_ASSETS=$$assets $(GO) test -tags e2e -count=1 -timeout 20m $(TESTFLAGS) $(E2E_PKGS)

.PHONY: lint
lint: ## golangci-lint with the linters named in .golangci.yml.
	$(TOOLS) golangci-lint run --build-tags e2e ./...

.PHONY: generate
generate: ## Regenerate generated files (go generate).
	$(GO) generate ./...

.PHONY: verify
verify: generate ## Run generate and tidy, then fail if the tree changed.
	$(GO) mod tidy
	cd hack/k8senv && $(GO) mod tidy
	cd hack/tools && $(GO) mod tidy
	gofmt -l . | (! grep .) || (echo "gofmt: the files above need formatting"; exit 1)
	@git diff --exit-code || (echo "verify: the tree changed after generate/tidy; commit the result"; exit 1)

.PHONY: bench
bench: ## Run the benchmarks (results go in docs/performance.md).
	$(GO) test -run='^$$' -bench=. -benchmem $(TESTFLAGS) $(PKGS)

.PHONY: clean
clean: ## Remove build output (keeps the Go and control-plane caches).
	rm -rf $(BIN_DIR)
