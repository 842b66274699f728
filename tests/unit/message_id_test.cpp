#include <zmqkit/message_id.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

using namespace zmqkit;

TEST(message_id, generated_ids_are_uuidv7) {
    const auto id = message_id::generate();
    EXPECT_EQ(id.bytes()[6] >> 4U, 7) << "version nibble";
    EXPECT_EQ(id.bytes()[8] >> 6U, 2) << "variant bits 10";
    const auto now_ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    EXPECT_LE(id.unix_ms(), now_ms + 1);
    EXPECT_GE(id.unix_ms() + 5000, now_ms);
}

TEST(message_id, strictly_increasing_within_a_thread) {
    auto previous = message_id::generate();
    for (int i = 0; i < 200000; ++i) {
        const auto next = message_id::generate();
        ASSERT_LT(previous, next) << "at " << i;
        previous = next;
    }
}

TEST(message_id, unique_across_threads) {
    constexpr int threads = 4;
    constexpr int per_thread = 50000;
    std::vector<std::vector<message_id>> ids(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&ids, t] {
            ids[static_cast<std::size_t>(t)].reserve(per_thread);
            for (int i = 0; i < per_thread; ++i) {
                ids[static_cast<std::size_t>(t)].push_back(message_id::generate());
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    std::unordered_set<message_id, message_id_hash> all;
    for (const auto& v : ids) {
        all.insert(v.begin(), v.end());
    }
    EXPECT_EQ(all.size(), static_cast<std::size_t>(threads * per_thread));
}

TEST(message_id, a_forked_child_does_not_repeat_its_parents_ids) {
    (void)message_id::generate(); // seed this thread's generator before forking
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const auto id = message_id::generate();
        (void)!::write(fds[1], id.data(), message_id::size);
        ::_exit(0);
    }
    const auto parent = message_id::generate();
    std::array<std::uint8_t, 16> child_bytes{};
    ASSERT_EQ(::read(fds[0], child_bytes.data(), 16), 16);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(fds[0]);
    ::close(fds[1]);
    // Same millisecond and counter are possible; the 62 random bits must differ.
    EXPECT_NE(std::vector<std::uint8_t>(parent.bytes().begin() + 8, parent.bytes().end()),
              std::vector<std::uint8_t>(child_bytes.begin() + 8, child_bytes.end()));
}

TEST(message_id, text_form_round_trips) {
    const auto id = message_id::generate();
    const auto text = id.to_string();
    ASSERT_EQ(text.size(), 36U);
    EXPECT_EQ(text[8], '-');
    EXPECT_EQ(text[14], '7');
    EXPECT_EQ(message_id::parse(text), id);
    std::string compact;
    for (char c : text) {
        if (c != '-') {
            compact.push_back(c);
        }
    }
    EXPECT_EQ(message_id::parse(compact), id);
}

TEST(message_id, parse_rejects_malformed_text) {
    for (const char* bad :
         {"", "0193f1a2-b3c4-7d5e-8f01-23456789abc", "0193f1a2-b3c4-7d5e-8f01x23456789abcd",
          "0193f1a2-b3c4-7d5e-8f01-23456789abcg", "not an id at all, not at all!!!!!!!!"}) {
        EXPECT_FALSE(message_id::parse(bad).has_value()) << bad;
    }
    EXPECT_EQ(message_id::parse("0193F1A2-B3C4-7D5E-8F01-23456789ABCD")->to_string(),
              "0193f1a2-b3c4-7d5e-8f01-23456789abcd");
}

TEST(message_id, nil_is_default) {
    EXPECT_TRUE(message_id{}.is_nil());
    EXPECT_FALSE(message_id::generate().is_nil());
}
