// The handshake monitor: reads one socket's zmq_socket_monitor events on its own thread and
// turns the failed handshakes libzmq otherwise keeps to itself into readable log lines and
// metrics.

#include <zmqkit/log.hpp>
#include <zmqkit/security.hpp>
#include <zmqkit/socket_monitor.hpp>

#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace zmqkit {
namespace {

// "ip:port" ("[ip]:port" for IPv6) of the peer of a connected socket, or "".
std::string peer_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return {};
    }
    char host[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        // Appended step by step: GCC 12 at -O3 warns (-Wrestrict, falsely) on "[" + string.
        std::string out;
        out.reserve(INET6_ADDRSTRLEN + 8);
        out.append(1, '[').append(host).append("]:").append(std::to_string(ntohs(in6->sin6_port)));
        return out;
    }
    return {}; // ipc: the peer has no name worth printing
}

bool same_local_port(int fd, const std::string& endpoint) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return false;
    }
    unsigned port = 0;
    if (ss.ss_family == AF_INET) {
        port = ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        port = ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
    } else {
        return false;
    }
    const auto colon = endpoint.rfind(':');
    return colon != std::string::npos && endpoint.substr(colon + 1) == std::to_string(port);
}

std::string host_part(const std::string& peer) {
    const auto colon = peer.rfind(':');
    return colon == std::string::npos ? peer : peer.substr(0, colon);
}

using failure_reason = handshake_failure;

failure_reason protocol_reason(std::uint32_t value) {
    switch (value) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return {"mechanism_mismatch",
                "the peer uses a different security mechanism (e.g. plaintext against CURVE)"};
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return {"cryptographic", "CURVE handshake failed: wrong server key or corrupt data"};
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND:
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE:
        return {"protocol", "the peer sent an unexpected handshake command (not the same ZMTP "
                            "security handshake)"};
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
        return {"protocol", "the key exchange failed"};
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_UNSPECIFIED:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_MESSAGE:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_HELLO:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_INITIATE:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_ERROR:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_READY:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_WELCOME:
        return {"protocol", "the peer sent a malformed handshake command"};
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA:
        return {"protocol", "the peer sent invalid handshake metadata"};
    case ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED:
    case ZMQ_PROTOCOL_ERROR_ZAP_MALFORMED_REPLY:
    case ZMQ_PROTOCOL_ERROR_ZAP_BAD_REQUEST_ID:
    case ZMQ_PROTOCOL_ERROR_ZAP_BAD_VERSION:
    case ZMQ_PROTOCOL_ERROR_ZAP_INVALID_STATUS_CODE:
    case ZMQ_PROTOCOL_ERROR_ZAP_INVALID_METADATA:
        return {"zap_error", "the ZAP handler sent an invalid reply"};
    default:
        return {"protocol", "ZMTP protocol error (code " + std::to_string(value) + ")"};
    }
}

failure_reason auth_reason(std::uint32_t status, bool server_side) {
    switch (status) {
    case 300:
        return {"zap_temporary", "temporary authentication failure (ZAP 300)", false};
    case 400:
        return {"zap_denied", server_side ? "peer not allowed (ZAP 400)"
                                          : "the server did not allow this client: its key, "
                                            "address or password is not on the server's allow "
                                            "list (ZAP 400)"};
    case 500:
        return {"zap_error", "the ZAP handler failed (ZAP 500)"};
    default:
        return {"zap_error", "authentication failed (ZAP " + std::to_string(status) + ")"};
    }
}

} // namespace

handshake_failure describe_handshake_failure(int event, std::uint32_t value, bool bind_side,
                                             bool curve_client) {
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return protocol_reason(value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        return auth_reason(value, bind_side);
    default: {
        const int error_number = static_cast<int>(value);
        const std::string cause =
            error_number != 0 ? ": " + std::string(std::strerror(error_number)) : "";
        failure_reason r;
        r.label = "closed_during_handshake";
        r.definitive = false;
        if (bind_side) {
            r.text = "the peer closed the connection during the handshake (not a ZeroMQ "
                     "peer, or it gave up" +
                     cause + ")";
        } else if (curve_client) {
            r.text = "the server closed the connection during the CURVE handshake: wrong "
                     "server key, or the server does not use CURVE";
        } else {
            r.text = "the peer closed the connection during the handshake" + cause;
        }
        return r;
    }
    }
}

struct handshake_monitor::impl {
    void* handle;
    std::string name;
    std::function<void(std::string_view)> log;
    metrics_registry& registry;
    connection_tracking tracking;
    counter* connects = nullptr;    // with tracking.labels
    counter* disconnects = nullptr; // "
    gauge* open_gauge = nullptr;    // "
    int mechanism = ZMQ_NULL;
    bool curve_client = false;
    bool secured = true; // false: NULL mechanism and no ZAP domain (a device's plain side)
    // The socket monitor: started and stopped on the owner's thread, read on the monitor
    // thread; `monitor_mutex` orders its stop (owner) against its close on ETERM (thread).
    std::optional<socket_monitor> monitor;
    std::mutex monitor_mutex;
    std::atomic<bool> stopping{false};
    std::thread thread;
    log_rate_limiter throttle;
    // Connection lines: a peer reconnecting in a loop writes at most 20 a second.
    log_rate_limiter connection_throttle{std::chrono::seconds(1), {}, 20};
    zmqkit::logger own_log; // unset `log`: lines go to zmqkit's log as component `name`

    mutable std::mutex mutex;
    std::condition_variable changed;
    handshake_stats stats;
    bool definitive_failure = false;
    bool closed_during_handshake = false;
    std::string last_connected; // endpoint of the last connection made
    std::string last_endpoint;  // any endpoint seen (connect attempts included)
    struct open_connection {
        connection_info info;
        std::chrono::steady_clock::time_point since; // for the duration (steps of the wall
                                                     // clock do not make it negative)
    };
    std::map<int, open_connection> open; // fd -> the connection (under `mutex`)

    // Thread-local to the monitor thread.
    std::set<std::string> listening;
    std::map<int, std::string> peers; // fd -> "ip:port" of accepted connections
    std::deque<int> pending;          // accepted, handshake outcome not yet seen
    struct deferred_line {
        std::string endpoint;
        failure_reason reason;
        std::chrono::steady_clock::time_point since;
    };
    std::optional<deferred_line> deferred; // a bind-side failure waiting for its DISCONNECTED
    static constexpr std::chrono::milliseconds deferral{250};

    impl(void* h, std::string n, std::function<void(std::string_view)> l, metrics_registry* r,
         connection_tracking t)
        : handle(h), name(std::move(n)), log(std::move(l)),
          registry(r != nullptr ? *r : metrics_registry::global()), tracking(std::move(t)),
          own_log(name) {
        if (!tracking.labels.empty()) {
            connects =
                &registry.get_counter("zmqkit_device_connects_total",
                                      "Connections made or accepted, per side", tracking.labels);
            disconnects = &registry.get_counter("zmqkit_device_disconnects_total",
                                                "Connections closed, per side", tracking.labels);
            open_gauge = &registry.get_gauge("zmqkit_device_connections",
                                             "Open connections, per side", tracking.labels);
        }
    }

    // A connection line at info (rate limited per peer host, or endpoint).
    void connection_line(const std::string& key, const std::string& line) {
        if (!tracking.log) {
            return;
        }
        if (const auto held = connection_throttle.admit(key)) {
            const std::string text = line + log_rate_limiter::suppressed_suffix(*held);
            if (log) {
                log(name + ": " + text);
            } else {
                own_log.info(text);
            }
        }
    }

    void opened(int fd, std::string peer, const std::string& endpoint, bool accepted) {
        const std::string key = peer.empty() ? endpoint : host_part(peer);
        std::string line;
        if (accepted) {
            line = peer.empty() ? "accepted a connection on " + endpoint
                                : "accepted " + peer + " on " + endpoint;
        } else {
            line = "connected to " + endpoint;
            if (!peer.empty() && endpoint.find(peer) == std::string::npos) {
                line += " (" + peer + ")";
            }
        }
        std::size_t now_open = 0;
        {
            std::lock_guard lock(mutex);
            ++stats.connected;
            if (!accepted) {
                last_connected = endpoint;
            }
            open[fd] = open_connection{connection_info{std::move(peer), endpoint, accepted,
                                                       std::chrono::system_clock::now()},
                                       std::chrono::steady_clock::now()};
            now_open = open.size();
        }
        // The line, the gauge, then the counter: whoever sees the count finds the rest.
        connection_line(key, line);
        if (connects != nullptr) {
            open_gauge->set(static_cast<std::int64_t>(now_open));
            connects->add();
        }
    }

    void closed(int fd, const std::string& endpoint) {
        std::optional<open_connection> gone;
        std::size_t now_open = 0;
        {
            std::lock_guard lock(mutex);
            ++stats.disconnected;
            if (const auto it = open.find(fd); it != open.end()) {
                gone = std::move(it->second);
                open.erase(it);
            }
            now_open = open.size();
        }
        const auto counted = [&] { // the line, the gauge, then the counter (as opened())
            if (disconnects != nullptr) {
                open_gauge->set(static_cast<std::int64_t>(now_open));
                disconnects->add();
            }
        };
        if (!gone) {
            connection_line(endpoint, "disconnected on " + endpoint);
            counted();
            return;
        }
        const auto* was = &gone->info;
        const auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - gone->since);
        char after[48];
        std::snprintf(after, sizeof after, " after %.1f s",
                      static_cast<double>(lasted.count()) / 1000.0);
        if (was->accepted) {
            connection_line(was->peer.empty() ? endpoint : host_part(was->peer),
                            (was->peer.empty() ? "a connection on " + endpoint + " closed"
                                               : "disconnected " + was->peer + " on " + endpoint) +
                                after);
        } else {
            connection_line(endpoint, "disconnected from " + endpoint + after);
        }
        counted();
    }

    // `key`: who to throttle by (the peer's host, or the endpoint).
    void emit(const std::string& who, const std::string& key, const failure_reason& r) {
        if (const auto held = throttle.admit(key + '\n' + r.label)) {
            const std::string line = "handshake with " + who + " failed: " + r.text +
                                     log_rate_limiter::suppressed_suffix(*held);
            if (log) {
                log(name + ": " + line);
            } else {
                own_log.warn(line); // the socket's name is the component
            }
        }
    }

    void failed(const std::string& endpoint, failure_reason r, std::optional<int> fd) {
        if (!secured && !r.definitive) {
            // No security on this socket: a connection closed before the ZMTP greeting (a
            // health probe, a port scan, a non-ZeroMQ client) is not a security event. A
            // mechanism mismatch still is (a plaintext client against a CURVE server).
            std::lock_guard lock(mutex);
            ++stats.failed;
            return;
        }
        registry
            .get_counter("zmqkit_security_handshake_failures_total",
                         "Security handshakes that failed, by socket and reason",
                         {{"socket", name}, {"reason", r.label}})
            .add();
        {
            std::lock_guard lock(mutex);
            ++stats.failed;
            stats.last_failure = r.text;
            if (r.definitive) {
                definitive_failure = true;
            }
        }
        changed.notify_all();
        const bool bind_side = listening.count(endpoint) != 0;
        if (!bind_side) {
            emit(endpoint, endpoint, r); // a connecting socket: the endpoint names the server
            return;
        }
        if (fd) {
            name_and_emit(endpoint, r, *fd);
            return;
        }
        // The failure event of an accepted connection carries only the local endpoint; the
        // DISCONNECTED event that follows it carries the connection's fd.
        flush_deferred();
        deferred = deferred_line{endpoint, std::move(r), std::chrono::steady_clock::now()};
    }

    void name_and_emit(const std::string& endpoint, const failure_reason& r, int fd) {
        const auto it = peers.find(fd);
        if (it != peers.end() && !it->second.empty()) {
            emit(it->second + " on " + endpoint, host_part(it->second), r);
        } else {
            emit(endpoint, endpoint, r);
        }
    }

    // Emits a deferred bind-side line without a DISCONNECTED to name the peer: the single
    // pending connection if there is one, else the endpoint.
    void flush_deferred() {
        if (!deferred) {
            return;
        }
        if (pending.size() == 1) {
            name_and_emit(deferred->endpoint, deferred->reason, pending.front());
        } else {
            emit(deferred->endpoint, deferred->endpoint, deferred->reason);
        }
        deferred.reset();
    }

    void forget(int fd) {
        peers.erase(fd);
        pending.erase(std::remove(pending.begin(), pending.end(), fd), pending.end());
    }

    void on_event(std::uint16_t event, std::uint32_t value, const std::string& endpoint) {
        if (!endpoint.empty()) {
            std::lock_guard lock(mutex);
            last_endpoint = endpoint;
        }
        const int fd = static_cast<int>(value);
        switch (event) {
        case ZMQ_EVENT_LISTENING:
            listening.insert(endpoint);
            break;
        case ZMQ_EVENT_ACCEPTED:
            // Best effort: the connection may already be closed (a fast failure) by the time
            // this event is read, and its fd number reused; only a socket of this listener
            // (same local port) is named.
            peers[fd] = same_local_port(fd, endpoint) ? peer_of(fd) : std::string();
            pending.push_back(fd);
            opened(fd, peers[fd], endpoint, true);
            break;
        case ZMQ_EVENT_CONNECTED:
            opened(fd, peer_of(fd), endpoint, false);
            changed.notify_all();
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            if (pending.size() == 1) {
                pending.clear();
            }
            {
                std::lock_guard lock(mutex);
                ++stats.succeeded;
            }
            changed.notify_all();
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
                std::lock_guard lock(mutex);
                closed_during_handshake = true;
            }
            failed(endpoint,
                   describe_handshake_failure(event, value, listening.count(endpoint) != 0,
                                              curve_client),
                   std::nullopt);
            break;
        case ZMQ_EVENT_DISCONNECTED:
            // The connection whose handshake failed closes right after the failure event: the
            // first not-yet-handshaken connection to close on that endpoint is the one.
            if (deferred && deferred->endpoint == endpoint &&
                std::find(pending.begin(), pending.end(), fd) != pending.end()) {
                name_and_emit(endpoint, deferred->reason, fd);
                deferred.reset();
            }
            forget(fd);
            closed(fd, endpoint);
            changed.notify_all();
            break;
        case ZMQ_EVENT_CLOSED:
            forget(fd);
            break;
        default:
            break;
        }
    }

    void run() {
        while (!stopping.load()) {
            try {
                // Bounded (a stop is seen within a second even if its MONITOR_STOPPED event
                // is lost), and shorter while a deferred line waits for its DISCONNECTED.
                std::chrono::milliseconds wait(1000);
                if (deferred) {
                    const auto left = deferred->since + deferral - std::chrono::steady_clock::now();
                    wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(left),
                                      std::chrono::milliseconds(0), wait);
                }
                (void)monitor->poll(wait); // on_event() for each event
                if (deferred && std::chrono::steady_clock::now() >= deferred->since + deferral) {
                    flush_deferred();
                }
            } catch (const zmq::error_t& e) {
                if (e.num() == ETERM) {
                    // Closed here, so that a closing context is not held up by the monitor.
                    std::lock_guard lock(monitor_mutex);
                    monitor.reset();
                    break;
                }
            } catch (const std::exception&) {
                // a log callback that threw: keep monitoring
            }
        }
        flush_deferred();
        changed.notify_all();
    }
};

handshake_monitor::handshake_monitor(zmq::context_t& context, zmq::socket_t& socket,
                                     std::string socket_name,
                                     std::function<void(std::string_view)> log,
                                     metrics_registry* registry, connection_tracking tracking)
    : impl_(std::make_unique<impl>(socket.handle(), std::move(socket_name), std::move(log),
                                   registry, std::move(tracking))) {
    int mechanism = ZMQ_NULL;
    std::size_t size = sizeof mechanism;
    if (zmq_getsockopt(impl_->handle, ZMQ_MECHANISM, &mechanism, &size) == 0) {
        impl_->mechanism = mechanism;
        int server = 0;
        size = sizeof server;
        impl_->curve_client =
            mechanism == ZMQ_CURVE &&
            zmq_getsockopt(impl_->handle, ZMQ_CURVE_SERVER, &server, &size) == 0 && server == 0;
    }
    // NULL with a ZAP domain is secured too (address allow/deny lists).
    char zap_domain[256] = {};
    std::size_t zap_size = sizeof zap_domain;
    impl_->secured =
        impl_->mechanism != ZMQ_NULL ||
        (zmq_getsockopt(impl_->handle, ZMQ_ZAP_DOMAIN, zap_domain, &zap_size) == 0 && zap_size > 1);
    // Never ZMQ_EVENT_BIND_FAILED: libzmq 4.3 sends that event between the failed bind and the
    // return of zmq_bind(), and the send leaves errno at EAGAIN, so "Address already in use"
    // would reach the caller as "Resource temporarily unavailable". The bind error is reported
    // by the bind itself.
    try {
        impl_->monitor.emplace(
            socket, ZMQ_EVENT_ALL & ~ZMQ_EVENT_BIND_FAILED,
            [p = impl_.get()](const socket_event& e) { p->on_event(e.id, e.value, e.endpoint); });
    } catch (const zmq::error_t& e) {
        throw security_error("cannot monitor socket '" + impl_->name + "': " + e.what());
    }
    (void)context; // the monitor's socket lives in the monitored socket's context
    // The monitor is read on its own thread from here (thread start is a full memory barrier).
    impl_->thread = std::thread([p = impl_.get()] { p->run(); });
}

handshake_monitor::~handshake_monitor() {
    impl_->stopping.store(true);
    {
        // libzmq stops sending events (and sends MONITOR_STOPPED, which wakes the thread).
        std::lock_guard lock(impl_->monitor_mutex);
        if (impl_->monitor) {
            impl_->monitor->stop();
        }
    }
    if (impl_->thread.joinable()) {
        impl_->thread.join();
    }
    impl_->monitor.reset();
}

handshake_stats handshake_monitor::stats() const {
    std::lock_guard lock(impl_->mutex);
    auto s = impl_->stats;
    s.open = impl_->open.size();
    return s;
}

std::vector<connection_info> handshake_monitor::connections(std::size_t limit) const {
    std::vector<connection_info> out;
    {
        std::lock_guard lock(impl_->mutex);
        out.reserve(std::min(limit, impl_->open.size()));
        for (const auto& [fd, c] : impl_->open) {
            out.push_back(c.info);
        }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.since < b.since; });
    if (out.size() > limit) {
        out.resize(limit);
    }
    return out;
}

bool handshake_monitor::wait_handshake(std::chrono::milliseconds timeout, std::string* why) {
    std::unique_lock lock(impl_->mutex);
    const bool done = impl_->changed.wait_for(
        lock, timeout, [&] { return impl_->stats.succeeded > 0 || impl_->definitive_failure; });
    if (impl_->stats.succeeded > 0) {
        return true;
    }
    if (why != nullptr) {
        const auto& s = impl_->stats;
        if (!s.last_failure.empty()) {
            *why = s.last_failure;
        } else if (s.connected > 0) {
            *why = "connected to " + impl_->last_connected + " but no handshake completed within " +
                   std::to_string(timeout.count()) + " ms (the peer did not answer the handshake)";
        } else if (!impl_->last_endpoint.empty()) {
            *why = "no connection to " + impl_->last_endpoint +
                   " was made (server down or unreachable)";
        } else {
            *why = "no connection was made (server down or unreachable)";
        }
    }
    (void)done;
    return false;
}

} // namespace zmqkit
