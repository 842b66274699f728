// zmqkit-send: a `sender` built from parts (input, transport: plain / reliable / raw, peer
// wait, replies, shutdown report; sender.cpp, docs/architecture.md "Tools"), separate from
// main so tests can reuse it.
#pragma once

#include "zmqkit-send/options.hpp"

#include <zmqkit/header.hpp>
#include <zmqkit/signals.hpp>

#include <string>
#include <string_view>

namespace zmqkit::cli {

// Runs zmqkit-send with cfg until the input ends, the count is reached, a timeout or a signal.
// Returns the exit code.
[[nodiscard]] int run_send(const send_config& cfg, const logger& log, shutdown_signals& signals);

// Turns one JSON text into an envelope: h gets the fields of a {"headers":{...},"body":...}
// object, body the msgpack encoding of the value (or the bytes of a string body when the
// headers name a content type other than application/msgpack). False with `error` set when
// the text is not valid JSON or a header field has the wrong type.
[[nodiscard]] bool json_to_envelope(std::string_view text, header& h, std::string& body,
                                    std::string& error);

} // namespace zmqkit::cli
