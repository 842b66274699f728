// Internal: the socket plumbing the devices share (streamer, durable_proxy, load_balancer,
// mdp_broker, the reliable sender/receiver): socket options, frame views, routing ids as
// text, STATUS documents (JSON), zero-copy frame sharing, sending a multipart message to a ROUTER
// peer without blocking, receiving one, the control socket.
#pragma once

#include "socket_close.hpp" // linger_until

#include <zmqkit/encoding.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/error.hpp>
#include <zmqkit/header.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/device.hpp>
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/security.hpp>
#include <zmqkit/socket.hpp>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::patterns::detail {

inline void apply_socket_options(zmq::socket_t& s, const socket_options& o) {
    s.set(zmq::sockopt::linger, static_cast<int>(std::max<std::int64_t>(0, o.linger.count())));
    s.set(zmq::sockopt::sndhwm, o.send_hwm);
    s.set(zmq::sockopt::rcvhwm, o.recv_hwm);
}

// Subscription size bound of the sockets that receive subscriptions (a forwarder's backend, a
// publisher; issue 14 item 4). libzmq (4.3.4) keeps every subscription in a trie with one
// node per byte and frees it recursively: one long subscription overflows the stack when its
// subscriber leaves, and a huge one grows memory without bound. ZMQ_MAXMSGSIZE stops it at
// the wire: the ZMTP decoder reads a frame's length and, when it is larger, closes that
// connection before allocating the frame. That covers both forms of a subscription — a 0x01
// message (ZMTP 3.0) and a SUBSCRIBE command (ZMTP 3.1: the same frame with the command flag)
// — and a CURVE side, whose MESSAGE box carries either. libzmq reports such a close only as
// ZMQ_EVENT_DISCONNECTED, without its reason, so the refusal is not visible to zmqkit.
//
// The bound is the prefix size plus the framing of a SUBSCRIBE command: "\x09SUBSCRIBE" (10
// bytes), and on a CURVE side the MESSAGE box around it (8-byte name, 8-byte nonce, 16-byte
// MAC, 1 flags byte). So a ZMTP 3.1 subscription (what libzmq >= 4.3.3 sends) is bounded
// exactly; a 0x01-form one can be up to 9 bytes over the limit and still reach the
// application, which refuses it (subscription_too_large).
inline constexpr std::size_t subscribe_command_framing = 10;
inline constexpr std::size_t curve_message_framing = 33;
// The largest accepted --max-subscription-size: a trie this deep frees within a thread's
// default stack (a 256 KiB subscription does not).
inline constexpr std::size_t max_subscription_size_ceiling = 65536;

// Throws config_error unless 1 <= max_size <= max_subscription_size_ceiling.
inline void check_max_subscription_size(std::size_t max_size, const std::string& owner) {
    if (max_size == 0 || max_size > max_subscription_size_ceiling) {
        throw config_error(owner + ": max_subscription_size must be 1 to " +
                           std::to_string(max_subscription_size_ceiling) + " bytes, got " +
                           std::to_string(max_size));
    }
}

// Sets the subscription bound on an XPUB (before bind/connect: libzmq copies it to each
// connection's decoder).
inline void bound_subscriptions(zmq::socket_t& xpub, std::size_t max_size,
                                const socket_security& security) {
    const auto framing =
        subscribe_command_framing +
        (security.mechanism == security_mechanism::curve ? curve_message_framing : 0);
    xpub.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(max_size + framing));
}

// True for a subscribe or unsubscribe message (as an XPUB returns them: 0x01/0x00 + prefix)
// whose prefix is larger than max_size.
inline bool subscription_too_large(const zmq::message_t& frame, std::size_t max_size) noexcept {
    const auto* bytes = static_cast<const unsigned char*>(frame.data());
    return frame.size() > max_size + 1 && (bytes[0] == 0 || bytes[0] == 1);
}

// One side of a device (frontend, backend, capture, control): applies its security settings to
// the socket and, when they are enabled, starts the handshake monitor that reports failed
// handshakes as "<name>: ..." log lines and zmqkit_security_handshake_failures_total. Call on
// the socket's thread before bind/connect; keep the monitor until just before the socket closes.
[[nodiscard]] inline std::unique_ptr<handshake_monitor>
apply_side_security(zmq::context_t& context, zmq::socket_t& s, const socket_security& security,
                    std::string name, metrics_registry* registry) {
    if (!security.enabled()) {
        return nullptr;
    }
    apply_security(s, security);
    return std::make_unique<handshake_monitor>(context, s, std::move(name), nullptr, registry);
}

// The monitors of a device's sides (one per side, secured or not) and their part of STATUS.
// watch() and clear() run on the device's thread; add_status() may be called from any thread.
class side_monitors {
public:
    // Applies `security` to `s` (when enabled) and watches the socket under `side`
    // ("frontend", ...): connections logged at info and counted per side
    // (zmqkit_device_connects_total{component,side}, ...), failed handshakes at warn. The monitor
    // and its log lines are named "<device>.<side>".
    void watch(zmq::context_t& context, zmq::socket_t& s, const socket_security& security,
               const std::string& device, const std::string& side, metrics_registry* registry) {
        if (security.enabled()) {
            apply_security(s, security);
        }
        auto monitor = std::make_unique<handshake_monitor>(
            context, s, device + "." + side, nullptr, registry,
            connection_tracking{true, {{"component", device}, {"side", side}}});
        std::lock_guard lock(mutex_);
        sides_.push_back(
            watched_side{side, security.enabled(), security.describe(), std::move(monitor)});
    }
    // Stops every monitor; call before the sockets close.
    void clear() noexcept {
        std::lock_guard lock(mutex_);
        sides_.clear();
    }
    // Adds `"connections":{"frontend":{"open":N,"connects":N,"disconnects":N,"peers":[{"peer":
    // "127.0.0.1:40312","endpoint":"tcp://0.0.0.0:5555","direction":"accepted","since":
    // "2026-12-07T04:05:06Z"},...]},...}` (peers: the oldest 100) and `"security":{"frontend":
    // {"mode":"curve server, ...","handshakes":N,"handshake_failures":N,"last_failure":"..."},
    // ...}` (only when a side is secured) to doc. Public keys only.
    void add_status(nlohmann::ordered_json& doc) const;
    static constexpr std::size_t status_peers = 100;

private:
    struct watched_side {
        std::string side;
        bool secured = false;
        std::string description;
        std::unique_ptr<handshake_monitor> monitor;
    };
    mutable std::mutex mutex_;
    std::vector<watched_side> sides_;
};

// Throws config_error when a device with per-side settings was given sockets.security: one
// setting for every side hides which side is the server. `fields` names the per-side fields.
inline void refuse_shared_security(const socket_options& sockets, const std::string& device,
                                   std::string_view fields) {
    if (sockets.security.enabled()) {
        throw config_error(device +
                           ": sockets.security is not used by a device with several "
                           "sides; set " +
                           std::string(fields) + " instead");
    }
}

// The base's settings from a device's options (every device's options name these fields
// alike); the device adds its log and clock where it has them.
template <class device_options> device_settings settings_of(const device_options& o) {
    device_settings s;
    s.control = o.control;
    s.control_security = o.control_security;
    s.drain_timeout = o.drain_timeout;
    s.registry = o.registry;
    return s;
}

// The same for a device whose options also have a log callback and a clock (the brokers, the
// durable proxy).
template <class device_options> device_settings logged_settings_of(const device_options& o) {
    auto s = settings_of(o);
    s.log = o.log;
    s.clock = o.clock;
    return s;
}

// The two ROUTER sides of a broker (load balancer, Majordomo). ROUTER_MANDATORY: a send to a
// client or worker that is gone fails at once (EHOSTUNREACH), so a request goes to another
// worker without waiting for the expiry. ROUTER_HANDOVER: a worker that reconnects with the
// same routing id takes over the old connection.
inline void configure_broker_frontend(zmq::socket_t& s) {
    s.set(zmq::sockopt::router_mandatory, true);
}
inline void configure_broker_backend(zmq::socket_t& s) {
    s.set(zmq::sockopt::router_mandatory, true);
    s.set(zmq::sockopt::router_handover, true);
}

// Throws config_error for an endpoint list that does not parse (empty ones are not checked).
inline void check_endpoints(std::initializer_list<const std::string*> specs) {
    for (const auto* spec : specs) {
        if (!spec->empty()) {
            (void)parse_endpoints(*spec, endpoint_action::bind);
        }
    }
}

inline std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    });
    return s;
}

inline std::string_view view(const zmq::message_t& f) {
    return {static_cast<const char*>(f.data()), f.size()};
}

inline std::string hex(std::string_view s) {
    return to_hex(s);
}

// A device's STATUS document (nlohmann::ordered_json: members stay in the order they are
// added, the order docs/operations.md lists them in).
using status_document = nlohmann::ordered_json;

// Sets doc[key] to the text of bytes. Bytes that are not valid UTF-8 (a service name a worker
// chose, a directory) are kept as they are, so dump_status() shows each invalid sequence as
// U+FFFD, and doc[key + "_hex"] is added with their exact bytes in hex, so that a script can
// still address the worker, service or file (docs/operations.md, "STATUS and non-UTF-8 names").
inline void set_text(status_document& doc, const std::string& key, std::string_view bytes) {
    doc[key] = std::string(bytes);
    if (!is_valid_utf8(bytes)) {
        doc[key + "_hex"] = hex(bytes);
    }
}

// A STATUS document being built: device::build_status() puts "state" and "statistics" in it,
// each device its own members (device::add_status), the base the "security" member last.
struct status_object {
    status_document json;
};

// The members the load balancer's and the Majordomo broker's STATUS share, in their order:
// workers_expired ... liveness.
template <class broker_stats, class broker_options>
void add_broker_members(status_document& j, const broker_stats& s, std::uint64_t undeliverable,
                        const broker_options& opt) {
    j["workers_expired"] = s.workers_expired;
    j["workers_disconnected"] = s.workers_disconnected;
    j["undeliverable"] = undeliverable;
    j["queued"] = s.queued;
    j["in_flight"] = s.in_flight;
    j["heartbeat_interval_ms"] = opt.heartbeat_interval.count();
    j["liveness"] = opt.liveness;
}

// The STATUS reply: one line of JSON, always valid (invalid UTF-8 replaced by U+FFFD).
inline std::string dump_status(const status_document& doc) {
    return doc.dump(-1, ' ', false, status_document::error_handler_t::replace);
}

inline void side_monitors::add_status(status_document& doc) const {
    std::lock_guard lock(mutex_);
    auto& connections = doc["connections"] = status_document::object();
    bool any_secured = false;
    for (const auto& s : sides_) {
        any_secured = any_secured || s.secured;
        const auto st = s.monitor->stats();
        const auto open = s.monitor->connections(status_peers);
        auto& side = connections[s.side] = status_document::object();
        side["open"] = st.open;
        side["connects"] = st.connected;
        side["disconnects"] = st.disconnected;
        auto& peers = side["peers"] = status_document::array();
        for (const auto& c : open) {
            status_document p = status_document::object();
            set_text(p, "peer", c.peer);
            set_text(p, "endpoint", c.endpoint);
            p["direction"] = c.accepted ? "accepted" : "connected";
            p["since"] = format_timestamp(c.since);
            peers.push_back(std::move(p));
        }
    }
    if (!any_secured) {
        return;
    }
    auto& security = doc["security"] = status_document::object();
    for (const auto& s : sides_) {
        if (!s.secured) {
            continue;
        }
        const auto st = s.monitor->stats();
        auto& side = security[s.side] = status_document::object();
        set_text(side, "mode", s.description);
        side["handshakes"] = st.succeeded;
        side["handshake_failures"] = st.failed;
        set_text(side, "last_failure", st.last_failure);
    }
}

inline zmq::message_t copy_of(const zmq::message_t& m) {
    zmq::message_t c;
    c.copy(const_cast<zmq::message_t&>(m)); // shares the buffer (refcounted), no byte copy
    return c;
}

// The forwarding devices' hot path (streamer, forwarder): receives one whole message into
// `frames` (reused: grown, never shrunk, so a steady flow allocates nothing); returns its frame
// count (0: none waiting) and its size in `bytes`.
inline std::size_t receive_message(zmq::socket_t& s, std::vector<zmq::message_t>& frames,
                                   std::size_t& bytes) {
    std::size_t n = 0;
    bytes = 0;
    bool more = true;
    while (more) {
        if (n == frames.size()) {
            frames.emplace_back();
        }
        auto& frame = frames[n];
        if (!s.recv(frame, n == 0 ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) {
            break;
        }
        more = frame.more();
        bytes += frame.size();
        ++n;
    }
    return n;
}

// Once frames[0] of an n-frame message went out on `out`: sends the rest, and copies every
// frame to `tap` (if any) without blocking. `first_copy` is a copy of frames[0] taken before it
// was sent. The tap never holds the flow back: a copy it refuses (no room, no peer; only a
// message's first frame can be refused) stops the tapping of that message and is counted.
inline void send_rest_and_tap(zmq::socket_t& out, zmq::socket_t* tap,
                              std::vector<zmq::message_t>& frames, std::size_t n,
                              zmq::message_t& first_copy, counter* tap_drops) {
    bool tapping = tap != nullptr;
    for (std::size_t i = 0; i < n; ++i) {
        const auto flags = i + 1 < n ? zmq::send_flags::sndmore : zmq::send_flags::none;
        if (tapping) {
            zmq::message_t copy;
            if (i == 0) {
                copy.move(first_copy);
            } else {
                copy.copy(frames[i]);
            }
            if (!tap->send(copy, flags | zmq::send_flags::dontwait)) {
                tapping = false;
                tap_drops->add();
            }
        }
        if (i > 0) {
            (void)out.send(frames[i], flags);
        }
    }
}

enum class send_result { sent, unreachable, full };

// Sends every frame (consumed). With ROUTER_MANDATORY an unknown peer fails the first frame
// with EHOSTUNREACH and a full one with EAGAIN; once the first frame is queued the rest are.
inline send_result send_all(zmq::socket_t& s, std::vector<zmq::message_t>& out, counter* messages,
                            counter* bytes) {
    std::size_t total = 0;
    for (const auto& f : out) {
        total += f.size();
    }
    try {
        if (!zmq::send_multipart(s, out, zmq::send_flags::dontwait)) {
            return send_result::full;
        }
    } catch (const zmq::error_t& e) {
        if (e.num() == EHOSTUNREACH) {
            return send_result::unreachable;
        }
        throw;
    }
    messages->add();
    bytes->add(total);
    return send_result::sent;
}

// Receives one multipart message into `frames` (reused); returns its frame count (0: none
// waiting). A message of more than `max_frames` frames is read to its end and reported as
// max_frames + 1 frames (the caller drops it as malformed).
inline std::size_t receive_multipart(zmq::socket_t& s, std::vector<zmq::message_t>& frames,
                                     std::size_t max_frames = 64) {
    std::size_t n = 0;
    bool more = true;
    while (more) {
        if (n == frames.size()) {
            frames.emplace_back();
        }
        if (!s.recv(frames[n], n == 0 ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) {
            return n;
        }
        more = frames[n].more();
        ++n;
        if (n > max_frames && more) {
            zmq::message_t rest;
            while (more && s.recv(rest, zmq::recv_flags::none)) {
                more = rest.more();
            }
        }
    }
    return n;
}

// Drain helpers. A drain's deadline is real time (the caller's), not the device's clock.
using time_point = std::chrono::steady_clock::time_point;

// True while the deadline is ahead.
[[nodiscard]] inline bool before(time_point deadline) noexcept {
    return std::chrono::steady_clock::now() < deadline;
}

// Waits at most min(time left, max_slice) for `events` on `s`; true when ready.
inline bool wait_for(zmq::socket_t& s, short events, time_point deadline,
                     std::chrono::milliseconds max_slice) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    zmq::pollitem_t item{s.handle(), 0, events, 0};
    return zmq::poll(&item, 1, std::clamp(left, std::chrono::milliseconds(0), max_slice)) > 0;
}

// The end of a drain: reads and discards the whole messages already waiting on `s` (input the
// device took in and will not handle), counts them in `messages_in` / `bytes_in` (they did
// arrive) and returns how many, for drain_report::dropped. Stops at the first empty read, or
// after `limit` messages (a producer still sending does not keep the device from ending).
inline std::uint64_t discard_waiting(zmq::socket_t& s, counter* messages_in, counter* bytes_in,
                                     std::uint64_t limit = 100000) {
    std::uint64_t count = 0;
    zmq::message_t frame;
    while (count < limit && s.recv(frame, zmq::recv_flags::dontwait)) {
        std::size_t bytes = frame.size();
        while (frame.more() && s.recv(frame, zmq::recv_flags::none)) {
            bytes += frame.size();
        }
        ++count;
        messages_in->add();
        bytes_in->add(bytes);
    }
    return count;
}

// The checks both brokers make of their options (who: "load balancer 'name'"), and their
// defaults: a tick of a quarter heartbeat (1 to 100 ms) unless given, a batch of at least 1.
template <class broker_options>
void check_broker_options(broker_options& o, const std::string& who) {
    refuse_shared_security(o.sockets, who,
                           "frontend_security, backend_security and control_security");
    if (o.frontend.empty() || o.backend.empty()) {
        throw config_error(who +
                           ": a frontend (clients) and a backend (workers) endpoint are required");
    }
    check_endpoints({&o.frontend, &o.backend});
    if (o.heartbeat_interval.count() <= 0 || o.liveness == 0) {
        throw config_error(who + ": the heartbeat interval and the liveness must be positive");
    }
    if (o.max_attempts == 0) {
        throw config_error(who + ": max attempts must be at least 1");
    }
    if (o.tick.count() < 0) {
        throw config_error(who + ": the tick must not be negative");
    }
    if (o.tick.count() == 0) {
        o.tick = std::clamp(o.heartbeat_interval / 4, std::chrono::milliseconds(1),
                            std::chrono::milliseconds(100));
    }
    o.batch = std::max<std::size_t>(1, o.batch);
}

// The drain of the two brokers (load balancer, Majordomo), once they stopped reading the
// frontend: wait (until the deadline) for the replies of requests in flight. Requests queued or
// still at a worker, and those not read yet, get no answer from this broker: dropped (a Lazy Pirate
// client sends its request again). Returns how many.
template <class broker>
std::uint64_t drain_broker(broker& b, time_point deadline, const device_counters& counters) {
    while (b.requests.size() > b.queued && before(deadline)) {
        if (wait_for(*b.backend, ZMQ_POLLIN, deadline, std::chrono::milliseconds(100))) {
            b.read_backend();
        }
    }
    const std::uint64_t dropped =
        b.requests.size() +
        discard_waiting(*b.frontend, counters.frontend_in, counters.frontend_bytes_in);
    linger_until(*b.frontend, deadline);
    b.backend->set(zmq::sockopt::linger, 0);
    return dropped;
}

// The first frame of a request waiting on a REP control socket (the rest is read and
// ignored); nullopt when none is waiting.
inline std::optional<std::string> receive_control_command(zmq::socket_t& control) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(control, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
        return std::nullopt;
    }
    return frames.front().to_string();
}

inline void send_control_reply(zmq::socket_t& control, const std::vector<std::string>& reply) {
    std::vector<zmq::const_buffer> frames;
    frames.reserve(reply.size());
    for (const auto& f : reply) {
        frames.push_back(zmq::buffer(f));
    }
    (void)zmq::send_multipart(control, frames);
}

} // namespace zmqkit::patterns::detail
