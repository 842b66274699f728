// 7/MDP v0.1 (Majordomo) with 8/MMI: golden frames from the RFC texts in both directions
// (parsers, and raw peers through the broker), requests routed by service to per-service LRU
// workers and answered once each, a request waiting for a service's first worker or expiring,
// mmi.service 200/404 and 501, a worker registering mmi.* disconnected, a silent worker
// expiring (injected clock) with its request re-dispatched, unexpected commands answered with
// DISCONNECT, malformed frames counted and dropped while the broker keeps serving.
#include "patterns/load_balancer/mdp_protocol.hpp"

#include <zmqkit/patterns/majordomo.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

using views = std::vector<std::string_view>;
using frames_t = std::vector<std::string>;

const std::string ready_byte("\x01", 1), request_byte("\x02", 1), reply_byte("\x03", 1),
    heartbeat_byte("\x04", 1), disconnect_byte("\x05", 1);

// ---- golden frames, parsers only (from the text of 7/MDP) ---------------------------------------

TEST(mdp_protocol, client_request_and_reply_are_empty_mdpc01_service_body) {
    std::string why;
    auto r = mdp::parse_client_request({"", "MDPC01", "echo", "hello"}, why);
    ASSERT_TRUE(r) << why;
    EXPECT_EQ(r->service, "echo");
    EXPECT_EQ(r->body, 3u);
    r = mdp::parse_client_request({"", "MDPC01", "echo", "a", "", "c"}, why);
    ASSERT_TRUE(r) << why; // body frames are opaque, empty ones too
    auto p = mdp::parse_client_reply({"", "MDPC01", "echo", "HELLO"}, why);
    ASSERT_TRUE(p) << why;
    EXPECT_EQ(p->service, "echo");
    EXPECT_EQ(p->body, 3u);
}

TEST(mdp_protocol, worker_commands_as_the_rfc_defines_them) {
    std::string why;
    auto m = mdp::parse_worker_message({"", "MDPW01", ready_byte, "echo"}, why);
    ASSERT_TRUE(m) << why;
    EXPECT_EQ(m->what, mdp::worker_message::kind::ready);
    EXPECT_EQ(m->service, "echo");
    m = mdp::parse_worker_message(
        {"", "MDPW01", reply_byte, std::string_view("\x00k\x8b\x45\x67", 5), "", "r1", "r2"}, why);
    ASSERT_TRUE(m) << why;
    EXPECT_EQ(m->what, mdp::worker_message::kind::reply);
    EXPECT_EQ(m->client, std::string_view("\x00k\x8b\x45\x67", 5));
    EXPECT_EQ(m->body, 5u);
    m = mdp::parse_worker_message({"", "MDPW01", heartbeat_byte}, why);
    ASSERT_TRUE(m) << why;
    EXPECT_EQ(m->what, mdp::worker_message::kind::heartbeat);
    m = mdp::parse_worker_message({"", "MDPW01", disconnect_byte}, why);
    ASSERT_TRUE(m) << why;
    EXPECT_EQ(m->what, mdp::worker_message::kind::disconnect);

    auto b = mdp::parse_broker_message({"", "MDPW01", request_byte, "client", "", "job"}, why);
    ASSERT_TRUE(b) << why;
    EXPECT_EQ(b->what, mdp::broker_message::kind::request);
    EXPECT_EQ(b->client, "client");
    EXPECT_EQ(b->body, 5u);
    b = mdp::parse_broker_message({"", "MDPW01", heartbeat_byte}, why);
    ASSERT_TRUE(b) << why;
    EXPECT_EQ(b->what, mdp::broker_message::kind::heartbeat);
    b = mdp::parse_broker_message({"", "MDPW01", disconnect_byte}, why);
    ASSERT_TRUE(b) << why;
    EXPECT_EQ(b->what, mdp::broker_message::kind::disconnect);
    EXPECT_TRUE(mmi::reserved("mmi.service"));
    EXPECT_TRUE(mmi::reserved("mmi."));
    EXPECT_FALSE(mmi::reserved("mmi"));
    EXPECT_FALSE(mmi::reserved("echo.mmi."));
}

TEST(mdp_protocol, malformed_frames_are_rejected_with_a_reason) {
    const std::vector<views> bad_client{
        {},                           // nothing
        {"", "MDPC01", "echo"},       // no body
        {"x", "MDPC01", "echo", "b"}, // frame 0 not empty
        {"", "MDPC02", "echo", "b"},  // another protocol
        {"", "MDPW01", "echo", "b"},  // the worker protocol
        {"", "MDPC01", "", "b"},      // empty service
        {"MDPC01", "echo", "b"},      // a REQ's view, empty frame missing
    };
    for (const auto& f : bad_client) {
        std::string why;
        EXPECT_FALSE(mdp::parse_client_request(f, why)) << ::testing::PrintToString(f);
        EXPECT_FALSE(why.empty());
        why.clear();
        EXPECT_FALSE(mdp::parse_client_reply(f, why));
        EXPECT_FALSE(why.empty());
    }
    const std::vector<views> bad_worker{
        {},
        {""},
        {"", "MDPW01"},                                    // no command
        {"", "MDPW01", std::string_view("\x07", 1)},       // unknown command byte
        {"", "MDPW01", std::string_view("\x00", 1)},       // unknown command byte
        {"", "MDPW01", "\x01\x01"},                        // a command is one byte
        {"", "MDPW01", ready_byte},                        // READY without a service
        {"", "MDPW01", ready_byte, ""},                    // empty service
        {"", "MDPW01", ready_byte, "echo", "extra"},       // READY is 4 frames
        {"", "MDPW01", reply_byte, "client", ""},          // REPLY without a body
        {"", "MDPW01", reply_byte, "client", "x", "body"}, // no envelope delimiter
        {"", "MDPW01", reply_byte, "", "", "body"},        // empty client address
        {"", "MDPW01", heartbeat_byte, "x"},               // HEARTBEAT is 3 frames
        {"", "MDPW01", disconnect_byte, "x"},              // DISCONNECT is 3 frames
        {"", "MDPW01", request_byte, "c", "", "b"},        // REQUEST goes the other way
        {"", "MDPC01", heartbeat_byte},                    // the client protocol
        {"x", "MDPW01", heartbeat_byte},                   // frame 0 not empty
    };
    for (const auto& f : bad_worker) {
        std::string why;
        EXPECT_FALSE(mdp::parse_worker_message(f, why)) << ::testing::PrintToString(f);
        EXPECT_FALSE(why.empty());
    }
    std::string why;
    EXPECT_FALSE(mdp::parse_worker_message({"", "MDPW01", std::string_view("\x07", 1)}, why));
    EXPECT_THAT(why, HasSubstr("unknown command '\\x07'"));
    EXPECT_FALSE(mdp::parse_broker_message({"", "MDPW01", ready_byte, "echo"}, why));
    EXPECT_THAT(why, HasSubstr("unknown command '\\x01'"));
    EXPECT_FALSE(mdp::parse_broker_message({"", "MDPW01", request_byte, "c", "x", "b"}, why));
    EXPECT_FALSE(mdp::parse_broker_message({"", "MDPW01", request_byte, "c", ""}, why));
}

// ---- fixture ----------------------------------------------------------------------------------

struct manual_clock {
    std::atomic<std::int64_t> offset_ms{0};
    std::chrono::steady_clock::time_point now() const {
        return std::chrono::steady_clock::now() + std::chrono::milliseconds(offset_ms.load());
    }
};

struct mdp_fixture : ::testing::Test {
    zmq::context_t ctx;
    metrics_registry registry;

    mdp_broker_options options() {
        mdp_broker_options o;
        o.frontend = "tcp://127.0.0.1:*";
        o.backend = "tcp://127.0.0.1:*";
        o.registry = &registry;
        o.sockets.registry = &registry;
        return o;
    }

    zmq::socket_t raw(zmq::socket_type type, const std::string& endpoint,
                      const std::string& id = {}) {
        zmq::socket_t s(ctx, type);
        s.set(zmq::sockopt::linger, 0);
        if (!id.empty()) {
            s.set(zmq::sockopt::routing_id, id);
        }
        s.connect(endpoint);
        return s;
    }

    mdp_worker_options worker_options(const mdp_broker& b, const std::string& service,
                                      const std::string& name) {
        mdp_worker_options o;
        o.endpoint = b.backend_endpoints().at(0);
        o.service = service;
        o.name = name;
        return o;
    }

    mdp_client_options client_options(const mdp_broker& b) {
        mdp_client_options o;
        o.endpoint = b.frontend_endpoints().at(0);
        o.timeout = 30s;
        o.attempts = 1;
        return o;
    }

    // Waits until the broker has `n` ready workers for `service`.
    static bool ready_workers(mdp_broker& b, const std::string& service, std::size_t n) {
        return eventually(
            [&] {
                const auto s = b.broker_stats();
                if (!s) {
                    return false;
                }
                for (const auto& sv : s->services) {
                    if (sv.name == service) {
                        return sv.ready == n;
                    }
                }
                return n == 0;
            },
            10s);
    }

    // A raw MDP worker: the next message that is not a HEARTBEAT.
    static frames_t next_command(zmq::socket_t& worker) {
        for (;;) {
            auto f = recv_frames(worker);
            if (f != frames_t{"", "MDPW01", heartbeat_byte}) {
                return f;
            }
        }
    }
};

} // namespace

// ---- golden frames through the broker ---------------------------------------------------------

TEST_F(mdp_fixture, raw_client_and_raw_worker_exchange_the_rfc_frames) {
    auto o = options();
    o.heartbeat_interval = 100ms;
    o.liveness = 50; // the raw worker heartbeats by hand, rarely
    mdp_broker broker(ctx, o);
    broker.start();
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(worker, {"", "MDPW01", ready_byte, "echo"}); // READY
    ASSERT_TRUE(ready_workers(broker, "echo", 1));
    // Broker -> worker HEARTBEAT: ["" "MDPW01" 0x04].
    EXPECT_EQ(recv_frames(worker), (frames_t{"", "MDPW01", heartbeat_byte}));

    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    send_frames(client, {"", "MDPC01", "echo", "hello", "world"}); // REQUEST
    // Broker -> worker REQUEST: ["" "MDPW01" 0x02 client "" body...].
    const auto request = next_command(worker);
    ASSERT_EQ(request.size(), 7u) << ::testing::PrintToString(request);
    EXPECT_EQ(request[0], "");
    EXPECT_EQ(request[1], "MDPW01");
    EXPECT_EQ(request[2], request_byte);
    EXPECT_FALSE(request[3].empty()); // the client's routing id at the frontend
    EXPECT_EQ(request[4], "");
    EXPECT_EQ(request[5], "hello");
    EXPECT_EQ(request[6], "world");
    send_frames(worker, {"", "MDPW01", heartbeat_byte});
    // Worker -> broker REPLY; broker -> client REPLY ["" "MDPC01" service body...].
    send_frames(worker, {"", "MDPW01", reply_byte, request[3], "", "HELLO", "WORLD"});
    EXPECT_EQ(recv_frames(client), (frames_t{"", "MDPC01", "echo", "HELLO", "WORLD"}));

    // A REQ client: the socket adds and removes the empty frame.
    auto req = raw(zmq::socket_type::req, broker.frontend_endpoints().at(0));
    send_frames(req, {"MDPC01", "echo", "again"});
    const auto second = next_command(worker);
    ASSERT_EQ(second.size(), 6u);
    EXPECT_EQ(second[5], "again");
    send_frames(worker, {"", "MDPW01", reply_byte, second[3], "", "AGAIN"});
    EXPECT_EQ(recv_frames(req), (frames_t{"MDPC01", "echo", "AGAIN"}));

    // Worker -> broker DISCONNECT: it is forgotten.
    send_frames(worker, {"", "MDPW01", disconnect_byte});
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->workers.empty(); }));
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->requests, 2u);
    EXPECT_EQ(s->replies, 2u);
    EXPECT_EQ(s->workers_disconnected, 1u);
}

TEST_F(mdp_fixture, library_worker_and_client_speak_the_rfc_frames) {
    auto o = options();
    mdp_broker broker(ctx, o);
    broker.start();
    // The library client against a raw worker...
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(worker, {"", "MDPW01", ready_byte, "upper"});
    ASSERT_TRUE(ready_workers(broker, "upper", 1));
    mdp_client client(ctx, client_options(broker));
    zmqkit::result<std::vector<std::string>> reply;
    std::thread caller([&] { reply = client.call("upper", {"abc", "def"}); });
    const auto request = next_command(worker);
    ASSERT_EQ(request.size(), 7u);
    send_frames(worker, {"", "MDPW01", reply_byte, request[3], "", "ABC", "DEF"});
    caller.join();
    ASSERT_TRUE(reply);
    EXPECT_EQ(*reply, (std::vector<std::string>{"ABC", "DEF"}));
    send_frames(worker, {"", "MDPW01", disconnect_byte});

    // ... and the library worker against a raw client; its READY and REPLY are the RFC's.
    zmq::socket_t fake_broker(ctx, zmq::socket_type::router);
    fake_broker.set(zmq::sockopt::linger, 0);
    fake_broker.bind("tcp://127.0.0.1:*");
    auto wo = worker_options(broker, "svc", "lib-worker");
    wo.endpoint = fake_broker.get(zmq::sockopt::last_endpoint);
    wo.heartbeat_interval = 5s;
    mdp_worker lib(ctx, wo, [](const std::vector<std::string_view>& body) {
        return std::vector<std::string>{"got " + std::to_string(body.size()), std::string(body[0])};
    });
    lib.start();
    auto ready = recv_frames(fake_broker);
    ASSERT_EQ(ready.size(), 5u);
    EXPECT_EQ(frames_t(ready.begin() + 1, ready.end()),
              (frames_t{"", "MDPW01", ready_byte, "svc"}));
    send_frames(fake_broker, {ready[0], "", "MDPW01", request_byte, "client-7", "", "x", "y"});
    auto answer = recv_frames(fake_broker);
    ASSERT_EQ(answer.size(), 8u);
    EXPECT_EQ(frames_t(answer.begin() + 1, answer.end()),
              (frames_t{"", "MDPW01", reply_byte, "client-7", "", "got 2", "x"}));
    lib.stop();
    // stop(): DISCONNECT ["" "MDPW01" 0x05].
    auto bye = recv_frames(fake_broker);
    ASSERT_EQ(bye.size(), 4u);
    EXPECT_EQ(frames_t(bye.begin() + 1, bye.end()), (frames_t{"", "MDPW01", disconnect_byte}));
}

// ---- routing by service, exactly once ----------------------------------------------------------

TEST_F(mdp_fixture, two_services_with_two_workers_each_every_request_answered_once) {
    mdp_broker broker(ctx, options());
    broker.start();
    std::vector<std::unique_ptr<mdp_worker>> workers;
    for (const std::string service : {"alpha", "beta"}) {
        for (int i = 0; i < 2; ++i) {
            workers.push_back(std::make_unique<mdp_worker>(
                ctx, worker_options(broker, service, service + std::to_string(i)),
                [service](const std::vector<std::string_view>& body) {
                    return std::vector<std::string>{service + ":" + std::string(body[0])};
                }));
            workers.back()->start();
        }
    }
    ASSERT_TRUE(ready_workers(broker, "alpha", 2));
    ASSERT_TRUE(ready_workers(broker, "beta", 2));

    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    constexpr int total = 2000;
    constexpr int window = 100; // requests in flight at once, far below the HWMs
    std::map<std::string, int> answers;
    int sent = 0;
    for (int received = 0; received < total; ++received) {
        while (sent < total && sent - received < window) {
            const std::string service = sent % 2 == 0 ? "alpha" : "beta";
            send_frames(client, {"", "MDPC01", service, "r" + std::to_string(sent++)});
        }
        const auto reply = recv_frames(client, 30s);
        ASSERT_EQ(reply.size(), 4u) << "after " << received << " replies";
        ASSERT_EQ(reply[0], "");
        ASSERT_EQ(reply[1], "MDPC01");
        // Routed by service: the reply names the service and came from one of its workers.
        ASSERT_EQ(reply[3].substr(0, reply[2].size() + 1), reply[2] + ":");
        const std::string id = reply[3].substr(reply[2].size() + 1);
        const int n = std::stoi(id.substr(1));
        EXPECT_EQ(reply[2], n % 2 == 0 ? "alpha" : "beta");
        ++answers[id];
    }
    ASSERT_EQ(answers.size(), static_cast<std::size_t>(total));
    for (const auto& [id, n] : answers) {
        ASSERT_EQ(n, 1) << id;
    }
    const auto s = broker.broker_stats();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->requests, static_cast<std::uint64_t>(total));
    EXPECT_EQ(s->replies, static_cast<std::uint64_t>(total));
    EXPECT_EQ(metric_total(registry, "zmqkit_mdp_request_seconds_count"), total)
        << "each reply's round trip observed once";
    ASSERT_EQ(s->workers.size(), 4u);
    std::map<std::string, std::uint64_t> served;
    for (const auto& w : s->workers) {
        EXPECT_GT(w.served, static_cast<std::uint64_t>(total) / 4 / 4) << w.id << " " << w.service;
        served[w.service] += w.served;
    }
    EXPECT_EQ(served["alpha"], static_cast<std::uint64_t>(total / 2));
    EXPECT_EQ(served["beta"], static_cast<std::uint64_t>(total / 2));
    std::uint64_t handled = 0;
    for (auto& w : workers) {
        handled += w->counters().handled;
    }
    EXPECT_EQ(handled, static_cast<std::uint64_t>(total));
}

// ---- requests without a worker ----------------------------------------------------------------

TEST_F(mdp_fixture, a_request_waits_for_the_first_worker_of_its_service_or_expires) {
    manual_clock clk;
    auto o = options();
    o.request_expiry = 5s;
    o.tick = 5ms;
    o.clock = [&clk] { return clk.now(); };
    mdp_broker broker(ctx, o);
    broker.start();
    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    send_frames(client, {"", "MDPC01", "late", "first"});
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->queued == 1; }));
    clk.offset_ms = 4000; // not expired yet
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(worker, {"", "MDPW01", ready_byte, "late"});
    const auto request = next_command(worker);
    ASSERT_EQ(request.size(), 6u);
    EXPECT_EQ(request[5], "first");
    send_frames(worker, {"", "MDPW01", reply_byte, request[3], "", "served"});
    EXPECT_EQ(recv_frames(client), (frames_t{"", "MDPC01", "late", "served"}));

    // A request for a service nobody offers expires after request_expiry: dropped (MDP has no
    // error reply), counted for its service.
    send_frames(client, {"", "MDPC01", "nobody", "lost"});
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->queued == 1; }));
    clk.offset_ms = 8000;
    EXPECT_FALSE(eventually([&] { return broker.broker_stats()->expired > 0; }, 100ms));
    clk.offset_ms = 9100;
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->expired == 1; }));
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->queued, 0u);
    const auto it = std::find_if(s->services.begin(), s->services.end(),
                                 [](const auto& sv) { return sv.name == "nobody"; });
    ASSERT_NE(it, s->services.end());
    EXPECT_EQ(it->expired, 1u);
    // A worker for it now gets nothing; the client gets nothing.
    auto late = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(late, {"", "MDPW01", ready_byte, "nobody"});
    ASSERT_TRUE(ready_workers(broker, "nobody", 1));
    EXPECT_FALSE(recv_within(client, 100ms));
}

// ---- 8/MMI ------------------------------------------------------------------------------------

TEST_F(mdp_fixture, mmi_service_answers_200_or_404_and_other_mmi_services_501) {
    mdp_broker broker(ctx, options());
    broker.start();
    mdp_worker w(
        ctx, worker_options(broker, "present", "present"),
        [](const std::vector<std::string_view>&) { return std::vector<std::string>{"x"}; });
    w.start();
    ASSERT_TRUE(ready_workers(broker, "present", 1));
    mdp_client client(ctx, client_options(broker));
    EXPECT_EQ(client.service_status("present"), std::optional<std::string>("200"));
    EXPECT_EQ(client.service_status("absent"), std::optional<std::string>("404"));
    // The raw frames: the reply names the mmi service.
    auto raw_client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    send_frames(raw_client, {"", "MDPC01", "mmi.service", "present"});
    EXPECT_EQ(recv_frames(raw_client), (frames_t{"", "MDPC01", "mmi.service", "200"}));
    send_frames(raw_client, {"", "MDPC01", "mmi.foo", "anything"});
    EXPECT_EQ(recv_frames(raw_client), (frames_t{"", "MDPC01", "mmi.foo", "501"}));
    // A busy worker is still registered: 200.
    auto busy = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(busy, {"", "MDPW01", ready_byte, "slow"});
    ASSERT_TRUE(ready_workers(broker, "slow", 1));
    send_frames(raw_client, {"", "MDPC01", "slow", "job"});
    ASSERT_EQ(next_command(busy).size(), 6u);
    EXPECT_EQ(client.service_status("slow"), std::optional<std::string>("200"));
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->mmi, 5u);
    EXPECT_EQ(s->requests, 1u);                         // mmi requests are not worker requests
    send_frames(busy, {"", "MDPW01", disconnect_byte}); // nothing left in flight to drain
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->in_flight == 0; }));
}

TEST_F(mdp_fixture, a_worker_registering_an_mmi_service_is_disconnected) {
    mdp_broker broker(ctx, options());
    broker.start();
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(worker, {"", "MDPW01", ready_byte, "mmi.x"});
    EXPECT_EQ(recv_frames(worker), (frames_t{"", "MDPW01", disconnect_byte}));
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->disconnects, 1u);
    EXPECT_TRUE(s->workers.empty());
    mdp_client client(ctx, client_options(broker));
    EXPECT_EQ(client.service_status("mmi.x"), std::optional<std::string>("404"));
    // The library refuses it up front.
    EXPECT_THROW(
        mdp_worker(ctx, worker_options(broker, "mmi.y", "w"),
                   [](const std::vector<std::string_view>&) { return std::vector<std::string>{}; }),
        config_error);
}

TEST_F(mdp_fixture, unexpected_commands_get_disconnect_and_the_library_worker_registers_again) {
    mdp_broker broker(ctx, options());
    broker.start();
    // A second READY, a REPLY with no request, a HEARTBEAT before READY: DISCONNECT.
    auto twice = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(twice, {"", "MDPW01", ready_byte, "svc"});
    send_frames(twice, {"", "MDPW01", ready_byte, "svc"});
    EXPECT_EQ(next_command(twice), (frames_t{"", "MDPW01", disconnect_byte}));
    auto idle = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(idle, {"", "MDPW01", ready_byte, "svc"});
    send_frames(idle, {"", "MDPW01", reply_byte, "someone", "", "unasked"});
    EXPECT_EQ(next_command(idle), (frames_t{"", "MDPW01", disconnect_byte}));
    auto stranger = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(stranger, {"", "MDPW01", heartbeat_byte});
    EXPECT_EQ(recv_frames(stranger), (frames_t{"", "MDPW01", disconnect_byte}));
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->disconnects == 3; }));
    EXPECT_TRUE(broker.broker_stats()->workers.empty());

    // The library worker answers DISCONNECT with a fresh socket and a new READY: a handler
    // that throws makes it leave, and the request goes to it again as a new worker.
    std::atomic<int> calls{0};
    mdp_worker w(ctx, worker_options(broker, "flaky", "flaky"),
                 [&calls](const std::vector<std::string_view>& body) {
                     if (calls.fetch_add(1) == 0) {
                         throw std::runtime_error("first call fails");
                     }
                     return std::vector<std::string>{"ok " + std::string(body[0])};
                 });
    w.start();
    ASSERT_TRUE(ready_workers(broker, "flaky", 1));
    mdp_client client(ctx, client_options(broker));
    const auto reply = client.call("flaky", {"job"});
    ASSERT_TRUE(reply);
    EXPECT_EQ(*reply, (std::vector<std::string>{"ok job"}));
    EXPECT_EQ(w.counters().failed, 1u);
    EXPECT_EQ(w.counters().reconnects, 1u);
    EXPECT_EQ(broker.broker_stats()->redispatched, 1u);
}

// ---- expiry and re-dispatch -------------------------------------------------------------------

TEST_F(mdp_fixture, a_silent_worker_expires_and_its_request_goes_to_another_worker) {
    manual_clock clk;
    auto o = options();
    o.heartbeat_interval = 2500ms; // the RFC's usual defaults: 2500 ms x 3
    o.liveness = 3;
    o.tick = 5ms;
    o.clock = [&clk] { return clk.now(); };
    mdp_broker broker(ctx, o);
    broker.start();
    auto a = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0), "worker-a");
    send_frames(a, {"", "MDPW01", ready_byte, "job"});
    ASSERT_TRUE(ready_workers(broker, "job", 1));
    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    send_frames(client, {"", "MDPC01", "job", "work"});
    const auto first = next_command(a);
    ASSERT_EQ(first.size(), 6u);

    clk.offset_ms = 7000; // under 7500 ms: alive
    EXPECT_FALSE(eventually([&] { return broker.broker_stats()->workers_expired > 0; }, 200ms));
    clk.offset_ms = 7600;
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->workers_expired == 1; }));
    auto s = broker.broker_stats();
    EXPECT_EQ(s->redispatched, 1u);
    EXPECT_EQ(s->queued, 1u);
    EXPECT_TRUE(s->workers.empty());

    auto b = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(b, {"", "MDPW01", ready_byte, "job"});
    const auto second = next_command(b);
    ASSERT_EQ(second.size(), 6u);
    EXPECT_EQ(second[3], first[3]); // the same client
    EXPECT_EQ(second[5], "work");
    send_frames(b, {"", "MDPW01", reply_byte, second[3], "", "done by b"});
    EXPECT_EQ(recv_frames(client), (frames_t{"", "MDPC01", "job", "done by b"}));

    // A wakes up and answers late: it is not registered any more, so DISCONNECT; the client
    // never sees the late reply.
    send_frames(a, {"", "MDPW01", reply_byte, first[3], "", "done by a"});
    EXPECT_EQ(next_command(a), (frames_t{"", "MDPW01", disconnect_byte}));
    EXPECT_FALSE(recv_within(client, 100ms));
    s = broker.broker_stats();
    EXPECT_EQ(s->replies, 1u);
}

TEST_F(mdp_fixture, a_long_handler_that_calls_keep_alive_is_not_expired) {
    auto o = options();
    o.heartbeat_interval = 50ms;
    o.liveness = 3; // silent for 150 ms: expired
    mdp_broker broker(ctx, o);
    broker.start();
    std::promise<void> release;
    const auto released = release.get_future().share();
    std::atomic<bool> handling{false};
    mdp_worker* self = nullptr;
    auto wo = worker_options(broker, "slow", "slow-worker");
    wo.heartbeat_interval = 50ms;
    wo.liveness = 3;
    std::mutex lines_mutex;
    std::vector<std::string> lines; // the worker's log
    wo.log = [&](std::string_view line) {
        const std::lock_guard lock(lines_mutex);
        lines.emplace_back(line);
    };
    mdp_worker worker(ctx, wo, [&](const std::vector<std::string_view>& body) {
        handling = true;
        while (released.wait_for(10ms) != std::future_status::ready) {
            self->keep_alive();
        }
        return std::vector<std::string>{"done:" + std::string(body.at(0))};
    });
    self = &worker;
    worker.start();
    ASSERT_TRUE(ready_workers(broker, "slow", 1));
    mdp_client client(ctx, client_options(broker));
    zmqkit::result<std::vector<std::string>> reply;
    std::thread caller([&] { reply = client.call("slow", {"job"}); });
    ASSERT_TRUE(eventually([&] { return handling.load(); }));
    const auto heard = broker.statistics().backend_messages_in;
    ASSERT_TRUE(
        eventually([&] { return broker.statistics().backend_messages_in >= heard + 8; }, 10s));
    EXPECT_EQ(broker.broker_stats()->workers_expired, 0U);
    release.set_value();
    caller.join();
    ASSERT_TRUE(reply.ok()) << reply.reason();
    EXPECT_EQ(*reply, (std::vector<std::string>{"done:job"}));
    // Back from it, the worker reads the heartbeats that waited (the reader runs on after a
    // request): no silence, no reconnect.
    EXPECT_EQ(worker.counters().reconnects, 0U);
    {
        const std::lock_guard lock(lines_mutex);
        EXPECT_THAT(lines, ::testing::IsEmpty()) << "no \"broker silent\", no reconnect";
    }
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->workers_expired, 0U);
    EXPECT_EQ(s->redispatched, 0U);
}

TEST_F(mdp_fixture, after_stop_taking_a_worker_answers_what_it_holds_and_takes_nothing_new) {
    mdp_broker broker(ctx, options());
    broker.start();
    std::promise<void> release;
    const auto released = release.get_future().share();
    std::atomic<int> calls{0};
    mdp_worker a(ctx, worker_options(broker, "svc", "a"),
                 [&](const std::vector<std::string_view>& body) {
                     ++calls;
                     released.wait();
                     return std::vector<std::string>{"a:" + std::string(body.at(0))};
                 });
    a.start();
    ASSERT_TRUE(ready_workers(broker, "svc", 1));
    mdp_client first(ctx, client_options(broker));
    mdp_client second(ctx, client_options(broker));
    zmqkit::result<std::vector<std::string>> r1, r2;
    std::thread t1([&] { r1 = first.call("svc", {"one"}); });
    ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
    std::thread t2([&] { r2 = second.call("svc", {"two"}); });
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->queued == 1; }));
    a.stop_taking();
    release.set_value();
    t1.join();
    ASSERT_TRUE(r1.ok()) << r1.reason();
    EXPECT_EQ(*r1, (std::vector<std::string>{"a:one"}));
    a.stop(); // DISCONNECT: "two", if the broker had sent it to A, goes to the next worker
    mdp_worker b(ctx, worker_options(broker, "svc", "b"),
                 [](const std::vector<std::string_view>& body) {
                     return std::vector<std::string>{"b:" + std::string(body.at(0))};
                 });
    b.start();
    t2.join();
    ASSERT_TRUE(r2.ok()) << r2.reason();
    EXPECT_EQ(*r2, (std::vector<std::string>{"b:two"}));
    EXPECT_EQ(calls.load(), 1);
}

TEST(mdp_error_reply, three_frames_marker_code_reason_and_nothing_else_is_an_error) {
    const auto body = mdp_error_body("handler", "exit status 3");
    EXPECT_EQ(body, (std::vector<std::string>{"zmqkit.error", "handler", "exit status 3"}));
    const auto e = parse_mdp_error_reply(body);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->code, "handler");
    EXPECT_EQ(e->reason, "exit status 3");
    EXPECT_EQ(parse_mdp_error_reply({"zmqkit.error", "", "why"})->code, "error");
    EXPECT_FALSE(parse_mdp_error_reply({"zmqkit.error"}).has_value());
    EXPECT_FALSE(parse_mdp_error_reply({"zmqkit.error", "handler"}).has_value());
    EXPECT_FALSE(parse_mdp_error_reply({"zmqkit.error", "a", "b", "c"}).has_value());
    EXPECT_FALSE(parse_mdp_error_reply({"result", "handler", "x"}).has_value());
    EXPECT_FALSE(parse_mdp_error_reply({"HELLO"}).has_value());
}

TEST_F(mdp_fixture, after_max_attempts_a_request_is_dropped) {
    auto o = options();
    o.max_attempts = 2;
    mdp_broker broker(ctx, o);
    broker.start();
    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    send_frames(client, {"", "MDPC01", "crash", "poison"});
    for (int attempt = 1; attempt <= 2; ++attempt) {
        auto w = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
        send_frames(w, {"", "MDPW01", ready_byte, "crash"});
        const auto request = next_command(w);
        ASSERT_EQ(request.size(), 6u) << attempt;
        send_frames(w, {"", "MDPW01", disconnect_byte}); // dies with the request
    }
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->dropped == 1; }));
    const auto s = broker.broker_stats();
    EXPECT_EQ(s->redispatched, 1u);
    EXPECT_EQ(s->queued, 0u);
    EXPECT_EQ(s->in_flight, 0u);
}

// ---- malformed frames -------------------------------------------------------------------------

TEST_F(mdp_fixture, malformed_frames_are_counted_and_dropped_and_the_broker_keeps_serving) {
    std::vector<std::string> logged;
    std::mutex log_mutex;
    auto o = options();
    o.log = [&](std::string_view line) {
        std::lock_guard lock(log_mutex);
        logged.emplace_back(line);
    };
    mdp_broker broker(ctx, o);
    broker.start();
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(worker, {"", "MDPW01", std::string("\x09", 1)});   // wrong command byte
    send_frames(worker, {"", "MDPX01", heartbeat_byte});           // wrong protocol header
    send_frames(worker, {"", "MDPW01", ready_byte});               // missing service frame
    send_frames(worker, {"", "MDPW01", ready_byte, "ok-service"}); // READY
    auto client = raw(zmq::socket_type::dealer, broker.frontend_endpoints().at(0));
    send_frames(client, {"", "MDPC01", "ok-service"}); // no body
    send_frames(client, {"", "MDPC09", "ok-service", "x"});
    send_frames(client, {"plain"});
    ASSERT_TRUE(eventually([&] { return broker.broker_stats()->malformed == 6; }));

    send_frames(client, {"", "MDPC01", "ok-service", "still there?"});
    const auto request = next_command(worker);
    ASSERT_EQ(request.size(), 6u);
    send_frames(worker, {"", "MDPW01", reply_byte, request[3], "", "yes"});
    EXPECT_EQ(recv_frames(client), (frames_t{"", "MDPC01", "ok-service", "yes"}));
    std::lock_guard lock(log_mutex);
    ASSERT_FALSE(logged.empty());
    EXPECT_THAT(logged[0], HasSubstr("dropped a malformed message on the "));
}

// ---- control ----------------------------------------------------------------------------------

TEST_F(mdp_fixture, status_lists_services_and_workers_on_the_control_socket) {
    auto o = options();
    o.control = "tcp://127.0.0.1:*";
    mdp_broker broker(ctx, o);
    broker.start();
    mdp_worker w(ctx, worker_options(broker, "echo", "echo"),
                 [](const std::vector<std::string_view>& body) {
                     return std::vector<std::string>{std::string(body[0])};
                 });
    w.start();
    ASSERT_TRUE(ready_workers(broker, "echo", 1));
    mdp_client client(ctx, client_options(broker));
    ASSERT_TRUE(client.call("echo", {"x"}));
    auto ctl = raw(zmq::socket_type::req, broker.control_endpoints().at(0));
    const auto status = request(ctl, "STATUS");
    ASSERT_EQ(status.size(), 1u);
    EXPECT_THAT(status[0], HasSubstr("\"state\":\"running\""));
    EXPECT_THAT(status[0], HasSubstr("\"requests\":1"));
    EXPECT_THAT(status[0], HasSubstr("\"services\":[{\"name\":\"echo\",\"workers\":1,\"ready\":1,"
                                     "\"queued\":0,\"requests\":1,\"replies\":1,\"expired\":0}]"));
    EXPECT_THAT(status[0], HasSubstr("\"service\":\"echo\",\"state\":\"ready\",\"served\":1"));
    EXPECT_EQ(request(ctl, "STATISTICS").size(), 8u);
    EXPECT_EQ(request(ctl, "PAUSE"), frames_t{"OK"});
    EXPECT_THAT(request(ctl, "STATUS")[0], HasSubstr("\"state\":\"paused\""));
    EXPECT_EQ(request(ctl, "RESUME"), frames_t{"OK"});
    EXPECT_EQ(request(ctl, "TERMINATE"), frames_t{"OK"});
    EXPECT_TRUE(broker.wait_finished(10s));
    EXPECT_TRUE(broker.terminated());
}

TEST_F(mdp_fixture, status_stays_valid_json_when_a_worker_names_its_service_in_bytes) {
    // docs/operations.md, "STATUS documents": a name that is not UTF-8 appears with U+FFFD for
    // each invalid sequence and, only then, <member>_hex with the exact bytes.
    auto o = options();
    o.control = "tcp://127.0.0.1:*";
    mdp_broker broker(ctx, o);
    broker.start();
    const std::string bad("bad\xff\xfename", 9);
    const std::string quoted("q\"\\\x01", 4); // valid UTF-8 needing escapes: no _hex
    auto worker = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(worker, {"", "MDPW01", ready_byte, bad});
    auto other = raw(zmq::socket_type::dealer, broker.backend_endpoints().at(0));
    send_frames(other, {"", "MDPW01", ready_byte, quoted});
    ASSERT_TRUE(ready_workers(broker, bad, 1));
    ASSERT_TRUE(ready_workers(broker, quoted, 1));
    auto ctl = raw(zmq::socket_type::req, broker.control_endpoints().at(0));
    const auto status = request(ctl, "STATUS");
    ASSERT_EQ(status.size(), 1u);
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(status[0])) << status[0];
    ASSERT_EQ(j["services"].size(), 2u);
    const std::string replaced = "bad\xef\xbf\xbd\xef\xbf\xbdname"; // bad U+FFFD U+FFFD name
    std::map<std::string, nlohmann::json> services;
    for (const auto& s : j["services"]) {
        services[s["name"].get<std::string>()] = s;
    }
    ASSERT_EQ(services.count(replaced), 1u) << status[0];
    EXPECT_EQ(services[replaced]["name_hex"], "626164fffe6e616d65");
    EXPECT_EQ(services[replaced]["workers"], 1);
    ASSERT_EQ(services.count(quoted), 1u) << status[0];
    EXPECT_FALSE(services[quoted].contains("name_hex"));
    for (const auto& w : j["workers"]) {
        if (w["service"] == replaced) {
            EXPECT_EQ(w["service_hex"], "626164fffe6e616d65");
        } else {
            EXPECT_EQ(w["service"], quoted);
            EXPECT_FALSE(w.contains("service_hex"));
        }
    }
    // the member order of the document is unchanged
    EXPECT_THAT(status[0], HasSubstr("{\"name\":\"" + replaced +
                                     "\",\"name_hex\":\"626164fffe6e616d65\",\"workers\":1,"));
    EXPECT_EQ(request(ctl, "TERMINATE"), frames_t{"OK"});
    EXPECT_TRUE(broker.wait_finished(10s));
}
