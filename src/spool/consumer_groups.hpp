// Private to zmqkit::spool: consumer groups — named queues over the same log, each with its own
// floor, cursor, acks, attempts and dead letters (docs/spool-format.md §10). The group records
// go through the group commit; the groups file keeps the groups and their floors when head
// segments (and the group records in them) are reclaimed.
#pragma once

#include "delivery_state.hpp"
#include "group_commit.hpp"
#include "segment_log.hpp"

#include <zmqkit/spool/format.hpp>
#include <zmqkit/spool/report.hpp>
#include <zmqkit/spool/spool.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::detail {

class consumer_groups {
public:
    struct group {
        group(spool_context& ctx, segment_log& log, group_commit& commit, spool* dead_letters)
            : delivery(ctx, log, commit, dead_letters, &ledger) {}
        group_ledger ledger;
        delivery_state delivery;
    };

    consumer_groups(spool_context& ctx, segment_log& log, group_commit& commit, spool* dead_letters)
        : ctx_(ctx), log_(log), commit_(commit), dead_letters_(dead_letters) {}

    [[nodiscard]] group* find(group_id id) noexcept {
        const auto it = groups_.find(id);
        return it == groups_.end() ? nullptr : it->second.get();
    }
    [[nodiscard]] const group* find(std::string_view name) const noexcept;
    [[nodiscard]] std::size_t size() const noexcept { return groups_.size(); }

    // open_group / reset_group / delete_group of the spool (queued: the caller commits).
    // `latest` is the sequence number the next stored message will get.
    group_id open(std::string_view name, const group_start& start, std::uint64_t latest);
    bool reset(std::string_view name, const group_start& start, std::uint64_t latest);
    bool remove(std::string_view name);
    [[nodiscard]] std::vector<group_info> list() const;
    [[nodiscard]] group_info info(const group& g) const;

    // ---- hooks of the log ----
    // n message records were written, from sequence `first` on: each group counts those at or
    // above its floor.
    void written(std::uint64_t first, std::uint64_t n) noexcept;
    // A message for one queue only: settled in every group but `target`.
    void settle_except(const std::string& target, std::uint64_t seq, std::uint64_t bytes);
    // Every group has settled all of s.
    [[nodiscard]] bool past(const segment& s) const noexcept;
    // Head segments below `start` are about to be deleted: what a group had not settled there
    // is lost to it (counted, reported), and the groups file is rewritten with the floors from
    // then on. False (nothing may be deleted) when the file cannot be written.
    bool before_remove(std::uint64_t start);
    [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> next_redelivery() const;

    // ---- recovery ----
    // Reads the groups file (a damaged one is a finding; the group records in the log still
    // count). Before the scan.
    void load(recovery_report& report);
    // A group record of the scan.
    void apply(const spool_format::record_view& r);
    // After the scan: floors at least at the log start, floors moved up, cursors, counts.
    void recovered(recovery_report& report);

private:
    // The sequence a start position resolves to (throws config_error).
    [[nodiscard]] std::uint64_t resolve(const group_start& start, std::uint64_t latest);
    [[nodiscard]] std::uint64_t first_message_at(std::int64_t time_ns, std::uint64_t latest);
    // Messages from floor to the end of the log that the group has not settled.
    [[nodiscard]] std::uint64_t count_waiting(const group_ledger& g) const;
    [[nodiscard]] bool write_file();
    group& add(std::uint32_t id, std::uint32_t epoch, std::string name, std::string start,
               std::uint64_t floor, std::int64_t time_ns);

    spool_context& ctx_;
    segment_log& log_;
    group_commit& commit_;
    spool* dead_letters_;
    std::map<group_id, std::unique_ptr<group>> groups_;
    std::uint32_t next_id_ = 1;
    // Ids below this were given out before the groups file was written: a `created` record of
    // one that the file does not list is a group deleted since.
    std::uint32_t file_next_id_ = 1;
    std::int64_t reclaimed_ns_ = 0; // newest append time of the segments reclaimed

    std::vector<std::byte> file_buffer_;
};

} // namespace zmqkit::detail
