// zmqkit — endpoint specifications in CZMQ's grammar.
//
//   "@tcp://*:5555"                     bind
//   ">tcp://127.0.0.1:5555"             connect
//   "tcp://127.0.0.1:5555"              the role's default (bind for servers, connect for clients)
//   "@tcp://127.0.0.1:*,>ipc:///tmp/x"  a comma list, each entry with its own prefix
//
// Transports: tcp, ipc, inproc, pgm, epgm, vmci, ws, wss. "tcp://host:*" binds an ephemeral
// port; zmqkit reports the endpoint actually bound (see attach()).
#pragma once

#include <zmqkit/export.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace zmq {
class socket_t;
}

namespace zmqkit {

enum class endpoint_action { bind, connect };

// One parsed entry of an endpoint list.
struct ZMQKIT_API endpoint {
    endpoint_action action = endpoint_action::connect;
    std::string address; // without the '@' / '>' prefix, e.g. "tcp://127.0.0.1:5555"

    // "@tcp://..." or ">tcp://...": the spec that reproduces this entry.
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const endpoint&, const endpoint&) = default;
};

// Parses a comma-separated endpoint list. Entries without a prefix take `default_action`.
// Throws endpoint_error naming the bad entry and what is wrong with it (empty entry, missing
// "transport://", unknown transport, missing host or port, bad port number ...).
[[nodiscard]] std::vector<endpoint> parse_endpoints(std::string_view spec,
                                                    endpoint_action default_action);

// Binds / connects `socket` to every entry of `spec`. Returns the endpoints as they are in
// effect: for a bind, the address libzmq reports (the real port for "tcp://...:*", the real
// path for "ipc://*"); for a connect, the address given. An ipc bind first creates the socket
// file's missing parent directories (mode 0750, like `mkdir -p`). Throws endpoint_error for a
// malformed spec and zmqkit::error (with the libzmq reason and the endpoint) when a bind or
// connect fails.
std::vector<std::string> attach(zmq::socket_t& socket, std::string_view spec,
                                endpoint_action default_action);

} // namespace zmqkit
