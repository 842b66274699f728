#include <zmqkit/error.hpp>
#include <zmqkit/metrics_server.hpp>
#include <zmqkit/version.hpp>

#include <httplib.h>

#include <sys/socket.h>

#include <csignal>

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace zmqkit {

listen_address parse_listen_address(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        throw config_error("listen address '" + std::string(text) +
                           "' has no port: give HOST:PORT, e.g. 127.0.0.1:9464 or :9464");
    }
    listen_address out;
    std::string_view host = text.substr(0, colon);
    const std::string_view port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        if (host.empty()) {
            throw config_error("listen address '" + std::string(text) + "' has an empty [host]");
        }
    } else if (host.find(':') != std::string_view::npos) {
        throw config_error("listen address '" + std::string(text) +
                           "': write an IPv6 host in brackets, e.g. [::1]:9464");
    }
    out.host = (host.empty() || host == "*") ? std::string("0.0.0.0") : std::string(host);
    unsigned value = 0;
    const auto r = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() ||
        value > 65535) {
        throw config_error("listen address '" + std::string(text) + "': the port '" +
                           std::string(port) + "' is not a number from 0 to 65535");
    }
    out.port = static_cast<std::uint16_t>(value);
    return out;
}

namespace {

// A client that closes before its answer is written makes send() raise SIGPIPE in the thread
// that writes, which by default ends the process. Every server thread blocks it: the write
// fails with EPIPE instead and the signal stays pending on that thread, harmless.
void block_sigpipe() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// httplib's task queue with a bound: `threads` workers and at most `backlog` connections
// waiting. When the queue is full the acceptor runs the task itself, so it stops accepting
// until a connection is done and further clients wait in the kernel's listen queue instead of
// holding descriptors in the process. Every task gets run (a task owns its socket and closes
// it), and each is bounded by the server's read and write timeouts.
class bounded_task_queue final : public httplib::TaskQueue {
public:
    bounded_task_queue(unsigned threads, unsigned backlog) : backlog_(backlog) {
        for (unsigned i = 0; i < std::max(threads, 1U); ++i) {
            workers_.emplace_back([this] {
                block_sigpipe();
                work();
            });
        }
    }
    ~bounded_task_queue() override { shutdown(); }
    bounded_task_queue(const bounded_task_queue&) = delete;
    bounded_task_queue& operator=(const bounded_task_queue&) = delete;

    void enqueue(std::function<void()> fn) override {
        {
            std::lock_guard lock(mutex_);
            if (!stopping_ && tasks_.size() < backlog_) {
                tasks_.push_back(std::move(fn));
                ready_.notify_one();
                return;
            }
        }
        fn(); // full (or stopping): serve it here, which holds the acceptor back
    }

    void shutdown() override {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) {
                return;
            }
            stopping_ = true;
        }
        ready_.notify_all();
        for (auto& t : workers_) {
            t.join();
        }
    }

private:
    void work() {
        for (;;) {
            std::function<void()> fn;
            {
                std::unique_lock lock(mutex_);
                ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
                if (tasks_.empty()) {
                    return; // stopping, and every queued connection was served
                }
                fn = std::move(tasks_.front());
                tasks_.pop_front();
            }
            fn();
        }
    }

    std::size_t backlog_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::function<void()>> tasks_;
    std::vector<std::thread> workers_;
    bool stopping_ = false;
};

double unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

constexpr const char* exposition_type = "text/plain; version=0.0.4; charset=utf-8";

} // namespace

struct metrics_server::impl {
    impl(metrics_registry& reg, metrics_server_options opts)
        : registry(reg), options(std::move(opts)), address(parse_listen_address(options.listen)),
          started(std::chrono::steady_clock::now()),
          uptime(reg.get_gauge("zmqkit_uptime_seconds",
                               "Seconds since the metrics server (for the zmqkit binaries: the "
                               "process) started")) {
        reg.get_gauge("zmqkit_build_info", "zmqkit's version and the libzmq it runs on (always 1)",
                      {{"version", std::string(version())}, {"libzmq", libzmq_version()}})
            .set(1);
        reg.get_gauge("zmqkit_start_time_seconds",
                      "When the metrics server started, in seconds since the Unix epoch")
            .set(static_cast<std::int64_t>(unix_seconds(std::chrono::system_clock::now())));
        configure();
        bind();
        thread = std::thread([this] {
            block_sigpipe();
            server.listen_after_bind();
            listener_done = true;
        });
    }

    ~impl() {
        // httplib's stop() only reaches a server that is already running: wait for it (or for
        // the listener to have ended), bounded, so that a server stopped right after it was
        // made cannot leave its listener blocked in accept().
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!server.is_running() && !listener_done &&
               std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        server.stop();
        if (thread.joinable()) {
            thread.join();
        }
    }
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    counter& requests(int status) {
        return registry.get_counter("zmqkit_metrics_http_requests_total",
                                    "Requests to the metrics server by HTTP status code",
                                    {{"code", std::to_string(status)}});
    }

    void configure() {
        const auto timeout = std::max(options.io_timeout, std::chrono::milliseconds(1));
        const auto sec = static_cast<time_t>(timeout.count() / 1000);
        const auto usec = static_cast<time_t>((timeout.count() % 1000) * 1000);
        server.set_read_timeout(sec, usec);
        server.set_write_timeout(sec, usec);
        server.set_keep_alive_timeout(std::max<time_t>(sec, 1));
        server.set_keep_alive_max_count(100);
        server.set_payload_max_length(4096);
        // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second process
        // given the same --metrics-listen would bind too and share the scrapes silently.
        server.set_socket_options([](int sock) {
            int yes = 1;
            (void)setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        });
        const unsigned threads = options.threads;
        const unsigned backlog = options.backlog;
        server.new_task_queue = [threads, backlog] {
            return new bounded_task_queue(threads, backlog);
        };
        // Counted before routing so that every answer, 404 and 405 included, is seen.
        server.set_logger([this](const httplib::Request&, const httplib::Response& res) {
            requests(res.status).add();
        });
        server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
            if (req.method == "GET" || req.method == "HEAD") {
                return httplib::Server::HandlerResponse::Unhandled;
            }
            res.status = 405;
            res.set_header("Allow", "GET, HEAD");
            res.set_content("only GET is served here\n", "text/plain");
            return httplib::Server::HandlerResponse::Handled;
        });
        server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            uptime.set(std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::steady_clock::now() - started)
                           .count());
            res.set_content(registry.prometheus_text(), exposition_type);
        });
        server.Get("/status", [this](const httplib::Request&, httplib::Response& res) {
            if (!options.status) {
                res.status = 404;
                res.set_content("no status here: only /metrics\n", "text/plain");
                return;
            }
            res.set_content(options.status(), "application/json");
        });
        server.Get("/", [this](const httplib::Request&, httplib::Response& res) {
            std::string body =
                "zmqkit " + std::string(version()) + "\n/metrics  Prometheus metrics\n";
            if (options.status) {
                body += "/status   the device's STATUS (JSON)\n";
            }
            res.set_content(body, "text/plain");
        });
        server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
            if (res.status == 404 && res.body.empty()) {
                res.set_content("not found: try /metrics\n", "text/plain");
            }
        });
    }

    void bind() {
        bool ok = false;
        if (address.port == 0) {
            const int port = server.bind_to_any_port(address.host);
            ok = port > 0;
            bound_port = static_cast<std::uint16_t>(ok ? port : 0);
        } else {
            ok = server.bind_to_port(address.host, address.port);
            bound_port = address.port;
        }
        if (!ok) {
            throw endpoint_error("cannot listen for metrics on " + options.listen +
                                 ": the address is in use, or not an address of this host");
        }
    }

    metrics_registry& registry;
    metrics_server_options options;
    listen_address address;
    std::chrono::steady_clock::time_point started;
    gauge& uptime;
    httplib::Server server;
    std::uint16_t bound_port = 0;
    std::atomic<bool> listener_done{false};
    std::thread thread;
};

metrics_server::metrics_server(metrics_registry& registry, metrics_server_options options)
    : impl_(std::make_unique<impl>(registry, std::move(options))) {}

metrics_server::~metrics_server() = default;

std::uint16_t metrics_server::port() const noexcept {
    return impl_->bound_port;
}

std::string metrics_server::url() const {
    const auto& host = impl_->address.host;
    const bool v6 = host.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + host + "]" : host) + ':' + std::to_string(port()) + "/metrics";
}

} // namespace zmqkit
