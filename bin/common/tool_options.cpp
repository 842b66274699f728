#include "common/tool_options.hpp"

#include "common/tool_support.hpp"

#include <zmqkit/metrics_server.hpp>

#include <charconv>
#include <sstream>

namespace po = boost::program_options;

namespace zmqkit::cli {

tool_options::tool_options(std::string tool, bool with_version)
    : tool_(std::move(tool)), program_("zmqkit-" + tool_),
      security_("Security (CURVE / PLAIN / ZAP, docs/security.md)") {
    options_.add_options()("help,h", "print this help and exit");
    if (with_version) {
        options_.add_options()("version", "print the version and exit");
    }
}

void tool_options::add_diagnostics(const char* verbose_help, bool with_config) {
    if (with_config) {
        options_.add_options()("config", po::value<std::string>(),
                               "read options from this INI file");
    }
    add_log_options(options_, verbose_help); // -v, -q, --log-level, --log-format
}

void tool_options::add_metrics() {
    options_.add_options()("metrics-listen", po::value<std::string>(),
                           "serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. "
                           "127.0.0.1:9464; port 0 picks a free one, logged at start)");
}

std::optional<std::string> tool_options::metrics_listen() const {
    if (!given("metrics-listen")) {
        return std::nullopt;
    }
    auto text = vm_["metrics-listen"].as<std::string>();
    try {
        (void)parse_listen_address(text);
    } catch (const zmqkit::error& e) {
        throw usage_error{std::string("--metrics-listen: ") + e.what(), exit_usage};
    }
    return text;
}

void tool_options::add_security(const std::vector<std::string>& sides) {
    add_security_options(security_, hidden_, sides);
}

void tool_options::parse(int argc, const char* const* argv) {
    po::options_description all;
    all.add(options_).add(security_).add(hidden_);
    parse_all(tool_, argc, argv, all, has_positional_ ? &positional_ : nullptr, vm_);
}

void tool_options::parse_command_line(int argc, const char* const* argv) {
    po::options_description all;
    all.add(options_).add(security_).add(hidden_);
    try {
        po::command_line_parser parser(argc, argv);
        parser.options(all);
        if (has_positional_) {
            parser.positional(positional_);
        }
        po::store(parser.run(), vm_);
        po::notify(vm_);
    } catch (const po::error& e) {
        throw usage_error{std::string(e.what()) + " (see " + program_ + " --help)", exit_usage};
    }
}

std::optional<print_and_exit> tool_options::version() const {
    if (!given("version")) {
        return std::nullopt;
    }
    return print_and_exit{program_ + " " ZMQKIT_VERSION "\n", exit_ok};
}

std::optional<print_and_exit> tool_options::parse_socket_tool(int argc, const char* const* argv,
                                                              std::string_view head,
                                                              std::string_view tail) {
    parse(argc, argv);
    if (wants_help()) {
        std::ostringstream text;
        text << head << ":\n"
             << options_ << "\n-X names: " << known_socket_options() << "\n\n"
             << security_ << security_help() << tail;
        return print_and_exit{text.str(), exit_ok};
    }
    return version();
}

log_settings tool_options::logging() const {
    return log_settings_from(vm_);
}

int tool_options::verbosity() const {
    return logging().verbosity();
}

side_security tool_options::security() const {
    return resolve_side_security(vm_, program_, false, program_);
}

std::uint64_t parse_count(const std::string& text, const char* what) {
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || ptr != text.data() + text.size() || text.empty()) {
        throw usage_error{std::string(what) + " '" + text + "' is not a non-negative integer",
                          exit_usage};
    }
    return v;
}

void check_hwm(int hwm) {
    if (hwm < 0) {
        throw usage_error{"--hwm must be 0 (no limit) or more, got " + std::to_string(hwm),
                          exit_usage};
    }
}

side_security tool_options::security(const std::string& side) const {
    return resolve_side_security(vm_, side, true, side);
}

} // namespace zmqkit::cli
