#include "zmqkit-recv/options.hpp"

#include "common/message_format.hpp"

#include <zmqkit/error.hpp>

#include <charconv>
#include <sstream>

namespace po = boost::program_options;

namespace zmqkit::cli {
namespace {

constexpr const char* usage_head = R"(Usage: zmqkit-recv [SOCKET] [options] ENDPOINT...

Receives zmqkit envelopes (docs/wire-protocol.md), or plain frames with --raw, and writes
them on stdout, one per line by default.

Sockets (default --pull; default action as CZMQ: pull/rep/router bind, sub/dealer/pair connect):
  --pull     from PUSH peers (fan-in)
  --sub      from PUB peers; --topic PREFIX (repeatable) filters, default: everything
  --dealer   from ROUTER/DEALER peers
  --rep      answers each request: echo (default) or the fixed --reply text
  --router   from DEALER/REQ peers (routing frames are removed; no reply is sent)
  --pair     from the one PAIR peer

Endpoints use CZMQ's grammar: '@' binds, '>' connects, entries without a prefix take the
socket's default, several entries separated by commas; -e may be repeated. A bound
'tcp://host:*' prints the real endpoint on stderr: "zmqkit-recv: info: bound tcp://...".

Output (-f/--format):
  text (default)  the body and a newline
  raw, msgpack    the body bytes only
  hex             the body in hex and a newline
  json            one object per line: id, correlation_id, causation_id, timestamp, type,
                  attempt, reply_to, traceparent, content_type, sequence, headers, topic (SUB),
                  and body (JSON for a msgpack body, a string for UTF-8, else body_base64)
  FORMAT          tokens: %s body, %S body length, %t topic, %T type, %c correlation id,
                  %i message id, %C causation id, %d timestamp ns, %a attempt, %q sequence,
                  %r reply-to, %p traceparent, %y content type, %h{name} user header, %% '%';
                  escapes \n \t \r \0 \\ \xNN. Example: -f '%T %c %s\n'
With --raw every frame of a multipart message is output in the format (as a body).
Malformed incoming messages are counted, reported with -v, and never stop the tool.

Options)";

constexpr const char* usage_tail = R"(
Every option can also come from the environment as ZMQKIT_RECV_<OPTION> (ZMQKIT_RECV_COUNT,
ZMQKIT_RECV_FORMAT, ...; the plain ZMQKIT_<OPTION> too, except for options other tools take
with another meaning, such as --format or --count) or from an INI file given with --config
("format = json"); the command line wins over the environment, which wins over the file. Durations: milliseconds, or a number with ms, s, m or h.

Flow: -c N stops after N messages. --timeout is the total time: exit 75 if -c N was not
reached (without -c: 0 if something arrived, 75 if nothing did). --idle-timeout: stop when
nothing arrived for that long after at least one message (exit 0 without -c, 75 with an
unreached -c).

Examples:
  # a worker of a work queue: one line per message
  zmqkit-recv @tcp://*:5557
  # tap a topic of a publisher, with types and correlation ids
  zmqkit-recv --sub --topic orders. -f '%t %T %c %s\n' tcp://127.0.0.1:5556
  # answer requests with "pong"
  zmqkit-recv --rep --reply pong @tcp://*:5555
  # consume from a durable proxy, acking each message once it is on stdout
  zmqkit-recv --ack -c 1000 tcp://127.0.0.1:5558 > orders.txt
  # encrypted server: only the clients whose public certificates are in clients/
  zmqkit-recv --curve-secret server.key_secret --curve-allow clients/ @tcp://*:5557
  # JSON lines out, stop after 10
  zmqkit-recv -f json -c 10 @tcp://*:5557 | jq .body

Exit codes: 0 ok, 64 bad usage, 69 cannot bind/connect (a host that does not resolve, a
refused handshake, or with security no handshake at all by --timeout: the reason is named),
70 internal error, 75 timed out before the count, 78 --config is a directory, unreadable or
malformed. --timeout bounds the whole run, closing included.
)";

std::uint64_t parse_count(const std::string& text, const char* what) {
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || ptr != text.data() + text.size() || text.empty()) {
        throw usage_error{std::string(what) + " '" + text + "' is not a non-negative integer",
                          exit_usage};
    }
    return v;
}

} // namespace

std::variant<recv_config, print_and_exit> parse_recv_options(int argc, const char* const* argv) {
    recv_config cfg;
    std::vector<std::string> endpoints;
    std::vector<std::string> sockopts;
    std::string reply;
    std::string count;
    std::string timeout;
    std::string idle;
    std::string linger = "1s";
    std::uint32_t credit = 256;
    po::options_description desc;
    // clang-format off
    desc.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("pull", "PULL socket (default)")
        ("sub", "SUB socket")
        ("dealer", "DEALER socket")
        ("rep", "REP socket: reply to each request")
        ("router", "ROUTER socket")
        ("pair", "PAIR socket")
        ("endpoint,e", po::value(&endpoints)->composing(), "endpoints (repeatable; also positional)")
        ("topic", po::value(&cfg.topics)->composing(), "--sub: topic prefix (repeatable; default all)")
        ("reply", po::value(&reply), "--rep: reply with this text instead of echoing")
        ("raw", "plain ZeroMQ frames, no envelope: every frame is output")
        ("ack", "consume from a durable proxy's backend (zmqkit-proxy --mode durable) over DEALER: ack each message once it is written to stdout; a message redelivered after it was acked is not output again")
        ("credit", po::value(&credit)->default_value(256), "--ack: deliveries the proxy may have outstanding to this consumer")
        ("format,f", po::value(&cfg.format)->default_value("text"), "raw|text|quoted|hex|json|msgpack|FORMAT")
        ("count,c", po::value(&count), "stop after N messages")
        ("timeout", po::value(&timeout), "stop after this long in total (exit 75 if -c N not reached)")
        ("idle-timeout", po::value(&idle), "stop when idle this long after a message")
        ("hwm", po::value(&cfg.hwm)->default_value(0), "receive high-water mark, messages (0: unlimited; see docs/cli.md)")
        ("sockopt,X", po::value(&sockopts)->composing(), "ZeroMQ socket option name=value (repeatable; names below)")
        ("linger", po::value(&linger)->default_value("1s"), "at exit, how long replies may take to leave")
        ("stats", "print statistics on stderr at exit")
        ("config", po::value<std::string>(), "read options from this INI file");
    // clang-format on
    add_log_options(desc, "more diagnostics: malformed messages, connection events");
    po::options_description security("Security (CURVE / PLAIN / ZAP, docs/security.md)");
    po::options_description no_sides;
    add_security_options(security, no_sides);
    po::options_description all;
    all.add(desc).add(security);
    po::positional_options_description positional;
    positional.add("endpoint", -1);
    po::variables_map vm;
    parse_all("recv", argc, argv, all, &positional, vm);
    if (vm.count("help") != 0U) {
        std::ostringstream text;
        text << usage_head << ":\n"
             << desc << "\n-X names: " << known_socket_options() << "\n\n"
             << security << security_help() << usage_tail;
        return print_and_exit{text.str(), exit_ok};
    }
    if (vm.count("version") != 0U) {
        return print_and_exit{"zmqkit-recv " ZMQKIT_VERSION "\n", exit_ok};
    }
    cfg.kind = choose_socket_kind(vm, {"pull", "sub", "dealer", "rep", "router", "pair"}, "pull");
    if (endpoints.empty()) {
        throw usage_error{"no endpoint given (e.g. zmqkit-recv @tcp://*:5557; see --help)",
                          exit_usage};
    }
    check_endpoints(endpoints, cfg.kind.default_action);
    cfg.endpoints = std::move(endpoints);
    if (!cfg.topics.empty() && cfg.kind.type != zmq::socket_type::sub) {
        throw usage_error{"--topic needs --sub", exit_usage};
    }
    if (cfg.topics.empty()) {
        cfg.topics.emplace_back();
    }
    if (vm.count("reply") != 0U) {
        if (cfg.kind.type != zmq::socket_type::rep) {
            throw usage_error{"--reply needs --rep", exit_usage};
        }
        cfg.reply = decode_escapes(reply, "--reply");
    }
    cfg.raw = vm.count("raw") != 0U;
    cfg.ack = vm.count("ack") != 0U;
    if (cfg.ack) {
        if (cfg.kind.type != zmq::socket_type::pull && cfg.kind.type != zmq::socket_type::dealer) {
            throw usage_error{
                "--ack talks DEALER to a durable proxy; it cannot be combined with --" +
                    std::string(cfg.kind.flag),
                exit_usage};
        }
        if (cfg.raw) {
            throw usage_error{
                "--ack needs envelopes (message ids); it cannot be combined with --raw",
                exit_usage};
        }
        if (credit == 0) {
            throw usage_error{"--credit must be at least 1", exit_usage};
        }
        cfg.kind = find_socket_kind("dealer", {"dealer"});
        cfg.credit = credit;
    } else if (!vm["credit"].defaulted()) {
        throw usage_error{"--credit applies to --ack only", exit_usage};
    }
    (void)message_formatter(cfg.format); // validates, listing the formats on error
    try {
        if (!count.empty()) {
            cfg.count = parse_count(count, "--count");
        }
        if (!timeout.empty()) {
            cfg.timeout = parse_duration(timeout);
        }
        if (!idle.empty()) {
            cfg.idle_timeout = parse_duration(idle);
        }
        cfg.linger = parse_duration(linger);
        check_linger(cfg.linger);
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    if (cfg.hwm < 0) {
        throw usage_error{"--hwm must be 0 (no limit) or more, got " + std::to_string(cfg.hwm),
                          exit_usage};
    }
    for (const auto& s : sockopts) {
        cfg.socket_options.push_back(parse_socket_option(s));
    }
    cfg.stats = vm.count("stats") != 0U;
    cfg.logging = log_settings_from(vm);
    cfg.verbosity = cfg.logging.verbosity();
    cfg.security = resolve_side_security(vm, "zmqkit-recv", false, "zmqkit-recv");
    return cfg;
}

} // namespace zmqkit::cli
