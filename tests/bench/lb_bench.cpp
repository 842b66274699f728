// zmqkit-bench-lb — request-reply through the zmqkit load-balancing broker against plain libzmq,
// everything in one process (threads, tcp://127.0.0.1 for every hop). --contexts role (default)
// gives clients, broker/device and workers a zmq context (an I/O thread) each, as separate
// processes would have; --contexts shared uses one context for everything.
//
// Part 1, round trip (one request in flight, --latency-requests timed after --warmup):
//   direct   REQ -> REP (an echo thread), no broker
//   proxy    REQ -> zmq_proxy_steerable ROUTER/DEALER device (its own thread) -> REP (echo):
//            what a broker in the middle costs with libzmq alone, the floor for lb-req
//   lb-req   REQ -> load_balancer (frontend ROUTER, backend ROUTER) -> 1 lb_worker (echo)
//   lb-call  lb_client::call (zmqkit envelope, DEALER) -> load_balancer -> 1 lb_worker (echo)
//   Each request's round trip is timed; a run reports its p50 and p99 in microseconds.
//
// Part 2, throughput with --inflight requests in flight (--throughput-requests timed after
// --warmup), for each worker count in --workers:
//   raw      DEALER client keeping `inflight` requests outstanding -> zmq_proxy_steerable
//            ROUTER/DEALER pass-through device (its own thread) -> N REP echo threads
//   lb       lb_client::submit (async, `inflight` outstanding) -> load_balancer -> N lb_workers
//            (each with --prefetch credit: 1, the default, is one request at a time)
//   A run reports requests per second (timed requests / time from the first timed send to the
//   last timed reply) and the process's CPU time per timed request (every thread: client,
//   device or broker, workers; steadier than the rate on a shared machine).
//
// Every configuration runs --rounds times, the order of the paths flipping every round (A B /
// B A) so that neither always runs on a warmer machine. Every run uses fresh sockets, a fresh
// broker and fresh workers. Every reply is checked (size and bytes for the raw paths, status ok
// and body for the zmqkit client); a failed or incomplete run makes the program exit 1.
//
// Output: per-run lines, a summary table (medians over rounds, min-max) and "RESULT " lines of
// key=value pairs for scripts/bench-lb.sh.
#include <zmqkit/message.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/load_balancer.hpp>

#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <time.h>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace zp = zmqkit::patterns;

struct options {
    int rounds = 5;
    std::size_t size = 64;
    std::uint64_t latency_requests = 20'000;
    std::uint64_t throughput_requests = 100'000;
    std::uint64_t warmup = 2'000;
    std::size_t inflight = 16;
    std::uint32_t prefetch = 1; // lb_worker_options::prefetch of the zmqkit workers
    std::vector<std::size_t> workers{1, 4};
    std::chrono::milliseconds timeout{5000};
    bool latency = true;
    bool throughput = true;
    bool raw_path = true; // throughput: run the raw pass-through path
    bool lb_path = true;  // throughput: run the zmqkit broker path
    std::string latency_paths = "direct,proxy,lb-req,lb-call"; // latency: the paths to run
    // "role": one zmq context (one libzmq I/O thread) per role — clients, broker or device,
    // workers — as if each were its own process; "shared": one context for everything.
    std::string contexts = "role";
};

// The zmq contexts of the three roles (the same one three times with --contexts shared).
struct roles {
    zmq::context_t& client;
    zmq::context_t& broker;
    zmq::context_t& worker;
};

void usage(std::ostream& out) {
    out << "usage: zmqkit-bench-lb [--rounds N] [--size BYTES] [--latency-requests N]\n"
           "                       [--throughput-requests N] [--warmup N] [--inflight N]\n"
           "                       [--workers 1,4] [--timeout-ms MS] [--only latency|throughput]\n"
           "  --rounds N               rounds per configuration, paths alternated (default 5)\n"
           "  --size BYTES             request and reply payload (default 64)\n"
           "  --latency-requests N     timed round trips per latency run (default 20000)\n"
           "  --throughput-requests N  timed requests per throughput run (default 100000)\n"
           "  --warmup N               untimed requests before each run (default 2000)\n"
           "  --inflight N             requests in flight in the throughput runs (default 16)\n"
           "  --prefetch N             credit of each zmqkit lb_worker (default 1: one request\n"
           "                           at a time, 6/PPP's dispatch)\n"
           "  --workers LIST           worker counts of the throughput runs (default 1,4)\n"
           "  --timeout-ms MS          longest wait for one reply before a run fails (5000)\n"
           "  --only PART              run only the latency or the throughput part\n"
           "  --paths LIST             throughput paths: raw,lb (default both)\n"
           "  --latency-paths LIST     round trips: direct,proxy,lb-req,lb-call (default all)\n"
           "  --contexts role|shared   a zmq context (I/O thread) per role: clients, broker,\n"
           "                           workers (default), or one context for everything\n";
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
        if (arg == "--help" || arg == "-h") {
            usage(std::cout);
            std::exit(0);
        }
        if (i + 1 >= argc) {
            std::cerr << "zmqkit-bench-lb: " << arg << " needs a value (or is unknown)\n";
            usage(std::cerr);
            return std::nullopt;
        }
        const std::string_view v = argv[++i];
        auto number = [&](auto& target, std::uint64_t min) {
            auto n = parse_number<std::uint64_t>(v);
            if (!n || *n < min) {
                std::cerr << "zmqkit-bench-lb: bad value '" << v << "' for " << arg << "\n";
                return false;
            }
            target = static_cast<std::remove_reference_t<decltype(target)>>(*n);
            return true;
        };
        bool ok = true;
        if (arg == "--rounds") {
            ok = number(opt.rounds, 1);
        } else if (arg == "--size") {
            ok = number(opt.size, 1);
        } else if (arg == "--latency-requests") {
            ok = number(opt.latency_requests, 1);
        } else if (arg == "--throughput-requests") {
            ok = number(opt.throughput_requests, 1);
        } else if (arg == "--warmup") {
            ok = number(opt.warmup, 1);
        } else if (arg == "--inflight") {
            ok = number(opt.inflight, 1);
        } else if (arg == "--prefetch") {
            ok = number(opt.prefetch, 1);
        } else if (arg == "--timeout-ms") {
            std::uint64_t ms = 0;
            ok = number(ms, 1);
            opt.timeout = std::chrono::milliseconds(ms);
        } else if (arg == "--only") {
            opt.latency = v == "latency";
            opt.throughput = v == "throughput";
            ok = opt.latency || opt.throughput;
        } else if (arg == "--paths") {
            opt.raw_path = v.find("raw") != std::string_view::npos;
            opt.lb_path = v.find("lb") != std::string_view::npos;
            ok = opt.raw_path || opt.lb_path;
        } else if (arg == "--latency-paths") {
            opt.latency_paths = "," + std::string(v) + ",";
        } else if (arg == "--contexts") {
            opt.contexts = std::string(v);
            ok = v == "role" || v == "shared";
        } else if (arg == "--workers") {
            opt.workers.clear();
            std::string_view rest = v;
            while (ok && !rest.empty()) {
                const auto comma = rest.find(',');
                const auto n = parse_number<std::size_t>(rest.substr(0, comma));
                ok = n && *n >= 1;
                if (ok) {
                    opt.workers.push_back(*n);
                }
                rest =
                    comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
            ok = ok && !opt.workers.empty();
        } else {
            std::cerr << "zmqkit-bench-lb: unknown argument '" << arg << "'\n";
            usage(std::cerr);
            return std::nullopt;
        }
        if (!ok) {
            std::cerr << "zmqkit-bench-lb: bad value '" << v << "' for " << arg << "\n";
            return std::nullopt;
        }
    }
    return opt;
}

std::string_view view(const zmq::message_t& m) {
    return {static_cast<const char*>(m.data()), m.size()};
}

// ---- pieces shared by the paths ------------------------------------------------------------

// A REP echo thread (the plain-libzmq worker): connects or binds `endpoint`, echoes every
// request until stopped.
class rep_echo {
public:
    rep_echo(zmq::context_t& ctx, const std::string& endpoint, bool bind)
        : socket_(ctx, zmq::socket_type::rep) {
        socket_.set(zmq::sockopt::linger, 0);
        socket_.set(zmq::sockopt::rcvtimeo, 50);
        if (bind) {
            socket_.bind(endpoint);
            endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
        } else {
            socket_.connect(endpoint);
            endpoint_ = endpoint;
        }
        thread_ = std::thread([this] {
            zmq::message_t m;
            while (!stop_.load(std::memory_order_relaxed)) {
                if (!socket_.recv(m, zmq::recv_flags::none)) {
                    continue;
                }
                if (socket_.send(m, zmq::send_flags::none)) {
                    served_.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }
    rep_echo(const rep_echo&) = delete;
    rep_echo& operator=(const rep_echo&) = delete;
    ~rep_echo() {
        stop_ = true;
        thread_.join();
    }
    [[nodiscard]] const std::string& endpoint() const { return endpoint_; }
    // Requests answered so far.
    [[nodiscard]] std::uint64_t served() const noexcept {
        return served_.load(std::memory_order_relaxed);
    }

private:
    zmq::socket_t socket_;
    std::string endpoint_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> served_{0};
    std::thread thread_;
};

// A zmqkit broker with `n` echo lb_workers, all ready when the constructor returns.
class lb_setup {
public:
    lb_setup(const roles& ctx, std::size_t n, std::uint32_t prefetch) {
        zp::load_balancer_options o;
        o.frontend = "tcp://127.0.0.1:*";
        o.backend = "tcp://127.0.0.1:*";
        o.registry = &registry_;
        o.sockets.registry = &registry_;
        o.name = "bench_lb";
        broker_ = std::make_unique<zp::load_balancer>(ctx.broker, o);
        broker_->start();
        for (std::size_t i = 0; i < n; ++i) {
            zp::lb_worker_options wo;
            wo.endpoint = broker_->backend_endpoints().at(0);
            wo.name = "bench-worker-" + std::to_string(i);
            wo.socket.registry = &registry_;
            wo.prefetch = prefetch;
            workers_.push_back(std::make_unique<zp::lb_worker>(
                ctx.worker, wo,
                zp::lb_bytes_handler([](std::string_view body) { return std::string(body); })));
            workers_.back()->start();
        }
        const auto deadline = clock_type::now() + 10s;
        for (;;) {
            const auto s = broker_->broker_stats();
            const auto ready = s ? std::count_if(s->workers.begin(), s->workers.end(),
                                                 [](const auto& w) { return w.ready; })
                                 : 0;
            if (static_cast<std::size_t>(ready) == n) {
                break;
            }
            if (clock_type::now() > deadline) {
                throw std::runtime_error("the broker did not see its workers ready in 10 s");
            }
            std::this_thread::sleep_for(2ms);
        }
    }
    lb_setup(const lb_setup&) = delete;
    lb_setup& operator=(const lb_setup&) = delete;
    ~lb_setup() {
        for (auto& w : workers_) {
            w->stop(1s);
        }
        broker_->stop(1s);
    }
    [[nodiscard]] std::string frontend() const { return broker_->frontend_endpoints().at(0); }
    [[nodiscard]] std::uint64_t served() {
        const auto s = broker_->broker_stats();
        return s ? s->replies : 0;
    }

private:
    zmqkit::metrics_registry registry_;
    std::unique_ptr<zp::load_balancer> broker_;
    std::vector<std::unique_ptr<zp::lb_worker>> workers_;
};

// A zmq_proxy_steerable ROUTER (frontend) / DEALER (backend) device on its own thread.
class raw_device {
public:
    explicit raw_device(zmq::context_t& ctx)
        : frontend_(ctx, zmq::socket_type::router), backend_(ctx, zmq::socket_type::dealer),
          control_(ctx, zmq::socket_type::pair), steer_(ctx, zmq::socket_type::pair) {
        for (auto* s : {&frontend_, &backend_, &control_, &steer_}) {
            s->set(zmq::sockopt::linger, 0);
        }
        frontend_.bind("tcp://127.0.0.1:*");
        backend_.bind("tcp://127.0.0.1:*");
        // A new name per device: libzmq unregisters a closed socket's inproc endpoint
        // asynchronously (its reaper thread), so a name reused at once may still be taken.
        static std::atomic<std::uint64_t> devices{0};
        const std::string name = "inproc://bench-lb-steer-" + std::to_string(++devices);
        control_.bind(name);
        steer_.connect(name);
        thread_ = std::thread([this] {
            try {
                zmq::proxy_steerable(frontend_, backend_, zmq::socket_ref(), control_);
            } catch (const std::exception&) { // context terminated: nothing to do
            }
        });
    }
    raw_device(const raw_device&) = delete;
    raw_device& operator=(const raw_device&) = delete;
    ~raw_device() {
        (void)steer_.send(zmq::str_buffer("TERMINATE"), zmq::send_flags::none);
        thread_.join();
    }
    [[nodiscard]] std::string frontend() const {
        return frontend_.get(zmq::sockopt::last_endpoint);
    }
    [[nodiscard]] std::string backend() const { return backend_.get(zmq::sockopt::last_endpoint); }

private:
    zmq::socket_t frontend_, backend_, control_, steer_;
    std::thread thread_;
};

// ---- part 1: round trip ----------------------------------------------------------------------

enum class lat_mode { direct, proxy, lb_req, lb_call };
constexpr std::string_view lat_name(lat_mode m) {
    switch (m) {
    case lat_mode::direct:
        return "direct";
    case lat_mode::proxy:
        return "proxy";
    case lat_mode::lb_req:
        return "lb-req";
    case lat_mode::lb_call:
        return "lb-call";
    }
    return "?";
}

struct lat_result {
    double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
    std::string error;
};

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

lat_result summarize(std::vector<double>& samples) {
    lat_result r;
    double sum = 0;
    for (const double s : samples) {
        sum += s;
    }
    r.mean_us = samples.empty() ? 0 : sum / static_cast<double>(samples.size());
    r.p50_us = percentile(samples, 0.50);
    r.p90_us = percentile(samples, 0.90);
    r.p99_us = percentile(samples, 0.99);
    r.p999_us = percentile(samples, 0.999);
    r.max_us = samples.empty() ? 0 : samples.back();
    return r;
}

// Round trips of a REQ socket connected to `endpoint` (a REP echo or the broker's frontend).
lat_result req_round_trips(zmq::context_t& ctx, const options& opt, const std::string& endpoint,
                           const std::string& payload) {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.set(zmq::sockopt::rcvtimeo, static_cast<int>(opt.timeout.count()));
    req.connect(endpoint);
    std::vector<double> samples;
    samples.reserve(opt.latency_requests);
    zmq::message_t reply;
    const std::uint64_t total = opt.warmup + opt.latency_requests;
    for (std::uint64_t i = 0; i < total; ++i) {
        const auto t0 = clock_type::now();
        (void)req.send(zmq::buffer(payload), zmq::send_flags::none);
        if (!req.recv(reply, zmq::recv_flags::none)) {
            lat_result r;
            r.error = "no reply to request " + std::to_string(i);
            return r;
        }
        const auto t1 = clock_type::now();
        if (view(reply) != payload) {
            lat_result r;
            r.error = "wrong reply to request " + std::to_string(i) + ": '" +
                      std::string(view(reply).substr(0, 80)) + "'";
            return r;
        }
        if (i >= opt.warmup) {
            samples.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        }
    }
    return summarize(samples);
}

lat_result run_latency(const roles& ctx, const options& opt, lat_mode m,
                       const std::string& payload) {
    try {
        if (m == lat_mode::direct) {
            rep_echo rep(ctx.worker, "tcp://127.0.0.1:*", true);
            return req_round_trips(ctx.client, opt, rep.endpoint(), payload);
        }
        if (m == lat_mode::proxy) {
            raw_device device(ctx.broker);
            rep_echo rep(ctx.worker, device.backend(), false);
            return req_round_trips(ctx.client, opt, device.frontend(), payload);
        }
        lb_setup lb(ctx, 1, opt.prefetch);
        if (m == lat_mode::lb_req) {
            return req_round_trips(ctx.client, opt, lb.frontend(), payload);
        }
        zp::lb_client_options co;
        co.endpoint = lb.frontend();
        co.timeout = opt.timeout;
        co.attempts = 1; // a retry would hide a lost reply
        zp::lb_client client(ctx.client, co);
        std::vector<double> samples;
        samples.reserve(opt.latency_requests);
        const std::uint64_t total = opt.warmup + opt.latency_requests;
        for (std::uint64_t i = 0; i < total; ++i) {
            const auto t0 = clock_type::now();
            auto result = client.call(zmqkit::message(std::string_view(payload)));
            const auto t1 = clock_type::now();
            if (!result.ok() || result->body_view() != payload) {
                lat_result r;
                r.error = "request " + std::to_string(i) + " failed: " + result.error() + " " +
                          result.reason();
                return r;
            }
            if (i >= opt.warmup) {
                samples.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
            }
        }
        return summarize(samples);
    } catch (const std::exception& e) {
        lat_result r;
        r.error = e.what();
        return r;
    }
}

// ---- part 2: throughput ----------------------------------------------------------------------

enum class tp_mode { raw, lb };
constexpr std::string_view tp_name(tp_mode m) {
    return m == tp_mode::raw ? "raw-proxy" : "lb";
}

struct tp_result {
    double rate = 0;           // requests / s
    double cpu_us_per_req = 0; // process CPU time (all threads) per timed request
    std::uint64_t completed = 0;
    std::string error;
};

// CPU time of the whole process (every thread), seconds.
double process_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

tp_result raw_throughput_once(const roles& ctx, const options& opt, std::size_t workers,
                              const std::string& payload) {
    tp_result r;
    raw_device device(ctx.broker);
    std::vector<std::unique_ptr<rep_echo>> reps;
    for (std::size_t i = 0; i < workers; ++i) {
        reps.push_back(std::make_unique<rep_echo>(ctx.worker, device.backend(), false));
    }
    zmq::socket_t dealer(ctx.client, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::rcvtimeo, static_cast<int>(opt.timeout.count()));
    dealer.connect(device.frontend());

    auto send_one = [&] {
        (void)dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
        (void)dealer.send(zmq::buffer(payload), zmq::send_flags::none);
    };
    zmq::message_t delimiter, body;
    auto recv_one = [&]() -> bool {
        if (!dealer.recv(delimiter, zmq::recv_flags::none) || delimiter.size() != 0 ||
            !delimiter.more() || !dealer.recv(body, zmq::recv_flags::none) || body.more()) {
            return false;
        }
        return view(body) == payload;
    };

    // The REP workers connect asynchronously, and a DEALER backend only round-robins over the
    // ones already connected: make round trips until every worker has answered one (bounded),
    // so the timed run spreads over all of them.
    const auto connect_deadline = clock_type::now() + 10s;
    while (!std::all_of(reps.begin(), reps.end(), [](const auto& e) { return e->served() > 0; })) {
        if (clock_type::now() > connect_deadline) {
            r.error = "raw: not every REP worker answered within 10 s";
            return r;
        }
        send_one();
        if (!recv_one()) {
            r.error = "raw: no or a wrong reply while waiting for the workers";
            return r;
        }
    }

    const std::uint64_t total = opt.warmup + opt.throughput_requests;
    std::uint64_t sent = 0, done = 0;
    clock_type::time_point start{};
    double cpu_start = 0;
    while (sent < opt.inflight && sent < total) {
        send_one();
        ++sent;
    }
    while (done < total) {
        if (!recv_one()) {
            r.error = "raw: no or a wrong reply after " + std::to_string(done) + " replies";
            return r;
        }
        ++done;
        if (done == opt.warmup) {
            start = clock_type::now();
            cpu_start = process_cpu_seconds();
        }
        if (sent < total) {
            send_one();
            ++sent;
        }
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    r.completed = done - opt.warmup;
    r.rate = static_cast<double>(r.completed) / seconds;
    r.cpu_us_per_req = (process_cpu_seconds() - cpu_start) * 1e6 / static_cast<double>(r.completed);
    return r;
}

tp_result raw_throughput(const roles& ctx, const options& opt, std::size_t workers,
                         const std::string& payload) {
    try {
        return raw_throughput_once(ctx, opt, workers, payload);
    } catch (const std::exception& e) {
        tp_result r;
        r.error = e.what();
        return r;
    }
}

tp_result lb_throughput(const roles& ctx, const options& opt, std::size_t workers,
                        const std::string& payload) {
    tp_result r;
    try {
        lb_setup lb(ctx, workers, opt.prefetch);
        zp::lb_client_options co;
        co.endpoint = lb.frontend();
        co.timeout = opt.timeout;
        co.attempts = 1;
        zp::lb_client client(ctx.client, co);
        const std::uint64_t total = opt.warmup + opt.throughput_requests;
        std::uint64_t sent = 0, done = 0, bad = 0;
        clock_type::time_point start{};
        double cpu_start = 0;
        auto on_done = [&](zp::lb_result result) {
            if (!result.ok() || result->body_view() != payload) {
                ++bad;
            }
            ++done;
            if (done == opt.warmup) {
                start = clock_type::now();
                cpu_start = process_cpu_seconds();
            }
        };
        while (done < total) {
            while (sent - done < opt.inflight && sent < total) {
                (void)client.submit(zmqkit::message(std::string_view(payload)), on_done);
                ++sent;
            }
            if (client.poll(opt.timeout) == 0 && client.pending() > 0) {
                r.error = "lb: no reply within the timeout after " + std::to_string(done);
                return r;
            }
        }
        const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
        r.completed = done - opt.warmup;
        r.rate = static_cast<double>(r.completed) / seconds;
        r.cpu_us_per_req =
            (process_cpu_seconds() - cpu_start) * 1e6 / static_cast<double>(r.completed);
        if (bad != 0) {
            r.error = "lb: " + std::to_string(bad) + " requests failed or had a wrong reply";
        }
        if (const auto served = lb.served(); served != total) {
            r.error += " broker forwarded " + std::to_string(served) + " replies of " +
                       std::to_string(total);
        }
    } catch (const std::exception& e) {
        r.error = e.what();
    }
    return r;
}

// ---- statistics and output -------------------------------------------------------------------

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

} // namespace

int main(int argc, char** argv) {
    const auto parsed = parse_args(argc, argv);
    if (!parsed) {
        return 2;
    }
    const options& opt = *parsed;
    bool failed = false;
    try {
        zmq::context_t shared, client_ctx, broker_ctx, worker_ctx;
        const roles ctx = opt.contexts == "shared" ? roles{shared, shared, shared}
                                                   : roles{client_ctx, broker_ctx, worker_ctx};
        std::string payload(opt.size, '\0');
        for (std::size_t i = 0; i < opt.size; ++i) {
            payload[i] = static_cast<char>('a' + static_cast<int>(i % 26));
        }

        // ---- part 1
        const std::vector<lat_mode> lat_modes{lat_mode::direct, lat_mode::proxy, lat_mode::lb_req,
                                              lat_mode::lb_call};
        std::map<lat_mode, std::vector<double>> p50s, p99s;
        // Per round: that path's p50 / direct p50 (lb-req also / proxy p50).
        std::vector<double> paired_proxy, paired_req, paired_call, paired_req_proxy;
        if (opt.latency) {
            for (int round = 1; round <= opt.rounds; ++round) {
                auto order = lat_modes;
                if (round % 2 == 0) {
                    std::reverse(order.begin(), order.end());
                }
                std::map<lat_mode, double> this_round;
                for (const auto m : order) {
                    if (opt.latency_paths.find(std::string(lat_name(m))) == std::string::npos) {
                        continue;
                    }
                    const auto r = run_latency(ctx, opt, m, payload);
                    std::cout << "round " << round << "/" << opt.rounds << "  latency  "
                              << std::string(lat_name(m))
                              << std::string(8 - lat_name(m).size(), ' ') << " p50 "
                              << pad(fixed(r.p50_us, 1), 7) << " us  p90 "
                              << pad(fixed(r.p90_us, 1), 7) << "  p99 "
                              << pad(fixed(r.p99_us, 1), 7) << "  p99.9 "
                              << pad(fixed(r.p999_us, 1), 7) << "  max "
                              << pad(fixed(r.max_us, 0), 6) << "  mean "
                              << pad(fixed(r.mean_us, 1), 7) << " us";
                    if (!r.error.empty()) {
                        std::cout << "  ERROR " << r.error;
                        failed = true;
                    }
                    std::cout << std::endl;
                    p50s[m].push_back(r.p50_us);
                    p99s[m].push_back(r.p99_us);
                    this_round[m] = r.p50_us;
                }
                const double d = this_round[lat_mode::direct];
                const double p = this_round[lat_mode::proxy];
                paired_proxy.push_back(d > 0 ? p / d : 0);
                paired_req.push_back(d > 0 ? this_round[lat_mode::lb_req] / d : 0);
                paired_call.push_back(d > 0 ? this_round[lat_mode::lb_call] / d : 0);
                paired_req_proxy.push_back(p > 0 ? this_round[lat_mode::lb_req] / p : 0);
            }
        }

        // ---- part 2
        std::map<std::size_t, std::map<tp_mode, std::vector<double>>> rates, cpus;
        std::map<std::size_t, std::vector<double>> paired_tp;
        if (opt.throughput) {
            for (int round = 1; round <= opt.rounds; ++round) {
                for (const auto w : opt.workers) {
                    std::vector<tp_mode> order;
                    if (opt.raw_path) {
                        order.push_back(tp_mode::raw);
                    }
                    if (opt.lb_path) {
                        order.push_back(tp_mode::lb);
                    }
                    if (round % 2 == 0) {
                        std::reverse(order.begin(), order.end());
                    }
                    std::map<tp_mode, double> this_round;
                    for (const auto m : order) {
                        const auto r = m == tp_mode::raw ? raw_throughput(ctx, opt, w, payload)
                                                         : lb_throughput(ctx, opt, w, payload);
                        std::cout << "round " << round << "/" << opt.rounds << "  throughput "
                                  << std::string(tp_name(m))
                                  << std::string(10 - tp_name(m).size(), ' ') << " workers " << w
                                  << "  " << pad(fixed(r.rate, 0), 8) << " req/s  "
                                  << pad(fixed(r.cpu_us_per_req, 2), 6) << " cpu-us/req  ("
                                  << r.completed << " timed)";
                        if (!r.error.empty()) {
                            std::cout << "  ERROR " << r.error;
                            failed = true;
                        }
                        std::cout << std::endl;
                        rates[w][m].push_back(r.rate);
                        cpus[w][m].push_back(r.cpu_us_per_req);
                        this_round[m] = r.rate;
                    }
                    const double raw = this_round[tp_mode::raw];
                    paired_tp[w].push_back(raw > 0 ? this_round[tp_mode::lb] / raw : 0);
                }
            }
        }

        // ---- summary
        std::cout << "\nzmqkit-bench-lb: " << opt.size << " B payload, " << opt.rounds
                  << " rounds, medians (min-max), contexts: " << opt.contexts
                  << ", lb_worker prefetch " << opt.prefetch << "\n";
        if (opt.latency) {
            std::cout << "\nRound trip, 1 in flight, " << opt.latency_requests
                      << " timed requests per run, microseconds\n"
                      << pad("path", 8) << pad("p50", 9) << pad("p50 min-max", 16) << pad("p99", 9)
                      << pad("p99 min-max", 16) << pad("p50/direct", 12) << "\n";
            const double d50 = median(p50s[lat_mode::direct]);
            for (const auto m : lat_modes) {
                const auto& a = p50s[m];
                const auto& b = p99s[m];
                std::cout << pad(std::string(lat_name(m)), 8) << pad(fixed(median(a), 1), 9)
                          << pad(fixed(min_of(a), 1) + "-" + fixed(max_of(a), 1), 16)
                          << pad(fixed(median(b), 1), 9)
                          << pad(fixed(min_of(b), 1) + "-" + fixed(max_of(b), 1), 16)
                          << pad(fixed(d50 > 0 ? median(a) / d50 : 0, 2), 12) << "\n";
            }
        }
        if (opt.throughput) {
            std::cout << "\nThroughput, " << opt.inflight << " in flight, "
                      << opt.throughput_requests << " timed requests per run, req/s\n"
                      << pad("workers", 8) << pad("raw-proxy", 11) << pad("min-max", 18)
                      << pad("lb", 10) << pad("min-max", 18) << pad("lb/raw", 8) << pad("paired", 8)
                      << pad("raw cpu-us", 11) << pad("lb cpu-us", 10) << "\n";
            for (const auto w : opt.workers) {
                const auto& a = rates[w][tp_mode::raw];
                const auto& b = rates[w][tp_mode::lb];
                const double ra = median(a);
                std::cout << pad(std::to_string(w), 8) << pad(fixed(ra, 0), 11)
                          << pad(fixed(min_of(a), 0) + "-" + fixed(max_of(a), 0), 18)
                          << pad(fixed(median(b), 0), 10)
                          << pad(fixed(min_of(b), 0) + "-" + fixed(max_of(b), 0), 18)
                          << pad(fixed(ra > 0 ? median(b) / ra : 0, 3), 8)
                          << pad(fixed(median(paired_tp[w]), 3), 8)
                          << pad(fixed(median(cpus[w][tp_mode::raw]), 2), 11)
                          << pad(fixed(median(cpus[w][tp_mode::lb]), 2), 10) << "\n";
            }
        }
        std::cout << "\n";
        if (opt.latency) {
            for (const auto m : lat_modes) {
                std::cout << "RESULT part=latency path=" << lat_name(m) << " size=" << opt.size
                          << " contexts=" << opt.contexts << " rounds=" << opt.rounds
                          << " requests=" << opt.latency_requests
                          << " p50_us=" << fixed(median(p50s[m]), 1)
                          << " p99_us=" << fixed(median(p99s[m]), 1) << "\n";
            }
            const double d50 = median(p50s[lat_mode::direct]);
            const double x50 = median(p50s[lat_mode::proxy]);
            std::cout << "RESULT part=latency_ratio size=" << opt.size << " lb_req_over_direct_p50="
                      << fixed(d50 > 0 ? median(p50s[lat_mode::lb_req]) / d50 : 0, 2)
                      << " lb_call_over_direct_p50="
                      << fixed(d50 > 0 ? median(p50s[lat_mode::lb_call]) / d50 : 0, 2)
                      << " proxy_over_direct_p50=" << fixed(d50 > 0 ? x50 / d50 : 0, 2)
                      << " lb_req_over_proxy_p50="
                      << fixed(x50 > 0 ? median(p50s[lat_mode::lb_req]) / x50 : 0, 2)
                      << " paired_lb_req=" << fixed(median(paired_req), 2)
                      << " paired_lb_call=" << fixed(median(paired_call), 2)
                      << " paired_proxy=" << fixed(median(paired_proxy), 2)
                      << " paired_lb_req_over_proxy=" << fixed(median(paired_req_proxy), 2) << "\n";
        }
        if (opt.throughput) {
            for (const auto w : opt.workers) {
                const double ra = median(rates[w][tp_mode::raw]);
                const double rb = median(rates[w][tp_mode::lb]);
                std::cout << "RESULT part=throughput workers=" << w << " inflight=" << opt.inflight
                          << " contexts=" << opt.contexts << " size=" << opt.size
                          << " prefetch=" << opt.prefetch << " rounds=" << opt.rounds
                          << " requests=" << opt.throughput_requests
                          << " raw_req_per_s=" << fixed(ra, 0) << " lb_req_per_s=" << fixed(rb, 0)
                          << " ratio=" << fixed(ra > 0 ? rb / ra : 0, 3)
                          << " paired_ratio=" << fixed(median(paired_tp[w]), 3)
                          << " raw_cpu_us_per_req=" << fixed(median(cpus[w][tp_mode::raw]), 3)
                          << " lb_cpu_us_per_req=" << fixed(median(cpus[w][tp_mode::lb]), 3)
                          << "\n";
            }
        }
        std::cout << "RESULT complete=" << (failed ? 0 : 1) << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "zmqkit-bench-lb: " << e.what() << "\n";
        return 1;
    }
    if (failed) {
        std::cerr << "zmqkit-bench-lb: FAILED: some runs lost or garbled replies\n";
        return 1;
    }
    return 0;
}
