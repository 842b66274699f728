// zmqkit — the spool: an append-only, checksummed, self-describing on-disk message log with
// group commit, delivery state (attempts, acks, dead letters), recovery and limits.
// The format is specified in docs/spool-format.md.
#pragma once

#include <zmqkit/message_id.hpp>
#include <zmqkit/spool/options.hpp>
#include <zmqkit/spool/report.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit {

// ---- the spool --------------------------------------------------------------------------------

// One message as the spool holds it: the wire frames of an enveloped message (header bytes,
// body bytes) plus the spool's bookkeeping.
struct spooled_message {
    std::uint64_t sequence = 0;
    std::uint32_t attempt = 0; // deliveries so far (this delivery included, for deliver())
    std::int64_t appended_ns = 0;
    std::string_view header; // encoded envelope header (docs/wire-protocol.md §2)
    std::string_view body;
    // The views point into the spool's read buffer: valid until the next call on the spool.
};

// The result of append().
struct append_result {
    enum class status {
        appended,  // queued for the next commit; confirm once committed(ticket)
        duplicate, // the id is already spooled (or queued): confirm once committed(ticket)
        full,      // block policy: nothing stored, try again after acks free space
        rejected,  // reject policy, read-only, or the header is not a valid envelope
    };
    status outcome = status::appended;
    std::uint64_t ticket = 0; // compare with spool::committed_ticket()
    std::string reason;       // for rejected
};

// ---- consumer groups --------------------------------------------------------------------------

// Where a new consumer group starts reading (Kafka's auto.offset.reset, JetStream's deliver
// policy). Text forms: "earliest", "latest", a sequence number ("sequence:1234" or "1234"),
// a time ("time:<unix ns>" or RFC 3339 UTC, "2026-12-01T00:00:00Z", fractions allowed).
struct group_start {
    enum class kind {
        earliest, // the oldest message the spool holds
        latest,   // the next message stored after the group is created
        sequence, // the message with this spool sequence number (or the next one after it)
        time,     // the first message stored at or after this time
    };
    kind where = kind::earliest;
    std::uint64_t sequence = 0; // kind::sequence
    std::int64_t time_ns = 0;   // kind::time: nanoseconds since the Unix epoch, UTC

    // Throws config_error naming the accepted forms.
    [[nodiscard]] static group_start parse(std::string_view text);
    // The wire and file form: earliest, latest, sequence:<n>, time:<ns>.
    [[nodiscard]] std::string to_string() const;
};

// A consumer group's name: 1 to 64 characters of A-Z a-z 0-9 . _ - (an empty name is the
// default queue). Returns what is wrong with it, or an empty string.
[[nodiscard]] std::string check_group_name(std::string_view name);

// Identifies a consumer group of one spool (returned by open_group; valid until the group is
// deleted). default_group is the queue of consumers without a group.
using group_id = std::uint32_t;
inline constexpr group_id default_group = 0;

// What a consumer group has read, for STATUS, `zmqkit-spooler group list` and metrics.
struct group_info {
    std::string name;
    group_id id = 0;
    std::string start;             // the start position it was created (or last reset) with
    std::int64_t created_ns = 0;   // when (or when last reset)
    std::uint64_t floor = 0;       // every message below this sequence is settled for the group
    std::uint64_t cursor = 0;      // sequence after the last message delivered for the first time
    std::uint64_t pending = 0;     // messages not settled (not acked or dead-lettered)
    std::uint64_t in_flight = 0;   // delivered, not yet acked
    std::uint64_t undelivered = 0; // never delivered yet (the group's lag, in messages)
    std::uint64_t acked = 0, redelivered = 0, dead_lettered = 0; // since the spool opened
    std::uint64_t lost = 0; // messages retention removed before the group settled them (ever)
};

// The spool. Single-threaded: one owner thread calls everything (the durable proxy's actor).
// Opening recovers state from the records (recovery_report); then append() / deliver() /
// ack() / requeue() / dead_letter() change state in memory and queue records, and commit()
// writes them in one write and (by sync policy) one fdatasync. Deliveries and confirms must be
// released only after the commit that covers them (committed_ticket(), deliver() contract).
class spool {
public:
    // Opens (creating the directory if needed) and recovers. Throws spool_error.
    explicit spool(spool_options options);
    spool(const spool&) = delete;
    spool& operator=(const spool&) = delete;
    ~spool(); // commits what is queued (best effort), closes files; noexcept

    [[nodiscard]] const recovery_report& recovery() const noexcept { return recovery_; }
    [[nodiscard]] const spool_options& options() const noexcept { return options_; }

    // Queues a message (header: an encoded envelope header, checked; body: any bytes). A
    // message id already held (within the dedup window) is a duplicate and is not stored twice.
    [[nodiscard]] append_result append(std::string_view header, std::string_view body);
    // The same for a header the caller has already decoded and checked (a valid envelope whose
    // message id is `id`): saves decoding it twice on the hot path.
    [[nodiscard]] append_result append(std::string_view header, std::string_view body,
                                       const message_id& id);

    // Writes everything queued in one write, then syncs per policy. Returns false when nothing
    // could be written (disk full: will retry at the next commit; I/O error: read-only).
    bool commit();
    // Every append whose ticket is <= this is committed (confirm it).
    [[nodiscard]] std::uint64_t committed_ticket() const noexcept { return committed_ticket_; }
    // True when records are queued and not yet committed.
    [[nodiscard]] bool commit_pending() const noexcept;

    // Takes the next message to deliver (redeliveries whose backoff has passed first, then new
    // messages in sequence order), counts the attempt and queues a delivery record. The caller
    // sends it after the next commit(). nullopt: nothing ready.
    [[nodiscard]] std::optional<spooled_message> deliver();
    // Settles a delivered message. False if it is not in flight (unknown, duplicate ack).
    bool ack(std::uint64_t sequence);
    // Returns an in-flight message to the queue, deliverable again after `delay` — or, when its
    // attempts reached max_attempts, dead-letters it (reason given). Returns false if it was
    // not in flight; *dead_lettered tells which happened.
    bool requeue(std::uint64_t sequence, std::chrono::milliseconds delay,
                 bool* dead_lettered = nullptr);
    // Moves an in-flight message to the dead-letter spool with a reason.
    bool dead_letter(std::uint64_t sequence, std::string_view reason);

    // Reads a message by sequence number (any state, also acked, while its segment exists).
    [[nodiscard]] std::optional<spooled_message> read(std::uint64_t sequence);
    // Calls fn for every message record from `from_sequence` on, in order, with whether it is
    // settled (acked, dropped or dead-lettered). Stops when fn returns false.
    void for_each(std::uint64_t from_sequence,
                  const std::function<bool(const spooled_message&, bool settled)>& fn);

    // Settles every waiting message that is not in flight (DLQ purge). Returns how many.
    std::uint64_t purge();

    // ---- consumer groups ----
    // Each group reads every message from its start on, with its own cursor, acks, attempts,
    // redeliveries and dead letters (copied to the dead-letter spool with a
    // zmqkit-dead-letter-group header), all recorded and recovered like the default queue's.
    // A message's segment is reclaimed only when the default queue and every group settled
    // it (or by the retention limits). docs/spool-format.md §10.
    //
    // The group named `name`, created at `start` if it does not exist (start is ignored for an
    // existing group). Throws config_error for a bad name or a start before the log start or
    // in the future, spool_error when the spool is read-only.
    group_id open_group(std::string_view name, const group_start& start);
    // The group's id, if it exists.
    [[nodiscard]] std::optional<group_id> find_group(std::string_view name) const;
    // Moves an existing group to `start`: its acks, attempts and deliveries in flight are
    // forgotten (in-flight tags become unknown). False if there is no such group. Throws as
    // open_group for a bad start.
    bool reset_group(std::string_view name, const group_start& start);
    // Deletes a group: nothing more is kept for it. False if there is no such group.
    bool delete_group(std::string_view name);
    // Every group, default queue first (named "" — present when options.default_queue), then
    // by name.
    [[nodiscard]] std::vector<group_info> groups() const;
    // The same per-group operations as above, for one group (default_group: the default
    // queue). An unknown group id delivers nothing and settles nothing.
    [[nodiscard]] std::optional<spooled_message> deliver(group_id group);
    bool ack(group_id group, std::uint64_t sequence);
    bool requeue(group_id group, std::uint64_t sequence, std::chrono::milliseconds delay,
                 bool* dead_lettered = nullptr);
    bool dead_letter(group_id group, std::uint64_t sequence, std::string_view reason);
    // A delivery taken with deliver() that never reached its consumer (the send was refused):
    // ready again at once, and its attempt does not count — a message refused at a full queue
    // is not dead-lettered for it. (The delivery record stays: after a restart the attempt
    // counts once more.) False if it is not in flight.
    bool return_unsent(group_id group, std::uint64_t sequence);
    // Ready (not settled, not in flight) messages of one group.
    [[nodiscard]] std::uint64_t ready(group_id group) const;

    // ---- dead letters back ----
    // Moves waiting dead letters back into this spool (all, or the one with id `only`): each
    // becomes a fresh message — a new id, causation id = the dead letter's id, correlation id,
    // type, reply-to, content type, traceparent, sequence and user headers kept without the
    // zmqkit-dead-letter-* ones, attempt 1 — for the queue it failed in only (its consumer
    // group, from zmqkit-dead-letter-group, or the default queue), committed before the dead
    // letter is settled (a crash in between leaves both: at least once). A dead letter whose
    // group no longer exists, or whose header does not decode, stays where it is (counted).
    struct requeue_report {
        std::vector<std::pair<message_id, message_id>> requeued; // dead letter id -> new id
        std::uint64_t undecodable = 0; // headers that do not decode: left in place
        std::uint64_t no_group = 0;    // their group (or the default queue) is gone: left
        std::uint64_t unsettled = 0;   // requeued but still listed (settling failed)
        std::string error;             // set when nothing could be requeued (why)
    };
    requeue_report requeue_dead_letters(const std::optional<message_id>& only = std::nullopt);

    [[nodiscard]] spool_stats stats() const;
    // The dead-letter spool (nullptr when options.dead_letter_spool is false).
    [[nodiscard]] spool* dead_letters() noexcept { return dead_letters_.get(); }

    // The earliest time a delayed redelivery becomes ready (for the caller's poll timeout).
    [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> next_redelivery() const;

    struct impl;

private:
    spool_options options_;
    recovery_report recovery_;
    std::uint64_t committed_ticket_ = 0;
    std::unique_ptr<impl> impl_;
    std::unique_ptr<spool> dead_letters_;
};

} // namespace zmqkit
