// The durable proxy as a real process, with zmqkit-send --wait-confirm producers and a
// zmqkit-recv --ack consumer as real processes: SIGKILL torture (every confirmed message is
// delivered, duplicates carry the same id, order per producer holds except for resent
// messages), a consumer outage with the proxy's memory flat while the backlog is on disk,
// ipc endpoints, exit codes, a locked spool, a bit flipped in a confirmed record.
#include <zmqkit/patterns/durable.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"

#include <zmqkit/spool.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>

using namespace zmqkit;
using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

std::vector<std::string> proxy_argv(const std::filesystem::path& spool, const std::string& frontend,
                                    const std::string& backend,
                                    std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{bin_path("zmqkit-proxy"),
                                  "--mode",
                                  "durable",
                                  "--spool",
                                  spool.string(),
                                  "--frontend",
                                  frontend,
                                  "--backend",
                                  backend,
                                  "--segment-size",
                                  "4MiB"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

// Starts the proxy and waits until it runs; returns the bound frontend/backend.
struct proxy_run {
    child_process process;
    std::string frontend, backend;
    proxy_run(const std::filesystem::path& spool, const std::string& fe, const std::string& be,
              std::vector<std::string> extra = {})
        : process(proxy_argv(spool, fe, be, std::move(extra))) {
        frontend = process.wait_for_stderr(std::regex("frontend bound (\\S+)"), 30s).value_or("");
        backend = process.wait_for_stderr(std::regex("backend bound (\\S+)"), 30s).value_or("");
    }
};

// "<prefix>0\n<prefix>1\n..." up to n - 1.
std::string numbered_lines(const std::string& prefix, int n) {
    std::string text;
    for (int i = 0; i < n; ++i) {
        text += prefix + std::to_string(i) + "\n";
    }
    return text;
}

std::string write_lines(const std::filesystem::path& file, const std::string& prefix, int n) {
    std::ofstream(file) << numbered_lines(prefix, n);
    return file.string();
}

// What a consumer process printed, read until it exits (at most `timeout`), and its exit
// status (nullopt: it did not exit in time).
struct consumer_result {
    std::string out;
    std::optional<int> rc;
};
consumer_result read_until_exit(child_process& consumer, std::chrono::seconds timeout) {
    consumer_result r;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!r.rc && std::chrono::steady_clock::now() < deadline) {
        r.out = consumer.read_stdout(50ms);
        r.rc = consumer.wait(0ms);
    }
    r.out = consumer.read_stdout(100ms);
    return r;
}

long rss_kib(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stol(line.substr(6));
        }
    }
    return -1;
}

// Lines "<id> <body>" of a zmqkit-recv -f '%i %s\n' output.
std::vector<std::pair<std::string, std::string>> parse_output(const std::string& text) {
    std::vector<std::pair<std::string, std::string>> rows;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const auto sp = line.find(' ');
        if (sp != std::string::npos) {
            rows.emplace_back(line.substr(0, sp), line.substr(sp + 1));
        }
    }
    return rows;
}

// The "resent=N" of zmqkit-send --stats (its last stderr lines).
std::uint64_t resent_from(child_process& p) {
    const auto n = p.wait_for_stderr(std::regex("resent=(\\d+)"), 5s);
    EXPECT_TRUE(n.has_value()) << ::testing::PrintToString(p.stderr_lines());
    return n ? std::stoull(*n) : 0;
}

} // namespace

TEST(durable_process, sigkill_torture_loses_nothing_confirmed) {
    temp_directory dir("durable-torture");
    const auto spool = dir.path() / "spool";
    const int kills = std::getenv("ZMQKIT_TORTURE_KILLS") != nullptr
                          ? std::atoi(std::getenv("ZMQKIT_TORTURE_KILLS"))
                          : 20;
    constexpr int per_producer = 20000;
    const std::vector<std::string> producers{"a", "b"};

    auto first = std::make_unique<proxy_run>(spool, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    ASSERT_FALSE(first->frontend.empty());
    ASSERT_FALSE(first->backend.empty());
    const std::string fe = first->frontend;
    const std::string be = first->backend;

    std::vector<std::unique_ptr<child_process>> senders;
    for (const auto& p : producers) {
        const auto file = write_lines(dir.path() / (p + ".txt"), p + "-", per_producer);
        std::vector<std::string> argv{bin_path("zmqkit-send"),
                                      "--wait-confirm",
                                      "--file",
                                      file,
                                      "--rate",
                                      "2000",
                                      "--retry-interval",
                                      "300ms",
                                      "--confirm-timeout",
                                      "60s",
                                      "--stats",
                                      fe};
        if (p == "b") {
            // The second producer sends batches (up to 16 messages, lingering up to 20 ms):
            // a kill then loses whole unconfirmed batches, which are resent.
            argv.insert(argv.end() - 1, {"--batch", "16", "--batch-linger", "20ms"});
        }
        senders.push_back(std::make_unique<child_process>(argv));
    }
    child_process consumer({bin_path("zmqkit-recv"), "--ack", "-f", "%i %s\\n", "-c",
                            std::to_string(per_producer * producers.size()), "--timeout", "120s",
                            be});

    std::mt19937 rng(20261127);
    std::size_t seen = 0;
    std::unique_ptr<proxy_run> proxy = std::move(first);
    for (int k = 0; k < kills; ++k) {
        // Let some messages flow (a random amount), then kill -9 at that moment.
        const std::size_t want = seen + 100 + rng() % 1500;
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (std::chrono::steady_clock::now() < deadline) {
            const std::string so_far = consumer.read_stdout(20ms);
            seen = static_cast<std::size_t>(std::count(so_far.begin(), so_far.end(), '\n'));
            if (seen >= want) {
                break;
            }
        }
        ASSERT_GE(seen, want) << "no progress before kill " << k;
        proxy->process.signal(SIGKILL);
        ASSERT_TRUE(proxy->process.wait(10s).has_value());
        proxy = std::make_unique<proxy_run>(spool, fe, be);
        ASSERT_EQ(proxy->frontend, fe) << "restart " << k << " could not rebind";
    }
    // Every producer ends with every message confirmed; the consumer gets every one.
    for (auto& s : senders) {
        const auto rc = s->wait(120s);
        ASSERT_TRUE(rc.has_value()) << "a producer did not finish";
        EXPECT_EQ(*rc, 0) << ::testing::PrintToString(s->stderr_lines());
    }
    const auto [out, rc] = read_until_exit(consumer, 120s);
    ASSERT_TRUE(rc.has_value()) << "consumer did not finish";
    EXPECT_EQ(*rc, 0) << ::testing::PrintToString(consumer.stderr_lines());

    const auto rows = parse_output(out);
    std::map<std::string, std::string> body_of; // id -> body: a repeated id has the same body
    std::map<std::string, std::vector<int>> order;
    for (const auto& [id, body] : rows) {
        auto [it, fresh] = body_of.emplace(id, body);
        EXPECT_EQ(it->second, body) << "id " << id << " carried two bodies";
        if (!fresh) {
            continue;
        }
        const auto dash = body.find('-');
        ASSERT_NE(dash, std::string::npos) << body;
        order[body.substr(0, dash)].push_back(std::stoi(body.substr(dash + 1)));
    }
    std::uint64_t resent = 0;
    for (auto& s : senders) {
        resent += resent_from(*s);
    }
    std::size_t inversions = 0;
    for (const auto& p : producers) {
        auto got = order[p];
        std::set<int> distinct(got.begin(), got.end());
        EXPECT_EQ(distinct.size(), static_cast<std::size_t>(per_producer)) << "producer " << p;
        int high = -1;
        for (const int v : got) {
            if (v < high) {
                ++inversions; // only a resent message may arrive after its successors
            }
            high = std::max(high, v);
        }
    }
    EXPECT_LE(inversions, resent) << "order broken beyond resent messages";
    std::cout << "[          ] " << kills << " kills, " << rows.size() << " lines, "
              << body_of.size() << " distinct, " << resent << " resent, " << inversions
              << " out of order\n";
}

TEST(durable_process, consumer_outage_backlog_stays_on_disk_and_drains) {
    temp_directory dir("durable-outage");
    proxy_run proxy(dir.path() / "spool", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    ASSERT_FALSE(proxy.frontend.empty());
    zmq::context_t ctx;
    metrics_registry registry;
    patterns::reliable_sender_options so;
    so.endpoint = proxy.frontend;
    so.socket.registry = &registry;
    patterns::reliable_sender sender(ctx, so);
    const long rss_start = rss_kib(proxy.process.pid());
    // ~200 MB of backlog, no consumer connected.
    constexpr int count = 100000;
    const std::string body(2048, 'x');
    std::set<message_id> ids;
    for (int i = 0; i < count; ++i) {
        message m(body);
        ASSERT_TRUE(sender.send(m, 30s)) << "at " << i;
        ids.insert(m.id());
    }
    ASSERT_TRUE(sender.flush(60s));
    const long rss_backlog = rss_kib(proxy.process.pid());
    std::cout << "[          ] proxy RSS " << rss_start / 1024 << " MiB at start, "
              << rss_backlog / 1024 << " MiB with " << count * 2 / 1024 << " MiB backlog\n";
    if (rss_is_meaningful) {
        EXPECT_LT(rss_backlog, rss_start + 100 * 1024) << "memory grew with the backlog";
    }
    patterns::reliable_receiver_options ro;
    ro.endpoint = proxy.backend;
    ro.socket.registry = &registry;
    patterns::reliable_receiver receiver(ctx, ro);
    std::set<message_id> got;
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (got.size() < ids.size() && std::chrono::steady_clock::now() < deadline) {
        auto d = receiver.recv(500ms);
        if (d) {
            got.insert(d->message.id());
            receiver.ack(*d);
        }
    }
    receiver.flush_acks();
    EXPECT_EQ(got, ids);
    const long rss_drained = rss_kib(proxy.process.pid());
    if (rss_is_meaningful) {
        EXPECT_LT(rss_drained, rss_start + 100 * 1024);
    }
}

TEST(durable_process, ipc_endpoints_deliver_everything_confirmed) {
    temp_directory dir("durable-ipc");
    const std::string fe = "ipc://" + (dir.path() / "in.sock").string();
    const std::string be = "ipc://" + (dir.path() / "out.sock").string();
    proxy_run proxy(dir.path() / "spool", fe, be);
    ASSERT_EQ(proxy.frontend, fe);
    const auto file = write_lines(dir.path() / "lines.txt", "line-", 50000);
    child_process sender({bin_path("zmqkit-send"), "--wait-confirm", "--file", file, fe});
    child_process consumer(
        {bin_path("zmqkit-recv"), "--ack", "-c", "50000", "--timeout", "60s", be});
    const auto src = sender.wait(60s);
    ASSERT_TRUE(src.has_value());
    EXPECT_EQ(*src, 0) << ::testing::PrintToString(sender.stderr_lines());
    const auto [out, rc] = read_until_exit(consumer, 60s);
    ASSERT_TRUE(rc.has_value());
    EXPECT_EQ(*rc, 0);
    EXPECT_EQ(out, numbered_lines("line-", 50000));
}

TEST(durable_process, wait_confirm_batches_deliver_everything_in_order) {
    temp_directory dir("durable-batch");
    proxy_run proxy(dir.path() / "spool", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    ASSERT_FALSE(proxy.frontend.empty());
    constexpr int count = 30000;
    const auto file = write_lines(dir.path() / "lines.txt", "batched-", count);
    child_process sender({bin_path("zmqkit-send"), "--wait-confirm", "--batch", "64", "--file",
                          file, "--stats", proxy.frontend});
    child_process consumer({bin_path("zmqkit-recv"), "--ack", "-c", std::to_string(count),
                            "--timeout", "60s", proxy.backend});
    const auto src = sender.wait(60s);
    ASSERT_TRUE(src.has_value());
    EXPECT_EQ(*src, 0) << ::testing::PrintToString(sender.stderr_lines());
    const auto batches = sender.wait_for_stderr(std::regex("batches=(\\d+)"), 5s);
    ASSERT_TRUE(batches.has_value()) << ::testing::PrintToString(sender.stderr_lines());
    EXPECT_GE(std::stoull(*batches), static_cast<unsigned long long>(count / 64));
    const auto [out, rc] = read_until_exit(consumer, 60s);
    ASSERT_TRUE(rc.has_value());
    EXPECT_EQ(*rc, 0);
    EXPECT_EQ(out, numbered_lines("batched-", count));
}

TEST(durable_process, wait_confirm_batches_from_a_pipe_leave_when_no_more_input_is_ready) {
    temp_directory dir("durable-batch-pipe");
    proxy_run proxy(dir.path() / "spool", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    ASSERT_FALSE(proxy.frontend.empty());
    // stdin stays open: the partial batch of 3 must leave without waiting for more input.
    child_process sender(
        {bin_path("zmqkit-send"), "--wait-confirm", "--batch", "100", proxy.frontend}, true);
    child_process consumer(
        {bin_path("zmqkit-recv"), "--ack", "-c", "3", "--timeout", "30s", proxy.backend});
    sender.write_stdin("one\ntwo\nthree\n");
    const auto [out, rc] = read_until_exit(consumer, 30s);
    ASSERT_TRUE(rc.has_value()) << "the partial batch did not arrive";
    EXPECT_EQ(out, "one\ntwo\nthree\n");
    sender.close_stdin();
    const auto src = sender.wait(30s);
    ASSERT_TRUE(src.has_value());
    EXPECT_EQ(*src, 0) << ::testing::PrintToString(sender.stderr_lines());
}

TEST(durable_process, wait_confirm_without_a_proxy_exits_76_naming_the_message) {
    temp_directory dir("durable-noproxy");
    const std::string fe = "ipc://" + (dir.path() / "nobody.sock").string();
    child_process sender({bin_path("zmqkit-send"), "--wait-confirm", "--confirm-timeout", "300ms",
                          "--data", "hello", fe});
    const auto rc = sender.wait(20s);
    ASSERT_TRUE(rc.has_value());
    EXPECT_EQ(*rc, 76);
    const auto line = sender.wait_for_stderr(std::regex("not confirmed.*: ([0-9a-f-]{36})"), 1s);
    EXPECT_TRUE(line.has_value()) << ::testing::PrintToString(sender.stderr_lines());
}

TEST(durable_process, bad_flags_are_usage_errors) {
    temp_directory dir("durable-flags");
    const std::vector<std::vector<std::string>> cases{
        {bin_path("zmqkit-send"), "--wait-confirm", "--pub", "tcp://127.0.0.1:1"},
        {bin_path("zmqkit-send"), "--wait-confirm", "--raw", "tcp://127.0.0.1:1"},
        {bin_path("zmqkit-send"), "--window", "5", "tcp://127.0.0.1:1"},
        {bin_path("zmqkit-send"), "--batch", "5", "tcp://127.0.0.1:1"},
        {bin_path("zmqkit-send"), "--wait-confirm", "--batch", "0", "tcp://127.0.0.1:1"},
        {bin_path("zmqkit-send"), "--wait-confirm", "--batch-linger", "soon", "tcp://127.0.0.1:1"},
        {bin_path("zmqkit-recv"), "--ack", "--sub", "tcp://127.0.0.1:1"},
        {bin_path("zmqkit-recv"), "--credit", "5", "tcp://127.0.0.1:1"},
        {bin_path("zmqkit-proxy"), "--mode", "durable", "--frontend", "tcp://127.0.0.1:*",
         "--backend", "tcp://127.0.0.1:*"},
        proxy_argv(dir.path(), "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", {"--sync", "sometimes"}),
        proxy_argv(dir.path(), "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                   {"--full-policy", "explode"}),
        proxy_argv(dir.path(), "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", {"--max-bytes", "12Q"}),
        {bin_path("zmqkit-proxy"), "--frontend", "tcp://127.0.0.1:*", "--backend",
         "tcp://127.0.0.1:*", "--spool", dir.path().string()},
    };
    for (const auto& argv : cases) {
        child_process p(argv);
        const auto rc = p.wait(10s);
        ASSERT_TRUE(rc.has_value());
        EXPECT_EQ(*rc, 64) << ::testing::PrintToString(argv);
        (void)p.next_stderr_line(1s);
        EXPECT_FALSE(p.stderr_lines().empty())
            << "no message for " << ::testing::PrintToString(argv);
    }
}

TEST(durable_process, a_second_proxy_on_the_same_spool_refuses_to_start) {
    temp_directory dir("durable-lock");
    proxy_run one(dir.path() / "spool", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    ASSERT_FALSE(one.frontend.empty());
    child_process two(proxy_argv(dir.path() / "spool", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"));
    const auto rc = two.wait(20s);
    ASSERT_TRUE(rc.has_value());
    EXPECT_EQ(*rc, 69);
    (void)two.next_stderr_line(1s);
    EXPECT_THAT(::testing::PrintToString(two.stderr_lines()), HasSubstr("spool"));
}

// Issue 14 item 2: a message the proxy rejects is never reported as success. With the spool
// full under --full-policy reject, --wait-confirm exits 76, --stats counts each outcome, and
// --confirm-log names every input record's outcome: exactly the records it calls confirmed
// reach a consumer, with their ids.
TEST(durable_process, rejected_messages_exit_76_and_the_confirm_log_names_every_record) {
    temp_directory dir("durable-reject");
    proxy_run proxy(dir.path() / "spool", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                    {"--max-messages", "100", "--full-policy", "reject"});
    ASSERT_FALSE(proxy.frontend.empty());
    const auto input = write_lines(dir.path() / "in.txt", "m-", 200); // record r is "m-<r-1>"
    const auto log_path = (dir.path() / "confirms.log").string();
    child_process sender({bin_path("zmqkit-send"), "--wait-confirm", "--stats", "--file", input,
                          "--confirm-log", log_path, proxy.frontend});
    EXPECT_EQ(sender.wait(60s), std::optional<int>(76))
        << ::testing::PrintToString(sender.stderr_lines());
    const auto confirms = sender.wait_for_stderr(std::regex("(confirms: .*)"), 5s);
    ASSERT_TRUE(confirms.has_value()) << ::testing::PrintToString(sender.stderr_lines());
    EXPECT_THAT(*confirms, HasSubstr("confirmed=100 resent=0 rejected=100 unconfirmed=0"));

    // "<record> <id> <outcome>", one line per input record.
    std::ifstream log_file(log_path);
    std::map<std::uint64_t, std::pair<std::string, std::string>> records;
    std::set<std::string> confirmed_ids;
    for (std::string line; std::getline(log_file, line);) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(
            line, m, std::regex("([0-9]+) ([0-9a-f-]{36}) (confirmed|rejected:spool full.*)")))
            << line;
        const auto record = std::stoull(m[1]);
        EXPECT_TRUE(records.emplace(record, std::make_pair(m[2], m[3])).second)
            << "record " << record << " twice";
        if (m[3] == "confirmed") {
            confirmed_ids.insert(m[2]);
        }
    }
    ASSERT_EQ(records.size(), 200U);
    EXPECT_EQ(records.begin()->first, 1U);
    EXPECT_EQ(records.rbegin()->first, 200U);
    EXPECT_EQ(confirmed_ids.size(), 100U);

    // What the log calls confirmed is what the spool holds: ids and bodies.
    child_process consumer({bin_path("zmqkit-recv"), "--ack", "-c", "100", "--timeout", "30s", "-f",
                            "%i %s\n", proxy.backend});
    const auto [out, rc] = read_until_exit(consumer, 40s);
    EXPECT_EQ(rc, std::optional<int>(0));
    const auto rows = parse_output(out);
    ASSERT_EQ(rows.size(), 100U);
    for (const auto& [record, entry] : records) {
        if (entry.second != "confirmed") {
            continue;
        }
        const auto& id = entry.first; // a name of its own: clang 14 cannot capture a binding
        const auto it = std::find_if(rows.begin(), rows.end(),
                                     [&](const auto& row) { return row.first == id; });
        ASSERT_NE(it, rows.end()) << "confirmed record " << record << " was not delivered";
        EXPECT_EQ(it->second, "m-" + std::to_string(record - 1));
    }
}

TEST(durable_process, confirm_log_is_refused_without_wait_confirm_and_unwritable_is_exit_73) {
    temp_directory dir("durable-confirm-log");
    const std::string nobody = "ipc://" + (dir.path() / "nobody.sock").string();
    child_process plain({bin_path("zmqkit-send"), "--confirm-log", (dir.path() / "l").string(),
                         "--data", "x", nobody});
    EXPECT_EQ(plain.wait(10s), std::optional<int>(64));
    child_process unwritable({bin_path("zmqkit-send"), "--wait-confirm", "--confirm-log",
                              (dir.path() / "no" / "such" / "dir").string(), "--data", "x",
                              nobody});
    EXPECT_EQ(unwritable.wait(10s), std::optional<int>(73));
    EXPECT_TRUE(unwritable.wait_for_stderr(std::regex("cannot create --confirm-log"), 5s));
}

// Issue 14 item 1: 100 messages confirmed in one batch, the proxy stopped cleanly, one bit
// flipped in the body of the 3rd message record. That record is damage, not a torn write:
// --strict refuses to start (exit 65) saying what was lost, zmqkit-spooler verify reports the
// same loss, and the proxy delivers the other 99 by id and reports 1 lost (log and STATUS).
TEST(durable_process, a_flipped_bit_in_a_confirmed_record_loses_only_that_message) {
    namespace sf = spool_format;
    temp_directory dir("durable-flip");
    const auto spool_dir = dir.path() / "spool";
    constexpr int count = 100;
    {
        proxy_run proxy(spool_dir, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
        ASSERT_FALSE(proxy.frontend.empty());
        const auto file = write_lines(dir.path() / "lines.txt", "msg-", count);
        child_process sender({bin_path("zmqkit-send"), "--wait-confirm", "--batch", "100", "--file",
                              file, proxy.frontend});
        const auto rc = sender.wait(30s);
        ASSERT_TRUE(rc.has_value());
        ASSERT_EQ(*rc, 0) << ::testing::PrintToString(sender.stderr_lines());
        proxy.process.signal(SIGTERM);
        const auto prc = proxy.process.wait(30s);
        ASSERT_TRUE(prc.has_value());
        ASSERT_EQ(*prc, 0);
    }
    // The only segment's message records: (offset, size, sequence, id).
    std::filesystem::path segment;
    for (const auto& e : std::filesystem::directory_iterator(spool_dir)) {
        if (sf::parse_segment_file_name(e.path().filename().string())) {
            ASSERT_TRUE(segment.empty()) << "more than one segment";
            segment = e.path();
        }
    }
    std::string bytes;
    {
        std::ifstream in(segment, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    struct record {
        std::size_t offset, size;
        std::uint64_t sequence;
        std::string id;
    };
    std::vector<record> messages;
    for (std::size_t off = 0;;) {
        sf::record_view r;
        std::size_t n = 0;
        if (sf::parse_record(reinterpret_cast<const std::byte*>(bytes.data()) + off,
                             bytes.size() - off, r, &n) != sf::scan_result::ok) {
            break;
        }
        if (r.type == sf::record_type::message) {
            std::array<std::uint8_t, message_id::size> id{};
            std::memcpy(id.data(), r.payload.data() + 8, id.size());
            messages.push_back({off, n, r.sequence, message_id(id).to_string()});
        }
        off += n;
    }
    ASSERT_EQ(messages.size(), static_cast<std::size_t>(count));
    const record victim = messages[2];
    bytes[victim.offset + victim.size - 1] ^= 0x01; // the last byte of its body
    std::ofstream(segment, std::ios::binary | std::ios::in | std::ios::out)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    const std::string lost_seq = std::to_string(victim.sequence);

    // zmqkit-spooler verify (read-only) finds exactly that record lost.
    {
        child_process verify({bin_path("zmqkit-spooler"), "verify", "--json", spool_dir.string()});
        const auto [out, rc] = read_until_exit(verify, 30s);
        ASSERT_TRUE(rc.has_value());
        EXPECT_EQ(*rc, 65);
        const auto j = nlohmann::json::parse(out, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << out;
        ASSERT_EQ(j["recovery"]["lost"].size(), 1u) << out;
        EXPECT_EQ(j["recovery"]["lost"][0]["first"], victim.sequence);
        EXPECT_EQ(j["recovery"]["lost"][0]["end"], victim.sequence + 1);
        EXPECT_EQ(j["recovery"]["truncated_bytes"], 0);
    }
    // --strict refuses to start: exit 65, and the log says what is damaged.
    {
        child_process strict(
            proxy_argv(spool_dir, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", {"--strict"}));
        const auto why = strict.wait_for_stderr(
            std::regex("strict mode refuses to start.*sequence numbers (\\d+)\\.\\.\\d+ damaged"),
            30s);
        EXPECT_EQ(why.value_or("none"), lost_seq)
            << ::testing::PrintToString(strict.stderr_lines());
        const auto rc = strict.wait(30s);
        ASSERT_TRUE(rc.has_value());
        EXPECT_EQ(*rc, 65);
    }
    // The proxy starts, reports the loss, and delivers every other message.
    proxy_run proxy(spool_dir, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                    {"--control", "tcp://127.0.0.1:*"});
    ASSERT_FALSE(proxy.backend.empty());
    const auto control = proxy.process.wait_for_stderr(std::regex("control bound (\\S+)"), 10s);
    ASSERT_TRUE(control.has_value());
    EXPECT_THAT(::testing::PrintToString(proxy.process.stderr_lines()),
                HasSubstr("lost sequence numbers " + lost_seq + ".." + lost_seq));
    zmq::context_t ctx;
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(*control);
    const auto status = request(req, "STATUS");
    ASSERT_FALSE(status.empty());
    const auto j = nlohmann::json::parse(status.front(), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << status.front();
    EXPECT_EQ(j["recovery"]["lost_sequences"], 1);
    EXPECT_EQ(j["recovery"]["truncated_bytes"], 0);

    child_process consumer({bin_path("zmqkit-recv"), "--ack", "-f", "%i %s\\n", "-c",
                            std::to_string(count - 1), "--timeout", "30s", proxy.backend});
    const auto [out, rc] = read_until_exit(consumer, 60s);
    ASSERT_TRUE(rc.has_value());
    EXPECT_EQ(*rc, 0) << ::testing::PrintToString(consumer.stderr_lines());
    std::set<std::string> expected;
    for (const auto& m : messages) {
        if (m.sequence != victim.sequence) {
            expected.insert(m.id);
        }
    }
    std::set<std::string> got;
    for (const auto& [id, body] : parse_output(out)) {
        EXPECT_TRUE(got.insert(id).second) << "delivered twice: " << id;
        EXPECT_NE(body, "msg-2");
    }
    EXPECT_EQ(got, expected);
}

// Issue 17 item 4 (kcat -e): zmqkit-recv --ack --exit-at-end drains what the proxy holds and
// exits 0 by itself, every message written once, in order; with nothing left it exits at once;
// with -c beyond what is there it exits 75; a message nacked back by another consumer (held
// for a redelivery backoff) is not the end.
TEST(durable_process, exit_at_end_drains_the_backlog_and_exits) {
    temp_directory dir("durable-end");
    proxy_run proxy(dir.path() / "spool", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                    {"--redelivery-backoff", "1s"});
    ASSERT_FALSE(proxy.frontend.empty());
    constexpr int count = 2000;
    const auto file = write_lines(dir.path() / "lines.txt", "end-", count);
    child_process sender(
        {bin_path("zmqkit-send"), "--wait-confirm", "--file", file, proxy.frontend});
    ASSERT_EQ(sender.wait(60s), 0) << sender.stderr_text();

    child_process drain(
        {bin_path("zmqkit-recv"), "--ack", "--exit-at-end", "--timeout", "60s", proxy.backend});
    const auto [out, rc] = read_until_exit(drain, 60s);
    EXPECT_EQ(rc, 0) << drain.stderr_text();
    EXPECT_EQ(out, numbered_lines("end-", count));
    EXPECT_THAT(drain.stderr_text(), HasSubstr("(2000 message(s) written)"));

    child_process empty(
        {bin_path("zmqkit-recv"), "--ack", "--exit-at-end", "--timeout", "60s", proxy.backend});
    EXPECT_EQ(empty.wait(30s), 0) << empty.stderr_text();
    EXPECT_EQ(empty.stdout_text(), "");

    child_process more({bin_path("zmqkit-recv"), "--ack", "--exit-at-end", "-c", "5", "--timeout",
                        "60s", proxy.backend});
    EXPECT_EQ(more.wait(30s), 75) << more.stderr_text();
    EXPECT_THAT(more.stderr_text(), HasSubstr("at the end with 0 message(s) of 5"));

    // One message, taken by a consumer that gives it back (NACK requeue): it waits a 1 s
    // backoff, ready but not deliverable yet; the end is only after it was delivered again.
    child_process one(
        {bin_path("zmqkit-send"), "--wait-confirm", "--data", "late", proxy.frontend});
    ASSERT_EQ(one.wait(30s), 0) << one.stderr_text();
    zmq::context_t ctx;
    {
        patterns::reliable_receiver_options ro;
        ro.endpoint = proxy.backend;
        ro.credit = 1;
        patterns::reliable_receiver quitter(ctx, ro);
        const auto d = quitter.recv(20s);
        ASSERT_TRUE(d.has_value());
        quitter.nack(*d, true, "not now");
        quitter.flush_acks();
    } // BYE: it leaves, the message waits for its backoff
    child_process last(
        {bin_path("zmqkit-recv"), "--ack", "--exit-at-end", "--timeout", "60s", proxy.backend});
    const auto [late_out, late_rc] = read_until_exit(last, 60s);
    EXPECT_EQ(late_rc, 0) << last.stderr_text();
    EXPECT_EQ(late_out, "late\n");
}

// Consumer groups from the shell: two groups each read the whole backlog (--group), a new
// group from a time (--from), a kill -9 of the proxy in the middle of a group's consumption
// loses nothing it had not acked, and zmqkit-spooler group list/reset/delete offline and
// through --control.
TEST(durable_process, consumer_groups_from_the_command_line_survive_a_kill_9) {
    temp_directory dir("durable-groups");
    const auto spool = dir.path() / "spool";
    const std::string control = "ipc://" + (dir.path() / "ctl").string();
    auto proxy = std::make_unique<proxy_run>(spool, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                                             std::vector<std::string>{"--control", control});
    ASSERT_FALSE(proxy->frontend.empty());
    constexpr int count = 3000;
    const auto file = write_lines(dir.path() / "lines.txt", "g-", count);
    child_process sender(
        {bin_path("zmqkit-send"), "--wait-confirm", "--file", file, proxy->frontend});
    ASSERT_EQ(sender.wait(60s), 0) << sender.stderr_text();

    // billing reads everything; audit reads 1000, then the proxy is killed under it.
    child_process billing({bin_path("zmqkit-recv"), "--ack", "--group", "billing", "--exit-at-end",
                           "--timeout", "60s", proxy->backend});
    const auto [billing_out, billing_rc] = read_until_exit(billing, 60s);
    EXPECT_EQ(billing_rc, 0) << billing.stderr_text();
    EXPECT_EQ(billing_out, numbered_lines("g-", count));

    child_process audit({bin_path("zmqkit-recv"), "--ack", "-G", "audit", "-c", "1000", "--timeout",
                         "60s", proxy->backend});
    const auto [audit_out, audit_rc] = read_until_exit(audit, 60s);
    EXPECT_EQ(audit_rc, 0) << audit.stderr_text();
    EXPECT_EQ(audit_out, numbered_lines("g-", 1000));
    // Its acks have no answer in the protocol: wait until the proxy settled them (GROUPS).
    zmq::context_t ctx;
    const auto audit_pending = [&]() -> std::int64_t {
        zmq::socket_t req(ctx, zmq::socket_type::req);
        req.set(zmq::sockopt::linger, 0);
        req.set(zmq::sockopt::rcvtimeo, 2000);
        req.connect(control);
        (void)req.send(zmq::str_buffer("GROUPS"), zmq::send_flags::none);
        zmq::message_t reply;
        if (!req.recv(reply)) {
            return -1;
        }
        for (const auto& g : nlohmann::json::parse(reply.to_string())) {
            if (g.at("name") == "audit") {
                return g.at("pending").get<std::int64_t>();
            }
        }
        return -1;
    };
    ASSERT_TRUE(eventually([&] { return audit_pending() == count - 1000; }, 20s));
    proxy->process.signal(SIGKILL);
    (void)proxy->process.wait(10s);
    proxy.reset();

    // Offline: the groups as the spool holds them.
    child_process listed({bin_path("zmqkit-spooler"), "group", "list", "--json", spool.string()});
    const auto [list_out, list_rc] = read_until_exit(listed, 30s);
    ASSERT_EQ(list_rc, 0) << listed.stderr_text();
    const auto doc = nlohmann::json::parse(list_out);
    std::map<std::string, nlohmann::json> by_name;
    for (const auto& g : doc.at("groups")) {
        by_name[g.at("name").get<std::string>()] = g;
    }
    ASSERT_EQ(by_name.count("billing"), 1u) << list_out;
    ASSERT_EQ(by_name.count("audit"), 1u) << list_out;
    EXPECT_EQ(by_name["billing"].at("pending"), 0);
    // The proxy answered pending == 2000 from memory; the last acks' records may have been
    // on their way to the disk when it was killed: those messages come again (at least once).
    const int audit_left = by_name["audit"].at("pending").get<int>();
    EXPECT_GE(audit_left, count - 1000);
    EXPECT_LE(audit_left, count);

    // Restarted: audit goes on after its acks, at least once, nothing acked comes again.
    proxy = std::make_unique<proxy_run>(spool, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                                        std::vector<std::string>{"--control", control});
    ASSERT_FALSE(proxy->backend.empty());
    child_process rest({bin_path("zmqkit-recv"), "--ack", "--group", "audit", "--exit-at-end",
                        "--timeout", "60s", proxy->backend});
    const auto [rest_out, rest_rc] = read_until_exit(rest, 60s);
    EXPECT_EQ(rest_rc, 0) << rest.stderr_text();
    std::string expected;
    for (int i = count - audit_left; i < count; ++i) {
        expected += "g-" + std::to_string(i) + "\n";
    }
    EXPECT_EQ(rest_out, expected); // nothing lost, in order, from the first unacked on

    // A group from a time in the future, or a bad name: clear usage errors (exit 64).
    child_process future({bin_path("zmqkit-recv"), "--ack", "--group", "later", "--from",
                          "sequence:999999999", "--timeout", "20s", proxy->backend});
    EXPECT_EQ(future.wait(30s), 64) << future.stderr_text();
    EXPECT_THAT(future.stderr_text(), HasSubstr("in the future"));
    child_process badname({bin_path("zmqkit-recv"), "--ack", "--group", "a b", proxy->backend});
    EXPECT_EQ(badname.wait(30s), 64);
    EXPECT_THAT(badname.stderr_text(), HasSubstr("--group"));

    // Reset through the running proxy: billing reads the whole backlog again.
    // (Refused while a member is connected: the consumers above said BYE, which the proxy
    // may still be reading.)
    const auto spooler_ok = [&](const std::vector<std::string>& argv) {
        return eventually(
            [&] {
                child_process p(argv);
                return p.wait(30s) == 0;
            },
            20s);
    };
    EXPECT_TRUE(spooler_ok({bin_path("zmqkit-spooler"), "group", "reset", "--group", "billing",
                            "--to", "earliest", "--control", control}));
    child_process again({bin_path("zmqkit-recv"), "--ack", "--group", "billing", "--exit-at-end",
                         "--timeout", "60s", proxy->backend});
    const auto [again_out, again_rc] = read_until_exit(again, 60s);
    EXPECT_EQ(again_rc, 0) << again.stderr_text();
    EXPECT_EQ(again_out, numbered_lines("g-", count));
    EXPECT_TRUE(spooler_ok(
        {bin_path("zmqkit-spooler"), "group", "delete", "-G", "audit", "--control", control}));
    child_process unknown(
        {bin_path("zmqkit-spooler"), "group", "delete", "-G", "audit", "--control", control});
    EXPECT_EQ(unknown.wait(30s), 1);
    EXPECT_THAT(unknown.stderr_text(), HasSubstr("no consumer group 'audit'"));
    child_process online({bin_path("zmqkit-spooler"), "group", "list", "--control", control});
    const auto [online_out, online_rc] = read_until_exit(online, 30s);
    EXPECT_EQ(online_rc, 0) << online.stderr_text();
    EXPECT_THAT(online_out, HasSubstr("billing"));
    EXPECT_THAT(online_out, ::testing::Not(HasSubstr("audit")));
}
