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
#   BENCH_BIN         run this zmqkit-bench-pubsub instead of building one in $BUILD_DIR
#   BENCH_BASELINE    A/B mode: a second zmqkit-bench-pubsub (e.g. built from the tree before
#                     a change). Every round runs both binaries (--rounds 1 each; "base" then
#                     "new", flipped every round) and the summary gives, per placement and
#                     subscriber count, the medians over rounds of each binary's values
#                     (msgs/s and CPU us per publication of every path, zmqkit/proxy ratios)
#                     and of the per-round new/base ratios:
#     BENCH_BASELINE=/tmp/base/zmqkit-bench-pubsub BENCH_BIN=build-x/tests/bench/zmqkit-bench-pubsub \
#         BENCH_ROUNDS=5 bash scripts/bench-pubsub.sh --modes proxy,zmqkit
#
# Exit status: non-zero if the build fails or a run lost messages (or saw a sequence error).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
build="${BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-5}"
messages="${BENCH_MESSAGES:-500000}"
size="${BENCH_SIZE:-64}"
subscribers="${BENCH_SUBSCRIBERS:-1,4}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
cpu="${BENCH_CPU:-0}"
out="${BENCH_OUT:-$build/bench-results}"

bench_need_taskset bench-pubsub.sh

if [[ -n ${BENCH_BIN:-} ]]; then
    bench="$BENCH_BIN"
else
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
fi
baseline="${BENCH_BASELINE:-}"
for b in "$bench" ${baseline:+"$baseline"}; do
    [[ -x $b ]] || { echo "bench-pubsub.sh: $b is not an executable" >&2; exit 1; }
done
args=(--rounds "$rounds" --messages "$messages" --size "$size" --subscribers "$subscribers" "$@")

mkdir -p "$out"
: >"$out/pubsub-summary.txt"
bench_machine "$out"

# A/B summary: per placement and subscriber count, the medians over rounds of every
# "<key>=<number>" value of each variant's RESULT lines, and of the per-round new/base ratios.
# Input: "RESULT variant=V round=R placement=P size=.. subscribers=N ..." lines.
ab_summary() {
    awk "$BENCH_AWK_MEDIAN"'
    {
        delete kv
        for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2]; name[i] = p[1] }
        v = kv["variant"]; r = kv["round"]; g = kv["placement"] " subs=" kv["subscribers"]
        for (i = 2; i <= NF; i++) {
            key = name[i]
            if (key ~ /^(variant|round|placement|size|subscribers|messages|rounds|complete)$/)
                continue
            k = g SUBSEP key
            if (!(k in seen)) { seen[k] = 1; order[++nkeys] = k }
            vals[k, v] = vals[k, v] " " kv[key]
            at[k, v, r] = kv[key]
            if (r > rounds) rounds = r
        }
        if (kv["complete"] != 1) incomplete = incomplete " " v "/" r "/" g
    }
    END {
        printf "%-18s %-18s %12s %12s %10s\n", "placement", "value", "base", "new", "new/base"
        for (i = 1; i <= nkeys; i++) {
            k = order[i]; split(k, kp, SUBSEP)
            ratios = ""
            for (r = 1; r <= rounds; r++)
                if ((k, "base", r) in at && (k, "new", r) in at && at[k, "base", r] + 0 > 0)
                    ratios = ratios " " (at[k, "new", r] / at[k, "base", r])
            printf "%-18s %-18s %12.3f %12.3f %10.3f\n", kp[1], kp[2], median(vals[k, "base"]),
                median(vals[k, "new"]), median(ratios)
        }
        if (incomplete != "") print "INCOMPLETE (loss or sequence error):" incomplete
    }' "$@"
}

status=0
if [[ -n $baseline ]]; then
    ab="$out/pubsub-ab-results.txt"
    : >"$ab"
    one=(--rounds 1 --messages "$messages" --size "$size" --subscribers "$subscribers" "$@")
    for placement in $placements; do
        prefix=()
        [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
        log="$out/pubsub-ab-$placement.txt"
        : >"$log"
        before="$(uptime)"
        for ((round = 1; round <= rounds; round++)); do
            order=(base new)
            ((round % 2 == 0)) && order=(new base)
            for variant in "${order[@]}"; do
                bin="$bench"
                [[ $variant == base ]] && bin="$baseline"
                echo "== round $round/$rounds $variant ($placement, load $(cut -d' ' -f1-3 /proc/loadavg)): $bin ${one[*]}" |
                    tee -a "$log"
                run="$out/pubsub-ab-run.txt"
                if ! "${prefix[@]}" "$bin" "${one[@]}" >"$run" 2>&1; then
                    echo "bench-pubsub.sh: $variant run FAILED (see $log)" >&2
                    status=1
                fi
                cat "$run" >>"$log"
                grep '^round ' "$run" || true
                grep '^RESULT ' "$run" |
                    sed "s/^RESULT /RESULT variant=$variant round=$round placement=$placement /" >>"$ab" || true
            done
        done
        after="$(uptime)"
        echo "LOAD placement=$placement before=\"${before##*load average: }\"" \
            "after=\"${after##*load average: }\"" | tee -a "$log" >>"$out/pubsub-summary.txt"
    done
    echo
    echo "== A/B summary, medians over $rounds rounds ($ab)"
    ab_summary "$ab" | tee -a "$out/pubsub-summary.txt"
    grep '^LOAD' "$out/pubsub-summary.txt"
    exit "$status"
fi

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
