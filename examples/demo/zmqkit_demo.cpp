// zmqkit-demo: order processing across processes, on localhost.
//
//   this process          zmqkit-proxy (stream)         N worker processes          this process
//   order source  --tcp-->  frontend -> backend  --tcp-->  "charge payment"  --tcp-->  results sink
//
// Orders are placed without waiting for anyone (the source only queues them); the proxy joins
// the stages; each worker charges an order and emits an "order.charged" event that keeps the
// order's correlation id and names the order as its cause. The sink checks every order came
// back exactly once, by id, prints a few traces and a summary, then everything stops cleanly.
//
//   zmqkit-demo [--orders N] [--workers N] [--transport tcp|ipc] [--proxy PATH]
//   zmqkit-demo worker --input EP --output EP --name NAME      one worker process
#include <zmqkit/patterns/pipeline.hpp>
#include <zmqkit/signals.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

using namespace zmqkit;
using namespace std::chrono_literals;

struct order {
    std::uint64_t number = 0;
    std::string customer;
    std::uint64_t amount_cents = 0;
    MSGPACK_DEFINE_MAP(number, customer, amount_cents)
};

struct charge {
    std::uint64_t order_number = 0;
    std::uint64_t amount_cents = 0;
    std::string charged_by;
    std::int64_t pid = 0;
    MSGPACK_DEFINE_MAP(order_number, amount_cents, charged_by, pid)
};

std::string option(int argc, char** argv, const std::string& name, std::string fallback) {
    for (int i = 1; i + 1 < argc; ++i) {
        if (argv[i] == name) {
            return argv[i + 1];
        }
    }
    return fallback;
}

std::uint64_t number_option(int argc, char** argv, const std::string& name, std::uint64_t fallback,
                            std::uint64_t max) {
    const auto text = option(argc, argv, name, "");
    if (text.empty()) {
        return fallback;
    }
    char* end = nullptr;
    const auto v = std::strtoull(text.c_str(), &end, 10);
    if (end == text.c_str() || *end != '\0' || v == 0 || v > max) {
        std::cerr << "zmqkit-demo: " << name << " must be a number from 1 to " << max << "\n";
        std::exit(64);
    }
    return v;
}

// ---- a worker process -----------------------------------------------------------------------

int run_worker(int argc, char** argv) {
    shutdown_signals signals;
    const auto name = option(argc, argv, "--name", "worker");
    zmq::context_t context;
    patterns::worker_options options;
    options.input = option(argc, argv, "--input", "");
    options.output = option(argc, argv, "--output", "");
    options.name = name;
    const auto pid = static_cast<std::int64_t>(::getpid());
    patterns::worker w(context, options, [&](message& in) -> std::optional<message> {
        const auto o = in.body_as<order>();
        auto out = in.follow_up_packed(charge{o.number, o.amount_cents, name, pid});
        out.header().type = "order.charged";
        return out;
    });
    try {
        w.start();
        // Tell the orchestrator this worker is connected (on the results path it will use).
        zmqkit::socket hello(context, zmq::socket_type::push);
        hello.attach(options.output, endpoint_action::connect);
        message ready{name};
        ready.header().type = "worker.ready";
        if (!hello.send(ready)) {
            std::cerr << name << ": cannot reach the results endpoint\n";
            return 69;
        }
    } catch (const std::exception& e) {
        std::cerr << name << ": " << e.what() << "\n";
        return 69;
    }
    while (!signals.wait(1s)) {
    }
    w.stop(2s);
    std::fprintf(stderr, "%s: handled %llu orders, stopped\n", name.c_str(),
                 static_cast<unsigned long long>(w.stats().received));
    return 0;
}

// ---- the orchestrator -----------------------------------------------------------------------

// Starts a child; with stderr_fd, its stderr is a pipe whose read end is returned there.
pid_t spawn(const std::vector<std::string>& args, int* stderr_fd = nullptr) {
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int pipe_fds[2] = {-1, -1};
    if (stderr_fd != nullptr) {
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe failed");
        }
        posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
    }
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (stderr_fd != nullptr) {
        ::close(pipe_fds[1]);
        *stderr_fd = pipe_fds[0];
    }
    if (rc != 0) {
        throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
    }
    return pid;
}

// Reads the proxy's stderr until it has printed its bound frontend and backend (bounded), then
// keeps copying its stderr to ours on a thread so the proxy never blocks on a full pipe.
std::pair<std::string, std::string> bound_endpoints(int fd, std::thread& copier) {
    std::string buffer;
    std::string frontend;
    std::string backend;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((frontend.empty() || backend.empty()) && std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) {
            continue;
        }
        char chunk[4096];
        const auto n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0) {
            break;
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
        for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
            const std::string line = buffer.substr(0, nl);
            buffer.erase(0, nl + 1);
            std::cerr << line << "\n";
            for (auto [key, out] :
                 {std::pair{"frontend bound ", &frontend}, std::pair{"backend bound ", &backend}}) {
                if (auto at = line.find(key); at != std::string::npos) {
                    *out = line.substr(at + std::strlen(key));
                }
            }
        }
    }
    std::cerr << buffer;
    copier = std::thread([fd] {
        char chunk[4096];
        for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) {
            (void)!::write(STDERR_FILENO, chunk, static_cast<std::size_t>(n));
        }
        ::close(fd);
    });
    return {frontend, backend};
}

// Waits for a child with a deadline; SIGKILL after it. Returns the exit code (128+sig).
int reap(pid_t pid, std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() >= until) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            break;
        }
        ::usleep(10'000); // polling a child's exit; nothing else to wait on here
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string self_path() {
    char buf[4096];
    const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "zmqkit-demo";
}

std::string short_id(const message_id& id) {
    return id.to_string().substr(0, 13) + "…";
}

int run_demo(int argc, char** argv) {
    const auto orders = number_option(argc, argv, "--orders", 50000, 10'000'000);
    const auto workers = number_option(argc, argv, "--workers", 3, 64);
    const auto proxy_path = option(argc, argv, "--proxy", ZMQKIT_DEMO_PROXY);

    char dir_template[] = "/tmp/zmqkit-demo-XXXXXX";
    const char* dir = ::mkdtemp(dir_template);
    if (dir == nullptr) {
        std::perror("zmqkit-demo: mkdtemp");
        return 70;
    }
    const auto transport = option(argc, argv, "--transport", "tcp");
    if (transport != "tcp" && transport != "ipc") {
        std::cerr << "zmqkit-demo: --transport must be tcp or ipc\n";
        return 64;
    }
    const std::string base = std::string("ipc://") + dir;
    const std::string control = base + "/proxy.ctl"; // operators' control socket: local only

    zmq::context_t context;
    patterns::sink sink(context,
                        transport == "tcp" ? "@tcp://127.0.0.1:*" : "@" + base + "/results.sock");
    const std::string results = sink.endpoints().at(0);
    std::vector<pid_t> children;
    std::thread proxy_log;
    std::string frontend = base + "/orders.sock";
    std::string backend = base + "/work.sock";
    if (transport == "tcp") {
        int proxy_stderr = -1;
        children.push_back(
            spawn({proxy_path, "--frontend", "@tcp://127.0.0.1:*", "--backend",
                   "@tcp://127.0.0.1:*", "--control", "@" + control, "--name", "orders"},
                  &proxy_stderr));
        std::tie(frontend, backend) = bound_endpoints(proxy_stderr, proxy_log);
        if (frontend.empty() || backend.empty()) {
            std::cerr << "zmqkit-demo: zmqkit-proxy did not report its endpoints\n";
            ::kill(children[0], SIGKILL);
            ::waitpid(children[0], nullptr, 0);
            proxy_log.join();
            return 69;
        }
    } else {
        children.push_back(
            spawn({proxy_path, "--frontend", "@" + frontend, "--backend", "@" + backend,
                   "--control", "@" + control, "--name", "orders", "--quiet"}));
    }
    std::cout << "zmqkit demo: " << orders << " orders -> zmqkit-proxy (stream, " << frontend
              << " -> " << backend << ") -> " << workers << " worker processes -> results sink ("
              << results << ")\n"
              << std::flush;
    for (std::uint64_t i = 1; i <= workers; ++i) {
        children.push_back(spawn({self_path(), "worker", "--input", ">" + backend, "--output",
                                  ">" + results, "--name", "worker-" + std::to_string(i)}));
    }
    auto stop_children = [&] {
        int worst = 0;
        for (auto it = children.rbegin(); it != children.rend(); ++it) {
            ::kill(*it, SIGTERM);
        }
        for (auto pid : children) {
            worst = std::max(worst, reap(pid, 5s));
        }
        if (proxy_log.joinable()) {
            proxy_log.join(); // the proxy has exited: its stderr is at EOF
        }
        return worst;
    };

    // Readiness from events: each worker announces itself once its sockets are connected.
    std::uint64_t ready = 0;
    while (ready < workers) {
        auto m = sink.recv(10s);
        if (!m) {
            std::cerr << "zmqkit-demo: only " << ready << " of " << workers
                      << " workers became ready within 10 s\n";
            stop_children();
            return 69;
        }
        ready += m->header().type == "worker.ready" ? 1U : 0U;
    }

    // Place the orders. The source does not wait for workers: it only queues.
    patterns::source checkout(context, ">" + frontend);
    std::vector<message_id> placed(orders); // order n's message id at [n - 1], set by send()
    const auto t0 = std::chrono::steady_clock::now();
    std::uint64_t send_failures = 0;
    std::thread producer([&] {
        for (std::uint64_t n = 1; n <= orders; ++n) {
            auto m = message::pack(order{n, "customer-" + std::to_string(n % 97), 100 + n % 9000});
            m.header().type = "order.placed";
            while (!checkout.send(m)) {
                ++send_failures; // HWM full for the send timeout: retry, never drop
            }
            placed[n - 1] = m.id();
        }
    });
    // Each result carries its order's message id as correlation id; matched after the producer
    // has finished (the producer owns `placed` until join()).
    std::unordered_map<message_id, charge, message_id_hash> charged;
    charged.reserve(orders);
    std::uint64_t duplicates = 0;
    std::uint64_t mismatched = 0;
    std::vector<message> samples;
    std::map<std::string, std::uint64_t> per_worker;
    for (std::uint64_t i = 0; i < orders; ++i) {
        auto m = sink.recv(10s);
        if (!m) {
            break;
        }
        if (m->header().type != "order.charged") {
            --i;
            continue;
        }
        auto c = m->body_as<charge>();
        per_worker[c.charged_by]++;
        if (m->causation_id() != m->correlation_id()) {
            ++mismatched; // one hop: the order itself started the conversation
        }
        if (!charged.emplace(m->correlation_id(), c).second) {
            ++duplicates;
        }
        if (samples.size() < 3 && c.order_number % 5000 == 1) {
            samples.push_back(std::move(*m));
        }
    }
    const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0);
    producer.join();
    std::uint64_t lost = 0;
    for (std::uint64_t n = 1; n <= orders; ++n) {
        auto it = charged.find(placed[n - 1]);
        if (it == charged.end() || it->second.order_number != n) {
            ++lost; // never came back, or came back for another order
        }
    }

    for (const auto& s : samples) {
        const auto c = s.body_as<charge>();
        std::cout << "trace: order #" << c.order_number << " (message "
                  << short_id(s.correlation_id()) << ") -> order.charged by " << c.charged_by
                  << " pid " << c.pid << " (message " << short_id(s.id()) << ", correlation "
                  << short_id(s.correlation_id()) << ", causation " << short_id(s.causation_id())
                  << ")\n";
    }
    for (const auto& [name, n] : per_worker) {
        std::cout << "load: " << name << " charged " << n << " orders\n";
    }

    // Ask the proxy for its counters over its control socket (zmq_proxy_steerable's STATISTICS).
    zmq::socket_t req(context, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(control);
    req.send(zmq::str_buffer("STATUS"));
    zmq::pollitem_t item{req.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 2s) > 0) {
        zmq::message_t reply;
        if (req.recv(reply)) {
            std::cout << "proxy status: " << reply.to_string() << "\n";
        }
    }

    const std::uint64_t received = charged.size();
    const int children_status = stop_children();
    std::cout << "summary: sent=" << orders << " received=" << received << " lost=" << lost
              << " duplicates=" << duplicates << " causation_mismatches=" << mismatched
              << " elapsed=" << elapsed.count() << "s rate="
              << static_cast<std::uint64_t>(static_cast<double>(received) / elapsed.count())
              << " msgs/s send_retries=" << send_failures << "\n";
    for (const char* f : {"/orders.sock", "/work.sock", "/results.sock", "/proxy.ctl"}) {
        // ipc files left by the proxy and the sink
        ::unlink((std::string(dir) + f).c_str());
    }
    ::rmdir(dir);
    if (lost != 0 || duplicates != 0 || mismatched != 0) {
        std::cout << "FAILED: every order must come back exactly once\n";
        return 1;
    }
    if (children_status != 0) {
        std::cout << "FAILED: a child process exited with status " << children_status << "\n";
        return 1;
    }
    std::cout << "OK: every order came back exactly once, traced by its correlation id\n";
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        if (argc > 1 && std::strcmp(argv[1], "worker") == 0) {
            return run_worker(argc, argv);
        }
        if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
            std::cout << "usage: zmqkit-demo [--orders N] [--workers N] [--transport tcp|ipc] "
                         "[--proxy PATH]\n"
                         "       zmqkit-demo worker --input EP --output EP --name NAME\n";
            return 0;
        }
        return run_demo(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "zmqkit-demo: " << e.what() << "\n";
        return 70;
    }
}
