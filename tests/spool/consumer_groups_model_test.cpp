// A randomized model test of consumer groups on the crashing in-memory file system: appends,
// deliveries, acks and requeues in three groups (and the default queue, or none), crashes
// between calls and in the middle of commits (torn writes), clean restarts, small segments so
// that reclaiming runs all the time. Checked: every group gets every confirmed message at least
// once; nothing whose ack was committed comes again in that group; within a session a group's
// first deliveries follow the spool's order; attempts never go below what was recorded; a
// delivered body was appended; at the end every group can be drained to nothing pending.
#include <zmqkit/codec.hpp>
#include <zmqkit/spool.hpp>

#include "support/memory_file_system.hpp"

#include <gtest/gtest.h>

#include <array>
#include <charconv>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

namespace zmqkit {
namespace {

using testing::memory_file_system;

const std::array<std::string, 3> group_names{"alpha", "beta", "gamma"};

std::string header_of(std::uint64_t n) {
    header h = header::fresh();
    std::array<std::uint8_t, message_id::size> b{};
    b[0] = 0x6b;
    for (int i = 0; i < 8; ++i) {
        b[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(n >> (8 * i));
    }
    h.id = message_id(b);
    h.type = "groups-model";
    return encode_header(h);
}

std::uint64_t number_of(std::string_view body) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(body.data() + 1, body.data() + body.size(), n);
    EXPECT_TRUE(ec == std::errc{} && body[0] == 'm') << body.substr(0, 40);
    return n;
}

// What the model knows of one group (the default queue is "").
struct group_model {
    std::set<std::uint64_t> delivered_ever;                 // numbers delivered at least once
    std::set<std::uint64_t> acked_durable;                  // numbers whose ack was committed
    std::map<std::uint64_t, std::uint64_t> in_flight;       // sequence -> number (this session)
    std::map<std::uint64_t, std::uint32_t> durable_attempt; // number -> recorded attempt
    std::uint64_t last_first = 0;                           // last attempt-1 number this session
    bool any_first = false;
};

class groups_model {
public:
    explicit groups_model(std::uint64_t seed)
        : seed_(seed), fs_(seed), random_(seed * 7919), default_queue_(seed % 2 == 1) {}

    void run(int steps) {
        open();
        for (const auto& name : group_names) {
            (void)spool_->open_group(name, group_start{});
        }
        ASSERT_TRUE(spool_->commit());
        for (int step = 0; step < steps; ++step) {
            one_step();
            if (::testing::Test::HasFailure()) {
                ADD_FAILURE() << "seed " << seed_ << " step " << step << " (" << last_op_ << ")";
                return;
            }
        }
        finish();
    }

    int crashes = 0, delivered = 0;

private:
    spool_options options() {
        spool_options o;
        o.directory = "/mem/groups";
        o.fs = &fs_;
        o.segment_bytes = 8 * 1024;
        o.reserve_bytes = 1024;
        o.max_attempts = 0; // no dead letters: every message stays deliverable
        o.dead_letter_spool = false;
        o.default_queue = default_queue_;
        o.registry = &registry_;
        return o;
    }

    void open() {
        spool_ = std::make_unique<spool>(options());
        ASSERT_TRUE(spool_->recovery().lost.empty()) << spool_->recovery().findings.front();
        for (auto& [name, g] : groups_) {
            g.in_flight.clear();
            g.any_first = false;
        }
    }

    std::optional<group_id> id_of(const std::string& name) {
        if (name.empty()) {
            return default_queue_ ? std::optional<group_id>(default_group) : std::nullopt;
        }
        return spool_->find_group(name);
    }

    std::uint64_t pick(std::uint64_t n) {
        return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(random_);
    }

    const std::string& any_group() {
        static const std::string none;
        const auto k = pick(default_queue_ ? 4 : 3);
        return k == 3 ? none : group_names[k];
    }

    void one_step() {
        const std::uint64_t r = pick(1000);
        if (r < 250) {
            append();
        } else if (r < 550) {
            deliver(any_group());
        } else if (r < 850) {
            ack(any_group());
        } else if (r < 930) {
            requeue(any_group());
        } else if (r < 960) {
            crash(false);
        } else if (r < 985) {
            crash(true);
        } else {
            clean_restart();
        }
    }

    void append() {
        last_op_ = "append";
        std::vector<std::pair<std::uint64_t, std::uint64_t>> tickets; // number, ticket
        const std::uint64_t k = 1 + pick(12);
        for (std::uint64_t i = 0; i < k; ++i) {
            const std::uint64_t n = next_number_++;
            const auto r = spool_->append(header_of(n), "m" + std::to_string(n));
            ASSERT_EQ(r.outcome, append_result::status::appended) << r.reason;
            tickets.emplace_back(n, r.ticket);
            appended_.insert(n);
        }
        if (spool_->commit()) {
            for (const auto& [n, ticket] : tickets) {
                if (ticket <= spool_->committed_ticket()) {
                    confirmed_.insert(n);
                }
            }
        }
    }

    void deliver(const std::string& name) {
        last_op_ = "deliver " + name;
        const auto id = id_of(name);
        ASSERT_TRUE(id) << name;
        auto& g = groups_[name];
        std::vector<std::pair<std::uint64_t, std::uint32_t>> taken; // sequence, attempt
        const std::uint64_t k = 1 + pick(16);
        for (std::uint64_t i = 0; i < k; ++i) {
            const auto m = spool_->deliver(*id);
            if (!m) {
                break;
            }
            const std::uint64_t n = number_of(m->body);
            ASSERT_TRUE(appended_.contains(n)) << "delivered a message never appended: " << n;
            ASSERT_FALSE(g.acked_durable.contains(n)) << "group '" << name << "' got message " << n
                                                      << " again after its ack was committed";
            const auto rec = g.durable_attempt.find(n);
            ASSERT_GT(m->attempt, rec == g.durable_attempt.end() ? 0u : rec->second)
                << "attempt went down for " << n << " in '" << name << "'";
            if (m->attempt == 1) {
                ASSERT_TRUE(!g.any_first || n > g.last_first)
                    << "first deliveries out of order in '" << name << "': " << n << " after "
                    << g.last_first;
                g.last_first = n;
                g.any_first = true;
            }
            g.in_flight[m->sequence] = n;
            taken.emplace_back(n, m->attempt);
            ++delivered;
        }
        if (spool_->commit()) {
            for (const auto& [n, attempt] : taken) {
                g.delivered_ever.insert(n);
                auto& a = g.durable_attempt[n];
                a = std::max(a, attempt);
            }
        }
    }

    void ack(const std::string& name) {
        last_op_ = "ack " + name;
        const auto id = id_of(name);
        auto& g = groups_[name];
        std::vector<std::uint64_t> numbers;
        for (auto it = g.in_flight.begin(); it != g.in_flight.end();) {
            if (pick(3) != 0) {
                ASSERT_TRUE(spool_->ack(*id, it->first)) << "in flight " << it->second;
                numbers.push_back(it->second);
                it = g.in_flight.erase(it);
            } else {
                ++it;
            }
        }
        if (spool_->commit()) {
            g.acked_durable.insert(numbers.begin(), numbers.end());
        }
    }

    void requeue(const std::string& name) {
        last_op_ = "requeue " + name;
        const auto id = id_of(name);
        auto& g = groups_[name];
        if (g.in_flight.empty()) {
            return;
        }
        auto it = g.in_flight.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(pick(g.in_flight.size())));
        ASSERT_TRUE(spool_->requeue(*id, it->first, std::chrono::milliseconds(0)));
        g.in_flight.erase(it);
    }

    void crash(bool in_commit) {
        last_op_ = in_commit ? "crash in commit" : "crash";
        ++crashes;
        if (in_commit) {
            const int before = fs_.crashes();
            fs_.crash_after(static_cast<int>(1 + pick(6)), pick(2) == 0);
            (void)spool_->append(header_of(next_number_), "m" + std::to_string(next_number_));
            appended_.insert(next_number_++);
            (void)spool_->commit();
            if (fs_.crashes() == before) {
                fs_.crash(pick(2) == 0);
            }
        } else {
            fs_.crash(pick(2) == 0);
        }
        spool_.reset();
        fs_.restart();
        open();
    }

    void clean_restart() {
        last_op_ = "clean restart";
        spool_.reset();
        open();
    }

    // Drains every group: each gets every confirmed message at least once, then has nothing
    // pending.
    void finish() {
        last_op_ = "finish";
        clean_restart();
        for (const auto& name : {std::string(), group_names[0], group_names[1], group_names[2]}) {
            if (name.empty() && !default_queue_) {
                continue;
            }
            const auto id = id_of(name);
            auto& g = groups_[name];
            for (int round = 0; round < 100000; ++round) {
                deliver(name);
                if (g.in_flight.empty()) {
                    break;
                }
                const auto in = g.in_flight;
                for (const auto& [seq, n] : in) {
                    ASSERT_TRUE(spool_->ack(*id, seq));
                    g.acked_durable.insert(n);
                }
                g.in_flight.clear();
                ASSERT_TRUE(spool_->commit());
            }
            for (const auto n : confirmed_) {
                EXPECT_TRUE(g.delivered_ever.contains(n))
                    << "group '" << name << "' never got confirmed message " << n;
            }
            for (const auto& info : spool_->groups()) {
                if (info.name == name) {
                    EXPECT_EQ(info.pending, 0u) << "'" << name << "' after draining";
                }
            }
        }
    }

    std::uint64_t seed_;
    memory_file_system fs_;
    std::mt19937_64 random_;
    bool default_queue_;
    metrics_registry registry_;
    std::unique_ptr<spool> spool_;
    std::map<std::string, group_model> groups_;
    std::set<std::uint64_t> appended_, confirmed_;
    std::uint64_t next_number_ = 1;
    std::string last_op_;
};

class ConsumerGroupsModel : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(ConsumerGroupsModel, EveryGroupGetsEveryConfirmedMessageAcrossCrashes) {
    groups_model m(GetParam());
    m.run(1500);
    EXPECT_GT(m.delivered, 0);
    EXPECT_GT(m.crashes, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ConsumerGroupsModel, ::testing::Range<std::uint64_t>(1, 9));

} // namespace
} // namespace zmqkit
