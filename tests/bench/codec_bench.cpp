// Micro-benchmarks of the envelope codec (Google Benchmark).
//
// The "typical header" is what an application sends for a new conversation: a fresh id,
// correlation id == id, the creation timestamp, a type and a content type.
// Target (docs/performance.md): header encode + decode <= 200 ns.
#include <zmqkit/codec.hpp>
#include <zmqkit/header.hpp>
#include <zmqkit/message_id.hpp>
#include <zmqkit/metrics.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdlib>
#include <iostream>

namespace {

// Large enough for the typical header (about 70 bytes).
constexpr std::size_t buffer_size = 256;

zmqkit::header typical_header() {
    zmqkit::header h = zmqkit::header::fresh(); // fresh id, timestamp, correlation id = id
    h.correlation_id = h.id;
    h.type = "order.created";
    h.content_type = zmqkit::content_type_msgpack;
    return h;
}

// Encodes h into buf, aborting the benchmark if the buffer were too small.
std::size_t encode_into(const zmqkit::header& h, std::array<std::byte, buffer_size>& buf) {
    const std::size_t n = zmqkit::encoded_size(h);
    if (n > buf.size()) {
        std::cerr << "codec_bench: header of " << n << " bytes exceeds the buffer\n";
        std::abort();
    }
    return zmqkit::encode_header(h, buf.data());
}

void BM_message_id_generate(benchmark::State& state) {
    for (auto _ : state) {
        auto id = zmqkit::message_id::generate();
        benchmark::DoNotOptimize(id);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_message_id_generate);

// encoded_size + encode_header of the same header, into a reused buffer.
// What a hot path pays per observation of a latency histogram (16 buckets), and per counter add
// for comparison: the metrics a device keeps whether or not they are served.
void BM_histogram_observe(benchmark::State& state) {
    zmqkit::metrics_registry registry;
    auto& h = registry.get_histogram("zmqkit_bench_seconds", "");
    double v = 0.0001;
    for (auto _ : state) {
        h.observe(v);
        v = v < 5 ? v * 1.7 : 0.0001; // walk the buckets
    }
}
BENCHMARK(BM_histogram_observe);

void BM_counter_add(benchmark::State& state) {
    zmqkit::metrics_registry registry;
    auto& c = registry.get_counter("zmqkit_bench_total", "");
    for (auto _ : state) {
        c.add();
    }
    benchmark::DoNotOptimize(c.value());
}
BENCHMARK(BM_counter_add);

void BM_header_encode(benchmark::State& state) {
    const zmqkit::header h = typical_header();
    std::array<std::byte, buffer_size> buf{};
    std::size_t n = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(h);
        n = encode_into(h, buf);
        benchmark::DoNotOptimize(buf.data());
        benchmark::ClobberMemory();
    }
    state.counters["header_bytes"] = static_cast<double>(n);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_header_encode);

// decode_header of the bytes above into a reused header (string capacity reused).
void BM_header_decode(benchmark::State& state) {
    const zmqkit::header h = typical_header();
    std::array<std::byte, buffer_size> buf{};
    const std::size_t n = encode_into(h, buf);
    zmqkit::header out;
    for (auto _ : state) {
        benchmark::DoNotOptimize(buf.data());
        auto st = zmqkit::decode_header(buf.data(), n, out);
        benchmark::DoNotOptimize(st);
        benchmark::DoNotOptimize(out);
        if (!st.ok()) {
            state.SkipWithError("decode failed");
            break;
        }
    }
    if (!(out == h)) {
        state.SkipWithError("decoded header differs from the encoded one");
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_header_decode);

// The target: encoded_size + encode_header + decode_header of the typical header.
void BM_header_encode_decode(benchmark::State& state) {
    const zmqkit::header h = typical_header();
    std::array<std::byte, buffer_size> buf{};
    zmqkit::header out;
    for (auto _ : state) {
        benchmark::DoNotOptimize(h);
        const std::size_t n = encode_into(h, buf);
        benchmark::DoNotOptimize(buf.data());
        auto st = zmqkit::decode_header(buf.data(), n, out);
        benchmark::DoNotOptimize(st);
        benchmark::DoNotOptimize(out);
    }
    if (!(out == h)) {
        state.SkipWithError("decoded header differs from the encoded one");
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_header_encode_decode);

// What socket::send + socket::recv do per message on the header: a fresh id and timestamp
// (header::stamp), then encode + decode. Reported for context; not the target.
void BM_header_stamp_encode_decode(benchmark::State& state) {
    zmqkit::header h = typical_header();
    std::array<std::byte, buffer_size> buf{};
    zmqkit::header out;
    for (auto _ : state) {
        h.id = {};
        h.correlation_id = {};
        h.stamp();
        const std::size_t n = encode_into(h, buf);
        benchmark::DoNotOptimize(buf.data());
        auto st = zmqkit::decode_header(buf.data(), n, out);
        benchmark::DoNotOptimize(st);
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_header_stamp_encode_decode);

// header::follow_up: fresh id + timestamp, correlation/causation/traceparent from the cause.
// Argument 0: the cause has no traceparent; 1: it carries a W3C traceparent (55 bytes, so the
// copy allocates).
void BM_header_follow_up(benchmark::State& state) {
    zmqkit::header cause = typical_header();
    if (state.range(0) != 0) {
        cause.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    }
    for (auto _ : state) {
        auto h = zmqkit::header::follow_up(cause);
        benchmark::DoNotOptimize(h);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_header_follow_up)->ArgName("traceparent")->Arg(0)->Arg(1);

} // namespace

BENCHMARK_MAIN();
