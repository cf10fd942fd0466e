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
