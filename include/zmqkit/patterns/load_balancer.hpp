// zmqkit::patterns — request-reply through a load-balancing broker: the broker (ROUTER frontend
// for clients, ROUTER backend for workers, least-recently-used worker queue, heartbeats, expiry
// of silent workers, re-dispatch of a dead worker's request), a worker, and a Lazy Pirate
// client.
//
//   lb_client (DEALER) or REQ ─> [frontend ROUTER] load_balancer [backend ROUTER] <─ lb_worker
//                                                                                    or 6/PPP
//                                                                                    worker
//
// The backend speaks 6/PPP (rfc.zeromq.org/spec:6); the frames and zmqkit's additions are
// specified in docs/wire-protocol.md §8.
#pragma once

#include <zmqkit/actor.hpp>
#include <zmqkit/export.hpp>
#include <zmqkit/message.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/device.hpp>
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/result.hpp>
#include <zmqkit/socket.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace zmqkit::patterns {

namespace detail {
class peer_liveness; // heartbeats and reconnect backoff of a worker (private)
} // namespace detail

// ---- 6/PPP frames -----------------------------------------------------------------------------

// The Paranoid Pirate Protocol's command frames (docs/wire-protocol.md §8). The parsers of its
// frames are private to the library (patterns/load_balancer/ppp_protocol.hpp).
namespace ppp {
inline constexpr std::string_view ready_byte{"\x01", 1};      // worker -> broker, one frame
inline constexpr std::string_view heartbeat_byte{"\x02", 1};  // both ways, one frame
inline constexpr std::string_view disconnect_byte{"\x05", 1}; // worker -> broker (zmqkit addition)
// zmqkit addition: READY with credit, one frame "\x01credit=<N>" (N decimal, 1 to 2^32 - 1): the
// worker takes up to N requests at once (prefetch) and reads both envelope layouts (a request's
// body may come in a frame of its own). lb_worker always sends it (credit 1 for prefetch 1).
inline constexpr std::string_view ready_credit_prefix{"\x01"
                                                      "credit=",
                                                      8};
// Words some published PPP peers send instead of the bytes (the zguide's C++ ppworker).
inline constexpr std::string_view ready_word = "READY";
inline constexpr std::string_view heartbeat_word = "HEARTBEAT";
inline constexpr std::string_view disconnect_word = "DISCONNECT";

// How a peer spells its commands: the bytes of the RFC (the zguide's C ppworker, lb_worker) or
// the ASCII words (the zguide's C++ ppworker, which takes anything but "HEARTBEAT" for an
// invalid message). The broker heartbeats each worker in the dialect it spoke.
enum class dialect : std::uint8_t { bytes, words };
[[nodiscard]] constexpr std::string_view heartbeat_in(dialect d) noexcept {
    return d == dialect::words ? heartbeat_word : heartbeat_byte;
}

} // namespace ppp

// ---- errors carried in replies ----------------------------------------------------------------

// A broker or worker that cannot answer a request with a result answers with an error reply:
//   envelope requests: a zmqkit message, follow-up of the request, header type "zmqkit.error",
//                      user header "error" = one of the codes below, body = a readable reason;
//   raw requests:      one content frame "ERROR <code>: <reason>".
namespace lb_error {
inline constexpr std::string_view type = "zmqkit.error";
inline constexpr std::string_view header_name = "error";   // the user header with the code
inline constexpr std::string_view attempts = "attempts";   // max attempts reached
inline constexpr std::string_view timeout = "timeout";     // the request's deadline passed
inline constexpr std::string_view queue_full = "busy";     // too many requests waiting
inline constexpr std::string_view handler = "handler";     // the worker's handler threw
inline constexpr std::string_view malformed = "malformed"; // a worker could not read it
} // namespace lb_error

// What an error reply says: its code (one of lb_error's, or another a newer peer sends) and
// its readable reason.
struct ZMQKIT_API lb_error_reply {
    std::string code;
    std::string reason;
};
// The error an envelope reply carries (type "zmqkit.error"; a missing code reads "error"), or
// nullopt when the reply is a result.
[[nodiscard]] std::optional<lb_error_reply> parse_error_reply(const header& h,
                                                              std::string_view body);
// The error a raw reply's content frame carries ("ERROR <code>: <reason>", the code made of
// lower-case letters and '_'), or nullopt when the frame is anything else.
[[nodiscard]] std::optional<lb_error_reply> parse_raw_error_reply(std::string_view frame);

// User header of an envelope request carrying its deadline: Unix time in milliseconds, decimal.
inline constexpr std::string_view lb_deadline_header = "deadline-ms";

// ---- the broker -------------------------------------------------------------------------------

struct ZMQKIT_API load_balancer_options {
    std::string frontend; // ROUTER for clients (REQ, DEALER, lb_client); prefix-less entries bind
    std::string backend;  // ROUTER for workers (6/PPP, lb_worker); prefix-less entries bind
    std::string control;  // optional REP control socket (PAUSE, RESUME, TERMINATE, STATISTICS,
                          // STATUS); prefix-less entries bind
    std::string name = "load_balancer"; // metric label {component="<name>"}
    socket_options sockets;             // HWMs and linger of frontend and backend; its
                                        // `security` must stay off (config_error): see below
    // CURVE / PLAIN / ZAP per side (security.hpp): clients connect to the frontend, workers
    // to the backend; a bound side is usually a server with its own ZAP domain
    // (socket_security::curve_server(own, "backend")). Default: plaintext, as before.
    socket_security frontend_security;
    socket_security backend_security;
    socket_security control_security; // who may PAUSE/TERMINATE the broker
    // The broker heartbeats every worker this often, and a worker silent for
    // heartbeat_interval x liveness is expired (6/PPP's defaults: 1000 ms x 3).
    std::chrono::milliseconds heartbeat_interval = std::chrono::milliseconds{1000};
    std::uint32_t liveness = 3;
    // The most requests one worker may hold at once: a worker that asks for more credit in its
    // READY (lb_worker_options::prefetch) gets this many (>= 1; 1 turns prefetch off).
    std::uint32_t max_prefetch = 64;
    // Requests waiting for a ready worker; one more is answered with error "busy".
    std::size_t max_queued = 100000;
    // Dispatches of one request (the first included) before it is answered with error
    // "attempts": a request whose worker dies or expires is dispatched again until then.
    std::uint32_t max_attempts = 3;
    // Deadline of every request from its arrival (0: none). An envelope request may set an
    // earlier one with the lb_deadline_header. A request past its deadline is answered with
    // error "timeout" instead of being run late (or its late reply dropped). The worker that
    // holds it keeps the slot until it answers; one that still has not heartbeat_interval x
    // liveness after the deadline is stuck: cut off until it says READY again (docs/patterns.md).
    std::chrono::milliseconds request_timeout{0};
    // TERMINATE / stop(): wait for replies in flight
    std::chrono::milliseconds drain_timeout = std::chrono::seconds{5};
    std::size_t batch = 256; // messages read per socket per wake-up
    // Timer resolution of heartbeats, expiry and deadlines (0: heartbeat_interval / 4, capped
    // at 100 ms).
    std::chrono::milliseconds tick{0};
    // The broker's clock for heartbeats, expiry and deadlines (nullptr: steady_clock::now).
    // Tests inject one to expire workers without waiting.
    std::function<std::chrono::steady_clock::time_point()> clock;
    metrics_registry* registry = nullptr;
    // Called on the actor thread with a line per notable event (a worker expired, malformed
    // frames, rate-limited). Unset: zmqkit's log (zmqkit/log.hpp), component `name`, warn.
    std::function<void(std::string_view)> log;
};

// Per-worker statistics (STATUS "workers").
struct ZMQKIT_API lb_worker_stats {
    std::string id;              // routing id, hex
    bool ready = false;          // has free credit: waiting in the LRU queue
    bool busy = false;           // all its credit in use (credit 1: a request in flight)
    std::uint32_t in_flight = 0; // requests dispatched to it and not answered yet
    std::uint32_t credit = 1;    // requests it may hold at once (its READY's, capped)
    std::uint64_t served = 0;
    std::int64_t last_heartbeat_ms = 0; // ms since anything arrived from it
    std::uint64_t expired = 0;          // times a worker with this id expired before
};

// Broker-wide counters (also metrics zmqkit_lb_*_total {component="<name>"}).
struct ZMQKIT_API lb_broker_stats {
    std::uint64_t requests = 0;     // requests accepted from clients (duplicates excluded)
    std::uint64_t replies = 0;      // worker replies forwarded to clients
    std::uint64_t errors = 0;       // error replies the broker sent (attempts, timeout, busy)
    std::uint64_t redispatched = 0; // requests dispatched again after their worker was lost
    std::uint64_t duplicates = 0;   // resent requests (same id) joined to the pending one
    std::uint64_t late_replies = 0; // replies for requests no longer in flight, dropped
    std::uint64_t malformed = 0;    // malformed messages on any socket, dropped
    std::uint64_t workers_expired = 0;
    std::uint64_t workers_disconnected = 0; // DISCONNECT, or found unreachable
    // Heartbeating but holding a request heartbeat_interval x liveness past its deadline: cut
    // off (no requests, no heartbeats) until it says READY again.
    std::uint64_t workers_stuck = 0;
    std::uint64_t queued = 0;    // waiting for a worker now
    std::uint64_t in_flight = 0; // at workers now
    std::vector<lb_worker_stats> workers;
};

// The load-balancing broker. start() binds and returns; requests from the frontend go to the
// least recently used ready worker, one at a time per worker — or up to its credit at once for
// a worker that announced one (lb_worker_options::prefetch; capped by max_prefetch), the
// worker going to the back of the queue after each request. A request is kept until its
// reply (or an error reply) went to the client: when its worker sends DISCONNECT, is found
// unreachable or stays silent past heartbeat_interval x liveness, it (and every other request
// that worker holds) is dispatched to another worker (attempt + 1 in an envelope's header). A
// resent envelope request (same message id, e.g. a Lazy Pirate retry on a fresh socket) joins the
// pending one and its reply goes to the newest sender. Thread-safe public methods.
class ZMQKIT_API load_balancer final : public device {
public:
    load_balancer(zmq::context_t& context, load_balancer_options options);
    ~load_balancer() override;

    // pause() stops reading the frontend (workers are still served); resume() reads it again.
    // STATUS (status_json()): {"state":..,"statistics":{..},"requests":..,...,"workers":[{..}]}
    // Counters and per-worker state, taken on the device's thread (nullopt if it does not
    // answer).
    [[nodiscard]] std::optional<lb_broker_stats> broker_stats();

private:
    void open_sides() override;
    void on_pause(bool paused) override;
    drain_report on_drain(time_point deadline) override;
    void add_status(detail::status_object& status) override;

    struct impl;
    load_balancer_options options_;
    std::unique_ptr<impl> impl_;
};

// ---- the worker -------------------------------------------------------------------------------

// A request as a worker's handler sees it. For an envelope request `message` is the decoded
// zmqkit message; for a raw one (a plain REQ client) its header is nil and its body the
// request's single content frame.
struct ZMQKIT_API lb_request {
    zmqkit::message message;
    bool envelope = false;
};

// Turns a request into a reply. For an envelope request the reply is sent as a zmqkit message;
// fields left unset become a follow-up of the request (same correlation id, causation = the
// request's id). For a raw request only the reply's body is sent. An exception becomes an error
// reply "handler" with its what().
using lb_handler = std::function<message(const lb_request&)>;

// A handler over bytes: body in, body out.
[[nodiscard]] lb_handler lb_bytes_handler(std::function<std::string(std::string_view)> fn);

// A handler over typed values packed with msgpack-c (message::pack / body_as<Request>). A body
// that does not convert is answered with error "handler".
template <class Request, class Reply>
[[nodiscard]] lb_handler lb_typed_handler(std::function<Reply(const Request&)> fn) {
    return [fn = std::move(fn)](const lb_request& r) {
        return r.message.follow_up_packed(fn(r.message.body_as<Request>()));
    };
}

struct ZMQKIT_API lb_worker_options {
    std::string endpoint;           // the broker's backend; prefix-less entries connect
    std::string name = "lb-worker"; // thread name and metric label
    // Must match the broker's
    std::chrono::milliseconds heartbeat_interval = std::chrono::milliseconds{1000};
    std::uint32_t liveness = 3; // broker silent this many intervals: reconnect
    // Requests the broker may send before this worker answers the first (AMQP's basic.qos
    // prefetch). 1 (default): one at a time, the fair dispatch long jobs want. N > 1: the READY
    // announces credit N (a zmqkit broker caps it at its max_prefetch; a plain 6/PPP broker
    // sends one at a time), so the next requests wait in this worker's socket instead of a
    // broker round trip away: more throughput for short requests, less fairness for long
    // ones. Requests are still handled one at a time, in order.
    std::uint32_t prefetch = 1;
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

// Worker-side counters.
struct ZMQKIT_API lb_worker_counters {
    std::uint64_t handled = 0;    // requests answered (errors included)
    std::uint64_t failed = 0;     // handler threw
    std::uint64_t reconnects = 0; // new sockets after the broker went silent
    std::uint64_t malformed = 0;  // messages from the broker that were not 6/PPP
};

// A 6/PPP worker on its own thread: READY, then handles one request at a time with the handler
// (on its thread), heartbeats every interval, and when the broker is silent for liveness
// intervals reconnects on a fresh socket after a backoff (1 s doubling to 32 s by default).
// stop() drains: the request being handled is finished and answered, then DISCONNECT tells the
// broker to send nothing more, within the stop deadline (with prefetch 1 a request that
// already arrived is answered too; with prefetch > 1 requests still waiting in the socket are
// left to the broker, which dispatches them again on DISCONNECT). A handler longer than
// heartbeat_interval x liveness gets the worker expired by the broker (its request goes to
// another worker) unless it calls keep_alive() while it works.
class ZMQKIT_API lb_worker : public actor {
public:
    lb_worker(zmq::context_t& context, lb_worker_options options, lb_handler handler);
    ~lb_worker() override;

    [[nodiscard]] lb_worker_counters counters() const noexcept;

    // For a handler that may run longer than heartbeat_interval x liveness (a command, a slow
    // query): call it now and then while working (every heartbeat_interval / 4 is plenty; a
    // clock read when no heartbeat is due). It sends the heartbeat that is due, so that the
    // broker keeps this worker and its request instead of expiring it and running the request
    // elsewhere. Only from this worker's handler (its thread); a call from any other thread
    // does nothing. Never throws.
    void keep_alive() noexcept;
    // From now on no request reaches the handler: the one being handled is finished and
    // answered, any that arrives after is left unanswered for the broker, which dispatches it to
    // another worker when this worker's DISCONNECT (stop()) reaches it (a zmqkit broker does;
    // a plain 6/PPP broker loses it until the client resends). Call stop() next: meanwhile the
    // worker still heartbeats. A drain that takes nothing new (SIGTERM), or a count reached
    // inside a handler. Thread-safe, also from a handler; never throws.
    void stop_taking() noexcept;

protected:
    void setup() override;
    void on_stop(std::chrono::steady_clock::time_point deadline) override;
    void teardown() noexcept override;

private:
    void open_socket();
    void handle_incoming();
    void tick();
    void answer(std::vector<zmq::message_t>& frames, std::size_t envelope_size, std::size_t count);
    void send_command(std::string_view command);

    lb_worker_options options_;
    lb_handler handler_;
    std::string ready_command_;           // READY with credit (= prefetch)
    std::optional<zmq::socket_t> socket_; // same storage across reconnects (watched by address)
    // CURVE / PLAIN handshakes of socket_ (options.socket.security on): destroyed first.
    std::unique_ptr<handshake_monitor> handshakes_;
    std::vector<zmq::message_t> frames_;
    std::vector<std::string_view> views_; // of frames_ (reused: no allocation per request)
    // Heartbeats, silence and reconnect backoff (patterns/common/peer_liveness.hpp).
    std::unique_ptr<detail::peer_liveness> liveness_;
    std::atomic<std::uint64_t> handled_{0}, failed_{0}, reconnects_{0}, malformed_{0};
    std::atomic<std::thread::id> thread_id_{}; // the actor's thread, set by setup()
    std::atomic<bool> taking_{true};           // false after stop_taking()
};

// ---- the Lazy Pirate client -------------------------------------------------------------------

struct ZMQKIT_API lb_client_options {
    std::string endpoint; // the broker's frontend; prefix-less entries connect
    // An unanswered request is sent again after this, on a fresh socket (Lazy Pirate).
    std::chrono::milliseconds timeout = std::chrono::milliseconds{2500};
    std::uint32_t attempts = 3; // sends of one request before it fails with "timeout"
    // HWMs, linger; security: CURVE / PLAIN of the DEALER (usually a client of the broker:
    // socket_security::curve_client(server_key, &own)); a handshake the broker refuses is
    // logged and counted (handshake_monitor).
    socket_options socket;
    // Called with each new DEALER before it connects (CURVE keys, a monitor).
    std::function<void(zmq::socket_t&)> configure;
};

// The outcome of one request, in the shape every zmqkit request-reply call returns (result.hpp):
// done with the reply; or failed, error() the code of the broker's or worker's error reply
// ("attempts", "handler", "timeout", "malformed", ...) and reason() its text, or "timeout" when
// no reply came after `attempts` sends.
using lb_result = result<message>;

// A Lazy Pirate client over a DEALER (it sends the empty delimiter itself, so a REQ-style
// broker sees a REQ peer). Requests are zmqkit messages; each reply is matched to its request
// by the reply's causation id (= the request's message id); a reply that matches nothing
// pending — late, after a retry, or a duplicate — is dropped and counted. After `timeout`
// without a reply a request is sent again with the same id and attempt + 1 on a fresh socket
// (every request still pending is sent again on it; the broker joins duplicates), up to
// `attempts` sends. Single-threaded: call from one thread; callbacks and futures complete
// inside call(), poll() and flush().
class ZMQKIT_API lb_client {
public:
    lb_client(zmq::context_t& context, lb_client_options options);
    // Closes the socket at once (linger 0): requests still pending are dropped. Never throws.
    ~lb_client();
    lb_client(const lb_client&) = delete;
    lb_client& operator=(const lb_client&) = delete;
    // Movable (pending requests, counters and the socket go along); a moved-from client may
    // only be destroyed or assigned to.
    lb_client(lb_client&& other) noexcept;
    lb_client& operator=(lb_client&& other) noexcept;

    // Sends `request` and waits for its outcome (at most timeout x attempts), handling other
    // requests' replies meanwhile.
    [[nodiscard]] lb_result call(message request);
    // Sends `request`; `done` is called once with its outcome. Returns the request's id.
    message_id submit(message request, std::function<void(lb_result)> done);
    // Sends `request`; the future is ready once its outcome is known (call poll() or flush()).
    [[nodiscard]] std::future<lb_result> submit(message request);
    // Handles replies that arrive within `timeout` and resends or fails overdue requests.
    // Returns the number of requests completed.
    std::size_t poll(std::chrono::milliseconds timeout);
    // Polls until no request is pending, at most `timeout`. True if none is left.
    [[nodiscard]] bool flush(std::chrono::milliseconds timeout);

    [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }
    [[nodiscard]] std::uint64_t late_replies() const noexcept { return late_replies_; }
    [[nodiscard]] std::uint64_t resent() const noexcept { return resent_; }
    [[nodiscard]] std::uint64_t reconnects() const noexcept { return reconnects_; }
    // The handshake monitor of the current socket when options.socket.security is on, else
    // nullptr: wait_handshake() tells "broker down" from "handshake refused".
    [[nodiscard]] handshake_monitor* handshakes() noexcept { return handshakes_.get(); }
    // Replies that were not ["" delimiter][zmqkit message]: dropped.
    [[nodiscard]] std::uint64_t malformed_replies() const noexcept { return malformed_; }

private:
    struct entry {
        std::string frame;           // the encoded request [header+body], attempt kept current
        std::size_t header_size = 0; // of the header at the start of `frame`
        header request_header;
        std::uint32_t sends = 0;
        std::chrono::steady_clock::time_point due;
        std::function<void(lb_result)> done;
    };
    void open_socket();
    void transmit(entry& e);
    bool handle_reply(); // receives one reply if one is waiting; false if none was
    void check_overdue();
    void complete(std::unordered_map<message_id, entry, message_id_hash>::iterator it,
                  lb_result result);

    lb_client_options options_;
    zmq::context_t* context_; // a pointer, so that the client can be moved
    std::optional<zmq::socket_t> socket_;
    // CURVE / PLAIN handshakes of socket_ (options.socket.security on): destroyed first.
    std::unique_ptr<handshake_monitor> handshakes_;
    std::unordered_map<message_id, entry, message_id_hash> pending_;
    // (due, id) in send order; an entry whose due differs from the request's is stale.
    std::deque<std::pair<std::chrono::steady_clock::time_point, message_id>> retry_order_;
    std::chrono::steady_clock::time_point last_reconnect_{};
    std::uint64_t late_replies_ = 0, resent_ = 0, reconnects_ = 0, malformed_ = 0;
    std::vector<zmq::message_t> frames_;
    std::size_t completed_ = 0;
};

} // namespace zmqkit::patterns
