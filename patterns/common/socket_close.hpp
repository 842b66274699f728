// Private to the patterns: closing a socket that a handle re-creates (the Lazy Pirate clients,
// the workers) without throwing, so destructors, moves, reconnects and stops can use it.
#pragma once

#include <zmqkit/security.hpp>

#include <zmq.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

namespace zmqkit::patterns::detail {

// Stops `monitor` (it must go before its socket closes), then closes `socket` with linger 0:
// what the socket still holds is dropped (a Lazy Pirate peer sends it again on a fresh socket).
// Safe on an empty optional and on a moved-from socket. Never throws: zmq_setsockopt reports
// an error by its return value, which is ignored here (the socket closes anyway).
inline void close_now(std::optional<zmq::socket_t>& socket,
                      std::unique_ptr<handshake_monitor>& monitor) noexcept {
    monitor.reset();
    if (socket && socket->handle() != nullptr) {
        const int zero = 0;
        (void)zmq_setsockopt(socket->handle(), ZMQ_LINGER, &zero, sizeof zero);
    }
    socket.reset();
}

// Sets the linger of `socket` to the time left until `deadline` (at least 0, at most `cap`): what
// it still holds may leave until then when it closes — a device's drained output, a worker's
// last replies and its DISCONNECT within its stop deadline. Never throws.
inline void linger_until(zmq::socket_t& socket, std::chrono::steady_clock::time_point deadline,
                         std::chrono::milliseconds cap = std::chrono::hours(24)) noexcept {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const int linger = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, cap.count()));
    if (socket.handle() != nullptr) {
        (void)zmq_setsockopt(socket.handle(), ZMQ_LINGER, &linger, sizeof linger);
    }
}

// Whether `socket` has a message waiting (ZMQ_EVENTS; false if it cannot tell). A worker's
// timer asks it before it calls its broker silent: after a handler that ran longer than the
// silence limit the broker's heartbeats wait unread, and the timer runs before the reader.
// Never throws.
[[nodiscard]] inline bool input_waiting(zmq::socket_t& socket) noexcept {
    int events = 0;
    std::size_t size = sizeof events;
    return socket.handle() != nullptr &&
           zmq_getsockopt(socket.handle(), ZMQ_EVENTS, &events, &size) == 0 &&
           (events & ZMQ_POLLIN) != 0;
}

} // namespace zmqkit::patterns::detail
