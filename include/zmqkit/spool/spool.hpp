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
