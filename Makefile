.PHONY: toolchain cluster cluster-down

# Builds the pinned control-plane binaries (cached; instant when already built).
toolchain:
	bash hack/toolchain.sh

# Starts the local kwok cluster; a no-op when it already runs and is healthy.
cluster:
	bash hack/cluster.sh up

cluster-down:
	bash hack/cluster.sh down

.PHONY: build generate render
build:
	cargo build --release -j2

# Regenerates every generated file (CRD, golden renders); tests fail when they drift.
generate:
	cargo run -q -j2 -- crd > crds/webcluster.yaml
	UPDATE_GOLDEN=1 cargo test -q -j2 --test render
	bash hack/generate-install.sh

# Renders an example offline: make render EXAMPLE=examples/roundcube.yaml
EXAMPLE ?= examples/roundcube.yaml
render:
	cargo run -q -j2 -- render -f $(EXAMPLE)

.PHONY: test demo demo-down lint
# Every test: formatting, lints, unit, golden, property, data-service and
# integration tests on the local control plane (started if needed).
test: toolchain cluster
	@echo "[test] cargo fmt --check"
	cargo fmt --check
	@echo "[test] cargo clippy"
	cargo clippy -q -j2 --all-targets -- -D warnings
	@echo "[test] cargo test (integration tests use the cluster at .cluster/kubeconfig)"
	cargo test -j2 --no-fail-fast -- --test-threads=6

lint:
	cargo fmt --check
	cargo clippy -q -j2 --all-targets -- -D warnings

demo:
	bash hack/demo.sh

demo-down:
	-kill $$(cat .cluster/operator.pid) 2>/dev/null
	bash hack/cluster.sh down

.PHONY: chart
# Copies the CRD into the chart and regenerates deploy/install.yaml (tests/chart.rs checks drift).
chart:
	bash hack/generate-install.sh

.PHONY: bench
# Convergence benchmark (benches/convergence.rs) on its own cluster in
# $(BENCH_CLUSTER_DIR), sized for the largest N (2 RWO PVs per WebCluster, room
# for 5 pods each); writes BENCHMARKS.md and benchmarks/convergence.svg, then
# stops that cluster (BENCH_KEEP_CLUSTER=1 keeps it). Smaller run:
#   make bench BENCH_SIZES=10,100
BENCH_SIZES ?= 10,100,1000
BENCH_CLUSTER_DIR ?= /tmp/wc-bench
BENCH_OPERATOR ?= $(CURDIR)/target/release/webcluster-operator
bench: toolchain
	@echo "[bench] building the release binary"
	cargo build --release -j2
	@max=$$(echo '$(BENCH_SIZES)' | tr ',' '\n' | sort -n | tail -n1); \
	  echo "[bench] starting the bench cluster in $(BENCH_CLUSTER_DIR) (largest N=$$max: $$((2 * max + 20)) RWO PVs, $$((2 * max + 100)) pods per node)"; \
	  WEBCLUSTER_CLUSTER_DIR=$(BENCH_CLUSTER_DIR) CLUSTER_PVS_RWO=$$((2 * max + 20)) CLUSTER_PVS_RWX=0 \
	    CLUSTER_NODE_PODS=$$((2 * max + 100)) bash hack/cluster.sh up >/dev/null
	@echo "[bench] cargo bench --bench convergence (BENCH_SIZES=$(BENCH_SIZES))"
	@status=0; \
	  KUBECONFIG=$(BENCH_CLUSTER_DIR)/kubeconfig BENCH_SIZES='$(BENCH_SIZES)' \
	    BENCH_OPERATOR='$(BENCH_OPERATOR)' \
	    cargo bench -j2 --bench convergence || status=$$?; \
	  if [ -z "$(BENCH_KEEP_CLUSTER)" ]; then WEBCLUSTER_CLUSTER_DIR=$(BENCH_CLUSTER_DIR) bash hack/cluster.sh down; fi; \
	  exit $$status
