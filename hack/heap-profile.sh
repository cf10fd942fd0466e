#!/usr/bin/env bash
# Runs the release operator under jemalloc's sampling heap profiler, for
#   BENCH_SIZES=1000 BENCH_SKIP_RAW=1 BENCH_OPERATOR=$PWD/hack/heap-profile.sh make bench
# Needs Debian's libjemalloc2 (the allocator, preloaded) and libjemalloc-dev
# (jeprof). A profile is written at every new high of the heap (prof_gdump), so
# the newest file is the peak:
#   jeprof --text --show_bytes --cum target/release/webcluster-operator "$(ls -t /tmp/webcluster-heap/* | head -n1)"
# The operator's RSS under jemalloc differs from the glibc figures of a plain run.
set -euo pipefail
out="${HEAP_PROFILE_DIR:-/tmp/webcluster-heap}"
mkdir -p "$out"
export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
export MALLOC_CONF="prof:true,prof_gdump:true,lg_prof_sample:17,prof_prefix:$out/heap"
exec "$(cd "$(dirname "$0")/.." && pwd)/target/release/webcluster-operator" "$@"
