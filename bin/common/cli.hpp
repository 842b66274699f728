// Conventions shared by the zmqkit command-line tools:
//  - options from the command line, then ZMQKIT_* environment variables, then --config FILE
//    (INI: "name = value"), in that order of precedence;
//  - durations as "250ms", "2s", "1m" or a plain number of milliseconds;
//  - diagnostics on stderr as "<tool>: <level>: <text>", data on stdout;
//  - exit codes from sysexits.h.
#pragma once

#include <boost/program_options.hpp>

#include <chrono>
#include <string>
#include <string_view>

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

// Parses "250ms", "2s", "1.5s", "1m", "100us"? (no: ms resolution), or digits (ms).
// Throws zmqkit::config_error naming the value and the accepted forms.
[[nodiscard]] std::chrono::milliseconds parse_duration(std::string_view text);

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

} // namespace zmqkit::cli
