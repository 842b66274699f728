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
#include <string_view>
#include <unordered_map>

namespace zmqkit::detail {

// Deliveries of one spool: deliver() takes redeliveries whose backoff has passed first, then
// new messages in sequence order (a cursor through the segments); ack / requeue / dead_letter
// settle or return what is in flight, queueing their records in the group commit. Attempts are
// counted per waiting message (recovery restores them from delivered records). Single-threaded.
class delivery_state {
public:
    // dead_letters: where dead_letter() copies messages (nullptr: none).
    delivery_state(spool_context& ctx, segment_log& log, group_commit& commit, spool* dead_letters)
        : ctx_(ctx), log_(log), commit_(commit), dead_letters_(dead_letters) {}

    [[nodiscard]] std::optional<spooled_message> deliver();
    bool ack(std::uint64_t seq);
    bool requeue(std::uint64_t seq, std::chrono::milliseconds delay, bool* dead_lettered);
    bool dead_letter(std::uint64_t seq, std::string_view reason);

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

    // ---- for recovery ----
    // A delivered record: seq was delivered `attempt` times (the highest count wins).
    void recovered_attempt(std::uint64_t seq, std::uint64_t attempt);
    // After the scan: keeps attempts only for waiting messages; the cursor starts at the head.
    void recovered();

private:
    spooled_message start_delivery(spooled_message msg);
    [[nodiscard]] std::optional<spooled_message> next_ready();
    [[nodiscard]] std::optional<spooled_message> next_new();
    [[nodiscard]] spooled_message message_of(std::uint64_t seq, const message_payload& p) const;

    spool_context& ctx_;
    segment_log& log_;
    group_commit& commit_;
    spool* dead_letters_;

    std::uint64_t cursor_seq_ = 0;
    std::uint64_t cursor_first_ = 0; // segment the cursor is in
    std::uint64_t cursor_offset_ = 0;
    std::unordered_map<std::uint64_t, std::uint32_t> attempts_;  // unsettled messages
    std::unordered_map<std::uint64_t, std::uint32_t> in_flight_; // sequence -> message bytes
    std::set<std::uint64_t> ready_again_;
    std::multimap<std::chrono::steady_clock::time_point, std::uint64_t> delayed_;
};

} // namespace zmqkit::detail
