#!/usr/bin/env bash
# Pipeline throughput, plaintext vs CURVE, in one run on one machine: zmqkit-bench-security
# (tests/bench/security_bench.cpp) measures source -> sink (direct) and source -> streamer ->
# sink (streamer) over tcp://127.0.0.1, 64 B and 1 KiB, plaintext and CURVE on every hop
# (authenticator allow lists holding the client keys, a ZAP domain per server side) alternated
# round by round, pinned (taskset -c 0: every thread on one CPU) and unpinned, and prints the
# medians and the ratio CURVE / plaintext. Method and results: docs/performance.md
# ("Security: CURVE vs plaintext").
#
#   bash scripts/bench-security.sh                          # ~3-4 min here
#   BENCH_ROUNDS=3 BENCH_MESSAGES=200000 bash scripts/bench-security.sh
#   bash scripts/bench-security.sh --contexts shared        # extra arguments go to the benchmark
#
# Environment:
#   BUILD_DIR             build directory (default: <repo>/build-secbench); configured (Release,
#                         benchmarks on) only if it has no CMakeCache.txt yet
#   BENCH_ROUNDS          rounds per path, size and mode (default 5)
#   BENCH_MESSAGES        timed messages per 64 B run (default 500000)
#   BENCH_MESSAGES_LARGE  timed messages per 1 KiB run (default 200000)
#   BENCH_SIZES           payload sizes (default 64,1024)
#   BENCH_PLACEMENTS      "pinned unpinned" (default)
#   BENCH_CPU             CPU for the pinned runs (default 0)
#   BENCH_OUT             log directory (default: $BUILD_DIR/bench-results)
#   BENCH_BIN             run this zmqkit-bench-security instead of building one
#
# Exit status: non-zero if the build fails or a run lost or garbled a message.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
build="${BUILD_DIR:-$root/build-secbench}"
rounds="${BENCH_ROUNDS:-5}"
messages="${BENCH_MESSAGES:-500000}"
messages_large="${BENCH_MESSAGES_LARGE:-200000}"
sizes="${BENCH_SIZES:-64,1024}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
cpu="${BENCH_CPU:-0}"
out="${BENCH_OUT:-$build/bench-results}"

bench_need_taskset bench-security.sh

if [[ -n ${BENCH_BIN:-} ]]; then
    bench="$BENCH_BIN"
else
    if [[ ! -f $build/CMakeCache.txt ]]; then
        launcher=()
        command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
        echo "== configure ($build, Release)"
        # (GCC 12's false -Wrestrict at -O3 is kept a warning by cmake/ZmqkitHelpers.cmake.)
        cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DZMQKIT_BUILD_BENCHMARKS=ON \
            "${launcher[@]}" >/dev/null
    fi
    echo "== build ($build)"
    cmake --build "$build" -j2 --target zmqkit-bench-security
    bench="$build/tests/bench/zmqkit-bench-security"
fi
[[ -x $bench ]] || { echo "bench-security.sh: $bench is not an executable" >&2; exit 1; }
args=(--rounds "$rounds" --messages "$messages" --messages-large "$messages_large"
      --sizes "$sizes" "$@")

mkdir -p "$out"
summary="$out/security-summary.txt"
: >"$summary"
bench_machine "$out"

status=0
for placement in $placements; do
    prefix=()
    [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
    log="$out/security-$placement.txt"
    echo
    echo "== $placement: ${prefix[*]} $bench ${args[*]}"
    before="$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "   uptime before: $(uptime)"
    if ! "${prefix[@]}" "$bench" "${args[@]}" 2>&1 | tee "$log"; then
        echo "bench-security.sh: $placement run FAILED (loss or error), see $log" >&2
        status=1
    fi
    after="$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "   uptime after:  $(uptime)"
    grep -h '^RESULT ' "$log" |
        sed "s|^RESULT |RESULT placement=$placement load_before=${before// /,} load_after=${after// /,} |" \
            >>"$summary" || true
done

echo
echo "== summary ($summary), load now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "medians of $rounds rounds; msgs/s; MB/s of bodies; ratio = CURVE / plaintext (paired: median of per-round ratios)"
awk '
    BEGIN {
        printf "%-9s %-9s %5s %11s %8s %11s %8s %7s %7s %-s\n", "placement", "path", "size",
               "plain", "MB/s", "curve", "MB/s", "ratio", "paired", "load before / after"
    }
    /^RESULT / {
        delete kv
        for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
        printf "%-9s %-9s %5s %11s %8s %11s %8s %7s %7s %s / %s%s\n", kv["placement"], kv["path"],
               kv["size"], kv["plain_median"], kv["plain_mbps"], kv["curve_median"],
               kv["curve_mbps"], kv["ratio"], kv["paired_ratio_median"], kv["load_before"],
               kv["load_after"], kv["complete"] == "1" ? "" : "  INCOMPLETE"
    }' "$summary"
exit "$status"
