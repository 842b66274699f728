// libFuzzer target for the spool's record parser on arbitrary bytes: parse_record at every
// offset it leads to, decode_sequence_list, parse_group_record and read_group_prefix on every
// payload, read_varint on the raw input, and the groups file parser on the whole input.
// Properties: never crashes, never reads out of bounds (ASan), a parsed record lies inside the
// input, a record re-sealed from what was parsed parses to the same record, and a groups file
// or group record that parses encodes back to the same bytes.
#include <zmqkit/spool.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace sf = zmqkit::spool_format;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto* bytes = reinterpret_cast<const std::byte*>(data);
    {
        std::span<const std::byte> in(bytes, size);
        std::uint64_t v = 0;
        while (!in.empty() && sf::read_varint(in, v)) {
        }
    }
    (void)sf::decode_sequence_list(std::span<const std::byte>(bytes, size),
                                   [](std::uint64_t, std::uint64_t) {});
    std::size_t offset = 0;
    while (offset < size) {
        sf::record_view r;
        std::size_t consumed = 0;
        const auto res = sf::parse_record(bytes + offset, size - offset, r, &consumed);
        if (res != sf::scan_result::ok) {
            ++offset; // resynchronise as recovery does
            continue;
        }
        if (consumed < sf::record_header_size || consumed > size - offset ||
            r.payload.data() != bytes + offset + sf::record_header_size ||
            r.payload.size() != consumed - sf::record_header_size) {
            std::abort();
        }
        std::uint64_t total = 0;
        (void)sf::decode_sequence_list(
            r.payload, [&](std::uint64_t seq, std::uint64_t value) { total += seq ^ value; });
        if (!r.payload.empty()) {
            (void)sf::decode_sequence_list(r.payload.subspan(1),
                                           [](std::uint64_t, std::uint64_t) {});
        }
        sf::group_record g;
        if (sf::parse_group_record(r.payload, g)) {
            std::vector<std::byte> encoded;
            sf::encode_group_record(g, encoded);
            if (encoded.size() != r.payload.size() ||
                std::memcmp(encoded.data(), r.payload.data(), encoded.size()) != 0) {
                std::abort();
            }
        }
        std::span<const std::byte> rest = r.payload;
        std::uint32_t group = 0;
        std::uint32_t epoch = 0;
        if (sf::read_group_prefix(rest, group, epoch)) {
            (void)sf::decode_sequence_list(rest, [](std::uint64_t, std::uint64_t) {});
        }
        // re-seal: same header fields and payload give the same bytes
        std::vector<std::byte> copy(bytes + offset, bytes + offset + consumed);
        sf::seal_record(copy.data(), r.type, r.flags, r.sequence,
                        static_cast<std::uint32_t>(r.payload.size()));
        sf::record_view again;
        std::size_t again_consumed = 0;
        if (sf::parse_record(copy.data(), copy.size(), again, &again_consumed) !=
                sf::scan_result::ok ||
            again_consumed != consumed || again.sequence != r.sequence || again.type != r.type) {
            std::abort();
        }
        offset += consumed;
    }
    {
        sf::groups_snapshot snap;
        std::string why;
        if (sf::parse_groups_file(bytes, size, snap, why)) {
            std::vector<std::byte> encoded;
            sf::encode_groups_file(snap, encoded);
            if (encoded.size() != size || std::memcmp(encoded.data(), bytes, size) != 0) {
                std::abort();
            }
        } else if (why.empty()) {
            std::abort(); // a refusal always says why
        }
    }
    (void)sf::parse_segment_file_name(
        std::string_view(reinterpret_cast<const char*>(data), size < 64 ? size : 64));
    return 0;
}
