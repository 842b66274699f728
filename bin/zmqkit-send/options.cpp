#include "zmqkit-send/options.hpp"

#include "common/message_format.hpp"
#include "common/tool_options.hpp"

#include <zmqkit/error.hpp>
#include <zmqkit/patterns/titanic.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

using namespace std::chrono_literals;

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
  --mdp      requests to a Majordomo (7/MDP) broker's --service NAME, one at a time, each
             reply printed on stdout
  --titanic  durable requests through a broker's Titanic (9/TSP, zmqkit-proxy --mode mdp
             --titanic DIR): with --service NAME each message is stored for the service
             and its request id printed on stdout once it is on disk (the service may be
             down); with --fetch ID the reply is printed like --mdp's and closed (--keep
             leaves it stored); while it is pending the exit code is 75, or with --wait
             the reply is asked for again every 500 ms until it is there (or --timeout)
  --pair     to the one PAIR peer

Requests that survive (--req with --retries or --request-timeout, and --mdp; the Lazy Pirate
pattern): a request not answered within --request-timeout (default 2.5 s) is sent again on a
fresh connection, with the same message id (a zmqkit broker joins the copies), --retries
times (--mdp default 2, --req 0). An error reply (the broker's timeout or busy, a worker's
failure) is named on stderr and the next request goes; a request never answered ends the run.
Either makes the exit code 69.

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
  # ask a load-balanced service, resending twice after 1 s without an answer
  zmqkit-send --req --retries 2 --request-timeout 1s --data 'resize 7' tcp://broker:5555
  # ask the Majordomo service "echo" of a broker
  zmqkit-send --mdp --service echo --data hello tcp://broker:5555
  # store a request for "resize" now, fetch its reply later (Titanic)
  id=$(zmqkit-send --titanic --service resize --data 'img 7' tcp://broker:5555)
  zmqkit-send --titanic --fetch "$id" --wait --timeout 1m tcp://broker:5555
  # send a ping every second until stopped, like nngcat --interval
  zmqkit-send --data ping --repeat 0 --interval 1s tcp://127.0.0.1:5557
  # store-and-forward: exit 0 only once a durable proxy has every line on disk
  seq 1 1000 | zmqkit-send --wait-confirm tcp://127.0.0.1:5557
  # encrypted: the server's public certificate, this client's own key pair
  seq 1 10 | zmqkit-send --curve-server-key proxy.key --curve-secret me.key_secret \
      --timeout 5s tcp://127.0.0.1:5557
  # JSON lines with headers, waiting for the pullers to be connected first
  echo '{"headers":{"type":"order.created"},"body":{"id":7}}' | \
      zmqkit-send --json --wait-peers 1 tcp://127.0.0.1:5557

Exit codes: 0 ok, 64 bad usage, 65 bad input data (malformed JSON line, truncated length
prefix, a message over --max-size; --titanic --fetch: Titanic does not know the id, 400),
66 unreadable --file, 69 cannot bind/connect (also a host that does not resolve, a refused
handshake: wrong server key, key or address not allowed, plaintext against CURVE; the
reason is named) or --req: a request was answered with an error reply (--titanic: Titanic
refused the request, 400, could not store it or the reply, 500, or did not answer), 73
--confirm-log cannot be written, 75 timed out (--timeout, --wait-peers; --titanic --fetch:
the reply is still pending) or messages still queued when --linger expired (--timeout bounds
the whole run, the linger included), 76 --wait-confirm: some messages were not confirmed
within --confirm-timeout or were rejected (each is named; --confirm-log FILE lists every
record as "<record> <id> confirmed", "... rejected:<reason>" or "... unconfirmed"), 70
internal error, 78 --config is a directory, unreadable or malformed.
)";

// Rates outside this range are typos or overflow the interval between two messages.
constexpr double min_rate = 0.001;
constexpr double max_rate = 1e9;

// The option values read as text, checked and converted by the groups below.
struct send_text {
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
    std::vector<std::string> files;
    std::string max_size;
    std::string repeat;
    std::string mdp;
    std::string fetch;
    std::uint32_t retries = 0;
    std::string request_timeout = "2.5s";
};

void describe_send_options(tool_options& options, send_config& cfg, send_text& t) {
    // clang-format off
    options.add()
        ("push", "PUSH socket (default)")
        ("pub", "PUB socket")
        ("dealer", "DEALER socket")
        ("req", "REQ socket: print each reply")
        ("mdp", "Majordomo (7/MDP) client of --service: print each reply")
        ("service", po::value(&t.mdp)->value_name("NAME"), "--mdp, --titanic: the service the requests are for")
        ("titanic", "Titanic (9/TSP) client of a broker with zmqkit-proxy --titanic: with --service NAME store each message as a request and print its id; with --fetch ID print the stored reply and close it")
        ("fetch", po::value(&t.fetch)->value_name("ID"), "--titanic: print the reply of the request ID (exit 75 while it is pending) and close it")
        ("wait", "--titanic --fetch: while the reply is pending, ask again every 500 ms (bounded by --timeout)")
        ("keep", "--titanic --fetch: leave the reply stored (no titanic.close)")
        ("retries", po::value(&t.retries), "--req, --mdp, --titanic: resend an unanswered request this many times (Lazy Pirate; --mdp, --titanic default 2)")
        ("request-timeout", po::value(&t.request_timeout)->default_value("2.5s"), "--req, --mdp, --titanic: how long to wait for a reply before resending (Lazy Pirate)")
        ("pair", "PAIR socket")
        ("endpoint,e", po::value(&t.endpoints)->composing(), "endpoints (repeatable; also positional)")
        ("delimiter,D", po::value(&t.delimiter), "message delimiter (default \\n)")
        ("key-delimiter,K", po::value(&t.key_delimiter), "key delimiter: topic (--pub) or type")
        ("length-prefixed", "input is 4-byte big-endian length + bytes, repeated")
        ("whole", "all of the input is one message")
        ("max-size", po::value(&t.max_size), "largest message in bytes (default 268435456 = 256 MiB)")
        ("json", "each message is a JSON value (msgpack body)")
        ("data", po::value(&t.data), "send this text instead of reading stdin (framed the same way)")
        ("file", po::value(&t.files)->composing(), "read this file instead of stdin (repeatable: in turn; - is stdin)")
        ("repeat", po::value(&t.repeat), "send the --data / --file input N times (0: until stopped, --count or --timeout)")
        ("raw", "plain ZeroMQ frames, no envelope")
        ("correlation-id", po::value(&t.correlation), "correlation id (UUID) for every message")
        ("type", po::value(&cfg.type), "envelope type (and the topic for --pub without -K)")
        ("header", po::value(&t.headers)->composing(), "user header name=value (repeatable)")
        ("reply-to", po::value(&cfg.reply_to), "envelope reply-to")
        ("count,c", po::value(&t.count), "stop after sending N messages")
        ("timeout", po::value(&t.timeout), "give up after this long in total (exit 75)")
        ("idle-timeout", po::value(&t.idle_timeout), "end normally when no input arrives for this long (a pipe that stays open)")
        ("rate", po::value(&cfg.rate), "at most N messages per second")
        ("interval", po::value(&t.interval), "wait DUR between messages (the same as --rate 1/DUR)")
        ("hwm", po::value(&cfg.hwm)->default_value(1000), "send high-water mark, messages")
        ("sockopt,X", po::value(&t.sockopts)->composing(), "ZeroMQ socket option name=value (repeatable; names below)")
        ("wait-peers", po::value(&t.wait_peers), "before sending, wait until N peers completed the handshake (--pub: until N subscriptions arrived, so the first messages are not lost to slow joiners)")
        ("linger", po::value(&t.linger)->default_value("5s"), "at exit, how long to keep delivering queued messages")
        ("wait-confirm", "send to a durable proxy (zmqkit-proxy --mode durable) over DEALER; keep and resend each message until the proxy confirms it is on disk; exit 76 if any is left unconfirmed")
        ("confirm-timeout", po::value(&t.confirm_timeout)->default_value("30s"), "--wait-confirm: at the end, how long to wait for the last confirms")
        ("window", po::value(&t.window)->default_value(1000), "--wait-confirm: unconfirmed messages in flight before sending waits")
        ("retry-interval", po::value(&t.retry_interval)->default_value("2s"), "--wait-confirm: resend a message not confirmed after this (same id: stored once)")
        ("batch", po::value(&t.batch)->default_value(1), "--wait-confirm: send up to N messages as one batch (one ZeroMQ message; 1: no batching); a partly filled batch leaves when no more input is ready, and at the end")
        ("batch-linger", po::value(&t.batch_linger)->default_value("0"), "--wait-confirm --batch: with --rate, how long a partly filled batch may wait for the next messages (default 0: it leaves before every wait)")
        ("confirm-log", po::value(&t.confirm_log), "--wait-confirm: write one line per input record to FILE, \"<record> <message id> <outcome>\": the record number (from 1; the line number for line input), the id (\"-\" if never sent), and confirmed, rejected:<reason> or unconfirmed; only confirmed records are safely stored")
        ("format,f", po::value(&cfg.format), "--req replies: raw|text|quoted|hex|json|msgpack|FORMAT")
        ("stats", "print statistics on stderr at exit");
    // clang-format on
    options.add_diagnostics("more diagnostics: each sent message id, connection events");
    options.add_security();
    options.positional("endpoint", -1);
}

// --wait-confirm and the options that only it takes.
void apply_confirm(const tool_options& options, send_config& cfg, const send_text& t) {
    cfg.wait_confirm = options.given("wait-confirm");
    if (!cfg.wait_confirm) {
        if (options.given("confirm-log")) {
            throw usage_error{"--confirm-log applies to --wait-confirm only", exit_usage};
        }
        for (const char* only :
             {"confirm-timeout", "window", "retry-interval", "batch", "batch-linger"}) {
            if (!options.values()[only].defaulted()) {
                throw usage_error{std::string("--") + only + " applies to --wait-confirm only",
                                  exit_usage};
            }
        }
        return;
    }
    if (cfg.kind.type != zmq::socket_type::push && cfg.kind.type != zmq::socket_type::dealer) {
        throw usage_error{"--wait-confirm talks DEALER to a durable proxy; it cannot be "
                          "combined with --" +
                              std::string(cfg.kind.flag),
                          exit_usage};
    }
    if (options.given("raw")) {
        throw usage_error{"--wait-confirm needs envelopes (message ids); it cannot be "
                          "combined with --raw",
                          exit_usage};
    }
    cfg.kind = find_socket_kind("dealer", {"dealer"});
    try {
        cfg.confirm_timeout = parse_duration(t.confirm_timeout);
        cfg.retry_interval = parse_duration(t.retry_interval);
        cfg.batch_linger = parse_duration(t.batch_linger);
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    if (t.window == 0 || cfg.retry_interval.count() <= 0) {
        throw usage_error{"--window and --retry-interval must be more than 0", exit_usage};
    }
    if (t.batch == 0 || t.batch > 1'000'000) {
        throw usage_error{"--batch must be from 1 (no batching) to 1000000 messages, got " +
                              std::to_string(t.batch),
                          exit_usage};
    }
    if (cfg.batch_linger.count() < 0) {
        throw usage_error{"--batch-linger must not be negative", exit_usage};
    }
    cfg.window = t.window;
    cfg.batch = t.batch;
    if (options.given("confirm-log")) {
        if (t.confirm_log.empty()) {
            throw usage_error{"--confirm-log needs a file name", exit_usage};
        }
        cfg.confirm_log = t.confirm_log;
    }
}

// The input: framing, delimiters, --json / --raw, --data / --file.
void apply_input(const tool_options& options, send_config& cfg, const send_text& t) {
    const int framings = static_cast<int>(options.given("length-prefixed")) +
                         static_cast<int>(options.given("whole")) +
                         static_cast<int>(options.given("delimiter"));
    if (framings > 1) {
        throw usage_error{"choose one framing: -D/--delimiter, --length-prefixed or --whole",
                          exit_usage};
    }
    if (options.given("length-prefixed")) {
        cfg.framing = input_framing::length_prefixed;
    } else if (options.given("whole")) {
        cfg.framing = input_framing::whole;
    }
    cfg.strip_cr = framings == 0; // only the default line mode strips a CR before the newline
    if (options.given("delimiter")) {
        cfg.delimiter = decode_escapes(t.delimiter, "--delimiter");
        if (cfg.delimiter.empty()) {
            throw usage_error{"--delimiter must not be empty", exit_usage};
        }
    }
    if (options.given("key-delimiter")) {
        cfg.key_delimiter = decode_escapes(t.key_delimiter, "--key-delimiter");
        if (cfg.key_delimiter->empty()) {
            throw usage_error{"--key-delimiter must not be empty", exit_usage};
        }
    }
    cfg.json = options.given("json");
    cfg.raw = options.given("raw");
    if (cfg.json && cfg.raw) {
        throw usage_error{"--json builds envelopes; it cannot be combined with --raw", exit_usage};
    }
    if (options.given("data") && options.given("file")) {
        throw usage_error{"give --data or --file, not both", exit_usage};
    }
    if (options.given("data")) {
        cfg.data = t.data;
    }
    cfg.files = t.files;
    if (std::count(cfg.files.begin(), cfg.files.end(), "-") > 1) {
        throw usage_error{"--file - (stdin) can be read once only", exit_usage};
    }
    if (options.given("repeat")) {
        if (!cfg.data && cfg.files.empty()) {
            throw usage_error{"--repeat sends the --data or --file input again; stdin is read once",
                              exit_usage};
        }
        if (std::count(cfg.files.begin(), cfg.files.end(), "-") > 0) {
            throw usage_error{"--repeat cannot read stdin (--file -) again", exit_usage};
        }
        try {
            cfg.repeat = parse_count(t.repeat, "--repeat");
        } catch (const zmqkit::error& e) {
            throw usage_error{e.what(), exit_usage};
        }
    }
}

// --titanic with --service NAME or --fetch ID [--wait] [--keep].
void apply_titanic(const tool_options& options, send_config& cfg, const send_text& t) {
    cfg.titanic = options.given("titanic");
    if (!cfg.titanic) {
        for (const char* only : {"fetch", "wait", "keep"}) {
            if (options.given(only)) {
                throw usage_error{std::string("--") + only + " applies to --titanic only",
                                  exit_usage};
            }
        }
        return;
    }
    if (options.given("mdp")) {
        throw usage_error{"give --titanic or --mdp, not both (--titanic stores requests through "
                          "the broker's Titanic; --mdp asks the service directly)",
                          exit_usage};
    }
    if (options.given("fetch") == options.given("service")) {
        throw usage_error{"--titanic takes --service NAME (store requests) or --fetch ID (get a "
                          "reply), one of them",
                          exit_usage};
    }
    if (!options.given("fetch") && (options.given("wait") || options.given("keep"))) {
        throw usage_error{"--wait and --keep apply to --titanic --fetch only", exit_usage};
    }
    if (options.given("fetch")) {
        if (!patterns::tsp::valid_id(t.fetch)) {
            throw usage_error{"--fetch takes a request id (32 hex digits, as --titanic "
                              "--service printed it), got '" +
                                  t.fetch + "'",
                              exit_usage};
        }
        for (const char* input : {"data", "file", "repeat"}) {
            if (options.given(input)) {
                throw usage_error{std::string("--fetch reads no input; drop --") + input,
                                  exit_usage};
            }
        }
        cfg.titanic_fetch = t.fetch;
        cfg.titanic_wait = options.given("wait");
        cfg.titanic_keep = options.given("keep");
    } else if (t.mdp.starts_with(patterns::tsp::prefix)) {
        throw usage_error{"--service names the service Titanic sends the request to, not one of "
                          "titanic.*",
                          exit_usage};
    }
}

// --mdp --service NAME, and --retries / --request-timeout for --req, --mdp and --titanic (Lazy
// Pirate).
void apply_requests(const tool_options& options, send_config& cfg, const send_text& t) {
    const bool mdp = options.given("mdp") || cfg.titanic;
    if (!cfg.titanic_fetch && mdp != options.given("service")) {
        throw usage_error{"--mdp asks the service --service NAME names: give both (as "
                          "zmqkit-worker --mdp --service NAME serves it)",
                          exit_usage};
    }
    const bool pirate_flags =
        options.given("retries") || !options.values()["request-timeout"].defaulted();
    const char* const flag = cfg.titanic ? "--titanic" : "--mdp";
    if (mdp && (options.given("push") || options.given("pub") || options.given("dealer") ||
                options.given("req") || options.given("pair"))) {
        throw usage_error{std::string(flag) +
                              " is a socket of its own (a 7/MDP client); drop the other "
                              "socket flag",
                          exit_usage};
    }
    if (cfg.titanic_fetch) {
        // --fetch: a 7/MDP conversation with titanic.reply (and titanic.close).
        cfg.kind = socket_kind{"titanic", zmq::socket_type::dealer, endpoint_action::connect};
        cfg.retries = 2;
    } else if (mdp) {
        if (t.mdp.empty() || t.mdp.starts_with("mmi.")) {
            throw usage_error{"--service needs a name (not empty, not mmi.*)", exit_usage};
        }
        cfg.mdp_service = t.mdp;
        cfg.kind = socket_kind{cfg.titanic ? "titanic" : "mdp", zmq::socket_type::dealer,
                               endpoint_action::connect};
        cfg.retries = 2;
    } else if (pirate_flags && cfg.kind.type != zmq::socket_type::req) {
        throw usage_error{"--retries and --request-timeout apply to --req and --mdp only",
                          exit_usage};
    }
    cfg.lazy_pirate = mdp || pirate_flags;
    if (!cfg.lazy_pirate) {
        return;
    }
    if (options.given("retries")) {
        cfg.retries = t.retries;
    }
    try {
        cfg.request_timeout = parse_duration(t.request_timeout);
    } catch (const zmqkit::error& e) {
        throw usage_error{std::string("--request-timeout: ") + e.what(), exit_usage};
    }
    if (cfg.request_timeout.count() <= 0) {
        throw usage_error{"--request-timeout must be more than 0", exit_usage};
    }
    if (cfg.retries > 1000) {
        throw usage_error{"--retries must be at most 1000, got " + std::to_string(cfg.retries),
                          exit_usage};
    }
    if (options.given("raw")) {
        throw usage_error{std::string(mdp ? flag : "--retries / --request-timeout") +
                              " keep a request's message id across resends: they need "
                              "envelopes, not --raw",
                          exit_usage};
    }
    if (options.given("wait-peers")) {
        throw usage_error{"--wait-peers does not apply to requests that are resent until "
                          "answered (--retries, --request-timeout, --mdp)",
                          exit_usage};
    }
}

// The envelope fields every message carries (--correlation-id, --type, --header, --reply-to).
void apply_envelope(send_config& cfg, const send_text& t) {
    if (!t.correlation.empty()) {
        auto id = message_id::parse(t.correlation);
        if (!id || id->is_nil()) {
            throw usage_error{"--correlation-id '" + t.correlation +
                                  "' is not a UUID (e.g. 0193f1a2-b3c4-7d5e-8f01-23456789abcd)",
                              exit_usage};
        }
        cfg.correlation_id = *id;
    }
    for (const auto& h : t.headers) {
        const auto eq = h.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw usage_error{"--header '" + h + "': expected name=value", exit_usage};
        }
        cfg.headers.emplace_back(h.substr(0, eq), h.substr(eq + 1));
    }
    if (cfg.raw && (!t.correlation.empty() || !cfg.type.empty() || !t.headers.empty() ||
                    !cfg.reply_to.empty())) {
        throw usage_error{"--raw sends plain frames: --correlation-id, --type, --header and "
                          "--reply-to need the envelope",
                          exit_usage};
    }
}

// --rate or --interval: messages per second.
void apply_rate(const tool_options& options, send_config& cfg, const send_text& t) {
    if (!t.interval.empty()) {
        if (options.given("rate")) {
            throw usage_error{"give --rate or --interval, not both", exit_usage};
        }
        std::chrono::milliseconds gap{0};
        try {
            gap = parse_duration(t.interval);
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
    if ((options.given("rate") || !t.interval.empty()) &&
        (!std::isfinite(cfg.rate) || cfg.rate < min_rate || cfg.rate > max_rate)) {
        std::ostringstream got;
        got << cfg.rate;
        throw usage_error{"--rate must be a number of messages per second from 0.001 to 1e9, got " +
                              got.str(),
                          exit_usage};
    }
}

// When the run ends (--count, --timeout, --idle-timeout), --wait-peers, --linger, --max-size.
void apply_flow(send_config& cfg, const send_text& t) {
    try {
        if (!t.count.empty()) {
            cfg.count = parse_count(t.count, "--count");
        }
        cfg.wait_peers = static_cast<std::size_t>(parse_count(t.wait_peers, "--wait-peers"));
        if (!t.idle_timeout.empty()) {
            cfg.idle_timeout = parse_duration(t.idle_timeout);
        }
        if (!t.timeout.empty()) {
            cfg.timeout = parse_duration(t.timeout);
        }
        cfg.linger = parse_duration(t.linger);
        if (!t.max_size.empty()) {
            cfg.max_size = static_cast<std::size_t>(parse_count(t.max_size, "--max-size"));
            if (cfg.max_size == 0) {
                throw usage_error{"--max-size must be at least 1 byte", exit_usage};
            }
        }
    } catch (const zmqkit::error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    check_linger(cfg.linger);
}

} // namespace

std::variant<send_config, print_and_exit> parse_send_options(int argc, const char* const* argv) {
    send_config cfg;
    send_text t;
    tool_options options("send");
    describe_send_options(options, cfg, t);
    if (auto text = options.parse_socket_tool(argc, argv, usage_head, usage_tail)) {
        return *text;
    }
    cfg.kind =
        choose_socket_kind(options.values(), {"push", "pub", "dealer", "req", "pair"}, "push");
    apply_confirm(options, cfg, t);
    apply_titanic(options, cfg, t);
    apply_requests(options, cfg, t);
    if (t.endpoints.empty()) {
        throw usage_error{"no endpoint given (e.g. zmqkit-send tcp://127.0.0.1:5557; see --help)",
                          exit_usage};
    }
    check_endpoints(t.endpoints, cfg.kind.default_action);
    cfg.endpoints = std::move(t.endpoints);
    apply_input(options, cfg, t);
    apply_envelope(cfg, t);
    apply_flow(cfg, t);
    apply_rate(options, cfg, t);
    if (options.given("format") && cfg.kind.type != zmq::socket_type::req && !cfg.mdp_service &&
        !cfg.titanic_fetch) {
        throw usage_error{"-f/--format formats the replies of --req; there are none with --" +
                              std::string(cfg.kind.flag),
                          exit_usage};
    }
    check_hwm(cfg.hwm);
    for (const auto& s : t.sockopts) {
        cfg.socket_options.push_back(parse_socket_option(s));
    }
    (void)message_formatter(cfg.format); // validates
    cfg.stats = options.given("stats");
    cfg.logging = options.logging();
    cfg.verbosity = cfg.logging.verbosity();
    cfg.security = options.security();
    return cfg;
}

} // namespace zmqkit::cli
