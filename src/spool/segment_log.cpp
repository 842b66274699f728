#include "segment_log.hpp"

#include <algorithm>
#include <array>
#include <cerrno>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace zmqkit::detail {

namespace sf = spool_format;
using sf::record_type;

void segment::add(std::uint64_t seq, std::uint64_t offset, bool is_message, bool waits) {
    while (end <= seq) {
        const std::uint64_t i = end - first;
        if (i % 64 == 0) {
            settled.push_back(0);
            message.push_back(0);
        }
        if (i % index_stride == 0) {
            index.push_back(static_cast<std::uint32_t>(offset));
        }
        if (end != seq || !is_message || !waits) {
            settled.back() |= std::uint64_t{1} << (i % 64);
        }
        if (end == seq && is_message) {
            message.back() |= std::uint64_t{1} << (i % 64);
        }
        ++end;
    }
    if (is_message) {
        ++messages;
        if (waits) {
            ++waiting;
        }
    }
}

std::uint64_t segment::messages_between(std::uint64_t from, std::uint64_t to) const noexcept {
    std::uint64_t n = 0;
    std::uint64_t i = from - first;
    const std::uint64_t stop = to - first;
    while (i < stop) {
        if (i % 64 == 0 && i + 64 <= stop) {
            n += static_cast<std::uint64_t>(__builtin_popcountll(message[i / 64]));
            i += 64;
            continue;
        }
        n += (message[i / 64] >> (i % 64)) & 1u;
        ++i;
    }
    return n;
}

segment_log::~segment_log() {
    for (auto& seg : segments_) {
        ctx_.fs.close(seg.fd);
    }
    if (marker_fd >= 0) {
        ctx_.fs.close(marker_fd);
    }
    if (lock_fd_ >= 0) {
        ::close(lock_fd_);
    }
}

// The readers cache by handle, and the next file opened may get the same handle (the lowest
// free descriptor): forget what they hold, or they would serve the closed file's bytes as the
// new file's.
void segment_log::close(segment& s) noexcept {
    ctx_.fs.close(s.fd);
    s.fd = -1;
    cursor_reader.reset();
    random_reader.reset();
}

std::uint64_t segment_log::message_limit(const segment& s) const noexcept {
    return s.capacity - std::min(ctx_.opt.reserve_bytes, s.capacity / 4);
}

std::uint64_t segment_log::disk_bytes() const noexcept {
    std::uint64_t disk = 0;
    for (const auto& s : segments_) {
        disk += s.capacity;
    }
    return disk;
}

bool segment_log::dirty() const noexcept {
    return std::any_of(segments_.begin(), segments_.end(),
                       [](const segment& s) { return s.dirty; });
}

void segment_log::fail(std::string why) {
    if (!failed_) {
        failed_ = true;
        failure_ = std::move(why);
        ctx_.m.read_only->set(1);
    }
}

void segment_log::write_error(int e, const std::string& what) {
    ctx_.m.write_errors->add();
    if (e == ENOSPC || e == EDQUOT) {
        if (!disk_full_) {
            disk_full_ = true;
            ctx_.m.disk_full->set(1);
        }
        ++enospc_errors_;
        disk_full_retry_ns_ = ctx_.now_ns() + 100'000'000; // 100 ms, on the injectable clock
        return;
    }
    fail("spool " + ctx_.dir.string() + ": " + what + " failed: " + errno_text(e) +
         "; the spool is read-only and confirms have stopped (nothing confirmed is lost). "
         "Check the disk (dmesg), then restart: recovery keeps every confirmed message");
}

void segment_log::clear_disk_full() {
    if (disk_full_) {
        disk_full_ = false;
        ctx_.m.disk_full->set(0);
    }
}

bool segment_log::rotate(std::uint64_t need, bool& first_record) {
    if (disk_full_ && ctx_.now_ns() < disk_full_retry_ns_) {
        return false;
    }
    if (segment* old = active(); old != nullptr && old->dirty) {
        if (!sync(*old)) {
            return false;
        }
    }
    spool_file_system& fs = ctx_.fs;
    const std::uint64_t capacity = std::max<std::uint64_t>(
        ctx_.opt.segment_bytes, need + 2 * sf::record_header_size + 64 + ctx_.opt.reserve_bytes);
    segment s;
    s.first = next_seq;
    s.end = next_seq;
    s.capacity = capacity;
    s.file = sf::segment_file_name(next_seq);
    const auto path = ctx_.dir / s.file;
    if (const int e = fs.open(path, true, true, s.fd); e != 0) {
        write_error(e, "creating " + path.string());
        return false;
    }
    if (const int e = fs.allocate(s.fd, capacity); e != 0) {
        fs.close(s.fd);
        (void)fs.remove(path);
        write_error(e, "allocating " + std::to_string(capacity) + " bytes for " + path.string());
        return false;
    }
    std::vector<std::byte> rec(sf::record_header_size);
    put64(rec, log_start);
    put64(rec, static_cast<std::uint64_t>(ctx_.now_ns()));
    sf::seal_record(rec.data(), record_type::segment_start, sf::flag_commit_start, next_seq, 16);
    if (const int e = fs.write(s.fd, rec.data(), rec.size(), 0); e != 0) {
        fs.close(s.fd);
        (void)fs.remove(path);
        write_error(e, "writing " + path.string());
        return false;
    }
    if (const int e = fs.sync_directory(ctx_.dir); e != 0) {
        fs.close(s.fd);
        write_error(e == ENOSPC ? EIO : e, "syncing directory " + ctx_.dir.string());
        return false;
    }
    s.add(next_seq++, 0, false);
    s.used = rec.size();
    s.dirty = true;
    segments_.push_back(std::move(s));
    clear_disk_full();
    first_record = false;
    ctx_.m.segments->set(static_cast<std::int64_t>(segments_.size()));
    return true;
}

bool segment_log::write(segment& s, const std::byte* data, std::size_t n) {
    if (const int e = ctx_.fs.write(s.fd, data, n, s.used); e != 0) {
        write_error(e, "writing " + s.file);
        return false;
    }
    return true;
}

bool segment_log::sync(segment& s) {
    const auto t0 = std::chrono::steady_clock::now();
    const int e = ctx_.fs.sync_data(s.fd);
    const auto ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count());
    spool_stats& counts = ctx_.counts;
    ctx_.m.syncs->add();
    ctx_.m.sync_ns->add(ns);
    ctx_.m.sync_latency->observe(std::chrono::nanoseconds(ns));
    ++counts.syncs;
    counts.sync_ns_total += ns;
    if (ns > counts.sync_ns_max) {
        counts.sync_ns_max = ns;
        ctx_.m.sync_ns_max->set(static_cast<std::int64_t>(ns));
    }
    if (e != 0) {
        // Never retry a failed fsync: the kernel may have dropped the dirty pages already.
        ctx_.m.write_errors->add();
        fail("spool " + ctx_.dir.string() + ": fdatasync of " + s.file +
             " failed: " + errno_text(e) +
             "; the spool is read-only and confirms have stopped. Check the disk (dmesg), "
             "then restart: recovery keeps every confirmed message");
        return false;
    }
    s.dirty = false;
    write_marker(s);
    return true;
}

bool segment_log::sync_dirty() {
    for (auto& s : segments_) {
        if (s.dirty && !sync(s)) {
            return false;
        }
    }
    return true;
}

// Only ever called after a successful fdatasync of s (earlier segments were synced before s was
// created), and the marker itself is not synced: on disk it can lag the truth, never lead it.
// One small pwrite per sync; a failed one leaves the marker behind (or failing its checksum),
// which recovery handles, so it only counts as a write error.
void segment_log::write_marker(const segment& s) {
    if (marker_fd < 0) {
        return;
    }
    std::array<std::byte, sf::synced_size> bytes{};
    sf::encode_synced({s.first, s.end, s.used}, bytes.data());
    if (ctx_.fs.write(marker_fd, bytes.data(), bytes.size(), 0) != 0) {
        ctx_.m.write_errors->add();
    }
}

std::optional<std::uint64_t> segment_log::reclaim(bool log_start_queued,
                                                  const reclaim_policy& policy) {
    const auto removable = [&] {
        return segments_.size() > 1 && segments_.front().end <= written_log_start &&
               policy.can_go(segments_.front());
    };
    if (removable()) {
        // The log_start record that lets the head go must be on disk before the head goes
        // (sync modes none and interval may not have synced it yet).
        if (!sync_dirty()) {
            return std::nullopt;
        }
        std::size_t k = 0;
        while (k + 1 < segments_.size() && segments_[k].end <= written_log_start &&
               policy.can_go(segments_[k])) {
            ++k;
        }
        if (!policy.before_remove(segments_[k].first)) {
            return std::nullopt;
        }
    }
    bool removed = false;
    while (removable()) {
        segment& s = segments_.front();
        total_waiting -= std::min(total_waiting, s.waiting);
        total_waiting_bytes -= std::min(total_waiting_bytes, s.waiting_bytes);
        close(s);
        if (const int e = ctx_.fs.remove(ctx_.dir / s.file); e != 0) {
            write_error(e, "removing " + s.file);
            break;
        }
        segments_.pop_front();
        removed = true;
    }
    if (removed) {
        if (const int e = ctx_.fs.sync_directory(ctx_.dir); e != 0) {
            write_error(e == ENOSPC ? EIO : e, "syncing directory " + ctx_.dir.string());
        }
        log_start = segments_.front().first;
    }
    std::size_t k = 0;
    while (k + 1 < segments_.size() && policy.can_go(segments_[k])) {
        ++k;
    }
    if (k > 0 && segments_[k].first > written_log_start && !log_start_queued) {
        return segments_[k].first;
    }
    return std::nullopt;
}

std::optional<sf::record_view> segment_log::read_record(buffered_reader& reader, const segment& s,
                                                        std::uint64_t offset,
                                                        std::size_t* consumed) {
    int e = 0;
    const std::byte* h = reader.fetch(ctx_.fs, s.fd, offset, sf::record_header_size, s.used, &e);
    if (h == nullptr) {
        return std::nullopt;
    }
    const std::uint32_t length = get32(h + 16);
    const std::byte* p =
        reader.fetch(ctx_.fs, s.fd, offset, sf::record_header_size + length, s.used, &e);
    if (p == nullptr) {
        return std::nullopt;
    }
    sf::record_view r;
    if (sf::parse_record(p, sf::record_header_size + length, r, consumed) != sf::scan_result::ok) {
        return std::nullopt;
    }
    return r;
}

std::optional<stored_message> segment_log::read_message(std::uint64_t seq) {
    segment* s = find(seq);
    if (s == nullptr) {
        return std::nullopt;
    }
    std::uint64_t offset = s->index[(seq - s->first) / index_stride];
    while (offset < s->used) {
        std::size_t consumed = 0;
        auto r = read_record(random_reader, *s, offset, &consumed);
        if (!r || r->sequence > seq) {
            return std::nullopt;
        }
        if (r->sequence == seq) {
            stored_message out;
            out.sequence = seq;
            if (r->type != record_type::message ||
                !parse_message_payload(r->payload, out.payload)) {
                return std::nullopt;
            }
            return out;
        }
        offset += consumed;
    }
    return std::nullopt;
}

void segment_log::lock_directory() {
    if (&ctx_.fs != &posix_file_system() || ctx_.opt.read_only) {
        return;
    }
    const auto path = ctx_.dir / "lock";
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lock_fd_ < 0) {
        throw spool_error("cannot open " + path.string() + ": " + errno_text(errno));
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        ::close(lock_fd_);
        lock_fd_ = -1;
        throw spool_error("spool " + ctx_.dir.string() + " is in use by another process (" +
                          path.string() + " is locked: " + errno_text(e) +
                          "); stop it or choose another --spool directory");
    }
}

} // namespace zmqkit::detail
