#include <zmqkit/patterns/pipeline.hpp>

#include "../common/device_support.hpp"

#include <algorithm>
#include <cstring>

namespace zmqkit::patterns {

streamer::streamer(zmq::context_t& context, streamer_options options)
    : device(context, options.name, detail::settings_of(options)), options_(std::move(options)) {
    detail::refuse_shared_security(
        options_.sockets, "streamer '" + options_.name + "'",
        "frontend_security, backend_security, capture_security and control_security");
    if (options_.frontend.empty() || options_.backend.empty()) {
        throw config_error("streamer '" + options_.name +
                           "': both a frontend and a backend endpoint are required");
    }
    detail::check_endpoints({&options_.frontend, &options_.backend, &options_.capture});
    options_.batch = std::max<std::size_t>(1, options_.batch);
    auto& reg = registry();
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

void streamer::open_sides() {
    frontend_ = &open_side("frontend", zmq::socket_type::pull, options_.frontend, &options_.sockets,
                           options_.frontend_security);
    backend_ = &open_side("backend", zmq::socket_type::push, options_.backend, &options_.sockets,
                          options_.backend_security);
    if (!options_.capture.empty()) {
        capture_ = &open_side("capture", zmq::socket_type::push, options_.capture,
                              &options_.sockets, options_.capture_security);
    }
    watch(*frontend_, [this] { (void)forward(options_.batch); });
    // Back-pressure: when the backend is full, stop reading the frontend until it has room.
    watch(
        *backend_, ZMQ_POLLOUT,
        [this] {
            set_watch_enabled(*backend_, ZMQ_POLLOUT, false);
            if (!paused()) {
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
            pending_ = detail::receive_message(*frontend_, frames_, bytes);
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
            set_watch_enabled(*backend_, ZMQ_POLLOUT, !paused());
            break;
        }
        // The tap never blocks the flow: a copy it cannot take at once is dropped and counted.
        // Only a message's first frame can be refused; then none of its frames are tapped.
        detail::send_rest_and_tap(*backend_, capture_, frames_, pending_, first_copy,
                                  capture_drops_);
        messages_out_->add();
        bytes_out_->add(pending_bytes_);
        pending_ = 0;
        ++forwarded;
    }
    return forwarded;
}

void streamer::on_pause(bool paused) {
    // Resuming with a message still pending waits for backend room before reading more.
    set_watch_enabled(*frontend_, !paused && pending_ == 0);
    set_watch_enabled(*backend_, ZMQ_POLLOUT, !paused && pending_ > 0);
}

drain_report streamer::on_drain(time_point deadline) {
    // A paused device drains too: stopping must not lose what it already holds.
    // Forward what has already arrived; stop at the deadline or when the frontend is idle.
    while (detail::before(deadline)) {
        if (forward(options_.batch) > 0) {
            continue;
        }
        if (pending_ > 0 || (frontend_->get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) {
            // Input is waiting but the backend has no room: wait for room, within the deadline.
            (void)detail::wait_for(*backend_, ZMQ_POLLOUT, deadline, std::chrono::milliseconds(50));
            continue;
        }
        if (!detail::wait_for(*frontend_, ZMQ_POLLIN, deadline, std::chrono::milliseconds(50))) {
            break; // idle
        }
    }
    // What is still held (a message the backend had no room for, input not read) is dropped.
    const std::uint64_t dropped =
        (pending_ > 0 ? 1 : 0) + detail::discard_waiting(*frontend_, messages_in_, bytes_in_);
    pending_ = 0;
    // What is queued for the backend may still leave until the deadline.
    detail::linger_until(*backend_, deadline);
    return drain_report{dropped, std::nullopt};
}

proxy_statistics streamer::statistics() const noexcept {
    proxy_statistics s;
    s.frontend_messages_in = messages_in_->value();
    s.frontend_bytes_in = bytes_in_->value();
    s.backend_messages_out = messages_out_->value();
    s.backend_bytes_out = bytes_out_->value();
    return s;
}

void streamer::add_status(detail::status_object& status) {
    status.json["backend_stalls"] = send_stalls_->value();
    status.json["capture_drops"] = capture_drops_->value();
}

} // namespace zmqkit::patterns
