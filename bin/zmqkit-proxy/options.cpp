#include "zmqkit-proxy/options.hpp"

#include <zmqkit/endpoint.hpp>
#include <zmqkit/error.hpp>

#include <charconv>
#include <limits>
#include <sstream>

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

std::variant<proxy_config, print_and_exit> parse_proxy_options(int argc, const char* const* argv) {
    proxy_config cfg;
    std::string drain = "5s";
    std::string stats = "0";
    int hwm = 1000;
    std::string linger = "1s";
    std::string frontend, backend, control, capture, name;
    std::size_t batch = 0;
    // durable mode
    std::string spool_dir, sync = "always", full = "block", max_bytes = "0", segment = "64MiB";
    std::string ack_timeout = "30s", consumer_timeout = "10s", backoff = "1s", backoff_max = "60s";
    std::string start_timeout = "60s";
    std::uint64_t max_messages = 0;
    std::uint32_t max_attempts = 5;
    std::size_t dedup_window = 100000;
    // lb mode
    std::string heartbeat_interval = "1s", request_timeout = "0";
    std::string request_expiry = "10s"; // mdp mode
    std::uint32_t liveness = 3;
    std::size_t max_queued = 100000;
    std::uint32_t max_prefetch = 64;
    std::string slow_policy = "drop";    // forwarder mode
    std::size_t max_subscription = 1024; // forwarder mode
    std::string slow_timeout = "5s";
    po::options_description desc;
    // clang-format off
    desc.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("mode", po::value(&cfg.mode)->default_value("stream"), "device: stream | durable | lb | mdp | forwarder")
        ("frontend", po::value(&frontend), "endpoints messages come in on (default bind); durable: ROUTER for producers that want confirms")
        ("backend", po::value(&backend), "endpoints messages go out on (default bind); durable: ROUTER for consumers that ack")
        ("control", po::value(&control), "control socket endpoints (REP, default bind)")
        ("capture", po::value(&capture), "stream, forwarder: a PUSH tap that gets a copy of every message (default bind)")
        ("hwm", po::value(&hwm)->default_value(1000), "high-water mark of the frontend and backend, messages")
        ("linger", po::value(&linger)->default_value("1s"), "socket linger at close (bounded)")
        ("batch", po::value(&batch), "messages handled per wake-up (stream: 512; durable: 4096, one group commit)")
        ("drain-timeout", po::value(&drain)->default_value("5s"), "on SIGTERM/SIGINT/TERMINATE: how long to keep forwarding (durable: committing and confirming) what already arrived")
        ("stats-interval", po::value(&stats)->default_value("0"), "print a statistics line on stderr this often (0: never)")
        ("name", po::value(&name)->default_value("proxy"), "name used in metrics and logs")
        ("spool", po::value(&spool_dir), "durable: the spool directory (created if missing)")
        ("frontend-pull", po::value(&cfg.durable.frontend_pull), "durable: PULL endpoints for fire-and-forget producers (no confirms)")
        ("backend-push", po::value(&cfg.durable.backend_push), "durable: PUSH endpoints for best-effort consumers (no acks)")
        ("sync", po::value(&sync)->default_value("always"), "durable: when confirmed data reaches the disk: always | interval:<ms> | none (docs/operations.md says what each can lose)")
        ("max-messages", po::value(&max_messages)->default_value(0), "durable: spool limit in messages not yet acked (0: none)")
        ("max-bytes", po::value(&max_bytes)->default_value("0"), "durable: spool limit in payload bytes (0: none)")
        ("full-policy", po::value(&full)->default_value("block"), "durable: at a limit: block (hold producers back) | reject | drop_oldest")
        ("max-attempts", po::value(&max_attempts)->default_value(5), "durable: deliveries before a message is dead-lettered (0: no limit); lb: dispatches of a request before it is answered with error \"attempts\" (default there: 3); mdp: dispatches before the request is dropped (default there: 3)")
        ("ack-timeout", po::value(&ack_timeout)->default_value("30s"), "durable: an unacked delivery is redelivered after this")
        ("consumer-timeout", po::value(&consumer_timeout)->default_value("10s"), "durable: a consumer silent this long is gone; its deliveries are requeued")
        ("redelivery-backoff", po::value(&backoff)->default_value("1s"), "durable: first redelivery delay, doubled per attempt")
        ("redelivery-backoff-max", po::value(&backoff_max)->default_value("60s"), "durable: cap of the redelivery delay")
        ("segment-size", po::value(&segment)->default_value("64MiB"), "durable: preallocated size of each spool segment file")
        ("dedup-window", po::value(&dedup_window)->default_value(100000), "durable: message ids remembered to store a resent message once")
        ("strict", "durable: refuse to start (exit 65) when recovery finds damaged records or lost sequence numbers (default: quarantine the damage, report the lost range, run)")
        ("start-timeout", po::value(&start_timeout)->default_value("60s"), "durable: how long start-up recovery may take")
        ("heartbeat-interval", po::value(&heartbeat_interval)->default_value("1s"), "lb: heartbeat to and from every worker this often (6/PPP); mdp: the same (7/MDP), default there 2500ms")
        ("liveness", po::value(&liveness)->default_value(3), "lb, mdp: a worker silent this many heartbeat intervals expires; its request goes to another worker")
        ("max-queued", po::value(&max_queued)->default_value(100000), "lb: requests waiting for a worker before more are answered with error \"busy\"; mdp: before more are dropped")
        ("max-prefetch", po::value(&max_prefetch)->default_value(64), "lb: the most requests a worker may hold at once, whatever credit its READY asks for (1: one at a time, as 6/PPP)")
        ("request-timeout", po::value(&request_timeout)->default_value("0"), "lb: a request not answered this long after it arrived gets error \"timeout\" (0: none)")
        ("request-expiry", po::value(&request_expiry)->default_value("10s"), "mdp: a request waiting this long for a worker of its service is dropped (0: never)")
        ("slow-subscriber-policy", po::value(&slow_policy)->default_value("drop"), "forwarder: a subscriber at its --hwm: drop (it misses messages, counted) | block (hold publishers back) | disconnect (as drop, then cut off a subscriber that stays full)")
        ("slow-subscriber-timeout", po::value(&slow_timeout)->default_value("5s"), "forwarder, --slow-subscriber-policy disconnect: how long a subscriber's send queue may stay full before its connection is cut")
        ("last-value-cache", "forwarder: keep each topic's last publication and answer snapshot requests (late joiners)")
        ("max-subscription-size", po::value(&max_subscription)->default_value(1024), "forwarder: longest subscription prefix a subscriber may send, in bytes (1-65536); a subscriber sending a longer one is disconnected (STATUS subscriptions_refused counts those zmqkit sees)")
        ("config", po::value<std::string>(), "read options from this INI file");
    // clang-format on
    add_log_options(desc);
    po::options_description security("Security (CURVE / PLAIN / ZAP, docs/security.md)");
    po::options_description per_side;
    add_security_options(security, per_side, proxy_sides());
    po::options_description all;
    all.add(desc).add(security).add(per_side);
    po::variables_map vm;
    parse_all("proxy", argc, argv, all, nullptr, vm);
    if (vm.count("help") != 0U) {
        std::ostringstream text;
        text << usage_head << ":\n"
             << desc << "\n"
             << security << security_help(proxy_sides()) << usage_tail;
        return print_and_exit{text.str(), exit_ok};
    }
    if (vm.count("version") != 0U) {
        return print_and_exit{"zmqkit-proxy " ZMQKIT_VERSION "\n", exit_ok};
    }
    const bool durable = cfg.mode == "durable";
    const bool lb = cfg.mode == "lb";
    const bool mdp = cfg.mode == "mdp";
    const bool forwarder = cfg.mode == "forwarder";
    if (!forwarder &&
        (!vm["slow-subscriber-policy"].defaulted() || !vm["slow-subscriber-timeout"].defaulted() ||
         vm.count("last-value-cache") != 0U || !vm["max-subscription-size"].defaulted())) {
        throw usage_error{"--slow-subscriber-policy, --slow-subscriber-timeout, "
                          "--last-value-cache and --max-subscription-size apply to --mode "
                          "forwarder only",
                          exit_usage};
    }
    if (cfg.mode != "stream" && !durable && !lb && !mdp && !forwarder) {
        throw usage_error{"unknown --mode '" + cfg.mode +
                              "' (available: stream, durable, lb, mdp, forwarder)",
                          exit_usage};
    }
    if (!lb) {
        for (const char* only :
             {"heartbeat-interval", "liveness", "max-queued", "request-timeout", "max-prefetch"}) {
            if (mdp && std::string_view(only) != "request-timeout" &&
                std::string_view(only) != "max-prefetch") {
                continue;
            }
            if (!vm[only].defaulted()) {
                throw usage_error{std::string("--") + only + " applies to --mode lb only",
                                  exit_usage};
            }
        }
    }
    if (!mdp && !vm["request-expiry"].defaulted()) {
        throw usage_error{"--request-expiry applies to --mode mdp only", exit_usage};
    }
    if (frontend.empty() && (!durable || cfg.durable.frontend_pull.empty())) {
        throw usage_error{durable ? "--frontend or --frontend-pull is required (see --help)"
                                  : "--frontend and --backend are required (see --help)",
                          exit_usage};
    }
    if (backend.empty() && (!durable || cfg.durable.backend_push.empty())) {
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
        for (const char* only :
             {"sync", "max-messages", "max-bytes", "full-policy", "max-attempts", "ack-timeout",
              "consumer-timeout", "redelivery-backoff", "redelivery-backoff-max", "segment-size",
              "dedup-window", "start-timeout"}) {
            if ((lb || mdp) && std::string_view(only) == "max-attempts") {
                continue;
            }
            if (!vm[only].defaulted()) {
                throw usage_error{std::string("--") + only + " applies to --mode durable only",
                                  exit_usage};
            }
        }
    } else {
        if (spool_dir.empty()) {
            throw usage_error{"--mode durable needs --spool DIR (the spool directory)", exit_usage};
        }
        if (!capture.empty()) {
            throw usage_error{"--capture applies to --mode stream only", exit_usage};
        }
    }
    if ((lb || mdp) && !capture.empty()) {
        throw usage_error{"--capture applies to --mode stream only", exit_usage};
    }
    if ((lb || mdp) && vm.count("max-attempts") != 0U && !vm["max-attempts"].defaulted() &&
        max_attempts == 0) {
        throw usage_error{"--max-attempts must be at least 1 in --mode " + cfg.mode, exit_usage};
    }
    if ((lb || mdp) && liveness == 0) {
        throw usage_error{"--liveness must be at least 1", exit_usage};
    }
    if (hwm < 0) {
        throw usage_error{"--hwm must be 0 (no limit) or more, got " + std::to_string(hwm),
                          exit_usage};
    }
    if (vm.count("batch") != 0U && batch == 0) {
        throw usage_error{"--batch must be at least 1", exit_usage};
    }
    socket_options sockets;
    try {
        for (const auto* spec : {&frontend, &backend, &control, &capture,
                                 &cfg.durable.frontend_pull, &cfg.durable.backend_push}) {
            if (!spec->empty()) {
                (void)parse_endpoints(*spec, endpoint_action::bind);
            }
        }
        cfg.drain_timeout = parse_duration(drain);
        cfg.stats_interval = parse_duration(stats);
        sockets.linger = parse_duration(linger);
        if (durable) {
            auto& d = cfg.durable;
            d.spool.directory = spool_dir;
            d.spool.sync = sync_policy::parse(sync);
            d.spool.when_full = parse_full_policy(full);
            d.spool.max_messages = max_messages;
            d.spool.max_bytes = parse_size(max_bytes);
            d.spool.segment_bytes = parse_size(segment);
            d.spool.max_attempts = max_attempts;
            d.spool.dedup_window = dedup_window;
            d.spool.strict = vm.count("strict") != 0U;
            d.ack_timeout = parse_duration(ack_timeout);
            d.consumer_timeout = parse_duration(consumer_timeout);
            d.redelivery_backoff = parse_duration(backoff);
            d.redelivery_backoff_max = parse_duration(backoff_max);
            d.start_timeout = parse_duration(start_timeout);
            if (d.spool.segment_bytes < (1ull << 20) || d.spool.segment_bytes > (1ull << 32)) {
                throw config_error("--segment-size must be between 1MiB and 4GiB, got " + segment);
            }
            if (d.ack_timeout.count() <= 0 || d.consumer_timeout.count() <= 0 ||
                d.start_timeout.count() <= 0) {
                throw config_error(
                    "--ack-timeout, --consumer-timeout and --start-timeout must be positive");
            }
            d.spool.reserve_bytes = std::min<std::uint64_t>(1ull << 20, d.spool.segment_bytes / 8);
        }
        if (lb) {
            auto& l = cfg.lb;
            l.heartbeat_interval = parse_duration(heartbeat_interval);
            l.request_timeout = parse_duration(request_timeout);
            if (l.heartbeat_interval.count() <= 0) {
                throw config_error("--heartbeat-interval must be positive, got " +
                                   heartbeat_interval);
            }
        }
        if (forwarder) {
            cfg.forwarder.policy = patterns::parse_slow_subscriber_policy(slow_policy);
            cfg.forwarder.slow_subscriber_timeout = parse_duration(slow_timeout);
            if (max_subscription == 0 || max_subscription > 65536) {
                throw config_error("--max-subscription-size must be 1 to 65536 bytes, got " +
                                   std::to_string(max_subscription));
            }
            cfg.forwarder.max_subscription_size = max_subscription;
            if (cfg.forwarder.slow_subscriber_timeout.count() <= 0) {
                throw config_error("--slow-subscriber-timeout must be positive, got " +
                                   slow_timeout);
            }
            if (cfg.forwarder.policy != patterns::slow_subscriber_policy::disconnect &&
                !vm["slow-subscriber-timeout"].defaulted()) {
                throw config_error("--slow-subscriber-timeout applies to --slow-subscriber-policy "
                                   "disconnect only");
            }
        }
        if (mdp) {
            auto& m = cfg.mdp;
            if (!vm["heartbeat-interval"].defaulted()) {
                m.heartbeat_interval = parse_duration(heartbeat_interval);
            }
            m.request_expiry = parse_duration(request_expiry);
            if (m.heartbeat_interval.count() <= 0) {
                throw config_error("--heartbeat-interval must be positive, got " +
                                   heartbeat_interval);
            }
            if (m.request_expiry.count() < 0) {
                throw config_error("--request-expiry must not be negative, got " + request_expiry);
            }
        }
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    check_linger(sockets.linger);
    sockets.send_hwm = hwm;
    sockets.recv_hwm = hwm;
    cfg.frontend_security = resolve_side_security(vm, "frontend", true, "frontend");
    cfg.backend_security = resolve_side_security(vm, "backend", true, "backend");
    if (!control.empty()) {
        cfg.control_security = resolve_side_security(vm, "control", true, "control");
    }
    if (!capture.empty()) {
        cfg.capture_security = resolve_side_security(vm, "capture", true, "capture");
    }
    for (const auto& side : {std::string("control"), std::string("capture")}) {
        const auto& spec = side == "control" ? control : capture;
        for (const auto& flag : security_flag_names()) {
            if (spec.empty() && vm.count(side + "-" + flag) != 0U) {
                throw usage_error{"--" + side + "-" + flag + " is given but there is no --" + side +
                                      " socket",
                                  exit_usage};
            }
        }
    }
    const auto& fs = cfg.frontend_security.socket;
    const auto& bs = cfg.backend_security.socket;
    const auto& cs = cfg.control_security.socket;
    if (durable) {
        auto& d = cfg.durable;
        d.frontend = frontend;
        d.backend = backend;
        d.control = control;
        d.name = name;
        d.spool.name = name;
        d.sockets = sockets;
        d.frontend_security = fs;
        d.backend_security = bs;
        d.control_security = cs;
        d.batch = vm.count("batch") != 0U ? batch : 4096;
        d.drain_timeout = cfg.drain_timeout;
    } else if (lb) {
        auto& l = cfg.lb;
        l.frontend = frontend;
        l.backend = backend;
        l.control = control;
        l.name = name;
        l.sockets = sockets;
        l.frontend_security = fs;
        l.backend_security = bs;
        l.control_security = cs;
        l.liveness = liveness;
        l.max_queued = max_queued;
        if (max_prefetch == 0) {
            throw usage_error{"--max-prefetch must be at least 1 (1: one request per worker)",
                              exit_usage};
        }
        l.max_prefetch = max_prefetch;
        l.max_attempts = vm["max-attempts"].defaulted() ? 3 : max_attempts;
        l.batch = vm.count("batch") != 0U ? batch : 256;
        l.drain_timeout = cfg.drain_timeout;
    } else if (mdp) {
        auto& m = cfg.mdp;
        m.frontend = frontend;
        m.backend = backend;
        m.control = control;
        m.name = name;
        m.sockets = sockets;
        m.frontend_security = fs;
        m.backend_security = bs;
        m.control_security = cs;
        m.liveness = liveness;
        m.max_queued = max_queued;
        m.max_attempts = vm["max-attempts"].defaulted() ? 3 : max_attempts;
        m.batch = vm.count("batch") != 0U ? batch : 256;
        m.drain_timeout = cfg.drain_timeout;
    } else if (forwarder) {
        auto& f = cfg.forwarder;
        f.frontend = frontend;
        f.backend = backend;
        f.control = control;
        f.capture = capture;
        f.name = name;
        f.sockets = sockets;
        f.frontend_security = fs;
        f.backend_security = bs;
        f.control_security = cs;
        f.capture_security = cfg.capture_security.socket;
        f.last_value_cache = vm.count("last-value-cache") != 0U;
        f.batch = vm.count("batch") != 0U ? batch : 512;
        f.drain_timeout = cfg.drain_timeout;
    } else {
        auto& st = cfg.streamer;
        st.frontend = frontend;
        st.backend = backend;
        st.control = control;
        st.capture = capture;
        st.name = name;
        st.sockets = sockets;
        st.frontend_security = fs;
        st.backend_security = bs;
        st.control_security = cs;
        st.capture_security = cfg.capture_security.socket;
        st.batch = vm.count("batch") != 0U ? batch : 512;
        st.drain_timeout = cfg.drain_timeout;
    }
    cfg.logging = log_settings_from(vm);
    cfg.verbosity = cfg.logging.verbosity();
    if (!vm["name"].defaulted()) {
        cfg.logging.component = name; // --name names the proxy's log lines too
    }
    return cfg;
}

} // namespace zmqkit::cli
