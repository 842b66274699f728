// zmqkit-bench-durable — the durable proxy under load: confirmed throughput and confirm latency,
// spool recovery time, and the proxy's memory with a large backlog.
//
//   zmqkit-bench-durable throughput --producers N --size B --seconds S [--sync always] ...
//   zmqkit-bench-durable recovery --bytes 1GiB [--size B] [--runs N]
//   zmqkit-bench-durable backlog-rss --bytes 1GiB [--size B] [--producers N] [--groups G]
//   zmqkit-bench-durable groups-read --messages N --groups G [--size B]
//
// throughput and backlog-rss spawn the real zmqkit-proxy (--mode durable, default: the one
// built next to this program) with a fresh spool in a new directory under --dir (default
// /var/tmp: a real disk, so fdatasync is real; not tmpfs), frontend and backend on
// tcp://127.0.0.1:<free port>, a control socket on ipc://<dir>/ctl for STATUS. Producers are
// threads of this process, each with its own reliable_sender (DEALER) keeping --window
// messages unconfirmed. Taskset this program to pin the proxy too (children inherit it).
//
// throughput: producers send --size-byte bodies as fast as confirms allow (with --batch N > 1 in
// producer batches of up to N messages, one ZeroMQ message each, a partly filled batch waiting
// at most --linger ms). After --warmup
// seconds, confirms are counted for --seconds; the confirm latency of a message is the time from
// reliable_sender::send() returning (the message was handed to libzmq) to its on_confirm
// callback. --consumers K adds K reliable_receiver threads acking everything (ingest +
// consume). The spool's STATUS counters (commits, fdatasync calls and time) are read at the
// start and end of the window to give the group-commit batch size and the fsync latency.
// --groups G (1 <= G <= K) puts consumer i in the consumer group "g<i mod G>" (created at
// earliest), so that every group gets every message; consumed msgs/s is then reported per
// group. Without it the consumers share the default queue.
//
// recovery: fills a spool with --bytes of messages through the spool API (sync none, committed
// every 4096 appends), closes it, then opens it --runs times (open = recovery, as
// durable_proxy::start() does), alternately after dropping the page cache (cold; needs root:
// /proc/sys/vm/drop_caches) and without (warm). Reports the median of each.
//
// backlog-rss: with no consumer, producers send --bytes of --size-byte bodies (all confirmed);
// the proxy's VmRSS / VmHWM are read from /proc/<pid>/status. Then the proxy is restarted on
// that spool (recovery time as the proxy sees it, RSS after recovery), a consumer drains it
// all, and the RSS is read again. With --groups G: G consumer groups g0..g<G-1> are created at
// earliest through the spool API before the proxy starts (with --default-queue off), so every
// group holds the whole backlog; after the restart one consumer drains group g0 only (the
// others still hold everything).
//
// groups-read: fills a spool with --messages N bodies through the spool API (sync none, as
// recovery fills; --default-queue off, the consumer groups created at earliest before the
// first append), starts the proxy on it (--default-queue off) and attaches G reliable_receiver
// threads, each in its own group, acking everything; times each group until it has received
// and acked all N (msgs/s per group, and all groups together) and reads the proxy's disk bytes
// (/proc/<pid>/io read_bytes, delta over the read; write_bytes and the spool's fdatasync count
// too, though write_bytes is page-cache accounting, not what the proxy wrote). Two passes over two
// sets of groups: cold (the page cache dropped after the proxy started, i.e. after recovery read
// the log; needs root) and warm (right after, the log in the page cache).
//
// Output: human-readable lines, and one line per result starting with "RESULT " of key=value
// pairs for scripts. Exit status 1 if something failed (proxy did not start, messages lost).
#include <zmqkit/codec.hpp>
#include <zmqkit/header.hpp>
#include <zmqkit/message.hpp>
#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/spool.hpp>

#include <zmq.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
using zmqkit::patterns::reliable_receiver;
using zmqkit::patterns::reliable_receiver_options;
using zmqkit::patterns::reliable_sender;
using zmqkit::patterns::reliable_sender_options;

// ---- command line -----------------------------------------------------------------------------

struct options {
    std::string mode;
    int producers = 4;
    int consumers = 0;
    std::size_t size = 64;
    double seconds = 10;
    double warmup = 2;
    std::size_t window = 64;
    std::size_t batch = 1;               // reliable_sender batch_messages (1: no batching)
    std::chrono::milliseconds linger{5}; // reliable_sender linger (with --batch > 1)
    std::string sync = "always";
    std::uint64_t bytes = 1ull << 30;
    int runs = 5;
    std::uint32_t credit = 1000;      // reliable_receiver credit of the consumers
    int groups = 0;                   // throughput, backlog-rss, groups-read: consumer groups
    std::uint64_t messages = 1000000; // groups-read: messages in the spool
    int io_threads = 1;
    std::string dir = "/var/tmp";
    std::string proxy; // path of zmqkit-proxy
    std::vector<std::string> proxy_args;
    bool keep = false; // keep the spool directory
};

void usage(std::ostream& out) {
    out << "usage: zmqkit-bench-durable MODE [options]\n"
           "modes:\n"
           "  throughput    confirmed msgs/s and confirm latency through zmqkit-proxy --mode "
           "durable\n"
           "  recovery      time to open (recover) a spool of --bytes, cold and warm cache\n"
           "  backlog-rss   proxy RSS with --bytes waiting, after a restart, after draining\n"
           "  groups-read   --groups G groups each reading the same --messages N from a spool\n"
           "options:\n"
           "  --producers N     producer threads, one reliable_sender each (default 4)\n"
           "  --consumers N     throughput: reliable_receiver threads acking (default 0)\n"
           "  --size B          body bytes (default 64)\n"
           "  --seconds S       throughput: measured seconds (default 10)\n"
           "  --warmup S        throughput: seconds before measuring (default 2)\n"
           "  --window N        unconfirmed messages per producer (default 64)\n"
           "  --batch N         messages per producer batch, one ZeroMQ message (default 1: "
           "none)\n"
           "  --linger MS       how long a partly filled batch may wait (default 5)\n"
           "  --sync POLICY     proxy --sync: always | interval:<ms> | none (default always)\n"
           "  --bytes N         recovery, backlog-rss: spool size; suffixes KiB MiB GiB "
           "(default 1GiB)\n"
           "  --runs N          recovery: opens, alternately cold and warm (default 5)\n"
           "  --groups G        throughput: spread the consumers over G consumer groups;\n"
           "                    backlog-rss: G groups hold the backlog; groups-read: G groups\n"
           "                    reading (default 0: none, the default queue)\n"
           "  --credit N        reliable_receiver credit of the consumers (default 1000)\n"
           "  --messages N      groups-read: messages in the spool (default 1000000)\n"
           "  --io-threads N    zmq I/O threads of the producers' context (default 1)\n"
           "  --dir DIR         where the spool directory is made (default /var/tmp)\n"
           "  --proxy PATH      zmqkit-proxy binary (default: ../../bin/zmqkit-proxy from here)\n"
           "  --proxy-arg ARG   extra argument for the proxy (repeatable, e.g. --batch=1024)\n"
           "  --keep            keep the spool directory\n";
}

std::optional<std::uint64_t> parse_size(std::string_view t) {
    std::uint64_t v = 0;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc{}) {
        return std::nullopt;
    }
    const std::string_view suffix(p, static_cast<std::size_t>(t.data() + t.size() - p));
    if (suffix.empty() || suffix == "B") {
        return v;
    }
    if (suffix == "KiB" || suffix == "K") {
        return v << 10;
    }
    if (suffix == "MiB" || suffix == "M") {
        return v << 20;
    }
    if (suffix == "GiB" || suffix == "G") {
        return v << 30;
    }
    return std::nullopt;
}

std::optional<options> parse_args(int argc, char** argv) {
    options o;
    if (argc < 2) {
        usage(std::cerr);
        return std::nullopt;
    }
    o.mode = argv[1];
    if (o.mode == "--help" || o.mode == "-h") {
        usage(std::cout);
        std::exit(0);
    }
    if (o.mode != "throughput" && o.mode != "recovery" && o.mode != "backlog-rss" &&
        o.mode != "groups-read") {
        std::cerr << "zmqkit-bench-durable: unknown mode '" << o.mode << "'\n";
        usage(std::cerr);
        return std::nullopt;
    }
    for (int i = 2; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--keep") {
            o.keep = true;
            continue;
        }
        if (a == "--help" || a == "-h") {
            usage(std::cout);
            std::exit(0);
        }
        if (i + 1 >= argc) {
            std::cerr << "zmqkit-bench-durable: " << a << " needs a value\n";
            return std::nullopt;
        }
        const std::string v = argv[++i];
        auto bad = [&] {
            std::cerr << "zmqkit-bench-durable: bad value '" << v << "' for " << a << "\n";
            return std::nullopt;
        };
        try {
            if (a == "--producers") {
                o.producers = std::stoi(v);
            } else if (a == "--consumers") {
                o.consumers = std::stoi(v);
            } else if (a == "--size") {
                auto s = parse_size(v);
                if (!s) {
                    return bad();
                }
                o.size = *s;
            } else if (a == "--seconds") {
                o.seconds = std::stod(v);
            } else if (a == "--warmup") {
                o.warmup = std::stod(v);
            } else if (a == "--window") {
                o.window = std::stoul(v);
            } else if (a == "--batch") {
                o.batch = std::stoul(v);
            } else if (a == "--linger") {
                o.linger = std::chrono::milliseconds(std::stol(v));
            } else if (a == "--sync") {
                o.sync = v;
            } else if (a == "--bytes") {
                auto s = parse_size(v);
                if (!s) {
                    return bad();
                }
                o.bytes = *s;
            } else if (a == "--runs") {
                o.runs = std::stoi(v);
            } else if (a == "--groups") {
                o.groups = std::stoi(v);
            } else if (a == "--credit") {
                o.credit = static_cast<std::uint32_t>(std::stoul(v));
            } else if (a == "--messages") {
                o.messages = std::stoull(v);
            } else if (a == "--io-threads") {
                o.io_threads = std::stoi(v);
            } else if (a == "--dir") {
                o.dir = v;
            } else if (a == "--proxy") {
                o.proxy = v;
            } else if (a == "--proxy-arg") {
                o.proxy_args.push_back(v);
            } else {
                std::cerr << "zmqkit-bench-durable: unknown option " << a << "\n";
                return std::nullopt;
            }
        } catch (const std::exception&) {
            return bad();
        }
    }
    if (o.producers < 1 || o.consumers < 0 || o.window < 1 || o.seconds <= 0 || o.runs < 1 ||
        o.io_threads < 1 || o.batch < 1 || o.linger.count() < 0) {
        std::cerr << "zmqkit-bench-durable: counts and durations must be positive\n";
        return std::nullopt;
    }
    if (o.groups < 0 || (o.mode == "throughput" && o.groups > o.consumers) ||
        (o.mode == "groups-read" && (o.groups < 1 || o.messages < 1))) {
        std::cerr << "zmqkit-bench-durable: --groups needs 1 <= G (<= --consumers for "
                     "throughput), --messages >= 1\n";
        return std::nullopt;
    }
    return o;
}

// ---- small helpers ----------------------------------------------------------------------------

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string fixed(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

double median(std::vector<double> v) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The value at quantile q (0..1) of v (sorted in place), nearest rank.
double quantile(std::vector<std::uint32_t>& v, double q) {
    if (v.empty()) {
        return 0;
    }
    const auto k = static_cast<std::size_t>(std::min<double>(
        static_cast<double>(v.size()) - 1, std::ceil(q * static_cast<double>(v.size())) - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

// A free TCP port on 127.0.0.1 (bound and released; the proxy binds it right after).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
        port = ntohs(a.sin_port);
    }
    ::close(fd);
    return port;
}

// "VmRSS" / "VmHWM" of a process, in KiB (0 if unknown).
std::uint64_t proc_status_kib(pid_t pid, std::string_view key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) == 0 && line.size() > key.size() && line[key.size()] == ':') {
            return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10);
        }
    }
    return 0;
}

// CPU seconds (user + system) a process used so far.
double proc_cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = s.rfind(')');
    if (close == std::string::npos) {
        return 0;
    }
    std::istringstream rest(s.substr(close + 2));
    std::string field;
    std::uint64_t utime = 0, stime = 0;
    for (int i = 3; rest >> field; ++i) { // field 3 is the state
        if (i == 14) {
            utime = std::stoull(field);
        } else if (i == 15) {
            stime = std::stoull(field);
            break;
        }
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// read_bytes of /proc/<pid>/io: bytes the process really read from the disk (not the page
// cache). Needs to be its parent or root; 0 if unreadable.
std::uint64_t proc_io_bytes(pid_t pid, std::string_view key = "read_bytes") {
    std::ifstream in("/proc/" + std::to_string(pid) + "/io");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) == 0 && line.size() > key.size() && line[key.size()] == ':') {
            return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10);
        }
    }
    return 0;
}

// The number after "key": in a flat JSON text (0 if absent).
double json_number(const std::string& json, std::string_view key) {
    std::string k;
    k.reserve(key.size() + 3);
    k.append(1, '"').append(key).append("\":");
    const auto at = json.find(k);
    if (at == std::string::npos) {
        return 0;
    }
    return std::strtod(json.c_str() + at + k.size(), nullptr);
}

// `key` of the consumer group `name` in a STATUS JSON text (-1 if the group is not there).
double group_number(const std::string& json, std::string_view name, std::string_view key) {
    const std::string k = "\"name\":\"" + std::string(name) + "\"";
    const auto at = json.find(k);
    if (at == std::string::npos) {
        return -1;
    }
    const auto end = json.find('}', at);
    return json_number(json.substr(at, end == std::string::npos ? end : end - at), key);
}

std::string mib(std::uint64_t bytes) {
    return fixed(static_cast<double>(bytes) / (1 << 20), 1);
}

bool drop_page_cache() {
    ::sync();
    std::ofstream f("/proc/sys/vm/drop_caches");
    if (!f) {
        return false;
    }
    f << "3\n";
    f.flush();
    return static_cast<bool>(f);
}

// A scratch directory under `parent`, removed on destruction unless kept.
struct scratch_dir {
    fs::path path;
    bool keep = false;
    explicit scratch_dir(const std::string& parent, bool k) : keep(k) {
        std::string templ = (fs::path(parent) / "zmqkit-bench-durable.XXXXXX").string();
        if (::mkdtemp(templ.data()) == nullptr) {
            throw std::runtime_error("cannot create a directory under " + parent + ": " +
                                     std::strerror(errno));
        }
        path = templ;
    }
    ~scratch_dir() {
        if (keep) {
            std::cout << "kept " << path.string() << "\n";
            return;
        }
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
};

// ---- the proxy process ------------------------------------------------------------------------

class proxy_process {
public:
    proxy_process(const options& o, const fs::path& dir, std::string binary,
                  std::vector<std::string> extra_args = {})
        : opt_(o), dir_(dir), binary_(std::move(binary)), extra_args_(std::move(extra_args)) {
        const int fp = free_port();
        int bp = free_port();
        for (int i = 0; i < 10 && bp == fp; ++i) {
            bp = free_port();
        }
        frontend_ = "tcp://127.0.0.1:" + std::to_string(fp);
        backend_ = "tcp://127.0.0.1:" + std::to_string(bp);
        control_ = "ipc://" + (dir / "ctl").string();
    }
    ~proxy_process() { stop(); }
    proxy_process(const proxy_process&) = delete;
    proxy_process& operator=(const proxy_process&) = delete;

    // Starts it and waits until STATUS answers (at most `timeout`). Returns the time that took.
    double start(zmq::context_t& ctx, std::chrono::milliseconds timeout = 120s) {
        std::vector<std::string> args{
            binary_,      "--mode",  "durable",   "--spool",         (dir_ / "spool").string(),
            "--frontend", frontend_, "--backend", backend_,          "--control",
            control_,     "--sync",  opt_.sync,   "--start-timeout", "300s"};
        args.insert(args.end(), extra_args_.begin(), extra_args_.end());
        args.insert(args.end(), opt_.proxy_args.begin(), opt_.proxy_args.end());
        const auto log = (dir_ / "proxy.log").string();
        const auto t0 = clock_type::now();
        pid_ = ::fork();
        if (pid_ < 0) {
            throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
        }
        if (pid_ == 0) {
            std::FILE* f = std::fopen(log.c_str(), "a");
            if (f != nullptr) {
                ::dup2(::fileno(f), 1);
                ::dup2(::fileno(f), 2);
            }
            std::vector<char*> argv;
            for (auto& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            std::perror("execv");
            ::_exit(127);
        }
        const auto deadline = t0 + timeout;
        while (clock_type::now() < deadline) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("zmqkit-proxy exited at start-up; its log:\n" +
                                         log_text());
            }
            if (auto s = status(ctx, 200ms)) {
                return seconds_since(t0);
            }
        }
        throw std::runtime_error("zmqkit-proxy did not answer STATUS in time; its log:\n" +
                                 log_text());
    }

    // The STATUS JSON, or nullopt if no reply within `timeout`.
    std::optional<std::string> status(zmq::context_t& ctx, std::chrono::milliseconds timeout) {
        zmq::socket_t req(ctx, zmq::socket_type::req);
        req.set(zmq::sockopt::linger, 0);
        req.set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout.count()));
        req.set(zmq::sockopt::sndtimeo, static_cast<int>(timeout.count()));
        req.connect(control_);
        try {
            if (!req.send(zmq::buffer(std::string_view("STATUS")), zmq::send_flags::none)) {
                return std::nullopt;
            }
            zmq::message_t reply;
            if (!req.recv(reply, zmq::recv_flags::none)) {
                return std::nullopt;
            }
            return reply.to_string();
        } catch (const zmq::error_t&) {
            return std::nullopt;
        }
    }

    // SIGTERM, then wait (bounded; SIGKILL after 30 s). Returns the exit status or -1.
    int stop() {
        if (pid_ <= 0) {
            return -1;
        }
        ::kill(pid_, SIGTERM);
        int st = 0;
        const auto deadline = clock_type::now() + 30s;
        while (::waitpid(pid_, &st, WNOHANG) == 0) {
            if (clock_type::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &st, 0);
                break;
            }
            std::this_thread::sleep_for(10ms);
        }
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] const std::string& frontend() const noexcept { return frontend_; }
    [[nodiscard]] const std::string& backend() const noexcept { return backend_; }
    [[nodiscard]] std::string log_text() const {
        std::ifstream in(dir_ / "proxy.log");
        std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
    }

private:
    const options& opt_;
    fs::path dir_;
    std::string binary_;
    std::vector<std::string> extra_args_;
    std::string frontend_, backend_, control_;
    pid_t pid_ = -1;
};

std::string default_proxy_path(const char* argv0) {
    std::error_code ec;
    auto self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) {
        self = fs::absolute(argv0);
    }
    return (self.parent_path() / ".." / ".." / "bin" / "zmqkit-proxy").lexically_normal().string();
}

// ---- producers and consumers ------------------------------------------------------------------

// 0 warm-up, 1 measuring, 2 stop sending.
std::atomic<int> phase{0};
std::uint32_t consumer_credit = 1000; // --credit

struct producer_result {
    std::atomic<std::uint64_t> confirmed{0};
    std::atomic<std::uint64_t> sent{0};
    std::uint64_t rejected = 0, resent = 0, unconfirmed_at_end = 0, send_timeouts = 0;
    std::vector<std::uint32_t> latency_us; // confirms that arrived while measuring
    std::string error;
};

// Sends until phase 2 (or `quota` messages if non-zero), then flushes.
void run_producer(zmq::context_t& ctx, const std::string& endpoint, const options& o,
                  std::uint64_t quota, producer_result& r) {
    try {
        reliable_sender_options so;
        so.endpoint = endpoint;
        so.window = o.window;
        so.retry_interval = 10s; // no resends in a healthy run: a resend is a finding
        so.batch_messages = o.batch;
        so.linger = o.linger;
        so.socket.name = "bench-producer";
        reliable_sender sender(ctx, so);
        std::unordered_map<zmqkit::message_id, clock_type::time_point, zmqkit::message_id_hash>
            sent_at;
        sent_at.reserve(o.window * 2);
        if (quota == 0) {
            r.latency_us.reserve(1 << 20);
        }
        sender.on_confirm([&](const zmqkit::message_id& id) {
            const auto now = clock_type::now();
            const auto it = sent_at.find(id);
            if (it != sent_at.end()) {
                if (phase.load(std::memory_order_relaxed) == 1) {
                    const auto us =
                        std::chrono::duration_cast<std::chrono::microseconds>(now - it->second)
                            .count();
                    r.latency_us.push_back(static_cast<std::uint32_t>(
                        std::min<std::int64_t>(us, std::numeric_limits<std::uint32_t>::max())));
                }
                sent_at.erase(it);
            }
            r.confirmed.fetch_add(1, std::memory_order_relaxed);
        });
        sender.on_reject([&](const zmqkit::message_id& id, std::string_view) {
            sent_at.erase(id);
            ++r.rejected;
        });
        const std::string body(o.size, 'x');
        zmqkit::message m{std::string_view(body)};
        std::uint64_t n = 0;
        while (phase.load(std::memory_order_relaxed) < 2 && (quota == 0 || n < quota)) {
            auto& h = m.header();
            h.id = zmqkit::message_id{};
            h.correlation_id = zmqkit::message_id{};
            if (!sender.send(m, 1s)) {
                ++r.send_timeouts; // window full for 1 s: confirms are late; try again
                continue;
            }
            sent_at.emplace(h.id, clock_type::now());
            ++n;
            r.sent.store(n, std::memory_order_relaxed);
        }
        (void)sender.flush(60s);
        r.resent = sender.resent();
        r.unconfirmed_at_end = sender.unconfirmed();
    } catch (const std::exception& e) {
        r.error = e.what();
    }
}

struct consumer_result {
    std::atomic<std::uint64_t> received{0};
    std::uint64_t duplicates = 0;
    clock_type::time_point done{}; // when `target` messages were received and their acks sent
    std::string error;
};

// Receives and acks until `stop` (and nothing arrived for 200 ms), or until `target` (if
// non-zero) in total. `group`: the consumer group to read in (empty: the default queue).
void run_consumer(zmq::context_t& ctx, const std::string& endpoint, const std::atomic<bool>& stop,
                  consumer_result& r, std::string group = {}, std::uint64_t target = 0) {
    try {
        reliable_receiver_options ro;
        ro.endpoint = endpoint;
        ro.credit = consumer_credit;
        ro.dedup_window = 0; // the benchmark does not need duplicate suppression
        ro.socket.name = "bench-consumer";
        ro.group = std::move(group);
        reliable_receiver receiver(ctx, ro);
        std::uint64_t n = 0;
        while (target == 0 || n < target) {
            auto d = receiver.recv(200ms);
            if (!d) {
                if (stop.load()) {
                    break;
                }
                continue;
            }
            receiver.ack(*d);
            ++n;
            r.received.fetch_add(1, std::memory_order_relaxed);
        }
        receiver.flush_acks();
        r.done = clock_type::now();
        while (target != 0 && !stop.load()) { // stay connected until the acks are in
            std::this_thread::sleep_for(10ms);
        }
        r.duplicates = receiver.duplicates();
    } catch (const std::exception& e) {
        r.error = e.what();
    }
}

struct spool_counters {
    double commits = 0, syncs = 0, sync_avg_us = 0, appended = 0, acked = 0;
    static spool_counters from(const std::string& json) {
        spool_counters c;
        c.commits = json_number(json, "commits");
        c.syncs = json_number(json, "syncs");
        c.sync_avg_us = json_number(json, "sync_avg_us");
        c.appended = json_number(json, "appended");
        c.acked = json_number(json, "acked");
        return c;
    }
};

// ---- throughput -------------------------------------------------------------------------------

int run_throughput(const options& o, const std::string& proxy_bin) {
    scratch_dir dir(o.dir, o.keep);
    zmq::context_t ctx(o.io_threads);
    int status = 0;
    {
        proxy_process proxy(o, dir.path, proxy_bin);
        proxy.start(ctx);
        std::vector<std::unique_ptr<producer_result>> results;
        std::vector<std::unique_ptr<consumer_result>> cresults;
        std::vector<std::thread> threads, cthreads;
        std::atomic<bool> consumers_stop{false};
        phase = 0;
        for (int i = 0; i < o.consumers; ++i) {
            cresults.push_back(std::make_unique<consumer_result>());
            cthreads.emplace_back(run_consumer, std::ref(ctx), proxy.backend(),
                                  std::cref(consumers_stop), std::ref(*cresults.back()),
                                  o.groups > 0 ? "g" + std::to_string(i % o.groups) : "", 0);
        }
        // Messages received by the consumers of each group (one entry without groups).
        auto consumed_per_group = [&] {
            std::vector<std::uint64_t> n(static_cast<std::size_t>(std::max(o.groups, 1)), 0);
            for (std::size_t i = 0; i < cresults.size(); ++i) {
                n[i % n.size()] += cresults[i]->received.load(std::memory_order_relaxed);
            }
            return n;
        };
        for (int i = 0; i < o.producers; ++i) {
            results.push_back(std::make_unique<producer_result>());
            threads.emplace_back(run_producer, std::ref(ctx), proxy.frontend(), std::cref(o), 0,
                                 std::ref(*results.back()));
        }
        auto confirmed = [&] {
            std::uint64_t n = 0;
            for (const auto& r : results) {
                n += r->confirmed.load(std::memory_order_relaxed);
            }
            return n;
        };
        auto consumed = [&] {
            std::uint64_t n = 0;
            for (const auto& r : cresults) {
                n += r->received.load(std::memory_order_relaxed);
            }
            return n;
        };
        std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
        const auto s0 = spool_counters::from(proxy.status(ctx, 5s).value_or(""));
        const double cpu0 = proc_cpu_seconds(proxy.pid());
        const double self_cpu0 = proc_cpu_seconds(::getpid());
        const std::uint64_t c0 = confirmed();
        const std::uint64_t k0 = consumed();
        const auto g0 = consumed_per_group();
        const auto t0 = clock_type::now();
        phase = 1;
        std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
        phase = 2;
        const double elapsed = seconds_since(t0);
        const std::uint64_t c1 = confirmed();
        const std::uint64_t k1 = consumed();
        const auto g1 = consumed_per_group();
        const double cpu1 = proc_cpu_seconds(proxy.pid());
        const double self_cpu1 = proc_cpu_seconds(::getpid());
        const std::string status_json = proxy.status(ctx, 5s).value_or("");
        const auto s1 = spool_counters::from(status_json);
        const std::uint64_t rss_kib = proc_status_kib(proxy.pid(), "VmRSS");
        for (auto& t : threads) {
            t.join();
        }
        consumers_stop = true;
        for (auto& t : cthreads) {
            t.join();
        }
        proxy.stop();

        std::vector<std::uint32_t> lat;
        std::uint64_t sent = 0, unconfirmed = 0, rejected = 0, resent = 0, timeouts = 0;
        for (auto& r : results) {
            lat.insert(lat.end(), r->latency_us.begin(), r->latency_us.end());
            sent += r->sent.load();
            unconfirmed += r->unconfirmed_at_end;
            rejected += r->rejected;
            resent += r->resent;
            timeouts += r->send_timeouts;
            if (!r->error.empty()) {
                std::cerr << "producer failed: " << r->error << "\n";
                status = 1;
            }
        }
        for (auto& r : cresults) {
            if (!r->error.empty()) {
                std::cerr << "consumer failed: " << r->error << "\n";
                status = 1;
            }
        }
        const double rate = static_cast<double>(c1 - c0) / elapsed;
        const double consume_rate = static_cast<double>(k1 - k0) / elapsed;
        std::vector<double> group_rates;
        std::string group_list;
        for (std::size_t g = 0; g < g1.size() && o.groups > 0; ++g) {
            group_rates.push_back(static_cast<double>(g1[g] - g0[g]) / elapsed);
            group_list += (group_list.empty() ? "" : ",") + fixed(group_rates.back(), 0);
        }
        const double group_min =
            group_rates.empty() ? 0 : *std::min_element(group_rates.begin(), group_rates.end());
        const double group_median = median(group_rates);
        const double p50 = quantile(lat, 0.50) / 1000.0;
        const double p99 = quantile(lat, 0.99) / 1000.0;
        const double p999 = quantile(lat, 0.999) / 1000.0;
        const double commits = s1.commits - s0.commits;
        const double syncs = s1.syncs - s0.syncs;
        const double sync_us =
            syncs > 0 ? (s1.sync_avg_us * s1.syncs - s0.sync_avg_us * s0.syncs) / syncs : 0;
        const double batch = commits > 0 ? (s1.appended - s0.appended) / commits : 0;
        const double proxy_cpu = (cpu1 - cpu0) / elapsed;
        const double bench_cpu = (self_cpu1 - self_cpu0) / elapsed;
        // CPU of everything (proxy + producers + consumers) per confirmed message: steadier
        // than msgs/s on a shared machine.
        const double cpu_us = rate > 0 ? (proxy_cpu + bench_cpu) / rate * 1e6 : 0;
        std::cout << "durable throughput: producers=" << o.producers << " consumers=" << o.consumers
                  << " groups=" << o.groups << " size=" << o.size << " window=" << o.window
                  << " batch=" << o.batch << " linger_ms=" << o.linger.count() << " sync=" << o.sync
                  << "\n"
                  << "  confirmed " << fixed(rate, 0) << " msgs/s ("
                  << fixed(rate * static_cast<double>(o.size) / 1e6, 2) << " MB/s of bodies)"
                  << (o.consumers > 0 ? ", consumed " + fixed(consume_rate, 0) + " msgs/s" : "")
                  << (o.groups > 0 ? " (per group: " + group_list + ")" : "") << "\n"
                  << "  confirm latency p50 " << fixed(p50, 2) << " ms, p99 " << fixed(p99, 2)
                  << " ms, p99.9 " << fixed(p999, 2) << " ms (" << lat.size() << " samples)\n"
                  << "  spool: " << fixed(commits / elapsed, 0) << " commits/s, "
                  << fixed(syncs / elapsed, 0) << " fdatasync/s, avg " << fixed(sync_us, 0)
                  << " us each, " << fixed(batch, 1) << " messages per commit\n"
                  << "  cpu: proxy " << fixed(proxy_cpu * 100, 0) << " %, producers+consumers "
                  << fixed(bench_cpu * 100, 0) << " %, " << fixed(cpu_us, 2)
                  << " us of CPU per confirmed message; proxy RSS " << rss_kib / 1024 << " MiB\n"
                  << "  sent " << sent << ", unconfirmed at end " << unconfirmed << ", rejected "
                  << rejected << ", resent " << resent << ", send timeouts " << timeouts << "\n";
        std::cout << "RESULT mode=throughput producers=" << o.producers
                  << " consumers=" << o.consumers << " groups=" << o.groups << " size=" << o.size
                  << " window=" << o.window << " batch=" << o.batch
                  << " linger_ms=" << o.linger.count() << " sync=" << o.sync
                  << " msgs_per_s=" << fixed(rate, 0)
                  << " mb_per_s=" << fixed(rate * static_cast<double>(o.size) / 1e6, 2)
                  << " consumed_per_s=" << fixed(consume_rate, 0)
                  << " group_median_per_s=" << fixed(group_median, 0)
                  << " group_min_per_s=" << fixed(group_min, 0)
                  << " group_per_s=" << (group_list.empty() ? "-" : group_list)
                  << " p50_ms=" << fixed(p50, 3) << " p99_ms=" << fixed(p99, 3)
                  << " p999_ms=" << fixed(p999, 3)
                  << " commits_per_s=" << fixed(commits / elapsed, 0)
                  << " syncs_per_s=" << fixed(syncs / elapsed, 0)
                  << " sync_avg_us=" << fixed(sync_us, 0) << " batch=" << fixed(batch, 1)
                  << " proxy_cpu=" << fixed(proxy_cpu, 2) << " bench_cpu=" << fixed(bench_cpu, 2)
                  << " cpu_us_per_msg=" << fixed(cpu_us, 3) << " proxy_rss_mib=" << rss_kib / 1024
                  << " unconfirmed=" << unconfirmed << " resent=" << resent << "\n";
        if (unconfirmed != 0 || rejected != 0) {
            std::cerr << "zmqkit-bench-durable: " << unconfirmed << " unconfirmed and " << rejected
                      << " rejected messages at the end\n";
            status = 1;
        }
    }
    return status;
}

// ---- recovery ---------------------------------------------------------------------------------

int run_recovery(const options& o) {
    scratch_dir dir(o.dir, o.keep);
    zmqkit::spool_options so;
    so.directory = dir.path / "spool";
    so.sync = zmqkit::sync_policy::parse("none");
    const std::string body(o.size, 'x');
    std::uint64_t messages = 0, record_bytes = 0;
    const auto tf = clock_type::now();
    {
        zmqkit::spool sp(so);
        std::uint64_t since_commit = 0;
        while (record_bytes < o.bytes) {
            const auto h = zmqkit::header::fresh();
            const std::string hb = zmqkit::encode_header(h);
            const auto r = sp.append(hb, body);
            if (r.outcome != zmqkit::append_result::status::appended) {
                std::cerr << "append failed: " << r.reason << "\n";
                return 1;
            }
            ++messages;
            // record header 24 + appended_ns 8 + id 16 + header length 4 + header + body
            record_bytes += 24 + 8 + 16 + 4 + hb.size() + body.size();
            if (++since_commit == 4096) {
                if (!sp.commit()) {
                    std::cerr << "commit failed: " << sp.stats().failure << "\n";
                    return 1;
                }
                since_commit = 0;
            }
        }
        (void)sp.commit();
        const auto st = sp.stats();
        std::cout << "filled " << messages << " messages of " << o.size << " B, "
                  << mib(record_bytes) << " MiB of records, " << st.segments << " segments, "
                  << mib(st.disk_bytes) << " MiB on disk, in " << fixed(seconds_since(tf), 1)
                  << " s\n";
    }
    ::sync();
    const bool can_drop = drop_page_cache();
    if (!can_drop) {
        std::cout << "cannot drop the page cache (not root?): every run is warm\n";
    }
    std::vector<double> cold, warm, cold_scan, warm_scan;
    for (int i = 0; i < o.runs; ++i) {
        const bool is_cold = can_drop && i % 2 == 0;
        if (is_cold) {
            (void)drop_page_cache();
        }
        const auto t0 = clock_type::now();
        double scan = 0;
        std::uint64_t found = 0, records = 0;
        {
            zmqkit::spool sp(so);
            scan = std::chrono::duration<double>(sp.recovery().duration).count();
            found = sp.recovery().messages;
            records = sp.recovery().records;
            const double open = seconds_since(t0);
            (is_cold ? cold : warm).push_back(open);
            (is_cold ? cold_scan : warm_scan).push_back(scan);
            std::cout << "open " << (i + 1) << " (" << (is_cold ? "cold" : "warm")
                      << "): " << fixed(open * 1000, 0) << " ms (recovery report "
                      << fixed(scan * 1000, 0) << " ms), " << found << " messages waiting, "
                      << records << " records\n";
            if (found != messages) {
                std::cerr << "recovered " << found << " messages, expected " << messages << "\n";
                return 1;
            }
        }
    }
    std::cout << "RESULT mode=recovery size=" << o.size << " messages=" << messages
              << " record_mib=" << mib(record_bytes) << " cold_ms=" << fixed(median(cold) * 1000, 0)
              << " warm_ms=" << fixed(median(warm) * 1000, 0) << " cold_runs=" << cold.size()
              << " warm_runs=" << warm.size()
              << " cold_report_ms=" << fixed(median(cold_scan) * 1000, 0)
              << " warm_report_ms=" << fixed(median(warm_scan) * 1000, 0) << "\n";
    return 0;
}

// ---- backlog RSS ------------------------------------------------------------------------------

// Creates consumer groups `names` at earliest in a new spool at `directory` (no default queue).
void create_groups(const fs::path& directory, const std::vector<std::string>& names) {
    zmqkit::spool_options so;
    so.directory = directory;
    so.sync = zmqkit::sync_policy::parse("none");
    so.default_queue = false;
    zmqkit::spool sp(so);
    for (const auto& n : names) {
        (void)sp.open_group(n, zmqkit::group_start{});
    }
    (void)sp.commit();
}

std::vector<std::string> group_names(const std::string& prefix, int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) {
        v.push_back(prefix + std::to_string(i));
    }
    return v;
}

int run_backlog_rss(const options& o, const std::string& proxy_bin) {
    scratch_dir dir(o.dir, o.keep);
    zmq::context_t ctx(o.io_threads);
    std::vector<std::string> extra;
    if (o.groups > 0) {
        create_groups(dir.path / "spool", group_names("g", o.groups));
        extra = {"--default-queue", "off"};
    }
    proxy_process proxy(o, dir.path, proxy_bin, extra);
    proxy.start(ctx);
    const std::uint64_t rss_idle = proc_status_kib(proxy.pid(), "VmRSS");
    const std::uint64_t total = (o.bytes + o.size - 1) / o.size;
    const std::uint64_t per = (total + static_cast<std::uint64_t>(o.producers) - 1) /
                              static_cast<std::uint64_t>(o.producers);
    std::vector<std::unique_ptr<producer_result>> results;
    std::vector<std::thread> threads;
    phase = 0;
    const auto tf = clock_type::now();
    std::uint64_t peak_during_fill = 0;
    for (int i = 0; i < o.producers; ++i) {
        results.push_back(std::make_unique<producer_result>());
        threads.emplace_back(run_producer, std::ref(ctx), proxy.frontend(), std::cref(o), per,
                             std::ref(*results.back()));
    }
    std::atomic<bool> filling{true};
    std::thread sampler([&] {
        while (filling.load()) {
            peak_during_fill = std::max(peak_during_fill, proc_status_kib(proxy.pid(), "VmRSS"));
            std::this_thread::sleep_for(100ms);
        }
    });
    std::uint64_t confirmed = 0, unconfirmed = 0;
    for (std::size_t i = 0; i < threads.size(); ++i) {
        threads[i].join();
        confirmed += results[i]->confirmed.load();
        unconfirmed += results[i]->unconfirmed_at_end;
    }
    filling = false;
    sampler.join();
    const double fill_s = seconds_since(tf);
    const auto st = proxy.status(ctx, 5s).value_or("");
    const std::uint64_t rss_backlog = proc_status_kib(proxy.pid(), "VmRSS");
    const std::uint64_t hwm_backlog = proc_status_kib(proxy.pid(), "VmHWM");
    std::cout << "filled " << confirmed << " confirmed messages of " << o.size << " B ("
              << mib(confirmed * o.size) << " MiB of bodies) in " << fixed(fill_s, 1) << " s ("
              << fixed(static_cast<double>(confirmed) / fill_s, 0) << " msgs/s); spool "
              << mib(static_cast<std::uint64_t>(json_number(st, "disk_bytes"))) << " MiB on disk, "
              << static_cast<std::uint64_t>(json_number(st, "messages")) << " waiting\n"
              << "proxy RSS: idle " << rss_idle / 1024 << " MiB, with the backlog "
              << rss_backlog / 1024 << " MiB (peak " << hwm_backlog / 1024
              << " MiB; sampled peak while filling " << peak_during_fill / 1024 << " MiB)\n";
    int status =
        unconfirmed == 0 && confirmed == per * static_cast<std::uint64_t>(o.producers) ? 0 : 1;

    // Restart on the full spool: recovery as the proxy sees it.
    proxy.stop();
    const bool dropped = drop_page_cache();
    const double start_s = proxy.start(ctx, 300s);
    const auto st2 = proxy.status(ctx, 5s).value_or("");
    const std::uint64_t rss_recovered = proc_status_kib(proxy.pid(), "VmRSS");
    const auto rec_at = st2.find("\"recovery\":");
    const double rec_ms =
        rec_at == std::string::npos ? 0 : json_number(st2.substr(rec_at), "duration_ms");
    std::cout << "restart on the backlog (" << (dropped ? "cold cache" : "warm cache")
              << "): ready in " << fixed(start_s * 1000, 0) << " ms (spool recovery "
              << fixed(rec_ms, 0) << " ms), "
              << static_cast<std::uint64_t>(json_number(st2, "messages"))
              << " waiting; RSS after recovery " << rss_recovered / 1024 << " MiB\n";
    if (o.groups > 0) {
        std::cout << o.groups << " consumer groups; g0 pending after the restart "
                  << static_cast<std::uint64_t>(group_number(st2, "g0", "pending")) << "\n";
    }

    // Drain with one consumer (with groups: in g0; the other groups keep everything).
    std::atomic<bool> stop{false};
    consumer_result cr;
    const auto td = clock_type::now();
    std::thread consumer(run_consumer, std::ref(ctx), proxy.backend(), std::cref(stop),
                         std::ref(cr), o.groups > 0 ? "g0" : "", 0);
    const auto drain_deadline = td + 600s;
    std::uint64_t peak_during_drain = 0;
    while (cr.received.load() < confirmed && clock_type::now() < drain_deadline) {
        peak_during_drain = std::max(peak_during_drain, proc_status_kib(proxy.pid(), "VmRSS"));
        std::this_thread::sleep_for(100ms);
    }
    const double drain_s = seconds_since(td);
    stop = true;
    consumer.join();
    // The last acks: until the proxy reports nothing waiting (bounded).
    std::string st3;
    for (const auto acks_deadline = clock_type::now() + 5s; clock_type::now() < acks_deadline;) {
        st3 = proxy.status(ctx, 5s).value_or("");
        if ((o.groups > 0 ? group_number(st3, "g0", "pending") : json_number(st3, "messages")) ==
            0) {
            break;
        }
    }
    const std::uint64_t rss_drained = proc_status_kib(proxy.pid(), "VmRSS");
    const std::uint64_t hwm_all = proc_status_kib(proxy.pid(), "VmHWM");
    const auto left = static_cast<std::uint64_t>(o.groups > 0 ? group_number(st3, "g0", "pending")
                                                              : json_number(st3, "messages"));
    std::cout << "drained " << cr.received.load() << " in " << fixed(drain_s, 1) << " s ("
              << fixed(static_cast<double>(cr.received.load()) / drain_s, 0) << " msgs/s), " << left
              << " left; RSS after draining " << rss_drained / 1024
              << " MiB (sampled peak while draining " << peak_during_drain / 1024
              << " MiB, VmHWM since restart " << hwm_all / 1024 << " MiB)\n";
    if (cr.received.load() < confirmed || left != 0) {
        status = 1;
    }
    proxy.stop();
    std::cout << "RESULT mode=backlog-rss groups=" << o.groups << " size=" << o.size
              << " messages=" << confirmed << " body_mib=" << mib(confirmed * o.size)
              << " rss_idle_mib=" << rss_idle / 1024 << " rss_backlog_mib=" << rss_backlog / 1024
              << " hwm_fill_mib=" << hwm_backlog / 1024
              << " peak_fill_mib=" << peak_during_fill / 1024
              << " restart_ms=" << fixed(start_s * 1000, 0) << " recovery_ms=" << fixed(rec_ms, 0)
              << " rss_recovered_mib=" << rss_recovered / 1024
              << " rss_drained_mib=" << rss_drained / 1024
              << " peak_drain_mib=" << peak_during_drain / 1024
              << " fill_msgs_per_s=" << fixed(static_cast<double>(confirmed) / fill_s, 0)
              << " drain_msgs_per_s=" << fixed(static_cast<double>(cr.received.load()) / drain_s, 0)
              << " hwm_restart_mib=" << hwm_all / 1024 << "\n";
    return status;
}

// ---- groups read ------------------------------------------------------------------------------

int run_groups_read(const options& o, const std::string& proxy_bin) {
    scratch_dir dir(o.dir, o.keep);
    const bool can_drop = ::access("/proc/sys/vm/drop_caches", W_OK) == 0;
    std::vector<std::string> passes;
    if (can_drop) {
        passes.emplace_back("cold");
    } else {
        std::cout << "cannot drop the page cache (not root?): the warm pass only\n";
    }
    passes.emplace_back("warm");
    // Fill: the groups of every pass first (at earliest), then the messages.
    zmqkit::spool_options so;
    so.directory = dir.path / "spool";
    so.sync = zmqkit::sync_policy::parse("none");
    so.default_queue = false;
    const std::string body(o.size, 'x');
    std::uint64_t disk_bytes = 0, record_bytes = 0;
    const auto tf = clock_type::now();
    {
        zmqkit::spool sp(so);
        for (const auto& pass : passes) {
            for (const auto& n : group_names(pass + "-", o.groups)) {
                (void)sp.open_group(n, zmqkit::group_start{});
            }
        }
        (void)sp.commit();
        for (std::uint64_t i = 0; i < o.messages; ++i) {
            const std::string hb = zmqkit::encode_header(zmqkit::header::fresh());
            const auto r = sp.append(hb, body);
            if (r.outcome != zmqkit::append_result::status::appended) {
                std::cerr << "append failed: " << r.reason << "\n";
                return 1;
            }
            // record header 24 + appended_ns 8 + id 16 + header length 4 + header + body
            record_bytes += 24 + 8 + 16 + 4 + hb.size() + body.size();
            if (i % 4096 == 4095 && !sp.commit()) {
                std::cerr << "commit failed: " << sp.stats().failure << "\n";
                return 1;
            }
        }
        (void)sp.commit();
        const auto st = sp.stats();
        disk_bytes = st.disk_bytes;
        std::cout << "filled " << o.messages << " messages of " << o.size << " B for "
                  << passes.size() << " x " << o.groups << " groups, " << mib(record_bytes)
                  << " MiB of records, " << st.segments << " segments, " << mib(disk_bytes)
                  << " MiB on disk, in " << fixed(seconds_since(tf), 1) << " s\n";
    }
    ::sync();
    zmq::context_t ctx(o.io_threads);
    proxy_process proxy(o, dir.path, proxy_bin, {"--default-queue", "off"});
    const std::uint64_t io_before = proc_io_bytes(proxy.pid()); // 0: not started yet
    const double start_s = proxy.start(ctx, 300s);
    const std::uint64_t io_recovery = proc_io_bytes(proxy.pid()) - io_before;
    std::cout << "proxy ready in " << fixed(start_s * 1000, 0) << " ms, read " << mib(io_recovery)
              << " MiB from the disk at start-up (recovery)\n";
    int status = 0;
    for (const auto& pass : passes) {
        const bool cold = pass == "cold";
        if (cold) {
            (void)drop_page_cache();
        }
        const auto names = group_names(pass + "-", o.groups);
        const std::uint64_t io0 = proc_io_bytes(proxy.pid());
        const std::uint64_t wr0 = proc_io_bytes(proxy.pid(), "write_bytes");
        const auto s0 = spool_counters::from(proxy.status(ctx, 5s).value_or(""));
        const double cpu0 = proc_cpu_seconds(proxy.pid());
        std::atomic<bool> stop{false};
        std::vector<std::unique_ptr<consumer_result>> results;
        std::vector<std::thread> threads;
        const auto t0 = clock_type::now();
        for (const auto& n : names) {
            results.push_back(std::make_unique<consumer_result>());
            threads.emplace_back(run_consumer, std::ref(ctx), proxy.backend(), std::cref(stop),
                                 std::ref(*results.back()), n, o.messages);
        }
        // Until every group has acked all (pending 0 in STATUS), at most 20 minutes.
        std::string st;
        bool settled = false;
        std::uint64_t peak_rss = 0;
        for (const auto deadline = t0 + 1200s; clock_type::now() < deadline;) {
            peak_rss = std::max(peak_rss, proc_status_kib(proxy.pid(), "VmRSS"));
            bool received = true;
            for (const auto& r : results) {
                received = received && r->received.load() >= o.messages &&
                           r->done != clock_type::time_point{};
            }
            if (received) {
                st = proxy.status(ctx, 5s).value_or("");
                settled = std::all_of(names.begin(), names.end(), [&](const std::string& n) {
                    return group_number(st, n, "pending") == 0;
                });
                if (settled) {
                    break;
                }
            }
            std::this_thread::sleep_for(20ms);
        }
        const double all_s = seconds_since(t0);
        const std::uint64_t io1 = proc_io_bytes(proxy.pid());
        const std::uint64_t wr1 = proc_io_bytes(proxy.pid(), "write_bytes");
        const double cpu1 = proc_cpu_seconds(proxy.pid());
        const std::uint64_t rss = proc_status_kib(proxy.pid(), "VmRSS");
        stop = true;
        for (auto& t : threads) {
            t.join();
        }
        std::vector<double> rates;
        std::string list;
        double redelivered = 0;
        for (std::size_t i = 0; i < results.size(); ++i) {
            const auto& r = *results[i];
            if (!r.error.empty()) {
                std::cerr << "consumer failed: " << r.error << "\n";
                status = 1;
            }
            const double s = std::chrono::duration<double>(r.done - t0).count();
            rates.push_back(s > 0 ? static_cast<double>(r.received.load()) / s : 0);
            list += (list.empty() ? "" : ",") + fixed(rates.back(), 0);
            redelivered += std::max(0.0, group_number(st, names[i], "redelivered"));
        }
        if (!settled) {
            std::cerr << "zmqkit-bench-durable: the groups did not settle all " << o.messages
                      << " messages in time\n";
            status = 1;
        }
        const double total = static_cast<double>(o.messages) * static_cast<double>(o.groups);
        const auto s1 = spool_counters::from(st);
        const double syncs = s1.syncs - s0.syncs;
        const double read_mib = static_cast<double>(io1 - io0) / (1 << 20);
        const double cpu_us = (cpu1 - cpu0) / total * 1e6;
        std::cout << pass << " pass, " << o.groups << " group(s) x " << o.messages
                  << " messages: all acked in " << fixed(all_s, 2) << " s ("
                  << fixed(total / all_s, 0) << " msgs/s delivered in all); per group " << list
                  << " msgs/s; proxy read " << fixed(read_mib, 1) << " MiB from the disk ("
                  << fixed(static_cast<double>(io1 - io0) / static_cast<double>(record_bytes), 2)
                  << " x the " << mib(record_bytes) << " MiB of records) and wrote "
                  << mib(wr1 - wr0) << " MiB by write_bytes ("
                  << fixed(static_cast<double>(wr1 - wr0) / total, 1) << " B per delivery; "
                  << fixed(syncs, 0) << " fdatasync, " << fixed(total / std::max(syncs, 1.0), 1)
                  << " deliveries per sync), proxy CPU " << fixed(cpu_us, 2)
                  << " us per delivery, RSS " << rss / 1024 << " MiB (peak " << peak_rss / 1024
                  << "), redelivered " << redelivered << "\n";
        std::cout << "RESULT mode=groups-read pass=" << pass << " groups=" << o.groups
                  << " messages=" << o.messages << " size=" << o.size << " sync=" << o.sync
                  << " group_median_per_s=" << fixed(median(rates), 0)
                  << " group_min_per_s=" << fixed(*std::min_element(rates.begin(), rates.end()), 0)
                  << " group_per_s=" << list << " total_per_s=" << fixed(total / all_s, 0)
                  << " all_s=" << fixed(all_s, 3) << " disk_read_mib=" << fixed(read_mib, 1)
                  << " record_mib=" << mib(record_bytes) << " read_ratio="
                  << fixed(static_cast<double>(io1 - io0) / static_cast<double>(record_bytes), 2)
                  << " disk_write_mib=" << mib(wr1 - wr0) << " write_bytes_per_delivery="
                  << fixed(static_cast<double>(wr1 - wr0) / total, 1)
                  << " syncs=" << fixed(syncs, 0)
                  << " deliveries_per_sync=" << fixed(total / std::max(syncs, 1.0), 1)
                  << " credit=" << o.credit << " recovery_read_mib=" << mib(io_recovery)
                  << " proxy_cpu_us_per_delivery=" << fixed(cpu_us, 3)
                  << " proxy_rss_mib=" << rss / 1024 << " peak_rss_mib=" << peak_rss / 1024
                  << " redelivered=" << redelivered << "\n";
    }
    proxy.stop();
    return status;
}

} // namespace

int main(int argc, char** argv) {
    const auto opt = parse_args(argc, argv);
    if (!opt) {
        return 64;
    }
    ::signal(SIGPIPE, SIG_IGN);
    consumer_credit = opt->credit;
    const std::string proxy_bin = opt->proxy.empty() ? default_proxy_path(argv[0]) : opt->proxy;
    try {
        if (opt->mode == "recovery") {
            return run_recovery(*opt);
        }
        if (!fs::exists(proxy_bin)) {
            std::cerr << "zmqkit-bench-durable: no zmqkit-proxy at " << proxy_bin
                      << " (build it, or pass --proxy PATH)\n";
            return 1;
        }
        if (opt->mode == "throughput") {
            return run_throughput(*opt, proxy_bin);
        }
        if (opt->mode == "groups-read") {
            return run_groups_read(*opt, proxy_bin);
        }
        return run_backlog_rss(*opt, proxy_bin);
    } catch (const std::exception& e) {
        std::cerr << "zmqkit-bench-durable: " << e.what() << "\n";
        return 1;
    }
}
