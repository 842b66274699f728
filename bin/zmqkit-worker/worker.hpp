// zmqkit-worker: the run — N library workers (lb_worker or mdp_worker) whose handler runs the
// command (or prints the request), the drain on SIGINT/SIGTERM, --count, the statistics.
#pragma once

#include "zmqkit-worker/options.hpp"

namespace zmqkit::cli {

// Runs until SIGINT/SIGTERM (then drains) or --count. Returns the exit code (docs/cli.md).
[[nodiscard]] int run_worker(const worker_config& cfg, const logger& log,
                             shutdown_signals& signals);

} // namespace zmqkit::cli
