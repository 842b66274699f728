#include "common/tool_support.hpp"

#include <zmqkit/encoding.hpp>
#include <zmqkit/error.hpp>
#include <zmqkit/socket_monitor.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

namespace zmqkit::cli {
namespace {

constexpr std::array<socket_kind, 10> all_kinds{{
    {"push", zmq::socket_type::push, endpoint_action::connect},
    {"pull", zmq::socket_type::pull, endpoint_action::bind},
    {"pub", zmq::socket_type::pub, endpoint_action::bind},
    {"sub", zmq::socket_type::sub, endpoint_action::connect},
    {"req", zmq::socket_type::req, endpoint_action::connect},
    {"rep", zmq::socket_type::rep, endpoint_action::bind},
    {"dealer", zmq::socket_type::dealer, endpoint_action::connect},
    {"router", zmq::socket_type::router, endpoint_action::bind},
    {"pair", zmq::socket_type::pair, endpoint_action::connect},
    {"stream", zmq::socket_type::stream, endpoint_action::connect},
}};

struct known_option {
    std::string_view name;
    int option;
    bool is_int64;
    bool is_bytes = false;
};

constexpr std::array<known_option, 35> known_options{{
    {"sndhwm", ZMQ_SNDHWM, false},
    {"rcvhwm", ZMQ_RCVHWM, false},
    {"linger", ZMQ_LINGER, false},
    {"sndbuf", ZMQ_SNDBUF, false},
    {"rcvbuf", ZMQ_RCVBUF, false},
    {"sndtimeo", ZMQ_SNDTIMEO, false},
    {"rcvtimeo", ZMQ_RCVTIMEO, false},
    {"immediate", ZMQ_IMMEDIATE, false},
    {"tcp_keepalive", ZMQ_TCP_KEEPALIVE, false},
    {"tcp_keepalive_idle", ZMQ_TCP_KEEPALIVE_IDLE, false},
    {"tcp_keepalive_cnt", ZMQ_TCP_KEEPALIVE_CNT, false},
    {"tcp_keepalive_intvl", ZMQ_TCP_KEEPALIVE_INTVL, false},
    {"maxmsgsize", ZMQ_MAXMSGSIZE, true},
    {"conflate", ZMQ_CONFLATE, false},
    {"reconnect_ivl", ZMQ_RECONNECT_IVL, false},
    {"reconnect_ivl_max", ZMQ_RECONNECT_IVL_MAX, false},
    {"backlog", ZMQ_BACKLOG, false},
    {"ipv6", ZMQ_IPV6, false},
    {"tos", ZMQ_TOS, false},
    {"handshake_ivl", ZMQ_HANDSHAKE_IVL, false},
    {"heartbeat_ivl", ZMQ_HEARTBEAT_IVL, false},
    {"heartbeat_ttl", ZMQ_HEARTBEAT_TTL, false},
    {"heartbeat_timeout", ZMQ_HEARTBEAT_TIMEOUT, false},
    {"multicast_hops", ZMQ_MULTICAST_HOPS, false},
    {"router_mandatory", ZMQ_ROUTER_MANDATORY, false},
    {"routing_id", ZMQ_ROUTING_ID, false, true},
    {"connect_routing_id", ZMQ_CONNECT_ROUTING_ID, false, true},
    {"subscribe", ZMQ_SUBSCRIBE, false, true},
    {"unsubscribe", ZMQ_UNSUBSCRIBE, false, true},
    {"bindtodevice", ZMQ_BINDTODEVICE, false, true},
    {"socks_proxy", ZMQ_SOCKS_PROXY, false, true},
    {"zap_domain", ZMQ_ZAP_DOMAIN, false, true},
    {"plain_username", ZMQ_PLAIN_USERNAME, false, true},
    {"curve_serverkey", ZMQ_CURVE_SERVERKEY, false, true},
    {"curve_publickey", ZMQ_CURVE_PUBLICKEY, false, true},
}};

template <class Socket>
void attach_each(Socket& socket, const std::vector<std::string>& specs,
                 endpoint_action default_action, const logger& log) {
    for (const auto& spec : specs) {
        std::vector<endpoint> parsed;
        try {
            parsed = parse_endpoints(spec, default_action);
        } catch (const zmqkit::error& e) {
            throw usage_error{e.what(), exit_usage};
        }
        for (const auto& ep : parsed) {
            std::vector<std::string> effective;
            try {
                if constexpr (std::is_same_v<Socket, zmqkit::socket>) {
                    effective = socket.attach(ep.to_string(), default_action);
                } else {
                    effective = zmqkit::attach(socket, ep.to_string(), default_action);
                }
            } catch (const zmqkit::error& e) {
                throw usage_error{e.what(), exit_unavailable};
            }
            for (const auto& address : effective) {
                if (ep.action == endpoint_action::bind) {
                    log.info("bound " + address);
                } else {
                    log.debug("connected " + address);
                }
            }
        }
    }
}

} // namespace

socket_kind find_socket_kind(std::string_view flag, const std::vector<std::string_view>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), flag) != allowed.end()) {
        for (const auto& kind : all_kinds) {
            if (kind.flag == flag) {
                return kind;
            }
        }
    }
    std::string list;
    for (auto a : allowed) {
        list += list.empty() ? "" : ", ";
        list += "--";
        list += a;
    }
    throw usage_error{"unknown socket type '" + std::string(flag) + "' (available: " + list + ")",
                      exit_usage};
}

socket_kind choose_socket_kind(const boost::program_options::variables_map& vm,
                               const std::vector<std::string_view>& allowed,
                               std::string_view fallback) {
    std::string chosen;
    for (auto k : allowed) {
        if (vm.count(std::string(k)) == 0U) {
            continue;
        }
        if (!chosen.empty()) {
            std::string list;
            for (auto a : allowed) {
                list += (list.empty() ? "--" : ", --") + std::string(a);
            }
            throw usage_error{"choose one socket type: --" + chosen + " and --" + std::string(k) +
                                  " given (available: " + list + ")",
                              exit_usage};
        }
        chosen = std::string(k);
    }
    return find_socket_kind(chosen.empty() ? fallback : std::string_view(chosen), allowed);
}

std::string known_socket_options() {
    std::string list;
    for (const auto& o : known_options) {
        list += list.empty() ? "" : ", ";
        list += o.name;
    }
    return list;
}

socket_option_setting parse_socket_option(std::string_view text) {
    const auto eq = text.find('=');
    const std::string name(text.substr(0, eq));
    if (name == "curve_secretkey" || name == "plain_password") {
        throw usage_error{"-X " + name +
                              " is not accepted: a secret on the command line is "
                              "visible to every user of the machine (ps, /proc)",
                          exit_usage};
    }
    const auto it = std::find_if(known_options.begin(), known_options.end(),
                                 [&](const known_option& o) { return o.name == name; });
    if (it == known_options.end()) {
        throw usage_error{"unknown socket option '" + name + "' in -X " + std::string(text) +
                              " (known: " + known_socket_options() + ")",
                          exit_usage};
    }
    if (eq == std::string_view::npos) {
        throw usage_error{"-X " + std::string(text) + ": expected name=value, e.g. -X " + name +
                              "=100",
                          exit_usage};
    }
    const auto value = text.substr(eq + 1);
    if (it->is_bytes) {
        socket_option_setting b{name, it->option, false, 0, true, {}};
        b.bytes = decode_escapes(value, "-X " + name);
        return b;
    }
    socket_option_setting s{name, it->option, it->is_int64, 0, false, {}};
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), s.value);
    if (ec != std::errc{} || ptr != value.data() + value.size() || value.empty() ||
        (!s.is_int64 && (s.value < INT32_MIN || s.value > INT32_MAX))) {
        throw usage_error{"-X " + std::string(text) + ": '" + std::string(value) +
                              "' is not an integer" + (s.is_int64 ? "" : " (32-bit)"),
                          exit_usage};
    }
    if ((s.option == ZMQ_SNDTIMEO || s.option == ZMQ_RCVTIMEO || s.option == ZMQ_LINGER) &&
        s.value < 0) {
        throw usage_error{"-X " + std::string(text) + ": a negative " + name +
                              " means wait forever, and every wait of this tool is bounded "
                              "(give a number of milliseconds, 0 or more)",
                          exit_usage};
    }
    return s;
}

void apply_socket_options(zmq::socket_t& socket, const std::vector<socket_option_setting>& opts) {
    for (const auto& o : opts) {
        int rc = 0;
        if (o.is_bytes) {
            rc = zmq_setsockopt(socket.handle(), o.option, o.bytes.data(), o.bytes.size());
        } else if (o.is_int64) {
            rc = zmq_setsockopt(socket.handle(), o.option, &o.value, sizeof o.value);
        } else {
            const int v = static_cast<int>(o.value);
            rc = zmq_setsockopt(socket.handle(), o.option, &v, sizeof v);
        }
        if (rc != 0) {
            throw usage_error{
                "-X " + o.name + "=" + (o.is_bytes ? o.bytes : std::to_string(o.value)) + ": " +
                    zmq_strerror(zmq_errno()) +
                    (o.is_bytes ? " (wrong length or not valid for this socket type?)" : ""),
                exit_usage};
        }
    }
}

std::string decode_escapes(std::string_view text, std::string_view what) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            out += text[i];
            continue;
        }
        auto bad = [&]() -> usage_error {
            return usage_error{"bad escape in " + std::string(what) + " '" + std::string(text) +
                                   "' (known: \\n \\r \\t \\0 \\\\ \\xNN)",
                               exit_usage};
        };
        if (i + 1 >= text.size()) {
            throw bad();
        }
        const char c = text[++i];
        switch (c) {
        case 'n':
            out += '\n';
            break;
        case 'r':
            out += '\r';
            break;
        case 't':
            out += '\t';
            break;
        case '0':
            out += '\0';
            break;
        case '\\':
            out += '\\';
            break;
        case 'x': {
            if (i + 2 >= text.size()) {
                throw bad();
            }
            const int hi = hex_value(text[i + 1]);
            const int lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0) {
                throw bad();
            }
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
            break;
        }
        default:
            throw bad();
        }
    }
    return out;
}

void check_endpoints(const std::vector<std::string>& specs, endpoint_action default_action) {
    for (const auto& spec : specs) {
        try {
            (void)parse_endpoints(spec, default_action);
        } catch (const zmqkit::error& e) {
            throw usage_error{e.what(), exit_usage};
        }
    }
}

void attach_all(zmqkit::socket& socket, const std::vector<std::string>& specs,
                endpoint_action default_action, const logger& log) {
    attach_each(socket, specs, default_action, log);
}

void attach_all(zmq::socket_t& socket, const std::vector<std::string>& specs,
                endpoint_action default_action, const logger& log) {
    attach_each(socket, specs, default_action, log);
}

namespace {

// Failed handshakes always: a plaintext tool refused by a CURVE server says why. With -v also
// the connection events. Not ZMQ_EVENT_BIND_FAILED: sending that event overwrites errno
// before zmq_bind() returns (a port in use became "Resource temporarily unavailable" with
// -v); the bind failure is reported from the bind itself.
int counter_events(bool verbose) {
    int mask = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (verbose) {
        mask |= ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED;
    }
    return mask;
}

zmqkit::socket_monitor start_monitor(zmq::socket_t& socket, bool verbose,
                                     zmqkit::socket_monitor::handler on_event) {
    try {
        return zmqkit::socket_monitor(socket, counter_events(verbose), std::move(on_event));
    } catch (const zmq::error_t& e) {
        throw usage_error{std::string("cannot monitor the socket: ") + e.what(), exit_software};
    }
}

} // namespace

handshake_counter::handshake_counter(zmq::context_t& /*context*/, zmq::socket_t& socket,
                                     const logger* events)
    : events_(events),
      monitor_(start_monitor(socket, events != nullptr,
                             [this](const zmqkit::socket_event& e) { consume(e); })) {}

void handshake_counter::consume(const zmqkit::socket_event& e) {
    const std::uint16_t id = e.id;
    const std::uint32_t value = e.value;
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        ++seen_;
    } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
               id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        // Worded as the security monitor words it: one reason for a refusal in every tool.
        // A server that refuses the mechanism may close before this side saw why: a reason
        // seen before says more than a closed connection.
        ++failures_;
        auto failure = describe_handshake_failure(id, value, false, false);
        if (failure.definitive || last_failure_.empty()) {
            last_failure_ = std::move(failure.text);
        }
    }
    if (events_ == nullptr) {
        return;
    }
    const std::string& where = e.endpoint;
    switch (id) {
    case ZMQ_EVENT_CONNECTED:
        events_->debug("connected " + where);
        break;
    case ZMQ_EVENT_ACCEPTED:
        events_->debug("accepted a connection on " + where);
        break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        events_->debug("handshake succeeded on " + where);
        break;
    case ZMQ_EVENT_DISCONNECTED:
        events_->debug("disconnected " + where);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        events_->debug("handshake failed on " + where + ": ZMTP protocol error 0x" + [&] {
            char buf[16];
            std::snprintf(buf, sizeof buf, "%x", value);
            return std::string(buf);
        }() + " (is the peer a ZeroMQ socket of a compatible type?)");
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        events_->debug("handshake failed on " + where + ": authentication refused (ZAP status " +
                       std::to_string(value) + ")");
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        events_->debug("handshake failed on " + where + ": " +
                       (value != 0 ? std::string(zmq_strerror(static_cast<int>(value)))
                                   : std::string("connection closed during the handshake")));
        break;
    default:
        break;
    }
}

std::size_t handshake_counter::wait(std::size_t peers, std::chrono::milliseconds timeout,
                                    const std::function<bool()>& stop) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (seen_ < peers && !stop()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            break;
        }
        (void)monitor_.poll(std::min(left, std::chrono::milliseconds(100)));
    }
    return seen_;
}

std::size_t handshake_counter::poll() {
    (void)monitor_.poll(std::chrono::milliseconds(0));
    return seen_;
}

std::size_t wait_secured_peers(handshake_monitor& monitor, std::size_t peers,
                               std::chrono::milliseconds timeout,
                               const std::function<bool()>& stop) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto seen = [&] { return static_cast<std::size_t>(monitor.stats().succeeded); };
    while (seen() < peers && !stop()) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            break;
        }
        if (seen() == 0) {
            (void)monitor.wait_handshake(std::min(left, std::chrono::milliseconds(100)));
        } else {
            // The monitor signals the first handshake only; later ones are polled.
            std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(20)));
        }
    }
    return seen();
}

std::string handshake_problem(handshake_monitor* monitor) {
    if (monitor == nullptr) {
        return {};
    }
    std::string why;
    if (monitor->wait_handshake(std::chrono::milliseconds(0), &why)) {
        return {};
    }
    return why.empty() ? std::string("no security handshake completed") : why;
}

// One background name lookup. The thread owns a share of it, so it may outlive the tool's
// wait (a resolver can take seconds) and is simply abandoned at exit.
struct peer_reachability::lookup {
    std::string host;
    std::mutex mutex;
    bool done = false;
    std::string error; // gai_strerror of a failed lookup
};

namespace {

// The host of a tcp endpoint address ("host:port", "[v6]:port", "source;host:port"), or "" when
// there is nothing to look up (a wildcard or a numeric address).
std::string host_to_resolve(const endpoint& ep) {
    const std::string& text = ep.address;
    constexpr std::string_view tcp = "tcp://";
    if (ep.action != endpoint_action::connect || text.rfind(tcp, 0) != 0) {
        return {};
    }
    std::string address = text.substr(tcp.size());
    if (const auto semicolon = address.rfind(';'); semicolon != std::string::npos) {
        address.erase(0, semicolon + 1); // a source address first
    }
    const auto colon = address.rfind(':');
    std::string host = colon == std::string::npos ? address : address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    in6_addr numeric{};
    if (host.empty() || host == "*" || ::inet_pton(AF_INET, host.c_str(), &numeric) == 1 ||
        ::inet_pton(AF_INET6, host.c_str(), &numeric) == 1) {
        return {};
    }
    return host;
}

} // namespace

peer_reachability::peer_reachability(const std::vector<std::string>& specs,
                                     endpoint_action default_action) {
    for (const auto& spec : specs) {
        std::vector<endpoint> parsed;
        try {
            parsed = parse_endpoints(spec, default_action);
        } catch (const zmqkit::error&) {
            continue; // reported where the socket attaches
        }
        for (const auto& ep : parsed) {
            connects_ = connects_ || ep.action == endpoint_action::connect;
            auto host = host_to_resolve(ep);
            if (host.empty()) {
                continue;
            }
            auto l = std::make_shared<lookup>();
            l->host = std::move(host);
            try {
                std::thread([l] {
                    addrinfo hints{};
                    hints.ai_socktype = SOCK_STREAM;
                    addrinfo* result = nullptr;
                    const int rc = ::getaddrinfo(l->host.c_str(), nullptr, &hints, &result);
                    if (result != nullptr) {
                        ::freeaddrinfo(result);
                    }
                    std::lock_guard lock(l->mutex);
                    l->done = true;
                    if (rc != 0) {
                        l->error = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
                    }
                }).detach();
            } catch (const std::system_error&) {
                continue; // no thread: no early diagnosis, the connection attempts still run
            }
            lookups_.push_back(std::move(l));
        }
    }
}

peer_reachability::~peer_reachability() = default;

std::size_t peer_reachability::peers() {
    if (secured_ != nullptr) {
        return static_cast<std::size_t>(secured_->stats().succeeded);
    }
    return plain_ != nullptr ? plain_->poll() : 0;
}

std::string peer_reachability::why_unreachable() {
    if (!connects_ || peers() > 0) {
        return {};
    }
    for (const auto& l : lookups_) {
        std::lock_guard lock(l->mutex);
        if (l->done && !l->error.empty()) {
            return "cannot resolve host " + l->host + ": " + l->error;
        }
    }
    if (secured_ != nullptr) {
        const auto st = secured_->stats();
        return st.failed > 0 ? st.last_failure : std::string();
    }
    if (plain_ != nullptr && plain_->failures() > 0) {
        return plain_->last_failure();
    }
    return {};
}

handshake_give_up::handshake_give_up(peer_reachability& reach, handshake_monitor* client_handshakes,
                                     bool server, std::optional<std::chrono::milliseconds> timeout)
    : reach_(reach), client_handshakes_(client_handshakes), server_(server),
      timeout_given_(timeout.has_value()),
      limit_(timeout.value_or(std::chrono::milliseconds(10'000))) {}

bool handshake_give_up::check() {
    if (gave_up_ || server_ || clock::now() - started_ < limit_) {
        return gave_up_;
    }
    const bool secured_silent = client_handshakes_ != nullptr && timeout_given_ &&
                                client_handshakes_->stats().succeeded == 0;
    gave_up_ = secured_silent || !reach_.why_unreachable().empty();
    return gave_up_;
}

void handshake_give_up::wait_for_queued(std::optional<clock::time_point> deadline) {
    if (gave_up_ || client_handshakes_ == nullptr || client_handshakes_->stats().succeeded > 0) {
        return;
    }
    const auto end = deadline ? *deadline : started_ + limit_;
    const auto left = std::max(std::chrono::milliseconds(0),
                               std::chrono::ceil<std::chrono::milliseconds>(end - clock::now()));
    gave_up_ = !client_handshakes_->wait_handshake(left);
}

int handshake_give_up::report(const logger& log, std::string_view action,
                              const std::vector<std::string>& endpoints, zmq::socket_t& socket) {
    std::string why = reach_.why_unreachable();
    if (why.empty()) {
        why = client_handshakes_ != nullptr ? handshake_problem(client_handshakes_)
                                            : std::string("no handshake completed");
    }
    socket.set(zmq::sockopt::linger, 0);
    return report_unreachable(log, action, endpoints, limit_, why);
}

int report_unreachable(const logger& log, std::string_view action,
                       const std::vector<std::string>& endpoints, std::chrono::milliseconds within,
                       std::string_view reason) {
    log.error(std::string(action) + " " + join_endpoints(endpoints) + " within " +
              describe_duration(within) + ": " + std::string(reason));
    return exit_unavailable;
}

socket_options tool_socket_options(std::string name, int hwm, std::chrono::milliseconds linger,
                                   metrics_registry& registry, const socket_security& security) {
    socket_options so;
    so.send_hwm = hwm;
    so.recv_hwm = hwm;
    so.linger = linger;
    so.send_timeout = std::chrono::milliseconds(200);
    so.name = std::move(name);
    so.registry = &registry;
    so.security = security;
    return so;
}

void log_stop_signal(const logger& log, int sig) {
    log.info(std::string("received ") + strsignal(sig) + ", stopping");
}

bool stop_signal_pending(shutdown_signals& signals, const logger& log) {
    if (auto sig = signals.poll()) {
        log_stop_signal(log, *sig);
        return true;
    }
    return false;
}

bool bound_linger(zmq::socket_t& socket, std::chrono::steady_clock::time_point deadline) {
    const auto left = std::max(
        std::chrono::milliseconds(0),
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (left.count() >= socket.get(zmq::sockopt::linger)) {
        return false;
    }
    socket.set(zmq::sockopt::linger, static_cast<int>(left.count()));
    return true;
}

std::string endpoint_spec(const std::vector<std::string>& endpoints) {
    std::string spec;
    for (const auto& e : endpoints) {
        spec += (spec.empty() ? "" : ",") + e;
    }
    return spec;
}

std::string join_endpoints(const std::vector<std::string>& endpoints) {
    std::string out;
    for (const auto& e : endpoints) {
        out += (out.empty() ? "" : ", ") + e;
    }
    return out;
}

std::string describe_duration(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) {
        return std::to_string(d.count() / 1000) + " s";
    }
    if (d.count() > 1000) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(d.count()) / 1000.0);
        return buf;
    }
    return std::to_string(d.count()) + " ms";
}

std::string transfer_stats::line(std::string_view tool) const {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(messages_) / elapsed : 0.0;
    char buf[256];
    std::snprintf(
        buf, sizeof buf, "%.*s: stats: messages=%llu bytes=%llu elapsed=%.3fs rate=%.0f msgs/s",
        static_cast<int>(tool.size()), tool.data(), static_cast<unsigned long long>(messages_),
        static_cast<unsigned long long>(bytes_), elapsed, rate);
    return buf + detail_;
}

void transfer_stats::maybe_print_live(std::string_view tool) {
    if (tty_ < 0) {
        tty_ = ::isatty(STDERR_FILENO) != 0 ? 1 : 0;
    }
    if (tty_ == 0) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_live_ < std::chrono::seconds(1)) {
        return;
    }
    last_live_ = now;
    const std::string text = "\r" + line(tool) + "\x1b[K";
    (void)::write(STDERR_FILENO, text.data(), text.size());
    live_shown_ = true;
}

void transfer_stats::print_final(std::string_view tool) {
    std::string text = live_shown_ ? "\r\x1b[K" : "";
    text += line(tool);
    text += '\n';
    (void)::write(STDERR_FILENO, text.data(), text.size());
    live_shown_ = false;
}

bool output_buffer::flush() {
    std::size_t done = 0;
    while (done < data_.size()) {
        const auto n = ::write(STDOUT_FILENO, data_.data() + done, data_.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            data_.clear();
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    data_.clear();
    return true;
}

std::unique_ptr<metrics_server> serve_metrics(const std::optional<std::string>& listen,
                                              metrics_registry& registry, const logger& log,
                                              std::function<std::string()> status) {
    if (!listen) {
        return nullptr;
    }
    try {
        auto server = std::make_unique<metrics_server>(
            registry, metrics_server_options{.listen = *listen, .status = std::move(status)});
        log.info("metrics at " + server->url());
        return server;
    } catch (const zmqkit::error& e) {
        throw usage_error{std::string("--metrics-listen: ") + e.what(), exit_unavailable};
    }
}

} // namespace zmqkit::cli
