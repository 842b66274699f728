// Private to zmqkit::spool: group commit — appends and state changes queued in memory, written
// by commit() in one write per segment and synced by the sync policy.
#pragma once

#include "segment_log.hpp"

#include <zmqkit/message_id.hpp>
#include <zmqkit/spool/spool.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zmqkit::detail {

// A message on its way to the dead-letter spool; its dead_lettered record is written only after
// the copy is committed there, so the message is never in neither spool.
struct queued_dead {
    std::uint64_t sequence;
    std::uint32_t bytes;
    std::string reason;
    std::uint64_t dead_letter_ticket;
    // The copy for the dead-letter spool while it could not take it (disk full): retried at
    // every commit; the dead_lettered record waits for it.
    std::optional<std::pair<std::string, std::string>> pending_copy; // header, body
    std::uint32_t group = 0; // the consumer group it failed in (0: the default queue)
    std::uint32_t epoch = 0;
};

using sequence_list = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

// The queues of one spool and their commit. Message records are encoded in place when queued
// (headers sealed at commit, when their sequence numbers are known); control records (delivered,
// acked, dropped, dead_lettered, gap, log_start) are lists encoded at commit. commit() writes
// the messages then the control records, each run in one write into the active segment
// (rotating as needed), then syncs per policy. What cannot be written (disk full) stays queued
// for the next commit. Single-threaded.
class group_commit {
public:
    // dead_letters: the dead-letter spool (nullptr: none).
    group_commit(spool_context& ctx, segment_log& log, spool* dead_letters)
        : ctx_(ctx), log_(log), dead_letters_(dead_letters) {}

    // ---- queueing ----
    // Queues a message record; returns its ticket (committed once committed_ticket >= it).
    // flags: extra record flags (spool_format::flag_targeted).
    std::uint64_t queue_message(std::int64_t appended_ns, const message_id& id,
                                std::string_view header, std::string_view body,
                                std::uint8_t flags = 0);
    void delivered(std::uint64_t seq, std::uint32_t attempt) {
        q_delivered_.emplace_back(seq, attempt);
    }
    void acked(std::uint64_t seq, std::uint64_t bytes) { q_acked_.emplace_back(seq, bytes); }
    void dropped_full(std::uint64_t seq, std::uint64_t bytes) {
        q_dropped_full_.emplace_back(seq, bytes);
    }
    void dropped_purged(std::uint64_t seq, std::uint64_t bytes) {
        q_dropped_purged_.emplace_back(seq, bytes);
    }
    // Hands the copy to the dead-letter spool (now if it can take it) and queues the record.
    void dead_lettered(queued_dead d);
    void gap(const sequence_range& range, std::uint8_t cause) {
        q_gaps_.emplace_back(range, cause);
    }
    // Consumer groups: a created / reset / deleted event, and a group's deliveries and acks.
    void group_event(const spool_format::group_record& g);
    void group_delivered(std::uint32_t group, std::uint32_t epoch, std::uint64_t seq,
                         std::uint32_t attempt) {
        group_list(spool_format::record_type::group_delivered, group, epoch)
            .emplace_back(seq, attempt);
    }
    void group_acked(std::uint32_t group, std::uint32_t epoch, std::uint64_t seq,
                     std::uint64_t bytes) {
        group_list(spool_format::record_type::group_acked, group, epoch).emplace_back(seq, bytes);
    }

    // Called after message records are written: the first one's sequence, how many (they are
    // consecutive) and the first one's ticket (the others follow it). The groups count them.
    void on_written(std::function<void(std::uint64_t, std::uint64_t, std::uint64_t)> fn) {
        on_written_ = std::move(fn);
    }
    // What reclaiming head segments may remove (set by the spool; default: settled ones).
    void reclaim_policy(segment_log::reclaim_policy p) { reclaim_ = std::move(p); }

    [[nodiscard]] std::size_t queued_messages() const noexcept { return queued_.size(); }
    [[nodiscard]] std::uint64_t queued_bytes() const noexcept { return queued_bytes_; }
    // True when records are queued and not yet written, or written and not yet synced.
    [[nodiscard]] bool pending() const noexcept;

    // ---- commit ----
    // Writes what is queued, syncs per policy, reclaims head segments. *committed_ticket is set
    // to the last ticket written unless the log failed. True if records were written.
    bool commit(std::uint64_t* committed_ticket);

private:
    struct queued_message {
        std::uint64_t ticket;
        std::uint32_t size;  // record size (header + payload)
        std::uint32_t bytes; // message bytes (envelope header + body)
        std::uint8_t flags;  // extra record flags
    };
    struct control_record {
        spool_format::record_type type;
        std::size_t offset;
        std::size_t size;
    };
    std::uint64_t write_messages(bool& first_record);
    std::uint64_t write_controls(bool& first_record);
    void encode_controls(std::size_t& dead_written);
    void encode_list(spool_format::record_type t, sequence_list& list,
                     std::optional<std::uint8_t> reason, std::span<const std::byte> prefix = {});
    sequence_list& group_list(spool_format::record_type t, std::uint32_t group,
                              std::uint32_t epoch);
    void copy_dead_letter(queued_dead& d);
    [[nodiscard]] bool controls_queued() const noexcept;

    spool_context& ctx_;
    segment_log& log_;
    spool* dead_letters_;

    // append queue (records encoded in place; header sealed at commit)
    std::vector<std::byte> message_records_;
    std::vector<queued_message> queued_;
    std::uint64_t queued_bytes_ = 0;
    std::uint64_t next_ticket_ = 0;
    std::uint64_t written_ticket_ = 0;

    // control queue
    sequence_list q_delivered_; // sequence, attempt
    sequence_list q_acked_;     // sequence, bytes
    sequence_list q_dropped_full_;
    sequence_list q_dropped_purged_;
    std::vector<queued_dead> q_dead_;
    std::vector<std::pair<sequence_range, std::uint8_t>> q_gaps_;
    std::uint64_t q_log_start_ = 0; // 0: none queued
    struct group_list_entry {
        spool_format::record_type type;
        std::uint32_t group;
        std::uint32_t epoch;
        sequence_list list;
    };
    std::vector<std::vector<std::byte>> q_group_events_; // encoded group record payloads
    std::vector<group_list_entry> q_group_lists_;
    std::function<void(std::uint64_t, std::uint64_t, std::uint64_t)> on_written_;
    segment_log::reclaim_policy reclaim_{[](const segment& s) { return s.waiting == 0; },
                                         [](std::uint64_t) { return true; }};
    std::vector<std::byte> control_buffer_;
    std::vector<control_record> control_records_;

    std::chrono::steady_clock::time_point last_sync_ = std::chrono::steady_clock::now();
};

} // namespace zmqkit::detail
