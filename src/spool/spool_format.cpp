// Spool record format: parsing, CRC-32C, file names (docs/spool-format.md).
#include <zmqkit/spool.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace zmqkit::spool_format {

namespace {

constexpr std::array<std::uint32_t, 256> make_table() noexcept {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) {
            c = (c & 1u) != 0 ? (c >> 1) ^ 0x82f63b78u : c >> 1; // reflected Castagnoli
        }
        table[i] = c;
    }
    return table;
}
constexpr auto crc_table = make_table();

std::uint32_t crc32c_portable(const std::uint8_t* p, std::size_t n, std::uint32_t crc) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    }
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const std::uint8_t* p, std::size_t n,
                                                             std::uint32_t crc) noexcept {
    std::uint64_t c = crc;
    while (n >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    while (n > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p);
        ++p;
        --n;
    }
    return c32;
}

bool have_sse42() noexcept {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) {
        return false;
    }
    return (ecx & bit_SSE4_2) != 0;
}
#endif

std::uint32_t load32(const std::byte* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v; // little-endian host (x86-64, aarch64); the format is little-endian
}
std::uint64_t load64(const std::byte* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

} // namespace

std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc) noexcept {
    const auto* p = static_cast<const std::uint8_t*>(data);
    crc = ~crc;
#if defined(__x86_64__)
    static const bool hardware = have_sse42();
    if (hardware) {
        return ~crc32c_sse42(p, size, crc);
    }
#endif
    return ~crc32c_portable(p, size, crc);
}

scan_result parse_record(const std::byte* data, std::size_t size, record_view& out,
                         std::size_t* consumed) noexcept {
    if (size < record_header_size) {
        for (std::size_t i = 0; i < size; ++i) {
            if (data[i] != std::byte{0}) {
                return scan_result::incomplete;
            }
        }
        return scan_result::end;
    }
    const std::uint32_t m = load32(data);
    if (m != magic) {
        if (m == 0) {
            bool zeros = true;
            for (std::size_t i = 4; i < record_header_size; ++i) {
                zeros = zeros && data[i] == std::byte{0};
            }
            if (zeros) {
                return scan_result::end;
            }
        }
        return scan_result::bad_magic;
    }
    const std::uint32_t length = load32(data + 16);
    if (length > max_payload) {
        return scan_result::bad_length;
    }
    if (size - record_header_size < length) {
        return scan_result::incomplete;
    }
    std::uint32_t crc = crc32c(data + 4, 16);
    crc = crc32c(data + record_header_size, length, crc);
    if (crc != load32(data + 20)) {
        return scan_result::bad_checksum;
    }
    out.type = static_cast<record_type>(data[4]);
    out.flags = static_cast<std::uint8_t>(data[5]);
    out.sequence = load64(data + 8);
    out.payload = std::span<const std::byte>(data + record_header_size, length);
    if (consumed != nullptr) {
        *consumed = record_header_size + length;
    }
    return scan_result::ok;
}

std::string_view to_string(scan_result r) noexcept {
    switch (r) {
    case scan_result::ok:
        return "ok";
    case scan_result::end:
        return "non-zero bytes after the end of the records";
    case scan_result::incomplete:
        return "incomplete record (cut short)";
    case scan_result::bad_magic:
        return "bad magic (not a record)";
    case scan_result::bad_length:
        return "bad length";
    case scan_result::bad_checksum:
        return "bad checksum";
    }
    return "damaged";
}

void encode_synced(const synced_position& p, std::byte* out) noexcept {
    std::memset(out, 0, synced_size);
    const std::uint32_t m = synced_magic;
    std::memcpy(out, &m, 4);
    const std::uint16_t v = synced_version;
    std::memcpy(out + 4, &v, 2);
    std::memcpy(out + 8, &p.segment, 8);
    std::memcpy(out + 16, &p.end_sequence, 8);
    std::memcpy(out + 24, &p.end_offset, 8);
    const std::uint32_t crc = crc32c(out, 36);
    std::memcpy(out + 36, &crc, 4);
}

synced_status parse_synced(const std::byte* data, std::size_t size, synced_position& out) noexcept {
    bool zeros = true;
    for (std::size_t i = 0; i < std::min(size, synced_size); ++i) {
        zeros = zeros && data[i] == std::byte{0};
    }
    if (zeros) {
        return synced_status::empty;
    }
    if (size < synced_size) {
        return synced_status::short_file;
    }
    if (load32(data) != synced_magic) {
        return synced_status::bad_magic;
    }
    std::uint16_t version = 0;
    std::memcpy(&version, data + 4, 2);
    if (crc32c(data, 36) != load32(data + 36)) {
        return synced_status::bad_checksum;
    }
    if (version != synced_version) {
        return synced_status::bad_version;
    }
    synced_position p;
    p.segment = load64(data + 8);
    p.end_sequence = load64(data + 16);
    p.end_offset = load64(data + 24);
    // A segment starts with its segment_start record (40 bytes); every record is at least 24
    // bytes; no segment is larger than max_synced_offset.
    if (p.end_sequence <= p.segment || p.end_offset < record_header_size + 16 ||
        p.end_offset > max_synced_offset ||
        p.end_sequence - p.segment > p.end_offset / record_header_size) {
        return synced_status::impossible;
    }
    out = p;
    return synced_status::ok;
}

std::string_view to_string(synced_status s) noexcept {
    switch (s) {
    case synced_status::ok:
        return "ok";
    case synced_status::empty:
        return "never written";
    case synced_status::short_file:
        return "shorter than 40 bytes";
    case synced_status::bad_magic:
        return "bad magic (not a marker)";
    case synced_status::bad_version:
        return "an unknown version";
    case synced_status::bad_checksum:
        return "bad checksum";
    case synced_status::impossible:
        return "impossible values";
    }
    return "damaged";
}

void seal_record(std::byte* record, record_type type, std::uint8_t flags, std::uint64_t sequence,
                 std::uint32_t length) noexcept {
    const std::uint32_t m = magic;
    std::memcpy(record, &m, 4);
    record[4] = static_cast<std::byte>(type);
    record[5] = static_cast<std::byte>(flags);
    record[6] = std::byte{0};
    record[7] = std::byte{0};
    std::memcpy(record + 8, &sequence, 8);
    std::memcpy(record + 16, &length, 4);
    std::uint32_t crc = crc32c(record + 4, 16);
    crc = crc32c(record + record_header_size, length, crc);
    std::memcpy(record + 20, &crc, 4);
}

std::string segment_file_name(std::uint64_t first_sequence) {
    char name[32];
    std::snprintf(name, sizeof name, "%020llu.seg",
                  static_cast<unsigned long long>(first_sequence));
    return name;
}

std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) noexcept {
    if (name.size() != 24 || name.substr(20) != ".seg") {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 20; ++i) {
        const char c = name[i];
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - digit) / 10) {
            return std::nullopt;
        }
        v = v * 10 + digit;
    }
    return v;
}

bool read_varint(std::span<const std::byte>& in, std::uint64_t& out) noexcept {
    out = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (in.empty()) {
            return false;
        }
        const auto b = static_cast<std::uint8_t>(in[0]);
        in = in.subspan(1);
        out |= static_cast<std::uint64_t>(b & 0x7fu) << shift;
        if ((b & 0x80u) == 0) {
            return true;
        }
    }
    return false;
}

void write_varint(std::vector<std::byte>& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<std::byte>((v & 0x7fu) | 0x80u));
        v >>= 7;
    }
    out.push_back(static_cast<std::byte>(v));
}

bool decode_sequence_list(std::span<const std::byte> payload,
                          const std::function<void(std::uint64_t, std::uint64_t)>& fn) noexcept {
    std::uint64_t count = 0;
    if (!read_varint(payload, count)) {
        return false;
    }
    std::uint64_t sequence = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        std::uint64_t delta = 0;
        std::uint64_t value = 0;
        if (!read_varint(payload, delta) || !read_varint(payload, value)) {
            return false;
        }
        if (sequence + delta < sequence) {
            return false;
        }
        sequence += delta;
        fn(sequence, value);
    }
    return payload.empty();
}

} // namespace zmqkit::spool_format

// ---- consumer groups --------------------------------------------------------------------------

namespace zmqkit::spool_format {

namespace {

void append_le(std::vector<std::byte>& out, std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xffu));
    }
}

std::uint64_t take_le(std::span<const std::byte>& in, std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        v |= std::uint64_t{std::to_integer<std::uint8_t>(in[i])} << (8 * i);
    }
    in = in.subspan(n);
    return v;
}

void append_text(std::vector<std::byte>& out, std::string_view text) {
    append_le(out, text.size(), 2);
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    out.insert(out.end(), p, p + text.size());
}

bool take_text(std::span<const std::byte>& in, std::string& out) {
    if (in.size() < 2) {
        return false;
    }
    const auto n = static_cast<std::size_t>(take_le(in, 2));
    if (in.size() < n) {
        return false;
    }
    out.assign(reinterpret_cast<const char*>(in.data()), n);
    in = in.subspan(n);
    return true;
}

constexpr std::size_t group_fixed = 1 + 4 + 4 + 8 + 8;

// A group record (without the groups file's `lost`) from the front of `in`.
bool take_group(std::span<const std::byte>& in, group_record& out) {
    if (in.size() < group_fixed) {
        return false;
    }
    const auto event = static_cast<std::uint8_t>(take_le(in, 1));
    if (event < 1 || event > 3) {
        return false;
    }
    out.event = static_cast<group_event>(event);
    out.id = static_cast<std::uint32_t>(take_le(in, 4));
    out.epoch = static_cast<std::uint32_t>(take_le(in, 4));
    out.floor = take_le(in, 8);
    out.time_ns = static_cast<std::int64_t>(take_le(in, 8));
    return take_text(in, out.name) && take_text(in, out.start);
}

} // namespace

void encode_group_record(const group_record& g, std::vector<std::byte>& out) {
    append_le(out, static_cast<std::uint8_t>(g.event), 1);
    append_le(out, g.id, 4);
    append_le(out, g.epoch, 4);
    append_le(out, g.floor, 8);
    append_le(out, static_cast<std::uint64_t>(g.time_ns), 8);
    append_text(out, g.name);
    append_text(out, g.start);
}

bool parse_group_record(std::span<const std::byte> payload, group_record& out) noexcept {
    try {
        return take_group(payload, out) && payload.empty();
    } catch (...) { // bad_alloc of a name: not a record we can use
        return false;
    }
}

bool read_group_prefix(std::span<const std::byte>& in, std::uint32_t& id,
                       std::uint32_t& epoch) noexcept {
    std::uint64_t i = 0;
    std::uint64_t e = 0;
    if (!read_varint(in, i) || !read_varint(in, e) || i > UINT32_MAX || e > UINT32_MAX) {
        return false;
    }
    id = static_cast<std::uint32_t>(i);
    epoch = static_cast<std::uint32_t>(e);
    return true;
}

void encode_groups_file(const groups_snapshot& g, std::vector<std::byte>& out) {
    out.clear();
    append_le(out, groups_magic, 4);
    append_le(out, groups_version, 2);
    append_le(out, 0, 2);
    append_le(out, g.next_id, 4);
    append_le(out, static_cast<std::uint64_t>(g.reclaimed_ns), 8);
    append_le(out, g.groups.size(), 4);
    std::vector<std::byte> one;
    for (const auto& r : g.groups) {
        one.clear();
        encode_group_record(r, one);
        append_le(one, r.lost, 8);
        append_le(out, one.size(), 4);
        out.insert(out.end(), one.begin(), one.end());
    }
    append_le(out, crc32c(out.data(), out.size()), 4);
}

bool parse_groups_file(const std::byte* data, std::size_t size, groups_snapshot& out,
                       std::string& why) {
    out = groups_snapshot{};
    if (size < 28) {
        why = "too short (" + std::to_string(size) + " bytes)";
        return false;
    }
    std::span<const std::byte> in(data, size - 4);
    std::span<const std::byte> tail(data + size - 4, 4);
    if (take_le(in, 4) != groups_magic) {
        why = "not a groups file (bad magic)";
        return false;
    }
    if (crc32c(data, size - 4) != static_cast<std::uint32_t>(take_le(tail, 4))) {
        why = "bad checksum (damaged)";
        return false;
    }
    if (const auto version = take_le(in, 2); version != groups_version) {
        why = "version " + std::to_string(version) + " is newer than this zmqkit reads (" +
              std::to_string(groups_version) + ")";
        return false;
    }
    if (take_le(in, 2) != 0) {
        why = "reserved bytes are not zero";
        return false;
    }
    out.next_id = static_cast<std::uint32_t>(take_le(in, 4));
    out.reclaimed_ns = static_cast<std::int64_t>(take_le(in, 8));
    const std::uint64_t count = take_le(in, 4);
    for (std::uint64_t k = 0; k < count; ++k) {
        if (in.size() < 4) {
            why = "group " + std::to_string(k + 1) + " of " + std::to_string(count) + " is missing";
            return false;
        }
        const auto n = static_cast<std::size_t>(take_le(in, 4));
        if (n > in.size() || n < group_fixed + 4 + 8) {
            why =
                "group " + std::to_string(k + 1) + " has an impossible length " + std::to_string(n);
            return false;
        }
        std::span<const std::byte> one = in.subspan(0, n);
        in = in.subspan(n);
        group_record r;
        if (!take_group(one, r) || one.size() != 8) {
            why = "group " + std::to_string(k + 1) + " is malformed";
            return false;
        }
        r.lost = take_le(one, 8);
        out.groups.push_back(std::move(r));
    }
    if (!in.empty()) {
        why = std::to_string(in.size()) + " unexpected byte(s) after the groups";
        return false;
    }
    return true;
}

} // namespace zmqkit::spool_format
