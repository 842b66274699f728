// Private to zmqkit::spool: delivery state — what is ready, in flight, delayed for redelivery,
// how often each waiting message was delivered, and the cursor over never-delivered messages.
#pragma once

#include "group_commit.hpp"
#include "segment_log.hpp"

#include <zmqkit/spool/spool.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

namespace zmqkit::detail {

// What a consumer group has settled: everything below `floor`, and the sequences in `acked`
// (all at or above floor). The floor moves up over acked sequences and non-message records
// (consumer_groups::advance_floor), so `acked` holds only what was settled out of order.
struct group_ledger {
    std::uint32_t id = 0;
    std::uint32_t epoch = 0;
    std::string name;
    std::string start; // group_start::to_string() of its creation or last reset
    std::int64_t created_ns = 0;
    std::uint64_t floor = 0;
    std::set<std::uint64_t> acked;
    std::uint64_t waiting = 0;       // messages at or above floor not settled (written ones)
    std::uint64_t lost = 0;          // removed by retention before the group settled them
    std::uint64_t acked_count = 0;   // since the spool opened
    std::uint64_t redelivered = 0;   // since the spool opened
    std::uint64_t dead_lettered = 0; // since the spool opened

    [[nodiscard]] bool settled(std::uint64_t seq) const noexcept {
        return seq < floor || acked.contains(seq);
    }
};

// Deliveries of one spool's queue — the default queue, or one consumer group's (group != null):
// deliver() takes redeliveries whose backoff has passed first, then new messages in sequence order
// (a cursor through the segments); ack / requeue / dead_letter settle or return what is in flight,
// queueing their records in the group commit. Attempts are counted per waiting message (recovery
// restores them from delivered records). Single-threaded.
class delivery_state {
public:
    // dead_letters: where dead_letter() copies messages (nullptr: none). group: the consumer
    // group whose queue this is (nullptr: the default queue; settledness is then the segments'
    // bits). settle_group: how a group settles a sequence (moves its floor); called by settle.
    delivery_state(spool_context& ctx, segment_log& log, group_commit& commit, spool* dead_letters,
                   group_ledger* group = nullptr)
        : ctx_(ctx), log_(log), commit_(commit), dead_letters_(dead_letters), group_(group) {}

    [[nodiscard]] std::optional<spooled_message> deliver();
    bool ack(std::uint64_t seq);
    bool requeue(std::uint64_t seq, std::chrono::milliseconds delay, bool* dead_lettered);
    bool dead_letter(std::uint64_t seq, std::string_view reason);
    // A delivery that never reached its consumer (refused at the high-water mark, or the
    // consumer left before it was sent): ready again at once, its attempt not counted.
    bool unsend(std::uint64_t seq);

    // Settles a waiting message (acked, dropped, dead-lettered): its attempts are forgotten.
    void settle(std::uint64_t seq, std::uint64_t bytes);
    // Takes a waiting message that is not in flight out of the ready and delayed queues (it is
    // being dropped or purged).
    void forget(std::uint64_t seq);

    [[nodiscard]] bool in_flight(std::uint64_t seq) const { return in_flight_.contains(seq); }
    [[nodiscard]] std::size_t in_flight_count() const noexcept { return in_flight_.size(); }
    // Deliveries so far of a waiting message (0: never delivered).
    [[nodiscard]] std::uint32_t attempt(std::uint64_t seq) const {
        const auto a = attempts_.find(seq);
        return a == attempts_.end() ? 0 : a->second;
    }
    // Waiting messages never delivered (consumer lag), out of `waiting`.
    [[nodiscard]] std::uint64_t undelivered(std::uint64_t waiting) const noexcept;
    [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> next_redelivery() const;

    // Is seq settled for this queue? (s: its segment, nullptr when none holds it.)
    [[nodiscard]] bool is_settled(const segment* s, std::uint64_t seq) const noexcept {
        if (s == nullptr) {
            return true;
        }
        return group_ != nullptr ? group_->settled(seq) : s->is_settled(seq);
    }
    // Ready: waiting, not in flight.
    [[nodiscard]] std::uint64_t ready(std::uint64_t waiting) const noexcept {
        return waiting > in_flight_.size() ? waiting - in_flight_.size() : 0;
    }
    // The sequence after the last message the cursor read.
    [[nodiscard]] std::uint64_t cursor() const noexcept { return cursor_seq_; }
    // Forgets everything below `start` (reclaimed): attempts, redeliveries; in-flight ones stay
    // until acked or requeued (an ack then settles nothing).
    void forget_below(std::uint64_t start);
    // Moves the cursor to `seq` (a group's start; recovery and reset).
    void seek(std::uint64_t seq);
    // A group reset: forgets every attempt, redelivery and delivery in flight.
    void clear();

    // ---- for recovery ----
    // A delivered record: seq was delivered `attempt` times (the highest count wins).
    void recovered_attempt(std::uint64_t seq, std::uint64_t attempt);
    // After the scan: keeps attempts only for waiting messages; the cursor starts at the head.
    void recovered();

private:
    spooled_message start_delivery(spooled_message msg);
    void advance_floor();
    [[nodiscard]] std::optional<spooled_message> next_ready();
    [[nodiscard]] std::optional<spooled_message> next_new();
    [[nodiscard]] spooled_message message_of(std::uint64_t seq, const message_payload& p) const;

    spool_context& ctx_;
    segment_log& log_;
    group_commit& commit_;
    spool* dead_letters_;
    group_ledger* group_;

    std::uint64_t cursor_seq_ = 0;
    std::uint64_t cursor_first_ = 0; // segment the cursor is in
    std::uint64_t cursor_offset_ = 0;
    std::unordered_map<std::uint64_t, std::uint32_t> attempts_;  // unsettled messages
    std::unordered_map<std::uint64_t, std::uint32_t> in_flight_; // sequence -> message bytes
    std::set<std::uint64_t> ready_again_;
    std::multimap<std::chrono::steady_clock::time_point, std::uint64_t> delayed_;
};

} // namespace zmqkit::detail
