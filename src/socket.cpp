#include <zmqkit/socket.hpp>

#include <algorithm>

namespace zmqkit {
namespace {

// Frames kept per received message; further frames of an oversized message are discarded.
constexpr std::size_t max_kept_frames = 8;

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
    case zmq::socket_type::xsub: return frame_layout::topic;
    default: return frame_layout::plain;
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
}

std::vector<std::string> socket::attach(std::string_view spec, endpoint_action default_action) {
    auto effective = zmqkit::attach(socket_, spec, default_action);
    endpoints_.insert(endpoints_.end(), effective.begin(), effective.end());
    return effective;
}

bool socket::send_frames(const std::string_view* topic, message& m) {
    auto& h = m.header();
    h.stamp();
    const std::size_t header_size = encoded_size(h);
    zmq::message_t header_frame(header_size);
    encode_header(h, static_cast<std::byte*>(header_frame.data()));
    const std::size_t body_size = m.body().size();
    // The first frame decides: once it is queued, the remaining frames of the message are too.
    if (topic != nullptr) {
        zmq::message_t topic_frame(topic->data(), topic->size());
        if (!socket_.send(topic_frame, zmq::send_flags::sndmore)) {
            counters_.send_timeouts->add();
            return false;
        }
        (void)socket_.send(header_frame, zmq::send_flags::sndmore);
    } else if (!socket_.send(header_frame, zmq::send_flags::sndmore)) {
        counters_.send_timeouts->add();
        return false;
    }
    (void)socket_.send(m.body(), zmq::send_flags::none);
    counters_.messages_sent->add();
    counters_.bytes_sent->add(header_size + body_size + (topic != nullptr ? topic->size() : 0));
    return true;
}

bool socket::send(message& m) { return send_frames(nullptr, m); }

bool socket::send(std::string_view topic, message& m) { return send_frames(&topic, m); }

std::optional<message> socket::recv(std::chrono::milliseconds timeout) {
    return receive(timeout, nullptr);
}

std::optional<message> socket::recv(std::chrono::milliseconds timeout, std::string& topic) {
    return receive(timeout, &topic);
}

std::optional<message> socket::receive(std::chrono::milliseconds timeout, std::string* topic) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        // Try first without a poll: under load there is almost always a message waiting.
        std::size_t count = 0;
        std::size_t bytes = 0;
        zmq::message_t discard;
        bool more = true;
        while (more) {
            zmq::message_t& frame = count < max_kept_frames
                                        ? (count < frames_.size() ? frames_[count]
                                                                  : frames_.emplace_back())
                                        : discard;
            const auto got =
                socket_.recv(frame, count == 0 ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
            if (!got) {
                break; // EAGAIN on the first frame: nothing waiting
            }
            bytes += *got;
            more = frame.more();
            ++count;
        }
        if (count > 0) {
            counters_.bytes_received->add(bytes);
            message out;
            auto status = decode_frames(frames_, count, layout_, out, topic);
            if (status.ok()) {
                counters_.messages_received->add();
                return out;
            }
            counters_.decode_errors->add();
            last_error_ = status;
            if (on_decode_error_) {
                on_decode_error_(status);
            }
            continue;
        }
        if (timeout.count() < 0) {
            zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
            (void)zmq::poll(&item, 1, std::chrono::milliseconds(-1));
            continue;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            return std::nullopt;
        }
        zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
        if (zmq::poll(&item, 1, wait) == 0 && std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
    }
}

decode_status decode_frames(std::vector<zmq::message_t>& frames, std::size_t count,
                            frame_layout layout, message& out, std::string* topic) {
    const std::size_t expected = layout == frame_layout::topic ? 3 : 2;
    if (count != expected) {
        return decode_status{decode_errc::bad_frame_count,
                             layout == frame_layout::topic ? "expected 3: topic, header, body"
                                                           : "expected 2: header, body",
                             count};
    }
    const std::size_t first = expected - 2;
    const auto& header_frame = frames[first];
    auto status = decode_header(header_frame.data(), header_frame.size(), out.header());
    if (!status.ok()) {
        return status;
    }
    if (topic != nullptr && layout == frame_layout::topic) {
        topic->assign(static_cast<const char*>(frames[0].data()), frames[0].size());
    }
    out.body() = std::move(frames[first + 1]);
    return status;
}

} // namespace zmqkit
