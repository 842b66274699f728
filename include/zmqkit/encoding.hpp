// Hex and base64 (RFC 4648): the one copy every component and tool uses.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace zmqkit {

// The value of one hex digit ('0'-'9', 'a'-'f', 'A'-'F'), or -1 for any other character.
// Thread-safe, never throws.
[[nodiscard]] constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// The lower-case hex digit of v (0-15; higher bits are ignored).
[[nodiscard]] constexpr char hex_digit(unsigned v) noexcept {
    return "0123456789abcdef"[v & 0x0FU];
}

// Appends `bytes` to out as lower-case hex, two digits a byte ("ff01" for "\xff\x01").
void append_hex(std::string& out, std::string_view bytes);

// `bytes` as lower-case hex, two digits a byte.
[[nodiscard]] std::string to_hex(std::string_view bytes);

// The bytes of a hex text (either case, an even number of digits), or nullopt when a character
// is not a hex digit or the length is odd.
[[nodiscard]] std::optional<std::string> from_hex(std::string_view text);

// Standard base64 (RFC 4648 §4, alphabet A-Z a-z 0-9 + /) with '=' padding.
[[nodiscard]] std::string base64_encode(std::string_view bytes);

// The bytes of a standard base64 text, padded or not ("QQ==" and "QQ" both give "A"), or
// nullopt when a character is outside the alphabet, something follows the padding, or the
// length cannot be base64 (one character left over).
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);

} // namespace zmqkit
