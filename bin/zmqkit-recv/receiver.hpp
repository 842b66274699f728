// zmqkit-recv: a plain or an acknowledging (--ack) receiver on one shared base (socket ->
// stdout; receiver.cpp, docs/architecture.md "Tools"), separate from main.
#pragma once

#include "zmqkit-recv/options.hpp"

#include <zmqkit/signals.hpp>

namespace zmqkit::cli {

// Runs zmqkit-recv with cfg until the count, a timeout or a signal. Returns the exit code.
[[nodiscard]] int run_recv(const recv_config& cfg, const logger& log, shutdown_signals& signals);

} // namespace zmqkit::cli
