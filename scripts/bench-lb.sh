#!/usr/bin/env bash
# Request-reply through zmqkit's load-balancing broker against plain libzmq, in one run:
# zmqkit-bench-lb (tests/bench/lb_bench.cpp, everything in one process, tcp loopback) measures
#   1. round trip p50/p99: REQ -> REP direct vs REQ -> load_balancer -> 1 lb_worker (and
#      lb_client::call through the same broker), 64 B, one request in flight; and, for
#      reference, REQ -> zmq_proxy_steerable ROUTER/DEALER -> REP (libzmq's own device: what a
#      broker in the middle costs without zmqkit);
#   2. throughput with 16 requests in flight: a raw zmq_proxy ROUTER/DEALER pass-through with
#      REP workers vs load_balancer + lb_client::submit with lb_workers, 1 and 4 workers;
# paths alternated inside each round (A B / B A), pinned (taskset -c 0: every thread on one
# CPU) and unpinned. Method and results: docs/performance.md ("Load balancer").
#
#   bash scripts/bench-lb.sh                       # ~4 min per contexts mode here
#   BENCH_ROUNDS=3 BENCH_CONTEXTS="role shared" bash scripts/bench-lb.sh
#   bash scripts/bench-lb.sh --size 1024           # extra arguments go to zmqkit-bench-lb
#   BENCH_PREFETCH=4 bash scripts/bench-lb.sh      # lb_workers with credit 4 (prefetch)
#
# Environment:
#   BUILD_DIR          build directory (default: <repo>/build-bench)
#   BENCH_ROUNDS       rounds per configuration (default 5)
#   BENCH_LAT_REQS     timed round trips per latency run (default 10000)
#   BENCH_TP_REQS      timed requests per throughput run (default 40000)
#   BENCH_INFLIGHT     requests in flight in the throughput runs (default 16)
#   BENCH_PREFETCH     credit (lb_worker_options::prefetch) of the zmqkit workers: passed as
#                      --prefetch N to zmqkit-bench-lb (in A/B mode to the "new" binary only)
#                      (default: not passed, i.e. 1, one request at a time)
#   BENCH_BASE_PREFETCH  A/B mode: --prefetch N for the baseline binary (default: not passed,
#                      for a baseline built before --prefetch existed). Prefetch 1 against 4 in
#                      one binary: BENCH_BASELINE=$BENCH_BIN BENCH_BASE_PREFETCH=1 BENCH_PREFETCH=4
#   BENCH_WORKERS      worker counts (default 1,4)
#   BENCH_CONTEXTS     "role" (a zmq context, i.e. an I/O thread, per role: clients, broker,
#                      workers, as separate processes would have) and/or "shared" (one
#                      context for everything) (default "role")
#   BENCH_PLACEMENTS   "pinned unpinned" (default)
#   BENCH_CPU          CPU for the pinned runs (default 0)
#   BENCH_OUT          log directory (default: $BUILD_DIR/bench-results)
#   BENCH_BIN          run this zmqkit-bench-lb instead of building one in $BUILD_DIR
#   BENCH_BASELINE     A/B mode: a second zmqkit-bench-lb (e.g. built from the tree before a
#                      change). Every round runs both binaries (--rounds 1 each; "base" then
#                      "new", flipped every round) and the summary gives, per placement, the
#                      medians over rounds of each binary and of the per-round new/base ratios:
#     BENCH_BASELINE=/tmp/base/zmqkit-bench-lb BENCH_BIN=build-x/tests/bench/zmqkit-bench-lb \
#         BENCH_ROUNDS=5 bash scripts/bench-lb.sh
#
# Exit status: non-zero if the build fails or a run lost or garbled a reply.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
build="${BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-5}"
lat_reqs="${BENCH_LAT_REQS:-10000}"
tp_reqs="${BENCH_TP_REQS:-40000}"
inflight="${BENCH_INFLIGHT:-16}"
prefetch_new=()
[[ -n ${BENCH_PREFETCH:-} ]] && prefetch_new=(--prefetch "$BENCH_PREFETCH")
prefetch_base=()
[[ -n ${BENCH_BASE_PREFETCH:-} ]] && prefetch_base=(--prefetch "$BENCH_BASE_PREFETCH")
workers="${BENCH_WORKERS:-1,4}"
contexts_list="${BENCH_CONTEXTS:-role}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
cpu="${BENCH_CPU:-0}"
out="${BENCH_OUT:-$build/bench-results}"

bench_need_taskset bench-lb.sh

if [[ -n ${BENCH_BIN:-} ]]; then
    bench="$BENCH_BIN"
else
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    echo "== configure + build ($build, Release)"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DZMQKIT_BUILD_BENCHMARKS=ON \
        "${launcher[@]}" >/dev/null
    ninja -C "$build" -j2 zmqkit-bench-lb
    bench="$build/tests/bench/zmqkit-bench-lb"
fi
baseline="${BENCH_BASELINE:-}"
for b in "$bench" ${baseline:+"$baseline"}; do
    [[ -x $b ]] || { echo "bench-lb.sh: $b is not an executable" >&2; exit 1; }
done

mkdir -p "$out"
summary="$out/lb-summary.txt"
: >"$summary"
bench_machine "$out"

# A/B summary: medians over rounds, per variant, of the RESULT values, and of the per-round
# new/base ratios. Input: "RESULT variant=V round=R placement=P part=..." lines.
ab_summary() {
    awk "$BENCH_AWK_MEDIAN"'
    {
        delete kv
        for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
        v = kv["variant"]; r = kv["round"]; pl = kv["placement"]
        if (kv["part"] == "latency") {
            add(pl, "p50_us " kv["path"], v, r, kv["p50_us"])
            add(pl, "p99_us " kv["path"], v, r, kv["p99_us"])
        } else if (kv["part"] == "latency_ratio") {
            add(pl, "lb-req/direct p50", v, r, kv["lb_req_over_direct_p50"])
            add(pl, "lb-call/direct p50", v, r, kv["lb_call_over_direct_p50"])
            if ("proxy_over_direct_p50" in kv) {
                add(pl, "proxy/direct p50", v, r, kv["proxy_over_direct_p50"])
                add(pl, "lb-req/proxy p50", v, r, kv["lb_req_over_proxy_p50"])
            }
        } else if (kv["part"] == "throughput") {
            w = "workers=" kv["workers"]
            add(pl, "raw req/s " w, v, r, kv["raw_req_per_s"])
            add(pl, "lb req/s " w, v, r, kv["lb_req_per_s"])
            add(pl, "lb/raw " w, v, r, kv["ratio"])
            if ("lb_cpu_us_per_req" in kv) {
                add(pl, "raw cpu-us/req " w, v, r, kv["raw_cpu_us_per_req"])
                add(pl, "lb cpu-us/req " w, v, r, kv["lb_cpu_us_per_req"])
            }
        }
    }
    function add(pl, key, v, r, x,    k) {
        k = pl SUBSEP key
        if (!(k in seen)) { seen[k] = 1; order[++nkeys] = k }
        vals[k, v] = vals[k, v] " " x
        at[k, v, r] = x
        if (r > rounds) rounds = r
    }
    END {
        printf "%-10s %-26s %12s %12s %10s\n", "placement", "value", "base", "new", "new/base"
        for (i = 1; i <= nkeys; i++) {
            k = order[i]; split(k, kp, SUBSEP)
            ratios = ""
            for (r = 1; r <= rounds; r++)
                if ((k, "base", r) in at && (k, "new", r) in at && at[k, "base", r] + 0 > 0)
                    ratios = ratios " " (at[k, "new", r] / at[k, "base", r])
            printf "%-10s %-26s %12.3f %12.3f %10.3f\n", kp[1], kp[2], median(vals[k, "base"]),
                median(vals[k, "new"]), median(ratios)
        }
    }' "$@"
}

status=0
if [[ -n $baseline ]]; then
    ab="$out/lb-ab-results.txt"
    : >"$ab"
    for contexts in $contexts_list; do
        for placement in $placements; do
            prefix=()
            [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
            log="$out/lb-ab-$contexts-$placement.txt"
            : >"$log"
            before="$(uptime)"
            for ((round = 1; round <= rounds; round++)); do
                order=(base new)
                ((round % 2 == 0)) && order=(new base)
                for variant in "${order[@]}"; do
                    bin="$bench"
                    extra=("${prefetch_new[@]}")
                    if [[ $variant == base ]]; then
                        bin="$baseline"
                        extra=("${prefetch_base[@]}")
                    fi
                    echo "== round $round/$rounds $variant ($placement, contexts $contexts): $bin" |
                        tee -a "$log"
                    run="$out/lb-ab-run.txt"
                    if ! "${prefix[@]}" "$bin" --rounds 1 --latency-requests "$lat_reqs" \
                        --throughput-requests "$tp_reqs" --inflight "$inflight" \
                        --workers "$workers" --contexts "$contexts" ${extra[@]+"${extra[@]}"} \
                        "$@" >"$run" 2>&1; then
                        echo "bench-lb.sh: $variant run FAILED (see $log)" >&2
                        status=1
                    fi
                    cat "$run" >>"$log"
                    grep '^RESULT part=' "$run" |
                        sed "s/^RESULT /RESULT variant=$variant round=$round placement=$placement-$contexts /" >>"$ab" || true
                done
            done
            after="$(uptime)"
            echo "LOAD placement=$placement contexts=$contexts before=\"${before##*load average: }\"" \
                "after=\"${after##*load average: }\"" | tee -a "$log" >>"$summary"
        done
    done
    echo
    echo "== A/B summary, medians over $rounds rounds ($ab)"
    ab_summary "$ab" | tee -a "$summary"
    grep '^LOAD' "$summary"
    exit "$status"
fi

for contexts in $contexts_list; do
    for placement in $placements; do
        prefix=()
        [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
        log="$out/lb-$contexts-$placement.txt"
        echo
        echo "== $placement, contexts $contexts: ${prefix[*]} $bench --rounds $rounds" \
            "--latency-requests $lat_reqs --throughput-requests $tp_reqs --inflight $inflight" \
            "--workers $workers --contexts $contexts ${prefetch_new[*]} $*"
        before="$(uptime)"
        if ! "${prefix[@]}" "$bench" --rounds "$rounds" --latency-requests "$lat_reqs" \
            --throughput-requests "$tp_reqs" --inflight "$inflight" --workers "$workers" \
            --contexts "$contexts" ${prefetch_new[@]+"${prefetch_new[@]}"} "$@" 2>&1 |
            tee "$log"; then
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
