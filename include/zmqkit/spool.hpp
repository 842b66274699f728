// zmqkit — the spool: an append-only, checksummed, self-describing on-disk message log with
// group commit, delivery state (attempts, acks, dead letters), recovery and limits.
// The format is specified in docs/spool-format.md.
#pragma once

#include <zmqkit/error.hpp>
#include <zmqkit/message_id.hpp>
#include <zmqkit/metrics.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zmqkit {

using namespace std::chrono_literals;

// ---- the file system the spool writes through -------------------------------------------------

// Every file operation the spool performs, so tests can inject ENOSPC, EIO and crashes (drop
// what was not synced). Functions return 0 or an errno value; they never throw.
class spool_file_system {
public:
    using handle = int;
    spool_file_system() = default;
    spool_file_system(const spool_file_system&) = delete;
    spool_file_system& operator=(const spool_file_system&) = delete;
    virtual ~spool_file_system() = default;

    [[nodiscard]] virtual int create_directory(const std::filesystem::path& dir) = 0; // EEXIST ok
    // Names (not paths) of the regular files in dir.
    [[nodiscard]] virtual int list(const std::filesystem::path& dir,
                                   std::vector<std::string>& names) = 0;
    // Opens for reading and writing (create: O_CREAT|O_EXCL) or for reading only.
    [[nodiscard]] virtual int open(const std::filesystem::path& file, bool writable, bool create,
                                   handle& out) = 0;
    virtual void close(handle h) noexcept = 0;
    [[nodiscard]] virtual int size(handle h, std::uint64_t& out) = 0;
    // Makes the file exactly `bytes` long with zeros past the old end, reserving the space
    // (fallocate), so later writes inside it cannot fail with ENOSPC.
    [[nodiscard]] virtual int allocate(handle h, std::uint64_t bytes) = 0;
    [[nodiscard]] virtual int truncate(handle h, std::uint64_t bytes) = 0;
    // Reads up to n bytes at offset; `got` < n only at the end of the file.
    [[nodiscard]] virtual int read(handle h, void* data, std::size_t n, std::uint64_t offset,
                                   std::size_t& got) = 0;
    // Writes all n bytes at offset, or fails.
    [[nodiscard]] virtual int write(handle h, const void* data, std::size_t n,
                                    std::uint64_t offset) = 0;
    [[nodiscard]] virtual int sync_data(handle h) = 0;
    [[nodiscard]] virtual int sync_directory(const std::filesystem::path& dir) = 0;
    [[nodiscard]] virtual int rename(const std::filesystem::path& from,
                                     const std::filesystem::path& to) = 0;
    [[nodiscard]] virtual int remove(const std::filesystem::path& file) = 0;
};

// The real one (POSIX: open/pread/pwrite/fdatasync/fallocate). Thread-safe, stateless.
[[nodiscard]] spool_file_system& posix_file_system() noexcept;

// ---- options ----------------------------------------------------------------------------------

// When appended records reach the disk (docs/operations.md says what each mode can lose).
struct sync_policy {
    enum class mode {
        always,   // write + fdatasync before commit() returns: a confirm means on disk
        interval, // write at commit(), fdatasync at most every `interval`: an OS crash or power
                  // loss can lose confirmed records of the last interval; kill -9 loses nothing
        none,     // write only; the kernel flushes when it likes (an OS crash loses ~30 s)
    };
    mode how = mode::always;
    std::chrono::milliseconds interval{100};

    // "always", "none" or "interval:<ms>" (e.g. interval:100). Throws config_error.
    [[nodiscard]] static sync_policy parse(std::string_view text);
    [[nodiscard]] std::string to_string() const;
};

// What append() does when the spool holds max_messages or max_bytes.
enum class full_policy {
    block,       // append() answers `full`; the caller stops reading and retries (back-pressure)
    reject,      // append() answers `rejected`; the caller tells the producer
    drop_oldest, // the oldest waiting (not in-flight) messages are dropped and counted
};
[[nodiscard]] full_policy parse_full_policy(std::string_view text); // throws config_error
[[nodiscard]] std::string_view to_string(full_policy p) noexcept;

struct spool_options {
    std::filesystem::path directory;
    sync_policy sync;
    std::uint64_t segment_bytes = 64ull << 20; // preallocated size of a segment file
    // Bytes kept free at the end of every segment for control records (acks, delivery
    // attempts) so that they can still be written when the disk is full.
    std::uint64_t reserve_bytes = 1ull << 20;
    std::uint64_t max_messages = 0; // 0: no limit (messages not yet acked or dead-lettered)
    std::uint64_t max_bytes = 0;    // 0: no limit (payload bytes of those messages)
    full_policy when_full = full_policy::block;
    std::uint32_t max_attempts = 5;    // deliveries before requeue() dead-letters a message
    std::size_t dedup_window = 100000; // message ids remembered for duplicate suppression
    bool strict = false;               // refuse to open (spool_damaged_error) on damaged records or
                                       // lost sequence numbers (a torn tail is not damage)
    bool read_only = false;        // open and recover in memory only: nothing on disk is changed
    bool dead_letter_spool = true; // keep a dead-letter spool in <directory>/dead-letter
    std::string name = "spool";    // metric label {spool="<name>"}
    metrics_registry* registry = nullptr; // nullptr: metrics_registry::global()
    spool_file_system* fs = nullptr;      // nullptr: posix_file_system()
    // Time source for record timestamps and ages (tests inject one). nullptr: system_clock.
    std::function<std::int64_t()> now_ns;
};

// A failure that makes the spool unusable (cannot create the directory, strict-mode corruption,
// another process holds it). The message names the file and what to do.
class spool_error : public error {
public:
    using error::error;
};

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
    bool read_only = false; // an I/O error stopped writing; `failure` says why
    bool disk_full = false; // ENOSPC: messages wait, confirms are withheld
    std::string failure;
};

// ---- the spool --------------------------------------------------------------------------------

// One message as the spool holds it: the wire frames of an enveloped message (header bytes,
// body bytes) plus the spool's bookkeeping.
struct spooled_message {
    std::uint64_t sequence = 0;
    std::uint32_t attempt = 0; // deliveries so far (this delivery included, for deliver())
    std::int64_t appended_ns = 0;
    std::string_view header; // encoded envelope header (docs/wire-protocol.md §2)
    std::string_view body;
    // The views point into the spool's read buffer: valid until the next call on the spool.
};

// The result of append().
struct append_result {
    enum class status {
        appended,  // queued for the next commit; confirm once committed(ticket)
        duplicate, // the id is already spooled (or queued): confirm once committed(ticket)
        full,      // block policy: nothing stored, try again after acks free space
        rejected,  // reject policy, read-only, or the header is not a valid envelope
    };
    status outcome = status::appended;
    std::uint64_t ticket = 0; // compare with spool::committed_ticket()
    std::string reason;       // for rejected
};

// The spool. Single-threaded: one owner thread calls everything (the durable proxy's actor).
// Opening recovers state from the records (recovery_report); then append() / deliver() /
// ack() / requeue() / dead_letter() change state in memory and queue records, and commit()
// writes them in one write and (by sync policy) one fdatasync. Deliveries and confirms must be
// released only after the commit that covers them (committed_ticket(), deliver() contract).
class spool {
public:
    // Opens (creating the directory if needed) and recovers. Throws spool_error.
    explicit spool(spool_options options);
    spool(const spool&) = delete;
    spool& operator=(const spool&) = delete;
    ~spool(); // commits what is queued (best effort), closes files; noexcept

    [[nodiscard]] const recovery_report& recovery() const noexcept { return recovery_; }
    [[nodiscard]] const spool_options& options() const noexcept { return options_; }

    // Queues a message (header: an encoded envelope header, checked; body: any bytes). A
    // message id already held (within the dedup window) is a duplicate and is not stored twice.
    [[nodiscard]] append_result append(std::string_view header, std::string_view body);
    // The same for a header the caller has already decoded and checked (a valid envelope whose
    // message id is `id`): saves decoding it twice on the hot path.
    [[nodiscard]] append_result append(std::string_view header, std::string_view body,
                                       const message_id& id);

    // Writes everything queued in one write, then syncs per policy. Returns false when nothing
    // could be written (disk full: will retry at the next commit; I/O error: read-only).
    bool commit();
    // Every append whose ticket is <= this is committed (confirm it).
    [[nodiscard]] std::uint64_t committed_ticket() const noexcept { return committed_ticket_; }
    // True when records are queued and not yet committed.
    [[nodiscard]] bool commit_pending() const noexcept;

    // Takes the next message to deliver (redeliveries whose backoff has passed first, then new
    // messages in sequence order), counts the attempt and queues a delivery record. The caller
    // sends it after the next commit(). nullopt: nothing ready.
    [[nodiscard]] std::optional<spooled_message> deliver();
    // Settles a delivered message. False if it is not in flight (unknown, duplicate ack).
    bool ack(std::uint64_t sequence);
    // Returns an in-flight message to the queue, deliverable again after `delay` — or, when its
    // attempts reached max_attempts, dead-letters it (reason given). Returns false if it was
    // not in flight; *dead_lettered tells which happened.
    bool requeue(std::uint64_t sequence, std::chrono::milliseconds delay,
                 bool* dead_lettered = nullptr);
    // Moves an in-flight message to the dead-letter spool with a reason.
    bool dead_letter(std::uint64_t sequence, std::string_view reason);

    // Reads a message by sequence number (any state, also acked, while its segment exists).
    [[nodiscard]] std::optional<spooled_message> read(std::uint64_t sequence);
    // Calls fn for every message record from `from_sequence` on, in order, with whether it is
    // settled (acked, dropped or dead-lettered). Stops when fn returns false.
    void for_each(std::uint64_t from_sequence,
                  const std::function<bool(const spooled_message&, bool settled)>& fn);

    // Settles every waiting message that is not in flight (DLQ purge). Returns how many.
    std::uint64_t purge();

    [[nodiscard]] spool_stats stats() const;
    // The dead-letter spool (nullptr when options.dead_letter_spool is false).
    [[nodiscard]] spool* dead_letters() noexcept { return dead_letters_.get(); }

    // The earliest time a delayed redelivery becomes ready (for the caller's poll timeout).
    [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> next_redelivery() const;

    struct impl;

private:
    spool_options options_;
    recovery_report recovery_;
    std::uint64_t committed_ticket_ = 0;
    std::unique_ptr<impl> impl_;
    std::unique_ptr<spool> dead_letters_;
};

// ---- record format (exposed for zmqkit-spooler and the fuzzer) --------------------------------

namespace spool_format {

inline constexpr std::uint32_t magic = 0x31524b5a; // "ZKR1" little-endian
inline constexpr std::size_t record_header_size = 24;
inline constexpr std::uint32_t max_payload = 256u << 20;

enum class record_type : std::uint8_t {
    message = 1,       // i64 appended_ns, 16-byte message id, u32 header length, header, body
    delivered = 2,     // varint count, then (varint sequence delta, varint attempt) pairs
    acked = 3,         // varint count, then (varint sequence delta, varint message bytes) pairs
    dead_lettered = 4, // u64 sequence, u32 message bytes, then the reason (UTF-8)
    dropped = 5,       // u8 reason (1 full, 2 purged), then a list as in `acked`
    segment_start = 6, // u64 log start, i64 created_ns
    gap = 7,           // u64 first, u64 end, u8 cause (1 corrupt, 2 missing segment)
    log_start = 8,     // u64 log start (written before head segments are reclaimed)
};

// Record flags.
inline constexpr std::uint8_t flag_commit_start = 1; // first record written by a commit

// The synced-position marker: the file `synced` beside the segments, 40 bytes, rewritten at
// offset 0 after every successful fdatasync of a segment (docs/spool-format.md §1, §8).
inline constexpr const char* synced_file_name = "synced";
inline constexpr std::uint32_t synced_magic = 0x4d534b5a; // "ZKSM" little-endian
inline constexpr std::uint16_t synced_version = 1;
inline constexpr std::size_t synced_size = 40;
inline constexpr std::uint64_t max_synced_offset = 8ull << 30; // larger than any segment

// What the marker says: every record with a sequence number below end_sequence was synced;
// the last of them are in the segment whose first sequence is `segment`, whose records then
// ended at byte end_offset.
struct synced_position {
    std::uint64_t segment = 0;
    std::uint64_t end_sequence = 0;
    std::uint64_t end_offset = 0;
    friend bool operator==(const synced_position&, const synced_position&) = default;
};

enum class synced_status {
    ok,
    empty,        // a file of zeros or of no bytes: never written
    short_file,   // fewer than synced_size bytes
    bad_magic,    // not a marker
    bad_version,  // a newer format
    bad_checksum, // damaged (or a torn write of the marker itself)
    impossible,   // checksummed but inconsistent (an end before its segment, more records
                  // than could fit in end_offset bytes)
};

// Encodes a marker (synced_size bytes into out).
void encode_synced(const synced_position& p, std::byte* out) noexcept;
// Parses a marker file's bytes. Never reads past size; never throws.
[[nodiscard]] synced_status parse_synced(const std::byte* data, std::size_t size,
                                         synced_position& out) noexcept;
[[nodiscard]] std::string_view to_string(synced_status s) noexcept;

struct record_view {
    record_type type{};
    std::uint8_t flags = 0;
    std::uint64_t sequence = 0;
    std::span<const std::byte> payload;
};

enum class scan_result {
    ok,          // a valid record
    end,         // zeros (preallocated space) or the end of the buffer: no record here
    incomplete,  // a header or payload that runs past the end of the buffer
    bad_magic,   // not a record
    bad_length,  // length beyond max_payload
    bad_checksum // header or payload damaged
};

// Parses one record at data[0..size). On ok, *consumed is the record's size. Never reads past
// size; never throws; no allocation.
[[nodiscard]] scan_result parse_record(const std::byte* data, std::size_t size, record_view& out,
                                       std::size_t* consumed) noexcept;
// What is wrong with a record, in words ("bad checksum", "incomplete record (cut short)").
[[nodiscard]] std::string_view to_string(scan_result r) noexcept;
// CRC-32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2.
[[nodiscard]] std::uint32_t crc32c(const void* data, std::size_t size,
                                   std::uint32_t crc = 0) noexcept;
// Fills in the 24-byte header of a record whose payload (length bytes) follows it in memory.
void seal_record(std::byte* record, record_type type, std::uint8_t flags, std::uint64_t sequence,
                 std::uint32_t length) noexcept;
// Segment file name for a first sequence number: 20 digits + ".seg".
[[nodiscard]] std::string segment_file_name(std::uint64_t first_sequence);
// The first sequence number a segment file name stands for; nullopt if it is not one.
[[nodiscard]] std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) noexcept;

// LEB128 varints, as used by the delivered/acked/dropped payloads.
[[nodiscard]] bool read_varint(std::span<const std::byte>& in, std::uint64_t& out) noexcept;
void write_varint(std::vector<std::byte>& out, std::uint64_t v);
// Walks a delivered/acked/dropped list: fn(sequence, value) with value the attempt (delivered)
// or the message's bytes (acked, dropped).
// False when the payload is malformed (fn may have been called for a prefix).
[[nodiscard]] bool
decode_sequence_list(std::span<const std::byte> payload,
                     const std::function<void(std::uint64_t, std::uint64_t)>& fn) noexcept;

} // namespace spool_format

} // namespace zmqkit
