// Private to zmqkit::load_balancer: the pure functions that parse 7/MDP frames (the broker, the
// worker, the client, the tests and tests/fuzz/mdp_protocol_fuzz.cpp use them; users do not).
// Frames are given without the routing-id frame a ROUTER adds and with the leading empty frame
// (as a ROUTER or a DEALER sees them). Parsers never throw and never read outside the given
// views; a rejection says why.
#pragma once

#include <zmqkit/patterns/majordomo.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::patterns::mdp {

// A client's REQUEST as the broker's ROUTER gives it after the routing id:
// ["" "MDPC01" service body...] with at least one body frame.
struct client_request {
    std::string_view service;
    std::size_t body = 3; // index of the first body frame
};
[[nodiscard]] std::optional<client_request>
parse_client_request(const std::vector<std::string_view>& frames, std::string& why);

// The broker's REPLY as a client's DEALER receives it: ["" "MDPC01" service body...] (a REQ
// socket removes the empty frame; give it back before parsing).
struct client_reply {
    std::string_view service;
    std::size_t body = 3;
};
[[nodiscard]] std::optional<client_reply>
parse_client_reply(const std::vector<std::string_view>& frames, std::string& why);

// What a worker sent the broker: ["" "MDPW01" command ...].
struct worker_message {
    enum class kind { ready, reply, heartbeat, disconnect };
    kind what = kind::heartbeat;
    std::string_view service; // ready: the service name (not empty)
    std::string_view client;  // reply: the client address frame (not empty)
    std::size_t body = 0;     // reply: index of the first body frame (5)
};
// READY: 4 frames; REPLY: 6 or more ([client][""] then the body); HEARTBEAT, DISCONNECT: 3.
// A REQUEST (0x02) goes the other way and is rejected here.
[[nodiscard]] std::optional<worker_message>
parse_worker_message(const std::vector<std::string_view>& frames, std::string& why);

// What the broker sent a worker, as the worker's DEALER receives it.
struct broker_message {
    enum class kind { request, heartbeat, disconnect };
    kind what = kind::heartbeat;
    std::string_view client; // request: the client address frame
    std::size_t body = 0;    // request: index of the first body frame (5)
};
// REQUEST: 6 or more frames; HEARTBEAT, DISCONNECT: 3.
[[nodiscard]] std::optional<broker_message>
parse_broker_message(const std::vector<std::string_view>& frames, std::string& why);
} // namespace zmqkit::patterns::mdp
