// Private to zmqkit::spool: recovery — rebuilding a spool's state from its directory at open
// (docs/spool-format.md §5-§8: torn tails, damage, quarantine, lost ranges, the synced marker).
#pragma once

#include "consumer_groups.hpp"
#include "delivery_state.hpp"
#include "group_commit.hpp"
#include "segment_log.hpp"

#include <zmqkit/message_id_window.hpp>
#include <zmqkit/spool/report.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zmqkit::detail {

// One recovery (a one-shot object: construct, run()). It scans every segment file in order,
// cutting a torn tail of the last one and salvaging damaged ones (valid records copied into a
// new file, the original quarantined), applies each record to the segment log, the delivery
// state and the dedup window, and works out which sequence numbers are lost for good (gap
// records already in the log are known; only new ranges are reported and recorded). The synced
// marker tells damage from a torn write: a record below it had been synced, so whatever is wrong
// with it is damage. Strict mode throws spool_damaged_error instead of changing anything but a
// torn tail; read-only changes nothing on disk.
class spool_recovery {
public:
    spool_recovery(spool_context& ctx, segment_log& log, delivery_state& delivery,
                   consumer_groups& groups, group_commit& commit, message_id_window& dedup,
                   recovery_report& report)
        : ctx_(ctx), log_(log), delivery_(delivery), groups_(groups), commit_(commit),
          dedup_(dedup), report_(report) {}

    // Throws spool_error (cannot read or repair the directory) or spool_damaged_error (strict).
    void run();

private:
    struct found_gap {
        sequence_range range;
        std::uint8_t cause;
    };
    struct salvage {
        std::size_t segment_index;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> extents; // offset, size (valid)
    };
    using segment_files = std::vector<std::pair<std::uint64_t, std::string>>; // first, name

    void open_directory();
    [[nodiscard]] segment_files list_segments();
    // Reads the synced-position marker (and keeps it open for writing unless read-only; a
    // missing one is created by finish()). nullopt, with `why`, when it is not usable.
    std::optional<spool_format::synced_position> open_marker(std::string& why);
    // Checks the marker against the segment files; nullopt (with a finding) if it cannot be
    // theirs.
    std::optional<spool_format::synced_position>
    check_marker(std::optional<spool_format::synced_position> marker, const std::string& why,
                 const segment_files& files);
    void scan_all(const segment_files& files, std::uint64_t synced_end);
    // synced_end: every sequence number below it was synced (the marker; 0: unknown).
    void scan_segment(segment& s, bool last, std::uint64_t synced_end, std::size_t index);
    [[nodiscard]] spool_format::scan_result read_next(buffered_reader& reader, segment& s,
                                                      std::uint64_t offset,
                                                      spool_format::record_view& r,
                                                      std::size_t& consumed);
    // Cuts the torn tail of s at offset (an unconfirmed write: never synced).
    void cut_torn_tail(segment& s, std::uint64_t offset, std::uint64_t last_nonzero,
                       std::uint64_t synced_end);
    void apply(segment& s, const spool_format::record_view& r, std::uint64_t offset);
    void settle_targeted(std::uint64_t seq, const message_payload& mp);
    // Searches [from, limit) for a valid record with sequence >= min_seq. Sets *flagged when
    // any valid record there carries flag_commit_start; *last_nonzero to the end of the last
    // non-zero byte seen.
    std::optional<std::pair<std::uint64_t, spool_format::record_view>>
    resync(buffered_reader& reader, segment& s, std::uint64_t from, std::uint64_t min_seq,
           bool* flagged, std::uint64_t* last_nonzero);
    // Records the synced sequence numbers that no segment holds any more (a file cut short, a
    // missing last segment) as lost.
    void find_lost_tail(const spool_format::synced_position& marker);
    // The parts of the gaps found that no gap record already covers, reported as lost.
    [[nodiscard]] std::vector<found_gap> new_gaps();
    void refuse_if_strict(const std::vector<found_gap>& fresh);
    // Salvages damaged segments and removes the ones recovery has no use for, then syncs.
    void repair();
    void perform_salvage(salvage& sv);
    // Attempts, dedup window, sequence numbers and cursor from what was scanned.
    void settle_state(const std::vector<found_gap>& fresh);
    // Writes what recovery queued (gap records, a first segment) and leaves everything synced,
    // with the marker saying so.
    void finish(const std::vector<found_gap>& fresh);
    void report_metrics();

    spool_context& ctx_;
    segment_log& log_;
    delivery_state& delivery_;
    consumer_groups& groups_;
    group_commit& commit_;
    message_id_window& dedup_;
    recovery_report& report_;

    std::vector<found_gap> gaps_;       // every gap found (head, between, inside, tail)
    std::vector<sequence_range> known_; // gap records read (reported by an earlier recovery)
    std::vector<salvage> salvages_;     // damaged segments to repair
    std::vector<message_id> ring_;      // the newest message ids scanned (dedup window)
    std::size_t ring_pos_ = 0;
    std::chrono::steady_clock::time_point t0_{};
};

} // namespace zmqkit::detail
