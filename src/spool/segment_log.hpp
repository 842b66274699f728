// Private to zmqkit::spool: the segment log — the segment files and what is known about each
// record in them (docs/spool-format.md §1-§3, §8).
#pragma once

#include "record_io.hpp"
#include "spool_context.hpp"

#include <zmqkit/spool/format.hpp>
#include <zmqkit/spool/spool.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace zmqkit::detail {

// One segment file and, per sequence number in it, whether it is settled (a bit) and where its
// record starts (every index_stride-th).
struct segment {
    std::uint64_t first = 0;
    std::uint64_t end = 0;      // sequence after the last record written
    std::uint64_t used = 0;     // bytes of records
    std::uint64_t capacity = 0; // file size
    std::string file;
    spool_file_system::handle fd = -1;
    std::vector<std::uint64_t> settled; // bit per sequence: 1 = settled, or not a message
    std::vector<std::uint64_t> message; // bit per sequence: 1 = a message record
    std::vector<std::uint32_t> index;   // offset of the record at first + k * index_stride
    std::uint64_t messages = 0;         // message records
    std::uint64_t waiting = 0;          // message records not settled (by the default queue)
    std::uint64_t waiting_bytes = 0;    // their message bytes
    std::int64_t newest_ns = 0;         // append time of its newest message (0: none)
    bool dirty = false;                 // written, not yet synced

    [[nodiscard]] bool is_settled(std::uint64_t seq) const noexcept {
        const std::uint64_t i = seq - first;
        return ((settled[i / 64] >> (i % 64)) & 1u) != 0;
    }
    void set_settled(std::uint64_t seq) noexcept {
        const std::uint64_t i = seq - first;
        settled[i / 64] |= std::uint64_t{1} << (i % 64);
    }
    [[nodiscard]] bool is_message(std::uint64_t seq) const noexcept {
        const std::uint64_t i = seq - first;
        return ((message[i / 64] >> (i % 64)) & 1u) != 0;
    }
    // A record registered as a message that is not one after all (recovery): settled, and not
    // counted.
    void unmark_message(std::uint64_t seq, bool waited) noexcept {
        const std::uint64_t i = seq - first;
        message[i / 64] &= ~(std::uint64_t{1} << (i % 64));
        set_settled(seq);
        --messages;
        if (waited) {
            --waiting;
        }
    }
    // Message records in [from, to) (both inside the segment).
    [[nodiscard]] std::uint64_t messages_between(std::uint64_t from,
                                                 std::uint64_t to) const noexcept;
    // Registers the record `seq` at `offset` (records arrive in sequence order; sequence
    // numbers skipped inside a segment — a known gap — count as settled). A message waits for
    // the default queue unless `waits` is false (no default queue): then it is born settled.
    void add(std::uint64_t seq, std::uint64_t offset, bool is_message, bool waits = true);
};

// A message record read back: where the views point is valid until the next read.
struct stored_message {
    std::uint64_t sequence = 0;
    message_payload payload;
};

// The segment files of one spool directory: appends at the end of the active segment, rotation
// (a new preallocated segment), fdatasync and the synced-position marker, reading records back,
// reclaiming settled head segments, and the waiting totals kept with the settled bits. An I/O
// error makes it fail (read-only from then on: nothing more is written); ENOSPC marks the disk
// full until a rotation or a full commit succeeds. Single-threaded.
class segment_log {
public:
    explicit segment_log(spool_context& ctx) : ctx_(ctx) {}
    ~segment_log(); // closes the files and the directory lock
    segment_log(const segment_log&) = delete;
    segment_log& operator=(const segment_log&) = delete;

    // ---- the segments ----
    [[nodiscard]] std::deque<segment>& segments() noexcept { return segments_; }
    [[nodiscard]] const std::deque<segment>& segments() const noexcept { return segments_; }
    // The segment holding seq (inline: every deliver, ack and settle looks one up).
    [[nodiscard]] segment* find(std::uint64_t seq) noexcept {
        auto it = std::upper_bound(segments_.begin(), segments_.end(), seq,
                                   [](std::uint64_t v, const segment& g) { return v < g.first; });
        if (it == segments_.begin()) {
            return nullptr;
        }
        --it;
        return seq < it->end ? &*it : nullptr;
    }
    [[nodiscard]] segment* active() noexcept {
        return segments_.empty() ? nullptr : &segments_.back();
    }
    // Closes a segment's file (and forgets what the readers cached from it).
    void close(segment& s) noexcept;
    // Where message records must stop in s (the rest is reserved for control records).
    [[nodiscard]] std::uint64_t message_limit(const segment& s) const noexcept;
    [[nodiscard]] std::uint64_t disk_bytes() const noexcept;
    // True when any segment was written and not synced.
    [[nodiscard]] bool dirty() const noexcept;

    // ---- health ----
    [[nodiscard]] bool failed() const noexcept { return failed_; }
    [[nodiscard]] const std::string& failure() const noexcept { return failure_; }
    [[nodiscard]] bool disk_full() const noexcept { return disk_full_; }
    [[nodiscard]] std::uint64_t enospc_errors() const noexcept { return enospc_errors_; }
    // Stops all writing with a reason (the first one sticks).
    void fail(std::string why);
    // A failed write: ENOSPC/EDQUOT marks the disk full (retried after 100 ms on the injectable
    // clock), anything else fails the log.
    void write_error(int e, const std::string& what);
    void clear_disk_full();

    // ---- writing ----
    // Creates the next segment (its first record is segment_start) for a write of `need` bytes.
    // False on failure (disk full or an I/O error, recorded).
    bool rotate(std::uint64_t need, bool& first_record);
    // Writes n bytes of sealed records at the end of s. False on failure (recorded).
    bool write(segment& s, const std::byte* data, std::size_t n);
    // fdatasync of s, then the marker. Never retried: a failure fails the log.
    bool sync(segment& s);
    // Syncs every dirty segment. False on the first failure.
    bool sync_dirty();
    // Records that everything up to the end of s is on disk (docs/spool-format.md §8).
    void write_marker(const segment& s);
    // What may go: `can_go(s)` says whether head segment s is settled everywhere or past a
    // retention limit; `before_remove(start)` runs before the segments below `start` are
    // deleted (it accounts what they still held and saves what must outlive them) and may
    // refuse (false: nothing is deleted now).
    struct reclaim_policy {
        std::function<bool(const segment&)> can_go;
        std::function<bool(std::uint64_t)> before_remove;
    };
    // Deletes head segments a durable log_start record lets go. Returns the log start to record
    // (queue a log_start record) when head segments may go and none is queued yet.
    [[nodiscard]] std::optional<std::uint64_t> reclaim(bool log_start_queued,
                                                       const reclaim_policy& policy);

    // ---- reading ----
    // The record at (s, offset) through `reader`; nullopt on a read error or a bad record.
    [[nodiscard]] std::optional<spool_format::record_view> read_record(buffered_reader& reader,
                                                                       const segment& s,
                                                                       std::uint64_t offset,
                                                                       std::size_t* consumed);
    // The message record `seq` (any state) through the random-access reader.
    [[nodiscard]] std::optional<stored_message> read_message(std::uint64_t seq);

    // ---- waiting messages ----
    // Marks seq settled (acked, dropped, dead-lettered) and takes it off the totals. False if it
    // is not a waiting message.
    bool settle(std::uint64_t seq, std::uint64_t bytes) {
        segment* s = find(seq);
        if (s == nullptr || s->is_settled(seq)) {
            return false;
        }
        s->set_settled(seq);
        --s->waiting;
        s->waiting_bytes -= std::min(s->waiting_bytes, bytes);
        --total_waiting;
        total_waiting_bytes -= std::min(total_waiting_bytes, bytes);
        return true;
    }

    // ---- the directory ----
    // Takes the directory's lock file (only on the real file system, and not read-only).
    void lock_directory();

    // State the other parts read and recovery sets (docs/spool-format.md §3 for log_start).
    std::uint64_t next_seq = 0;
    std::uint64_t log_start = 0;         // first sequence the log holds (durable value)
    std::uint64_t written_log_start = 0; // log_start record value written
    std::uint64_t total_waiting = 0;     // message records not settled
    std::uint64_t total_waiting_bytes = 0;
    std::int64_t newest_ns = 0;               // append time of the newest message
    spool_file_system::handle marker_fd = -1; // the synced-position marker (-1: none)
    buffered_reader cursor_reader;            // the delivery cursor's
    buffered_reader random_reader;            // read_message's

private:
    spool_context& ctx_;
    std::deque<segment> segments_;
    int lock_fd_ = -1;
    bool failed_ = false;
    bool disk_full_ = false;
    std::int64_t disk_full_retry_ns_ = 0; // now_ns() before which a full disk is not retried
    std::uint64_t enospc_errors_ = 0;
    std::string failure_;
};

} // namespace zmqkit::detail
