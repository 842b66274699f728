// zmqkit-recv: option parsing (a library function so tests can call it).
#pragma once

#include "common/cli.hpp"
#include "common/tool_support.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace zmqkit::cli {

struct recv_config {
    socket_kind kind{"pull", zmq::socket_type::pull, endpoint_action::bind};
    std::vector<std::string> endpoints;
    std::vector<std::string> topics;  // --sub prefixes (default: one empty prefix = everything)
    std::optional<std::string> reply; // --rep: fixed reply body (default: echo the request)
    bool raw = false;
    std::string format = "text";
    // -K: "KEY<delimiter>BODY" lines (the key: the topic with --sub, else the type), what
    // zmqkit-send -K reads back.
    std::optional<std::string> key_delimiter;
    // --sub: first ask the forwarder's last-value cache for the current value of every
    // --topic (late joiner), for at most snapshot_timeout.
    bool snapshot = false;
    std::chrono::milliseconds snapshot_timeout{5000};
    // --fail-on-gap: exit 65 when sequenced publications were missing (gaps).
    bool fail_on_gap = false;

    std::optional<std::string> metrics_listen; // --metrics-listen ADDR:PORT
    std::optional<std::uint64_t> count;
    std::optional<std::chrono::milliseconds> timeout;
    std::optional<std::chrono::milliseconds> idle_timeout;
    // 0 (unlimited) by default: with a bounded receive queue, libzmq 4.3 can drop the last
    // messages of an ipc peer that closes while the queue is full (libzmq issue #4660).
    int hwm = 0;
    std::vector<socket_option_setting> socket_options;
    std::chrono::milliseconds linger{1000};
    // --ack: a DEALER consumer of a durable proxy; each message is acked once written to
    // stdout (at-least-once; repeats of an acked id are suppressed).
    bool ack = false;
    std::uint32_t credit = 256;
    // --group NAME (--ack): read as a member of this consumer group (every group gets every
    // message); --from START: where the group starts when it is new (earliest by default).
    std::string group;
    std::string start;
    // --exit-at-end (--ack): exit once the proxy has nothing ready for this consumer and
    // nothing in flight to it (kcat -e).
    bool exit_at_end = false;

    bool stats = false;
    log_settings logging; // -v/-q, --log-level, --log-format (and zmqkit-proxy's --name)
    int verbosity = 0;    // logging.verbosity(): 1 with -v, -1 with -q
    // --curve-* / --plain-* / --zap-*: the socket's security (a client unless --curve-allow,
    // --plain-passwords or a --zap-*-ip filter make it a server; ZAP domain "zmqkit-recv").
    side_security security;
};

// Parses argv (and ZMQKIT_* variables, and --config FILE). Throws usage_error.
[[nodiscard]] std::variant<recv_config, print_and_exit> parse_recv_options(int argc,
                                                                           const char* const* argv);

} // namespace zmqkit::cli
