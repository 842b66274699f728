// zmqkit-proxy: option parsing (a library function so tests can call it).
#pragma once

#include "common/cli.hpp"

#include <zmqkit/patterns/pipeline.hpp>

#include <chrono>
#include <string>
#include <variant>

namespace zmqkit::cli {

struct proxy_config {
    std::string mode = "stream";
    patterns::streamer_options streamer;
    std::chrono::milliseconds drain_timeout{5000};
    std::chrono::milliseconds stats_interval{0}; // 0: no periodic statistics line
    int verbosity = 0;
};

// Parses argv (and ZMQKIT_* variables, and --config FILE). Throws usage_error.
[[nodiscard]] std::variant<proxy_config, print_and_exit>
parse_proxy_options(int argc, const char* const* argv);

} // namespace zmqkit::cli
