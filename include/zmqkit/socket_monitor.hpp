// One socket's libzmq monitor events (zmq_socket_monitor), read with a bounded poll: the one
// socket monitor of the library, the tools and the tests (the security handshake_monitor
// reads it on its thread, zmqkit-send and zmqkit-recv on theirs, tests wait on it for a
// handshake instead of sleeping). Built on cppzmq's zmq::monitor_t.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace zmqkit {

// One monitor event: its ZMQ_EVENT_* id, its value (a file descriptor, an errno, a ZMTP or
// ZAP error code, as libzmq documents per event) and the endpoint it is about.
struct socket_event {
    std::uint16_t id = 0;
    std::uint32_t value = 0;
    std::string endpoint;
};

// Watches the `events` (a ZMQ_EVENT_* mask) of one socket and hands each to `on_event`, on the
// thread that calls poll(). libzmq allows one monitor per socket. Construct it before the
// socket binds or connects; destroy it (or stop() it, on the socket's thread) before the
// socket closes. poll() may run on another thread than the socket's, one thread at a time
// (hand it over with a barrier, such as a thread start). Movable, not copyable.
class socket_monitor {
public:
    using handler = std::function<void(const socket_event&)>;

    // Starts monitoring. Throws zmq::error_t when libzmq refuses (a closed socket, a context
    // that terminates).
    socket_monitor(zmq::socket_t& socket, int events, handler on_event);
    ~socket_monitor();
    socket_monitor(socket_monitor&&) noexcept;
    socket_monitor& operator=(socket_monitor&&) noexcept;
    socket_monitor(const socket_monitor&) = delete;
    socket_monitor& operator=(const socket_monitor&) = delete;

    // Hands over the events that arrive within `timeout` (zero: only those already there),
    // each to the handler; returns how many. Never waits longer than `timeout`. Returns 0
    // once the monitor stopped. Throws zmq::error_t (ETERM) when the context terminates.
    std::size_t poll(std::chrono::milliseconds timeout);
    // Stops the events (libzmq sends no more; a poll() waiting on another thread returns).
    // Call on the socket's thread. noexcept; idempotent.
    void stop() noexcept;

private:
    class reader;
    std::unique_ptr<reader> reader_;
};

} // namespace zmqkit
