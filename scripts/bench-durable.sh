#!/usr/bin/env bash
# The durable proxy against Redis Streams, in one run on one machine: confirmed throughput and
# confirm latency of zmqkit-proxy --mode durable --sync always (zmqkit-bench-durable throughput,
# N producer threads with a reliable_sender each) and of XADD on a redis-server with
# appendonly yes / appendfsync always (redis-benchmark, N clients, pipeline 64), 64 B and 1 KiB,
# N = 50 and 4, rounds alternated (zmqkit, redis / redis, zmqkit), pinned (taskset -c 0 for
# everything: proxy + producers, redis-server + redis-benchmark) and unpinned. Then the spool
# recovery time of 1 GiB and the proxy's RSS with a 1 GiB backlog. Method and results:
# docs/performance.md ("Durable proxy").
#
#   bash scripts/bench-durable.sh                    # everything (~15 min here)
#   BENCH_ROUNDS=1 BENCH_SECONDS=5 bash scripts/bench-durable.sh
#
# Environment:
#   BUILD_DIR         build directory (default: <repo>/build-bench)
#   BENCH_ROUNDS      rounds of zmqkit / redis per configuration (default 3)
#   BENCH_SECONDS     measured seconds of a zmqkit run (default 8; plus 2 s warm-up)
#   BENCH_SIZES       payload sizes (default "64 1024")
#   BENCH_CLIENTS     producers (zmqkit) = clients (redis) (default "50 4")
#   BENCH_PLACEMENTS  "pinned unpinned" (default)
#   BENCH_WINDOW      reliable_sender window, unconfirmed messages per producer (default 64,
#                     the same depth as redis-benchmark's pipeline)
#   BENCH_BATCH       producer batch sizes to compare, each a zmqkit variant (default "1":
#                     no batching; e.g. "1 64": unbatched and batches of 64 messages, one
#                     ZeroMQ message each, like redis-benchmark's 64 commands in one write)
#   BENCH_LINGER      reliable_sender linger in ms for batches (default 5)
#   BENCH_BASE        a directory with a baseline zmqkit-bench-durable and zmqkit-proxy (e.g.
#                     /tmp/base, built from main): adds variant "base" (unbatched) to every
#                     round, so that A/B runs alternate in one run
#   REDIS_REQUESTS_64, REDIS_REQUESTS_1024   XADDs per redis run with 50 clients (default
#                     1000000, 400000; scaled by clients / 50, at least 100000)
#   BENCH_DIR         where spools and the redis directory go: a real disk (default /var/tmp)
#   BENCH_CPU         CPU for the pinned runs (default 0)
#   BENCH_BYTES       recovery / backlog size (default 1GiB)
#   BENCH_PARTS       which parts to run (default "compare consume recovery rss")
#   BENCH_OUT         log directory (default: $BUILD_DIR/bench-results)
#   BENCH_NO_BUILD    set: do not configure or build, use the binaries in BUILD_DIR as they are
#                     (a build directory configured with tests on stays so)
#
# Needs root for apt-get (redis-server, redis-tools if missing) and for dropping the page cache
# (cold recovery). Exit status: non-zero if a build or a run failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
build="${BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-3}"
seconds="${BENCH_SECONDS:-8}"
sizes="${BENCH_SIZES:-64 1024}"
clients_list="${BENCH_CLIENTS:-50 4}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
window="${BENCH_WINDOW:-64}"
batches="${BENCH_BATCH:-1}"
linger="${BENCH_LINGER:-5}"
base_dir="${BENCH_BASE:-}"
base="${BENCH_DIR:-/var/tmp}"
cpu="${BENCH_CPU:-0}"
bytes="${BENCH_BYTES:-1GiB}"
parts="${BENCH_PARTS:-compare consume recovery rss}"
out="${BENCH_OUT:-$build/bench-results}"

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "== installing redis-server redis-tools"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
bench_need_taskset bench-durable.sh

if [[ -n ${BENCH_NO_BUILD:-} ]]; then
    echo "== using the binaries in $build as they are (BENCH_NO_BUILD)"
else
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    echo "== configure + build ($build, Release)"
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DZMQKIT_BUILD_TESTS=OFF -DZMQKIT_BUILD_EXAMPLES=OFF -DZMQKIT_BUILD_BENCHMARKS=ON \
        "${launcher[@]}" >/dev/null
    ninja -C "$build" -j2 zmqkit-bench-durable zmqkit-proxy
fi
bench="$build/tests/bench/zmqkit-bench-durable"

mkdir -p "$out"
redis_dir=""
redis_pid=""
stop_redis() {
    if [[ -n $redis_pid ]] && kill -0 "$redis_pid" 2>/dev/null; then
        kill "$redis_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$redis_pid" 2>/dev/null || true
    fi
    redis_pid=""
    [[ -n $redis_dir ]] && rm -rf "$redis_dir"
    redis_dir=""
}
trap stop_redis EXIT INT TERM

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "bench-durable.sh: no free port found" >&2
    return 1
}

# A fresh redis-server (new directory, empty AOF) per run, like the fresh spool per zmqkit run.
# Automatic AOF rewrites are off so that none runs in the middle of a measurement.
start_redis() { # prefix...
    redis_dir="$(mktemp -d "$base/zmqkit-bench-redis.XXXXXX")"
    redis_port="$(free_port)"
    "$@" redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$redis_dir" \
        --appendonly yes --appendfsync always --save '' --auto-aof-rewrite-percentage 0 \
        --daemonize no --logfile "$redis_dir/redis.log" &
    redis_pid=$!
    for _ in $(seq 1 100); do
        redis-cli -h 127.0.0.1 -p "$redis_port" PING 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
    done
    echo "bench-durable.sh: redis-server did not start; its log:" >&2
    cat "$redis_dir/redis.log" >&2 || true
    return 1
}

# CPU seconds (user + system) of a process so far; with "children": of its waited-for children.
proc_cpu() { # pid [children]
    local f
    f="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
    f="${f##*) }" # fields from 3 (state) on
    read -r -a v <<<"$f"
    local ticks
    if [[ ${2:-} == children ]]; then ticks=$((v[13] + v[14])); else ticks=$((v[11] + v[12])); fi
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# Prints "rps p50_ms p99_ms cpu_us_per_msg" (CPU of redis-server + redis-benchmark per XADD).
run_redis() { # size clients prefix...
    local size="$1" clients="$2"; shift 2
    local n_var="REDIS_REQUESTS_$size" n payload line
    n="${!n_var:-$([[ $size -le 64 ]] && echo 1000000 || echo 400000)}"
    # fewer clients are slower: scale the count so that a run takes seconds, not minutes
    n=$((n * clients / 50 > 100000 ? n * clients / 50 : 100000))
    payload="$(head -c "$size" /dev/zero | tr '\0' x)"
    trap stop_redis EXIT # this runs in a subshell ($(...)): stop its server whatever happens
    start_redis "$@"
    local server0 client0 server1 client1
    server0="$(proc_cpu "$redis_pid")"
    client0="$(proc_cpu "$BASHPID" children)"
    line="$(timeout 300 "$@" redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$clients" -P 64 \
        -n "$n" --csv XADD bench '*' f "$payload" | tail -1)"
    server1="$(proc_cpu "$redis_pid")"
    client1="$(proc_cpu "$BASHPID" children)"
    local aof
    aof="$(redis-cli -h 127.0.0.1 -p "$redis_port" INFO persistence | tr -d '\r' |
        awk -F: '/^aof_enabled/ { e = $2 } /^aof_last_write_status/ { s = $2 } END { print e "/" s }')"
    local len
    len="$(redis-cli -h 127.0.0.1 -p "$redis_port" XLEN bench)"
    stop_redis
    [[ $aof == 1/ok ]] || { echo "bench-durable.sh: redis AOF not enabled/ok ($aof)" >&2; return 1; }
    (( len >= n )) || { echo "bench-durable.sh: redis stream has $len entries, expected >= $n" >&2; return 1; }
    # "test","rps","avg","min","p50","p95","p99","max"
    echo "$line" | awk -F'","' -v cpu="$(awk -v a="$server0" -v b="$server1" -v c="$client0" \
        -v d="$client1" -v n="$n" 'BEGIN { printf "%.3f", (b - a + d - c) / n * 1e6 }')" \
        '{ gsub(/"/, "", $NF); print $2, $5, $7, cpu }'
}

# Prints "rps p50_ms p99_ms cpu_us_per_msg" and logs the full output. variant: bN (this
# build, batches of N) or base (the baseline binaries in $BENCH_BASE, unbatched).
run_zmqkit() { # variant size producers log prefix...
    local variant="$1" size="$2" producers="$3" log="$4"; shift 4
    local args=()
    local bin="$bench"
    if [[ $variant == base ]]; then
        bin="$base_dir/zmqkit-bench-durable"
        args=(--proxy "$base_dir/zmqkit-proxy")
    else
        args=(--batch "${variant#b}" --linger "$linger")
    fi
    echo "== $variant" >>"$log"
    "$@" "$bin" throughput --producers "$producers" --size "$size" --seconds "$seconds" \
        --warmup 2 --window "$window" --sync always --dir "$base" "${args[@]}" >>"$log" 2>&1 ||
        { echo "bench-durable.sh: zmqkit run failed, see $log" >&2; tail -20 "$log" >&2; return 1; }
    grep '^RESULT ' "$log" | tail -1 |
        awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
               cpu = v["cpu_us_per_msg"]
               if (cpu == "" && v["msgs_per_s"] > 0) cpu = (v["proxy_cpu"] + v["bench_cpu"]) / v["msgs_per_s"] * 1e6
               print v["msgs_per_s"], v["p50_ms"], v["p99_ms"], cpu + 0 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench_machine "$out" \
    disk "$(df -h "$base" | awk 'NR == 2 { print $1 " (" $2 ")" }') $(findmnt -n -o FSTYPE --target "$base")" \
    redis "$(redis-server --version | awk '{ print $3 }')"

status=0
if [[ " $parts " == *" compare "* ]]; then
    variants=()
    for b in $batches; do variants+=("b$b"); done
    if [[ -n $base_dir ]]; then
        [[ -x $base_dir/zmqkit-bench-durable && -x $base_dir/zmqkit-proxy ]] ||
            { echo "bench-durable.sh: BENCH_BASE=$base_dir lacks zmqkit-bench-durable / zmqkit-proxy" >&2; exit 1; }
        variants+=(base)
    fi
    variants+=(redis)
    nv=${#variants[@]}
    for size in $sizes; do
        for clients in $clients_list; do
            for placement in $placements; do
                prefix=()
                [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
                log="$out/durable-$size-$clients-$placement.txt"
                : >"$log"
                declare -A rps=() p50=() p99=() cpuus=()
                for r in $(seq 1 "$rounds"); do
                    # Rotate the order every round (and reverse it every other round) so that
                    # every variant sees the same neighbours on average.
                    order=()
                    for ((i = 0; i < nv; i++)); do order+=("${variants[$(((i + r - 1) % nv))]}"); done
                    if ((r % 2 == 0)); then
                        rev=(); for ((i = nv - 1; i >= 0; i--)); do rev+=("${order[$i]}"); done
                        order=("${rev[@]}")
                    fi
                    line="round $r/$rounds size=$size clients=$clients $placement:"
                    for who in "${order[@]}"; do
                        if [[ $who == redis ]]; then
                            res="$(run_redis "$size" "$clients" "${prefix[@]}")" || status=1
                            read -r a b c d <<<"${res:-0 0 0 0}"
                            echo "redis rps=$a p50_ms=$b p99_ms=$c cpu_us_per_msg=$d" >>"$log"
                        else
                            res="$(run_zmqkit "$who" "$size" "$clients" "$log" "${prefix[@]}")" || status=1
                            read -r a b c d <<<"${res:-0 0 0 0}"
                        fi
                        rps[$who]+="${a:-0} "; p50[$who]+="${b:-0} "; p99[$who]+="${c:-0} "
                        cpuus[$who]+="${d:-0} "
                        line+=" $who ${a:-0} msgs/s (p50 ${b:-0} ms, p99 ${c:-0} ms, ${d:-0} us CPU/msg),"
                    done
                    echo "$line load $(cut -d' ' -f1 /proc/loadavg)"
                done
                rm_="$(printf '%s\n' ${rps[redis]} | median)"
                for who in "${variants[@]}"; do
                    [[ $who == redis ]] && continue
                    zm="$(printf '%s\n' ${rps[$who]} | median)"
                    echo "RESULT compare size=$size clients=$clients placement=$placement" \
                        "variant=$who zmqkit_msgs_per_s=$zm" \
                        "zmqkit_p50_ms=$(printf '%s\n' ${p50[$who]} | median)" \
                        "zmqkit_p99_ms=$(printf '%s\n' ${p99[$who]} | median)" \
                        "zmqkit_cpu_us_per_msg=$(printf '%s\n' ${cpuus[$who]} | median)" \
                        "redis_msgs_per_s=$rm_ redis_p50_ms=$(printf '%s\n' ${p50[redis]} | median)" \
                        "redis_p99_ms=$(printf '%s\n' ${p99[redis]} | median)" \
                        "redis_cpu_us_per_msg=$(printf '%s\n' ${cpuus[redis]} | median)" \
                        "ratio=$(awk -v a="$zm" -v b="$rm_" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
                        "rounds=$rounds window=$window linger_ms=$linger" | tee -a "$out/durable-summary.txt"
                done
                unset rps p50 p99 cpuus
            done
        done
    done
fi

if [[ " $parts " == *" consume "* ]]; then
    # Ingest + consume: one reliable_receiver acking everything while 50 producers send.
    for size in $sizes; do
        log="$out/durable-consume-$size.txt"
        echo
        echo "== ingest + consume, size $size, 50 producers, 1 consumer, unpinned"
        "$bench" throughput --producers 50 --consumers 1 --size "$size" --seconds "$seconds" \
            --warmup 2 --window "$window" --sync always --dir "$base" 2>&1 | tee "$log" ||
            status=1
        grep -h '^RESULT ' "$log" >>"$out/durable-summary.txt" || true
    done
fi

if [[ " $parts " == *" recovery "* ]]; then
    for size in 1024 64; do
        echo
        echo "== recovery of a $bytes spool of $size-byte messages (open = recovery), unpinned"
        "$bench" recovery --bytes "$bytes" --size "$size" --runs 6 --dir "$base" 2>&1 |
            tee "$out/durable-recovery-$size.txt" || status=1
        grep -h '^RESULT ' "$out/durable-recovery-$size.txt" >>"$out/durable-summary.txt" || true
    done
fi

if [[ " $parts " == *" rss "* ]]; then
    echo
    echo "== proxy RSS with a $bytes backlog of 1 KiB messages, unpinned"
    "$bench" backlog-rss --bytes "$bytes" --size 1024 --producers 8 --window 256 \
        --dir "$base" 2>&1 | tee "$out/durable-rss.txt" || status=1
    grep -h '^RESULT ' "$out/durable-rss.txt" >>"$out/durable-summary.txt" || true
fi

echo
echo "== summary ($out/durable-summary.txt), load $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -f $out/durable-summary.txt ]] && cat "$out/durable-summary.txt"
exit "$status"
