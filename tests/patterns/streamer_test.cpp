// The streamer device: forwarding, zmq_proxy_steerable-compatible statistics, pause/resume,
// control socket, drain on stop, back-pressure instead of loss.
#include <zmqkit/patterns/pipeline.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unordered_set>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;

namespace {

struct streamer_fixture : ::testing::Test {
    zmq::context_t ctx;
    metrics_registry registry;
    socket_options so = [this] {
        socket_options o;
        o.registry = &registry;
        return o;
    }();

    streamer_options options() {
        streamer_options o;
        o.frontend = "tcp://127.0.0.1:*";
        o.backend = "tcp://127.0.0.1:*";
        o.control = "inproc://" + unique_name("control");
        o.registry = &registry;
        return o;
    }
};

} // namespace

TEST_F(streamer_fixture, forwards_between_stages_and_counts_like_zmq_proxy) {
    streamer dev(ctx, options());
    dev.start();
    zmqkit::socket push(ctx, zmq::socket_type::push, so);
    push.attach(dev.frontend_endpoints().at(0), endpoint_action::connect);
    zmqkit::socket pull(ctx, zmq::socket_type::pull, so);
    pull.attach(dev.backend_endpoints().at(0), endpoint_action::connect);

    constexpr int count = 20000;
    std::vector<message_id> ids(count);
    std::size_t bytes = 0;
    std::atomic<bool> send_failed{false};
    std::thread producer([&] { // the receiver runs concurrently: no reliance on buffer sizes
        for (int i = 0; i < count; ++i) {
            message m{"payload-" + std::to_string(i)};
            if (!push.send(m)) {
                send_failed = true;
                return;
            }
            ids[static_cast<std::size_t>(i)] = m.id();
            bytes += encoded_size(m.header()) + ("payload-" + std::to_string(i)).size();
        }
    });
    std::vector<message_id> received;
    for (int i = 0; i < count; ++i) {
        auto m = pull.recv(5s);
        ASSERT_TRUE(m.has_value()) << "after " << i;
        received.push_back(m->id());
    }
    producer.join();
    ASSERT_FALSE(send_failed.load());
    EXPECT_EQ(received, ids) << "every message once, in order";

    // Counters are bumped just after the send: wait for the last one.
    ASSERT_TRUE(eventually([&] {
        return dev.statistics().backend_messages_out == static_cast<std::uint64_t>(count);
    }));
    const auto st = dev.statistics();
    EXPECT_EQ(st.frontend_messages_in, static_cast<std::uint64_t>(count));
    EXPECT_EQ(st.frontend_bytes_in, bytes);
    EXPECT_EQ(st.backend_messages_out, static_cast<std::uint64_t>(count));
    EXPECT_EQ(st.backend_bytes_out, bytes);
    EXPECT_EQ(st.frontend_messages_out, 0U);
    EXPECT_EQ(st.backend_messages_in, 0U);

    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(dev.control_endpoints().at(0));
    auto frames = request(req, "STATISTICS");
    ASSERT_EQ(frames.size(), 8U);
    auto parsed = proxy_statistics::from_frames(frames);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, st);
    auto status = request(req, "STATUS");
    ASSERT_EQ(status.size(), 1U);
    EXPECT_THAT(status[0], ::testing::HasSubstr("\"state\":\"running\""));
    EXPECT_THAT(status[0], ::testing::HasSubstr("\"messages_in\":20000"));
    EXPECT_THAT(request(req, "REBOOT").at(0), ::testing::HasSubstr("unknown command 'REBOOT'"));
}

TEST_F(streamer_fixture, raw_zeromq_frames_pass_unchanged) {
    streamer dev(ctx, options());
    dev.start();
    zmq::socket_t push(ctx, zmq::socket_type::push);
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    push.set(zmq::sockopt::linger, 0);
    pull.set(zmq::sockopt::linger, 0);
    push.connect(dev.frontend_endpoints().at(0));
    pull.connect(dev.backend_endpoints().at(0));
    push.send(zmq::str_buffer("one"), zmq::send_flags::sndmore);
    push.send(zmq::str_buffer(""), zmq::send_flags::sndmore);
    push.send(zmq::str_buffer("three"));
    auto a = recv_within(pull, 5s);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->to_string(), "one");
    ASSERT_TRUE(a->more());
    auto b = recv_within(pull, 5s);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->size(), 0U);
    auto c = recv_within(pull, 5s);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->to_string(), "three");
    EXPECT_FALSE(c->more());
}

TEST_F(streamer_fixture, pause_holds_messages_and_resume_releases_them) {
    streamer dev(ctx, options());
    dev.start();
    zmqkit::socket push(ctx, zmq::socket_type::push, so);
    push.attach(dev.frontend_endpoints().at(0), endpoint_action::connect);
    zmqkit::socket pull(ctx, zmq::socket_type::pull, so);
    pull.attach(dev.backend_endpoints().at(0), endpoint_action::connect);

    ASSERT_TRUE(push.send(message{"before"}));
    ASSERT_TRUE(pull.recv(5s).has_value()) << "the path works";
    ASSERT_TRUE(dev.pause());
    EXPECT_TRUE(dev.paused());
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(push.send(message{"held"}));
    }
    EXPECT_FALSE(pull.recv(100ms).has_value()) << "nothing passes while paused";
    ASSERT_TRUE(dev.resume());
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(pull.recv(5s).has_value()) << i;
    }
}

TEST_F(streamer_fixture, terminate_on_the_control_socket_finishes_the_device) {
    streamer dev(ctx, options());
    dev.start();
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(dev.control_endpoints().at(0));
    EXPECT_EQ(request(req, "terminate"), (std::vector<std::string>{"OK"})) << "case-insensitive";
    EXPECT_TRUE(dev.wait_finished(5s));
    EXPECT_TRUE(dev.terminated());
    EXPECT_TRUE(dev.failure().empty());
}

TEST_F(streamer_fixture, stop_drains_what_already_arrived) {
    auto o = options();
    streamer dev(ctx, o);
    dev.start();
    zmqkit::socket push(ctx, zmq::socket_type::push, so);
    zmqkit::testing::handshake_monitor connected(ctx, push.raw());
    push.attach(dev.frontend_endpoints().at(0), endpoint_action::connect);
    ASSERT_TRUE(connected.wait(5s));
    // No consumer yet: the backend is stalled, messages wait in the device's frontend queue.
    constexpr int count = 300;
    for (int i = 0; i < count; ++i) {
        ASSERT_TRUE(push.send(message{std::to_string(i)}));
    }
    // While stalled the device holds at most the one message it found it could not send.
    EXPECT_LE(dev.statistics().frontend_messages_in, 1U) << "reading pauses while stalled";
    zmqkit::socket pull(ctx, zmq::socket_type::pull, so);
    pull.attach(dev.backend_endpoints().at(0), endpoint_action::connect);
    std::thread stopper([&] { dev.stop(5s); });
    int got = 0;
    while (got < count && pull.recv(5s)) {
        ++got;
    }
    stopper.join(); // stop() returns after the device thread ended: counters are final
    EXPECT_EQ(got, count);
    EXPECT_EQ(dev.statistics().backend_messages_out, static_cast<std::uint64_t>(count));
}

TEST_F(streamer_fixture, a_stalled_backend_applies_back_pressure_instead_of_dropping) {
    auto o = options();
    o.sockets.send_hwm = 10;
    o.sockets.recv_hwm = 10;
    streamer dev(ctx, o);
    dev.start();
    socket_options small = so;
    small.send_hwm = 10;
    small.send_timeout = 50ms;
    zmqkit::socket push(ctx, zmq::socket_type::push, small);
    push.attach(dev.frontend_endpoints().at(0), endpoint_action::connect);
    // With no consumer, the producer is eventually refused (bounded memory), not silently
    // dropped: every message it queued is delivered once a consumer appears.
    // 64 KiB bodies: the kernel's loopback buffers (a few MiB) fill after a few hundred.
    const std::string padding(64 * 1024, 'p');
    int queued = 0;
    while (push.send(message{std::to_string(queued) + "|" + padding})) {
        ++queued;
        ASSERT_LT(queued, 5000) << "memory must stay bounded";
    }
    EXPECT_GT(
        registry.get_counter("zmqkit_device_backend_stalls_total", "", {{"component", "streamer"}})
            .value(),
        0U);
    zmqkit::socket pull(ctx, zmq::socket_type::pull, so);
    pull.attach(dev.backend_endpoints().at(0), endpoint_action::connect);
    for (int i = 0; i < queued; ++i) {
        auto m = pull.recv(5s);
        ASSERT_TRUE(m.has_value()) << i << " of " << queued;
        EXPECT_EQ(m->body_view().substr(0, m->body_view().find('|')), std::to_string(i))
            << "in order";
    }
}

TEST_F(streamer_fixture, bad_endpoints_fail_at_construction_or_start) {
    auto o = options();
    o.frontend = "tcp://127.0.0.1";
    EXPECT_THROW(streamer(ctx, o), endpoint_error);
    auto first = options();
    streamer a(ctx, first);
    a.start();
    auto clash = options();
    clash.frontend = a.frontend_endpoints().at(0);
    streamer b(ctx, clash);
    try {
        b.start();
        FAIL() << "binding a port in use must fail";
    } catch (const component_error& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("cannot bind to " + clash.frontend));
    }
}

TEST_F(streamer_fixture, capture_taps_every_message_without_ever_blocking_the_flow) {
    auto o = options();
    o.capture = "tcp://127.0.0.1:*";
    streamer dev(ctx, o);
    dev.start();
    zmqkit::socket push(ctx, zmq::socket_type::push, so);
    push.attach(dev.frontend_endpoints().at(0), endpoint_action::connect);
    zmqkit::socket pull(ctx, zmq::socket_type::pull, so);
    pull.attach(dev.backend_endpoints().at(0), endpoint_action::connect);

    // No tap connected: the flow goes on, the missed copies are counted.
    ASSERT_TRUE(push.send(message{"untapped"}));
    ASSERT_TRUE(pull.recv(5s).has_value());
    // The device counts the missed copy right after forwarding: the receiver can be faster.
    EXPECT_TRUE(eventually([&] {
        return dev.status_json().find("\"capture_drops\":1") != std::string::npos;
    })) << dev.status_json();

    zmqkit::socket tap(ctx, zmq::socket_type::pull, so);
    zmqkit::testing::handshake_monitor tapped(ctx, tap.raw());
    tap.attach(dev.capture_endpoints().at(0), endpoint_action::connect);
    ASSERT_TRUE(tapped.wait(5s));
    // The device learns of the new peer asynchronously: probe until a copy comes through.
    // Copies of earlier probes may arrive late: read the tap until the last probe's own copy.
    bool tap_live = false;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!tap_live && std::chrono::steady_clock::now() < deadline) {
        message probe{"probe"};
        ASSERT_TRUE(push.send(probe));
        ASSERT_TRUE(pull.recv(5s).has_value());
        while (auto copy = tap.recv(10ms)) {
            tap_live = copy->id() == probe.id();
            if (tap_live) {
                break;
            }
        }
    }
    ASSERT_TRUE(tap_live);
    std::vector<message_id> ids;
    for (int i = 0; i < 100; ++i) {
        message m{"tapped-" + std::to_string(i)};
        ASSERT_TRUE(push.send(m));
        ids.push_back(m.id());
    }
    for (int i = 0; i < 100; ++i) {
        auto forwarded = pull.recv(5s);
        ASSERT_TRUE(forwarded.has_value());
        EXPECT_EQ(forwarded->id(), ids[static_cast<std::size_t>(i)]);
        auto copy = tap.recv(5s);
        ASSERT_TRUE(copy.has_value());
        EXPECT_EQ(copy->id(), ids[static_cast<std::size_t>(i)]);
        EXPECT_EQ(copy->body_view(), "tapped-" + std::to_string(i));
    }
}
