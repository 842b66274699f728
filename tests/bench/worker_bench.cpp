// zmqkit-bench-worker — the two sides of scripts/bench-worker.sh, which compares zmqkit-worker
// --exec cat processes (a fork/exec per request) with library lb_workers behind the same
// zmqkit-proxy --mode lb:
//
//   zmqkit-bench-worker load --frontend EP [--control EP --workers N] [--requests N]
//                            [--warmup N] [--inflight N] [--size BYTES] [--timeout-ms MS]
//     A load generator: waits until the broker's STATUS (--control) shows N ready workers, sends
//     --warmup untimed requests, then --requests timed ones through lb_client::submit with
//     --inflight outstanding, each body checked (an echo: the reply equals the request). Prints
//     "RESULT requests=N seconds=S req_per_s=R p50_us=P p99_us=Q" (round trip: submit to reply).
//     Exit 1 if a reply is missing, an error or wrong.
//
//   zmqkit-bench-worker echo --backend EP [--workers N]
//     N lb_workers (echo, one request at a time, credit 1: what zmqkit-worker --concurrency N
//     runs, without the command) in this process until SIGINT/SIGTERM.
#include <zmqkit/message.hpp>
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/signals.hpp>

#include <zmq.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace zp = zmqkit::patterns;

struct options {
    std::string mode;
    std::string frontend, backend, control;
    std::uint64_t requests = 2000;
    std::uint64_t warmup = 200;
    std::size_t inflight = 16;
    std::size_t size = 64;
    std::size_t workers = 4;
    std::chrono::milliseconds timeout{30000};
};

void usage(std::ostream& out) {
    out << "usage: zmqkit-bench-worker load --frontend EP [--control EP --workers N]\n"
           "                                [--requests N] [--warmup N] [--inflight N]\n"
           "                                [--size BYTES] [--timeout-ms MS]\n"
           "       zmqkit-bench-worker echo --backend EP [--workers N]\n";
}

std::optional<std::uint64_t> number(std::string_view text) {
    std::uint64_t v = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || ptr != text.data() + text.size()) {
        return std::nullopt;
    }
    return v;
}

std::optional<options> parse(int argc, char** argv) {
    if (argc < 2) {
        return std::nullopt;
    }
    options o;
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        const std::string_view value = argv[i + 1];
        const auto n = number(value);
        if (flag == "--frontend") {
            o.frontend = value;
        } else if (flag == "--backend") {
            o.backend = value;
        } else if (flag == "--control") {
            o.control = value;
        } else if (flag == "--requests" && n && *n > 0) {
            o.requests = *n;
        } else if (flag == "--warmup" && n) {
            o.warmup = *n;
        } else if (flag == "--inflight" && n && *n > 0) {
            o.inflight = *n;
        } else if (flag == "--size" && n && *n > 0) {
            o.size = *n;
        } else if (flag == "--workers" && n && *n > 0) {
            o.workers = *n;
        } else if (flag == "--timeout-ms" && n && *n > 0) {
            o.timeout = std::chrono::milliseconds(*n);
        } else {
            std::cerr << "zmqkit-bench-worker: bad argument " << flag << " " << value << "\n";
            return std::nullopt;
        }
    }
    if ((argc % 2) != 0 || (o.mode == "load" && o.frontend.empty()) ||
        (o.mode == "echo" && o.backend.empty()) || (o.mode != "load" && o.mode != "echo")) {
        return std::nullopt;
    }
    return o;
}

// Polls the broker's STATUS until it lists `n` ready workers (at most 30 s).
bool wait_for_workers(zmq::context_t& ctx, const std::string& control, std::size_t n) {
    const auto deadline = clock_type::now() + 30s;
    while (clock_type::now() < deadline) {
        zmq::socket_t req(ctx, zmq::socket_type::req);
        req.set(zmq::sockopt::linger, 0);
        req.connect(control);
        req.send(zmq::buffer(std::string_view("STATUS")), zmq::send_flags::none);
        zmq::pollitem_t item{req.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, 2s) > 0) {
            zmq::message_t reply;
            (void)req.recv(reply, zmq::recv_flags::none);
            const std::string text = reply.to_string();
            std::size_t ready = 0;
            for (auto at = text.find("\"state\":\"ready\""); at != std::string::npos;
                 at = text.find("\"state\":\"ready\"", at + 1)) {
                ++ready;
            }
            if (ready == n) {
                return true;
            }
        }
        std::this_thread::sleep_for(20ms); // a bounded poll of another process's state
    }
    return false;
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const auto at = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    return v[at];
}

int run_load(const options& o) {
    zmq::context_t ctx;
    if (!o.control.empty() && !wait_for_workers(ctx, o.control, o.workers)) {
        std::cerr << "zmqkit-bench-worker: the broker did not list " << o.workers
                  << " ready workers within 30 s\n";
        return 1;
    }
    zp::lb_client_options co;
    co.endpoint = o.frontend;
    co.timeout = o.timeout;
    co.attempts = 1;
    zp::lb_client client(ctx, co);
    const std::string payload(o.size, 'x');
    std::vector<double> round_trips;
    round_trips.reserve(o.requests);
    std::uint64_t sent = 0, done = 0, failed = 0;
    const std::uint64_t total = o.warmup + o.requests;
    clock_type::time_point timed_start{}, timed_end{};
    while (done < total) {
        while (sent < total && sent - done < o.inflight) {
            const bool timed = sent >= o.warmup;
            if (timed && sent == o.warmup) {
                timed_start = clock_type::now();
            }
            const auto at = clock_type::now();
            (void)client.submit(zmqkit::message(payload), [&, timed, at](zp::lb_result r) {
                ++done;
                if (!r.ok() || r->body_view() != payload) {
                    ++failed;
                    if (failed <= 3) {
                        std::cerr << "zmqkit-bench-worker: bad reply: "
                                  << (r.ok() ? std::string(r->body_view().substr(0, 80))
                                             : r.error() + ": " + r.reason())
                                  << "\n";
                    }
                }
                if (timed) {
                    const auto now = clock_type::now();
                    round_trips.push_back(
                        std::chrono::duration<double, std::micro>(now - at).count());
                    timed_end = now;
                }
            });
            ++sent;
        }
        if (client.poll(o.timeout) == 0 && client.pending() > 0) {
            std::cerr << "zmqkit-bench-worker: no reply within " << o.timeout.count() << " ms\n";
            return 1;
        }
    }
    const double seconds = std::chrono::duration<double>(timed_end - timed_start).count();
    const double rate = seconds > 0 ? static_cast<double>(o.requests) / seconds : 0;
    const double p50 = percentile(round_trips, 0.50);
    const double p99 = percentile(round_trips, 0.99);
    std::printf("RESULT requests=%llu seconds=%.3f req_per_s=%.1f p50_us=%.1f p99_us=%.1f "
                "failed=%llu\n",
                static_cast<unsigned long long>(o.requests), seconds, rate, p50, p99,
                static_cast<unsigned long long>(failed));
    return failed == 0 ? 0 : 1;
}

int run_echo(const options& o) {
    zmqkit::shutdown_signals signals; // before the worker threads start
    zmq::context_t ctx;
    std::vector<std::unique_ptr<zp::lb_worker>> workers;
    for (std::size_t i = 0; i < o.workers; ++i) {
        zp::lb_worker_options wo;
        wo.endpoint = o.backend;
        wo.name = "echo-" + std::to_string(i);
        workers.push_back(std::make_unique<zp::lb_worker>(
            ctx, wo, zp::lb_bytes_handler([](std::string_view b) { return std::string(b); })));
        workers.back()->start();
    }
    std::cerr << "zmqkit-bench-worker: " << o.workers << " echo workers at " << o.backend << "\n";
    while (!signals.wait(500ms)) {
    }
    for (auto& w : workers) {
        w->stop(1s);
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const auto o = parse(argc, argv);
    if (!o) {
        usage(std::cerr);
        return 2;
    }
    try {
        return o->mode == "load" ? run_load(*o) : run_echo(*o);
    } catch (const std::exception& e) {
        std::cerr << "zmqkit-bench-worker: " << e.what() << "\n";
        return 1;
    }
}
