# Strict shells: a failing command in a pipe or an unset variable stops the recipe.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
# Parallel jobs of cargo (the machine has 2 cores, shared).
JOBS ?= 2

.PHONY: toolchain cluster cluster-down

# Builds the pinned control-plane binaries (cached; instant when already built).
toolchain:
	bash hack/toolchain.sh

# Starts the local kwok cluster; a no-op when it already runs and is healthy.
cluster:
	bash hack/cluster.sh up

cluster-down:
	@# Control planes of tests' own (tests/faults.rs: .cluster/faults) go too.
	for dir in .cluster/*/kwok; do \
	  if [[ -d "$$dir" ]]; then WEBCLUSTER_CLUSTER_DIR="$${dir%/kwok}" bash hack/cluster.sh down; fi; \
	done
	bash hack/cluster.sh down

.PHONY: build generate render image
build:
	cargo build --release -j$(JOBS)

# The operator's image without a Docker engine (hack/image.sh): target/image/webcluster-operator.tar.
image:
	JOBS=$(JOBS) bash hack/image.sh build

# Regenerates every generated file (CRD, golden renders); tests fail when they drift.
# The CRD goes through a temporary file: a failing build leaves crds/webcluster.yaml as it was.
generate:
	cargo run -q -j$(JOBS) -- crd > crds/webcluster.yaml.tmp || { rm -f crds/webcluster.yaml.tmp; exit 1; }
	mv crds/webcluster.yaml.tmp crds/webcluster.yaml
	UPDATE_GOLDEN=1 cargo test -q -j$(JOBS) --test render
	bash hack/generate-install.sh

# Renders an example offline: make render EXAMPLE=examples/roundcube.yaml
EXAMPLE ?= examples/roundcube.yaml
render:
	cargo run -q -j$(JOBS) -- render -f $(EXAMPLE)

.PHONY: test demo demo-down lint packages
# Every test: formatting, lints, unit, golden, property, data-service and
# integration tests on the local control plane (started if needed). The
# Debian packages of hack/apt-packages.txt are installed first when missing.
test: packages toolchain cluster
	@echo "[test] cargo fmt --check"
	cargo fmt --check
	@echo "[test] cargo clippy"
	cargo clippy -q -j$(JOBS) --all-targets -- -D warnings
	@echo "[test] cargo test (integration tests use the cluster at .cluster/kubeconfig)"
	cargo test -j$(JOBS) --no-fail-fast -- --test-threads=6

# Installs the missing Debian packages (as root), or names the one command to run.
packages:
	bash hack/install-packages.sh

lint:
	cargo fmt --check
	cargo clippy -q -j$(JOBS) --all-targets -- -D warnings

# On a fresh machine the real node needs the Debian packages too (socat, iptables …).
demo: packages
	bash hack/demo.sh

demo-down:
	-kill $$(cat .cluster/operator.pid) 2>/dev/null
	$(MAKE) cluster-down

.PHONY: fuzz
# Long fuzz run of render and the validator (tests/fuzz.rs; make test runs 500 inputs
# per offline target and 200 against the API server): FUZZ_CASES inputs for each offline
# target, FUZZ_SERVER_CASES mutated examples through render and the local API server.
FUZZ_CASES ?= 50000
FUZZ_SERVER_CASES ?= 5000
fuzz: toolchain cluster
	@echo "[fuzz] $(FUZZ_CASES) inputs per offline target, $(FUZZ_SERVER_CASES) against the API server"
	FUZZ_CASES=$(FUZZ_CASES) FUZZ_SERVER_CASES=$(FUZZ_SERVER_CASES) \
	  cargo test -j$(JOBS) --test fuzz -- --nocapture --test-threads=1

.PHONY: chart
# Copies the CRD into the chart and regenerates deploy/install.yaml (tests/chart.rs checks drift).
chart:
	bash hack/generate-install.sh

.PHONY: bench
# Convergence benchmark (benches/convergence/) on its own cluster in
# $(BENCH_CLUSTER_DIR), sized for the largest N (2 RWO PVs per WebCluster, room
# for 5 pods each); writes BENCHMARKS.md and benchmarks/convergence.svg, then
# stops that cluster (BENCH_KEEP_CLUSTER=1 keeps it). Smaller run:
#   make bench BENCH_SIZES=10,100
# Another revision's build: BENCH_OPERATOR=/path/to/its/webcluster-operator (its own
# CRD and children are used), e.g. to compare before and after a change.
BENCH_SIZES ?= 10,100,1000
BENCH_CLUSTER_DIR ?= /tmp/wc-bench
BENCH_OPERATOR ?= $(CURDIR)/target/release/webcluster-operator
bench: toolchain
	@echo "[bench] building the release binary"
	cargo build --release -j$(JOBS)
	@max=$$(echo '$(BENCH_SIZES)' | tr ',' '\n' | sort -n | tail -n1); \
	  echo "[bench] starting the bench cluster in $(BENCH_CLUSTER_DIR) (largest N=$$max: $$((2 * max + 20)) RWO PVs, $$((2 * max + 100)) pods per node)"; \
	  WEBCLUSTER_CLUSTER_DIR=$(BENCH_CLUSTER_DIR) CLUSTER_PVS_RWO=$$((2 * max + 20)) CLUSTER_PVS_RWX=0 \
	    CLUSTER_NODE_PODS=$$((2 * max + 100)) bash hack/cluster.sh up >/dev/null
	@echo "[bench] cargo bench --bench convergence (BENCH_SIZES=$(BENCH_SIZES))"
	@status=0; \
	  KUBECONFIG=$(BENCH_CLUSTER_DIR)/kubeconfig WEBCLUSTER_CLUSTER_DIR=$(BENCH_CLUSTER_DIR) \
	    BENCH_SIZES='$(BENCH_SIZES)' BENCH_OPERATOR='$(BENCH_OPERATOR)' \
	    cargo bench -j$(JOBS) --bench convergence || status=$$?; \
	  if [ -z "$(BENCH_KEEP_CLUSTER)" ]; then WEBCLUSTER_CLUSTER_DIR=$(BENCH_CLUSTER_DIR) bash hack/cluster.sh down; fi; \
	  exit $$status
