#include <zmqkit/actor.hpp>

#include <algorithm>

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

void actor::thread_main(std::string pipe_endpoint) {
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

void actor::loop(zmq::socket_t& pipe) {
    std::vector<zmq::pollitem_t> items;
    std::vector<std::size_t> index; // items[i + 1] -> watched_[index[i]]
    while (!exit_requested_) {
        items.clear();
        index.clear();
        items.push_back({pipe.handle(), 0, ZMQ_POLLIN, 0});
        for (std::size_t i = 0; i < watched_.size(); ++i) {
            if (watched_[i].enabled) {
                items.push_back({watched_[i].socket->handle(), 0, watched_[i].events, 0});
                index.push_back(i);
            }
        }
        auto now = std::chrono::steady_clock::now();
        auto wait = max_poll_wait;
        for (const auto& t : timers_) {
            wait = std::min(wait,
                            std::max(std::chrono::milliseconds(0),
                                     std::chrono::ceil<std::chrono::milliseconds>(t.next - now)));
        }
        (void)zmq::poll(items.data(), items.size(), wait);
        if ((items[0].revents & ZMQ_POLLIN) != 0 && !handle_pipe(pipe)) {
            return;
        }
        for (std::size_t i = 1; i < items.size() && !exit_requested_; ++i) {
            if ((items[i].revents & items[i].events) != 0) {
                // Re-check: an earlier handler of this round may have disabled it.
                auto& w = watched_[index[i - 1]];
                if (w.enabled) {
                    w.on_ready();
                }
            }
        }
        now = std::chrono::steady_clock::now();
        for (auto& t : timers_) {
            if (now >= t.next && !exit_requested_) {
                t.next = now + t.interval;
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
