// zmqkit — a ZeroMQ socket that sends and receives enveloped messages.
#pragma once

#include <zmqkit/codec.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/export.hpp>
#include <zmqkit/message.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/security.hpp>

#include <zmq.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zmqkit {

// Options every zmqkit socket applies at creation. Defaults are bounded: no infinite linger,
// no infinite send block.
struct ZMQKIT_API socket_options {
    int send_hwm = 1000; // ZMQ_SNDHWM, messages
    int recv_hwm = 1000; // ZMQ_RCVHWM, messages
    // ZMQ_LINGER; never infinite (clamped >= 0)
    std::chrono::milliseconds linger = std::chrono::milliseconds{1000};
    // How long send() may block at the HWM
    std::chrono::milliseconds send_timeout = std::chrono::seconds{5};
    // Bodies up to this size travel in the header's frame ([header+body], one frame: a copy of
    // the body is cheaper than a second frame); larger ones in a frame of their own, without a
    // copy. 0: always two frames. Receivers accept both (docs/wire-protocol.md §1).
    std::size_t inline_body_limit = 2048;
    std::string name = "socket";          // metric label {socket="<name>"}
    metrics_registry* registry = nullptr; // nullptr: metrics_registry::global()
    // CURVE / PLAIN / ZAP domain (security.hpp). When enabled(), the socket also runs a
    // handshake_monitor that logs and counts failed handshakes. Devices with a frontend and a
    // backend take per-side settings in their own options instead (frontend_security, ...).
    socket_security security;
};

// Counters a socket keeps (registered as zmqkit_socket_* {socket="<name>"}).
struct ZMQKIT_API socket_counters {
    counter* messages_sent;
    counter* bytes_sent;
    counter* messages_received;
    counter* bytes_received;
    counter* decode_errors;
    counter* send_timeouts;
};

// Frame layout of an enveloped message on a socket (docs/wire-protocol.md §1).
enum class frame_layout {
    plain, // [header+body] or [header][body]                PUSH/PULL, DEALER, PAIR, REQ/REP
    topic, // [topic][header+body] or [topic][header][body]  PUB/SUB, XPUB/XSUB
};

// Owns one zmq::socket_t. Not thread-safe (like every ZeroMQ socket): use from one thread.
// Move-only; destruction closes the socket with the configured linger.
class ZMQKIT_API socket {
public:
    socket(zmq::context_t& context, zmq::socket_type type, socket_options options = {});
    socket(socket&&) noexcept = default;
    // Stops this socket's handshake monitor before its socket closes, then takes other's.
    socket& operator=(socket&& other) noexcept;
    ~socket() = default; // the handshake monitor (declared last) stops before the socket closes

    // Binds/connects every entry of an endpoint list (endpoint.hpp). Returns the endpoints in
    // effect (ephemeral ports resolved) and remembers them (see endpoints()).
    std::vector<std::string> attach(std::string_view spec, endpoint_action default_action);
    [[nodiscard]] const std::vector<std::string>& endpoints() const noexcept { return endpoints_; }

    // Sends m: stamps its header (fresh id and timestamp when the id is nil), encodes it, and
    // hands the body to libzmq (the body of m is empty afterwards; the header stays, so the
    // caller can read the id). Returns false — and leaves the body in m — when the message
    // could not be queued within options.send_timeout (HWM reached, no peer): counted as
    // zmqkit_socket_send_timeouts_total. Throws zmq::error_t only for a closed context/socket.
    [[nodiscard]] bool send(message& m);
    [[nodiscard]] bool send(message&& m) { return send(m); }
    // Same, with a topic frame first (PUB).
    [[nodiscard]] bool send(std::string_view topic, message& m);
    // send(header&, body) with a topic frame first (PUB).
    [[nodiscard]] bool send(std::string_view topic, header& h, std::string_view body);
    // Sends a copy of `body` with header h (stamped in place, so the caller reads h.id after).
    // Like zmq_send: one allocation and one copy for a small body, no message object needed.
    [[nodiscard]] bool send(header& h, std::string_view body);

    // Receives the next well-formed message within `timeout` (0: poll once; negative: wait
    // without limit — avoid). Malformed messages are counted (decode_errors), reported to the
    // decode error handler, discarded, and the wait continues. nullopt on timeout.
    [[nodiscard]] std::optional<message> recv(std::chrono::milliseconds timeout);
    // Receives into `out`, reusing its header's string capacity (the hot-path form: no
    // message is constructed or moved). False on timeout; out is unspecified then.
    [[nodiscard]] bool recv(message& out, std::chrono::milliseconds timeout);
    // Like recv, and also returns the topic frame (SUB). The timeout comes last in every
    // recv overload (as in zmqkit::socket's other forms and the patterns' handles).
    [[nodiscard]] std::optional<message> recv(std::string& topic,
                                              std::chrono::milliseconds timeout);
    // The former argument order of recv(topic, timeout).
    [[deprecated(
        "use recv(topic, timeout): the timeout comes last")]] [[nodiscard]] std::optional<message>
    recv(std::chrono::milliseconds timeout, std::string& topic) {
        return recv(topic, timeout);
    }
    // recv(message&, timeout) that also returns the topic frame (SUB), its capacity reused.
    [[nodiscard]] bool recv(message& out, std::string& topic, std::chrono::milliseconds timeout);
    // Typed receive: the body decoded as T. Throws body_type_error if it does not convert.
    template <class T> [[nodiscard]] std::optional<T> recv_as(std::chrono::milliseconds timeout) {
        auto m = recv(timeout);
        if (!m) {
            return std::nullopt;
        }
        return m->body_as<T>();
    }

    // Called for every discarded malformed message, on the receiving thread.
    using decode_error_handler = std::function<void(const decode_status&)>;
    void on_decode_error(decode_error_handler handler) { on_decode_error_ = std::move(handler); }
    // The last decode error seen (code ok if none).
    [[nodiscard]] const decode_status& last_decode_error() const noexcept { return last_error_; }

    // The underlying socket, for options zmqkit does not wrap. recv() manages ZMQ_RCVTIMEO.
    [[nodiscard]] zmq::socket_t& raw() noexcept { return socket_; }
    [[nodiscard]] const socket_counters& counters() const noexcept { return counters_; }
    [[nodiscard]] frame_layout layout() const noexcept { return layout_; }
    // The monitor of this socket's security handshakes (logs and counts failures; a client
    // asks wait_handshake()), or nullptr when options.security is not enabled().
    [[nodiscard]] handshake_monitor* handshakes() noexcept { return handshakes_.get(); }

private:
    bool send_frames(const std::string_view* topic, header& h, std::string_view body,
                     message* owner);
    bool receive(message& out, std::chrono::milliseconds timeout, std::string* topic);

    zmq::socket_t socket_;
    socket_options options_;
    frame_layout layout_;
    socket_counters counters_{};
    std::vector<std::string> endpoints_;
    decode_error_handler on_decode_error_;
    decode_status last_error_;
    std::vector<zmq::message_t> frames_; // reused receive buffers
    int receive_timeout_ms_ = -1;        // ZMQ_RCVTIMEO currently set on socket_
    // Last member: destroyed first, while socket_ is still open. It holds the libzmq handle,
    // which stays the same when the socket object moves.
    std::unique_ptr<handshake_monitor> handshakes_;
};

// Decodes one received multipart message (frames) into out. Returns the status; on
// success `out` holds the message (and `topic` the first frame for frame_layout::topic).
// The frames are consumed (the body frame is moved into out).
[[nodiscard]] decode_status decode_frames(std::vector<zmq::message_t>& frames, std::size_t count,
                                          frame_layout layout, message& out, std::string* topic);

// Frame layout zmqkit uses for a socket type (topic for PUB/SUB/XPUB/XSUB, plain otherwise).
[[nodiscard]] frame_layout layout_for(zmq::socket_type type) noexcept;

} // namespace zmqkit
