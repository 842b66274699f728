// Parsing of the durable protocol's command frames (docs/wire-protocol.md §7). Fuzzed
// (tests/fuzz/durable_protocol_fuzz.cpp): never throws on any input, never reads out of bounds.
#include <zmqkit/patterns/durable.hpp>

#include "durable_protocol.hpp"

#include <charconv>
#include <cstring>

namespace zmqkit::patterns::durable_protocol {
namespace {

std::uint64_t get_u64_be(const char* in) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
        v = (v << 8) | static_cast<unsigned char>(in[i]);
    }
    return v;
}

std::string printable(std::string_view s) {
    std::string out;
    for (const char c : s.substr(0, 40)) {
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    return s.size() > 40 ? out + "..." : out;
}

} // namespace

std::uint64_t consumer_command::tag(std::size_t i) const noexcept {
    return get_u64_be(tags.data() + i * 8);
}

message_id producer_reply::id(std::size_t i) const noexcept {
    std::array<std::uint8_t, message_id::size> b{};
    std::memcpy(b.data(), ids.data() + i * message_id::size, message_id::size);
    return message_id(b);
}

std::optional<consumer_command> parse_consumer_command(const std::vector<std::string_view>& frames,
                                                       std::string& why) {
    if (frames.empty()) {
        why = "no command frame";
        return std::nullopt;
    }
    const std::string_view cmd = frames[0];
    consumer_command c;
    if (cmd == credit) {
        const std::string_view text =
            frames.size() >= 2 && frames.size() <= 4 ? frames[1] : std::string_view{};
        const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), c.credit);
        if (frames.size() < 2 || frames.size() > 4 || text.empty() || ec != std::errc() ||
            p != text.data() + text.size()) {
            why = "CREDIT needs a frame with a decimal count from 0 to 4294967295, then "
                  "optionally a consumer group and its start position";
            return std::nullopt;
        }
        if (frames.size() >= 3) {
            c.group = frames[2];
            if (frames[2].empty()) {
                why = "CREDIT's group frame is empty (leave it out for the default queue)";
                return std::nullopt;
            }
        }
        if (frames.size() == 4) {
            c.start = frames[3];
        }
        c.what = consumer_command::kind::credit_window;
        return c;
    }
    if (cmd == ack) {
        if (frames.size() != 2 || frames[1].empty() || frames[1].size() % 8 != 0) {
            why = "ACK needs one frame of 8-byte delivery tags";
            return std::nullopt;
        }
        c.what = consumer_command::kind::acked;
        c.tags = frames[1];
        return c;
    }
    if (cmd == nack) {
        if ((frames.size() != 3 && frames.size() != 4) || frames[1].empty() ||
            frames[1].size() % 8 != 0) {
            why = "NACK needs a frame of 8-byte delivery tags, then requeue or dead-letter, then "
                  "an optional reason";
            return std::nullopt;
        }
        if (frames[2] == nack_dead_letter) {
            c.requeue = false;
        } else if (frames[2] != nack_requeue) {
            why = "NACK disposition must be requeue or dead-letter, got '" + printable(frames[2]) +
                  "'";
            return std::nullopt;
        }
        c.what = consumer_command::kind::nacked;
        c.tags = frames[1];
        c.reason = frames.size() == 4 ? frames[3] : std::string_view{};
        return c;
    }
    if (cmd == bye) {
        if (frames.size() != 1) {
            why = "BYE takes no frames after it";
            return std::nullopt;
        }
        c.what = consumer_command::kind::leaving;
        return c;
    }
    if (cmd == pending) {
        if (frames.size() != 1) {
            why = "PENDING takes no frames after it";
            return std::nullopt;
        }
        c.what = consumer_command::kind::pending_query;
        return c;
    }
    why = "unknown command '" + printable(cmd) + "' (known: CREDIT, ACK, NACK, BYE, PENDING)";
    return std::nullopt;
}

std::optional<pending_report> parse_pending_report(const std::vector<std::string_view>& frames) {
    if (frames.size() != 3 || frames[0] != pending) {
        return std::nullopt;
    }
    pending_report r;
    for (const auto& [text, into] :
         {std::pair{frames[1], &r.ready}, std::pair{frames[2], &r.in_flight}}) {
        const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *into);
        if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
            return std::nullopt;
        }
    }
    return r;
}

std::optional<producer_reply> parse_producer_reply(const std::vector<std::string_view>& frames) {
    if (frames.size() == 2 && frames[0] == confirm && !frames[1].empty() &&
        frames[1].size() % message_id::size == 0) {
        return producer_reply{true, frames[1], {}};
    }
    if ((frames.size() == 2 || frames.size() == 3) && frames[0] == reject &&
        frames[1].size() == message_id::size) {
        return producer_reply{false, frames[1], frames.size() == 3 ? frames[2] : "rejected"};
    }
    return std::nullopt;
}

std::optional<std::uint64_t> parse_delivery_tag(const std::vector<std::string_view>& frames) {
    if (frames.size() < 3 || frames.size() > 4 || frames[0] != deliver || frames[1].size() != 8) {
        return std::nullopt;
    }
    return get_u64_be(frames[1].data());
}

bool parse_batch(std::string_view payload, std::vector<std::string_view>& entries,
                 std::string& why) {
    entries.clear();
    if (payload.empty()) {
        why = "empty payload (a batch holds at least one entry)";
        return false;
    }
    std::size_t at = 0;
    while (at < payload.size()) {
        const std::size_t left = payload.size() - at;
        // Only built for the reason of a rejection (the hot path does not allocate).
        const auto entry = [&] {
            std::string e = "entry ";
            e += std::to_string(entries.size() + 1);
            e += " at offset ";
            e += std::to_string(at);
            return e;
        };
        if (left < batch_length_size) {
            why = "truncated: " + entry() + " has " + std::to_string(left) +
                  " byte(s) where its 4-byte length should be";
            return false;
        }
        std::uint32_t length = 0;
        for (std::size_t i = 0; i < batch_length_size; ++i) {
            length = (length << 8) | static_cast<unsigned char>(payload[at + i]);
        }
        if (length == 0) {
            why = "bad length: " + entry() + " has length 0";
            return false;
        }
        if (length > left - batch_length_size) {
            why = "truncated: " + entry() + " has length " + std::to_string(length) + " but only " +
                  std::to_string(left - batch_length_size) + " byte(s) follow";
            return false;
        }
        entries.push_back(payload.substr(at + batch_length_size, length));
        at += batch_length_size + length;
    }
    return true;
}

void append_batch_entry(std::string& payload, std::string_view message) {
    const auto n = static_cast<std::uint32_t>(message.size());
    const char length[batch_length_size] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                                            static_cast<char>(n >> 8), static_cast<char>(n)};
    payload.append(length, batch_length_size);
    payload.append(message);
}

} // namespace zmqkit::patterns::durable_protocol
