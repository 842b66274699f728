// zmqkit — encoding and decoding of the envelope (docs/wire-protocol.md).
//
// Decoding never throws and never reads outside the given bytes: every malformed input is a
// decode_status value naming what is wrong. The decoder is fuzzed (tests/fuzz).
#pragma once

#include <zmqkit/export.hpp>
#include <zmqkit/header.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zmqkit {

enum class decode_errc : std::uint8_t {
    ok = 0,
    truncated,           // the header frame ends inside a value
    not_envelope,        // not a msgpack map with key 0 (protocol version) first
    unsupported_version, // a protocol major version this library does not speak
    bad_field,           // a known field has the wrong msgpack type, size or range
    missing_field,       // a required field (id, timestamp) is absent
    trailing_bytes,      // bytes after the header map
    bad_frame_count,     // a multipart message with the wrong number of frames
};

// The deepest a header may nest arrays and maps, counting the header map itself as level 1
// (docs/wire-protocol.md §2: what msgpack-c's C unpacker holds). A value of an unknown key
// nested deeper is bad_field "unknown_key".
inline constexpr unsigned max_header_nesting = 32;

// Result of a decode. code == ok means success; otherwise `field` names the header field (or
// is empty; "unknown_key" for a key this version does not define), `value` carries the version
// number, frame count or byte offset involved, and `detail` says what was found instead of
// what the field must hold (e.g. "a string", "0", "all zeros (the sender did not set it)").
struct ZMQKIT_API decode_status {
    decode_errc code = decode_errc::ok;
    std::string_view field; // static storage
    std::uint64_t value = 0;
    std::string_view detail; // static storage

    [[nodiscard]] bool ok() const noexcept { return code == decode_errc::ok; }
    explicit operator bool() const noexcept { return ok(); }
    // A sentence a user can act on, e.g. "header field 'version' must be a positive integer,
    // got a string (at byte 2)" or "unsupported protocol version 2 (this build speaks 1)...".
    [[nodiscard]] std::string message() const;
};

// Short stable name of an error code ("truncated", "not_envelope", ...), used as a metric label.
[[nodiscard]] std::string_view to_string(decode_errc code) noexcept;

// Exact number of bytes encode_header writes for h.
[[nodiscard]] std::size_t encoded_size(const header& h) noexcept;

// Writes h into out[0 .. encoded_size(h)). Returns the number of bytes written.
// Omits fields at their default value (see the wire protocol); h.unknown's entries follow the
// known keys, byte for byte. Never allocates.
std::size_t encode_header(const header& h, std::byte* out) noexcept;

// Convenience: the encoded header as a string of bytes (allocates).
[[nodiscard]] std::string encode_header(const header& h);

// Decodes a header frame into out (which is cleared first; the capacity of its strings and of
// its user-header entries is reused, so decoding into the same header again does not allocate
// for fields of the same sizes).
// Unknown keys are kept with their values, verbatim, in out.unknown (a repeated key 0 is
// dropped), so that encode_header passes them on. Never throws, never reads past data+size.
// With header_size == nullptr the header must fill the frame (bytes after it are
// trailing_bytes); otherwise the bytes after it are allowed (an inline body) and
// *header_size is set to the header's length.
[[nodiscard]] decode_status decode_header(const void* data, std::size_t size, header& out,
                                          std::size_t* header_size = nullptr) noexcept;

} // namespace zmqkit
