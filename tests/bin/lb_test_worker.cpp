// A load-balancer worker process for the process tests (lb_process_test.cpp):
//   lb_test_worker ENDPOINT HEARTBEAT_MS LIVENESS [PREFETCH]
// Replies "<name>:<body>" to every request. A body starting with "slow" on its first attempt
// is held for a minute after "handling <body>" is printed on stderr, so that a test can kill
// the worker in the middle of a request. Stops (drains) on SIGTERM/SIGINT.
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/signals.hpp>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>

namespace {
std::mutex stop_mutex;
std::condition_variable stop_changed;
bool stopping = false; // guarded by stop_mutex
} // namespace

int main(int argc, char** argv) {
    using namespace zmqkit;
    using namespace zmqkit::patterns;
    if (argc != 4 && argc != 5) {
        std::cerr << "usage: lb_test_worker ENDPOINT HEARTBEAT_MS LIVENESS [PREFETCH]\n";
        return 64;
    }
    shutdown_signals signals;
    std::string name = std::to_string(::getpid());
    name.insert(0, 1, 'w');
    lb_worker_options o;
    o.endpoint = argv[1];
    o.heartbeat_interval = std::chrono::milliseconds(std::stoll(argv[2]));
    o.liveness = static_cast<std::uint32_t>(std::stoul(argv[3]));
    o.reconnect_initial = o.heartbeat_interval;
    if (argc == 5) {
        o.prefetch = static_cast<std::uint32_t>(std::stoul(argv[4]));
    }
    o.name = name;
    zmq::context_t ctx;
    lb_worker worker(ctx, o, [&name](const lb_request& r) {
        const std::string body(r.message.body_view());
        if (body.rfind("slow", 0) == 0 && r.message.header().attempt == 1) {
            std::cerr << "handling " << body << std::endl;
            // The workload: runs until the process is killed or stopped (at most a minute).
            std::unique_lock lock(stop_mutex);
            (void)stop_changed.wait_for(lock, std::chrono::minutes(1), [] { return stopping; });
        }
        return message(name + ":" + body);
    });
    worker.start();
    std::cerr << "worker " << name << " ready" << std::endl;
    while (!signals.wait(std::chrono::milliseconds(200))) {
    }
    {
        std::lock_guard lock(stop_mutex);
        stopping = true;
    }
    stop_changed.notify_all();
    worker.stop(std::chrono::seconds(2));
    std::cerr << "worker " << name << " stopped after " << worker.counters().handled << " requests"
              << std::endl;
    return 0;
}
