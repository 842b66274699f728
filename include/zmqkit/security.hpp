// zmqkit — security: CURVE key pairs and certificate files (CZMQ's zcert format), the per-socket
// security settings every component applies, a ZAP authenticator (one per context) with
// allow-lists, and a handshake monitor that turns libzmq's silent handshake failures into log
// lines and metrics. docs/security.md is the user guide.
//
// Keys and secrets never appear in what this header's types print (describe(), logs, errors).
#pragma once

#include <zmqkit/error.hpp>
#include <zmqkit/export.hpp>
#include <zmqkit/metrics.hpp>

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zmqkit {

// A bad key, key file, certificate directory or security setting. what() names the file (and
// line) or setting and what is wrong, never the secret itself.
class ZMQKIT_API security_error : public config_error {
public:
    using config_error::config_error;
};

// True if libzmq was built with CURVE (libsodium). Debian's libzmq5 is.
[[nodiscard]] bool curve_available() noexcept;

// True if `text` is a Z85-encoded 32-byte key: 40 characters of the Z85 alphabet.
[[nodiscard]] bool is_z85_key(std::string_view text) noexcept;

// A CURVE certificate: a key pair plus metadata. On disk it is CZMQ's zcert format: a public
// file NAME (metadata and "curve" / "public-key") and a secret file NAME_secret (the same plus
// "secret-key", mode 0600). Keys are Z85 text (40 characters).
struct ZMQKIT_API certificate {
    std::string public_key;
    std::string secret_key; // empty when loaded from a public file
    std::vector<std::pair<std::string, std::string>> metadata; // in file order

    // A fresh key pair (zmq_curve_keypair). Throws security_error without CURVE support.
    [[nodiscard]] static certificate generate();
    // Reads a public or secret certificate file. Throws security_error naming the file, the
    // line and the problem (unreadable, not ZPL, missing or malformed key, public key that does
    // not match the secret key).
    [[nodiscard]] static certificate load(const std::filesystem::path& file);
    // Parses the text of a certificate file; `origin` names it in errors ("<origin>:<line>:
    // ..."). What load() does after reading the file (also the fuzz target's entry point).
    [[nodiscard]] static certificate parse(std::string_view text, const std::string& origin);

    // Writes `public_file` (0644) and `public_file` + "_secret" (0600; written with that mode,
    // never readable by others even briefly). Refuses (security_error) to replace an existing
    // file unless `overwrite`. Throws security_error when there is no secret key.
    void save(const std::filesystem::path& public_file, bool overwrite = false) const;
    // Writes only the public file (what a server's allow directory holds).
    void save_public(const std::filesystem::path& public_file, bool overwrite = false) const;

    // The metadata value for `name`, or empty.
    [[nodiscard]] std::string meta(std::string_view name) const;
};

// The public certificates of a directory (like CZMQ's zcertstore): every regular file that does
// not end in "_secret" and is not hidden. A file that does not parse is skipped and reported in
// `problems` (one line each, naming the file), so one bad file does not lock out everybody.
// Throws security_error if the directory cannot be read.
[[nodiscard]] std::vector<certificate>
load_certificate_directory(const std::filesystem::path& dir,
                           std::vector<std::string>* problems = nullptr);

// A server key given on a command line or in a config file: 40-character Z85 text, or the path
// of a certificate file whose public key is used. Throws security_error.
[[nodiscard]] std::string resolve_public_key(std::string_view key_or_file);

enum class security_mechanism {
    null,  // no encryption (ZeroMQ's NULL); with a zap_domain, the ZAP IP filters still apply
    plain, // PLAIN: cleartext username/password — for development only, never across hosts
    curve, // CURVE: encrypted and authenticated (CurveZMQ)
};

// How one socket protects its connections. Default: plaintext, anyone (ZeroMQ's default).
// Apply before bind/connect (zmqkit::socket does it in its constructor; devices in setup()).
struct ZMQKIT_API socket_security {
    security_mechanism mechanism = security_mechanism::null;
    bool server = false;    // the side that checks peers (usually the side that binds)
    std::string public_key; // CURVE: this socket's own key pair (Z85). A client without one
    std::string secret_key; //        gets a fresh ephemeral pair (encryption, no identity).
    std::string server_key; // CURVE client: the server's public key (Z85)
    std::string username;   // PLAIN client
    std::string password;   // PLAIN client
    // Server side: the ZAP domain, i.e. which authenticator policy judges this socket's peers
    // (authenticator::set_policy). Required for CURVE and PLAIN servers; with the NULL mechanism
    // a non-empty domain makes libzmq consult ZAP too (IP allow/deny without encryption).
    std::string zap_domain;

    [[nodiscard]] static socket_security curve_server(const certificate& own,
                                                      std::string zap_domain);
    [[nodiscard]] static socket_security curve_client(std::string server_public_key,
                                                      const certificate* own = nullptr);
    [[nodiscard]] static socket_security plain_server(std::string zap_domain);
    [[nodiscard]] static socket_security plain_client(std::string username, std::string password);
    [[nodiscard]] static socket_security null_server(std::string zap_domain);

    [[nodiscard]] bool enabled() const noexcept {
        return mechanism != security_mechanism::null || !zap_domain.empty();
    }
    // "curve server, public key <Z85 public key>, domain 'frontend'" — public parts only.
    [[nodiscard]] std::string describe() const;
    // Throws security_error when the settings are inconsistent (CURVE server without a secret
    // key, client without a server key, malformed Z85, PLAIN client without a username, CURVE
    // without libzmq support, a server without a zap_domain).
    void validate() const;
};

// Validates s and sets the libzmq options on `socket` (before bind/connect). Throws
// security_error.
void apply_security(zmq::socket_t& socket, const socket_security& s);

// Who a ZAP domain lets in. IP filters come first and apply to every mechanism: a denied
// address never gets in; a non-empty allow list admits only its addresses. Entries are
// addresses or CIDR blocks ("127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8").
struct ZMQKIT_API zap_policy {
    std::vector<std::string> allow_ips;
    std::vector<std::string> deny_ips;
    // CURVE: any client with a valid handshake (encryption only), or only listed keys.
    bool curve_allow_any = false;
    std::filesystem::path curve_allow_directory; // public certificates; reread by reload()
    std::vector<std::string> curve_allow_keys;   // extra Z85 public keys
    // PLAIN: "username=password" lines ('#' comments); reread by reload().
    std::filesystem::path plain_password_file;
};

struct ZMQKIT_API authenticator_options {
    // Where denials, reloads and skipped certificate files are reported (one line each, never a
    // key or password). Unset: zmqkit's log (zmqkit/log.hpp), component "zmqkit.zap", warn.
    std::function<void(std::string_view)> log;
    bool log_allowed = false;             // also log every admitted peer
    metrics_registry* registry = nullptr; // nullptr: metrics_registry::global()
};

// Counts of ZAP decisions (also zmqkit_zap_requests_total{domain,mechanism,result,reason}).
struct ZMQKIT_API authenticator_stats {
    std::uint64_t allowed = 0;
    std::uint64_t denied = 0;
    std::uint64_t malformed = 0; // ZAP requests that did not follow RFC 27 (answered 500)
};

// The ZAP handler (RFC 27/ZAP) of one context: binds inproc://zeromq.zap.01 and answers on its
// own thread until destroyed. One per context (libzmq allows one); construct it before binding
// the sockets it protects and keep it alive while they are. A request for a domain without a
// policy is denied (fail closed). Every denial is logged with the peer address, mechanism,
// domain and reason, and counted. Thread-safe.
class ZMQKIT_API authenticator {
public:
    authenticator(zmq::context_t& context, authenticator_options options = {});
    ~authenticator();
    authenticator(const authenticator&) = delete;
    authenticator& operator=(const authenticator&) = delete;

    // Sets (replaces) the policy of a domain; reads its directory and password file now.
    // Throws security_error for an unreadable directory or file or a malformed IP entry.
    void set_policy(const std::string& domain, zap_policy policy);
    // Rereads every allow directory and password file (e.g. on SIGHUP). A directory that cannot
    // be read keeps the previous list and is reported. Returns the number of problems reported.
    std::size_t reload();

    [[nodiscard]] authenticator_stats stats() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// A failed handshake described: what handshake_monitor logs and counts, and what a client tool
// reports when it gives up (one wording wherever a refusal is reported).
struct ZMQKIT_API handshake_failure {
    std::string label;      // metric label: mechanism_mismatch, zap_denied, ...
    std::string text;       // readable reason
    bool definitive = true; // false: may be transient (a connection closed mid-handshake)
};
// Describes the monitor event `event` (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, _AUTH or
// _NO_DETAIL) with its `value` (protocol error code, ZAP status or errno). `bind_side`: a
// connection this socket accepted (the peer is the client); `curve_client`: this socket is a
// CURVE client. Never throws for an unknown code (a generic text).
[[nodiscard]] handshake_failure describe_handshake_failure(int event, std::uint32_t value,
                                                           bool bind_side, bool curve_client);

// What a handshake_monitor saw on one socket.
struct ZMQKIT_API handshake_stats {
    std::uint64_t connected = 0;    // TCP/IPC connections made or accepted
    std::uint64_t succeeded = 0;    // security handshakes completed
    std::uint64_t failed = 0;       // handshakes that failed (any reason)
    std::uint64_t disconnected = 0; // connections closed
    std::uint64_t open = 0;         // connections open now
    std::string last_failure;       // readable reason of the last failure ("" if none)
};

// One open connection of a monitored socket (handshake_monitor::connections()).
struct ZMQKIT_API connection_info {
    std::string peer;      // the peer's "ip:port" ("[ip]:port"); "" where it has none (ipc)
    std::string endpoint;  // the endpoint it came in on (accepted) or was made to
    bool accepted = false; // true: the peer connected to this socket; false: this socket did
    std::chrono::system_clock::time_point since; // when it was made
};

// What a handshake_monitor does with connections besides counting them.
struct ZMQKIT_API connection_tracking {
    // Writes "accepted <peer> on <endpoint>", "connected to <endpoint> (<peer>)" and
    // "disconnected <peer> on <endpoint> after <duration>" at info (to the monitor's log).
    bool log = false;
    // Non-empty (e.g. {{"component","orders"},{"side","frontend"}}): counts
    // zmqkit_device_connects_total and zmqkit_device_disconnects_total and keeps the gauge
    // zmqkit_device_connections with these labels, in the monitor's registry.
    metric_labels labels;
};

// Watches one socket's monitor events (zmq_socket_monitor) on its own thread and reports every
// failed handshake as a log line naming the socket, the endpoint and the reason — a client key
// the server did not allow (ZAP 400), a wrong server key, a plaintext peer against a CURVE
// socket (mechanism mismatch) — and counts it as
// zmqkit_security_handshake_failures_total{socket,reason}. A client-side tool asks
// wait_handshake() to tell "server down" from "handshake refused".
//
// Construct and destroy it on the thread that owns the socket, after apply_security() and
// before bind/connect; destroy it before closing the socket. Each line is
// "<socket_name>: handshake with <peer> failed: <reason>" to `log`; unset: zmqkit's log
// (zmqkit/log.hpp) at warn with `socket_name` as the component (and without the prefix).
// It also keeps the socket's open connections (connections()) and, per `tracking`, logs and
// counts them: a device watches every side this way, secured or not.
class ZMQKIT_API handshake_monitor {
public:
    handshake_monitor(zmq::context_t& context, zmq::socket_t& socket, std::string socket_name,
                      std::function<void(std::string_view)> log = {},
                      metrics_registry* registry = nullptr, connection_tracking tracking = {});
    ~handshake_monitor();
    handshake_monitor(const handshake_monitor&) = delete;
    handshake_monitor& operator=(const handshake_monitor&) = delete;

    [[nodiscard]] handshake_stats stats() const;
    // The socket's open tcp/ipc connections, oldest first, at most `limit` of them (inproc
    // connections have no monitor events and are not listed). Any thread.
    [[nodiscard]] std::vector<connection_info> connections(std::size_t limit = SIZE_MAX) const;
    // Waits at most `timeout` for a completed handshake. True if one completed. On false,
    // `why` (if given) says what happened: "no connection to <endpoint> was made (server down
    // or unreachable)", or the handshake failure's reason.
    [[nodiscard]] bool wait_handshake(std::chrono::milliseconds timeout,
                                      std::string* why = nullptr);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace zmqkit
