// zmqkit::patterns — durable store-and-forward: the durable proxy (producers get a confirm only
// once their message is on disk; consumers get credit-based delivery with ack/nack, redelivery
// with backoff, a max-attempts limit and a dead-letter spool), and the reliable sender and
// receiver that give application code at-least-once delivery with an exactly-once effect.
//
//   reliable_sender (DEALER) -> [frontend ROUTER] durable_proxy + spool [backend ROUTER]
//                                                                   -> reliable_receiver (DEALER)
//   PUSH producers -> [frontend_pull PULL]            [backend_push PUSH] -> PULL consumers
//
// The frames are specified in docs/wire-protocol.md §7.
#pragma once

#include <zmqkit/actor.hpp>
#include <zmqkit/export.hpp>
#include <zmqkit/message.hpp>
#include <zmqkit/message_id_window.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/device.hpp>
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/socket.hpp>
#include <zmqkit/spool.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace zmqkit::patterns {

// Command words of the durable protocol (docs/wire-protocol.md §7). The parsers of its frames
// are private to the library (patterns/durable/durable_protocol.hpp).
namespace durable_protocol {
inline constexpr std::string_view confirm = "CONFIRM"; // proxy -> producer: [CONFIRM][ids]
inline constexpr std::string_view reject = "REJECT";   // proxy -> producer: [REJECT][id][why]
inline constexpr std::string_view credit =
    "CREDIT"; // consumer -> proxy: [CREDIT][n]([group][start])
inline constexpr std::string_view deliver = "DELIVER"; // proxy -> consumer: [DELIVER][tag][msg]
inline constexpr std::string_view ack = "ACK";         // consumer -> proxy: [ACK][tags]
inline constexpr std::string_view nack = "NACK";       // consumer -> proxy: [NACK][tags][how][why]
inline constexpr std::string_view bye = "BYE";         // consumer -> proxy: [BYE]
// consumer -> proxy: [PENDING]; proxy -> consumer: [PENDING][ready][in flight to it]
inline constexpr std::string_view pending = "PENDING";
inline constexpr std::string_view batch = "BATCH"; // producer -> proxy: [BATCH][entries]
// proxy -> consumer: [ERROR][reason] (its CREDIT was refused: a group it cannot have)
inline constexpr std::string_view error_reply = "ERROR";
inline constexpr std::string_view nack_requeue = "requeue";
inline constexpr std::string_view nack_dead_letter = "dead-letter";
// Bytes of the big-endian length before each entry of a batch.
inline constexpr std::size_t batch_length_size = 4;

} // namespace durable_protocol

// ---- the durable proxy ------------------------------------------------------------------------

struct ZMQKIT_API durable_proxy_options {
    // ROUTER for producers that want confirms (DEALER; REQ works too, one confirm per request).
    std::string frontend;
    // PULL for fire-and-forget producers (PUSH). Optional.
    std::string frontend_pull;
    // ROUTER for reliable consumers (DEALER: CREDIT, DELIVER, ACK/NACK).
    std::string backend;
    // PUSH for best-effort consumers (PULL): a message counts as delivered once libzmq took it.
    std::string backend_push;
    // REP control socket (PAUSE, RESUME, TERMINATE, STATISTICS, STATUS). Optional.
    std::string control;
    // All endpoint entries without a prefix bind.
    std::string name = "durable";
    spool_options spool;    // directory required; spool.name defaults to `name`
    socket_options sockets; // HWMs, linger; its `security` must stay off (config_error)
    // CURVE / PLAIN / ZAP per side (security.hpp). frontend_security applies to frontend and
    // frontend_pull (producers), backend_security to backend and backend_push (consumers); a
    // bound side is usually a server with its own ZAP domain
    // (socket_security::curve_server(own, "frontend")). Default: plaintext, as before.
    socket_security frontend_security;
    socket_security backend_security;
    socket_security control_security; // who may PAUSE/TERMINATE the proxy
    std::size_t batch = 4096;         // messages read per wake-up before one group commit
    // An unacknowledged delivery is requeued after this (attempt + 1, with backoff).
    std::chrono::milliseconds ack_timeout = std::chrono::seconds{30};
    // A consumer that sent nothing (CREDIT doubles as heartbeat) for this long is gone: its
    // in-flight messages are requeued at once.
    std::chrono::milliseconds consumer_timeout = std::chrono::seconds{10};
    // Delay before a requeued message is delivered again: backoff * 2^(attempt-1), capped.
    std::chrono::milliseconds redelivery_backoff = std::chrono::seconds{1};
    std::chrono::milliseconds redelivery_backoff_max = std::chrono::seconds{60};
    // TERMINATE / stop(): time to commit and confirm
    std::chrono::milliseconds drain_timeout = std::chrono::seconds{5};
    // Timer resolution (timeouts, interval sync)
    std::chrono::milliseconds tick = std::chrono::milliseconds{20};
    // Recovery of a large spool happens in start()
    std::chrono::milliseconds start_timeout = std::chrono::seconds{60};
    metrics_registry* registry = nullptr;
    // Called on the actor thread with one line per notable event: recovery findings, disk
    // full and recovered, the spool turning read-only, malformed input (rate-limited), a
    // consumer expiring. Unset: zmqkit's log (zmqkit/log.hpp), component `name`, warn.
    std::function<void(std::string_view)> log;
    // The clock of ack deadlines, consumer expiry, redelivery backoff and log rate limits
    // (nullptr: steady_clock::now). Tests inject one to drive time by hand.
    device_clock clock;
};

// The durable forwarding proxy. Owns the spool on its actor thread: start() recovers the spool
// (throws component_error with the spool's reason), binds, and returns. Every confirm is sent
// only after the message's record is committed per the spool's sync policy; every delivery only
// after its delivery record is. Messages reach a single consumer in spool order (redeliveries
// aside). Thread-safe public methods.
class ZMQKIT_API durable_proxy final : public device {
public:
    durable_proxy(zmq::context_t& context, durable_proxy_options options);
    ~durable_proxy() override;

    // STATUS (status_json()): {"state":..,"statistics":{..},"spool":{..},"consumers":[..],...};
    // always valid JSON (a directory that is not UTF-8 also gets "directory_hex",
    // docs/operations.md). drain_result() carries remaining_in_spool.
    // The spool's recovery report (valid after start(); also after a start() that failed
    // because strict mode refused a damaged spool: then `refused` is set).
    [[nodiscard]] recovery_report recovery() const;

    [[nodiscard]] std::vector<std::string> frontend_pull_endpoints() const {
        return endpoints("frontend-pull");
    }
    [[nodiscard]] std::vector<std::string> backend_push_endpoints() const {
        return endpoints("backend-push");
    }

private:
    void open_sides() override;
    void on_pause(bool paused) override;
    drain_report on_drain(time_point deadline) override;
    std::string status_state() override;
    void add_status(detail::status_object& status) override;
    std::optional<std::vector<std::string>> on_extra_command(const std::string& command) override;
    [[nodiscard]] std::vector<std::string> extra_commands() const override;
    void after_close() noexcept override;

    struct impl;
    durable_proxy_options options_;
    std::unique_ptr<impl> impl_;
    mutable std::mutex recovery_mutex_;
    recovery_report recovery_;
};

// ---- reliable sender --------------------------------------------------------------------------

struct ZMQKIT_API reliable_sender_options {
    std::string endpoint;      // the proxy's frontend; entries without a prefix connect
    std::size_t window = 1000; // unconfirmed messages in flight before send() waits
    // An unconfirmed message is sent again (same id: the proxy confirms it once) after this.
    std::chrono::milliseconds retry_interval = std::chrono::seconds{2};
    // Producer batching (docs/wire-protocol.md §7.1): up to batch_messages messages, and up to
    // batch_bytes of them (a larger message goes alone), leave as ONE ZeroMQ message
    // [BATCH][entries]. 1 (the default) = no batching: each message is its own ZeroMQ message,
    // as without this option. A batch that holds one message is sent as a plain message.
    // Needs a durable proxy that reads batches (this version); an older one rejects them.
    std::size_t batch_messages = 1;
    std::size_t batch_bytes = 1 << 20;
    // How long a partly filled batch may wait for more messages; 0 = send at once. There is
    // no background thread: a partly filled batch leaves when it is full, when the window is
    // full (send() is about to wait for confirms), when linger has passed at the next send()
    // or poll() (poll() waits no longer than that), on send_batch() and on flush().
    std::chrono::milliseconds linger{0};
    // The clock of linger and retry_interval (nullptr: steady_clock::now). Tests inject one to
    // pass linger or the retry interval without waiting. The timeouts of send(), poll() and
    // flush() are real time.
    std::function<std::chrono::steady_clock::time_point()> clock;
    // HWMs, linger (name = metric label); security: CURVE / PLAIN of the DEALER (usually a
    // client of the proxy: socket_security::curve_client(server_key, &own)).
    socket_options socket;
    // Called with the DEALER before it connects (socket options, a monitor). With security on
    // the sender already monitors the socket (handshakes()): libzmq allows one monitor.
    std::function<void(zmq::socket_t&)> configure;
};

// At-least-once sending through a durable proxy: every message is kept until the proxy confirms
// it is on disk, and resent (same id, so it is stored once) until then. Single-threaded: use
// from one thread. Destruction does not wait for confirms: call flush() first.
class ZMQKIT_API reliable_sender {
public:
    reliable_sender(zmq::context_t& context, reliable_sender_options options);
    // Defaults for everything but the proxy's frontend endpoint.
    reliable_sender(zmq::context_t& context, std::string endpoint)
        : reliable_sender(context, with_endpoint(std::move(endpoint))) {}
    ~reliable_sender();
    reliable_sender(const reliable_sender&) = delete;
    reliable_sender& operator=(const reliable_sender&) = delete;
    // Movable (kept messages, counters and the socket go along); a moved-from sender may only
    // be destroyed or assigned to. Assignment drops what this one still kept.
    reliable_sender(reliable_sender&& other) noexcept;
    reliable_sender& operator=(reliable_sender&& other) noexcept;

    // Sends m (stamped like zmqkit::socket::send; m.header().id is its id afterwards; with
    // batching it may wait in the open batch, see the options). While the window is full it
    // sends the open batch and waits for confirms, at most `timeout`; false then (m unchanged).
    // Confirms are read when the window is full and before resending; poll() reads them now.
    [[nodiscard]] bool send(message& m,
                            std::chrono::milliseconds timeout = std::chrono::seconds{5});
    [[nodiscard]] bool send(message&& m,
                            std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
        return send(m, timeout);
    }
    // Handles confirms that arrived, sends a partly filled batch whose linger has passed and
    // resends overdue messages, waiting at most `timeout` (and no longer than the open batch's
    // linger) for something to arrive. Returns how many messages got confirmed or rejected.
    std::size_t poll(std::chrono::milliseconds timeout);
    // Sends the open (partly filled) batch now, without waiting. No-op if there is none.
    void send_batch();
    // Sends the open batch, then waits until every message sent was confirmed or rejected, at
    // most `timeout`. True if none is left unconfirmed.
    [[nodiscard]] bool flush(std::chrono::milliseconds timeout);

    [[nodiscard]] std::size_t unconfirmed() const noexcept { return live_; }
    [[nodiscard]] std::uint64_t confirmed() const noexcept { return confirmed_; }
    [[nodiscard]] std::uint64_t rejected() const noexcept { return rejected_; }
    [[nodiscard]] std::uint64_t resent() const noexcept { return resent_; }
    // Messages kept but not handed to the socket yet (the open batch, or no room).
    [[nodiscard]] std::size_t waiting() const noexcept;
    // ZeroMQ messages sent that carried a batch of more than one message.
    [[nodiscard]] std::uint64_t batches() const noexcept { return batches_; }
    // The ids still waiting for a confirm (for a report at the end).
    [[nodiscard]] std::vector<message_id> unconfirmed_ids() const;

    // Called (on the calling thread, inside send/poll/flush) per confirmed / rejected message.
    void on_confirm(std::function<void(const message_id&)> fn) { on_confirm_ = std::move(fn); }
    void on_reject(std::function<void(const message_id&, std::string_view reason)> fn) {
        on_reject_ = std::move(fn);
    }

    [[nodiscard]] const std::vector<std::string>& endpoints() const noexcept { return endpoints_; }
    [[nodiscard]] zmq::socket_t& raw() noexcept { return socket_; }
    // The handshake monitor of the socket when options.socket.security is on, else nullptr:
    // wait_handshake() tells "proxy down" from "handshake refused".
    [[nodiscard]] handshake_monitor* handshakes() noexcept { return handshakes_.get(); }

private:
    static reliable_sender_options with_endpoint(std::string endpoint) {
        reliable_sender_options o;
        o.endpoint = std::move(endpoint);
        return o;
    }
    using time_point = std::chrono::steady_clock::time_point;
    // One kept message. Slots form a ring in send order (slot of sequence s: s & mask); a
    // slot's frame buffer is reused by later messages, so steady sending does not allocate.
    struct slot {
        message_id id;
        std::uint64_t seq = 0;  // the ring sequence number it holds while live
        bool live = false;      // kept until confirmed or rejected
        bool waiting = false;   // to be handed to the socket (new, resent, or no room)
        time_point sent_at{};   // last handed to the socket
        time_point queued_at{}; // when it started waiting (linger)
        std::string frame;      // the encoded message: [header+body]
    };
    [[nodiscard]] time_point now() const {
        return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
    }
    [[nodiscard]] slot* live_slot(std::uint64_t seq) noexcept;
    void grow_ring();
    void settle(const message_id& id, bool confirmed, std::string_view reason);
    bool transmit_waiting(bool force, time_point at);
    std::size_t handle_replies(std::chrono::milliseconds timeout);
    void resend_overdue(time_point at);
    [[nodiscard]] std::chrono::milliseconds until_linger(time_point at) const;

    reliable_sender_options options_;
    zmq::socket_t socket_;
    std::unique_ptr<handshake_monitor> handshakes_; // destroyed before socket_
    std::vector<std::string> endpoints_;
    std::vector<slot> ring_; // power-of-two size; live sequences in [head_, tail_)
    std::uint64_t head_ = 0, tail_ = 0;
    std::size_t live_ = 0;
    message_id_window index_{0};         // id -> ring sequence of the live messages
    std::vector<std::uint64_t> waiting_; // sequences to send, in order, from waiting_head_
    std::size_t waiting_head_ = 0;
    std::size_t waiting_count_ = 0; // slots with `waiting` set
    bool blocked_ = false;          // the socket had no room at the last attempt
    time_point next_retry_check_{};
    std::uint64_t confirmed_ = 0, rejected_ = 0, resent_ = 0, batches_ = 0;
    std::function<void(const message_id&)> on_confirm_;
    std::function<void(const message_id&, std::string_view)> on_reject_;
    std::vector<zmq::message_t> frames_;
    std::vector<std::string_view> views_;
    counter* confirmed_counter_ = nullptr;
    counter* resent_counter_ = nullptr;
    counter* batches_counter_ = nullptr;
};

// ---- reliable receiver ------------------------------------------------------------------------

struct ZMQKIT_API reliable_receiver_options {
    std::string endpoint;       // the proxy's backend; entries without a prefix connect
    std::uint32_t credit = 100; // deliveries the proxy may have outstanding to this consumer
    // CREDIT is re-sent this often (liveness)
    std::chrono::milliseconds heartbeat = std::chrono::seconds{1};
    std::size_t dedup_window = 100000; // message ids remembered as processed
    std::size_t ack_batch = 64;        // acks go out in batches of this many, or at the next recv
    // The consumer group to read in (docs/wire-protocol.md §7.3): each group gets every message,
    // shared among its consumers. Empty: the proxy's default queue. A group that does not
    // exist yet is created at `start` (group_start::parse: earliest, latest, a sequence number,
    // a time; empty: earliest), resolved here once (a duration means before construction).
    // recv() throws config_error when the proxy refuses the group (its words say why).
    std::string group;
    std::string start;
    // HWMs, linger; security: CURVE / PLAIN of the DEALER (usually a client of the proxy).
    socket_options socket;
    // Called with the DEALER before it connects (socket options, a monitor). With security on
    // the receiver already monitors the socket (handshakes()): libzmq allows one monitor.
    std::function<void(zmq::socket_t&)> configure;
};

// One message delivered by a durable proxy. Ack it (or nack it) when done.
struct ZMQKIT_API delivery {
    zmqkit::message message;
    std::uint64_t tag = 0;     // the proxy's delivery tag (the spool sequence number)
    std::uint32_t attempt = 1; // 1 on first delivery
};

// At-least-once receiving from a durable proxy, with duplicate suppression by message id: a
// message whose id was already acked (within the dedup window) is acked again and not returned,
// so a handler that acks after its effect sees each message once. Single-threaded.
class ZMQKIT_API reliable_receiver {
public:
    reliable_receiver(zmq::context_t& context, reliable_receiver_options options);
    // Defaults for everything but the proxy's backend endpoint.
    reliable_receiver(zmq::context_t& context, std::string endpoint)
        : reliable_receiver(context, with_endpoint(std::move(endpoint))) {}
    ~reliable_receiver(); // sends pending acks and BYE (bounded by linger); never throws
    reliable_receiver(const reliable_receiver&) = delete;
    reliable_receiver& operator=(const reliable_receiver&) = delete;
    // Movable (pending acks, the dedup window and the socket go along); a moved-from receiver
    // may only be destroyed or assigned to. Assignment first sends this one's acks and BYE.
    reliable_receiver(reliable_receiver&& other) noexcept;
    reliable_receiver& operator=(reliable_receiver&& other) noexcept;

    // The next new delivery within `timeout`; nullopt on timeout.
    [[nodiscard]] std::optional<delivery> recv(std::chrono::milliseconds timeout);
    // Marks d processed: acked (batched) and remembered for duplicate suppression.
    void ack(const delivery& d);
    // Gives d back: requeue (redelivered later, attempt + 1) or dead-letter with a reason.
    void nack(const delivery& d, bool requeue, std::string_view reason = {});
    // Sends batched acks now.
    void flush_acks();

    // What the proxy holds that this consumer could still get (docs/wire-protocol.md §7.3):
    // messages ready for the consumers (not acked, not in flight to anyone: waiting for a
    // delivery or for a redelivery backoff) and those in flight to this consumer.
    struct pending_counts {
        std::uint64_t ready = 0;
        std::uint64_t in_flight = 0;
    };
    // Sends the batched acks, then asks the proxy (PENDING); the answer arrives through recv()
    // and is read with pending(). A proxy from before PENDING does not answer.
    void ask_pending();
    // The proxy's latest answer to ask_pending() (nullopt: none since the last ask).
    [[nodiscard]] std::optional<pending_counts> pending() const noexcept { return pending_; }
    // recv + handler + ack; nack(requeue) if the handler throws (the exception is rethrown
    // after the nack). True if a message was handled.
    bool process(const std::function<void(const zmqkit::message&)>& handler,
                 std::chrono::milliseconds timeout);

    [[nodiscard]] std::uint64_t duplicates() const noexcept { return duplicates_; }
    [[nodiscard]] std::uint64_t received() const noexcept { return received_; }
    [[nodiscard]] const std::vector<std::string>& endpoints() const noexcept { return endpoints_; }
    [[nodiscard]] zmq::socket_t& raw() noexcept { return socket_; }
    // The handshake monitor of the socket when options.socket.security is on, else nullptr.
    [[nodiscard]] handshake_monitor* handshakes() noexcept { return handshakes_.get(); }

private:
    static reliable_receiver_options with_endpoint(std::string endpoint) {
        reliable_receiver_options o;
        o.endpoint = std::move(endpoint);
        return o;
    }
    void send_credit();
    void remember(const message_id& id);
    std::string start_; // the group's start position, normalized

    reliable_receiver_options options_;
    zmq::socket_t socket_;
    std::unique_ptr<handshake_monitor> handshakes_; // destroyed before socket_
    std::vector<std::string> endpoints_;
    std::chrono::steady_clock::time_point next_heartbeat_{};
    std::string pending_acks_; // 8-byte big-endian tags
    std::size_t pending_ack_count_ = 0;
    message_id_window processed_;           // ids acked (dedup_window of them, the oldest go first)
    std::optional<pending_counts> pending_; // the answer to ask_pending()
    std::uint64_t duplicates_ = 0, received_ = 0;
    std::vector<zmq::message_t> frames_;
};

} // namespace zmqkit::patterns
