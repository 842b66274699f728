// zmqkit-proxy --mode lb as a real process with worker processes (lb_test_worker): requests
// shared over worker processes and answered once each, a worker killed with SIGKILL in the
// middle of a request (re-dispatched and answered), a prefetching worker killed holding several
// requests (all re-dispatched and answered once), a frozen worker expiring after liveness x
// interval and being served again, STATUS per worker, usage errors.
#include <zmqkit/patterns/load_balancer.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <regex>
#include <set>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

struct lb_proxy : running_proxy {
    explicit lb_proxy(const std::vector<std::string>& extra) : running_proxy("lb", extra) {}
};

std::unique_ptr<child_process> start_worker(const std::string& backend, const std::string& hb,
                                            const std::string& liveness,
                                            const std::string& prefetch = "1") {
    auto w = std::make_unique<child_process>(
        std::vector<std::string>{ZMQKIT_LB_TEST_WORKER, backend, hb, liveness, prefetch});
    EXPECT_TRUE(w->wait_for_stderr(std::regex("worker (\\S+) ready"), 20s).has_value());
    return w;
}

std::string status(zmq::context_t& ctx, const std::string& control) {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(control);
    const auto reply = request(req, "STATUS", 10s);
    return reply.empty() ? std::string() : reply[0];
}

// The number after "key": in a flat part of a JSON text (first occurrence).
long long json_number(const std::string& json, const std::string& key) {
    const auto at = json.find("\"" + key + "\":");
    if (at == std::string::npos) {
        return -1;
    }
    return std::stoll(json.substr(at + key.size() + 3));
}

long long ready_workers(const std::string& json) {
    long long n = 0;
    for (auto at = json.find("\"state\":\"ready\""); at != std::string::npos;
         at = json.find("\"state\":\"ready\"", at + 1)) {
        ++n;
    }
    return n;
}

lb_client_options client_options(const std::string& frontend) {
    lb_client_options o;
    o.endpoint = frontend;
    o.timeout = 30s;
    o.attempts = 1;
    return o;
}

} // namespace

TEST(lb_process, worker_processes_share_requests_each_answered_once) {
    lb_proxy proxy({"--heartbeat-interval", "500ms"});
    ASSERT_FALSE(proxy.backend.empty());
    std::vector<std::unique_ptr<child_process>> workers;
    for (int i = 0; i < 3; ++i) {
        workers.push_back(start_worker(proxy.backend, "500", "3"));
    }
    zmq::context_t ctx;
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) == 3; }, 20s));
    lb_client client(ctx, client_options(proxy.frontend));
    constexpr int total = 3000;
    std::map<message_id, std::string> bodies;
    std::map<message_id, int> answers;
    std::map<std::string, int> per_worker;
    for (int i = 0; i < total; ++i) {
        std::string body = std::to_string(i);
        body.insert(0, 1, 'p');
        const auto id = client.submit(message(body), [&, body](lb_result r) {
            ASSERT_TRUE(r.ok()) << r.reason();
            ++answers[r->causation_id()];
            const std::string text(r->body_view());
            const auto colon = text.find(':');
            ASSERT_NE(colon, std::string::npos);
            EXPECT_EQ(text.substr(colon + 1), body);
            ++per_worker[text.substr(0, colon)];
        });
        bodies[id] = body;
        if (client.pending() >= 32) {
            (void)client.poll(100ms);
        }
    }
    ASSERT_TRUE(client.flush(60s));
    ASSERT_EQ(answers.size(), static_cast<std::size_t>(total));
    for (const auto& [id, n] : answers) {
        EXPECT_EQ(n, 1);
        EXPECT_EQ(bodies.count(id), 1u);
    }
    EXPECT_EQ(per_worker.size(), 3u);
    for (const auto& [w, n] : per_worker) {
        EXPECT_GE(n, total / 3 / 4) << w;
    }
    const auto json = status(ctx, proxy.control);
    EXPECT_EQ(json_number(json, "replies"), total);
    proxy.process.signal(SIGTERM);
    EXPECT_EQ(proxy.process.wait(20s), std::optional<int>(0));
}

TEST(lb_process, a_worker_killed_mid_request_costs_a_redispatch_not_the_request) {
    // A long liveness: the broker learns of the death from the connection, not from silence.
    lb_proxy proxy({"--heartbeat-interval", "500ms", "--liveness", "20"});
    ASSERT_FALSE(proxy.backend.empty());
    auto a = start_worker(proxy.backend, "500", "20");
    zmq::context_t ctx;
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) == 1; }, 20s));
    lb_client client(ctx, client_options(proxy.frontend));
    std::optional<lb_result> outcome;
    const auto id = client.submit(message("slow-1"), [&](lb_result r) { outcome = std::move(r); });
    ASSERT_TRUE(a->wait_for_stderr(std::regex("handling (slow-1)"), 20s).has_value());
    auto b = start_worker(proxy.backend, "500", "20");
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) == 1; }, 20s));

    a->signal(SIGKILL);
    ASSERT_TRUE(a->wait(10s).has_value());
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!outcome && std::chrono::steady_clock::now() < deadline) {
        (void)client.poll(100ms);
    }
    ASSERT_TRUE(outcome.has_value());
    ASSERT_TRUE(outcome->ok()) << outcome->reason();
    EXPECT_EQ((*outcome)->causation_id(), id);
    EXPECT_THAT(std::string((*outcome)->body_view()), ::testing::EndsWith(":slow-1"));

    const auto json = status(ctx, proxy.control);
    EXPECT_EQ(json_number(json, "redispatched"), 1) << json;
    EXPECT_EQ(json_number(json, "workers_disconnected") + json_number(json, "workers_expired"), 1)
        << json;
    EXPECT_EQ(json_number(json, "replies"), 1) << json;
    EXPECT_EQ(json_number(json, "served"), 1) << json; // one worker left: b, with one request
}

TEST(lb_process, a_prefetching_worker_killed_holding_several_requests_costs_their_redispatch) {
    lb_proxy proxy({"--heartbeat-interval", "500ms", "--liveness", "20"});
    ASSERT_FALSE(proxy.backend.empty());
    auto a = start_worker(proxy.backend, "500", "20", "4");
    zmq::context_t ctx;
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) == 1; }, 20s));
    lb_client client(ctx, client_options(proxy.frontend));
    std::map<message_id, lb_result> outcomes;
    std::map<message_id, std::string> bodies;
    for (const std::string body : {"slow-1", "x-2", "x-3", "x-4"}) {
        const auto id = client.submit(message(body), [&](lb_result r) {
            const auto cause = r->causation_id();
            outcomes.emplace(cause, std::move(r));
        });
        bodies[id] = body;
    }
    // A holds all four: the slow one in its handler, three waiting in its socket.
    ASSERT_TRUE(a->wait_for_stderr(std::regex("handling (slow-1)"), 20s).has_value());
    ASSERT_TRUE(eventually(
        [&] {
            const auto json = status(ctx, proxy.control);
            return json_number(json, "in_flight") == 4 && json_number(json, "queued") == 0;
        },
        20s));
    EXPECT_THAT(status(ctx, proxy.control), HasSubstr("\"in_flight\":4,\"credit\":4,"));
    auto b = start_worker(proxy.backend, "500", "20", "4");
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) == 1; }, 20s));

    a->signal(SIGKILL);
    ASSERT_TRUE(a->wait(10s).has_value());
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (outcomes.size() < bodies.size() && std::chrono::steady_clock::now() < deadline) {
        (void)client.poll(100ms);
    }
    ASSERT_EQ(outcomes.size(), bodies.size());
    std::set<std::string> answered_by;
    for (const auto& [id, r] : outcomes) {
        ASSERT_TRUE(r.ok()) << r.reason();
        const std::string text(r->body_view());
        const auto colon = text.find(':');
        ASSERT_NE(colon, std::string::npos);
        EXPECT_EQ(text.substr(colon + 1), bodies.at(id));
        answered_by.insert(text.substr(0, colon));
    }
    EXPECT_EQ(answered_by.size(), 1u); // all by b
    const auto json = status(ctx, proxy.control);
    EXPECT_EQ(json_number(json, "redispatched"), 4) << json;
    EXPECT_EQ(json_number(json, "replies"), 4) << json;
    EXPECT_EQ(json_number(json, "late_replies"), 0) << json;
    EXPECT_EQ(json_number(json, "served"), 4) << json;
    EXPECT_EQ(client.late_replies(), 0u);
    proxy.process.signal(SIGTERM);
    EXPECT_EQ(proxy.process.wait(20s), std::optional<int>(0));
}

TEST(lb_process, a_frozen_worker_expires_after_liveness_intervals_and_is_served_again) {
    lb_proxy proxy({"--heartbeat-interval", "200ms", "--liveness", "3"});
    ASSERT_FALSE(proxy.backend.empty());
    auto a = start_worker(proxy.backend, "200", "3");
    zmq::context_t ctx;
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) == 1; }, 20s));
    a->signal(SIGSTOP);
    const auto stopped = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually(
        [&] { return json_number(status(ctx, proxy.control), "workers_expired") == 1; }, 20s));
    const auto after = std::chrono::steady_clock::now() - stopped;
    // Its last heartbeat was at most one interval before SIGSTOP: 3 x 200 ms - 200 ms.
    EXPECT_GE(after, 390ms);
    EXPECT_THAT(status(ctx, proxy.control), HasSubstr("\"workers\":[]"));

    // Woken up, the worker finds the broker silent for longer than its liveness too: it
    // reconnects on a fresh socket (or, first, heartbeats on the old one) and is served again.
    a->signal(SIGCONT);
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) >= 1; }, 20s));
    lb_client client(ctx, client_options(proxy.frontend));
    EXPECT_TRUE(client.call(message("hello again")).ok());
}

TEST(lb_process, usage_errors) {
    child_process no_backend(
        {bin_path("zmqkit-proxy"), "--mode", "lb", "--frontend", "tcp://127.0.0.1:*"});
    EXPECT_EQ(no_backend.wait(10s), std::optional<int>(64));
    child_process wrong_mode({bin_path("zmqkit-proxy"), "--frontend", "tcp://127.0.0.1:*",
                              "--backend", "tcp://127.0.0.1:*", "--liveness", "5"});
    EXPECT_EQ(wrong_mode.wait(10s), std::optional<int>(64));
    EXPECT_TRUE(wrong_mode.wait_for_stderr(std::regex("applies to --mode lb only"), 5s));
    child_process zero_prefetch({bin_path("zmqkit-proxy"), "--mode", "lb", "--frontend",
                                 "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                                 "--max-prefetch", "0"});
    EXPECT_EQ(zero_prefetch.wait(10s), std::optional<int>(64));
    EXPECT_TRUE(zero_prefetch.wait_for_stderr(std::regex("--max-prefetch must be at least 1"), 5s));
    child_process prefetch_in_mdp({bin_path("zmqkit-proxy"), "--mode", "mdp", "--frontend",
                                   "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                                   "--max-prefetch", "4"});
    EXPECT_EQ(prefetch_in_mdp.wait(10s), std::optional<int>(64));
    EXPECT_TRUE(prefetch_in_mdp.wait_for_stderr(
        std::regex("--max-prefetch applies to --mode lb only"), 5s));
    child_process help({bin_path("zmqkit-proxy"), "--help"});
    EXPECT_EQ(help.wait(10s), std::optional<int>(0));
    const auto usage = help.read_stdout(1s);
    EXPECT_THAT(usage, HasSubstr("--heartbeat-interval"));
    EXPECT_THAT(usage, HasSubstr("--max-prefetch"));
}

TEST(lb_process, max_prefetch_caps_the_credit_a_worker_asks_for) {
    lb_proxy proxy({"--max-prefetch", "2"});
    ASSERT_FALSE(proxy.backend.empty());
    auto a = start_worker(proxy.backend, "1000", "3", "8");
    zmq::context_t ctx;
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) == 1; }, 20s));
    EXPECT_THAT(status(ctx, proxy.control), HasSubstr("\"credit\":2,"));
    lb_client client(ctx, client_options(proxy.frontend));
    EXPECT_TRUE(client.call(message("capped")).ok());
}

// Issue 14 item 10: an error reply (docs/wire-protocol.md §8.3) is a failure a script sees:
// zmqkit-send --req exits 69 and names the code and reason on stderr, for envelope and raw
// requests; stdout keeps one line per reply.
TEST(lb_process, an_error_reply_makes_send_req_exit_69_with_the_reason) {
    lb_proxy proxy({"--request-timeout", "1s"}); // and no worker: every request times out
    ASSERT_FALSE(proxy.frontend.empty());
    for (const bool raw : {false, true}) {
        std::vector<std::string> argv{
            bin_path("zmqkit-send"), "--req", "--data", "hello", "--timeout", "20s",
            proxy.frontend};
        if (raw) {
            argv.insert(argv.begin() + 1, "--raw");
        }
        child_process send(argv);
        const auto rc = send.wait(30s);
        const auto reason = send.wait_for_stderr(
            std::regex("request 1 was answered with an error: (timeout: the deadline passed.*)"),
            5s);
        EXPECT_EQ(rc, std::optional<int>(69)) << (raw ? "raw" : "envelope");
        EXPECT_TRUE(reason.has_value()) << ::testing::PrintToString(send.stderr_lines());
        EXPECT_THAT(send.read_stdout(1s), HasSubstr("the deadline passed")); // the reply itself
    }
    // A result is still exit 0.
    auto worker = start_worker(proxy.backend, "1000", "3");
    child_process ok(
        {bin_path("zmqkit-send"), "--req", "--data", "hello", "--timeout", "20s", proxy.frontend});
    EXPECT_EQ(ok.wait(30s), std::optional<int>(0)) << ::testing::PrintToString(ok.stderr_lines());
}

// Issue 17 item 3: zmqkit-send --req --retries is a Lazy Pirate client. Its worker frozen, the
// request is resent on fresh sockets with the same message id; the broker joins the copies
// (duplicates in STATUS), and once the worker runs again the one reply reaches the client:
// the worker handled the request once.
TEST(lb_process, send_req_retries_resend_the_same_request_and_the_broker_joins_them) {
    lb_proxy proxy({"--heartbeat-interval", "1s", "--liveness", "30"});
    ASSERT_FALSE(proxy.control.empty());
    auto worker = start_worker(proxy.backend, "1000", "30");
    zmq::context_t ctx;
    ASSERT_TRUE(eventually([&] { return ready_workers(status(ctx, proxy.control)) == 1; }, 20s));
    worker->signal(SIGSTOP);
    child_process send({bin_path("zmqkit-send"), "--req", "--retries", "20", "--request-timeout",
                        "200ms", "--stats", "--data", "hello", "--timeout", "60s", proxy.frontend});
    const bool joined =
        eventually([&] { return json_number(status(ctx, proxy.control), "duplicates") >= 2; }, 20s);
    worker->signal(SIGCONT);
    ASSERT_TRUE(joined) << status(ctx, proxy.control);
    EXPECT_EQ(send.wait(30s), std::optional<int>(0)) << send.stderr_text();
    EXPECT_THAT(send.stdout_text(), ::testing::MatchesRegex("w[0-9]+:hello\n"));
    EXPECT_THAT(send.stderr_text(), ::testing::ContainsRegex(
                                        "requests: answered=1 errors=0 unanswered=0 resent=[1-9]"));
    worker->signal(SIGTERM);
    EXPECT_TRUE(worker->wait_for_stderr(std::regex("stopped after (1) requests"), 20s))
        << ::testing::PrintToString(worker->stderr_lines());
}

// Without a worker and with every resend unanswered, the request is given up (exit 69, the
// reason on stderr) and the run ends; an error reply from the broker is named and the next
// request still goes.
TEST(lb_process, send_req_retries_give_up_with_exit_69) {
    lb_proxy proxy({});
    ASSERT_FALSE(proxy.frontend.empty());
    child_process lost({bin_path("zmqkit-send"), "--req", "--retries", "1", "--request-timeout",
                        "200ms", "--data", "one\ntwo", "--timeout", "30s", proxy.frontend});
    EXPECT_EQ(lost.wait(30s), std::optional<int>(69)) << lost.stderr_text();
    EXPECT_THAT(lost.stderr_text(),
                ::testing::ContainsRegex("request 1 \\([0-9a-f-]{36}\\) got no reply: no reply "
                                         "after 2 sends of 200 ms each; giving up"));
    EXPECT_EQ(lost.stdout_text(), "");

    lb_proxy strict({"--request-timeout", "300ms"}); // no worker: error "timeout" replies
    child_process errors({bin_path("zmqkit-send"), "--req", "--retries", "3", "--request-timeout",
                          "5s", "--data", "one\ntwo", "--timeout", "30s", strict.frontend});
    EXPECT_EQ(errors.wait(30s), std::optional<int>(69)) << errors.stderr_text();
    const auto err = errors.stderr_text();
    EXPECT_THAT(err, HasSubstr("request 1 was answered with an error: timeout: "));
    EXPECT_THAT(err, HasSubstr("request 2 was answered with an error: timeout: "));
    EXPECT_THAT(err, HasSubstr("2 of 2 request(s) answered with an error"));
}
