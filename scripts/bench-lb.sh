#!/usr/bin/env bash
# Request-reply through zmqkit's load-balancing broker against plain libzmq, in one run:
# zmqkit-bench-lb (tests/bench/lb_bench.cpp, everything in one process, tcp loopback) measures
#   1. round trip p50/p99: REQ -> REP direct vs REQ -> load_balancer -> 1 lb_worker (and
#      lb_client::call through the same broker), 64 B, one request in flight;
#   2. throughput with 16 requests in flight: a raw zmq_proxy ROUTER/DEALER pass-through with
#      REP workers vs load_balancer + lb_client::submit with lb_workers, 1 and 4 workers;
# paths alternated inside each round (A B / B A), pinned (taskset -c 0: every thread on one
# CPU) and unpinned. Method and results: docs/performance.md ("Load balancer").
#
#   bash scripts/bench-lb.sh                       # ~4 min per contexts mode here
#   BENCH_ROUNDS=3 BENCH_CONTEXTS="role shared" bash scripts/bench-lb.sh
#   bash scripts/bench-lb.sh --size 1024           # extra arguments go to zmqkit-bench-lb
#
# Environment:
#   BUILD_DIR          build directory (default: <repo>/build-bench)
#   BENCH_ROUNDS       rounds per configuration (default 5)
#   BENCH_LAT_REQS     timed round trips per latency run (default 10000)
#   BENCH_TP_REQS      timed requests per throughput run (default 40000)
#   BENCH_INFLIGHT     requests in flight in the throughput runs (default 16)
#   BENCH_WORKERS      worker counts (default 1,4)
#   BENCH_CONTEXTS     "role" (a zmq context, i.e. an I/O thread, per role: clients, broker,
#                      workers, as separate processes would have) and/or "shared" (one
#                      context for everything) (default "role")
#   BENCH_PLACEMENTS   "pinned unpinned" (default)
#   BENCH_CPU          CPU for the pinned runs (default 0)
#   BENCH_OUT          log directory (default: $BUILD_DIR/bench-results)
#
# Exit status: non-zero if the build fails or a run lost or garbled a reply.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-5}"
lat_reqs="${BENCH_LAT_REQS:-10000}"
tp_reqs="${BENCH_TP_REQS:-40000}"
inflight="${BENCH_INFLIGHT:-16}"
workers="${BENCH_WORKERS:-1,4}"
contexts_list="${BENCH_CONTEXTS:-role}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
cpu="${BENCH_CPU:-0}"
out="${BENCH_OUT:-$build/bench-results}"

command -v taskset >/dev/null || { echo "bench-lb.sh: taskset (util-linux) not found" >&2; exit 1; }

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
echo "== configure + build ($build, Release)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DZMQKIT_BUILD_BENCHMARKS=ON \
    "${launcher[@]}" >/dev/null
ninja -C "$build" -j2 zmqkit-bench-lb
bench="$build/tests/bench/zmqkit-bench-lb"

mkdir -p "$out"
summary="$out/lb-summary.txt"
: >"$summary"
echo
echo "== machine"
echo "nproc:  $(nproc)"
echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "libzmq: $(pkg-config --modversion libzmq 2>/dev/null || echo unknown)"
echo "uptime: $(uptime)"
echo "logs:   $out"

status=0
for contexts in $contexts_list; do
    for placement in $placements; do
        prefix=()
        [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
        log="$out/lb-$contexts-$placement.txt"
        echo
        echo "== $placement, contexts $contexts: ${prefix[*]} $bench --rounds $rounds" \
            "--latency-requests $lat_reqs --throughput-requests $tp_reqs --inflight $inflight" \
            "--workers $workers --contexts $contexts $*"
        before="$(uptime)"
        if ! "${prefix[@]}" "$bench" --rounds "$rounds" --latency-requests "$lat_reqs" \
            --throughput-requests "$tp_reqs" --inflight "$inflight" --workers "$workers" \
            --contexts "$contexts" "$@" 2>&1 | tee "$log"; then
            echo "bench-lb.sh: run ($placement, contexts $contexts) FAILED" >&2
            status=1
        fi
        after="$(uptime)"
        echo "uptime before: $before" | tee -a "$log"
        echo "uptime after:  $after" | tee -a "$log"
        grep -h '^RESULT part=' "$log" | sed "s/^RESULT /RESULT placement=$placement /" >>"$summary"
        echo "LOAD placement=$placement contexts=$contexts before=\"${before##*load average: }\"" \
            "after=\"${after##*load average: }\"" >>"$summary"
    done
done

echo
echo "== summary ($summary)"
cat "$summary"
exit "$status"
