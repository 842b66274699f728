// The one dedup window (spool, reliable_sender, reliable_receiver): capacity bound, eviction in
// insertion order, erase, and a random run against a simple model.
#include <zmqkit/message_id_window.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <random>

namespace zmqkit {
namespace {

message_id id_of(std::uint64_t n) {
    std::array<std::uint8_t, message_id::size> bytes{};
    for (std::size_t i = 0; i < 8; ++i) {
        bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
    }
    bytes[0] = 0x01; // never the nil id
    return message_id(bytes);
}

TEST(MessageIdWindow, HoldsAtMostItsCapacityAndEvictsTheOldestFirst) {
    message_id_window w(4);
    for (std::uint64_t n = 0; n < 10; ++n) {
        EXPECT_TRUE(w.insert(id_of(n), n * 10));
        EXPECT_LE(w.size(), 4u);
    }
    EXPECT_EQ(w.size(), 4u);
    for (std::uint64_t n = 0; n < 6; ++n) {
        EXPECT_FALSE(w.contains(id_of(n))) << n;
    }
    for (std::uint64_t n = 6; n < 10; ++n) {
        ASSERT_NE(w.find(id_of(n)), nullptr) << n;
        EXPECT_EQ(*w.find(id_of(n)), n * 10);
    }
}

TEST(MessageIdWindow, ARepeatedInsertKeepsTheValueAndTheAge) {
    message_id_window w(3);
    EXPECT_TRUE(w.insert(id_of(1), 100));
    EXPECT_TRUE(w.insert(id_of(2), 200));
    EXPECT_FALSE(w.insert(id_of(1), 999)); // already held: unchanged, not made younger
    EXPECT_EQ(*w.find(id_of(1)), 100u);
    EXPECT_TRUE(w.insert(id_of(3), 300));
    EXPECT_TRUE(w.insert(id_of(4), 400)); // evicts 1, the oldest insert
    EXPECT_FALSE(w.contains(id_of(1)));
    EXPECT_TRUE(w.contains(id_of(2)));
}

TEST(MessageIdWindow, EraseTakesAnIdOutAndTheNextEvictionSkipsIt) {
    message_id_window w(3);
    for (std::uint64_t n = 1; n <= 3; ++n) {
        ASSERT_TRUE(w.insert(id_of(n), n));
    }
    std::uint64_t value = 0;
    EXPECT_TRUE(w.erase(id_of(1), &value));
    EXPECT_EQ(value, 1u);
    EXPECT_FALSE(w.erase(id_of(1)));
    EXPECT_EQ(w.size(), 2u);
    EXPECT_TRUE(w.insert(id_of(4), 4)); // room: nothing evicted
    EXPECT_TRUE(w.contains(id_of(2)));
    EXPECT_TRUE(w.insert(id_of(5), 5)); // full: evicts 2, the oldest held
    EXPECT_FALSE(w.contains(id_of(2)));
    EXPECT_TRUE(w.contains(id_of(3)));
    EXPECT_TRUE(w.contains(id_of(4)));
    EXPECT_TRUE(w.contains(id_of(5)));
}

TEST(MessageIdWindow, AnOldIdStaysWhileNewerOnesComeAndGo) {
    // reliable_sender's case: the oldest message stays unconfirmed while thousands of newer
    // ones are confirmed (erased). It must never be evicted while the window has room.
    message_id_window w(8);
    ASSERT_TRUE(w.insert(id_of(0), 0));
    for (std::uint64_t n = 1; n < 5000; ++n) {
        ASSERT_TRUE(w.insert(id_of(n), n));
        if (n % 7 != 0) {
            ASSERT_TRUE(w.erase(id_of(n)));
        } else if (n > 7) {
            ASSERT_TRUE(w.erase(id_of(n - 7)));
        }
        ASSERT_TRUE(w.contains(id_of(0))) << n;
        ASSERT_LE(w.size(), 3u);
    }
}

TEST(MessageIdWindow, CapacityZeroHoldsNothing) {
    message_id_window w(0);
    EXPECT_FALSE(w.insert(id_of(1)));
    EXPECT_FALSE(w.contains(id_of(1)));
    EXPECT_FALSE(w.erase(id_of(1)));
    EXPECT_EQ(w.size(), 0u);
}

TEST(MessageIdWindow, TheNilIdIsAnIdLikeAnyOther) {
    message_id_window w(2);
    EXPECT_TRUE(w.insert(message_id{}, 7));
    ASSERT_NE(w.find(message_id{}), nullptr);
    EXPECT_EQ(*w.find(message_id{}), 7u);
}

// Random inserts and erases against a model (a deque in insertion order and a map).
TEST(MessageIdWindow, RandomOperationsMatchAModel) {
    for (const std::size_t capacity : {1u, 2u, 5u, 64u, 1000u}) {
        std::mt19937_64 rng(capacity);
        message_id_window w(capacity);
        std::deque<std::uint64_t> order;
        std::map<std::uint64_t, std::uint64_t> held;
        const std::uint64_t universe = capacity * 3 + 5;
        for (int step = 0; step < 20000; ++step) {
            const std::uint64_t n = rng() % universe;
            if (rng() % 3 == 0) {
                const bool was = held.erase(n) != 0;
                if (was) {
                    order.erase(std::find(order.begin(), order.end(), n));
                }
                ASSERT_EQ(w.erase(id_of(n)), was);
            } else {
                const bool fresh = !held.contains(n);
                if (fresh) {
                    if (held.size() == capacity) {
                        held.erase(order.front());
                        order.pop_front();
                    }
                    held[n] = static_cast<std::uint64_t>(step);
                    order.push_back(n);
                }
                ASSERT_EQ(w.insert(id_of(n), static_cast<std::uint64_t>(step)), fresh);
            }
            ASSERT_EQ(w.size(), held.size());
            if (step % 97 == 0) {
                for (std::uint64_t k = 0; k < universe; ++k) {
                    const auto it = held.find(k);
                    const std::uint64_t* v = w.find(id_of(k));
                    ASSERT_EQ(v != nullptr, it != held.end()) << capacity << " " << step;
                    if (v != nullptr) {
                        ASSERT_EQ(*v, it->second);
                    }
                }
            }
        }
    }
}

} // namespace
} // namespace zmqkit
