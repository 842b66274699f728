#include "zmqkit-proxy/options.hpp"

#include <zmqkit/endpoint.hpp>
#include <zmqkit/error.hpp>

#include <sstream>

namespace po = boost::program_options;

namespace zmqkit::cli {
namespace {

constexpr const char* usage_head =
    R"(Usage: zmqkit-proxy [--mode stream] --frontend ENDPOINTS --backend ENDPOINTS [options]

Runs a zmqkit forwarding device until SIGINT/SIGTERM or a TERMINATE command, then drains.

Modes:
  stream     PULL frontend -> PUSH backend: joins pipeline stages (fan-in, fan-out).
             Frames pass unchanged, so plain ZeroMQ PUSH/PULL peers work too.

Endpoints use CZMQ's grammar: '@' binds, '>' connects, entries without a prefix bind,
several entries separated by commas. 'tcp://127.0.0.1:*' binds an ephemeral port; every bound
endpoint is printed on stderr ("frontend bound tcp://127.0.0.1:40123").

Control socket (REP, --control): send one frame, get the reply:
  PAUSE, RESUME, TERMINATE -> "OK"
  STATISTICS               -> 8 frames of uint64 (zmq_proxy_steerable layout: frontend
                              messages in, bytes in, messages out, bytes out, then backend)
  STATUS                   -> one JSON frame (state, statistics, backend stalls)

Options)";

constexpr const char* usage_tail = R"(
Every option can also come from the environment (ZMQKIT_FRONTEND, ZMQKIT_DRAIN_TIMEOUT, ...)
or from an INI file given with --config ("frontend = @tcp://*:5557"); the command line wins
over the environment, which wins over the file.

Durations: milliseconds, or a number with ms, s, m or h (250ms, 2s, 1.5m).

Examples:
  # a stream stage between producers (connecting to 5557) and workers (connecting to 5558)
  zmqkit-proxy --frontend tcp://*:5557 --backend tcp://*:5558

  # ephemeral ports, a control socket, a tap of every message, stats every 10 s
  zmqkit-proxy --frontend tcp://127.0.0.1:* --backend tcp://127.0.0.1:* \
               --control ipc:///run/zmqkit/proxy.ctl --capture tcp://127.0.0.1:5560 \
               --stats-interval 10s

  # pause it, read its counters, stop it
  python3 -c 'import zmq; s=zmq.Context().socket(zmq.REQ); s.connect("ipc:///run/zmqkit/proxy.ctl"); s.send(b"STATUS"); print(s.recv())'

Exit codes: 0 clean stop, 64 bad usage, 69 cannot bind/start, 70 internal error, 78 bad
config file.
)";

} // namespace

std::variant<proxy_config, print_and_exit> parse_proxy_options(int argc, const char* const* argv) {
    proxy_config cfg;
    std::string drain = "5s";
    std::string stats = "0";
    int hwm = 1000;
    std::string linger = "1s";
    po::options_description desc;
    // clang-format off
    desc.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("mode", po::value(&cfg.mode)->default_value("stream"), "device: stream")
        ("frontend", po::value(&cfg.streamer.frontend), "endpoints messages come in on (default bind)")
        ("backend", po::value(&cfg.streamer.backend), "endpoints messages go out on (default bind)")
        ("control", po::value(&cfg.streamer.control), "control socket endpoints (REP, default bind)")
        ("capture", po::value(&cfg.streamer.capture), "tap: a PUSH socket that gets a copy of every message (default bind)")
        ("hwm", po::value(&hwm)->default_value(1000), "high-water mark of the frontend and backend, messages")
        ("linger", po::value(&linger)->default_value("1s"), "socket linger at close (bounded)")
        ("batch", po::value(&cfg.streamer.batch)->default_value(512), "messages forwarded per wake-up")
        ("drain-timeout", po::value(&drain)->default_value("5s"), "on SIGTERM/SIGINT/TERMINATE: how long to keep forwarding what already arrived")
        ("stats-interval", po::value(&stats)->default_value("0"), "print a statistics line on stderr this often (0: never)")
        ("name", po::value(&cfg.streamer.name)->default_value("proxy"), "name used in metrics and logs")
        ("config", po::value<std::string>(), "read options from this INI file")
        ("verbose,v", "more diagnostics")
        ("quiet,q", "errors only");
    // clang-format on
    po::variables_map vm;
    parse_all(argc, argv, desc, nullptr, vm);
    if (vm.count("help") != 0U) {
        std::ostringstream text;
        text << usage_head << ":\n" << desc << usage_tail;
        return print_and_exit{text.str(), exit_ok};
    }
    if (vm.count("version") != 0U) {
        return print_and_exit{"zmqkit-proxy " ZMQKIT_VERSION "\n", exit_ok};
    }
    if (cfg.mode != "stream") {
        throw usage_error{"unknown --mode '" + cfg.mode + "' (available: stream)", exit_usage};
    }
    if (cfg.streamer.frontend.empty() || cfg.streamer.backend.empty()) {
        throw usage_error{"--frontend and --backend are required (see --help)", exit_usage};
    }
    if (hwm < 0) {
        throw usage_error{"--hwm must be 0 (no limit) or more, got " + std::to_string(hwm),
                          exit_usage};
    }
    if (cfg.streamer.batch == 0) {
        throw usage_error{"--batch must be at least 1", exit_usage};
    }
    try {
        for (const auto* spec : {&cfg.streamer.frontend, &cfg.streamer.backend,
                                 &cfg.streamer.control, &cfg.streamer.capture}) {
            if (!spec->empty()) {
                (void)parse_endpoints(*spec, endpoint_action::bind);
            }
        }
        cfg.drain_timeout = parse_duration(drain);
        cfg.stats_interval = parse_duration(stats);
        cfg.streamer.sockets.linger = parse_duration(linger);
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    check_linger(cfg.streamer.sockets.linger);
    cfg.streamer.sockets.send_hwm = hwm;
    cfg.streamer.sockets.recv_hwm = hwm;
    cfg.streamer.drain_timeout = cfg.drain_timeout;
    cfg.verbosity = vm.count("quiet") != 0U ? -1 : (vm.count("verbose") != 0U ? 1 : 0);
    return cfg;
}

} // namespace zmqkit::cli
