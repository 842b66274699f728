// CURVE through every pattern at library level: each component applies the security of its
// options to every socket it creates. Encrypted round trips (pipeline source -> streamer ->
// worker -> sink, publisher -> forwarder -> subscriber, load balancer, Majordomo, durable proxy
// with the reliable sender and receiver), a refused plaintext peer that gets nothing in, and
// the per-side rule of the devices (sockets.security is refused).
#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/patterns/majordomo.hpp>
#include <zmqkit/patterns/pipeline.hpp>
#include <zmqkit/patterns/pubsub.hpp>
#include <zmqkit/security.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

// One context with its authenticator, a server key pair and the clients' key pairs.
struct secured_context {
    zmq::context_t ctx;
    metrics_registry registry;
    std::vector<std::string> log_lines;
    std::mutex log_mutex;
    std::unique_ptr<authenticator> auth;
    certificate server = certificate::generate();
    certificate producer = certificate::generate();
    certificate consumer = certificate::generate();

    secured_context() {
        authenticator_options o;
        o.registry = &registry;
        o.log = [this](std::string_view line) {
            std::lock_guard lock(log_mutex);
            log_lines.emplace_back(line);
        };
        auth = std::make_unique<authenticator>(ctx, std::move(o));
    }
    ~secured_context() {
        auth.reset(); // before the context closes
    }
    // A domain that admits only `allowed`.
    void allow(const std::string& domain, const certificate& allowed) {
        zap_policy p;
        p.curve_allow_keys = {allowed.public_key};
        auth->set_policy(domain, p);
    }
    [[nodiscard]] socket_security server_side(const std::string& domain) const {
        return socket_security::curve_server(server, domain);
    }
    [[nodiscard]] socket_security client_of_server(const certificate& own) const {
        return socket_security::curve_client(server.public_key, &own);
    }
    [[nodiscard]] socket_options client_socket(const certificate& own, const std::string& name) {
        socket_options o;
        o.registry = &registry;
        o.name = name;
        o.security = client_of_server(own);
        return o;
    }
};

} // namespace

TEST(pattern_security, pipeline_source_streamer_worker_sink_encrypted) {
    secured_context s;
    s.allow("frontend", s.producer);
    s.allow("backend", s.consumer);
    s.allow("sink", s.consumer);
    streamer_options so;
    so.frontend = "tcp://127.0.0.1:*";
    so.backend = "tcp://127.0.0.1:*";
    so.registry = &s.registry;
    so.frontend_security = s.server_side("frontend");
    so.backend_security = s.server_side("backend");
    streamer device(s.ctx, so);
    device.start();
    socket_options sink_options;
    sink_options.registry = &s.registry;
    sink_options.security = s.server_side("sink");
    sink results(s.ctx, "tcp://127.0.0.1:*", sink_options);
    source jobs(s.ctx, ">" + device.frontend_endpoints().at(0),
                s.client_socket(s.producer, "source"));

    worker_options wo;
    wo.input = device.backend_endpoints().at(0);
    wo.output = results.endpoints().at(0);
    wo.registry = &s.registry;
    wo.input_security = s.client_of_server(s.consumer);
    wo.output_security = s.client_of_server(s.consumer);
    worker stage(s.ctx, wo, [](message& in) -> std::optional<message> {
        return in.follow_up("done:" + std::string(in.body_view()));
    });
    stage.start();

    std::vector<message_id> sent;
    for (int i = 0; i < 20; ++i) {
        message m("job-" + std::to_string(i));
        ASSERT_TRUE(jobs.send(m));
        sent.push_back(m.id());
    }
    for (int i = 0; i < 20; ++i) {
        auto r = results.recv(10s);
        ASSERT_TRUE(r.has_value()) << "after " << i;
        EXPECT_EQ(r->causation_id(), sent[static_cast<std::size_t>(i)]);
        EXPECT_EQ(r->body_view(), "done:job-" + std::to_string(i));
    }
    EXPECT_THAT(device.status_json(), HasSubstr("\"security\":{\"frontend\":{\"mode\":\"curve"));

    // A plaintext source is refused: nothing of it arrives, the encrypted one still gets through.
    socket_options plain;
    plain.registry = &s.registry;
    plain.name = "plaintext";
    source intruder(s.ctx, ">" + device.frontend_endpoints().at(0), plain);
    (void)intruder.send(message("intruder"));
    // The streamer's frontend monitor counts the refusal (STATUS "handshake_failures").
    ASSERT_TRUE(zmqkit::testing::eventually(
        [&] {
            const auto status = device.status_json();
            const auto side = status.find("\"security\":{\"frontend\":");
            const auto at = status.find("\"handshake_failures\":", side);
            return side != std::string::npos && at != std::string::npos &&
                   status.compare(at, 22, "\"handshake_failures\":0") != 0;
        },
        10s))
        << device.status_json();
    message after("after");
    ASSERT_TRUE(jobs.send(after));
    auto r = results.recv(10s);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->causation_id(), after.id());
    EXPECT_FALSE(results.recv(100ms).has_value());
    stage.stop();
    device.stop();
}

TEST(pattern_security, publisher_forwarder_subscriber_encrypted) {
    secured_context s;
    s.allow("frontend", s.producer);
    s.allow("backend", s.consumer);
    forwarder_options fo;
    fo.frontend = "tcp://127.0.0.1:*";
    fo.backend = "tcp://127.0.0.1:*";
    fo.registry = &s.registry;
    fo.frontend_security = s.server_side("frontend");
    fo.backend_security = s.server_side("backend");
    forwarder device(s.ctx, fo);
    device.start();
    publisher_options po;
    po.endpoints = ">" + device.frontend_endpoints().at(0);
    po.sockets = s.client_socket(s.producer, "publisher");
    publisher pub(s.ctx, po);
    subscriber_options sub_options;
    sub_options.endpoints = device.backend_endpoints().at(0);
    sub_options.sockets = s.client_socket(s.consumer, "subscriber");
    subscriber sub(s.ctx, sub_options);
    sub.subscribe("orders.");
    ASSERT_TRUE(pub.wait_for_subscriber("orders.created", 10s));
    message m("order 7");
    ASSERT_TRUE(pub.send("orders.created", m));
    auto p = sub.recv(10s);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->topic, "orders.created");
    EXPECT_EQ(p->message.id(), m.id());
    device.stop();
}

TEST(pattern_security, load_balancer_client_and_worker_encrypted) {
    secured_context s;
    s.allow("frontend", s.producer);
    s.allow("backend", s.consumer);
    load_balancer_options lo;
    lo.frontend = "tcp://127.0.0.1:*";
    lo.backend = "tcp://127.0.0.1:*";
    lo.registry = &s.registry;
    lo.frontend_security = s.server_side("frontend");
    lo.backend_security = s.server_side("backend");
    load_balancer broker(s.ctx, lo);
    broker.start();
    lb_worker_options wo;
    wo.endpoint = broker.backend_endpoints().at(0);
    wo.socket = s.client_socket(s.consumer, "lb-worker");
    lb_worker w(s.ctx, wo,
                lb_bytes_handler([](std::string_view b) { return "re:" + std::string(b); }));
    w.start();
    lb_client_options co;
    co.endpoint = broker.frontend_endpoints().at(0);
    co.socket = s.client_socket(s.producer, "lb-client");
    co.timeout = 5s;
    lb_client client(s.ctx, co);
    auto result = client.call(message("ping"));
    ASSERT_TRUE(result.ok()) << result.reason();
    EXPECT_EQ(result->body_view(), "re:ping");
    ASSERT_NE(client.handshakes(), nullptr);
    // The monitor records the handshake on its own thread: wait for it (bounded).
    std::string why;
    EXPECT_TRUE(client.handshakes()->wait_handshake(5s, &why)) << why;
    EXPECT_GE(client.handshakes()->stats().succeeded, 1U);
    w.stop();
    broker.stop();
}

TEST(pattern_security, majordomo_client_and_worker_encrypted) {
    secured_context s;
    s.allow("frontend", s.producer);
    s.allow("backend", s.consumer);
    mdp_broker_options bo;
    bo.frontend = "tcp://127.0.0.1:*";
    bo.backend = "tcp://127.0.0.1:*";
    bo.registry = &s.registry;
    bo.frontend_security = s.server_side("frontend");
    bo.backend_security = s.server_side("backend");
    mdp_broker broker(s.ctx, bo);
    broker.start();
    mdp_worker_options wo;
    wo.endpoint = broker.backend_endpoints().at(0);
    wo.service = "echo";
    wo.socket = s.client_socket(s.consumer, "mdp-worker");
    mdp_worker w(s.ctx, wo, [](const std::vector<std::string_view>& body) {
        return std::vector<std::string>(body.begin(), body.end());
    });
    w.start();
    mdp_client_options co;
    co.endpoint = broker.frontend_endpoints().at(0);
    co.socket = s.client_socket(s.producer, "mdp-client");
    co.timeout = 5s;
    mdp_client client(s.ctx, co);
    auto reply = client.call("echo", {"hello"});
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(*reply, (std::vector<std::string>{"hello"}));
    w.stop();
    broker.stop();
}

TEST(pattern_security, durable_proxy_with_reliable_sender_and_receiver_encrypted) {
    secured_context s;
    s.allow("frontend", s.producer);
    s.allow("backend", s.consumer);
    zmqkit::testing::temp_directory dir("security-durable");
    durable_proxy_options o;
    o.frontend = "tcp://127.0.0.1:*";
    o.backend = "tcp://127.0.0.1:*";
    o.spool.directory = dir.path() / "spool";
    o.registry = &s.registry;
    o.frontend_security = s.server_side("frontend");
    o.backend_security = s.server_side("backend");
    durable_proxy proxy(s.ctx, o);
    proxy.start();
    reliable_sender_options so;
    so.endpoint = proxy.frontend_endpoints().at(0);
    so.socket = s.client_socket(s.producer, "sender");
    reliable_sender sender(s.ctx, so);
    reliable_receiver_options ro;
    ro.endpoint = proxy.backend_endpoints().at(0);
    ro.socket = s.client_socket(s.consumer, "receiver");
    reliable_receiver receiver(s.ctx, ro);
    std::vector<message_id> sent;
    for (int i = 0; i < 10; ++i) {
        message m("d" + std::to_string(i));
        ASSERT_TRUE(sender.send(m));
        sent.push_back(m.id());
    }
    ASSERT_TRUE(sender.flush(10s)) << "every message confirmed";
    ASSERT_NE(sender.handshakes(), nullptr);
    for (int i = 0; i < 10; ++i) {
        auto d = receiver.recv(10s);
        ASSERT_TRUE(d.has_value()) << "after " << i;
        EXPECT_EQ(d->message.id(), sent[static_cast<std::size_t>(i)]);
        receiver.ack(*d);
    }
    receiver.flush_acks();
    std::string receiver_why;
    EXPECT_TRUE(receiver.handshakes()->wait_handshake(5s, &receiver_why)) << receiver_why;
    EXPECT_GE(receiver.handshakes()->stats().succeeded, 1U);

    // A sender whose key is not allowed gets no confirm, and the monitor says why.
    certificate stranger = certificate::generate();
    reliable_sender_options bad = so;
    bad.socket = s.client_socket(stranger, "stranger");
    reliable_sender refused(s.ctx, bad);
    ASSERT_TRUE(refused.send(message("no")));
    std::string why;
    EXPECT_FALSE(refused.handshakes()->wait_handshake(5s, &why));
    EXPECT_FALSE(why.empty());
    EXPECT_FALSE(refused.flush(200ms));
    proxy.stop();
}

TEST(pattern_security, devices_refuse_one_setting_for_every_side) {
    secured_context s;
    streamer_options so;
    so.frontend = "tcp://127.0.0.1:*";
    so.backend = "tcp://127.0.0.1:*";
    so.sockets.security = s.server_side("frontend");
    try {
        streamer device(s.ctx, so);
        ADD_FAILURE() << "sockets.security must be refused";
    } catch (const config_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("frontend_security"));
    }
    forwarder_options fo;
    fo.frontend = "tcp://127.0.0.1:*";
    fo.backend = "tcp://127.0.0.1:*";
    fo.sockets.security = s.server_side("frontend");
    EXPECT_THROW(forwarder(s.ctx, fo), config_error);
    load_balancer_options lo;
    lo.frontend = "tcp://127.0.0.1:*";
    lo.backend = "tcp://127.0.0.1:*";
    lo.sockets.security = s.server_side("frontend");
    EXPECT_THROW(load_balancer(s.ctx, lo), config_error);
    worker_options wo;
    wo.input = "tcp://127.0.0.1:9";
    wo.sockets.security = s.client_of_server(s.producer);
    try {
        worker w(s.ctx, wo, [](message&) -> std::optional<message> { return std::nullopt; });
        ADD_FAILURE() << "sockets.security must be refused";
    } catch (const config_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("input_security"));
    }
}
