#include "zmqkit-worker/options.hpp"

#include "common/message_format.hpp"
#include "common/tool_options.hpp"
#include "common/tool_support.hpp"
#include "zmqkit-worker/command.hpp"

#include <zmqkit/error.hpp>
#include <zmqkit/patterns/majordomo.hpp>

#include <sstream>

namespace po = boost::program_options;

namespace zmqkit::cli {
namespace {

constexpr const char* usage_head =
    R"(Usage: zmqkit-worker [--lb | --mdp --service NAME] [--exec CMD] [options] ENDPOINT...

Any command as a worker of a zmqkit broker: joins zmqkit-proxy --mode lb as a 6/PPP worker
(--lb, the default) or zmqkit-proxy --mode mdp as a 7/MDP worker of one service (--mdp
--service NAME), connecting to the broker's backend ENDPOINT, and runs --exec CMD once per
request: the request's body on the command's stdin, its stdout the reply. A non-zero exit, a
signal, --exec-timeout or more stdout than --max-size is answered with an error reply that
says why and ends with the last KiB of the command's stderr; a request larger than --max-size
is refused the same way and never run. Without --exec it prints each request on stdout (-f,
as zmqkit-recv does) and answers with --reply TEXT or the request's own body: a stand-in
worker for debugging.

CMD is split into words as a shell would split a simple command, but without a shell: '...'
and "..." quote, a backslash escapes one character; no variables, globbing, pipes or
redirections (an unquoted | & ; < > ( ) $ or ` is refused). --shell runs CMD with /bin/sh -c
instead. The command's environment is the worker's, plus the request's ids for scripts to log:
ZMQKIT_MESSAGE_ID, ZMQKIT_CORRELATION_ID, ZMQKIT_CAUSATION_ID, ZMQKIT_MESSAGE_TYPE and
ZMQKIT_ATTEMPT (envelope requests), ZMQKIT_SERVICE (--mdp), ZMQKIT_WORKER_SLOT (0 to
--concurrency - 1). It runs in a process group of its own, killed as a whole: SIGTERM at
--exec-timeout, SIGKILL --kill-grace later; a background process it leaves behind is killed when
it exits.

Endpoints use CZMQ's grammar: entries without a prefix connect ('>'), '@' binds, several
separated by commas; -e may be repeated.

Options)";

constexpr const char* usage_tail = R"(
Every option can also come from the environment as ZMQKIT_WORKER_<OPTION> (ZMQKIT_WORKER_EXEC,
ZMQKIT_WORKER_CONCURRENCY, ...; the plain ZMQKIT_<OPTION> too, except for options other tools
take with another meaning, such as --count or --format) or from an INI file given with
--config ("exec = tr a-z A-Z"). Durations: milliseconds, or a number with ms, s, m or h.

--concurrency N runs N requests at once: N workers in this process, each its own connection
to the broker with credit 1, so the broker's dispatch (least recently used worker first) and
its heartbeats, expiry and re-dispatch apply to each. A command runs on its worker's thread,
which keeps heartbeating while the command runs.

Error replies: 6/PPP as every zmqkit worker's (an envelope of type zmqkit.error, user header
error=handler, the reason as body; a raw request gets "ERROR handler: <reason>"); 7/MDP (which
has none) as zmqkit's convention, the three frames "zmqkit.error", "handler", the reason
(docs/wire-protocol.md §9.4).

Signals: SIGINT or SIGTERM drains: nothing new is taken, the commands running finish (up to
--drain-timeout), their replies are sent, then it exits; a second signal kills the commands
still running at once (their requests get error replies).

Examples:
  # a farm of 4 shell workers behind a load balancer
  zmqkit-proxy --mode lb --frontend tcp://*:5555 --backend tcp://*:5556 &
  zmqkit-worker --exec 'tr a-z A-Z' --concurrency 4 tcp://127.0.0.1:5556
  printf 'hello\nworld\n' | zmqkit-send --req tcp://127.0.0.1:5555
  # a Majordomo service "resize" run by a script, 10 s per image at most
  zmqkit-worker --mdp --service resize --exec './resize.sh --width 640' --exec-timeout 10s tcp://broker:5556
  # a pipeline through a shell, logging the conversation's id
  zmqkit-worker --shell --exec 'echo "$ZMQKIT_CORRELATION_ID" >&2; sort | uniq -c' tcp://127.0.0.1:5556
  # see what arrives, answer "ok"
  zmqkit-worker --reply ok -f '%i %c %s\n' tcp://127.0.0.1:5556

Exit codes: 0 stopped by SIGINT/SIGTERM after the drain, or --count reached; 1 the drain cut
commands short (--drain-timeout, or a second signal); 64 bad usage (also an --exec program that
is not in PATH); 69 a worker could not start; 70 internal error; 78 --config is a directory,
unreadable or malformed.
)";

// The option values read as text, checked and converted by the groups below.
struct worker_text {
    std::vector<std::string> endpoints;
    std::string exec;
    std::string reply;
    std::string exec_timeout = "30s";
    std::string kill_grace = "1s";
    std::string drain_timeout;
    std::string max_size = "1048576";
    std::string heartbeat_interval;
    std::string count;
    std::int64_t concurrency = 1;
    std::int64_t liveness = 3;
};

void describe_worker_options(tool_options& options, worker_config& cfg, worker_text& text) {
    // clang-format off
    options.add()
        ("lb", "a 6/PPP worker of zmqkit-proxy --mode lb (default)")
        ("mdp", "a 7/MDP worker of zmqkit-proxy --mode mdp: of the service --service names")
        ("service", po::value(&cfg.service)->value_name("NAME"), "--mdp: the service to register (not mmi.*)")
        ("endpoint,e", po::value(&text.endpoints)->composing()->value_name("EP"), "the broker's backend (repeatable; also positional)")
        ("exec", po::value(&text.exec)->value_name("CMD"), "run CMD per request: body on stdin, stdout is the reply")
        ("shell", "run --exec CMD with /bin/sh -c (pipes, variables, redirections)")
        ("exec-timeout", po::value(&text.exec_timeout)->default_value("30s")->value_name("DUR"), "a command still running after DUR is stopped (SIGTERM, then SIGKILL) and its request answered with an error")
        ("kill-grace", po::value(&text.kill_grace)->default_value("1s")->value_name("DUR"), "from SIGTERM to SIGKILL; also how long output may linger after the command exits")
        ("max-size", po::value(&text.max_size)->default_value("1048576")->value_name("BYTES"), "the largest request and reply body in bytes: a larger request is refused, more stdout stops the command")
        ("reply", po::value(&text.reply)->value_name("TEXT"), "without --exec: answer with this text instead of the request's body")
        ("format,f", po::value(&cfg.format)->value_name("F"), "without --exec: print each request in this format, as zmqkit-recv -f (default text)")
        ("concurrency", po::value(&text.concurrency)->default_value(1)->value_name("N"), "requests handled at once (N workers, each with its own connection)")
        ("heartbeat-interval", po::value(&text.heartbeat_interval)->value_name("DUR"), "heartbeat to and from the broker this often: as the broker's (default 1s --lb, 2500ms --mdp, as zmqkit-proxy)")
        ("liveness", po::value(&text.liveness)->default_value(3)->value_name("N"), "the broker silent this many intervals: reconnect (with backoff)")
        ("drain-timeout", po::value(&text.drain_timeout)->value_name("DUR"), "on SIGTERM/SIGINT: how long running commands may take to finish (default: --exec-timeout)")
        ("count,c", po::value(&text.count)->value_name("N"), "exit after N requests (with --concurrency, those running then finish too)")
        ("stats", "print statistics on stderr at exit");
    // clang-format on
    options.add_diagnostics("more diagnostics: one line per request with its ids and outcome");
    options.add_security();
    options.positional("endpoint", -1);
}

std::chrono::milliseconds duration_of(const std::string& text, const char* flag) {
    try {
        return parse_duration(text);
    } catch (const zmqkit::error& e) {
        throw usage_error{std::string(flag) + ": " + e.what(), exit_usage};
    }
}

// --lb / --mdp and --service, the broker's endpoints.
void apply_protocol(const tool_options& options, worker_config& cfg, worker_text& text) {
    if (options.given("lb") && options.given("mdp")) {
        throw usage_error{"--lb and --mdp: choose one (6/PPP or 7/MDP)", exit_usage};
    }
    cfg.protocol = options.given("mdp") ? worker_protocol::mdp : worker_protocol::lb;
    if (cfg.protocol == worker_protocol::mdp) {
        if (cfg.service.empty()) {
            throw usage_error{"--mdp needs --service NAME (the service this worker registers)",
                              exit_usage};
        }
        if (patterns::mmi::reserved(cfg.service)) {
            throw usage_error{"--service " + cfg.service +
                                  ": the mmi.* services are the broker's own (8/MMI)",
                              exit_usage};
        }
    } else if (options.given("service")) {
        throw usage_error{"--service needs --mdp (a 6/PPP broker has no services)", exit_usage};
    }
    if (text.endpoints.empty()) {
        throw usage_error{"no endpoint given: the broker's backend (e.g. zmqkit-worker --exec cat "
                          "tcp://127.0.0.1:5556; see --help)",
                          exit_usage};
    }
    check_endpoints(text.endpoints, endpoint_action::connect);
    cfg.endpoints = std::move(text.endpoints);
}

// --exec / --shell, or the debugging mode's --reply and -f.
void apply_work(const tool_options& options, worker_config& cfg, const worker_text& text) {
    cfg.shell = options.given("shell");
    if (!options.given("exec")) {
        if (cfg.shell) {
            throw usage_error{"--shell needs --exec CMD", exit_usage};
        }
        if (options.given("reply")) {
            cfg.reply = decode_escapes(text.reply, "--reply");
        }
        (void)message_formatter(cfg.format); // validates, listing the formats on error
        return;
    }
    if (options.given("reply")) {
        throw usage_error{"--exec and --reply cannot be combined: the command's output is the "
                          "reply (--reply answers without a command)",
                          exit_usage};
    }
    if (options.given("format")) {
        throw usage_error{"-f/--format formats the requests printed without --exec; with --exec "
                          "nothing is printed (the command gets the request)",
                          exit_usage};
    }
    cfg.exec_text = text.exec;
    if (cfg.shell) {
        if (text.exec.find_first_not_of(" \t\n") == std::string::npos) {
            throw usage_error{"--exec: no command given", exit_usage};
        }
        cfg.command = {"/bin/sh", "-c", text.exec};
        return;
    }
    cfg.command = split_command(text.exec);
    if (!find_program(cfg.command[0])) {
        throw usage_error{"--exec: '" + cfg.command[0] + "' " +
                              (cfg.command[0].find('/') != std::string::npos
                                   ? "is not an executable file"
                                   : "is not an executable in PATH") +
                              " (a shell builtin or a pipeline needs --shell)",
                          exit_usage};
    }
}

// Limits, timers, counts.
void apply_limits(const tool_options& options, worker_config& cfg, const worker_text& text) {
    cfg.exec_timeout = duration_of(text.exec_timeout, "--exec-timeout");
    if (cfg.exec_timeout.count() <= 0) {
        throw usage_error{"--exec-timeout must be positive, got " + text.exec_timeout, exit_usage};
    }
    cfg.kill_grace = duration_of(text.kill_grace, "--kill-grace");
    cfg.drain_timeout = text.drain_timeout.empty()
                            ? cfg.exec_timeout
                            : duration_of(text.drain_timeout, "--drain-timeout");
    cfg.max_size = parse_count(text.max_size, "--max-size");
    if (cfg.max_size == 0) {
        throw usage_error{"--max-size must be at least 1 byte", exit_usage};
    }
    if (text.concurrency < 1 || text.concurrency > 1024) {
        throw usage_error{
            "--concurrency must be 1 to 1024, got " + std::to_string(text.concurrency), exit_usage};
    }
    cfg.concurrency = static_cast<std::uint32_t>(text.concurrency);
    cfg.heartbeat_interval =
        text.heartbeat_interval.empty()
            ? std::chrono::milliseconds(cfg.protocol == worker_protocol::mdp ? 2500 : 1000)
            : duration_of(text.heartbeat_interval, "--heartbeat-interval");
    if (cfg.heartbeat_interval.count() <= 0) {
        throw usage_error{"--heartbeat-interval must be positive, got " + text.heartbeat_interval,
                          exit_usage};
    }
    if (text.liveness < 1 || text.liveness > 1000) {
        throw usage_error{"--liveness must be 1 to 1000, got " + std::to_string(text.liveness),
                          exit_usage};
    }
    cfg.liveness = static_cast<std::uint32_t>(text.liveness);
    if (!text.count.empty()) {
        cfg.count = parse_count(text.count, "--count");
        if (*cfg.count == 0) {
            throw usage_error{"--count must be at least 1", exit_usage};
        }
    }
    cfg.stats = options.given("stats");
}

} // namespace

std::variant<worker_config, print_and_exit> parse_worker_options(int argc,
                                                                 const char* const* argv) {
    worker_config cfg;
    worker_text text;
    tool_options options("worker");
    describe_worker_options(options, cfg, text);
    options.parse(argc, argv);
    if (options.wants_help()) {
        std::ostringstream help;
        help << usage_head << ":\n"
             << options.options() << "\n"
             << options.security_options() << security_help() << usage_tail;
        return print_and_exit{help.str(), exit_ok};
    }
    if (auto v = options.version()) {
        return *v;
    }
    apply_protocol(options, cfg, text);
    apply_work(options, cfg, text);
    apply_limits(options, cfg, text);
    cfg.logging = options.logging();
    cfg.security = options.security();
    return cfg;
}

} // namespace zmqkit::cli
