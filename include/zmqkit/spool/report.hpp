// zmqkit — what opening the spool found (recovery_report) and its statistics (spool_stats).
#pragma once

#include <zmqkit/spool/options.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zmqkit {

// ---- reports ----------------------------------------------------------------------------------

// A range of sequence numbers [first, end) lost to corruption or a missing segment.
struct sequence_range {
    std::uint64_t first = 0;
    std::uint64_t end = 0;
    friend bool operator==(const sequence_range&, const sequence_range&) = default;
};

// What opening the spool found and did.
struct recovery_report {
    std::chrono::nanoseconds duration{0};
    std::size_t segments = 0;
    std::uint64_t records = 0;       // valid records read
    std::uint64_t bytes_scanned = 0; // record bytes read
    std::uint64_t messages = 0;      // messages waiting (not acked, not dead-lettered)
    std::uint64_t log_start = 0;     // first sequence number the log holds
    std::uint64_t next_sequence = 0; // sequence number of the next record
    // Torn tail: bytes cut from the end of the last segment (an interrupted, unconfirmed write).
    std::uint64_t truncated_bytes = 0;
    std::string truncated_file;
    // Damaged segments moved to <directory>/quarantine (their files, as found).
    std::vector<std::string> quarantined_files;
    // Sequence numbers lost for good (newly found this time).
    std::vector<sequence_range> lost;
    // Human-readable lines (one per finding), for logs and `zmqkit-spooler verify`.
    std::vector<std::string> findings;
    // The synced-position marker read at the start (docs/spool-format.md §8): every record
    // numbered below it had been synced, so damage there is damage, never a torn tail.
    // nullopt: no usable marker (a spool from before it, or a damaged one: see findings).
    std::optional<std::uint64_t> synced_sequence;
    // Strict mode refused to open: damage or lost ranges were found (spool_damaged_error).
    bool refused = false;
    [[nodiscard]] bool clean() const noexcept {
        return truncated_bytes == 0 && quarantined_files.empty() && lost.empty();
    }
};

// Thrown instead of opening when strict mode finds damage or lost sequence numbers. report()
// says what recovery found (with `refused` set); nothing on disk was changed but a torn tail.
class spool_damaged_error final : public spool_error {
public:
    spool_damaged_error(const std::string& what, recovery_report report)
        : spool_error(what), report_(std::move(report)) {}
    [[nodiscard]] const recovery_report& report() const noexcept { return report_; }

private:
    recovery_report report_;
};

// Point-in-time state, for STATISTICS, metrics and `zmqkit-spooler inspect`.
struct spool_stats {
    std::uint64_t messages = 0;         // waiting: not yet acked or dead-lettered (incl. in flight)
    std::uint64_t message_bytes = 0;    // payload bytes of those
    std::uint64_t ready = 0;            // waiting and not in flight
    std::uint64_t in_flight = 0;        // delivered, not yet acked
    std::uint64_t undelivered = 0;      // never delivered yet (consumer lag, in messages)
    std::uint64_t segments = 0;         // segment files
    std::uint64_t disk_bytes = 0;       // bytes of segment files
    std::uint64_t log_start = 0;        // first sequence number held
    std::uint64_t next_sequence = 0;    // sequence number of the next record
    std::uint64_t durable_sequence = 0; // every record below it is committed
    std::int64_t oldest_ns = 0;         // append time of the oldest waiting message (0: none)
    std::int64_t newest_ns = 0;         // append time of the newest message (0: none)
    std::uint64_t appended = 0, duplicates = 0, acked = 0, redelivered = 0, dead_lettered = 0;
    std::uint64_t dropped_full = 0, rejected_full = 0;
    std::uint64_t commits = 0, syncs = 0, sync_ns_total = 0, sync_ns_max = 0, committed_records = 0;
    std::uint64_t dead_letter_messages = 0;
    std::uint64_t expired = 0; // default-queue messages retention removed before they settled
    std::uint64_t groups = 0;  // consumer groups (the default queue not counted)
    bool read_only = false;    // an I/O error stopped writing; `failure` says why
    bool disk_full = false;    // ENOSPC: messages wait, confirms are withheld
    std::string failure;
};

} // namespace zmqkit
