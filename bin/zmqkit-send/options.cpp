#include "zmqkit-send/options.hpp"

#include "common/message_format.hpp"

#include <zmqkit/error.hpp>

#include <charconv>
#include <cmath>
#include <sstream>

namespace po = boost::program_options;

namespace zmqkit::cli {
namespace {

constexpr const char* usage_head = R"(Usage: zmqkit-send [SOCKET] [options] ENDPOINT...

Reads messages from stdin (or --data / --file) and sends them as zmqkit envelopes
(docs/wire-protocol.md), or as plain frames with --raw.

Sockets (default --push; default action as CZMQ: push/req/dealer/pair connect, pub binds):
  --push     one message to one of the connected pullers, round robin
  --pub      to every subscriber; the topic frame is the key (-K) or --type
  --dealer   like push, to ROUTER/REP peers
  --req      one request at a time; each reply is printed on stdout (see --format)
  --pair     to the one PAIR peer

Endpoints use CZMQ's grammar: '@' binds, '>' connects, entries without a prefix take the
socket's default, several entries separated by commas; -e may be repeated. A bound
'tcp://host:*' prints the real endpoint on stderr: "zmqkit-send: info: bound tcp://...".

Input framing:
  default            one message per line (the newline, and one '\r' before it, are not
                     part of the message)
  -D, --delimiter S  messages separated by S (escapes \n \t \r \0 \\ \xNN)
  --length-prefixed  each message is a 4-byte big-endian length, then that many bytes
  --whole            all of the input is one message (empty input: nothing is sent)
  --max-size BYTES   the largest message (default 256 MiB); a larger one is a data error
                     (exit 65) and ends the input
  -K, --key-delimiter S  text before the first S is the key: the topic for --pub, the
                     envelope type otherwise (with --raw: a first frame of its own)
  --json             each message is a JSON value, sent as a msgpack body with content type
                     application/msgpack; an object {"headers":{...},"body":...} also sets
                     envelope fields: type, correlation_id, causation_id, reply_to,
                     content_type, traceparent, attempt, sequence; other header names become
                     user headers. A malformed line is reported with its line number, the rest
                     is still sent, and the exit code is 65.

Options)";

constexpr const char* usage_tail = R"(
Every option can also come from the environment as ZMQKIT_SEND_<OPTION> (ZMQKIT_SEND_RATE,
ZMQKIT_SEND_HWM, ...; the plain ZMQKIT_<OPTION> too, except for options other tools take with
another meaning, such as --format, --count or --rate) or from an INI file given with --config
("rate = 100"); the command line wins over the environment, which wins over the file.
Durations: milliseconds, or a number with ms, s, m or h (250ms, 2s, 1.5m).

Examples:
  # a work queue: lines to whichever worker pulls next
  seq 1 1000 | zmqkit-send tcp://127.0.0.1:5557
  # publish a log file; the text before the first space is the topic
  tail -F app.log | zmqkit-send --pub -K ' ' @tcp://*:5556
  # ask a question and print the answer
  zmqkit-send --req --data 'ping' tcp://127.0.0.1:5555
  # store-and-forward: exit 0 only once a durable proxy has every line on disk
  seq 1 1000 | zmqkit-send --wait-confirm tcp://127.0.0.1:5557
  # encrypted: the server's public certificate, this client's own key pair
  seq 1 10 | zmqkit-send --curve-server-key proxy.key --curve-secret me.key_secret \
      --timeout 5s tcp://127.0.0.1:5557
  # JSON lines with headers, waiting for the pullers to be connected first
  echo '{"headers":{"type":"order.created"},"body":{"id":7}}' | \
      zmqkit-send --json --wait-peers 1 tcp://127.0.0.1:5557

Exit codes: 0 ok, 64 bad usage, 65 bad input data (malformed JSON line, truncated length
prefix, a message over --max-size), 66 unreadable --file, 69 cannot bind/connect (also a host
that does not resolve, a refused handshake: wrong server key, key or address not allowed,
plaintext against CURVE; the reason is named) or --req: a request was answered with an error
reply, 73 --confirm-log cannot be written, 75 timed out (--timeout, --wait-peers) or messages
still queued when --linger expired (--timeout bounds the whole run, the linger included), 76
--wait-confirm: some messages were not confirmed within --confirm-timeout or were rejected
(each is named; --confirm-log FILE lists every record as "<record> <id> confirmed",
"... rejected:<reason>" or "... unconfirmed"), 70 internal error, 78 --config is a
directory, unreadable or malformed.
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

// Rates outside this range are typos or overflow the interval between two messages.
constexpr double min_rate = 0.001;
constexpr double max_rate = 1e9;

} // namespace

std::variant<send_config, print_and_exit> parse_send_options(int argc, const char* const* argv) {
    send_config cfg;
    std::vector<std::string> endpoints;
    std::vector<std::string> headers;
    std::vector<std::string> sockopts;
    std::string delimiter;
    std::string key_delimiter;
    std::string correlation;
    std::string count;
    std::string timeout;
    std::string idle_timeout;
    std::string linger = "5s";
    std::string confirm_timeout = "30s";
    std::string retry_interval = "2s";
    std::size_t window = 1000;
    std::size_t batch = 1;
    std::string batch_linger = "0";
    std::string confirm_log;
    std::string interval;
    std::string wait_peers = "0";
    std::string data;
    std::string file;
    std::string max_size;
    po::options_description desc;
    // clang-format off
    desc.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("push", "PUSH socket (default)")
        ("pub", "PUB socket")
        ("dealer", "DEALER socket")
        ("req", "REQ socket: print each reply")
        ("pair", "PAIR socket")
        ("endpoint,e", po::value(&endpoints)->composing(), "endpoints (repeatable; also positional)")
        ("delimiter,D", po::value(&delimiter), "message delimiter (default \\n)")
        ("key-delimiter,K", po::value(&key_delimiter), "key delimiter: topic (--pub) or type")
        ("length-prefixed", "input is 4-byte big-endian length + bytes, repeated")
        ("whole", "all of the input is one message")
        ("max-size", po::value(&max_size), "largest message in bytes (default 268435456 = 256 MiB)")
        ("json", "each message is a JSON value (msgpack body)")
        ("data", po::value(&data), "send this text instead of reading stdin (framed the same way)")
        ("file", po::value(&file), "read this file instead of stdin")
        ("raw", "plain ZeroMQ frames, no envelope")
        ("correlation-id", po::value(&correlation), "correlation id (UUID) for every message")
        ("type", po::value(&cfg.type), "envelope type (and the topic for --pub without -K)")
        ("header", po::value(&headers)->composing(), "user header name=value (repeatable)")
        ("reply-to", po::value(&cfg.reply_to), "envelope reply-to")
        ("count,c", po::value(&count), "stop after sending N messages")
        ("timeout", po::value(&timeout), "give up after this long in total (exit 75)")
        ("idle-timeout", po::value(&idle_timeout), "end normally when no input arrives for this long (a pipe that stays open)")
        ("rate", po::value(&cfg.rate), "at most N messages per second")
        ("interval", po::value(&interval), "wait DUR between messages (the same as --rate 1/DUR)")
        ("hwm", po::value(&cfg.hwm)->default_value(1000), "send high-water mark, messages")
        ("sockopt,X", po::value(&sockopts)->composing(), "ZeroMQ socket option name=value (repeatable; names below)")
        ("wait-peers", po::value(&wait_peers), "before sending, wait until N peers completed the handshake (--pub: until N subscriptions arrived, so the first messages are not lost to slow joiners)")
        ("linger", po::value(&linger)->default_value("5s"), "at exit, how long to keep delivering queued messages")
        ("wait-confirm", "send to a durable proxy (zmqkit-proxy --mode durable) over DEALER; keep and resend each message until the proxy confirms it is on disk; exit 76 if any is left unconfirmed")
        ("confirm-timeout", po::value(&confirm_timeout)->default_value("30s"), "--wait-confirm: at the end, how long to wait for the last confirms")
        ("window", po::value(&window)->default_value(1000), "--wait-confirm: unconfirmed messages in flight before sending waits")
        ("retry-interval", po::value(&retry_interval)->default_value("2s"), "--wait-confirm: resend a message not confirmed after this (same id: stored once)")
        ("batch", po::value(&batch)->default_value(1), "--wait-confirm: send up to N messages as one batch (one ZeroMQ message; 1: no batching); a partly filled batch leaves when no more input is ready, and at the end")
        ("batch-linger", po::value(&batch_linger)->default_value("0"), "--wait-confirm --batch: with --rate, how long a partly filled batch may wait for the next messages (default 0: it leaves before every wait)")
        ("confirm-log", po::value(&confirm_log), "--wait-confirm: write one line per input record to FILE, \"<record> <message id> <outcome>\": the record number (from 1; the line number for line input), the id (\"-\" if never sent), and confirmed, rejected:<reason> or unconfirmed; only confirmed records are safely stored")
        ("format,f", po::value(&cfg.format), "--req replies: raw|text|quoted|hex|json|msgpack|FORMAT")
        ("stats", "print statistics on stderr at exit")
        ("config", po::value<std::string>(), "read options from this INI file");
    // clang-format on
    add_log_options(desc, "more diagnostics: each sent message id, connection events");
    po::options_description security("Security (CURVE / PLAIN / ZAP, docs/security.md)");
    po::options_description no_sides;
    add_security_options(security, no_sides);
    po::options_description all;
    all.add(desc).add(security);
    po::positional_options_description positional;
    positional.add("endpoint", -1);
    po::variables_map vm;
    parse_all("send", argc, argv, all, &positional, vm);
    if (vm.count("help") != 0U) {
        std::ostringstream text;
        text << usage_head << ":\n"
             << desc << "\n-X names: " << known_socket_options() << "\n\n"
             << security << security_help() << usage_tail;
        return print_and_exit{text.str(), exit_ok};
    }
    if (vm.count("version") != 0U) {
        return print_and_exit{"zmqkit-send " ZMQKIT_VERSION "\n", exit_ok};
    }
    cfg.kind = choose_socket_kind(vm, {"push", "pub", "dealer", "req", "pair"}, "push");
    cfg.wait_confirm = vm.count("wait-confirm") != 0U;
    if (cfg.wait_confirm) {
        if (cfg.kind.type != zmq::socket_type::push && cfg.kind.type != zmq::socket_type::dealer) {
            throw usage_error{"--wait-confirm talks DEALER to a durable proxy; it cannot be "
                              "combined with --" +
                                  std::string(cfg.kind.flag),
                              exit_usage};
        }
        if (vm.count("raw") != 0U) {
            throw usage_error{"--wait-confirm needs envelopes (message ids); it cannot be "
                              "combined with --raw",
                              exit_usage};
        }
        cfg.kind = find_socket_kind("dealer", {"dealer"});
        try {
            cfg.confirm_timeout = parse_duration(confirm_timeout);
            cfg.retry_interval = parse_duration(retry_interval);
            cfg.batch_linger = parse_duration(batch_linger);
        } catch (const zmqkit::error& e) {
            throw usage_error{e.what(), exit_usage};
        }
        if (window == 0 || cfg.retry_interval.count() <= 0) {
            throw usage_error{"--window and --retry-interval must be more than 0", exit_usage};
        }
        if (batch == 0 || batch > 1'000'000) {
            throw usage_error{"--batch must be from 1 (no batching) to 1000000 messages, got " +
                                  std::to_string(batch),
                              exit_usage};
        }
        if (cfg.batch_linger.count() < 0) {
            throw usage_error{"--batch-linger must not be negative", exit_usage};
        }
        cfg.window = window;
        cfg.batch = batch;
        if (vm.count("confirm-log") != 0U) {
            if (confirm_log.empty()) {
                throw usage_error{"--confirm-log needs a file name", exit_usage};
            }
            cfg.confirm_log = confirm_log;
        }
    } else {
        if (vm.count("confirm-log") != 0U) {
            throw usage_error{"--confirm-log applies to --wait-confirm only", exit_usage};
        }
        for (const char* only :
             {"confirm-timeout", "window", "retry-interval", "batch", "batch-linger"}) {
            if (!vm[only].defaulted()) {
                throw usage_error{std::string("--") + only + " applies to --wait-confirm only",
                                  exit_usage};
            }
        }
    }
    if (endpoints.empty()) {
        throw usage_error{"no endpoint given (e.g. zmqkit-send tcp://127.0.0.1:5557; see --help)",
                          exit_usage};
    }
    check_endpoints(endpoints, cfg.kind.default_action);
    cfg.endpoints = std::move(endpoints);

    const int framings = static_cast<int>(vm.count("length-prefixed")) +
                         static_cast<int>(vm.count("whole")) +
                         static_cast<int>(vm.count("delimiter"));
    if (framings > 1) {
        throw usage_error{"choose one framing: -D/--delimiter, --length-prefixed or --whole",
                          exit_usage};
    }
    if (vm.count("length-prefixed") != 0U) {
        cfg.framing = input_framing::length_prefixed;
    } else if (vm.count("whole") != 0U) {
        cfg.framing = input_framing::whole;
    }
    cfg.strip_cr = framings == 0; // only the default line mode strips a CR before the newline
    if (vm.count("delimiter") != 0U) {
        cfg.delimiter = decode_escapes(delimiter, "--delimiter");
        if (cfg.delimiter.empty()) {
            throw usage_error{"--delimiter must not be empty", exit_usage};
        }
    }
    if (vm.count("key-delimiter") != 0U) {
        cfg.key_delimiter = decode_escapes(key_delimiter, "--key-delimiter");
        if (cfg.key_delimiter->empty()) {
            throw usage_error{"--key-delimiter must not be empty", exit_usage};
        }
    }
    cfg.json = vm.count("json") != 0U;
    cfg.raw = vm.count("raw") != 0U;
    if (cfg.json && cfg.raw) {
        throw usage_error{"--json builds envelopes; it cannot be combined with --raw", exit_usage};
    }
    if (vm.count("data") != 0U && vm.count("file") != 0U) {
        throw usage_error{"give --data or --file, not both", exit_usage};
    }
    if (vm.count("data") != 0U) {
        cfg.data = data;
    }
    if (vm.count("file") != 0U) {
        cfg.file = file;
    }
    if (!correlation.empty()) {
        auto id = message_id::parse(correlation);
        if (!id || id->is_nil()) {
            throw usage_error{"--correlation-id '" + correlation +
                                  "' is not a UUID (e.g. 0193f1a2-b3c4-7d5e-8f01-23456789abcd)",
                              exit_usage};
        }
        cfg.correlation_id = *id;
    }
    for (const auto& h : headers) {
        const auto eq = h.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw usage_error{"--header '" + h + "': expected name=value", exit_usage};
        }
        cfg.headers.emplace_back(h.substr(0, eq), h.substr(eq + 1));
    }
    if (cfg.raw &&
        (!correlation.empty() || !cfg.type.empty() || !headers.empty() || !cfg.reply_to.empty())) {
        throw usage_error{"--raw sends plain frames: --correlation-id, --type, --header and "
                          "--reply-to need the envelope",
                          exit_usage};
    }
    try {
        if (!count.empty()) {
            cfg.count = parse_count(count, "--count");
        }
        cfg.wait_peers = static_cast<std::size_t>(parse_count(wait_peers, "--wait-peers"));
        if (!idle_timeout.empty()) {
            cfg.idle_timeout = parse_duration(idle_timeout);
        }
        if (!timeout.empty()) {
            cfg.timeout = parse_duration(timeout);
        }
        cfg.linger = parse_duration(linger);
        if (!max_size.empty()) {
            cfg.max_size = static_cast<std::size_t>(parse_count(max_size, "--max-size"));
            if (cfg.max_size == 0) {
                throw usage_error{"--max-size must be at least 1 byte", exit_usage};
            }
        }
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    check_linger(cfg.linger);
    if (!interval.empty()) {
        if (vm.count("rate") != 0U) {
            throw usage_error{"give --rate or --interval, not both", exit_usage};
        }
        std::chrono::milliseconds gap{0};
        try {
            gap = parse_duration(interval);
        } catch (const zmqkit::error& e) {
            throw usage_error{std::string("--interval: ") + e.what(), exit_usage};
        }
        if (gap.count() <= 0) {
            throw usage_error{"--interval must be more than 0 (to send as fast as possible, give "
                              "neither --interval nor --rate)",
                              exit_usage};
        }
        cfg.rate = 1000.0 / static_cast<double>(gap.count());
    }
    if ((vm.count("rate") != 0U || !interval.empty()) &&
        (!std::isfinite(cfg.rate) || cfg.rate < min_rate || cfg.rate > max_rate)) {
        std::ostringstream got;
        got << cfg.rate;
        throw usage_error{"--rate must be a number of messages per second from 0.001 to 1e9, got " +
                              got.str(),
                          exit_usage};
    }
    if (vm.count("format") != 0U && cfg.kind.type != zmq::socket_type::req) {
        throw usage_error{"-f/--format formats the replies of --req; there are none with --" +
                              std::string(cfg.kind.flag),
                          exit_usage};
    }
    if (cfg.hwm < 0) {
        throw usage_error{"--hwm must be 0 (no limit) or more, got " + std::to_string(cfg.hwm),
                          exit_usage};
    }
    for (const auto& s : sockopts) {
        cfg.socket_options.push_back(parse_socket_option(s));
    }
    (void)message_formatter(cfg.format); // validates
    cfg.stats = vm.count("stats") != 0U;
    cfg.logging = log_settings_from(vm);
    cfg.verbosity = cfg.logging.verbosity();
    cfg.security = resolve_side_security(vm, "zmqkit-send", false, "zmqkit-send");
    return cfg;
}

} // namespace zmqkit::cli
