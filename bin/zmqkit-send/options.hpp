// zmqkit-send: option parsing (a library function so tests can call it).
#pragma once

#include "common/cli.hpp"
#include "common/tool_support.hpp"

#include <zmqkit/message_id.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace zmqkit::cli {

enum class input_framing {
    delimited,       // messages separated by --delimiter (default "\n")
    length_prefixed, // 4-byte big-endian length, then that many bytes
    whole,           // all of the input is one message
};

struct send_config {
    socket_kind kind{"push", zmq::socket_type::push, endpoint_action::connect};
    std::vector<std::string> endpoints;

    // Input.
    input_framing framing = input_framing::delimited;
    std::string delimiter = "\n";
    bool strip_cr = true; // default line mode: one trailing '\r' (CRLF input) is removed
    std::size_t max_size = std::size_t{256} << 20; // --max-size: the largest message
    std::optional<std::string> key_delimiter;
    bool json = false;
    std::optional<std::string> data; // --data: the input itself
    // --file (repeatable): read these paths in turn instead of stdin; "-" is stdin.
    std::vector<std::string> files;
    // --repeat N: the --data / --file input N times (0: until stopped, --count or --timeout).
    std::optional<std::uint64_t> repeat;
    bool raw = false;

    // Envelope.
    message_id correlation_id; // nil: each message starts its own conversation
    std::string type;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string reply_to;

    // Flow.
    std::optional<std::uint64_t> count;
    std::optional<std::chrono::milliseconds> timeout;
    std::optional<std::chrono::milliseconds> idle_timeout; // end when no input for this long
    double rate = 0;                                       // messages per second, 0: unlimited
    int hwm = 1000;
    std::vector<socket_option_setting> socket_options;
    std::size_t wait_peers = 0;
    std::chrono::milliseconds linger{5000};
    // --wait-confirm: a DEALER to a durable proxy; each message is kept and resent until the
    // proxy confirms it is on disk; at the end wait up to confirm_timeout for the rest.
    bool wait_confirm = false;
    std::chrono::milliseconds confirm_timeout{30000};
    std::size_t window = 1000;
    std::chrono::milliseconds retry_interval{2000};
    // --confirm-log FILE: one line per input record, "<record> <id> <outcome>" (confirm_log.hpp)
    std::optional<std::string> confirm_log;
    // --batch N: up to N messages leave as one ZeroMQ message (a producer batch, wire
    // protocol §7.1); 1 = no batching. A partly filled batch leaves when no more input is
    // ready, before a --rate wait longer than --batch-linger, and at the end.
    std::size_t batch = 1;
    std::chrono::milliseconds batch_linger{0};

    // Requests that survive (Lazy Pirate, zguide chapter 4): --req with --retries or
    // --request-timeout goes through patterns::lb_client (a 6/PPP broker, or any REP), --mdp
    // SERVICE through patterns::mdp_client (a 7/MDP broker). An unanswered request is sent
    // again after request_timeout on a fresh socket, with the same message id, retries times.
    bool lazy_pirate = false;
    std::optional<std::string> mdp_service;
    // --titanic (9/TSP on a 7/MDP broker, zmqkit-proxy --mode mdp --titanic DIR): with
    // --service NAME each message is stored by Titanic for the service (mdp_service) and its
    // request id printed; with --fetch ID the stored reply is printed and closed (--wait:
    // ask again every titanic_poll while it is pending; --keep: do not close it).
    bool titanic = false;
    std::optional<std::string> titanic_fetch;
    bool titanic_wait = false;
    bool titanic_keep = false;
    std::chrono::milliseconds titanic_poll{500};
    std::uint32_t retries = 0;
    std::chrono::milliseconds request_timeout{2500};

    // Output (replies of --req) and diagnostics.
    std::string format = "text";
    bool stats = false;
    log_settings logging; // -v/-q, --log-level, --log-format (and zmqkit-proxy's --name)
    int verbosity = 0;    // logging.verbosity(): 1 with -v, -1 with -q
    // --curve-* / --plain-* / --zap-*: the socket's security (a client unless --curve-allow,
    // --plain-passwords or a --zap-*-ip filter make it a server; ZAP domain "zmqkit-send").
    side_security security;
};

// Parses argv (and ZMQKIT_* variables, and --config FILE). Throws usage_error.
[[nodiscard]] std::variant<send_config, print_and_exit> parse_send_options(int argc,
                                                                           const char* const* argv);

} // namespace zmqkit::cli
