#include <zmqkit/encoding.hpp>

#include <array>
#include <cstdint>

namespace zmqkit {
namespace {

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> base64_values() {
    std::array<std::int8_t, 256> values{};
    values.fill(-1);
    for (std::size_t i = 0; i < base64_alphabet.size(); ++i) {
        values[static_cast<unsigned char>(base64_alphabet[i])] = static_cast<std::int8_t>(i);
    }
    return values;
}

} // namespace

void append_hex(std::string& out, std::string_view bytes) {
    out.reserve(out.size() + bytes.size() * 2);
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        out += hex_digit(b >> 4U);
        out += hex_digit(b);
    }
}

std::string to_hex(std::string_view bytes) {
    std::string out;
    append_hex(out, bytes);
    return out;
}

std::optional<std::string> from_hex(std::string_view text) {
    if (text.size() % 2 != 0) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(text.size() / 2);
    for (std::size_t i = 0; i < text.size(); i += 2) {
        const int hi = hex_value(text[i]);
        const int lo = hex_value(text[i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out += static_cast<char>((hi << 4) | lo);
    }
    return out;
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    const auto byte = [&](std::size_t k) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
    };
    const auto put = [&](std::uint32_t v, int chars) {
        for (int i = 0; i < 4; ++i) {
            out += i < chars ? base64_alphabet[(v >> (18 - 6 * i)) & 63U] : '=';
        }
    };
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        put((byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2), 4);
    }
    if (i + 1 == bytes.size()) {
        put(byte(i) << 16, 2);
    } else if (i + 2 == bytes.size()) {
        put((byte(i) << 16) | (byte(i + 1) << 8), 3);
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    static constexpr auto values = base64_values();
    const auto pad = text.find('=');
    const std::string_view data = text.substr(0, pad);
    if (pad != std::string_view::npos) {
        const std::string_view padding = text.substr(pad);
        if (padding.size() > 2 || padding.find_first_not_of('=') != std::string_view::npos ||
            (data.size() + padding.size()) % 4 != 0) {
            return std::nullopt;
        }
    }
    if (data.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(data.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : data) {
        const std::int8_t v = values[static_cast<unsigned char>(c)];
        if (v < 0) {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFFU);
        }
    }
    return out;
}

} // namespace zmqkit
