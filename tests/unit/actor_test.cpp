#include <zmqkit/actor.hpp>
#include <zmqkit/endpoint.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace zmqkit;
using namespace zmqkit::testing;

namespace {

// Echo actor: binds a PULL socket in setup(), counts what arrives, answers commands.
class counting_actor : public actor {
public:
    counting_actor(zmq::context_t& ctx, std::string endpoint, bool fail_setup = false)
        : actor(ctx, "counting"), endpoint_(std::move(endpoint)), fail_setup_(fail_setup) {}
    ~counting_actor() override { stop(); }

    std::atomic<int> received{0};
    std::atomic<int> ticks{0};
    std::atomic<bool> drained{false};
    std::atomic<bool> torn_down{false};
    std::string bound;

protected:
    void setup() override {
        if (fail_setup_) {
            throw std::runtime_error("port already taken (simulated)");
        }
        pull_.emplace(context(), zmq::socket_type::pull);
        pull_->set(zmq::sockopt::linger, 0);
        bound = attach(*pull_, endpoint_, endpoint_action::bind).at(0);
        watch(*pull_, [this] {
            zmq::message_t m;
            while (pull_->recv(m, zmq::recv_flags::dontwait)) {
                ++received;
            }
        });
        every(10ms, [this] { ++ticks; });
    }
    std::vector<std::string> on_command(const std::vector<std::string>& frames) override {
        if (frames[0] == "COUNT") {
            return {std::to_string(received.load())};
        }
        if (frames[0] == "QUIT") {
            request_exit("asked to quit");
            return {"BYE"};
        }
        if (frames[0] == "THROW") {
            throw std::runtime_error("boom");
        }
        return actor::on_command(frames);
    }
    void on_stop(std::chrono::steady_clock::time_point) override { drained = true; }
    void teardown() noexcept override {
        pull_.reset();
        torn_down = true;
    }

private:
    std::string endpoint_;
    bool fail_setup_;
    std::optional<zmq::socket_t> pull_;
};

} // namespace

TEST(actor, start_returns_after_setup_bound_its_sockets) {
    zmq::context_t ctx;
    counting_actor a(ctx, "tcp://127.0.0.1:*");
    a.start();
    EXPECT_TRUE(a.running());
    ASSERT_THAT(a.bound, ::testing::StartsWith("tcp://127.0.0.1:"));
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.connect(a.bound);
    for (int i = 0; i < 100; ++i) {
        push.send(zmq::str_buffer("x"));
    }
    EXPECT_TRUE(eventually([&] { return a.received.load() == 100; }));
    auto reply = a.command({"COUNT"});
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->at(0), "100");
}

TEST(actor, setup_failure_is_thrown_from_start) {
    zmq::context_t ctx;
    counting_actor a(ctx, "inproc://x", true);
    try {
        a.start();
        FAIL() << "start must throw";
    } catch (const component_error& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("port already taken (simulated)"));
    }
    EXPECT_FALSE(a.running());
    a.stop(); // harmless after a failed start
}

TEST(actor, stop_drains_tears_down_and_is_idempotent) {
    zmq::context_t ctx;
    counting_actor a(ctx, "inproc://" + unique_name("stop"));
    a.start();
    const auto t0 = std::chrono::steady_clock::now();
    a.stop(1s);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    EXPECT_TRUE(a.drained.load());
    EXPECT_TRUE(a.torn_down.load());
    EXPECT_FALSE(a.running());
    a.stop();
    EXPECT_FALSE(a.command({"COUNT"}, 100ms).has_value()) << "no answer from a stopped actor";
}

TEST(actor, commands_are_acknowledged_and_errors_are_replies) {
    zmq::context_t ctx;
    counting_actor a(ctx, "inproc://" + unique_name("cmd"));
    a.start();
    auto unknown = a.command({"NOPE"});
    ASSERT_TRUE(unknown);
    EXPECT_THAT(unknown->at(0), ::testing::HasSubstr("unknown command 'NOPE'"));
    auto thrown = a.command({"THROW"});
    ASSERT_TRUE(thrown);
    EXPECT_EQ(thrown->at(0), "ERROR boom");
    EXPECT_TRUE(a.running()) << "a throwing command does not kill the actor";
}

TEST(actor, timers_fire) {
    zmq::context_t ctx;
    counting_actor a(ctx, "inproc://" + unique_name("tick"));
    a.start();
    EXPECT_TRUE(eventually([&] { return a.ticks.load() >= 3; }));
}

TEST(actor, an_actor_can_finish_by_itself) {
    zmq::context_t ctx;
    counting_actor a(ctx, "inproc://" + unique_name("quit"));
    a.start();
    auto reply = a.command({"QUIT"});
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->at(0), "BYE");
    EXPECT_TRUE(a.wait_finished(5s));
    EXPECT_EQ(a.failure(), "asked to quit");
    EXPECT_TRUE(a.torn_down.load());
    a.stop();
}

TEST(actor, start_twice_is_an_error) {
    zmq::context_t ctx;
    counting_actor a(ctx, "inproc://" + unique_name("twice"));
    a.start();
    EXPECT_THROW(a.start(), component_error);
}
