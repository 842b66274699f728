# Pieces shared by scripts/bench*.sh. Sourced, not run:
#   source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

# bench_need_taskset NAME: exits with a message naming the script when taskset (util-linux),
# which the pinned runs need, is missing.
bench_need_taskset() {
    command -v taskset >/dev/null || { echo "$1: taskset (util-linux) not found" >&2; exit 1; }
}

# bench_machine LOG_DIR [LABEL VALUE]...: what a run was measured on (CPUs, CPU model, libzmq,
# the caller's own LABEL: VALUE lines, load) and where its logs go.
bench_machine() {
    local out="$1"
    shift
    echo
    echo "== machine"
    printf '%-8s%s\n' "nproc:" "$(nproc)"
    printf '%-8s%s\n' "cpu:" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    printf '%-8s%s\n' "libzmq:" "$(pkg-config --modversion libzmq 2>/dev/null || echo unknown)"
    while (($# >= 2)); do
        printf '%-8s%s\n' "$1:" "$2"
        shift 2
    done
    printf '%-8s%s\n' "uptime:" "$(uptime)"
    printf '%-8s%s\n' "logs:" "$out"
}

# awk's median(list): the median of a space-separated list of numbers (0 for an empty list), for
# the A/B summaries. Prepend it to an awk program: awk "$BENCH_AWK_MEDIAN"' { ... }'
BENCH_AWK_MEDIAN='
function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) {
        t = v[i] + 0
        for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]
        v[j + 1] = t
    }
    if (n == 0) return 0
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
'
