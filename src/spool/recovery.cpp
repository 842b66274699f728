#include "recovery.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/header.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace zmqkit::detail {

namespace sf = spool_format;
using sf::record_type;

void spool_recovery::run() {
    t0_ = std::chrono::steady_clock::now();
    open_directory();
    // The marker before the segments: read after them, it could describe writes made meanwhile
    // (a read-only open while the owner runs) that this scan did not see.
    std::string marker_problem;
    auto marker = open_marker(marker_problem);
    groups_.load(report_);
    const segment_files files = list_segments();
    marker = check_marker(marker, marker_problem, files);

    scan_all(files, marker ? marker->end_sequence : 0);
    // Head: the log says where it starts; anything before the first segment is missing.
    auto& segments = log_.segments();
    if (!segments.empty() && segments.front().first > log_.log_start) {
        gaps_.push_back({{log_.log_start, segments.front().first}, gap_cause_missing});
    }
    // Tail: what the marker says was synced and no segment holds.
    if (marker) {
        find_lost_tail(*marker);
    }
    const std::vector<found_gap> fresh = new_gaps();
    refuse_if_strict(fresh);
    if (!ctx_.opt.read_only) {
        repair();
    }
    settle_state(fresh);
    if (!ctx_.opt.read_only) {
        finish(fresh);
    }
    report_metrics();
}

void spool_recovery::open_directory() {
    if (ctx_.opt.read_only) {
        std::vector<std::string> probe;
        if (const int e = ctx_.fs.list(ctx_.dir, probe); e != 0) {
            throw spool_error("no spool at " + ctx_.dir.string() + ": " + errno_text(e));
        }
    } else if (const int e = ctx_.fs.create_directory(ctx_.dir); e != 0) {
        throw spool_error("cannot create spool directory " + ctx_.dir.string() + ": " +
                          errno_text(e));
    }
    log_.lock_directory();
}

spool_recovery::segment_files spool_recovery::list_segments() {
    std::vector<std::string> names;
    if (const int e = ctx_.fs.list(ctx_.dir, names); e != 0) {
        throw spool_error("cannot list " + ctx_.dir.string() + ": " + errno_text(e));
    }
    segment_files files;
    for (const auto& n : names) {
        if (auto first = sf::parse_segment_file_name(n)) {
            files.emplace_back(*first, n);
        } else if (n.ends_with(".seg.repair") && !ctx_.opt.read_only) {
            (void)ctx_.fs.remove(ctx_.dir / n); // an interrupted repair: the original is there
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

void spool_recovery::scan_all(const segment_files& files, std::uint64_t synced_end) {
    ring_.assign(ctx_.opt.dedup_window, message_id{});
    auto& segments = log_.segments();
    for (std::size_t i = 0; i < files.size(); ++i) {
        segment s;
        s.first = files[i].first;
        s.end = s.first;
        s.file = files[i].second;
        const auto path = ctx_.dir / s.file;
        if (const int e = ctx_.fs.open(path, !ctx_.opt.read_only, false, s.fd); e != 0) {
            throw spool_error("cannot open " + path.string() + ": " + errno_text(e));
        }
        if (const int e = ctx_.fs.size(s.fd, s.capacity); e != 0) {
            ctx_.fs.close(s.fd);
            throw spool_error("cannot stat " + path.string() + ": " + errno_text(e));
        }
        if (!segments.empty() && s.first < segments.back().end) {
            report_.findings.push_back(s.file + ": overlaps the previous segment (sequence " +
                                       std::to_string(s.first) + " < " +
                                       std::to_string(segments.back().end) + "); ignored");
            if (!ctx_.opt.read_only) {
                const auto qdir = ctx_.dir / "quarantine";
                if (ctx_.fs.create_directory(qdir) == 0 &&
                    ctx_.fs.rename(path, qdir / s.file) == 0) {
                    report_.quarantined_files.push_back((qdir / s.file).string());
                }
            }
            ctx_.fs.close(s.fd);
            continue;
        }
        if (!segments.empty() && s.first > segments.back().end) {
            gaps_.push_back({{segments.back().end, s.first}, gap_cause_missing});
        }
        segments.push_back(std::move(s));
        scan_segment(segments.back(), i + 1 == files.size(), synced_end, segments.size() - 1);
        ++report_.segments;
    }
}

// Which gaps are new? (Known ones were reported by an earlier recovery.) A gap can be covered by
// several known ranges together (a head gap that grew over a missing segment reported before):
// only the parts no known range covers are new.
std::vector<spool_recovery::found_gap> spool_recovery::new_gaps() {
    std::sort(known_.begin(), known_.end(),
              [](const sequence_range& a, const sequence_range& b) { return a.first < b.first; });
    std::vector<found_gap> fresh;
    for (const auto& g : gaps_) {
        std::uint64_t at = g.range.first;
        for (const auto& k : known_) {
            if (at >= g.range.end) {
                break;
            }
            if (k.end <= at) {
                continue;
            }
            if (k.first > at) {
                fresh.push_back({{at, std::min(k.first, g.range.end)}, g.cause});
            }
            at = std::max(at, k.end);
        }
        if (at < g.range.end) {
            fresh.push_back({{at, g.range.end}, g.cause});
        }
    }
    for (const auto& g : fresh) {
        report_.lost.push_back(g.range);
        report_.findings.push_back(
            "lost sequence numbers " + std::to_string(g.range.first) + ".." +
            std::to_string(g.range.end - 1) +
            (g.cause == gap_cause_missing ? " (missing segment)" : " (damaged records)"));
    }
    return fresh;
}

void spool_recovery::refuse_if_strict(const std::vector<found_gap>& fresh) {
    if (!ctx_.opt.strict || (fresh.empty() && salvages_.empty())) {
        return;
    }
    std::string what;
    for (const auto& f : report_.findings) {
        what += " " + f + ";";
    }
    report_.refused = true;
    report_.duration = std::chrono::steady_clock::now() - t0_;
    throw spool_damaged_error("spool " + ctx_.dir.string() +
                                  " is damaged (strict mode refuses to start):" + what +
                                  " run `zmqkit-spooler repair " + ctx_.dir.string() +
                                  "` or start without --strict to quarantine the damage, "
                                  "record the lost range and continue",
                              report_);
}

void spool_recovery::repair() {
    auto& segments = log_.segments();
    for (auto& sv : salvages_) {
        perform_salvage(sv);
    }
    // Segments entirely before the log start (a reclaim interrupted after its record): what
    // the groups had not settled there is theirs to lose (counted), and the groups file says so
    // before the segments go.
    if (segments.size() > 1 && segments.front().end <= log_.log_start &&
        !groups_.before_remove(std::min(log_.log_start, segments.back().first))) {
        throw spool_error("cannot write the groups file in " + ctx_.dir.string() + ": " +
                          (log_.failed() ? log_.failure() : std::string("disk full")));
    }
    while (segments.size() > 1 && segments.front().end <= log_.log_start) {
        log_.close(segments.front());
        (void)ctx_.fs.remove(ctx_.dir / segments.front().file);
        segments.pop_front();
    }
    // Segments without a record (created, then the process died): remove.
    for (std::size_t i = 0; i < segments.size();) {
        if (segments[i].end == segments[i].first) {
            log_.close(segments[i]);
            (void)ctx_.fs.remove(ctx_.dir / segments[i].file);
            segments.erase(segments.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
            ++i;
        }
    }
    (void)ctx_.fs.sync_directory(ctx_.dir);
    // What recovery found in the last segment may only be in the page cache (the process was
    // killed between a write and its fdatasync, or the fdatasync failed). From now on it counts
    // — duplicates of it are confirmed, deliveries continue from it, the next segment starts
    // after it — so it must be on disk before anything else is written. (Earlier segments were
    // synced when the next one was created.) This also makes a torn-tail truncation durable.
    if (!segments.empty()) {
        if (const int e = ctx_.fs.sync_data(segments.back().fd); e != 0) {
            throw spool_error("cannot sync " + (ctx_.dir / segments.back().file).string() + ": " +
                              errno_text(e) + "; check the disk (dmesg)");
        }
    }
}

void spool_recovery::settle_state(const std::vector<found_gap>& fresh) {
    auto& segments = log_.segments();
    // Attempts only for messages still waiting; deliveries start at the head.
    delivery_.recovered();
    // Dedup window: the newest ids, oldest first.
    const std::size_t n = std::min(ring_pos_, ring_.size());
    for (std::size_t k = ring_pos_ - n; k < ring_pos_; ++k) {
        (void)dedup_.insert(ring_[k % ring_.size()], 0);
    }
    std::uint64_t next = segments.empty() ? log_.log_start : segments.back().end;
    for (const auto& g : fresh) {
        next = std::max(next, g.range.end);
    }
    log_.next_seq = next;
    log_.written_log_start = std::max(log_.written_log_start, log_.log_start);
    if (!segments.empty()) {
        log_.log_start = segments.front().first;
    }
    groups_.recovered(report_);
    report_.messages = log_.total_waiting;
    report_.log_start = segments.empty() ? next : segments.front().first;
    report_.next_sequence = next;
}

void spool_recovery::report_metrics() {
    report_.duration = std::chrono::steady_clock::now() - t0_;
    ctx_.m.recovery_ms->set(
        std::chrono::duration_cast<std::chrono::milliseconds>(report_.duration).count());
    ctx_.m.recovery_truncated_bytes->set(static_cast<std::int64_t>(report_.truncated_bytes));
    std::uint64_t lost = 0;
    for (const auto& g : report_.lost) {
        lost += g.end - g.first;
    }
    ctx_.m.recovery_lost->set(static_cast<std::int64_t>(lost));
    ctx_.m.quarantined->set(static_cast<std::int64_t>(report_.quarantined_files.size()));
}

// A message for one queue only (a requeued dead letter): settled for every other queue, as it
// was when it was written.
void spool_recovery::settle_targeted(std::uint64_t seq, const message_payload& mp) {
    header h;
    if (!decode_header(mp.header.data(), mp.header.size(), h)) {
        return; // cannot tell its queue: every queue gets it (at least once)
    }
    const std::string* target = h.find_user_header(sf::target_group_header);
    if (target == nullptr) {
        return;
    }
    const std::uint64_t bytes = mp.header.size() + mp.body.size();
    if (!target->empty()) {
        delivery_.settle(seq, bytes);
    }
    groups_.settle_except(*target, seq, bytes);
}

void spool_recovery::apply(segment& s, const sf::record_view& r, std::uint64_t offset) {
    const bool is_message = r.type == record_type::message;
    const bool waits = ctx_.opt.default_queue;
    s.add(r.sequence, offset, is_message, waits);
    switch (r.type) {
    case record_type::message: {
        message_payload mp;
        if (parse_message_payload(r.payload, mp)) {
            if (waits) {
                log_.total_waiting += 1;
                log_.total_waiting_bytes += mp.header.size() + mp.body.size();
                s.waiting_bytes += mp.header.size() + mp.body.size();
            }
            log_.newest_ns = mp.appended_ns;
            s.newest_ns = mp.appended_ns;
            if ((r.flags & sf::flag_targeted) != 0) {
                settle_targeted(r.sequence, mp);
            }
            if (!ring_.empty()) {
                ring_[ring_pos_ % ring_.size()] = mp.id;
                ++ring_pos_;
            }
        } else {
            // checksummed but not a message payload: a writer bug; not a message to anyone
            s.unmark_message(r.sequence, waits);
        }
        break;
    }
    case record_type::group:
    case record_type::group_delivered:
    case record_type::group_acked:
    case record_type::group_dead_lettered:
        groups_.apply(r);
        break;
    case record_type::delivered:
        (void)sf::decode_sequence_list(r.payload, [&](std::uint64_t seq, std::uint64_t attempt) {
            delivery_.recovered_attempt(seq, attempt);
        });
        break;
    case record_type::acked:
        (void)sf::decode_sequence_list(r.payload, [&](std::uint64_t seq, std::uint64_t bytes) {
            delivery_.settle(seq, bytes);
        });
        break;
    case record_type::dropped:
        if (!r.payload.empty()) {
            (void)sf::decode_sequence_list(
                r.payload.subspan(1),
                [&](std::uint64_t seq, std::uint64_t bytes) { delivery_.settle(seq, bytes); });
        }
        break;
    case record_type::dead_lettered:
        if (r.payload.size() >= 12) {
            delivery_.settle(get64(r.payload.data()), get32(r.payload.data() + 8));
        }
        break;
    case record_type::segment_start:
    case record_type::log_start:
        if (r.payload.size() >= 8) {
            log_.log_start = std::max(log_.log_start, get64(r.payload.data()));
            if (r.type == record_type::log_start) {
                log_.written_log_start = std::max(log_.written_log_start, get64(r.payload.data()));
            }
        }
        break;
    case record_type::gap:
        if (r.payload.size() >= 16) {
            known_.push_back({get64(r.payload.data()), get64(r.payload.data() + 8)});
        }
        break;
    }
}

std::optional<std::pair<std::uint64_t, sf::record_view>>
spool_recovery::resync(buffered_reader& reader, segment& s, std::uint64_t from,
                       std::uint64_t min_seq, bool* flagged, std::uint64_t* last_nonzero) {
    std::optional<std::pair<std::uint64_t, sf::record_view>> first_found;
    const std::byte magic_bytes[4] = {std::byte{'Z'}, std::byte{'K'}, std::byte{'R'},
                                      std::byte{'1'}};
    std::uint64_t pos = from;
    while (pos < s.capacity) {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(read_chunk, s.capacity - pos));
        int e = 0;
        const std::byte* p = reader.fetch(ctx_.fs, s.fd, pos, n, s.capacity, &e);
        if (p == nullptr) {
            break;
        }
        for (std::size_t i = n; i > 0; --i) {
            if (p[i - 1] != std::byte{0}) {
                *last_nonzero = std::max(*last_nonzero, pos + i);
                break;
            }
        }
        std::size_t i = 0;
        while (i + 4 <= n) {
            const void* hit = std::memchr(p + i, 'Z', n - i - 3);
            if (hit == nullptr) {
                break;
            }
            const auto at = static_cast<std::size_t>(static_cast<const std::byte*>(hit) - p);
            i = at + 1;
            if (std::memcmp(p + at, magic_bytes, 4) != 0) {
                continue;
            }
            const std::uint64_t off = pos + at;
            if (off + sf::record_header_size > s.capacity) {
                break;
            }
            buffered_reader probe;
            const std::byte* h =
                probe.fetch(ctx_.fs, s.fd, off, sf::record_header_size, s.capacity, &e);
            if (h == nullptr) {
                continue;
            }
            const std::uint32_t length = get32(h + 16);
            if (length > sf::max_payload || off + sf::record_header_size + length > s.capacity) {
                continue;
            }
            const std::byte* full =
                probe.fetch(ctx_.fs, s.fd, off, sf::record_header_size + length, s.capacity, &e);
            sf::record_view r;
            std::size_t consumed = 0;
            if (full == nullptr ||
                sf::parse_record(full, sf::record_header_size + length, r, &consumed) !=
                    sf::scan_result::ok ||
                r.sequence < min_seq) {
                continue;
            }
            if ((r.flags & sf::flag_commit_start) != 0) {
                *flagged = true;
            }
            if (!first_found) {
                first_found = std::make_pair(off, r);
            }
            if (*flagged) {
                return first_found;
            }
        }
        pos += n > 3 ? n - 3 : n;
        if (n < 4) {
            break;
        }
    }
    return first_found;
}

// The record at offset in s (end: too few bytes left for one). Throws on a read error.
sf::scan_result spool_recovery::read_next(buffered_reader& reader, segment& s, std::uint64_t offset,
                                          sf::record_view& r, std::size_t& consumed) {
    int e = 0;
    const std::uint64_t avail = s.capacity > offset ? s.capacity - offset : 0;
    const std::byte* h =
        avail >= sf::record_header_size
            ? reader.fetch(ctx_.fs, s.fd, offset, sf::record_header_size, s.capacity, &e)
            : nullptr;
    if (e != 0) {
        throw spool_error("cannot read " + (ctx_.dir / s.file).string() + ": " + errno_text(e));
    }
    sf::scan_result res = sf::scan_result::end;
    if (h != nullptr) {
        res = sf::parse_record(h, sf::record_header_size, r, &consumed);
        if (res == sf::scan_result::incomplete) {
            const std::uint32_t length = get32(h + 16);
            const std::byte* full =
                offset + sf::record_header_size + length <= s.capacity
                    ? reader.fetch(ctx_.fs, s.fd, offset, sf::record_header_size + length,
                                   s.capacity, &e)
                    : nullptr;
            res = full == nullptr
                      ? sf::scan_result::incomplete
                      : sf::parse_record(full, sf::record_header_size + length, r, &consumed);
        }
    }
    return res;
}

// The last write before a crash: never synced, so never confirmed. Cut it.
void spool_recovery::cut_torn_tail(segment& s, std::uint64_t offset, std::uint64_t last_nonzero,
                                   std::uint64_t synced_end) {
    recovery_report& rep = report_;
    const std::uint64_t cut = std::max(last_nonzero, offset) - offset;
    rep.truncated_bytes += cut;
    rep.truncated_file = s.file;
    rep.findings.push_back(s.file + ": torn write at offset " + std::to_string(offset) + ": " +
                           std::to_string(cut) + " bytes of an unconfirmed write cut" +
                           (synced_end != 0 ? " (after the last synced record, sequence " +
                                                  std::to_string(synced_end - 1) + ")"
                                            : std::string()));
    if (!ctx_.opt.read_only) {
        if (int te = ctx_.fs.truncate(s.fd, offset); te == 0) {
            te = ctx_.fs.allocate(s.fd, s.capacity);
            if (te != 0) {
                throw spool_error("cannot re-allocate " + (ctx_.dir / s.file).string() + ": " +
                                  errno_text(te));
            }
        } else {
            throw spool_error("cannot truncate " + (ctx_.dir / s.file).string() + ": " +
                              errno_text(te));
        }
    }
}

void spool_recovery::scan_segment(segment& s, bool last, std::uint64_t synced_end,
                                  std::size_t index) {
    buffered_reader reader;
    std::uint64_t offset = 0;
    std::uint64_t expected = s.first;
    bool damaged = false;
    salvage sv{index, {}};
    recovery_report& rep = report_;
    auto finding = [&](const std::string& what) { rep.findings.push_back(s.file + ": " + what); };

    while (true) {
        sf::record_view r;
        std::size_t consumed = 0;
        const sf::scan_result res = read_next(reader, s, offset, r, consumed);
        if (res == sf::scan_result::ok && r.sequence >= expected) {
            if (r.sequence > expected) {
                gaps_.push_back({{expected, r.sequence}, gap_cause_corrupt});
            }
            apply(s, r, offset);
            sv.extents.emplace_back(offset, consumed);
            ++rep.records;
            rep.bytes_scanned += consumed;
            offset += consumed;
            expected = r.sequence + 1;
            continue;
        }
        // Not a valid next record: the end of the data, a torn write, or damage.
        bool flagged = false;
        std::uint64_t last_nonzero = offset;
        const bool garbage = res != sf::scan_result::end;
        auto next =
            resync(reader, s, offset + (garbage ? 1 : 0), expected, &flagged, &last_nonzero);
        if (!garbage && !next && last_nonzero <= offset) {
            break; // clean end (synced records missing after it are counted by find_lost_tail)
        }
        // The record that belongs here had been synced (the marker says so): whatever is wrong
        // with it is damage, never a torn write.
        const bool synced = expected < synced_end;
        const std::string what =
            garbage ? std::string(sf::to_string(res)) : std::string("zeros followed by data");
        if (last && !synced && (!next || !flagged)) {
            cut_torn_tail(s, offset, last_nonzero, synced_end);
            break;
        }
        damaged = true;
        if (!next) {
            finding("damaged from offset " + std::to_string(offset) + " (" + what +
                    ") to the end of its data" + (synced ? ", inside synced data" : "") +
                    "; its records from sequence " + std::to_string(expected) + " on are lost");
            break;
        }
        const std::uint64_t lost = next->second.sequence - expected;
        if (lost == 0) {
            finding("damaged bytes at offsets " + std::to_string(offset) + ".." +
                    std::to_string(next->first) + " (" + what + "); no record lost");
        } else if (synced) {
            finding("sequence numbers " + std::to_string(expected) + ".." +
                    std::to_string(next->second.sequence - 1) + " damaged at offset " +
                    std::to_string(offset) + " (" + what + ") inside synced data: " +
                    std::to_string(lost) + " confirmed record(s) lost; the valid records after " +
                    "them are kept (from sequence " + std::to_string(next->second.sequence) +
                    " at offset " + std::to_string(next->first) + ")");
        } else {
            finding("damaged bytes at offsets " + std::to_string(offset) + ".." +
                    std::to_string(next->first) + " (" + what + "); sequence numbers " +
                    std::to_string(expected) + ".." + std::to_string(next->second.sequence - 1) +
                    " are lost");
        }
        offset = next->first;
    }
    s.used = offset;
    if (damaged) {
        s.used = offset;
        salvages_.push_back(std::move(sv));
    }
}

void spool_recovery::perform_salvage(salvage& sv) {
    segment& s = log_.segments()[sv.segment_index];
    recovery_report& rep = report_;
    const auto original = ctx_.dir / s.file;
    const auto quarantine_dir = ctx_.dir / "quarantine";
    if (const int e = ctx_.fs.create_directory(quarantine_dir); e != 0) {
        throw spool_error("cannot create " + quarantine_dir.string() + ": " + errno_text(e));
    }
    // Copy the valid records into a new file, then swap: the damaged original goes to
    // quarantine as found.
    const auto repaired = ctx_.dir / (s.file + ".repair");
    (void)ctx_.fs.remove(repaired);
    spool_file_system::handle out = -1;
    if (const int e = ctx_.fs.open(repaired, true, true, out); e != 0) {
        throw spool_error("cannot create " + repaired.string() + ": " + errno_text(e));
    }
    auto check = [&](int e, const std::string& what) {
        if (e != 0) {
            ctx_.fs.close(out);
            (void)ctx_.fs.remove(repaired);
            throw spool_error("cannot repair " + original.string() + " (" + what +
                              "): " + errno_text(e));
        }
    };
    check(ctx_.fs.allocate(out, s.capacity), "allocate");
    buffered_reader reader;
    std::uint64_t pos = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> remap; // old offset -> new offset
    for (const auto& [off, size] : sv.extents) {
        int e = 0;
        const std::byte* p = reader.fetch(ctx_.fs, s.fd, off, size, s.capacity, &e);
        check(p == nullptr ? (e != 0 ? e : EIO) : 0, "read");
        check(ctx_.fs.write(out, p, size, pos), "write");
        remap.emplace_back(off, pos);
        pos += size;
    }
    check(ctx_.fs.sync_data(out), "sync");
    const auto quarantined = quarantine_dir / s.file;
    (void)ctx_.fs.remove(quarantined);
    check(ctx_.fs.rename(original, quarantined), "move to quarantine");
    check(ctx_.fs.rename(repaired, original), "rename");
    check(ctx_.fs.sync_directory(quarantine_dir), "sync quarantine directory");
    check(ctx_.fs.sync_directory(ctx_.dir), "sync directory");
    log_.close(s);
    s.fd = out;
    for (auto& o : s.index) {
        const auto it = std::lower_bound(remap.begin(), remap.end(),
                                         std::make_pair(std::uint64_t{o}, std::uint64_t{0}));
        o = static_cast<std::uint32_t>(it == remap.end() ? pos : it->second);
    }
    s.used = pos;
    rep.quarantined_files.push_back(quarantined.string());
}

std::optional<sf::synced_position> spool_recovery::open_marker(std::string& why) {
    const auto path = ctx_.dir / sf::synced_file_name;
    spool_file_system::handle h = -1;
    if (const int e = ctx_.fs.open(path, !ctx_.opt.read_only, false, h); e != 0) {
        why = e == ENOENT ? std::string("missing") : "unreadable (" + errno_text(e) + ")";
        return std::nullopt; // created by finish_recovery()
    }
    std::array<std::byte, sf::synced_size> bytes{};
    std::size_t got = 0;
    sf::synced_position p;
    sf::synced_status st = sf::synced_status::short_file;
    if (const int e = ctx_.fs.read(h, bytes.data(), bytes.size(), 0, got); e != 0) {
        why = "unreadable (" + errno_text(e) + ")";
    } else {
        st = sf::parse_synced(bytes.data(), got, p);
        why = sf::to_string(st);
    }
    if (ctx_.opt.read_only) {
        ctx_.fs.close(h);
    } else {
        log_.marker_fd = h;
    }
    if (st != sf::synced_status::ok) {
        return std::nullopt;
    }
    return p;
}

std::optional<sf::synced_position>
spool_recovery::check_marker(std::optional<sf::synced_position> marker, const std::string& why,
                             const segment_files& files) {
    recovery_report& rep = report_;
    const std::string name = sf::synced_file_name;
    if (!marker) {
        if (!files.empty()) {
            rep.findings.push_back(
                name + ": " + why +
                " (a spool written before the marker, a crash before it reached the disk, or "
                "damage): at the end of the last segment damage cannot be told from a torn "
                "write, and is cut as one");
        }
        return std::nullopt;
    }
    // Every segment created after the marker's one starts at or after the marker's end.
    for (const auto& [first, file] : files) {
        if (first > marker->segment && first < marker->end_sequence) {
            rep.findings.push_back(
                name + " says sequence numbers below " + std::to_string(marker->end_sequence) +
                " were synced in segment " + sf::segment_file_name(marker->segment) + ", but " +
                file + " starts at " + std::to_string(first) +
                ": it does not describe these log_.segments() and is not used (at the end of the "
                "last "
                "segment damage cannot be told from a torn write, and is cut as one)");
            return std::nullopt;
        }
    }
    rep.synced_sequence = marker->end_sequence;
    return marker;
}

void spool_recovery::find_lost_tail(const sf::synced_position& marker) {
    const bool exists = std::any_of(log_.segments().begin(), log_.segments().end(),
                                    [&](const segment& s) { return s.first == marker.segment; });
    const std::uint64_t end = log_.segments().empty() ? marker.segment : log_.segments().back().end;
    if (marker.end_sequence <= end) {
        return;
    }
    if (log_.segments().empty()) {
        // No segment at all: the log started at the marker's segment at the latest.
        log_.log_start = std::max(log_.log_start, marker.segment);
    }
    const std::string range = std::to_string(end) + ".." + std::to_string(marker.end_sequence - 1);
    const std::string count = std::to_string(marker.end_sequence - end);
    const std::string file = sf::segment_file_name(marker.segment);
    if (exists) {
        report_.findings.push_back(
            log_.segments().back().file + ": its records end at sequence " + std::to_string(end) +
            " (offset " + std::to_string(log_.segments().back().used) +
            "), but sequence numbers below " + std::to_string(marker.end_sequence) +
            " had been synced (up to offset " + std::to_string(marker.end_offset) + " of " + file +
            "): sequence numbers " + range + " lost (" + count +
            " confirmed record(s); the file was cut short or its end damaged)");
    } else {
        report_.findings.push_back(file + ", which held synced sequence numbers up to " +
                                   std::to_string(marker.end_sequence - 1) +
                                   ", is missing: sequence numbers " + range + " lost (" + count +
                                   " confirmed record(s))");
    }
    gaps_.push_back({{end, marker.end_sequence}, exists ? gap_cause_corrupt : gap_cause_missing});
}

void spool_recovery::finish(const std::vector<found_gap>& fresh) {
    for (const auto& g : fresh) {
        commit_.gap(g.range, g.cause);
    }
    // A lost tail moved next_seq past the last segment: the next records go to a new segment
    // (the gap between the two is the recorded lost range), not after a jump inside it.
    const bool past_last = !log_.segments().empty() && log_.next_seq > log_.segments().back().end;
    if (log_.segments().empty() || past_last) {
        bool first_record = true;
        if (!log_.rotate(0, first_record)) {
            throw spool_error("cannot create a segment in " + ctx_.dir.string() + ": " +
                              (log_.failed() ? log_.failure() : std::string("disk full")));
        }
    }
    if (!fresh.empty() || past_last) {
        std::uint64_t committed = 0; // nothing but gap records: no ticket
        (void)commit_.commit(&committed);
    }
    if (log_.marker_fd < 0) {
        // A spool from before the marker (or a new one): create it, and its directory entry.
        const auto path = ctx_.dir / sf::synced_file_name;
        (void)ctx_.fs.remove(path); // an unreadable one
        spool_file_system::handle h = -1;
        if (ctx_.fs.open(path, true, true, h) == 0) {
            if (ctx_.fs.allocate(h, sf::synced_size) == 0 &&
                ctx_.fs.sync_directory(ctx_.dir) == 0) {
                log_.marker_fd = h;
            } else {
                ctx_.fs.close(h);
                (void)ctx_.fs.remove(path);
                ctx_.m.write_errors->add();
            }
        }
    }
    // Everything recovery found or wrote counts from now on: on disk, and the marker says so.
    if (!log_.sync_dirty()) {
        return;
    }
    if (!log_.segments().empty() && log_.marker_fd >= 0) {
        log_.write_marker(log_.segments().back());
        if (ctx_.fs.sync_data(log_.marker_fd) != 0) {
            ctx_.m.write_errors->add();
        }
    }
}

} // namespace zmqkit::detail
