// zmqkit — actors: a component that owns its sockets on its own thread and takes commands over
// an inproc pipe, each acknowledged (CZMQ's zactor, in C++).
#pragma once

#include <zmqkit/error.hpp>
#include <zmqkit/export.hpp>

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace zmqkit {

// Base class of every component that runs on its own thread.
//
// Lifecycle: construct -> start() -> [command()...] -> stop() (or destruction).
// start() returns only after setup() has run on the actor thread (sockets bound, so endpoints
// with ":*" are known) or throws component_error with setup()'s reason. stop() asks the loop to
// finish, lets the component drain within a deadline, and joins the thread.
//
// Subclasses implement setup() (create and bind sockets, register them with watch()) and may
// override on_command(), on_stop() and teardown(). Everything but the public methods runs on
// the actor thread. Public methods are thread-safe.
class ZMQKIT_API actor {
public:
    actor(const actor&) = delete;
    actor& operator=(const actor&) = delete;
    virtual ~actor();

    // Starts the thread and waits (at most `timeout`) for setup() to finish.
    // Throws component_error if setup() threw, or did not finish in time, or if already started.
    void start(std::chrono::milliseconds timeout = std::chrono::seconds{10});

    // Asks the actor to stop; on_stop(deadline) may drain until the deadline; then joins.
    // Idempotent; noexcept. Returns after the thread has ended — except when called from the
    // actor's own thread (a handler), where it only makes the loop exit after the handler.
    void stop(std::chrono::milliseconds deadline = std::chrono::seconds{5}) noexcept;

    // Sends a command (one or more frames) and waits at most `timeout` for the reply frames.
    // nullopt on timeout or when the actor is not running. Thread-safe.
    [[nodiscard]] std::optional<std::vector<std::string>>
    command(const std::vector<std::string>& frames,
            std::chrono::milliseconds timeout = std::chrono::seconds{5});

    // True between a successful start() and the end of the actor thread.
    [[nodiscard]] bool running() const noexcept { return running_.load(); }
    // Waits at most `timeout` for the actor thread to end by itself (request_exit(), a
    // TERMINATE command, a fatal error). True if it has ended.
    [[nodiscard]] bool wait_finished(std::chrono::milliseconds timeout);
    // Why the actor ended by itself (empty if it did not, or ended cleanly).
    [[nodiscard]] std::string failure() const;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }

protected:
    actor(zmq::context_t& context, std::string name);

    // Actor thread. Create sockets, bind/connect them, watch() them. Throw to fail start().
    virtual void setup() = 0;
    // Actor thread. Reply frames for a command; the default answers "ERROR unknown command".
    virtual std::vector<std::string> on_command(const std::vector<std::string>& frames);
    // Actor thread, when asked to stop: drain what can be drained before `deadline`.
    virtual void on_stop(std::chrono::steady_clock::time_point deadline);
    // Actor thread, last thing before the thread ends: close sockets. Must not throw.
    virtual void teardown() noexcept {}

    // Actor thread: calls on_readable whenever `socket` has input (level-triggered).
    void watch(zmq::socket_t& socket, std::function<void()> on_readable);
    // Actor thread: calls fn whenever `socket` is ready for `events` (ZMQ_POLLIN or
    // ZMQ_POLLOUT), if enabled.
    void watch(zmq::socket_t& socket, short events, std::function<void()> fn, bool enabled);
    // Actor thread: stops/starts delivering events for a watched socket (pause, back-pressure).
    void set_watch_enabled(zmq::socket_t& socket, bool enabled);
    void set_watch_enabled(zmq::socket_t& socket, short events, bool enabled);
    // Any thread: true once stop() has been called. Long operations in handlers (a send retried
    // at a full HWM) check it so that stop() stays prompt.
    [[nodiscard]] bool stop_requested() const noexcept { return stop_requested_.load(); }
    // Any thread: when stop_requested(), the time by which draining must end.
    [[nodiscard]] std::chrono::steady_clock::time_point stop_deadline() const noexcept {
        return std::chrono::steady_clock::time_point(
            std::chrono::steady_clock::duration(stop_deadline_.load()));
    }
    // Actor thread, from a watch handler or a timer: `socket` has no input as of now — the
    // callback's last operation on it was a receive that found nothing (EAGAIN), which also
    // took in every command libzmq had queued for it. The loop then need not ask the socket's
    // state (ZMQ_EVENTS: two system calls) before it waits again; the socket's descriptor still
    // wakes the wait when input arrives. Only a hint for that one wait, and ignored when
    // another handler, a timer or a command runs after it, when the socket is also watched for
    // ZMQ_POLLOUT, and once the actor is stopping. Do not call it if the socket is used after
    // that receive: a send may take in the socket's commands and leave input that its
    // descriptor will not announce.
    void note_drained(zmq::socket_t& socket);
    // Actor thread: calls fn every `interval`, first after one interval.
    void every(std::chrono::milliseconds interval, std::function<void()> fn);
    // Actor thread: leave the loop after the current event (the actor finishes by itself).
    void request_exit(std::string failure = {});

    [[nodiscard]] zmq::context_t& context() noexcept { return context_; }
    [[nodiscard]] bool stopping() const noexcept { return exit_requested_; }

private:
    struct watched {
        zmq::socket_t* socket;
        short events;
        std::function<void()> on_ready;
        bool enabled = true;
    };
    struct timer {
        std::chrono::milliseconds interval;
        std::chrono::steady_clock::time_point next;
        std::function<void()> fn;
    };

    void thread_main(const std::string& pipe_endpoint);
    void loop(zmq::socket_t& pipe);
    bool handle_pipe(zmq::socket_t& pipe); // false: leave the loop

    zmq::context_t& context_;
    std::string name_;
    std::thread thread_;
    std::mutex command_mutex_;
    std::optional<zmq::socket_t> pipe_; // caller side
    std::atomic<bool> running_{false};
    std::atomic<bool> started_{false};
    std::atomic<bool> stop_requested_{false};
    std::atomic<std::chrono::steady_clock::rep> stop_deadline_{0};
    std::mutex stop_mutex_; // serialises stop(): one join, one pipe reset

    mutable std::mutex state_mutex_;
    std::condition_variable state_changed_;
    bool setup_done_ = false;
    bool finished_ = false;
    std::string setup_error_;
    std::string failure_;

    // actor thread only
    std::vector<watched> watched_;
    std::vector<timer> timers_;
    bool exit_requested_ = false;
    // note_drained(): the sockets noted, valid while callbacks_ still equals drained_at_.
    std::vector<void*> drained_;
    std::uint64_t drained_at_ = 0;
    std::uint64_t callbacks_ = 0; // handlers, timers and pipe commands run so far
};

} // namespace zmqkit
