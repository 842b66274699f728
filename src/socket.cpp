#include <zmqkit/socket.hpp>

#include <algorithm>
#include <cstring>

namespace zmqkit {
namespace {

// Frames kept per received message; further frames of an oversized message are discarded.
constexpr std::size_t max_kept_frames = 4;

socket_counters register_counters(metrics_registry& reg, const std::string& name) {
    const metric_labels labels{{"socket", name}};
    return socket_counters{
        &reg.get_counter("zmqkit_socket_messages_sent_total", "Enveloped messages sent", labels),
        &reg.get_counter("zmqkit_socket_bytes_sent_total", "Bytes sent (header + body)", labels),
        &reg.get_counter("zmqkit_socket_messages_received_total",
                         "Well-formed enveloped messages received", labels),
        &reg.get_counter("zmqkit_socket_bytes_received_total", "Bytes received (all frames)",
                         labels),
        &reg.get_counter("zmqkit_socket_decode_errors_total",
                         "Malformed messages received and discarded", labels),
        &reg.get_counter("zmqkit_socket_send_timeouts_total",
                         "Sends that could not be queued within the send timeout", labels),
    };
}

} // namespace

frame_layout layout_for(zmq::socket_type type) noexcept {
    switch (type) {
    case zmq::socket_type::pub:
    case zmq::socket_type::sub:
    case zmq::socket_type::xpub:
    case zmq::socket_type::xsub:
        return frame_layout::topic;
    default:
        return frame_layout::plain;
    }
}

socket::socket(zmq::context_t& context, zmq::socket_type type, socket_options options)
    : socket_(context, type), options_(std::move(options)), layout_(layout_for(type)) {
    socket_.set(zmq::sockopt::linger,
                static_cast<int>(std::max<std::int64_t>(0, options_.linger.count())));
    socket_.set(zmq::sockopt::sndhwm, options_.send_hwm);
    socket_.set(zmq::sockopt::rcvhwm, options_.recv_hwm);
    socket_.set(zmq::sockopt::sndtimeo, static_cast<int>(options_.send_timeout.count()));
    auto& reg = options_.registry != nullptr ? *options_.registry : metrics_registry::global();
    counters_ = register_counters(reg, options_.name);
    frames_.reserve(max_kept_frames);
    if (options_.security.enabled()) {
        apply_security(socket_, options_.security);
        handshakes_ = std::make_unique<handshake_monitor>(context, socket_, options_.name, nullptr,
                                                          options_.registry);
    }
}

socket& socket::operator=(socket&& other) noexcept {
    if (this != &other) {
        handshakes_.reset(); // before socket_ (its monitored socket) closes
        socket_ = std::move(other.socket_);
        options_ = std::move(other.options_);
        layout_ = other.layout_;
        counters_ = other.counters_;
        endpoints_ = std::move(other.endpoints_);
        on_decode_error_ = std::move(other.on_decode_error_);
        last_error_ = other.last_error_;
        frames_ = std::move(other.frames_);
        receive_timeout_ms_ = other.receive_timeout_ms_;
        handshakes_ = std::move(other.handshakes_);
    }
    return *this;
}

std::vector<std::string> socket::attach(std::string_view spec, endpoint_action default_action) {
    auto effective = zmqkit::attach(socket_, spec, default_action);
    endpoints_.insert(endpoints_.end(), effective.begin(), effective.end());
    return effective;
}

// Sends h + body. With an owner message, a large body is moved out of it (no copy) and a
// small one is released after the copy; without one, the body bytes are copied.
bool socket::send_frames(const std::string_view* topic, header& h, std::string_view body,
                         message* owner) {
    h.stamp();
    const std::size_t header_size = encoded_size(h);
    const std::size_t body_size = body.size();
    const bool inline_body = body_size <= options_.inline_body_limit;
    // One frame for small bodies: [header+body]; else [header][body] with the body uncopied.
    zmq::message_t header_frame(header_size + (inline_body ? body_size : 0));
    auto* out = static_cast<std::byte*>(header_frame.data());
    encode_header(h, out);
    if (inline_body && body_size != 0) {
        std::memcpy(out + header_size, body.data(), body_size);
    }
    const auto header_flags = inline_body ? zmq::send_flags::none : zmq::send_flags::sndmore;
    // The first frame decides: once it is queued, the remaining frames of the message are too.
    if (topic != nullptr) {
        zmq::message_t topic_frame(topic->data(), topic->size());
        if (!socket_.send(topic_frame, zmq::send_flags::sndmore)) {
            counters_.send_timeouts->add();
            return false;
        }
        (void)socket_.send(header_frame, header_flags);
    } else if (!socket_.send(header_frame, header_flags)) {
        counters_.send_timeouts->add();
        return false;
    }
    if (!inline_body) {
        zmq::message_t body_frame =
            owner != nullptr ? owner->take_body() : zmq::message_t(body.data(), body.size());
        // Once a message's first frame is queued libzmq accepts the rest without blocking
        // (the HWM applies to whole messages), so this cannot time out.
        (void)socket_.send(body_frame, zmq::send_flags::none);
    } else if (owner != nullptr) {
        owner->set_body(zmq::message_t());
    }
    counters_.messages_sent->add();
    counters_.bytes_sent->add(header_size + body_size + (topic != nullptr ? topic->size() : 0));
    return true;
}

bool socket::send(message& m) {
    return send_frames(nullptr, m.header(), m.body_view(), &m);
}

bool socket::send(std::string_view topic, message& m) {
    return send_frames(&topic, m.header(), m.body_view(), &m);
}

bool socket::send(std::string_view topic, header& h, std::string_view body) {
    return send_frames(&topic, h, body, nullptr);
}

bool socket::send(header& h, std::string_view body) {
    return send_frames(nullptr, h, body, nullptr);
}

std::optional<message> socket::recv(std::chrono::milliseconds timeout) {
    std::optional<message> out(std::in_place);
    if (!receive(*out, timeout, nullptr)) {
        out.reset();
    }
    return out;
}

bool socket::recv(message& out, std::chrono::milliseconds timeout) {
    return receive(out, timeout, nullptr);
}

std::optional<message> socket::recv(std::string& topic, std::chrono::milliseconds timeout) {
    std::optional<message> out(std::in_place);
    if (!receive(*out, timeout, &topic)) {
        out.reset();
    }
    return out;
}

bool socket::recv(message& out, std::string& topic, std::chrono::milliseconds timeout) {
    return receive(out, timeout, &topic);
}

bool socket::receive(message& out, std::chrono::milliseconds timeout, std::string* topic) {
    std::optional<std::chrono::steady_clock::time_point> deadline; // read the clock only if idle
    // First a non-blocking attempt (under load a message is almost always waiting); when idle,
    // block inside libzmq with ZMQ_RCVTIMEO set to the time left, as a plain zmq_recv would:
    // cheaper than zmq_poll + a second recv.
    auto first_flags = zmq::recv_flags::dontwait;
    for (;;) {
        std::size_t count = 0;
        std::size_t bytes = 0;
        bool more = true;
        while (more) {
            if (count >= max_kept_frames) {
                zmq::message_t discard; // frames beyond any valid layout: drained, not kept
                (void)socket_.recv(discard, zmq::recv_flags::none);
                bytes += discard.size();
                more = discard.more();
                ++count;
                continue;
            }
            zmq::message_t& frame =
                count < frames_.size() ? frames_[count] : frames_.emplace_back();
            const auto got = socket_.recv(frame, count == 0 ? first_flags : zmq::recv_flags::none);
            if (!got) {
                break; // EAGAIN on the first frame: nothing within the wait
            }
            bytes += *got;
            more = frame.more();
            ++count;
        }
        if (count > 0) {
            counters_.bytes_received->add(bytes);
            auto status = decode_frames(frames_, count, layout_, out, topic);
            if (status.ok()) {
                counters_.messages_received->add();
                return true;
            }
            counters_.decode_errors->add();
            last_error_ = status;
            if (on_decode_error_) {
                on_decode_error_(status);
            }
            // A flood of malformed messages must not hold the caller past its deadline.
            if (timeout.count() == 0) {
                return false;
            }
            if (timeout.count() > 0) {
                const auto now = std::chrono::steady_clock::now();
                if (!deadline) {
                    deadline = now + timeout;
                } else if (now >= *deadline) {
                    return false;
                }
            }
            first_flags = zmq::recv_flags::dontwait; // re-check the time left before blocking
            continue;
        }
        if (timeout.count() == 0) {
            return false;
        }
        int wait_ms = -1;
        if (timeout.count() > 0) {
            const auto now = std::chrono::steady_clock::now();
            if (!deadline) {
                deadline = now + timeout;
            }
            if (now >= *deadline) {
                return false;
            }
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count();
            wait_ms = static_cast<int>(std::min<std::int64_t>(left, 0x7FFFFFFF));
        }
        if (wait_ms != receive_timeout_ms_) {
            socket_.set(zmq::sockopt::rcvtimeo, wait_ms);
            receive_timeout_ms_ = wait_ms;
        }
        first_flags = zmq::recv_flags::none;
    }
}

decode_status decode_frames(std::vector<zmq::message_t>& frames, std::size_t count,
                            frame_layout layout, message& out, std::string* topic) {
    const std::size_t first = layout == frame_layout::topic ? 1 : 0; // index of the header
    if (count != first + 1 && count != first + 2) {
        return decode_status{decode_errc::bad_frame_count,
                             layout == frame_layout::topic
                                 ? "expected [topic][header+body] or [topic][header][body]"
                                 : "expected [header+body] or [header][body]",
                             count,
                             {}};
    }
    auto& header_frame = frames[first];
    decode_status status;
    if (count == first + 1) {
        std::size_t header_size = 0;
        status =
            decode_header(header_frame.data(), header_frame.size(), out.header(), &header_size);
        if (status.ok()) {
            out.set_frame(std::move(header_frame), header_size); // body: the rest, uncopied
        }
    } else {
        status = decode_header(header_frame.data(), header_frame.size(), out.header());
        if (status.ok()) {
            out.set_frame(std::move(frames[first + 1]), 0);
        }
    }
    if (status.ok() && topic != nullptr && layout == frame_layout::topic) {
        topic->assign(static_cast<const char*>(frames[0].data()), frames[0].size());
    }
    return status;
}

} // namespace zmqkit
