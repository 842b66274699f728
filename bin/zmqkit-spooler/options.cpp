#include "zmqkit-spooler/options.hpp"

#include "common/tool_options.hpp"

#include <zmqkit/error.hpp>
#include <zmqkit/spool.hpp>

#include <charconv>
#include <cmath>
#include <ctime>
#include <sstream>

namespace po = boost::program_options;

namespace zmqkit::cli {
namespace {

constexpr const char* overview = R"(Usage: zmqkit-spooler COMMAND [options] DIR

The offline tool of a zmqkit spool directory: the durable proxy's on-disk message log
(segment files of checksummed records, a dead-letter spool in DIR/dead-letter).

Commands:
  inspect DIR        segments, messages per state, bytes, ages, recovery findings (read-only)
  verify DIR         checksums and continuity (read-only): exit 0 clean, 65 damaged
  repair DIR         recover as the proxy does at start-up: cut a torn tail, quarantine
                     damaged segments, record lost ranges (needs the spool not in use)
  dlq list DIR       the messages in the dead-letter spool
  dlq requeue DIR    append dead letters back to the spool as new messages (--id ID | --all)
  dlq purge DIR      discard every dead letter
  record DIR         receive zmqkit messages from an endpoint into the spool
  replay DIR         send spooled messages to an endpoint (the spool is not changed)

'zmqkit-spooler COMMAND --help' lists the options of a command. inspect, verify, repair and
dlq list take --json: one JSON document on stdout for scripts. Diagnostics go to stderr as
"zmqkit-spooler: <level>: <text>".

Options:
  -h [ --help ]   print this help and exit
  --version       print the version and exit

Exit codes: 0 ok, 1 failed (e.g. dlq requeue --id found nothing), 64 bad usage, 65 verify
found damage, 66 no spool at DIR or unreadable, 69 cannot bind/connect or no peer,
70 internal error, 75 the spool is in use by another process (stop it first), 78 --config is
a directory, unreadable or malformed.
)";

constexpr const char* inspect_head = R"(Usage: zmqkit-spooler inspect [options] DIR

Shows the spool's segments (file, size, sequence range, records), its messages per state
(ready: never delivered; delivered: delivered and not yet acked, redelivered after a restart;
acked; dead-lettered; dropped), payload bytes, the oldest and newest message with their ages,
log start and next sequence, the dead-letter spool, and what recovery would find. Opens the
spool read-only: nothing on disk changes, and it may run while the proxy holds the spool)";

constexpr const char* verify_head = R"(Usage: zmqkit-spooler verify [options] DIR

Reads the spool read-only as recovery does (checksums, sequence continuity, torn tail,
damaged records, lost ranges) and walks every segment file record by record, counting records
per type and naming the first bad offset of each file. The dead-letter spool is checked too.
Exit 0 when clean, 65 when damage was found (run 'zmqkit-spooler repair DIR'), 66 when DIR is
not a spool)";

constexpr const char* repair_head = R"(Usage: zmqkit-spooler repair [options] DIR

Opens the spool for writing, which recovers it as the durable proxy does at start-up: a torn
tail (an interrupted write after the last synced record) is cut, a segment with damaged records
is moved to DIR/quarantine and replaced by a copy of its valid records, lost sequence ranges are
recorded. Prints what was done. Refuses (exit 75) while another process holds the spool)";

constexpr const char* dlq_list_head = R"(Usage: zmqkit-spooler dlq list [options] DIR

Lists the waiting messages of the dead-letter spool DIR/dead-letter: sequence, message id,
correlation id, type, delivery attempts, the dead-letter reason (header
zmqkit-dead-letter-reason), when it was dead-lettered, body size. Read-only)";

constexpr const char* dlq_requeue_head = R"(Usage: zmqkit-spooler dlq requeue [options] DIR

Appends dead letters back to the main spool as new messages: a fresh message id, causation id
= the dead letter's id, its correlation id, type, headers (without the zmqkit-dead-letter-*
ones) and body kept, attempt 1. The new messages are committed first, then the dead letters
are settled (a crash in between can leave a message in both: at least once). Needs the spool
not in use)";

constexpr const char* dlq_purge_head = R"(Usage: zmqkit-spooler dlq purge [options] DIR

Discards every waiting message of the dead-letter spool and prints how many. Needs the spool
not in use)";

constexpr const char* record_head = R"(Usage: zmqkit-spooler record [SOCKET] [options] DIR

Receives zmqkit messages (docs/wire-protocol.md) from a ZeroMQ endpoint and appends them to
the spool (created if needed), committing in batches: when --batch messages are queued or
nothing more is waiting on the socket. A message id already in the spool is not stored twice.
Malformed messages are counted and skipped. Stops after -c N messages, after --idle-timeout
without a message, after --timeout, or on SIGINT/SIGTERM, always after committing.

Sockets: --pull (default; binds by default) or --sub (connects by default; --topic PREFIX,
repeatable, default everything; a topic other than the type is kept in the user header
zmqkit-topic for replay --pub). Endpoints use CZMQ's grammar: '@' binds, '>' connects)";

constexpr const char* replay_head = R"(Usage: zmqkit-spooler replay [SOCKET] [options] DIR

Sends the spooled messages, acked or not, in sequence order from a start point to a ZeroMQ
endpoint, with their original headers (ids included) and bodies. The spool is opened
read-only and is not changed; it may run while the proxy holds the spool.

Sockets: --push (default; connects by default) or --pub (binds by default; the topic frame is
the recorded topic, else the message type). Queued is not delivered: at the end the socket
lingers (--linger) so queued messages can leave; use --wait-peers N to wait for N peers (with
--pub: N subscriptions) before the first message)";

constexpr const char* common_tail = R"(
Every option can also come from the environment as ZMQKIT_SPOOLER_<OPTION>
(ZMQKIT_SPOOLER_TIMEOUT, ...; the plain ZMQKIT_<OPTION> too, except for options other tools
take with another meaning, such as --timeout or --count) or from an INI file given with
--config. Durations: milliseconds, or a number with ms, s, m or h.
Exit codes: 0 ok, 1 failed, 64 bad usage, 65 damage found (verify), 66 no spool at DIR,
69 cannot bind/connect, 70 internal error, 75 the spool is in use by another process, 78 bad
--config.
)";

std::chrono::milliseconds duration_option(const std::string& text, const char* what) {
    try {
        return parse_duration(text);
    } catch (const zmqkit::error& e) {
        throw usage_error{std::string(what) + ": " + e.what(), exit_usage};
    }
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

} // namespace

std::string_view to_string(spooler_command command) noexcept {
    switch (command) {
    case spooler_command::inspect:
        return "inspect";
    case spooler_command::verify:
        return "verify";
    case spooler_command::repair:
        return "repair";
    case spooler_command::dlq_list:
        return "dlq list";
    case spooler_command::dlq_requeue:
        return "dlq requeue";
    case spooler_command::dlq_purge:
        return "dlq purge";
    case spooler_command::record:
        return "record";
    case spooler_command::replay:
        return "replay";
    }
    return "inspect";
}

std::int64_t parse_time(std::string_view text, std::int64_t now_ns) {
    const std::string original(text);
    auto bad = [&]() -> usage_error {
        return usage_error{"--since '" + original +
                               "' is not a time: use RFC 3339 (2024-05-01T12:00:00Z, "
                               "2024-05-01T14:00:00.5+02:00), @UNIX_SECONDS (@1714564800) or a "
                               "duration before now (10m, 2h)",
                           exit_usage};
    };
    if (text.empty()) {
        throw bad();
    }
    if (text.front() == '@') {
        double seconds = 0;
        const auto* end = text.data() + text.size();
        auto [ptr, ec] = std::from_chars(text.data() + 1, end, seconds);
        if (ec != std::errc{} || ptr != end || !std::isfinite(seconds) || seconds < 0 ||
            seconds > 9.2e9) {
            throw bad();
        }
        return static_cast<std::int64_t>(std::llround(seconds * 1e9));
    }
    if (text.size() >= 10 && text[4] == '-' && text[7] == '-') {
        if (text[0] == '-') {
            throw bad();
        }
        // YYYY-MM-DD[(T| )HH:MM:SS[.frac]](Z|+hh:mm|-hh:mm)
        auto number = [&](std::size_t at, std::size_t n) -> int {
            if (at + n > text.size()) {
                throw bad();
            }
            int v = 0;
            auto [ptr, ec] = std::from_chars(text.data() + at, text.data() + at + n, v);
            if (ec != std::errc{} || ptr != text.data() + at + n) {
                throw bad();
            }
            return v;
        };
        const int year = number(0, 4);
        const int month = number(5, 2);
        const int day = number(8, 2);
        int hour = 0;
        int minute = 0;
        int second = 0;
        std::int64_t fraction_ns = 0;
        std::size_t pos = 10;
        if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
            if (pos + 9 > text.size() || text[pos + 3] != ':' || text[pos + 6] != ':') {
                throw bad();
            }
            hour = number(pos + 1, 2);
            minute = number(pos + 4, 2);
            second = number(pos + 7, 2);
            pos += 9;
            if (pos < text.size() && text[pos] == '.') {
                ++pos;
                std::int64_t scale = 100'000'000;
                const std::size_t start = pos;
                while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
                    fraction_ns += (text[pos] - '0') * scale;
                    scale /= 10;
                    ++pos;
                }
                if (pos == start) {
                    throw bad();
                }
            }
        }
        std::int64_t offset_s = 0;
        if (pos < text.size()) {
            if (text[pos] == 'Z' || text[pos] == 'z') {
                ++pos;
            } else if (text[pos] == '+' || text[pos] == '-') {
                if (pos + 6 != text.size() || text[pos + 3] != ':') {
                    throw bad();
                }
                const int sign = text[pos] == '+' ? 1 : -1;
                offset_s = sign * (number(pos + 1, 2) * 3600 + number(pos + 4, 2) * 60);
                pos += 6;
            }
        }
        if (pos != text.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
            minute > 59 || second > 60) {
            throw bad();
        }
        const std::int64_t days =
            days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
        const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
        if (seconds < 0 || seconds >= 9'200'000'000) { // ns since 1970 fit in 64 bits to 2261
            throw bad();
        }
        return seconds * 1'000'000'000 + fraction_ns;
    }
    try {
        const auto ago = parse_duration(text);
        return now_ns - static_cast<std::int64_t>(ago.count()) * 1'000'000;
    } catch (const zmqkit::error&) {
        throw bad();
    }
}

std::string format_time(std::int64_t unix_ns) {
    const std::int64_t seconds =
        unix_ns >= 0 ? unix_ns / 1'000'000'000 : -((-unix_ns + 999'999'999) / 1'000'000'000);
    const std::int64_t ms = (unix_ns - seconds * 1'000'000'000) / 1'000'000;
    const auto t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms));
    return buf;
}

namespace {

// The option values read as text, checked by the functions below.
struct spooler_text {
    std::string directory;
    std::string limit;
    std::string id;
    std::string count;
    std::string idle;
    std::string timeout;
    std::string segment_bytes;
    std::string batch;
    std::string from_sequence;
    std::string since;
    std::string rate;
    std::string wait_peers;
    std::string linger = "5s";
    std::vector<std::string> sockopts;
};

// The command (argv[1], argv[2] for dlq), its help head and the arguments it takes; the
// overview or the version when asked for instead. Throws usage_error.
std::optional<print_and_exit> choose_command(int argc, const char* const* argv, spooler_config& cfg,
                                             const char*& head, int& consumed) {
    if (argc < 2) {
        throw usage_error{"no command given (inspect, verify, repair, dlq list|requeue|purge, "
                          "record, replay; see --help)",
                          exit_usage};
    }
    const std::string first = argv[1];
    if (first == "--help" || first == "-h" || first == "help") {
        return print_and_exit{overview, exit_ok};
    }
    if (first == "--version") {
        return print_and_exit{"zmqkit-spooler " ZMQKIT_VERSION "\n", exit_ok};
    }
    consumed = 2; // argv[0] and the command
    if (first == "inspect") {
        cfg.command = spooler_command::inspect;
        head = inspect_head;
    } else if (first == "verify") {
        cfg.command = spooler_command::verify;
        head = verify_head;
    } else if (first == "repair") {
        cfg.command = spooler_command::repair;
        head = repair_head;
    } else if (first == "record") {
        cfg.command = spooler_command::record;
        head = record_head;
    } else if (first == "replay") {
        cfg.command = spooler_command::replay;
        head = replay_head;
    } else if (first == "dlq") {
        const std::string second = argc >= 3 ? argv[2] : "";
        if (second == "list") {
            cfg.command = spooler_command::dlq_list;
            head = dlq_list_head;
        } else if (second == "requeue") {
            cfg.command = spooler_command::dlq_requeue;
            head = dlq_requeue_head;
        } else if (second == "purge") {
            cfg.command = spooler_command::dlq_purge;
            head = dlq_purge_head;
        } else if (second == "--help" || second == "-h") {
            return print_and_exit{std::string(dlq_list_head) + "\n\n" + dlq_requeue_head + "\n\n" +
                                      dlq_purge_head + "\n" + common_tail,
                                  exit_ok};
        } else {
            throw usage_error{"dlq needs a subcommand: list, requeue or purge" +
                                  (second.empty() ? std::string() : " (got '" + second + "')") +
                                  " (see zmqkit-spooler dlq --help)",
                              exit_usage};
        }
        consumed = 3;
    } else {
        throw usage_error{"unknown command '" + first +
                              "' (commands: inspect, verify, repair, dlq list, dlq requeue, "
                              "dlq purge, record, replay; see --help)",
                          exit_usage};
    }
    return std::nullopt;
}

// The options of `cfg.command` (the command chooses which apply).
void describe_spooler_options(tool_options& options, spooler_config& cfg, spooler_text& t) {
    const auto command = cfg.command;
    const bool is_record = command == spooler_command::record;
    const bool is_replay = command == spooler_command::replay;
    // clang-format off
    if (command == spooler_command::inspect || command == spooler_command::verify ||
        command == spooler_command::repair || command == spooler_command::dlq_list) {
        options.add()("json", "print one JSON document (see docs/cli.md)");
    }
    if (command == spooler_command::dlq_list) {
        options.add()("limit", po::value(&t.limit), "list at most N dead letters");
    }
    if (command == spooler_command::dlq_requeue) {
        options.add()
            ("id", po::value(&t.id), "requeue the dead letter with this message id")
            ("all", "requeue every dead letter");
    }
    if (is_record) {
        options.add()
            ("pull", "PULL socket (default)")
            ("sub", "SUB socket")
            ("topic", po::value(&cfg.topics)->composing(), "--sub: topic prefix (repeatable; default all)")
            ("raw", "plain frames, not envelopes: each frame becomes the body of a new message")
            ("count,c", po::value(&t.count), "stop after N messages")
            ("idle-timeout", po::value(&t.idle), "stop when nothing arrived this long after a message")
            ("timeout", po::value(&t.timeout), "stop after this long in total")
            ("batch", po::value(&t.batch), "commit after at most N messages (default 1000)")
            ("sync", po::value(&cfg.sync)->default_value("always"), "always|none|interval:<ms> (docs/operations.md)")
            ("segment-bytes", po::value(&t.segment_bytes), "size of new segment files (default: as the existing ones, 64 MiB for a new spool)")
            ("hwm", po::value(&cfg.hwm)->default_value(0), "receive high-water mark (0: unlimited)");
    }
    if (is_replay) {
        options.add()
            ("push", "PUSH socket (default)")
            ("pub", "PUB socket")
            ("from-sequence", po::value(&t.from_sequence), "start at this sequence number (default: the log start)")
            ("since", po::value(&t.since), "start at the first message appended at or after TIME")
            ("rate", po::value(&t.rate), "at most N messages per second")
            ("count,c", po::value(&t.count), "send at most N messages")
            ("wait-peers", po::value(&t.wait_peers), "before the first message wait for N peers (at most --timeout or 10 s)")
            ("timeout", po::value(&t.timeout), "limit of --wait-peers")
            ("linger", po::value(&t.linger)->default_value("5s"), "at the end, how long queued messages may take to leave")
            ("hwm", po::value(&cfg.hwm)->default_value(0), "send high-water mark (0: unlimited)");
    }
    if (is_record || is_replay) {
        options.add()
            ("endpoint,e", po::value(&cfg.endpoints)->composing(), "endpoint (repeatable; @bind, >connect)")
            ("sockopt,X", po::value(&t.sockopts)->composing(), "ZeroMQ socket option name=value (repeatable)");
    }
    // clang-format on
    if (is_record) {
        options.add_metrics();
    }
    options.add_diagnostics("more diagnostics");
    options.add_hidden()("directory", po::value(&t.directory), "the spool directory");
    if (is_record || is_replay) {
        options.add_security();
    }
    options.positional("directory", 1);
}

// dlq requeue: exactly one of --id ID or --all.
void apply_dlq_requeue(const tool_options& options, spooler_config& cfg, const spooler_text& t) {
    cfg.all = options.given("all");
    if (!t.id.empty()) {
        cfg.id = message_id::parse(t.id);
        if (!cfg.id) {
            throw usage_error{"--id '" + t.id +
                                  "' is not a message id (a UUID such as "
                                  "0190163d-8694-739b-aea5-966c26f8ad91)",
                              exit_usage};
        }
    }
    if (cfg.all == cfg.id.has_value()) {
        throw usage_error{"dlq requeue needs exactly one of --id ID or --all", exit_usage};
    }
}

// record: --pull/--sub and --topic, --raw, --sync, --segment-bytes, --batch, --idle-timeout.
void apply_record(const tool_options& options, spooler_config& cfg, const spooler_text& t) {
    cfg.kind = choose_socket_kind(options.values(), {"pull", "sub"}, "pull");
    if (!cfg.topics.empty() && cfg.kind.type != zmq::socket_type::sub) {
        throw usage_error{"--topic needs --sub", exit_usage};
    }
    if (cfg.topics.empty()) {
        cfg.topics.emplace_back();
    }
    cfg.raw = options.given("raw");
    try {
        (void)sync_policy::parse(cfg.sync);
    } catch (const zmqkit::error& e) {
        throw usage_error{std::string("--sync: ") + e.what(), exit_usage};
    }
    if (!t.segment_bytes.empty()) {
        cfg.segment_bytes = parse_count(t.segment_bytes, "--segment-bytes");
        if (*cfg.segment_bytes < 4096) {
            throw usage_error{"--segment-bytes must be at least 4096", exit_usage};
        }
    }
    if (!t.batch.empty()) {
        cfg.batch = parse_count(t.batch, "--batch");
        if (cfg.batch == 0) {
            throw usage_error{"--batch must be at least 1", exit_usage};
        }
    }
    if (!t.idle.empty()) {
        cfg.idle_timeout = duration_option(t.idle, "--idle-timeout");
    }
}

// replay: --push/--pub, --from-sequence or --since, --rate, --wait-peers, --linger.
void apply_replay(const tool_options& options, spooler_config& cfg, const spooler_text& t) {
    cfg.kind = choose_socket_kind(options.values(), {"push", "pub"}, "push");
    if (!t.from_sequence.empty() && !t.since.empty()) {
        throw usage_error{"--from-sequence and --since exclude each other", exit_usage};
    }
    if (!t.from_sequence.empty()) {
        cfg.from_sequence = parse_count(t.from_sequence, "--from-sequence");
    }
    if (!t.since.empty()) {
        const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        cfg.since_ns = parse_time(t.since, now);
    }
    if (!t.rate.empty()) {
        double r = 0;
        auto [ptr, ec] = std::from_chars(t.rate.data(), t.rate.data() + t.rate.size(), r);
        if (ec != std::errc{} || ptr != t.rate.data() + t.rate.size() || !std::isfinite(r) ||
            r < 0.001 || r > 1e9) {
            throw usage_error{"--rate '" + t.rate +
                                  "' is not a number of messages per second from "
                                  "0.001 to 1e9",
                              exit_usage};
        }
        cfg.rate = r;
    }
    if (!t.wait_peers.empty()) {
        cfg.wait_peers = static_cast<std::size_t>(parse_count(t.wait_peers, "--wait-peers"));
    }
    cfg.linger = duration_option(t.linger, "--linger");
    check_linger(cfg.linger);
}

// record and replay: their own options, then the socket's (endpoints, -c, --timeout, --hwm,
// -X, security).
void apply_stream(const tool_options& options, spooler_config& cfg, const spooler_text& t) {
    if (cfg.command == spooler_command::record) {
        apply_record(options, cfg, t);
    } else {
        apply_replay(options, cfg, t);
    }
    if (cfg.endpoints.empty()) {
        throw usage_error{"no endpoint given (--endpoint EP, e.g. --endpoint " +
                              std::string(cfg.command == spooler_command::record
                                              ? "@tcp://*:5557"
                                              : ">tcp://host:5557") +
                              "; see --help)",
                          exit_usage};
    }
    check_endpoints(cfg.endpoints, cfg.kind.default_action);
    if (!t.count.empty()) {
        cfg.count = parse_count(t.count, "--count");
    }
    if (!t.timeout.empty()) {
        cfg.timeout = duration_option(t.timeout, "--timeout");
    }
    if (cfg.hwm < 0) {
        throw usage_error{"--hwm must be 0 (no limit) or more, got " + std::to_string(cfg.hwm),
                          exit_usage};
    }
    for (const auto& s : t.sockopts) {
        cfg.socket_options.push_back(parse_socket_option(s));
    }
    cfg.security = options.security();
}

} // namespace

std::variant<spooler_config, print_and_exit> parse_spooler_options(int argc,
                                                                   const char* const* argv) {
    spooler_config cfg;
    const char* head = nullptr;
    int consumed = 2;
    if (auto text = choose_command(argc, argv, cfg, head, consumed)) {
        return *text;
    }
    const bool streams =
        cfg.command == spooler_command::record || cfg.command == spooler_command::replay;
    spooler_text t;
    tool_options options("spooler", false); // --version only as the first argument
    describe_spooler_options(options, cfg, t);
    std::vector<const char*> args;
    args.push_back(argv[0]);
    for (int i = consumed; i < argc; ++i) {
        args.push_back(argv[i]);
    }
    options.parse(static_cast<int>(args.size()), args.data());
    if (options.wants_help()) {
        std::ostringstream text;
        text << head << "\n\nOptions:\n" << options.options();
        if (streams) {
            text << "\n-X names: " << known_socket_options() << "\n\n"
                 << options.security_options() << security_help();
        }
        text << common_tail;
        return print_and_exit{text.str(), exit_ok};
    }
    if (t.directory.empty()) {
        throw usage_error{"no spool directory given (zmqkit-spooler " +
                              std::string(to_string(cfg.command)) + " DIR; see --help)",
                          exit_usage};
    }
    cfg.directory = t.directory;
    cfg.json = options.given("json");
    cfg.logging = options.logging();
    cfg.verbosity = cfg.logging.verbosity();
    if (!t.limit.empty()) {
        cfg.limit = parse_count(t.limit, "--limit");
    }
    if (cfg.command == spooler_command::dlq_requeue) {
        apply_dlq_requeue(options, cfg, t);
    }
    if (streams) {
        apply_stream(options, cfg, t);
    }
    if (cfg.command == spooler_command::record) {
        cfg.metrics_listen = options.metrics_listen();
    }
    return cfg;
}

} // namespace zmqkit::cli
