// Fuzzes the durable protocol's frame parsers (consumer commands, producer replies, delivery
// tags) with arbitrary multipart messages: the input is split into frames at 0xFF bytes. The
// whole input is also a producer batch's payload: split into entries (checked to tile the input
// exactly and to rebuild it byte for byte) whose headers are decoded as the proxy does.
#include "patterns/durable/durable_protocol.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/patterns/durable.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace proto = zmqkit::patterns::durable_protocol;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<std::string_view> frames;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= input.size(); ++i) {
        if (i == input.size() || input[i] == '\xff') {
            frames.push_back(input.substr(start, i - start));
            start = i + 1;
        }
    }
    std::string why;
    if (const auto c = proto::parse_consumer_command(frames, why)) {
        std::uint64_t sum = c->credit;
        for (std::size_t i = 0; i < c->tag_count(); ++i) {
            sum += c->tag(i);
        }
        sum += c->reason.size();
        if (sum == 0x5eed) {
            why.clear();
        }
    } else if (why.empty()) {
        __builtin_trap(); // a rejection must say why
    }
    if (const auto r = proto::parse_producer_reply(frames)) {
        for (std::size_t i = 0; i < r->id_count(); ++i) {
            (void)r->id(i).is_nil();
        }
    }
    (void)proto::parse_delivery_tag(frames);
    if (const auto p = proto::parse_pending_report(frames)) {
        // What parsed must print back as the frames it came from (no sign, no leading junk).
        if (std::to_string(p->ready).size() > frames[1].size()) {
            __builtin_trap();
        }
    }

    static std::vector<std::string_view> entries;
    static zmqkit::header scratch;
    why.clear();
    if (proto::parse_batch(input, entries, why)) {
        std::string rebuilt;
        for (const auto e : entries) {
            if (e.empty() || e.data() < input.data() || e.data() + e.size() > input.data() + size) {
                __builtin_trap(); // entries are non-empty views into the payload
            }
            proto::append_batch_entry(rebuilt, e);
            std::size_t header_size = 0;
            if (zmqkit::decode_header(e.data(), e.size(), scratch, &header_size) &&
                header_size > e.size()) {
                __builtin_trap();
            }
        }
        if (rebuilt != input) {
            __builtin_trap(); // the entries tile the payload exactly
        }
    } else if (why.empty()) {
        __builtin_trap(); // a rejection must say why
    }
    return 0;
}
