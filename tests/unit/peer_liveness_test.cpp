// The liveness and reconnect backoff both workers (lb_worker, mdp_worker) share, driven by an
// injected clock: no test here sleeps.
#include "patterns/common/peer_liveness.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using zmqkit::patterns::detail::peer_liveness;
using action = peer_liveness::action;
using std::chrono::milliseconds;

struct fake_clock {
    std::chrono::steady_clock::time_point now{std::chrono::steady_clock::time_point{} +
                                              std::chrono::hours(1)};
    void advance(milliseconds d) { now += d; }
};

peer_liveness make(fake_clock& c, milliseconds interval = milliseconds(100),
                   std::uint32_t liveness = 3, milliseconds initial = milliseconds(1000),
                   milliseconds cap = milliseconds(4000)) {
    return peer_liveness({interval, liveness, initial, cap}, "test peer", [&c] { return c.now; });
}

// Runs ticks of `step` until the liveness asks for something other than a heartbeat, at most
// `limit` of time; returns the action (none if the limit passed).
action run_until_event(peer_liveness& l, fake_clock& c, milliseconds step, milliseconds limit) {
    for (milliseconds t{0}; t <= limit; t += step) {
        const auto a = l.tick();
        if (a != action::none && a != action::heartbeat) {
            return a;
        }
        c.advance(step);
    }
    return action::none;
}

TEST(peer_liveness, heartbeats_once_per_interval_while_the_peer_is_heard) {
    fake_clock c;
    auto l = make(c);
    l.connected();
    int heartbeats = 0;
    for (int i = 0; i < 100; ++i) { // 1 s in steps of 10 ms, the peer heard every 50 ms
        if (i % 5 == 0) {
            l.heard();
        }
        const auto a = l.tick();
        ASSERT_NE(a, action::disconnect);
        heartbeats += a == action::heartbeat ? 1 : 0;
        c.advance(milliseconds(10));
    }
    EXPECT_EQ(heartbeats, 9); // at 100, 200, ..., 900 ms
}

TEST(peer_liveness, gives_up_a_silent_peer_after_interval_times_liveness) {
    fake_clock c;
    auto l = make(c);
    l.connected();
    c.advance(milliseconds(300)); // exactly the limit: still alive
    EXPECT_EQ(l.tick(), action::heartbeat);
    EXPECT_FALSE(l.reconnecting());
    c.advance(milliseconds(1));
    EXPECT_EQ(l.tick(), action::disconnect);
    EXPECT_TRUE(l.reconnecting());
    EXPECT_EQ(l.silence_limit(), milliseconds(300));
    EXPECT_EQ(l.reconnect_delay(), milliseconds(1000));
}

TEST(peer_liveness, reconnects_after_the_backoff_and_doubles_it_up_to_the_cap) {
    fake_clock c;
    auto l = make(c);
    l.connected();
    std::vector<milliseconds> delays;
    for (int i = 0; i < 5; ++i) {
        ASSERT_EQ(run_until_event(l, c, milliseconds(1), milliseconds(400)), action::disconnect);
        delays.push_back(l.reconnect_delay());
        c.advance(l.reconnect_delay() - milliseconds(1));
        EXPECT_EQ(l.tick(), action::none) << "reconnect before the backoff passed";
        c.advance(milliseconds(1));
        EXPECT_EQ(l.tick(), action::reconnect);
        EXPECT_FALSE(l.reconnecting());
        l.connected();
    }
    EXPECT_EQ(delays,
              (std::vector<milliseconds>{milliseconds(1000), milliseconds(2000), milliseconds(4000),
                                         milliseconds(4000), milliseconds(4000)}));
}

TEST(peer_liveness, hearing_the_peer_resets_the_backoff) {
    fake_clock c;
    auto l = make(c);
    l.connected();
    ASSERT_EQ(run_until_event(l, c, milliseconds(1), milliseconds(400)), action::disconnect);
    c.advance(l.reconnect_delay());
    ASSERT_EQ(l.tick(), action::reconnect);
    l.connected();
    l.heard();
    ASSERT_EQ(run_until_event(l, c, milliseconds(1), milliseconds(400)), action::disconnect);
    EXPECT_EQ(l.reconnect_delay(), milliseconds(1000));
}

TEST(peer_liveness, reconnect_now_skips_the_backoff) {
    fake_clock c;
    auto l = make(c);
    l.connected();
    l.reconnect_now(); // e.g. a DISCONNECT from the broker
    EXPECT_TRUE(l.reconnecting());
    EXPECT_EQ(l.tick(), action::reconnect);
}

TEST(peer_liveness, a_cap_below_the_initial_delay_is_raised_to_it) {
    fake_clock c;
    auto l = make(c, milliseconds(100), 1, milliseconds(500), milliseconds(10));
    l.connected();
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(run_until_event(l, c, milliseconds(1), milliseconds(200)), action::disconnect);
        EXPECT_EQ(l.reconnect_delay(), milliseconds(500));
        c.advance(l.reconnect_delay());
        ASSERT_EQ(l.tick(), action::reconnect);
        l.connected();
    }
}

TEST(peer_liveness, dispatch_calls_the_owner_part_and_says_why_it_disconnects) {
    fake_clock c;
    auto l = make(c);
    l.connected();
    int heartbeats = 0, reconnects = 0;
    std::vector<std::string> disconnects;
    auto run = [&] {
        l.dispatch([&] { ++heartbeats; },
                   [&](const std::string& why) { disconnects.push_back(why); },
                   [&] { ++reconnects; });
    };
    c.advance(milliseconds(100));
    run();
    EXPECT_EQ(heartbeats, 1);
    c.advance(milliseconds(201));
    run();
    ASSERT_EQ(disconnects.size(), 1u);
    EXPECT_EQ(disconnects[0], "broker silent for more than 300 ms; reconnecting in 1000 ms");
    c.advance(milliseconds(1000));
    run();
    EXPECT_EQ(reconnects, 1);
    EXPECT_EQ(heartbeats, 1);
}

TEST(peer_liveness, refuses_settings_that_would_never_heartbeat_or_reconnect) {
    using settings = peer_liveness::settings;
    for (const auto& s : {settings{milliseconds(0), 3, milliseconds(1), milliseconds(1)},
                          settings{milliseconds(1), 0, milliseconds(1), milliseconds(1)},
                          settings{milliseconds(1), 3, milliseconds(0), milliseconds(1)}}) {
        try {
            peer_liveness l(s, "MDP worker 'w'");
            ADD_FAILURE() << "accepted";
        } catch (const zmqkit::config_error& e) {
            EXPECT_STREQ(e.what(), "MDP worker 'w': heartbeat interval, liveness and reconnect "
                                   "delay must be positive");
        }
    }
}

TEST(peer_liveness, ticks_four_times_an_interval_between_1_and_100_ms) {
    fake_clock c;
    EXPECT_EQ(make(c, milliseconds(1000)).tick_interval(), milliseconds(100));
    EXPECT_EQ(make(c, milliseconds(200)).tick_interval(), milliseconds(50));
    EXPECT_EQ(make(c, milliseconds(2)).tick_interval(), milliseconds(1));
}

} // namespace
