// Test support: header entries no zmqkit version defines, one of every msgpack type and
// encoding width (keys of several types too), for tests that a device passes unknown keys on
// unchanged (docs/wire-protocol.md §6). The bytes are written out by hand here, not produced by
// zmqkit's encoder, so a test checks the codec against an independent source.
#pragma once

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::testing {

struct unknown_entry {
    std::string what;  // for failure messages
    std::string bytes; // one msgpack key/value pair
};

inline std::string bytes_of(std::initializer_list<int> values) {
    std::string s;
    for (const int v : values) {
        s.push_back(static_cast<char>(v));
    }
    return s;
}

// Key/value pairs for keys 13.. (and keys that are not positive integers), one value of each
// msgpack type and width; non-shortest encodings included (a device must not normalise them).
inline std::vector<unknown_entry> unknown_entries_of_every_type() {
    auto counting = [](std::size_t n, int from) {
        std::string s;
        for (std::size_t i = 0; i < n; ++i) {
            s.push_back(static_cast<char>((from + static_cast<int>(i)) & 0xff));
        }
        return s;
    };
    std::vector<unknown_entry> e{
        {"nil", bytes_of({0x0d, 0xc0})},
        {"false", bytes_of({0x0e, 0xc2})},
        {"true", bytes_of({0x0f, 0xc3})},
        {"positive fixint", bytes_of({0x10, 0x7f})},
        {"uint8", bytes_of({0x11, 0xcc, 0xff})},
        {"uint16", bytes_of({0x12, 0xcd, 0xff, 0xfe})},
        {"uint32", bytes_of({0x13, 0xce, 0xff, 0xff, 0xff, 0xfd})},
        {"uint64", bytes_of({0x14, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc})},
        {"negative fixint", bytes_of({0x15, 0xe0})},
        {"int8", bytes_of({0x16, 0xd0, 0x80})},
        {"int16", bytes_of({0x17, 0xd1, 0x80, 0x01})},
        {"int32", bytes_of({0x18, 0xd2, 0x80, 0x00, 0x00, 0x02})},
        {"int64", bytes_of({0x19, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0x03})},
        {"float32", bytes_of({0x1a, 0xca, 0x3f, 0xc0, 0x00, 0x00})},
        {"float64", bytes_of({0x1b, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0x01})},
        {"fixstr", bytes_of({0x1c, 0xa5}) + "hello"},
        {"str8", bytes_of({0x1d, 0xd9, 0x20}) + std::string(32, 'a')},
        {"str16", bytes_of({0x1e, 0xda, 0x01, 0x00}) + std::string(256, 'b')},
        {"str32 (not shortest)", bytes_of({0x1f, 0xdb, 0, 0, 0, 0x03}) + "xyz"},
        {"bin8", bytes_of({0x20, 0xc4, 0x04, 0x00, 0xff, 0x80, 0x7f})},
        {"bin16", bytes_of({0x21, 0xc5, 0x01, 0x00}) + counting(256, 0)},
        {"bin32 (not shortest)", bytes_of({0x22, 0xc6, 0, 0, 0, 0x01, 0x00})},
        {"fixarray", bytes_of({0x23, 0x93, 0x01, 0xa1, 0x61, 0xc0})},
        {"array16", bytes_of({0x24, 0xdc, 0x00, 0x02, 0xc2, 0xc3})},
        {"array32", bytes_of({0x25, 0xdd, 0, 0, 0, 0x01, 0x7e})},
        {"fixmap", bytes_of({0x26, 0x82, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0xc0})},
        {"map16", bytes_of({0x27, 0xde, 0x00, 0x01, 0xa1, 0x6b, 0xa1, 0x76})},
        {"map32", bytes_of({0x28, 0xdf, 0, 0, 0, 0x01, 0x01, 0x02})},
        {"fixext1", bytes_of({0x29, 0xd4, 0x01, 0xaa})},
        {"fixext2", bytes_of({0x2a, 0xd5, 0x02, 0xaa, 0xbb})},
        {"fixext4 (timestamp32)", bytes_of({0x2b, 0xd6, 0xff, 0x5f, 0x5e, 0x10, 0x00})},
        {"fixext8", bytes_of({0x2c, 0xd7, 0x03}) + counting(8, 0x40)},
        {"fixext16", bytes_of({0x2d, 0xd8, 0x04}) + counting(16, 0x50)},
        {"ext8", bytes_of({0x2e, 0xc7, 0x03, 0x05, 0x01, 0x02, 0x03})},
        {"ext16", bytes_of({0x2f, 0xc8, 0x00, 0x02, 0x06, 0x01, 0x02})},
        {"ext32", bytes_of({0x30, 0xc9, 0, 0, 0, 0x01, 0x07, 0x09})},
        // [{"n": [nil, [{"m": true}], 1.5]}, ext1]
        {"nested",
         bytes_of({0x31, 0x92, 0x81, 0xa1, 0x6e, 0x93, 0xc0, 0x91, 0x81, 0xa1, 0x6d, 0xc3,
                   0xcb, 0x3f, 0xf8, 0,    0,    0,    0,    0,    0,    0xd4, 0x05, 0xee})},
        // Keys that are not small positive integers.
        {"key 99 (golden vector)", bytes_of({0x63, 0x93, 0x01, 0x02, 0x81, 0xa1, 0x61, 0xc0})},
        {"key 65536 as uint32", bytes_of({0xce, 0x00, 0x01, 0x00, 0x00, 0xc0})},
        {"str key", bytes_of({0xa1, 0x78, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0})},
        {"negative key", bytes_of({0xff, 0xa3}) + "neg"},
        {"bin key", bytes_of({0xc4, 0x01, 0x6b, 0xc3})},
        {"nil key", bytes_of({0xc0, 0x2a})},
        {"array key", bytes_of({0x91, 0x0d, 0xc2})},
    };
    return e;
}

// The encoded header `header_frame` (a fixmap or map16, as zmqkit writes) with `entries`
// appended to its map; anything after the map (an inline body) follows them.
inline std::string with_unknown_entries(std::string_view header_frame, std::size_t header_size,
                                        const std::vector<unknown_entry>& entries) {
    const auto first = static_cast<std::uint8_t>(header_frame.at(0));
    std::size_t count = 0;
    std::size_t skip = 0;
    if ((first & 0xf0U) == 0x80U) {
        count = first & 0x0fU;
        skip = 1;
    } else if (first == 0xde) {
        count = (static_cast<std::size_t>(static_cast<std::uint8_t>(header_frame.at(1))) << 8U) |
                static_cast<std::uint8_t>(header_frame.at(2));
        skip = 3;
    } else {
        ADD_FAILURE() << "not a fixmap or map16";
        return std::string(header_frame);
    }
    count += entries.size();
    std::string out =
        bytes_of({0xde, static_cast<int>(count >> 8U), static_cast<int>(count & 0xffU)});
    out.append(header_frame.substr(skip, header_size - skip));
    for (const auto& e : entries) {
        out += e.bytes;
    }
    out.append(header_frame.substr(header_size));
    return out;
}

// The key/value pairs of the header map at the start of `frame`, each as its raw bytes, split
// by an independent msgpack reader (msgpack-c, one object at a time). Empty on failure.
inline std::vector<std::string> header_pairs(std::string_view frame) {
    std::vector<std::string> pairs;
    if (frame.empty()) {
        return pairs;
    }
    const auto first = static_cast<std::uint8_t>(frame[0]);
    std::size_t count = 0;
    std::size_t offset = 0;
    auto be = [&](std::size_t from, std::size_t n) {
        std::size_t v = 0;
        for (std::size_t i = 0; i < n; ++i) {
            v = (v << 8U) | static_cast<std::uint8_t>(frame.at(from + i));
        }
        return v;
    };
    if ((first & 0xf0U) == 0x80U) {
        count = first & 0x0fU;
        offset = 1;
    } else if (first == 0xde) {
        count = be(1, 2);
        offset = 3;
    } else if (first == 0xdf) {
        count = be(1, 4);
        offset = 5;
    } else {
        return pairs;
    }
    try {
        for (std::size_t i = 0; i < count; ++i) {
            const std::size_t start = offset;
            (void)msgpack::unpack(frame.data(), frame.size(), offset); // the key
            (void)msgpack::unpack(frame.data(), frame.size(), offset); // its value
            pairs.emplace_back(frame.substr(start, offset - start));
        }
    } catch (const std::exception& e) {
        ADD_FAILURE() << "msgpack-c cannot read the header: " << e.what();
        pairs.clear();
    }
    return pairs;
}

// Checks that the header at the start of `frame` holds `known` pairs zmqkit defines plus every
// entry exactly once, byte for byte.
inline void expect_unknown_entries_intact(std::string_view frame, std::size_t known,
                                          const std::vector<unknown_entry>& entries,
                                          const std::string& where) {
    const auto pairs = header_pairs(frame);
    EXPECT_EQ(pairs.size(), known + entries.size()) << where;
    for (const auto& e : entries) {
        const auto n = std::count(pairs.begin(), pairs.end(), e.bytes);
        EXPECT_EQ(n, 1) << where << ": the " << e.what << " entry arrived " << n << " times";
    }
}

} // namespace zmqkit::testing
