#include <zmqkit/actor.hpp>
#include <zmqkit/endpoint.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>

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

// An actor whose setup, commands and teardown are given as functions, with the loop's
// registration methods public: tests of the event loop's contract.
class scripted_actor : public actor {
public:
    using command_fn = std::function<std::vector<std::string>(const std::vector<std::string>&)>;
    scripted_actor(zmq::context_t& ctx, std::function<void(scripted_actor&)> on_setup,
                   std::function<void()> on_teardown, command_fn on_command_fn = {})
        : actor(ctx, "scripted"), on_setup_(std::move(on_setup)),
          on_teardown_(std::move(on_teardown)), on_command_(std::move(on_command_fn)) {}
    ~scripted_actor() override { stop(); }

    using actor::context;
    using actor::every;
    using actor::note_drained;
    using actor::set_watch_enabled;
    using actor::watch;

protected:
    void setup() override { on_setup_(*this); }
    void teardown() noexcept override { on_teardown_(); }
    std::vector<std::string> on_command(const std::vector<std::string>& frames) override {
        return on_command_ ? on_command_(frames) : actor::on_command(frames);
    }

private:
    std::function<void(scripted_actor&)> on_setup_;
    std::function<void()> on_teardown_;
    command_fn on_command_;
};

// A PULL socket bound to `endpoint` on the actor thread, closed in teardown.
zmq::socket_t& bind_pull(scripted_actor& a, std::optional<zmq::socket_t>& pull,
                         const std::string& endpoint) {
    pull.emplace(a.context(), zmq::socket_type::pull);
    pull->set(zmq::sockopt::linger, 0);
    pull->bind(endpoint);
    return *pull;
}

zmq::socket_t connected(zmq::context_t& ctx, zmq::socket_type type, const std::string& endpoint) {
    zmq::socket_t s(ctx, type);
    s.set(zmq::sockopt::linger, 0);
    s.connect(endpoint);
    return s;
}

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

// ---- the event loop's contract: level-triggered watches on edge-triggered ZMQ_FDs ----

TEST(actor_loop, a_handler_reading_one_message_per_call_gets_every_queued_message) {
    zmq::context_t ctx;
    const std::string endpoint = "inproc://" + unique_name("one-per-call");
    std::optional<zmq::socket_t> pull;
    std::atomic<int> received{0};
    scripted_actor a(
        ctx,
        [&](scripted_actor& self) {
            self.watch(bind_pull(self, pull, endpoint), [&] {
                zmq::message_t m;
                if (pull->recv(m, zmq::recv_flags::dontwait)) {
                    ++received; // one message per call: the rest stays queued
                }
            });
        },
        [&] { pull.reset(); });
    a.start();
    auto push = connected(ctx, zmq::socket_type::push, endpoint);
    for (int i = 0; i < 1000; ++i) {
        push.send(zmq::str_buffer("x"));
    }
    EXPECT_TRUE(eventually([&] { return received.load() == 1000; }, 5s))
        << "received " << received.load();
}

TEST(actor_loop, a_watch_disabled_in_its_handler_delivers_queued_input_once_enabled_again) {
    zmq::context_t ctx;
    const std::string endpoint = "inproc://" + unique_name("disable");
    std::optional<zmq::socket_t> pull;
    std::atomic<int> received{0};
    scripted_actor* self_ptr = nullptr;
    scripted_actor a(
        ctx,
        [&](scripted_actor& self) {
            self_ptr = &self;
            self.watch(bind_pull(self, pull, endpoint), [&] {
                zmq::message_t m;
                if (pull->recv(m, zmq::recv_flags::dontwait)) {
                    ++received;
                    self_ptr->set_watch_enabled(*pull, false); // pause after each message
                }
            });
        },
        [&] { pull.reset(); },
        [&](const std::vector<std::string>& frames) -> std::vector<std::string> {
            if (frames[0] == "RESUME") {
                self_ptr->set_watch_enabled(*pull, true);
                return {"OK"};
            }
            return {"ERROR"};
        });
    a.start();
    auto push = connected(ctx, zmq::socket_type::push, endpoint);
    for (int i = 0; i < 10; ++i) {
        push.send(zmq::str_buffer("x"));
    }
    ASSERT_TRUE(eventually([&] { return received.load() == 1; }));
    EXPECT_FALSE(eventually([&] { return received.load() > 1; }, 100ms))
        << "a disabled watch must not be called";
    // No new traffic: the queued messages' ZMQ_FD signal is long spent; every resume must
    // still deliver one.
    for (int expected = 2; expected <= 10; ++expected) {
        const auto reply = a.command({"RESUME"});
        ASSERT_TRUE(reply && reply->at(0) == "OK");
        ASSERT_TRUE(eventually([&] { return received.load() == expected; }, 2s))
            << "expected " << expected << ", received " << received.load();
    }
}

TEST(actor_loop, pollout_watches_fire_when_the_socket_becomes_writable) {
    zmq::context_t ctx;
    const std::string endpoint = "inproc://" + unique_name("pollout");
    constexpr int total = 2000;
    std::optional<zmq::socket_t> push;
    std::atomic<int> sent{0};
    std::atomic<int> calls_while_full{0};
    scripted_actor* self_ptr = nullptr;
    scripted_actor a(
        ctx,
        [&](scripted_actor& self) {
            self_ptr = &self;
            push.emplace(self.context(), zmq::socket_type::push);
            push->set(zmq::sockopt::linger, 0);
            push->set(zmq::sockopt::sndhwm, 10);
            push->bind(endpoint);
            self.watch(
                *push, ZMQ_POLLOUT,
                [&] {
                    // One message per call: the loop calls again while the socket is writable.
                    if (!push->send(zmq::str_buffer("x"), zmq::send_flags::dontwait)) {
                        ++calls_while_full;
                        return;
                    }
                    if (++sent == total) {
                        self_ptr->set_watch_enabled(*push, ZMQ_POLLOUT, false);
                    }
                },
                true);
        },
        [&] { push.reset(); });
    a.start();
    // Until the peer connects the PUSH socket has no pipe and is not writable.
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.set(zmq::sockopt::rcvhwm, 10);
    pull.connect(endpoint);
    for (int i = 0; i < total; ++i) {
        ASSERT_TRUE(recv_within(pull, 2s)) << "message " << i << " of " << total;
    }
    EXPECT_EQ(sent.load(), total);
    EXPECT_EQ(calls_while_full.load(), 0) << "called while the socket was not writable";
}

TEST(actor_loop, timers_and_commands_run_while_a_socket_is_always_readable) {
    zmq::context_t ctx;
    const std::string endpoint = "inproc://" + unique_name("busy");
    std::optional<zmq::socket_t> in, out;
    std::atomic<std::uint64_t> handled{0};
    std::atomic<int> ticks{0};
    scripted_actor a(
        ctx,
        [&](scripted_actor& self) {
            // No high-water mark: a token sent back never meets a full pipe (and is never lost)
            // while `out` has not yet processed its peer's "read so far" notices.
            in.emplace(self.context(), zmq::socket_type::pair);
            in->set(zmq::sockopt::linger, 0);
            in->set(zmq::sockopt::rcvhwm, 0);
            in->bind(endpoint);
            out.emplace(self.context(), zmq::socket_type::pair);
            out->set(zmq::sockopt::linger, 0);
            out->set(zmq::sockopt::sndhwm, 0);
            out->connect(endpoint);
            for (int i = 0; i < 4; ++i) {
                out->send(zmq::str_buffer("token"));
            }
            // Each call passes one token around again: `in` never runs dry.
            self.watch(*in, [&] {
                zmq::message_t m;
                if (in->recv(m, zmq::recv_flags::dontwait)) {
                    if (out->send(m, zmq::send_flags::dontwait)) {
                        ++handled;
                    }
                }
            });
            self.every(1ms, [&] { ++ticks; });
        },
        [&] {
            in.reset();
            out.reset();
        },
        [&](const std::vector<std::string>&) -> std::vector<std::string> {
            return {std::to_string(handled.load())};
        });
    a.start();
    EXPECT_TRUE(eventually([&] { return ticks.load() >= 5; }, 5s)) << "ticks " << ticks.load();
    const auto before = handled.load();
    const auto reply = a.command({"HANDLED"}, 2s);
    ASSERT_TRUE(reply) << "a command must be answered while the loop is busy";
    EXPECT_GE(std::stoull(reply->at(0)), before);
    EXPECT_TRUE(eventually([&] { return handled.load() > before + 100; }))
        << "before " << before << " now " << handled.load() << " ticks " << ticks.load();
    const auto t0 = std::chrono::steady_clock::now();
    a.stop(1s);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "stop() must stay prompt under load";
    EXPECT_FALSE(a.running());
}

// A request arrives on a PULL socket; its handler sends it on a PAIR socket whose peer (the
// test) answers at once and sends the next request: the actor's send on `pair` races with the
// reply arriving on `pair`. A send processes the socket's pending commands, which can consume
// the ZMQ_FD signal of input that arrived meanwhile; the loop must still see that input
// without waiting for its poll timeout (500 ms). With `with_notes`, both handlers also note
// their socket drained, and the note on `pair` is made stale by the handler that runs after it
// and sends on `pair`.
namespace {

void expect_every_reply_despite_sends_on_the_socket(bool with_notes) {
    zmq::context_t ctx;
    const std::string requests = "inproc://" + unique_name("requests");
    const std::string peer_endpoint = "inproc://" + unique_name("peer");
    std::optional<zmq::socket_t> pull, pair;
    std::atomic<int> replies{0};
    scripted_actor a(
        ctx,
        [&](scripted_actor& self) {
            pair.emplace(self.context(), zmq::socket_type::pair);
            pair->set(zmq::sockopt::linger, 0);
            pair->bind(peer_endpoint);
            self.watch(*pair, [&] {
                zmq::message_t m;
                while (pair->recv(m, zmq::recv_flags::dontwait)) {
                    ++replies;
                }
                if (with_notes) {
                    self.note_drained(*pair);
                }
            });
            self.watch(bind_pull(self, pull, requests), [&] {
                zmq::message_t m;
                while (pull->recv(m, zmq::recv_flags::dontwait)) {
                    (void)pair->send(m, zmq::send_flags::dontwait);
                }
                if (with_notes) {
                    self.note_drained(*pull);
                }
            });
        },
        [&] {
            pull.reset();
            pair.reset();
        });
    a.start();
    auto push = connected(ctx, zmq::socket_type::push, requests);
    auto peer = connected(ctx, zmq::socket_type::pair, peer_endpoint);
    push.send(zmq::str_buffer("ping"));
    for (int i = 0; i < 300; ++i) {
        auto m = recv_within(peer, 2s);
        ASSERT_TRUE(m) << "request " << i;
        peer.send(*m, zmq::send_flags::none);
        // The next request at once: the actor's send of it on `pair` races with the reply.
        push.send(zmq::str_buffer("ping"));
        ASSERT_TRUE(eventually([&] { return replies.load() == i + 1; }, 250ms))
            << "reply " << i << " not seen within 250 ms";
    }
}

} // namespace

TEST(actor_loop, input_is_not_lost_when_another_handler_sends_on_the_socket) {
    expect_every_reply_despite_sends_on_the_socket(false);
}

// ---- note_drained(): a handler's hint that its socket has no input ----

TEST(actor_loop, a_drained_socket_still_wakes_the_loop_when_input_arrives) {
    // The loop skips asking a noted socket before it waits; its ZMQ_FD must still wake the
    // wait.
    expect_every_reply_despite_sends_on_the_socket(true);
}

namespace {

// Both sockets have input in the first round. The handler of `data` drains it and notes it;
// then the handler of `go` writes to `data` over inproc and asks `data` its state
// (ZMQ_EVENTS), which takes in the new input's command and spends its ZMQ_FD signal. The loop
// must ask `data` again before it waits instead of trusting the note, or the input waits for
// the poll timeout (500 ms; the actor has no timers). `go_notes`: whether the second handler
// notes its own socket too (a note of a later callback replaces the earlier ones; without one,
// the earlier note must be recognised as stale by itself).
void expect_stale_note_ignored(bool go_notes) {
    zmq::context_t ctx;
    const std::string data_endpoint = "inproc://" + unique_name("data");
    const std::string go_endpoint = "inproc://" + unique_name("go");
    // Connected and filled before the actor binds: both are readable in its first round.
    auto feed = connected(ctx, zmq::socket_type::push, data_endpoint);
    auto go = connected(ctx, zmq::socket_type::push, go_endpoint);
    feed.send(zmq::str_buffer("first"));
    go.send(zmq::str_buffer("go"));

    using clock = std::chrono::steady_clock;
    std::optional<zmq::socket_t> data, go_pull, writer;
    std::mutex mutex;
    std::vector<std::string> seen;
    clock::time_point written_at, second_at; // on the actor thread
    scripted_actor a(
        ctx,
        [&](scripted_actor& self) {
            self.watch(bind_pull(self, data, data_endpoint), [&] {
                zmq::message_t m;
                while (data->recv(m, zmq::recv_flags::dontwait)) {
                    std::lock_guard lock(mutex);
                    seen.push_back(m.to_string());
                    if (seen.size() == 2) {
                        second_at = clock::now();
                    }
                }
                self.note_drained(*data);
            });
            self.watch(bind_pull(self, go_pull, go_endpoint), [&] {
                zmq::message_t m;
                while (go_pull->recv(m, zmq::recv_flags::dontwait)) {
                    (void)writer->send(zmq::str_buffer("second"), zmq::send_flags::dontwait);
                    (void)data->get(zmq::sockopt::events);
                    std::lock_guard lock(mutex);
                    written_at = clock::now();
                }
                if (go_notes) {
                    self.note_drained(*go_pull);
                }
            });
            writer.emplace(self.context(), zmq::socket_type::push);
            writer->set(zmq::sockopt::linger, 0);
            writer->connect(data_endpoint);
        },
        [&] {
            data.reset();
            go_pull.reset();
            writer.reset();
        });
    a.start();
    ASSERT_TRUE(eventually(
        [&] {
            std::lock_guard lock(mutex);
            return seen.size() == 2;
        },
        5s));
    std::lock_guard lock(mutex);
    EXPECT_THAT(seen, ::testing::ElementsAre("first", "second"));
    // Measured on the actor thread: immediate when the note is ignored, 500 ms when trusted.
    EXPECT_LT(second_at - written_at, 250ms)
        << "the input written by the second handler waited for the poll timeout";
}

} // namespace

TEST(actor_loop, a_drained_note_is_ignored_when_another_handler_runs_after_it) {
    expect_stale_note_ignored(false);
}

TEST(actor_loop, a_drained_note_is_ignored_when_a_later_handler_notes_its_own_socket) {
    expect_stale_note_ignored(true);
}
