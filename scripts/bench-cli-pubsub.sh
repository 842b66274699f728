#!/usr/bin/env bash
# The pub-sub pipe from the shell against the library pair, in one run: zmqkit-send --pub |
# zmqkit-recv --sub (two processes, lines in, lines out, sequence numbers checked) against the
# library's publisher -> subscriber (zmqkit-bench-pubsub --modes kit-direct: threads of one
# process). Both over tcp://127.0.0.1, 64-byte payloads, one subscriber, no loss allowed (the
# CLI run must deliver every line: --hwm 0 on both ends). Rounds alternate CLI and library,
# pinned (taskset -c 0) and unpinned; prints medians and the ratio CLI / library.
#
#   bash scripts/bench-cli-pubsub.sh        # BENCH_ROUNDS=5 BENCH_MESSAGES=300000
#
# Time for the CLI = from starting zmqkit-recv to its exit after the last line (process start-up
# and the subscription handshake included); the library's rate is the benchmark's own (timed
# publications only), so the ratio leans against the CLI by its start-up cost.
#
# Environment: BUILD_DIR (the test build, default <repo>/build, for the tools), BENCH_BUILD_DIR
# (Release benchmarks, default <repo>/build-bench), BENCH_ROUNDS, BENCH_MESSAGES, BENCH_CPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
bench_build="${BENCH_BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-5}"
n="${BENCH_MESSAGES:-300000}"
cpu="${BENCH_CPU:-0}"

cmake --build "$build" --target zmqkit-send zmqkit-recv >/dev/null
if [ ! -f "$bench_build/CMakeCache.txt" ]; then
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S "$root" -B "$bench_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DZMQKIT_BUILD_TESTS=OFF -DZMQKIT_BUILD_EXAMPLES=OFF -DZMQKIT_BUILD_BENCHMARKS=ON \
        "${launcher[@]}" >/dev/null
fi
cmake --build "$bench_build" --target zmqkit-bench-pubsub >/dev/null
send="$build/bin/zmqkit-send"
recv="$build/bin/zmqkit-recv"
lib="$bench_build/tests/bench/zmqkit-bench-pubsub"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "%064d\n", i }' > "$tmp/lines"

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%d", n / (b - a) }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run_cli() { # prefix...
    local t0 t1 port got
    port="$(free_port)"
    t0="$(now)"
    "$@" "$recv" --sub "tcp://127.0.0.1:$port" -c "$n" -f raw --stats --timeout 120s \
        > /dev/null 2> "$tmp/recv.err" &
    local pid=$!
    "$@" "$send" --pub --hwm 0 --wait-peers 1 --timeout 120s "@tcp://127.0.0.1:$port" \
        < "$tmp/lines" 2> "$tmp/send.err"
    wait "$pid" || { cat "$tmp/recv.err" "$tmp/send.err" >&2; return 1; }
    t1="$(now)"
    got="$(sed -n 's/.* gaps=\([0-9]*\) missing=\([0-9]*\).*/\1 \2/p' "$tmp/recv.err")"
    [ "$got" = "0 0" ] || { echo "CLI run reported gaps/missing: $got" >&2; return 1; }
    rate "$n" "$t0" "$t1"
}

run_lib() { # prefix...
    "$@" "$lib" --modes kit-direct --subscribers 1 --rounds 1 --messages "$n" --size 64 |
        sed -n 's/^RESULT .* kit_direct_median=\([0-9]*\) .*complete=1$/\1/p'
}

for placement in pinned unpinned; do
    prefix=()
    [ "$placement" = pinned ] && prefix=(taskset -c "$cpu")
    c=(); l=()
    for r in $(seq 1 "$rounds"); do
        if [ $((r % 2)) -eq 1 ]; then
            c+=("$(run_cli "${prefix[@]}")"); l+=("$(run_lib "${prefix[@]}")")
        else
            l+=("$(run_lib "${prefix[@]}")"); c+=("$(run_cli "${prefix[@]}")")
        fi
        [ -n "${l[-1]}" ] || { echo "library run incomplete" >&2; exit 1; }
        echo "round $r/$rounds $placement: cli ${c[-1]} msgs/s, library ${l[-1]} msgs/s"
    done
    cm="$(printf '%s\n' "${c[@]}" | median)"
    lm="$(printf '%s\n' "${l[@]}" | median)"
    echo "RESULT placement=$placement cli_median=$cm library_median=$lm ratio=$(awk -v a="$cm" -v b="$lm" 'BEGIN { printf "%.2f", a / b }') messages=$n rounds=$rounds"
done
