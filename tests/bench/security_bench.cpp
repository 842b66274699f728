// zmqkit-bench-security — pipeline throughput over tcp loopback, plaintext vs CURVE.
//
//   direct    patterns::source (PUSH, connects) -> patterns::sink (PULL, binds)
//   streamer  source (connects) -> patterns::streamer (frontend and backend bind) -> sink
//             (connects to the backend)
//
// For each path and payload size, plaintext (A) and CURVE (B) run alternately for --rounds
// rounds (A B in odd rounds, B A in even ones). CURVE means every hop is encrypted: the binding
// side is socket_security::curve_server with a ZAP domain of its own ("sink", "frontend",
// "backend"), whose authenticator policy is an allow list holding only the connecting side's
// public key; the connecting side is socket_security::curve_client with its own certificate.
//
// By default each role (source, streamer, sink) has its own zmq::context_t — so its own libzmq
// I/O thread, as separate processes would — and the binding roles' contexts have an
// authenticator; --contexts shared puts everything in one context (one I/O thread doing every
// hop's encryption and decryption). Each run uses fresh sockets on ephemeral ports: the
// connection and the CURVE handshake happen in a warm-up of --warmup messages that must all
// arrive; then a sender thread sends --messages (64 B: --messages; larger sizes:
// --messages-large) while the receiver counts them. Throughput = messages / (last arrival -
// sender start). Every wait is bounded by --timeout-ms; every run must deliver every message
// with the expected body size, otherwise the program exits with status 1.
//
// Output: per-run lines, a table of medians (msgs/s and MB/s of bodies) and ratios CURVE /
// plaintext, and one "RESULT key=value ..." line per path and size for scripts.
#include <zmqkit/message.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/pipeline.hpp>
#include <zmqkit/security.hpp>
#include <zmqkit/socket.hpp>

#include <zmq.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct options {
    int rounds = 5;
    std::uint64_t messages = 500'000;       // per run, sizes <= 64 bytes
    std::uint64_t messages_large = 200'000; // per run, sizes > 64 bytes
    std::uint64_t warmup = 1'000;
    std::vector<std::size_t> sizes{64, 1024};
    std::vector<std::string> paths{"direct", "streamer"};
    std::chrono::milliseconds timeout{5000};
    bool shared_context = false;
};

enum class path_kind { direct, streamer };
enum class security_kind { plain, curve };

std::string_view security_name(security_kind s) {
    return s == security_kind::plain ? "plaintext" : "curve";
}

struct run_result {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t bad_size = 0;
    double seconds = 0;
    std::string error;

    [[nodiscard]] bool complete(std::uint64_t expected) const {
        return error.empty() && sent == expected && received == expected && bad_size == 0;
    }
    [[nodiscard]] double rate() const {
        return seconds > 0 ? static_cast<double>(received) / seconds : 0.0;
    }
};

void usage(std::ostream& out) {
    out << "usage: zmqkit-bench-security [--rounds N] [--messages N] [--messages-large N]\n"
           "                             [--warmup N] [--sizes 64,1024] [--paths direct,streamer]\n"
           "                             [--contexts role|shared] [--timeout-ms MS]\n"
           "  --rounds N          rounds of plaintext and CURVE, alternated (default 5)\n"
           "  --messages N        timed messages per run for sizes <= 64 B (default 500000)\n"
           "  --messages-large N  timed messages per run for larger sizes (default 200000)\n"
           "  --warmup N          warm-up messages per run, all must arrive (default 1000)\n"
           "  --sizes LIST        payload sizes in bytes (default 64,1024)\n"
           "  --paths LIST        direct (source->sink) and/or streamer (source->streamer->sink)\n"
           "  --contexts MODE     role: a zmq context (I/O thread) per role, as separate\n"
           "                      processes (default); shared: one context for everything\n"
           "  --timeout-ms MS     longest wait for one message to arrive or be queued (5000)\n";
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

std::vector<std::string_view> split(std::string_view text) {
    std::vector<std::string_view> items;
    while (!text.empty()) {
        const auto comma = text.find(',');
        items.push_back(text.substr(0, comma));
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    }
    return items;
}

std::optional<options> parse_args(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            usage(std::cout);
            std::exit(0);
        }
        if (i + 1 >= argc) {
            std::cerr << "zmqkit-bench-security: unknown argument or missing value: " << arg
                      << "\n";
            usage(std::cerr);
            return std::nullopt;
        }
        const std::string_view v = argv[++i];
        auto bad = [&] {
            std::cerr << "zmqkit-bench-security: bad value '" << v << "' for " << arg << "\n";
            return std::nullopt;
        };
        auto count = [&](std::uint64_t& target, std::uint64_t min) {
            const auto n = parse_number<std::uint64_t>(v);
            if (!n || *n < min) {
                return false;
            }
            target = *n;
            return true;
        };
        if (arg == "--rounds") {
            const auto n = parse_number<int>(v);
            if (!n || *n < 1) {
                return bad();
            }
            opt.rounds = *n;
        } else if (arg == "--messages") {
            if (!count(opt.messages, 1)) {
                return bad();
            }
        } else if (arg == "--messages-large") {
            if (!count(opt.messages_large, 1)) {
                return bad();
            }
        } else if (arg == "--warmup") {
            if (!count(opt.warmup, 1)) {
                return bad();
            }
        } else if (arg == "--timeout-ms") {
            const auto n = parse_number<int>(v);
            if (!n || *n < 1) {
                return bad();
            }
            opt.timeout = std::chrono::milliseconds(*n);
        } else if (arg == "--sizes") {
            opt.sizes.clear();
            for (const auto item : split(v)) {
                const auto n = parse_number<std::size_t>(item);
                if (!n) {
                    return bad();
                }
                opt.sizes.push_back(*n);
            }
            if (opt.sizes.empty()) {
                return bad();
            }
        } else if (arg == "--paths") {
            opt.paths.clear();
            for (const auto item : split(v)) {
                if (item != "direct" && item != "streamer") {
                    return bad();
                }
                opt.paths.emplace_back(item);
            }
            if (opt.paths.empty()) {
                return bad();
            }
        } else if (arg == "--contexts") {
            if (v != "role" && v != "shared") {
                return bad();
            }
            opt.shared_context = v == "shared";
        } else {
            std::cerr << "zmqkit-bench-security: unknown argument '" << arg << "'\n";
            usage(std::cerr);
            return std::nullopt;
        }
    }
    return opt;
}

// The contexts, authenticators and certificates every run shares. The authenticators (one per
// context that has a CURVE server) are created before any socket binds and destroyed before
// their contexts close.
struct environment {
    zmqkit::metrics_registry auth_registry;
    std::vector<std::unique_ptr<zmq::context_t>> contexts;
    zmq::context_t* source_ctx = nullptr;
    zmq::context_t* device_ctx = nullptr;
    zmq::context_t* sink_ctx = nullptr;
    std::vector<std::unique_ptr<zmqkit::authenticator>> authenticators;
    std::mutex log_mutex;
    std::vector<std::string> log_lines; // denials etc.: none expected
    zmqkit::certificate sink_cert = zmqkit::certificate::generate();
    zmqkit::certificate streamer_cert = zmqkit::certificate::generate();
    zmqkit::certificate producer = zmqkit::certificate::generate();
    zmqkit::certificate consumer = zmqkit::certificate::generate();

    explicit environment(bool shared) {
        const int n = shared ? 1 : 3;
        for (int i = 0; i < n; ++i) {
            contexts.push_back(std::make_unique<zmq::context_t>());
        }
        source_ctx = contexts.front().get();
        device_ctx = contexts[shared ? 0 : 1].get();
        sink_ctx = contexts.back().get();
        // The binding roles: the sink (direct path) and the streamer (both of its sides).
        auto& sink_auth = authenticator_for(*sink_ctx);
        allow(sink_auth, "sink", producer);
        auto& device_auth = authenticator_for(*device_ctx);
        allow(device_auth, "frontend", producer);
        allow(device_auth, "backend", consumer);
    }
    ~environment() {
        authenticators.clear(); // before the contexts close
    }
    environment(const environment&) = delete;
    environment& operator=(const environment&) = delete;

    zmqkit::authenticator& authenticator_for(zmq::context_t& ctx) {
        for (std::size_t i = 0; i < contexts.size(); ++i) {
            if (contexts[i].get() == &ctx && i < authenticators.size() && authenticators[i]) {
                return *authenticators[i];
            }
        }
        authenticators.resize(contexts.size());
        for (std::size_t i = 0; i < contexts.size(); ++i) {
            if (contexts[i].get() == &ctx) {
                zmqkit::authenticator_options o;
                o.registry = &auth_registry;
                o.log = [this](std::string_view line) {
                    std::lock_guard lock(log_mutex);
                    log_lines.emplace_back(line);
                };
                authenticators[i] = std::make_unique<zmqkit::authenticator>(ctx, std::move(o));
                return *authenticators[i];
            }
        }
        throw std::logic_error("context not found");
    }
    // A ZAP domain whose allow list holds only `client`'s public key.
    static void allow(zmqkit::authenticator& auth, const std::string& domain,
                      const zmqkit::certificate& client) {
        zmqkit::zap_policy p;
        p.curve_allow_keys = {client.public_key};
        auth.set_policy(domain, p);
    }
};

// Sends opt.warmup messages and waits for every one of them, then `n` timed ones from a sender
// thread while a receiver thread counts them.
run_result transfer(const options& opt, zmqkit::patterns::source& src, zmqkit::patterns::sink& dst,
                    const std::string& payload, std::uint64_t n) {
    run_result result;
    const std::string_view body(payload.data(), payload.size());
    const std::size_t size = payload.size();

    // Warm-up: the TCP connection(s), the CURVE handshake(s) and ZAP, then steady state.
    {
        zmqkit::header h;
        zmqkit::message in;
        for (std::uint64_t i = 0; i < opt.warmup; ++i) {
            h = {};
            if (!src.socket().send(h, body)) {
                result.error = "warm-up message " + std::to_string(i) + " could not be queued";
                return result;
            }
        }
        for (std::uint64_t i = 0; i < opt.warmup; ++i) {
            if (!dst.socket().recv(in, opt.timeout) || in.body_size() != size) {
                result.error = "warm-up: " + std::to_string(i) + " of " +
                               std::to_string(opt.warmup) + " messages arrived";
                return result;
            }
        }
    }

    std::atomic<clock_type::rep> start_ticks{0};
    clock_type::time_point last_arrival{};
    std::thread receiver([&] {
        std::uint64_t count = 0;
        std::uint64_t bad_size = 0;
        zmqkit::message m; // reused: the hot-path receive
        while (count < n) {
            if (!dst.socket().recv(m, opt.timeout)) {
                break; // nothing within the timeout: a lost message
            }
            bad_size += m.body_size() != size ? 1U : 0U;
            ++count;
        }
        last_arrival = clock_type::now();
        result.received = count;
        result.bad_size = bad_size;
    });
    std::thread sender([&] {
        start_ticks.store(clock_type::now().time_since_epoch().count());
        std::uint64_t count = 0;
        zmqkit::header h;
        while (count < n) {
            h.id = {};
            h.correlation_id = {};
            if (!src.socket().send(h, body)) {
                break; // not queued within the send timeout
            }
            ++count;
        }
        result.sent = count;
    });
    sender.join();
    receiver.join();

    const clock_type::time_point start{clock_type::duration(start_ticks.load())};
    result.seconds = std::chrono::duration<double>(last_arrival - start).count();
    if (result.sent != n) {
        result.error = "sender stopped after " + std::to_string(result.sent) + " messages";
    } else if (result.received != n) {
        result.error = "receiver got " + std::to_string(result.received) + " of " +
                       std::to_string(n) + " messages";
    } else if (dst.socket().counters().decode_errors->value() != 0) {
        result.error = "decode errors on the sink";
    }
    return result;
}

zmqkit::socket_options socket_opts(const options& opt, zmqkit::metrics_registry& registry,
                                   std::string name) {
    zmqkit::socket_options o;
    o.linger = 0ms;
    o.send_timeout = opt.timeout;
    o.name = std::move(name);
    o.registry = &registry;
    return o;
}

run_result run_direct(environment& env, const options& opt, security_kind sec,
                      const std::string& payload, std::uint64_t n) {
    zmqkit::metrics_registry registry; // per run: counters belong to this run alone
    auto sink_opts = socket_opts(opt, registry, "bench_sink");
    auto source_opts = socket_opts(opt, registry, "bench_source");
    if (sec == security_kind::curve) {
        sink_opts.security = zmqkit::socket_security::curve_server(env.sink_cert, "sink");
        source_opts.security =
            zmqkit::socket_security::curve_client(env.sink_cert.public_key, &env.producer);
    }
    zmqkit::patterns::sink dst(*env.sink_ctx, "tcp://127.0.0.1:*", sink_opts);
    zmqkit::patterns::source src(*env.source_ctx, ">" + dst.endpoints().at(0), source_opts);
    return transfer(opt, src, dst, payload, n);
}

run_result run_streamer(environment& env, const options& opt, security_kind sec,
                        const std::string& payload, std::uint64_t n) {
    zmqkit::metrics_registry registry;
    zmqkit::patterns::streamer_options so;
    so.frontend = "tcp://127.0.0.1:*";
    so.backend = "tcp://127.0.0.1:*";
    so.name = "bench_streamer";
    so.registry = &registry;
    so.sockets.linger = 0ms;
    so.drain_timeout = 100ms;
    auto sink_opts = socket_opts(opt, registry, "bench_sink");
    auto source_opts = socket_opts(opt, registry, "bench_source");
    if (sec == security_kind::curve) {
        so.frontend_security = zmqkit::socket_security::curve_server(env.streamer_cert, "frontend");
        so.backend_security = zmqkit::socket_security::curve_server(env.streamer_cert, "backend");
        source_opts.security =
            zmqkit::socket_security::curve_client(env.streamer_cert.public_key, &env.producer);
        sink_opts.security =
            zmqkit::socket_security::curve_client(env.streamer_cert.public_key, &env.consumer);
    }
    zmqkit::patterns::streamer device(*env.device_ctx, so);
    device.start();
    run_result r;
    {
        zmqkit::patterns::sink dst(*env.sink_ctx, ">" + device.backend_endpoints().at(0),
                                   sink_opts);
        zmqkit::patterns::source src(*env.source_ctx, ">" + device.frontend_endpoints().at(0),
                                     source_opts);
        r = transfer(opt, src, dst, payload, n);
    }
    device.stop(1s);
    return r;
}

// ---- statistics and output -------------------------------------------------------------

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

struct cell {
    std::string path;
    std::size_t size = 0;
    std::uint64_t messages = 0;
    std::array<std::vector<double>, 2> rates; // [plain, curve], msgs/s per run
    std::vector<double> paired_ratio;         // curve / plain of the same round
    bool complete = true;

    [[nodiscard]] double med(security_kind s) const {
        return median(rates[static_cast<std::size_t>(s)]);
    }
    [[nodiscard]] double ratio() const {
        const double p = med(security_kind::plain);
        return p > 0 ? med(security_kind::curve) / p : 0;
    }
    [[nodiscard]] double mbps(security_kind s) const {
        return med(s) * static_cast<double>(size) / 1e6;
    }
};

void print_summary(const options& opt, const std::vector<cell>& cells) {
    std::cout << "\nzmqkit pipeline over tcp://127.0.0.1, " << opt.rounds
              << " rounds, plaintext (A) and CURVE on every hop (B) alternated; contexts: "
              << (opt.shared_context ? "shared" : "one per role") << "\n"
              << "msgs/s medians; MB/s = bodies only (msgs/s x size / 1e6)\n\n";
    std::cout << pad("path", 9) << pad("size", 6) << pad("messages", 10) << pad("plain", 11)
              << pad("MB/s", 8) << pad("curve", 11) << pad("MB/s", 8) << pad("B/A", 7)
              << pad("paired", 8) << pad("plain min-max", 20) << pad("curve min-max", 20) << "\n";
    for (const auto& c : cells) {
        const auto& a = c.rates[0];
        const auto& b = c.rates[1];
        std::cout << pad(c.path, 9) << pad(std::to_string(c.size), 6)
                  << pad(std::to_string(c.messages), 10)
                  << pad(fixed(c.med(security_kind::plain), 0), 11)
                  << pad(fixed(c.mbps(security_kind::plain), 1), 8)
                  << pad(fixed(c.med(security_kind::curve), 0), 11)
                  << pad(fixed(c.mbps(security_kind::curve), 1), 8) << pad(fixed(c.ratio(), 3), 7)
                  << pad(fixed(median(c.paired_ratio), 3), 8)
                  << pad(fixed(min_of(a), 0) + "-" + fixed(max_of(a), 0), 20)
                  << pad(fixed(min_of(b), 0) + "-" + fixed(max_of(b), 0), 20)
                  << (c.complete ? "" : "  INCOMPLETE") << "\n";
    }
    std::cout << "\n";
    for (const auto& c : cells) {
        std::cout << "RESULT path=" << c.path << " size=" << c.size << " messages=" << c.messages
                  << " rounds=" << opt.rounds
                  << " contexts=" << (opt.shared_context ? "shared" : "role")
                  << " plain_median=" << fixed(c.med(security_kind::plain), 0)
                  << " plain_min=" << fixed(min_of(c.rates[0]), 0)
                  << " plain_max=" << fixed(max_of(c.rates[0]), 0)
                  << " plain_mbps=" << fixed(c.mbps(security_kind::plain), 1)
                  << " curve_median=" << fixed(c.med(security_kind::curve), 0)
                  << " curve_min=" << fixed(min_of(c.rates[1]), 0)
                  << " curve_max=" << fixed(max_of(c.rates[1]), 0)
                  << " curve_mbps=" << fixed(c.mbps(security_kind::curve), 1)
                  << " ratio=" << fixed(c.ratio(), 3)
                  << " paired_ratio_median=" << fixed(median(c.paired_ratio), 3)
                  << " complete=" << (c.complete ? 1 : 0) << "\n";
    }
}

} // namespace

int main(int argc, char** argv) {
    const auto parsed = parse_args(argc, argv);
    if (!parsed) {
        return 2;
    }
    const options& opt = *parsed;
    if (!zmqkit::curve_available()) {
        std::cerr << "zmqkit-bench-security: libzmq was built without CURVE\n";
        return 1;
    }

    try {
        environment env(opt.shared_context);
        std::vector<cell> cells;
        std::vector<std::string> payloads;
        for (const auto& path : opt.paths) {
            for (const auto size : opt.sizes) {
                cell c;
                c.path = path;
                c.size = size;
                c.messages = size <= 64 ? opt.messages : opt.messages_large;
                cells.push_back(std::move(c));
            }
        }
        for (const auto size : opt.sizes) {
            std::string payload(size, '\0');
            for (std::size_t i = 0; i < size; ++i) {
                payload[i] = static_cast<char>('a' + static_cast<int>(i % 26));
            }
            payloads.push_back(std::move(payload));
        }

        bool all_complete = true;
        for (int round = 1; round <= opt.rounds; ++round) {
            std::array<security_kind, 2> order{security_kind::plain, security_kind::curve};
            if (round % 2 == 0) {
                std::swap(order[0], order[1]);
            }
            for (auto& c : cells) {
                const auto si = static_cast<std::size_t>(
                    std::find(opt.sizes.begin(), opt.sizes.end(), c.size) - opt.sizes.begin());
                const std::string& payload = payloads[si];
                std::array<double, 2> rate{};
                for (const auto sec : order) {
                    const run_result r = c.path == "direct"
                                             ? run_direct(env, opt, sec, payload, c.messages)
                                             : run_streamer(env, opt, sec, payload, c.messages);
                    if (!r.complete(c.messages)) {
                        c.complete = false;
                        all_complete = false;
                    }
                    const auto index = static_cast<std::size_t>(sec);
                    rate[index] = r.rate();
                    c.rates[index].push_back(r.rate());
                    std::cout << "round " << round << "/" << opt.rounds << "  " << pad(c.path, 8)
                              << "  size " << pad(std::to_string(c.size), 5) << "  "
                              << pad(std::string(security_name(sec)), 9)
                              << pad(fixed(r.rate(), 0), 10) << " msgs/s  " << fixed(r.seconds, 3)
                              << " s  received " << r.received << "/" << c.messages;
                    if (r.bad_size != 0) {
                        std::cout << "  malformed " << r.bad_size;
                    }
                    if (!r.error.empty()) {
                        std::cout << "  ERROR " << r.error;
                    }
                    std::cout << std::endl;
                }
                c.paired_ratio.push_back(rate[0] > 0 ? rate[1] / rate[0] : 0);
            }
        }

        print_summary(opt, cells);
        {
            std::lock_guard lock(env.log_mutex);
            for (const auto& line : env.log_lines) {
                std::cerr << "zmqkit-bench-security: authenticator: " << line << "\n";
            }
        }
        if (!all_complete) {
            std::cerr << "zmqkit-bench-security: FAILED: some messages were lost or malformed\n";
            return 1;
        }
    } catch (const std::exception& e) {
        std::cerr << "zmqkit-bench-security: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
