// Publish-subscribe: fan-out by prefix through the forwarder, gap / duplicate / late detection,
// publisher restart, slow-subscriber policies (drop, block, disconnect over tcp and ipc),
// late-joiner snapshots, consumer groups.
#include <zmqkit/patterns/pubsub.hpp>

#include "support/testing.hpp"
#include "support/zmtp_peer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>
#include <unordered_set>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;

namespace {

socket_options with_registry(metrics_registry& registry, int hwm = 1000) {
    socket_options o;
    o.registry = &registry;
    o.send_hwm = hwm;
    o.recv_hwm = hwm;
    o.linger = 0ms;
    return o;
}

// A subscriber's options: connect to `endpoints`, count on `registry`; `name` labels its
// metrics (empty: the default).
subscriber_options subscriber_to(std::string endpoints, metrics_registry& registry, int hwm = 1000,
                                 std::string name = {}) {
    subscriber_options so;
    so.endpoints = std::move(endpoints);
    if (!name.empty()) {
        so.name = std::move(name);
    }
    so.sockets = with_registry(registry, hwm);
    so.registry = &registry;
    return so;
}

struct forwarder_fixture {
    zmq::context_t ctx;
    metrics_registry registry;
    std::string frontend = "inproc://" + unique_name("fwd-in");
    std::string backend = "inproc://" + unique_name("fwd-out");
};

} // namespace

TEST(sequence_tracker, reports_gaps_duplicates_and_late_arrivals_exactly) {
    sequence_tracker t;
    sequence_event e;
    EXPECT_EQ(t.observe("P", "t", 7, &e), sequence_verdict::first); // joining mid-stream
    EXPECT_EQ(t.observe("P", "t", 8, &e), sequence_verdict::in_order);
    EXPECT_EQ(t.observe("P", "t", 12, &e), sequence_verdict::gap);
    EXPECT_EQ(e.missing_first, 9U);
    EXPECT_EQ(e.missing_last, 11U);
    EXPECT_EQ(t.observe("P", "t", 10, &e), sequence_verdict::late);
    EXPECT_EQ(t.observe("P", "t", 10, &e), sequence_verdict::duplicate);
    EXPECT_EQ(t.observe("P", "t", 12, &e), sequence_verdict::duplicate);
    EXPECT_EQ(t.observe("P", "t", 9, &e), sequence_verdict::late);
    EXPECT_EQ(t.observe("P", "u", 1, &e), sequence_verdict::first); // topics are separate
    EXPECT_EQ(t.observe("Q", "t", 1, &e), sequence_verdict::first); // a new publisher: no gap
    EXPECT_EQ(t.observe("", "t", 5, &e), sequence_verdict::untracked);
    EXPECT_EQ(t.observe("P", "t", 0, &e), sequence_verdict::untracked);
    const auto& s = t.stats();
    EXPECT_EQ(s.gaps, 1U);
    EXPECT_EQ(s.missing, 3U);
    EXPECT_EQ(s.duplicates, 2U);
    EXPECT_EQ(s.late, 2U);
    EXPECT_EQ(s.streams, 3U);
}

TEST(sequence_tracker, cached_last_stream_keeps_every_verdict_and_eviction) {
    // The tracker remembers the last stream looked up; interleaved streams, a stream evicted
    // while cached, and ids that share bytes must give the same verdicts as a plain map.
    sequence_tracker t(2);
    const std::string p(16, 'P');
    std::string q = p;
    q.back() = 'Q';
    EXPECT_EQ(t.observe(p, "a", 1), sequence_verdict::first);
    EXPECT_EQ(t.observe(p, "a", 2), sequence_verdict::in_order); // cached
    EXPECT_EQ(t.observe(q, "a", 5), sequence_verdict::first);    // same topic, other id
    EXPECT_EQ(t.observe(p, "a", 3), sequence_verdict::in_order);
    EXPECT_EQ(t.observe(p, "ab", 1), sequence_verdict::first); // the cached topic + a byte
    EXPECT_EQ(t.observe(p, "a", 5), sequence_verdict::gap);    // q was evicted (max 2)
    EXPECT_EQ(t.observe(q, "a", 6), sequence_verdict::first) << "evicted: starts again";
    // "ab" was the least recently seen: evicted while "a" stays; the cached stream is q's now.
    EXPECT_EQ(t.observe(p, "a", 4), sequence_verdict::late);
    EXPECT_EQ(t.observe(p, "a", 4), sequence_verdict::duplicate);
    EXPECT_EQ(t.observe(p, "ab", 2), sequence_verdict::first);
    t.seed(q, "a", 10);
    EXPECT_EQ(t.observe(q, "a", 11), sequence_verdict::in_order);
    EXPECT_EQ(t.last(q, "a"), 11U);
    EXPECT_EQ(t.stats().streams, 6U); // seed() added one too
    // A copy has streams of its own (and no cached pointer into the original's).
    auto copy = t;
    EXPECT_EQ(copy.observe(q, "a", 12), sequence_verdict::in_order);
    EXPECT_EQ(copy.observe(q, "a", 12), sequence_verdict::duplicate);
    EXPECT_EQ(t.observe(q, "a", 12), sequence_verdict::in_order);
    EXPECT_EQ(t.last(q, "a"), 12U);
    EXPECT_EQ(t.stats().gaps, 1U);
    EXPECT_EQ(t.stats().late, 1U);
    EXPECT_EQ(t.stats().duplicates, 1U);
}

TEST(pubsub, publisher_id_travels_in_header_key_12_and_the_legacy_user_header_is_read) {
    header h;
    EXPECT_TRUE(publisher_id_of(h).empty());
    h.set_user_header(publisher_id_header, "legacy-publisher");
    EXPECT_EQ(publisher_id_of(h), "legacy-publisher");
    const auto id = message_id::generate();
    h.publisher_id = id;
    EXPECT_EQ(publisher_id_of(h),
              std::string_view(reinterpret_cast<const char*>(id.data()), message_id::size))
        << "key 12 wins";

    zmq::context_t ctx;
    metrics_registry registry;
    publisher pub(ctx, {"inproc://" + unique_name("key12"), "pub", with_registry(registry), true});
    subscriber sub(ctx, subscriber_to(pub.endpoints().front(), registry));
    sub.subscribe("t");
    ASSERT_TRUE(pub.wait_for_subscriber("t", 10s));
    message m{"v"};
    ASSERT_TRUE(pub.send("t", m));
    auto d = sub.recv(5s);
    ASSERT_TRUE(d.has_value());
    const auto& got = d->message.header();
    EXPECT_EQ(publisher_id_of(got), pub.id());
    EXPECT_TRUE(got.user_headers.empty()) << "no user header on the wire any more";
    EXPECT_EQ(got.sequence, 1U);
    // map 1, version 2, id 19, timestamp 10, sequence 2, publisher id 19 bytes
    EXPECT_EQ(encoded_size(got), 53U);
    EXPECT_EQ(sub.tracker().last(pub.id(), "t"), 1U);

    // The header + bytes form: same numbering, id readable after the send.
    header h2;
    h2.type = "price";
    ASSERT_TRUE(pub.send("t", h2, "body bytes"));
    EXPECT_FALSE(h2.id.is_nil());
    EXPECT_EQ(h2.sequence, 2U);
    auto d2 = sub.recv(5s);
    ASSERT_TRUE(d2.has_value());
    EXPECT_EQ(d2->message.id(), h2.id);
    EXPECT_EQ(d2->message.header().type, "price");
    EXPECT_EQ(d2->message.body_view(), "body bytes");
    EXPECT_EQ(publisher_id_of(d2->message.header()), pub.id());
    EXPECT_EQ(sub.stats().sequences.in_order, 1U);
}

// A subscriber fed by a raw XPUB on which a test writes publications by hand, with the
// sequence events the subscriber reports.
struct hand_written_feed {
    zmq::context_t ctx;
    metrics_registry registry;
    zmqkit::socket raw;
    subscriber sub;
    std::vector<sequence_event> events;

    explicit hand_written_feed(const std::string& name)
        : raw(ctx, zmq::socket_type::xpub, with_registry(registry)),
          sub(ctx, subscriber_to(
                       raw.attach("inproc://" + unique_name(name), endpoint_action::bind).front(),
                       registry)) {
        sub.on_sequence_event([this](const sequence_event& e) { events.push_back(e); });
    }
    // Subscribes `prefix` and waits (bounded) until the XPUB has seen the subscription.
    [[nodiscard]] bool subscribe(const std::string& prefix) {
        sub.subscribe(prefix);
        return recv_within(raw.raw(), 5s).has_value();
    }
};

TEST(pubsub, gaps_are_found_for_key_12_and_legacy_publishers_alike) {
    // Hand-written publications: one publisher with key 12, one older one with the user
    // header, interleaved on one topic, each skipping numbers.
    hand_written_feed feed("gaps12");
    ASSERT_TRUE(feed.subscribe("t"));
    auto& raw = feed.raw;
    auto& sub = feed.sub;
    auto& events = feed.events;
    const auto modern = message_id::generate();
    const std::string modern_bytes(reinterpret_cast<const char*>(modern.data()), message_id::size);
    const std::string legacy = "publisher-0001..";
    const std::vector<std::pair<bool, std::uint64_t>> sends{
        {true, 1}, {false, 1}, {true, 2}, {false, 2}, {true, 5}, {false, 4}, {true, 5}};
    for (const auto& [is_modern, seq] : sends) {
        message m{"x"};
        m.header().sequence = seq;
        if (is_modern) {
            m.header().publisher_id = modern;
        } else {
            m.header().set_user_header(publisher_id_header, legacy);
        }
        ASSERT_TRUE(raw.send("t", m));
    }
    publication p; // the reused form
    for (std::size_t i = 0; i + 1 < sends.size(); ++i) {
        ASSERT_TRUE(sub.recv(p, 5s)) << i;
        EXPECT_EQ(p.message.header().sequence, sends[i].second);
    }
    EXPECT_FALSE(sub.recv(p, 100ms)) << "the duplicate is dropped";
    ASSERT_EQ(events.size(), 3U);
    EXPECT_EQ(events[0].verdict, sequence_verdict::gap);
    EXPECT_EQ(events[0].publisher, modern_bytes);
    EXPECT_EQ(events[0].missing_first, 3U);
    EXPECT_EQ(events[0].missing_last, 4U);
    EXPECT_EQ(events[1].verdict, sequence_verdict::gap);
    EXPECT_EQ(events[1].publisher, legacy);
    EXPECT_EQ(events[1].missing_first, 3U);
    EXPECT_EQ(events[1].missing_last, 3U);
    EXPECT_EQ(events[2].verdict, sequence_verdict::duplicate);
    EXPECT_EQ(events[2].publisher, modern_bytes);
    EXPECT_EQ(sub.stats().sequences.streams, 2U);
}

TEST(pubsub, receive_into_a_reused_publication_keeps_its_storage) {
    zmq::context_t ctx;
    metrics_registry registry;
    publisher pub(ctx, {"inproc://" + unique_name("reuse"), "pub", with_registry(registry), true});
    subscriber sub(ctx, subscriber_to(pub.endpoints().front(), registry));
    sub.subscribe("");
    ASSERT_TRUE(pub.wait_for_subscriber("x", 10s));
    const std::string topic_a = "a-topic-longer-than-the-sso-buffer";
    const std::string topic_b = "b-topic-longer-than-the-sso-buffer";
    constexpr int count = 200;
    for (int i = 0; i < count; ++i) {
        message m{"body " + std::to_string(i)};
        m.header().type = "a-type-longer-than-the-sso-buffer." + std::to_string(i % 10);
        m.header().set_user_header("tenant-with-a-long-name",
                                   "acme-corporation-" + std::to_string(i % 10));
        ASSERT_TRUE(pub.send(i % 2 == 0 ? topic_a : topic_b, m));
    }
    publication p;
    ASSERT_TRUE(sub.recv(p, 5s));
    const auto* topic_storage = p.topic.data();
    const auto* type_storage = p.message.header().type.data();
    const auto* user_name_storage = p.message.header().user_headers.at(0).first.data();
    for (int i = 1; i < count; ++i) {
        ASSERT_TRUE(sub.recv(p, 5s)) << i;
        EXPECT_EQ(p.topic, i % 2 == 0 ? topic_a : topic_b);
        EXPECT_EQ(p.message.body_view(), "body " + std::to_string(i));
        EXPECT_EQ(p.message.header().sequence, static_cast<std::uint64_t>(i / 2 + 1));
        EXPECT_EQ(p.message.header().type,
                  "a-type-longer-than-the-sso-buffer." + std::to_string(i % 10));
        ASSERT_EQ(p.message.header().user_headers.size(), 1U);
        EXPECT_FALSE(p.from_snapshot);
        // Same storage: nothing was allocated for these strings.
        ASSERT_EQ(p.topic.data(), topic_storage) << i;
        ASSERT_EQ(p.message.header().type.data(), type_storage) << i;
        ASSERT_EQ(p.message.header().user_headers[0].first.data(), user_name_storage) << i;
    }
    EXPECT_FALSE(sub.recv(p, 100ms));
    const auto st = sub.stats();
    EXPECT_EQ(st.received, static_cast<std::uint64_t>(count));
    EXPECT_EQ(st.sequences.streams, 2U);
    EXPECT_EQ(st.sequences.in_order, static_cast<std::uint64_t>(count - 2));
    EXPECT_EQ(st.sequences.gaps + st.sequences.duplicates + st.sequences.late, 0U);
}

TEST(pubsub, fan_out_to_three_prefixes_each_gets_exactly_its_topics_by_id) {
    forwarder_fixture f;
    forwarder_options fo;
    fo.frontend = f.frontend;
    fo.backend = f.backend;
    fo.registry = &f.registry;
    forwarder fwd(f.ctx, fo);
    fwd.start();

    publisher pub(f.ctx, {">" + f.frontend, "pub", with_registry(f.registry), true});
    const std::vector<std::string> prefixes{"orders.", "orders.eu", "audit."};
    std::vector<std::unique_ptr<subscriber>> subs;
    for (const auto& prefix : prefixes) {
        subs.push_back(std::make_unique<subscriber>(f.ctx, subscriber_to(f.backend, f.registry)));
        subs.back()->subscribe(prefix);
    }
    // Readiness from the XPUB side: the publisher has seen every subscription.
    for (const auto& prefix : prefixes) {
        ASSERT_TRUE(eventually([&] { return pub.subscription_count(prefix) >= 1; }, 10s)) << prefix;
    }

    const std::vector<std::string> topics{"orders.eu.fr", "orders.us", "audit.login", "metrics.cpu",
                                          "orders.eu"};
    std::map<std::string, std::set<message_id>> expected; // prefix -> ids
    constexpr int count = 3000;
    for (int i = 0; i < count; ++i) {
        const auto& topic = topics[static_cast<std::size_t>(i) % topics.size()];
        message m{"body " + std::to_string(i)};
        ASSERT_TRUE(pub.send(topic, m));
        for (const auto& prefix : prefixes) {
            if (topic.starts_with(prefix)) {
                expected[prefix].insert(m.id());
            }
        }
    }
    for (std::size_t s = 0; s < subs.size(); ++s) {
        auto want = expected[prefixes[s]];
        const auto total = want.size();
        for (std::size_t n = 0; n < total; ++n) {
            auto d = subs[s]->recv(10s);
            ASSERT_TRUE(d.has_value()) << prefixes[s] << " after " << n << " of " << total;
            ASSERT_TRUE(d->topic.starts_with(prefixes[s])) << d->topic;
            ASSERT_EQ(want.erase(d->message.id()), 1U) << "unexpected or duplicate id";
        }
        EXPECT_TRUE(want.empty());
        // Everything expected arrived: nothing else may follow.
        EXPECT_FALSE(subs[s]->recv(100ms).has_value());
        const auto st = subs[s]->stats();
        EXPECT_EQ(st.sequences.gaps, 0U);
        EXPECT_EQ(st.sequences.duplicates, 0U);
    }
    const auto stats = fwd.statistics();
    // Nobody subscribed to metrics.: the publisher filters those out itself.
    EXPECT_EQ(stats.frontend_messages_in, static_cast<std::uint64_t>(count - count / 5));
    EXPECT_GE(stats.backend_messages_in, 3U); // subscriptions from the three subscribers
    EXPECT_GE(stats.frontend_messages_out, 3U);
    EXPECT_EQ(fwd.subscriptions(), 3);
}

TEST(pubsub, typed_handlers_dispatch_by_longest_prefix) {
    zmq::context_t ctx;
    metrics_registry registry;
    publisher pub(ctx, {"inproc://" + unique_name("typed"), "pub", with_registry(registry), true});
    subscriber sub(ctx, subscriber_to(pub.endpoints().front(), registry));
    std::vector<std::string> seen;
    sub.on_typed<int>("price.", [&](const std::string& topic, int v) {
        seen.push_back("any " + topic + "=" + std::to_string(v));
    });
    sub.on_typed<std::string>("price.eur", [&](const std::string& topic, const std::string& v) {
        seen.push_back("eur " + topic + "=" + v);
    });
    ASSERT_TRUE(eventually([&] { return pub.subscription_count("price.eur") >= 1; }));
    ASSERT_TRUE(pub.send_packed("price.usd", 42));
    ASSERT_TRUE(pub.send_packed("price.eur", std::string("7.5")));
    ASSERT_TRUE(sub.dispatch(5s));
    ASSERT_TRUE(sub.dispatch(5s));
    EXPECT_EQ(seen, (std::vector<std::string>{"any price.usd=42", "eur price.eur=7.5"}));
}

TEST(pubsub, gap_injected_on_the_wire_is_reported_with_its_exact_range) {
    // A PUB that writes the envelope by hand, skipping sequence numbers 4..6.
    hand_written_feed feed("gaps");
    ASSERT_TRUE(feed.subscribe("t"));
    auto& raw = feed.raw;
    auto& sub = feed.sub;
    auto& events = feed.events;
    for (std::uint64_t seq : {1U, 2U, 3U, 7U, 8U, 5U}) {
        message m{"x"};
        m.header().sequence = seq;
        m.header().set_user_header(publisher_id_header, "publisher-0001..");
        ASSERT_TRUE(raw.send("t", m));
    }
    for (int i = 0; i < 6; ++i) {
        ASSERT_TRUE(sub.recv(5s).has_value());
    }
    ASSERT_EQ(events.size(), 2U);
    EXPECT_EQ(events[0].verdict, sequence_verdict::gap);
    EXPECT_EQ(events[0].missing_first, 4U);
    EXPECT_EQ(events[0].missing_last, 6U);
    EXPECT_EQ(events[1].verdict, sequence_verdict::late);
    EXPECT_EQ(events[1].sequence, 5U);
    EXPECT_EQ(feed.registry
                  .get_counter("zmqkit_subscriber_missing_total", "", {{"component", "subscriber"}})
                  .value(),
              3U);
}

TEST(pubsub, stalled_subscriber_drop_policy_reports_exact_loss_and_others_keep_receiving) {
    forwarder_fixture f;
    forwarder_options fo;
    fo.frontend = f.frontend;
    fo.backend = f.backend;
    fo.registry = &f.registry;
    fo.sockets = with_registry(f.registry, 10); // tiny HWM per subscriber
    forwarder fwd(f.ctx, fo);
    fwd.start();
    publisher pub(f.ctx, {">" + f.frontend, "pub", with_registry(f.registry), true});

    auto make_sub = [&](const std::string& name) {
        // The fast subscriber's queue is large enough never to fill in this test.
        auto s = std::make_unique<subscriber>(
            f.ctx, subscriber_to(f.backend, f.registry, name == "fast" ? 100000 : 10, name));
        s->subscribe("t");
        return s;
    };
    auto stalled = make_sub("stalled");
    auto fast = make_sub("fast");
    ASSERT_TRUE(eventually([&] { return pub.subscription_count("t") >= 2; }, 10s));

    constexpr std::uint64_t count = 5000;
    std::atomic<std::uint64_t> fast_received{0};
    std::atomic<bool> fast_ok{true};
    std::thread reader([&] {
        for (std::uint64_t i = 1; i <= count + 1; ++i) {
            auto d = fast->recv(20s);
            if (!d || d->message.header().sequence != i) {
                fast_ok = false;
                return;
            }
            ++fast_received;
        }
    });
    for (std::uint64_t i = 0; i < count; ++i) {
        ASSERT_TRUE(pub.send("t", message{"payload"}));
    }
    // The fast one got everything so far; now the stalled one reads its (bounded) queue.
    ASSERT_TRUE(eventually([&] { return fast_received.load() == count || !fast_ok; }, 20s));
    std::vector<std::uint64_t> received;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> missing;
    stalled->on_sequence_event([&](const sequence_event& e) {
        if (e.verdict == sequence_verdict::gap) {
            missing.emplace_back(e.missing_first, e.missing_last);
        }
    });
    while (auto d = stalled->recv(100ms)) {
        received.push_back(d->message.header().sequence);
    }
    // One more publication after the stall: the loss before it becomes visible.
    ASSERT_TRUE(pub.send("t", message{"last"}));
    auto last = stalled->recv(5s);
    ASSERT_TRUE(last.has_value());
    received.push_back(last->message.header().sequence);
    reader.join();
    EXPECT_TRUE(fast_ok);
    EXPECT_EQ(fast_received.load(), count + 1);

    // Every number 1..count+1 is either received or inside a reported missing range, once.
    ASSERT_FALSE(missing.empty());
    std::vector<int> seen(count + 2, 0);
    for (auto s : received) {
        ++seen[s];
    }
    for (auto [first, last_missing] : missing) {
        for (auto s = first; s <= last_missing; ++s) {
            ++seen[s];
        }
    }
    for (std::uint64_t s = 1; s <= count + 1; ++s) {
        ASSERT_EQ(seen[s], 1) << "sequence " << s;
    }
    EXPECT_LT(received.size(), static_cast<std::size_t>(count)); // it did lose messages
    EXPECT_GT(fwd.slow_subscriber_drops(), 0U);
    EXPECT_EQ(stalled->stats().sequences.missing, count + 1 - received.size());
}

TEST(pubsub, stalled_subscriber_block_policy_holds_back_then_delivers_everything) {
    forwarder_fixture f;
    forwarder_options fo;
    fo.frontend = f.frontend;
    fo.backend = f.backend;
    fo.registry = &f.registry;
    fo.policy = slow_subscriber_policy::block;
    fo.sockets = with_registry(f.registry, 10);
    forwarder fwd(f.ctx, fo);
    fwd.start();
    auto pub_sockets = with_registry(f.registry, 10);
    pub_sockets.send_timeout = 50ms;
    publisher pub(f.ctx, {">" + f.frontend, "pub", pub_sockets, true});
    auto make_sub = [&](const std::string& name) {
        auto s =
            std::make_unique<subscriber>(f.ctx, subscriber_to(f.backend, f.registry, 10, name));
        s->subscribe("t");
        return s;
    };
    auto stalled = make_sub("stalled");
    auto fast = make_sub("fast");
    ASSERT_TRUE(eventually([&] { return pub.subscription_count("t") >= 2; }, 10s));

    constexpr std::uint64_t count = 2000;
    std::atomic<bool> done{false};
    std::thread sender([&] {
        for (std::uint64_t i = 0; i < count && !done;) {
            message m{"payload"};
            if (pub.send("t", m)) {
                ++i; // a refused send keeps its sequence number: retry it
            }
        }
    });
    std::atomic<std::uint64_t> fast_received{0};
    std::thread reader([&] {
        for (std::uint64_t i = 1; i <= count; ++i) {
            auto d = fast->recv(30s);
            if (!d || d->message.header().sequence != i) {
                return;
            }
            ++fast_received;
        }
    });
    // Back-pressure: the forwarder waits for the stalled subscriber, so the fast one is held too.
    ASSERT_TRUE(eventually(
        [&] { return fwd.status_json().find("\"blocked\":0,") == std::string::npos; }, 10s));
    EXPECT_LT(fast_received.load(), count);
    for (std::uint64_t i = 1; i <= count; ++i) {
        auto d = stalled->recv(30s);
        ASSERT_TRUE(d.has_value()) << i;
        ASSERT_EQ(d->message.header().sequence, i);
    }
    done = true;
    sender.join();
    reader.join();
    EXPECT_EQ(fast_received.load(), count);
    EXPECT_EQ(stalled->stats().sequences.gaps, 0U);
    EXPECT_EQ(fwd.slow_subscriber_drops(), 0U);
}

TEST(pubsub, parse_slow_subscriber_policy_accepts_the_three_and_lists_them_on_error) {
    EXPECT_EQ(parse_slow_subscriber_policy("drop"), slow_subscriber_policy::drop);
    EXPECT_EQ(parse_slow_subscriber_policy("block"), slow_subscriber_policy::block);
    EXPECT_EQ(parse_slow_subscriber_policy("disconnect"), slow_subscriber_policy::disconnect);
    try {
        (void)parse_slow_subscriber_policy("kick");
        ADD_FAILURE() << "accepted 'kick'";
    } catch (const config_error& e) {
        EXPECT_THAT(e.what(),
                    ::testing::HasSubstr("'kick' is not valid (drop | block | disconnect)"));
    }
    forwarder_options fo;
    fo.frontend = "inproc://a";
    fo.backend = "inproc://b";
    fo.slow_subscriber_timeout = 0ms;
    zmq::context_t ctx;
    EXPECT_THROW((void)forwarder(ctx, fo), config_error);
}

namespace {

// A reader thread that checks a subscriber gets 1, 2, 3 ... with nothing missing.
struct in_order_reader {
    subscriber& sub;
    std::atomic<std::uint64_t> received{0};
    std::atomic<bool> ok{true};
    std::atomic<bool> stop{false};
    std::thread thread;

    explicit in_order_reader(subscriber& s) : sub(s) {
        thread = std::thread([this] {
            while (!stop) {
                auto d = sub.recv(20ms);
                if (!d) {
                    continue;
                }
                if (d->message.header().sequence != received + 1) {
                    ok = false;
                    return;
                }
                ++received;
            }
        });
    }
    ~in_order_reader() {
        stop = true;
        thread.join();
    }
    in_order_reader(const in_order_reader&) = delete;
    in_order_reader& operator=(const in_order_reader&) = delete;
};

// Policy disconnect: a subscriber that stops reading is cut off after the timeout while two
// healthy ones get everything; it then reconnects, receives again and reports its gap.
// stalled_connect: how the stalled subscriber connects (tcp: from 127.0.0.2, so the log line
// tells it apart from the healthy ones); peer: the regex the log line must name.
void stalled_subscriber_is_disconnected(const std::string& backend,
                                        const std::string& stalled_connect,
                                        const std::string& peer) {
    forwarder_fixture f;
    std::mutex log_mutex;
    std::vector<std::string> log;
    forwarder_options fo;
    fo.frontend = f.frontend;
    fo.backend = backend;
    fo.registry = &f.registry;
    fo.policy = slow_subscriber_policy::disconnect;
    fo.slow_subscriber_timeout = 400ms;
    fo.sockets = with_registry(f.registry, 1000);
    fo.log = [&](std::string_view line) {
        std::lock_guard lock(log_mutex);
        log.emplace_back(line);
    };
    forwarder fwd(f.ctx, fo);
    fwd.start();
    const auto endpoint = fwd.backend_endpoints().front();
    publisher pub(f.ctx, {">" + f.frontend, "pub", with_registry(f.registry), true});

    auto make_sub = [&](const std::string& name, std::string_view endpoints, int hwm) {
        auto s = std::make_unique<subscriber>(
            f.ctx, subscriber_to(std::string(endpoints), f.registry, hwm, name));
        s->subscribe("t");
        return s;
    };
    auto healthy_a = make_sub("healthy-a", endpoint, 1000000);
    auto healthy_b = make_sub("healthy-b", endpoint, 1000000);
    // RCVHWM 10 and the kernel's buffers: it fills up after a few thousand publications.
    auto stalled = make_sub(
        "stalled", stalled_connect.empty() ? endpoint : stalled_connect + endpoint.substr(6), 10);
    std::vector<sequence_event> gaps;
    stalled->on_sequence_event([&](const sequence_event& e) { gaps.push_back(e); });
    ASSERT_TRUE(eventually([&] { return fwd.subscriptions() == 3; }, 10s));
    ASSERT_TRUE(pub.wait_for_subscriber("t", 10s));

    in_order_reader reader_a(*healthy_a);
    in_order_reader reader_b(*healthy_b);
    const std::string body(1500, 'x');
    std::uint64_t published = 0;
    // Publishes one more when the healthy subscribers are at most `window` behind (so their
    // own queues never fill: any loss is the stalled one's).
    auto publish_paced = [&](std::uint64_t window) {
        if (published - std::min(reader_a.received.load(), reader_b.received.load()) > window) {
            std::this_thread::yield();
            return true;
        }
        if (!pub.send("t", message{body})) {
            return false;
        }
        ++published;
        return true;
    };
    // Fill the stalled subscriber until the forwarder drops for it, then keep the stream going
    // (slowly: its queue stays full by itself) until the forwarder cuts it off.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (fwd.slow_subscriber_drops() == 0 && std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(publish_paced(256));
    }
    ASSERT_GT(fwd.slow_subscriber_drops(), 0U) << "the stalled subscriber never filled up";
    while (fwd.slow_subscriber_disconnects() == 0 && std::chrono::steady_clock::now() < deadline) {
        ASSERT_TRUE(publish_paced(0));
    }
    ASSERT_EQ(fwd.slow_subscriber_disconnects(), 1U) << fwd.status_json();
    EXPECT_THAT(fwd.status_json(), ::testing::HasSubstr("\"slow_subscriber_disconnects\":1,"));
    EXPECT_THAT(fwd.status_json(), ::testing::HasSubstr("\"policy\":\"disconnect\""));
    EXPECT_EQ(f.registry
                  .get_counter("zmqkit_forwarder_slow_subscriber_disconnects_total", "",
                               {{"component", "forwarder"}})
                  .value(),
              1U);
    {
        std::lock_guard lock(log_mutex);
        ASSERT_EQ(log.size(), 1U);
        EXPECT_TRUE(
            std::regex_search(log[0], std::regex("^forwarder: disconnected slow subscriber " +
                                                 peer + ": send queue full for [0-9]+\\.[0-9] s")))
            << log[0];
    }
    const std::uint64_t cut_at = published;

    // The stalled subscriber reads again: what it had, then (reconnected by libzmq) the live
    // stream, with the loss reported as a gap, never silent.
    std::vector<std::uint64_t> received;
    std::optional<std::uint64_t> first_after_cut;
    while (!first_after_cut && std::chrono::steady_clock::now() < deadline) {
        if (auto d = stalled->recv(20ms)) {
            received.push_back(d->message.header().sequence);
            if (received.back() > cut_at) {
                first_after_cut = received.back();
            }
        } else {
            ASSERT_TRUE(publish_paced(0));
        }
    }
    ASSERT_TRUE(first_after_cut.has_value()) << "the disconnected subscriber never came back";
    ASSERT_FALSE(gaps.empty());
    const auto& last_gap = gaps.back();
    EXPECT_EQ(last_gap.verdict, sequence_verdict::gap);
    EXPECT_EQ(last_gap.sequence, *first_after_cut);
    EXPECT_LE(last_gap.missing_first, cut_at);
    EXPECT_EQ(last_gap.missing_last, *first_after_cut - 1);
    // Every number up to the last received is either received or reported missing, once.
    std::vector<int> seen(*first_after_cut + 1, 0);
    for (auto s : received) {
        ++seen[s];
    }
    for (const auto& e : gaps) {
        ASSERT_EQ(e.verdict, sequence_verdict::gap);
        for (auto s = e.missing_first; s <= e.missing_last; ++s) {
            ++seen[s];
        }
    }
    for (std::uint64_t s = 1; s <= *first_after_cut; ++s) {
        ASSERT_EQ(seen[s], 1) << "sequence " << s;
    }

    // The healthy ones got every publication, in order, and nobody else was cut off.
    EXPECT_TRUE(eventually(
        [&] {
            return !reader_a.ok || !reader_b.ok ||
                   (reader_a.received == published && reader_b.received == published);
        },
        20s));
    EXPECT_TRUE(reader_a.ok && reader_b.ok) << "a healthy subscriber saw a gap";
    EXPECT_EQ(reader_a.received.load(), published);
    EXPECT_EQ(reader_b.received.load(), published);
    EXPECT_EQ(fwd.slow_subscriber_disconnects(), 1U);
    EXPECT_TRUE(eventually([&] { return fwd.subscriptions() == 3; }, 10s)) << fwd.status_json();
}

} // namespace

TEST(pubsub, stalled_subscriber_disconnect_policy_tcp_cuts_it_others_get_everything) {
    stalled_subscriber_is_disconnected("tcp://127.0.0.1:*", "tcp://127.0.0.2:0;",
                                       "127\\.0\\.0\\.2:[0-9]+");
}

TEST(pubsub, stalled_subscriber_disconnect_policy_ipc_cuts_it_others_get_everything) {
    const auto backend = ipc_endpoint("fwd-slow");
    // The log names the endpoint and the peer's process (ipc peers have no address).
    const std::string quoted =
        std::regex_replace(backend, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)");
    stalled_subscriber_is_disconnected(backend, "",
                                       quoted + " \\(pid " + std::to_string(::getpid()) + "\\)");
}

TEST(pubsub, publisher_restart_is_a_new_stream_not_a_gap) {
    forwarder_fixture f;
    forwarder_options fo;
    fo.frontend = f.frontend;
    fo.backend = f.backend;
    fo.registry = &f.registry;
    forwarder fwd(f.ctx, fo);
    fwd.start();
    subscriber sub(f.ctx, subscriber_to(f.backend, f.registry));
    std::vector<sequence_event> events;
    sub.on_sequence_event([&](const sequence_event& e) { events.push_back(e); });
    sub.subscribe("t");
    std::string first_id;
    for (int generation = 0; generation < 2; ++generation) {
        publisher pub(f.ctx, {">" + f.frontend, "pub", with_registry(f.registry), true});
        first_id = generation == 0 ? pub.id() : first_id;
        if (generation == 1) {
            EXPECT_NE(pub.id(), first_id);
        }
        ASSERT_TRUE(pub.wait_for_subscriber("t", 10s));
        const int n = generation == 0 ? 10 : 5;
        for (int i = 0; i < n; ++i) {
            ASSERT_TRUE(pub.send("t", message{"v"}));
        }
        for (int i = 1; i <= n; ++i) {
            auto d = sub.recv(5s);
            ASSERT_TRUE(d.has_value());
            EXPECT_EQ(d->message.header().sequence, static_cast<std::uint64_t>(i));
        }
    }
    EXPECT_TRUE(events.empty());
    EXPECT_EQ(sub.stats().sequences.streams, 2U);
    EXPECT_EQ(sub.stats().sequences.gaps, 0U);
}

TEST(pubsub, late_joiner_gets_snapshot_then_live_stream_without_gap_or_duplicate) {
    forwarder_fixture f;
    forwarder_options fo;
    fo.frontend = f.frontend;
    fo.backend = f.backend;
    fo.registry = &f.registry;
    fo.last_value_cache = true;
    fo.policy = slow_subscriber_policy::block;
    forwarder fwd(f.ctx, fo);
    fwd.start();
    publisher pub(f.ctx, {">" + f.frontend, "pub", with_registry(f.registry), true});
    ASSERT_TRUE(pub.wait_for_subscriber("k.0", 10s)); // the cache subscribes to everything

    constexpr int topics = 10;
    std::atomic<int> published{0};
    std::atomic<bool> stop{false};
    std::atomic<bool> sender_done{false};
    // The stream runs until the late joiner has seen enough of it live (bounded).
    std::thread sender([&] {
        for (int r = 1; r <= 1000000 && !stop; ++r) {
            for (int t = 0; t < topics; ++t) {
                if (!pub.send_packed("k." + std::to_string(t), r)) {
                    sender_done = true;
                    return;
                }
                ++published;
            }
        }
        sender_done = true;
    });
    // Join while the stream is running.
    ASSERT_TRUE(eventually([&] { return published.load() >= topics * 100; }, 10s));
    subscriber late(f.ctx, subscriber_to(f.backend, f.registry));
    late.subscribe_with_snapshot("k.");

    std::map<std::string, std::uint64_t> last_seq; // topic -> latest sequence seen
    std::map<std::string, int> live_per_topic;
    std::set<std::string> from_snapshot;
    int live = 0;
    auto enough = [&] {
        return live_per_topic.size() == static_cast<std::size_t>(topics) &&
               std::all_of(live_per_topic.begin(), live_per_topic.end(),
                           [](const auto& kv) { return kv.second >= 50; }); // 50 live per topic
    };
    publication received; // the reused form: snapshot values, held-back and live ones
    while (!enough()) {
        ASSERT_TRUE(late.recv(received, 10s)) << "stuck after " << live << " live messages";
        const auto* d = &received;
        const auto seq = d->message.header().sequence;
        const int v = d->message.body_as<int>();
        EXPECT_EQ(static_cast<std::uint64_t>(v), seq); // one value per round, per topic
        if (d->from_snapshot) {
            EXPECT_FALSE(last_seq.contains(d->topic)) << "snapshot after live for " << d->topic;
            from_snapshot.insert(d->topic);
        } else {
            ++live;
            ++live_per_topic[d->topic];
            if (last_seq.contains(d->topic)) {
                ASSERT_EQ(seq, last_seq[d->topic] + 1) << d->topic; // no gap, no duplicate
            }
        }
        last_seq[d->topic] = seq;
    }
    stop = true;
    while (!sender_done) { // keep reading: under the block policy the sender waits for us
        (void)late.recv(50ms);
    }
    sender.join();
    EXPECT_EQ(from_snapshot.size(), static_cast<std::size_t>(topics));
    const auto st = late.stats();
    EXPECT_EQ(st.sequences.gaps, 0U);
    EXPECT_EQ(st.sequences.duplicates, 0U);
    EXPECT_EQ(st.snapshot_values, static_cast<std::uint64_t>(topics));
    EXPECT_FALSE(late.snapshot_pending());
    EXPECT_TRUE(eventually([&] {
        return fwd.status_json().find("\"snapshots\":1") != std::string::npos;
    })) << fwd.status_json();
}

TEST(pubsub, last_value_cache_tracks_key_12_and_legacy_publishers) {
    forwarder_fixture f;
    forwarder_options fo;
    fo.frontend = f.frontend;
    fo.backend = f.backend;
    fo.registry = &f.registry;
    fo.last_value_cache = true;
    forwarder fwd(f.ctx, fo);
    fwd.start();
    // An older publisher, written by hand: its id in the "zmqkit-publisher" user header.
    zmqkit::socket old_pub(f.ctx, zmq::socket_type::xpub, with_registry(f.registry));
    old_pub.attach(">" + f.frontend, endpoint_action::connect);
    ASSERT_TRUE(recv_within(old_pub.raw(), 10s).has_value()); // the cache subscribes upstream
    const std::string old_id = "older-publisher.";
    auto send_old = [&](std::uint64_t seq) {
        message m{"old " + std::to_string(seq)};
        m.header().sequence = seq;
        m.header().set_user_header(publisher_id_header, old_id);
        return old_pub.send("old.x", m);
    };
    publisher pub(f.ctx, {">" + f.frontend, "pub", with_registry(f.registry), true});
    ASSERT_TRUE(pub.wait_for_subscriber("new.x", 10s));
    for (std::uint64_t i = 1; i <= 3; ++i) {
        ASSERT_TRUE(send_old(i));
        ASSERT_TRUE(pub.send("new.x", message{"new " + std::to_string(i)}));
    }
    ASSERT_TRUE(eventually([&] { return fwd.statistics().frontend_messages_in >= 6; }, 10s));

    subscriber late(f.ctx, subscriber_to(f.backend, f.registry));
    late.subscribe_with_snapshot("");
    publication p;
    std::map<std::string, std::string> values;
    for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(late.recv(p, 10s)) << i;
        EXPECT_TRUE(p.from_snapshot);
        values[p.topic] = std::string(p.message.body_view());
    }
    EXPECT_EQ(values, (std::map<std::string, std::string>{{"new.x", "new 3"}, {"old.x", "old 3"}}));
    EXPECT_EQ(late.tracker().last(old_id, "old.x"), 3U) << "legacy id read by the cache";
    EXPECT_EQ(late.tracker().last(pub.id(), "new.x"), 3U) << "key 12 read by the cache";
    // The live stream continues from the snapshot: in order, no gap, for both.
    ASSERT_TRUE(send_old(4));
    ASSERT_TRUE(pub.send("new.x", message{"new 4"}));
    for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(late.recv(p, 10s)) << i;
        EXPECT_FALSE(p.from_snapshot);
        EXPECT_EQ(p.message.header().sequence, 4U) << p.topic;
    }
    const auto st = late.stats().sequences;
    EXPECT_EQ(st.in_order, 2U);
    EXPECT_EQ(st.gaps + st.duplicates + st.late, 0U);
}

TEST(pubsub, status_stays_valid_json_when_a_side_description_carries_odd_bytes) {
    // A PLAIN user name is the operator's bytes; STATUS shows it as text (U+FFFD for invalid
    // UTF-8, \u0001 escaped) plus mode_hex with the exact bytes (docs/operations.md).
    forwarder_fixture f;
    forwarder_options fo;
    fo.frontend = f.frontend;
    fo.backend = f.backend;
    fo.registry = &f.registry;
    fo.frontend_security = socket_security::plain_client(std::string("u\xff\x01", 3), "pw");
    forwarder fwd(f.ctx, fo);
    fwd.start();
    const auto status = fwd.status_json();
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(status)) << status;
    const auto& side = j["security"]["frontend"];
    EXPECT_EQ(side["mode"], "plain client, user 'u\xef\xbf\xbd\x01'") << status;
    EXPECT_EQ(side["mode_hex"], "706c61696e20636c69656e742c20757365722027"
                                "75ff01"
                                "27");
    EXPECT_EQ(side["last_failure"], "");
    EXPECT_FALSE(side.contains("last_failure_hex"));
    EXPECT_EQ(j["state"], "running");
    EXPECT_EQ(j["policy"], "drop");
    fwd.stop();
}

TEST(pubsub, consumer_groups_each_group_gets_every_message_once_spread_over_members) {
    zmq::context_t ctx;
    metrics_registry registry;
    publisher pub(ctx, {"inproc://" + unique_name("cg-pub"), "pub", with_registry(registry), true});
    consumer_groups_options co;
    co.input = pub.endpoints().front();
    co.groups = {{"billing", "tcp://127.0.0.1:*"}, {"audit", "tcp://127.0.0.1:*"}};
    co.registry = &registry;
    co.sockets = with_registry(registry);
    consumer_groups groups(ctx, co);
    groups.start();
    ASSERT_TRUE(pub.wait_for_subscriber("any", 10s));

    constexpr std::size_t members_per_group = 3;
    constexpr std::size_t count = 30000;
    struct member {
        std::unique_ptr<consumer_group_member> socket;
        std::vector<message_id> ids;
    };
    std::vector<std::vector<member>> members(2);
    for (std::size_t g = 0; g < 2; ++g) {
        for (std::size_t i = 0; i < members_per_group; ++i) {
            auto so = with_registry(registry);
            member mem;
            mem.socket = std::make_unique<consumer_group_member>(ctx, "", so);
            zmqkit::testing::handshake_monitor monitor(ctx, mem.socket->raw());
            mem.socket->attach(groups.group_endpoints()[g].front());
            // Every member is connected before the first message, so PUSH spreads over all.
            ASSERT_TRUE(monitor.wait(10s));
            members[g].push_back(std::move(mem));
        }
    }
    std::atomic<std::size_t> total{0};
    std::vector<std::thread> readers;
    for (auto& group : members) {
        for (auto& mem : group) {
            readers.emplace_back([&total, &mem] {
                while (total.load() < 2 * count) {
                    if (auto m = mem.socket->recv(200ms)) {
                        mem.ids.push_back(m->message.id());
                        ++total;
                    }
                }
            });
        }
    }
    std::vector<message_id> sent;
    sent.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        message m{"order " + std::to_string(i)};
        ASSERT_TRUE(pub.send("orders", m));
        sent.push_back(m.id());
    }
    const bool all = eventually([&] { return total.load() >= 2 * count; }, 60s);
    const auto received_before_release = total.load();
    if (!all) {
        total = 2 * count; // release the readers
    }
    for (auto& r : readers) {
        r.join();
    }
    ASSERT_TRUE(all) << "received " << received_before_release << " of " << 2 * count
                     << "; group 0 " << groups.delivered(0) << ", group 1 " << groups.delivered(1)
                     << ", in " << groups.received();
    for (std::size_t g = 0; g < 2; ++g) {
        std::unordered_set<message_id, message_id_hash> got;
        for (const auto& mem : members[g]) {
            EXPECT_GT(mem.ids.size(), count / 10) << "group " << g << ": load not spread";
            for (const auto& id : mem.ids) {
                EXPECT_TRUE(got.insert(id).second) << "duplicate in group " << g;
            }
        }
        EXPECT_EQ(got.size(), count);
        for (const auto& id : sent) {
            ASSERT_TRUE(got.contains(id));
        }
        EXPECT_EQ(groups.delivered(g), count);
    }
}

// ---- subscription size bound (issue 14 item 4)

TEST(pubsub, publisher_bounds_subscription_size) {
    zmq::context_t ctx;
    publisher_options po;
    po.endpoints = "tcp://127.0.0.1:*";
    po.max_subscription_size = 64;
    publisher pub(ctx, po);
    const auto endpoint = pub.endpoints().front();
    using form = raw_zmtp_subscriber::form;
    for (const std::size_t size : {std::size_t{65}, std::size_t{256 * 1024}}) {
        raw_zmtp_subscriber peer(endpoint, form::command);
        (void)peer.subscribe(std::string(size, 't'));
        EXPECT_TRUE(peer.closed_by_peer()) << size << " bytes";
    }
    // The older form may come up to 9 bytes over: it is not counted as a subscriber.
    raw_zmtp_subscriber over(endpoint, form::message);
    ASSERT_TRUE(over.subscribe(std::string(65, 't')));
    // Exactly at the limit, from a libzmq SUB: it receives.
    const std::string topic(64, 't');
    zmq::socket_t sub(ctx, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::subscribe, topic);
    sub.connect(endpoint);
    ASSERT_TRUE(pub.wait_for_subscriber(topic, 5s));
    EXPECT_EQ(pub.subscription_count(std::string(65, 't')), 0U);
    header h;
    ASSERT_TRUE(pub.send(topic, h, "at the limit"));
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_EQ(zmq::poll(&item, 1, 5s), 1);
    zmq::message_t first;
    ASSERT_TRUE(sub.recv(first));
    EXPECT_EQ(first.to_string(), topic);
}

TEST(pubsub, forwarder_refuses_oversize_subscriptions_and_keeps_forwarding) {
    zmq::context_t ctx;
    metrics_registry registry;
    std::mutex lines_mutex;
    std::vector<std::string> lines;
    forwarder_options fo;
    fo.frontend = "tcp://127.0.0.1:*";
    fo.backend = "tcp://127.0.0.1:*";
    fo.registry = &registry;
    fo.max_subscription_size = 64;
    fo.log = [&](std::string_view line) {
        std::lock_guard lock(lines_mutex);
        lines.emplace_back(line);
    };
    for (const std::size_t bad : {std::size_t{0}, std::size_t{65537}}) {
        auto wrong = fo;
        wrong.max_subscription_size = bad;
        EXPECT_THROW(forwarder(ctx, wrong), config_error) << bad;
    }
    forwarder fwd(ctx, fo);
    fwd.start();
    const auto backend = fwd.backend_endpoints().front();
    using form = raw_zmtp_subscriber::form;
    {
        raw_zmtp_subscriber peer(backend, form::message);
        (void)peer.subscribe(std::string(256 * 1024, 'o'));
        EXPECT_TRUE(peer.closed_by_peer());
    }
    raw_zmtp_subscriber over(backend, form::message);
    ASSERT_TRUE(over.subscribe(std::string(65, 'o')));
    ASSERT_TRUE(eventually([&] { return fwd.subscriptions_refused() == 1; }, 5s));
    EXPECT_EQ(fwd.subscriptions(), 0);
    EXPECT_THAT(fwd.status_json(), ::testing::HasSubstr("\"subscriptions_refused\":1"));
    {
        std::lock_guard lock(lines_mutex);
        ASSERT_EQ(lines.size(), 1U);
        EXPECT_EQ(lines[0],
                  "forwarder: refused a subscription of 65 bytes (max_subscription_size 64)");
    }
    // At the limit: forwarded upstream, and publications flow.
    publisher_options po;
    po.endpoints = ">" + fwd.frontend_endpoints().front();
    publisher pub(ctx, po);
    const std::string topic(64, 'o');
    subscriber sub(ctx, subscriber_to(backend, registry));
    sub.subscribe(topic);
    ASSERT_TRUE(pub.wait_for_subscriber(topic, 5s));
    header h;
    ASSERT_TRUE(pub.send(topic, h, "at the limit"));
    auto got = sub.recv(5s);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->topic, topic);
    EXPECT_EQ(got->message.id(), h.id);
    fwd.stop();
}
