// Private to the patterns: how a connecting peer (lb_worker, mdp_worker) decides when to
// heartbeat, when its broker went silent and when to connect again (6/PPP and 7/MDP's
// liveness, with the Paranoid Pirate's exponential reconnect backoff). One class so that both
// workers behave the same; time comes from an injectable clock so tests need no real time.
#pragma once

#include <zmqkit/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace zmqkit::patterns::detail {

// The liveness of one peer as seen from the side that connects.
//
//   connected() -> tick() says heartbeat every interval; heard() keeps it alive
//   nothing heard for interval x liveness -> tick() says disconnect (close the socket) and a
//   reconnect is scheduled after the backoff; the backoff doubles each time, up to its cap,
//   and goes back to its initial value once the peer is heard again
//   reconnect due -> tick() says reconnect (open a fresh socket, then call connected())
//
// Not thread-safe: use from the thread that owns the socket.
class peer_liveness {
public:
    using time_point = std::chrono::steady_clock::time_point;
    using clock_function = std::function<time_point()>;

    struct settings {
        std::chrono::milliseconds heartbeat_interval{1000};
        std::uint32_t liveness = 3; // intervals of silence before the peer is given up
        std::chrono::milliseconds reconnect_initial{1000};
        std::chrono::milliseconds reconnect_max{32000}; // raised to reconnect_initial if lower
    };

    // What the owner does after a tick().
    enum class action {
        none,       // nothing due
        heartbeat,  // send a heartbeat
        disconnect, // the peer is silent: close the socket (reconnect_delay() says for how long)
        reconnect,  // the backoff passed: open a fresh socket and call connected()
    };

    // `clock` (nullptr: steady_clock::now) is what tests inject to drive time. Throws
    // config_error, its message starting with `who`, unless the interval, the liveness and the
    // initial delay are positive.
    peer_liveness(settings s, std::string_view who, clock_function clock = {})
        : settings_(s), clock_(std::move(clock)), backoff_(s.reconnect_initial) {
        if (s.heartbeat_interval.count() <= 0 || s.liveness == 0 ||
            s.reconnect_initial.count() <= 0) {
            throw config_error(
                std::string(who) +
                ": heartbeat interval, liveness and reconnect delay must be positive");
        }
        settings_.reconnect_max = std::max(settings_.reconnect_max, settings_.reconnect_initial);
    }

    // How often the owner should call tick(): a quarter of the interval, 1 to 100 ms.
    [[nodiscard]] std::chrono::milliseconds tick_interval() const noexcept {
        return std::clamp(settings_.heartbeat_interval / 4, std::chrono::milliseconds(1),
                          std::chrono::milliseconds(100));
    }

    [[nodiscard]] time_point now() const {
        return clock_ ? clock_() : std::chrono::steady_clock::now();
    }

    // A fresh socket: the peer counts as heard now, the first heartbeat is one interval away.
    void connected() {
        const auto t = now();
        reconnect_at_.reset();
        last_heard_ = t;
        next_heartbeat_ = t + settings_.heartbeat_interval;
    }

    // Something arrived from the peer: it is alive, and the backoff starts over.
    void heard() {
        last_heard_ = now();
        backoff_ = settings_.reconnect_initial;
    }

    // The socket was closed for a reason of the owner's (a DISCONNECT from the peer, a failed
    // handler): reconnect at the next tick, without backoff.
    void reconnect_now() { reconnect_at_ = now(); }

    // True between a disconnect and the reconnect.
    [[nodiscard]] bool reconnecting() const noexcept { return reconnect_at_.has_value(); }

    // The silence after which the peer is given up: interval x liveness.
    [[nodiscard]] std::chrono::milliseconds silence_limit() const noexcept {
        return settings_.heartbeat_interval * settings_.liveness;
    }

    // The delay of the reconnect scheduled by the last disconnect.
    [[nodiscard]] std::chrono::milliseconds reconnect_delay() const noexcept {
        return scheduled_delay_;
    }

    // While a long handler runs (the workers' keep_alive()): whether a heartbeat is due now; if
    // so the next one is one interval away. Says nothing of the peer's silence: its messages
    // wait unread until the handler returns.
    [[nodiscard]] bool heartbeat_due() {
        const auto t = now();
        if (reconnect_at_ || t < next_heartbeat_) {
            return false;
        }
        next_heartbeat_ = t + settings_.heartbeat_interval;
        return true;
    }

    // Called on the owner's timer.
    [[nodiscard]] action tick() {
        const auto t = now();
        if (reconnect_at_) {
            if (t < *reconnect_at_) {
                return action::none;
            }
            reconnect_at_.reset();
            return action::reconnect;
        }
        if (t - last_heard_ > silence_limit()) {
            scheduled_delay_ = backoff_;
            reconnect_at_ = t + backoff_;
            backoff_ = std::min(backoff_ * 2, settings_.reconnect_max);
            return action::disconnect;
        }
        if (t >= next_heartbeat_) {
            next_heartbeat_ = t + settings_.heartbeat_interval;
            return action::heartbeat;
        }
        return action::none;
    }

    // tick(), with the owner's part of what it says: heartbeat(), disconnect(text) with a line
    // for the log ("broker silent for more than 3000 ms; reconnecting in 1000 ms"), or
    // reconnect().
    template <class Heartbeat, class Disconnect, class Reconnect>
    void dispatch(Heartbeat&& heartbeat, Disconnect&& disconnect, Reconnect&& reconnect) {
        switch (tick()) {
        case action::none:
            break;
        case action::heartbeat:
            heartbeat();
            break;
        case action::disconnect:
            disconnect("broker silent for more than " + std::to_string(silence_limit().count()) +
                       " ms; reconnecting in " + std::to_string(reconnect_delay().count()) + " ms");
            break;
        case action::reconnect:
            reconnect();
            break;
        }
    }

private:
    settings settings_;
    clock_function clock_;
    std::chrono::milliseconds backoff_;
    std::chrono::milliseconds scheduled_delay_{0};
    time_point last_heard_{};
    time_point next_heartbeat_{};
    std::optional<time_point> reconnect_at_;
};

} // namespace zmqkit::patterns::detail
