// Conventions shared by the zmqkit command-line tools:
//  - options from the command line, then ZMQKIT_* environment variables, then --config FILE
//    (INI: "name = value"), in that order of precedence;
//  - durations as "250ms", "2s", "1m" or a plain number of milliseconds;
//  - diagnostics on stderr as "<tool>: <level>: <text>", data on stdout;
//  - exit codes from sysexits.h.
#pragma once

#include <zmqkit/signals.hpp>

#include <boost/program_options.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace zmqkit::cli {

// Exit codes (sysexits.h values, so shells and systemd recognise them).
enum exit_code : int {
    exit_ok = 0,
    exit_failure = 1,      // the tool ran and something failed (e.g. a drain deadline missed)
    exit_usage = 64,       // bad flag, bad value, bad endpoint
    exit_unavailable = 69, // cannot bind/connect, a component failed to start
    exit_software = 70,    // internal error
    exit_config = 78,      // unreadable or malformed config file
};

// A usage or configuration problem, with the exit code to leave with.
struct usage_error {
    std::string message;
    int code = exit_usage;
};

// What a command line asks for besides running: print this text (help, version) and exit.
struct print_and_exit {
    std::string text;
    int code = exit_ok;
};

// Parses "250ms", "2s", "1.5s", "1m", "100us"? (no: ms resolution), or digits (ms).
// Throws zmqkit::config_error naming the value and the accepted forms.
[[nodiscard]] std::chrono::milliseconds parse_duration(std::string_view text);

// A --linger value libzmq can take (0 to INT_MAX ms); throws usage_error otherwise.
void check_linger(std::chrono::milliseconds linger);

// Maps an environment variable to an option name: ZMQKIT_DRAIN_TIMEOUT -> "drain-timeout" if
// that option exists in desc; other variables are ignored.
[[nodiscard]] std::string
environment_option(const boost::program_options::options_description& desc,
                   const std::string& variable);

// Runs the three sources into vm (command line, environment, config file from "--config").
// Throws usage_error.
void parse_all(int argc, const char* const* argv,
               const boost::program_options::options_description& desc,
               const boost::program_options::positional_options_description* positional,
               boost::program_options::variables_map& vm);

// Diagnostics on stderr: "<tool>: <level>: <text>\n", one write per line.
class logger {
public:
    explicit logger(std::string tool) : tool_(std::move(tool)) {}
    void set_verbosity(int v) noexcept { verbosity_ = v; } // -1 quiet, 0 normal, 1+ verbose
    void info(std::string_view text) const;
    void debug(std::string_view text) const;
    void warn(std::string_view text) const;
    void error(std::string_view text) const;
    [[nodiscard]] const std::string& tool() const noexcept { return tool_; }

private:
    void write(std::string_view level, std::string_view text) const;
    std::string tool_;
    int verbosity_ = 0;
};

// The body of every tool's main(): block the shutdown signals before any thread starts, parse
// (a Config, or help/version to print), then run(cfg, log, signals). A usage_error becomes its
// message and exit code; any other exception "internal error" and exit_software.
template <class Config, class Parse, class Run>
int run_tool(const char* tool, int argc, char** argv, Parse parse, Run run) {
    shutdown_signals signals;
    logger log(tool);
    try {
        std::variant<Config, print_and_exit> parsed = parse(argc, argv);
        if (auto* p = std::get_if<print_and_exit>(&parsed)) {
            std::cout << p->text;
            return p->code;
        }
        Config cfg = std::get<Config>(std::move(parsed));
        log.set_verbosity(cfg.verbosity);
        return run(cfg, log, signals);
    } catch (const usage_error& e) {
        log.error(e.message);
        return e.code;
    } catch (const std::exception& e) {
        log.error(std::string("internal error: ") + e.what());
        return exit_software;
    }
}

} // namespace zmqkit::cli
