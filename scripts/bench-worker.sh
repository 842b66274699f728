#!/usr/bin/env bash
# What a fork/exec per request costs: zmqkit-worker --exec cat against library lb_workers, behind
# the same zmqkit-proxy --mode lb, in one run.
#
#   exec  4 zmqkit-worker --exec cat processes (each request: posix_spawn of cat, its stdin and
#         stdout through pipes, reaped), 4 worker slots
#   lib   one zmqkit-bench-worker echo process with 4 lb_worker threads (echo in the handler),
#         4 worker slots: the same protocol, connections and dispatch, without the command
#
# A load generator (zmqkit-bench-worker load, lb_client::submit, every reply checked) measures,
# with the same workers, the round trip (submit to reply) with one request in flight (p50, p99)
# and then requests per second with BENCH_INFLIGHT outstanding. Per placement (pinned: taskset
# -c BENCH_CPU on every process, proxy included; unpinned) one proxy serves both paths; every
# round runs both, the order flipping each round (exec lib / lib exec). The summary gives the
# medians over rounds and the median of the per-round ratios lib/exec (req/s) and exec/lib (p50).
#
#   bash scripts/bench-worker.sh                         # build in build-bench (Release), 5 rounds
#   BUILD_DIR=build BENCH_ROUNDS=3 bash scripts/bench-worker.sh
#
# Environment:
#   BUILD_DIR          build directory (default: <repo>/build-bench)
#   BENCH_BIN_DIR      take zmqkit-proxy and zmqkit-worker from here and zmqkit-bench-worker from
#                      BENCH_BENCH_DIR instead of building (default: $BUILD_DIR/bin,
#                      $BUILD_DIR/tests/bench)
#   BENCH_ROUNDS       rounds per placement (default 5)
#   BENCH_WORKERS      worker slots on each path (default 4)
#   BENCH_EXEC_REQS    timed requests of an exec throughput run (default 2000; its round-trip
#                      run a tenth of it)
#   BENCH_LIB_REQS     timed requests of a lib throughput run (default 20000; round trips: a
#                      tenth)
#   BENCH_INFLIGHT     requests outstanding in the throughput runs (default 16)
#   BENCH_SIZE         request bytes (default 64)
#   BENCH_PLACEMENTS   "pinned unpinned" (default)
#   BENCH_CPU          CPU of the pinned runs (default 0)
#   BENCH_OUT          log directory (default: $BUILD_DIR/bench-results)
#
# Exit status: non-zero if the build fails or a run lost, failed or garbled a reply.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
build="${BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-5}"
slots="${BENCH_WORKERS:-4}"
exec_reqs="${BENCH_EXEC_REQS:-2000}"
lib_reqs="${BENCH_LIB_REQS:-20000}"
inflight="${BENCH_INFLIGHT:-16}"
size="${BENCH_SIZE:-64}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
cpu="${BENCH_CPU:-0}"
out="${BENCH_OUT:-$build/bench-results}"

bench_need_taskset bench-worker.sh

bin_dir="${BENCH_BIN_DIR:-}"
bench_dir="${BENCH_BENCH_DIR:-}"
if [[ -z $bin_dir ]]; then
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    if [[ ! -f $build/CMakeCache.txt ]]; then
        echo "== configure ($build, Release)"
        cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
            -DZMQKIT_BUILD_BENCHMARKS=ON "${launcher[@]}" >/dev/null
    fi
    echo "== build"
    cmake --build "$build" -j2 --target zmqkit-proxy zmqkit-worker zmqkit-bench-worker
    bin_dir="$build/bin"
    bench_dir="$build/tests/bench"
fi
bench_dir="${bench_dir:-$build/tests/bench}"
proxy_bin="$bin_dir/zmqkit-proxy"
worker_bin="$bin_dir/zmqkit-worker"
bench_bin="$bench_dir/zmqkit-bench-worker"
for b in "$proxy_bin" "$worker_bin" "$bench_bin"; do
    [[ -x $b ]] || { echo "bench-worker.sh: $b is not an executable" >&2; exit 1; }
done

mkdir -p "$out"
results="$out/worker-results.txt"
summary="$out/worker-summary.txt"
: >"$results"
bench_machine "$out" "build" "$(grep -m1 CMAKE_BUILD_TYPE: "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2 || echo "?")"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# wait_for_line FILE REGEX: the first capture of REGEX in FILE, polled for at most 20 s.
wait_for_line() {
    local deadline=$((SECONDS + 20)) found
    while ((SECONDS < deadline)); do
        found="$(sed -nE "s#.*$2.*#\1#p" "$1" | head -n 1)"
        [[ -n $found ]] && { echo "$found"; return 0; }
        sleep 0.05
    done
    echo "bench-worker.sh: no '$2' in $1" >&2
    cat "$1" >&2
    return 1
}

# stop_all PID...: SIGTERM, then wait (a zmqkit-worker drains: nothing is running by then).
stop_all() {
    kill -TERM "$@" 2>/dev/null || true
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
}

status=0
# run_path PLACEMENT ROUND PATH: the workers of PATH, the load, the workers stopped.
run_path() {
    local placement="$1" round="$2" path="$3" prefix=() worker_pids=() requests line
    [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
    if [[ $path == exec ]]; then
        for ((i = 0; i < slots; i++)); do
            "${prefix[@]}" "$worker_bin" -q --exec cat "$backend" 2>>"$work/workers.log" &
            worker_pids+=($!)
        done
        requests="$exec_reqs"
    else
        "${prefix[@]}" "$bench_bin" echo --backend "$backend" --workers "$slots" \
            2>>"$work/workers.log" &
        worker_pids+=($!)
        requests="$lib_reqs"
    fi
    local part n k
    for part in latency throughput; do
        if [[ $part == latency ]]; then n=$((requests / 10)) k=1; else n=$requests k=$inflight; fi
        if line="$("${prefix[@]}" "$bench_bin" load --frontend "$frontend" --control "$control" \
            --workers "$slots" --requests "$n" --warmup $((n / 10 + 1)) --inflight "$k" \
            --size "$size" 2>>"$work/load.log" | grep '^RESULT')"; then
            echo "$line part=$part inflight=$k path=$path placement=$placement round=$round" |
                tee -a "$results"
        else
            echo "bench-worker.sh: $path $part run failed ($placement, round $round)" >&2
            tail -n 5 "$work/load.log" >&2
            status=1
        fi
    done
    stop_all "${worker_pids[@]}"
}

for placement in $placements; do
    prefix=()
    [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
    echo
    echo "== $placement"
    : >"$work/proxy.log"
    "${prefix[@]}" "$proxy_bin" --mode lb --frontend "ipc://$work/frontend" \
        --backend "ipc://$work/backend" --control "ipc://$work/control" 2>"$work/proxy.log" &
    proxy=$!
    pids+=("$proxy")
    frontend="$(wait_for_line "$work/proxy.log" 'frontend bound (ipc://[^ ]+)')"
    backend="$(wait_for_line "$work/proxy.log" 'backend bound (ipc://[^ ]+)')"
    control="$(wait_for_line "$work/proxy.log" 'control bound (ipc://[^ ]+)')"
    for ((round = 1; round <= rounds; round++)); do
        if ((round % 2)); then order=(exec lib); else order=(lib exec); fi
        for path in "${order[@]}"; do
            run_path "$placement" "$round" "$path"
        done
    done
    stop_all "$proxy"
done

# Medians over rounds per placement and path, and of the per-round ratios: req/s from the
# throughput runs, p50 from the round-trip runs (one request in flight).
awk "$BENCH_AWK_MEDIAN"'
{
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    pl = kv["placement"]; r = kv["round"]; path = kv["path"]
    if (!(pl in seen)) { seen[pl] = 1; order[++n] = pl }
    if (kv["part"] == "throughput") {
        rate[pl, path] = rate[pl, path] " " kv["req_per_s"]; at_rate[pl, path, r] = kv["req_per_s"]
        tp50[pl, path] = tp50[pl, path] " " kv["p50_us"]
    } else {
        p50[pl, path] = p50[pl, path] " " kv["p50_us"]; at_p50[pl, path, r] = kv["p50_us"]
        p99[pl, path] = p99[pl, path] " " kv["p99_us"]
    }
    if (r > rounds) rounds = r
}
END {
    printf "%-9s %10s %10s %8s | %12s %12s %8s | %12s %12s\n", "placement", "exec req/s",
        "lib req/s", "lib/exec", "exec p50 us", "lib p50 us", "exec/lib", "exec p99 us", "lib p99 us"
    for (i = 1; i <= n; i++) {
        pl = order[i]; rr = ""; rp = ""
        for (r = 1; r <= rounds; r++) {
            if ((pl, "exec", r) in at_rate && (pl, "lib", r) in at_rate && at_rate[pl, "exec", r] > 0)
                rr = rr " " (at_rate[pl, "lib", r] / at_rate[pl, "exec", r])
            if ((pl, "exec", r) in at_p50 && (pl, "lib", r) in at_p50 && at_p50[pl, "lib", r] > 0)
                rp = rp " " (at_p50[pl, "exec", r] / at_p50[pl, "lib", r])
        }
        printf "%-9s %10.0f %10.0f %8.1f | %12.0f %12.0f %8.1f | %12.0f %12.0f\n", pl,
            median(rate[pl, "exec"]), median(rate[pl, "lib"]), median(rr),
            median(p50[pl, "exec"]), median(p50[pl, "lib"]), median(rp),
            median(p99[pl, "exec"]), median(p99[pl, "lib"])
    }
    print ""
    print "req/s: " '"$inflight"' " requests in flight; p50/p99: round trips with one in flight; medians over " rounds " round(s)"
}' "$results" | tee "$summary"
echo
echo "results: $results"
echo "summary: $summary"
exit "$status"
