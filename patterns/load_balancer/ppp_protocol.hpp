// Private to zmqkit::load_balancer: the pure functions that parse 6/PPP frames (the broker,
// lb_worker, the tests and tests/fuzz/ppp_protocol_fuzz.cpp use them; users do not). Frames are
// given without the routing-id frame a ROUTER adds. Parsers never throw and never read outside
// the given views; a rejection says why (for a log line).
#pragma once

#include <zmqkit/patterns/load_balancer.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::patterns::ppp {

// What a worker sent the broker.
struct worker_message {
    enum class kind { ready, heartbeat, disconnect, reply };
    kind what = kind::heartbeat;
    // reply: frames [0, envelope_size) are the address stack (the first is the client's routing
    // id at the broker's frontend), frame envelope_size is empty, the content follows (>= 1).
    std::size_t envelope_size = 0;
    // ready: the requests the worker takes at once (1 for a plain READY). A READY with a credit
    // that is not a number from 1 to 2^32 - 1 is still a READY, with credit 1 and
    // credit_rejected set (and `why` saying what was wrong), for the caller to count.
    std::uint32_t credit = 1;
    bool credit_rejected = false;
    // ready: a READY with a valid credit (zmqkit's addition): the worker reads both envelope
    // layouts, [header+body] and [header][body].
    bool credit_announced = false;
    // ready, heartbeat, disconnect: the dialect the command was spelt in.
    dialect spoken = dialect::bytes;
};
// Parses [0x01] | [0x01 "credit=" N] | [0x02] | [0x05] (or the ASCII words) |
// [address...][""][content...].
[[nodiscard]] std::optional<worker_message>
parse_worker_message(const std::vector<std::string_view>& frames, std::string& why);

// What the broker sent a worker.
struct broker_message {
    enum class kind { heartbeat, request };
    kind what = kind::heartbeat;
    std::size_t envelope_size = 0; // request: as in worker_message
};
// Parses [0x02] (or "HEARTBEAT") | [address...][""][content...].
[[nodiscard]] std::optional<broker_message>
parse_broker_message(const std::vector<std::string_view>& frames, std::string& why);

// A request as a ROUTER frontend receives it after the routing id: [address...][""][content...]
// (a REQ client, or a DEALER that sends the empty delimiter first). Returns the number of
// address frames before the delimiter (0 for a directly connected client).
[[nodiscard]] std::optional<std::size_t>
parse_client_request(const std::vector<std::string_view>& frames, std::string& why);
} // namespace zmqkit::patterns::ppp
