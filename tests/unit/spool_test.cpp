// The spool: append/commit/deliver/ack, restart, dedup, dead letters, limits, torn tails.
#include <zmqkit/codec.hpp>
#include <zmqkit/spool.hpp>

#include "support/testing.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

using namespace std::chrono_literals;

namespace zmqkit {
namespace {

using testing::temp_directory;

struct encoded {
    message_id id;
    std::string header;
};

encoded envelope(std::uint64_t n) {
    header h = header::fresh();
    h.type = "n" + std::to_string(n);
    return {h.id, encode_header(h)};
}

spool_options options_for(const std::filesystem::path& dir, metrics_registry& registry) {
    spool_options o;
    o.directory = dir;
    o.segment_bytes = 64 * 1024;
    o.reserve_bytes = 4096;
    o.registry = &registry;
    return o;
}

TEST(Spool, DedupWindowRemembersExactlyTheLastNIds) {
    temp_directory dir("spool-dedup");
    metrics_registry registry;
    auto o = options_for(dir.path(), registry);
    o.segment_bytes = 1 << 20;
    o.dedup_window = 50;
    spool s(o);
    std::vector<encoded> all;
    for (int round = 0; round < 3; ++round) { // wraps the ring several times
        for (int i = 0; i < 700; ++i) {
            all.push_back(envelope(all.size()));
            ASSERT_EQ(s.append(all.back().header, "b").outcome, append_result::status::appended);
        }
        ASSERT_TRUE(s.commit());
        // The last 50 are duplicates (checking does not insert), in a scrambled order.
        for (std::size_t k = 0; k < 50; ++k) {
            const auto& e = all[all.size() - 1 - (k * 17) % 50];
            const auto r = s.append(e.header, "b");
            EXPECT_EQ(r.outcome, append_result::status::duplicate) << "round " << round;
        }
    }
    // The 51st newest was evicted: appending it again stores it again.
    const auto r = s.append(all[all.size() - 51].header, "b");
    EXPECT_EQ(r.outcome, append_result::status::appended);
    // ... and now it is the newest, while the oldest of the previous 50 fell out.
    EXPECT_EQ(s.append(all[all.size() - 51].header, "b").outcome, append_result::status::duplicate);
    EXPECT_EQ(s.append(all[all.size() - 50].header, "b").outcome, append_result::status::appended);
    EXPECT_EQ(s.append(all.back().header, "b").outcome, append_result::status::duplicate);
}

TEST(Spool, AppendCommitDeliverAckSurvivesRestart) {
    temp_directory dir("spool");
    metrics_registry registry;
    std::map<std::uint64_t, std::string> bodies; // sequence -> body
    {
        spool s(options_for(dir.path(), registry));
        EXPECT_TRUE(s.recovery().clean());
        for (int i = 0; i < 2000; ++i) {
            const auto e = envelope(static_cast<std::uint64_t>(i));
            const auto r = s.append(e.header, "body-" + std::to_string(i));
            ASSERT_EQ(r.outcome, append_result::status::appended);
        }
        ASSERT_TRUE(s.commit());
        EXPECT_EQ(s.committed_ticket(), 2000u);
        // deliver and ack the first 500
        for (int i = 0; i < 500; ++i) {
            auto d = s.deliver();
            ASSERT_TRUE(d);
            EXPECT_EQ(d->attempt, 1u);
            EXPECT_EQ(d->body, "body-" + std::to_string(i));
            ASSERT_TRUE(s.ack(d->sequence));
        }
        // deliver 10 more without ack: attempt counts must survive the restart
        for (int i = 0; i < 10; ++i) {
            ASSERT_TRUE(s.deliver());
        }
        s.commit();
        EXPECT_GT(s.stats().segments, 1u);
    }
    spool s(options_for(dir.path(), registry));
    EXPECT_TRUE(s.recovery().clean()) << s.recovery().findings.size();
    EXPECT_EQ(s.recovery().messages, 1500u);
    for (int i = 500; i < 2000; ++i) {
        auto d = s.deliver();
        ASSERT_TRUE(d) << i;
        EXPECT_EQ(d->body, "body-" + std::to_string(i));
        EXPECT_EQ(d->attempt, i < 510 ? 2u : 1u) << i;
        ASSERT_TRUE(s.ack(d->sequence));
    }
    EXPECT_FALSE(s.deliver());
    s.commit();
    s.commit(); // writes the log_start record, then reclaims
    s.commit();
    EXPECT_EQ(s.stats().messages, 0u);
    EXPECT_EQ(s.stats().segments, 1u);
}

TEST(Spool, DuplicateIdIsConfirmedNotStoredTwiceAcrossRestart) {
    temp_directory dir("spool");
    metrics_registry registry;
    const auto e = envelope(1);
    {
        spool s(options_for(dir.path(), registry));
        ASSERT_EQ(s.append(e.header, "x").outcome, append_result::status::appended);
        const auto again = s.append(e.header, "x");
        EXPECT_EQ(again.outcome, append_result::status::duplicate);
        s.commit();
        EXPECT_GE(s.committed_ticket(), again.ticket);
    }
    spool s(options_for(dir.path(), registry));
    const auto r = s.append(e.header, "x");
    EXPECT_EQ(r.outcome, append_result::status::duplicate);
    EXPECT_LE(r.ticket, s.committed_ticket());
    EXPECT_EQ(s.stats().messages, 1u);
}

TEST(Spool, MaxAttemptsMovesToDeadLetterSpoolWithReason) {
    temp_directory dir("spool");
    metrics_registry registry;
    auto o = options_for(dir.path(), registry);
    o.max_attempts = 2;
    spool s(o);
    ASSERT_EQ(s.append(envelope(1).header, "poison").outcome, append_result::status::appended);
    s.commit();
    auto d = s.deliver();
    ASSERT_TRUE(d);
    bool dead = true;
    ASSERT_TRUE(s.requeue(d->sequence, 0ms, &dead));
    EXPECT_FALSE(dead);
    d = s.deliver();
    ASSERT_TRUE(d);
    EXPECT_EQ(d->attempt, 2u);
    ASSERT_TRUE(s.requeue(d->sequence, 0ms, &dead));
    EXPECT_TRUE(dead);
    s.commit();
    EXPECT_EQ(s.stats().messages, 0u);
    ASSERT_NE(s.dead_letters(), nullptr);
    auto dl = s.dead_letters()->deliver();
    ASSERT_TRUE(dl);
    EXPECT_EQ(dl->body, "poison");
    header h;
    ASSERT_TRUE(decode_header(dl->header.data(), dl->header.size(), h));
    bool found = false;
    for (const auto& [k, v] : h.user_headers) {
        found = found ||
                (k == "zmqkit-dead-letter-reason" && v.find("max_attempts 2") != std::string::npos);
    }
    EXPECT_TRUE(found);
}

TEST(Spool, FullPolicyBlockHoldsRejectRefusesAndDropOldestDropsTheOldestWaiting) {
    metrics_registry registry;
    for (const auto policy : {full_policy::block, full_policy::reject, full_policy::drop_oldest}) {
        temp_directory dir("spool-full");
        auto o = options_for(dir.path(), registry);
        o.max_messages = 5;
        o.when_full = policy;
        o.name = std::string(to_string(policy));
        std::vector<encoded> e;
        {
            spool s(o);
            for (int i = 0; i < 5; ++i) {
                e.push_back(envelope(static_cast<std::uint64_t>(i)));
                ASSERT_EQ(s.append(e.back().header, "b" + std::to_string(i)).outcome,
                          append_result::status::appended);
            }
            ASSERT_TRUE(s.commit());
            // One in flight: drop_oldest never drops a delivered, unacked message.
            auto first = s.deliver();
            ASSERT_TRUE(first);
            ASSERT_TRUE(s.commit());
            e.push_back(envelope(5));
            const auto r = s.append(e.back().header, "b5");
            switch (policy) {
            case full_policy::block:
                EXPECT_EQ(r.outcome, append_result::status::full);
                EXPECT_NE(r.reason.find("max_messages 5"), std::string::npos) << r.reason;
                break;
            case full_policy::reject:
                EXPECT_EQ(r.outcome, append_result::status::rejected);
                EXPECT_EQ(s.stats().rejected_full, 1u);
                break;
            case full_policy::drop_oldest:
                EXPECT_EQ(r.outcome, append_result::status::appended);
                EXPECT_EQ(s.stats().dropped_full, 1u);
                break;
            }
            (void)s.commit(); // block, reject: nothing to write (commit() says false)
            // An ack makes room under every policy.
            ASSERT_TRUE(s.ack(first->sequence));
            ASSERT_TRUE(s.commit());
            if (policy != full_policy::drop_oldest) {
                EXPECT_EQ(s.append(e.back().header, "b5").outcome, append_result::status::appended);
                ASSERT_TRUE(s.commit());
            }
        }
        // After a restart: what is left to deliver, in order.
        spool s(o);
        std::vector<std::string> bodies;
        while (auto d = s.deliver()) {
            bodies.emplace_back(d->body);
        }
        if (policy == full_policy::drop_oldest) {
            // b0 was in flight (then acked); b1, the oldest waiting, was dropped for b5.
            EXPECT_EQ(bodies, (std::vector<std::string>{"b2", "b3", "b4", "b5"}));
        } else {
            EXPECT_EQ(bodies, (std::vector<std::string>{"b1", "b2", "b3", "b4", "b5"}));
        }
    }
}

TEST(Spool, MaxBytesLimitsPayloadBytes) {
    temp_directory dir("spool-bytes");
    metrics_registry registry;
    auto o = options_for(dir.path(), registry);
    o.max_bytes = 4096;
    spool s(o);
    const std::string body(1000, 'x');
    int appended = 0;
    for (int i = 0; i < 10; ++i) {
        if (s.append(envelope(static_cast<std::uint64_t>(i)).header, body).outcome ==
            append_result::status::appended) {
            ++appended;
        }
    }
    EXPECT_GE(appended, 3);
    EXPECT_LE(appended, 4);
    EXPECT_LE(s.stats().message_bytes, 4096u);
}

TEST(Spool, SegmentsAreDeletedOnceEverythingInThemIsSettled) {
    temp_directory dir("spool-reclaim");
    metrics_registry registry;
    spool s(options_for(dir.path(), registry)); // 64 KiB segments
    const std::string body(1000, 'r');
    for (int i = 0; i < 300; ++i) {
        ASSERT_EQ(s.append(envelope(static_cast<std::uint64_t>(i)).header, body).outcome,
                  append_result::status::appended);
    }
    ASSERT_TRUE(s.commit());
    const auto before = s.stats();
    ASSERT_GE(before.segments, 4u);
    auto files = [&] {
        std::size_t n = 0;
        for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
            n += f.path().extension() == ".seg" ? 1U : 0U;
        }
        return n;
    };
    EXPECT_EQ(files(), before.segments);
    while (auto d = s.deliver()) {
        ASSERT_TRUE(s.ack(d->sequence));
    }
    ASSERT_TRUE(s.commit());
    (void)s.commit(); // the log-start record, then the deletion
    const auto after = s.stats();
    EXPECT_EQ(after.messages, 0u);
    EXPECT_LE(after.segments, 2u);
    EXPECT_EQ(files(), after.segments);
    EXPECT_LT(after.disk_bytes, before.disk_bytes);
}

TEST(Spool, TornTailIsTruncatedAndEverythingCommittedSurvives) {
    temp_directory dir("spool");
    metrics_registry registry;
    {
        spool s(options_for(dir.path(), registry));
        for (int i = 0; i < 10; ++i) {
            (void)s.append(envelope(static_cast<std::uint64_t>(i)).header, "b");
        }
        s.commit();
    }
    // Write half a record after the last one.
    std::filesystem::path seg;
    for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
        if (f.path().extension() == ".seg") {
            seg = f.path();
        }
    }
    std::uint64_t end = 0;
    {
        spool s(options_for(dir.path(), registry));
        end = s.stats().next_sequence;
    }
    (void)end;
    {
        std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
        std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        const auto last = data.find_last_not_of('\0');
        f.seekp(static_cast<std::streamoff>(last + 1));
        f.write("ZKR1\x01garbage-of-a-torn-write", 27);
    }
    spool s(options_for(dir.path(), registry));
    EXPECT_EQ(s.recovery().truncated_bytes, 27u);
    EXPECT_TRUE(s.recovery().lost.empty());
    EXPECT_EQ(s.stats().messages, 10u);
}

} // namespace
} // namespace zmqkit
