#!/usr/bin/env bash
# Consumer groups of the durable proxy (issue 18), in one run: (1) confirmed throughput with no
# consumer, 4 consumers on the default queue, and 4 consumers in 4 groups (every group gets every
# message); (2) 1 group against 4 groups reading the same N messages from a filled spool
# (msgs/s per group, the proxy's disk bytes read, cold and warm page cache); (3) the proxy's RSS
# with 10 groups holding a 1 GiB backlog (and with none, for reference). Parts 1 and 2 alternate
# their variants in every round, pinned (taskset -c 0 for everything) and unpinned. Method and
# results: docs/performance.md ("Consumer groups").
#
#   bash scripts/bench-groups.sh                           # ~20 min here with 1M messages
#   BENCH_MESSAGES=500000 BENCH_ROUNDS=3 bash scripts/bench-groups.sh
#
# Environment:
#   BUILD_DIR         build directory (default: <repo>/build-bench)
#   BENCH_NO_BUILD    set: use the binaries in BUILD_DIR as they are
#   BENCH_ROUNDS      rounds per part and placement (default 3)
#   BENCH_PLACEMENTS  "pinned unpinned" (default)
#   BENCH_PARTS       "throughput read rss" (default)
#   BENCH_SECONDS     throughput: measured seconds (default 5; plus 2 s warm-up)
#   BENCH_PRODUCERS   throughput: producers (default 50)
#   BENCH_MESSAGES    read: messages in the spool (default 1000000)
#   BENCH_SIZE        body bytes for throughput and read (default 64)
#   BENCH_CREDIT      consumers' reliable_receiver credit (default 500; see docs/performance.md)
#   BENCH_BYTES       rss: backlog (default 1GiB, of 1 KiB messages)
#   BENCH_RSS_GROUPS  rss: group counts to measure (default "10 0")
#   BENCH_DIR         where spools go: a real disk (default /var/tmp)
#   BENCH_CPU         CPU of the pinned runs (default 0)
#   BENCH_OUT         log directory (default: $BUILD_DIR/bench-results)
#
# Cold reads need root (echo 3 > /proc/sys/vm/drop_caches); without it only warm passes run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
build="${BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-3}"
placements="${BENCH_PLACEMENTS:-pinned unpinned}"
parts="${BENCH_PARTS:-throughput read rss}"
seconds="${BENCH_SECONDS:-5}"
producers="${BENCH_PRODUCERS:-50}"
messages="${BENCH_MESSAGES:-1000000}"
size="${BENCH_SIZE:-64}"
credit="${BENCH_CREDIT:-500}"
bytes="${BENCH_BYTES:-1GiB}"
rss_groups="${BENCH_RSS_GROUPS:-10 0}"
base="${BENCH_DIR:-/var/tmp}"
cpu="${BENCH_CPU:-0}"
out="${BENCH_OUT:-$build/bench-results}"
bench_need_taskset bench-groups.sh

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
summary="$out/groups-summary.txt"
: >"$summary"

# The value of key in the last RESULT line of a log (for pass=P when given).
result() { # log key [pass]
    grep '^RESULT ' "$1" | { if [[ -n ${3:-} ]]; then grep " pass=$3 "; else cat; fi; } | tail -1 |
        tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }' || true
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { printf '%s\n' $1 | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

bench_machine "$out" \
    disk "$(df -h "$base" | awk 'NR == 2 { print $1 " (" $2 ")" }') $(findmnt -n -o FSTYPE --target "$base")"

status=0
if [[ " $parts " == *" throughput "* ]]; then
    variants=(none queue4 groups4)
    for placement in $placements; do
        prefix=()
        [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
        declare -A rate=() cons=() per_group=() cpuus=()
        for r in $(seq 1 "$rounds"); do
            order=()
            for ((i = 0; i < 3; i++)); do order+=("${variants[$(((i + r - 1) % 3))]}"); done
            line="round $r/$rounds throughput $placement:"
            for v in "${order[@]}"; do
                args=()
                case $v in
                    queue4) args=(--consumers 4) ;;
                    groups4) args=(--consumers 4 --groups 4) ;;
                esac
                log="$out/groups-throughput-$v-$placement-$r.txt"
                "${prefix[@]}" "$bench" throughput --producers "$producers" --size "$size" \
                    --seconds "$seconds" --warmup 2 --credit "$credit" --dir "$base" "${args[@]}" \
                    >"$log" 2>&1 || { status=1; echo "run failed: $log" >&2; tail -5 "$log" >&2; }
                a="$(result "$log" msgs_per_s)"; c="$(result "$log" consumed_per_s)"
                g="$(result "$log" group_median_per_s)"; u="$(result "$log" cpu_us_per_msg)"
                rate[$v]+="${a:-0} "; cons[$v]+="${c:-0} "; per_group[$v]+="${g:-0} "
                cpuus[$v]+="${u:-0} "
                line+=" $v ${a:-0} confirmed/s (consumed ${c:-0}, per group ${g:-0}),"
            done
            echo "$line load $(cut -d' ' -f1 /proc/loadavg)"
        done
        none="$(med "${rate[none]}")"
        queue4="$(med "${rate[queue4]}")"
        for v in "${variants[@]}"; do
            m="$(med "${rate[$v]}")"
            echo "RESULT groups-throughput placement=$placement variant=$v confirmed_per_s=$m" \
                "consumed_per_s=$(med "${cons[$v]}") group_per_s=$(med "${per_group[$v]}")" \
                "cpu_us_per_msg=$(med "${cpuus[$v]}") vs_none=$(ratio "$m" "$none")" \
                "vs_queue4=$(ratio "$m" "$queue4")" \
                "rounds=$rounds producers=$producers size=$size" | tee -a "$summary"
        done
        unset rate cons per_group cpuus
    done
fi

if [[ " $parts " == *" read "* ]]; then
    for placement in $placements; do
        prefix=()
        [[ $placement == pinned ]] && prefix=(taskset -c "$cpu")
        declare -A grp=() tot=() rd=() ratio_=() rss=()
        for r in $(seq 1 "$rounds"); do
            order=(1 4)
            ((r % 2 == 0)) && order=(4 1)
            line="round $r/$rounds read $placement:"
            for g in "${order[@]}"; do
                log="$out/groups-read-$g-$placement-$r.txt"
                "${prefix[@]}" "$bench" groups-read --messages "$messages" --groups "$g" \
                    --size "$size" --credit "$credit" --dir "$base" >"$log" 2>&1 ||
                    { status=1; echo "run failed: $log" >&2; tail -5 "$log" >&2; }
                for pass in cold warm; do
                    grep -q "^RESULT .* pass=$pass " "$log" || continue
                    k="$g-$pass"
                    a="$(result "$log" group_median_per_s "$pass")"; b="$(result "$log" total_per_s "$pass")"
                    c="$(result "$log" disk_read_mib "$pass")"; d="$(result "$log" read_ratio "$pass")"
                    e="$(result "$log" peak_rss_mib "$pass")"
                    grp[$k]+="$a "; tot[$k]+="$b "; rd[$k]+="$c "; ratio_[$k]+="$d "; rss[$k]+="$e "
                    line+=" G=$g $pass ${a}/group ${b} all ${c} MiB read,"
                done
            done
            echo "$line load $(cut -d' ' -f1 /proc/loadavg)"
        done
        for pass in cold warm; do
            [[ -n ${grp[1-$pass]:-} ]] || continue
            one="$(med "${grp[1-$pass]}")"
            for g in 1 4; do
                k="$g-$pass"
                m="$(med "${grp[$k]}")"
                echo "RESULT groups-read placement=$placement pass=$pass groups=$g" \
                    "group_per_s=$m total_per_s=$(med "${tot[$k]}")" \
                    "disk_read_mib=$(med "${rd[$k]}") read_ratio=$(med "${ratio_[$k]}")" \
                    "peak_rss_mib=$(med "${rss[$k]}") per_group_vs_1=$(ratio "$m" "$one")" \
                    "rounds=$rounds messages=$messages size=$size" | tee -a "$summary"
            done
        done
        unset grp tot rd ratio_ rss
    done
fi

if [[ " $parts " == *" rss "* ]]; then
    for g in $rss_groups; do
        log="$out/groups-rss-$g.txt"
        echo "== proxy RSS with $g group(s) holding a $bytes backlog of 1 KiB messages, unpinned"
        "$bench" backlog-rss --groups "$g" --bytes "$bytes" --size 1024 --producers 8 \
            --window 256 --credit "$credit" --dir "$base" >"$log" 2>&1 ||
            { status=1; echo "run failed: $log" >&2; tail -5 "$log" >&2; }
        grep -v '^RESULT ' "$log" || true
        grep -h '^RESULT ' "$log" | tee -a "$summary" || true
    done
fi

echo
echo "== summary ($summary), load $(cut -d' ' -f1-3 /proc/loadavg)"
column -t "$summary" 2>/dev/null || cat "$summary"
exit "$status"
