// The durable proxy with the reliable sender and receiver: confirms after commit, delivery
// under credit, ack / nack / timeout / consumer loss, restart over the same spool, duplicate
// suppression on both sides, back-pressure at a full spool, best-effort PUSH/PULL, malformed
// input. Every check is by message id.
#include "patterns/durable/durable_protocol.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/patterns/durable.hpp>

#include "support/testing.hpp"
#include "support/unknown_entries.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <unordered_set>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;

namespace {

struct durable_fixture : ::testing::Test {
    zmq::context_t ctx;
    metrics_registry registry;
    temp_directory dir{"durable"};
    std::vector<std::string> logged;
    std::mutex log_mutex;

    durable_proxy_options options() {
        durable_proxy_options o;
        o.frontend = "tcp://127.0.0.1:*";
        o.backend = "tcp://127.0.0.1:*";
        o.control = "inproc://" + unique_name("durable-control");
        o.spool.directory = dir.path() / "spool";
        o.spool.segment_bytes = 4 << 20;
        o.spool.reserve_bytes = 64 << 10;
        o.spool.registry = &registry;
        o.registry = &registry;
        o.sockets.registry = &registry;
        o.log = [this](std::string_view line) {
            std::lock_guard lock(log_mutex);
            logged.emplace_back(line);
        };
        return o;
    }

    reliable_sender_options sender_options(const durable_proxy& p) {
        reliable_sender_options o;
        o.endpoint = p.frontend_endpoints().at(0);
        o.socket.registry = &registry;
        return o;
    }
    reliable_receiver_options receiver_options(const durable_proxy& p) {
        reliable_receiver_options o;
        o.endpoint = p.backend_endpoints().at(0);
        o.socket.registry = &registry;
        return o;
    }

    // The dead-letter spool of a proxy with options o (stopped), read only.
    spool_options dead_letter_spool(const durable_proxy_options& o) {
        spool_options so;
        so.directory = o.spool.directory / "dead-letter";
        so.read_only = true;
        so.dead_letter_spool = false;
        so.registry = &registry;
        return so;
    }

    // Sends n messages with bodies "<prefix><i>"; returns their ids in order.
    static std::vector<message_id> send_all(reliable_sender& s, int n, const std::string& prefix) {
        std::vector<message_id> ids;
        for (int i = 0; i < n; ++i) {
            message m(prefix + std::to_string(i));
            EXPECT_TRUE(s.send(m, 10s));
            ids.push_back(m.id());
        }
        return ids;
    }

    // Receives (and acks) until `want` distinct ids arrived or the time is up.
    static std::vector<message_id> receive_ids(reliable_receiver& r, std::size_t want,
                                               std::chrono::milliseconds timeout = 20s) {
        std::vector<message_id> got;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
            auto d = r.recv(200ms);
            if (!d) {
                continue;
            }
            got.push_back(d->message.id());
            r.ack(*d);
        }
        r.flush_acks();
        return got;
    }
};

} // namespace

TEST_F(durable_fixture, confirms_every_message_and_delivers_each_once_in_order) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    reliable_receiver receiver(ctx, receiver_options(proxy));

    constexpr int count = 5000;
    const auto ids = send_all(sender, count, "order-");
    ASSERT_TRUE(sender.flush(20s)) << sender.unconfirmed() << " unconfirmed";
    EXPECT_EQ(sender.confirmed(), static_cast<std::uint64_t>(count));
    EXPECT_EQ(sender.rejected(), 0u);

    const auto got = receive_ids(receiver, count);
    EXPECT_EQ(got, ids); // one consumer: spool order, each once
    EXPECT_EQ(receiver.duplicates(), 0u);
    // Everything acked: the spool is empty.
    ASSERT_TRUE(eventually(
        [&] { return proxy.status_json().find("\"messages\":0,") != std::string::npos; }, 10s))
        << proxy.status_json();
    // Each confirm's latency was observed once; each fdatasync's duration too. Compared once
    // the proxy has stopped: while it runs, acks keep syncing between the two reads.
    proxy.stop();
    EXPECT_EQ(metric_total(registry, "zmqkit_durable_confirm_seconds_count"), count);
    EXPECT_EQ(metric_total(registry, "zmqkit_spool_sync_duration_seconds_count"),
              metric_total(registry, "zmqkit_spool_syncs_total"));
    EXPECT_GT(metric_total(registry, "zmqkit_spool_syncs_total"), 0);
}

TEST_F(durable_fixture, confirmed_messages_survive_a_restart_and_attempts_count_up) {
    std::vector<message_id> ids;
    {
        durable_proxy proxy(ctx, options());
        proxy.start();
        reliable_sender sender(ctx, sender_options(proxy));
        ids = send_all(sender, 300, "keep-");
        ASSERT_TRUE(sender.flush(10s));
        // Deliver the first 10 without acking them: they are in flight when the proxy stops.
        auto ro = receiver_options(proxy);
        ro.credit = 10;
        reliable_receiver receiver(ctx, ro);
        for (int i = 0; i < 10; ++i) {
            auto d = receiver.recv(10s);
            ASSERT_TRUE(d);
            EXPECT_EQ(d->attempt, 1u);
        }
        proxy.stop();
    }
    durable_proxy proxy(ctx, options());
    proxy.start();
    EXPECT_EQ(proxy.recovery().messages, 300u);
    reliable_receiver receiver(ctx, receiver_options(proxy));
    std::vector<message_id> got;
    std::map<message_id, std::uint32_t> attempts;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (got.size() < ids.size() && std::chrono::steady_clock::now() < deadline) {
        auto d = receiver.recv(200ms);
        if (d) {
            got.push_back(d->message.id());
            attempts[d->message.id()] = d->attempt;
            receiver.ack(*d);
        }
    }
    std::set<message_id> want(ids.begin(), ids.end());
    EXPECT_EQ(std::set<message_id>(got.begin(), got.end()), want);
    EXPECT_EQ(got.size(), ids.size());
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(attempts[ids[static_cast<std::size_t>(i)]], 2u) << "message " << i;
    }
    EXPECT_EQ(attempts[ids.back()], 1u);
}

TEST_F(durable_fixture, a_resent_message_is_confirmed_again_and_stored_once) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    // A raw DEALER producer sends the same message twice.
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(proxy.frontend_endpoints().at(0));
    header h = header::fresh();
    const std::string frame = encode_header(h) + "body";
    std::vector<std::string> confirmed_ids;
    for (int i = 0; i < 2; ++i) {
        dealer.send(zmq::buffer(frame));
        auto cmd = recv_within(dealer, 5s);
        ASSERT_TRUE(cmd);
        EXPECT_EQ(cmd->to_string(), "CONFIRM");
        auto ids = recv_within(dealer, 5s);
        ASSERT_TRUE(ids);
        confirmed_ids.push_back(ids->to_string());
    }
    const std::string id_bytes(reinterpret_cast<const char*>(h.id.data()), message_id::size);
    EXPECT_EQ(confirmed_ids, (std::vector<std::string>{id_bytes, id_bytes}));
    reliable_receiver receiver(ctx, receiver_options(proxy));
    const auto got = receive_ids(receiver, 2, 1500ms); // only one can come
    EXPECT_EQ(got, std::vector<message_id>{h.id});
    EXPECT_NE(proxy.status_json().find("\"duplicates\":1,"), std::string::npos);
}

TEST_F(durable_fixture, a_req_producer_gets_one_confirm_per_request) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(proxy.frontend_endpoints().at(0));
    for (int i = 0; i < 3; ++i) {
        header h = header::fresh();
        req.send(zmq::buffer(encode_header(h) + "x"));
        auto cmd = recv_within(req, 5s);
        ASSERT_TRUE(cmd);
        EXPECT_EQ(cmd->to_string(), "CONFIRM");
        auto ids = recv_within(req, 5s);
        ASSERT_TRUE(ids);
        EXPECT_EQ(ids->size(), message_id::size);
        EXPECT_EQ(std::memcmp(ids->data(), h.id.data(), message_id::size), 0);
    }
}

TEST_F(durable_fixture, nack_requeues_with_a_higher_attempt_or_dead_letters_with_a_reason) {
    auto o = options();
    o.redelivery_backoff = 1ms;
    {
        durable_proxy proxy(ctx, o);
        proxy.start();
        reliable_sender sender(ctx, sender_options(proxy));
        const auto ids = send_all(sender, 2, "n-");
        ASSERT_TRUE(sender.flush(10s));
        reliable_receiver receiver(ctx, receiver_options(proxy));
        auto first = receiver.recv(10s);
        ASSERT_TRUE(first);
        EXPECT_EQ(first->message.id(), ids[0]);
        receiver.nack(*first, true, "try again");
        auto second = receiver.recv(10s);
        ASSERT_TRUE(second);
        EXPECT_EQ(second->message.id(), ids[1]);
        receiver.nack(*second, false, "poison");
        auto again = receiver.recv(10s);
        ASSERT_TRUE(again);
        EXPECT_EQ(again->message.id(), ids[0]);
        EXPECT_EQ(again->attempt, 2u);
        receiver.ack(*again);
        receiver.flush_acks();
        EXPECT_FALSE(receiver.recv(300ms)) << "the dead-lettered message came back";
        ASSERT_TRUE(eventually([&] {
            return proxy.status_json().find("\"dead_letter_messages\":1") != std::string::npos;
        })) << proxy.status_json();
        proxy.stop();
        const auto dead_letters = [&](const char* reason) {
            return registry
                .get_counter("zmqkit_durable_dead_letters_total", "",
                             {{"component", o.name}, {"reason", reason}})
                .value();
        };
        EXPECT_EQ(dead_letters("rejected"), 1u);
        EXPECT_EQ(dead_letters("max_attempts"), 0u);
        // Each event is a line with the message's ids: grep an id and find what happened.
        const auto ids_of = [&](int i) {
            return " message_id=" + ids[static_cast<std::size_t>(i)].to_string() +
                   " correlation_id=" + ids[static_cast<std::size_t>(i)].to_string();
        };
        std::lock_guard lock(log_mutex);
        EXPECT_THAT(logged, ::testing::Contains("redelivering in 1 ms (sequence 1, 1 deliveries)" +
                                                ids_of(0)));
        EXPECT_THAT(logged, ::testing::Contains(
                                "dead-lettered: rejected by the consumer: poison (sequence 2, 1 "
                                "deliveries)" +
                                ids_of(1)));
    }
    spool dlq(dead_letter_spool(o));
    bool found = false;
    dlq.for_each(0, [&](const spooled_message& m, bool) {
        header h;
        EXPECT_TRUE(decode_header(m.header.data(), m.header.size(), h));
        const auto* reason = h.find_user_header("zmqkit-dead-letter-reason");
        found = reason != nullptr && reason->find("poison") != std::string::npos;
        return true;
    });
    EXPECT_TRUE(found);
}

TEST_F(durable_fixture, an_unacked_delivery_is_redelivered_after_the_ack_timeout) {
    auto o = options();
    o.ack_timeout = 200ms;
    o.redelivery_backoff = 1ms;
    durable_proxy proxy(ctx, o);
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    const auto ids = send_all(sender, 1, "t-");
    ASSERT_TRUE(sender.flush(10s));
    reliable_receiver receiver(ctx, receiver_options(proxy));
    auto first = receiver.recv(10s);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->attempt, 1u);
    // Not acked: it comes back with attempt 2.
    auto again = receiver.recv(10s);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->message.id(), ids[0]);
    EXPECT_EQ(again->attempt, 2u);
    receiver.ack(*again);
    receiver.flush_acks();
    EXPECT_NE(proxy.status_json().find("\"ack_timeouts\":"), std::string::npos);
}

TEST_F(durable_fixture, a_consumer_that_leaves_hands_its_deliveries_to_another) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    const auto ids = send_all(sender, 50, "l-");
    ASSERT_TRUE(sender.flush(10s));
    std::set<message_id> seen;
    {
        auto ro = receiver_options(proxy);
        ro.credit = 20;
        reliable_receiver quitter(ctx, ro);
        for (int i = 0; i < 5; ++i) {
            auto d = quitter.recv(10s);
            ASSERT_TRUE(d);
            seen.insert(d->message.id());
            quitter.ack(*d);
        }
    } // BYE: its other 15 deliveries are requeued at once
    reliable_receiver stayer(ctx, receiver_options(proxy));
    const auto rest = receive_ids(stayer, 45);
    seen.insert(rest.begin(), rest.end());
    EXPECT_EQ(seen, std::set<message_id>(ids.begin(), ids.end())) << proxy.status_json();
    EXPECT_EQ(rest.size(), 45u);
}

// A spool of 10 messages, 30 sent (batches of `batch` messages): the first 10 are confirmed,
// the proxy holds the producer back, and once a consumer acks, all 30 arrive in order.
void full_spool_holds_back_then_drains_in_order(durable_fixture& f, std::size_t batch) {
    auto o = f.options();
    o.spool.max_messages = 10;
    durable_proxy proxy(f.ctx, o);
    proxy.start();
    auto so = f.sender_options(proxy);
    so.batch_messages = batch;
    so.linger = 1ms;
    reliable_sender sender(f.ctx, so);
    const auto ids = durable_fixture::send_all(sender, 30, "f-");
    sender.send_batch();
    ASSERT_TRUE(eventually([&] {
        (void)sender.poll(10ms);
        return sender.confirmed() >= 10 &&
               proxy.status_json().find("\"state\":\"backpressure\"") != std::string::npos;
    })) << proxy.status_json();
    (void)sender.poll(100ms);
    EXPECT_EQ(sender.confirmed(), 10u);
    EXPECT_EQ(sender.unconfirmed(), 20u);
    reliable_receiver receiver(f.ctx, f.receiver_options(proxy));
    std::vector<message_id> got;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (got.size() < ids.size() && std::chrono::steady_clock::now() < deadline) {
        (void)sender.poll(0ms);
        auto d = receiver.recv(50ms);
        if (d) {
            got.push_back(d->message.id());
            receiver.ack(*d);
        }
    }
    EXPECT_TRUE(sender.flush(10s));
    EXPECT_EQ(sender.confirmed(), 30u);
    EXPECT_EQ(got, ids);
}

TEST_F(durable_fixture, a_full_spool_holds_producers_back_until_consumers_make_room) {
    full_spool_holds_back_then_drains_in_order(*this, 1);
}

TEST_F(durable_fixture, push_producers_and_pull_consumers_are_served_best_effort) {
    auto o = options();
    o.frontend_pull = "tcp://127.0.0.1:*";
    o.backend_push = "tcp://127.0.0.1:*";
    durable_proxy proxy(ctx, o);
    proxy.start();
    socket_options so;
    so.registry = &registry;
    zmqkit::socket push(ctx, zmq::socket_type::push, so);
    push.attach(proxy.frontend_pull_endpoints().at(0), endpoint_action::connect);
    zmqkit::socket pull(ctx, zmq::socket_type::pull, so);
    pull.attach(proxy.backend_push_endpoints().at(0), endpoint_action::connect);
    std::vector<message_id> ids;
    for (int i = 0; i < 1000; ++i) {
        message m(std::string("p").append(std::to_string(i)));
        ASSERT_TRUE(push.send(m));
        ids.push_back(m.id());
    }
    std::vector<message_id> got;
    while (got.size() < ids.size()) {
        auto m = pull.recv(10s);
        if (!m) {
            break;
        }
        got.push_back(m->id());
        EXPECT_EQ(m->header().attempt, 1u);
    }
    EXPECT_EQ(got, ids);
}

TEST_F(durable_fixture, malformed_input_is_rejected_counted_and_the_proxy_keeps_serving) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(proxy.frontend_endpoints().at(0));
    dealer.send(zmq::buffer(std::string("not an envelope")));
    auto cmd = recv_within(dealer, 5s);
    ASSERT_TRUE(cmd);
    EXPECT_EQ(cmd->to_string(), "REJECT");
    auto id = recv_within(dealer, 5s);
    ASSERT_TRUE(id);
    auto why = recv_within(dealer, 5s);
    ASSERT_TRUE(why);
    EXPECT_THAT(why->to_string(), ::testing::HasSubstr("malformed"));
    // Consumer side garbage: an unknown command and a bad CREDIT.
    zmq::socket_t bad(ctx, zmq::socket_type::dealer);
    bad.set(zmq::sockopt::linger, 0);
    bad.connect(proxy.backend_endpoints().at(0));
    bad.send(zmq::buffer(std::string("HELLO")));
    bad.send(zmq::buffer(std::string("CREDIT")), zmq::send_flags::sndmore);
    bad.send(zmq::buffer(std::string("lots")));
    // Still serving.
    reliable_sender sender(ctx, sender_options(proxy));
    const auto ids = send_all(sender, 10, "ok-");
    ASSERT_TRUE(sender.flush(10s));
    reliable_receiver receiver(ctx, receiver_options(proxy));
    EXPECT_EQ(receive_ids(receiver, 10), ids);
    ASSERT_TRUE(eventually([&] {
        return proxy.status_json().find("\"malformed\":3") != std::string::npos;
    })) << proxy.status_json();
    std::lock_guard lock(log_mutex);
    EXPECT_THAT(logged, ::testing::Contains(::testing::HasSubstr("malformed")));
}

TEST_F(durable_fixture, the_receiver_suppresses_a_redelivered_message_it_already_acked) {
    // Two receivers' worth of state in one: ack, lose the ack (proxy restarts before it is
    // committed is hard to force), so simulate with a raw DELIVER from a fake proxy.
    zmq::socket_t fake(ctx, zmq::socket_type::router);
    fake.set(zmq::sockopt::linger, 0);
    fake.bind("tcp://127.0.0.1:*");
    reliable_receiver_options ro;
    ro.endpoint = fake.get(zmq::sockopt::last_endpoint);
    ro.socket.registry = &registry;
    reliable_receiver receiver(ctx, ro);
    auto rid = recv_within(fake, 5s); // CREDIT from the receiver
    ASSERT_TRUE(rid);
    auto word = recv_within(fake, 5s);
    ASSERT_TRUE(word);
    EXPECT_EQ(word->to_string(), "CREDIT");
    auto n = recv_within(fake, 5s);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->to_string(), "100");
    header h = header::fresh();
    auto deliver = [&](std::uint64_t tag) {
        std::string t(8, '\0');
        t[7] = static_cast<char>(tag);
        fake.send(zmq::buffer(rid->to_string()), zmq::send_flags::sndmore);
        fake.send(zmq::buffer(std::string("DELIVER")), zmq::send_flags::sndmore);
        fake.send(zmq::buffer(t), zmq::send_flags::sndmore);
        fake.send(zmq::buffer(encode_header(h)), zmq::send_flags::sndmore);
        fake.send(zmq::buffer(std::string("b")));
    };
    deliver(1);
    auto d = receiver.recv(5s);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->message.id(), h.id);
    receiver.ack(*d);
    deliver(2); // the same message again
    EXPECT_FALSE(receiver.recv(300ms));
    EXPECT_EQ(receiver.duplicates(), 1u);
    // Both tags were acked.
    std::set<std::uint64_t> acked;
    while (acked.size() < 2) {
        auto from = recv_within(fake, 5s);
        ASSERT_TRUE(from);
        auto w = recv_within(fake, 5s);
        ASSERT_TRUE(w);
        if (w->to_string() != "ACK") {
            while (w->more()) {
                w = recv_within(fake, 5s);
                ASSERT_TRUE(w);
            }
            continue;
        }
        auto tags = recv_within(fake, 5s);
        ASSERT_TRUE(tags);
        for (std::size_t off = 0; off + 8 <= tags->size(); off += 8) {
            acked.insert(static_cast<const unsigned char*>(tags->data())[off + 7]);
        }
    }
    EXPECT_EQ(acked, (std::set<std::uint64_t>{1, 2}));
}

TEST(durable_protocol_parse, consumer_commands_as_specified_and_malformed_ones_with_a_reason) {
    namespace proto = durable_protocol;
    using kind = proto::consumer_command::kind;
    std::string why;
    const std::string two_tags("\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\x01\x02", 16);
    auto c = proto::parse_consumer_command({"CREDIT", "250"}, why);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->what, kind::credit_window);
    EXPECT_EQ(c->credit, 250u);
    EXPECT_TRUE(c->group.empty());
    c = proto::parse_consumer_command({"CREDIT", "8", "billing", "latest"}, why);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->group, "billing");
    EXPECT_EQ(c->start, "latest");
    c = proto::parse_consumer_command({"CREDIT", "8", "billing"}, why);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->group, "billing");
    EXPECT_TRUE(c->start.empty());
    EXPECT_FALSE(proto::parse_consumer_command({"CREDIT", "8", ""}, why));
    EXPECT_NE(why.find("group frame is empty"), std::string::npos) << why;
    EXPECT_FALSE(proto::parse_consumer_command({"CREDIT", "8", "g", "earliest", "x"}, why));
    c = proto::parse_consumer_command({"ACK", two_tags}, why);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->what, kind::acked);
    ASSERT_EQ(c->tag_count(), 2u);
    EXPECT_EQ(c->tag(0), 1u);
    EXPECT_EQ(c->tag(1), 0x102u);
    c = proto::parse_consumer_command({"NACK", two_tags, "dead-letter", "bad order"}, why);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->what, kind::nacked);
    EXPECT_FALSE(c->requeue);
    EXPECT_EQ(c->reason, "bad order");
    c = proto::parse_consumer_command({"NACK", two_tags, "requeue"}, why);
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->requeue);
    EXPECT_TRUE(c->reason.empty());
    c = proto::parse_consumer_command({"BYE"}, why);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->what, kind::leaving);

    const std::vector<std::vector<std::string_view>> bad{
        {},
        {"CREDIT"},
        {"CREDIT", "-1"},
        {"CREDIT", "4294967296"},
        {"CREDIT", "12x"},
        {"ACK"},
        {"ACK", "1234567"},
        {"ACK", ""},
        {"NACK", two_tags},
        {"NACK", two_tags, "later"},
        {"BYE", "now"},
        {"credit", "1"},
        {"HELLO"},
    };
    for (const auto& frames : bad) {
        why.clear();
        EXPECT_FALSE(proto::parse_consumer_command(frames, why))
            << ::testing::PrintToString(frames);
        EXPECT_FALSE(why.empty()) << ::testing::PrintToString(frames);
    }
}

TEST(durable_protocol_parse, producer_replies_and_delivery_tags) {
    namespace proto = durable_protocol;
    const message_id a = message_id::generate();
    const message_id b = message_id::generate();
    const std::string ids = std::string(reinterpret_cast<const char*>(a.data()), 16) +
                            std::string(reinterpret_cast<const char*>(b.data()), 16);
    auto r = proto::parse_producer_reply({"CONFIRM", ids});
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->confirmed);
    ASSERT_EQ(r->id_count(), 2u);
    EXPECT_EQ(r->id(0), a);
    EXPECT_EQ(r->id(1), b);
    r = proto::parse_producer_reply({"REJECT", std::string_view(ids).substr(0, 16), "full"});
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->confirmed);
    EXPECT_EQ(r->id(0), a);
    EXPECT_EQ(r->reason, "full");
    EXPECT_FALSE(proto::parse_producer_reply({"CONFIRM", std::string_view(ids).substr(0, 17)}));
    EXPECT_FALSE(proto::parse_producer_reply({"CONFIRM"}));
    EXPECT_FALSE(proto::parse_producer_reply({"REJECT", "short"}));
    EXPECT_FALSE(proto::parse_producer_reply({"DELIVER", ids}));

    const std::string tag("\0\0\0\0\0\0\x01\x00", 8);
    EXPECT_EQ(proto::parse_delivery_tag({"DELIVER", tag, "h", "b"}), 256u);
    EXPECT_EQ(proto::parse_delivery_tag({"DELIVER", tag, "h+b"}), 256u);
    EXPECT_FALSE(proto::parse_delivery_tag({"DELIVER", "1234567", "h"}));
    EXPECT_FALSE(proto::parse_delivery_tag({"DELIVER", tag}));
    EXPECT_FALSE(proto::parse_delivery_tag({"CONFIRM", tag, "h"}));
}

namespace {

// A small tmpfs mounted for the test (root only), unmounted on destruction.
class small_filesystem {
public:
    explicit small_filesystem(const std::filesystem::path& at, const std::string& size) : at_(at) {
        std::filesystem::create_directories(at);
        const std::string cmd =
            "mount -t tmpfs -o size=" + size + " zmqkit-test " + at.string() + " 2>/dev/null";
        mounted_ = ::geteuid() == 0 && std::system(cmd.c_str()) == 0;
    }
    ~small_filesystem() {
        if (mounted_) {
            const std::string cmd = "umount -l " + at_.string() + " 2>/dev/null";
            (void)std::system(cmd.c_str());
        }
    }
    small_filesystem(const small_filesystem&) = delete;
    small_filesystem& operator=(const small_filesystem&) = delete;
    [[nodiscard]] bool mounted() const noexcept { return mounted_; }

private:
    std::filesystem::path at_;
    bool mounted_ = false;
};

} // namespace

TEST_F(durable_fixture, a_full_disk_holds_confirms_back_and_resumes_when_consumers_free_space) {
    small_filesystem disk(dir.path() / "small", "12m");
    if (!disk.mounted()) {
        GTEST_SKIP() << "needs root to mount a 12 MiB tmpfs (run the suite as root)";
    }
    auto o = options();
    o.spool.directory = dir.path() / "small" / "spool";
    o.spool.segment_bytes = 2 << 20;
    o.spool.reserve_bytes = 128 << 10;
    o.spool.dead_letter_spool = false;
    durable_proxy proxy(ctx, o);
    proxy.start();
    auto so = sender_options(proxy);
    so.window = 20000;
    reliable_sender sender(ctx, so);
    // ~24 MiB of messages into a 12 MiB filesystem, nobody consuming.
    const std::string body(1000, 'd');
    std::vector<message_id> ids;
    for (int i = 0; i < 24000; ++i) {
        message m(body);
        ASSERT_TRUE(sender.send(m, 30s));
        ids.push_back(m.id());
    }
    ASSERT_TRUE(eventually(
        [&] {
            (void)sender.poll(20ms);
            return proxy.status_json().find("\"disk_full\":true") != std::string::npos;
        },
        30s))
        << proxy.status_json();
    (void)sender.poll(200ms);
    const auto confirmed_when_full = sender.confirmed();
    EXPECT_GT(confirmed_when_full, 1000u);
    EXPECT_LT(confirmed_when_full, ids.size()) << "confirmed more than the disk holds";
    EXPECT_NE(proxy.status_json().find("\"state\":\"backpressure\""), std::string::npos);
    {
        std::lock_guard lock(log_mutex);
        EXPECT_THAT(logged, ::testing::Contains(::testing::HasSubstr("disk full")));
    }
    // A consumer drains; acked segments are deleted, space returns, confirms resume.
    reliable_receiver receiver(ctx, receiver_options(proxy));
    std::vector<message_id> got;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (got.size() < ids.size() && std::chrono::steady_clock::now() < deadline) {
        (void)sender.poll(0ms);
        auto d = receiver.recv(20ms);
        if (d) {
            got.push_back(d->message.id());
            receiver.ack(*d);
        }
    }
    receiver.flush_acks();
    EXPECT_TRUE(sender.flush(30s)) << sender.unconfirmed() << " unconfirmed";
    EXPECT_EQ(sender.confirmed(), ids.size());
    EXPECT_EQ(got, ids); // nothing lost, nothing twice, in order
    proxy.stop();
}

TEST_F(durable_fixture, the_reject_policy_answers_each_message_over_the_limit_with_a_reason) {
    auto o = options();
    o.spool.max_messages = 3;
    o.spool.when_full = full_policy::reject;
    durable_proxy proxy(ctx, o);
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    std::vector<std::pair<message_id, std::string>> rejected;
    sender.on_reject([&](const message_id& id, std::string_view why) {
        rejected.emplace_back(id, std::string(why));
    });
    const auto ids = send_all(sender, 5, "r-");
    ASSERT_TRUE(sender.flush(10s)) << sender.unconfirmed() << " neither confirmed nor rejected";
    EXPECT_EQ(sender.confirmed(), 3u);
    ASSERT_EQ(rejected.size(), 2u);
    EXPECT_EQ(rejected[0].first, ids[3]);
    EXPECT_EQ(rejected[1].first, ids[4]);
    EXPECT_THAT(rejected[0].second, ::testing::HasSubstr("spool full"));
    reliable_receiver receiver(ctx, receiver_options(proxy));
    EXPECT_EQ(receive_ids(receiver, 3), std::vector<message_id>(ids.begin(), ids.begin() + 3));
}

// ---- producer batches (docs/wire-protocol.md §7.1) --------------------------------------------

namespace {

// One reply of the proxy to a raw producer: [CONFIRM][ids] or [REJECT][id][why].
struct raw_reply {
    std::string command;
    std::vector<message_id> ids;
    std::string why;
};

std::optional<raw_reply> recv_reply(zmq::socket_t& dealer, std::chrono::milliseconds timeout) {
    auto first = recv_within(dealer, timeout);
    if (!first) {
        return std::nullopt;
    }
    std::vector<std::string> frames{first->to_string()};
    bool more = first->more();
    while (more) {
        auto f = recv_within(dealer, 5s);
        if (!f) {
            return std::nullopt;
        }
        more = f->more();
        frames.push_back(f->to_string());
    }
    std::vector<std::string_view> views(frames.begin(), frames.end());
    const auto parsed = durable_protocol::parse_producer_reply(views);
    if (!parsed) {
        return raw_reply{frames[0], {}, "unparsable reply"};
    }
    raw_reply r{frames[0], {}, std::string(parsed->reason)};
    for (std::size_t i = 0; i < parsed->id_count(); ++i) {
        r.ids.push_back(parsed->id(i));
    }
    return r;
}

// An inline-layout message [header+body] with a fresh id.
std::string inline_message(const std::string& body, message_id* id = nullptr) {
    const header h = header::fresh();
    if (id != nullptr) {
        *id = h.id;
    }
    return encode_header(h) + body;
}

std::string batch_of(const std::vector<std::string>& messages) {
    std::string payload;
    for (const auto& m : messages) {
        durable_protocol::append_batch_entry(payload, m);
    }
    return payload;
}

void send_batch_frames(zmq::socket_t& s, std::string_view payload) {
    s.send(zmq::buffer(durable_protocol::batch), zmq::send_flags::sndmore);
    s.send(zmq::buffer(payload), zmq::send_flags::none);
}

zmq::socket_t raw_dealer(zmq::context_t& ctx, const std::string& endpoint) {
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(endpoint);
    return dealer;
}

// A clock the test moves by hand.
struct manual_clock {
    std::chrono::steady_clock::time_point now = std::chrono::steady_clock::time_point{} + 1h;
    std::function<std::chrono::steady_clock::time_point()> fn() {
        return [this] { return now; };
    }
};

} // namespace

TEST(durable_protocol_parse, batches_split_into_entries_and_malformed_ones_say_where) {
    namespace proto = durable_protocol;
    std::vector<std::string_view> entries;
    std::string why;
    const std::string payload = batch_of({"abc", std::string(300, 'x'), "z"});
    ASSERT_TRUE(proto::parse_batch(payload, entries, why)) << why;
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[0], "abc");
    EXPECT_EQ(entries[1], std::string(300, 'x'));
    EXPECT_EQ(entries[2], "z");
    EXPECT_EQ(payload.substr(0, 8), std::string("\0\0\0\x03"
                                                "abc\0",
                                                8));
    EXPECT_EQ(payload.substr(7, 4), std::string("\0\0\x01\x2c", 4)); // 300, big-endian

    const std::vector<std::pair<std::string, std::string>> bad{
        {"", "empty payload"},
        {std::string("\0\0", 2), "truncated: entry 1 at offset 0 has 2 byte(s)"},
        {std::string("\0\0\0\x05"
                     "abc",
                     7),
         "truncated: entry 1 at offset 0 has length 5 but only 3 byte(s) follow"},
        {std::string("\0\0\0\0", 4), "bad length: entry 1 at offset 0 has length 0"},
        {batch_of({"abc"}) + std::string("\0\0\0", 3),
         "truncated: entry 2 at offset 7 has 3 byte(s)"},
        {batch_of({"abc"}) + std::string("\0\0\0\0", 4),
         "bad length: entry 2 at offset 7 has length 0"},
        {batch_of({"abc"}) + std::string("\xff\xff\xff\xff"
                                         "x",
                                         5),
         "truncated: entry 2 at offset 7 has length 4294967295 but only 1 byte(s) follow"},
    };
    for (const auto& [bytes, expected] : bad) {
        why.clear();
        EXPECT_FALSE(proto::parse_batch(bytes, entries, why)) << expected;
        EXPECT_THAT(why, ::testing::HasSubstr(expected));
    }
}

TEST_F(durable_fixture, a_batching_sender_gets_everything_confirmed_and_delivered_once_in_order) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    auto so = sender_options(proxy);
    so.batch_messages = 64;
    so.batch_bytes = 4096; // some batches end on bytes, not on the count
    so.linger = 5ms;
    reliable_sender sender(ctx, so);
    reliable_receiver receiver(ctx, receiver_options(proxy));

    constexpr int count = 6000;
    std::vector<message_id> ids;
    for (int i = 0; i < count; ++i) {
        message m("b-" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 97), '.'));
        ASSERT_TRUE(sender.send(m, 10s)) << "at " << i;
        ids.push_back(m.id());
    }
    ASSERT_TRUE(sender.flush(20s)) << sender.unconfirmed() << " unconfirmed";
    EXPECT_EQ(sender.confirmed(), static_cast<std::uint64_t>(count));
    EXPECT_EQ(sender.rejected(), 0u);
    EXPECT_EQ(sender.resent(), 0u);
    EXPECT_GE(sender.batches(), static_cast<std::uint64_t>(count / 64));
    EXPECT_LT(sender.batches(), static_cast<std::uint64_t>(count / 4));

    const auto got = receive_ids(receiver, count);
    EXPECT_EQ(got, ids); // every id once, in the order sent
    EXPECT_EQ(receiver.duplicates(), 0u);
    const auto st = proxy.status_json();
    EXPECT_NE(st.find("\"malformed\":0"), std::string::npos) << st;
    // The frontend counted ZeroMQ messages: far fewer than messages.
    EXPECT_LT(proxy.statistics().frontend_messages_in, static_cast<std::uint64_t>(count / 4));
}

TEST_F(durable_fixture, status_stays_valid_json_with_a_spool_directory_that_is_not_utf8) {
    // docs/operations.md, "STATUS documents": spool.directory as text (U+FFFD for invalid
    // UTF-8, control characters escaped) and spool.directory_hex with the exact bytes.
    auto o = options();
    o.spool.directory = dir.path() / std::string("sp\xff\x01ool", 7);
    durable_proxy proxy(ctx, o);
    proxy.start();
    const auto status = proxy.status_json();
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(status)) << status;
    const std::string dir_text = (dir.path() / "sp").string() + "\xef\xbf\xbd\x01ool";
    EXPECT_EQ(j["spool"]["directory"], dir_text);
    EXPECT_EQ(j["spool"]["directory_hex"], to_hex(o.spool.directory.string()));
    EXPECT_EQ(j["spool"]["failure"], "");
    EXPECT_FALSE(j["spool"].contains("failure_hex"));
    EXPECT_EQ(j["state"], "running");
    // the member order of the document is unchanged
    EXPECT_NE(status.find("{\"state\":\"running\",\"name\":\"durable\",\"version\":\""),
              std::string::npos)
        << status;
    EXPECT_NE(status.find(",\"statistics\":{\"frontend\":{"), std::string::npos) << status;
    EXPECT_NE(status.find("\",\"sync\":\""), std::string::npos) << status;
}

TEST_F(durable_fixture, duplicates_inside_and_across_batches_are_stored_once_and_confirmed) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    auto dealer = raw_dealer(ctx, proxy.frontend_endpoints().at(0));
    message_id a, b, c;
    const std::string ma = inline_message("A", &a);
    const std::string mb = inline_message("B", &b);
    const std::string mc = inline_message("C", &c);
    send_batch_frames(dealer, batch_of({ma, ma, mb}));
    send_batch_frames(dealer, batch_of({mb, mc}));
    std::vector<message_id> confirmed;
    while (confirmed.size() < 5) {
        auto r = recv_reply(dealer, 5s);
        ASSERT_TRUE(r) << "after " << confirmed.size() << " confirms";
        ASSERT_EQ(r->command, "CONFIRM") << r->why;
        confirmed.insert(confirmed.end(), r->ids.begin(), r->ids.end());
    }
    EXPECT_EQ(confirmed, (std::vector<message_id>{a, a, b, b, c}));
    reliable_receiver receiver(ctx, receiver_options(proxy));
    EXPECT_EQ(receive_ids(receiver, 3), (std::vector<message_id>{a, b, c}));
    EXPECT_FALSE(receiver.recv(100ms)) << "a duplicate was stored";
    const auto st = proxy.status_json();
    EXPECT_NE(st.find("\"duplicates\":2,"), std::string::npos) << st;
    EXPECT_NE(st.find("\"appended\":3,"), std::string::npos) << st;
}

TEST_F(durable_fixture, a_malformed_batch_is_rejected_whole_a_bad_entry_alone_and_serving_goes_on) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    auto dealer = raw_dealer(ctx, proxy.frontend_endpoints().at(0));
    message_id a, b;
    const std::string ma = inline_message("A", &a);
    const std::string mb = inline_message("B", &b);
    // Structurally malformed: rejected as a whole, with a zero id and where it went wrong.
    const std::vector<std::pair<std::string, std::string>> whole{
        {std::string("\0\0\0\x10"
                     "abc",
                     7),
         "truncated: entry 1 at offset 0 has length 16 but only 3 byte(s) follow"},
        {batch_of({ma}) + std::string("\0\0", 2),
         "truncated: entry 2 at offset " + std::to_string(4 + ma.size()) + " has 2 byte(s)"},
        {batch_of({ma}) + std::string("\0\0\0\0", 4),
         "bad length: entry 2 at offset " + std::to_string(4 + ma.size()) + " has length 0"},
        {"", "empty payload"},
    };
    for (const auto& [payload, expected] : whole) {
        send_batch_frames(dealer, payload);
        auto r = recv_reply(dealer, 5s);
        ASSERT_TRUE(r) << expected;
        EXPECT_EQ(r->command, "REJECT");
        ASSERT_EQ(r->ids.size(), 1u);
        EXPECT_TRUE(r->ids[0].is_nil());
        EXPECT_THAT(r->why, ::testing::HasSubstr("malformed batch: " + expected));
    }
    // A garbage entry between two good ones: its own REJECT; the others are stored.
    send_batch_frames(dealer, batch_of({ma, "garbage", mb}));
    std::vector<message_id> confirmed;
    std::vector<std::string> rejects;
    while (confirmed.size() < 2 || rejects.empty()) {
        auto r = recv_reply(dealer, 5s);
        ASSERT_TRUE(r) << confirmed.size() << " confirmed, " << rejects.size() << " rejected";
        if (r->command == "REJECT") {
            EXPECT_TRUE(r->ids.at(0).is_nil());
            rejects.push_back(r->why);
        } else {
            confirmed.insert(confirmed.end(), r->ids.begin(), r->ids.end());
        }
    }
    EXPECT_EQ(confirmed, (std::vector<message_id>{a, b}));
    ASSERT_EQ(rejects.size(), 1u);
    EXPECT_THAT(rejects[0],
                ::testing::HasSubstr("batch entry at offset " + std::to_string(4 + ma.size())));
    // Counted, logged, and the next good message is served.
    message_id c;
    dealer.send(zmq::buffer(inline_message("C", &c)));
    auto r = recv_reply(dealer, 5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->command, "CONFIRM");
    EXPECT_EQ(r->ids, std::vector<message_id>{c});
    reliable_receiver receiver(ctx, receiver_options(proxy));
    EXPECT_EQ(receive_ids(receiver, 3), (std::vector<message_id>{a, b, c}));
    ASSERT_TRUE(eventually([&] {
        return proxy.status_json().find("\"malformed\":5") != std::string::npos;
    })) << proxy.status_json();
    std::lock_guard lock(log_mutex);
    EXPECT_THAT(logged, ::testing::Contains(::testing::HasSubstr("malformed batch")));
}

TEST_F(durable_fixture, a_batch_from_a_req_producer_is_rejected_it_needs_a_dealer) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(proxy.frontend_endpoints().at(0));
    send_batch_frames(req, batch_of({inline_message("A"), inline_message("B")}));
    auto r = recv_reply(req, 5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->command, "REJECT");
    EXPECT_THAT(r->why, ::testing::HasSubstr("DEALER"));
}

TEST_F(durable_fixture, the_pull_frontend_stores_batches_too) {
    auto o = options();
    o.frontend_pull = "tcp://127.0.0.1:*";
    durable_proxy proxy(ctx, o);
    proxy.start();
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 1000);
    push.connect(proxy.frontend_pull_endpoints().at(0));
    message_id a, b, c;
    send_batch_frames(push, batch_of({inline_message("A", &a), inline_message("B", &b)}));
    send_batch_frames(push, std::string("\0\0\0\x09"
                                        "x",
                                        5)); // counted and dropped
    push.send(zmq::buffer(inline_message("C", &c)));
    reliable_receiver receiver(ctx, receiver_options(proxy));
    EXPECT_EQ(receive_ids(receiver, 3), (std::vector<message_id>{a, b, c}));
    ASSERT_TRUE(eventually([&] {
        return proxy.status_json().find("\"malformed\":1") != std::string::npos;
    })) << proxy.status_json();
}

TEST_F(durable_fixture, a_partial_batch_waits_for_linger_then_leaves_by_poll_or_send) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    manual_clock clock;
    auto so = sender_options(proxy);
    so.batch_messages = 10;
    so.linger = 50ms;
    so.clock = clock.fn();
    reliable_sender sender(ctx, so);
    auto sent_all = [&](std::size_t n) {
        return eventually([&] {
            (void)sender.poll(10ms);
            return sender.confirmed() == n;
        });
    };

    // Three messages wait in the open batch: nothing leaves before the linger has passed.
    const auto first = send_all(sender, 3, "l-");
    EXPECT_EQ(sender.waiting(), 3u);
    EXPECT_EQ(sender.poll(0ms), 0u);
    clock.now += 49ms;
    (void)sender.poll(0ms);
    EXPECT_EQ(sender.waiting(), 3u);
    EXPECT_EQ(sender.batches(), 0u);
    // Linger passed: poll() sends them as one batch, and they are confirmed.
    clock.now += 1ms;
    (void)sender.poll(0ms);
    EXPECT_EQ(sender.waiting(), 0u);
    EXPECT_EQ(sender.batches(), 1u);
    ASSERT_TRUE(sent_all(3)) << sender.confirmed();

    // Linger passed at the next send(): that send takes the waiting ones along.
    (void)send_all(sender, 2, "m-");
    clock.now += 60ms;
    (void)send_all(sender, 1, "n-");
    EXPECT_EQ(sender.waiting(), 0u);
    EXPECT_EQ(sender.batches(), 2u);
    ASSERT_TRUE(sent_all(6));

    // A full batch leaves at once, whatever the linger.
    (void)send_all(sender, 10, "f-");
    EXPECT_EQ(sender.waiting(), 0u);
    EXPECT_EQ(sender.batches(), 3u);
    ASSERT_TRUE(sent_all(16));

    // send_batch() and flush() send a partial batch at once.
    (void)send_all(sender, 4, "s-");
    EXPECT_EQ(sender.waiting(), 4u);
    sender.send_batch();
    EXPECT_EQ(sender.waiting(), 0u);
    (void)send_all(sender, 2, "t-");
    EXPECT_TRUE(sender.flush(10s));
    EXPECT_EQ(sender.confirmed(), 22u);
    EXPECT_EQ(sender.batches(), 5u);

    reliable_receiver receiver(ctx, receiver_options(proxy));
    const auto got = receive_ids(receiver, 22);
    ASSERT_EQ(got.size(), 22u);
    EXPECT_EQ(std::vector<message_id>(got.begin(), got.begin() + 3), first);
}

TEST_F(durable_fixture, a_full_window_sends_the_open_batch_before_waiting_for_confirms) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    manual_clock clock;
    auto so = sender_options(proxy);
    so.window = 4;
    so.batch_messages = 100;
    so.linger = 1h;
    so.clock = clock.fn();
    reliable_sender sender(ctx, so);
    const auto ids = send_all(sender, 9, "w-"); // 4 + 4 leave when the window is full
    EXPECT_EQ(sender.batches(), 2u);
    EXPECT_EQ(sender.waiting(), 1u);
    EXPECT_GE(sender.confirmed(), 4u);
    EXPECT_TRUE(sender.flush(10s));
    EXPECT_EQ(sender.confirmed(), 9u);
    reliable_receiver receiver(ctx, receiver_options(proxy));
    EXPECT_EQ(receive_ids(receiver, 9), ids);
}

TEST_F(durable_fixture, unconfirmed_messages_are_resent_in_batches_after_the_retry_interval) {
    // A fake proxy that reads but confirms only the second copy of each message.
    zmq::socket_t fake(ctx, zmq::socket_type::router);
    fake.set(zmq::sockopt::linger, 0);
    fake.bind("tcp://127.0.0.1:*");
    manual_clock clock;
    reliable_sender_options so;
    so.endpoint = fake.get(zmq::sockopt::last_endpoint);
    so.socket.registry = &registry;
    so.batch_messages = 8;
    so.linger = 1ms;
    so.retry_interval = 1s;
    so.clock = clock.fn();
    reliable_sender sender(ctx, so);
    const auto ids = send_all(sender, 8, "r-");
    EXPECT_EQ(sender.batches(), 1u);
    std::string rid; // the sender's routing id, as the fake proxy sees it
    auto read_batch = [&]() -> std::vector<message_id> {
        std::vector<std::string> frames;
        bool more = true;
        while (more) {
            auto f = recv_within(fake, 5s);
            if (!f) {
                return {};
            }
            more = f->more();
            frames.push_back(f->to_string());
        }
        std::vector<message_id> got;
        std::vector<std::string_view> entries;
        std::string why;
        if (frames.size() != 3 || frames[1] != "BATCH" ||
            !durable_protocol::parse_batch(frames[2], entries, why)) {
            ADD_FAILURE() << "not a batch: " << frames.size() << " frames " << why;
            return {};
        }
        rid = frames[0];
        for (const auto e : entries) {
            header h;
            std::size_t n = 0;
            EXPECT_TRUE(decode_header(e.data(), e.size(), h, &n));
            got.push_back(h.id);
        }
        return got;
    };
    EXPECT_EQ(read_batch(), ids);
    // Not confirmed within the retry interval: all eight go again, as one batch.
    clock.now += 999ms;
    (void)sender.poll(0ms);
    EXPECT_EQ(sender.resent(), 0u);
    clock.now += 1ms;
    (void)sender.poll(0ms);
    EXPECT_EQ(sender.resent(), 8u);
    EXPECT_EQ(sender.batches(), 2u);
    EXPECT_EQ(read_batch(), ids);
    // Confirmed now (twice, as a proxy does for a resend): settled once each.
    std::string all;
    for (const auto& id : ids) {
        all.append(reinterpret_cast<const char*>(id.data()), message_id::size);
    }
    for (int i = 0; i < 2; ++i) {
        fake.send(zmq::buffer(rid), zmq::send_flags::sndmore);
        fake.send(zmq::buffer(std::string("CONFIRM")), zmq::send_flags::sndmore);
        fake.send(zmq::buffer(all));
    }
    ASSERT_TRUE(eventually([&] {
        (void)sender.poll(10ms);
        return sender.confirmed() == 8;
    }));
    (void)sender.poll(50ms);
    EXPECT_EQ(sender.confirmed(), 8u);
    EXPECT_EQ(sender.unconfirmed(), 0u);
}

TEST_F(durable_fixture, a_spool_filling_up_in_the_middle_of_a_batch_holds_the_rest_in_order) {
    full_spool_holds_back_then_drains_in_order(*this, 8);
}

// docs/wire-protocol.md §6 and §7.4: the proxy rewrites `attempt` in every delivery, and the
// dead-letter copy adds user headers; header keys it does not know, of every msgpack type, reach
// consumers byte for byte on the first delivery, on redelivery, through the PUSH backend, and in
// the dead-letter spool.
TEST_F(durable_fixture, unknown_header_keys_survive_delivery_redelivery_push_and_dead_letter) {
    const auto entries = unknown_entries_of_every_type();
    auto produce = [&](const std::string& endpoint) {
        zmq::socket_t producer(ctx, zmq::socket_type::dealer);
        producer.set(zmq::sockopt::linger, 0);
        producer.connect(endpoint);
        const header h = header::fresh(); // 3 keys: version, id, timestamp
        const std::string plain = encode_header(h);
        producer.send(zmq::buffer(with_unknown_entries(plain + "body", plain.size(), entries)));
        auto cmd = recv_within(producer, 10s);
        EXPECT_TRUE(cmd && cmd->to_string() == "CONFIRM");
        while (cmd && cmd->more()) {
            cmd = recv_within(producer, 10s);
        }
    };
    auto o = options();
    o.redelivery_backoff = 1ms;
    {
        durable_proxy proxy(ctx, o);
        proxy.start();
        produce(proxy.frontend_endpoints().at(0));
        zmq::socket_t consumer(ctx, zmq::socket_type::dealer);
        consumer.set(zmq::sockopt::linger, 0);
        consumer.connect(proxy.backend_endpoints().at(0));
        send_frames(consumer, {std::string(durable_protocol::credit), "1"});
        // [DELIVER][tag][header][body]
        auto first = recv_frames(consumer);
        ASSERT_EQ(first.size(), 4u);
        EXPECT_EQ(first[3], "body");
        expect_unknown_entries_intact(first[2], 3, entries, "first delivery");
        send_frames(consumer, {std::string(durable_protocol::nack), first[1],
                               std::string(durable_protocol::nack_requeue), "again"});
        auto second = recv_frames(consumer);
        ASSERT_EQ(second.size(), 4u);
        header h2;
        ASSERT_TRUE(decode_header(second[2].data(), second[2].size(), h2));
        EXPECT_EQ(h2.attempt, 2u);
        expect_unknown_entries_intact(second[2], 4, entries, "redelivery (attempt 2)");
        send_frames(consumer, {std::string(durable_protocol::nack), second[1],
                               std::string(durable_protocol::nack_dead_letter), "poison"});
        ASSERT_TRUE(eventually([&] {
            return proxy.status_json().find("\"dead_letter_messages\":1") != std::string::npos;
        })) << proxy.status_json();
        proxy.stop();
    }
    spool dlq(dead_letter_spool(o));
    std::size_t copies = 0;
    dlq.for_each(0, [&](const spooled_message& m, bool) {
        ++copies;
        // attempt and the user headers with the reason: 5 known keys.
        expect_unknown_entries_intact(m.header, 5, entries, "dead-letter copy");
        return true;
    });
    EXPECT_EQ(copies, 1u);

    // Best-effort consumers get the plain layout [header][body], attempt set (to 1: omitted).
    auto po = options();
    po.name = "durable-push";
    po.spool.directory = dir.path() / "push-spool";
    po.backend.clear();
    po.backend_push = "tcp://127.0.0.1:*";
    durable_proxy proxy(ctx, po);
    proxy.start();
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.connect(proxy.backend_push_endpoints().at(0));
    produce(proxy.frontend_endpoints().at(0));
    const auto pushed = recv_frames(pull);
    ASSERT_EQ(pushed.size(), 2u);
    EXPECT_EQ(pushed[1], "body");
    expect_unknown_entries_intact(pushed[0], 3, entries, "PUSH backend");
}

// ---- consumer groups (docs/wire-protocol.md §7.3) ---------------------------------------------

namespace {

// Receives (and acks) until `want` ids arrived across the receivers, round robin, or the time
// is up. Returns each receiver's ids.
std::vector<std::vector<message_id>> receive_spread(std::vector<reliable_receiver*> receivers,
                                                    std::size_t want,
                                                    std::chrono::milliseconds timeout = 20s) {
    std::vector<std::vector<message_id>> got(receivers.size());
    std::size_t total = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (total < want && std::chrono::steady_clock::now() < deadline) {
        for (std::size_t i = 0; i < receivers.size(); ++i) {
            if (auto d = receivers[i]->recv(20ms)) {
                got[i].push_back(d->message.id());
                receivers[i]->ack(*d);
                ++total;
            }
        }
    }
    for (auto* r : receivers) {
        r->flush_acks();
    }
    return got;
}

// The first frame of a control command's reply ("" when none came).
std::string control_reply(durable_proxy& proxy, const std::string& command) {
    const auto reply = proxy.command({command}, 5s);
    return reply && !reply->empty() ? reply->front() : std::string();
}

nlohmann::json group_named(durable_proxy& proxy, const std::string& name) {
    const auto status = nlohmann::json::parse(proxy.status_json());
    for (const auto& g : status.at("groups")) {
        if (g.at("name") == name) {
            return g;
        }
    }
    return nullptr;
}

} // namespace

TEST_F(durable_fixture, every_group_gets_every_message_and_its_members_share_them) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    auto in_group = [&](const std::string& g) {
        auto o = receiver_options(proxy);
        o.group = g;
        o.credit = 16;
        return o;
    };
    reliable_receiver a1(ctx, in_group("billing"));
    reliable_receiver a2(ctx, in_group("billing"));
    reliable_receiver b(ctx, in_group("audit"));
    ASSERT_TRUE(eventually([&] {
        return !group_named(proxy, "billing").is_null() && !group_named(proxy, "audit").is_null();
    }));
    constexpr int count = 600;
    const auto ids = send_all(sender, count, "g-");
    ASSERT_TRUE(sender.flush(20s));

    const auto billing = receive_spread({&a1, &a2}, count);
    const auto audit = receive_spread({&b}, count);
    EXPECT_EQ(audit[0], ids); // one member: spool order, every message
    std::set<message_id> shared(billing[0].begin(), billing[0].end());
    shared.insert(billing[1].begin(), billing[1].end());
    EXPECT_EQ(shared.size(), static_cast<std::size_t>(count)); // every message, once
    EXPECT_EQ(billing[0].size() + billing[1].size(), static_cast<std::size_t>(count));
    EXPECT_FALSE(billing[0].empty());
    EXPECT_FALSE(billing[1].empty()); // shared between the members
    // The default queue still holds every message for an ungrouped consumer.
    reliable_receiver plain(ctx, receiver_options(proxy));
    EXPECT_EQ(receive_ids(plain, count), ids);
    ASSERT_TRUE(eventually(
        [&] {
            return group_named(proxy, "billing").at("pending") == 0 &&
                   group_named(proxy, "audit").at("pending") == 0;
        },
        10s))
        << proxy.status_json();
    EXPECT_NE(proxy.status_json().find("\"group\":\"billing\""), std::string::npos);
}

TEST_F(durable_fixture, a_group_from_latest_sees_only_new_messages_and_a_bad_start_is_refused) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    (void)send_all(sender, 10, "old-");
    ASSERT_TRUE(sender.flush(20s));

    auto o = receiver_options(proxy);
    o.group = "late";
    o.start = "latest";
    reliable_receiver late(ctx, o);
    ASSERT_TRUE(eventually([&] { return !group_named(proxy, "late").is_null(); }));
    const auto fresh = send_all(sender, 5, "new-");
    ASSERT_TRUE(sender.flush(20s));
    EXPECT_EQ(receive_ids(late, 5), fresh);
    EXPECT_FALSE(late.recv(300ms)) << "an old message reached a group created at latest";

    auto bad = receiver_options(proxy);
    bad.group = "ahead";
    bad.start = "sequence:99999999";
    reliable_receiver refused(ctx, bad);
    try {
        (void)refused.recv(5s);
        ADD_FAILURE() << "a start in the future was accepted";
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("in the future"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(group_named(proxy, "ahead").is_null());
    EXPECT_THROW(
        {
            auto named = receiver_options(proxy);
            named.group = "no spaces";
            reliable_receiver r(ctx, named);
        },
        config_error);
}

TEST_F(durable_fixture, groups_are_reset_and_deleted_by_control_commands_only_while_unread) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    const auto ids = send_all(sender, 20, "r-");
    ASSERT_TRUE(sender.flush(20s));
    auto o = receiver_options(proxy);
    o.group = "g";
    {
        reliable_receiver r(ctx, o);
        EXPECT_EQ(receive_ids(r, 20), ids);
        const auto busy = control_reply(proxy, "GROUP RESET g earliest");
        EXPECT_NE(busy.find("consumer(s) connected"), std::string::npos) << busy;
    } // BYE
    ASSERT_TRUE(eventually([&] { return control_reply(proxy, "GROUP RESET g earliest") == "OK"; }));
    {
        reliable_receiver again(ctx, o);
        EXPECT_EQ(receive_ids(again, 20), ids); // everything again after the reset
    }
    const auto bad_start = control_reply(proxy, "GROUP RESET g tomorrow");
    EXPECT_EQ(bad_start.rfind("ERROR", 0), 0u) << bad_start;
    const auto listed = control_reply(proxy, "GROUPS");
    EXPECT_NE(listed.find("\"name\":\"g\""), std::string::npos) << listed;
    ASSERT_TRUE(eventually([&] { return control_reply(proxy, "group delete g") == "OK"; }));
    EXPECT_TRUE(group_named(proxy, "g").is_null());
    const auto unknown = control_reply(proxy, "GROUP DELETE g");
    EXPECT_NE(unknown.find("no consumer group 'g'"), std::string::npos) << unknown;
}

TEST_F(durable_fixture, a_groups_acks_survive_a_proxy_restart) {
    std::vector<message_id> ids;
    auto o = options();
    {
        durable_proxy proxy(ctx, o);
        proxy.start();
        reliable_sender sender(ctx, sender_options(proxy));
        ids = send_all(sender, 100, "s-");
        ASSERT_TRUE(sender.flush(20s));
        auto ro = receiver_options(proxy);
        ro.group = "steady";
        ro.credit = 10;
        reliable_receiver r(ctx, ro);
        const auto first = receive_ids(r, 50);
        ASSERT_EQ(first, std::vector<message_id>(ids.begin(), ids.begin() + 50));
        ASSERT_TRUE(eventually([&] { return group_named(proxy, "steady").at("acked") == 50; }))
            << proxy.status_json();
        proxy.stop();
    }
    durable_proxy proxy(ctx, o);
    proxy.start();
    auto ro = receiver_options(proxy);
    ro.group = "steady";
    reliable_receiver r(ctx, ro);
    const auto rest = receive_ids(r, 50);
    // What was in flight comes again; nothing acked before does (stop() committed the acks).
    std::set<message_id> got(rest.begin(), rest.end());
    for (int i = 0; i < 50; ++i) {
        EXPECT_EQ(got.count(ids[static_cast<std::size_t>(i)]), 0u) << "acked message " << i;
    }
    for (int i = 50; i < 100; ++i) {
        EXPECT_EQ(got.count(ids[static_cast<std::size_t>(i)]), 1u) << "message " << i;
    }
}

TEST_F(durable_fixture, dead_letters_are_listed_requeued_to_their_group_and_purged_online) {
    durable_proxy proxy(ctx, options());
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    const auto ids = send_all(sender, 3, "dl-");
    ASSERT_TRUE(sender.flush(20s));
    auto in_group = [&](const std::string& g) {
        auto o = receiver_options(proxy);
        o.group = g;
        return o;
    };
    {
        reliable_receiver mailer(ctx, in_group("mailer"));
        reliable_receiver audit(ctx, in_group("audit"));
        EXPECT_EQ(receive_ids(audit, 3), ids);
        for (int i = 0; i < 3; ++i) {
            auto d = mailer.recv(10s);
            ASSERT_TRUE(d);
            if (i == 0) {
                mailer.nack(*d, false, "smtp 550");
            } else {
                mailer.ack(*d);
            }
        }
        mailer.flush_acks();
        ASSERT_TRUE(eventually([&] {
            return group_named(proxy, "mailer").at("dead_lettered") == 1 &&
                   group_named(proxy, "audit").at("pending") == 0;
        })) << proxy.status_json();
    }
    const auto listed = nlohmann::json::parse(control_reply(proxy, "DLQ LIST"));
    ASSERT_EQ(listed.at("dead_letters"), 1) << listed.dump();
    const auto& letter = listed.at("messages").at(0);
    EXPECT_EQ(letter.at("id"), ids[0].to_string());
    EXPECT_EQ(letter.at("group"), "mailer");
    EXPECT_EQ(letter.at("reason"), "rejected by the consumer: smtp 550");
    EXPECT_EQ(control_reply(proxy, "DLQ REQUEUE " + ids[0].to_string()), "OK requeued 1");
    EXPECT_EQ(nlohmann::json::parse(control_reply(proxy, "DLQ LIST")).at("dead_letters"), 0);
    // Back to mailer only: a new message (new id), caused by the dead letter, same body.
    reliable_receiver mailer(ctx, in_group("mailer"));
    auto back = mailer.recv(10s);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->message.body_view(), "dl-0");
    EXPECT_NE(back->message.id(), ids[0]);
    EXPECT_EQ(back->message.header().causation_id, ids[0]);
    mailer.ack(*back);
    reliable_receiver audit(ctx, in_group("audit"));
    EXPECT_FALSE(audit.recv(500ms)) << "audit got the requeued copy of mailer's dead letter";
    EXPECT_THAT(control_reply(proxy, "DLQ REQUEUE not-an-id"), ::testing::StartsWith("ERROR"));
    EXPECT_THAT(control_reply(proxy, "DLQ FLY"), ::testing::StartsWith("ERROR usage"));
    EXPECT_EQ(control_reply(proxy, "DLQ PURGE"), "OK purged 0");
}
