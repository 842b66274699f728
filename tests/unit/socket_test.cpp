// zmqkit::socket over real inproc/ipc/tcp sockets: envelopes round-trip, malformed messages
// from the network are counted and skipped, waits are bounded.
#include <zmqkit/socket.hpp>

#include "support/testing.hpp"

#include <gtest/gtest.h>

using namespace zmqkit;
using namespace zmqkit::testing;

namespace {

struct pair_fixture : ::testing::Test {
    zmq::context_t ctx;
    metrics_registry registry;

    socket_options opts(const std::string& name) {
        socket_options o;
        o.name = name;
        o.registry = &registry;
        return o;
    }
};

} // namespace

TEST_F(pair_fixture, envelope_round_trip_over_every_transport) {
    for (const std::string& address :
         {"inproc://" + unique_name("rt"), ipc_endpoint("rt"), std::string("tcp://127.0.0.1:*")}) {
        zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("pull"));
        zmqkit::socket push(ctx, zmq::socket_type::push, opts("push"));
        const auto bound = pull.attach(address, endpoint_action::bind);
        push.attach(bound.at(0), endpoint_action::connect);

        message m{"payload"};
        m.header().type = "order.created";
        m.header().set_user_header("tenant", "acme");
        ASSERT_TRUE(push.send(m));
        EXPECT_FALSE(m.id().is_nil()) << "send assigns the id and keeps the header";
        EXPECT_EQ(m.body_size(), 0U) << "the body was handed to libzmq";

        auto got = pull.recv(5s);
        ASSERT_TRUE(got.has_value()) << address;
        EXPECT_EQ(got->body_view(), "payload");
        EXPECT_EQ(got->id(), m.id());
        EXPECT_EQ(got->correlation_id(), m.id());
        EXPECT_EQ(got->header().type, "order.created");
        EXPECT_EQ(*got->header().find_user_header("tenant"), "acme");
    }
}

TEST_F(pair_fixture, typed_receive) {
    zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("pull"));
    zmqkit::socket push(ctx, zmq::socket_type::push, opts("push"));
    const auto ep = "inproc://" + unique_name("typed");
    pull.attach(ep, endpoint_action::bind);
    push.attach(ep, endpoint_action::connect);
    ASSERT_TRUE(push.send(message::pack(std::vector<int>{1, 2, 3})));
    auto v = pull.recv_as<std::vector<int>>(5s);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(*v, (std::vector<int>{1, 2, 3}));
}

TEST_F(pair_fixture, recv_times_out_within_its_bound) {
    zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("pull"));
    pull.attach("inproc://" + unique_name("idle"), endpoint_action::bind);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(pull.recv(50ms).has_value());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_FALSE(pull.recv(0ms).has_value());
}

TEST_F(pair_fixture, malformed_messages_are_counted_reported_and_skipped) {
    zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("pull"));
    const auto ep = "inproc://" + unique_name("bad");
    pull.attach(ep, endpoint_action::bind);
    zmq::socket_t raw(ctx, zmq::socket_type::push);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(ep);

    std::vector<decode_errc> reported;
    pull.on_decode_error([&](const decode_status& st) { reported.push_back(st.code); });

    // 1. a single plain frame (not an envelope), 2. three frames, 3. a header of an unknown
    // version, 4. garbage header, then 5. a good message: only the last must come out.
    raw.send(zmq::str_buffer("just text"));
    raw.send(zmq::str_buffer("a"), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("b"), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("c"));
    header h = header::fresh();
    auto v1 = encode_header(h);
    auto v2 = v1;
    v2[2] = '\x02'; // version byte
    raw.send(zmq::buffer(v2), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("body"));
    raw.send(zmq::str_buffer("\xc1\xc1"), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("body"));
    raw.send(zmq::buffer(v1), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("good"));

    auto got = pull.recv(5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->body_view(), "good");
    EXPECT_EQ(got->id(), h.id);
    EXPECT_EQ(pull.counters().decode_errors->value(), 4U);
    EXPECT_EQ(reported, (std::vector<decode_errc>{
                            decode_errc::not_envelope, decode_errc::bad_frame_count,
                            decode_errc::unsupported_version, decode_errc::not_envelope}));
    EXPECT_EQ(pull.last_decode_error().code, decode_errc::not_envelope);
}

TEST_F(pair_fixture, send_gives_up_after_the_send_timeout_and_keeps_the_body) {
    auto o = opts("push");
    o.send_timeout = 20ms;
    zmqkit::socket push(ctx, zmq::socket_type::push, o);
    push.attach("inproc://" + unique_name("nobody"), endpoint_action::bind); // no peer at all
    message m{"kept"};
    EXPECT_FALSE(push.send(m));
    EXPECT_EQ(m.body_view(), "kept");
    EXPECT_EQ(push.counters().send_timeouts->value(), 1U);
}

TEST_F(pair_fixture, topic_layout_on_pub_sub) {
    zmqkit::socket pub(ctx, zmq::socket_type::pub, opts("pub"));
    zmqkit::socket sub(ctx, zmq::socket_type::sub, opts("sub"));
    const auto ep = "inproc://" + unique_name("topic");
    pub.attach(ep, endpoint_action::bind);
    sub.raw().set(zmq::sockopt::subscribe, "orders.");
    sub.attach(ep, endpoint_action::connect);
    // Subscriptions travel asynchronously: publish until the subscriber sees one (bounded).
    std::optional<message> got;
    std::string topic;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!got && std::chrono::steady_clock::now() < deadline) {
        message ignored{"x"};
        ASSERT_TRUE(pub.send("other.topic", ignored));
        message m{"o-1"};
        ASSERT_TRUE(pub.send("orders.created", m));
        got = sub.recv(topic, 10ms);
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(topic, "orders.created");
    EXPECT_EQ(got->body_view(), "o-1");
}

TEST_F(pair_fixture, counters_are_registered_with_the_socket_name) {
    zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("stage.in"));
    zmqkit::socket push(ctx, zmq::socket_type::push, opts("stage.out"));
    const auto ep = "inproc://" + unique_name("count");
    pull.attach(ep, endpoint_action::bind);
    push.attach(ep, endpoint_action::connect);
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(push.send(message{"0123456789"}));
    }
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(pull.recv(5s).has_value());
    }
    const auto text = registry.prometheus_text();
    EXPECT_NE(text.find("zmqkit_socket_messages_sent_total{socket=\"stage.out\"} 10"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("zmqkit_socket_messages_received_total{socket=\"stage.in\"} 10"),
              std::string::npos);
}

TEST_F(pair_fixture, small_bodies_travel_inline_large_ones_in_their_own_frame) {
    auto o = opts("push");
    o.inline_body_limit = 100;
    zmqkit::socket push(ctx, zmq::socket_type::push, o);
    const auto ep = "inproc://" + unique_name("layout");
    zmq::socket_t raw(ctx, zmq::socket_type::pull);
    raw.set(zmq::sockopt::linger, 0);
    raw.bind(ep);
    push.attach(ep, endpoint_action::connect);

    const std::string small(100, 's');
    const std::string large(101, 'l');
    message a{small};
    ASSERT_TRUE(push.send(a));
    message b{large};
    ASSERT_TRUE(push.send(b));

    auto f = recv_within(raw, 5s);
    ASSERT_TRUE(f);
    EXPECT_FALSE(f->more()) << "[header+body]: one frame";
    header h;
    std::size_t header_size = 0;
    ASSERT_TRUE(decode_header(f->data(), f->size(), h, &header_size));
    EXPECT_EQ(h.id, a.id());
    EXPECT_EQ(f->to_string().substr(header_size), small);

    auto g = recv_within(raw, 5s);
    ASSERT_TRUE(g);
    EXPECT_TRUE(g->more()) << "[header][body]: two frames";
    ASSERT_TRUE(decode_header(g->data(), g->size(), h));
    EXPECT_EQ(h.id, b.id());
    auto body = recv_within(raw, 5s);
    ASSERT_TRUE(body);
    EXPECT_EQ(body->to_string(), large);
}

TEST_F(pair_fixture, receivers_accept_both_layouts_and_bodies_are_not_copied_out) {
    zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("pull"));
    const auto ep = "inproc://" + unique_name("both");
    pull.attach(ep, endpoint_action::bind);
    zmq::socket_t raw(ctx, zmq::socket_type::push);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(ep);
    const header h1 = header::fresh();
    const header h2 = header::fresh();
    raw.send(zmq::buffer(encode_header(h1) + "inline body"));
    raw.send(zmq::buffer(encode_header(h2)), zmq::send_flags::sndmore);
    raw.send(zmq::str_buffer("separate body"));
    raw.send(zmq::buffer(encode_header(h1))); // an inline envelope with an empty body

    auto a = pull.recv(5s);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->id(), h1.id);
    EXPECT_EQ(a->body_view(), "inline body");
    auto b = pull.recv(5s);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->id(), h2.id);
    EXPECT_EQ(b->body_view(), "separate body");
    auto c = pull.recv(5s);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->body_size(), 0U);

    // take_body() gives a frame holding exactly the body in both cases.
    auto body_a = a->take_body();
    EXPECT_EQ(body_a.to_string(), "inline body");
    EXPECT_EQ(a->body_size(), 0U);
    auto body_b = b->take_body();
    EXPECT_EQ(body_b.to_string(), "separate body");
}

TEST_F(pair_fixture, a_received_message_can_be_forwarded_as_is) {
    zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("pull"));
    zmqkit::socket push(ctx, zmq::socket_type::push, opts("push"));
    zmqkit::socket pull2(ctx, zmq::socket_type::pull, opts("pull2"));
    zmqkit::socket push2(ctx, zmq::socket_type::push, opts("push2"));
    const auto ep1 = "inproc://" + unique_name("fwd1");
    const auto ep2 = "inproc://" + unique_name("fwd2");
    pull.attach(ep1, endpoint_action::bind);
    push.attach(ep1, endpoint_action::connect);
    pull2.attach(ep2, endpoint_action::bind);
    push2.attach(ep2, endpoint_action::connect);
    message m{"hop"};
    m.header().type = "relay";
    ASSERT_TRUE(push.send(m));
    auto got = pull.recv(5s);
    ASSERT_TRUE(got);
    ASSERT_TRUE(push2.send(*got)); // the inline body is re-framed with the same header
    auto again = pull2.recv(5s);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->id(), m.id());
    EXPECT_EQ(again->body_view(), "hop");
    EXPECT_EQ(again->header().type, "relay");
}

TEST_F(pair_fixture, hot_path_forms_send_bytes_with_a_header_and_recv_into_a_message) {
    zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("pull"));
    zmqkit::socket push(ctx, zmq::socket_type::push, opts("push"));
    const auto ep = "inproc://" + unique_name("hot");
    pull.attach(ep, endpoint_action::bind);
    push.attach(ep, endpoint_action::connect);
    header h;
    h.type = "tick";
    std::vector<message_id> ids;
    for (int i = 0; i < 3; ++i) {
        h.id = {};
        h.correlation_id = {};
        ASSERT_TRUE(push.send(h, "body-" + std::to_string(i)));
        ids.push_back(h.id);
    }
    const std::string big(5000, 'b'); // above the inline limit: two frames, body copied
    h.id = {};
    h.correlation_id = {};
    ASSERT_TRUE(push.send(h, big));
    ids.push_back(h.id);
    message m;
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(pull.recv(m, 5s));
        EXPECT_EQ(m.id(), ids[static_cast<std::size_t>(i)]);
        EXPECT_EQ(m.header().type, "tick");
        EXPECT_EQ(m.body_view(), i < 3 ? "body-" + std::to_string(i) : big);
    }
    EXPECT_FALSE(pull.recv(m, 0ms));
}

TEST_F(pair_fixture, a_flood_of_malformed_messages_does_not_hold_a_receive_past_its_deadline) {
    zmqkit::socket pull(ctx, zmq::socket_type::pull, opts("pull"));
    const auto ep = "inproc://" + unique_name("flood");
    pull.attach(ep, endpoint_action::bind);
    zmq::socket_t raw(ctx, zmq::socket_type::push);
    raw.set(zmq::sockopt::linger, 0);
    raw.set(zmq::sockopt::sndhwm, 0);
    raw.connect(ep);
    for (int i = 0; i < 20000; ++i) {
        raw.send(zmq::str_buffer("not an envelope"));
    }
    EXPECT_FALSE(pull.recv(0ms).has_value()) << "recv(0) returns after one malformed message";
    EXPECT_EQ(pull.counters().decode_errors->value(), 1U);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(pull.recv(20ms).has_value());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "bounded by the 20 ms deadline";
    EXPECT_GT(pull.counters().decode_errors->value(), 1U);
}
