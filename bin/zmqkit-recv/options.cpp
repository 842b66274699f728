#include "zmqkit-recv/options.hpp"

#include "common/message_format.hpp"
#include "common/tool_options.hpp"

#include <zmqkit/error.hpp>
#include <zmqkit/spool.hpp>

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
  FORMAT          tokens: %s body, %S body length, %k key (topic, else type), %t topic,
                  %T type, %c correlation id, %i message id, %C causation id, %d timestamp
                  ns, %D timestamp RFC 3339, %a attempt, %q sequence, %P publisher id,
                  %g sequence verdict (first, in_order, gap, late, snapshot), %G numbers
                  missing before this one (5 or 5..9), %r reply-to, %p traceparent,
                  %y content type, %h{name} user header, %% '%';
                  escapes \n \t \r \0 \\ \xNN. Example: -f '%T %c %s\n'
  -K DELIM        KEY DELIM BODY lines (key: the topic with --sub, else the type): what
                  zmqkit-send -K DELIM sends back unchanged
With --raw every frame of a multipart message is output in the format (as a body).
Malformed incoming messages are counted, reported with -v, and never stop the tool.

Publications (--sub) from zmqkit publishers (the library's publisher, zmqkit-send --pub)
carry a publisher id and a sequence number per topic: a gap (numbers that never arrived) is
reported on stderr with the missing range, a duplicate is dropped and reported, a late
arrival (a number reported missing that came after all) is reported; --stats counts them,
%g/%G show them per message, --fail-on-gap makes any gap exit 65. --snapshot asks a
forwarder's last-value cache (zmqkit-proxy --mode forwarder --last-value-cache) for each
topic's current value first, then continues with the live stream without a gap or a
duplicate between the two.

Options)";

constexpr const char* usage_tail = R"(
Every option can also come from the environment as ZMQKIT_RECV_<OPTION> (ZMQKIT_RECV_COUNT,
ZMQKIT_RECV_FORMAT, ...; the plain ZMQKIT_<OPTION> too, except for options other tools take
with another meaning, such as --format or --count) or from an INI file given with --config
("format = json"); the command line wins over the environment, which wins over the file. Durations: milliseconds, or a number with ms, s, m or h.

Flow: -c N stops after N messages. --ack --exit-at-end stops once the durable proxy has
nothing ready for this consumer and nothing in flight to it (exit 0; 75 with an unreached -c). --timeout is the total time: exit 75 if -c N was not
reached (without -c: 0 if something arrived, 75 if nothing did). --idle-timeout: stop when
nothing arrived for that long after at least one message (exit 0 without -c, 75 with an
unreached -c).

Examples:
  # a worker of a work queue: one line per message
  zmqkit-recv @tcp://*:5557
  # tap a topic of a publisher, with types and correlation ids
  zmqkit-recv --sub --topic orders. -f '%t %T %c %s\n' tcp://127.0.0.1:5556
  # the current prices first (a forwarder's last-value cache), then every change; exit 65
  # if any publication was missed
  zmqkit-recv --sub --topic prices. --snapshot --fail-on-gap -K ' ' tcp://127.0.0.1:5556
  # answer requests with "pong"
  zmqkit-recv --rep --reply pong @tcp://*:5555
  # consume from a durable proxy, acking each message once it is on stdout
  zmqkit-recv --ack -c 1000 tcp://127.0.0.1:5558 > orders.txt
  # drain what a durable proxy holds, then exit
  zmqkit-recv --ack --exit-at-end tcp://127.0.0.1:5558 > backlog.txt
  # encrypted server: only the clients whose public certificates are in clients/
  zmqkit-recv --curve-secret server.key_secret --curve-allow clients/ @tcp://*:5557
  # JSON lines out, stop after 10
  zmqkit-recv -f json -c 10 @tcp://*:5557 | jq .body

Exit codes: 0 ok, 64 bad usage, 65 --fail-on-gap and publications were missing,
69 cannot bind/connect (a host that does not resolve, a
refused handshake, or with security no handshake at all by --timeout: the reason is named),
70 internal error, 75 timed out before the count, 78 --config is a directory, unreadable or
malformed. --timeout bounds the whole run, closing included.
)";

// The option values read as text, checked and converted by the groups below.
struct recv_text {
    std::vector<std::string> endpoints;
    std::vector<std::string> sockopts;
    std::string reply;
    std::string count;
    std::string timeout;
    std::string idle;
    std::string linger = "1s";
    std::string key_delimiter;
    std::string snapshot_timeout = "5s";
    std::uint32_t credit = 256;
};

void describe_recv_options(tool_options& options, recv_config& cfg, recv_text& text) {
    // clang-format off
    options.add()
        ("pull", "PULL socket (default)")
        ("sub", "SUB socket")
        ("dealer", "DEALER socket")
        ("rep", "REP socket: reply to each request")
        ("router", "ROUTER socket")
        ("pair", "PAIR socket")
        ("endpoint,e", po::value(&text.endpoints)->composing(), "endpoints (repeatable; also positional)")
        ("topic", po::value(&cfg.topics)->composing(), "--sub: topic prefix (repeatable; default all)")
        ("reply", po::value(&text.reply), "--rep: reply with this text instead of echoing")
        ("raw", "plain ZeroMQ frames, no envelope: every frame is output")
        ("ack", "consume from a durable proxy's backend (zmqkit-proxy --mode durable) over DEALER: ack each message once it is written to stdout; a message redelivered after it was acked is not output again")
        ("credit", po::value(&text.credit)->default_value(256), "--ack: deliveries the proxy may have outstanding to this consumer")
        ("group,G", po::value(&cfg.group), "--ack: read as a member of this consumer group: every group gets every message, shared among its members (default: the proxy's default queue)")
        ("from", po::value(&cfg.start), "--ack --group: where a new group starts: earliest (default) | latest | a sequence number | a time (2026-12-01T00:00:00Z, @UNIX_SECONDS, or 10m/2h ago); an existing group goes on from where it is")
        ("exit-at-end", "--ack: exit once the proxy has nothing ready for this consumer and nothing in flight to it (kcat -e)")
        ("format,f", po::value(&cfg.format)->default_value("text"), "raw|text|quoted|hex|json|msgpack|FORMAT")
        ("key-delimiter,K", po::value(&text.key_delimiter), "write KEY DELIM BODY lines (key: the topic with --sub, else the type)")
        ("snapshot", "--sub: first the current value of each --topic from the forwarder's last-value cache")
        ("snapshot-timeout", po::value(&text.snapshot_timeout)->default_value("5s"), "--snapshot: how long to wait for it before going on with the live stream")
        ("fail-on-gap", "--sub: exit 65 if sequenced publications were missing (gaps)")
        ("count,c", po::value(&text.count), "stop after N messages")
        ("timeout", po::value(&text.timeout), "stop after this long in total (exit 75 if -c N not reached)")
        ("idle-timeout", po::value(&text.idle), "stop when idle this long after a message")
        ("hwm", po::value(&cfg.hwm)->default_value(0), "receive high-water mark, messages (0: unlimited; see docs/cli.md)")
        ("sockopt,X", po::value(&text.sockopts)->composing(), "ZeroMQ socket option name=value (repeatable; names below)")
        ("linger", po::value(&text.linger)->default_value("1s"), "at exit, how long replies may take to leave")
        ("stats", "print statistics on stderr at exit");
    // clang-format on
    options.add_metrics();
    options.add_diagnostics("more diagnostics: malformed messages, connection events");
    options.add_security();
    options.positional("endpoint", -1);
}

// The socket: its kind, endpoints, --topic and --reply.
void apply_socket(const tool_options& options, recv_config& cfg, recv_text& text) {
    cfg.kind = choose_socket_kind(options.values(),
                                  {"pull", "sub", "dealer", "rep", "router", "pair"}, "pull");
    if (text.endpoints.empty()) {
        throw usage_error{"no endpoint given (e.g. zmqkit-recv @tcp://*:5557; see --help)",
                          exit_usage};
    }
    check_endpoints(text.endpoints, cfg.kind.default_action);
    cfg.endpoints = std::move(text.endpoints);
    if (!cfg.topics.empty() && cfg.kind.type != zmq::socket_type::sub) {
        throw usage_error{"--topic needs --sub", exit_usage};
    }
    if (cfg.topics.empty()) {
        cfg.topics.emplace_back();
    }
    if (options.given("reply")) {
        if (cfg.kind.type != zmq::socket_type::rep) {
            throw usage_error{"--reply needs --rep", exit_usage};
        }
        cfg.reply = decode_escapes(text.reply, "--reply");
    }
}

// -K, and the --sub options: --snapshot, --snapshot-timeout, --fail-on-gap.
void apply_output(const tool_options& options, recv_config& cfg, const recv_text& text) {
    if (options.given("key-delimiter")) {
        cfg.key_delimiter = decode_escapes(text.key_delimiter, "--key-delimiter");
        if (cfg.key_delimiter->empty()) {
            throw usage_error{"--key-delimiter must not be empty", exit_usage};
        }
    }
    (void)message_formatter(cfg.format, cfg.key_delimiter); // validates, listing the formats
    cfg.snapshot = options.given("snapshot");
    cfg.fail_on_gap = options.given("fail-on-gap");
    const bool sub = cfg.kind.type == zmq::socket_type::sub;
    for (const char* flag : {"snapshot", "fail-on-gap"}) {
        if (options.given(flag) && (!sub || cfg.raw)) {
            throw usage_error{"--" + std::string(flag) +
                                  " needs --sub with envelopes (zmqkit publications carry the "
                                  "sequence numbers; --raw frames have none)",
                              exit_usage};
        }
    }
    if (cfg.snapshot) {
        for (const auto& e : cfg.endpoints) {
            if (e.find('@') != std::string::npos) {
                // A bound SUB resends its subscriptions to each new peer in the order of
                // libzmq's trie, which may put the snapshot request before the live
                // subscription: the forwarder must see them in order (docs/wire-protocol.md).
                throw usage_error{"--snapshot asks a forwarder it connects to; '" + e +
                                      "' binds (drop the '@')",
                                  exit_usage};
            }
        }
    }
    if (!options.values()["snapshot-timeout"].defaulted() && !cfg.snapshot) {
        throw usage_error{"--snapshot-timeout needs --snapshot", exit_usage};
    }
    try {
        cfg.snapshot_timeout = parse_duration(text.snapshot_timeout);
    } catch (const zmqkit::error& e) {
        throw usage_error{std::string("--snapshot-timeout: ") + e.what(), exit_usage};
    }
}

// --ack (a DEALER consumer of a durable proxy) and its --credit.
void apply_ack(const tool_options& options, recv_config& cfg, const recv_text& text) {
    cfg.raw = options.given("raw");
    cfg.ack = options.given("ack");
    cfg.exit_at_end = options.given("exit-at-end");
    if (cfg.exit_at_end && !cfg.ack) {
        throw usage_error{"--exit-at-end asks a durable proxy what is left: it needs --ack (for "
                          "other sockets, --idle-timeout ends a quiet stream)",
                          exit_usage};
    }
    if (!cfg.ack) {
        if (!options.values()["credit"].defaulted()) {
            throw usage_error{"--credit applies to --ack only", exit_usage};
        }
        if (!cfg.group.empty() || !cfg.start.empty()) {
            throw usage_error{"--group and --from name a consumer group of a durable proxy: they "
                              "need --ack",
                              exit_usage};
        }
        return;
    }
    if (!cfg.start.empty() && cfg.group.empty()) {
        throw usage_error{"--from is where a new consumer group starts: it needs --group NAME",
                          exit_usage};
    }
    if (!cfg.group.empty()) {
        if (const std::string why = check_group_name(cfg.group); !why.empty()) {
            throw usage_error{"--group: " + why, exit_usage};
        }
    }
    if (!cfg.start.empty()) {
        try {
            cfg.start = group_start::parse(cfg.start).to_string(); // "10m" ago: from now
        } catch (const config_error& e) {
            throw usage_error{std::string("--from: ") + e.what(), exit_usage};
        }
    }
    if (cfg.kind.type != zmq::socket_type::pull && cfg.kind.type != zmq::socket_type::dealer) {
        throw usage_error{"--ack talks DEALER to a durable proxy; it cannot be combined with --" +
                              std::string(cfg.kind.flag),
                          exit_usage};
    }
    if (cfg.raw) {
        throw usage_error{"--ack needs envelopes (message ids); it cannot be combined with --raw",
                          exit_usage};
    }
    if (text.credit == 0) {
        throw usage_error{"--credit must be at least 1", exit_usage};
    }
    cfg.kind = find_socket_kind("dealer", {"dealer"});
    cfg.credit = text.credit;
}

// When the run ends (--count, --timeout, --idle-timeout) and how the socket closes.
void apply_flow(recv_config& cfg, const recv_text& text) {
    try {
        if (!text.count.empty()) {
            cfg.count = parse_count(text.count, "--count");
        }
        if (!text.timeout.empty()) {
            cfg.timeout = parse_duration(text.timeout);
        }
        if (!text.idle.empty()) {
            cfg.idle_timeout = parse_duration(text.idle);
        }
        cfg.linger = parse_duration(text.linger);
        check_linger(cfg.linger);
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    check_hwm(cfg.hwm);
    for (const auto& s : text.sockopts) {
        cfg.socket_options.push_back(parse_socket_option(s));
    }
}

} // namespace

std::variant<recv_config, print_and_exit> parse_recv_options(int argc, const char* const* argv) {
    recv_config cfg;
    recv_text text;
    tool_options options("recv");
    describe_recv_options(options, cfg, text);
    if (auto help = options.parse_socket_tool(argc, argv, usage_head, usage_tail)) {
        return *help;
    }
    apply_socket(options, cfg, text);
    apply_ack(options, cfg, text);
    apply_output(options, cfg, text);
    apply_flow(cfg, text);
    cfg.stats = options.given("stats");
    cfg.metrics_listen = options.metrics_listen();
    cfg.logging = options.logging();
    cfg.verbosity = cfg.logging.verbosity();
    cfg.security = options.security();
    return cfg;
}

} // namespace zmqkit::cli
