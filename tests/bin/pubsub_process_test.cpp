// zmqkit-proxy --mode forwarder as a real process: control commands, usage errors, and its
// memory under a stalled subscriber per policy (publisher and subscribers in this process).
#include <zmqkit/patterns/pubsub.hpp>
#include <zmqkit/proxy_statistics.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"
#include "support/zmtp_peer.hpp"

#include <nlohmann/json.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

using namespace zmqkit;
using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

struct running_forwarder : running_proxy {
    explicit running_forwarder(const std::vector<std::string>& extra = {})
        : running_proxy("forwarder", extra) {}
};

std::vector<std::string> control_request(zmq::context_t& ctx, const std::string& endpoint,
                                         const std::string& command) {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(endpoint);
    return request(req, command);
}

// Resident set size of a process, in KiB (0 if unknown).
std::uint64_t rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("VmRSS:")) {
            return std::stoull(line.substr(6));
        }
    }
    return 0;
}

} // namespace

TEST(forwarder_process, rejects_unknown_policy_and_options_of_other_modes) {
    child_process bad({bin_path("zmqkit-proxy"), "--mode", "forwarder", "--frontend",
                       "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                       "--slow-subscriber-policy", "maybe"});
    EXPECT_EQ(bad.wait(10s), std::optional<int>(64));
    EXPECT_TRUE(
        bad.wait_for_stderr(std::regex("not valid \\(drop \\| block \\| disconnect\\)"), 1s))
        << ::testing::PrintToString(bad.stderr_lines());
    child_process wrong({bin_path("zmqkit-proxy"), "--frontend", "tcp://127.0.0.1:*", "--backend",
                         "tcp://127.0.0.1:*", "--last-value-cache"});
    EXPECT_EQ(wrong.wait(10s), std::optional<int>(64));
}

namespace {

// A stalled subscriber (never reads) and a reading one behind a forwarder process; returns
// after `count` publications of 1 KiB were offered. Checks the forwarder's RSS.
void stalled_subscriber_case(const std::string& policy) {
    std::vector<std::string> flags{"--hwm", "100", "--slow-subscriber-policy", policy};
    if (policy == "disconnect") {
        flags.insert(flags.end(), {"--slow-subscriber-timeout", "1s"});
    }
    running_forwarder proxy(flags);
    ASSERT_THAT(proxy.backend, ::testing::StartsWith("tcp://127.0.0.1:"));
    zmq::context_t ctx;
    metrics_registry registry;
    socket_options so;
    so.registry = &registry;
    so.linger = 0ms;
    so.send_timeout = 100ms;
    patterns::publisher pub(ctx, {">" + proxy.frontend, "pub", so, true});

    zmq::socket_t stalled(ctx, zmq::socket_type::sub);
    stalled.set(zmq::sockopt::rcvhwm, 100);
    stalled.set(zmq::sockopt::rcvbuf, 4096);
    stalled.set(zmq::sockopt::linger, 0);
    stalled.set(zmq::sockopt::subscribe, "t");
    // From 127.0.0.2, so that the forwarder's log line tells it apart from the reading one.
    stalled.connect("tcp://127.0.0.2:0;" + proxy.backend.substr(6));
    patterns::subscriber_options fo;
    fo.endpoints = proxy.backend;
    fo.sockets = so;
    fo.sockets.recv_hwm = 1000000;
    fo.registry = &registry;
    patterns::subscriber fast(ctx, fo);
    fast.subscribe("t");
    ASSERT_TRUE(eventually(
        [&] {
            return control_request(ctx, proxy.control, "STATUS")
                       .at(0)
                       .find("\"subscriptions\":2,") != std::string::npos;
        },
        10s));
    ASSERT_TRUE(pub.wait_for_subscriber("t", 10s));
    const auto rss_before = rss_kib(proxy.process.pid());
    ASSERT_GT(rss_before, 0U);

    constexpr std::uint64_t count = 60000; // 60 MiB offered
    const std::string body(1024, 'x');
    std::atomic<std::uint64_t> fast_last{0};
    std::atomic<bool> stop_reader{false};
    std::thread reader([&] {
        while (!stop_reader) {
            if (auto d = fast.recv(100ms)) {
                fast_last = d->message.header().sequence;
            }
        }
    });
    std::uint64_t sent = 0;
    std::uint64_t peak = rss_before;
    bool released = false;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (sent < count && std::chrono::steady_clock::now() < deadline) {
        message m{body};
        if (pub.send("t", m)) {
            ++sent;
        } else if (!released) {
            // block: held back by the stalled subscriber. Memory now, then let it go.
            peak = std::max(peak, rss_kib(proxy.process.pid()));
            stalled.close();
            released = true;
        }
        if (sent % 5000 == 0) {
            peak = std::max(peak, rss_kib(proxy.process.pid()));
        }
    }
    peak = std::max(peak, rss_kib(proxy.process.pid()));
    ASSERT_EQ(sent, count);
    if (policy == "disconnect") {
        // The stalled subscriber's queue stays full without more publications: it is cut off
        // about a second after it filled, and the forwarder says whom it cut.
        const auto cut = proxy.process.wait_for_stderr(
            std::regex("disconnected slow subscriber (127\\.0\\.0\\.2:[0-9]+): send queue "
                       "full for [0-9.]+ s"),
            20s);
        EXPECT_TRUE(cut.has_value()) << ::testing::PrintToString(proxy.process.stderr_lines());
        peak = std::max(peak, rss_kib(proxy.process.pid()));
    }
    // Others keep receiving. Under `drop` the reading subscriber may itself miss a
    // publication when its own queue is full (a loaded machine), so it is not asked for the
    // last one: publications continue until one past `count` reaches it.
    if (policy == "block") {
        EXPECT_TRUE(eventually([&] { return fast_last.load() == count; }, 30s)) << fast_last.load();
    } else {
        bool reached = false;
        for (int i = 0; i < 100 && !reached; ++i) {
            message m{body};
            (void)pub.send("t", m);
            reached = eventually([&] { return fast_last.load() > count; }, 300ms);
        }
        EXPECT_TRUE(reached) << "the reading subscriber stopped at " << fast_last.load();
    }
    stop_reader = true;
    reader.join();
    const auto grown_mib = (peak - rss_before) / 1024;
    std::cout << "forwarder RSS with policy " << policy << ": " << rss_before << " KiB before, "
              << peak << " KiB peak\n";
    EXPECT_TRUE(!rss_is_meaningful || grown_mib < 48U)
        << "forwarder RSS grew " << grown_mib << " MiB with policy " << policy;
    const auto status = control_request(ctx, proxy.control, "STATUS").at(0);
    if (policy == "block") {
        EXPECT_TRUE(released) << "the publisher was never held back";
        EXPECT_EQ(fast.stats().sequences.gaps, 0U);
        EXPECT_THAT(status, HasSubstr("\"slow_subscriber_drops\":0,"));
    } else {
        EXPECT_THAT(status, ::testing::Not(HasSubstr("\"slow_subscriber_drops\":0,"))) << status;
    }
    // Only the stalled subscriber is ever cut off (it never reads, so it never reconnects).
    EXPECT_THAT(status, HasSubstr(policy == "disconnect" ? "\"slow_subscriber_disconnects\":1,"
                                                         : "\"slow_subscriber_disconnects\":0,"))
        << status;
    EXPECT_EQ(control_request(ctx, proxy.control, "TERMINATE"), std::vector<std::string>{"OK"});
    EXPECT_EQ(proxy.process.wait(10s), std::optional<int>(0));
}

} // namespace

TEST(forwarder_process, stalled_subscriber_drop_policy_memory_bounded_others_receive) {
    stalled_subscriber_case("drop");
}

TEST(forwarder_process, stalled_subscriber_block_policy_memory_bounded_then_flows) {
    stalled_subscriber_case("block");
}

TEST(forwarder_process, stalled_subscriber_disconnect_policy_memory_bounded_it_is_cut_off) {
    stalled_subscriber_case("disconnect");
}

TEST(forwarder_process, zmqkit_send_pub_and_zmqkit_recv_sub_through_it_lose_nothing) {
    running_forwarder fwd;
    ASSERT_FALSE(fwd.frontend.empty());
    // Two subscribers with different prefixes; the publisher waits until both subscriptions
    // reached it through the forwarder (XPUB readiness), so not even the first line is lost.
    child_process orders({bin_path("zmqkit-recv"), "--sub", "--topic", "orders.", "-f", "%t %s\\n",
                          "-c", "500", "--timeout", "30s", ">" + fwd.backend});
    child_process payments({bin_path("zmqkit-recv"), "--sub", "--topic", "payments.", "-f",
                            "%t %s\\n", "-c", "500", "--timeout", "30s", ">" + fwd.backend});
    std::string input;
    std::string want_orders, want_payments;
    for (int i = 0; i < 500; ++i) {
        input += "orders.created o" + std::to_string(i) + "\n";
        input += "payments.done p" + std::to_string(i) + "\n";
        want_orders += "orders.created o" + std::to_string(i) + "\n";
        want_payments += "payments.done p" + std::to_string(i) + "\n";
    }
    child_process sender({bin_path("zmqkit-send"), "--pub", "-K", " ", "--wait-peers", "2",
                          "--timeout", "30s", ">" + fwd.frontend},
                         true);
    sender.write_stdin(input);
    sender.close_stdin();
    const auto src = sender.wait(40s);
    ASSERT_TRUE(src.has_value());
    EXPECT_EQ(*src, 0) << ::testing::PrintToString(sender.stderr_lines());
    for (auto* p : {&orders, &payments}) {
        std::optional<int> rc;
        const auto deadline = std::chrono::steady_clock::now() + 40s;
        while (!rc && std::chrono::steady_clock::now() < deadline) {
            (void)p->read_stdout(50ms);
            rc = p->wait(0ms);
        }
        ASSERT_TRUE(rc.has_value());
        EXPECT_EQ(*rc, 0) << ::testing::PrintToString(p->stderr_lines());
    }
    EXPECT_EQ(orders.read_stdout(100ms), want_orders);
    EXPECT_EQ(payments.read_stdout(100ms), want_payments);
}

TEST(forwarder_process, oversize_subscriptions_are_refused_and_it_keeps_forwarding) {
    // Issue 14 item 4: a 256 KiB subscription crashed the forwarder when its subscriber left
    // (libzmq's recursive trie), 50 MiB grew it by 200 MB/s. Default --max-subscription-size
    // 1024.
    running_forwarder fwd;
    ASSERT_FALSE(fwd.control.empty()) << ::testing::PrintToString(fwd.process.stderr_lines());
    zmq::context_t ctx;
    zmqkit::socket reader(ctx, zmq::socket_type::sub);
    reader.raw().set(zmq::sockopt::subscribe, "orders.");
    (void)reader.attach(">" + fwd.backend, endpoint_action::connect);
    patterns::publisher_options po;
    po.endpoints = ">" + fwd.frontend;
    patterns::publisher pub(ctx, po);
    ASSERT_TRUE(pub.wait_for_subscriber("orders.x", 10s));
    auto status = [&] {
        return nlohmann::json::parse(control_request(ctx, fwd.control, "STATUS").at(0));
    };
    const auto subscribes_before = status()["subscribes"].get<std::uint64_t>();
    const auto rss_before = rss_kib(fwd.process.pid());

    using form = raw_zmtp_subscriber::form;
    const std::string big(256 * 1024, 'o');
    for (const auto f : {form::command, form::message}) {
        raw_zmtp_subscriber peer(fwd.backend, f);
        (void)peer.subscribe(big); // may fail half-way: the forwarder closes at the frame head
        EXPECT_TRUE(peer.closed_by_peer()) << "256 KiB, form " << static_cast<int>(f);
    } // and the peer is gone (what crashed it before)
    {
        raw_zmtp_subscriber peer(fwd.backend, form::command);
        (void)peer.announce_subscription(50ULL << 20, 64 * 1024);
        EXPECT_TRUE(peer.closed_by_peer()) << "50 MiB announced";
    }
    {
        raw_zmtp_subscriber peer(fwd.backend, form::command);
        (void)peer.subscribe(std::string(1025, 'o'));
        EXPECT_TRUE(peer.closed_by_peer()) << "1025 bytes as a SUBSCRIBE command";
    }
    // Exactly at the limit, in both forms: accepted.
    const auto at_limit = "orders." + std::string(1024 - 7, 'l');
    raw_zmtp_subscriber limit_command(fwd.backend, form::command);
    ASSERT_TRUE(limit_command.subscribe(at_limit));
    raw_zmtp_subscriber limit_message(fwd.backend, form::message);
    ASSERT_TRUE(limit_message.subscribe(at_limit));
    // One byte over in the ZMTP 3.0 form fits libzmq's framing allowance: zmqkit refuses it.
    raw_zmtp_subscriber over_message(fwd.backend, form::message);
    ASSERT_TRUE(over_message.subscribe(at_limit + "x"));
    nlohmann::json st;
    ASSERT_TRUE(eventually(
        [&] {
            st = status();
            return st["subscribes"].get<std::uint64_t>() == subscribes_before + 2 &&
                   st["subscriptions_refused"].get<std::uint64_t>() == 1;
        },
        10s))
        << st.dump();
    EXPECT_TRUE(fwd.process.wait_for_stderr(
        std::regex("refused a subscription of 1025 bytes \\(max_subscription_size 1024\\)"), 5s))
        << ::testing::PrintToString(fwd.process.stderr_lines());

    // Alive, memory bounded, and still forwarding: every id arrives.
    EXPECT_FALSE(fwd.process.wait(0ms).has_value());
    EXPECT_LT(rss_kib(fwd.process.pid()), rss_before + 16 * 1024);
    std::set<message_id> sent;
    for (int i = 0; i < 20; ++i) {
        header h;
        ASSERT_TRUE(pub.send("orders.n", h, "m" + std::to_string(i)));
        sent.insert(h.id);
    }
    std::set<message_id> got;
    while (got.size() < sent.size()) {
        auto m = reader.recv(10s);
        ASSERT_TRUE(m) << got.size() << " of " << sent.size();
        got.insert(m->id());
    }
    EXPECT_EQ(got, sent);
}

// ---- the command line on pub-sub (zmqkit-send --pub, zmqkit-recv --sub) ----------------------

namespace {

std::uint64_t forwarder_messages_in(zmq::context_t& ctx, const running_forwarder& proxy) {
    const auto stats =
        proxy_statistics::from_frames(control_request(ctx, proxy.control, "STATISTICS"));
    return stats ? stats->frontend_messages_in : 0;
}

// "A..B" or "A" (a %G token) into the numbers it names.
void add_range(std::set<std::uint64_t>& into, const std::string& range) {
    const auto dots = range.find("..");
    const std::uint64_t first = std::stoull(range.substr(0, dots));
    const std::uint64_t last =
        dots == std::string::npos ? first : std::stoull(range.substr(dots + 2));
    for (auto n = first; n <= last; ++n) {
        into.insert(n);
    }
}

} // namespace

// zmqkit-send --pub numbers its publications; a zmqkit-recv --sub that is stopped (SIGSTOP)
// while 20,000 publications of 1 KiB go by loses some at the forwarder (drop policy, --hwm
// 100). What it reports missing (%G, the stderr lines, --stats) is exactly what it did not
// receive, and --fail-on-gap turns that into exit 65.
TEST(forwarder_process, cli_subscriber_reports_exactly_what_the_forwarder_dropped) {
    running_forwarder proxy({"--hwm", "100", "--slow-subscriber-policy", "drop"});
    ASSERT_THAT(proxy.backend, ::testing::StartsWith("tcp://127.0.0.1:"));
    child_process recv({bin_path("zmqkit-recv"), "--sub", "--hwm", "100", "-X", "rcvbuf=4096",
                        "--stats", "--fail-on-gap", "-f", "%q %G %S\\n", proxy.backend});
    zmq::context_t ctx;
    ASSERT_TRUE(eventually(
        [&] {
            return control_request(ctx, proxy.control, "STATUS")
                       .at(0)
                       .find("\"subscriptions\":1,") != std::string::npos;
        },
        10s))
        << recv.stderr_text();
    child_process send({bin_path("zmqkit-send"), "--pub", "--wait-peers", "1", "--timeout", "120s",
                        "--hwm", "1000000", ">" + proxy.frontend},
                       true);
    // The first publication arrives: the subscriber knows the stream from its first number.
    send.write_stdin("first\n");
    ASSERT_TRUE(
        eventually([&] { return recv.read_stdout(10ms).find("1  5\n") != std::string::npos; }, 20s))
        << recv.stderr_text() << send.stderr_text();

    recv.signal(SIGSTOP);
    constexpr std::uint64_t burst = 20000;
    const std::string body(1000, 'x');
    std::string chunk;
    for (std::uint64_t i = 0; i < burst; ++i) {
        chunk += body + "\n";
        if (chunk.size() > (1U << 20)) {
            send.write_stdin(chunk);
            chunk.clear();
        }
    }
    send.write_stdin(chunk);
    // The forwarder has seen every one of them (and dropped for the stopped subscriber).
    const bool forwarded =
        eventually([&] { return forwarder_messages_in(ctx, proxy) >= burst + 1; }, 60s);
    recv.signal(SIGCONT);
    ASSERT_TRUE(forwarded) << send.stderr_text();
    // Publications after the subscriber runs again close the stream: the forwarder may still
    // drop the first of them while its queue for the subscriber drains, so one is sent at each
    // look until one arrives.
    std::string out;
    ASSERT_TRUE(eventually(
        [&] {
            send.write_stdin("last\n");
            out = recv.read_stdout(10ms);
            return out.find(" 4\n") != std::string::npos; // %S of "last"
        },
        60s))
        << recv.stderr_text();
    send.close_stdin();
    EXPECT_EQ(send.wait(30s), 0) << send.stderr_text();
    recv.signal(SIGTERM);
    EXPECT_EQ(recv.wait(10s), 65) << recv.stderr_text();
    out = recv.stdout_text();

    std::set<std::uint64_t> received;
    std::set<std::uint64_t> reported_missing;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        std::string seq;
        std::string missing;
        std::string size;
        ASSERT_TRUE(std::getline(fields, seq, ' ') && std::getline(fields, missing, ' ') &&
                    std::getline(fields, size))
            << line;
        const auto n = std::stoull(seq);
        EXPECT_TRUE(received.insert(n).second) << "twice: " << n;
        if (!missing.empty()) {
            add_range(reported_missing, missing);
        }
    }
    ASSERT_GE(*received.rbegin(), burst + 2);
    ASSERT_FALSE(reported_missing.empty())
        << "the stopped subscriber lost nothing: no drop to check";
    for (std::uint64_t n = 1; n <= *received.rbegin(); ++n) {
        EXPECT_NE(received.contains(n), reported_missing.contains(n))
            << n
            << (received.contains(n) ? " received and reported missing"
                                     : " neither received nor reported missing");
    }
    const auto err = recv.stderr_text();
    EXPECT_THAT(err, HasSubstr(" missing=" + std::to_string(reported_missing.size()) +
                               " duplicates=0 late=0"));
    EXPECT_THAT(err,
                HasSubstr(std::to_string(reported_missing.size()) + " publication(s) missing"));
    EXPECT_THAT(err, HasSubstr("WARN  zmqkit-recv: gap: "));
}

// A late joiner: zmqkit-recv --snapshot gets each topic's last value from the forwarder's
// last-value cache, then the live stream without a gap; -K ' ' writes what zmqkit-send -K ' '
// read.
TEST(forwarder_process, cli_snapshot_gives_a_late_subscriber_the_current_values_then_live) {
    running_forwarder proxy({"--last-value-cache"});
    zmq::context_t ctx;
    child_process send({bin_path("zmqkit-send"), "--pub", "-K", " ", "--wait-peers", "1",
                        "--timeout", "60s", ">" + proxy.frontend},
                       true);
    send.write_stdin("prices.a 1\nprices.b 2\nprices.a 3\nother.x 9\n");
    ASSERT_TRUE(eventually([&] { return forwarder_messages_in(ctx, proxy) >= 4; }, 20s))
        << send.stderr_text();

    child_process late({bin_path("zmqkit-recv"), "--sub", "--topic", "prices.", "--snapshot", "-c",
                        "3", "--timeout", "30s", "-f", "%g %k %s\\n", proxy.backend});
    ASSERT_TRUE(late.wait_for_stderr(std::regex("(snapshot: 2 value\\(s\\))"), 20s))
        << late.stderr_text();
    send.write_stdin("prices.a 5\n");
    EXPECT_EQ(late.wait(20s), 0) << late.stderr_text();
    EXPECT_EQ(late.stdout_text(),
              "snapshot prices.a 3\nsnapshot prices.b 2\nin_order prices.a 5\n");

    child_process keyed({bin_path("zmqkit-recv"), "--sub", "--topic", "prices.", "--snapshot", "-K",
                         " ", "-c", "2", "--timeout", "30s", proxy.backend});
    EXPECT_EQ(keyed.wait(20s), 0) << keyed.stderr_text();
    EXPECT_EQ(keyed.stdout_text(), "prices.a 5\nprices.b 2\n"); // what send -K ' ' read
    send.close_stdin();
    EXPECT_EQ(send.wait(20s), 0) << send.stderr_text();
}

// --snapshot where no last-value cache is: a zmqkit forwarder without one answers with an
// empty snapshot at once; a publisher connected directly does not answer, and after
// --snapshot-timeout the live stream flows, the held-back publications first.
TEST(forwarder_process, cli_snapshot_without_a_cache_goes_on_with_the_live_stream) {
    running_forwarder proxy;
    child_process recv({bin_path("zmqkit-recv"), "--sub", "--snapshot", "-c", "2", "--timeout",
                        "30s", "-f", "%g %s\\n", proxy.backend});
    ASSERT_TRUE(recv.wait_for_stderr(std::regex("(snapshot: 0 value\\(s\\))"), 20s))
        << recv.stderr_text();
    child_process send({bin_path("zmqkit-send"), "--pub", "--wait-peers", "1", "--timeout", "30s",
                        "--data", "one\ntwo", ">" + proxy.frontend});
    EXPECT_EQ(send.wait(20s), 0) << send.stderr_text();
    EXPECT_EQ(recv.wait(20s), 0) << recv.stderr_text();
    EXPECT_EQ(recv.stdout_text(), "first one\nin_order two\n");

    child_process publisher({bin_path("zmqkit-send"), "--pub", "--wait-peers", "1", "--timeout",
                             "30s", "tcp://127.0.0.1:*"},
                            true);
    const auto endpoint =
        publisher.wait_for_stderr(std::regex("INFO  zmqkit-send: bound (\\S+)"), 10s);
    ASSERT_TRUE(endpoint) << publisher.stderr_text();
    child_process direct({bin_path("zmqkit-recv"), "--sub", "--snapshot", "--snapshot-timeout",
                          "300ms", "-c", "2", "--timeout", "30s", "-f", "%g %s\\n", *endpoint});
    publisher.write_stdin("one\ntwo\n"); // sent once the subscription came (--wait-peers)
    EXPECT_EQ(direct.wait(20s), 0) << direct.stderr_text();
    EXPECT_EQ(direct.stdout_text(), "first one\nin_order two\n");
    EXPECT_THAT(direct.stderr_text(), HasSubstr("no snapshot within --snapshot-timeout 300 ms"));
    publisher.close_stdin();
    EXPECT_EQ(publisher.wait(20s), 0) << publisher.stderr_text();
}
