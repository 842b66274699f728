#include <zmqkit/actor.hpp>

#include <algorithm>
#include <cerrno>

#include <poll.h>

using namespace std::chrono_literals;

namespace zmqkit {
namespace {

std::atomic<std::uint64_t> actor_counter{0};

constexpr std::string_view term_command = "$TERM";

// The loop never waits longer than this, so a stuck poll can always notice a stop request.
constexpr auto max_poll_wait = std::chrono::milliseconds(500);

bool recv_all(zmq::socket_t& s, std::vector<std::string>& frames, zmq::recv_flags first) {
    frames.clear();
    zmq::message_t frame;
    if (!s.recv(frame, first)) {
        return false;
    }
    frames.emplace_back(frame.to_string());
    while (frame.more()) {
        (void)s.recv(frame, zmq::recv_flags::none);
        frames.emplace_back(frame.to_string());
    }
    return true;
}

bool send_all(zmq::socket_t& s, const std::vector<std::string>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const auto flags =
            (i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none) |
            zmq::send_flags::dontwait;
        if (!s.send(zmq::buffer(frames[i]), flags)) {
            return false;
        }
    }
    return true;
}

} // namespace

actor::actor(zmq::context_t& context, std::string name)
    : context_(context), name_(std::move(name)) {}

actor::~actor() {
    // Subclasses must call stop() in their own destructor (their members die first); this is
    // the safety net for the thread itself.
    stop();
}

void actor::start(std::chrono::milliseconds timeout) {
    if (started_.exchange(true)) {
        throw component_error(name_ + ": start() called twice");
    }
    const std::string endpoint =
        "inproc://zmqkit-actor-" + std::to_string(actor_counter.fetch_add(1)) + "-" + name_;
    pipe_.emplace(context_, zmq::socket_type::pair);
    pipe_->set(zmq::sockopt::linger, 0);
    pipe_->bind(endpoint);
    thread_ = std::thread(&actor::thread_main, this, endpoint);

    std::unique_lock lock(state_mutex_);
    const bool done = state_changed_.wait_for(lock, timeout, [&] { return setup_done_; });
    if (!done || !setup_error_.empty()) {
        const std::string why =
            done ? setup_error_
                 : "setup did not finish within " + std::to_string(timeout.count()) + " ms";
        lock.unlock();
        stop(std::chrono::milliseconds(0));
        throw component_error(name_ + " failed to start: " + why);
    }
}

void actor::thread_main(const std::string& pipe_endpoint) {
    zmq::socket_t pipe(context_, zmq::socket_type::pair);
    pipe.set(zmq::sockopt::linger, 0);
    pipe.connect(pipe_endpoint);
    std::string setup_error;
    try {
        setup();
    } catch (const std::exception& e) {
        setup_error = e.what();
        if (setup_error.empty()) {
            setup_error = "unknown error";
        }
    } catch (...) {
        setup_error = "setup threw a non-standard exception";
    }
    if (!setup_error.empty()) {
        teardown();
        std::lock_guard lock(state_mutex_);
        setup_error_ = setup_error;
        setup_done_ = true;
        finished_ = true;
        state_changed_.notify_all();
        return;
    }
    {
        std::lock_guard lock(state_mutex_);
        running_ = true;
        setup_done_ = true;
        state_changed_.notify_all();
    }
    std::string failure;
    try {
        loop(pipe);
    } catch (const std::exception& e) {
        failure = std::string("stopped by an unexpected error: ") + e.what();
    } catch (...) {
        failure = "stopped by a non-standard exception";
    }
    teardown();
    std::lock_guard lock(state_mutex_);
    if (failure_.empty()) {
        failure_ = failure;
    }
    running_ = false;
    finished_ = true;
    state_changed_.notify_all();
}

// Why not zmq_poll: in libzmq 4.3.4 every zmq_poll() makes a poll(2) with timeout 0 first and
// then, for every socket, a ZMQ_EVENTS query (a getpid(2) fork check and a poll(2) of the
// socket's mailbox); when nothing is ready it does it all again around the blocking poll(2).
// With three sockets that is ~16 system calls per wake-up before any handler runs. This loop
// asks ZMQ_EVENTS of each watched socket once per round, blocks in one poll(2) on the sockets'
// ZMQ_FD only when none is ready, and after the wake-up asks ZMQ_EVENTS only of the sockets
// whose ZMQ_FD fired.
//
// ZMQ_FD is edge-triggered: it signals that commands reached the socket's mailbox, and any
// operation on the socket (a send from any handler included) may consume that signal while
// leaving messages queued. So the round begins with ZMQ_EVENTS of every watched socket, after
// all handlers of the previous round ran and before blocking; a socket whose ZMQ_FD did not fire
// while blocked was idle when asked and has not been touched since. The command pipe is touched
// by the loop alone (handle_pipe), so its state stays known between rounds: it is asked after a
// wake-up on its ZMQ_FD, after handle_pipe, and at least every pipe_check_interval while
// handlers keep the loop busy (so that stop() stays prompt under load).
//
// A handler that read its socket until a receive found nothing (EAGAIN) knows more: that
// receive took in the socket's commands, and nothing has used the socket since. It says so with
// note_drained(), and when the next round finds nothing else ready it skips that socket's
// ZMQ_EVENTS (getpid(2) + poll(2)) before it waits — one query less per message for a broker
// that reads one request and sends it on. (When something else is ready the loop will not wait,
// and the noted socket is asked too, so that input which arrived since is served in this round.)
// The note counts only if no other callback (handler, timer, command) ran after it: another
// handler may have sent on the socket, which can take in its commands and spend its ZMQ_FD
// signal.
namespace {

constexpr auto pipe_check_interval = std::chrono::milliseconds(1);

// ZMQ_EVENTS: processes the socket's pending commands (consuming its ZMQ_FD signal) and returns
// ZMQ_POLLIN | ZMQ_POLLOUT as they are now; nullopt when interrupted (EINTR) before it could
// tell. Throws zmq::error_t for a terminated context or an invalid socket, as zmq_poll did.
std::optional<short> socket_events(void* handle) {
    int events = 0;
    std::size_t size = sizeof events;
    if (zmq_getsockopt(handle, ZMQ_EVENTS, &events, &size) != 0) {
        if (zmq_errno() == EINTR) {
            return std::nullopt;
        }
        throw zmq::error_t();
    }
    return static_cast<short>(events);
}

int socket_fd(void* handle) {
    int fd = -1;
    std::size_t size = sizeof fd;
    if (zmq_getsockopt(handle, ZMQ_FD, &fd, &size) != 0) {
        throw zmq::error_t();
    }
    return fd;
}

} // namespace

void actor::loop(zmq::socket_t& pipe) {
    // One entry per distinct watched socket (enabled watches only), rebuilt every round: a
    // handler may enable, disable or add watches, or replace a socket (a reconnect).
    struct polled {
        void* handle;
        short wanted; // union of the events of its enabled watches
        short ready;  // what ZMQ_EVENTS reported, masked by `wanted`
        bool unknown; // ZMQ_EVENTS could not tell (EINTR): ask again, do not block
        bool skipped; // not asked: drained by the last callback (note_drained)
    };
    std::vector<polled> sockets;
    std::vector<std::size_t> socket_of; // watched_[i] -> sockets[socket_of[i]] (npos: disabled)
    std::vector<pollfd> fds;
    constexpr auto npos = static_cast<std::size_t>(-1);
    void* const pipe_handle = pipe.handle();
    const int pipe_fd = socket_fd(pipe_handle);
    bool pipe_known = false; // true: the pipe had no input when last asked and was not touched
    auto pipe_checked = std::chrono::steady_clock::now();

    while (!exit_requested_) {
        sockets.clear();
        socket_of.assign(watched_.size(), npos);
        for (std::size_t i = 0; i < watched_.size(); ++i) {
            const auto& w = watched_[i];
            void* const handle = w.socket->handle();
            if (!w.enabled || handle == nullptr) {
                continue;
            }
            const auto it = std::find_if(sockets.begin(), sockets.end(),
                                         [&](const polled& p) { return p.handle == handle; });
            if (it != sockets.end()) {
                it->wanted = static_cast<short>(it->wanted | w.events);
                socket_of[i] = static_cast<std::size_t>(it - sockets.begin());
            } else {
                socket_of[i] = sockets.size();
                sockets.push_back({handle, w.events, 0, false, false});
            }
        }

        auto now = std::chrono::steady_clock::now();
        if (now - pipe_checked >= pipe_check_interval) {
            pipe_known = false;
        }
        bool pipe_ready = false;
        if (!pipe_known) {
            const auto e = socket_events(pipe_handle);
            pipe_known = e.has_value();
            pipe_ready = e && (*e & ZMQ_POLLIN) != 0;
            pipe_checked = now;
        }
        bool any_ready = pipe_ready || !pipe_known;
        // Sockets the last callback drained (note_drained) were idle when it returned; they
        // need asking only if the loop is not going to wait (then they may be served in this
        // round instead of the next).
        const bool hints_valid = !drained_.empty() && drained_at_ == callbacks_;
        bool skipped = false;
        for (auto& s : sockets) {
            s.unknown = false;
            s.ready = 0;
            s.skipped = hints_valid && s.wanted == ZMQ_POLLIN &&
                        std::find(drained_.begin(), drained_.end(), s.handle) != drained_.end();
            if (s.skipped) {
                skipped = true;
                continue;
            }
            const auto e = socket_events(s.handle);
            s.unknown = !e;
            s.ready = e ? static_cast<short>(*e & s.wanted) : short{0};
            any_ready = any_ready || s.ready != 0 || s.unknown;
        }
        if (any_ready && skipped) {
            for (auto& s : sockets) {
                if (s.skipped) {
                    const auto e = socket_events(s.handle);
                    s.unknown = !e;
                    s.ready = e ? static_cast<short>(*e & s.wanted) : short{0};
                }
            }
        }

        if (!any_ready) {
            auto wait = max_poll_wait;
            for (const auto& t : timers_) {
                wait = std::min(
                    wait, std::max(std::chrono::milliseconds(0),
                                   std::chrono::ceil<std::chrono::milliseconds>(t.next - now)));
            }
            fds.clear();
            fds.push_back({pipe_fd, POLLIN, 0});
            for (const auto& s : sockets) {
                fds.push_back({socket_fd(s.handle), POLLIN, 0});
            }
            const int rc =
                ::poll(fds.data(), static_cast<nfds_t>(fds.size()), static_cast<int>(wait.count()));
            if (rc < 0 && errno != EINTR) {
                throw zmq::error_t();
            }
            // Whether or not the pipe's ZMQ_FD fired, its state is known as of now.
            pipe_checked = std::chrono::steady_clock::now();
            if (rc > 0) {
                if (fds[0].revents != 0) {
                    const auto e = socket_events(pipe_handle);
                    pipe_known = e.has_value();
                    pipe_ready = e && (*e & ZMQ_POLLIN) != 0;
                }
                for (std::size_t i = 0; i < sockets.size(); ++i) {
                    if (fds[i + 1].revents != 0) {
                        const auto e = socket_events(sockets[i].handle);
                        sockets[i].ready =
                            e ? static_cast<short>(*e & sockets[i].wanted) : short{0};
                    }
                }
            }
        }

        drained_.clear();
        if (pipe_ready) {
            pipe_known = false; // handle_pipe sends replies: the pipe's ZMQ_FD may be spent
            ++callbacks_;
            if (!handle_pipe(pipe)) {
                return;
            }
        }
        // Watches added by a handler of this round wait for the next round.
        const std::size_t count = socket_of.size();
        for (std::size_t i = 0; i < count && !exit_requested_; ++i) {
            if (socket_of[i] == npos) {
                continue;
            }
            auto& w = watched_[i];
            // Re-check: an earlier handler of this round may have disabled it.
            if (w.enabled && (sockets[socket_of[i]].ready & w.events) != 0) {
                ++callbacks_;
                w.on_ready();
            }
        }
        now = std::chrono::steady_clock::now();
        for (auto& t : timers_) {
            if (now >= t.next && !exit_requested_) {
                t.next = now + t.interval;
                ++callbacks_;
                t.fn();
            }
        }
    }
}

bool actor::handle_pipe(zmq::socket_t& pipe) {
    std::vector<std::string> frames;
    while (recv_all(pipe, frames, zmq::recv_flags::dontwait)) {
        if (frames.size() < 2) {
            continue; // [sequence, command...]; anything else is not ours
        }
        const std::string sequence = frames[0];
        frames.erase(frames.begin());
        if (frames[0] == term_command) {
            auto deadline = std::chrono::steady_clock::now();
            if (frames.size() > 1) {
                deadline += std::chrono::milliseconds(std::stoll(frames[1]));
            }
            try {
                on_stop(deadline);
            } catch (const std::exception& e) {
                std::lock_guard lock(state_mutex_);
                failure_ = std::string("error while draining: ") + e.what();
            } catch (...) {
                std::lock_guard lock(state_mutex_);
                failure_ = "non-standard exception while draining";
            }
            (void)send_all(pipe, {sequence, "OK"});
            return false;
        }
        std::vector<std::string> reply;
        try {
            reply = on_command(frames);
        } catch (const std::exception& e) {
            reply = {std::string("ERROR ") + e.what()};
        } catch (...) {
            reply = {"ERROR non-standard exception"};
        }
        reply.insert(reply.begin(), sequence);
        (void)send_all(pipe, reply);
        if (exit_requested_) {
            return false;
        }
    }
    return true;
}

void actor::stop(std::chrono::milliseconds deadline) noexcept {
    try {
        if (started_.load() && thread_.joinable() &&
            std::this_thread::get_id() == thread_.get_id()) {
            stop_requested_ = true;
            request_exit(); // called from a handler: leave the loop; the owner joins later
            return;
        }
        std::lock_guard stop_lock(stop_mutex_);
        if (!stop_requested_.load()) {
            stop_deadline_ =
                (std::chrono::steady_clock::now() + deadline).time_since_epoch().count();
            stop_requested_ = true;
        }
        if (!started_.load() || !thread_.joinable()) {
            return;
        }
        {
            std::lock_guard command_lock(command_mutex_);
            bool finished = false;
            {
                std::lock_guard lock(state_mutex_);
                finished = finished_;
            }
            if (!finished && pipe_) {
                if (send_all(*pipe_, {"stop", std::string(term_command),
                                      std::to_string(deadline.count())})) {
                    // Wait for the acknowledgement; the loop polls at least every 500 ms.
                    zmq::pollitem_t item{pipe_->handle(), 0, ZMQ_POLLIN, 0};
                    (void)zmq::poll(&item, 1, deadline + max_poll_wait + 1s);
                }
            }
        }
        thread_.join();
        std::lock_guard command_lock(command_mutex_);
        pipe_.reset();
    } catch (...) {
        // stop() must not throw. Reaching here means join() itself failed (it cannot for a
        // joinable thread that is not this one); leave the thread to the destructor.
    }
}

std::optional<std::vector<std::string>> actor::command(const std::vector<std::string>& frames,
                                                       std::chrono::milliseconds timeout) {
    if (frames.empty()) {
        return std::nullopt;
    }
    std::lock_guard command_lock(command_mutex_);
    if (!running_.load() || !pipe_) {
        return std::nullopt;
    }
    static std::atomic<std::uint64_t> sequence_counter{0};
    const std::string sequence = std::to_string(sequence_counter.fetch_add(1));
    std::vector<std::string> request{sequence};
    request.insert(request.end(), frames.begin(), frames.end());
    if (!send_all(*pipe_, request)) {
        return std::nullopt;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> reply;
    for (;;) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            return std::nullopt;
        }
        zmq::pollitem_t item{pipe_->handle(), 0, ZMQ_POLLIN, 0};
        (void)zmq::poll(&item, 1, std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
        while (recv_all(*pipe_, reply, zmq::recv_flags::dontwait)) {
            if (!reply.empty() && reply[0] == sequence) {
                reply.erase(reply.begin());
                return reply; // replies to earlier, timed-out commands are skipped
            }
        }
    }
}

bool actor::wait_finished(std::chrono::milliseconds timeout) {
    std::unique_lock lock(state_mutex_);
    return state_changed_.wait_for(lock, timeout, [&] { return finished_; });
}

std::string actor::failure() const {
    std::lock_guard lock(state_mutex_);
    return failure_;
}

std::vector<std::string> actor::on_command(const std::vector<std::string>& frames) {
    return {"ERROR unknown command '" + frames.front() + "'"};
}

void actor::on_stop(std::chrono::steady_clock::time_point /*deadline*/) {}

void actor::watch(zmq::socket_t& socket, std::function<void()> on_readable) {
    watch(socket, ZMQ_POLLIN, std::move(on_readable), true);
}

void actor::watch(zmq::socket_t& socket, short events, std::function<void()> fn, bool enabled) {
    watched_.push_back({&socket, events, std::move(fn), enabled});
}

void actor::set_watch_enabled(zmq::socket_t& socket, bool enabled) {
    set_watch_enabled(socket, ZMQ_POLLIN, enabled);
}

void actor::set_watch_enabled(zmq::socket_t& socket, short events, bool enabled) {
    for (auto& w : watched_) {
        if (w.socket == &socket && w.events == events) {
            w.enabled = enabled;
        }
    }
}

void actor::note_drained(zmq::socket_t& socket) {
    if (exit_requested_ || stop_requested_) {
        return; // draining for a stop uses the sockets again; the loop is about to end anyway
    }
    if (drained_at_ != callbacks_) {
        drained_.clear(); // notes of an earlier callback
    }
    drained_at_ = callbacks_;
    drained_.push_back(socket.handle());
}

void actor::every(std::chrono::milliseconds interval, std::function<void()> fn) {
    timers_.push_back({interval, std::chrono::steady_clock::now() + interval, std::move(fn)});
}

void actor::request_exit(std::string failure) {
    exit_requested_ = true;
    if (!failure.empty()) {
        std::lock_guard lock(state_mutex_);
        failure_ = std::move(failure);
    }
}

} // namespace zmqkit
