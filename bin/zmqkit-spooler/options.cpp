#include "zmqkit-spooler/options.hpp"

#include "common/tool_options.hpp"

#include <zmqkit/error.hpp>
#include <zmqkit/spool.hpp>
#include <zmqkit/time_text.hpp>

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
  dlq list DIR       the messages in the dead-letter spool (also --control EP, the running proxy)
  dlq requeue DIR    append dead letters back to the queue they failed in (--id ID | --all)
  dlq purge DIR      discard every dead letter
  record DIR         receive zmqkit messages from an endpoint into the spool
  replay DIR         send spooled messages to an endpoint (the spool is not changed)
  group list DIR     the consumer groups: start, floor, pending, lag, lost (also --control EP)
  group reset DIR    move a group to a start position (--group NAME --to START)
  group delete DIR   delete a consumer group (--group NAME)

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

constexpr const char* dlq_list_head =
    R"(Usage: zmqkit-spooler dlq list [options] (DIR | --control ENDPOINT)

Lists the waiting messages of the dead-letter spool DIR/dead-letter: sequence, message id,
correlation id, type, delivery attempts, the dead-letter reason (header
zmqkit-dead-letter-reason), when it was dead-lettered, body size. Read-only. With --control the
running durable proxy answers (DLQ LIST), the consumer group each failed in included)";

constexpr const char* dlq_requeue_head =
    R"(Usage: zmqkit-spooler dlq requeue [options] (DIR | --control ENDPOINT)

Appends dead letters back to the main spool as new messages for the queue they failed in only
(their consumer group, or the default queue): a fresh message id, causation id = the dead
letter's id, its correlation id, type, headers (without the zmqkit-dead-letter-* ones) and body
kept, attempt 1. The new messages are committed first, then the dead letters are settled (a
crash in between can leave a message in both: at least once). A dead letter whose group was
deleted stays listed. Needs the spool not in use; with --control the running proxy does it
(DLQ REQUEUE))";

constexpr const char* dlq_purge_head =
    R"(Usage: zmqkit-spooler dlq purge [options] (DIR | --control ENDPOINT)

Discards every waiting message of the dead-letter spool and prints how many. Needs the spool
not in use; with --control the running proxy does it (DLQ PURGE))";

constexpr const char* group_list_head =
    R"(Usage: zmqkit-spooler group list [options] (DIR | --control ENDPOINT)

Lists the spool's consumer groups (docs/spool-format.md §10) and the default queue: start
position, floor (every message below it is settled for the group), cursor, pending (not
settled), lag (never delivered), dead-lettered and lost (removed by retention before the group
settled them). With DIR the spool is opened read-only (it may run while the proxy holds it);
with --control the running proxy answers (GROUPS), members and in-flight counts included)";

constexpr const char* group_reset_head =
    R"(Usage: zmqkit-spooler group reset --group NAME --to START (DIR | --control ENDPOINT)

Moves a consumer group to START: earliest, latest, a sequence number, or a time
(2026-12-01T00:00:00Z, @UNIX_SECONDS, or 10m/2h ago). Its acks and attempts are forgotten:
everything from START on is delivered to it again. With DIR the spool must not be in use
(exit 75); with --control the running proxy does it (GROUP RESET), refused while a member of
the group is connected)";

constexpr const char* group_delete_head =
    R"(Usage: zmqkit-spooler group delete --group NAME (DIR | --control ENDPOINT)

Deletes a consumer group: nothing more is kept for it (its messages go once every other group
and the default queue settled them). With DIR the spool must not be in use (exit 75); with
--control the running proxy does it (GROUP DELETE), refused while a member is connected)";

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
    case spooler_command::group_list:
        return "group list";
    case spooler_command::group_reset:
        return "group reset";
    case spooler_command::group_delete:
        return "group delete";
    }
    return "inspect";
}

std::int64_t parse_time(std::string_view text, std::int64_t now_ns) {
    try {
        return zmqkit::parse_time(text, now_ns);
    } catch (const config_error& e) {
        throw usage_error{std::string("--since: ") + e.what(), exit_usage};
    }
}

std::string format_time(std::int64_t unix_ns) {
    return zmqkit::format_time(unix_ns);
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
                          "record, replay, group list|reset|delete; see --help)",
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
    } else if (first == "group") {
        const std::string second = argc >= 3 ? argv[2] : "";
        if (second == "list") {
            cfg.command = spooler_command::group_list;
            head = group_list_head;
        } else if (second == "reset") {
            cfg.command = spooler_command::group_reset;
            head = group_reset_head;
        } else if (second == "delete") {
            cfg.command = spooler_command::group_delete;
            head = group_delete_head;
        } else if (second == "--help" || second == "-h") {
            return print_and_exit{std::string(group_list_head) + "\n\n" + group_reset_head +
                                      "\n\n" + group_delete_head + "\n" + common_tail,
                                  exit_ok};
        } else {
            throw usage_error{"group needs a subcommand: list, reset or delete" +
                                  (second.empty() ? std::string() : " (got '" + second + "')") +
                                  " (see zmqkit-spooler group --help)",
                              exit_usage};
        }
        consumed = 3;
    } else {
        throw usage_error{"unknown command '" + first +
                              "' (commands: inspect, verify, repair, dlq list, dlq requeue, "
                              "dlq purge, record, replay, group list, group reset, group "
                              "delete; see --help)",
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
    const bool is_group = command == spooler_command::group_list ||
                          command == spooler_command::group_reset ||
                          command == spooler_command::group_delete;
    if (command == spooler_command::group_list) {
        options.add()("json", "print one JSON document (see docs/cli.md)");
    }
    if (command == spooler_command::group_reset || command == spooler_command::group_delete) {
        options.add()("group,G", po::value(&cfg.group), "the consumer group");
    }
    if (command == spooler_command::group_reset) {
        options.add()("to", po::value(&cfg.start), "earliest | latest | a sequence number | a time (2026-12-01T00:00:00Z, @UNIX_SECONDS, 10m ago)");
    }
    const bool is_dlq = command == spooler_command::dlq_list ||
                        command == spooler_command::dlq_requeue ||
                        command == spooler_command::dlq_purge;
    if (is_group || is_dlq) {
        options.add()
            ("control", po::value(&cfg.control), "ask the running proxy on this control endpoint instead of opening DIR")
            ("timeout", po::value(&t.timeout), "--control: how long to wait for the answer (default 5s)");
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
    if (is_record || is_replay || is_group || is_dlq) {
        options.add_security();
    }
    options.positional("directory", 1);
}

// group and dlq commands: a spool directory or --control ENDPOINT (the running proxy), not both.
void apply_control(spooler_config& cfg, const spooler_text& t) {
    if (!cfg.control.empty() && !t.directory.empty()) {
        throw usage_error{"give either a spool directory or --control ENDPOINT, not both",
                          exit_usage};
    }
    if (cfg.control.empty() && !t.timeout.empty()) {
        throw usage_error{"--timeout applies to --control only", exit_usage};
    }
    if (!t.timeout.empty()) {
        cfg.control_timeout = duration_option(t.timeout, "--timeout");
    }
}

// group list / reset / delete: --group, --to.
void apply_group(spooler_config& cfg) {
    if (cfg.command == spooler_command::group_list) {
        return;
    }
    if (cfg.group.empty()) {
        throw usage_error{
            "group " +
                std::string(cfg.command == spooler_command::group_reset ? "reset" : "delete") +
                " needs --group NAME",
            exit_usage};
    }
    if (const std::string why = check_group_name(cfg.group); !why.empty()) {
        throw usage_error{"--group: " + why, exit_usage};
    }
    if (cfg.command == spooler_command::group_reset) {
        if (cfg.start.empty()) {
            throw usage_error{"group reset needs --to START (earliest, latest, a sequence "
                              "number or a time)",
                              exit_usage};
        }
        try {
            cfg.start = group_start::parse(cfg.start).to_string();
        } catch (const config_error& e) {
            throw usage_error{std::string("--to: ") + e.what(), exit_usage};
        }
    }
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
    const bool group_command = cfg.command == spooler_command::group_list ||
                               cfg.command == spooler_command::group_reset ||
                               cfg.command == spooler_command::group_delete;
    const bool dlq_command = cfg.command == spooler_command::dlq_list ||
                             cfg.command == spooler_command::dlq_requeue ||
                             cfg.command == spooler_command::dlq_purge;
    if (group_command || dlq_command) {
        apply_control(cfg, t);
        cfg.security = options.security();
    }
    if (group_command) {
        apply_group(cfg);
    }
    if (t.directory.empty() && cfg.control.empty()) {
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
