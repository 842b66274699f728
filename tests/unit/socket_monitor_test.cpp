// zmqkit::socket_monitor over real tcp sockets: events arrive with their endpoint, every wait is
// bounded, stop() ends the events, and a refused handshake is seen as such.
#include <zmqkit/socket_monitor.hpp>

#include "support/testing.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace zmqkit;
using namespace std::chrono_literals;

namespace {

struct recorded {
    std::vector<socket_event> events;
    [[nodiscard]] bool has(std::uint16_t id) const {
        for (const auto& e : events) {
            if (e.id == id) {
                return true;
            }
        }
        return false;
    }
};

// A socket of `type` with linger 0, bound to a free port of 127.0.0.1 when `endpoint` is given
// (set to the address bound).
zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type,
                          std::string* endpoint = nullptr) {
    zmq::socket_t s(ctx, type);
    s.set(zmq::sockopt::linger, 0);
    if (endpoint != nullptr) {
        s.bind("tcp://127.0.0.1:*");
        *endpoint = s.get(zmq::sockopt::last_endpoint);
    }
    return s;
}

// Polls `monitor` until an event `id` was recorded or 5 s passed.
bool wait_for(socket_monitor& monitor, const recorded& seen, std::uint16_t id) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!seen.has(id) && std::chrono::steady_clock::now() < deadline) {
        (void)monitor.poll(100ms);
    }
    return seen.has(id);
}

} // namespace

TEST(socket_monitor, reports_connect_and_handshake_with_the_endpoint) {
    zmq::context_t ctx;
    std::string endpoint;
    auto server = make_socket(ctx, zmq::socket_type::pull, &endpoint);
    auto client = make_socket(ctx, zmq::socket_type::push);
    recorded seen;
    socket_monitor monitor(client, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED,
                           [&](const socket_event& e) { seen.events.push_back(e); });
    client.connect(endpoint);
    ASSERT_TRUE(wait_for(monitor, seen, ZMQ_EVENT_HANDSHAKE_SUCCEEDED));
    ASSERT_TRUE(seen.has(ZMQ_EVENT_CONNECTED));
    EXPECT_EQ(seen.events.front().endpoint, endpoint);
}

TEST(socket_monitor, poll_is_bounded_and_stop_ends_the_events) {
    zmq::context_t ctx;
    auto client = make_socket(ctx, zmq::socket_type::push);
    recorded seen;
    socket_monitor monitor(client, ZMQ_EVENT_ALL,
                           [&](const socket_event& e) { seen.events.push_back(e); });
    const auto before = std::chrono::steady_clock::now();
    EXPECT_EQ(monitor.poll(0ms), 0U) << "nothing happened yet";
    EXPECT_EQ(monitor.poll(50ms), 0U);
    const auto took = std::chrono::steady_clock::now() - before;
    EXPECT_LT(took, 2s) << "a poll never waits longer than asked";
    monitor.stop();
    monitor.stop(); // idempotent
    std::string endpoint;
    auto server = make_socket(ctx, zmq::socket_type::pull, &endpoint);
    // Watched before the connect: a monitor started after it can miss a handshake that is over.
    zmqkit::testing::handshake_monitor server_side(ctx, server);
    client.connect(endpoint);
    ASSERT_TRUE(server_side.wait(5s)); // the connection is there: had it been monitored, ...
    EXPECT_EQ(monitor.poll(100ms), 0U) << "... a stopped monitor reports nothing";
    EXPECT_FALSE(seen.has(ZMQ_EVENT_HANDSHAKE_SUCCEEDED));
}

TEST(socket_monitor, a_refused_handshake_is_a_failure_event) {
    zmq::context_t ctx;
    // A CURVE server without a ZAP handler for this domain refuses a plaintext client: the
    // client sees the handshake fail (the mechanism does not match).
    zmq::socket_t server(ctx, zmq::socket_type::pull);
    server.set(zmq::sockopt::linger, 0);
    char public_key[41] = {};
    char secret_key[41] = {};
    ASSERT_EQ(zmq_curve_keypair(public_key, secret_key), 0);
    server.set(zmq::sockopt::curve_server, 1);
    server.set(zmq::sockopt::curve_secretkey, std::string(secret_key));
    server.bind("tcp://127.0.0.1:*");
    auto client = make_socket(ctx, zmq::socket_type::push);
    recorded seen;
    socket_monitor monitor(client,
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED,
                           [&](const socket_event& e) { seen.events.push_back(e); });
    client.connect(server.get(zmq::sockopt::last_endpoint));
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (seen.events.empty() && std::chrono::steady_clock::now() < deadline) {
        (void)monitor.poll(100ms);
    }
    ASSERT_FALSE(seen.events.empty());
    EXPECT_FALSE(seen.has(ZMQ_EVENT_HANDSHAKE_SUCCEEDED));
}
