#!/usr/bin/env bash
# What --metrics-listen costs: zmqkit-proxy in stream and durable mode moving N messages from
# zmqkit-send to zmqkit-recv (durable: --wait-confirm producer, --sync none so the run is
# CPU-bound, acked consumer), with metrics off ("off") and with metrics served and scraped every second ("on").
# Variants alternate within each round (off, on / on, off), pinned (taskset -c 0: every process
# on one core) and unpinned; the summary is the median rate of each and the ratio on/off.
# Results: docs/performance.md ("Metrics").
#
#   bash scripts/bench-metrics.sh
#   BENCH_ROUNDS=3 BENCH_MESSAGES=200000 bash scripts/bench-metrics.sh
#
# Environment: BENCH_BIN (binaries, default build/bin), BENCH_MESSAGES (default 500000),
# BENCH_ROUNDS (default 5), BENCH_MODES (default "stream durable"), BENCH_PLACEMENTS
# (default "pinned unpinned"), BENCH_CPU (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${BENCH_BIN:-build/bin}"
messages="${BENCH_MESSAGES:-500000}"
rounds="${BENCH_ROUNDS:-5}"
modes="${BENCH_MODES:-stream durable}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
cpu="${BENCH_CPU:-0}"
for tool in zmqkit-proxy zmqkit-send zmqkit-recv; do
    [[ -x $bin/$tool ]] || { echo "bench-metrics.sh: no $bin/$tool (build first)" >&2; exit 1; }
done
work="$(mktemp -d /tmp/zmqkit-bench-metrics.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

fetch() { # url: one scrape, body discarded
    if command -v curl >/dev/null; then
        curl -sf -m 5 "$1" >/dev/null || true
    else
        python3 -c 'import sys,urllib.request as u; u.urlopen(sys.argv[1], timeout=5).read()' "$1" || true
    fi
}

# wait_for FILE REGEX: up to 20 s for a line in FILE; prints the first capture of sed -E.
wait_for() {
    local i
    for i in $(seq 400); do
        if grep -qE "$2" "$1" 2>/dev/null; then
            grep -oE "$2" "$1" | head -1
            return 0
        fi
        sleep 0.05
    done
    echo "bench-metrics.sh: no '$2' in $1:" >&2
    cat "$1" >&2
    return 1
}

# one MODE VARIANT PLACEMENT: prints messages per second.
one() {
    local mode=$1 variant=$2 placement=$3 dir pin=() proxy_args=() recv_args=() send_args=() rate
    dir="$(mktemp -d "$work/run.XXXXXX")"
    [[ $placement == pinned ]] && pin=(taskset -c "$cpu")
    proxy_args=(--mode "$mode" --backend "ipc://$dir/b")
    if [[ $mode == durable ]]; then
        proxy_args+=(--frontend "ipc://$dir/f" --spool "$dir/spool" --sync none)
        recv_args=(--ack)
        send_args=(--wait-confirm)
    else
        proxy_args+=(--frontend "ipc://$dir/f")
    fi
    [[ $variant == on ]] && proxy_args+=(--metrics-listen 127.0.0.1:0)
    "${pin[@]}" "$bin/zmqkit-proxy" "${proxy_args[@]}" 2>"$dir/proxy.log" &
    local proxy=$!
    pids+=("$proxy")
    wait_for "$dir/proxy.log" "backend bound" >/dev/null
    local scraper=""
    if [[ $variant == on ]]; then
        local url
        url="$(wait_for "$dir/proxy.log" "http://[^ ]+")"
        (while kill -0 "$proxy" 2>/dev/null; do fetch "$url"; sleep 1; done) &
        scraper=$!
        pids+=("$scraper")
    fi
    "${pin[@]}" "$bin/zmqkit-recv" "${recv_args[@]}" -c "$messages" --timeout 300s \
        ">ipc://$dir/b" >/dev/null 2>"$dir/recv.log" &
    local recv=$!
    local t0 t1
    t0=$(date +%s.%N)
    seq "$messages" | "${pin[@]}" "$bin/zmqkit-send" "${send_args[@]}" ">ipc://$dir/f" 2>"$dir/send.log"
    wait "$recv" || { echo "bench-metrics.sh: zmqkit-recv failed:" >&2; cat "$dir/recv.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    kill "$proxy" 2>/dev/null || true
    wait "$proxy" 2>/dev/null || true
    [[ -n $scraper ]] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; }
    rate=$(python3 -c "print(round($messages / ($t1 - $t0)))")
    rm -rf "$dir"
    echo "$rate"
}

results="$work/results.txt"
: >"$results"
for placement in $placements; do
    for mode in $modes; do
        for round in $(seq "$rounds"); do
            order="off on"
            (( round % 2 == 0 )) && order="on off"
            for variant in $order; do
                rate=$(one "$mode" "$variant" "$placement")
                echo "$placement $mode $variant round $round: $rate msg/s"
                echo "$placement $mode $variant $rate" >>"$results"
            done
        done
    done
done

echo
echo "median msg/s (N=$messages, $rounds rounds) and on/off ratio:"
python3 - "$results" <<'EOF'
import statistics, sys, collections
rates = collections.defaultdict(list)
for line in open(sys.argv[1]):
    placement, mode, variant, rate = line.split()
    rates[(placement, mode, variant)].append(int(rate))
for placement, mode in sorted({(p, m) for p, m, _ in rates}):
    off = statistics.median(rates[(placement, mode, "off")])
    on = statistics.median(rates[(placement, mode, "on")])
    print(f"  {placement:8} {mode:8} off {off:>9.0f}  on {on:>9.0f}  on/off {on / off:.3f}")
EOF
