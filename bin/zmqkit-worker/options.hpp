// zmqkit-worker: option parsing (a library function so tests can call it).
#pragma once

#include "common/cli.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace zmqkit::cli {

// The broker protocol the worker speaks.
enum class worker_protocol { lb, mdp }; // 6/PPP (zmqkit-proxy --mode lb), 7/MDP (--mode mdp)

struct worker_config {
    worker_protocol protocol = worker_protocol::lb;
    std::string service;                // --mdp: the service it registers (--service NAME)
    std::vector<std::string> endpoints; // the broker's backend (CZMQ grammar; connect default)

    // --exec: what runs per request, as argv (--shell: {"/bin/sh", "-c", TEXT}); empty: the
    // debugging mode (each request printed, answered with --reply or its own body).
    std::vector<std::string> command;
    std::string exec_text; // --exec as given (logs)
    bool shell = false;
    std::optional<std::string> reply; // --reply TEXT (debugging mode)
    std::string format = "text";      // -f: how the debugging mode prints requests

    std::chrono::milliseconds exec_timeout{30000};
    std::chrono::milliseconds kill_grace{1000};
    std::chrono::milliseconds drain_timeout{30000}; // default: exec_timeout
    std::size_t max_size = 1 << 20;
    std::uint32_t concurrency = 1;
    std::chrono::milliseconds heartbeat_interval{1000}; // default: lb 1 s, mdp 2.5 s
    std::uint32_t liveness = 3;

    std::optional<std::uint64_t> count;
    bool stats = false;
    log_settings logging;
    // --curve-* / --plain-*: the DEALER sockets' security (a client of the broker's backend).
    side_security security;
};

// Parses argv (and ZMQKIT_WORKER_* / ZMQKIT_* variables, and --config FILE). Throws
// usage_error (exit 64; a bad config file 78).
[[nodiscard]] std::variant<worker_config, print_and_exit>
parse_worker_options(int argc, const char* const* argv);

} // namespace zmqkit::cli
