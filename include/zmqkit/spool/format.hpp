// zmqkit — the spool's record format (docs/spool-format.md), exposed for zmqkit-spooler and the
// fuzzers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit {

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
    // Consumer groups (docs/spool-format.md §10):
    group = 9,            // u8 event (1 created, 2 reset, 3 deleted), u32 id, u32 epoch, u64 floor,
                          // i64 time_ns, u16 name length, name, then the start position (text)
    group_delivered = 10, // varint group id, varint epoch, then a list as in `delivered`
    group_acked = 11,     // varint group id, varint epoch, then a list as in `acked`
    group_dead_lettered = 12, // varint group id, varint epoch, then as in `dead_lettered`
};

// ---- consumer groups ----

enum class group_event : std::uint8_t { created = 1, reset = 2, deleted = 3 };

// A `group` record's payload, or one group of the groups file.
struct group_record {
    group_event event = group_event::created;
    std::uint32_t id = 0;
    std::uint32_t epoch = 0; // bumped by every reset: older delivery records no longer count
    std::uint64_t floor = 0; // every sequence below is settled for the group
    std::int64_t time_ns = 0;
    std::string name;
    std::string start;      // group_start::to_string() of its creation (or last reset)
    std::uint64_t lost = 0; // groups file only: messages retention removed unsettled
};
void encode_group_record(const group_record& g, std::vector<std::byte>& out);
// False if the payload is not one (never reads past it, never throws).
[[nodiscard]] bool parse_group_record(std::span<const std::byte> payload,
                                      group_record& out) noexcept;
// The prefix of group_delivered / group_acked / group_dead_lettered. Advances `in`.
[[nodiscard]] bool read_group_prefix(std::span<const std::byte>& in, std::uint32_t& id,
                                     std::uint32_t& epoch) noexcept;

// The groups file `groups` beside the segments: the groups and their floors, rewritten (a new
// file renamed over the old one) before head segments are reclaimed, since the group records
// in them go too. "ZKG1", u16 version, u16 0, u32 next group id, i64 reclaimed_ns, u32 count,
// the groups (each u32 length + a group record with lost appended), u32 CRC-32C of everything
// before it.
inline constexpr const char* groups_file_name = "groups";
inline constexpr std::uint32_t groups_magic = 0x31474b5a; // "ZKG1" little-endian
inline constexpr std::uint16_t groups_version = 1;
struct groups_snapshot {
    std::uint32_t next_id = 1;
    std::int64_t reclaimed_ns = 0; // newest append time of the segments reclaimed so far
    std::vector<group_record> groups;
};
void encode_groups_file(const groups_snapshot& g, std::vector<std::byte>& out);
// Parses a groups file's bytes; false with `why` (in words) if it is not a valid one. Never
// reads past size; never throws.
[[nodiscard]] bool parse_groups_file(const std::byte* data, std::size_t size, groups_snapshot& out,
                                     std::string& why);

// Record flags.
inline constexpr std::uint8_t flag_commit_start = 1; // first record written by a commit
// A message for one queue only (a requeued dead letter): its envelope's user header
// target_group_header names the consumer group ("" the default queue); it is settled for
// every other queue as it is written (docs/spool-format.md §10).
inline constexpr std::uint8_t flag_targeted = 2;
inline constexpr const char* target_group_header = "zmqkit-target-group";
// The user headers of a dead letter's copy (the reason, the sequence it had, the spool it came
// from, the consumer group it failed in).
inline constexpr const char* dead_letter_header_prefix = "zmqkit-dead-letter-";
inline constexpr const char* dead_letter_group_header = "zmqkit-dead-letter-group";

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
