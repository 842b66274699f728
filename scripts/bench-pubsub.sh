#!/usr/bin/env bash
# Pub-sub fan-out throughput in one run on one machine: raw libzmq PUB -> SUB (direct), raw
# PUB -> zmq_proxy(XSUB, XPUB) -> SUB (proxy), and zmqkit publisher -> forwarder -> subscriber
# with envelope, sequence numbers and gap tracking (zmqkit), 64 B, 1 and 4 subscribers, paths
# alternated round by round, pinned (taskset -c 0: every thread on one CPU) and unpinned.
# Target: zmqkit / proxy >= 0.7 at 64 B. Method and results: docs/performance.md
# ("Pub-sub forwarder").
#
#   bash scripts/bench-pubsub.sh                     # defaults: 5 rounds x 500000 messages
#   BENCH_ROUNDS=3 BENCH_MESSAGES=200000 bash scripts/bench-pubsub.sh
#   bash scripts/bench-pubsub.sh --diagnostics       # extra arguments go to the benchmark
#
# Environment:
#   BUILD_DIR         build directory (default: <repo>/build-bench); configured (Release,
#                     benchmarks on, tests off) only if it has no CMakeCache.txt yet
#   BENCH_ROUNDS      rounds per path (default 5)
#   BENCH_MESSAGES    publications per run (default 500000)
#   BENCH_SIZE        payload bytes (default 64)
#   BENCH_SUBSCRIBERS subscriber counts (default 1,4)
#   BENCH_PLACEMENTS  "pinned unpinned" (default)
#   BENCH_CPU         CPU for the pinned runs (default 0)
#   BENCH_OUT         log directory (default: $BUILD_DIR/bench-results)
#
# Exit status: non-zero if the build fails or a run lost messages (or saw a sequence error).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-5}"
messages="${BENCH_MESSAGES:-500000}"
size="${BENCH_SIZE:-64}"
subscribers="${BENCH_SUBSCRIBERS:-1,4}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
cpu="${BENCH_CPU:-0}"
out="${BENCH_OUT:-$build/bench-results}"

command -v taskset >/dev/null || { echo "bench-pubsub.sh: taskset (util-linux) not found" >&2; exit 1; }

if [[ ! -f $build/CMakeCache.txt ]]; then
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    echo "== configure ($build, Release)"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DZMQKIT_BUILD_TESTS=OFF -DZMQKIT_BUILD_EXAMPLES=OFF -DZMQKIT_BUILD_BENCHMARKS=ON \
        "${launcher[@]}" >/dev/null
fi
echo "== build ($build)"
ninja -C "$build" -j2 zmqkit-bench-pubsub
bench="$build/tests/bench/zmqkit-bench-pubsub"
args=(--rounds "$rounds" --messages "$messages" --size "$size" --subscribers "$subscribers" "$@")

mkdir -p "$out"
: >"$out/pubsub-summary.txt"
echo
echo "== machine"
echo "nproc:  $(nproc)"
echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "uptime: $(uptime)"
echo "logs:   $out"

status=0
for placement in $placements; do
    prefix=()
    [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
    log="$out/pubsub-$placement.txt"
    echo
    echo "== $placement: ${prefix[*]} $bench ${args[*]}"
    echo "   uptime before: $(uptime)"
    if ! "${prefix[@]}" "$bench" "${args[@]}" 2>&1 | tee "$log"; then
        echo "bench-pubsub.sh: $placement run FAILED (loss or error), see $log" >&2
        status=1
    fi
    echo "   uptime after:  $(uptime)"
    grep -h '^RESULT ' "$log" | sed "s/^RESULT /RESULT placement=$placement /" \
        >>"$out/pubsub-summary.txt" || true
done

echo
echo "== summary ($out/pubsub-summary.txt), load $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$out/pubsub-summary.txt"
exit "$status"
