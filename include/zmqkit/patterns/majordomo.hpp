// zmqkit::patterns — 7/MDP v0.1 (Majordomo, rfc.zeromq.org/spec:7) with 8/MMI (spec:8): a
// broker that routes requests by service name to per-service queues of workers, a worker and a
// Lazy Pirate client that speak it.
//
//   mdp_client (DEALER) or REQ ─> [frontend ROUTER] mdp_broker [backend ROUTER] <─ mdp_worker
//                                                                                  or 7/MDP
//                                                                                  worker
//
// The frames and zmqkit's choices where the RFCs leave room are in docs/wire-protocol.md §9.
#pragma once

#include <zmqkit/actor.hpp>
#include <zmqkit/export.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/device.hpp>
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/result.hpp>
#include <zmqkit/socket.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace zmqkit::patterns {

namespace detail {
class peer_liveness; // heartbeats and reconnect backoff of a worker (private)
} // namespace detail

// ---- 7/MDP and 8/MMI frames -------------------------------------------------------------------

// The protocol's constants (docs/wire-protocol.md §9). The parsers of its frames are private to
// the library (patterns/load_balancer/mdp_protocol.hpp).
namespace mdp {
inline constexpr std::string_view client_protocol = "MDPC01"; // MDP/Client v0.1
inline constexpr std::string_view worker_protocol = "MDPW01"; // MDP/Worker v0.1
// Worker command bytes (frame 2 of every MDP/Worker message).
inline constexpr std::string_view ready_command{"\x01", 1};      // worker -> broker, with a service
inline constexpr std::string_view request_command{"\x02", 1};    // broker -> worker
inline constexpr std::string_view reply_command{"\x03", 1};      // worker -> broker
inline constexpr std::string_view heartbeat_command{"\x04", 1};  // both ways
inline constexpr std::string_view disconnect_command{"\x05", 1}; // both ways

} // namespace mdp

// 8/MMI: services in the "mmi." namespace are answered by the broker itself.
namespace mmi {
inline constexpr std::string_view prefix = "mmi.";
inline constexpr std::string_view service = "mmi.service"; // body: a service name
inline constexpr std::string_view found = "200";           // it has at least one worker
inline constexpr std::string_view not_found = "404";       // it has none
inline constexpr std::string_view not_implemented = "501"; // any other mmi.* service
// True for names in the MMI namespace (a worker may not register them).
[[nodiscard]] constexpr bool reserved(std::string_view name) noexcept {
    return name.substr(0, prefix.size()) == prefix;
}
} // namespace mmi

// ---- errors carried in replies ----------------------------------------------------------------

// 7/MDP has no error reply: a REPLY's body is the service's answer. zmqkit's convention
// (docs/wire-protocol.md §9.4), for a worker that cannot answer with a result (zmqkit-worker:
// its command failed) and wants its client to know rather than to time out: the REPLY's body is
// exactly three frames, "zmqkit.error", a code (those of 6/PPP's error replies, §8.3:
// "handler", "malformed", ...) and a readable reason. Any other body is a result. Plain 7/MDP
// peers pass it on as they would any body.
namespace mdp_error {
inline constexpr std::string_view marker = "zmqkit.error"; // the first of the three frames
} // namespace mdp_error

// What an MDP error reply says: its code and its readable reason.
struct ZMQKIT_API mdp_error_reply {
    std::string code;
    std::string reason;
};
// The body of an error reply: {"zmqkit.error", code, reason}.
[[nodiscard]] ZMQKIT_API std::vector<std::string> mdp_error_body(std::string_view code,
                                                                 std::string_view reason);
// The error a REPLY's body carries, or nullopt when the body is a result (anything but exactly
// three frames, the first "zmqkit.error").
[[nodiscard]] ZMQKIT_API std::optional<mdp_error_reply>
parse_mdp_error_reply(const std::vector<std::string>& body);

// ---- the broker -------------------------------------------------------------------------------

struct ZMQKIT_API mdp_broker_options {
    std::string frontend; // ROUTER for MDP clients (REQ, DEALER, mdp_client); prefix-less: bind
    std::string backend;  // ROUTER for MDP workers (mdp_worker); prefix-less: bind
    std::string control;  // optional REP control socket (PAUSE, RESUME, TERMINATE, STATISTICS,
                          // STATUS); prefix-less entries bind
    std::string name = "mdp_broker"; // metric label {component="<name>"}
    socket_options sockets;          // HWMs and linger of frontend and backend; its
                                     // `security` must stay off (config_error): see below
    // CURVE / PLAIN / ZAP per side (security.hpp): MDP clients connect to the frontend,
    // workers to the backend; a bound side is usually a server with its own ZAP domain
    // (socket_security::curve_server(own, "backend")). Default: plaintext, as before.
    socket_security frontend_security;
    socket_security backend_security;
    socket_security control_security; // who may PAUSE/TERMINATE the broker
    // Heartbeats both ways every interval; a worker silent for interval x liveness expires
    // (defaults of the Guide's Majordomo: 2500 ms x 3). Workers must use the same interval.
    std::chrono::milliseconds heartbeat_interval = std::chrono::milliseconds{2500};
    std::uint32_t liveness = 3;
    // A request that waited this long for a worker of its service is dropped (0: never).
    // MDP has no error reply: the client's own timeout (Lazy Pirate) reports the failure.
    std::chrono::milliseconds request_expiry = std::chrono::seconds{10};
    // Requests waiting for workers (all services); a request beyond it is dropped.
    std::size_t max_queued = 100000;
    // Dispatches of one request (the first included): a request whose worker expires or
    // disconnects goes to another worker of its service until then, and is dropped after.
    std::uint32_t max_attempts = 3;
    // TERMINATE / stop(): wait for replies in flight
    std::chrono::milliseconds drain_timeout = std::chrono::seconds{5};
    std::size_t batch = 256; // messages read per socket per wake-up
    // Timer resolution (0: heartbeat_interval / 4, capped at 100 ms).
    std::chrono::milliseconds tick{0};
    // The clock of heartbeats, expiry and request expiry (nullptr: steady_clock::now).
    std::function<std::chrono::steady_clock::time_point()> clock;
    metrics_registry* registry = nullptr;
    // Called on the actor thread with a line per notable event. Unset: zmqkit's log
    // (zmqkit/log.hpp), component `name`, level warn.
    std::function<void(std::string_view)> log;
    // More STATUS members: called on the broker's thread while STATUS is built; returns a JSON
    // object whose members are added to the document (zmqkit-proxy --titanic: {"titanic":{..}}).
    // Must be quick and thread-safe with respect to what it reads; text that is not a JSON
    // object is ignored.
    std::function<std::string()> status_members;
};

// Per-service statistics (STATUS "services").
struct ZMQKIT_API mdp_service_stats {
    std::string name;
    std::size_t workers = 0; // registered
    std::size_t ready = 0;   // waiting for a request
    std::size_t queued = 0;  // requests waiting for a worker
    std::uint64_t requests = 0, replies = 0, expired = 0;
};

// Per-worker statistics (STATUS "workers").
struct ZMQKIT_API mdp_worker_stats {
    std::string id; // routing id, hex
    std::string service;
    bool ready = false;
    bool busy = false;
    std::uint64_t served = 0;
    std::int64_t last_heartbeat_ms = 0; // ms since anything arrived from it
    std::uint64_t expired = 0;          // times a worker with this id expired before
};

// Broker-wide counters (also metrics zmqkit_mdp_*_total {component="<name>"}).
struct ZMQKIT_API mdp_broker_stats {
    std::uint64_t requests = 0;        // client requests for worker services
    std::uint64_t replies = 0;         // worker replies forwarded to clients
    std::uint64_t mmi = 0;             // mmi.* requests answered by the broker
    std::uint64_t redispatched = 0;    // requests dispatched again after their worker was lost
    std::uint64_t expired = 0;         // requests dropped after request_expiry without a worker
    std::uint64_t dropped = 0;         // requests dropped: max attempts, or the queue was full
    std::uint64_t malformed = 0;       // malformed messages on either socket, dropped
    std::uint64_t disconnects = 0;     // DISCONNECTs sent (mmi.* READY, unexpected commands)
    std::uint64_t workers_expired = 0; // silent past interval x liveness
    std::uint64_t workers_disconnected = 0;  // sent DISCONNECT, or found unreachable
    std::uint64_t queued = 0;                // waiting for a worker now
    std::uint64_t in_flight = 0;             // at workers now
    std::vector<mdp_service_stats> services; // sorted by name
    std::vector<mdp_worker_stats> workers;   // sorted by id
};

// The Majordomo broker. start() binds and returns. A client request for service S goes to the
// least recently used ready worker that registered S, one request per worker at a time; with
// no ready worker it waits (up to request_expiry) in S's queue, oldest first. mmi.* requests
// are answered by the broker (8/MMI). A worker that expires (silent past interval x liveness),
// sends DISCONNECT or is found unreachable has its request dispatched to another worker of S,
// up to max_attempts dispatches (workers are idempotent, as 7/MDP assumes). Commands a worker
// may not send in its state (a second READY, a REPLY without a request, anything before
// READY, a READY for mmi.*) are answered with DISCONNECT. Thread-safe public methods.
class ZMQKIT_API mdp_broker final : public device {
public:
    mdp_broker(zmq::context_t& context, mdp_broker_options options);
    ~mdp_broker() override;

    // pause() stops reading the frontend (workers are still served); resume() reads it again.
    // STATUS (status_json()): {"state":..,"statistics":{..},"requests":..,...,"services":[..],
    // "workers":[..]}; always valid JSON: a service name that is not UTF-8 appears with U+FFFD
    // and a "name_hex" / "service_hex" member (docs/operations.md, "STATUS documents").
    // Counters, services and workers, taken on the device's thread (nullopt if it does not
    // answer).
    [[nodiscard]] std::optional<mdp_broker_stats> broker_stats();

private:
    void open_sides() override;
    void on_pause(bool paused) override;
    drain_report on_drain(time_point deadline) override;
    void add_status(detail::status_object& status) override;

    struct impl;
    mdp_broker_options options_;
    std::unique_ptr<impl> impl_;
};

// ---- the worker -------------------------------------------------------------------------------

// Turns a request's body frames into the reply's body frames (at least one; an empty result is
// sent as one empty frame). The views are valid during the call only. An exception makes the
// worker leave (DISCONNECT) and register again on a fresh socket: the broker gives the request
// to another worker, up to its max attempts.
using mdp_handler =
    std::function<std::vector<std::string>(const std::vector<std::string_view>& body)>;

struct ZMQKIT_API mdp_worker_options {
    std::string endpoint;            // the broker's backend; prefix-less entries connect
    std::string service;             // registered with READY; not empty, not "mmi.*"
    std::string name = "mdp-worker"; // thread name
    // Must match the broker's
    std::chrono::milliseconds heartbeat_interval = std::chrono::milliseconds{2500};
    std::uint32_t liveness = 3; // broker silent this many intervals: reconnect
    // Reconnect delays after the broker went silent: initial, doubled each time, capped.
    std::chrono::milliseconds reconnect_initial = std::chrono::seconds{1};
    std::chrono::milliseconds reconnect_max = std::chrono::seconds{32};
    // HWMs, linger; security: CURVE / PLAIN of the DEALER (usually a client of the broker:
    // socket_security::curve_client(server_key, &own)); a handshake the broker refuses is
    // logged and counted (handshake_monitor).
    socket_options socket;
    // Called with each new DEALER before it connects (CURVE keys, a routing id, a monitor).
    std::function<void(zmq::socket_t&)> configure;
    // A line per notable event (broker silent, malformed message, handler failure). Unset:
    // zmqkit's log (zmqkit/log.hpp), component `name`, level warn.
    std::function<void(std::string_view)> log;
};

struct ZMQKIT_API mdp_worker_counters {
    std::uint64_t handled = 0;     // requests answered
    std::uint64_t failed = 0;      // handler threw (the worker left and came back)
    std::uint64_t reconnects = 0;  // new sockets (broker silent, or DISCONNECT)
    std::uint64_t disconnects = 0; // DISCONNECTs received from the broker
    std::uint64_t malformed = 0;   // messages from the broker that were not 7/MDP
};

// A 7/MDP worker on its own thread: READY(service), one request at a time through the handler
// (on its thread), HEARTBEAT every interval. A broker silent for liveness intervals gets a
// fresh socket after a backoff (1 s doubling to 32 s by default); a DISCONNECT from the broker
// gets one at once (the RFC's re-registration after a broker restart). stop() answers what
// already arrived, then sends DISCONNECT. A handler longer than heartbeat_interval x liveness
// gets the worker expired by the broker unless it calls keep_alive() while it works.
class ZMQKIT_API mdp_worker : public actor {
public:
    mdp_worker(zmq::context_t& context, mdp_worker_options options, mdp_handler handler);
    ~mdp_worker() override;

    [[nodiscard]] mdp_worker_counters counters() const noexcept;

    // For a handler that may run longer than heartbeat_interval x liveness: call it now and
    // then while working (every heartbeat_interval / 4 is plenty; a clock read when no
    // heartbeat is due). It sends the HEARTBEAT that is due, so that the broker keeps this
    // worker and its request. Only from this worker's handler (its thread); a call from any
    // other thread does nothing. Never throws.
    void keep_alive() noexcept;
    // From now on no request reaches the handler: the one being handled is finished and
    // answered, any that arrives after is left unanswered for the broker, which gives it to
    // another worker of the service when this worker's DISCONNECT (stop()) reaches it (zmqkit's
    // broker does). Call stop() next: meanwhile the worker still heartbeats. Thread-safe, also
    // from a handler; never throws.
    void stop_taking() noexcept;

protected:
    void setup() override;
    void on_stop(std::chrono::steady_clock::time_point deadline) override;
    void teardown() noexcept override;

private:
    void open_socket();
    void close_socket();
    void handle_incoming();
    void tick();
    void answer(const std::vector<std::string_view>& frames, std::size_t body);
    void send_command(std::string_view command);

    mdp_worker_options options_;
    mdp_handler handler_;
    std::optional<zmq::socket_t> socket_; // same storage across reconnects (watched by address)
    // CURVE / PLAIN handshakes of socket_ (options.socket.security on): destroyed first.
    std::unique_ptr<handshake_monitor> handshakes_;
    std::vector<zmq::message_t> frames_;
    // Heartbeats, silence and reconnect backoff (patterns/common/peer_liveness.hpp).
    std::unique_ptr<detail::peer_liveness> liveness_;
    std::atomic<std::uint64_t> handled_{0}, failed_{0}, reconnects_{0}, disconnects_{0},
        malformed_{0};
    std::atomic<std::thread::id> thread_id_{}; // the actor's thread, set by setup()
    std::atomic<bool> taking_{true};           // false after stop_taking()
};

// ---- the client -------------------------------------------------------------------------------

struct ZMQKIT_API mdp_client_options {
    std::string endpoint; // the broker's frontend; prefix-less entries connect
    // An unanswered request is sent again after this, on a fresh socket (Lazy Pirate).
    std::chrono::milliseconds timeout = std::chrono::milliseconds{2500};
    std::uint32_t attempts = 3; // sends of one request before call() gives up
    // HWMs, linger; security: CURVE / PLAIN of the DEALER (usually a client of the broker:
    // socket_security::curve_client(server_key, &own)); a handshake the broker refuses is
    // logged and counted (handshake_monitor).
    socket_options socket;
    std::function<void(zmq::socket_t&)> configure;
};

// A synchronous 7/MDP client over a DEALER, with the RFC's recommended recovery (Lazy Pirate):
// poll for the reply; after `timeout` close the socket, open a fresh one and send again; after
// `attempts` sends give up. One request at a time (MDP has no correlation id): a reply that
// arrives on a closed socket is lost with it, so a late reply is never taken for the next
// request's. Single-threaded.
class ZMQKIT_API mdp_client {
public:
    mdp_client(zmq::context_t& context, mdp_client_options options);
    // Closes the socket at once (linger 0): requests still pending are dropped. Never throws.
    ~mdp_client();
    mdp_client(const mdp_client&) = delete;
    mdp_client& operator=(const mdp_client&) = delete;
    // Movable (pending requests, counters and the socket go along); a moved-from client may
    // only be destroyed or assigned to.
    mdp_client(mdp_client&& other) noexcept;
    mdp_client& operator=(mdp_client&& other) noexcept;

    // Sends a REQUEST for `service` and waits for its REPLY: done with the reply's body frames,
    // or failed with error "timeout" after `attempts` sends without one. Throws config_error for
    // an empty body or service name.
    [[nodiscard]] result<std::vector<std::string>> call(std::string_view service,
                                                        std::vector<std::string> body);
    // 8/MMI: done with "200" if `service` has workers, "404" if not; failed with "timeout"
    // without an answer, "malformed" for an answer that is not one frame.
    [[nodiscard]] result<std::string> service_status(std::string_view service);

    [[nodiscard]] std::uint64_t resent() const noexcept { return resent_; }
    [[nodiscard]] std::uint64_t reconnects() const noexcept { return reconnects_; }
    // The handshake monitor of the current socket when options.socket.security is on, else
    // nullptr: wait_handshake() tells "broker down" from "handshake refused".
    [[nodiscard]] handshake_monitor* handshakes() noexcept { return handshakes_.get(); }
    // Replies that were not 7/MDP or were for another service: dropped.
    [[nodiscard]] std::uint64_t malformed_replies() const noexcept { return malformed_; }

private:
    void open_socket();

    mdp_client_options options_;
    zmq::context_t* context_; // a pointer, so that the client can be moved
    std::optional<zmq::socket_t> socket_;
    // CURVE / PLAIN handshakes of socket_ (options.socket.security on): destroyed first.
    std::unique_ptr<handshake_monitor> handshakes_;
    std::uint64_t resent_ = 0, reconnects_ = 0, malformed_ = 0;
};

} // namespace zmqkit::patterns
