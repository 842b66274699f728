// The push-pull pipeline end to end over inproc, ipc and tcp: every message arrives exactly
// once (checked by id), correlation and causation ids are carried, failures go to the error
// endpoint instead of killing a worker.
#include <zmqkit/patterns/pipeline.hpp>

#include "support/testing.hpp"

#include <gtest/gtest.h>

#include <unordered_map>
#include <unordered_set>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;

namespace {

struct transport_case {
    std::string name;
    std::function<std::string(const std::string&)> endpoint; // bind-side address for a stem
};

void PrintTo(const transport_case& c, std::ostream* os) {
    *os << c.name;
}

class pipeline_transports : public ::testing::TestWithParam<transport_case> {};

// Binds source and sink on the transport, returns the addresses workers connect to.
std::string resolved(const std::vector<std::string>& bound) {
    return ">" + bound.at(0);
}

// A source and a sink over inproc with a private registry, and worker options joining them.
struct inproc_pipeline : ::testing::Test {
    zmq::context_t ctx;
    metrics_registry registry;
    socket_options so = [this] {
        socket_options o;
        o.registry = &registry;
        return o;
    }();
    source src{ctx, "inproc://" + unique_name("in"), so};
    sink snk{ctx, "inproc://" + unique_name("out"), so};

    worker_options joined(const std::string& name = "worker") {
        worker_options wo;
        wo.input = resolved(src.endpoints());
        wo.output = resolved(snk.endpoints());
        wo.name = name;
        wo.registry = &registry;
        return wo;
    }
};

} // namespace

TEST_P(pipeline_transports, hundred_thousand_messages_arrive_once_with_their_correlation) {
    constexpr int count = 100000;
    zmq::context_t ctx;
    metrics_registry registry;
    socket_options so;
    so.registry = &registry;
    source src(ctx, GetParam().endpoint("jobs"), so);
    sink snk(ctx, GetParam().endpoint("results"), so);

    worker_options wo;
    wo.input = resolved(src.endpoints());
    wo.output = resolved(snk.endpoints());
    wo.name = "doubler";
    wo.registry = &registry;
    worker_pool pool(ctx, 3, wo, [](message& in) -> std::optional<message> {
        const auto n = in.body_as<std::uint64_t>();
        return in.follow_up_packed<std::uint64_t>(n * 2);
    });
    pool.start();

    // Producer on its own thread: senders never wait on receivers beyond the HWM.
    std::unordered_map<message_id, std::uint64_t, message_id_hash> sent;
    sent.reserve(count);
    std::vector<message_id> ids(count);
    std::thread producer([&] {
        for (int i = 0; i < count; ++i) {
            auto m = message::pack(static_cast<std::uint64_t>(i));
            m.header().type = "number";
            while (!src.send(m)) {
            }
            ids[static_cast<std::size_t>(i)] = m.id();
        }
    });

    std::unordered_map<message_id, std::uint64_t, message_id_hash> received; // correlation -> value
    received.reserve(count);
    std::unordered_set<message_id, message_id_hash> result_ids;
    int duplicates = 0;
    int bad_causation = 0;
    for (int i = 0; i < count; ++i) {
        auto r = snk.recv(10s);
        ASSERT_TRUE(r.has_value()) << "timed out after " << i << " results";
        if (r->causation_id() != r->correlation_id()) {
            ++bad_causation; // one hop: the cause is the conversation's first message
        }
        if (!received.emplace(r->correlation_id(), r->body_as<std::uint64_t>()).second) {
            ++duplicates;
        }
        result_ids.insert(r->id());
    }
    producer.join();
    EXPECT_EQ(duplicates, 0);
    EXPECT_EQ(bad_causation, 0);
    EXPECT_EQ(result_ids.size(), static_cast<std::size_t>(count)) << "every result has its own id";
    int lost = 0;
    int wrong = 0;
    for (int i = 0; i < count; ++i) {
        auto it = received.find(ids[static_cast<std::size_t>(i)]);
        if (it == received.end()) {
            ++lost;
        } else if (it->second != 2U * static_cast<std::uint64_t>(i)) {
            ++wrong;
        }
    }
    EXPECT_EQ(lost, 0);
    EXPECT_EQ(wrong, 0);
    // Nothing more arrives: 100k in, 100k out.
    EXPECT_FALSE(snk.recv(100ms).has_value());
    // A worker counts an output just after sending it: wait for the last count.
    ASSERT_TRUE(eventually([&] { return pool.stats().sent == static_cast<std::uint64_t>(count); }));
    const auto stats = pool.stats();
    EXPECT_EQ(stats.received, static_cast<std::uint64_t>(count));
    EXPECT_EQ(stats.sent, static_cast<std::uint64_t>(count));
    EXPECT_EQ(stats.failed, 0U);
    // Work was spread: every worker of the pool did some.
    for (std::size_t w = 0; w < pool.size(); ++w) {
        EXPECT_GT(pool.at(w).stats().received, 0U) << "worker " << w;
    }
    pool.stop();
}

INSTANTIATE_TEST_SUITE_P(
    transports, pipeline_transports,
    ::testing::Values(
        transport_case{"inproc",
                       [](const std::string& s) { return "@inproc://" + unique_name(s); }},
        transport_case{"ipc", [](const std::string& s) { return "@" + ipc_endpoint(s); }},
        transport_case{"tcp",
                       [](const std::string&) { return std::string("@tcp://127.0.0.1:*"); }}),
    [](const auto& param_info) { return param_info.param.name; });

TEST_F(inproc_pipeline, handler_failures_go_to_the_error_endpoint_and_the_worker_survives) {
    sink errors(ctx, "inproc://" + unique_name("err"), so);
    auto wo = joined("picky");
    wo.errors = resolved(errors.endpoints());
    worker w(ctx, wo, [](message& in) -> std::optional<message> {
        if (in.body_as<int>() % 2 == 1) {
            throw std::invalid_argument("odd numbers are not accepted");
        }
        return in.follow_up("ok");
    });
    w.start();
    std::vector<message_id> odd;
    for (int i = 0; i < 100; ++i) {
        auto m = message::pack(i);
        ASSERT_TRUE(src.send(m));
        if (i % 2 == 1) {
            odd.push_back(m.id());
        }
    }
    for (int i = 0; i < 50; ++i) {
        auto good = snk.recv(5s);
        ASSERT_TRUE(good.has_value());
        EXPECT_EQ(good->body_view(), "ok");
    }
    ASSERT_TRUE(eventually([&] { return w.stats().sent == 50U; }));
    for (const auto& id : odd) {
        auto failed = errors.recv(5s);
        ASSERT_TRUE(failed.has_value());
        EXPECT_EQ(failed->id(), id) << "the failed input itself is forwarded, in order";
        ASSERT_NE(failed->header().find_user_header("error"), nullptr);
        EXPECT_EQ(*failed->header().find_user_header("error"), "odd numbers are not accepted");
        EXPECT_EQ(*failed->header().find_user_header("error-stage"), "picky");
    }
    EXPECT_TRUE(w.running());
    EXPECT_EQ(w.stats().failed, 50U);
    EXPECT_EQ(w.stats().sent, 50U);
    EXPECT_EQ(w.stats().dropped, 0U);
    auto reply = w.command({"STATISTICS"});
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(*reply, (std::vector<std::string>{"100", "50", "50", "0"}));
}

TEST_F(inproc_pipeline, failures_without_an_error_endpoint_are_counted_as_dropped) {
    worker w(ctx, joined(), [](message& in) -> std::optional<message> {
        if (in.body_view() == "bad") {
            throw 42; // not even a std::exception
        }
        return in.follow_up("ok");
    });
    w.start();
    ASSERT_TRUE(src.send(message{"bad"}));
    ASSERT_TRUE(src.send(message{"good"}));
    ASSERT_TRUE(snk.recv(5s).has_value());
    EXPECT_EQ(w.stats().failed, 1U);
    EXPECT_EQ(w.stats().dropped, 1U);
    EXPECT_TRUE(registry.prometheus_text().find(
                    "zmqkit_worker_handler_failures_total{component=\"worker\"} 1") !=
                std::string::npos);
}

TEST_F(inproc_pipeline, typed_handler_and_terminal_worker) {
    worker w(ctx, joined(), typed_handler<std::string, std::size_t>([](const std::string& s) {
                 return s.size();
             }));
    w.start();
    ASSERT_TRUE(src.send_packed(std::string("hello")));
    auto n = snk.recv_as<std::size_t>(5s);
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 5U);

    // A worker without output consumes (a terminal stage).
    std::atomic<int> seen{0};
    source src2(ctx, "inproc://" + unique_name("in2"), so);
    worker_options to;
    to.input = resolved(src2.endpoints());
    to.name = "terminal";
    to.registry = &registry;
    worker terminal(ctx, to, [&](message&) -> std::optional<message> {
        ++seen;
        return std::nullopt;
    });
    terminal.start();
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(src2.send(message{"x"}));
    }
    EXPECT_TRUE(eventually([&] { return seen.load() == 10; }));
}

TEST(pipeline, bad_configuration_is_reported_before_start) {
    zmq::context_t ctx;
    worker_options wo;
    EXPECT_THROW(worker(ctx, wo, [](message&) { return std::optional<message>{}; }), config_error);
    wo.input = "tcp://nowhere";
    EXPECT_THROW(worker(ctx, wo, [](message&) { return std::optional<message>{}; }),
                 endpoint_error);
    wo.input = ">inproc://x";
    EXPECT_THROW(worker(ctx, wo, worker_handler{}), config_error);
    EXPECT_THROW(worker_pool(ctx, 0, wo, [](message&) { return std::optional<message>{}; }),
                 config_error);
}

TEST(pipeline, stopping_a_worker_is_prompt_even_when_downstream_is_stalled) {
    zmq::context_t ctx;
    metrics_registry registry;
    socket_options so;
    so.registry = &registry;
    so.send_hwm = 10;
    so.recv_hwm = 10;
    so.send_timeout = 10ms; // the test's producer gives up quickly once the worker is stuck
    source src(ctx, "inproc://" + unique_name("in"), so);
    worker_options wo;
    wo.input = resolved(src.endpoints());
    wo.output = ">inproc://" + unique_name("nobody-binds-this"); // downstream never appears
    wo.registry = &registry;
    wo.sockets = so;
    wo.sockets.send_timeout = 5s;
    std::atomic<int> handled{0};
    worker w(ctx, wo, [&](message& in) -> std::optional<message> {
        ++handled;
        return in.follow_up("x");
    });
    w.start();
    for (int i = 0; i < 50; ++i) {
        (void)src.send(message{"x"});
    }
    ASSERT_TRUE(eventually([&] { return handled.load() > 0; }));
    const auto t0 = std::chrono::steady_clock::now();
    w.stop(200ms);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms)
        << "the deadline (200 ms) plus one send slice (100 ms), with room for a loaded machine";
    EXPECT_GE(w.stats().dropped, 1U) << "the output it could not deliver is counted";
}
