// zmqkit-proxy: option parsing (a library function so tests can call it).
#pragma once

#include "common/cli.hpp"

#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/patterns/majordomo.hpp>
#include <zmqkit/patterns/pipeline.hpp>
#include <zmqkit/patterns/pubsub.hpp>
#include <zmqkit/patterns/titanic.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <variant>

namespace zmqkit::cli {

// The device a mode runs, with its options: --mode stream, durable, lb, mdp, forwarder.
using proxy_mode = std::variant<patterns::streamer_options, patterns::durable_proxy_options,
                                patterns::load_balancer_options, patterns::mdp_broker_options,
                                patterns::forwarder_options>;

// The --mode name of a mode: "stream", "durable", "lb", "mdp" or "forwarder".
[[nodiscard]] std::string mode_name(const proxy_mode& mode);

struct proxy_config {
    proxy_mode mode; // default: stream
    // --mode mdp --titanic DIR: the Titanic (9/TSP) server beside the broker; main() sets its
    // endpoints (inproc endpoints it adds to the broker's sides).
    std::optional<patterns::titanic_options> titanic;
    std::chrono::milliseconds drain_timeout{5000};
    std::chrono::milliseconds stats_interval{0}; // 0: no periodic statistics line
    std::optional<std::string> metrics_listen;   // --metrics-listen ADDR:PORT
    // Security per side (also copied into the mode's device options). A server side's ZAP
    // domain is its name; main() creates the context's authenticator from these.
    side_security frontend_security;
    side_security backend_security;
    side_security control_security; // off unless --control is given
    side_security capture_security; // off unless --capture is given
    log_settings logging;           // -v/-q, --log-level, --log-format (and zmqkit-proxy's --name)
    int verbosity = 0;              // logging.verbosity(): 1 with -v, -1 with -q
};

// The proxy's sides, the prefixes of the per-side security flags (--frontend-curve-allow).
[[nodiscard]] const std::vector<std::string>& proxy_sides();

// Parses argv (and ZMQKIT_* variables, and --config FILE). Throws usage_error.
[[nodiscard]] std::variant<proxy_config, print_and_exit>
parse_proxy_options(int argc, const char* const* argv);

// "1048576", "64KiB", "64MiB", "1GiB", "10k", "5M", "2G" (k/M/G and KiB/MiB/GiB are both
// powers of 1024). Throws zmqkit::config_error naming the value and the accepted forms.
[[nodiscard]] std::uint64_t parse_size(std::string_view text);

} // namespace zmqkit::cli
