#!/usr/bin/env bash
# Builds the benchmarks (Release, in build-bench/) and runs them twice: pinned to one CPU
# (taskset -c 0) and unpinned. Method and results: docs/performance.md.
#
#   bash scripts/bench.sh                      # defaults: 5 rounds x 1000000 messages
#   BENCH_ROUNDS=3 BENCH_MESSAGES=200000 bash scripts/bench.sh
#   bash scripts/bench.sh --typed              # extra arguments go to zmqkit-bench-pipeline
#
# Environment:
#   BUILD_DIR        build directory (default: <repo>/build-bench)
#   BENCH_ROUNDS     pipeline rounds of raw/zmqkit, alternated (default 5)
#   BENCH_MESSAGES   messages per pipeline run (default 1000000)
#   BENCH_CPU        CPU for the pinned runs (default 0)
#   BENCH_OUT        directory for the logs (default: $BUILD_DIR/bench-results)
#
# Exit status: non-zero if the build fails or a pipeline run lost messages.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
build="${BUILD_DIR:-$root/build-bench}"
rounds="${BENCH_ROUNDS:-5}"
messages="${BENCH_MESSAGES:-1000000}"
cpu="${BENCH_CPU:-0}"
out="${BENCH_OUT:-$build/bench-results}"

launcher=()
if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

echo "== configure + build ($build, Release)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DZMQKIT_BUILD_TESTS=OFF -DZMQKIT_BUILD_EXAMPLES=OFF -DZMQKIT_BUILD_BENCHMARKS=ON \
    "${launcher[@]}" >/dev/null
ninja -C "$build" -j2 zmqkit-bench-codec zmqkit-bench-pipeline

codec="$build/tests/bench/zmqkit-bench-codec"
pipeline="$build/tests/bench/zmqkit-bench-pipeline"
codec_args=(--benchmark_min_time=0.2 --benchmark_repetitions=5
            --benchmark_display_aggregates_only=true)
pipeline_args=(--rounds "$rounds" --messages "$messages" "$@")

bench_need_taskset bench.sh

mkdir -p "$out"
bench_machine "$out"

status=0
for placement in pinned unpinned; do
    if [[ $placement == pinned ]]; then
        prefix=(taskset -c "$cpu")
        label="pinned (taskset -c $cpu)"
    else
        prefix=()
        label="unpinned"
    fi

    echo
    echo "== codec micro-benchmarks, $label"
    "${prefix[@]}" "$codec" "${codec_args[@]}" 2>&1 | tee "$out/codec-$placement.txt"

    echo
    echo "== pipeline PUSH->PULL tcp loopback, $label: ${pipeline_args[*]}"
    if ! "${prefix[@]}" "$pipeline" "${pipeline_args[@]}" 2>&1 | tee "$out/pipeline-$placement.txt"
    then
        echo "bench.sh: pipeline benchmark ($label) FAILED" >&2
        status=1
    fi
done

echo
echo "== summary (machine-readable)"
for placement in pinned unpinned; do
    grep -h '^RESULT ' "$out/pipeline-$placement.txt" | sed "s/^RESULT /RESULT placement=$placement /"
    grep -h 'BM_header_encode_decode_median' "$out/codec-$placement.txt" |
        awk -v p="$placement" '{print "CODEC placement=" p " encode_decode_median_ns=" $2}'
done
exit "$status"
