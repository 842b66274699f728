// A randomized model test of the spool on the crashing in-memory file system: random appends
// (fresh ids and duplicates), commits, deliveries, acks, requeues, dead letters, crashes (between
// calls and in the middle of a commit, with torn writes), clean restarts, ENOSPC episodes and EIO
// (read-only, then reopen), checked against a reference model after every step and restart:
// nothing confirmed is lost until it is settled, nothing is delivered that was never appended,
// attempt counts never go down, an id is never stored twice, recovering twice gives one state.
#include <zmqkit/codec.hpp>
#include <zmqkit/spool.hpp>

#include "support/memory_file_system.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>

namespace zmqkit {
namespace {

using testing::memory_file_system;

constexpr std::uint32_t max_attempts = 4;

message_id id_of(std::uint64_t seed, std::uint64_t n) {
    std::array<std::uint8_t, message_id::size> b{};
    b[0] = 0x5a;
    for (int i = 0; i < 7; ++i) {
        b[static_cast<std::size_t>(1 + i)] = static_cast<std::uint8_t>(seed >> (8 * i));
    }
    for (int i = 0; i < 8; ++i) {
        b[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(n >> (8 * i));
    }
    return message_id(b);
}

std::string header_of(std::uint64_t seed, std::uint64_t n) {
    header h = header::fresh();
    h.id = id_of(seed, n);
    h.correlation_id = h.id;
    h.type = "model";
    return encode_header(h);
}

std::string body_of(std::uint64_t n) {
    return "m" + std::to_string(n) + ":" + std::string(static_cast<std::size_t>(n * 37 % 700), 'b');
}

std::uint64_t number_of(std::string_view body) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(body.data() + 1, body.data() + body.size(), n);
    EXPECT_TRUE(ec == std::errc{} && body[0] == 'm') << body.substr(0, 40);
    return n;
}

// What the model knows about one message (by its number; the id is derived from it).
struct tracked {
    bool appended = false;     // appended at least once
    bool this_session = false; // appended since the spool was last opened (in the dedup map)
    bool live = false;         // waiting in the spool, as the spool's memory sees it
    std::uint64_t ticket = 0;  // this session's append ticket (0: recovered)
    bool on_disk = false;      // its record is durable (confirmed, or found by recovery)
    bool in_flight = false;
    std::uint64_t sequence = 0; // known once delivered or recovered
    std::uint32_t attempt = 0;  // deliveries counted in memory
    std::uint32_t durable_attempt = 0;
    enum class settle_state { none, pending, durable } settled = settle_state::none;
    bool dead = false; // the pending settle is a dead letter
};

struct snapshot {
    std::uint64_t messages = 0, message_bytes = 0, next_sequence = 0, log_start = 0, segments = 0;
    std::map<std::uint64_t, std::uint32_t> waiting; // number -> attempt
    friend bool operator==(const snapshot&, const snapshot&) = default;
};

struct owned_message {
    std::uint64_t sequence = 0;
    std::uint32_t attempt = 0;
    std::string header;
    std::string body;
};

class model_run {
public:
    model_run(std::uint64_t seed, int steps)
        : seed_(seed), steps_(steps), random_(seed), fs_(seed) {}

    void run() {
        open();
        for (int step = 0; step < steps_ && !::testing::Test::HasFatalFailure(); ++step) {
            clock_ns_ += 1'000'000; // 1 ms per step: the disk-full retry backoff is 100 ms
            if (disk_episode_left_ > 0 && --disk_episode_left_ == 0) {
                fs_.set_disk_size(0);
            }
            one_step();

            if (::testing::Test::HasFailure()) {
                ADD_FAILURE() << "seed " << seed_ << " step " << step << " (" << last_op_ << ")";
                return;
            }
        }
        finish();
    }

    int crashes = 0, restarts = 0, eio = 0, enospc = 0, full_appends = 0, delivered = 0;

private:
    spool_options options() {
        spool_options o;
        o.directory = "/mem/spool";
        o.fs = &fs_;
        o.segment_bytes = 16 * 1024;
        o.reserve_bytes = 2048;
        o.max_attempts = max_attempts;
        o.registry = &registry_;
        o.now_ns = [this] { return clock_ns_; };
        return o;
    }

    void open() {
        spool_ = std::make_unique<spool>(options());

        ASSERT_TRUE(spool_->recovery().lost.empty()) << spool_->recovery().findings.front();
        ASSERT_TRUE(spool_->recovery().quarantined_files.empty());
    }

    std::uint64_t pick(std::uint64_t n) {
        return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(random_);
    }

    void one_step() {
        const std::uint64_t r = pick(1000);
        if (r < 300) {
            append(fresh_number());
        } else if (r < 360) {
            append_again();
        } else if (r < 520) {
            commit();
        } else if (r < 680) {
            deliver();
        } else if (r < 830) {
            ack();
        } else if (r < 880) {
            requeue();
        } else if (r < 900) {
            dead_letter();
        } else if (r < 910) {
            ack_unknown();
        } else if (r < 918) {
            crash_between_calls();
        } else if (r < 930) {
            crash_in_commit();
        } else if (r < 940) {
            clean_restart();
        } else if (r < 955) {
            last_op_ = "enospc";
            ++enospc;
            fs_.fail_next_writes(static_cast<int>(1 + pick(4)), ENOSPC);
        } else if (r < 960) {
            last_op_ = "disk size";
            fs_.set_disk_size(fs_.used_bytes() + pick(40000));
            disk_episode_left_ = static_cast<int>(20 + pick(200));
        } else if (r < 966) {
            io_error();
        } else {
            commit();
        }
    }

    std::uint64_t fresh_number() { return next_number_++; }

    void append(std::uint64_t n) {
        last_op_ = "append " + std::to_string(n);
        tracked& t = model_[n];
        const auto r = spool_->append(header_of(seed_, n), body_of(n));
        const bool read_only = spool_->stats().read_only;
        if (read_only) {
            EXPECT_EQ(r.outcome, append_result::status::rejected);
            return;
        }
        if (t.live || t.this_session) {
            EXPECT_EQ(r.outcome, append_result::status::duplicate) << "id " << n << " stored twice";
            return;
        }
        switch (r.outcome) {
        case append_result::status::appended:
            t = tracked{};
            t.appended = true;
            t.this_session = true;
            t.live = true;
            t.ticket = r.ticket;
            EXPECT_GT(r.ticket, spool_->committed_ticket());
            break;
        case append_result::status::duplicate:
            EXPECT_TRUE(t.appended) << "fresh id " << n << " called a duplicate";
            EXPECT_FALSE(t.live);
            break;
        case append_result::status::full:
            ++full_appends;
            EXPECT_TRUE(spool_->stats().disk_full) << "full without a full disk (no limits set)";
            break;
        case append_result::status::rejected:
            ADD_FAILURE() << "rejected: " << r.reason;
            break;
        }
    }

    void append_again() {
        if (next_number_ == 0) {
            return;
        }
        append(pick(next_number_));
    }

    // commit(), then again while records are queued (a log_start record queued by reclaim).
    void commit() {
        last_op_ = "commit";
        (void)spool_->commit();
        for (int i = 0; i < 3 && spool_->commit_pending() && !spool_->stats().read_only; ++i) {
            (void)spool_->commit();
        }
        after_commit();
    }

    void after_commit() {
        const spool_stats st = spool_->stats();
        if (st.read_only) {
            return;
        }
        const std::uint64_t committed = spool_->committed_ticket();
        const bool everything = !spool_->commit_pending();
        for (auto& [n, t] : model_) {
            if (t.ticket != 0 && t.ticket <= committed) {
                t.on_disk = true;
            }
            if (everything) {
                t.durable_attempt = t.attempt;
                if (t.settled == tracked::settle_state::pending) {
                    t.settled = tracked::settle_state::durable;
                    if (t.dead) {
                        dead_required_.insert(n);
                        bool in = false;
                        // n copied: clang 14 cannot capture a structured binding.
                        spool_->dead_letters()->for_each(
                            0, [&, n = n](const spooled_message& m, bool) {
                                in = in || number_of(m.body) == n;
                                return true;
                            });
                        EXPECT_TRUE(in) << "dead-lettered message " << n
                                        << " has no committed copy in the dead-letter spool";
                    }
                }
            }
        }
        if (!st.disk_full) {
            // every message the spool took is written now: deliverable
            for (auto& [n, t] : model_) {
                if (t.live && t.ticket != 0 && t.ticket > committed && everything) {
                    ADD_FAILURE() << "message " << n << " (ticket " << t.ticket
                                  << ") not committed though nothing is pending (committed "
                                  << committed << ")";
                }
            }
        }
    }

    void deliver() {
        last_op_ = "deliver";
        const auto delivery = spool_->deliver();
        // copy: the views are only valid until the next call on the spool
        std::optional<owned_message> m;
        if (delivery) {
            m = owned_message{delivery->sequence, delivery->attempt, std::string(delivery->header),
                              std::string(delivery->body)};
        }
        const spool_stats st = spool_->stats();
        if (!m) {
            if (st.read_only) {
                return;
            }
            const std::uint64_t committed = spool_->committed_ticket();
            for (const auto& [n, t] : model_) {
                if (t.live && !t.in_flight && (t.ticket == 0 || t.ticket <= committed)) {
                    ADD_FAILURE() << "message " << n << " is waiting, written and not in flight, "
                                  << "but deliver() has nothing (attempt " << t.attempt << ")";
                    return;
                }
            }
            return;
        }
        ++delivered;
        const std::uint64_t n = number_of(m->body);
        const auto it = model_.find(n);
        ASSERT_TRUE(it != model_.end() && it->second.appended) << "never appended: " << n;
        tracked& t = it->second;
        EXPECT_TRUE(t.live) << "delivered a settled message " << n;
        EXPECT_FALSE(t.in_flight) << "delivered " << n << " twice at once";
        EXPECT_EQ(m->body, body_of(n));
        header h;
        ASSERT_TRUE(decode_header(m->header.data(), m->header.size(), h));
        EXPECT_EQ(h.id, id_of(seed_, n));
        EXPECT_EQ(m->attempt, t.attempt + 1) << "message " << n;
        if (t.sequence != 0 || t.attempt > 0) {
            EXPECT_EQ(m->sequence, t.sequence) << "message " << n;
        }
        t.attempt = m->attempt;
        t.sequence = m->sequence;
        t.in_flight = true;
        in_flight_.insert(n);
    }

    std::uint64_t pick_in_flight() {
        auto it = in_flight_.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(pick(in_flight_.size())));
        return *it;
    }

    void settle(tracked& t, std::uint64_t n, bool dead) {
        t.in_flight = false;
        t.live = false;
        t.settled = tracked::settle_state::pending;
        t.dead = dead;
        in_flight_.erase(n);
    }

    void ack() {
        last_op_ = "ack";
        if (in_flight_.empty()) {
            return;
        }
        const std::uint64_t n = pick_in_flight();
        tracked& t = model_[n];
        EXPECT_TRUE(spool_->ack(t.sequence));
        EXPECT_FALSE(spool_->ack(t.sequence)) << "second ack of " << n << " accepted";
        settle(t, n, false);
    }

    void ack_unknown() {
        last_op_ = "ack unknown";
        EXPECT_FALSE(spool_->ack(spool_->stats().next_sequence + 5));
        for (const auto& [n, t] : model_) {
            if (t.live && !t.in_flight && t.sequence != 0) {
                EXPECT_FALSE(spool_->ack(t.sequence)) << "ack of " << n << " not in flight";
                return;
            }
        }
    }

    void requeue() {
        last_op_ = "requeue";
        if (in_flight_.empty()) {
            return;
        }
        const std::uint64_t n = pick_in_flight();
        tracked& t = model_[n];
        bool dead = false;
        EXPECT_TRUE(spool_->requeue(t.sequence, std::chrono::milliseconds(0), &dead));
        EXPECT_EQ(dead, t.attempt >= max_attempts) << "message " << n << " attempt " << t.attempt;
        if (dead) {
            settle(t, n, true);
        } else {
            t.in_flight = false;
            in_flight_.erase(n);
        }
    }

    void dead_letter() {
        last_op_ = "dead letter";
        if (in_flight_.empty()) {
            return;
        }
        const std::uint64_t n = pick_in_flight();
        tracked& t = model_[n];
        EXPECT_TRUE(spool_->dead_letter(t.sequence, "model test"));
        settle(t, n, true);
    }

    void crash_between_calls() {
        last_op_ = "crash";
        ++crashes;
        fs_.crash(pick(2) == 0);
        spool_.reset();
        fs_.restart();
        reopen_and_check(false);
    }

    void crash_in_commit() {
        last_op_ = "crash in commit";
        ++crashes;
        const int before = fs_.crashes();
        fs_.crash_after(static_cast<int>(1 + pick(6)), pick(2) == 0);
        (void)spool_->commit();
        if (fs_.crashes() == before) {
            fs_.crash(pick(2) == 0);
        }
        spool_.reset();
        fs_.restart();
        reopen_and_check(false);
    }

    void clean_restart() {
        last_op_ = "clean restart";
        ++restarts;
        commit();
        const bool exact = !spool_->stats().read_only && !spool_->commit_pending();
        spool_.reset();
        reopen_and_check(exact);
    }

    void io_error() {
        last_op_ = "eio";
        ++eio;
        if (pick(2) == 0) {
            fs_.fail_all_writes(EIO);
        } else {
            fs_.fail_syncs(EIO);
        }
        append(fresh_number());
        deliver(); // maybe a delivery record too
        last_op_ = "eio";
        (void)spool_->commit();
        const spool_stats st = spool_->stats();
        if (st.read_only) {
            EXPECT_FALSE(st.failure.empty());
            EXPECT_EQ(spool_->append(header_of(seed_, next_number_), "x").outcome,
                      append_result::status::rejected);
            EXPECT_FALSE(spool_->commit());
            EXPECT_FALSE(spool_->deliver());
        }
        fs_.clear_faults();
        if (!st.read_only) {
            after_commit(); // nothing was written (disk full, nothing queued): a normal commit
            return;
        }
        if (pick(2) == 0) {
            fs_.crash(pick(2) == 0);
            spool_.reset();
            fs_.restart();
        } else {
            spool_.reset(); // no crash: what was written (not synced) is still there
        }
        reopen_and_check(false);
    }

    snapshot take_snapshot() {
        snapshot s;
        const spool_stats st = spool_->stats();
        s.messages = st.messages;
        s.message_bytes = st.message_bytes;
        s.next_sequence = st.next_sequence;
        s.log_start = st.log_start;
        s.segments = st.segments;
        spool_->for_each(0, [&](const spooled_message& m, bool settled) {
            if (!settled) {
                s.waiting[number_of(m.body)] = m.attempt;
            }
            return true;
        });
        return s;
    }

    // Opens the spool again and checks it against the model. exact: everything was durable
    // before the close; otherwise (a crash, an I/O error) unconfirmed changes may or may not be
    // there.
    void reopen_and_check(bool exact) {
        open();
        if (::testing::Test::HasFatalFailure()) {
            return;
        }
        fs_.set_disk_size(0);
        disk_episode_left_ = 0;
        std::map<std::uint64_t, spooled_message> found;
        spool_->for_each(0, [&](const spooled_message& m, bool settled) {
            if (!settled) {
                const std::uint64_t n = number_of(m.body);
                EXPECT_TRUE(found.emplace(n, m).second) << "id " << n << " stored twice";
                EXPECT_EQ(m.body, body_of(n));
            }
            return true;
        });
        const spool_stats st = spool_->stats();
        EXPECT_EQ(st.messages, found.size());
        EXPECT_EQ(st.in_flight, 0u);
        EXPECT_FALSE(st.read_only) << st.failure;
        for (auto& [n, t] : model_) {
            const auto f = found.find(n);
            const bool present = f != found.end();
            if (present) {
                EXPECT_TRUE(t.appended) << "never appended: " << n;
                EXPECT_NE(t.settled, tracked::settle_state::durable)
                    << "message " << n << " came back after a durable settle";
                EXPECT_GE(f->second.attempt, t.durable_attempt) << "attempts went down for " << n;
                EXPECT_LE(f->second.attempt, t.attempt) << "attempts went up for " << n;
            } else if (t.live && t.on_disk) {
                ADD_FAILURE() << "confirmed message " << n << " lost (ticket " << t.ticket
                              << ", attempt " << t.attempt << ")";
            }
            if (exact) {
                EXPECT_EQ(present, t.live) << "message " << n;
                if (present) {
                    EXPECT_EQ(f->second.attempt, t.attempt) << "message " << n;
                }
            }
            const tracked before = t;
            t = tracked{};
            t.appended = before.appended;
            if (present) {
                t.live = true;
                t.on_disk = true;
                t.sequence = f->second.sequence;
                t.attempt = f->second.attempt;
                t.durable_attempt = f->second.attempt;
            }
        }
        for (const auto& [n, m] : found) {
            EXPECT_TRUE(model_.contains(n)) << "unknown message " << n;
        }
        in_flight_.clear();
        check_dead_letters();
        // Recovering twice gives the same state.
        const snapshot first = take_snapshot();
        spool_.reset();
        open();
        if (::testing::Test::HasFatalFailure()) {
            return;
        }
        EXPECT_TRUE(spool_->recovery().clean()) << "second recovery found something";
        const snapshot second = take_snapshot();
        EXPECT_TRUE(first == second)
            << "recovering twice differs: messages " << first.messages << " vs " << second.messages
            << ", next_sequence " << first.next_sequence << " vs " << second.next_sequence;
    }

    void check_dead_letters() {
        spool* dl = spool_->dead_letters();
        ASSERT_NE(dl, nullptr);
        std::set<std::uint64_t> held;
        dl->for_each(0, [&](const spooled_message& m, bool settled) {
            if (!settled) {
                const std::uint64_t n = number_of(m.body);
                EXPECT_TRUE(held.insert(n).second) << "dead letter " << n << " stored twice";
            }
            return true;
        });
        for (const std::uint64_t n : dead_required_) {
            EXPECT_TRUE(held.contains(n))
                << "dead-lettered message " << n << " is in neither spool"
                << " dlq messages " << dl->stats().messages << " held " << held.size()
                << " dlq segs " << dl->stats().segments << " next " << dl->stats().next_sequence;
        }
        for (const std::uint64_t n : held) {
            EXPECT_TRUE(model_[n].appended) << "dead letter never appended: " << n;
        }
    }

    // Lift every fault, let the spool catch up, then drain it: every waiting message is
    // delivered exactly once and the spool ends empty.
    void finish() {
        last_op_ = "finish";
        fs_.clear_faults();
        fs_.set_disk_size(0);
        if (spool_->stats().read_only) {
            spool_.reset();
            reopen_and_check(false);
        }
        for (int i = 0; i < 1000 && (spool_->commit_pending() || spool_->stats().disk_full); ++i) {
            clock_ns_ += 50'000'000;
            commit();
        }
        ASSERT_FALSE(spool_->stats().disk_full)
            << "the spool never resumed after the disk had room";
        clean_restart();
        std::set<std::uint64_t> waiting;
        for (const auto& [n, t] : model_) {
            if (t.live) {
                waiting.insert(n);
            }
        }
        std::set<std::uint64_t> got;
        while (auto m = spool_->deliver()) {
            const std::uint64_t n = number_of(m->body);
            EXPECT_TRUE(got.insert(n).second) << "delivered twice: " << n;
            EXPECT_TRUE(spool_->ack(m->sequence));
            if (got.size() % 64 == 0) {
                spool_->commit();
            }
        }
        EXPECT_EQ(got, waiting);
        for (int i = 0; i < 4; ++i) {
            spool_->commit();
        }
        const spool_stats st = spool_->stats();
        EXPECT_EQ(st.messages, 0u);
        EXPECT_EQ(st.segments, 1u) << "head segments not reclaimed";
        spool_.reset();
        open();
        EXPECT_EQ(spool_->stats().messages, 0u);
    }

    std::uint64_t seed_;
    int steps_;
    std::mt19937_64 random_;
    memory_file_system fs_;
    metrics_registry registry_;
    std::int64_t clock_ns_ = 1'700'000'000'000'000'000;
    std::unique_ptr<spool> spool_;
    std::map<std::uint64_t, tracked> model_;
    std::set<std::uint64_t> in_flight_;
    std::set<std::uint64_t> dead_required_;
    std::uint64_t next_number_ = 0;
    int disk_episode_left_ = 0;
    std::string last_op_;
};

// A reclaimed segment's handle is reused by the next segment created (POSIX gives the lowest
// free descriptor, and so does the memory file system): a read cached for the old file must
// not be served for the new one.
TEST(SpoolMemory, ReadsAfterReclaimDoNotSeeTheReclaimedSegmentsBytes) {
    memory_file_system fs(7);
    metrics_registry registry;
    spool_options o;
    o.directory = "/mem/spool";
    o.fs = &fs;
    o.segment_bytes = 16 * 1024;
    o.reserve_bytes = 2048;
    o.registry = &registry;
    spool s(o);
    std::uint64_t n = 0;
    // (stats() reads the oldest message through the same reader: count files instead)
    auto segment_files = [&] {
        const auto names = fs.files_in("/mem/spool");
        return static_cast<std::size_t>(
            std::count_if(names.begin(), names.end(), [](const std::string& name) {
                return spool_format::parse_segment_file_name(name).has_value();
            }));
    };
    auto append_until_segments = [&](std::size_t segments) {
        while (segment_files() < segments) {
            ASSERT_EQ(s.append(header_of(7, n), body_of(n)).outcome,
                      append_result::status::appended);
            ++n;
            ASSERT_TRUE(s.commit());
        }
    };
    append_until_segments(3);
    // Cache the head segment's records in the random-access reader.
    const std::uint64_t head = 1; // sequence 0 is the first segment's segment_start record
    const auto first = s.read(head);
    ASSERT_TRUE(first);
    ASSERT_EQ(first->body, body_of(0));
    // Settle the head segment and let it be reclaimed.
    std::map<std::uint64_t, std::uint64_t> sequence_of; // number -> sequence (not acked)
    while (segment_files() == 3) {
        const auto m = s.deliver();
        ASSERT_TRUE(m);
        ASSERT_TRUE(s.ack(m->sequence));
        for (int i = 0; i < 3; ++i) {
            s.commit();
        }
    }
    // A new segment (on the reclaimed file's handle), then read every message, newest first.
    append_until_segments(3);
    for (std::uint64_t k = 0; k < n; ++k) {
        const auto m = s.deliver();
        if (!m) {
            break;
        }
        sequence_of[number_of(m->body)] = m->sequence;
    }
    for (auto it = sequence_of.rbegin(); it != sequence_of.rend(); ++it) {
        const auto [k, seq] = *it;
        const auto m = s.read(seq);
        ASSERT_TRUE(m) << "message " << k << " sequence " << seq << " unreadable";
        EXPECT_EQ(m->body, body_of(k)) << "sequence " << seq;
        EXPECT_TRUE(s.ack(seq));
    }
    EXPECT_GT(sequence_of.size(), 10u);
    // A requeued message in the newest segment is delivered again (read through the cache).
    ASSERT_TRUE(s.append(header_of(7, n), body_of(n)).outcome == append_result::status::appended);
    ASSERT_TRUE(s.commit());
    const auto last = s.deliver();
    ASSERT_TRUE(last);
    ASSERT_TRUE(s.requeue(last->sequence, std::chrono::milliseconds(0)));
    const auto again = s.deliver();
    ASSERT_TRUE(again) << "a requeued message was lost to a stale read";
    EXPECT_EQ(again->body, body_of(n));
    EXPECT_EQ(again->attempt, 2u);
}

// The synced-position marker moves only after an fdatasync and costs no fsync of its own; in
// sync mode none it moves at close only (here: no rotation). A clean close leaves it on disk.
TEST(SpoolMemory, SyncedMarkerFollowsTheSyncsOfEachMode) {
    namespace sf = spool_format;
    for (const auto mode : {sync_policy::mode::always, sync_policy::mode::none}) {
        SCOPED_TRACE(mode == sync_policy::mode::always ? "always" : "none");
        memory_file_system fs(3);
        metrics_registry registry;
        spool_options o;
        o.directory = "/mem/spool";
        o.fs = &fs;
        o.registry = &registry;
        o.dead_letter_spool = false;
        o.segment_bytes = 64 * 1024;
        o.reserve_bytes = 4096;
        o.dedup_window = 64;
        o.sync.how = mode;
        auto marker = [&]() -> std::optional<sf::synced_position> {
            sf::synced_position p;
            const auto bytes = fs.file_content("/mem/spool/synced");
            if (!bytes ||
                sf::parse_synced(bytes->data(), bytes->size(), p) != sf::synced_status::ok) {
                return std::nullopt;
            }
            return p;
        };
        std::uint64_t opened_end = 0;
        {
            spool s(o);
            ASSERT_TRUE(marker()) << "recovery leaves a marker for what it synced";
            opened_end = marker()->end_sequence;
            EXPECT_EQ(opened_end, s.stats().next_sequence);
            for (std::uint64_t n = 0; n < 10; ++n) {
                ASSERT_EQ(s.append(header_of(3, n), body_of(n)).outcome,
                          append_result::status::appended);
                const auto syncs = fs.syncs();
                ASSERT_TRUE(s.commit());
                if (mode == sync_policy::mode::always) {
                    EXPECT_EQ(fs.syncs(), syncs + 1) << "only the data is synced";
                    EXPECT_EQ(marker()->end_sequence, s.stats().next_sequence);
                } else {
                    EXPECT_EQ(fs.syncs(), syncs);
                    EXPECT_EQ(marker()->end_sequence, opened_end);
                }
            }
        }
        fs.crash(); // right after a clean close: the marker survives, with the close's sync
        fs.restart();
        ASSERT_TRUE(marker());
        EXPECT_EQ(marker()->end_sequence, opened_end + 10);
        spool again(o);
        EXPECT_TRUE(again.recovery().clean());
        EXPECT_EQ(again.recovery().synced_sequence, opened_end + 10);
        EXPECT_EQ(again.stats().messages, 10u);
    }
}

class SpoolModel : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(SpoolModel, RandomOperationsCrashesAndFaultsKeepEveryConfirmedMessage) {
    model_run run(GetParam(), 8000);
    run.run();
    RecordProperty("crashes", run.crashes);
    EXPECT_GT(run.crashes + run.restarts, 0);
    EXPECT_GT(run.delivered, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SpoolModel, ::testing::Range<std::uint64_t>(1, 13));

} // namespace
} // namespace zmqkit
