// Conventions shared by the zmqkit command-line tools:
//  - options from the command line, then ZMQKIT_* environment variables, then --config FILE
//    (INI: "name = value"), in that order of precedence;
//  - durations as "250ms", "2s", "1m" or a plain number of milliseconds;
//  - diagnostics on stderr through zmqkit's log ("<time> <LEVEL> <tool>: <text>", or JSON
//    lines with --log-format json), data on stdout;
//  - exit codes from sysexits.h.
#pragma once

#include <zmqkit/log.hpp>
#include <zmqkit/security.hpp>
#include <zmqkit/signals.hpp>

#include <boost/program_options.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace zmqkit::cli {

// Exit codes (sysexits.h values, so shells and systemd recognise them): the one list every
// tool uses (docs/cli.md names what each means for each tool).
enum exit_code : int {
    exit_ok = 0,
    exit_failure = 1,        // the tool ran and something failed (e.g. a drain dropped messages)
    exit_usage = 64,         // bad flag, bad value, bad endpoint
    exit_data_error = 65,    // EX_DATAERR: malformed input data, a damaged spool (zmqkit-proxy
                             // --strict refused, zmqkit-spooler verify), an invalid certificate
    exit_no_input = 66,      // EX_NOINPUT: an input file or directory cannot be read
    exit_unavailable = 69,   // cannot bind/connect, a component failed to start
    exit_software = 70,      // internal error
    exit_cannot_create = 73, // EX_CANTCREAT: an output file cannot be created or written
    exit_timeout = 75,       // EX_TEMPFAIL: timed out before the expected count (also: a resource
                             // held by another process, such as a spool in use)
    exit_unconfirmed = 76,   // EX_PROTOCOL: --wait-confirm: not every message was confirmed
    exit_config = 78,        // unreadable or malformed config file
};

// A usage or configuration problem, with the exit code to leave with. A std::exception (what()
// is the message), so code that catches std::exception sees it too.
struct usage_error : std::exception {
    usage_error(std::string text, int exit = exit_usage) : message(std::move(text)), code(exit) {}
    [[nodiscard]] const char* what() const noexcept override { return message.c_str(); }

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

// ---- environment variables --------------------------------------------------------------
//
// ZMQKIT_<TOOL>_<OPTION> sets any option of one tool (ZMQKIT_RECV_FORMAT=json,
// ZMQKIT_PROXY_DRAIN_TIMEOUT=2s); TOOL is PROXY, SEND, RECV or SPOOLER. The plain
// ZMQKIT_<OPTION> is also read, with lower precedence, for the options that mean the same to
// every tool (the security flags, --hwm, --linger, ...) and for options only one tool has
// (--drain-timeout, --frontend, ...), but never for a name several tools take with different
// meanings (--format, --count, --timeout, ...): a variable exported for one tool must not change
// or break another. Other variables are ignored.

// The option names several tools take with different meanings (plain ZMQKIT_<OPTION> not
// read for them), and whether a name means the same to every tool that takes it (the security
// flags, a side's security flags, --hwm, --linger, -X, -v, -q).
[[nodiscard]] const std::vector<std::string>& tool_specific_option_names();
[[nodiscard]] bool shared_option_name(const std::string& name);

// Info lines for the plain variables the last parse_all() did not read because several tools
// take that option with different meanings ("ignoring ZMQKIT_FORMAT: ... set
// ZMQKIT_RECV_FORMAT for zmqkit-recv"). run_tool() logs them.
[[nodiscard]] std::vector<std::string> ignored_environment_notes(std::string_view tool);

// `message` prefixed with the variable it is about ("ZMQKIT_SEND_FORMAT=json: --format applies
// to --req only") when it names an option (--format) or quotes a value that the last
// parse_all() of this process took from the environment (the tools parse once, on the main
// thread); unchanged otherwise. run_tool() applies it to every usage_error.
[[nodiscard]] std::string name_environment_source(const std::string& message);

// Runs the three sources into vm: the command line, the environment (ZMQKIT_<TOOL>_<OPTION>,
// then the plain ZMQKIT_<OPTION> as above), and the config file from "--config" (a readable
// regular file: a directory or an unreadable file is exit_config). Throws usage_error; an
// error about a value from the environment names the variable, one about the file names it.
void parse_all(std::string_view tool, int argc, const char* const* argv,
               const boost::program_options::options_description& desc,
               const boost::program_options::positional_options_description* positional,
               boost::program_options::variables_map& vm);

// `bytes` as text safe for a terminal or a log line: printable ASCII as it is, \n \r \t and
// \\ as C escapes, other bytes as \xNN (with `quote`, also \" for a "..." string). Past
// `limit` input bytes the rest is elided as "...(N more bytes)".
void append_escaped(std::string& out, std::string_view bytes, bool quote = false,
                    std::size_t limit = std::string_view::npos);
[[nodiscard]] std::string escaped(std::string_view bytes,
                                  std::size_t limit = std::string_view::npos);

// ---- logging (docs/operations.md, "Log lines") ------------------------------------------------
//
// Every tool logs through zmqkit's log (zmqkit/log.hpp): "<time> <LEVEL> <component>: <text>"
// on stderr, or JSON lines with --log-format json. The component is the tool's name
// (zmqkit-proxy: its --name when given).

// What -v/-q, --log-level and --log-format ask for.
struct log_settings {
    log_level level = log_level::info;
    log_format format = log_format::text;
    std::string component; // "": the tool's name
    // The tools' older scale for "is -v on": 1 at debug or below, 0 at info, -1 above.
    [[nodiscard]] int verbosity() const noexcept {
        return level <= log_level::debug ? 1 : (level == log_level::info ? 0 : -1);
    }
};

// Adds -v/--verbose (`verbose_help`: what more the tool says), -q/--quiet, --log-level LEVEL
// and --log-format text|json.
void add_log_options(boost::program_options::options_description& desc,
                     const char* verbose_help = "more diagnostics (--log-level debug)");
// The settings in vm: --log-level wins; else -q is warn, -v debug, neither info. Throws
// usage_error (exit_usage) for an unknown level or format.
[[nodiscard]] log_settings log_settings_from(const boost::program_options::variables_map& vm);
// Makes them the process's: stderr in that format, that level for every component.
void apply_log_settings(const log_settings& settings);

// A tool's diagnostics: zmqkit's log with the tool's name (or --name) as the component, so its
// lines and the library's are one stream in one format. Thread-safe.
class logger {
public:
    explicit logger(std::string tool) : tool_(std::move(tool)), log_(tool_) {}
    // Names the lines `component` from now on (zmqkit-proxy --name).
    void set_component(std::string_view component) { log_ = zmqkit::logger(component); }
    void info(std::string_view text) const noexcept { log_.info(text); }
    void debug(std::string_view text) const noexcept { log_.debug(text); }
    void warn(std::string_view text) const noexcept { log_.warn(text); }
    void error(std::string_view text) const noexcept { log_.error(text); }
    [[nodiscard]] bool enabled(log_level level) const noexcept { return log_.enabled(level); }
    // The tool's name ("zmqkit-send"), whatever the component.
    [[nodiscard]] const std::string& tool() const noexcept { return tool_; }
    [[nodiscard]] const zmqkit::logger& core() const noexcept { return log_; }

private:
    std::string tool_;
    zmqkit::logger log_;
};

// ---- security flags (docs/security.md, "The binaries") --------------------------------------
//
// Every binary takes the same flags, config-file keys and ZMQKIT_* variables for CURVE, PLAIN
// and ZAP: --curve-secret FILE, --curve-server-key KEY|FILE, --curve-allow DIR|any,
// --zap-allow-ip / --zap-deny-ip ADDR[/BITS] (repeatable), --plain-passwords FILE, --plain-user
// NAME with --plain-password-file FILE or ZMQKIT_PLAIN_PASSWORD. A binary with several sides
// also takes "--<side>-<flag>" (--frontend-curve-allow, ...), which overrides the plain flag
// for that side.

// The security flag names without "--" (the same names are config-file keys).
[[nodiscard]] const std::vector<std::string>& security_flag_names();

// Adds the plain flags to `visible` and, for each of `sides`, "--<side>-<flag>" to `hidden`
// (parsed, config-file keys, but documented in one line of the help text instead of 8 x N).
void add_security_options(boost::program_options::options_description& visible,
                          boost::program_options::options_description& hidden,
                          const std::vector<std::string>& sides = {});

// What one side of a binary is configured with.
struct side_security {
    std::string side;                 // "frontend", ... or the tool's socket name
    socket_security socket;           // applied to the side's socket(s)
    std::optional<zap_policy> policy; // a server side: the policy of socket.zap_domain
    [[nodiscard]] bool server() const noexcept { return policy.has_value(); }
    [[nodiscard]] bool enabled() const noexcept { return socket.enabled(); }
};

// The settings of one side from the flags in vm: the plain flags, overridden flag by flag by
// "--<side>-<flag>" when `per_side`. A per-side flag of one role or mechanism drops the
// inherited flags of the other (--backend-curve-server-key ignores a plain --curve-allow).
// The role follows from the flags: --curve-allow (with --curve-secret) makes a CURVE server,
// --curve-server-key a CURVE client (--curve-secret then is its identity), --plain-passwords a
// PLAIN server, --plain-user a PLAIN client, --zap-allow-ip / --zap-deny-ip alone a plaintext
// server with IP filters. A server's ZAP domain is `zap_domain`. Reads the certificate and
// password files. Throws usage_error (exit_usage) saying which flag is missing or wrong; never
// prints a secret.
[[nodiscard]] side_security resolve_side_security(const boost::program_options::variables_map& vm,
                                                  const std::string& side, bool per_side,
                                                  const std::string& zap_domain);

// The help text's paragraph about the security flags, with one example (`per_side`: also the
// "--<side>-<flag>" overrides, naming `sides`).
[[nodiscard]] std::string security_help(const std::vector<std::string>& sides = {});

// The ZAP authenticator of a binary's context: created when at least one of `sides` is a
// server (nullptr otherwise), with one policy per server side, before any socket binds. Its
// denials and reloads are logged as warnings through `log`. Throws usage_error (exit_usage)
// when a policy cannot be set (an allow directory that cannot be read, ...).
[[nodiscard]] std::unique_ptr<authenticator>
start_authenticator(zmq::context_t& context, const std::vector<const side_security*>& sides,
                    const logger& log);

// "frontend: curve server, public key ..., domain 'frontend'" per enabled side (public parts
// only), for the start-up log.
[[nodiscard]] std::vector<std::string>
describe_security(const std::vector<const side_security*>& sides);

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
        apply_log_settings(cfg.logging);
        if (!cfg.logging.component.empty()) {
            log.set_component(cfg.logging.component);
        }
        const std::string_view name(tool);
        for (const auto& note :
             ignored_environment_notes(name.starts_with("zmqkit-") ? name.substr(7) : name)) {
            log.info(note);
        }
        return run(cfg, log, signals);
    } catch (const usage_error& e) {
        log.error(name_environment_source(e.message));
        return e.code;
    } catch (const std::exception& e) {
        log.error(std::string("internal error: ") + e.what());
        return exit_software;
    }
}

} // namespace zmqkit::cli
