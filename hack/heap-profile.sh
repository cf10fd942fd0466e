#!/usr/bin/env bash
# Runs the release operator under jemalloc's sampling heap profiler, for
#   make bench BENCH_SIZES=1000 BENCH_SKIP_RAW=1 BENCH_PEER=none BENCH_OPERATOR=$PWD/hack/heap-profile.sh \
#     BENCH_REPORT=/tmp/heap/report.md BENCH_CHART=/tmp/heap/chart.svg
# Needs Debian's libjemalloc2 (the allocator, preloaded) and libjemalloc-dev
# (jeprof). Only `run` is profiled: the bench's `crd` and `render` calls run
# plain (under prof_gdump, render of 1,000 WebClusters hung in jemalloc's dump).
# A profile is written every 1 GiB allocated (lg_prof_interval), so the newest
# file is the heap in use shortly before the operator stopped:
#   jeprof --text --show_bytes --inuse_space target/release/webcluster-operator "$(ls -t /tmp/webcluster-heap/* | head -n1)"
# The operator's RSS under jemalloc differs from the glibc figures of a plain run.
set -euo pipefail
binary="$(cd "$(dirname "$0")/.." && pwd)/target/release/webcluster-operator"
[[ "${1:-}" == run ]] || exec "$binary" "$@"
out="${HEAP_PROFILE_DIR:-/tmp/webcluster-heap}"
mkdir -p "$out"
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
export MALLOC_CONF="prof:true,lg_prof_interval:30,lg_prof_sample:17,prof_prefix:$out/heap"
exec "$binary" "$@"
