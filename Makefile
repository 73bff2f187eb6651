# Image URL to use all building/pushing image targets
IMG ?= controller:latest

# Kubernetes and etcd versions of the local control plane used by the tests.
# KUBE_VERSION matches the k8s.io modules that controller-runtime v0.25 uses.
KUBE_VERSION ?= v1.37.2
ETCD_VERSION ?= v3.7.0

# The Go toolchain every target uses: go1.27.3 has the standard library's
# security fixes that govulncheck (make vulncheck) asks for. The go command
# fetches it from the Go module proxy the first time (about 76 MB); go.mod
# still allows Go 1.26. Tools built here are kept per Go version, since a
# tool that type-checks code must be built with the Go it reads.
export GOTOOLCHAIN ?= go1.27.3
GOVERSION := $(shell GOTOOLCHAIN=$(GOTOOLCHAIN) go env GOVERSION)

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# CONTAINER_TOOL defines the container tool to be used for building images.
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'.
.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate ClusterRole and CustomResourceDefinition objects.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate code containing DeepCopy, DeepCopyInto, and DeepCopyObject method implementations.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: test
test: manifests generate fmt vet setup-envtest test-deps ## Run unit and integration tests (real kube-apiserver, etcd, Redis, ZooKeeper) with the race detector.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -race $$(go list ./... | grep -v /test/) -count=1 -coverprofile cover.out

## FAULTS_PROFILE=ci runs every fault scenario once (a few minutes); full
## keeps injecting each until its cell has made at least 1,000 handoffs.
FAULTS_PROFILE ?= ci
## FAULTS_TABLE, when set, is where the table is also written.
FAULTS_TABLE ?=

.PHONY: test-faults
test-faults: setup-envtest test-deps ## Run the fault scenarios (docs/reliability.md) and print their table; FAULTS_PROFILE=ci|full.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" FAULTS_PROFILE=$(FAULTS_PROFILE) FAULTS_TABLE=$(FAULTS_TABLE) \
		go test ./test/faults -count=1 -v -timeout 80m

.PHONY: test-e2e
test-e2e: manifests generate kustomize ## Run the end-to-end tests: gated Jobs on a real single-node cluster (kubelet, containerd) in its own network namespace.
	hack/test-e2e.sh

.PHONY: verify
verify: manifests generate fmt ## Fail if generated files or formatting differ from what is committed.
	@if [ -n "$$(git status --porcelain -- . ':!cover.out' ':!bin' ':!dist')" ]; then \
		echo "verify: the tree differs after 'make manifests generate fmt'; commit the result:"; \
		git status --porcelain; git --no-pager diff --stat; exit 1; \
	fi

.PHONY: ci
ci: verify lint vulncheck test test-faults test-e2e ## Everything CI runs (.ci/run): verify, lint, vulncheck, tests, fault scenarios (CI profile).

.PHONY: lint
lint: golangci-lint ## Run golangci-lint linter
	$(GOLANGCI_LINT) run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint linter and perform fixes
	$(GOLANGCI_LINT) run --fix

.PHONY: lint-config
lint-config: golangci-lint ## Verify golangci-lint linter configuration
	$(GOLANGCI_LINT) config verify

.PHONY: vulncheck
vulncheck: ## Check the code against the Go vulnerability database (offline copy built from golang.org/x/vulndb).
	hack/vulncheck.sh

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager and waiter binaries.
	go build -o bin/manager ./cmd/manager
	go build -o bin/waiter ./cmd/waiter

.PHONY: run
run: manifests generate fmt vet ## Run a controller from your host.
	go run ./cmd/manager

.PHONY: bench
bench: ## Print one table: handoffs vs a Lease, backend speed vs bsm/redislock, redsync and zk.Lock, the scale run (BENCH_DURATION, BENCH_REPS, N, LOCKS, PODS).
	hack/bench.sh

.PHONY: bench-scale
bench-scale: setup-envtest test-deps ## Measure the controller at scale (docs/scale.md): LOCKS (100) x PODS (10), BACKENDS=redis[,zookeeper], BENCH_SCALE_FLAGS.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./hack/bench/scale $(if $(LOCKS),-locks=$(LOCKS)) $(if $(PODS),-pods=$(PODS)) \
		$(if $(BACKENDS),-backends=$(BACKENDS)) $(BENCH_SCALE_FLAGS)

.PHONY: demo
demo: ## The demo: gated Jobs taking turns on a real local cluster (kubelet, containerd) with Redis and ZooKeeper.
	hack/demo.sh

.PHONY: demo-envtest
demo-envtest: setup-envtest test-deps ## A quick demo without a kubelet: envtest's control plane, Redis, ZooKeeper and the manager.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go run ./hack/demo-envtest

.PHONY: docker-build
docker-build: ## Build docker image with the manager.
	$(CONTAINER_TOOL) build -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push docker image with the manager.
	$(CONTAINER_TOOL) push ${IMG}

.PHONY: build-installer
build-installer: manifests generate kustomize ## Generate a consolidated YAML with CRDs and deployment.
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=${IMG}
	$(KUSTOMIZE) build config/default > dist/install.yaml

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install CRDs into the K8s cluster specified in ~/.kube/config.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall CRDs from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy controller to the K8s cluster specified in ~/.kube/config.
	cd config/manager && $(KUSTOMIZE) edit set image controller=${IMG}
	$(KUSTOMIZE) build config/default | $(KUBECTL) apply -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy controller from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

## Tool Binaries
KUBECTL ?= kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)-$(GOVERSION)
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)-$(GOVERSION)
GOLANGCI_LINT = $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)-$(GOVERSION)
## Directory of kube-apiserver, etcd and kubectl for envtest (hack/kube-binaries.sh).
ENVTEST_ASSETS = $(LOCALBIN)/k8s/$(KUBE_VERSION:v%=%)-$(shell go env GOOS)-$(shell go env GOARCH)

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION),kustomize)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION),controller-gen)

.PHONY: setup-envtest
setup-envtest: ## Provide kube-apiserver, etcd and kubectl for envtest in bin/k8s (downloaded, or built from Go modules; cached).
	KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) hack/kube-binaries.sh kube-apiserver etcd kubectl >/dev/null

.PHONY: test-deps
test-deps: ## Install redis-server and ZooKeeper (Debian packages) if they are missing.
	hack/install-test-deps.sh

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Download golangci-lint locally if necessary.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION),golangci-lint)

# go-install-tool installs a Go tool into a file named with its version and
# the Go version that built it, and links bin/NAME to it for people.
# $1 - the versioned binary to create
# $2 - package url which can be installed
# $3 - specific version of package
# $4 - the name the package's binary has (and the link's)
define go-install-tool
@[ -f "$(1)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Installing $${package} with $(GOVERSION)" ;\
rm -f $(LOCALBIN)/$(4) || true ;\
GOBIN=$(LOCALBIN) go install $${package} ;\
mv $(LOCALBIN)/$(4) $(1) ;\
} ;\
ln -sf $(notdir $(1)) $(LOCALBIN)/$(4)
endef
