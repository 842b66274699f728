#include "zmqkit-proxy/options.hpp"

#include "common/tool_options.hpp"

#include <zmqkit/endpoint.hpp>
#include <zmqkit/error.hpp>

#include <charconv>
#include <limits>
#include <sstream>

using namespace std::chrono_literals;

namespace po = boost::program_options;

namespace zmqkit::cli {
namespace {

constexpr const char* usage_head =
    R"(Usage: zmqkit-proxy [--mode stream] --frontend ENDPOINTS --backend ENDPOINTS [options]
       zmqkit-proxy --mode durable --spool DIR --frontend ENDPOINTS --backend ENDPOINTS [options]
       zmqkit-proxy --mode lb --frontend ENDPOINTS --backend ENDPOINTS [options]
       zmqkit-proxy --mode mdp --frontend ENDPOINTS --backend ENDPOINTS [options]
       zmqkit-proxy --mode forwarder --frontend ENDPOINTS --backend ENDPOINTS [options]

Runs a zmqkit forwarding device until SIGINT/SIGTERM or a TERMINATE command, then drains.

Modes:
  stream     PULL frontend -> PUSH backend: joins pipeline stages (fan-in, fan-out).
             Frames pass unchanged, so plain ZeroMQ PUSH/PULL peers work too.
  durable    store and forward through an on-disk spool (--spool DIR). Producers on the
             ROUTER --frontend get a CONFIRM once their message is on disk (zmqkit-send
             --wait-confirm, reliable_sender); PUSH producers may use --frontend-pull.
             Consumers on the ROUTER --backend announce credit and ack each delivery
             (zmqkit-recv --ack, reliable_receiver); unacked deliveries come back after
             --ack-timeout, and after --max-attempts go to the dead-letter spool
             (DIR/dead-letter, see zmqkit-spooler). PULL consumers may use --backend-push
             (best effort). Frames: docs/wire-protocol.md section 7.
  lb         load-balancing request-reply broker: clients (REQ, DEALER, lb_client) on the
             ROUTER --frontend, 6/PPP workers (Paranoid Pirate, lb_worker) on the ROUTER
             --backend. Each request goes to the least recently used ready worker; a worker
             silent for --heartbeat-interval x --liveness expires, and its request goes to
             another worker, up to --max-attempts dispatches. Frames: docs/wire-protocol.md
             section 8.
  mdp        Majordomo broker (7/MDP v0.1 with 8/MMI): MDP clients (REQ, DEALER, mdp_client)
             on the ROUTER --frontend, MDP workers on the ROUTER --backend. A request goes
             to the least recently used ready worker of its service; a request for a
             service without a worker waits up to --request-expiry, then is dropped.
             Heartbeats 2500 ms x --liveness 3 by default; a lost worker's request goes to
             another worker of its service, up to --max-attempts dispatches. mmi.service
             answers 200/404, other mmi.* 501. Frames: docs/wire-protocol.md section 9.
             --titanic DIR adds 9/TSP (Titanic, durable request-reply): the services
             titanic.request, titanic.reply and titanic.close on the same broker, requests
             and replies stored in DIR with fsync (they survive kill -9), each request sent
             to its service once the service has a worker (zmqkit-send --titanic).
             Frames: docs/wire-protocol.md section 9.5.
  forwarder  pub-sub forwarder: publishers (PUB, zmqkit-send --pub) connect to the XSUB
             --frontend, subscribers (SUB, zmqkit-recv --sub) to the XPUB --backend;
             subscriptions travel upstream. --slow-subscriber-policy drop (default: a full
             subscriber misses messages, counted), block (back-pressure to publishers) or
             disconnect (as drop, and a tcp/ipc subscriber whose send queue stays full for
             --slow-subscriber-timeout is disconnected; it reconnects and sees the gap).
             --last-value-cache answers late joiners' snapshot requests. Frames:
             docs/wire-protocol.md section 10.

Endpoints use CZMQ's grammar: '@' binds, '>' connects, entries without a prefix bind,
several entries separated by commas. 'tcp://127.0.0.1:*' binds an ephemeral port; every bound
endpoint is printed on stderr ("frontend bound tcp://127.0.0.1:40123").

Control socket (REP, --control): send one frame, get the reply:
  PAUSE, RESUME, TERMINATE -> "OK"
  STATISTICS               -> 8 frames of uint64 (zmq_proxy_steerable layout: frontend
                              messages in, bytes in, messages out, bytes out, then backend)
  STATUS                   -> one JSON frame (state, statistics, backend stalls; in
                              durable mode also the spool, recovery and consumers;
                              in lb mode the request counters and every worker;
                              in mdp mode also every service)

Options)";

constexpr const char* usage_tail = R"(
Every option can also come from the environment as ZMQKIT_PROXY_<OPTION>
(ZMQKIT_PROXY_FRONTEND, ZMQKIT_PROXY_DRAIN_TIMEOUT, ...; the plain ZMQKIT_<OPTION> too, except
for options other tools take with another meaning: --batch, --sync), or from an INI file given
with --config ("frontend = @tcp://*:5557"); the command line wins over the environment, which
wins over the file.

Durations: milliseconds, or a number with ms, s, m or h (250ms, 2s, 1.5m).

Examples:
  # a stream stage between producers (connecting to 5557) and workers (connecting to 5558)
  zmqkit-proxy --frontend tcp://*:5557 --backend tcp://*:5558

  # ephemeral ports, a control socket, a tap of every message, stats every 10 s
  zmqkit-proxy --frontend tcp://127.0.0.1:* --backend tcp://127.0.0.1:* \
               --control ipc:///run/zmqkit/proxy.ctl --capture tcp://127.0.0.1:5560 \
               --stats-interval 10s

  # durable: confirmed producers on 5557, acking consumers on 5558, spool on disk
  zmqkit-proxy --mode durable --spool /var/spool/zmqkit/orders \
               --frontend tcp://*:5557 --backend tcp://*:5558 --control tcp://127.0.0.1:5559

  # a load balancer for REQ clients on 5555 and Paranoid Pirate workers on 5556
  zmqkit-proxy --mode lb --frontend tcp://*:5555 --backend tcp://*:5556 \
               --heartbeat-interval 1s --liveness 3 --max-attempts 3 --request-timeout 30s

  # a Majordomo broker: MDP clients on 5555, MDP workers on 5556
  zmqkit-proxy --mode mdp --frontend tcp://*:5555 --backend tcp://*:5556 \
               --control tcp://127.0.0.1:5559 --request-expiry 10s

  # the same with Titanic: requests stored in /var/lib/zmqkit/titanic until fetched
  zmqkit-proxy --mode mdp --frontend tcp://*:5555 --backend tcp://*:5556 \
               --titanic /var/lib/zmqkit/titanic

  # CURVE: producers need a key in producers/, consumers one in consumers/; clients give
  # --curve-server-key proxy.key (the public file) and their own --curve-secret
  zmqkit-keygen proxy.key
  zmqkit-proxy --frontend tcp://*:5557 --backend tcp://*:5558 --curve-secret proxy.key_secret \
               --frontend-curve-allow producers/ --backend-curve-allow consumers/

  # pause it, read its counters, stop it
  python3 -c 'import zmq; s=zmq.Context().socket(zmq.REQ); s.connect("ipc:///run/zmqkit/proxy.ctl"); s.send(b"STATUS"); print(s.recv())'

Sizes: bytes, or a number with k/KiB, M/MiB, G/GiB (powers of 1024): 64MiB, 1G.

Signals: SIGINT and SIGTERM drain and stop. SIGHUP never stops the proxy, in any mode: it
rereads the allow directories and password files of the CURVE, PLAIN or IP-filtered server
sides (without one it logs that there is nothing to reload).

A drain that ends with messages still held says how many it dropped ("drain ended with N
messages dropped", and "drain":{"dropped":N} in the final statistics); durable mode says how
many remain in the spool (not a loss).

Exit codes: 0 clean stop, 1 the drain dropped messages, 64 bad usage, 65 --strict found a
damaged spool (damaged records or lost sequence numbers; a torn tail is not damage), 69 cannot
bind/start (also: the spool is locked by another process), 70 internal error, 78 bad config
file.
)";

} // namespace

std::uint64_t parse_size(std::string_view text) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, value);
    const std::string_view unit(p, static_cast<std::size_t>(end - p));
    std::uint64_t scale = 0;
    if (unit.empty() || unit == "B") {
        scale = 1;
    } else if (unit == "k" || unit == "K" || unit == "KiB") {
        scale = 1ull << 10;
    } else if (unit == "M" || unit == "MiB") {
        scale = 1ull << 20;
    } else if (unit == "G" || unit == "GiB") {
        scale = 1ull << 30;
    }
    if (ec != std::errc() || p == text.data() || scale == 0 ||
        value > std::numeric_limits<std::uint64_t>::max() / scale) {
        throw config_error("size '" + std::string(text) +
                           "' is not valid (bytes, or a number with k/KiB, M/MiB, G/GiB: 64MiB)");
    }
    return value * scale;
}

const std::vector<std::string>& proxy_sides() {
    static const std::vector<std::string> sides{"frontend", "backend", "control", "capture"};
    return sides;
}

namespace {

// What the command line, the environment and the config file said, before it is checked and
// turned into the mode's options.
struct proxy_flags {
    std::string mode = "stream";
    std::string drain = "5s";
    std::string stats = "0";
    int hwm = 1000;
    std::string linger = "1s";
    std::string frontend, backend, control, capture, name;
    std::size_t batch = 0;
    // durable mode
    std::string frontend_pull, backend_push;
    std::string spool_dir, sync = "always", full = "block", max_bytes = "0", segment = "64MiB";
    std::string ack_timeout = "30s", consumer_timeout = "10s", backoff = "1s", backoff_max = "60s";
    std::string start_timeout = "60s";
    std::string retain_age = "0", retain_bytes = "0", default_queue = "on";
    std::uint64_t max_messages = 0;
    std::uint32_t max_attempts = 5;
    std::size_t dedup_window = 100000;
    // lb mode
    std::string heartbeat_interval = "1s", request_timeout = "0";
    std::string request_expiry = "10s"; // mdp mode
    std::string titanic_dir, titanic_timeout = "10s";
    std::uint32_t liveness = 3;
    std::size_t max_queued = 100000;
    std::uint32_t max_prefetch = 64;
    std::string slow_policy = "drop";    // forwarder mode
    std::size_t max_subscription = 1024; // forwarder mode
    std::string slow_timeout = "5s";
};

// The proxy's own flags, between tool_options' head (--help, --version) and tail (--config,
// verbosity, logging).
void describe_flags(po::options_description_easy_init add, proxy_flags& f) {
    // clang-format off
    add
        ("mode", po::value(&f.mode)->default_value("stream"), "device: stream | durable | lb | mdp | forwarder")
        ("frontend", po::value(&f.frontend), "endpoints messages come in on (default bind); durable: ROUTER for producers that want confirms")
        ("backend", po::value(&f.backend), "endpoints messages go out on (default bind); durable: ROUTER for consumers that ack")
        ("control", po::value(&f.control), "control socket endpoints (REP, default bind)")
        ("capture", po::value(&f.capture), "stream, forwarder: a PUSH tap that gets a copy of every message (default bind)")
        ("hwm", po::value(&f.hwm)->default_value(1000), "high-water mark of the frontend and backend, messages")
        ("linger", po::value(&f.linger)->default_value("1s"), "socket linger at close (bounded)")
        ("batch", po::value(&f.batch), "messages handled per wake-up (stream: 512; durable: 4096, one group commit)")
        ("drain-timeout", po::value(&f.drain)->default_value("5s"), "on SIGTERM/SIGINT/TERMINATE: how long to keep forwarding (durable: committing and confirming) what already arrived")
        ("stats-interval", po::value(&f.stats)->default_value("0"), "print a statistics line on stderr this often (0: never)")
        ("name", po::value(&f.name)->default_value("proxy"), "name used in metrics and logs")
        ("spool", po::value(&f.spool_dir), "durable: the spool directory (created if missing)")
        ("frontend-pull", po::value(&f.frontend_pull), "durable: PULL endpoints for fire-and-forget producers (no confirms)")
        ("backend-push", po::value(&f.backend_push), "durable: PUSH endpoints for best-effort consumers (no acks)")
        ("sync", po::value(&f.sync)->default_value("always"), "durable: when confirmed data reaches the disk: always | interval:<ms> | none (docs/operations.md says what each can lose)")
        ("max-messages", po::value(&f.max_messages)->default_value(0), "durable: spool limit in messages not yet acked (0: none)")
        ("max-bytes", po::value(&f.max_bytes)->default_value("0"), "durable: spool limit in payload bytes (0: none)")
        ("full-policy", po::value(&f.full)->default_value("block"), "durable: at a limit: block (hold producers back) | reject | drop_oldest")
        ("max-attempts", po::value(&f.max_attempts)->default_value(5), "durable: deliveries before a message is dead-lettered (0: no limit); lb: dispatches of a request before it is answered with error \"attempts\" (default there: 3); mdp: dispatches before the request is dropped (default there: 3)")
        ("ack-timeout", po::value(&f.ack_timeout)->default_value("30s"), "durable: an unacked delivery is redelivered after this")
        ("consumer-timeout", po::value(&f.consumer_timeout)->default_value("10s"), "durable: a consumer silent this long is gone; its deliveries are requeued")
        ("redelivery-backoff", po::value(&f.backoff)->default_value("1s"), "durable: first redelivery delay, doubled per attempt")
        ("redelivery-backoff-max", po::value(&f.backoff_max)->default_value("60s"), "durable: cap of the redelivery delay")
        ("segment-size", po::value(&f.segment)->default_value("64MiB"), "durable: preallocated size of each spool segment file")
        ("dedup-window", po::value(&f.dedup_window)->default_value(100000), "durable: message ids remembered to store a resent message once")
        ("retain-age", po::value(&f.retain_age)->default_value("0"), "durable: reclaim spool segments whose newest message is older than this, even if a consumer group (or the default queue) has not acked them: what it loses is counted and logged (0: keep until every group acked)")
        ("retain-bytes", po::value(&f.retain_bytes)->default_value("0"), "durable: reclaim the oldest spool segments while the spool takes more than this on disk (e.g. 10GiB), the same way (0: no limit)")
        ("default-queue", po::value(&f.default_queue)->default_value("on"), "durable: on: consumers without a consumer group share the default queue, which keeps every message until one of them acks it; off: messages are kept for the consumer groups only (docs/operations.md)")
        ("strict", "durable: refuse to start (exit 65) when recovery finds damaged records or lost sequence numbers (default: quarantine the damage, report the lost range, run)")
        ("start-timeout", po::value(&f.start_timeout)->default_value("60s"), "durable: how long start-up recovery may take")
        ("heartbeat-interval", po::value(&f.heartbeat_interval)->default_value("1s"), "lb: heartbeat to and from every worker this often (6/PPP); mdp: the same (7/MDP), default there 2500ms")
        ("liveness", po::value(&f.liveness)->default_value(3), "lb, mdp: a worker silent this many heartbeat intervals expires; its request goes to another worker")
        ("max-queued", po::value(&f.max_queued)->default_value(100000), "lb: requests waiting for a worker before more are answered with error \"busy\"; mdp: before more are dropped")
        ("max-prefetch", po::value(&f.max_prefetch)->default_value(64), "lb: the most requests a worker may hold at once, whatever credit its READY asks for (1: one at a time, as 6/PPP)")
        ("request-timeout", po::value(&f.request_timeout)->default_value("0"), "lb: a request not answered this long after it arrived gets error \"timeout\" (0: none)")
        ("request-expiry", po::value(&f.request_expiry)->default_value("10s"), "mdp: a request waiting this long for a worker of its service is dropped (0: never)")
        ("titanic", po::value(&f.titanic_dir)->value_name("DIR"), "mdp: also serve 9/TSP (Titanic): titanic.request stores a request in DIR (fsync) and answers its id, the request goes to its service when the service has a worker, titanic.reply fetches the stored reply, titanic.close removes both")
        ("titanic-timeout", po::value(&f.titanic_timeout)->default_value("10s"), "mdp --titanic: how long a dispatched request waits for its reply before it is tried again later")
        ("slow-subscriber-policy", po::value(&f.slow_policy)->default_value("drop"), "forwarder: a subscriber at its --hwm: drop (it misses messages, counted) | block (hold publishers back) | disconnect (as drop, then cut off a subscriber that stays full)")
        ("slow-subscriber-timeout", po::value(&f.slow_timeout)->default_value("5s"), "forwarder, --slow-subscriber-policy disconnect: how long a subscriber's send queue may stay full before its connection is cut")
        ("last-value-cache", "forwarder: keep each topic's last publication and answer snapshot requests (late joiners)")
        ("max-subscription-size", po::value(&f.max_subscription)->default_value(1024), "forwarder: longest subscription prefix a subscriber may send, in bytes (1-65536); a subscriber sending a longer one is disconnected (STATUS subscriptions_refused counts those zmqkit sees)");
    // clang-format on
}

void throw_unless_defaulted(const po::variables_map& vm, std::initializer_list<const char*> flags,
                            const std::string& applies_to) {
    for (const char* flag : flags) {
        if (!vm[flag].defaulted()) {
            throw usage_error{std::string("--") + flag + " applies to " + applies_to + " only",
                              exit_usage};
        }
    }
}

// Flags of another mode, and modes that do not exist: usage errors (before anything is parsed).
void check_flags_fit_the_mode(const proxy_flags& f, const po::variables_map& vm) {
    const std::string& m = f.mode;
    const bool durable = m == "durable", lb = m == "lb", mdp = m == "mdp";
    if (m != "forwarder" &&
        (!vm["slow-subscriber-policy"].defaulted() || !vm["slow-subscriber-timeout"].defaulted() ||
         vm.count("last-value-cache") != 0U || !vm["max-subscription-size"].defaulted())) {
        throw usage_error{"--slow-subscriber-policy, --slow-subscriber-timeout, "
                          "--last-value-cache and --max-subscription-size apply to --mode "
                          "forwarder only",
                          exit_usage};
    }
    if (m != "stream" && !durable && !lb && !mdp && m != "forwarder") {
        throw usage_error{"unknown --mode '" + m +
                              "' (available: stream, durable, lb, mdp, forwarder)",
                          exit_usage};
    }
    if (mdp) {
        throw_unless_defaulted(vm, {"request-timeout", "max-prefetch"}, "--mode lb");
    } else if (!lb) {
        throw_unless_defaulted(
            vm, {"heartbeat-interval", "liveness", "max-queued", "request-timeout", "max-prefetch"},
            "--mode lb");
    }
    if (!mdp) {
        throw_unless_defaulted(vm, {"request-expiry"}, "--mode mdp");
        if (vm.count("titanic") != 0U) {
            throw usage_error{"--titanic applies to --mode mdp only (Titanic's services live on "
                              "a Majordomo broker)",
                              exit_usage};
        }
    }
    if (vm.count("titanic") == 0U && !vm["titanic-timeout"].defaulted()) {
        throw usage_error{"--titanic-timeout applies to --titanic only", exit_usage};
    }
    if (vm.count("titanic") != 0U && f.titanic_dir.empty()) {
        throw usage_error{"--titanic needs a directory (its store)", exit_usage};
    }
    if (f.frontend.empty() && (!durable || f.frontend_pull.empty())) {
        throw usage_error{durable ? "--frontend or --frontend-pull is required (see --help)"
                                  : "--frontend and --backend are required (see --help)",
                          exit_usage};
    }
    if (f.backend.empty() && (!durable || f.backend_push.empty())) {
        throw usage_error{durable ? "--backend or --backend-push is required (see --help)"
                                  : "--frontend and --backend are required (see --help)",
                          exit_usage};
    }
    if (!durable) {
        for (const char* only : {"spool", "frontend-pull", "backend-push", "strict"}) {
            if (vm.count(only) != 0U) {
                throw usage_error{std::string("--") + only + " applies to --mode durable only",
                                  exit_usage};
            }
        }
        throw_unless_defaulted(vm,
                               {"sync", "max-messages", "max-bytes", "full-policy", "ack-timeout",
                                "consumer-timeout", "redelivery-backoff", "redelivery-backoff-max",
                                "segment-size", "dedup-window", "start-timeout", "retain-age",
                                "retain-bytes", "default-queue"},
                               "--mode durable");
        if (!lb && !mdp) {
            throw_unless_defaulted(vm, {"max-attempts"}, "--mode durable");
        }
    } else if (f.spool_dir.empty()) {
        throw usage_error{"--mode durable needs --spool DIR (the spool directory)", exit_usage};
    }
    if ((durable || lb || mdp) && !f.capture.empty()) {
        throw usage_error{"--capture applies to --mode stream only", exit_usage};
    }
    if ((lb || mdp) && vm.count("max-attempts") != 0U && !vm["max-attempts"].defaulted() &&
        f.max_attempts == 0) {
        throw usage_error{"--max-attempts must be at least 1 in --mode " + m, exit_usage};
    }
    if ((lb || mdp) && f.liveness == 0) {
        throw usage_error{"--liveness must be at least 1", exit_usage};
    }
    if (f.hwm < 0) {
        throw usage_error{"--hwm must be 0 (no limit) or more, got " + std::to_string(f.hwm),
                          exit_usage};
    }
    if (vm.count("batch") != 0U && f.batch == 0) {
        throw usage_error{"--batch must be at least 1", exit_usage};
    }
}

// What every mode's options take from the shared flags: endpoints, name, sockets, security
// of the sides, drain timeout, batch (the mode's default unless --batch).
struct shared_settings {
    const proxy_flags& flags;
    const po::variables_map& vm;
    const proxy_config& cfg;
    socket_options sockets;

    template <class device_options>
    device_options apply(device_options o, std::size_t default_batch) const {
        o.frontend = flags.frontend;
        o.backend = flags.backend;
        o.control = flags.control;
        o.name = flags.name;
        o.sockets = sockets;
        o.frontend_security = cfg.frontend_security.socket;
        o.backend_security = cfg.backend_security.socket;
        o.control_security = cfg.control_security.socket;
        o.batch = vm.count("batch") != 0U ? flags.batch : default_batch;
        o.drain_timeout = cfg.drain_timeout;
        return o;
    }
};

patterns::durable_proxy_options durable_mode(const shared_settings& shared) {
    const auto& f = shared.flags;
    auto d = shared.apply(patterns::durable_proxy_options{}, 4096);
    d.frontend_pull = f.frontend_pull;
    d.backend_push = f.backend_push;
    d.spool.name = f.name;
    d.spool.directory = f.spool_dir;
    d.spool.sync = sync_policy::parse(f.sync);
    d.spool.when_full = parse_full_policy(f.full);
    d.spool.max_messages = f.max_messages;
    d.spool.max_bytes = parse_size(f.max_bytes);
    d.spool.segment_bytes = parse_size(f.segment);
    d.spool.max_attempts = f.max_attempts;
    d.spool.dedup_window = f.dedup_window;
    d.spool.strict = shared.vm.count("strict") != 0U;
    d.spool.retain_age = parse_duration(f.retain_age);
    d.spool.retain_bytes = parse_size(f.retain_bytes);
    if (f.default_queue == "on" || f.default_queue == "true" || f.default_queue == "yes") {
        d.spool.default_queue = true;
    } else if (f.default_queue == "off" || f.default_queue == "false" || f.default_queue == "no") {
        d.spool.default_queue = false;
    } else {
        throw config_error("--default-queue must be on or off, got '" + f.default_queue + "'");
    }
    d.ack_timeout = parse_duration(f.ack_timeout);
    d.consumer_timeout = parse_duration(f.consumer_timeout);
    d.redelivery_backoff = parse_duration(f.backoff);
    d.redelivery_backoff_max = parse_duration(f.backoff_max);
    d.start_timeout = parse_duration(f.start_timeout);
    if (d.spool.segment_bytes < (1ull << 20) || d.spool.segment_bytes > (1ull << 32)) {
        throw config_error("--segment-size must be between 1MiB and 4GiB, got " + f.segment);
    }
    if (d.ack_timeout.count() <= 0 || d.consumer_timeout.count() <= 0 ||
        d.start_timeout.count() <= 0) {
        throw config_error(
            "--ack-timeout, --consumer-timeout and --start-timeout must be positive");
    }
    d.spool.reserve_bytes = std::min<std::uint64_t>(1ull << 20, d.spool.segment_bytes / 8);
    return d;
}

patterns::load_balancer_options lb_mode(const shared_settings& shared) {
    const auto& f = shared.flags;
    auto l = shared.apply(patterns::load_balancer_options{}, 256);
    l.heartbeat_interval = parse_duration(f.heartbeat_interval);
    l.request_timeout = parse_duration(f.request_timeout);
    if (l.heartbeat_interval.count() <= 0) {
        throw config_error("--heartbeat-interval must be positive, got " + f.heartbeat_interval);
    }
    l.liveness = f.liveness;
    l.max_queued = f.max_queued;
    if (f.max_prefetch == 0) {
        throw usage_error{"--max-prefetch must be at least 1 (1: one request per worker)",
                          exit_usage};
    }
    l.max_prefetch = f.max_prefetch;
    l.max_attempts = shared.vm["max-attempts"].defaulted() ? 3 : f.max_attempts;
    return l;
}

patterns::mdp_broker_options mdp_mode(const shared_settings& shared) {
    const auto& f = shared.flags;
    auto m = shared.apply(patterns::mdp_broker_options{}, 256);
    if (!shared.vm["heartbeat-interval"].defaulted()) {
        m.heartbeat_interval = parse_duration(f.heartbeat_interval);
    }
    m.request_expiry = parse_duration(f.request_expiry);
    if (m.heartbeat_interval.count() <= 0) {
        throw config_error("--heartbeat-interval must be positive, got " + f.heartbeat_interval);
    }
    if (m.request_expiry.count() < 0) {
        throw config_error("--request-expiry must not be negative, got " + f.request_expiry);
    }
    m.liveness = f.liveness;
    m.max_queued = f.max_queued;
    m.max_attempts = shared.vm["max-attempts"].defaulted() ? 3 : f.max_attempts;
    return m;
}

// --titanic DIR: the Titanic server beside the broker (its endpoints are set by main(), which
// gives the broker inproc endpoints for it).
patterns::titanic_options titanic_mode(const shared_settings& shared,
                                       const patterns::mdp_broker_options& broker) {
    const auto& f = shared.flags;
    patterns::titanic_options t;
    t.directory = f.titanic_dir;
    t.name = f.name; // the metric label {component}: the proxy's --name, as for every mode
    t.heartbeat_interval = broker.heartbeat_interval;
    t.liveness = broker.liveness;
    t.dispatch_timeout = parse_duration(f.titanic_timeout);
    if (t.dispatch_timeout.count() <= 0) {
        throw config_error("--titanic-timeout must be positive, got " + f.titanic_timeout);
    }
    t.socket.linger = shared.sockets.linger;
    t.socket.name = "titanic";
    return t;
}

patterns::forwarder_options forwarder_mode(const shared_settings& shared) {
    const auto& f = shared.flags;
    auto o = shared.apply(patterns::forwarder_options{}, 512);
    o.capture = f.capture;
    o.capture_security = shared.cfg.capture_security.socket;
    o.last_value_cache = shared.vm.count("last-value-cache") != 0U;
    o.policy = patterns::parse_slow_subscriber_policy(f.slow_policy);
    o.slow_subscriber_timeout = parse_duration(f.slow_timeout);
    if (f.max_subscription == 0 || f.max_subscription > 65536) {
        throw config_error("--max-subscription-size must be 1 to 65536 bytes, got " +
                           std::to_string(f.max_subscription));
    }
    o.max_subscription_size = f.max_subscription;
    if (o.slow_subscriber_timeout.count() <= 0) {
        throw config_error("--slow-subscriber-timeout must be positive, got " + f.slow_timeout);
    }
    if (o.policy != patterns::slow_subscriber_policy::disconnect &&
        !shared.vm["slow-subscriber-timeout"].defaulted()) {
        throw config_error("--slow-subscriber-timeout applies to --slow-subscriber-policy "
                           "disconnect only");
    }
    return o;
}

patterns::streamer_options stream_mode(const shared_settings& shared) {
    auto o = shared.apply(patterns::streamer_options{}, 512);
    o.capture = shared.flags.capture;
    o.capture_security = shared.cfg.capture_security.socket;
    return o;
}

// The sides' security; flags for a side that has no socket are usage errors.
void resolve_security(proxy_config& cfg, const proxy_flags& f, const po::variables_map& vm) {
    cfg.frontend_security = resolve_side_security(vm, "frontend", true, "frontend");
    cfg.backend_security = resolve_side_security(vm, "backend", true, "backend");
    if (!f.control.empty()) {
        cfg.control_security = resolve_side_security(vm, "control", true, "control");
    }
    if (!f.capture.empty()) {
        cfg.capture_security = resolve_side_security(vm, "capture", true, "capture");
    }
    for (const auto& side : {std::string("control"), std::string("capture")}) {
        const auto& spec = side == "control" ? f.control : f.capture;
        for (const auto& flag : security_flag_names()) {
            if (spec.empty() && vm.count(side + "-" + flag) != 0U) {
                throw usage_error{"--" + side + "-" + flag + " is given but there is no --" + side +
                                      " socket",
                                  exit_usage};
            }
        }
    }
}

proxy_mode mode_options(const shared_settings& shared) {
    const auto& m = shared.flags.mode;
    if (m == "durable") {
        return durable_mode(shared);
    }
    if (m == "lb") {
        return lb_mode(shared);
    }
    if (m == "mdp") {
        return mdp_mode(shared);
    }
    if (m == "forwarder") {
        return forwarder_mode(shared);
    }
    return stream_mode(shared);
}

} // namespace

std::string mode_name(const proxy_mode& mode) {
    static const char* const names[] = {"stream", "durable", "lb", "mdp", "forwarder"};
    return names[mode.index()];
}

std::variant<proxy_config, print_and_exit> parse_proxy_options(int argc, const char* const* argv) {
    proxy_config cfg;
    proxy_flags f;
    tool_options options("proxy");
    describe_flags(options.add(), f);
    options.add_metrics();
    options.add_diagnostics("more diagnostics (--log-level debug)");
    options.add_security(proxy_sides());
    options.parse(argc, argv);
    if (options.wants_help()) {
        std::ostringstream text;
        text << usage_head << ":\n"
             << options.options() << "\n"
             << options.security_options() << security_help(proxy_sides()) << usage_tail;
        return print_and_exit{text.str(), exit_ok};
    }
    if (auto version = options.version()) {
        return *version;
    }
    const po::variables_map& vm = options.values();
    check_flags_fit_the_mode(f, vm);
    shared_settings shared{f, vm, cfg, {}};
    try {
        for (const auto* spec :
             {&f.frontend, &f.backend, &f.control, &f.capture, &f.frontend_pull, &f.backend_push}) {
            if (!spec->empty()) {
                (void)parse_endpoints(*spec, endpoint_action::bind);
            }
        }
        cfg.drain_timeout = parse_duration(f.drain);
        cfg.stats_interval = parse_duration(f.stats);
        shared.sockets.linger = parse_duration(f.linger);
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    check_linger(shared.sockets.linger);
    shared.sockets.send_hwm = f.hwm;
    shared.sockets.recv_hwm = f.hwm;
    resolve_security(cfg, f, vm);
    try {
        cfg.mode = mode_options(shared);
        if (vm.count("titanic") != 0U) {
            cfg.titanic = titanic_mode(shared, std::get<patterns::mdp_broker_options>(cfg.mode));
        }
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    cfg.metrics_listen = options.metrics_listen();
    cfg.logging = options.logging();
    cfg.verbosity = options.verbosity();
    if (!vm["name"].defaulted()) {
        cfg.logging.component = f.name; // --name names the proxy's log lines too
    }
    return cfg;
}

} // namespace zmqkit::cli
