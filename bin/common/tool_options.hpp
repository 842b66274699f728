// The options every zmqkit tool shares, built in one place: --help, --version, --config FILE,
// the ZMQKIT_<TOOL>_* environment (cli.hpp, parse_all), -v/--verbose and -q/--quiet, and the
// security flags (--curve-*, --plain-*, --zap-*). A tool adds its own options between the
// shared head (help, version) and the shared tail (config, verbosity), so every --help lists
// them in the same places, and reads the shared ones back the same way.
#pragma once

#include "common/cli.hpp"

#include <boost/program_options.hpp>

#include <cstdint>

#include <optional>
#include <string>
#include <vector>

namespace zmqkit::cli {

class tool_options {
public:
    // `tool` is the short name ("send": zmqkit-send, ZMQKIT_SEND_*). Adds -h/--help and, with
    // `with_version`, --version to the tool's option list.
    explicit tool_options(std::string tool, bool with_version = true);

    // The tool's own options, in the order its --help lists them.
    boost::program_options::options_description_easy_init add() { return options_.add_options(); }
    // Adds --config FILE (unless `with_config` is false), -v/--verbose (described by
    // `verbose_help`), -q/--quiet, --log-level and --log-format: call after the tool's own options.
    void add_diagnostics(const char* verbose_help, bool with_config = true);
    // Adds --metrics-listen ADDR:PORT (the long-running tools: zmqkit-proxy, zmqkit-recv,
    // zmqkit-spooler record). Call before add_diagnostics.
    void add_metrics();
    // --metrics-listen, checked (nullopt: not given). Throws usage_error (exit_usage) for an
    // address that is not HOST:PORT.
    [[nodiscard]] std::optional<std::string> metrics_listen() const;
    // Adds the security flags as their own help group, and "--<side>-<flag>" for each of
    // `sides` (parsed, not listed).
    void add_security(const std::vector<std::string>& sides = {});
    // Options that are parsed but not listed (positional values, per-side overrides).
    boost::program_options::options_description_easy_init add_hidden() {
        return hidden_.add_options();
    }
    // Every value of the positional arguments goes to option `name` (`max` values; -1: all).
    void positional(const char* name, int max) {
        positional_.add(name, max);
        has_positional_ = true;
    }

    // Reads the command line, then ZMQKIT_<TOOL>_* / ZMQKIT_* and --config (parse_all).
    // Throws usage_error.
    void parse(int argc, const char* const* argv);
    // Reads the command line only (no environment, no config file: zmqkit-keygen, where
    // nothing in the environment may make it replace a key). Throws usage_error.
    void parse_command_line(int argc, const char* const* argv);

    [[nodiscard]] const boost::program_options::variables_map& values() const noexcept {
        return vm_;
    }
    // Whether an option was given (on the command line, in the environment or the file).
    [[nodiscard]] bool given(const char* name) const { return vm_.count(name) != 0U; }
    [[nodiscard]] bool wants_help() const { return given("help"); }
    // "zmqkit-<tool> <version>\n" when --version was given.
    [[nodiscard]] std::optional<print_and_exit> version() const;
    // parse(), then the --help or --version text when either was given: for --help, `head`,
    // ":", the options, the names -X takes, the security group and its paragraph, `tail` (a
    // tool with one socket: zmqkit-send, zmqkit-recv). Throws usage_error.
    [[nodiscard]] std::optional<print_and_exit> parse_socket_tool(int argc, const char* const* argv,
                                                                  std::string_view head,
                                                                  std::string_view tail);
    // --log-level / --log-format / -v / -q (log_settings_from). Throws usage_error.
    [[nodiscard]] log_settings logging() const;
    // -1 at warn or above (-q), 1 at debug or below (-v), 0 otherwise.
    [[nodiscard]] int verbosity() const;
    // The security of the tool's one socket (no per-side flags): a server's ZAP domain is
    // "zmqkit-<tool>". Throws usage_error.
    [[nodiscard]] side_security security() const;
    // The security of one side of a tool with several (add_security(sides)): the plain flags,
    // overridden by "--<side>-<flag>"; a server's ZAP domain is the side's name. Throws
    // usage_error.
    [[nodiscard]] side_security security(const std::string& side) const;

    // For --help: the tool's option list and the security group.
    [[nodiscard]] const boost::program_options::options_description& options() const noexcept {
        return options_;
    }
    [[nodiscard]] const boost::program_options::options_description&
    security_options() const noexcept {
        return security_;
    }
    [[nodiscard]] const std::string& program() const noexcept { return program_; }

private:
    std::string tool_;
    std::string program_; // "zmqkit-<tool>"
    boost::program_options::options_description options_;
    boost::program_options::options_description security_;
    boost::program_options::options_description hidden_;
    boost::program_options::positional_options_description positional_;
    boost::program_options::variables_map vm_;
    bool has_positional_ = false; // none: a positional argument is an error
};

// A count given as text ("--count 10"): a non-negative integer. Throws usage_error naming
// `what` otherwise.
[[nodiscard]] std::uint64_t parse_count(const std::string& text, const char* what);

// --hwm: 0 (no limit) or more. Throws usage_error otherwise.
void check_hwm(int hwm);

} // namespace zmqkit::cli
