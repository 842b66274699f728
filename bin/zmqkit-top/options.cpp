#include "zmqkit-top/options.hpp"

#include "common/tool_options.hpp"

#include <array>
#include <sstream>

namespace po = boost::program_options;

namespace zmqkit::cli {
namespace {

constexpr const char* head = R"(Usage: zmqkit-top [options] CONTROL...

A live view of running zmqkit proxies, in the spirit of nats-top and htop: every refresh asks
each CONTROL endpoint (a proxy's --control socket; entries without a prefix connect) for its
STATUS and shows one line per device: its mode and state, messages per second in and out, depth
and messages in flight, consumer lag and the age of the oldest unacked message (durable),
workers (lb, mdp), drops and open connections. Readable on an 80x24 terminal; keys: s sorts by
the next column, q quits. When stdout is not a terminal it prints one table per refresh (with
--once: one, after one interval, so the rates are known); --json prints one JSON object per
refresh instead.

Examples:
  zmqkit-top ipc:///run/zmqkit/orders.ctl ipc:///run/zmqkit/audit.ctl
  zmqkit-top --once --json ipc:///run/zmqkit/orders.ctl | jq '.devices[0].lag'
  zmqkit-top --sort lag --interval 2s tcp://10.0.0.5:5560)";

constexpr const char* tail = R"(
Columns: NAME (the proxy's --name), MODE, ST (run, pause, bp: back-pressure, ro: read-only,
down: no answer within --timeout), IN/s and OUT/s (frontend messages in, backend messages out,
per second), DEPTH (durable: messages in the spool; lb, mdp: requests queued), LAG (durable:
messages never delivered), AGE (durable: oldest unacked message), WRK (lb, mdp: workers), DROP
(slow-subscriber drops, rejects, dropped or expired requests), CONN (open connections), UP.

Exit codes: 0 ok; with --once or -n, 69 when a device did not answer the last time it was
asked; 64 bad usage.
)";

constexpr std::array<std::pair<top_sort, std::string_view>, 8> sort_names{{
    {top_sort::name, "name"},
    {top_sort::in, "in"},
    {top_sort::out, "out"},
    {top_sort::depth, "depth"},
    {top_sort::lag, "lag"},
    {top_sort::age, "age"},
    {top_sort::drops, "drops"},
    {top_sort::connections, "connections"},
}};

} // namespace

std::string_view to_string(top_sort sort) noexcept {
    for (const auto& [s, name] : sort_names) {
        if (s == sort) {
            return name;
        }
    }
    return "name";
}

std::optional<top_sort> parse_top_sort(std::string_view text) noexcept {
    for (const auto& [s, name] : sort_names) {
        if (name == text) {
            return s;
        }
    }
    return std::nullopt;
}

std::variant<top_config, print_and_exit> parse_top_options(int argc, const char* const* argv) {
    top_config cfg;
    std::string interval = "1s";
    std::string timeout = "500ms";
    std::string sort = "name";
    std::string iterations;
    tool_options options("top");
    // clang-format off
    options.add()
        ("interval", po::value(&interval), "refresh every DUR (default 1s, at least 100ms)")
        ("once", "print one view after one interval and exit")
        ("iterations,n", po::value(&iterations), "stop after N views")
        ("json", "one JSON object per view on stdout instead of the table")
        ("sort", po::value(&sort), "name, in, out, depth, lag, age, drops or connections (default name)")
        ("timeout", po::value(&timeout), "how long to wait for each STATUS reply (default 500ms)");
    // clang-format on
    options.add_security();
    options.add_diagnostics("more diagnostics");
    options.add_hidden()("control", po::value(&cfg.controls)->composing(), "control endpoints");
    options.positional("control", -1);
    options.parse(argc, argv);
    if (options.wants_help()) {
        std::ostringstream text;
        text << head << "\n\nOptions:\n"
             << options.options() << options.security_options() << security_help() << tail;
        return print_and_exit{text.str(), exit_ok};
    }
    if (auto v = options.version()) {
        return *v;
    }
    cfg.logging = options.logging();
    cfg.verbosity = cfg.logging.verbosity();
    cfg.once = options.given("once");
    cfg.json = options.given("json");
    cfg.interval = parse_duration(interval);
    if (cfg.interval < std::chrono::milliseconds(100)) {
        throw usage_error{"--interval " + interval + ": at least 100ms", exit_usage};
    }
    cfg.timeout = parse_duration(timeout);
    if (cfg.timeout.count() <= 0) {
        throw usage_error{"--timeout " + timeout + ": must be more than 0", exit_usage};
    }
    const auto s = parse_top_sort(sort);
    if (!s) {
        throw usage_error{"--sort " + sort +
                              ": expected name, in, out, depth, lag, age, drops or connections",
                          exit_usage};
    }
    cfg.sort = *s;
    if (options.given("iterations")) {
        cfg.iterations = parse_count(iterations, "--iterations");
        if (*cfg.iterations == 0) {
            throw usage_error{"--iterations 0: at least 1", exit_usage};
        }
    }
    if (cfg.controls.empty()) {
        throw usage_error{"no control endpoint given (zmqkit-top CONTROL..., e.g. "
                          "ipc:///run/zmqkit/proxy.ctl; see --help)",
                          exit_usage};
    }
    cfg.security = options.security();
    return cfg;
}

} // namespace zmqkit::cli
