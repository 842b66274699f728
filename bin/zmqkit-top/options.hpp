// zmqkit-top: option parsing (a library function so tests can call it).
#pragma once

#include "common/cli.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace zmqkit::cli {

// The columns the view can be sorted by (--sort, and the `s` key cycles through them).
enum class top_sort { name, in, out, depth, lag, age, drops, connections };
[[nodiscard]] std::string_view to_string(top_sort sort) noexcept;
[[nodiscard]] std::optional<top_sort> parse_top_sort(std::string_view text) noexcept;

struct top_config {
    std::vector<std::string> controls; // control endpoints (entries without a prefix connect)
    std::chrono::milliseconds interval{1000};
    std::chrono::milliseconds timeout{500}; // for each STATUS reply
    bool once = false;                      // one view, then exit
    bool json = false;                      // JSON lines instead of the table
    top_sort sort = top_sort::name;
    std::optional<std::uint64_t> iterations; // -n: stop after this many views
    side_security security;                  // of the control sockets (CURVE / PLAIN client)
    log_settings logging;
    int verbosity = 0;
};

// Parses argv. Throws usage_error (exit 64).
[[nodiscard]] std::variant<top_config, print_and_exit> parse_top_options(int argc,
                                                                         const char* const* argv);

} // namespace zmqkit::cli
