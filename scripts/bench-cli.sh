#!/usr/bin/env bash
# zmqkit-send | zmqkit-recv against nngcat doing the same PUSH/PULL pipe: 64-byte messages over
# ipc, rounds alternated (zmqkit, nngcat, zmqkit, ...), pinned (taskset -c 0) and unpinned.
# Time = from starting the receiver to its exit after the last message (process start-up
# included for both). Prints medians and the ratio zmqkit / nngcat.
#
#   bash scripts/bench-cli.sh        # BENCH_ROUNDS=3 BENCH_MESSAGES=1000000 NNG_MESSAGES=200000
#
# nngcat cannot read lines from stdin (--file - is one message), so it sends one 64-byte
# payload --count times with --interval 0; it is slow enough that NNG_MESSAGES defaults to
# 200,000 to keep the run short: the rate (msgs/s), not the total, is compared.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
rounds="${BENCH_ROUNDS:-3}"
n="${BENCH_MESSAGES:-1000000}"
nng_n="${NNG_MESSAGES:-200000}"

command -v nngcat >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nng-utils >/dev/null
cmake --build "$build" --target zmqkit-send zmqkit-recv >/dev/null
send="$build/bin/zmqkit-send"
recv="$build/bin/zmqkit-recv"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "%064d\n", i }' > "$tmp/lines"
payload="$(printf '%064d' 7)"

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%d", n / (b - a) }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

run_zmqkit() { # prefix...
    local t0 t1
    t0="$(now)"
    "$@" "$recv" --pull "@ipc://$tmp/z.sock" -c "$n" -f raw --timeout 120s > /dev/null &
    local pid=$!
    "$@" "$send" --push ">ipc://$tmp/z.sock" --wait-peers 1 < "$tmp/lines"
    wait "$pid"
    t1="$(now)"
    rate "$n" "$t0" "$t1"
}

run_nngcat() { # prefix...
    local t0 t1
    t0="$(now)"
    "$@" nngcat --pull0 --listen "ipc://$tmp/n.sock" --count "$nng_n" --raw > /dev/null &
    local pid=$!
    "$@" nngcat --push0 --async --dial "ipc://$tmp/n.sock" --data "$payload" --count "$nng_n" --interval 0
    wait "$pid"
    t1="$(now)"
    rate "$nng_n" "$t0" "$t1"
}

for placement in pinned unpinned; do
    prefix=()
    [ "$placement" = pinned ] && prefix=(taskset -c 0)
    z=(); g=()
    for r in $(seq 1 "$rounds"); do
        z+=("$(run_zmqkit "${prefix[@]}")")
        g+=("$(run_nngcat "${prefix[@]}")")
        echo "round $r/$rounds $placement: zmqkit ${z[-1]} msgs/s, nngcat ${g[-1]} msgs/s"
    done
    zm="$(printf '%s\n' "${z[@]}" | median)"
    gm="$(printf '%s\n' "${g[@]}" | median)"
    echo "RESULT placement=$placement zmqkit_median=$zm nngcat_median=$gm ratio=$(awk -v a="$zm" -v b="$gm" 'BEGIN { printf "%.2f", a / b }') messages=$n nng_messages=$nng_n rounds=$rounds"
done
