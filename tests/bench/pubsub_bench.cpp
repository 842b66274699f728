// zmqkit-bench-pubsub — pub-sub fan-out throughput over tcp loopback, in one process.
//
//   (a) direct  raw libzmq PUB -> SUB x N                      [topic][payload]
//   (b) proxy   raw libzmq PUB -> zmq_proxy(XSUB, XPUB) -> SUB x N
//   (c) zmqkit  zmqkit publisher -> zmqkit forwarder -> zmqkit subscriber x N
//               [topic][header+body]: envelope, sequence number and publisher id per message,
//               every message's sequence checked by the subscriber's gap tracker
//
// --diagnostics adds paths that mix the two, to tell what costs what:
//   env-proxy   raw PUB -> zmq_proxy -> raw SUB, carrying zmqkit's wire bytes (a header with a
//               sequence number and the publisher id, encoded once): the cost of the bytes
//   kit-proxy   zmqkit publisher -> zmq_proxy -> zmqkit subscriber: (c) without zmqkit's forwarder
//   raw-fwd     raw PUB -> zmqkit forwarder -> raw SUB: the forwarder with plain payloads
//
// Every component runs on a thread of its own in this process (publisher, proxy or forwarder,
// one per subscriber), all sharing one zmq context (--io-threads I/O threads, default 1), all
// over tcp://127.0.0.1. For every subscriber count the paths run alternately for --rounds rounds
// (the order reverses every round). A run: fresh sockets; the subscribers subscribe to
// everything and the publisher sends warm-up messages (topic "warm") every millisecond until
// every subscriber has seen one, so no subscription is still in flight ("slow joiner"); then
// it sends --messages messages on topic "bench" as fast as it can. Throughput = messages /
// (the last arrival at the slowest subscriber - the publisher's start): publications per
// second delivered to every subscriber.
//
// Lossless: PUB / XPUB drop on a full queue, so every HWM is --hwm (default 0 = no limit) on
// every socket of every path; the zmqkit forwarder counts slow-subscriber drops, which must
// stay 0. Every subscriber must receive every message (the zmqkit subscriber also checks that
// the sequence numbers are 1..N with no gap or duplicate); receivers wait at most
// --timeout-ms for each message, so a loss ends a run instead of hanging it, and the program
// then prints LOSS and exits with status 1.
//
// Also measured: the process's CPU time (getrusage: every thread, publisher, device,
// subscribers and libzmq's I/O thread) per publication during the timed part. On a shared
// machine it varies much less than msgs/s; proxy/this is the CPU cost ratio. And, for the
// zmqkit ends, the C++ heap allocations (operator new, counted per thread by this program's
// replacement of it) per publication on the subscriber threads and on the publisher thread
// during the timed part: the receive path reuses one publication, so this should be 0.
//
// Output: one line per run, a table per subscriber count (medians, the ratio zmqkit/proxy of
// the medians, paired ratios) and "RESULT key=value ..." lines for scripts.
#include <zmqkit/codec.hpp>
#include <zmqkit/message.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/pubsub.hpp>

#include <zmq.hpp>

#include <pthread.h>
#include <sys/resource.h>

#include <new>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

// Heap allocations through operator new, counted per thread (a plain thread_local: no
// synchronisation, one increment per allocation). Only the counting is added to the default
// behaviour (malloc/free).
thread_local std::uint64_t thread_allocations = 0;

void* counted_allocation(std::size_t size) {
    ++thread_allocations;
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}

void* counted_aligned_allocation(std::size_t size, std::align_val_t align) {
    ++thread_allocations;
    const auto a = static_cast<std::size_t>(align);
    void* p = std::aligned_alloc(a, (size + a - 1) / a * a);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    return p;
}

void* operator new(std::size_t size) {
    return counted_allocation(size);
}
void* operator new[](std::size_t size) {
    return counted_allocation(size);
}
void* operator new(std::size_t size, std::align_val_t align) {
    return counted_aligned_allocation(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
    return counted_aligned_allocation(size, align);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace zp = zmqkit::patterns;

constexpr std::string_view bench_topic = "bench";
constexpr std::string_view warm_topic = "warm";

struct options {
    int rounds = 5;
    std::uint64_t messages = 500'000;
    std::size_t size = 64;
    std::vector<int> subscribers{1, 4};
    std::chrono::milliseconds timeout{5000};
    int hwm = 0; // 0 = no limit: PUB and XPUB drop at the HWM, this keeps every path lossless
    int io_threads = 1;
    bool diagnostics = false;
    std::vector<std::string> only; // --modes: run these paths only (profiling)
};

enum class mode { direct, proxy, zmqkit, env_proxy, kit_proxy, raw_fwd, kit_direct };
constexpr std::size_t mode_count = 7;

std::string_view mode_name(mode m) {
    switch (m) {
    case mode::direct:
        return "direct";
    case mode::proxy:
        return "proxy";
    case mode::zmqkit:
        return "zmqkit";
    case mode::env_proxy:
        return "env-proxy";
    case mode::kit_proxy:
        return "kit-proxy";
    case mode::raw_fwd:
        return "raw-fwd";
    case mode::kit_direct:
        return "kit-direct";
    }
    return "?";
}

// Which ends and which device a mode uses.
enum class device { none, zmq_proxy, forwarder };
struct shape {
    bool kit_ends = false;     // zmqkit publisher and subscribers (else raw PUB / SUB)
    bool envelope_raw = false; // raw ends carrying zmqkit's wire bytes
    device middle = device::none;
};

shape shape_of(mode m) {
    switch (m) {
    case mode::direct:
        return {false, false, device::none};
    case mode::proxy:
        return {false, false, device::zmq_proxy};
    case mode::zmqkit:
        return {true, false, device::forwarder};
    case mode::env_proxy:
        return {false, true, device::zmq_proxy};
    case mode::kit_proxy:
        return {true, false, device::zmq_proxy};
    case mode::raw_fwd:
        return {false, false, device::forwarder};
    case mode::kit_direct:
        return {true, false, device::none};
    }
    return {};
}

struct run_result {
    std::uint64_t sent = 0;
    std::vector<std::uint64_t> received;      // per subscriber
    std::uint64_t sequence_errors = 0;        // zmqkit ends: out-of-order numbers, gaps, duplicates
    std::uint64_t forwarder_drops = 0;        // zmqkit forwarder: slow-subscriber drops
    std::uint64_t subscriber_allocations = 0; // zmqkit ends: operator new calls on the
                                              // subscriber threads while receiving the timed
                                              // publications (all subscribers together)
    std::uint64_t publisher_allocations = 0;  // zmqkit ends: on the publisher thread, timed part
    double seconds = 0;
    double cpu_seconds = 0; // user + system CPU time of the whole process (every thread)
    std::string error;

    [[nodiscard]] bool complete(std::uint64_t n) const {
        if (!error.empty() || sent != n || sequence_errors != 0 || forwarder_drops != 0) {
            return false;
        }
        return std::all_of(received.begin(), received.end(),
                           [n](std::uint64_t r) { return r == n; });
    }
    [[nodiscard]] std::uint64_t min_received() const {
        return received.empty() ? 0 : *std::min_element(received.begin(), received.end());
    }
    [[nodiscard]] double rate() const {
        return seconds > 0 ? static_cast<double>(min_received()) / seconds : 0.0;
    }
    // CPU microseconds per publication (all threads: publisher, device, subscribers, libzmq
    // I/O): what a publication costs, less sensitive to a busy machine than msgs/s.
    [[nodiscard]] double cpu_us() const {
        return sent > 0 ? cpu_seconds * 1e6 / static_cast<double>(sent) : 0.0;
    }
};

double process_cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto sec = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return sec(u.ru_utime) + sec(u.ru_stime);
}

void usage(std::ostream& out) {
    out << "usage: zmqkit-bench-pubsub [--rounds N] [--messages N] [--size BYTES]\n"
           "                           [--subscribers 1,4] [--timeout-ms MS] [--hwm N]\n"
           "                           [--io-threads N] [--diagnostics]\n"
           "  --rounds N        rounds of every path, alternated (default 5)\n"
           "  --messages N      publications per run (default 500000)\n"
           "  --size BYTES      payload size (default 64)\n"
           "  --subscribers L   subscriber counts, comma separated (default 1,4)\n"
           "  --timeout-ms MS   longest wait for one message (default 5000)\n"
           "  --hwm N           SNDHWM and RCVHWM of every socket (default 0 = unlimited: PUB\n"
           "                    and XPUB drop at the HWM, so a bounded HWM may lose messages)\n"
           "  --io-threads N    libzmq I/O threads of the one shared context (default 1)\n"
           "  --diagnostics     also run env-proxy (zmqkit's wire bytes through zmq_proxy, raw\n"
           "                    ends), kit-proxy (zmqkit ends, zmq_proxy), raw-fwd (raw ends,\n"
           "                    zmqkit forwarder) and kit-direct (zmqkit publisher straight to\n"
           "                    zmqkit subscribers: the library pair)\n"
           "  --modes LIST      run only these paths, e.g. zmqkit (for profiling; the\n"
           "                    ratios then need both proxy and zmqkit)\n";
}

template <class T> std::optional<T> parse_number(std::string_view text) {
    T value{};
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

std::optional<options> parse_args(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::optional<std::string_view> {
            if (i + 1 >= argc) {
                std::cerr << "zmqkit-bench-pubsub: " << arg << " needs a value\n";
                return std::nullopt;
            }
            return std::string_view(argv[++i]);
        };
        auto number = [&](auto& target, long long min) -> bool {
            auto v = value();
            if (!v) {
                return false;
            }
            auto n = parse_number<std::remove_reference_t<decltype(target)>>(*v);
            if (!n || static_cast<long long>(*n) < min) {
                std::cerr << "zmqkit-bench-pubsub: bad value '" << *v << "' for " << arg << "\n";
                return false;
            }
            target = *n;
            return true;
        };
        if (arg == "--help" || arg == "-h") {
            usage(std::cout);
            std::exit(0);
        } else if (arg == "--diagnostics") {
            opt.diagnostics = true;
        } else if (arg == "--modes") {
            auto v = value();
            if (!v) {
                return std::nullopt;
            }
            std::string_view rest = *v;
            while (!rest.empty()) {
                const auto comma = rest.find(',');
                opt.only.emplace_back(rest.substr(0, comma));
                rest =
                    comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
        } else if (arg == "--rounds") {
            if (!number(opt.rounds, 1)) {
                return std::nullopt;
            }
        } else if (arg == "--messages") {
            if (!number(opt.messages, 1)) {
                return std::nullopt;
            }
        } else if (arg == "--size") {
            if (!number(opt.size, 0)) {
                return std::nullopt;
            }
        } else if (arg == "--hwm") {
            if (!number(opt.hwm, 0)) {
                return std::nullopt;
            }
        } else if (arg == "--io-threads") {
            if (!number(opt.io_threads, 1)) {
                return std::nullopt;
            }
        } else if (arg == "--timeout-ms") {
            int ms = 0;
            if (!number(ms, 1)) {
                return std::nullopt;
            }
            opt.timeout = std::chrono::milliseconds(ms);
        } else if (arg == "--subscribers") {
            auto v = value();
            if (!v) {
                return std::nullopt;
            }
            opt.subscribers.clear();
            std::string_view rest = *v;
            while (!rest.empty()) {
                const auto comma = rest.find(',');
                auto n = parse_number<int>(rest.substr(0, comma));
                if (!n || *n < 1) {
                    std::cerr << "zmqkit-bench-pubsub: bad value '" << *v << "' for " << arg
                              << "\n";
                    return std::nullopt;
                }
                opt.subscribers.push_back(*n);
                rest =
                    comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
            if (opt.subscribers.empty()) {
                return std::nullopt;
            }
        } else {
            std::cerr << "zmqkit-bench-pubsub: unknown argument '" << arg << "'\n";
            usage(std::cerr);
            return std::nullopt;
        }
    }
    return opt;
}

// ---- devices ------------------------------------------------------------------------------

// zmq_proxy(XSUB, XPUB) on a thread of its own, stopped through zmq_proxy_steerable's control
// socket. The frontend and backend bind tcp://127.0.0.1:*.
class raw_proxy {
public:
    raw_proxy(zmq::context_t& ctx, int hwm) : ctx_(ctx) {
        control_name_ = "inproc://bench-proxy-control-" + std::to_string(++instances_);
        control_.emplace(ctx_, zmq::socket_type::pair);
        control_->bind(control_name_);
        std::promise<std::pair<std::string, std::string>> ready;
        auto endpoints = ready.get_future();
        thread_ = std::thread([this, hwm, &ready] {
            zmq::socket_t xsub(ctx_, zmq::socket_type::xsub);
            zmq::socket_t xpub(ctx_, zmq::socket_type::xpub);
            zmq::socket_t control(ctx_, zmq::socket_type::pair);
            for (auto* s : {&xsub, &xpub}) {
                s->set(zmq::sockopt::linger, 0);
                s->set(zmq::sockopt::sndhwm, hwm);
                s->set(zmq::sockopt::rcvhwm, hwm);
            }
            xsub.bind("tcp://127.0.0.1:*");
            xpub.bind("tcp://127.0.0.1:*");
            control.connect(control_name_);
            ready.set_value(
                {xsub.get(zmq::sockopt::last_endpoint), xpub.get(zmq::sockopt::last_endpoint)});
            zmq::proxy_steerable(xsub, xpub, zmq::socket_ref(), control);
        });
        std::tie(frontend_, backend_) = endpoints.get();
    }
    ~raw_proxy() {
        (void)control_->send(zmq::str_buffer("TERMINATE"), zmq::send_flags::none);
        thread_.join();
    }
    raw_proxy(const raw_proxy&) = delete;
    raw_proxy& operator=(const raw_proxy&) = delete;

    [[nodiscard]] const std::string& frontend() const { return frontend_; }
    [[nodiscard]] const std::string& backend() const { return backend_; }

private:
    static inline std::atomic<int> instances_{0};
    zmq::context_t& ctx_;
    std::string control_name_;
    std::optional<zmq::socket_t> control_;
    std::thread thread_;
    std::string frontend_;
    std::string backend_;
};

zmqkit::socket_options kit_sockets(const options& opt, zmqkit::metrics_registry& registry,
                                   const std::string& name) {
    zmqkit::socket_options o;
    o.send_hwm = opt.hwm;
    o.recv_hwm = opt.hwm;
    o.linger = 0ms;
    o.send_timeout = opt.timeout;
    o.name = name;
    o.registry = &registry;
    return o;
}

// ---- one run --------------------------------------------------------------------------------

struct shared_state {
    std::atomic<int> ready{0};       // subscribers that have seen a warm-up message
    std::atomic<bool> failed{false}; // a subscriber gave up: stop warming up
};

// A raw SUB: counts the messages whose first frame is the bench topic. Frames per message are
// not checked against a layout beyond that; every message must have `frames` frames.
void raw_subscriber(zmq::socket_t& sub, const options& opt, std::size_t frames, shared_state& state,
                    std::uint64_t& received, clock_type::time_point& last, std::string& error) {
    zmq::message_t frame;
    bool warm = false;
    std::uint64_t count = 0;
    while (count < opt.messages) {
        if (!sub.recv(frame, zmq::recv_flags::none)) {
            error = "raw subscriber: no message within the timeout";
            break;
        }
        const bool is_bench = frame.size() == bench_topic.size() &&
                              std::memcmp(frame.data(), bench_topic.data(), frame.size()) == 0;
        std::size_t n = 1;
        while (frame.more()) {
            (void)sub.recv(frame, zmq::recv_flags::none);
            ++n;
        }
        if (!is_bench) {
            if (!warm) {
                warm = true;
                state.ready.fetch_add(1);
            }
            continue;
        }
        if (n != frames) {
            error = "raw subscriber: a message with " + std::to_string(n) + " frames";
            break;
        }
        ++count;
    }
    last = clock_type::now();
    received = count;
    if (!error.empty()) {
        state.failed = true;
    }
}

// A zmqkit subscriber: envelope decoded, sequence numbers tracked (gaps, duplicates); the
// bench topic's numbers must be exactly 1, 2, 3 ... Receives into one reused publication (the
// hot-path form). Counts its thread's heap allocations from the first bench publication on.
void kit_subscriber(zp::subscriber& sub, const options& opt, shared_state& state,
                    std::uint64_t& received, std::uint64_t& sequence_errors,
                    std::uint64_t& allocations, clock_type::time_point& last, std::string& error) {
    bool warm = false;
    std::uint64_t count = 0;
    std::uint64_t bad = 0;
    std::uint64_t allocations_before = 0;
    zp::publication p;
    while (count < opt.messages) {
        if (!sub.recv(p, opt.timeout)) {
            error = "zmqkit subscriber: no message within the timeout";
            break;
        }
        if (p.topic != bench_topic) {
            if (!warm) {
                warm = true;
                state.ready.fetch_add(1);
            }
            continue;
        }
        if (count == 0) {
            allocations_before = thread_allocations;
        }
        ++count;
        bad += p.message.header().sequence != count ? 1U : 0U;
    }
    last = clock_type::now();
    allocations = thread_allocations - allocations_before;
    received = count;
    const auto st = sub.stats().sequences;
    sequence_errors = bad + st.gaps + st.duplicates + st.late;
    if (!error.empty()) {
        state.failed = true;
    }
}

run_result run(zmq::context_t& ctx, const options& opt, mode m, int subscribers,
               const std::string& payload, const std::string& envelope_bytes) {
    const shape sh = shape_of(m);
    run_result result;
    result.received.assign(static_cast<std::size_t>(subscribers), 0);
    zmqkit::metrics_registry registry; // per run: fresh counters

    // The device, if any. Publishers connect to its frontend, subscribers to its backend.
    std::optional<raw_proxy> proxy;
    std::optional<zp::forwarder> fwd;
    std::string pub_endpoint; // where the publisher binds (direct) or connects
    std::string sub_endpoint;
    if (sh.middle == device::zmq_proxy) {
        proxy.emplace(ctx, opt.hwm);
        pub_endpoint = proxy->frontend();
        sub_endpoint = proxy->backend();
    } else if (sh.middle == device::forwarder) {
        zp::forwarder_options fo;
        fo.frontend = "tcp://127.0.0.1:*";
        fo.backend = "tcp://127.0.0.1:*";
        fo.name = "bench_forwarder";
        fo.sockets = kit_sockets(opt, registry, "bench_forwarder");
        fo.registry = &registry;
        fwd.emplace(ctx, fo);
        fwd->start();
        pub_endpoint = fwd->frontend_endpoints().at(0);
        sub_endpoint = fwd->backend_endpoints().at(0);
    }

    // The publisher.
    std::optional<zmq::socket_t> raw_pub;
    std::optional<zp::publisher> kit_pub;
    if (sh.kit_ends) {
        zp::publisher_options po;
        po.endpoints = sh.middle == device::none ? "@tcp://127.0.0.1:*" : ">" + pub_endpoint;
        po.name = "bench_publisher";
        po.sockets = kit_sockets(opt, registry, "bench_publisher");
        kit_pub.emplace(ctx, po);
        if (sh.middle == device::none) {
            sub_endpoint = kit_pub->endpoints().at(0);
        }
    } else {
        raw_pub.emplace(ctx, zmq::socket_type::pub);
        raw_pub->set(zmq::sockopt::linger, 0);
        raw_pub->set(zmq::sockopt::sndhwm, opt.hwm);
        if (sh.middle == device::none) {
            raw_pub->bind("tcp://127.0.0.1:*");
            sub_endpoint = raw_pub->get(zmq::sockopt::last_endpoint);
        } else {
            raw_pub->connect(pub_endpoint);
        }
    }

    // The subscribers, each on a thread of its own.
    shared_state state;
    std::vector<std::unique_ptr<zmq::socket_t>> raw_subs;
    std::vector<std::unique_ptr<zp::subscriber>> kit_subs;
    for (int i = 0; i < subscribers; ++i) {
        if (sh.kit_ends) {
            zp::subscriber_options so;
            so.endpoints = ">" + sub_endpoint;
            // A name (metric label) each, as separate consumers have: same-named components
            // share their counters, whose atomic increments then bounce one cache line
            // between the subscribers' threads.
            so.name = "bench_subscriber_" + std::to_string(i);
            so.sockets = kit_sockets(opt, registry, so.name);
            so.registry = &registry;
            kit_subs.push_back(std::make_unique<zp::subscriber>(ctx, so));
            kit_subs.back()->subscribe("");
        } else {
            auto s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::sub);
            s->set(zmq::sockopt::linger, 0);
            s->set(zmq::sockopt::rcvhwm, opt.hwm);
            s->set(zmq::sockopt::rcvtimeo, static_cast<int>(opt.timeout.count()));
            s->set(zmq::sockopt::subscribe, "");
            s->connect(sub_endpoint);
            raw_subs.push_back(std::move(s));
        }
    }
    std::vector<clock_type::time_point> last(static_cast<std::size_t>(subscribers));
    std::vector<std::string> errors(static_cast<std::size_t>(subscribers));
    std::vector<std::uint64_t> seq_errors(static_cast<std::size_t>(subscribers), 0);
    std::vector<std::uint64_t> allocations(static_cast<std::size_t>(subscribers), 0);
    const std::size_t raw_frames = 2; // [topic][payload] or [topic][header+payload]
    std::vector<std::thread> threads;
    for (int i = 0; i < subscribers; ++i) {
        const auto k = static_cast<std::size_t>(i);
        if (sh.kit_ends) {
            threads.emplace_back([&, k] {
                pthread_setname_np(pthread_self(), "bench-kit-sub"); // for perf and profilers
                kit_subscriber(*kit_subs[k], opt, state, result.received[k], seq_errors[k],
                               allocations[k], last[k], errors[k]);
            });
        } else {
            threads.emplace_back([&, k] {
                pthread_setname_np(pthread_self(), "bench-raw-sub");
                raw_subscriber(*raw_subs[k], opt, raw_frames, state, result.received[k], last[k],
                               errors[k]);
            });
        }
    }

    // The publisher, on this thread: warm-up until every subscriber is connected and
    // subscribed, then the timed messages.
    const std::string_view body = sh.envelope_raw ? std::string_view(envelope_bytes) : payload;
    zmqkit::header kit_header;
    auto raw_send = [&](std::string_view topic) {
        (void)raw_pub->send(zmq::const_buffer(topic.data(), topic.size()),
                            zmq::send_flags::sndmore);
        return raw_pub->send(zmq::const_buffer(body.data(), body.size()), zmq::send_flags::none)
            .has_value();
    };
    // The zmqkit publisher's hot path: one header reused, a fresh id per send, the body copied
    // once into the frame as zmq_send copies it (publisher::send(topic, header&, body)).
    auto kit_send = [&](std::string_view topic) {
        kit_header.id = {};
        kit_header.correlation_id = {};
        return kit_pub->send(topic, kit_header, body);
    };
    const auto warm_deadline = clock_type::now() + 10s;
    while (state.ready.load() < subscribers && !state.failed) {
        if (clock_type::now() > warm_deadline) {
            result.error = "warm-up: not every subscriber joined within 10 s";
            break;
        }
        (void)(sh.kit_ends ? kit_send(warm_topic) : raw_send(warm_topic));
        std::this_thread::sleep_for(1ms);
    }
    const auto start = clock_type::now();
    const double cpu_start = process_cpu_seconds();
    const auto publisher_allocations_before = thread_allocations;
    if (result.error.empty()) {
        std::uint64_t sent = 0;
        if (sh.kit_ends) {
            while (sent < opt.messages && kit_send(bench_topic)) {
                ++sent;
            }
        } else {
            while (sent < opt.messages && raw_send(bench_topic)) {
                ++sent;
            }
        }
        result.sent = sent;
    }
    result.publisher_allocations = thread_allocations - publisher_allocations_before;
    for (auto& t : threads) {
        t.join();
    }
    result.cpu_seconds = process_cpu_seconds() - cpu_start;
    const auto end = *std::max_element(last.begin(), last.end());
    result.seconds = std::chrono::duration<double>(end - start).count();
    for (std::size_t k = 0; k < errors.size(); ++k) {
        result.sequence_errors += seq_errors[k];
        result.subscriber_allocations += allocations[k];
        if (result.error.empty() && !errors[k].empty()) {
            result.error = errors[k];
        }
    }
    if (fwd) {
        result.forwarder_drops = fwd->slow_subscriber_drops();
        fwd->stop();
    }
    return result;
}

// ---- statistics and output ------------------------------------------------------------------

double median(std::vector<double> v) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const std::size_t mid = v.size() / 2;
    return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}
double min_of(const std::vector<double>& v) {
    return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}
double max_of(const std::vector<double>& v) {
    return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) {
        s.insert(0, width - s.size(), ' ');
    }
    return s;
}

struct series {
    int subscribers = 0;
    std::vector<std::vector<double>> rates = std::vector<std::vector<double>>(mode_count);
    std::vector<std::vector<double>> cpu = std::vector<std::vector<double>>(mode_count);
    std::vector<double> paired; // zmqkit / proxy of the same round
    bool complete = true;

    [[nodiscard]] const std::vector<double>& of(mode m) const {
        return rates[static_cast<std::size_t>(m)];
    }
    [[nodiscard]] double ratio(mode a, mode b) const {
        const double d = median(of(b));
        return d > 0 ? median(of(a)) / d : 0;
    }
};

// CPU per message of a over b's (medians): b's throughput per CPU relative to a's.
double cpu_ratio(const series& s, mode a, mode b) {
    const double cb = median(s.cpu[static_cast<std::size_t>(b)]);
    return cb > 0 ? median(s.cpu[static_cast<std::size_t>(a)]) / cb : 0;
}

void print_summary(const options& opt, const std::vector<mode>& modes,
                   const std::vector<series>& all) {
    std::cout << "\nPub-sub over tcp://127.0.0.1, " << opt.size << " B, " << opt.messages
              << " publications x " << opt.rounds << " rounds per path, msgs/s delivered to "
              << "every subscriber (hwm " << opt.hwm << ", io threads " << opt.io_threads
              << ")\n\n";
    for (const auto& s : all) {
        std::cout << "subscribers " << s.subscribers << "\n"
                  << pad("path", 10) << pad("median", 11) << pad("min", 11) << pad("max", 11)
                  << pad("/proxy", 8) << pad("cpu us/msg", 12) << pad("proxy/this", 12) << "\n";
        for (const auto m : modes) {
            const auto& r = s.of(m);
            std::cout << pad(std::string(mode_name(m)), 10) << pad(fixed(median(r), 0), 11)
                      << pad(fixed(min_of(r), 0), 11) << pad(fixed(max_of(r), 0), 11)
                      << pad(fixed(s.ratio(m, mode::proxy), 3), 8)
                      << pad(fixed(median(s.cpu[static_cast<std::size_t>(m)]), 3), 12)
                      << pad(fixed(cpu_ratio(s, mode::proxy, m), 3), 12) << "\n";
        }
        std::cout << "zmqkit/proxy " << fixed(s.ratio(mode::zmqkit, mode::proxy), 3)
                  << " (paired median " << fixed(median(s.paired), 3) << ")"
                  << (s.complete ? "" : "  LOSS") << "\n\n";
    }
    for (const auto& s : all) {
        std::cout << "RESULT size=" << opt.size << " subscribers=" << s.subscribers
                  << " messages=" << opt.messages << " rounds=" << opt.rounds;
        for (const auto m : modes) {
            std::string key(mode_name(m));
            std::replace(key.begin(), key.end(), '-', '_');
            std::cout << " " << key << "_median=" << fixed(median(s.of(m)), 0) << " " << key
                      << "_cpu_us=" << fixed(median(s.cpu[static_cast<std::size_t>(m)]), 3);
        }
        std::cout << " ratio=" << fixed(s.ratio(mode::zmqkit, mode::proxy), 3)
                  << " paired_ratio=" << fixed(median(s.paired), 3)
                  << " proxy_vs_direct=" << fixed(s.ratio(mode::proxy, mode::direct), 3)
                  << " cpu_ratio=" << fixed(cpu_ratio(s, mode::proxy, mode::zmqkit), 3)
                  << " complete=" << (s.complete ? 1 : 0) << "\n";
    }
}

// zmqkit's wire bytes for env-proxy: the header a zmqkit publisher sends (fresh id and
// timestamp, sequence number, publisher id), encoded once, then the payload.
std::string envelope_of(const std::string& payload) {
    zmqkit::header h = zmqkit::header::fresh();
    h.sequence = 1;
    h.publisher_id = zmqkit::message_id::generate();
    return zmqkit::encode_header(h) + payload;
}

} // namespace

int main(int argc, char** argv) {
    const auto parsed = parse_args(argc, argv);
    if (!parsed) {
        return 2;
    }
    const options& opt = *parsed;
    try {
        zmq::context_t ctx(opt.io_threads);
        std::string payload(opt.size, '\0');
        for (std::size_t i = 0; i < opt.size; ++i) {
            payload[i] = static_cast<char>('a' + static_cast<int>(i % 26));
        }
        const std::string envelope = envelope_of(payload);
        std::cout << "frames per publication: raw [topic " << bench_topic.size() << " B][payload "
                  << payload.size() << " B]; zmqkit [topic " << bench_topic.size()
                  << " B][header+body " << envelope.size() << " B]\n";
        std::vector<mode> modes{mode::direct, mode::proxy, mode::zmqkit};
        if (opt.diagnostics) {
            modes.insert(modes.end(),
                         {mode::env_proxy, mode::kit_proxy, mode::raw_fwd, mode::kit_direct});
        }
        if (!opt.only.empty()) {
            modes.clear();
            for (const mode m : {mode::direct, mode::proxy, mode::zmqkit, mode::env_proxy,
                                 mode::kit_proxy, mode::raw_fwd, mode::kit_direct}) {
                if (std::find(opt.only.begin(), opt.only.end(), mode_name(m)) != opt.only.end()) {
                    modes.push_back(m);
                }
            }
            if (modes.empty()) {
                std::cerr << "zmqkit-bench-pubsub: --modes names no known path\n";
                return 2;
            }
        }
        std::vector<series> all;
        for (const int n : opt.subscribers) {
            series s;
            s.subscribers = n;
            all.push_back(std::move(s));
        }
        bool complete = true;
        for (int round = 1; round <= opt.rounds; ++round) {
            auto order = modes;
            if (round % 2 == 0) {
                std::reverse(order.begin(), order.end());
            }
            for (auto& s : all) {
                std::vector<double> rate(mode_count, 0);
                for (const mode m : order) {
                    const auto r = run(ctx, opt, m, s.subscribers, payload, envelope);
                    const bool ok = r.complete(opt.messages);
                    s.complete = s.complete && ok;
                    complete = complete && ok;
                    rate[static_cast<std::size_t>(m)] = r.rate();
                    s.rates[static_cast<std::size_t>(m)].push_back(r.rate());
                    s.cpu[static_cast<std::size_t>(m)].push_back(r.cpu_us());
                    std::cout << "round " << round << "/" << opt.rounds << "  subs "
                              << s.subscribers << "  " << pad(std::string(mode_name(m)), 9)
                              << pad(fixed(r.rate(), 0), 10) << " msgs/s  " << fixed(r.seconds, 3)
                              << " s  cpu " << fixed(r.cpu_us(), 3) << " us/msg  sent " << r.sent
                              << "  received";
                    for (const auto v : r.received) {
                        std::cout << " " << v;
                    }
                    if (r.sequence_errors != 0) {
                        std::cout << "  sequence errors " << r.sequence_errors;
                    }
                    if (r.forwarder_drops != 0) {
                        std::cout << "  forwarder drops " << r.forwarder_drops;
                    }
                    if (shape_of(m).kit_ends) {
                        std::cout << "  heap allocs/msg: subscriber "
                                  << fixed(static_cast<double>(r.subscriber_allocations) /
                                               static_cast<double>(std::max<std::uint64_t>(
                                                   1, r.min_received() * r.received.size())),
                                           4)
                                  << " publisher "
                                  << fixed(static_cast<double>(r.publisher_allocations) /
                                               static_cast<double>(
                                                   std::max<std::uint64_t>(1, r.sent)),
                                           4);
                    }
                    if (!ok) {
                        std::cout << "  LOSS";
                    }
                    if (!r.error.empty()) {
                        std::cout << "  ERROR " << r.error;
                    }
                    std::cout << std::endl;
                }
                const double p = rate[static_cast<std::size_t>(mode::proxy)];
                s.paired.push_back(p > 0 ? rate[static_cast<std::size_t>(mode::zmqkit)] / p : 0);
            }
        }
        print_summary(opt, modes, all);
        if (!complete) {
            std::cerr << "zmqkit-bench-pubsub: FAILED: some messages were lost or out of order\n";
            return 1;
        }
    } catch (const std::exception& e) {
        std::cerr << "zmqkit-bench-pubsub: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
