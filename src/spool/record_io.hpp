// Private to zmqkit::spool: the byte-level helpers every part of the spool shares — fixed-width
// fields, the message record's payload, a buffered reader over a segment file — and the
// constants of the record format that docs/spool-format.md fixes.
#pragma once

#include <zmqkit/message_id.hpp>
#include <zmqkit/spool/file_system.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::detail {

inline constexpr std::size_t read_chunk = 1u << 20;
inline constexpr std::uint64_t index_stride = 16;
inline constexpr std::size_t message_fixed = 8 + 16 + 4; // appended_ns, id, header length
inline constexpr std::uint8_t drop_reason_full = 1;
inline constexpr std::uint8_t drop_reason_purged = 2;
inline constexpr std::uint8_t gap_cause_corrupt = 1;
inline constexpr std::uint8_t gap_cause_missing = 2;

inline std::string errno_text(int e) {
    return std::strerror(e);
}

inline void put64(std::vector<std::byte>& out, std::uint64_t v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + 8);
}
inline void put32(std::vector<std::byte>& out, std::uint32_t v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + 4);
}
inline std::uint64_t get64(const std::byte* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline std::uint32_t get32(const std::byte* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// The payload of a message record: i64 appended_ns, 16-byte id, u32 header length, header, body.
struct message_payload {
    std::int64_t appended_ns = 0;
    message_id id;
    std::string_view header;
    std::string_view body;
};

inline bool parse_message_payload(std::span<const std::byte> p, message_payload& out) noexcept {
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

} // namespace zmqkit::detail
