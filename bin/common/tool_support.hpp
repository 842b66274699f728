// Pieces shared by zmqkit-send and zmqkit-recv: socket kinds by flag, -X socket options,
// escape sequences, waiting for peers (socket monitor), statistics and buffered stdout.
#pragma once

#include "common/cli.hpp"

#include <zmqkit/endpoint.hpp>
#include <zmqkit/error.hpp>
#include <zmqkit/metrics_server.hpp>
#include <zmqkit/socket.hpp>
#include <zmqkit/socket_monitor.hpp>

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zmqkit::cli {

// A socket type chosen by flag, with CZMQ's default endpoint action for it (zsock_new_*).
struct socket_kind {
    std::string_view flag; // "push", "pub", ...
    zmq::socket_type type;
    endpoint_action default_action;
};

// Looks up a socket kind by flag name among `allowed`. Throws usage_error listing them.
[[nodiscard]] socket_kind find_socket_kind(std::string_view flag,
                                           const std::vector<std::string_view>& allowed);
// The socket kind chosen by one of the `allowed` flags (--push, --pull, ...) on the command
// line, or `fallback` if none. Throws usage_error when two are given, listing the choices.
[[nodiscard]] socket_kind choose_socket_kind(const boost::program_options::variables_map& vm,
                                             const std::vector<std::string_view>& allowed,
                                             std::string_view fallback);

// One -X/--sockopt name=value, resolved to the libzmq option.
struct socket_option_setting {
    std::string name;
    int option = 0;
    bool is_int64 = false;
    std::int64_t value = 0;
    bool is_bytes = false; // a string/binary option (routing_id, subscribe, ...): `bytes`
    std::string bytes;
};

// Parses "name=value" for a known ZeroMQ option: integer options take a number, string and
// binary ones (routing_id, subscribe, bindtodevice, curve_serverkey, ...) take text with the
// escapes \n \t \r \0 \\ \xNN. Secrets (curve_secretkey, plain_password) are refused: a
// command line is visible to every user of the machine. Throws usage_error naming the problem
// and listing the known names. Values that would make a wait unbounded (a negative sndtimeo or
// rcvtimeo, a negative linger) are refused: every wait of the tools is bounded.
[[nodiscard]] socket_option_setting parse_socket_option(std::string_view text);
// The known names, comma-separated (for --help).
[[nodiscard]] std::string known_socket_options();
// Applies the settings (throws usage_error if libzmq refuses one).
void apply_socket_options(zmq::socket_t& socket, const std::vector<socket_option_setting>& opts);

// Decodes \n \r \t \0 \\ \xNN in text. Throws usage_error (naming `what`) on a bad escape.
[[nodiscard]] std::string decode_escapes(std::string_view text, std::string_view what);

// Validates every endpoint spec (throws usage_error, exit 64) without touching a socket.
void check_endpoints(const std::vector<std::string>& specs, endpoint_action default_action);

// Binds/connects every spec, one entry at a time, logging "bound <endpoint>" for each bind
// (the real port for ':*') and "connected <endpoint>" (debug) for each connect.
// Throws usage_error with exit_usage for a malformed spec, exit_unavailable when libzmq
// refuses a bind or connect.
void attach_all(zmqkit::socket& socket, const std::vector<std::string>& specs,
                endpoint_action default_action, const logger& log);
// Same for a plain zmq socket (raw mode).
void attach_all(zmq::socket_t& socket, const std::vector<std::string>& specs,
                endpoint_action default_action, const logger& log);

// Watches a socket through the socket monitor (zmqkit/socket_monitor.hpp; libzmq allows one
// monitor per socket, so this one object serves both uses): counts completed ZMTP handshakes
// (--wait-peers), and with `events` (-v) logs connected, accepted, disconnected and handshake
// failed (with the reason) as "<tool>: debug: ..." lines (a failed bind is reported by the bind
// itself). Construct before the socket binds or connects.
class handshake_counter {
public:
    handshake_counter(zmq::context_t& context, zmq::socket_t& socket,
                      const logger* events = nullptr);
    handshake_counter(const handshake_counter&) = delete;
    handshake_counter& operator=(const handshake_counter&) = delete;

    // Waits until `peers` handshakes have been seen or `timeout` passed (checking `stop`
    // between events). Returns the number seen.
    std::size_t wait(std::size_t peers, std::chrono::milliseconds timeout,
                     const std::function<bool()>& stop);
    // Reads the events already there without waiting. Returns the number seen so far.
    std::size_t poll();
    // Handshakes that failed so far (a plaintext tool against a CURVE server, an address on
    // the server's deny list), and the last one's reason as handshake_monitor words it
    // (describe_handshake_failure; "" if none). Call poll() first.
    [[nodiscard]] std::size_t failures() const noexcept { return failures_; }
    [[nodiscard]] const std::string& last_failure() const noexcept { return last_failure_; }

private:
    void consume(const zmqkit::socket_event& e);
    const logger* events_;
    std::size_t seen_ = 0;
    std::size_t failures_ = 0;
    std::string last_failure_;
    zmqkit::socket_monitor monitor_; // last: its handler uses the members above
};

// --wait-peers on a secured socket: libzmq allows one monitor per socket, so the security
// handshake_monitor (zmqkit::socket::handshakes()) counts the peers instead of a
// handshake_counter. Waits until it counted `peers` completed handshakes or `timeout` passed
// (checking `stop` between checks). Returns the number seen.
std::size_t wait_secured_peers(handshake_monitor& monitor, std::size_t peers,
                               std::chrono::milliseconds timeout,
                               const std::function<bool()>& stop);

// Why a secured client socket never completed a handshake ("CURVE handshake failed: ...", or
// "no connection to ... was made (server down or unreachable)"); "" when one completed or
// `monitor` is null (no security).
[[nodiscard]] std::string handshake_problem(handshake_monitor* monitor);

// Whether a client tool's peers can be reached at all: the one place every tool path (send,
// send --wait-confirm, recv, recv --ack; plaintext or secured) asks, so that a peer that
// cannot be reached is reported with the same reason and exit code (69) everywhere.
// It looks up the host names of the tcp endpoints the tool connects to (in the background: a
// slow resolver never delays the tool) and reads the socket's handshakes from whichever
// monitor counts them (libzmq allows one per socket): the security handshake_monitor of a
// secured socket, or a handshake_counter of a plaintext one. Single-threaded.
class peer_reachability {
public:
    // Starts the lookups of the hosts `specs` connect to (none for binds, numeric addresses).
    peer_reachability(const std::vector<std::string>& specs, endpoint_action default_action);
    ~peer_reachability();
    peer_reachability(const peer_reachability&) = delete;
    peer_reachability& operator=(const peer_reachability&) = delete;

    // The monitor to read (either may be null; set once the socket exists).
    void watch(handshake_monitor* secured, handshake_counter* plain) noexcept {
        secured_ = secured;
        plain_ = plain;
    }
    // Whether the socket connects to any endpoint (only a client has peers to reach).
    [[nodiscard]] bool connects() const noexcept { return connects_; }
    // Handshakes completed so far.
    [[nodiscard]] std::size_t peers();
    // Why no peer can be reached, when that is known: "cannot resolve host X: ..." for a name
    // that does not resolve, or the reason of a refused handshake (a failed handshake and none
    // completed: wrong key, key or address not allowed, a different security mechanism).
    // "" when a handshake completed or nothing failed so far (a peer that is only down), and
    // always for a socket that only binds (a failed handshake there is the peer's problem).
    [[nodiscard]] std::string why_unreachable();

private:
    struct lookup;
    std::vector<std::shared_ptr<lookup>> lookups_;
    handshake_monitor* secured_ = nullptr;
    handshake_counter* plain_ = nullptr;
    bool connects_ = false;
};

// When a client tool stops waiting for peers it cannot reach, and how it says so: the one
// rule of zmqkit-send (plain and --wait-confirm) and zmqkit-spooler replay. A client that has
// had no handshake for the limit (--timeout, else 10 s) gives up once the reason is known
// (peer_reachability::why_unreachable(): a host that does not resolve, a refused handshake),
// or, secured and with --timeout given, when it had no handshake at all. A server (a ZAP
// policy) never gives up: its peers come to it. Single-threaded.
class handshake_give_up {
public:
    using clock = std::chrono::steady_clock;
    // `client_handshakes`: the security monitor of a secured client (nullptr otherwise).
    handshake_give_up(peer_reachability& reach, handshake_monitor* client_handshakes, bool server,
                      std::optional<std::chrono::milliseconds> timeout);

    // Whether to give up now (checked while a send waits); once true, stays true.
    [[nodiscard]] bool check();
    [[nodiscard]] bool gave_up() const noexcept { return gave_up_; }
    // Gives up at once (no peer at --wait-peers, the reason known).
    void give_up() noexcept { gave_up_ = true; }
    [[nodiscard]] std::chrono::milliseconds limit() const noexcept { return limit_; }
    [[nodiscard]] clock::time_point started() const noexcept { return started_; }
    // At the end of a run, messages are queued and a secured client never completed a
    // handshake: waits for one until `deadline` (or the limit), and gives up without one.
    void wait_for_queued(std::optional<clock::time_point> deadline);
    // Logs "<action> <endpoints> within <limit>: <why>" (why_unreachable(), else the security
    // monitor's reason), drops what is queued (linger 0) and returns exit_unavailable.
    int report(const logger& log, std::string_view action,
               const std::vector<std::string>& endpoints, zmq::socket_t& socket);

private:
    peer_reachability& reach_;
    handshake_monitor* client_handshakes_;
    bool server_;
    bool timeout_given_;
    std::chrono::milliseconds limit_;
    clock::time_point started_ = clock::now();
    bool gave_up_ = false;
};

// Logs "<action> <endpoints> within <d>: <reason>" (e.g. "no message could be sent to
// tcp://h:1 within 5 s: the server did not allow this client ...") and returns exit_unavailable.
int report_unreachable(const logger& log, std::string_view action,
                       const std::vector<std::string>& endpoints, std::chrono::milliseconds within,
                       std::string_view reason);

// The options of a tool's one socket: both high-water marks `hwm`, `linger`, a 200 ms send
// timeout (a send that waits returns, so the tool re-checks signals and --timeout), `name`
// for metrics and logs, `security`. The registry must outlive the socket.
[[nodiscard]] socket_options tool_socket_options(std::string name, int hwm,
                                                 std::chrono::milliseconds linger,
                                                 metrics_registry& registry,
                                                 const socket_security& security);

// Creates a pattern component (a reliable sender or receiver) in `slot` from `args`: an
// endpoint it refuses is a usage error (exit 64, thrown), any other failure to start is
// logged and returned as exit_unavailable; exit_ok once it runs.
template <class Component, class... Args>
int start_component(std::optional<Component>& slot, const logger& log, Args&&... args) {
    try {
        slot.emplace(std::forward<Args>(args)...);
    } catch (const zmqkit::endpoint_error& e) {
        throw usage_error{e.what(), exit_usage};
    } catch (const zmqkit::error& e) {
        log.error(e.what());
        return exit_unavailable;
    }
    return exit_ok;
}

// Logs "received <signal name>, stopping" (info): how every tool acknowledges SIGINT/SIGTERM.
void log_stop_signal(const logger& log, int sig);
// Reads a pending SIGINT/SIGTERM without waiting (a syscall: callers on a hot path throttle
// it). True, logged with log_stop_signal(), if one was pending.
[[nodiscard]] bool stop_signal_pending(shutdown_signals& signals, const logger& log);

// --timeout bounds a tool's whole run: cuts the socket's linger (what closing it may still
// wait for) to what is left until `deadline` (0 once it passed). True if it was cut.
bool bound_linger(zmq::socket_t& socket, std::chrono::steady_clock::time_point deadline);

// "tcp://a:1, tcp://b:2"
[[nodiscard]] std::string join_endpoints(const std::vector<std::string>& endpoints);
// "tcp://a:1,>tcp://b:2": the tool's endpoint entries as one spec for a library component
// (reliable_sender, lb_client, ...), which parses the list itself.
[[nodiscard]] std::string endpoint_spec(const std::vector<std::string>& endpoints);

// "5 s", "1.5 s", "250 ms"
[[nodiscard]] std::string describe_duration(std::chrono::milliseconds d);

// Message and byte counts with elapsed time, formatted as
// "<tool>: stats: messages=N bytes=N elapsed=Xs rate=N msgs/s".
class transfer_stats {
public:
    void start() { start_ = std::chrono::steady_clock::now(); }
    void add(std::size_t bytes) noexcept {
        ++messages_;
        bytes_ += bytes;
    }
    [[nodiscard]] std::uint64_t messages() const noexcept { return messages_; }
    [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }
    [[nodiscard]] std::string line(std::string_view tool) const;
    // Text appended to the line (" gaps=0 ..."), e.g. what a sequence check counted.
    void set_detail(std::string detail) { detail_ = std::move(detail); }
    // With --stats and stderr a terminal: rewrites a live line at most once a second.
    void maybe_print_live(std::string_view tool);
    // Ends the live line (if any) and prints the final line.
    void print_final(std::string_view tool);

private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point last_live_{};
    std::uint64_t messages_ = 0;
    std::uint64_t bytes_ = 0;
    std::string detail_;
    bool live_shown_ = false;
    int tty_ = -1; // -1 unknown
};

// stdout through one large buffer: append, then flush when it is large, when idle, at exit.
class output_buffer {
public:
    explicit output_buffer(std::size_t flush_at = 1 << 16) : flush_at_(flush_at) {
        data_.reserve(flush_at + 4096);
    }
    ~output_buffer() { flush(); }
    output_buffer(const output_buffer&) = delete;
    output_buffer& operator=(const output_buffer&) = delete;
    [[nodiscard]] std::string& data() noexcept { return data_; }
    void maybe_flush() {
        if (data_.size() >= flush_at_) {
            flush();
        }
    }
    // Writes everything (retrying short writes); false if stdout is gone (EPIPE).
    bool flush();

private:
    std::string data_;
    std::size_t flush_at_;
};

// Starts the metrics server --metrics-listen asked for (nullptr when `listen` is empty) and logs
// where it is: "metrics at http://127.0.0.1:9464/metrics". `status`, when set, is served at
// /status. Throws usage_error (exit_unavailable) when the address cannot be bound.
[[nodiscard]] std::unique_ptr<metrics_server>
serve_metrics(const std::optional<std::string>& listen, metrics_registry& registry,
              const logger& log, std::function<std::string()> status = {});

} // namespace zmqkit::cli
