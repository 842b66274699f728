// zmqkit-top: one row per device from its STATUS documents, rendered as a table or JSON, and
// the loop that polls the control sockets.
#pragma once

#include "common/cli.hpp"
#include "zmqkit-top/options.hpp"

#include <zmqkit/signals.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace zmqkit::cli {

// What the view shows of one device. Rates need two STATUS documents; absent values are
// nullopt ("-" in the table, null in JSON).
struct top_row {
    std::string endpoint; // the control endpoint asked
    std::string name;     // STATUS "name" (else the endpoint)
    std::string mode;     // stream, forwarder, durable, lb, mdp (from the document's members)
    std::string state;    // STATUS "state", or "down" when it did not answer
    std::string error;    // why it is down
    std::optional<double> in_rate, out_rate;    // messages per second (frontend in, backend out)
    std::optional<std::uint64_t> depth;         // durable: spool messages; lb/mdp: queued
    std::optional<std::uint64_t> in_flight;     // durable, lb, mdp
    std::optional<std::uint64_t> lag;           // durable: consumer lag (never delivered)
    std::optional<std::uint64_t> oldest_age_ms; // durable: oldest unacked message
    std::optional<std::uint64_t> workers;       // lb, mdp
    std::optional<std::uint64_t> drops;         // what the device counts as dropped or refused
    std::optional<std::uint64_t> connections;   // open connections, every side
    std::optional<std::int64_t> uptime_seconds;
};

// A row from the device's STATUS (`now`), with rates against `before` (the previous document,
// `seconds` earlier; nullptr: no rates yet).
[[nodiscard]] top_row row_from_status(const std::string& endpoint, const nlohmann::json& now,
                                      const nlohmann::json* before, double seconds);

// The rows sorted by `sort` (names ascending, numbers descending; down devices last).
void sort_rows(std::vector<top_row>& rows, top_sort sort);

// The table: a title line (`title`), the column heads and one line per row, each at most
// `width` columns, at most `height` lines (rows beyond are summarised in a last line).
[[nodiscard]] std::string render_table(const std::vector<top_row>& rows, const std::string& title,
                                       std::size_t width, std::size_t height);

// {"time":"...","devices":[{"endpoint":...,"name":...,...}]}: one line, no newline.
[[nodiscard]] std::string render_json(const std::vector<top_row>& rows);

// Runs the view (docs/cli.md, "zmqkit-top"). Exit 0; with --once (or -n) 69 when a device did
// not answer the last time it was asked.
int run_top(const top_config& cfg, const logger& log, shutdown_signals& signals);

} // namespace zmqkit::cli
