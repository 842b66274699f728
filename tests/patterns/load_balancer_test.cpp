// The load-balancing broker with its worker and Lazy Pirate client, and with raw peers speaking
// 6/PPP and plain REQ: golden frames both ways, LRU sharing of 10,000 requests answered once
// each by id, expiry of a silent worker (injected clock) with re-dispatch, max attempts,
// deadlines, a full queue, malformed frames, broker restart under Lazy Pirate clients, late
// and duplicate replies dropped by the client; worker credit (prefetch): READY with credit and
// the tag frame (golden), 10,000 requests over prefetching workers, a prefetching worker lost
// with several requests, first reply wins, graceful stop under load.
#include "patterns/load_balancer/ppp_protocol.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/patterns/load_balancer.hpp>

#include "support/testing.hpp"
#include "support/unknown_entries.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

using views = std::vector<std::string_view>;

// a + b (GCC 12 at -O3 warns falsely, -Wrestrict, about "literal" + std::string).
std::string cat(std::string_view a, std::string_view b) {
    std::string s;
    s.reserve(a.size() + b.size());
    s.append(a);
    s.append(b);
    return s;
}

// ---- golden frames, parsers only (from the text of 6/PPP) ---------------------------------------

TEST(ppp_protocol, worker_commands_from_the_spec_and_the_ascii_words) {
    std::string why;
    const std::string ready("\x01", 1), heartbeat("\x02", 1), disconnect("\x05", 1);
    auto r = ppp::parse_worker_message({ready}, why);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->what, ppp::worker_message::kind::ready);
    r = ppp::parse_worker_message({heartbeat}, why);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->what, ppp::worker_message::kind::heartbeat);
    r = ppp::parse_worker_message({disconnect}, why);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->what, ppp::worker_message::kind::disconnect);
    r = ppp::parse_worker_message({"READY"}, why);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->what, ppp::worker_message::kind::ready);
    r = ppp::parse_worker_message({"HEARTBEAT"}, why);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->what, ppp::worker_message::kind::heartbeat);
}

TEST(ppp_protocol, commands_say_which_dialect_they_were_spelt_in) {
    std::string why;
    for (const auto& [frame, spoken] : std::vector<std::pair<std::string, ppp::dialect>>{
             {std::string("\x01", 1), ppp::dialect::bytes},
             {std::string("\x02", 1), ppp::dialect::bytes},
             {std::string("\x05", 1), ppp::dialect::bytes},
             {std::string(ppp::ready_credit_prefix) + "1", ppp::dialect::bytes},
             {"READY", ppp::dialect::words},
             {"HEARTBEAT", ppp::dialect::words},
             {"DISCONNECT", ppp::dialect::words}}) {
        const auto r = ppp::parse_worker_message({frame}, why);
        ASSERT_TRUE(r) << frame;
        EXPECT_EQ(r->spoken, spoken) << frame;
    }
    EXPECT_EQ(ppp::heartbeat_in(ppp::dialect::bytes), std::string_view("\x02", 1));
    EXPECT_EQ(ppp::heartbeat_in(ppp::dialect::words), "HEARTBEAT");
    // Only a READY with a valid credit says the worker reads both envelope layouts.
    EXPECT_TRUE(ppp::parse_worker_message({std::string(ppp::ready_credit_prefix) + "1"}, why)
                    ->credit_announced);
    EXPECT_FALSE(ppp::parse_worker_message({std::string(ppp::ready_credit_prefix) + "x"}, why)
                     ->credit_announced);
    EXPECT_FALSE(ppp::parse_worker_message({std::string("\x01", 1)}, why)->credit_announced);
    EXPECT_FALSE(ppp::parse_worker_message({"READY"}, why)->credit_announced);
}

TEST(ppp_protocol, replies_carry_an_address_stack_a_delimiter_and_content) {
    std::string why;
    auto r =
        ppp::parse_worker_message({std::string_view("\x00k\x8b\x45\x67", 5), "", "result"}, why);
    ASSERT_TRUE(r) << why;
    EXPECT_EQ(r->what, ppp::worker_message::kind::reply);
    EXPECT_EQ(r->envelope_size, 1u);
    r = ppp::parse_worker_message({"client", "proxy", "", "part1", "part2"}, why);
    ASSERT_TRUE(r) << why;
    EXPECT_EQ(r->envelope_size, 2u);

    auto b = ppp::parse_broker_message({"client", "", "request"}, why);
    ASSERT_TRUE(b) << why;
    EXPECT_EQ(b->what, ppp::broker_message::kind::request);
    EXPECT_EQ(b->envelope_size, 1u);
    b = ppp::parse_broker_message({std::string_view("\x02", 1)}, why);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->what, ppp::broker_message::kind::heartbeat);

    EXPECT_EQ(ppp::parse_client_request({"", "hello"}, why), std::optional<std::size_t>(0));
    EXPECT_EQ(ppp::parse_client_request({"hop", "", "hello"}, why), std::optional<std::size_t>(1));
}

TEST(ppp_protocol, malformed_frames_are_rejected_with_a_reason) {
    const std::vector<views> bad_worker{
        {},                                // nothing
        {std::string_view("\x03", 1)},     // unknown command byte
        {"HELLO"},                         // unknown word
        {"client", "result"},              // no delimiter
        {"", "result"},                    // no address
        {"client", ""},                    // no content
        {std::string_view("\x01\x00", 2)}, // a command with trailing bytes
        {std::string_view("\x01", 1), ""}  // READY is one frame
    };
    for (const auto& frames : bad_worker) {
        std::string why;
        EXPECT_FALSE(ppp::parse_worker_message(frames, why)) << ::testing::PrintToString(frames);
        EXPECT_FALSE(why.empty());
    }
    std::string why;
    EXPECT_FALSE(ppp::parse_broker_message({std::string_view("\x01", 1)}, why));
    EXPECT_THAT(why, HasSubstr("unknown command '\\x01'"));
    EXPECT_FALSE(ppp::parse_client_request({"hello"}, why));
    EXPECT_THAT(why, HasSubstr("no empty delimiter"));
    EXPECT_FALSE(ppp::parse_client_request({""}, why));
}

TEST(ppp_protocol, ready_with_credit_golden_frames_and_bad_credits) {
    std::string why;
    // 01 63 72 65 64 69 74 3d 34: READY with credit 4 (docs/wire-protocol.md §8.2).
    const std::string credit4("\x01\x63\x72\x65\x64\x69\x74\x3d\x34", 9);
    EXPECT_EQ(credit4, std::string(ppp::ready_credit_prefix) + "4");
    auto r = ppp::parse_worker_message({credit4}, why);
    ASSERT_TRUE(r) << why;
    EXPECT_EQ(r->what, ppp::worker_message::kind::ready);
    EXPECT_EQ(r->credit, 4u);
    EXPECT_FALSE(r->credit_rejected);
    r = ppp::parse_worker_message({std::string("\x01", 1) + "credit=4294967295"}, why);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->credit, 4294967295u);
    r = ppp::parse_worker_message({std::string("\x01", 1) + "credit=1"}, why);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->credit, 1u);
    EXPECT_FALSE(r->credit_rejected);
    // A plain READY has credit 1.
    r = ppp::parse_worker_message({std::string("\x01", 1)}, why);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->credit, 1u);
    EXPECT_FALSE(r->credit_rejected);
    // Bad numbers: still a READY, credit 1, rejected with a reason.
    for (const char* bad :
         {"", "0", "abc", "99999999999", "4294967296", "-1", "+4", "4 ", " 4", "4x", "0x10"}) {
        why.clear();
        r = ppp::parse_worker_message({std::string("\x01", 1) + "credit=" + bad}, why);
        ASSERT_TRUE(r) << bad;
        EXPECT_EQ(r->what, ppp::worker_message::kind::ready) << bad;
        EXPECT_EQ(r->credit, 1u) << bad;
        EXPECT_TRUE(r->credit_rejected) << bad;
        EXPECT_THAT(why, HasSubstr("READY with credit")) << bad;
    }
    // Not the extension: other bytes after 0x01, READY with credit in more than one frame.
    EXPECT_FALSE(ppp::parse_worker_message({std::string("\x01", 1) + "credit"}, why));
    EXPECT_FALSE(ppp::parse_worker_message({std::string("\x01", 1) + "Credit=4"}, why));
    EXPECT_FALSE(ppp::parse_worker_message({std::string("\x01", 1), "credit=4"}, why));
}

// ---- fixture ----------------------------------------------------------------------------------

// A clock tests move forward by hand.
struct manual_clock {
    std::atomic<std::int64_t> offset_ms{0};
    std::chrono::steady_clock::time_point now() const {
        return std::chrono::steady_clock::now() + std::chrono::milliseconds(offset_ms.load());
    }
};

struct lb_fixture : ::testing::Test {
    zmq::context_t ctx;
    metrics_registry registry;

    load_balancer_options options() {
        load_balancer_options o;
        o.frontend = "tcp://127.0.0.1:*";
        o.backend = "tcp://127.0.0.1:*";
        o.registry = &registry;
        o.sockets.registry = &registry;
        return o;
    }

    zmq::socket_t raw(zmq::socket_type type, const std::string& endpoint) {
        zmq::socket_t s(ctx, type);
        s.set(zmq::sockopt::linger, 0);
        s.connect(endpoint);
        return s;
    }

    lb_client_options client_options(const load_balancer& b) {
        lb_client_options o;
        o.endpoint = b.frontend_endpoints().at(0);
        o.timeout = 30s; // no retries unless a test wants them
        o.attempts = 1;
        return o;
    }

    lb_worker_options worker_options(const load_balancer& b, const std::string& name) {
        lb_worker_options o;
        o.endpoint = b.backend_endpoints().at(0);
        o.name = name;
        return o;
    }

    // Waits until the broker knows `n` ready workers.
    // Heartbeats 1000 ms x 3 on an injected clock: tests expire workers by advancing it.
    load_balancer_options clocked_options(manual_clock& clk) {
        auto o = options();
        o.heartbeat_interval = 1000ms;
        o.liveness = 3;
        o.tick = 5ms;
        o.clock = [&clk] { return clk.now(); };
        return o;
    }
    // A hand-driven 6/PPP worker: a DEALER on the backend that has sent `ready`.
    zmq::socket_t raw_worker(load_balancer& b, const std::string& ready,
                             const std::string& routing_id = {}) {
        zmq::socket_t w(ctx, zmq::socket_type::dealer);
        w.set(zmq::sockopt::linger, 0);
        if (!routing_id.empty()) {
            w.set(zmq::sockopt::routing_id, routing_id);
        }
        w.connect(b.backend_endpoints().at(0));
        w.send(zmq::buffer(ready));
        return w;
    }
    static bool ready_workers(load_balancer& b, std::size_t n) {
        return eventually(
            [&] {
                const auto s = b.broker_stats();
                return s && std::count_if(s->workers.begin(), s->workers.end(), [](const auto& w) {
                                return w.ready;
                            }) == static_cast<std::ptrdiff_t>(n);
            },
            10s);
    }

    // A raw PPP worker: [client...][""][content...] -> the request's frames.
    static std::vector<std::string> next_request(zmq::socket_t& worker) {
        const std::string heartbeat("\x02", 1);
        for (;;) {
            auto frames = recv_frames(worker);
            if (frames.size() != 1 || frames[0] != heartbeat) {
                return frames;
            }
        }
    }
};

} // namespace

// ---- golden frames through the broker
// ------------------------------------------------------------

TEST_F(lb_fixture, req_client_and_ppp_worker_exchange_the_spec_frames) {
    auto o = options();
    o.heartbeat_interval = 100ms;
    load_balancer broker(ctx, o);
    broker.start();
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    worker.send(zmq::buffer(std::string("\x01", 1))); // READY
    ASSERT_TRUE(ready_workers(broker, 1));

    // Broker -> worker HEARTBEAT: one frame, 0x02.
    auto hb = recv_frames(worker, 10s);
    EXPECT_EQ(hb, std::vector<std::string>{std::string("\x02", 1)});

    auto req = raw(zmq::socket_type::req, broker.frontend_endpoints().at(0));
    req.send(zmq::buffer(std::string("hello")));
    // Broker -> worker REQUEST: [client address][""][content]
    const auto request = next_request(worker);
    ASSERT_EQ(request.size(), 3u) << ::testing::PrintToString(request);
    EXPECT_FALSE(request[0].empty()); // the REQ client's routing id at the frontend
    EXPECT_EQ(request[1], "");
    EXPECT_EQ(request[2], "hello");
    // Worker -> broker REPLY: the same envelope, the reply content.
    send_frames(worker, {request[0], "", "HELLO"});
    auto reply = recv_within(req, 10s);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->to_string(), "HELLO");
    EXPECT_FALSE(reply->more());

    // Worker -> broker HEARTBEAT keeps it alive; multi-part content passes unchanged.
    worker.send(zmq::buffer(std::string("\x02", 1)));
    req.send(zmq::buffer(std::string("a")), zmq::send_flags::sndmore);
    req.send(zmq::buffer(std::string("b")));
    const auto two = next_request(worker);
    ASSERT_EQ(two.size(), 4u);
    EXPECT_EQ(two[2], "a");
    EXPECT_EQ(two[3], "b");
    send_frames(worker, {two[0], "", "x", "y"});
    auto x = recv_frames(req);
    EXPECT_EQ(x, (std::vector<std::string>{"x", "y"}));
    const auto s = broker.broker_stats();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->requests, 2u);
    EXPECT_EQ(s->replies, 2u);
    ASSERT_EQ(s->workers.size(), 1u);
    EXPECT_EQ(s->workers[0].served, 2u);
}

TEST_F(lb_fixture, a_worker_that_says_the_ascii_words_is_served) {
    load_balancer broker(ctx, options());
    broker.start();
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    worker.send(zmq::buffer(std::string("READY")));
    ASSERT_TRUE(ready_workers(broker, 1));
    worker.send(zmq::buffer(std::string("HEARTBEAT")));
    auto req = raw(zmq::socket_type::req, broker.frontend_endpoints().at(0));
    req.send(zmq::buffer(std::string("ping")));
    const auto request = next_request(worker);
    ASSERT_EQ(request.size(), 3u);
    send_frames(worker, {request[0], "", "pong"});
    auto reply = recv_within(req, 10s);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->to_string(), "pong");
}

// ---- sharing and exactly-once ----------------------------------------------------------------

// Submits `total` echo requests with bodies prefix0, prefix1, ..., at most `window` in flight,
// until all are answered (bounded to two minutes), calling after_poll after every poll.
struct pipelined_run {
    std::unordered_map<message_id, std::string, message_id_hash> expected; // id -> body
    std::unordered_map<message_id, int, message_id_hash> answers;          // cause -> replies
    std::size_t failures = 0;
};
void run_pipelined(lb_client& client, pipelined_run& run, int total, std::size_t window,
                   const std::string& prefix, const std::function<void()>& after_poll = {}) {
    int next = 0;
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while ((next < total || client.pending() > 0) && std::chrono::steady_clock::now() < deadline) {
        while (next < total && client.pending() < window) {
            const std::string body = cat(prefix, std::to_string(next++));
            const auto id = client.submit(message(body), [&run](lb_result r) {
                if (!r.ok()) {
                    ++run.failures;
                    return;
                }
                const auto cause = r->causation_id();
                ++run.answers[cause];
                EXPECT_EQ(r->body_view(), cat("re:", run.expected[cause]));
            });
            run.expected[id] = body;
        }
        (void)client.poll(10ms);
        if (after_poll) {
            after_poll();
        }
    }
}

// 10,000 requests, 64 in flight, over 4 echo workers with the given prefetch: every request
// answered exactly once (by causation id), roughly evenly spread, nothing late or left over.
void share_ten_thousand_requests(lb_fixture& f, std::uint32_t prefetch) {
    load_balancer broker(f.ctx, f.options());
    broker.start();
    constexpr std::size_t worker_count = 4;
    std::vector<std::unique_ptr<lb_worker>> workers;
    for (std::size_t i = 0; i < worker_count; ++i) {
        auto wo = f.worker_options(broker, cat("w", std::to_string(i)));
        wo.prefetch = prefetch;
        workers.push_back(std::make_unique<lb_worker>(
            f.ctx, wo, lb_bytes_handler([](std::string_view body) { return cat("re:", body); })));
        workers.back()->start();
    }
    ASSERT_TRUE(f.ready_workers(broker, worker_count));
    auto s = broker.broker_stats();
    ASSERT_TRUE(s);
    for (const auto& w : s->workers) {
        EXPECT_EQ(w.credit, prefetch) << w.id;
    }

    lb_client client(f.ctx, f.client_options(broker));
    constexpr int total = 10000;
    constexpr std::size_t window = 64; // more than the workers' credit: some wait at the broker
    pipelined_run run;
    run_pipelined(client, run, total, window, "r");
    EXPECT_EQ(run.failures, 0u);
    ASSERT_EQ(run.answers.size(), static_cast<std::size_t>(total));
    for (const auto& [id, n] : run.answers) {
        ASSERT_EQ(n, 1) << id.to_string();
        ASSERT_EQ(run.expected.count(id), 1u);
    }
    EXPECT_EQ(client.late_replies(), 0u);
    s = broker.broker_stats();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->replies, static_cast<std::uint64_t>(total));
    EXPECT_EQ(s->late_replies, 0u);
    EXPECT_EQ(s->redispatched, 0u);
    EXPECT_EQ(s->in_flight, 0u);
    ASSERT_EQ(s->workers.size(), worker_count);
    std::uint64_t served = 0;
    for (const auto& w : s->workers) {
        served += w.served;
        // Roughly even: least recently used order gives every worker a fair part, even on a
        // loaded machine (at least a quarter of an even share).
        EXPECT_GE(w.served, static_cast<std::uint64_t>(total) / worker_count / 4) << w.id;
        EXPECT_EQ(w.in_flight, 0u) << w.id;
    }
    EXPECT_EQ(served, static_cast<std::uint64_t>(total));
    EXPECT_EQ(metric_total(f.registry, "zmqkit_lb_request_seconds_count"), total)
        << "each reply's round trip observed once";
    std::uint64_t handled = 0;
    for (auto& w : workers) {
        handled += w->counters().handled;
    }
    EXPECT_EQ(handled, static_cast<std::uint64_t>(total));
}

TEST_F(lb_fixture, workers_share_ten_thousand_requests_each_answered_once_by_id) {
    share_ten_thousand_requests(*this, 1);
}

TEST_F(lb_fixture, typed_handlers_and_the_synchronous_call) {
    load_balancer broker(ctx, options());
    broker.start();
    lb_worker worker(ctx, worker_options(broker, "square"),
                     lb_typed_handler<int, int>([](const int& v) { return v * v; }));
    worker.start();
    lb_client client(ctx, client_options(broker));
    for (int i = 1; i <= 5; ++i) {
        auto request = message::pack(i);
        const auto r = client.call(std::move(request));
        ASSERT_TRUE(r.ok()) << r.reason();
        EXPECT_EQ(r->body_as<int>(), i * i);
        EXPECT_EQ(client.resent(), 0u); // answered on the first send
    }
    // A body that does not convert: the worker answers error "handler", and goes on.
    const auto bad = client.call(message("not msgpack \xc1"));
    EXPECT_TRUE(bad.is_failed());
    EXPECT_EQ(bad.error(), lb_error::handler);
    EXPECT_EQ(worker.counters().failed, 1u);
    EXPECT_EQ(client.call(message::pack(7))->body_as<int>(), 49);
}

// ---- losing workers -----------------------------------------------------------------------------

TEST_F(lb_fixture, a_silent_worker_expires_and_its_request_goes_to_another_with_attempt_two) {
    manual_clock clk;
    load_balancer broker(ctx, clocked_options(clk));
    broker.start();
    auto a = raw_worker(broker, std::string("\x01", 1), "worker-a");
    ASSERT_TRUE(ready_workers(broker, 1));

    lb_client client(ctx, client_options(broker));
    std::optional<lb_result> outcome;
    message request("job");
    const auto id = client.submit(std::move(request), [&](lb_result r) { outcome = std::move(r); });
    const auto first = next_request(a);
    ASSERT_EQ(first.size(), 3u);
    header h1;
    std::size_t hs = 0;
    ASSERT_TRUE(decode_header(first[2].data(), first[2].size(), h1, &hs).ok());
    EXPECT_EQ(h1.id, id);
    EXPECT_EQ(h1.attempt, 1u);

    // Worker A goes silent. Not expired before liveness x interval...
    clk.offset_ms = 2500;
    EXPECT_FALSE(eventually([&] { return broker.broker_stats()->workers_expired > 0; }, 200ms));
    // ... expired after it.
    clk.offset_ms = 3100;
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->workers_expired == 1; }, 10s));
    auto s = broker.broker_stats();
    EXPECT_EQ(s->redispatched, 1u);
    EXPECT_EQ(s->queued, 1u);
    EXPECT_TRUE(s->workers.empty());

    // Worker B arrives and gets the same request, attempt 2.
    auto b = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    b.send(zmq::buffer(std::string("\x01", 1)));
    const auto second = next_request(b);
    ASSERT_EQ(second.size(), 3u);
    header h2;
    ASSERT_TRUE(decode_header(second[2].data(), second[2].size(), h2, &hs).ok());
    EXPECT_EQ(h2.id, id);
    EXPECT_EQ(h2.attempt, 2u);
    EXPECT_EQ(second[2].substr(hs), "job");
    header rh = header::follow_up(h2);
    send_frames(b, {second[0], "", encode_header(rh) + "done by b"});
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return outcome.has_value();
    }));
    ASSERT_TRUE(outcome->ok());
    EXPECT_EQ((*outcome)->body_view(), "done by b");

    // A wakes up and answers late: dropped by the broker, never seen by the client.
    header late = header::follow_up(h1);
    send_frames(a, {first[0], "", encode_header(late) + "done by a"});
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->late_replies == 1; }));
    EXPECT_EQ(client.poll(100ms), 0u);
    s = broker.broker_stats();
    EXPECT_EQ(s->replies, 1u);
    const auto it = std::find_if(s->workers.begin(), s->workers.end(),
                                 [](const auto& w) { return w.id == "776f726b65722d61"; });
    // "worker-a" is back (any sign of life registers a worker), its expiry on record.
    ASSERT_NE(it, s->workers.end());
    EXPECT_EQ(it->expired, 1u);
}

TEST_F(lb_fixture, after_max_attempts_the_client_gets_an_error_with_the_reason) {
    auto o = options();
    o.max_attempts = 2;
    load_balancer broker(ctx, o);
    broker.start();
    auto a = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    a.send(zmq::buffer(std::string("\x01", 1)));
    ASSERT_TRUE(ready_workers(broker, 1));
    lb_client client(ctx, client_options(broker));
    std::optional<lb_result> outcome;
    (void)client.submit(message("doomed"), [&](lb_result r) { outcome = std::move(r); });
    ASSERT_EQ(next_request(a).size(), 3u);
    a.send(zmq::buffer(std::string("\x05", 1))); // DISCONNECT mid-request
    auto b = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    b.send(zmq::buffer(std::string("\x01", 1)));
    ASSERT_EQ(next_request(b).size(), 3u);
    b.send(zmq::buffer(std::string("\x05", 1)));
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return outcome.has_value();
    }));
    EXPECT_TRUE(outcome->is_failed());
    EXPECT_EQ(outcome->error(), lb_error::attempts);
    EXPECT_THAT(outcome->reason(), HasSubstr("no reply after 2 attempts"));
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->workers_disconnected, 2u);
    EXPECT_EQ(s->redispatched, 1u);
    EXPECT_EQ(s->errors, 1u);
}

TEST_F(lb_fixture, a_worker_stopping_drains_and_says_disconnect) {
    load_balancer broker(ctx, options());
    broker.start();
    lb_worker worker(ctx, worker_options(broker, "leaving"),
                     lb_bytes_handler([](std::string_view b) { return std::string(b); }));
    worker.start();
    lb_client client(ctx, client_options(broker));
    EXPECT_TRUE(client.call(message("one")).ok());
    worker.stop();
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->workers_disconnected == 1; }));
    EXPECT_TRUE(broker.broker_stats()->workers.empty());
}

TEST_F(lb_fixture, a_long_handler_that_calls_keep_alive_keeps_its_worker_and_its_reply) {
    // A worker silent for 3 x 50 ms expires; the handler runs until released, far longer.
    auto o = options();
    o.heartbeat_interval = 50ms;
    o.liveness = 3;
    load_balancer broker(ctx, o);
    broker.start();
    std::promise<void> release;
    const auto released = release.get_future().share();
    std::atomic<bool> handling{false};
    lb_worker* self = nullptr;
    auto wo = worker_options(broker, "long");
    wo.heartbeat_interval = 50ms;
    wo.liveness = 3;
    std::mutex lines_mutex;
    std::vector<std::string> lines; // the worker's log
    wo.log = [&](std::string_view line) {
        const std::lock_guard lock(lines_mutex);
        lines.emplace_back(line);
    };
    lb_worker worker(ctx, wo, [&](const lb_request& r) {
        handling = true;
        while (released.wait_for(10ms) != std::future_status::ready) {
            self->keep_alive();
        }
        return message("done:" + std::string(r.message.body_view()));
    });
    self = &worker;
    worker.keep_alive(); // not from its handler: does nothing
    worker.start();
    ASSERT_TRUE(ready_workers(broker, 1));
    lb_client client(ctx, client_options(broker));
    std::optional<lb_result> outcome;
    (void)client.submit(message("job"), [&](lb_result r) { outcome = std::move(r); });
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(0ms);
        return handling.load();
    }));
    // Heartbeats keep coming from the busy worker: wait for eight of them (400 ms, well past
    // the 150 ms silence limit) while it still holds the request.
    const auto heard = broker.statistics().backend_messages_in;
    ASSERT_TRUE(
        eventually([&] { return broker.statistics().backend_messages_in >= heard + 8; }, 10s));
    auto s = broker.broker_stats();
    EXPECT_EQ(s->workers_expired, 0U);
    EXPECT_EQ(s->redispatched, 0U);
    EXPECT_EQ(s->in_flight, 1U);
    release.set_value();
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return outcome.has_value();
    }));
    ASSERT_TRUE(outcome->ok()) << outcome->reason();
    EXPECT_EQ((*outcome)->body_view(), "done:job");
    // Back from a handler longer than the silence limit, the worker found the broker's
    // heartbeats waiting, not silence: same socket (its reply went out on it).
    EXPECT_EQ(worker.counters().reconnects, 0U);
    {
        const std::lock_guard lock(lines_mutex);
        EXPECT_THAT(lines, ::testing::IsEmpty()) << "no \"broker silent\", no reconnect";
    }
    EXPECT_EQ(broker.broker_stats()->workers_expired, 0U);
}

TEST_F(lb_fixture, after_stop_taking_a_worker_answers_what_it_holds_and_takes_nothing_new) {
    load_balancer broker(ctx, options());
    broker.start();
    std::promise<void> release;
    const auto released = release.get_future().share();
    std::atomic<int> calls{0};
    lb_worker a(ctx, worker_options(broker, "a"), [&](const lb_request& r) {
        ++calls;
        released.wait();
        return message("a:" + std::string(r.message.body_view()));
    });
    a.start();
    ASSERT_TRUE(ready_workers(broker, 1));
    lb_client client(ctx, client_options(broker));
    std::map<std::string, lb_result> outcomes;
    auto submit = [&](const std::string& body) {
        (void)client.submit(message(body),
                            [&, body](lb_result r) { outcomes.emplace(body, std::move(r)); });
    };
    submit("one");
    ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
    submit("two"); // waits at the broker: A is busy
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->queued == 1; }));
    a.stop_taking();
    release.set_value();
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return outcomes.count("one") == 1;
    }));
    ASSERT_TRUE(outcomes.at("one").ok());
    EXPECT_EQ(outcomes.at("one")->body_view(), "a:one");
    a.stop(); // DISCONNECT: "two", if the broker had sent it to A, is the broker's again
    EXPECT_EQ(calls.load(), 1);

    lb_worker b(ctx, worker_options(broker, "b"),
                lb_bytes_handler([](std::string_view body) { return "b:" + std::string(body); }));
    b.start();
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return outcomes.count("two") == 1;
    }));
    ASSERT_TRUE(outcomes.at("two").ok()) << outcomes.at("two").reason();
    EXPECT_EQ(outcomes.at("two")->body_view(), "b:two");
    EXPECT_EQ(calls.load(), 1);
}

// ---- deadlines and limits
// -------------------------------------------------------------------------

TEST_F(lb_fixture, expired_requests_are_answered_with_a_timeout_error_instead_of_run_late) {
    auto o = options();
    o.request_timeout = 300ms;
    load_balancer broker(ctx, o);
    broker.start();
    // No worker: both the envelope client and a raw REQ client get the timeout error.
    lb_client client(ctx, client_options(broker));
    const auto r = client.call(message("late"));
    EXPECT_TRUE(r.is_failed());
    EXPECT_EQ(r.error(), lb_error::timeout);
    auto req = raw(zmq::socket_type::req, broker.frontend_endpoints().at(0));
    req.send(zmq::buffer(std::string("raw")));
    auto reply = recv_within(req, 10s);
    ASSERT_TRUE(reply);
    EXPECT_THAT(reply->to_string(), ::testing::StartsWith("ERROR timeout: "));

    // A deadline in the request's header, already past: answered at once by a broker without
    // a request timeout... even when a worker is ready, it is not run.
    auto o2 = options();
    o2.name = "second"; // its own counters in the registry
    load_balancer broker2(ctx, o2);
    broker2.start();
    auto w = raw(zmq::socket_type::dealer, broker2.backend_endpoints().at(0));
    w.send(zmq::buffer(std::string("\x01", 1)));
    ASSERT_TRUE(ready_workers(broker2, 1));
    lb_client client2(ctx, client_options(broker2));
    message m("too late");
    const auto past = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() -
                      1000;
    m.header().set_user_header(lb_deadline_header, std::to_string(past));
    const auto r2 = client2.call(std::move(m));
    EXPECT_EQ(r2.error(), lb_error::timeout);
    const auto s2 = broker2.broker_stats();
    EXPECT_EQ(s2->replies, 0u);
    EXPECT_EQ(s2->in_flight, 0u);
    EXPECT_EQ(s2->errors, 1u);
}

TEST_F(lb_fixture, a_full_queue_answers_busy) {
    auto o = options();
    o.max_queued = 2;
    load_balancer broker(ctx, o);
    broker.start();
    lb_client client(ctx, client_options(broker));
    std::vector<lb_result> done;
    for (int i = 0; i < 3; ++i) {
        (void)client.submit(message(cat("q", std::to_string(i))),
                            [&](lb_result r) { done.push_back(std::move(r)); });
    }
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return done.size() == 1;
    }));
    EXPECT_EQ(done[0].error(), lb_error::queue_full);
    // The two queued ones are served once a worker comes.
    lb_worker worker(ctx, worker_options(broker, "late-worker"),
                     lb_bytes_handler([](std::string_view b) { return std::string(b); }));
    worker.start();
    ASSERT_TRUE(client.flush(20s));
    ASSERT_EQ(done.size(), 3u);
    EXPECT_TRUE(done[1].ok());
    EXPECT_TRUE(done[2].ok());
}

// ---- malformed input ----------------------------------------------------------------------------

TEST_F(lb_fixture, malformed_frames_are_counted_and_dropped_and_the_broker_keeps_serving) {
    std::vector<std::string> logged;
    std::mutex log_mutex;
    auto o = options();
    o.log = [&](std::string_view line) {
        std::lock_guard lock(log_mutex);
        logged.emplace_back(line);
    };
    load_balancer broker(ctx, o);
    broker.start();
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    worker.send(zmq::buffer(std::string("\x07", 1))); // wrong command byte
    send_frames(worker, {"client", "no delimiter"});  // missing frames
    worker.send(zmq::buffer(std::string("\x01", 1))); // READY
    auto dealer = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    dealer.send(zmq::buffer(std::string("no delimiter"))); // a client without the envelope
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->malformed == 3; }));

    auto req = raw(zmq::socket_type::req, broker.frontend_endpoints().at(0));
    req.send(zmq::buffer(std::string("still there?")));
    const auto request = next_request(worker);
    ASSERT_EQ(request.size(), 3u);
    send_frames(worker, {request[0], "", "yes"});
    auto reply = recv_within(req, 10s);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->to_string(), "yes");
    std::lock_guard lock(log_mutex);
    ASSERT_FALSE(logged.empty());
    // Rate-limited: the first of the three (whichever socket the broker read first) is logged.
    EXPECT_THAT(logged[0], HasSubstr("dropped a malformed message on the "));
}

// ---- Lazy Pirate
// ----------------------------------------------------------------------------------

TEST_F(lb_fixture, lazy_pirate_clients_get_every_request_answered_across_a_broker_restart) {
    const std::string frontend = ipc_endpoint("lb-frontend");
    const std::string backend = ipc_endpoint("lb-backend");
    auto o = options();
    o.frontend = frontend;
    o.backend = backend;
    o.heartbeat_interval = 100ms;
    auto broker = std::make_unique<load_balancer>(ctx, o);
    broker->start();

    lb_worker_options wo;
    wo.endpoint = backend;
    wo.heartbeat_interval = 100ms;
    wo.reconnect_initial = 100ms;
    wo.reconnect_max = 400ms;
    lb_worker worker(ctx, wo, lb_bytes_handler([](std::string_view b) { return cat("ok:", b); }));
    worker.start();

    lb_client_options co;
    co.endpoint = frontend;
    co.timeout = 500ms;
    co.attempts = 40;
    lb_client client(ctx, co);
    constexpr int total = 200;
    std::map<message_id, int> answers;
    std::map<message_id, std::string> bodies;
    std::size_t failures = 0;
    auto submit = [&](int i) {
        const std::string body = cat("req", std::to_string(i));
        const auto id = client.submit(message(body), [&, body](lb_result r) {
            if (!r.ok()) {
                ++failures;
                return;
            }
            ++answers[r->causation_id()];
            EXPECT_EQ(r->body_view(), cat("ok:", body));
        });
        bodies[id] = body;
    };
    for (int i = 0; i < total / 2; ++i) {
        submit(i);
    }
    ASSERT_TRUE(client.flush(20s));
    // The second half reaches a broker that no longer reads them (paused) and then goes away
    // with them; a new one takes its place: only the clients' retries can get them answered.
    ASSERT_TRUE(broker->pause());
    for (int i = total / 2; i < total; ++i) {
        submit(i);
    }
    (void)client.poll(200ms);
    broker->stop();
    broker.reset();
    broker = std::make_unique<load_balancer>(ctx, o);
    broker->start();
    ASSERT_TRUE(client.flush(60s)) << client.pending() << " pending";
    EXPECT_EQ(failures, 0u);
    ASSERT_EQ(answers.size(), static_cast<std::size_t>(total));
    for (const auto& [id, n] : answers) {
        EXPECT_EQ(n, 1);
        EXPECT_EQ(bodies.count(id), 1u);
    }
    EXPECT_GT(client.resent(), 0u);
    EXPECT_GT(client.reconnects(), 0u);
}

TEST_F(lb_fixture, late_and_duplicate_replies_are_dropped_not_taken_for_the_next_reply) {
    // A hand-made broker (ROUTER) that misbehaves on purpose.
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
    lb_client_options co;
    co.endpoint = endpoint;
    co.timeout = 300ms;
    co.attempts = 5;
    lb_client client(ctx, co);

    std::vector<lb_result> done;
    auto done_fn = [&](lb_result r) { done.push_back(std::move(r)); };
    const auto id1 = client.submit(message("first"), done_fn);
    auto r1 = recv_frames(router); // [rid][""][header+body]
    ASSERT_EQ(r1.size(), 3u);
    header h1;
    std::size_t hs = 0;
    ASSERT_TRUE(decode_header(r1[2].data(), r1[2].size(), h1, &hs).ok());
    EXPECT_EQ(h1.id, id1);
    EXPECT_EQ(h1.attempt, 1u);
    // No answer: the client resends on a fresh socket, same id, attempt 2.
    std::vector<std::string> r1b;
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        r1b = recv_frames(router, 10ms);
        return !r1b.empty();
    }));
    ASSERT_EQ(r1b.size(), 3u);
    EXPECT_NE(r1b[0], r1[0]); // a fresh socket: a new routing id
    header h1b;
    ASSERT_TRUE(decode_header(r1b[2].data(), r1b[2].size(), h1b, &hs).ok());
    EXPECT_EQ(h1b.id, id1);
    EXPECT_EQ(h1b.attempt, 2u);
    // Two replies to the first request: one is taken, the other is a duplicate.
    const std::string reply1 = encode_header(header::follow_up(h1b)) + "one";
    send_frames(router, {r1b[0], "", reply1});
    send_frames(router, {r1b[0], "", encode_header(header::follow_up(h1b)) + "one again"});
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return done.size() == 1 && client.late_replies() == 1;
    }));
    EXPECT_EQ(done[0]->body_view(), "one");

    // The next request: a late reply to the first arrives before its own reply.
    const auto id2 = client.submit(message("second"), done_fn);
    auto r2 = recv_frames(router);
    ASSERT_EQ(r2.size(), 3u);
    header h2;
    ASSERT_TRUE(decode_header(r2[2].data(), r2[2].size(), h2, &hs).ok());
    EXPECT_EQ(h2.id, id2);
    send_frames(router, {r2[0], "", encode_header(header::follow_up(h1)) + "stale"});
    send_frames(router, {r2[0], "", encode_header(header::follow_up(h2)) + "two"});
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return done.size() == 2;
    }));
    EXPECT_EQ(done[1]->body_view(), "two");
    EXPECT_EQ(done[1]->causation_id(), id2);
    EXPECT_EQ(client.late_replies(), 2u);
}

TEST_F(lb_fixture, status_and_statistics_on_the_control_socket) {
    auto o = options();
    o.control = "inproc://" + unique_name("lb-control");
    load_balancer broker(ctx, o);
    broker.start();
    lb_worker worker(ctx, worker_options(broker, "w"),
                     lb_bytes_handler([](std::string_view b) { return std::string(b); }));
    worker.start();
    lb_client client(ctx, client_options(broker));
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(client.call(message("x")).ok());
    }
    zmq::socket_t ctl(ctx, zmq::socket_type::req);
    ctl.set(zmq::sockopt::linger, 0);
    ctl.connect(broker.control_endpoints().at(0));
    const auto stats = proxy_statistics::from_frames(request(ctl, "STATISTICS"));
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->frontend_messages_in, 3u);
    EXPECT_EQ(stats->frontend_messages_out, 3u);
    const auto status = request(ctl, "STATUS");
    ASSERT_EQ(status.size(), 1u);
    EXPECT_THAT(status[0], HasSubstr("\"requests\":3,"));
    EXPECT_THAT(status[0], HasSubstr("\"served\":3,"));
    EXPECT_THAT(status[0], HasSubstr("\"last_heartbeat_ms\":"));
    EXPECT_THAT(status[0], HasSubstr("\"expired\":0"));
    EXPECT_EQ(request(ctl, "PAUSE"), std::vector<std::string>{"OK"});
    EXPECT_THAT(request(ctl, "STATUS")[0], HasSubstr("\"state\":\"paused\""));
    EXPECT_EQ(request(ctl, "RESUME"), std::vector<std::string>{"OK"});
    EXPECT_TRUE(client.call(message("after resume")).ok());
}

// ---- worker credit (prefetch) -------------------------------------------------------------------

namespace {

std::string ready_with_credit(std::uint32_t n) {
    std::string frame(ppp::ready_credit_prefix);
    frame += std::to_string(n);
    return frame;
}

// Waits up to `quiet` for a request on a raw worker (heartbeats skipped): true if none came.
bool no_request_within(zmq::socket_t& worker, std::chrono::milliseconds quiet) {
    const std::string heartbeat("\x02", 1);
    const auto deadline = std::chrono::steady_clock::now() + quiet;
    while (std::chrono::steady_clock::now() < deadline) {
        const auto frames = recv_frames(worker, std::chrono::ceil<std::chrono::milliseconds>(
                                                    deadline - std::chrono::steady_clock::now()));
        if (!frames.empty() && (frames.size() != 1 || frames[0] != heartbeat)) {
            return false;
        }
    }
    return true;
}

// The header of the envelope request in a raw worker's frames (the content is the last frame).
header request_header(const std::vector<std::string>& frames) {
    header h;
    std::size_t size = 0;
    EXPECT_TRUE(decode_header(frames.back().data(), frames.back().size(), h, &size).ok());
    return h;
}

// A raw worker's reply to an envelope request: its address frames as received, "", the reply.
std::vector<std::string> envelope_reply(const std::vector<std::string>& request,
                                        const std::string& body) {
    std::vector<std::string> reply(request.begin(), request.end() - 2); // address frames
    reply.emplace_back();
    reply.push_back(encode_header(header::follow_up(request_header(request))) + body);
    return reply;
}

} // namespace

TEST_F(lb_fixture, a_worker_with_credit_gets_tagged_requests_up_to_its_credit_in_any_order) {
    auto o = options();
    o.control = "inproc://" + unique_name("lb-credit-control");
    load_balancer broker(ctx, o);
    broker.start();
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    worker.send(zmq::buffer(ready_with_credit(3)));
    ASSERT_TRUE(ready_workers(broker, 1));
    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    for (const char* body : {"a", "b", "c", "d"}) {
        send_frames(client, {"", body});
    }
    // Broker -> worker with credit: [tag (16 bytes)][client address][""][content], three at
    // once before any reply.
    std::vector<std::vector<std::string>> got;
    for (int i = 0; i < 3; ++i) {
        got.push_back(next_request(worker));
        ASSERT_EQ(got.back().size(), 4u) << ::testing::PrintToString(got.back());
        EXPECT_EQ(got.back()[0].size(), 16u);
        EXPECT_FALSE(got.back()[1].empty());
        EXPECT_EQ(got.back()[2], "");
    }
    EXPECT_EQ(got[0][3], "a");
    EXPECT_EQ(got[1][3], "b");
    EXPECT_EQ(got[2][3], "c");
    // One broker instance (first 8 bytes), one tag per request; the same client.
    EXPECT_EQ(got[0][0].substr(0, 8), got[1][0].substr(0, 8));
    EXPECT_EQ(got[0][0].substr(0, 8), got[2][0].substr(0, 8));
    EXPECT_NE(got[0][0], got[1][0]);
    EXPECT_NE(got[1][0], got[2][0]);
    EXPECT_EQ(got[0][1], got[1][1]);
    // Its credit is used up: "d" waits at the broker.
    EXPECT_TRUE(no_request_within(worker, 100ms));
    auto s = broker.broker_stats();
    ASSERT_TRUE(s);
    ASSERT_EQ(s->workers.size(), 1u);
    EXPECT_EQ(s->workers[0].credit, 3u);
    EXPECT_EQ(s->workers[0].in_flight, 3u);
    EXPECT_TRUE(s->workers[0].busy);
    EXPECT_FALSE(s->workers[0].ready);
    EXPECT_EQ(s->queued, 1u);
    EXPECT_EQ(s->in_flight, 3u);

    // Replies in any order, each with its tag: "c" first; the credit it frees takes "d".
    send_frames(worker, {got[2][0], got[2][1], "", "C"});
    EXPECT_EQ(recv_frames(client), (std::vector<std::string>{"", "C"}));
    const auto d = next_request(worker);
    ASSERT_EQ(d.size(), 4u);
    EXPECT_EQ(d[3], "d");
    send_frames(worker, {got[0][0], got[0][1], "", "A"});
    send_frames(worker, {d[0], d[1], "", "D"});
    send_frames(worker, {got[1][0], got[1][1], "", "B"});
    EXPECT_EQ(recv_frames(client), (std::vector<std::string>{"", "A"}));
    EXPECT_EQ(recv_frames(client), (std::vector<std::string>{"", "D"}));
    EXPECT_EQ(recv_frames(client), (std::vector<std::string>{"", "B"}));

    // A second reply with a used tag, a reply without the tag and one with another broker
    // instance's tag: late, dropped.
    send_frames(worker, {got[1][0], got[1][1], "", "B again"});
    send_frames(worker, {got[1][1], "", "untagged"});
    std::string foreign = got[1][0];
    foreign[0] = static_cast<char>(foreign[0] ^ 0x55);
    send_frames(worker, {foreign, got[1][1], "", "foreign"});
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->late_replies == 3; }));
    EXPECT_TRUE(recv_frames(client, 100ms).empty());
    s = broker.broker_stats();
    EXPECT_EQ(s->replies, 4u);
    EXPECT_EQ(s->malformed, 0u);
    ASSERT_EQ(s->workers.size(), 1u);
    EXPECT_EQ(s->workers[0].served, 4u);
    EXPECT_EQ(s->workers[0].in_flight, 0u);
    EXPECT_TRUE(s->workers[0].ready);

    zmq::socket_t ctl(ctx, zmq::socket_type::req);
    ctl.set(zmq::sockopt::linger, 0);
    ctl.connect(broker.control_endpoints().at(0));
    const auto status = request(ctl, "STATUS");
    ASSERT_EQ(status.size(), 1u);
    EXPECT_THAT(status[0], HasSubstr("\"state\":\"ready\",\"served\":4,\"in_flight\":0,"
                                     "\"credit\":3,"));
}

TEST_F(lb_fixture, credit_is_capped_and_a_bad_credit_is_counted_and_served_as_credit_one) {
    std::vector<std::string> logged;
    std::mutex log_mutex;
    auto o = options();
    o.max_prefetch = 2;
    o.log = [&](std::string_view line) {
        std::lock_guard lock(log_mutex);
        logged.emplace_back(line);
    };
    load_balancer broker(ctx, o);
    broker.start();
    auto with_id = [&](const std::string& id) {
        zmq::socket_t s(ctx, zmq::socket_type::dealer);
        s.set(zmq::sockopt::linger, 0);
        s.set(zmq::sockopt::routing_id, id);
        s.connect(broker.backend_endpoints().at(0));
        return s;
    };
    auto big = with_id("big");
    big.send(zmq::buffer(ready_with_credit(4294967295u)));
    auto bad = with_id("bad");
    bad.send(zmq::buffer(std::string("\x01", 1) + "credit=0"));
    ASSERT_TRUE(ready_workers(broker, 2));
    auto s = broker.broker_stats();
    EXPECT_EQ(s->malformed, 1u);
    for (const auto& w : s->workers) {
        EXPECT_EQ(w.credit, w.id == "626967" ? 2u : 1u) << w.id; // "big": capped at 2
    }
    {
        std::lock_guard lock(log_mutex);
        ASSERT_EQ(logged.size(), 1u);
        EXPECT_THAT(logged[0], HasSubstr("READY with credit '0'"));
    }
    // Five raw requests: "big" holds two (tagged), "bad" one (plain 6/PPP frames), two wait.
    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    for (int i = 0; i < 5; ++i) {
        send_frames(client, {"", cat("q", std::to_string(i))});
    }
    const auto b1 = next_request(big);
    const auto b2 = next_request(big);
    const auto p1 = next_request(bad);
    ASSERT_EQ(b1.size(), 4u);
    ASSERT_EQ(b2.size(), 4u);
    ASSERT_EQ(p1.size(), 3u) << ::testing::PrintToString(p1);
    EXPECT_TRUE(no_request_within(big, 50ms));
    EXPECT_TRUE(no_request_within(bad, 50ms));
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->queued == 2; }));
    // Each reply frees a credit of its worker, which takes the next waiting request.
    send_frames(bad, {p1[0], "", "ok"});
    EXPECT_EQ(recv_frames(client), (std::vector<std::string>{"", "ok"}));
    const auto p2 = next_request(bad);
    ASSERT_EQ(p2.size(), 3u);
    send_frames(big, {b1[0], b1[1], "", "ok"});
    const auto last = next_request(big);
    ASSERT_EQ(last.size(), 4u);
    send_frames(big, {b2[0], b2[1], "", "ok"});
    send_frames(big, {last[0], last[1], "", "ok"});
    send_frames(bad, {p2[0], "", "ok"});
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(recv_frames(client), (std::vector<std::string>{"", "ok"}));
    }
    s = broker.broker_stats();
    EXPECT_EQ(s->replies, 5u);
    EXPECT_EQ(s->late_replies, 0u);

    // max_prefetch 1 turns prefetch off: plain frames, one at a time.
    auto o1 = options();
    o1.name = "no-prefetch";
    o1.max_prefetch = 1;
    load_balancer broker1(ctx, o1);
    broker1.start();
    auto w = raw(zmq::socket_type::dealer, broker1.backend_endpoints().at(0));
    w.send(zmq::buffer(ready_with_credit(8)));
    ASSERT_TRUE(ready_workers(broker1, 1));
    auto c1 = raw(zmq::socket_type::dealer, broker1.frontend_endpoints().at(0));
    send_frames(c1, {"", "x"});
    send_frames(c1, {"", "y"});
    const auto x = next_request(w);
    ASSERT_EQ(x.size(), 3u);
    EXPECT_EQ(x[2], "x");
    EXPECT_TRUE(no_request_within(w, 100ms));
    EXPECT_EQ(broker1.broker_stats()->workers.at(0).credit, 1u);
    send_frames(w, {x[0], "", "X"});
    const auto y = next_request(w);
    ASSERT_EQ(y.size(), 3u);
    EXPECT_EQ(y[2], "y");
    send_frames(w, {y[0], "", "Y"});
    EXPECT_EQ(recv_frames(c1), (std::vector<std::string>{"", "X"}));
    EXPECT_EQ(recv_frames(c1), (std::vector<std::string>{"", "Y"}));
}

TEST_F(lb_fixture, prefetching_workers_share_ten_thousand_requests_each_answered_once_by_id) {
    share_ten_thousand_requests(*this, 4);
}

TEST_F(lb_fixture, a_prefetching_worker_that_expires_has_all_its_requests_dispatched_again) {
    manual_clock clk;
    load_balancer broker(ctx, clocked_options(clk));
    broker.start();
    auto a = raw_worker(broker, ready_with_credit(4), "worker-a");
    ASSERT_TRUE(ready_workers(broker, 1));

    lb_client client(ctx, client_options(broker));
    std::map<message_id, lb_result> outcomes;
    std::vector<message_id> ids;
    for (int i = 0; i < 5; ++i) {
        ids.push_back(client.submit(message(cat("job", std::to_string(i))), [&](lb_result r) {
            const auto cause = r->causation_id();
            outcomes.emplace(cause, std::move(r));
        }));
    }
    // A holds four (its credit), the fifth waits.
    std::vector<std::vector<std::string>> at_a;
    for (int i = 0; i < 4; ++i) {
        at_a.push_back(next_request(a));
        ASSERT_EQ(at_a.back().size(), 4u);
        const auto h = request_header(at_a.back());
        EXPECT_EQ(h.id, ids[static_cast<std::size_t>(i)]);
        EXPECT_EQ(h.attempt, 1u);
    }
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->queued == 1; }));

    // A goes silent past liveness x interval: all four wait again, ahead of the fifth.
    clk.offset_ms = 3100;
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->workers_expired == 1; }, 10s));
    auto s = broker.broker_stats();
    EXPECT_EQ(s->redispatched, 4u);
    EXPECT_EQ(s->queued, 5u);
    EXPECT_EQ(s->in_flight, 0u);
    EXPECT_TRUE(s->workers.empty());

    // B (credit 8) gets all five in their order: the four with attempt 2, the fifth attempt 1.
    auto b = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    b.send(zmq::buffer(ready_with_credit(8)));
    std::vector<std::vector<std::string>> at_b;
    for (int i = 0; i < 5; ++i) {
        at_b.push_back(next_request(b));
        ASSERT_EQ(at_b.back().size(), 4u);
        const auto h = request_header(at_b.back());
        EXPECT_EQ(h.id, ids[static_cast<std::size_t>(i)]);
        EXPECT_EQ(h.attempt, i < 4 ? 2u : 1u);
    }
    for (const auto& r : at_b) {
        send_frames(b, envelope_reply(r, "by b"));
    }
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return outcomes.size() == 5;
    }));
    for (const auto& id : ids) {
        ASSERT_TRUE(outcomes.at(id).ok());
        EXPECT_EQ(outcomes.at(id)->body_view(), "by b");
    }
    // A wakes up and answers what it had: every reply is late, none reaches the client.
    for (const auto& r : at_a) {
        send_frames(a, envelope_reply(r, "by a"));
    }
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->late_replies == 4; }));
    EXPECT_EQ(client.poll(100ms), 0u);
    EXPECT_EQ(client.late_replies(), 0u);
    s = broker.broker_stats();
    EXPECT_EQ(s->replies, 5u);
    EXPECT_EQ(s->errors, 0u);
}

TEST_F(lb_fixture, the_first_reply_wins_even_from_a_worker_that_expired) {
    manual_clock clk;
    load_balancer broker(ctx, clocked_options(clk));
    broker.start();
    auto a = raw_worker(broker, ready_with_credit(2));
    ASSERT_TRUE(ready_workers(broker, 1));
    lb_client client(ctx, client_options(broker));
    std::map<message_id, lb_result> outcomes;
    auto done = [&](lb_result r) {
        const auto cause = r->causation_id();
        outcomes.emplace(cause, std::move(r));
    };
    const auto id0 = client.submit(message("zero"), done);
    const auto id1 = client.submit(message("one"), done);
    const auto r0 = next_request(a);
    const auto r1 = next_request(a);
    ASSERT_EQ(r0.size(), 4u);
    ASSERT_EQ(r1.size(), 4u);
    clk.offset_ms = 3100;
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->queued == 2; }, 10s));

    // A was given up, but its reply to "zero" is the first: it answers the waiting request.
    send_frames(a, envelope_reply(r0, "zero by a"));
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return outcomes.count(id0) == 1;
    }));
    EXPECT_EQ(outcomes.at(id0)->body_view(), "zero by a");
    // Its sign of life registered A again, with credit 1 (it has not said READY since): "one"
    // comes to it again, attempt 2, in plain 6/PPP frames.
    const auto again = next_request(a);
    ASSERT_EQ(again.size(), 3u) << ::testing::PrintToString(again);
    const auto h = request_header(again);
    EXPECT_EQ(h.id, id1);
    EXPECT_EQ(h.attempt, 2u);
    send_frames(a, envelope_reply(again, "one, second time"));
    // The reply to the first dispatch of "one" comes after: late.
    send_frames(a, envelope_reply(r1, "one, first time"));
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->late_replies == 1; }));
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return outcomes.size() == 2;
    }));
    EXPECT_EQ(outcomes.at(id1)->body_view(), "one, second time");
    EXPECT_EQ(client.poll(100ms), 0u);
    EXPECT_EQ(client.late_replies(), 0u);
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->replies, 2u);
    EXPECT_EQ(s->redispatched, 2u);
    EXPECT_EQ(s->queued, 0u);
    EXPECT_EQ(s->in_flight, 0u);
}

TEST_F(lb_fixture, a_prefetching_worker_that_disconnects_has_all_its_requests_dispatched_again) {
    auto o = options();
    o.max_attempts = 2;
    load_balancer broker(ctx, o);
    broker.start();
    auto a = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    a.send(zmq::buffer(ready_with_credit(3)));
    ASSERT_TRUE(ready_workers(broker, 1));
    lb_client client(ctx, client_options(broker));
    std::vector<lb_result> done;
    for (int i = 0; i < 3; ++i) {
        (void)client.submit(message(cat("d", std::to_string(i))),
                            [&](lb_result r) { done.push_back(std::move(r)); });
    }
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(next_request(a).size(), 4u);
    }
    a.send(zmq::buffer(std::string("\x05", 1))); // DISCONNECT holding three
    auto b = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    b.send(zmq::buffer(ready_with_credit(3)));
    for (int i = 0; i < 3; ++i) {
        const auto r = next_request(b);
        ASSERT_EQ(r.size(), 4u);
        EXPECT_EQ(request_header(r).attempt, 2u);
    }
    // B leaves too: their second and last attempt is over, the client gets three errors.
    b.send(zmq::buffer(std::string("\x05", 1)));
    ASSERT_TRUE(eventually([&] {
        (void)client.poll(10ms);
        return done.size() == 3;
    }));
    for (const auto& r : done) {
        EXPECT_EQ(r.error(), lb_error::attempts);
        EXPECT_THAT(r.reason(), HasSubstr("no reply after 2 attempts"));
    }
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->workers_disconnected, 2u);
    EXPECT_EQ(s->redispatched, 3u);
    EXPECT_EQ(s->errors, 3u);
    EXPECT_EQ(s->in_flight, 0u);
    EXPECT_EQ(s->queued, 0u);
}

namespace {
// An lb_worker whose handler can see that stop() was called.
struct observable_worker : lb_worker {
    using actor::stop_requested;
    using lb_worker::lb_worker;
};
} // namespace

TEST_F(lb_fixture, a_prefetching_worker_stopped_under_load_loses_and_duplicates_nothing) {
    load_balancer broker(ctx, options());
    broker.start();
    // Some work per request, so that requests wait in the workers' sockets.
    auto handler = lb_bytes_handler([](std::string_view body) {
        const auto until = std::chrono::steady_clock::now() + 50us;
        while (std::chrono::steady_clock::now() < until) {
        }
        return cat("re:", body);
    });
    // A's workload, once `hold` is set, runs until A is told to stop (at most 10 s): A then
    // holds four requests, one in hand and three waiting in its socket, when stop() comes, and
    // the three are left to the broker.
    std::atomic<bool> hold{false}, a_holding{false};
    std::atomic<observable_worker*> a_worker{nullptr};
    auto a_handler = lb_bytes_handler([&](std::string_view body) {
        if (hold.load()) {
            a_holding = true;
            const auto until = std::chrono::steady_clock::now() + 10s;
            while (!a_worker.load()->stop_requested() && std::chrono::steady_clock::now() < until) {
                std::this_thread::yield();
            }
            // Then 2 ms of work more: the actor loop looks at its command pipe at least every
            // millisecond while busy, so the stop is seen before the next request is taken.
            const auto done = std::chrono::steady_clock::now() + 2ms;
            while (std::chrono::steady_clock::now() < done) {
            }
        }
        return cat("re:", body);
    });
    auto wa = worker_options(broker, "leaving");
    wa.prefetch = 4;
    wa.configure = [](zmq::socket_t& s) {
        s.set(zmq::sockopt::routing_id, std::string("leaving"));
    };
    auto wb = worker_options(broker, "staying");
    wb.prefetch = 4;
    auto a = std::make_unique<observable_worker>(ctx, wa, a_handler);
    a_worker = a.get();
    lb_worker b(ctx, wb, handler);
    a->start();
    b.start();
    ASSERT_TRUE(ready_workers(broker, 2));

    lb_client client(ctx, client_options(broker));
    constexpr int total = 3000;
    constexpr std::size_t window = 32;
    std::uint64_t handled_by_a = 0;
    pipelined_run run;
    run_pipelined(client, run, total, window, "s", [&] {
        if (a && run.answers.size() >= static_cast<std::size_t>(total / 3)) {
            hold = true;
            const auto s = a_holding.load() ? broker.broker_stats() : std::nullopt;
            const bool a_full = s && std::any_of(s->workers.begin(), s->workers.end(), [](auto& w) {
                                    return w.id == "6c656176696e67" && w.in_flight == 4;
                                });
            if (a_full) {
                a->stop(); // under load, holding four requests
                handled_by_a = a->counters().handled;
                a.reset();
            }
        }
    });
    EXPECT_EQ(a, nullptr);
    EXPECT_EQ(run.failures, 0u);
    ASSERT_EQ(run.answers.size(), static_cast<std::size_t>(total));
    for (const auto& [id, n] : run.answers) {
        ASSERT_EQ(n, 1) << id.to_string();
    }
    EXPECT_EQ(client.late_replies(), 0u);
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->replies, static_cast<std::uint64_t>(total));
    EXPECT_EQ(s->late_replies, 0u);
    EXPECT_EQ(s->workers_disconnected, 1u);
    EXPECT_GE(s->redispatched, 2u); // what waited in A's socket
    EXPECT_EQ(s->errors, 0u);
    // Nothing ran twice: every request was handled by exactly one worker.
    EXPECT_EQ(handled_by_a + b.counters().handled, static_cast<std::uint64_t>(total));
}

// ---- header keys the broker does not know
// --------------------------------------------------------

// docs/wire-protocol.md §6: the broker rewrites `attempt` when it dispatches a request again;
// header keys it does not know, of every msgpack type, reach the worker byte for byte on the
// first dispatch and on the re-dispatch, inline or with the body in a frame of its own.
TEST_F(lb_fixture, unknown_header_keys_reach_workers_unchanged_on_every_dispatch) {
    const auto entries = unknown_entries_of_every_type();
    load_balancer broker(ctx, options());
    broker.start();
    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    std::vector<zmq::socket_t> workers; // kept open: a DISCONNECT must not die with its socket
    for (const bool separate : {false, true}) {
        const std::string body = separate ? std::string(5000, 'L') : std::string("small");
        const header h = header::fresh(); // 3 keys: version, id, timestamp
        const std::string plain = encode_header(h);
        if (separate) {
            send_frames(client, {"", with_unknown_entries(plain, plain.size(), entries), body});
        } else {
            send_frames(client, {"", with_unknown_entries(plain + body, plain.size(), entries)});
        }
        for (std::uint32_t attempt = 1; attempt <= 2; ++attempt) {
            const std::string where = std::string(separate ? "separate" : "inline") +
                                      " layout, attempt " + std::to_string(attempt);
            // A worker with credit: it reads both layouts (and gets the tag frame).
            workers.push_back(raw_worker(broker, ready_with_credit(2)));
            auto& w = workers.back();
            const auto request = next_request(w);
            const auto delimiter = std::find(request.begin(), request.end(), std::string());
            ASSERT_NE(delimiter, request.end()) << where;
            const std::vector<std::string> address(request.begin(), delimiter);
            const std::vector<std::string> content(delimiter + 1, request.end());
            ASSERT_EQ(content.size(), separate ? 2u : 1u) << where;
            header got;
            std::size_t header_size = 0;
            ASSERT_TRUE(decode_header(content[0].data(), content[0].size(), got, &header_size));
            EXPECT_EQ(got.id, h.id) << where;
            EXPECT_EQ(got.attempt, attempt) << where;
            EXPECT_EQ(separate ? content[1] : content[0].substr(header_size), body) << where;
            expect_unknown_entries_intact(content[0].substr(0, header_size), attempt == 1 ? 3 : 4,
                                          entries, where);
            if (attempt == 2) {
                auto reply = address;
                reply.emplace_back();
                reply.push_back(encode_header(header::follow_up(got)) + "done");
                send_frames(w, reply);
            }
            w.send(zmq::buffer(std::string(ppp::disconnect_byte))); // gone: A's request goes to B
        }
        const auto reply = recv_frames(client);
        ASSERT_EQ(reply.size(), 2u);
        header rh;
        std::size_t hs = 0;
        ASSERT_TRUE(decode_header(reply[1].data(), reply[1].size(), rh, &hs));
        EXPECT_EQ(rh.causation_id, h.id);
        // B's DISCONNECT follows its reply on the same pipe; until the broker has read it, B still
        // has credit and the next request could go to it instead of to the next worker.
        ASSERT_TRUE(eventually([&] { return broker.broker_stats()->workers.empty(); }));
    }
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->redispatched, 2u);
    EXPECT_EQ(s->replies, 2u);
}

// ---- workers written like the zguide's ppworker
// ----------------------------------------------------

namespace {

// A 6/PPP worker written like the zguide's ppworker (C: bytes; C++: the words "READY" and
// "HEARTBEAT"), driven from the test thread by pump(). A request is exactly 3 frames
// [client][""][content] and a heartbeat exactly the HEARTBEAT of its dialect; anything else is
// an "invalid message": counted and dropped, as the zguide's workers do, and it does not count
// as a sign of the broker's life. Silent broker for `liveness` intervals: a fresh socket (routing
// id "<name>-<n>") and READY again, unless `stay` is set.
struct zguide_style_worker {
    zmq::context_t& ctx;
    std::string endpoint, name;
    ppp::dialect speaks;
    std::chrono::milliseconds interval;
    std::uint32_t liveness = 3;
    bool stay = false;
    std::optional<zmq::socket_t> socket;
    std::string routing_id;
    std::chrono::steady_clock::time_point last_heard, next_heartbeat;
    int invalid = 0, heartbeats = 0, reconnects = -1;
    std::vector<std::vector<std::string>> requests; // received and not answered

    zguide_style_worker(zmq::context_t& c, std::string ep, std::string n, ppp::dialect d,
                        std::chrono::milliseconds i)
        : ctx(c), endpoint(std::move(ep)), name(std::move(n)), speaks(d), interval(i) {
        connect();
    }

    void send_command(std::string_view bytes_form, std::string_view word_form) {
        const auto c = speaks == ppp::dialect::words ? word_form : bytes_form;
        socket->send(zmq::buffer(c.data(), c.size()));
    }

    void connect() {
        ++reconnects;
        routing_id = name + "-" + std::to_string(reconnects);
        socket.emplace(ctx, zmq::socket_type::dealer);
        socket->set(zmq::sockopt::linger, 0);
        socket->set(zmq::sockopt::routing_id, routing_id);
        socket->connect(endpoint);
        send_command(ppp::ready_byte, ppp::ready_word);
        last_heard = std::chrono::steady_clock::now();
        next_heartbeat = last_heard + interval;
    }

    // Takes what arrives within `wait`, heartbeats when due, reconnects after a silence.
    void pump(std::chrono::milliseconds wait = 2ms) {
        for (auto frames = recv_frames(*socket, wait); !frames.empty();
             frames = recv_frames(*socket, 0ms)) {
            if (frames.size() == 3 && frames[1].empty()) {
                requests.push_back(std::move(frames));
                last_heard = std::chrono::steady_clock::now();
            } else if (frames.size() == 1 && frames[0] == ppp::heartbeat_in(speaks)) {
                ++heartbeats;
                last_heard = std::chrono::steady_clock::now();
            } else {
                ++invalid; // "E: invalid message"
            }
        }
        const auto now = std::chrono::steady_clock::now();
        if (!stay && now - last_heard > interval * liveness) {
            connect(); // "W: heartbeat failure, can't reach queue"
            return;
        }
        if (now >= next_heartbeat) {
            next_heartbeat = now + interval;
            send_command(ppp::heartbeat_byte, ppp::heartbeat_word);
        }
    }

    // Answers an envelope request (its content, inline) with a follow-up: prefix + its body.
    void answer(const std::vector<std::string>& request, const std::string& prefix) {
        header h;
        std::size_t size = 0;
        ASSERT_TRUE(decode_header(request[2].data(), request[2].size(), h, &size).ok());
        send_frames(*socket,
                    {request[0], "",
                     encode_header(header::follow_up(h)) + prefix + request[2].substr(size)});
    }
    void answer_all(const std::string& prefix) {
        for (const auto& r : requests) {
            answer(r, prefix);
        }
        requests.clear();
    }
};

} // namespace

// Issue 14 item 8: the zguide's C++ ppworker says "READY" and "HEARTBEAT" and takes any other
// single frame for an invalid message. The broker answers each worker in the dialect it spoke,
// so such a worker stays connected, and an envelope over the inline limit reaches it as one
// content frame (it drops 4-frame requests).
TEST_F(lb_fixture, a_worker_speaking_the_words_stays_connected_and_answers_every_request) {
    auto o = options();
    o.heartbeat_interval = 50ms;
    load_balancer broker(ctx, o);
    broker.start();
    zguide_style_worker w(ctx, broker.backend_endpoints().at(0), "cpp", ppp::dialect::words, 50ms);
    lb_client client(ctx, client_options(broker));
    auto dealer = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));

    std::map<message_id, std::string> expected; // request id -> reply body
    std::map<message_id, int> answers;
    for (int i = 0; i < 20; ++i) {
        const std::string body = cat("q", std::to_string(i));
        const auto id = client.submit(message(body), [&](lb_result r) {
            ASSERT_TRUE(r.ok()) << r.reason();
            ++answers[r->causation_id()];
            EXPECT_EQ(r->body_view(), expected[r->causation_id()]);
        });
        expected[id] = cat("re:", body);
    }
    // Over the inline limit, from a sender that puts the body in a frame of its own.
    const header large = header::fresh();
    const std::string large_body(10000, 'x');
    send_frames(dealer, {"", encode_header(large), large_body});
    std::vector<std::string> large_reply;
    ASSERT_TRUE(eventually(
        [&] {
            w.pump();
            w.answer_all("re:");
            (void)client.poll(0ms);
            if (large_reply.empty()) {
                large_reply = recv_frames(dealer, 0ms);
            }
            // Several heartbeat intervals, every request answered.
            return w.heartbeats >= 10 && answers.size() == expected.size() && !large_reply.empty();
        },
        30s))
        << w.heartbeats << " heartbeats, " << answers.size() << " answers, " << w.invalid
        << " invalid messages";
    EXPECT_EQ(w.invalid, 0) << "the worker saw frames it takes for invalid messages";
    EXPECT_EQ(w.reconnects, 0) << "the worker thought the broker was gone";
    for (const auto& [id, n] : answers) {
        EXPECT_EQ(n, 1) << id.to_string();
        EXPECT_EQ(expected.count(id), 1u) << id.to_string();
    }
    ASSERT_EQ(large_reply.size(), 2u);
    header rh;
    std::size_t hs = 0;
    ASSERT_TRUE(decode_header(large_reply[1].data(), large_reply[1].size(), rh, &hs));
    EXPECT_EQ(rh.causation_id, large.id);
    EXPECT_EQ(large_reply[1].substr(hs), "re:" + large_body);
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->workers_expired, 0u);
    EXPECT_EQ(s->malformed, 0u);
    ASSERT_EQ(s->workers.size(), 1u);
    EXPECT_EQ(s->workers[0].id, "6370702d30"); // "cpp-0"
    EXPECT_EQ(s->workers[0].served, 21u);
}

// docs/wire-protocol.md §8.2: an envelope whose body travels in a frame of its own reaches a
// plain 6/PPP worker (here the zguide's C ppworker: bytes, exactly 3 frames) as one frame
// [header+body], and a worker that announced credit (lb_worker; it reads both layouts) as the
// two frames it was sent in.
TEST_F(lb_fixture, a_large_envelope_reaches_a_plain_worker_as_one_frame_a_credit_worker_as_two) {
    load_balancer broker(ctx, options()); // heartbeats 1000 ms x 3: the raw worker below has time
    broker.start();
    auto dealer = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    const std::string body(5000, 'b');

    zguide_style_worker plain(ctx, broker.backend_endpoints().at(0), "c", ppp::dialect::bytes,
                              1000ms);
    const header h1 = header::fresh();
    send_frames(dealer, {"", encode_header(h1), body});
    ASSERT_TRUE(eventually([&] {
        plain.pump();
        return !plain.requests.empty();
    }));
    EXPECT_EQ(plain.invalid, 0);
    header got;
    std::size_t hs = 0;
    ASSERT_TRUE(decode_header(plain.requests[0][2].data(), plain.requests[0][2].size(), got, &hs));
    EXPECT_EQ(got.id, h1.id);
    EXPECT_EQ(plain.requests[0][2].substr(hs), body);
    plain.answer_all("");
    EXPECT_EQ(recv_frames(dealer).size(), 2u);
    plain.send_command(ppp::disconnect_byte, ppp::disconnect_word);
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->workers.empty(); }));

    auto credit = raw_worker(broker, ready_with_credit(1));
    ASSERT_TRUE(ready_workers(broker, 1));
    const header h2 = header::fresh();
    const std::string h2_frame = encode_header(h2);
    send_frames(dealer, {"", h2_frame, body});
    const auto request = next_request(credit);
    ASSERT_EQ(request.size(), 4u); // [client][""][header][body]: no tag frame with credit 1
    EXPECT_EQ(request[1], "");
    EXPECT_EQ(request[2], h2_frame);
    EXPECT_EQ(request[3], body);
    send_frames(credit, {request[0], "", encode_header(header::follow_up(h2)) + "ok"});
    EXPECT_EQ(recv_frames(dealer).size(), 2u); // answered: nothing in flight when it stops
}

// Issue 14 item 7: a worker that heartbeats but never answers a request the broker already
// answered with "timeout" keeps its slot for a grace period (heartbeat interval x liveness),
// then is cut off as stuck: no requests, no heartbeats. Meanwhile other workers serve; its late
// reply is dropped and counted; a 6/PPP worker, hearing no heartbeats, reconnects with READY
// and is served again.
TEST_F(lb_fixture, a_worker_that_never_answers_a_timed_out_request_is_cut_off_and_rejoins) {
    std::vector<std::string> logged;
    std::mutex log_mutex;
    auto o = options();
    o.heartbeat_interval = 100ms; // grace: 300 ms
    o.log = [&](std::string_view line) {
        std::lock_guard lock(log_mutex);
        logged.emplace_back(line);
    };
    load_balancer broker(ctx, o);
    broker.start();
    const auto backend = broker.backend_endpoints().at(0);
    zguide_style_worker h(ctx, backend, "h", ppp::dialect::bytes, 100ms);
    h.stay = true; // keeps its first socket until told otherwise
    lb_client client(ctx, client_options(broker));
    std::optional<zguide_style_worker> b;
    bool h_answers = false;
    auto until = [&](const std::function<bool()>& done) {
        return eventually(
            [&] {
                h.pump(1ms);
                if (h_answers) {
                    h.answer_all("h:");
                }
                if (b) {
                    b->pump(1ms);
                    b->answer_all("b:");
                }
                (void)client.poll(0ms);
                return done();
            },
            20s);
    };
    auto stats = [&] { return *broker.broker_stats(); };
    ASSERT_TRUE(until([&] { return stats().workers.size() == 1; }));

    // A request with a deadline 300 ms away reaches H, which never answers it.
    std::map<std::string, lb_result> done;
    auto submit = [&](const std::string& body, std::optional<std::chrono::milliseconds> within) {
        message m(body);
        if (within) {
            const auto at = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()) +
                            *within;
            m.header().set_user_header(lb_deadline_header, std::to_string(at.count()));
        }
        (void)client.submit(std::move(m),
                            [&done, body](lb_result r) { done[body] = std::move(r); });
    };
    submit("slow", 300ms);
    ASSERT_TRUE(until([&] { return done.count("slow") == 1; }));
    EXPECT_EQ(done["slow"].error(), lb_error::timeout);
    ASSERT_EQ(h.requests.size(), 1u);

    // Its slot stays taken: the next request goes to another worker, B.
    b.emplace(ctx, backend, "b", ppp::dialect::bytes, 100ms);
    submit("r2", std::nullopt);
    ASSERT_TRUE(until([&] { return done.count("r2") == 1; }));
    ASSERT_TRUE(done["r2"].ok()) << done["r2"].reason();
    EXPECT_EQ(done["r2"]->body_view(), "b:r2");
    EXPECT_EQ(h.requests.size(), 1u);
    b->send_command(ppp::disconnect_byte, ppp::disconnect_word); // B leaves (its socket stays)
    zguide_style_worker gone = std::move(*b);
    b.reset();

    // The grace passes: H is cut off. Its late reply is dropped (the client never sees it).
    ASSERT_TRUE(until([&] { return stats().workers_stuck == 1; }));
    EXPECT_TRUE(stats().workers.empty());
    h.answer_all("h:");
    ASSERT_TRUE(until([&] { return stats().late_replies == 1; }));
    EXPECT_TRUE(stats().workers.empty()) << "a reply from a stuck worker registered it";

    // Hearing no heartbeats, H starts over on a fresh socket and is served again.
    h.stay = false;
    h_answers = true;
    ASSERT_TRUE(until([&] { return h.reconnects == 1 && stats().workers.size() == 1; }));
    submit("r3", std::nullopt);
    ASSERT_TRUE(until([&] { return done.count("r3") == 1; }));
    ASSERT_TRUE(done["r3"].ok()) << done["r3"].reason();
    EXPECT_EQ(done["r3"]->body_view(), "h:r3");

    const auto s = stats();
    EXPECT_EQ(s.workers_stuck, 1u);
    EXPECT_EQ(s.errors, 1u); // the timeout
    EXPECT_EQ(s.replies, 2u);
    EXPECT_EQ(client.late_replies(), 0u);
    {
        std::lock_guard lock(log_mutex);
        EXPECT_THAT(logged, ::testing::Contains(HasSubstr("is stuck")));
    }
    EXPECT_THAT(broker.status_json(), HasSubstr("\"workers_stuck\":1"));
}
