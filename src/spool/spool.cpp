// The spool: segments, group commit, delivery state, recovery, limits, reclaim.
// Format and guarantees: docs/spool-format.md.
#include <zmqkit/codec.hpp>
#include <zmqkit/header.hpp>
#include <zmqkit/message_id_window.hpp>
#include <zmqkit/spool.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace zmqkit {

namespace sf = spool_format;
using sf::record_type;

// ---- policies ---------------------------------------------------------------------------------

sync_policy sync_policy::parse(std::string_view text) {
    sync_policy p;
    if (text == "always") {
        return p;
    }
    if (text == "none") {
        p.how = mode::none;
        return p;
    }
    if (text.starts_with("interval:")) {
        const std::string_view number = text.substr(9);
        long long ms = 0;
        const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), ms);
        if (ec == std::errc{} && end == number.data() + number.size() && ms > 0 &&
            ms <= 3'600'000) {
            p.how = mode::interval;
            p.interval = std::chrono::milliseconds(ms);
            return p;
        }
    }
    throw config_error("sync mode '" + std::string(text) +
                       "' is not valid (valid: always, none, interval:<ms> with 1..3600000 ms)");
}

std::string sync_policy::to_string() const {
    switch (how) {
    case mode::always:
        return "always";
    case mode::none:
        return "none";
    case mode::interval:
        return "interval:" + std::to_string(interval.count());
    }
    return "always";
}

full_policy parse_full_policy(std::string_view text) {
    if (text == "block") {
        return full_policy::block;
    }
    if (text == "reject") {
        return full_policy::reject;
    }
    if (text == "drop_oldest" || text == "drop-oldest") {
        return full_policy::drop_oldest;
    }
    throw config_error("full policy '" + std::string(text) +
                       "' is not valid (valid: block, reject, drop_oldest)");
}

std::string_view to_string(full_policy p) noexcept {
    switch (p) {
    case full_policy::block:
        return "block";
    case full_policy::reject:
        return "reject";
    case full_policy::drop_oldest:
        return "drop_oldest";
    }
    return "block";
}

// ---- implementation ---------------------------------------------------------------------------

namespace {

constexpr std::size_t read_chunk = 1u << 20;
constexpr std::uint64_t index_stride = 16;
constexpr std::size_t message_fixed = 8 + 16 + 4; // appended_ns, id, header length
constexpr std::uint8_t drop_reason_full = 1;
constexpr std::uint8_t drop_reason_purged = 2;
constexpr std::uint8_t gap_cause_corrupt = 1;
constexpr std::uint8_t gap_cause_missing = 2;

std::string errno_text(int e) {
    return std::strerror(e);
}

void put64(std::vector<std::byte>& out, std::uint64_t v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + 8);
}
void put32(std::vector<std::byte>& out, std::uint32_t v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + 4);
}
std::uint64_t get64(const std::byte* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
std::uint32_t get32(const std::byte* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

struct message_payload {
    std::int64_t appended_ns = 0;
    message_id id;
    std::string_view header;
    std::string_view body;
};

bool parse_message_payload(std::span<const std::byte> p, message_payload& out) noexcept {
    if (p.size() < message_fixed) {
        return false;
    }
    out.appended_ns = static_cast<std::int64_t>(get64(p.data()));
    std::array<std::uint8_t, message_id::size> id{};
    std::memcpy(id.data(), p.data() + 8, id.size());
    out.id = message_id(id);
    const std::uint32_t header_size = get32(p.data() + 24);
    if (header_size > p.size() - message_fixed) {
        return false;
    }
    const auto* base = reinterpret_cast<const char*>(p.data());
    out.header = std::string_view(base + message_fixed, header_size);
    out.body = std::string_view(base + message_fixed + header_size,
                                p.size() - message_fixed - header_size);
    return true;
}

// Reads a file through a buffer: fetch(offset, n) makes [offset, offset+n) addressable.
class buffered_reader {
public:
    void reset() noexcept {
        file_ = -1;
        length_ = 0;
    }

    // nullptr: fewer than n bytes before `limit` (or an error, in *error).
    const std::byte* fetch(spool_file_system& fs, spool_file_system::handle file,
                           std::uint64_t offset, std::size_t n, std::uint64_t limit, int* error) {
        if (file == file_ && offset >= offset_ && offset + n <= offset_ + length_) {
            return buffer_.data() + (offset - offset_);
        }
        if (offset + n > limit) {
            return nullptr;
        }
        const std::size_t want = static_cast<std::size_t>(
            std::min<std::uint64_t>(std::max(n, read_chunk), limit - offset));
        if (buffer_.size() < want) {
            buffer_.resize(want);
        }
        std::size_t got = 0;
        const int e = fs.read(file, buffer_.data(), want, offset, got);
        file_ = file;
        offset_ = offset;
        length_ = e == 0 ? got : 0;
        if (e != 0) {
            if (error != nullptr) {
                *error = e;
            }
            return nullptr;
        }
        return got >= n ? buffer_.data() : nullptr;
    }

private:
    std::vector<std::byte> buffer_;
    spool_file_system::handle file_ = -1;
    std::uint64_t offset_ = 0;
    std::size_t length_ = 0;
};

} // namespace

struct spool::impl {
    struct segment {
        std::uint64_t first = 0;
        std::uint64_t end = 0;      // sequence after the last record written
        std::uint64_t used = 0;     // bytes of records
        std::uint64_t capacity = 0; // file size
        std::string file;
        spool_file_system::handle fd = -1;
        std::vector<std::uint64_t> settled; // bit per sequence: 1 = settled, or not a message
        std::vector<std::uint32_t> index;   // offset of the record at first + k * index_stride
        std::uint64_t messages = 0;         // message records
        std::uint64_t waiting = 0;          // message records not settled
        bool dirty = false;                 // written, not yet synced

        [[nodiscard]] bool is_settled(std::uint64_t seq) const noexcept {
            const std::uint64_t i = seq - first;
            return ((settled[i / 64] >> (i % 64)) & 1u) != 0;
        }
        void set_settled(std::uint64_t seq) noexcept {
            const std::uint64_t i = seq - first;
            settled[i / 64] |= std::uint64_t{1} << (i % 64);
        }
        // Registers the record `seq` at `offset` (records arrive in sequence order; sequence
        // numbers skipped inside a segment — a known gap — count as settled).
        void add(std::uint64_t seq, std::uint64_t offset, bool is_message) {
            while (end <= seq) {
                const std::uint64_t i = end - first;
                if (i % 64 == 0) {
                    settled.push_back(0);
                }
                if (i % index_stride == 0) {
                    index.push_back(static_cast<std::uint32_t>(offset));
                }
                if (end != seq || !is_message) {
                    settled.back() |= std::uint64_t{1} << (i % 64);
                }
                ++end;
            }
            if (is_message) {
                ++messages;
                ++waiting;
            }
        }
    };

    struct queued_message {
        std::uint64_t ticket;
        std::uint32_t size;  // record size (header + payload)
        std::uint32_t bytes; // message bytes (envelope header + body)
    };
    struct queued_dead {
        std::uint64_t sequence;
        std::uint32_t bytes;
        std::string reason;
        std::uint64_t dead_letter_ticket;
        // The copy for the dead-letter spool while it could not take it (disk full): retried
        // at every commit; the dead_lettered record waits for it.
        std::optional<std::pair<std::string, std::string>> pending_copy; // header, body
    };
    struct in_flight_entry {
        std::uint32_t bytes;
    };

    struct metrics {
        counter* appended;
        counter* duplicates;
        counter* acked;
        counter* redelivered;
        counter* dead_lettered;
        counter* dropped_full;
        counter* dropped_purged;
        counter* rejected_full;
        counter* commits;
        counter* syncs;
        counter* sync_ns;
        counter* committed_records;
        counter* write_errors;
        gauge* messages;
        gauge* message_bytes;
        gauge* in_flight;
        gauge* undelivered;
        gauge* segments;
        gauge* disk_bytes;
        gauge* oldest_age_ms;
        gauge* sync_ns_max;
        gauge* last_batch;
        gauge* read_only;
        gauge* disk_full;
        gauge* recovery_ms;
        gauge* recovery_truncated_bytes;
        gauge* recovery_lost;
        gauge* quarantined;
    };

    spool& owner;
    spool_options& opt;
    spool_file_system& fs;
    std::filesystem::path dir;
    int lock_fd = -1;
    spool_file_system::handle marker_fd = -1; // the synced-position marker (-1: none)

    std::deque<segment> segments;
    std::uint64_t next_seq = 0;
    std::uint64_t log_start = 0;         // first sequence the log holds (durable value)
    std::uint64_t written_log_start = 0; // log_start record value written
    std::uint64_t total_waiting = 0;
    std::uint64_t total_waiting_bytes = 0;

    // append queue (records encoded in place; header sealed at commit)
    std::vector<std::byte> message_records;
    std::vector<queued_message> queued;
    std::uint64_t queued_bytes = 0;
    std::uint64_t next_ticket = 0;
    std::uint64_t written_ticket = 0;

    // control queue
    std::vector<std::pair<std::uint64_t, std::uint64_t>> q_delivered; // sequence, attempt
    std::vector<std::pair<std::uint64_t, std::uint64_t>> q_acked;     // sequence, bytes
    std::vector<std::pair<std::uint64_t, std::uint64_t>> q_dropped_full;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> q_dropped_purged;
    std::vector<queued_dead> q_dead;
    std::vector<std::pair<sequence_range, std::uint8_t>> q_gaps;
    std::uint64_t q_log_start = 0; // 0: none queued

    // delivery state
    std::uint64_t cursor_seq = 0;
    std::uint64_t cursor_first = 0; // segment the cursor is in
    std::uint64_t cursor_offset = 0;
    std::unordered_map<std::uint64_t, std::uint32_t> attempts; // unsettled messages
    std::unordered_map<std::uint64_t, in_flight_entry> in_flight;
    std::set<std::uint64_t> ready_again;
    std::multimap<std::chrono::steady_clock::time_point, std::uint64_t> delayed;
    buffered_reader cursor_reader;
    buffered_reader random_reader;

    // dedup
    message_id_window dedup{opt.dedup_window}; // id -> ticket of the last dedup_window appends
    header scratch;

    // state
    bool failed = false;
    bool disk_full = false;
    std::int64_t disk_full_retry_ns = 0; // now_ns() before which a full disk is not retried
    std::uint64_t enospc_errors = 0;
    std::string failure;
    std::chrono::steady_clock::time_point last_sync = std::chrono::steady_clock::now();
    std::int64_t newest_ns = 0;
    spool_stats counts; // the cumulative counters part

    metrics m{};

    impl(spool& s, spool_options& o)
        : owner(s), opt(o), fs(o.fs != nullptr ? *o.fs : posix_file_system()), dir(o.directory) {
        register_metrics();
    }

    ~impl() {
        for (auto& seg : segments) {
            fs.close(seg.fd);
        }
        if (marker_fd >= 0) {
            fs.close(marker_fd);
        }
        if (lock_fd >= 0) {
            ::close(lock_fd);
        }
    }

    [[nodiscard]] std::int64_t now_ns() const {
        if (opt.now_ns) {
            return opt.now_ns();
        }
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }

    void register_metrics() {
        metrics_registry& r = opt.registry != nullptr ? *opt.registry : metrics_registry::global();
        const metric_labels l{{"spool", opt.name}};
        auto c = [&](const char* name, const char* help, metric_labels labels = {}) {
            labels.insert(l.begin(), l.end());
            return &r.get_counter(name, help, labels);
        };
        auto g = [&](const char* name, const char* help) { return &r.get_gauge(name, help, l); };
        m.appended = c("zmqkit_spool_appended_total", "Messages appended to the spool");
        m.duplicates = c("zmqkit_spool_duplicates_total",
                         "Appends of a message id already spooled (confirmed, not stored)");
        m.acked = c("zmqkit_spool_acked_total", "Messages acknowledged by consumers");
        m.redelivered = c("zmqkit_spool_redelivered_total", "Deliveries with attempt > 1");
        m.dead_lettered =
            c("zmqkit_spool_dead_lettered_total", "Messages moved to the dead-letter spool");
        m.dropped_full = c("zmqkit_spool_dropped_total", "Messages dropped", {{"reason", "full"}});
        m.dropped_purged =
            c("zmqkit_spool_dropped_total", "Messages dropped", {{"reason", "purged"}});
        m.rejected_full = c("zmqkit_spool_rejected_total", "Appends refused", {{"reason", "full"}});
        m.commits = c("zmqkit_spool_commits_total", "Group commits (one write each)");
        m.syncs = c("zmqkit_spool_syncs_total", "fdatasync calls");
        m.sync_ns = c("zmqkit_spool_sync_nanoseconds_total", "Time spent in fdatasync");
        m.committed_records = c("zmqkit_spool_committed_records_total", "Records written");
        m.write_errors =
            c("zmqkit_spool_write_errors_total", "Failed writes and syncs (ENOSPC, EIO)");
        m.messages = g("zmqkit_spool_messages", "Messages waiting (not acked or dead-lettered)");
        m.message_bytes = g("zmqkit_spool_message_bytes", "Bytes of the waiting messages");
        m.in_flight = g("zmqkit_spool_in_flight", "Messages delivered and not yet acked");
        m.undelivered = g("zmqkit_spool_undelivered", "Messages never delivered (consumer lag)");
        m.segments = g("zmqkit_spool_segments", "Segment files");
        m.disk_bytes = g("zmqkit_spool_disk_bytes", "Bytes of segment files");
        m.oldest_age_ms = g("zmqkit_spool_oldest_age_milliseconds",
                            "Age of the oldest waiting message (at the last statistics)");
        m.sync_ns_max = g("zmqkit_spool_sync_nanoseconds_max", "Longest fdatasync");
        m.last_batch = g("zmqkit_spool_last_commit_records", "Records in the last group commit");
        m.read_only = g("zmqkit_spool_read_only", "1 when an I/O error stopped all writing");
        m.disk_full = g("zmqkit_spool_disk_full", "1 while appends wait for disk space");
        m.recovery_ms = g("zmqkit_spool_recovery_milliseconds", "Time the last recovery took");
        m.recovery_truncated_bytes =
            g("zmqkit_spool_recovery_truncated_bytes", "Torn-tail bytes cut by the last recovery");
        m.recovery_lost = g("zmqkit_spool_recovery_lost_records",
                            "Records lost to corruption or missing segments (last recovery)");
        m.quarantined = g("zmqkit_spool_quarantined_segments",
                          "Segments moved to quarantine by the last recovery");
    }

    // ---- small helpers ----

    segment* find(std::uint64_t seq) noexcept {
        auto it = std::upper_bound(segments.begin(), segments.end(), seq,
                                   [](std::uint64_t s, const segment& g) { return s < g.first; });
        if (it == segments.begin()) {
            return nullptr;
        }
        --it;
        return seq < it->end ? &*it : nullptr;
    }

    segment* active() noexcept { return segments.empty() ? nullptr : &segments.back(); }

    // Closes a segment's file. The readers cache by handle, and the next file opened may get
    // the same handle (the lowest free descriptor): forget what they hold, or they would serve
    // the closed file's bytes as the new file's.
    void close_segment(segment& s) noexcept {
        fs.close(s.fd);
        s.fd = -1;
        cursor_reader.reset();
        random_reader.reset();
    }

    [[nodiscard]] std::uint64_t message_limit(const segment& s) const noexcept {
        return s.capacity - std::min(opt.reserve_bytes, s.capacity / 4);
    }

    void fail(std::string why) {
        if (!failed) {
            failed = true;
            failure = std::move(why);
            m.read_only->set(1);
        }
    }

    void write_error(int e, const std::string& what) {
        m.write_errors->add();
        if (e == ENOSPC || e == EDQUOT) {
            if (!disk_full) {
                disk_full = true;
                m.disk_full->set(1);
            }
            ++enospc_errors;
            disk_full_retry_ns = now_ns() + 100'000'000; // 100 ms, on the injectable clock
            return;
        }
        fail("spool " + dir.string() + ": " + what + " failed: " + errno_text(e) +
             "; the spool is read-only and confirms have stopped (nothing confirmed is lost). "
             "Check the disk (dmesg), then restart: recovery keeps every confirmed message");
    }

    void settle(std::uint64_t seq, std::uint64_t bytes) {
        segment* s = find(seq);
        if (s == nullptr || s->is_settled(seq)) {
            return;
        }
        s->set_settled(seq);
        --s->waiting;
        --total_waiting;
        total_waiting_bytes -= std::min(total_waiting_bytes, bytes);
        attempts.erase(seq);
    }

    // ---- reading records ----

    // Reads the record at (segment, offset) through `reader`. nullopt on a read error or a bad
    // record (which recovery has already dealt with: then the spool is damaged underneath us).
    std::optional<sf::record_view> read_record(buffered_reader& reader, const segment& s,
                                               std::uint64_t offset, std::size_t* consumed) {
        int e = 0;
        const std::byte* h = reader.fetch(fs, s.fd, offset, sf::record_header_size, s.used, &e);
        if (h == nullptr) {
            return std::nullopt;
        }
        const std::uint32_t length = get32(h + 16);
        const std::byte* p =
            reader.fetch(fs, s.fd, offset, sf::record_header_size + length, s.used, &e);
        if (p == nullptr) {
            return std::nullopt;
        }
        sf::record_view r;
        if (sf::parse_record(p, sf::record_header_size + length, r, consumed) !=
            sf::scan_result::ok) {
            return std::nullopt;
        }
        return r;
    }

    std::optional<spooled_message> read_message(std::uint64_t seq) {
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
                message_payload mp;
                if (r->type != record_type::message || !parse_message_payload(r->payload, mp)) {
                    return std::nullopt;
                }
                spooled_message out;
                out.sequence = seq;
                const auto a = attempts.find(seq);
                out.attempt = a == attempts.end() ? 0 : a->second;
                out.appended_ns = mp.appended_ns;
                out.header = mp.header;
                out.body = mp.body;
                return out;
            }
            offset += consumed;
        }
        return std::nullopt;
    }

    // ---- append ----

    append_result append(std::string_view header_bytes, std::string_view body,
                         const message_id* known_id) {
        append_result result;
        if (failed || opt.read_only) {
            result.outcome = append_result::status::rejected;
            result.reason = failed ? failure : "the spool is open read-only";
            return result;
        }
        if (known_id != nullptr) {
            scratch.id = *known_id; // the caller decoded and checked the header
        } else if (const decode_status st =
                       decode_header(header_bytes.data(), header_bytes.size(), scratch);
                   !st) {
            result.outcome = append_result::status::rejected;
            result.reason = "not a zmqkit envelope: " + st.message();
            return result;
        }
        if (scratch.id.is_nil()) {
            result.outcome = append_result::status::rejected;
            result.reason = "the header has no message id";
            return result;
        }
        const std::size_t message_bytes = header_bytes.size() + body.size();
        if (message_bytes + message_fixed > sf::max_payload) {
            result.outcome = append_result::status::rejected;
            result.reason = "message of " + std::to_string(message_bytes) +
                            " bytes is larger than the spool's limit of " +
                            std::to_string(sf::max_payload - message_fixed) + " bytes";
            return result;
        }
        if (const auto* ticket = dedup.find(scratch.id); ticket != nullptr) {
            m.duplicates->add();
            ++counts.duplicates;
            result.outcome = append_result::status::duplicate;
            result.ticket = *ticket;
            return result;
        }
        if (disk_full) {
            result.outcome = append_result::status::full;
            result.reason = "disk full";
            return result;
        }
        if (!make_room(message_bytes, result)) {
            return result;
        }

        const std::size_t at = message_records.size();
        const std::size_t payload = message_fixed + message_bytes;
        message_records.resize(at + sf::record_header_size + payload);
        std::byte* p = message_records.data() + at + sf::record_header_size;
        const std::int64_t t = now_ns();
        std::memcpy(p, &t, 8);
        std::memcpy(p + 8, scratch.id.data(), message_id::size);
        const auto hs = static_cast<std::uint32_t>(header_bytes.size());
        std::memcpy(p + 24, &hs, 4);
        std::memcpy(p + message_fixed, header_bytes.data(), header_bytes.size());
        if (!body.empty()) {
            std::memcpy(p + message_fixed + header_bytes.size(), body.data(), body.size());
        }
        queued.push_back({++next_ticket,
                          static_cast<std::uint32_t>(sf::record_header_size + payload),
                          static_cast<std::uint32_t>(message_bytes)});
        queued_bytes += message_bytes;
        newest_ns = t;
        remember(scratch.id, next_ticket);
        m.appended->add();
        ++counts.appended;
        result.ticket = next_ticket;
        return result;
    }

    void remember(const message_id& id, std::uint64_t ticket) { (void)dedup.insert(id, ticket); }

    bool over_limit(std::size_t extra_bytes) const noexcept {
        const std::uint64_t n = total_waiting + queued.size();
        const std::uint64_t b = total_waiting_bytes + queued_bytes;
        return (opt.max_messages != 0 && n + 1 > opt.max_messages) ||
               (opt.max_bytes != 0 && b + extra_bytes > opt.max_bytes);
    }

    bool make_room(std::size_t bytes, append_result& result) {
        if (!over_limit(bytes)) {
            return true;
        }
        if (opt.when_full == full_policy::drop_oldest) {
            while (over_limit(bytes) && drop_oldest_one()) {
            }
            if (!over_limit(bytes)) {
                return true;
            }
        }
        const std::string why = "spool full (" + std::to_string(total_waiting + queued.size()) +
                                " messages, " + std::to_string(total_waiting_bytes + queued_bytes) +
                                " bytes; limits: max_messages " + std::to_string(opt.max_messages) +
                                ", max_bytes " + std::to_string(opt.max_bytes) + ")";
        if (opt.when_full == full_policy::reject) {
            m.rejected_full->add();
            ++counts.rejected_full;
            result.outcome = append_result::status::rejected;
        } else {
            result.outcome = append_result::status::full;
        }
        result.reason = why;
        return false;
    }

    // Drops the oldest waiting message that is not in flight. False if there is none.
    bool drop_oldest_one() {
        for (auto& s : segments) {
            if (s.waiting == 0) {
                continue;
            }
            for (std::uint64_t seq = s.first; seq < s.end; ++seq) {
                if (s.is_settled(seq) || in_flight.contains(seq)) {
                    continue;
                }
                const auto msg = read_message(seq);
                const std::uint64_t bytes = msg ? msg->header.size() + msg->body.size() : 0;
                ready_again.erase(seq);
                std::erase_if(delayed, [seq](const auto& d) { return d.second == seq; });
                settle(seq, bytes);
                q_dropped_full.emplace_back(seq, bytes);
                m.dropped_full->add();
                ++counts.dropped_full;
                return true;
            }
        }
        return false;
    }

    // ---- commit ----

    bool commit_pending() const noexcept {
        return !queued.empty() || !q_delivered.empty() || !q_acked.empty() ||
               !q_dropped_full.empty() || !q_dropped_purged.empty() || !q_dead.empty() ||
               !q_gaps.empty() || q_log_start != 0 ||
               std::any_of(segments.begin(), segments.end(),
                           [](const segment& s) { return s.dirty; });
    }

    // Creates the next segment (its first record is segment_start). False on failure (disk full
    // or an I/O error, recorded).
    bool rotate(std::uint64_t need, bool& first_record) {
        if (disk_full && now_ns() < disk_full_retry_ns) {
            return false;
        }
        if (segment* old = active(); old != nullptr && old->dirty) {
            if (!sync_segment(*old)) {
                return false;
            }
        }
        const std::uint64_t capacity = std::max<std::uint64_t>(
            opt.segment_bytes, need + 2 * sf::record_header_size + 64 + opt.reserve_bytes);
        segment s;
        s.first = next_seq;
        s.end = next_seq;
        s.capacity = capacity;
        s.file = sf::segment_file_name(next_seq);
        const auto path = dir / s.file;
        if (const int e = fs.open(path, true, true, s.fd); e != 0) {
            write_error(e, "creating " + path.string());
            return false;
        }
        if (const int e = fs.allocate(s.fd, capacity); e != 0) {
            fs.close(s.fd);
            (void)fs.remove(path);
            write_error(e,
                        "allocating " + std::to_string(capacity) + " bytes for " + path.string());
            return false;
        }
        std::vector<std::byte> rec(sf::record_header_size);
        put64(rec, log_start);
        put64(rec, static_cast<std::uint64_t>(now_ns()));
        sf::seal_record(rec.data(), record_type::segment_start, sf::flag_commit_start, next_seq,
                        16);
        if (const int e = fs.write(s.fd, rec.data(), rec.size(), 0); e != 0) {
            fs.close(s.fd);
            (void)fs.remove(path);
            write_error(e, "writing " + path.string());
            return false;
        }
        if (const int e = fs.sync_directory(dir); e != 0) {
            fs.close(s.fd);
            write_error(e == ENOSPC ? EIO : e, "syncing directory " + dir.string());
            return false;
        }
        s.add(next_seq++, 0, false);
        s.used = rec.size();
        s.dirty = true;
        segments.push_back(std::move(s));
        if (disk_full) {
            disk_full = false;
            m.disk_full->set(0);
        }
        first_record = false;
        m.segments->set(static_cast<std::int64_t>(segments.size()));
        return true;
    }

    bool sync_segment(segment& s) {
        const auto t0 = std::chrono::steady_clock::now();
        const int e = fs.sync_data(s.fd);
        const auto ns =
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::steady_clock::now() - t0)
                                           .count());
        m.syncs->add();
        m.sync_ns->add(ns);
        ++counts.syncs;
        counts.sync_ns_total += ns;
        if (ns > counts.sync_ns_max) {
            counts.sync_ns_max = ns;
            m.sync_ns_max->set(static_cast<std::int64_t>(ns));
        }
        if (e != 0) {
            // Never retry a failed fsync: the kernel may have dropped the dirty pages already.
            m.write_errors->add();
            fail("spool " + dir.string() + ": fdatasync of " + s.file +
                 " failed: " + errno_text(e) +
                 "; the spool is read-only and confirms have stopped. Check the disk (dmesg), "
                 "then restart: recovery keeps every confirmed message");
            return false;
        }
        s.dirty = false;
        write_marker(s);
        return true;
    }

    // Records that everything up to the end of `s` is on disk (docs/spool-format.md §8). Only
    // ever called after a successful fdatasync of s (earlier segments were synced before s was
    // created), and the marker itself is not synced: on disk it can lag the truth, never lead
    // it. One small pwrite per sync; a failed one leaves the marker behind (or failing its
    // checksum), which recovery handles, so it only counts as a write error.
    void write_marker(const segment& s) {
        if (marker_fd < 0) {
            return;
        }
        std::array<std::byte, sf::synced_size> bytes{};
        sf::encode_synced({s.first, s.end, s.used}, bytes.data());
        if (fs.write(marker_fd, bytes.data(), bytes.size(), 0) != 0) {
            m.write_errors->add();
        }
    }

    // Encodes the queued control records into `out` (headers unsealed), noting their extents.
    struct control_record {
        record_type type;
        std::size_t offset;
        std::size_t size;
    };
    void encode_list(std::vector<std::byte>& out, std::vector<control_record>& recs, record_type t,
                     std::vector<std::pair<std::uint64_t, std::uint64_t>>& list,
                     std::optional<std::uint8_t> reason) {
        if (list.empty()) {
            return;
        }
        std::sort(list.begin(), list.end());
        const std::size_t at = out.size();
        out.resize(at + sf::record_header_size);
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
        recs.push_back({t, at, out.size() - at});
    }

    std::vector<std::byte> control_buffer;
    std::vector<control_record> control_records;

    bool commit() {
        if (failed || opt.read_only) {
            return false;
        }
        m.commits->add();
        ++counts.commits;
        const std::uint64_t enospc_before = enospc_errors;
        bool first_record = true;
        std::uint64_t records = 0;

        // Dead-letter copies first: a dead_lettered record may only follow a committed copy.
        if (owner.dead_letters_) {
            for (auto& d : q_dead) {
                if (d.pending_copy) {
                    copy_dead_letter(d);
                }
            }
        }
        if (owner.dead_letters_ && owner.dead_letters_->commit_pending()) {
            owner.dead_letters_->commit();
        }

        // 1. messages
        std::size_t done = 0;
        std::size_t pos = 0;
        while (done < queued.size() && !failed) {
            segment* act = active();
            if (act == nullptr || act->used + queued[done].size > message_limit(*act)) {
                if (!rotate(queued[done].size, first_record)) {
                    break;
                }
                act = active();
            }
            std::size_t j = done;
            std::uint64_t bytes = 0;
            std::uint64_t seq = next_seq;
            while (j < queued.size() && act->used + bytes + queued[j].size <= message_limit(*act)) {
                sf::seal_record(message_records.data() + pos + bytes, record_type::message,
                                first_record ? sf::flag_commit_start : 0, seq++,
                                queued[j].size -
                                    static_cast<std::uint32_t>(sf::record_header_size));
                first_record = false;
                bytes += queued[j].size;
                ++j;
            }
            if (const int e = fs.write(act->fd, message_records.data() + pos, bytes, act->used);
                e != 0) {
                write_error(e, "writing " + act->file);
                break;
            }
            std::uint64_t offset = act->used;
            for (std::size_t k = done; k < j; ++k) {
                act->add(next_seq++, offset, true);
                offset += queued[k].size;
                total_waiting_bytes += queued[k].bytes;
                queued_bytes -= queued[k].bytes;
                written_ticket = queued[k].ticket;
            }
            total_waiting += j - done;
            records += j - done;
            act->used = offset;
            act->dirty = true;
            pos += bytes;
            done = j;
        }
        if (done > 0) {
            message_records.erase(message_records.begin(),
                                  message_records.begin() + static_cast<std::ptrdiff_t>(pos));
            queued.erase(queued.begin(), queued.begin() + static_cast<std::ptrdiff_t>(done));
        }

        // 2. control records
        if (!failed) {
            records += write_controls(first_record);
        }

        // 3. sync
        const auto now = std::chrono::steady_clock::now();
        const bool sync_now =
            opt.sync.how == sync_policy::mode::always ||
            (opt.sync.how == sync_policy::mode::interval && now - last_sync >= opt.sync.interval);
        if (sync_now && !failed) {
            for (auto& s : segments) {
                if (s.dirty && !sync_segment(s)) {
                    break;
                }
            }
            last_sync = now;
        }
        if (!failed) {
            // always: everything written is synced now; interval/none: confirm on write.
            owner.committed_ticket_ = written_ticket;
        }
        m.committed_records->add(records);
        counts.committed_records += records;
        m.last_batch->set(static_cast<std::int64_t>(records));
        if (!failed) {
            reclaim();
        }
        // The disk had room for everything queued: appends may go on (the ENOSPC may have come
        // from a write inside the active segment, where no rotation would clear it).
        if (disk_full && !failed && enospc_errors == enospc_before && queued.empty() &&
            q_delivered.empty() && q_acked.empty() && q_dropped_full.empty() &&
            q_dropped_purged.empty() && q_gaps.empty()) {
            disk_full = false;
            m.disk_full->set(0);
        }
        update_gauges();
        return !failed && records > 0;
    }

    std::uint64_t write_controls(bool& first_record) {
        control_buffer.clear();
        control_records.clear();
        encode_list(control_buffer, control_records, record_type::delivered, q_delivered, {});
        encode_list(control_buffer, control_records, record_type::acked, q_acked, {});
        encode_list(control_buffer, control_records, record_type::dropped, q_dropped_full,
                    drop_reason_full);
        encode_list(control_buffer, control_records, record_type::dropped, q_dropped_purged,
                    drop_reason_purged);
        const std::uint64_t dlq_committed =
            owner.dead_letters_ ? owner.dead_letters_->committed_ticket() : UINT64_MAX;
        std::size_t dead_written = 0;
        for (const auto& d : q_dead) {
            if (d.pending_copy || d.dead_letter_ticket > dlq_committed) {
                break;
            }
            const std::size_t at = control_buffer.size();
            control_buffer.resize(at + sf::record_header_size);
            put64(control_buffer, d.sequence);
            put32(control_buffer, d.bytes);
            const auto* r = reinterpret_cast<const std::byte*>(d.reason.data());
            control_buffer.insert(control_buffer.end(), r, r + d.reason.size());
            control_records.push_back({record_type::dead_lettered, at, control_buffer.size() - at});
            ++dead_written;
        }
        for (const auto& [range, cause] : q_gaps) {
            const std::size_t at = control_buffer.size();
            control_buffer.resize(at + sf::record_header_size);
            put64(control_buffer, range.first);
            put64(control_buffer, range.end);
            control_buffer.push_back(static_cast<std::byte>(cause));
            control_records.push_back({record_type::gap, at, control_buffer.size() - at});
        }
        if (q_log_start != 0) {
            const std::size_t at = control_buffer.size();
            control_buffer.resize(at + sf::record_header_size);
            put64(control_buffer, q_log_start);
            control_records.push_back({record_type::log_start, at, control_buffer.size() - at});
        }
        if (control_records.empty()) {
            return 0;
        }
        segment* act = active();
        if (act == nullptr || act->used + control_buffer.size() > act->capacity) {
            if (!rotate(control_buffer.size(), first_record)) {
                return 0; // stays queued (disk full: acks are held in memory and retried)
            }
            act = active();
        }
        std::uint64_t seq = next_seq;
        for (const auto& c : control_records) {
            sf::seal_record(control_buffer.data() + c.offset, c.type,
                            first_record ? sf::flag_commit_start : 0, seq++,
                            static_cast<std::uint32_t>(c.size - sf::record_header_size));
            first_record = false;
        }
        if (const int e =
                fs.write(act->fd, control_buffer.data(), control_buffer.size(), act->used);
            e != 0) {
            write_error(e, "writing " + act->file);
            return 0;
        }
        for (const auto& c : control_records) {
            act->add(next_seq++, act->used + c.offset, false);
        }
        act->used += control_buffer.size();
        act->dirty = true;
        q_delivered.clear();
        q_acked.clear();
        q_dropped_full.clear();
        q_dropped_purged.clear();
        q_dead.erase(q_dead.begin(), q_dead.begin() + static_cast<std::ptrdiff_t>(dead_written));
        q_gaps.clear();
        if (q_log_start != 0) {
            written_log_start = q_log_start;
            q_log_start = 0;
        }
        return control_records.size();
    }

    // Deletes head segments once a durable log_start record says the log starts after them;
    // queues that record when the head segments are fully settled.
    void reclaim() {
        if (segments.size() > 1 && segments.front().end <= written_log_start &&
            segments.front().waiting == 0) {
            // The log_start record that lets the head go must be on disk before the head goes
            // (sync modes none and interval may not have synced it yet).
            for (auto& s : segments) {
                if (s.dirty && !sync_segment(s)) {
                    return;
                }
            }
        }
        bool removed = false;
        while (segments.size() > 1 && segments.front().end <= written_log_start &&
               segments.front().waiting == 0) {
            segment& s = segments.front();
            close_segment(s);
            if (const int e = fs.remove(dir / s.file); e != 0) {
                write_error(e, "removing " + s.file);
                break;
            }
            segments.pop_front();
            removed = true;
        }
        if (removed) {
            if (const int e = fs.sync_directory(dir); e != 0) {
                write_error(e == ENOSPC ? EIO : e, "syncing directory " + dir.string());
            }
            log_start = segments.front().first;
        }
        std::size_t k = 0;
        while (k + 1 < segments.size() && segments[k].waiting == 0) {
            ++k;
        }
        if (k > 0 && segments[k].first > written_log_start && q_log_start == 0) {
            q_log_start = segments[k].first;
        }
    }

    // ---- delivery ----

    std::optional<spooled_message> deliver() {
        if (failed || opt.read_only) {
            return std::nullopt;
        }
        const auto now = std::chrono::steady_clock::now();
        while (!delayed.empty() && delayed.begin()->first <= now) {
            ready_again.insert(delayed.begin()->second);
            delayed.erase(delayed.begin());
        }
        while (!ready_again.empty()) {
            const std::uint64_t seq = *ready_again.begin();
            ready_again.erase(ready_again.begin());
            segment* s = find(seq);
            if (s == nullptr || s->is_settled(seq)) {
                continue;
            }
            auto msg = read_message(seq);
            if (!msg) {
                continue;
            }
            return start_delivery(*msg);
        }
        while (!segments.empty()) {
            if (cursor_seq < segments.front().first) {
                cursor_seq = segments.front().first;
                cursor_first = segments.front().first;
                cursor_offset = 0;
            }
            segment* s = find(cursor_first);
            if (s == nullptr || s->first != cursor_first) {
                // The cursor's segment was reclaimed: start at the head.
                s = &segments.front();
                cursor_first = s->first;
                cursor_offset = 0;
            }
            if (cursor_offset >= s->used) {
                if (s == &segments.back()) {
                    return std::nullopt;
                }
                segment* next = find(s->end) != nullptr ? find(s->end) : nullptr;
                if (next == nullptr) {
                    // a known gap between segments: the next one up
                    auto it = std::upper_bound(
                        segments.begin(), segments.end(), s->first,
                        [](std::uint64_t v, const segment& g) { return v < g.first; });
                    if (it == segments.end()) {
                        return std::nullopt;
                    }
                    next = &*it;
                }
                cursor_first = next->first;
                cursor_offset = 0;
                continue;
            }
            std::size_t consumed = 0;
            auto r = read_record(cursor_reader, *s, cursor_offset, &consumed);
            if (!r) {
                fail("spool " + dir.string() + ": cannot read the record at offset " +
                     std::to_string(cursor_offset) + " of " + s->file +
                     " (damaged while running?); restart to recover");
                return std::nullopt;
            }
            cursor_offset += consumed;
            cursor_seq = r->sequence + 1;
            if (r->type != record_type::message || s->is_settled(r->sequence) ||
                in_flight.contains(r->sequence) || ready_again.contains(r->sequence)) {
                continue;
            }
            message_payload mp;
            if (!parse_message_payload(r->payload, mp)) {
                continue;
            }
            spooled_message msg;
            msg.sequence = r->sequence;
            msg.appended_ns = mp.appended_ns;
            msg.header = mp.header;
            msg.body = mp.body;
            return start_delivery(msg);
        }
        return std::nullopt;
    }

    spooled_message start_delivery(spooled_message msg) {
        std::uint32_t& a = attempts[msg.sequence];
        ++a;
        msg.attempt = a;
        if (a > 1) {
            m.redelivered->add();
            ++counts.redelivered;
        }
        in_flight[msg.sequence] =
            in_flight_entry{static_cast<std::uint32_t>(msg.header.size() + msg.body.size())};
        q_delivered.emplace_back(msg.sequence, a);
        return msg;
    }

    bool ack(std::uint64_t seq) {
        const auto it = in_flight.find(seq);
        if (it == in_flight.end()) {
            return false;
        }
        const std::uint32_t bytes = it->second.bytes;
        in_flight.erase(it);
        settle(seq, bytes);
        q_acked.emplace_back(seq, bytes);
        m.acked->add();
        ++counts.acked;
        return true;
    }

    bool requeue(std::uint64_t seq, std::chrono::milliseconds delay, bool* dead_lettered) {
        if (dead_lettered != nullptr) {
            *dead_lettered = false;
        }
        const auto it = in_flight.find(seq);
        if (it == in_flight.end()) {
            return false;
        }
        const std::uint32_t attempt = attempts[seq];
        if (opt.max_attempts != 0 && attempt >= opt.max_attempts) {
            if (dead_lettered != nullptr) {
                *dead_lettered = true;
            }
            return dead_letter(seq, "delivered " + std::to_string(attempt) +
                                        " times without an ack (max_attempts " +
                                        std::to_string(opt.max_attempts) + ")");
        }
        in_flight.erase(it);
        if (delay.count() <= 0) {
            ready_again.insert(seq);
        } else {
            delayed.emplace(std::chrono::steady_clock::now() + delay, seq);
        }
        return true;
    }

    bool dead_letter(std::uint64_t seq, std::string_view reason) {
        const auto it = in_flight.find(seq);
        if (it == in_flight.end()) {
            return false;
        }
        const std::uint32_t bytes = it->second.bytes;
        queued_dead d{seq, bytes, std::string(reason), 0, std::nullopt};
        if (owner.dead_letters_) {
            auto msg = read_message(seq);
            if (msg) {
                header h;
                if (decode_header(msg->header.data(), msg->header.size(), h)) {
                    h.attempt = std::max<std::uint32_t>(h.attempt, msg->attempt);
                    h.user_headers.emplace_back("zmqkit-dead-letter-reason", std::string(reason));
                    h.user_headers.emplace_back("zmqkit-dead-letter-sequence", std::to_string(seq));
                    h.user_headers.emplace_back("zmqkit-dead-letter-spool", opt.name);
                    d.pending_copy.emplace(encode_header(h), std::string(msg->body));
                    copy_dead_letter(d);
                }
            }
        }
        in_flight.erase(it);
        settle(seq, bytes);
        q_dead.push_back(std::move(d));
        m.dead_lettered->add();
        ++counts.dead_lettered;
        return true;
    }

    // Hands a dead letter's copy to the dead-letter spool. When it cannot take it now (its disk
    // is full, or it failed) the copy stays pending: the dead_lettered record is only written
    // after the copy is committed, so the message is never in neither spool.
    void copy_dead_letter(queued_dead& d) {
        const auto r = owner.dead_letters_->append(d.pending_copy->first, d.pending_copy->second);
        if (r.outcome == append_result::status::appended ||
            r.outcome == append_result::status::duplicate) {
            d.dead_letter_ticket = r.ticket;
            d.pending_copy.reset();
        }
    }

    std::uint64_t purge() {
        std::uint64_t n = 0;
        for_each(0, [&](const spooled_message& msg, bool settled) {
            if (!settled && !in_flight.contains(msg.sequence)) {
                const std::uint64_t bytes = msg.header.size() + msg.body.size();
                ready_again.erase(msg.sequence);
                std::erase_if(delayed, [&](const auto& d) { return d.second == msg.sequence; });
                settle(msg.sequence, bytes);
                q_dropped_purged.emplace_back(msg.sequence, bytes);
                m.dropped_purged->add();
                ++n;
            }
            return true;
        });
        return n;
    }

    void for_each(std::uint64_t from,
                  const std::function<bool(const spooled_message&, bool settled)>& fn) {
        buffered_reader reader;
        for (auto& s : segments) {
            if (s.end <= from) {
                continue;
            }
            std::uint64_t offset = 0;
            if (from > s.first) {
                offset = s.index[(from - s.first) / index_stride];
            }
            while (offset < s.used) {
                std::size_t consumed = 0;
                auto r = read_record(reader, s, offset, &consumed);
                if (!r) {
                    break;
                }
                offset += consumed;
                if (r->type != record_type::message || r->sequence < from) {
                    continue;
                }
                message_payload mp;
                if (!parse_message_payload(r->payload, mp)) {
                    continue;
                }
                spooled_message msg;
                msg.sequence = r->sequence;
                const auto a = attempts.find(r->sequence);
                msg.attempt = a == attempts.end() ? 0 : a->second;
                msg.appended_ns = mp.appended_ns;
                msg.header = mp.header;
                msg.body = mp.body;
                if (!fn(msg, s.is_settled(r->sequence))) {
                    return;
                }
            }
        }
    }

    // ---- statistics ----

    std::uint64_t undelivered() const noexcept {
        const std::uint64_t behind = in_flight.size() + ready_again.size() + delayed.size();
        return total_waiting > behind ? total_waiting - behind : 0;
    }

    void update_gauges() {
        m.messages->set(static_cast<std::int64_t>(total_waiting + queued.size()));
        m.message_bytes->set(static_cast<std::int64_t>(total_waiting_bytes + queued_bytes));
        m.in_flight->set(static_cast<std::int64_t>(in_flight.size()));
        m.undelivered->set(static_cast<std::int64_t>(undelivered() + queued.size()));
        m.segments->set(static_cast<std::int64_t>(segments.size()));
        std::uint64_t disk = 0;
        for (const auto& s : segments) {
            disk += s.capacity;
        }
        m.disk_bytes->set(static_cast<std::int64_t>(disk));
    }

    std::int64_t oldest_ns() {
        for (auto& s : segments) {
            if (s.waiting == 0) {
                continue;
            }
            for (std::uint64_t seq = s.first; seq < s.end; ++seq) {
                if (!s.is_settled(seq)) {
                    const auto msg = read_message(seq);
                    return msg ? msg->appended_ns : 0;
                }
            }
        }
        return 0;
    }

    spool_stats stats() {
        spool_stats st = counts;
        st.messages = total_waiting + queued.size();
        st.message_bytes = total_waiting_bytes + queued_bytes;
        st.in_flight = in_flight.size();
        st.ready = st.messages - st.in_flight;
        st.undelivered = undelivered() + queued.size();
        st.segments = segments.size();
        for (const auto& s : segments) {
            st.disk_bytes += s.capacity;
        }
        st.log_start = segments.empty() ? next_seq : segments.front().first;
        st.next_sequence = next_seq;
        st.durable_sequence = next_seq;
        for (const auto& s : segments) {
            if (s.dirty) {
                st.durable_sequence = std::min(st.durable_sequence, s.first);
            }
        }
        st.oldest_ns = oldest_ns();
        st.newest_ns = newest_ns;
        st.read_only = failed;
        st.disk_full = disk_full;
        st.failure = failure;
        if (owner.dead_letters_) {
            st.dead_letter_messages = owner.dead_letters_->stats().messages;
        }
        m.oldest_age_ms->set(st.oldest_ns == 0 ? 0 : (now_ns() - st.oldest_ns) / 1'000'000);
        return st;
    }

    // ---- recovery ----

    struct found_gap {
        sequence_range range;
        std::uint8_t cause;
    };
    struct salvage {
        std::size_t segment_index;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> extents; // offset, size (valid)
    };

    void recover();
    // Reads the synced-position marker (and keeps it open for writing unless read-only; a
    // missing one is created by finish_recovery). nullopt, with `why`, when it is not usable.
    std::optional<sf::synced_position> open_marker(std::string& why);
    // Checks the marker against the segment files; nullopt (with a finding) if it cannot be
    // theirs.
    std::optional<sf::synced_position>
    check_marker(std::optional<sf::synced_position> marker, const std::string& why,
                 const std::vector<std::pair<std::uint64_t, std::string>>& files);
    // Records the synced sequence numbers that no segment holds any more (a file cut short, a
    // missing last segment) as lost.
    void find_lost_tail(const sf::synced_position& marker, std::vector<found_gap>& gaps);
    // Writes what recovery queued (gap records, a first segment) and leaves everything synced,
    // with the marker saying so.
    void finish_recovery(const std::vector<found_gap>& new_gaps);
    // synced_end: every sequence number below it was synced (the marker; 0: unknown).
    void scan_segment(segment& s, bool last, std::uint64_t synced_end, std::vector<found_gap>& gaps,
                      std::vector<sequence_range>& known, std::vector<salvage>& salvages,
                      std::vector<message_id>& ring, std::size_t& ring_pos, std::size_t index);
    void apply(segment& s, const sf::record_view& r, std::uint64_t offset,
               std::vector<sequence_range>& known, std::vector<message_id>& ring,
               std::size_t& ring_pos);
    // Searches [from, limit) for a valid record with sequence >= min_seq. Sets *flagged when
    // any valid record there carries flag_commit_start; *last_nonzero to the end of the last
    // non-zero byte seen.
    std::optional<std::pair<std::uint64_t, sf::record_view>>
    resync(buffered_reader& reader, segment& s, std::uint64_t from, std::uint64_t min_seq,
           bool* flagged, std::uint64_t* last_nonzero);
    void perform_salvage(salvage& sv);
    void lock_directory();
};

void spool::impl::lock_directory() {
    if (&fs != &posix_file_system() || opt.read_only) {
        return;
    }
    const auto path = dir / "lock";
    lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lock_fd < 0) {
        throw spool_error("cannot open " + path.string() + ": " + errno_text(errno));
    }
    if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        ::close(lock_fd);
        lock_fd = -1;
        throw spool_error("spool " + dir.string() + " is in use by another process (" +
                          path.string() + " is locked: " + errno_text(e) +
                          "); stop it or choose another --spool directory");
    }
}

void spool::impl::apply(segment& s, const sf::record_view& r, std::uint64_t offset,
                        std::vector<sequence_range>& known, std::vector<message_id>& ring,
                        std::size_t& ring_pos) {
    const bool is_message = r.type == record_type::message;
    s.add(r.sequence, offset, is_message);
    switch (r.type) {
    case record_type::message: {
        message_payload mp;
        if (parse_message_payload(r.payload, mp)) {
            total_waiting += 1;
            total_waiting_bytes += mp.header.size() + mp.body.size();
            newest_ns = mp.appended_ns;
            if (!ring.empty()) {
                ring[ring_pos % ring.size()] = mp.id;
                ++ring_pos;
            }
        } else {
            // checksummed but not a message payload: a writer bug; count it as settled
            s.set_settled(r.sequence);
            --s.waiting;
        }
        break;
    }
    case record_type::delivered:
        (void)sf::decode_sequence_list(r.payload, [&](std::uint64_t seq, std::uint64_t attempt) {
            segment* t = find(seq);
            if (t != nullptr && !t->is_settled(seq)) {
                auto& a = attempts[seq];
                a = std::max<std::uint32_t>(
                    a, static_cast<std::uint32_t>(std::min<std::uint64_t>(attempt, UINT32_MAX)));
            }
        });
        break;
    case record_type::acked:
        (void)sf::decode_sequence_list(
            r.payload, [&](std::uint64_t seq, std::uint64_t bytes) { settle(seq, bytes); });
        break;
    case record_type::dropped:
        if (!r.payload.empty()) {
            (void)sf::decode_sequence_list(
                r.payload.subspan(1),
                [&](std::uint64_t seq, std::uint64_t bytes) { settle(seq, bytes); });
        }
        break;
    case record_type::dead_lettered:
        if (r.payload.size() >= 12) {
            settle(get64(r.payload.data()), get32(r.payload.data() + 8));
        }
        break;
    case record_type::segment_start:
    case record_type::log_start:
        if (r.payload.size() >= 8) {
            log_start = std::max(log_start, get64(r.payload.data()));
            if (r.type == record_type::log_start) {
                written_log_start = std::max(written_log_start, get64(r.payload.data()));
            }
        }
        break;
    case record_type::gap:
        if (r.payload.size() >= 16) {
            known.push_back({get64(r.payload.data()), get64(r.payload.data() + 8)});
        }
        break;
    }
    (void)s;
}

std::optional<std::pair<std::uint64_t, sf::record_view>>
spool::impl::resync(buffered_reader& reader, segment& s, std::uint64_t from, std::uint64_t min_seq,
                    bool* flagged, std::uint64_t* last_nonzero) {
    std::optional<std::pair<std::uint64_t, sf::record_view>> first_found;
    const std::byte magic_bytes[4] = {std::byte{'Z'}, std::byte{'K'}, std::byte{'R'},
                                      std::byte{'1'}};
    std::uint64_t pos = from;
    while (pos < s.capacity) {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(read_chunk, s.capacity - pos));
        int e = 0;
        const std::byte* p = reader.fetch(fs, s.fd, pos, n, s.capacity, &e);
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
            const std::byte* h = probe.fetch(fs, s.fd, off, sf::record_header_size, s.capacity, &e);
            if (h == nullptr) {
                continue;
            }
            const std::uint32_t length = get32(h + 16);
            if (length > sf::max_payload || off + sf::record_header_size + length > s.capacity) {
                continue;
            }
            const std::byte* full =
                probe.fetch(fs, s.fd, off, sf::record_header_size + length, s.capacity, &e);
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

void spool::impl::scan_segment(segment& s, bool last, std::uint64_t synced_end,
                               std::vector<found_gap>& gaps, std::vector<sequence_range>& known,
                               std::vector<salvage>& salvages, std::vector<message_id>& ring,
                               std::size_t& ring_pos, std::size_t index) {
    buffered_reader reader;
    std::uint64_t offset = 0;
    std::uint64_t expected = s.first;
    bool damaged = false;
    salvage sv{index, {}};
    recovery_report& rep = owner.recovery_;
    auto finding = [&](const std::string& what) { rep.findings.push_back(s.file + ": " + what); };

    while (true) {
        int e = 0;
        const std::uint64_t avail = s.capacity > offset ? s.capacity - offset : 0;
        const std::byte* h =
            avail >= sf::record_header_size
                ? reader.fetch(fs, s.fd, offset, sf::record_header_size, s.capacity, &e)
                : nullptr;
        if (e != 0) {
            throw spool_error("cannot read " + (dir / s.file).string() + ": " + errno_text(e));
        }
        sf::scan_result res = sf::scan_result::end;
        sf::record_view r;
        std::size_t consumed = 0;
        if (h != nullptr) {
            res = sf::parse_record(h, sf::record_header_size, r, &consumed);
            if (res == sf::scan_result::incomplete) {
                const std::uint32_t length = get32(h + 16);
                const std::byte* full =
                    offset + sf::record_header_size + length <= s.capacity
                        ? reader.fetch(fs, s.fd, offset, sf::record_header_size + length,
                                       s.capacity, &e)
                        : nullptr;
                res = full == nullptr
                          ? sf::scan_result::incomplete
                          : sf::parse_record(full, sf::record_header_size + length, r, &consumed);
            }
        }
        if (res == sf::scan_result::ok && r.sequence >= expected) {
            if (r.sequence > expected) {
                gaps.push_back({{expected, r.sequence}, gap_cause_corrupt});
            }
            apply(s, r, offset, known, ring, ring_pos);
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
            // The last write before a crash: never synced, so never confirmed. Cut it.
            const std::uint64_t cut = std::max(last_nonzero, offset) - offset;
            rep.truncated_bytes += cut;
            rep.truncated_file = s.file;
            finding("torn write at offset " + std::to_string(offset) + ": " + std::to_string(cut) +
                    " bytes of an unconfirmed write cut" +
                    (synced_end != 0 ? " (after the last synced record, sequence " +
                                           std::to_string(synced_end - 1) + ")"
                                     : std::string()));
            if (!opt.read_only) {
                if (int te = fs.truncate(s.fd, offset); te == 0) {
                    te = fs.allocate(s.fd, s.capacity);
                    if (te != 0) {
                        throw spool_error("cannot re-allocate " + (dir / s.file).string() + ": " +
                                          errno_text(te));
                    }
                } else {
                    throw spool_error("cannot truncate " + (dir / s.file).string() + ": " +
                                      errno_text(te));
                }
            }
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
        salvages.push_back(std::move(sv));
    }
}

void spool::impl::perform_salvage(salvage& sv) {
    segment& s = segments[sv.segment_index];
    recovery_report& rep = owner.recovery_;
    const auto original = dir / s.file;
    const auto quarantine_dir = dir / "quarantine";
    if (const int e = fs.create_directory(quarantine_dir); e != 0) {
        throw spool_error("cannot create " + quarantine_dir.string() + ": " + errno_text(e));
    }
    // Copy the valid records into a new file, then swap: the damaged original goes to
    // quarantine as found.
    const auto repaired = dir / (s.file + ".repair");
    (void)fs.remove(repaired);
    spool_file_system::handle out = -1;
    if (const int e = fs.open(repaired, true, true, out); e != 0) {
        throw spool_error("cannot create " + repaired.string() + ": " + errno_text(e));
    }
    auto check = [&](int e, const std::string& what) {
        if (e != 0) {
            fs.close(out);
            (void)fs.remove(repaired);
            throw spool_error("cannot repair " + original.string() + " (" + what +
                              "): " + errno_text(e));
        }
    };
    check(fs.allocate(out, s.capacity), "allocate");
    buffered_reader reader;
    std::uint64_t pos = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> remap; // old offset -> new offset
    for (const auto& [off, size] : sv.extents) {
        int e = 0;
        const std::byte* p = reader.fetch(fs, s.fd, off, size, s.capacity, &e);
        check(p == nullptr ? (e != 0 ? e : EIO) : 0, "read");
        check(fs.write(out, p, size, pos), "write");
        remap.emplace_back(off, pos);
        pos += size;
    }
    check(fs.sync_data(out), "sync");
    const auto quarantined = quarantine_dir / s.file;
    (void)fs.remove(quarantined);
    check(fs.rename(original, quarantined), "move to quarantine");
    check(fs.rename(repaired, original), "rename");
    check(fs.sync_directory(quarantine_dir), "sync quarantine directory");
    check(fs.sync_directory(dir), "sync directory");
    close_segment(s);
    s.fd = out;
    for (auto& o : s.index) {
        const auto it = std::lower_bound(remap.begin(), remap.end(),
                                         std::make_pair(std::uint64_t{o}, std::uint64_t{0}));
        o = static_cast<std::uint32_t>(it == remap.end() ? pos : it->second);
    }
    s.used = pos;
    rep.quarantined_files.push_back(quarantined.string());
}

std::optional<sf::synced_position> spool::impl::open_marker(std::string& why) {
    const auto path = dir / sf::synced_file_name;
    spool_file_system::handle h = -1;
    if (const int e = fs.open(path, !opt.read_only, false, h); e != 0) {
        why = e == ENOENT ? std::string("missing") : "unreadable (" + errno_text(e) + ")";
        return std::nullopt; // created by finish_recovery()
    }
    std::array<std::byte, sf::synced_size> bytes{};
    std::size_t got = 0;
    sf::synced_position p;
    sf::synced_status st = sf::synced_status::short_file;
    if (const int e = fs.read(h, bytes.data(), bytes.size(), 0, got); e != 0) {
        why = "unreadable (" + errno_text(e) + ")";
    } else {
        st = sf::parse_synced(bytes.data(), got, p);
        why = sf::to_string(st);
    }
    if (opt.read_only) {
        fs.close(h);
    } else {
        marker_fd = h;
    }
    if (st != sf::synced_status::ok) {
        return std::nullopt;
    }
    return p;
}

std::optional<sf::synced_position>
spool::impl::check_marker(std::optional<sf::synced_position> marker, const std::string& why,
                          const std::vector<std::pair<std::uint64_t, std::string>>& files) {
    recovery_report& rep = owner.recovery_;
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
                ": it does not describe these segments and is not used (at the end of the last "
                "segment damage cannot be told from a torn write, and is cut as one)");
            return std::nullopt;
        }
    }
    rep.synced_sequence = marker->end_sequence;
    return marker;
}

void spool::impl::find_lost_tail(const sf::synced_position& marker, std::vector<found_gap>& gaps) {
    const bool exists = std::any_of(segments.begin(), segments.end(),
                                    [&](const segment& s) { return s.first == marker.segment; });
    const std::uint64_t end = segments.empty() ? marker.segment : segments.back().end;
    if (marker.end_sequence <= end) {
        return;
    }
    if (segments.empty()) {
        // No segment at all: the log started at the marker's segment at the latest.
        log_start = std::max(log_start, marker.segment);
    }
    const std::string range = std::to_string(end) + ".." + std::to_string(marker.end_sequence - 1);
    const std::string count = std::to_string(marker.end_sequence - end);
    const std::string file = sf::segment_file_name(marker.segment);
    if (exists) {
        owner.recovery_.findings.push_back(
            segments.back().file + ": its records end at sequence " + std::to_string(end) +
            " (offset " + std::to_string(segments.back().used) + "), but sequence numbers below " +
            std::to_string(marker.end_sequence) + " had been synced (up to offset " +
            std::to_string(marker.end_offset) + " of " + file + "): sequence numbers " + range +
            " lost (" + count + " confirmed record(s); the file was cut short or its end damaged)");
    } else {
        owner.recovery_.findings.push_back(file + ", which held synced sequence numbers up to " +
                                           std::to_string(marker.end_sequence - 1) +
                                           ", is missing: sequence numbers " + range + " lost (" +
                                           count + " confirmed record(s))");
    }
    gaps.push_back({{end, marker.end_sequence}, exists ? gap_cause_corrupt : gap_cause_missing});
}

void spool::impl::finish_recovery(const std::vector<found_gap>& new_gaps) {
    for (const auto& g : new_gaps) {
        q_gaps.emplace_back(g.range, g.cause);
    }
    // A lost tail moved next_seq past the last segment: the next records go to a new segment
    // (the gap between the two is the recorded lost range), not after a jump inside it.
    const bool past_last = !segments.empty() && next_seq > segments.back().end;
    if (segments.empty() || past_last) {
        bool first_record = true;
        if (!rotate(0, first_record)) {
            throw spool_error("cannot create a segment in " + dir.string() + ": " +
                              (failed ? failure : std::string("disk full")));
        }
    }
    if (!q_gaps.empty() || past_last) {
        commit();
    }
    if (marker_fd < 0) {
        // A spool from before the marker (or a new one): create it, and its directory entry.
        const auto path = dir / sf::synced_file_name;
        (void)fs.remove(path); // an unreadable one
        spool_file_system::handle h = -1;
        if (fs.open(path, true, true, h) == 0) {
            if (fs.allocate(h, sf::synced_size) == 0 && fs.sync_directory(dir) == 0) {
                marker_fd = h;
            } else {
                fs.close(h);
                (void)fs.remove(path);
                m.write_errors->add();
            }
        }
    }
    // Everything recovery found or wrote counts from now on: on disk, and the marker says so.
    for (auto& s : segments) {
        if (s.dirty && !sync_segment(s)) {
            return;
        }
    }
    if (!segments.empty() && marker_fd >= 0) {
        write_marker(segments.back());
        if (fs.sync_data(marker_fd) != 0) {
            m.write_errors->add();
        }
    }
}

void spool::impl::recover() {
    const auto t0 = std::chrono::steady_clock::now();
    recovery_report& rep = owner.recovery_;
    if (opt.read_only) {
        std::vector<std::string> probe;
        if (const int e = fs.list(dir, probe); e != 0) {
            throw spool_error("no spool at " + dir.string() + ": " + errno_text(e));
        }
    } else if (const int e = fs.create_directory(dir); e != 0) {
        throw spool_error("cannot create spool directory " + dir.string() + ": " + errno_text(e));
    }
    lock_directory();
    // The marker before the segments: read after them, it could describe writes made meanwhile
    // (a read-only open while the owner runs) that this scan did not see.
    std::string marker_problem;
    auto marker = open_marker(marker_problem);

    std::vector<std::string> names;
    if (const int e = fs.list(dir, names); e != 0) {
        throw spool_error("cannot list " + dir.string() + ": " + errno_text(e));
    }
    std::vector<std::pair<std::uint64_t, std::string>> files;
    for (const auto& n : names) {
        if (auto first = sf::parse_segment_file_name(n)) {
            files.emplace_back(*first, n);
        } else if (n.ends_with(".seg.repair") && !opt.read_only) {
            (void)fs.remove(dir / n); // an interrupted repair: the original is still there
        }
    }
    std::sort(files.begin(), files.end());
    marker = check_marker(marker, marker_problem, files);
    const std::uint64_t synced_end = marker ? marker->end_sequence : 0;

    std::vector<found_gap> gaps;
    std::vector<sequence_range> known;
    std::vector<salvage> salvages;
    std::vector<message_id> ring(opt.dedup_window);
    std::size_t ring_pos = 0;

    for (std::size_t i = 0; i < files.size(); ++i) {
        segment s;
        s.first = files[i].first;
        s.end = s.first;
        s.file = files[i].second;
        const auto path = dir / s.file;
        if (const int e = fs.open(path, !opt.read_only, false, s.fd); e != 0) {
            throw spool_error("cannot open " + path.string() + ": " + errno_text(e));
        }
        if (const int e = fs.size(s.fd, s.capacity); e != 0) {
            fs.close(s.fd);
            throw spool_error("cannot stat " + path.string() + ": " + errno_text(e));
        }
        if (!segments.empty() && s.first < segments.back().end) {
            rep.findings.push_back(s.file + ": overlaps the previous segment (sequence " +
                                   std::to_string(s.first) + " < " +
                                   std::to_string(segments.back().end) + "); ignored");
            if (!opt.read_only) {
                const auto qdir = dir / "quarantine";
                if (fs.create_directory(qdir) == 0 && fs.rename(path, qdir / s.file) == 0) {
                    rep.quarantined_files.push_back((qdir / s.file).string());
                }
            }
            fs.close(s.fd);
            continue;
        }
        if (!segments.empty() && s.first > segments.back().end) {
            gaps.push_back({{segments.back().end, s.first}, gap_cause_missing});
        }
        segments.push_back(std::move(s));
        scan_segment(segments.back(), i + 1 == files.size(), synced_end, gaps, known, salvages,
                     ring, ring_pos, segments.size() - 1);
        ++rep.segments;
    }

    // Head: the log says where it starts; anything before the first segment is missing.
    if (!segments.empty() && segments.front().first > log_start) {
        gaps.push_back({{log_start, segments.front().first}, gap_cause_missing});
    }
    // Tail: what the marker says was synced and no segment holds.
    if (marker) {
        find_lost_tail(*marker, gaps);
    }

    // Which gaps are new? (Known ones were reported by an earlier recovery.)
    // A gap can be covered by several known ranges together (a head gap that grew over a
    // missing segment reported before): only the parts no known range covers are new.
    std::sort(known.begin(), known.end(),
              [](const sequence_range& a, const sequence_range& b) { return a.first < b.first; });
    std::vector<found_gap> new_gaps;
    for (const auto& g : gaps) {
        std::uint64_t at = g.range.first;
        for (const auto& k : known) {
            if (at >= g.range.end) {
                break;
            }
            if (k.end <= at) {
                continue;
            }
            if (k.first > at) {
                new_gaps.push_back({{at, std::min(k.first, g.range.end)}, g.cause});
            }
            at = std::max(at, k.end);
        }
        if (at < g.range.end) {
            new_gaps.push_back({{at, g.range.end}, g.cause});
        }
    }
    for (const auto& g : new_gaps) {
        rep.lost.push_back(g.range);
        rep.findings.push_back(
            "lost sequence numbers " + std::to_string(g.range.first) + ".." +
            std::to_string(g.range.end - 1) +
            (g.cause == gap_cause_missing ? " (missing segment)" : " (damaged records)"));
    }
    if (opt.strict && (!new_gaps.empty() || !salvages.empty())) {
        std::string what;
        for (const auto& f : rep.findings) {
            what += " " + f + ";";
        }
        rep.refused = true;
        rep.duration = std::chrono::steady_clock::now() - t0;
        throw spool_damaged_error("spool " + dir.string() +
                                      " is damaged (strict mode refuses to start):" + what +
                                      " run `zmqkit-spooler repair " + dir.string() +
                                      "` or start without --strict to quarantine the damage, "
                                      "record the lost range and continue",
                                  rep);
    }
    if (!opt.read_only) {
        for (auto& sv : salvages) {
            perform_salvage(sv);
        }
        // Segments entirely before the log start (a reclaim interrupted after its record).
        while (segments.size() > 1 && segments.front().end <= log_start) {
            close_segment(segments.front());
            (void)fs.remove(dir / segments.front().file);
            segments.pop_front();
        }
        // Segments without a record (created, then the process died): remove.
        for (std::size_t i = 0; i < segments.size();) {
            if (segments[i].end == segments[i].first) {
                close_segment(segments[i]);
                (void)fs.remove(dir / segments[i].file);
                segments.erase(segments.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
                ++i;
            }
        }
        (void)fs.sync_directory(dir);
        // What recovery found in the last segment may only be in the page cache (the process
        // was killed between a write and its fdatasync, or the fdatasync failed). From now on
        // it counts — duplicates of it are confirmed, deliveries continue from it, the next
        // segment starts after it — so it must be on disk before anything else is written.
        // (Earlier segments were synced when the next one was created.) This also makes a
        // torn-tail truncation durable.
        if (!segments.empty()) {
            if (const int e = fs.sync_data(segments.back().fd); e != 0) {
                throw spool_error("cannot sync " + (dir / segments.back().file).string() + ": " +
                                  errno_text(e) + "; check the disk (dmesg)");
            }
        }
    }

    // Attempts only for messages still waiting.
    for (auto it = attempts.begin(); it != attempts.end();) {
        segment* s = find(it->first);
        it = s == nullptr || s->is_settled(it->first) ? attempts.erase(it) : std::next(it);
    }
    // Dedup window: the newest ids, oldest first.
    const std::size_t n = std::min(ring_pos, ring.size());
    for (std::size_t k = ring_pos - n; k < ring_pos; ++k) {
        remember(ring[k % ring.size()], 0);
    }

    next_seq = segments.empty() ? (log_start > 0 ? log_start : 0) : segments.back().end;
    for (const auto& g : new_gaps) {
        next_seq = std::max(next_seq, g.range.end);
    }
    if (!segments.empty()) {
        cursor_seq = segments.front().first;
        cursor_first = segments.front().first;
    }
    written_log_start = std::max(written_log_start, log_start);
    if (!segments.empty()) {
        log_start = segments.front().first;
    }

    rep.messages = total_waiting;
    rep.log_start = segments.empty() ? next_seq : segments.front().first;
    rep.next_sequence = next_seq;
    if (!opt.read_only) {
        finish_recovery(new_gaps);
    }
    rep.duration = std::chrono::steady_clock::now() - t0;
    m.recovery_ms->set(std::chrono::duration_cast<std::chrono::milliseconds>(rep.duration).count());
    m.recovery_truncated_bytes->set(static_cast<std::int64_t>(rep.truncated_bytes));
    std::uint64_t lost = 0;
    for (const auto& g : rep.lost) {
        lost += g.end - g.first;
    }
    m.recovery_lost->set(static_cast<std::int64_t>(lost));
    m.quarantined->set(static_cast<std::int64_t>(rep.quarantined_files.size()));
    update_gauges();
}

// ---- spool ------------------------------------------------------------------------------------

spool::spool(spool_options options) : options_(std::move(options)) {
    if (options_.directory.empty()) {
        throw config_error("spool: no directory given");
    }
    if (options_.segment_bytes < 4096) {
        throw config_error("spool: segment size " + std::to_string(options_.segment_bytes) +
                           " bytes is too small (minimum 4096)");
    }
    if (options_.dead_letter_spool) {
        spool_options d = options_;
        d.directory = options_.directory / "dead-letter";
        d.dead_letter_spool = false;
        d.max_messages = 0;
        d.max_bytes = 0;
        d.name = options_.name + "-dead-letter";
        if (!options_.read_only) {
            spool_file_system& fs = options_.fs != nullptr ? *options_.fs : posix_file_system();
            if (const int e = fs.create_directory(options_.directory); e != 0) {
                throw spool_error("cannot create spool directory " + options_.directory.string() +
                                  ": " + errno_text(e));
            }
        }
        std::vector<std::string> probe;
        spool_file_system& fs = options_.fs != nullptr ? *options_.fs : posix_file_system();
        if (!options_.read_only || fs.list(d.directory, probe) == 0) {
            dead_letters_ = std::make_unique<spool>(std::move(d));
        }
    }
    impl_ = std::make_unique<impl>(*this, options_);
    impl_->recover();
}

spool::~spool() {
    if (impl_ && !options_.read_only && !impl_->failed) {
        try {
            if (impl_->commit_pending()) {
                impl_->commit();
            }
            for (auto& s : impl_->segments) {
                if (s.dirty) {
                    (void)impl_->sync_segment(s);
                }
            }
            // After a clean close the marker covers everything: keep it through a power loss.
            if (impl_->marker_fd >= 0 && !impl_->failed) {
                (void)impl_->fs.sync_data(impl_->marker_fd);
            }
        } catch (...) { // NOLINT(bugprone-empty-catch): best effort at destruction
        }
    }
}

append_result spool::append(std::string_view header, std::string_view body) {
    return impl_->append(header, body, nullptr);
}
append_result spool::append(std::string_view header, std::string_view body, const message_id& id) {
    return impl_->append(header, body, &id);
}
bool spool::commit() {
    return impl_->commit();
}
bool spool::commit_pending() const noexcept {
    return impl_->commit_pending();
}
std::optional<spooled_message> spool::deliver() {
    return impl_->deliver();
}
bool spool::ack(std::uint64_t sequence) {
    return impl_->ack(sequence);
}
bool spool::requeue(std::uint64_t sequence, std::chrono::milliseconds delay, bool* dead_lettered) {
    return impl_->requeue(sequence, delay, dead_lettered);
}
bool spool::dead_letter(std::uint64_t sequence, std::string_view reason) {
    return impl_->dead_letter(sequence, reason);
}
std::optional<spooled_message> spool::read(std::uint64_t sequence) {
    return impl_->read_message(sequence);
}
void spool::for_each(std::uint64_t from_sequence,
                     const std::function<bool(const spooled_message&, bool)>& fn) {
    impl_->for_each(from_sequence, fn);
}
std::uint64_t spool::purge() {
    return impl_->purge();
}
spool_stats spool::stats() const {
    return impl_->stats();
}
std::optional<std::chrono::steady_clock::time_point> spool::next_redelivery() const {
    if (impl_->delayed.empty()) {
        return std::nullopt;
    }
    return impl_->delayed.begin()->first;
}

} // namespace zmqkit
