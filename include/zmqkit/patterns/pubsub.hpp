// zmqkit::patterns — publish-subscribe fan-out: publisher, subscriber with gap detection,
// forwarder device (XSUB -> XPUB) with an optional last-value cache, and consumer groups.
//
//   publisher (XPUB, binds) -> [forwarder XSUB/XPUB] -> subscriber (SUB, connects) x N
//                                                    -> consumer_groups (SUB -> PUSH per group)
//
// Every publication is [topic][header][body] (docs/wire-protocol.md §1). The publisher stamps
// a sequence number per (publisher, topic) in header.sequence and its publisher id in
// header.publisher_id (key 12; docs/wire-protocol.md §10), so a subscriber to any set of topics
// sees a contiguous stream per publisher and topic, and detects loss, duplicates and reordering.
#pragma once

#include <zmqkit/actor.hpp>
#include <zmqkit/export.hpp>
#include <zmqkit/message.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/device.hpp>
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/socket.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zmqkit::patterns {

namespace detail {
class side_monitors; // the handshake monitors of a device's secured sides
} // namespace detail

// Hash for unordered maps keyed by std::string that are looked up by std::string_view
// (heterogeneous lookup: no temporary string per lookup).
struct ZMQKIT_API string_view_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

// Name of the user header in which publishers before header key 12 sent their id (16 bytes).
// Publishers now write header.publisher_id; readers still accept this header from older ones.
inline constexpr std::string_view publisher_id_header = "zmqkit-publisher";

// The publisher id of a received publication as 16 bytes: header.publisher_id (key 12), else
// the legacy "zmqkit-publisher" user header, else empty (not a sequenced publication). A view
// into h: valid while h lives unchanged. Never throws, never allocates.
[[nodiscard]] std::string_view publisher_id_of(const header& h) noexcept;
// Header type and topic prefix of a last-value-cache snapshot (docs/wire-protocol.md §10.3).
inline constexpr std::string_view snapshot_type = "zmqkit.snapshot";
inline constexpr std::string_view snapshot_topic_prefix =
    std::string_view("\0zmqkit.snapshot\0", 17);

struct ZMQKIT_API publisher_options {
    std::string endpoints;          // entries without a prefix bind ("tcp://127.0.0.1:*" works)
    std::string name = "publisher"; // metric label
    socket_options sockets;         // HWMs, linger; send_timeout bounds a blocked send
    // false: a subscriber at its HWM misses messages (ZeroMQ's default; it sees the gap).
    // true: ZMQ_XPUB_NODROP — send() waits (at most sockets.send_timeout) for room.
    bool block_when_full = false;
    // Longest subscription prefix a subscriber may send, in bytes (1 to 65536; config_error
    // otherwise). A connection sending a longer one is closed by libzmq before the
    // subscription is read (ZMQ_MAXMSGSIZE, see docs/patterns.md): it cannot grow memory or
    // crash the process through libzmq's subscription trie.
    std::size_t max_subscription_size = 1024;
};

// Bounds the subscriptions an XPUB (or PUB) socket of your own accepts, as publisher and
// forwarder do: a connection that sends a subscription longer than `max_size` bytes (1 to
// 65536; config_error otherwise) is closed by libzmq before the subscription is read, so one
// hostile subscriber cannot crash the process through libzmq's recursive subscription trie or
// grow its memory. Call before bind/connect, after the socket's security options are known
// (CURVE adds framing to the bound). zmqkit-send --pub and zmqkit-spooler replay --pub use it.
void bound_subscriptions(zmq::socket_t& xpub, const socket_security& security,
                         std::size_t max_size = 1024);

// The numbering of a publisher (docs/wire-protocol.md §10.2): one publisher id, a UUIDv7 made
// when the sequencer is constructed (a restarted publisher has a new id), and per topic the
// sequence numbers 1, 2, 3 ... that let a subscriber tell a gap, a duplicate and a late
// arrival apart. `publisher` numbers its publications with one; a tool that publishes on a
// socket of its own (zmqkit-send --pub) uses one too. Not thread-safe.
class ZMQKIT_API publication_sequencer {
public:
    publication_sequencer();

    // Sets h.sequence to the next number of `topic` and h.publisher_id to id(). Returns the
    // topic's counter: increment it once the publication is queued, so that a send that
    // failed does not use the number (the next one gets it again).
    [[nodiscard]] std::uint64_t& stamp(std::string_view topic, header& h);
    // The same, committed at once (for a caller that retries a failed send with the same
    // header).
    void stamp_and_commit(std::string_view topic, header& h) { ++stamp(topic, h); }

    [[nodiscard]] const message_id& id() const noexcept { return id_; }
    // The topics numbered so far.
    [[nodiscard]] std::size_t topics() const noexcept { return sequences_.size(); }

private:
    message_id id_;
    std::unordered_map<std::string, std::uint64_t, string_view_hash, std::equal_to<>>
        sequences_; // topic -> last sequence sent
};

// Publishes enveloped messages on an XPUB socket from the caller's thread. Not thread-safe.
// It sees its subscribers' subscriptions (XPUB_VERBOSER), so callers can wait for a
// subscription instead of sleeping ("slow joiner").
class ZMQKIT_API publisher {
public:
    publisher(zmq::context_t& context, const publisher_options& options);

    // Sends m with `topic` as the first frame. Sets header.sequence to the next number of this
    // (publisher, topic) (1, 2, 3 ...) and header.publisher_id to id(). False only when
    // block_when_full and no room within the send timeout (the sequence number is then not used).
    [[nodiscard]] bool send(std::string_view topic, message& m);
    [[nodiscard]] bool send(std::string_view topic, message&& m) { return send(topic, m); }
    // The same for a header and a body given as bytes: the body is copied once into the frame
    // (like zmq_send; no message object, no second allocation). h is stamped in place (id,
    // timestamp, sequence number, publisher id), so the caller reads h.id afterwards; reset
    // h.id to nil before reusing h for the next publication.
    [[nodiscard]] bool send(std::string_view topic, header& h, std::string_view body);
    template <class T> [[nodiscard]] bool send_packed(std::string_view topic, const T& value) {
        auto m = message::pack(value);
        return send(topic, m);
    }

    // Reads pending subscription messages (non-blocking) and returns the number of live
    // subscriptions whose prefix is exactly `prefix`.
    [[nodiscard]] std::size_t subscription_count(std::string_view prefix);
    // True once some subscriber's subscription matches `topic` (waits at most timeout).
    [[nodiscard]] bool wait_for_subscriber(std::string_view topic,
                                           std::chrono::milliseconds timeout);

    // 16 bytes (a UUIDv7 made when the publisher is constructed: a restarted publisher has a
    // new id); also in every publication's header.publisher_id.
    [[nodiscard]] const std::string& id() const noexcept { return id_; }
    [[nodiscard]] const std::vector<std::string>& endpoints() const noexcept {
        return socket_.endpoints();
    }
    [[nodiscard]] zmqkit::socket& socket() noexcept { return socket_; }

private:
    void read_subscriptions();
    // Sets h's sequence number and publisher id; returns this topic's counter, to be
    // incremented once the publication is queued.
    std::uint64_t& prepare(std::string_view topic, header& h);

    zmqkit::socket socket_;
    publication_sequencer sequencer_;
    std::string id_;                                                // the publisher id's 16 bytes
    std::map<std::string, std::size_t, std::less<>> subscriptions_; // prefix -> count
    std::uint64_t sends_since_read_ = 0;
    std::size_t max_subscription_size_ = 0;
};

// What a sequence_tracker concluded about one message.
enum class sequence_verdict {
    first,     // first message of this (publisher, topic): not a gap, whatever its number
    in_order,  // the number after the previous one
    gap,       // numbers were skipped: [missing_first, missing_last]
    duplicate, // a number already seen
    late,      // a number reported missing earlier, arriving out of order
    untracked, // no publisher id or sequence 0: not a sequenced publication
};

struct ZMQKIT_API sequence_event {
    sequence_verdict verdict = sequence_verdict::untracked;
    std::string publisher; // 16-byte publisher id
    std::string topic;
    std::uint64_t sequence = 0;      // the number the message carried
    std::uint64_t missing_first = 0; // gap only
    std::uint64_t missing_last = 0;  // gap only
    // The message that showed it, while an event handler runs (nullptr otherwise).
    const header* message = nullptr;
};

struct ZMQKIT_API sequence_stats {
    std::uint64_t in_order = 0;
    std::uint64_t gaps = 0;    // missing ranges reported
    std::uint64_t missing = 0; // messages in those ranges
    std::uint64_t duplicates = 0;
    std::uint64_t late = 0;
    std::uint64_t streams = 0; // (publisher, topic) pairs seen
};

// Per-(publisher, topic) sequence checking. Keeps the last number of each stream and the
// most recent missing ranges (bounded), so a late arrival is told apart from a duplicate.
// Memory is bounded by max_streams (the least recently seen stream is forgotten). Not
// thread-safe.
class ZMQKIT_API sequence_tracker {
public:
    explicit sequence_tracker(std::size_t max_streams = 65536) : max_streams_(max_streams) {}

    // Classifies one message; fills `event` (publisher, topic, numbers) and returns its verdict.
    sequence_verdict observe(std::string_view publisher, std::string_view topic,
                             std::uint64_t sequence, sequence_event* event = nullptr);
    // Declares that everything up to `sequence` of this stream is known (a snapshot).
    void seed(std::string_view publisher, std::string_view topic, std::uint64_t sequence);
    // The last number seen of a stream (nullopt if unknown).
    [[nodiscard]] std::optional<std::uint64_t> last(std::string_view publisher,
                                                    std::string_view topic) const;
    [[nodiscard]] const sequence_stats& stats() const noexcept { return stats_; }

private:
    struct stream {
        std::uint64_t last = 0;
        std::uint64_t touched = 0;
        std::deque<std::pair<std::uint64_t, std::uint64_t>> missing; // recent gaps, bounded
    };
    static std::string key(std::string_view publisher, std::string_view topic);
    // key() built into scratch_ (its capacity reused: no allocation per message).
    const std::string& scratch_key(std::string_view publisher, std::string_view topic);
    stream& find_or_add(const std::string& key, bool& added);
    // The stream of (publisher, topic), found without building its key when it is the one
    // looked up last (a publisher's topic in a row: the steady state); else find_or_add.
    stream& lookup(std::string_view publisher, std::string_view topic, bool& added);

    std::size_t max_streams_;
    std::uint64_t clock_ = 0;
    std::unordered_map<std::string, stream> streams_;
    sequence_stats stats_;
    std::string scratch_;
    // The last stream looked up: pointers into streams_ (its nodes stay put; reset on erase).
    // A copied or moved-to tracker starts without it (its pointers would be the source's).
    struct last_stream_cache {
        const std::string* key = nullptr;
        stream* value = nullptr;
        last_stream_cache() = default;
        last_stream_cache(const last_stream_cache&) noexcept {}
        // Self-assignment resets the cache too, which is harmless: it is only a cache.
        // NOLINTNEXTLINE(bugprone-unhandled-self-assignment)
        last_stream_cache& operator=(const last_stream_cache&) noexcept {
            key = nullptr;
            value = nullptr;
            return *this;
        }
        ~last_stream_cache() = default;
    };
    last_stream_cache last_;
};

// One received publication. Reusable: subscriber::recv(publication&, timeout) overwrites it,
// keeping the capacity of its topic and header strings.
struct ZMQKIT_API publication {
    std::string topic;
    zmqkit::message message;
    bool from_snapshot = false; // the value of `topic` from a last-value-cache snapshot
    // What the subscriber's sequence check concluded about this one (never duplicate: those
    // are dropped); untracked for a snapshot value and an unsequenced message. For a gap, the
    // numbers missing just before it: [missing_first, missing_last].
    sequence_verdict verdict = sequence_verdict::untracked;
    std::uint64_t missing_first = 0;
    std::uint64_t missing_last = 0;
};

struct ZMQKIT_API subscriber_options {
    // Entries without a prefix connect. Empty: none yet (attach them through socket(), e.g.
    // after setting socket options of your own).
    std::string endpoints;
    std::string name = "subscriber"; // metric label
    socket_options sockets;
    std::size_t max_streams = 65536; // sequence_tracker bound
    metrics_registry* registry = nullptr;
};

// Counters of a subscriber (also zmqkit_subscriber_* {component="<name>"}).
struct ZMQKIT_API subscriber_stats {
    std::uint64_t received = 0;
    sequence_stats sequences;
    std::uint64_t snapshot_values = 0;  // values received from snapshots
    std::uint64_t snapshot_overlap = 0; // live messages already covered by a snapshot, dropped
    std::uint64_t unhandled = 0;        // dispatch(): no handler matched the topic
};

// Receives publications on a SUB socket from the caller's thread, checks sequence numbers,
// and optionally dispatches to handlers by topic prefix. Not thread-safe.
class ZMQKIT_API subscriber {
public:
    using handler = std::function<void(publication&)>;
    using sequence_handler = std::function<void(const sequence_event&)>;

    subscriber(zmq::context_t& context, subscriber_options options);

    // Subscribes to a topic prefix ("" = everything).
    void subscribe(std::string_view prefix);
    void unsubscribe(std::string_view prefix);
    // Subscribes to `prefix` and asks the forwarder's last-value cache (forwarder_options::
    // last_value_cache) for the current value of every topic under it. recv() then returns
    // those values first (from_snapshot), then the live stream from exactly where the snapshot
    // ends: no gap and no duplicate. Live messages arriving before the snapshot are held back.
    void subscribe_with_snapshot(std::string_view prefix);
    // True while a snapshot asked for is still awaited.
    [[nodiscard]] bool snapshot_pending() const noexcept { return !pending_snapshots_.empty(); }
    // Stops waiting for the snapshots still pending (no last-value cache answered: a forwarder
    // without one, or a publisher connected directly): the live messages held back for them
    // are delivered, in arrival order, each stream's first one counting as its first (no
    // gap is reported before it). Returns how many were abandoned. A snapshot that arrives
    // later is ignored.
    std::size_t abandon_snapshots();

    // Registers a handler for topics starting with prefix (and subscribes to it); the longest
    // matching prefix wins. The typed form decodes the body with msgpack-c (a body that does
    // not convert throws body_type_error out of dispatch()).
    void on(std::string_view prefix, handler h);
    template <class T, class Fn> void on_typed(std::string_view prefix, Fn fn) {
        on(prefix, [fn = std::move(fn)](publication& d) { fn(d.topic, d.message.body_as<T>()); });
    }
    // Called for every gap, duplicate and late message (on the receiving thread).
    void on_sequence_event(sequence_handler h) { on_sequence_event_ = std::move(h); }

    // The next publication within timeout, or nullopt.
    [[nodiscard]] std::optional<publication> recv(std::chrono::milliseconds timeout);
    // The same into `into`, which is overwritten (the hot-path form: the topic, the header's
    // strings and user-header entries keep their capacity, so a steady stream is received
    // without a heap allocation). True: `into` holds the next publication; false on timeout
    // (`into` is then unspecified but valid). Same sequence checking, snapshots and order as
    // the other form; the two may be mixed.
    [[nodiscard]] bool recv(publication& into, std::chrono::milliseconds timeout);
    // Receives one publication within timeout and passes it to its handler (into a publication
    // the subscriber reuses: valid until the handler returns; move out of it to keep it).
    // False on timeout. Not reentrant (a handler must not call dispatch()).
    bool dispatch(std::chrono::milliseconds timeout);

    [[nodiscard]] subscriber_stats stats() const noexcept;
    [[nodiscard]] const sequence_tracker& tracker() const noexcept { return tracker_; }
    [[nodiscard]] zmqkit::socket& socket() noexcept { return socket_; }

private:
    struct pending_snapshot {
        std::string prefix;
        std::string topic; // the private snapshot topic this subscriber subscribed to
    };
    enum class receive_outcome {
        timeout,  // nothing arrived within the wait
        absorbed, // a message arrived and was kept (snapshot, held back) or dropped (duplicate)
        deliver,  // d holds a live publication to hand to the caller
    };
    // Receives one message into d within timeout (d is overwritten; its capacity is reused).
    receive_outcome receive_into(publication& d, std::chrono::milliseconds timeout);
    // Checks d's sequence number (counts gaps, duplicates, late); false: a duplicate, drop it.
    bool accept_live(publication& d);
    void apply_snapshot(std::size_t index, publication& d);
    void release_held();
    bool held_back(const publication& d) const;

    zmqkit::socket socket_;
    subscriber_options options_;
    sequence_tracker tracker_;
    std::vector<std::pair<std::string, handler>> handlers_;
    sequence_handler on_sequence_event_;
    std::vector<pending_snapshot> pending_snapshots_;
    std::deque<publication> held_;  // live messages waiting for a snapshot
    std::deque<publication> ready_; // deliveries for recv()
    publication dispatched_;        // dispatch()'s reused publication
    subscriber_stats stats_;
    counter* gaps_;
    counter* missing_;
    counter* duplicates_;
    counter* late_;
};

// What the forwarder does when a subscriber's queue (its HWM) is full.
enum class slow_subscriber_policy {
    drop,  // that subscriber misses the message, the others get it; counted
    block, // ZMQ_XPUB_NODROP: the forwarder waits for room (back-pressure to publishers)
    // as drop while the subscriber is behind; once its connection's send queue has stayed
    // full for forwarder_options::slow_subscriber_timeout, that connection is shut down
    // (tcp and ipc subscribers on a bound backend endpoint; inproc ones are only dropped)
    disconnect,
};

// "drop" | "block" | "disconnect"; throws config_error naming the accepted values.
[[nodiscard]] slow_subscriber_policy parse_slow_subscriber_policy(std::string_view text);

struct ZMQKIT_API forwarder_options {
    std::string frontend; // XSUB, publishers connect here; entries without a prefix bind
    std::string backend;  // XPUB, subscribers connect here; entries without a prefix bind
    std::string capture;  // optional PUSH tap: a copy of every publication; prefix-less bind
    std::string control;  // optional REP control socket (PAUSE, RESUME, TERMINATE, STATISTICS,
                          // STATUS); entries without a prefix bind
    std::string name = "forwarder";
    socket_options sockets; // HWMs (per subscriber on the backend) and linger; its `security`
                            // must stay off (config_error): use the fields below
    // CURVE / PLAIN / ZAP per side (security.hpp): publishers connect to the frontend,
    // subscribers to the backend; a bound side is usually a server with its own ZAP domain
    // (socket_security::curve_server(own, "frontend")). Default: plaintext, as before.
    socket_security frontend_security;
    socket_security backend_security;
    socket_security capture_security; // the tap's consumers
    socket_security control_security; // who may PAUSE/TERMINATE the device
    slow_subscriber_policy policy = slow_subscriber_policy::drop;
    // Policy disconnect: how long a subscriber's send queue may stay full before its
    // connection is cut (checked about every timeout / 4, at most every 250 ms). Positive.
    std::chrono::milliseconds slow_subscriber_timeout = std::chrono::seconds{5};
    // Called on the actor thread with one line per notable event (a slow subscriber
    // disconnected). Unset: zmqkit's log (zmqkit/log.hpp), component `name`, warn.
    std::function<void(std::string_view)> log;
    // Keep the last publication of every topic and answer snapshot requests
    // (subscriber::subscribe_with_snapshot). Subscribes upstream to everything.
    bool last_value_cache = false;
    // Longest subscription prefix a subscriber may send, in bytes (1 to 65536; config_error
    // otherwise), snapshot requests included. libzmq closes the connection of a tcp/ipc
    // subscriber whose subscription frame is larger than this plus its SUBSCRIBE framing before
    // reading it (libzmq says nothing about why); an older-form subscription up to 9 bytes
    // over the limit gets through and is refused here: not counted as a subscription, not
    // passed upstream, counted as subscriptions_refused and logged.
    std::size_t max_subscription_size = 1024;
    std::size_t batch = 512;
    std::chrono::milliseconds drain_timeout = std::chrono::seconds{2};
    metrics_registry* registry = nullptr;
};

namespace detail {
class slow_subscriber_detector; // forwarder.cpp: finds backend connections that stay full
} // namespace detail

// The pub-sub forwarder device (XSUB -> XPUB), zmq_proxy's forwarder with statistics per
// direction, a tap, a slow-subscriber policy and an optional last-value cache. Frames are
// forwarded unchanged (a publication need not be a zmqkit envelope, except for the cache).
// Statistics: frontend in = publications received, frontend out = subscription messages
// sent upstream, backend in = subscription messages from subscribers, backend out =
// publications sent. Thread-safe public methods (it is a device: device.hpp).
// STATUS: {"state":..,"policy":..,"statistics":{..},"subscriptions":N,"subscribes":N,
//  "unsubscribes":N,"subscriptions_refused":N,"slow_subscriber_drops":N,
//  "slow_subscriber_disconnects":N,"blocked":N,"capture_drops":N,"cached_topics":N,
//  "snapshots":N}, plus "security":{"frontend":{"mode":..,"handshakes":N,
//  "handshake_failures":N,"last_failure":".."},..} when a side is secured
class ZMQKIT_API forwarder final : public device {
public:
    forwarder(zmq::context_t& context, forwarder_options options);
    ~forwarder() override;

    [[nodiscard]] proxy_statistics statistics() const noexcept override;
    // Subscriptions currently active on the backend (subscribe minus unsubscribe messages).
    [[nodiscard]] std::int64_t subscriptions() const noexcept { return subscriptions_->value(); }
    // Subscriptions refused for their size (forwarder_options::max_subscription_size) among
    // those libzmq passed on; each one is also a log line.
    [[nodiscard]] std::uint64_t subscriptions_refused() const noexcept {
        return subscriptions_refused_->value();
    }
    // Publications that at least one matching subscriber missed because its queue was full
    // (policy drop; libzmq does not say which subscriber — each one sees its gap itself).
    [[nodiscard]] std::uint64_t slow_subscriber_drops() const noexcept {
        return slow_drops_->value();
    }
    // Subscriber connections shut down because their send queue stayed full for longer than
    // slow_subscriber_timeout (policy disconnect). Each one is also a log line.
    [[nodiscard]] std::uint64_t slow_subscriber_disconnects() const noexcept {
        return slow_disconnects_->value();
    }

    [[nodiscard]] std::vector<std::string> capture_endpoints() const {
        return endpoints("capture");
    }

private:
    struct cached_value {
        std::string header; // encoded header
        std::string body;
    };
    void open_sides() override;
    void on_pause(bool paused) override;
    drain_report on_drain(time_point deadline) override;
    void add_status_head(detail::status_object& status) override;
    void add_status(detail::status_object& status) override;

    std::size_t forward(std::size_t limit);
    bool send_publication(bool lossy);
    void handle_subscriptions();
    void refuse_subscription(std::size_t size);
    void cache(const std::vector<zmq::message_t>& frames, std::size_t count);
    void send_snapshot(std::string_view request_topic);
    // Policy disconnect, on the timer: scan the backend's connections, cut those behind.
    void disconnect_slow_subscribers();

    forwarder_options options_;
    zmq::socket_t* frontend_ = nullptr;
    zmq::socket_t* backend_ = nullptr;
    zmq::socket_t* capture_ = nullptr;
    counter* messages_in_;
    counter* bytes_in_;
    counter* messages_out_;
    counter* bytes_out_;
    counter* subs_in_;
    counter* subs_in_bytes_;
    counter* subs_out_;
    counter* subs_out_bytes_;
    counter* subscribes_;
    counter* unsubscribes_;
    gauge* subscriptions_;
    counter* subscriptions_refused_;
    counter* slow_drops_;
    counter* slow_disconnects_;
    std::unique_ptr<detail::slow_subscriber_detector> slow_detector_; // actor thread only
    counter* blocked_;
    counter* capture_drops_;
    counter* snapshots_;
    gauge* cached_topics_;
    std::vector<zmq::message_t> frames_;
    std::size_t pending_ = 0; // frames of a publication received but not yet sent (block)
    std::size_t pending_bytes_ = 0;
    // last-value cache (actor thread only)
    std::map<std::string, cached_value, std::less<>> values_; // topic -> last value
    std::map<std::pair<std::string, std::string>, std::uint64_t> stream_sequences_; // (pub, topic)
    header scratch_header_;
};

struct ZMQKIT_API consumer_group {
    std::string name;      // metric label
    std::string endpoints; // PUSH; members connect a PULL here; entries without a prefix bind
};

struct ZMQKIT_API consumer_groups_options {
    std::string input;                   // SUB; entries without a prefix connect
    std::vector<std::string> topics{""}; // prefixes subscribed upstream
    std::vector<consumer_group> groups;
    std::string name = "consumer-groups";
    socket_options sockets; // its `security` must stay off (config_error): see below
    // CURVE / PLAIN / ZAP (security.hpp) of the SUB input (usually the client of a publisher
    // or forwarder: socket_security::curve_client(server_key, &own)) and of every group's PUSH
    // (usually the server its members connect to). Default: plaintext, as before.
    socket_security frontend_security;
    socket_security backend_security;
    std::size_t batch = 512;
    metrics_registry* registry = nullptr;
};

// Consumer groups (Kafka-like, over ZeroMQ): subscribes once and gives every publication to
// each group exactly once, load-balanced (round-robin) among the group's connected members.
// A group with no room (no member, or all members at their HWM) holds the flow back: reading
// the subscription pauses, so a slow group makes the upstream publisher's HWM drop (seen as a
// gap by sequence numbers) rather than this component growing without bound.
class ZMQKIT_API consumer_groups : public actor {
public:
    consumer_groups(zmq::context_t& context, consumer_groups_options options);
    ~consumer_groups() override;

    // Endpoints in effect for each group, in the order of options.groups.
    [[nodiscard]] std::vector<std::vector<std::string>> group_endpoints() const;
    [[nodiscard]] std::vector<std::string> input_endpoints() const;
    [[nodiscard]] std::uint64_t received() const noexcept { return received_->value(); }
    // Copies handed to group i.
    [[nodiscard]] std::uint64_t delivered(std::size_t group) const;

protected:
    void setup() override;
    void teardown() noexcept override;

private:
    void pump();
    bool push_pending();

    consumer_groups_options options_;
    std::optional<zmq::socket_t> input_;
    std::vector<zmq::socket_t> outputs_;
    std::unique_ptr<detail::side_monitors> monitors_; // destroyed before the sockets close
    counter* received_;
    std::vector<counter*> delivered_;
    mutable std::mutex endpoints_mutex_;
    std::vector<std::string> input_endpoints_;
    std::vector<std::vector<std::string>> group_endpoints_;
    std::vector<zmq::message_t> frames_;
    std::size_t frame_count_ = 0;
    std::size_t next_group_ = 0; // groups [next_group_, n) still need the current message
};

// A member of a consumer group: a PULL socket that connects to its group's endpoint and
// receives publications as they were published ([topic][header][body], the topic kept).
// Used from the caller's thread. Not thread-safe.
class ZMQKIT_API consumer_group_member {
public:
    // endpoints: the group's endpoints; entries without a prefix connect. Empty: call
    // attach() later (e.g. after installing a socket monitor on raw()).
    consumer_group_member(zmq::context_t& context, std::string_view endpoints,
                          socket_options options = {});
    void attach(std::string_view endpoints) {
        (void)socket_.attach(endpoints, endpoint_action::connect);
    }

    // The next well-formed publication within timeout, or nullopt. Malformed messages are
    // counted (zmqkit_socket_decode_errors_total) and skipped.
    [[nodiscard]] std::optional<publication> recv(std::chrono::milliseconds timeout);
    [[nodiscard]] zmq::socket_t& raw() noexcept { return socket_.raw(); }

private:
    zmqkit::socket socket_;
    std::vector<zmq::message_t> frames_;
};

} // namespace zmqkit::patterns
