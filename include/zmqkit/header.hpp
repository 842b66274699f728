// zmqkit — the envelope header carried by every zmqkit message.
//
// The wire encoding is normative in docs/wire-protocol.md; encode/decode live in codec.hpp.
#pragma once

#include <zmqkit/export.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/message_id.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zmqkit {

// Wire protocol major version written by this library. A header with another major version is
// rejected with decode_errc::unsupported_version.
inline constexpr std::uint64_t protocol_version = 1;

// Header entries this library does not know: keys added by a later minor version, or keys of
// another type (docs/wire-protocol.md §2 and §6). decode_header keeps them verbatim and
// encode_header writes them back after the known keys, so a device that decodes a header,
// changes a field (the attempt, a user header) and encodes it again passes them on unchanged.
struct ZMQKIT_API unknown_entries {
    std::string bytes;     // `count` msgpack key/value pairs, as they arrived
    std::size_t count = 0; // pairs in `bytes`

    [[nodiscard]] bool empty() const noexcept { return count == 0; }
    friend bool operator==(const unknown_entries&, const unknown_entries&) = default;
};

// Metadata of one message. Plain value type; not synchronised.
struct ZMQKIT_API header {
    message_id id;                  // unique id of this message (nil until assigned)
    message_id correlation_id;      // id of the conversation's first message (== id for a new one)
    message_id causation_id;        // id of the message that caused this one (nil: none)
    std::uint64_t timestamp_ns = 0; // creation time, ns since the Unix epoch
    std::string type;               // type or topic name, free-form ("order.created")
    std::uint32_t attempt = 1;      // delivery attempt, 1 for the first
    std::string reply_to;           // endpoint or address replies should go to
    std::string traceparent;        // W3C trace context, propagated untouched
    std::string content_type;       // body format, e.g. "application/msgpack", "text/plain"
    std::uint64_t sequence = 0;     // per-publisher sequence number (0: not used)
    std::vector<std::pair<std::string, std::string>> user_headers; // name -> bytes
    // The sender instance whose counter `sequence` is (a publisher's 16-byte id, made when it
    // starts: a restart is a new id). Nil: absent. Not copied by follow_up().
    message_id publisher_id;
    // Entries of later minor versions, passed on unchanged (not copied by follow_up()).
    unknown_entries unknown;

    // A header for a new conversation: fresh id, timestamp now, correlation id = id.
    [[nodiscard]] static header fresh();

    // A header for a message caused by `cause`: fresh id and timestamp, the cause's
    // correlation id and traceparent kept, causation id = cause.id (no sequence number,
    // publisher id or unknown entries: those belong to whoever sends it).
    [[nodiscard]] static header follow_up(const header& cause);

    // Assigns a fresh id and timestamp if id is nil; a nil correlation id becomes the id.
    // Called by zmqkit::socket::send, so users may leave ids unset.
    void stamp();

    // Value of the first user header with this name, or nullptr.
    [[nodiscard]] const std::string* find_user_header(std::string_view name) const noexcept;
    // Sets (replaces) a user header.
    void set_user_header(std::string_view name, std::string_view value);

    // Resets every field to its default, keeping string capacity (for reuse on hot paths).
    void clear() noexcept;

    friend bool operator==(const header&, const header&) = default;
};

// True if bytes are valid UTF-8 (RFC 3629: shortest forms only, no surrogates, at most
// U+10FFFF). The header's string fields hold the bytes a peer sent, which need not be text
// (docs/wire-protocol.md §2); use this before showing them as text. Never throws.
[[nodiscard]] bool is_valid_utf8(std::string_view bytes) noexcept;

// The trace id of a W3C traceparent ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"):
// its 32 lower-case hex digits, or "" when `traceparent` is not of that form or the trace id
// is all zeros (invalid per W3C Trace Context). A view into `traceparent`.
[[nodiscard]] ZMQKIT_API std::string_view trace_id_of(std::string_view traceparent) noexcept;

// The ids every per-message log line carries, as log fields: message_id, correlation_id and,
// when the traceparent is valid, trace_id (so that `grep <correlation id>` over the logs of
// every process shows a conversation's path). Built only when the line is written.
class ZMQKIT_API message_log_fields {
public:
    explicit message_log_fields(const header& h);
    message_log_fields(const message_log_fields&) = delete; // the fields view its own strings
    message_log_fields& operator=(const message_log_fields&) = delete;
    [[nodiscard]] std::span<const log_field> fields() const noexcept {
        return {fields_.data(), count_};
    }
    operator std::span<const log_field>() const noexcept { return fields(); } // NOLINT

private:
    std::string id_;
    std::string correlation_;
    std::string trace_;
    std::array<log_field, 3> fields_{};
    std::size_t count_ = 0;
};

// Content types the library writes itself.
inline constexpr std::string_view content_type_msgpack = "application/msgpack";

} // namespace zmqkit
