// Consumer groups of the spool: each group reads every message from its start with its own
// acks, attempts and dead letters; start positions and their errors; restart; reset and delete;
// reclaiming waits for every group; retention limits count what a lagging group lost; the
// groups file outlives the segments whose group records it replaces.
#include <zmqkit/codec.hpp>
#include <zmqkit/spool.hpp>

#include "support/testing.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <vector>

using namespace std::chrono_literals;

namespace zmqkit {
namespace {

using testing::temp_directory;

std::string envelope(std::uint64_t n) {
    header h = header::fresh();
    h.type = "n" + std::to_string(n);
    return encode_header(h);
}

spool_options options_for(const std::filesystem::path& dir, metrics_registry& registry) {
    spool_options o;
    o.directory = dir;
    o.segment_bytes = 64 * 1024;
    o.reserve_bytes = 4096;
    o.registry = &registry;
    return o;
}

// Appends bodies "b<from>".."b<to-1>" and commits.
void fill(spool& s, int from, int to) {
    for (int i = from; i < to; ++i) {
        ASSERT_EQ(
            s.append(envelope(static_cast<std::uint64_t>(i)), "b" + std::to_string(i)).outcome,
            append_result::status::appended);
    }
    ASSERT_TRUE(s.commit());
}

// Delivers everything ready for a group (committing before "sending"), acks when asked; the
// bodies in delivery order.
std::vector<std::string> drain(spool& s, group_id g, bool ack = true) {
    std::vector<std::string> bodies;
    std::vector<std::uint64_t> seqs;
    for (int guard = 0; guard < 1'000'000; ++guard) {
        auto m = s.deliver(g);
        if (!m) {
            break;
        }
        bodies.emplace_back(m->body);
        seqs.push_back(m->sequence);
    }
    EXPECT_TRUE(s.commit() || seqs.empty());
    if (ack) {
        for (const auto q : seqs) {
            EXPECT_TRUE(s.ack(g, q));
        }
        (void)s.commit();
    }
    return bodies;
}

std::vector<std::string> expected(int from, int to) {
    std::vector<std::string> v;
    for (int i = from; i < to; ++i) {
        v.push_back("b" + std::to_string(i));
    }
    return v;
}

const group_info* info_of(const std::vector<group_info>& all, std::string_view name) {
    for (const auto& g : all) {
        if (g.name == name) {
            return &g;
        }
    }
    return nullptr;
}

TEST(SpoolGroups, EachGroupReadsEveryMessageWithItsOwnAcks) {
    temp_directory dir("groups-each");
    metrics_registry registry;
    spool s(options_for(dir.path(), registry));
    const group_id billing = s.open_group("billing", group_start{});
    const group_id audit = s.open_group("audit", group_start{});
    EXPECT_NE(billing, audit);
    EXPECT_EQ(s.open_group("billing", group_start::parse("latest")), billing); // exists: same
    fill(s, 0, 300);
    EXPECT_EQ(drain(s, billing), expected(0, 300));
    // audit has acked nothing: it still gets all of them, and the default queue too.
    EXPECT_EQ(drain(s, audit, false), expected(0, 300));
    EXPECT_EQ(drain(s, default_group), expected(0, 300));
    const auto all = s.groups();
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].name, ""); // the default queue first
    const auto* b = info_of(all, "billing");
    const auto* a = info_of(all, "audit");
    ASSERT_TRUE(b != nullptr && a != nullptr);
    EXPECT_EQ(b->pending, 0u);
    EXPECT_EQ(b->acked, 300u);
    EXPECT_EQ(a->pending, 300u);
    EXPECT_EQ(a->in_flight, 300u);
    EXPECT_EQ(a->undelivered, 0u);
    // A nack in one group redelivers there only.
    EXPECT_FALSE(s.ack(billing, a->floor)); // not in flight to billing
    EXPECT_EQ(s.stats().groups, 2u);
}

TEST(SpoolGroups, StartPositionsAndTheirErrors) {
    temp_directory dir("groups-start");
    metrics_registry registry;
    auto o = options_for(dir.path(), registry);
    std::int64_t now = 1'000'000'000'000'000'000;
    o.now_ns = [&] { return now; };
    spool s(o);
    fill(s, 0, 10);
    now += 60'000'000'000; // a minute later
    fill(s, 10, 20);
    const group_id late = s.open_group("late", group_start::parse("latest"));
    const group_id from_time =
        s.open_group("from-time", group_start::parse("time:" + std::to_string(now - 1)));
    fill(s, 20, 25);
    EXPECT_EQ(drain(s, late), expected(20, 25));
    EXPECT_EQ(drain(s, from_time), expected(10, 25));
    // A sequence number: the 16th message's.
    std::uint64_t sixteenth = 0;
    s.for_each(0, [&](const spooled_message& m, bool) {
        if (m.body == "b15") {
            sixteenth = m.sequence;
            return false;
        }
        return true;
    });
    const group_id by_seq = s.open_group("by-seq", group_start::parse(std::to_string(sixteenth)));
    EXPECT_EQ(drain(s, by_seq), expected(15, 25));
    // Errors name the problem.
    try {
        (void)s.open_group("future", group_start::parse("sequence:999999"));
        FAIL() << "a start in the future was accepted";
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("in the future"), std::string::npos) << e.what();
    }
    try {
        (void)s.open_group("tomorrow",
                           group_start::parse("time:" + std::to_string(now + 86'400'000'000'000)));
        FAIL() << "a start time in the future was accepted";
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("in the future"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)s.open_group("bad name", group_start{}), config_error);
    EXPECT_THROW((void)s.open_group(std::string(65, 'x'), group_start{}), config_error);
    EXPECT_THROW((void)group_start::parse("yesterday-ish"), config_error);
    EXPECT_FALSE(s.find_group("future"));
    EXPECT_EQ(group_start::parse("2026-12-01T00:00:00Z").to_string(), "time:1796083200000000000");
    EXPECT_EQ(group_start::parse("sequence:7").to_string(), "sequence:7");
    EXPECT_EQ(group_start::parse("earliest").to_string(), "earliest");
}

TEST(SpoolGroups, CursorsAcksAndAttemptsSurviveRestart) {
    temp_directory dir("groups-restart");
    metrics_registry registry;
    std::uint64_t unacked_seq = 0;
    {
        spool s(options_for(dir.path(), registry));
        const group_id g = s.open_group("g", group_start{});
        fill(s, 0, 100);
        // 60 delivered: 50 acked, 10 left in flight.
        std::vector<std::uint64_t> seqs;
        for (int i = 0; i < 60; ++i) {
            seqs.push_back(s.deliver(g)->sequence);
        }
        ASSERT_TRUE(s.commit());
        for (int i = 0; i < 50; ++i) {
            ASSERT_TRUE(s.ack(g, seqs[static_cast<std::size_t>(i)]));
        }
        ASSERT_TRUE(s.commit());
        unacked_seq = seqs[50];
    }
    spool s(options_for(dir.path(), registry));
    const auto id = s.find_group("g");
    ASSERT_TRUE(id);
    auto first = s.deliver(*id);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->sequence, unacked_seq);
    EXPECT_EQ(first->attempt, 2u); // delivered once before the restart
    EXPECT_EQ(first->body, "b50");
    ASSERT_TRUE(s.commit());
    ASSERT_TRUE(s.ack(*id, first->sequence));
    EXPECT_EQ(drain(s, *id), expected(51, 100));
    EXPECT_EQ(info_of(s.groups(), "g")->pending, 0u);
}

TEST(SpoolGroups, ResetRereadsAndDeleteForgets) {
    temp_directory dir("groups-reset");
    metrics_registry registry;
    {
        spool s(options_for(dir.path(), registry));
        const group_id g = s.open_group("g", group_start{});
        (void)s.open_group("gone", group_start{});
        fill(s, 0, 40);
        EXPECT_EQ(drain(s, g), expected(0, 40));
        EXPECT_TRUE(s.reset_group("g", group_start{}));
        EXPECT_EQ(drain(s, g, false), expected(0, 40)); // all again, in flight now
        EXPECT_TRUE(s.delete_group("gone"));
        EXPECT_FALSE(s.delete_group("gone"));
        EXPECT_FALSE(s.reset_group("never", group_start{}));
        ASSERT_TRUE(s.commit());
    }
    spool s(options_for(dir.path(), registry));
    EXPECT_FALSE(s.find_group("gone"));
    const auto g = s.find_group("g");
    ASSERT_TRUE(g);
    // The reset survived: everything is pending again, the earlier acks do not count.
    EXPECT_EQ(info_of(s.groups(), "g")->pending, 40u);
    EXPECT_EQ(drain(s, *g), expected(0, 40));
}

TEST(SpoolGroups, SegmentsWaitForTheSlowestGroupAndGroupsOutliveTheirRecords) {
    temp_directory dir("groups-reclaim");
    metrics_registry registry;
    auto o = options_for(dir.path(), registry);
    o.default_queue = false; // only the groups count
    {
        spool s(o);
        const group_id fast = s.open_group("fast", group_start{});
        const group_id slow = s.open_group("slow", group_start{});
        EXPECT_TRUE(drain(s, default_group).empty()); // no default queue
        fill(s, 0, 3000);                             // many 64 KiB segments
        const auto segments = s.stats().segments;
        ASSERT_GT(segments, 3u);
        EXPECT_EQ(drain(s, fast).size(), 3000u);
        fill(s, 3000, 3001);
        EXPECT_EQ(s.stats().segments, segments + 0u) << "reclaimed while 'slow' had read nothing";
        EXPECT_EQ(drain(s, slow).size(), 3001u);
        EXPECT_EQ(drain(s, fast).size(), 1u);
        fill(s, 3001, 3002); // a commit after the acks writes the log start,
        fill(s, 3002, 3003); // the next one reclaims
        EXPECT_LT(s.stats().segments, 3u);
        EXPECT_TRUE(std::filesystem::exists(dir.path() / "groups"));
    }
    // The segments holding the groups' creation records are gone: the groups file has them.
    spool s(o);
    ASSERT_TRUE(s.find_group("fast"));
    ASSERT_TRUE(s.find_group("slow"));
    EXPECT_EQ(drain(s, *s.find_group("slow")), expected(3001, 3003));
    EXPECT_EQ(drain(s, *s.find_group("fast")), expected(3001, 3003));
    // A start before the log start is refused now.
    EXPECT_THROW((void)s.open_group("new", group_start::parse("0")), config_error);
}

TEST(SpoolGroups, RetentionRemovesWhatALaggingGroupHadNotReadAndSaysSo) {
    temp_directory dir("groups-retention");
    metrics_registry registry;
    auto o = options_for(dir.path(), registry);
    o.default_queue = false;
    o.retain_bytes = 4 * 64 * 1024;
    std::vector<std::string> notices;
    o.notice = [&](const std::string& line) { notices.push_back(line); };
    spool s(o);
    const group_id lagging = s.open_group("lagging", group_start{});
    fill(s, 0, 4000);
    fill(s, 4000, 4001);
    EXPECT_LE(s.stats().disk_bytes, o.retain_bytes + 2 * 64 * 1024);
    const auto all = s.groups();
    const auto* info = info_of(all, "lagging");
    ASSERT_NE(info, nullptr);
    EXPECT_GT(info->lost, 0u);
    ASSERT_FALSE(notices.empty());
    EXPECT_NE(notices.back().find("consumer group 'lagging' lost"), std::string::npos)
        << notices.back();
    // It goes on from what is left, and lost + read accounts for every message.
    const auto rest = drain(s, lagging);
    ASSERT_FALSE(rest.empty());
    EXPECT_EQ(rest.back(), "b4000");
    EXPECT_EQ(info_of(s.groups(), "lagging")->lost + rest.size(), 4001u);
}

TEST(SpoolGroups, RetentionByAgeCountsTheDefaultQueueToo) {
    temp_directory dir("groups-age");
    metrics_registry registry;
    auto o = options_for(dir.path(), registry);
    std::int64_t now = 1'000'000'000'000'000'000;
    o.now_ns = [&] { return now; };
    o.retain_age = 1h;
    spool s(o);
    fill(s, 0, 2000);
    const auto before = s.stats();
    now += 2 * 3'600'000'000'000; // two hours on
    fill(s, 2000, 2001);
    fill(s, 2001, 2002);
    const auto after = s.stats();
    EXPECT_LT(after.segments, before.segments);
    EXPECT_GT(after.expired, 0u);
    EXPECT_EQ(after.expired + drain(s, default_group).size(), 2002u);
}

TEST(SpoolGroups, DeadLettersOfAGroupAreCopiedWithItsName) {
    temp_directory dir("groups-dlq");
    metrics_registry registry;
    spool s(options_for(dir.path(), registry));
    const group_id g = s.open_group("mailer", group_start{});
    fill(s, 0, 1);
    auto m = s.deliver(g);
    ASSERT_TRUE(m);
    ASSERT_TRUE(s.commit());
    ASSERT_TRUE(s.dead_letter(g, m->sequence, "bounced"));
    ASSERT_TRUE(s.commit());
    auto* dlq = s.dead_letters();
    ASSERT_NE(dlq, nullptr);
    auto d = dlq->deliver();
    ASSERT_TRUE(d);
    header h;
    ASSERT_TRUE(decode_header(d->header.data(), d->header.size(), h));
    bool named = false;
    for (const auto& [k, v] : h.user_headers) {
        named = named || (k == "zmqkit-dead-letter-group" && v == "mailer");
    }
    EXPECT_TRUE(named);
    // The default queue still has it.
    EXPECT_EQ(drain(s, default_group), expected(0, 1));
    EXPECT_EQ(info_of(s.groups(), "mailer")->dead_lettered, 1u);
}

TEST(SpoolGroups, ADeadLetterGoesBackToTheQueueItFailedInOnlyAcrossARestart) {
    temp_directory dir("groups-requeue");
    metrics_registry registry;
    message_id fresh_for_mailer;
    {
        spool s(options_for(dir.path(), registry));
        const group_id mailer = s.open_group("mailer", group_start{});
        const group_id audit = s.open_group("audit", group_start{});
        (void)s.open_group("gone", group_start{});
        fill(s, 0, 3);
        // b0 fails in mailer, b1 in the default queue, b2 in "gone" (deleted later).
        EXPECT_EQ(drain(s, audit), expected(0, 3));
        auto m = s.deliver(mailer);
        ASSERT_TRUE(m && m->body == "b0");
        auto d = s.deliver(default_group);
        ASSERT_TRUE(d && d->body == "b0");
        ASSERT_TRUE(s.commit());
        ASSERT_TRUE(s.dead_letter(mailer, m->sequence, "smtp 550"));
        ASSERT_TRUE(s.ack(default_group, d->sequence));
        auto d1 = s.deliver(default_group);
        ASSERT_TRUE(d1 && d1->body == "b1");
        ASSERT_TRUE(s.commit());
        ASSERT_TRUE(s.dead_letter(default_group, d1->sequence, "bad"));
        const group_id gone = *s.find_group("gone");
        auto g0 = s.deliver(gone);
        auto g1 = s.deliver(gone);
        auto g2 = s.deliver(gone);
        ASSERT_TRUE(g0 && g1 && g2 && g2->body == "b2");
        ASSERT_TRUE(s.commit());
        ASSERT_TRUE(s.dead_letter(gone, g2->sequence, "no"));
        ASSERT_TRUE(s.commit());
        ASSERT_TRUE(s.delete_group("gone"));
        ASSERT_TRUE(s.commit());
        EXPECT_EQ(s.dead_letters()->stats().messages, 3u);

        const auto r = s.requeue_dead_letters();
        EXPECT_TRUE(r.error.empty()) << r.error;
        ASSERT_EQ(r.requeued.size(), 2u);
        EXPECT_EQ(r.no_group, 1u); // the one of "gone" stays listed
        EXPECT_EQ(r.unsettled, 0u);
        EXPECT_EQ(s.dead_letters()->stats().messages, 1u);
        // mailer gets its b0 again (a new message), audit nothing, default its b1 (+ b2).
        EXPECT_EQ(drain(s, audit), std::vector<std::string>{});
        const auto back = drain(s, mailer, false);
        EXPECT_EQ(back, (std::vector<std::string>{"b1", "b2", "b0"}));
        fresh_for_mailer = r.requeued[0].second;
    }
    spool s(options_for(dir.path(), registry));
    // After recovery the copies are still for their queue only.
    EXPECT_EQ(drain(s, *s.find_group("audit")), std::vector<std::string>{});
    const auto again = drain(s, *s.find_group("mailer"));
    EXPECT_EQ(again, (std::vector<std::string>{"b1", "b2", "b0"})); // redelivered: never acked
    EXPECT_EQ(drain(s, default_group), (std::vector<std::string>{"b2", "b1"}));
    EXPECT_FALSE(fresh_for_mailer.is_nil());
}

TEST(SpoolGroups, ADeliveryThatNeverLeftDoesNotCountAsAnAttempt) {
    temp_directory dir("groups-unsent");
    metrics_registry registry;
    auto o = options_for(dir.path(), registry);
    o.max_attempts = 2;
    spool s(o);
    const group_id g = s.open_group("g", group_start{});
    fill(s, 0, 1);
    for (const group_id q : {default_group, g}) {
        for (int i = 0; i < 5; ++i) { // refused at a full queue five times: still attempt 1
            auto m = s.deliver(q);
            ASSERT_TRUE(m);
            EXPECT_EQ(m->attempt, 1u);
            ASSERT_TRUE(s.commit());
            EXPECT_TRUE(s.return_unsent(q, m->sequence));
            EXPECT_FALSE(s.return_unsent(q, m->sequence)); // no longer in flight
        }
        auto m = s.deliver(q);
        ASSERT_TRUE(m);
        bool dead = true;
        EXPECT_TRUE(s.requeue(q, m->sequence, std::chrono::milliseconds(0), &dead));
        EXPECT_FALSE(dead); // one real attempt so far, max 2
        m = s.deliver(q);
        ASSERT_TRUE(m);
        EXPECT_EQ(m->attempt, 2u);
    }
}

TEST(SpoolGroups, ADamagedGroupsFileIsAFindingAndTheLogStillKnowsItsGroups) {
    temp_directory dir("groups-damaged");
    metrics_registry registry;
    {
        spool s(options_for(dir.path(), registry));
        (void)s.open_group("kept", group_start{});
        fill(s, 0, 5);
    }
    {
        std::ofstream f(dir.path() / "groups", std::ios::binary);
        f << "ZKG1 this is not a groups file at all, just bytes";
    }
    spool s(options_for(dir.path(), registry));
    bool found = false;
    for (const auto& line : s.recovery().findings) {
        found = found || line.find("groups:") != std::string::npos;
    }
    EXPECT_TRUE(found);
    ASSERT_TRUE(s.find_group("kept")); // its creation record is still in the log
    EXPECT_EQ(drain(s, *s.find_group("kept")), expected(0, 5));
}

} // namespace
} // namespace zmqkit
