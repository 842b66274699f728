// The durable proxy with the reliable sender and receiver: confirms after commit, delivery
// under credit, ack / nack / timeout / consumer loss, restart over the same spool, duplicate
// suppression on both sides, back-pressure at a full spool, best-effort PUSH/PULL, malformed
// input. Every check is by message id.
#include <zmqkit/patterns/durable.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
    }
    spool dlq([&] {
        spool_options so;
        so.directory = o.spool.directory / "dead-letter";
        so.read_only = true;
        so.dead_letter_spool = false;
        so.registry = &registry;
        return so;
    }());
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
    EXPECT_EQ(seen, std::set<message_id>(ids.begin(), ids.end()));
    EXPECT_EQ(rest.size(), 45u);
}

TEST_F(durable_fixture, a_full_spool_holds_producers_back_until_consumers_make_room) {
    auto o = options();
    o.spool.max_messages = 10;
    durable_proxy proxy(ctx, o);
    proxy.start();
    reliable_sender sender(ctx, sender_options(proxy));
    const auto ids = send_all(sender, 30, "f-");
    ASSERT_TRUE(eventually([&] {
        (void)sender.poll(10ms);
        return sender.confirmed() >= 10 &&
               proxy.status_json().find("\"state\":\"backpressure\"") != std::string::npos;
    })) << proxy.status_json();
    (void)sender.poll(100ms);
    EXPECT_EQ(sender.confirmed(), 10u);
    EXPECT_EQ(sender.unconfirmed(), 20u);
    reliable_receiver receiver(ctx, receiver_options(proxy));
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
        message m("p" + std::to_string(i));
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
