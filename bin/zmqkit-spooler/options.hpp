// zmqkit-spooler: command and option parsing (a library function so tests can call it).
#pragma once

#include "common/cli.hpp"
#include "common/tool_support.hpp"

#include <zmqkit/message_id.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace zmqkit::cli {

// What cli.hpp's exit codes mean to zmqkit-spooler (docs/cli.md).
inline constexpr int exit_spool_damaged = exit_data_error; // verify found damage
inline constexpr int exit_no_spool = exit_no_input;        // no spool there, or unreadable
inline constexpr int exit_spool_in_use = exit_timeout;     // another process holds the spool

enum class spooler_command {
    inspect,
    verify,
    repair,
    dlq_list,
    dlq_requeue,
    dlq_purge,
    record,
    replay,
    group_list,
    group_reset,
    group_delete,
};

// The name of a command as typed ("inspect", "dlq list", ...).
[[nodiscard]] std::string_view to_string(spooler_command command) noexcept;

struct spooler_config {
    spooler_command command = spooler_command::inspect;
    std::filesystem::path directory;
    bool json = false;

    // dlq list / requeue
    std::optional<std::uint64_t> limit; // dlq list --limit N
    std::optional<message_id> id;       // dlq requeue --id ID
    bool all = false;                   // dlq requeue --all

    std::optional<std::string> metrics_listen; // record: --metrics-listen ADDR:PORT

    // group list / reset / delete: the group, the start position (reset --to), and the running
    // proxy's control endpoint (--control) instead of a spool directory
    std::string group;
    std::string start;
    std::string control;
    std::chrono::milliseconds control_timeout{5000};

    // record / replay
    socket_kind kind{"pull", zmq::socket_type::pull, endpoint_action::bind};
    std::vector<std::string> endpoints;
    std::vector<std::string> topics; // record --sub prefixes (default: one empty = everything)
    bool raw = false;                // record --raw: wrap plain frames in a fresh envelope
    std::optional<std::uint64_t> count;
    std::optional<std::chrono::milliseconds> idle_timeout;
    std::optional<std::chrono::milliseconds> timeout;
    std::string sync = "always"; // record --sync
    // record --segment-bytes (new segments' size; default: as the existing ones, else 64 MiB)
    std::optional<std::uint64_t> segment_bytes;
    std::uint64_t batch = 1000;             // record --batch: messages per commit at most
    std::uint64_t from_sequence = 0;        // replay --from-sequence
    std::optional<std::int64_t> since_ns;   // replay --since (ns since the Unix epoch)
    std::optional<double> rate;             // replay --rate messages per second
    std::size_t wait_peers = 0;             // replay --wait-peers N
    std::chrono::milliseconds linger{5000}; // replay --linger
    std::vector<socket_option_setting> socket_options;
    int hwm = 0; // record: receive HWM (0: unlimited); replay: send HWM (0: unlimited)

    log_settings logging; // -v/-q, --log-level, --log-format (and zmqkit-proxy's --name)
    int verbosity = 0;    // logging.verbosity(): 1 with -v, -1 with -q
    // record / replay: --curve-* / --plain-* / --zap-* for the socket (the same flags as every
    // binary; a client unless --curve-allow, --plain-passwords or a --zap-*-ip filter make it a
    // server with ZAP domain "zmqkit-spooler").
    side_security security;
};

// Parses argv: `zmqkit-spooler <command> [options] DIR` (and ZMQKIT_* variables, and --config
// FILE). Throws usage_error (exit 64, 78 for a bad config file).
[[nodiscard]] std::variant<spooler_config, print_and_exit>
parse_spooler_options(int argc, const char* const* argv);

// "2024-05-01T12:00:00Z" (fractions and +hh:mm offsets allowed), "@SECONDS[.frac]" (Unix
// time), or a duration ("10m": that long before `now_ns`). Returns ns since the Unix epoch.
// Throws usage_error.
[[nodiscard]] std::int64_t parse_time(std::string_view text, std::int64_t now_ns);

// ns since the Unix epoch as RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.123Z").
[[nodiscard]] std::string format_time(std::int64_t unix_ns);

} // namespace zmqkit::cli
