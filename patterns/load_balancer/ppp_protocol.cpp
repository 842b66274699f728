// Parsing of 6/PPP frames (docs/wire-protocol.md §8). Fuzzed (tests/fuzz/ppp_protocol_fuzz.cpp):
// never throws on any input, never reads out of bounds.
#include <zmqkit/patterns/load_balancer.hpp>

#include "ppp_protocol.hpp"

#include <charconv>
#include <zmqkit/encoding.hpp>

namespace zmqkit::patterns::ppp {
namespace {

std::string printable(std::string_view s) {
    std::string out;
    for (const char c : s.substr(0, 16)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f) {
            out += c;
        } else {
            out += "\\x" + to_hex({&c, 1});
        }
    }
    return s.size() > 16 ? out + "..." : out;
}

// [address...][""][content...]: the index of the empty delimiter, or nullopt.
std::optional<std::size_t> delimiter(const std::vector<std::string_view>& frames,
                                     std::string& why) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
        if (frames[i].empty()) {
            if (i + 1 >= frames.size()) {
                why = "no content after the empty delimiter frame";
                return std::nullopt;
            }
            return i;
        }
    }
    why = "no empty delimiter frame between the address stack and the content";
    return std::nullopt;
}

} // namespace

std::optional<worker_message> parse_worker_message(const std::vector<std::string_view>& frames,
                                                   std::string& why) {
    if (frames.empty()) {
        why = "no frames";
        return std::nullopt;
    }
    if (frames.size() == 1) {
        const std::string_view c = frames[0];
        const auto command = [](worker_message::kind k, dialect d) {
            worker_message m{k, 0};
            m.spoken = d;
            return m;
        };
        if (c == ready_byte) {
            return command(worker_message::kind::ready, dialect::bytes);
        }
        if (c == ready_word) {
            return command(worker_message::kind::ready, dialect::words);
        }
        if (c.substr(0, ready_credit_prefix.size()) == ready_credit_prefix) {
            // zmqkit's READY with credit: a READY in any case; a bad number is credit 1.
            worker_message m{worker_message::kind::ready, 0};
            const std::string_view digits = c.substr(ready_credit_prefix.size());
            std::uint32_t credit = 0;
            const auto* end = digits.data() + digits.size();
            const auto [p, ec] = std::from_chars(digits.data(), end, credit);
            if (digits.empty() || ec != std::errc() || p != end || credit == 0) {
                m.credit_rejected = true;
                why = "READY with credit '" + printable(digits) +
                      "', not a number from 1 to 4294967295 (taken as credit 1)";
            } else {
                m.credit = credit;
                m.credit_announced = true;
            }
            return m;
        }
        if (c == heartbeat_byte || c == heartbeat_word) {
            return command(worker_message::kind::heartbeat,
                           c == heartbeat_word ? dialect::words : dialect::bytes);
        }
        if (c == disconnect_byte || c == disconnect_word) {
            return command(worker_message::kind::disconnect,
                           c == disconnect_word ? dialect::words : dialect::bytes);
        }
        why = "unknown command '" + printable(c) +
              "' (known: 0x01 READY, 0x02 HEARTBEAT, 0x05 DISCONNECT)";
        return std::nullopt;
    }
    const auto d = delimiter(frames, why);
    if (!d) {
        return std::nullopt;
    }
    if (*d == 0) {
        why = "a reply needs the client's address before the empty delimiter";
        return std::nullopt;
    }
    return worker_message{worker_message::kind::reply, *d};
}

std::optional<broker_message> parse_broker_message(const std::vector<std::string_view>& frames,
                                                   std::string& why) {
    if (frames.empty()) {
        why = "no frames";
        return std::nullopt;
    }
    if (frames.size() == 1) {
        if (frames[0] == heartbeat_byte || frames[0] == heartbeat_word) {
            return broker_message{broker_message::kind::heartbeat, 0};
        }
        why = "unknown command '" + printable(frames[0]) + "' (known: 0x02 HEARTBEAT)";
        return std::nullopt;
    }
    const auto d = delimiter(frames, why);
    if (!d) {
        return std::nullopt;
    }
    if (*d == 0) {
        why = "a request needs the client's address before the empty delimiter";
        return std::nullopt;
    }
    return broker_message{broker_message::kind::request, *d};
}

std::optional<std::size_t> parse_client_request(const std::vector<std::string_view>& frames,
                                                std::string& why) {
    return delimiter(frames, why);
}

} // namespace zmqkit::patterns::ppp
