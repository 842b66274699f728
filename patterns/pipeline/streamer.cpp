#include <zmqkit/patterns/pipeline.hpp>

#include "../common/device_support.hpp"

#include <algorithm>
#include <cstring>

namespace zmqkit::patterns {
namespace {

using detail::upper;

} // namespace

streamer::streamer(zmq::context_t& context, streamer_options options)
    : actor(context, options.name), options_(std::move(options)),
      monitors_(std::make_unique<detail::side_monitors>()) {
    detail::refuse_shared_security(
        options_.sockets, "streamer '" + options_.name + "'",
        "frontend_security, backend_security, capture_security and control_security");
    if (options_.frontend.empty() || options_.backend.empty()) {
        throw config_error("streamer '" + options_.name +
                           "': both a frontend and a backend endpoint are required");
    }
    (void)parse_endpoints(options_.frontend, endpoint_action::bind);
    (void)parse_endpoints(options_.backend, endpoint_action::bind);
    if (!options_.capture.empty()) {
        (void)parse_endpoints(options_.capture, endpoint_action::bind);
    }
    if (!options_.control.empty()) {
        (void)parse_endpoints(options_.control, endpoint_action::bind);
    }
    options_.batch = std::max<std::size_t>(1, options_.batch);
    auto& reg = options_.registry != nullptr ? *options_.registry : metrics_registry::global();
    const metric_labels labels{{"component", options_.name}};
    messages_in_ = &reg.get_counter("zmqkit_device_messages_in_total",
                                    "Messages received on the frontend", labels);
    bytes_in_ =
        &reg.get_counter("zmqkit_device_bytes_in_total", "Bytes received on the frontend", labels);
    messages_out_ = &reg.get_counter("zmqkit_device_messages_out_total",
                                     "Messages sent on the backend", labels);
    bytes_out_ =
        &reg.get_counter("zmqkit_device_bytes_out_total", "Bytes sent on the backend", labels);
    send_stalls_ = &reg.get_counter(
        "zmqkit_device_backend_stalls_total",
        "Times the backend had no room (no peer or HWM reached) and reading paused", labels);
    capture_drops_ = &reg.get_counter(
        "zmqkit_device_capture_drops_total",
        "Messages not copied to the capture socket because it had no room or no peer", labels);
    frames_.reserve(8);
}

streamer::~streamer() {
    stop();
}

void streamer::setup() {
    frontend_.emplace(context(), zmq::socket_type::pull);
    backend_.emplace(context(), zmq::socket_type::push);
    detail::apply_socket_options(*frontend_, options_.sockets);
    detail::apply_socket_options(*backend_, options_.sockets);
    monitors_->secure(context(), *frontend_, options_.frontend_security, options_.name, "frontend",
                      options_.registry);
    monitors_->secure(context(), *backend_, options_.backend_security, options_.name, "backend",
                      options_.registry);
    auto fe = attach(*frontend_, options_.frontend, endpoint_action::bind);
    auto be = attach(*backend_, options_.backend, endpoint_action::bind);
    std::vector<std::string> cap;
    std::vector<std::string> ctl;
    if (!options_.capture.empty()) {
        capture_.emplace(context(), zmq::socket_type::push);
        detail::apply_socket_options(*capture_, options_.sockets);
        monitors_->secure(context(), *capture_, options_.capture_security, options_.name, "capture",
                          options_.registry);
        cap = attach(*capture_, options_.capture, endpoint_action::bind);
    }
    if (!options_.control.empty()) {
        control_.emplace(context(), zmq::socket_type::rep);
        // Long enough for the reply to TERMINATE to leave before the socket closes.
        control_->set(zmq::sockopt::linger, 500);
        monitors_->secure(context(), *control_, options_.control_security, options_.name, "control",
                          options_.registry);
        ctl = attach(*control_, options_.control, endpoint_action::bind);
        watch(*control_, [this] { handle_control(); });
    }
    {
        std::lock_guard lock(endpoints_mutex_);
        frontend_endpoints_ = std::move(fe);
        backend_endpoints_ = std::move(be);
        capture_endpoints_ = std::move(cap);
        control_endpoints_ = std::move(ctl);
    }
    watch(*frontend_, [this] { (void)forward(options_.batch); });
    // Back-pressure: when the backend is full, stop reading the frontend until it has room.
    watch(
        *backend_, ZMQ_POLLOUT,
        [this] {
            set_watch_enabled(*backend_, ZMQ_POLLOUT, false);
            if (!paused_) {
                set_watch_enabled(*frontend_, true);
                (void)forward(options_.batch); // the pending message first
            }
        },
        false);
}

std::size_t streamer::forward(std::size_t limit) {
    std::size_t forwarded = 0;
    while (forwarded < limit) {
        // A message already taken from the frontend (pending_) goes first; then a new one.
        if (pending_ == 0) {
            std::size_t bytes = 0;
            bool more = true;
            while (more) {
                if (pending_ == frames_.size()) {
                    frames_.emplace_back();
                }
                auto& frame = frames_[pending_];
                if (!frontend_->recv(frame, pending_ == 0 ? zmq::recv_flags::dontwait
                                                          : zmq::recv_flags::none)) {
                    break;
                }
                more = frame.more();
                bytes += frame.size();
                ++pending_;
            }
            if (pending_ == 0) {
                note_drained(*frontend_); // empty; forward() does not use it again
                break;
            }
            pending_bytes_ = bytes;
            messages_in_->add();
            bytes_in_->add(bytes);
        }
        // Never block: the first frame goes with ZMQ_DONTWAIT. If the backend has no room (HWM
        // reached, or its last peer just left), the message stays pending and reading the
        // frontend pauses until the backend is writable again. Once the first frame is
        // queued, libzmq accepts the rest of the message.
        zmq::message_t first_copy;
        if (capture_) {
            first_copy.copy(frames_[0]); // before send() takes the frame
        }
        if (!backend_->send(frames_[0],
                            (pending_ > 1 ? zmq::send_flags::sndmore : zmq::send_flags::none) |
                                zmq::send_flags::dontwait)) {
            send_stalls_->add();
            set_watch_enabled(*frontend_, false);
            set_watch_enabled(*backend_, ZMQ_POLLOUT, !paused_);
            break;
        }
        // The tap never blocks the flow: a copy it cannot take at once is dropped and counted.
        // Only a message's first frame can be refused; then none of its frames are tapped.
        bool tap = capture_.has_value();
        for (std::size_t i = 0; i < pending_; ++i) {
            const auto flags = i + 1 < pending_ ? zmq::send_flags::sndmore : zmq::send_flags::none;
            if (tap) {
                zmq::message_t copy;
                if (i == 0) {
                    copy.move(first_copy);
                } else {
                    copy.copy(frames_[i]);
                }
                if (!capture_->send(copy, flags | zmq::send_flags::dontwait)) {
                    tap = false;
                    capture_drops_->add();
                }
            }
            if (i > 0) {
                (void)backend_->send(frames_[i], flags);
            }
        }
        messages_out_->add();
        bytes_out_->add(pending_bytes_);
        pending_ = 0;
        ++forwarded;
    }
    return forwarded;
}

std::vector<std::string> streamer::execute(const std::string& command) {
    const std::string cmd = upper(command);
    if (cmd == control::pause) {
        set_paused(true);
        return {"OK"};
    }
    if (cmd == control::resume) {
        set_paused(false);
        return {"OK"};
    }
    if (cmd == control::statistics) {
        return statistics().to_frames();
    }
    if (cmd == control::status) {
        return {status_json()};
    }
    if (cmd == control::terminate) {
        terminated_ = true;
        return {"OK"};
    }
    return {"ERROR unknown command '" + command +
            "' (known: PAUSE, RESUME, TERMINATE, STATISTICS, STATUS)"};
}

void streamer::handle_control() {
    const auto command = detail::receive_control_command(*control_);
    if (!command) {
        return;
    }
    detail::send_control_reply(*control_, execute(*command));
    if (terminated_) {
        on_stop(std::chrono::steady_clock::now() + options_.drain_timeout);
        request_exit();
    }
}

std::vector<std::string> streamer::on_command(const std::vector<std::string>& frames) {
    auto reply = execute(frames.front());
    if (terminated_) {
        on_stop(std::chrono::steady_clock::now() + options_.drain_timeout);
        request_exit();
    }
    return reply;
}

void streamer::set_paused(bool paused) {
    paused_ = paused;
    // Resuming with a message still pending waits for backend room before reading more.
    set_watch_enabled(*frontend_, !paused && pending_ == 0);
    set_watch_enabled(*backend_, ZMQ_POLLOUT, !paused && pending_ > 0);
}

bool streamer::pause() {
    auto reply = command({control::pause});
    return reply && !reply->empty() && reply->front() == "OK";
}

bool streamer::resume() {
    auto reply = command({control::resume});
    return reply && !reply->empty() && reply->front() == "OK";
}

void streamer::on_stop(std::chrono::steady_clock::time_point deadline) {
    // A paused device drains too: stopping must not lose what it already holds.
    // Forward what has already arrived; stop at the deadline or when the frontend is idle.
    while (std::chrono::steady_clock::now() < deadline) {
        if (forward(options_.batch) > 0) {
            continue;
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        const auto slice =
            std::max(std::chrono::milliseconds(0), std::min(left, std::chrono::milliseconds(50)));
        if (pending_ > 0 || (frontend_->get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) {
            // Input is waiting but the backend has no room: wait for room, within the deadline.
            zmq::pollitem_t item{backend_->handle(), 0, ZMQ_POLLOUT, 0};
            (void)zmq::poll(&item, 1, slice);
            continue;
        }
        zmq::pollitem_t item{frontend_->handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, slice) == 0) {
            break; // idle
        }
    }
    // What is still held (a message the backend had no room for, input not read) is dropped.
    drain_dropped_ +=
        (pending_ > 0 ? 1 : 0) + detail::discard_waiting(*frontend_, messages_in_, bytes_in_);
    pending_ = 0;
    // What is queued for the backend may still leave until the deadline.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    backend_->set(zmq::sockopt::linger, static_cast<int>(std::max<std::int64_t>(0, left.count())));
}

drain_report streamer::drain_result() const noexcept {
    return drain_report{drain_dropped_.load(), std::nullopt};
}

void streamer::teardown() noexcept {
    monitors_->clear();
    control_.reset();
    capture_.reset();
    frontend_.reset();
    backend_.reset();
}

proxy_statistics streamer::statistics() const noexcept {
    proxy_statistics s;
    s.frontend_messages_in = messages_in_->value();
    s.frontend_bytes_in = bytes_in_->value();
    s.backend_messages_out = messages_out_->value();
    s.backend_bytes_out = bytes_out_->value();
    return s;
}

std::string streamer::status_json() const {
    auto j = detail::status_head(paused_ ? "paused" : "running", statistics());
    j["backend_stalls"] = send_stalls_->value();
    j["capture_drops"] = capture_drops_->value();
    monitors_->add_status(j);
    return detail::dump_status(j);
}

std::vector<std::string> streamer::frontend_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return frontend_endpoints_;
}
std::vector<std::string> streamer::backend_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return backend_endpoints_;
}
std::vector<std::string> streamer::control_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return control_endpoints_;
}
std::vector<std::string> streamer::capture_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return capture_endpoints_;
}

} // namespace zmqkit::patterns
