// zmqkit-bench-pipeline — end-to-end PUSH -> PULL throughput over tcp loopback.
//
//   (A) raw    cppzmq/libzmq: the payload alone, one frame per message
//   (B) zmqkit::socket: send(header&, payload) / recv(message&): [header+body] (inline layout)
//
// For each payload size, A and B run alternately for --rounds rounds (the order flips every
// round, A B / B A, so that neither always runs on a "warmer" machine). Each run uses fresh
// sockets in one zmq context: the PULL side binds tcp://127.0.0.1:*, the PUSH side connects to
// the endpoint libzmq reports, one warm-up message proves the connection, then a sender thread
// sends --messages messages while a receiver thread counts them. The run's throughput is
// messages / (time the last message arrived - time the sender started).
//
// Receivers wait at most --timeout-ms for each message and senders at most --timeout-ms to
// queue one, so a lost message ends the run instead of hanging it. Every run must deliver every
// message with the expected body size; otherwise the program exits with status 1.
//
// --diagnostics adds two plain-cppzmq paths that carry zmqkit's header bytes (encoded once):
// [header][payload] and [header+payload] as one frame. They separate what zmqkit's code costs
// from what its two-frame layout costs.
//
// Output: a table (median, min, max msgs/s of A and B, ratio B/A of the medians) and one line
// per size starting with "RESULT " of key=value pairs for scripts.
#include <zmqkit/codec.hpp>
#include <zmqkit/message.hpp>
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
    std::uint64_t messages = 1'000'000;
    std::vector<std::size_t> sizes{64, 1024};
    std::chrono::milliseconds timeout{5000};
    bool typed = false;       // zmqkit: also set type and content_type on every message
    bool diagnostics = false; // also run raw_two_frames and raw_one_frame
    int hwm = 1000; // ZMQ_SNDHWM / ZMQ_RCVHWM on both paths (zmqkit's and libzmq's default)
};

// raw and zmqkit are A and B. The other two, run with --diagnostics, send zmqkit's wire bytes
// with plain cppzmq (a header encoded once, reused for every message), to tell the cost of
// zmqkit's code from the cost of its frame layout:
//   raw_two_frames  [header][payload], the layout zmqkit uses
//   raw_one_frame   [header + payload] in one frame (a layout zmqkit does not use)
enum class mode { raw, zmqkit, raw_two_frames, raw_one_frame };

std::string_view mode_name(mode m) {
    switch (m) {
    case mode::raw:
        return "raw";
    case mode::zmqkit:
        return "zmqkit";
    case mode::raw_two_frames:
        return "raw-2frames";
    case mode::raw_one_frame:
        return "raw-1frame";
    }
    return "?";
}

struct run_result {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t bad_size = 0; // messages whose body had the wrong size
    double seconds = 0;
    std::string error; // empty: ok

    [[nodiscard]] bool complete(std::uint64_t expected) const {
        return error.empty() && sent == expected && received == expected && bad_size == 0;
    }
    [[nodiscard]] double rate() const {
        return seconds > 0 ? static_cast<double>(received) / seconds : 0.0;
    }
};

void usage(std::ostream& out) {
    out << "usage: zmqkit-bench-pipeline [--rounds N] [--messages N] [--sizes 64,1024]\n"
           "                             [--timeout-ms MS] [--hwm N] [--typed] [--diagnostics]\n"
           "  --rounds N      rounds of A (raw libzmq) and B (zmqkit), alternated (default 5)\n"
           "  --messages N    messages per run (default 1000000)\n"
           "  --sizes LIST    payload sizes in bytes, comma separated (default 64,1024)\n"
           "  --timeout-ms MS longest wait for one message to arrive or be queued (default 5000)\n"
           "  --hwm N         send and receive high-water mark on both paths (default 1000)\n"
           "  --typed         zmqkit path: set type \"order.created\" and content_type\n"
           "                  \"application/msgpack\" on every message (default: the header\n"
           "                  socket::send stamps: id, correlation id, timestamp)\n"
           "  --diagnostics   also run plain cppzmq with zmqkit's wire bytes: [header][payload]\n"
           "                  (raw-2frames) and [header+payload] in one frame (raw-1frame)\n";
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

// Returns nullopt (after printing why) for a bad command line.
std::optional<options> parse_args(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::optional<std::string_view> {
            if (i + 1 >= argc) {
                std::cerr << "zmqkit-bench-pipeline: " << arg << " needs a value\n";
                return std::nullopt;
            }
            return std::string_view(argv[++i]);
        };
        auto bad = [&](std::string_view v) {
            std::cerr << "zmqkit-bench-pipeline: bad value '" << v << "' for " << arg << "\n";
            return std::nullopt;
        };
        if (arg == "--help" || arg == "-h") {
            usage(std::cout);
            std::exit(0);
        } else if (arg == "--typed") {
            opt.typed = true;
        } else if (arg == "--diagnostics") {
            opt.diagnostics = true;
        } else if (arg == "--rounds") {
            auto v = value();
            if (!v) {
                return std::nullopt;
            }
            auto n = parse_number<int>(*v);
            if (!n || *n < 1) {
                return bad(*v);
            }
            opt.rounds = *n;
        } else if (arg == "--messages") {
            auto v = value();
            if (!v) {
                return std::nullopt;
            }
            auto n = parse_number<std::uint64_t>(*v);
            if (!n || *n < 1) {
                return bad(*v);
            }
            opt.messages = *n;
        } else if (arg == "--timeout-ms") {
            auto v = value();
            if (!v) {
                return std::nullopt;
            }
            auto n = parse_number<int>(*v);
            if (!n || *n < 1) {
                return bad(*v);
            }
            opt.timeout = std::chrono::milliseconds(*n);
        } else if (arg == "--hwm") {
            auto v = value();
            if (!v) {
                return std::nullopt;
            }
            auto n = parse_number<int>(*v);
            if (!n || *n < 0) {
                return bad(*v);
            }
            opt.hwm = *n;
        } else if (arg == "--sizes") {
            auto v = value();
            if (!v) {
                return std::nullopt;
            }
            opt.sizes.clear();
            std::string_view rest = *v;
            while (!rest.empty()) {
                const auto comma = rest.find(',');
                const auto item = rest.substr(0, comma);
                auto n = parse_number<std::size_t>(item);
                if (!n) {
                    return bad(*v);
                }
                opt.sizes.push_back(*n);
                rest =
                    comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
            if (opt.sizes.empty()) {
                return bad(*v);
            }
        } else {
            std::cerr << "zmqkit-bench-pipeline: unknown argument '" << arg << "'\n";
            usage(std::cerr);
            return std::nullopt;
        }
    }
    return opt;
}

// ---- (A) raw cppzmq --------------------------------------------------------------------

run_result run_raw(zmq::context_t& ctx, const options& opt, const std::string& payload) {
    run_result result;
    const auto timeout_ms = static_cast<int>(opt.timeout.count());

    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.set(zmq::sockopt::rcvhwm, opt.hwm);
    pull.set(zmq::sockopt::rcvtimeo, timeout_ms);
    pull.bind("tcp://127.0.0.1:*");
    const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);

    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.set(zmq::sockopt::sndhwm, opt.hwm);
    push.set(zmq::sockopt::sndtimeo, timeout_ms);
    push.connect(endpoint);

    // Warm-up: one message end to end, so the timed part excludes the TCP handshake.
    zmq::message_t msg;
    if (!push.send(zmq::const_buffer(payload.data(), payload.size()), zmq::send_flags::none) ||
        !pull.recv(msg, zmq::recv_flags::none)) {
        result.error = "raw: warm-up message did not arrive";
        return result;
    }

    const std::uint64_t n = opt.messages;
    const std::size_t size = payload.size();
    std::atomic<clock_type::rep> start_ticks{0};
    clock_type::time_point last_arrival{};

    std::thread receiver([&] {
        // One message_t, reused: libzmq recycles it on every recv.
        zmq::message_t in;
        std::uint64_t count = 0;
        std::uint64_t bad_size = 0;
        while (count < n) {
            if (!pull.recv(in, zmq::recv_flags::none)) {
                break; // no message within the timeout
            }
            bad_size += in.size() != size ? 1U : 0U;
            ++count;
        }
        last_arrival = clock_type::now();
        result.received = count;
        result.bad_size = bad_size;
    });
    std::thread sender([&] {
        // zmq_send copies the payload into a new libzmq message: the only per-message work.
        const zmq::const_buffer out(payload.data(), size);
        start_ticks.store(clock_type::now().time_since_epoch().count());
        std::uint64_t count = 0;
        while (count < n) {
            if (!push.send(out, zmq::send_flags::none)) {
                break; // could not queue within the timeout
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
        result.error = "raw: sender stopped after " + std::to_string(result.sent) + " messages";
    } else if (result.received != n) {
        result.error = "raw: receiver got " + std::to_string(result.received) + " of " +
                       std::to_string(n) + " messages";
    }
    return result;
}

// ---- diagnostics: zmqkit's wire bytes through plain cppzmq -----------------------------

// Sends every message as `frames` (all but the last with ZMQ_SNDMORE), from reused buffers.
run_result run_raw_frames(zmq::context_t& ctx, const options& opt,
                          const std::vector<std::string>& frames) {
    run_result result;
    const auto timeout_ms = static_cast<int>(opt.timeout.count());

    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.set(zmq::sockopt::rcvhwm, opt.hwm);
    pull.set(zmq::sockopt::rcvtimeo, timeout_ms);
    pull.bind("tcp://127.0.0.1:*");
    const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);

    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.set(zmq::sockopt::sndhwm, opt.hwm);
    push.set(zmq::sockopt::sndtimeo, timeout_ms);
    push.connect(endpoint);

    const std::size_t nframes = frames.size();
    const std::size_t last_size = frames.back().size();
    auto send_one = [&push, &frames, nframes]() -> bool {
        for (std::size_t i = 0; i < nframes; ++i) {
            const auto flags = i + 1 < nframes ? zmq::send_flags::sndmore : zmq::send_flags::none;
            if (!push.send(zmq::const_buffer(frames[i].data(), frames[i].size()), flags)) {
                return false;
            }
        }
        return true;
    };
    // Receives one whole message; false on timeout. ok is false if its shape is wrong.
    auto recv_one = [&pull, nframes, last_size](zmq::message_t& in, bool& ok) -> bool {
        std::size_t count = 0;
        do {
            if (!pull.recv(in, zmq::recv_flags::none)) {
                return false;
            }
            ++count;
        } while (in.more());
        ok = count == nframes && in.size() == last_size;
        return true;
    };

    zmq::message_t msg;
    bool warm_ok = false;
    if (!send_one() || !recv_one(msg, warm_ok)) {
        result.error = "warm-up message did not arrive";
        return result;
    }

    const std::uint64_t n = opt.messages;
    std::atomic<clock_type::rep> start_ticks{0};
    clock_type::time_point last_arrival{};

    std::thread receiver([&] {
        zmq::message_t in;
        std::uint64_t count = 0;
        std::uint64_t bad = 0;
        bool ok = false;
        while (count < n && recv_one(in, ok)) {
            bad += ok ? 0U : 1U;
            ++count;
        }
        last_arrival = clock_type::now();
        result.received = count;
        result.bad_size = bad;
    });
    std::thread sender([&] {
        start_ticks.store(clock_type::now().time_since_epoch().count());
        std::uint64_t count = 0;
        while (count < n && send_one()) {
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
    }
    return result;
}

// ---- (B) zmqkit::socket ----------------------------------------------------------------

run_result run_zmqkit(zmq::context_t& ctx, const options& opt, const std::string& payload) {
    run_result result;
    // Per run, so the decode error counter checked below belongs to this run alone.
    zmqkit::metrics_registry registry;

    zmqkit::socket_options pull_opts;
    pull_opts.recv_hwm = opt.hwm;
    pull_opts.send_hwm = opt.hwm;
    pull_opts.linger = 0ms;
    pull_opts.name = "bench_pull";
    pull_opts.registry = &registry;
    zmqkit::socket pull(ctx, zmq::socket_type::pull, pull_opts);
    const auto endpoints = pull.attach("@tcp://127.0.0.1:*", zmqkit::endpoint_action::bind);

    zmqkit::socket_options push_opts = pull_opts;
    push_opts.send_timeout = opt.timeout;
    push_opts.name = "bench_push";
    zmqkit::socket push(ctx, zmq::socket_type::push, push_opts);
    (void)push.attach(">" + endpoints.at(0), zmqkit::endpoint_action::connect);

    auto make_message = [&] {
        zmqkit::message m{zmq::message_t(payload.data(), payload.size())};
        if (opt.typed) {
            m.header().type = "order.created";
            m.header().content_type = zmqkit::content_type_msgpack;
        }
        return m;
    };

    if (!push.send(make_message()) || !pull.recv(opt.timeout)) {
        result.error = "zmqkit: warm-up message did not arrive";
        return result;
    }

    const std::uint64_t n = opt.messages;
    const std::size_t size = payload.size();
    std::atomic<clock_type::rep> start_ticks{0};
    clock_type::time_point last_arrival{};

    std::thread receiver([&] {
        std::uint64_t count = 0;
        std::uint64_t bad_size = 0;
        zmqkit::message m; // reused: recv(message&, timeout) is the hot-path form
        while (count < n) {
            if (!pull.recv(m, opt.timeout)) {
                break; // no message within the timeout
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
        // A fresh id per message from one reused header (type and content type kept), and the
        // body copied from the payload, as zmq_send copies it in the raw path: send(header&,
        // string_view) stamps and encodes the header and copies the body into the same frame.
        zmqkit::header h = make_message().header();
        const std::string_view body(payload.data(), payload.size());
        while (count < n) {
            h.id = {};
            h.correlation_id = {};
            if (!push.send(h, body)) {
                break; // could not queue within the timeout
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
        result.error = "zmqkit: sender stopped after " + std::to_string(result.sent) + " messages";
    } else if (result.received != n) {
        result.error = "zmqkit: receiver got " + std::to_string(result.received) + " of " +
                       std::to_string(n) + " messages";
    } else if (pull.counters().decode_errors->value() != 0) {
        result.error = "zmqkit: decode errors on the receiving socket";
    }
    return result;
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

constexpr std::size_t mode_count = 4;

struct size_stats {
    std::size_t size = 0;
    std::array<std::vector<double>, mode_count> rates; // msgs/s per run, indexed by mode
    std::vector<double> paired_ratio;                  // B/A of the same round
    bool complete = true;

    [[nodiscard]] const std::vector<double>& of(mode m) const {
        return rates[static_cast<std::size_t>(m)];
    }
    [[nodiscard]] double ratio(mode m) const {
        const double raw = median(of(mode::raw));
        return raw > 0 ? median(of(m)) / raw : 0;
    }
};

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string rate_str(double v) {
    return fixed(v, 0);
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) {
        s.insert(0, width - s.size(), ' ');
    }
    return s;
}

void print_summary(const options& opt, const std::vector<size_stats>& stats) {
    std::cout << "\nPUSH->PULL over tcp://127.0.0.1, " << opt.messages << " messages x "
              << opt.rounds << " rounds per size and path, msgs/s"
              << (opt.typed ? "; zmqkit header with type + content_type" : "") << "\n"
              << "A = raw cppzmq, payload as one frame; B = zmqkit::socket, enveloped\n\n";
    std::cout << pad("size", 6) << pad("A median", 11) << pad("B median", 11) << pad("B/A", 7)
              << pad("B/A paired", 12) << pad("A min", 10) << pad("A max", 10) << pad("B min", 10)
              << pad("B max", 10) << "\n";
    for (const auto& s : stats) {
        const auto& a = s.of(mode::raw);
        const auto& b = s.of(mode::zmqkit);
        std::cout << pad(std::to_string(s.size), 6) << pad(rate_str(median(a)), 11)
                  << pad(rate_str(median(b)), 11) << pad(fixed(s.ratio(mode::zmqkit), 3), 7)
                  << pad(fixed(median(s.paired_ratio), 3), 12) << pad(rate_str(min_of(a)), 10)
                  << pad(rate_str(max_of(a)), 10) << pad(rate_str(min_of(b)), 10)
                  << pad(rate_str(max_of(b)), 10) << (s.complete ? "" : "  INCOMPLETE") << "\n";
    }
    if (opt.diagnostics) {
        std::cout << "\nDiagnostics: zmqkit's header bytes (encoded once) through plain cppzmq\n"
                     "raw-2frames = [header][payload] (zmqkit's layout); raw-1frame = "
                     "[header+payload]\n\n";
        std::cout << pad("size", 6) << pad("2frames med", 13) << pad("/A", 7)
                  << pad("1frame med", 13) << pad("/A", 7) << pad("B/2frames", 11) << "\n";
        for (const auto& s : stats) {
            const double two = median(s.of(mode::raw_two_frames));
            std::cout << pad(std::to_string(s.size), 6) << pad(rate_str(two), 13)
                      << pad(fixed(s.ratio(mode::raw_two_frames), 3), 7)
                      << pad(rate_str(median(s.of(mode::raw_one_frame))), 13)
                      << pad(fixed(s.ratio(mode::raw_one_frame), 3), 7)
                      << pad(fixed(two > 0 ? median(s.of(mode::zmqkit)) / two : 0, 3), 11) << "\n";
        }
    }
    std::cout << "\n";
    for (const auto& s : stats) {
        const auto& a = s.of(mode::raw);
        const auto& b = s.of(mode::zmqkit);
        std::cout << "RESULT size=" << s.size << " messages=" << opt.messages
                  << " rounds=" << opt.rounds << " typed=" << (opt.typed ? 1 : 0)
                  << " raw_median=" << rate_str(median(a)) << " raw_min=" << rate_str(min_of(a))
                  << " raw_max=" << rate_str(max_of(a)) << " zmqkit_median=" << rate_str(median(b))
                  << " zmqkit_min=" << rate_str(min_of(b)) << " zmqkit_max=" << rate_str(max_of(b))
                  << " ratio=" << fixed(s.ratio(mode::zmqkit), 3)
                  << " paired_ratio_median=" << fixed(median(s.paired_ratio), 3);
        if (opt.diagnostics) {
            std::cout << " raw2frames_median=" << rate_str(median(s.of(mode::raw_two_frames)))
                      << " raw1frame_median=" << rate_str(median(s.of(mode::raw_one_frame)));
        }
        std::cout << " complete=" << (s.complete ? 1 : 0) << "\n";
    }
}

zmqkit::header bench_header(const options& opt) {
    zmqkit::header h = zmqkit::header::fresh();
    if (opt.typed) {
        h.type = "order.created";
        h.content_type = zmqkit::content_type_msgpack;
    }
    return h;
}

} // namespace

int main(int argc, char** argv) {
    const auto parsed = parse_args(argc, argv);
    if (!parsed) {
        return 2;
    }
    const options& opt = *parsed;

    try {
        zmq::context_t ctx;
        std::vector<size_stats> stats;
        std::vector<std::string> payloads;
        for (const auto size : opt.sizes) {
            size_stats s;
            s.size = size;
            stats.push_back(std::move(s));
            std::string payload(size, '\0');
            for (std::size_t i = 0; i < size; ++i) {
                payload[i] = static_cast<char>('a' + static_cast<int>(i % 26));
            }
            payloads.push_back(std::move(payload));
        }
        // Diagnostics: the header zmqkit puts on the wire, encoded once.
        const std::string header_bytes = zmqkit::encode_header(bench_header(opt));

        std::vector<mode> modes{mode::raw, mode::zmqkit};
        if (opt.diagnostics) {
            modes.push_back(mode::raw_two_frames);
            modes.push_back(mode::raw_one_frame);
        }

        bool all_complete = true;
        for (int round = 1; round <= opt.rounds; ++round) {
            // A B [C D] in odd rounds, [D C] B A in even ones.
            std::vector<mode> order = modes;
            if (round % 2 == 0) {
                std::reverse(order.begin(), order.end());
            }
            for (std::size_t si = 0; si < opt.sizes.size(); ++si) {
                auto& s = stats[si];
                const std::string& payload = payloads[si];
                std::array<double, mode_count> rate{};
                for (const mode m : order) {
                    run_result r;
                    switch (m) {
                    case mode::raw:
                        r = run_raw(ctx, opt, payload);
                        break;
                    case mode::zmqkit:
                        r = run_zmqkit(ctx, opt, payload);
                        break;
                    case mode::raw_two_frames:
                        r = run_raw_frames(ctx, opt, {header_bytes, payload});
                        break;
                    case mode::raw_one_frame:
                        r = run_raw_frames(ctx, opt, {header_bytes + payload});
                        break;
                    }
                    if (!r.complete(opt.messages)) {
                        s.complete = false;
                        all_complete = false;
                    }
                    const auto index = static_cast<std::size_t>(m);
                    rate[index] = r.rate();
                    s.rates[index].push_back(r.rate());
                    std::cout << "round " << round << "/" << opt.rounds << "  size "
                              << pad(std::to_string(s.size), 5) << "  " << std::string(mode_name(m))
                              << std::string(12 - mode_name(m).size(), ' ')
                              << pad(rate_str(r.rate()), 10) << " msgs/s  " << fixed(r.seconds, 3)
                              << " s  received " << r.received << "/" << opt.messages;
                    if (r.bad_size != 0) {
                        std::cout << "  malformed " << r.bad_size;
                    }
                    if (!r.error.empty()) {
                        std::cout << "  ERROR " << r.error;
                    }
                    std::cout << std::endl;
                }
                const double a = rate[static_cast<std::size_t>(mode::raw)];
                s.paired_ratio.push_back(a > 0 ? rate[static_cast<std::size_t>(mode::zmqkit)] / a
                                               : 0);
            }
        }

        print_summary(opt, stats);
        if (!all_complete) {
            std::cerr << "zmqkit-bench-pipeline: FAILED: some messages were lost or malformed\n";
            return 1;
        }
    } catch (const std::exception& e) {
        std::cerr << "zmqkit-bench-pipeline: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
