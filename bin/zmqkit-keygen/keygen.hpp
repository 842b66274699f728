// zmqkit-keygen: the commands (generate, list, inspect). Output on stdout; the secret key is
// never printed.
#pragma once

#include "zmqkit-keygen/options.hpp"

#include <zmqkit/signals.hpp>

namespace zmqkit::cli {

[[nodiscard]] int run_keygen(const keygen_config& cfg, const logger& log,
                             shutdown_signals& signals);

} // namespace zmqkit::cli
