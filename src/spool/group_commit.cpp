#include "group_commit.hpp"

#include <algorithm>
#include <cstring>

namespace zmqkit::detail {

namespace sf = spool_format;
using sf::record_type;

std::uint64_t group_commit::queue_message(std::int64_t appended_ns, const message_id& id,
                                          std::string_view header, std::string_view body,
                                          std::uint8_t flags) {
    const std::size_t message_bytes = header.size() + body.size();
    const std::size_t at = message_records_.size();
    const std::size_t payload = message_fixed + message_bytes;
    message_records_.resize(at + sf::record_header_size + payload);
    std::byte* p = message_records_.data() + at + sf::record_header_size;
    std::memcpy(p, &appended_ns, 8);
    std::memcpy(p + 8, id.data(), message_id::size);
    const auto hs = static_cast<std::uint32_t>(header.size());
    std::memcpy(p + 24, &hs, 4);
    std::memcpy(p + message_fixed, header.data(), header.size());
    if (!body.empty()) {
        std::memcpy(p + message_fixed + header.size(), body.data(), body.size());
    }
    queued_.push_back({++next_ticket_, static_cast<std::uint32_t>(sf::record_header_size + payload),
                       static_cast<std::uint32_t>(message_bytes), flags});
    queued_bytes_ += message_bytes;
    return next_ticket_;
}

sequence_list& group_commit::group_list(record_type t, std::uint32_t group, std::uint32_t epoch) {
    for (auto& l : q_group_lists_) {
        if (l.type == t && l.group == group && l.epoch == epoch) {
            return l.list;
        }
    }
    q_group_lists_.push_back({t, group, epoch, {}});
    return q_group_lists_.back().list;
}

void group_commit::group_event(const sf::group_record& g) {
    std::vector<std::byte> payload;
    sf::encode_group_record(g, payload);
    q_group_events_.push_back(std::move(payload));
}

void group_commit::dead_lettered(queued_dead d) {
    if (d.pending_copy) {
        copy_dead_letter(d);
    }
    q_dead_.push_back(std::move(d));
}

// Hands a dead letter's copy to the dead-letter spool. When it cannot take it now (its disk is
// full, or it failed) the copy stays pending: the dead_lettered record is only written after the
// copy is committed, so the message is never in neither spool.
void group_commit::copy_dead_letter(queued_dead& d) {
    const auto r = dead_letters_->append(d.pending_copy->first, d.pending_copy->second);
    if (r.outcome == append_result::status::appended ||
        r.outcome == append_result::status::duplicate) {
        d.dead_letter_ticket = r.ticket;
        d.pending_copy.reset();
    }
}

bool group_commit::controls_queued() const noexcept {
    return !q_delivered_.empty() || !q_acked_.empty() || !q_dropped_full_.empty() ||
           !q_dropped_purged_.empty() || !q_dead_.empty() || !q_gaps_.empty() ||
           q_log_start_ != 0 || !q_group_events_.empty() || !q_group_lists_.empty();
}

bool group_commit::pending() const noexcept {
    return !queued_.empty() || controls_queued() || log_.dirty();
}

bool group_commit::commit(std::uint64_t* committed_ticket) {
    if (log_.failed() || ctx_.opt.read_only) {
        return false;
    }
    ctx_.m.commits->add();
    ++ctx_.counts.commits;
    const std::uint64_t enospc_before = log_.enospc_errors();
    bool first_record = true;

    // Dead-letter copies first: a dead_lettered record may only follow a committed copy.
    if (dead_letters_ != nullptr) {
        for (auto& d : q_dead_) {
            if (d.pending_copy) {
                copy_dead_letter(d);
            }
        }
        if (dead_letters_->commit_pending()) {
            dead_letters_->commit();
        }
    }

    std::uint64_t records = write_messages(first_record);
    if (!log_.failed()) {
        records += write_controls(first_record);
    }

    // Sync per policy.
    const auto now = std::chrono::steady_clock::now();
    const bool sync_now = ctx_.opt.sync.how == sync_policy::mode::always ||
                          (ctx_.opt.sync.how == sync_policy::mode::interval &&
                           now - last_sync_ >= ctx_.opt.sync.interval);
    if (sync_now && !log_.failed()) {
        (void)log_.sync_dirty();
        last_sync_ = now;
    }
    if (!log_.failed()) {
        // always: everything written is synced now; interval/none: confirm on write.
        *committed_ticket = written_ticket_;
    }
    ctx_.m.committed_records->add(records);
    ctx_.counts.committed_records += records;
    ctx_.m.last_batch->set(static_cast<std::int64_t>(records));
    if (!log_.failed()) {
        if (const auto start = log_.reclaim(q_log_start_ != 0, reclaim_)) {
            q_log_start_ = *start;
        }
    }
    // The disk had room for everything queued: appends may go on (the ENOSPC may have come from
    // a write inside the active segment, where no rotation would clear it).
    if (log_.disk_full() && !log_.failed() && log_.enospc_errors() == enospc_before &&
        queued_.empty() && q_delivered_.empty() && q_acked_.empty() && q_dropped_full_.empty() &&
        q_dropped_purged_.empty() && q_gaps_.empty() && q_group_events_.empty() &&
        q_group_lists_.empty()) {
        log_.clear_disk_full();
    }
    return !log_.failed() && records > 0;
}

// The queued messages, in as few writes as segments they fill. Returns how many were written.
std::uint64_t group_commit::write_messages(bool& first_record) {
    std::size_t done = 0;
    std::size_t pos = 0;
    while (done < queued_.size() && !log_.failed()) {
        segment* act = log_.active();
        if (act == nullptr || act->used + queued_[done].size > log_.message_limit(*act)) {
            if (!log_.rotate(queued_[done].size, first_record)) {
                break;
            }
            act = log_.active();
        }
        std::size_t j = done;
        std::uint64_t bytes = 0;
        std::uint64_t seq = log_.next_seq;
        while (j < queued_.size() &&
               act->used + bytes + queued_[j].size <= log_.message_limit(*act)) {
            sf::seal_record(message_records_.data() + pos + bytes, record_type::message,
                            static_cast<std::uint8_t>((first_record ? sf::flag_commit_start : 0) |
                                                      queued_[j].flags),
                            seq++,
                            queued_[j].size - static_cast<std::uint32_t>(sf::record_header_size));
            first_record = false;
            bytes += queued_[j].size;
            ++j;
        }
        if (!log_.write(*act, message_records_.data() + pos, bytes)) {
            break;
        }
        std::uint64_t offset = act->used;
        const std::uint64_t first_seq = log_.next_seq;
        const std::uint64_t first_ticket = queued_[done].ticket;
        const bool waits = ctx_.opt.default_queue;
        for (std::size_t k = done; k < j; ++k) {
            act->add(log_.next_seq++, offset, true, waits);
            offset += queued_[k].size;
            if (waits) {
                act->waiting_bytes += queued_[k].bytes;
                log_.total_waiting_bytes += queued_[k].bytes;
            }
            queued_bytes_ -= queued_[k].bytes;
            written_ticket_ = queued_[k].ticket;
        }
        if (waits) {
            log_.total_waiting += j - done;
        }
        act->newest_ns = log_.newest_ns;
        if (on_written_) {
            on_written_(first_seq, j - done, first_ticket);
        }
        act->used = offset;
        act->dirty = true;
        pos += bytes;
        done = j;
    }
    if (done > 0) {
        message_records_.erase(message_records_.begin(),
                               message_records_.begin() + static_cast<std::ptrdiff_t>(pos));
        queued_.erase(queued_.begin(), queued_.begin() + static_cast<std::ptrdiff_t>(done));
    }
    return done;
}

void group_commit::encode_list(record_type t, sequence_list& list,
                               std::optional<std::uint8_t> reason,
                               std::span<const std::byte> prefix) {
    if (list.empty()) {
        return;
    }
    std::vector<std::byte>& out = control_buffer_;
    std::sort(list.begin(), list.end());
    const std::size_t at = out.size();
    out.resize(at + sf::record_header_size);
    out.insert(out.end(), prefix.begin(), prefix.end());
    if (reason) {
        out.push_back(static_cast<std::byte>(*reason));
    }
    sf::write_varint(out, list.size());
    std::uint64_t prev = 0;
    for (const auto& [seq, value] : list) {
        sf::write_varint(out, seq - prev);
        sf::write_varint(out, value);
        prev = seq;
    }
    control_records_.push_back({t, at, out.size() - at});
}

// Encodes the queued control records into control_buffer_ (headers unsealed), noting their
// extents. dead_written: how many dead letters are in it (those whose copy is committed).
void group_commit::encode_controls(std::size_t& dead_written) {
    control_buffer_.clear();
    control_records_.clear();
    // Group events first: a group's creation (or reset) precedes its deliveries and acks.
    for (const auto& g : q_group_events_) {
        const std::size_t at = control_buffer_.size();
        control_buffer_.resize(at + sf::record_header_size);
        control_buffer_.insert(control_buffer_.end(), g.begin(), g.end());
        control_records_.push_back({record_type::group, at, control_buffer_.size() - at});
    }
    for (auto& l : q_group_lists_) {
        std::vector<std::byte> prefix;
        sf::write_varint(prefix, l.group);
        sf::write_varint(prefix, l.epoch);
        encode_list(l.type, l.list, {}, prefix);
    }
    encode_list(record_type::delivered, q_delivered_, {});
    encode_list(record_type::acked, q_acked_, {});
    encode_list(record_type::dropped, q_dropped_full_, drop_reason_full);
    encode_list(record_type::dropped, q_dropped_purged_, drop_reason_purged);
    const std::uint64_t dlq_committed =
        dead_letters_ != nullptr ? dead_letters_->committed_ticket() : UINT64_MAX;
    dead_written = 0;
    for (const auto& d : q_dead_) {
        if (d.pending_copy || d.dead_letter_ticket > dlq_committed) {
            break;
        }
        const std::size_t at = control_buffer_.size();
        control_buffer_.resize(at + sf::record_header_size);
        if (d.group != 0) {
            sf::write_varint(control_buffer_, d.group);
            sf::write_varint(control_buffer_, d.epoch);
        }
        put64(control_buffer_, d.sequence);
        put32(control_buffer_, d.bytes);
        const auto* r = reinterpret_cast<const std::byte*>(d.reason.data());
        control_buffer_.insert(control_buffer_.end(), r, r + d.reason.size());
        control_records_.push_back(
            {d.group != 0 ? record_type::group_dead_lettered : record_type::dead_lettered, at,
             control_buffer_.size() - at});
        ++dead_written;
    }
    for (const auto& [range, cause] : q_gaps_) {
        const std::size_t at = control_buffer_.size();
        control_buffer_.resize(at + sf::record_header_size);
        put64(control_buffer_, range.first);
        put64(control_buffer_, range.end);
        control_buffer_.push_back(static_cast<std::byte>(cause));
        control_records_.push_back({record_type::gap, at, control_buffer_.size() - at});
    }
    if (q_log_start_ != 0) {
        const std::size_t at = control_buffer_.size();
        control_buffer_.resize(at + sf::record_header_size);
        put64(control_buffer_, q_log_start_);
        control_records_.push_back({record_type::log_start, at, control_buffer_.size() - at});
    }
}

std::uint64_t group_commit::write_controls(bool& first_record) {
    std::size_t dead_written = 0;
    encode_controls(dead_written);
    if (control_records_.empty()) {
        return 0;
    }
    segment* act = log_.active();
    if (act == nullptr || act->used + control_buffer_.size() > act->capacity) {
        if (!log_.rotate(control_buffer_.size(), first_record)) {
            return 0; // stays queued (disk full: acks are held in memory and retried)
        }
        act = log_.active();
    }
    std::uint64_t seq = log_.next_seq;
    for (const auto& c : control_records_) {
        sf::seal_record(control_buffer_.data() + c.offset, c.type,
                        first_record ? sf::flag_commit_start : 0, seq++,
                        static_cast<std::uint32_t>(c.size - sf::record_header_size));
        first_record = false;
    }
    if (!log_.write(*act, control_buffer_.data(), control_buffer_.size())) {
        return 0;
    }
    for (const auto& c : control_records_) {
        act->add(log_.next_seq++, act->used + c.offset, false);
    }
    act->used += control_buffer_.size();
    act->dirty = true;
    q_delivered_.clear();
    q_acked_.clear();
    q_dropped_full_.clear();
    q_dropped_purged_.clear();
    q_dead_.erase(q_dead_.begin(), q_dead_.begin() + static_cast<std::ptrdiff_t>(dead_written));
    q_gaps_.clear();
    q_group_events_.clear();
    q_group_lists_.clear();
    if (q_log_start_ != 0) {
        log_.written_log_start = q_log_start_;
        q_log_start_ = 0;
    }
    return control_records_.size();
}

} // namespace zmqkit::detail
