// Header encoder and decoder. Hand-written over the msgpack format (not msgpack-c's object
// model) so that encode and decode never allocate beyond the header's own strings and never
// recurse: the decoder reads a fixed schema with a bounds check before every read.
#include <zmqkit/codec.hpp>

#include <array>
#include <cstring>

namespace zmqkit {
namespace {

// Header map keys (docs/wire-protocol.md §Header).
enum key : std::uint8_t {
    key_version = 0,
    key_id = 1,
    key_correlation_id = 2,
    key_causation_id = 3,
    key_timestamp = 4,
    key_type = 5,
    key_attempt = 6,
    key_reply_to = 7,
    key_traceparent = 8,
    key_content_type = 9,
    key_sequence = 10,
    key_user_headers = 11,
    key_publisher_id = 12,
    key_last_known = key_publisher_id, // larger keys are skipped (added by later minor versions)
};

// ---- encoding --------------------------------------------------------------------------

constexpr std::size_t uint_size(std::uint64_t v) noexcept {
    if (v < 128) {
        return 1;
    }
    if (v <= 0xFF) {
        return 2;
    }
    if (v <= 0xFFFF) {
        return 3;
    }
    if (v <= 0xFFFFFFFF) {
        return 5;
    }
    return 9;
}

constexpr std::size_t str_header_size(std::size_t n) noexcept {
    if (n < 32) {
        return 1;
    }
    if (n <= 0xFF) {
        return 2;
    }
    if (n <= 0xFFFF) {
        return 3;
    }
    return 5;
}

constexpr std::size_t bin_header_size(std::size_t n) noexcept {
    if (n <= 0xFF) {
        return 2;
    }
    if (n <= 0xFFFF) {
        return 3;
    }
    return 5;
}

constexpr std::size_t map_header_size(std::size_t n) noexcept {
    if (n < 16) {
        return 1;
    }
    if (n <= 0xFFFF) {
        return 3;
    }
    return 5;
}

class writer {
public:
    explicit writer(std::byte* out) noexcept : p_(out) {}
    [[nodiscard]] std::byte* position() const noexcept { return p_; }

    void byte(unsigned v) noexcept { *p_++ = static_cast<std::byte>(v); }
    void be(std::uint64_t v, unsigned bytes) noexcept {
        for (unsigned i = bytes; i-- > 0;) {
            byte(static_cast<unsigned>((v >> (8U * i)) & 0xFFU));
        }
    }
    void uint(std::uint64_t v) noexcept {
        if (v < 128) {
            byte(static_cast<unsigned>(v));
        } else if (v <= 0xFF) {
            byte(0xcc);
            be(v, 1);
        } else if (v <= 0xFFFF) {
            byte(0xcd);
            be(v, 2);
        } else if (v <= 0xFFFFFFFF) {
            byte(0xce);
            be(v, 4);
        } else {
            byte(0xcf);
            be(v, 8);
        }
    }
    void map(std::size_t n) noexcept {
        if (n < 16) {
            byte(0x80U | static_cast<unsigned>(n));
        } else if (n <= 0xFFFF) {
            byte(0xde);
            be(n, 2);
        } else {
            byte(0xdf);
            be(n, 4);
        }
    }
    void raw(const void* data, std::size_t n) noexcept {
        if (n != 0) {
            std::memcpy(p_, data, n);
            p_ += n;
        }
    }
    void str(std::string_view s) noexcept {
        const auto n = s.size();
        if (n < 32) {
            byte(0xa0U | static_cast<unsigned>(n));
        } else if (n <= 0xFF) {
            byte(0xd9);
            be(n, 1);
        } else if (n <= 0xFFFF) {
            byte(0xda);
            be(n, 2);
        } else {
            byte(0xdb);
            be(n, 4);
        }
        raw(s.data(), n);
    }
    void bin(const void* data, std::size_t n) noexcept {
        if (n <= 0xFF) {
            byte(0xc4);
            be(n, 1);
        } else if (n <= 0xFFFF) {
            byte(0xc5);
            be(n, 2);
        } else {
            byte(0xc6);
            be(n, 4);
        }
        raw(data, n);
    }

private:
    std::byte* p_;
};

struct field_plan {
    bool correlation;
    bool causation;
    std::size_t count;
};

field_plan plan(const header& h) noexcept {
    field_plan p{};
    p.correlation = !h.correlation_id.is_nil() && h.correlation_id != h.id;
    p.causation = !h.causation_id.is_nil();
    p.count = 3 // version, id, timestamp
              + (p.correlation ? 1U : 0U) + (p.causation ? 1U : 0U) + (h.type.empty() ? 0U : 1U) +
              (h.attempt > 1 ? 1U : 0U) + (h.reply_to.empty() ? 0U : 1U) +
              (h.traceparent.empty() ? 0U : 1U) + (h.content_type.empty() ? 0U : 1U) +
              (h.sequence != 0 ? 1U : 0U) + (h.user_headers.empty() ? 0U : 1U) +
              (h.publisher_id.is_nil() ? 0U : 1U);
    p.count += h.unknown.count; // written back verbatim after the known keys
    return p;
}

constexpr std::size_t id_field_size = 1 + 2 + message_id::size;

std::size_t str_field_size(const std::string& s) noexcept {
    return s.empty() ? 0 : 1 + str_header_size(s.size()) + s.size();
}

// ---- decoding --------------------------------------------------------------------------

class reader {
public:
    reader(const void* data, std::size_t size) noexcept
        : p_(static_cast<const std::uint8_t*>(data)), end_(p_ + size), begin_(p_) {}

    [[nodiscard]] bool at_end() const noexcept { return p_ == end_; }
    [[nodiscard]] std::size_t remaining() const noexcept {
        return static_cast<std::size_t>(end_ - p_);
    }
    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_of(p_); }
    [[nodiscard]] std::uint64_t offset_of(const std::uint8_t* at) const noexcept {
        return static_cast<std::uint64_t>(at - begin_);
    }

    bool peek(std::uint8_t& b) const noexcept {
        if (p_ == end_) {
            return false;
        }
        b = *p_;
        return true;
    }
    bool take(std::uint8_t& b) noexcept {
        if (p_ == end_) {
            return false;
        }
        b = *p_++;
        return true;
    }
    bool be(unsigned bytes, std::uint64_t& v) noexcept {
        if (remaining() < bytes) {
            return false;
        }
        v = 0;
        for (unsigned i = 0; i < bytes; ++i) {
            v = (v << 8U) | *p_++;
        }
        return true;
    }
    bool skip(std::uint64_t n) noexcept {
        if (remaining() < n) {
            return false;
        }
        p_ += n;
        return true;
    }
    const std::uint8_t* here() const noexcept { return p_; }

private:
    const std::uint8_t* p_;
    const std::uint8_t* end_;
    const std::uint8_t* begin_;
};

enum class read_result { ok, truncated, wrong_type, too_deep };

read_result read_map_header(reader& r, std::uint64_t& n) noexcept {
    std::uint8_t b = 0;
    if (!r.take(b)) {
        return read_result::truncated;
    }
    if ((b & 0xF0U) == 0x80U) {
        n = b & 0x0FU;
        return read_result::ok;
    }
    if (b == 0xde) {
        return r.be(2, n) ? read_result::ok : read_result::truncated;
    }
    if (b == 0xdf) {
        return r.be(4, n) ? read_result::ok : read_result::truncated;
    }
    return read_result::wrong_type;
}

// Any non-negative integer encoding (positive fixint, uint8..64, int8..64 >= 0).
read_result read_uint(reader& r, std::uint64_t& v) noexcept {
    std::uint8_t b = 0;
    if (!r.take(b)) {
        return read_result::truncated;
    }
    if (b < 0x80) {
        v = b;
        return read_result::ok;
    }
    unsigned bytes = 0;
    bool is_signed = false;
    switch (b) {
    case 0xcc:
        bytes = 1;
        break;
    case 0xcd:
        bytes = 2;
        break;
    case 0xce:
        bytes = 4;
        break;
    case 0xcf:
        bytes = 8;
        break;
    case 0xd0:
        bytes = 1;
        is_signed = true;
        break;
    case 0xd1:
        bytes = 2;
        is_signed = true;
        break;
    case 0xd2:
        bytes = 4;
        is_signed = true;
        break;
    case 0xd3:
        bytes = 8;
        is_signed = true;
        break;
    default:
        return read_result::wrong_type;
    }
    if (!r.be(bytes, v)) {
        return read_result::truncated;
    }
    if (is_signed && ((v >> (8U * bytes - 1U)) & 1U) != 0) {
        return read_result::wrong_type; // negative
    }
    return read_result::ok;
}

// str or bin: returns a view into the input.
read_result read_bytes(reader& r, const char*& data, std::size_t& n, bool allow_str,
                       bool allow_bin) noexcept {
    std::uint8_t b = 0;
    if (!r.take(b)) {
        return read_result::truncated;
    }
    std::uint64_t len = 0;
    bool is_str = true;
    if ((b & 0xE0U) == 0xA0U) {
        len = b & 0x1FU;
    } else {
        unsigned bytes = 0;
        switch (b) {
        case 0xd9:
            bytes = 1;
            break;
        case 0xda:
            bytes = 2;
            break;
        case 0xdb:
            bytes = 4;
            break;
        case 0xc4:
            bytes = 1;
            is_str = false;
            break;
        case 0xc5:
            bytes = 2;
            is_str = false;
            break;
        case 0xc6:
            bytes = 4;
            is_str = false;
            break;
        default:
            return read_result::wrong_type;
        }
        if (!r.be(bytes, len)) {
            return read_result::truncated;
        }
    }
    if ((is_str && !allow_str) || (!is_str && !allow_bin)) {
        return read_result::wrong_type;
    }
    data = reinterpret_cast<const char*>(r.here());
    n = static_cast<std::size_t>(len);
    return r.skip(len) ? read_result::ok : read_result::truncated;
}

// Skips one complete value of any type without recursion. `level` is the nesting level of
// the value (2 for a key or value of the header map): arrays and maps may open down to level
// max_header_nesting, deeper is too_deep (docs/wire-protocol.md §2).
read_result skip_value(reader& r, unsigned level) noexcept {
    std::array<std::uint64_t, max_header_nesting> left{}; // items still to read, per open level
    unsigned open = 0;
    do {
        std::uint8_t b = 0;
        if (!r.take(b)) {
            return read_result::truncated;
        }
        std::uint64_t n = 0;
        std::uint64_t items = 0;
        bool container = false;
        bool ok = true;
        if (b < 0x80 || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            // fixint, nil, bool
        } else if ((b & 0xF0U) == 0x80U) {
            container = true;
            items = 2U * (b & 0x0FU);
        } else if ((b & 0xF0U) == 0x90U) {
            container = true;
            items = b & 0x0FU;
        } else if ((b & 0xE0U) == 0xA0U) {
            ok = r.skip(b & 0x1FU);
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                ok = r.be(1, n) && r.skip(n);
                break;
            case 0xc5:
            case 0xda:
                ok = r.be(2, n) && r.skip(n);
                break;
            case 0xc6:
            case 0xdb:
                ok = r.be(4, n) && r.skip(n);
                break;
            case 0xc7:
                ok = r.be(1, n) && r.skip(n + 1);
                break;
            case 0xc8:
                ok = r.be(2, n) && r.skip(n + 1);
                break;
            case 0xc9:
                ok = r.be(4, n) && r.skip(n + 1);
                break;
            case 0xca:
                ok = r.skip(4);
                break;
            case 0xcb:
                ok = r.skip(8);
                break;
            case 0xcc:
            case 0xd0:
                ok = r.skip(1);
                break;
            case 0xcd:
            case 0xd1:
                ok = r.skip(2);
                break;
            case 0xce:
            case 0xd2:
                ok = r.skip(4);
                break;
            case 0xcf:
            case 0xd3:
                ok = r.skip(8);
                break;
            case 0xd4:
                ok = r.skip(2);
                break;
            case 0xd5:
                ok = r.skip(3);
                break;
            case 0xd6:
                ok = r.skip(5);
                break;
            case 0xd7:
                ok = r.skip(9);
                break;
            case 0xd8:
                ok = r.skip(17);
                break;
            case 0xdc:
                container = true;
                ok = r.be(2, items);
                break;
            case 0xdd:
                container = true;
                ok = r.be(4, items);
                break;
            case 0xde:
                container = true;
                ok = r.be(2, n);
                items = 2 * n;
                break;
            case 0xdf:
                container = true;
                ok = r.be(4, n);
                items = 2 * n;
                break;
            default:
                return read_result::wrong_type; // 0xc1: never used
            }
        }
        if (!ok) {
            return read_result::truncated;
        }
        if (container) {
            if (level + open > max_header_nesting) {
                return read_result::too_deep;
            }
            // Every item needs at least one byte: a count larger than the rest of the input is
            // a truncation, found here instead of after looping billions of times.
            if (items > r.remaining()) {
                return read_result::truncated;
            }
            if (items > 0) {
                left[open++] = items;
                continue;
            }
        }
        // One item is complete: so is every container it was the last item of.
        while (open > 0 && --left[open - 1] == 0) {
            --open;
        }
    } while (open > 0);
    return read_result::ok;
}

// What a value that starts with byte b is, for "must be X, got Y" (an integer field read
// int8..int64 only as wrong_type when it is negative).
std::string_view found_type(std::uint8_t b, bool integer_field) noexcept {
    if (b < 0x80 || (b >= 0xcc && b <= 0xcf)) {
        return "an unsigned integer";
    }
    if (b >= 0xe0) {
        return "a negative integer";
    }
    if (b >= 0xd0 && b <= 0xd3) {
        return integer_field ? "a negative integer" : "a signed integer";
    }
    if ((b & 0xE0U) == 0xA0U || (b >= 0xd9 && b <= 0xdb)) {
        return "a string";
    }
    if ((b & 0xF0U) == 0x80U || b == 0xde || b == 0xdf) {
        return "a map";
    }
    if ((b & 0xF0U) == 0x90U || b == 0xdc || b == 0xdd) {
        return "an array";
    }
    switch (b) {
    case 0xc0:
        return "nil";
    case 0xc2:
    case 0xc3:
        return "a boolean";
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return "bin";
    case 0xca:
    case 0xcb:
        return "a float";
    case 0xc1:
        return "the reserved byte 0xc1";
    default:
        return "an extension value";
    }
}

decode_status fail(decode_errc code, std::string_view field = {}, std::uint64_t value = 0,
                   std::string_view detail = {}) {
    return decode_status{code, field, value, detail};
}

// The value of `field` that starts at `start` could not be read.
decode_status field_error(read_result rr, std::string_view field, const reader& r,
                          const std::uint8_t* start, bool integer_field = false) {
    switch (rr) {
    case read_result::truncated:
        return fail(decode_errc::truncated, field, r.offset());
    case read_result::too_deep:
        static_assert(max_header_nesting == 32, "say the limit in the text below");
        return fail(decode_errc::bad_field, field, r.offset_of(start),
                    "a value nested more than 32 levels deep");
    default:
        return fail(decode_errc::bad_field, field, r.offset_of(start),
                    found_type(*start, integer_field));
    }
}

decode_status read_id(reader& r, message_id& id, std::string_view field) {
    const char* data = nullptr;
    std::size_t n = 0;
    const auto* start = r.here();
    if (auto rr = read_bytes(r, data, n, false, true); rr != read_result::ok) {
        return field_error(rr, field, r, start);
    }
    if (n != message_id::size) {
        return fail(decode_errc::bad_field, field, r.offset_of(start), "bin of another length");
    }
    std::array<std::uint8_t, message_id::size> bytes{};
    std::memcpy(bytes.data(), data, n);
    id = message_id{bytes};
    return {};
}

decode_status read_string(reader& r, std::string& out, std::string_view field) {
    const char* data = nullptr;
    std::size_t n = 0;
    const auto* start = r.here();
    if (auto rr = read_bytes(r, data, n, true, true); rr != read_result::ok) {
        return field_error(rr, field, r, start);
    }
    out.assign(data, n);
    return {};
}

// Appends to out.user_headers[used ..], assigning into the entries a reused header already has
// (their strings keep their capacity: no allocation per message for a steady set of headers).
decode_status read_user_headers(reader& r, header& out, std::size_t& used) {
    std::uint64_t n = 0;
    const auto* start = r.here();
    if (auto rr = read_map_header(r, n); rr != read_result::ok) {
        return field_error(rr, "user_headers", r, start);
    }
    if (n > r.remaining() / 2) {
        return fail(decode_errc::truncated, "user_headers", r.offset());
    }
    out.user_headers.reserve(used + static_cast<std::size_t>(n));
    for (std::uint64_t i = 0; i < n; ++i) {
        const char* kd = nullptr;
        std::size_t kn = 0;
        const char* vd = nullptr;
        std::size_t vn = 0;
        const auto* name_start = r.here();
        if (auto rr = read_bytes(r, kd, kn, true, false); rr != read_result::ok) {
            return field_error(rr, "user_headers", r, name_start);
        }
        const auto* value_start = r.here();
        if (auto rr = read_bytes(r, vd, vn, true, true); rr != read_result::ok) {
            return field_error(rr, "user_headers", r, value_start);
        }
        if (used < out.user_headers.size()) {
            out.user_headers[used].first.assign(kd, kn);
            out.user_headers[used].second.assign(vd, vn);
        } else {
            out.user_headers.emplace_back(std::string(kd, kn), std::string(vd, vn));
        }
        ++used;
    }
    return {};
}

} // namespace

std::string_view to_string(decode_errc code) noexcept {
    switch (code) {
    case decode_errc::ok:
        return "ok";
    case decode_errc::truncated:
        return "truncated";
    case decode_errc::not_envelope:
        return "not_envelope";
    case decode_errc::unsupported_version:
        return "unsupported_version";
    case decode_errc::bad_field:
        return "bad_field";
    case decode_errc::missing_field:
        return "missing_field";
    case decode_errc::trailing_bytes:
        return "trailing_bytes";
    case decode_errc::bad_frame_count:
        return "bad_frame_count";
    }
    return "unknown";
}

namespace {

// What a field must hold, for "header field 'F' must be X, got Y".
std::string_view expected_value(std::string_view field) noexcept {
    if (field == "version") {
        return "a positive integer";
    }
    if (field == "id") {
        return "bin of 16 bytes, not all zero";
    }
    if (field == "correlation_id" || field == "causation_id" || field == "publisher_id") {
        return "bin of 16 bytes";
    }
    if (field == "timestamp" || field == "sequence") {
        return "an unsigned integer";
    }
    if (field == "attempt") {
        return "an integer from 1 to 4294967295";
    }
    if (field == "user_headers") {
        return "a map of str names to bin (or str) values";
    }
    if (field == "unknown_key") {
        return "a msgpack value (it is skipped)";
    }
    return "str (or bin)"; // type, reply_to, traceparent, content_type
}

} // namespace

std::string decode_status::message() const {
    const std::string f(field);
    const std::string d(detail);
    switch (code) {
    case decode_errc::ok:
        return "ok";
    case decode_errc::truncated:
        return "truncated header: the frame ends inside " +
               (f.empty() ? std::string("a value") : "field '" + f + "'") + " (at byte " +
               std::to_string(value) + ")";
    case decode_errc::not_envelope:
        return "not a zmqkit envelope: " + (d.empty() ? std::string("not a msgpack map") : d) +
               " (a header is a msgpack map whose first key is 0, the protocol version)";
    case decode_errc::unsupported_version:
        return "unsupported protocol version " + std::to_string(value) + " (this build speaks " +
               std::to_string(protocol_version) +
               "): the sender speaks a later major version; upgrade the receiver or downgrade "
               "the sender";
    case decode_errc::bad_field:
        return "header field '" + f + "' must be " + std::string(expected_value(field)) + ", got " +
               (d.empty() ? std::string("something else") : d) + " (at byte " +
               std::to_string(value) + ")";
    case decode_errc::missing_field:
        return "header lacks the required field '" + f + "'";
    case decode_errc::trailing_bytes:
        return "header frame has extra bytes after the header map (from byte " +
               std::to_string(value) + ")";
    case decode_errc::bad_frame_count:
        return "wrong number of frames for an enveloped message: got " + std::to_string(value) +
               " (" + f + ")";
    }
    return "unknown decode error";
}

std::size_t encoded_size(const header& h) noexcept {
    const auto p = plan(h);
    std::size_t n =
        map_header_size(p.count) + 2 /* version */ + id_field_size + 1 + uint_size(h.timestamp_ns);
    n += p.correlation ? id_field_size : 0;
    n += p.causation ? id_field_size : 0;
    n += str_field_size(h.type);
    n += h.attempt > 1 ? 1 + uint_size(h.attempt) : 0; // 0 is not an attempt: written as 1
    n += str_field_size(h.reply_to);
    n += str_field_size(h.traceparent);
    n += str_field_size(h.content_type);
    n += h.sequence != 0 ? 1 + uint_size(h.sequence) : 0;
    if (!h.user_headers.empty()) {
        n += 1 + map_header_size(h.user_headers.size());
        for (const auto& [k, v] : h.user_headers) {
            n += str_header_size(k.size()) + k.size() + bin_header_size(v.size()) + v.size();
        }
    }
    n += h.publisher_id.is_nil() ? 0 : id_field_size;
    n += h.unknown.bytes.size();
    return n;
}

std::size_t encode_header(const header& h, std::byte* out) noexcept {
    const auto p = plan(h);
    writer w(out);
    w.map(p.count);
    w.byte(key_version);
    w.uint(protocol_version);
    w.byte(key_id);
    w.bin(h.id.data(), message_id::size);
    if (p.correlation) {
        w.byte(key_correlation_id);
        w.bin(h.correlation_id.data(), message_id::size);
    }
    if (p.causation) {
        w.byte(key_causation_id);
        w.bin(h.causation_id.data(), message_id::size);
    }
    w.byte(key_timestamp);
    w.uint(h.timestamp_ns);
    if (!h.type.empty()) {
        w.byte(key_type);
        w.str(h.type);
    }
    if (h.attempt > 1) {
        w.byte(key_attempt);
        w.uint(h.attempt);
    }
    if (!h.reply_to.empty()) {
        w.byte(key_reply_to);
        w.str(h.reply_to);
    }
    if (!h.traceparent.empty()) {
        w.byte(key_traceparent);
        w.str(h.traceparent);
    }
    if (!h.content_type.empty()) {
        w.byte(key_content_type);
        w.str(h.content_type);
    }
    if (h.sequence != 0) {
        w.byte(key_sequence);
        w.uint(h.sequence);
    }
    if (!h.user_headers.empty()) {
        w.byte(key_user_headers);
        w.map(h.user_headers.size());
        for (const auto& [k, v] : h.user_headers) {
            w.str(k);
            w.bin(v.data(), v.size());
        }
    }
    if (!h.publisher_id.is_nil()) {
        w.byte(key_publisher_id);
        w.bin(h.publisher_id.data(), message_id::size);
    }
    w.raw(h.unknown.bytes.data(), h.unknown.bytes.size());
    return static_cast<std::size_t>(w.position() - out);
}

std::string encode_header(const header& h) {
    std::string s(encoded_size(h), '\0');
    encode_header(h, reinterpret_cast<std::byte*>(s.data()));
    return s;
}

namespace {

// An entry decode_fields skipped, [begin, end): kept verbatim in out.unknown so that encoding
// the header again passes it on (docs/wire-protocol.md §6).
void keep_unknown_entry(const reader& begin, const reader& end, header& out) {
    out.unknown.bytes.append(reinterpret_cast<const char*>(begin.here()),
                             static_cast<std::size_t>(end.offset() - begin.offset()));
    ++out.unknown.count;
}

// decode_header without the user headers' final size: they are written to
// out.user_headers[0 .. used) (see read_user_headers).
decode_status decode_fields(const void* data, std::size_t size, header& out,
                            std::size_t* header_size, std::size_t& used) noexcept {
    reader r(data, size);
    std::uint64_t count = 0;
    if (size == 0) {
        return fail(decode_errc::not_envelope, {}, 0, "the frame is empty");
    }
    if (read_map_header(r, count) != read_result::ok) {
        return fail(decode_errc::not_envelope, {}, 0, "the frame is not a msgpack map");
    }
    // First key must be 0 (version): the cheapest possible "is this an envelope" check.
    std::uint8_t first_key = 0xFF;
    if (count == 0) {
        return fail(decode_errc::not_envelope, {}, 0, "the map is empty");
    }
    if (!r.take(first_key)) {
        return fail(decode_errc::truncated, "version", r.offset());
    }
    if (first_key != key_version) {
        return fail(decode_errc::not_envelope, {}, 0,
                    "its first key is not the byte 0x00 (the protocol version)");
    }
    std::uint64_t version = 0;
    const auto* version_start = r.here();
    if (auto rr = read_uint(r, version); rr != read_result::ok) {
        return field_error(rr, "version", r, version_start, true);
    }
    if (version != protocol_version) {
        return version == 0
                   ? fail(decode_errc::bad_field, "version", r.offset_of(version_start), "0")
                   : fail(decode_errc::unsupported_version, "version", version);
    }
    if (count - 1 > r.remaining() / 2) {
        return fail(decode_errc::truncated, {}, r.offset());
    }
    bool have_id = false;
    std::uint64_t id_at = 0;
    bool have_correlation = false;
    bool have_timestamp = false;
    try {
        for (std::uint64_t i = 1; i < count; ++i) {
            // Unknown keys, of any msgpack type, are skipped with their values.
            const reader key_start = r;
            std::uint64_t k = 0;
            const auto key_read = read_uint(r, k);
            if (key_read == read_result::truncated) {
                return fail(decode_errc::truncated, {}, r.offset());
            }
            if (key_read != read_result::ok || k == key_version || k > key_last_known) {
                r = key_start;
                for (int part = 0; part < 2; ++part) { // the key, then its value
                    const auto* start = r.here();
                    if (auto rr = skip_value(r, 2); rr != read_result::ok) {
                        return field_error(rr, "unknown_key", r, start);
                    }
                }
                if (key_read != read_result::ok || k != key_version) {
                    keep_unknown_entry(key_start, r, out); // (a repeated version is dropped)
                }
                continue;
            }
            const auto* value_start = r.here();
            decode_status st{};
            switch (k) {
            case key_id:
                st = read_id(r, out.id, "id");
                have_id = st.ok();
                id_at = r.offset_of(value_start);
                break;
            case key_correlation_id:
                st = read_id(r, out.correlation_id, "correlation_id");
                have_correlation = st.ok();
                break;
            case key_causation_id:
                st = read_id(r, out.causation_id, "causation_id");
                break;
            case key_timestamp: {
                auto rr = read_uint(r, out.timestamp_ns);
                st = rr == read_result::ok ? decode_status{}
                                           : field_error(rr, "timestamp", r, value_start, true);
                have_timestamp = st.ok();
                break;
            }
            case key_type:
                st = read_string(r, out.type, "type");
                break;
            case key_attempt: {
                std::uint64_t a = 0;
                auto rr = read_uint(r, a);
                st = rr == read_result::ok ? decode_status{}
                                           : field_error(rr, "attempt", r, value_start, true);
                if (st.ok() && (a == 0 || a > 0xFFFFFFFFU)) {
                    st = fail(decode_errc::bad_field, "attempt", r.offset_of(value_start),
                              a == 0 ? "0" : "a larger value");
                }
                out.attempt = static_cast<std::uint32_t>(a);
                break;
            }
            case key_reply_to:
                st = read_string(r, out.reply_to, "reply_to");
                break;
            case key_traceparent:
                st = read_string(r, out.traceparent, "traceparent");
                break;
            case key_content_type:
                st = read_string(r, out.content_type, "content_type");
                break;
            case key_sequence: {
                auto rr = read_uint(r, out.sequence);
                st = rr == read_result::ok ? decode_status{}
                                           : field_error(rr, "sequence", r, value_start, true);
                break;
            }
            case key_user_headers:
                used = 0; // a repeated key 11 replaces the earlier map: the last one wins
                st = read_user_headers(r, out, used);
                break;
            case key_publisher_id:
                st = read_id(r, out.publisher_id, "publisher_id");
                break;
            default:
                break;
            }
            if (!st.ok()) {
                return st;
            }
        }
    } catch (...) {
        // Only std::bad_alloc can get here (strings of a huge header).
        return fail(decode_errc::bad_field, "user_headers", r.offset(),
                    "more than this process could allocate");
    }
    if (header_size != nullptr) {
        *header_size = static_cast<std::size_t>(r.offset());
    } else if (!r.at_end()) {
        return fail(decode_errc::trailing_bytes, {}, r.offset());
    }
    if (!have_id) {
        return fail(decode_errc::missing_field, "id");
    }
    if (!have_timestamp) {
        return fail(decode_errc::missing_field, "timestamp");
    }
    if (out.id.is_nil()) { // the nil id means "unassigned"
        return fail(decode_errc::bad_field, "id", id_at, "all zeros (the sender did not set it)");
    }
    if (!have_correlation || out.correlation_id.is_nil()) {
        out.correlation_id = out.id; // absent (or nil): the message starts its conversation
    }
    return {};
}

} // namespace

decode_status decode_header(const void* data, std::size_t size, header& out,
                            std::size_t* header_size) noexcept {
    // Cleared, except that the user headers' entries stay for reuse until overwritten.
    auto user_headers = std::move(out.user_headers);
    out.clear();
    out.user_headers = std::move(user_headers);
    std::size_t used = 0;
    const auto status = decode_fields(data, size, out, header_size, used);
    out.user_headers.erase(out.user_headers.begin() + static_cast<std::ptrdiff_t>(used),
                           out.user_headers.end());
    return status;
}

} // namespace zmqkit
