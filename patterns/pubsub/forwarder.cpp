#include <zmqkit/patterns/pubsub.hpp>

#include <zmqkit/codec.hpp>
#include <zmqkit/error.hpp>

#include <algorithm>

namespace zmqkit::patterns {
namespace {

void apply(zmq::socket_t& s, const socket_options& o) {
    s.set(zmq::sockopt::linger, static_cast<int>(std::max<std::int64_t>(0, o.linger.count())));
    s.set(zmq::sockopt::sndhwm, o.send_hwm);
    s.set(zmq::sockopt::rcvhwm, o.recv_hwm);
}

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    });
    return s;
}

// How long one blocked send may hold the actor thread (policy block): short, so control
// commands and stop requests are served between attempts.
constexpr auto block_slice = std::chrono::milliseconds(20);

} // namespace

slow_subscriber_policy parse_slow_subscriber_policy(std::string_view text) {
    if (text == "drop") {
        return slow_subscriber_policy::drop;
    }
    if (text == "block") {
        return slow_subscriber_policy::block;
    }
    throw config_error("slow-subscriber policy '" + std::string(text) +
                       "' is not valid (drop | block)");
}

forwarder::forwarder(zmq::context_t& context, forwarder_options options)
    : actor(context, options.name), options_(std::move(options)) {
    if (options_.frontend.empty() || options_.backend.empty()) {
        throw config_error("forwarder '" + options_.name +
                           "': both a frontend and a backend endpoint are required");
    }
    for (const auto* spec :
         {&options_.frontend, &options_.backend, &options_.capture, &options_.control}) {
        if (!spec->empty()) {
            (void)parse_endpoints(*spec, endpoint_action::bind);
        }
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
    subs_in_ = &reg.get_counter("zmqkit_forwarder_subscription_messages_in_total",
                                "Subscription messages received from subscribers", labels);
    subs_in_bytes_ = &reg.get_counter("zmqkit_forwarder_subscription_bytes_in_total",
                                      "Bytes of subscription messages from subscribers", labels);
    subs_out_ = &reg.get_counter("zmqkit_forwarder_subscription_messages_out_total",
                                 "Subscription messages sent upstream to publishers", labels);
    subs_out_bytes_ = &reg.get_counter("zmqkit_forwarder_subscription_bytes_out_total",
                                       "Bytes of subscription messages sent upstream", labels);
    subscribes_ =
        &reg.get_counter("zmqkit_forwarder_subscribes_total", "Subscribe messages seen", labels);
    unsubscribes_ = &reg.get_counter("zmqkit_forwarder_unsubscribes_total",
                                     "Unsubscribe messages seen", labels);
    subscriptions_ = &reg.get_gauge("zmqkit_forwarder_subscriptions",
                                    "Subscriptions active on the backend", labels);
    slow_drops_ = &reg.get_counter(
        "zmqkit_forwarder_slow_subscriber_drops_total",
        "Publications at least one matching subscriber missed because its queue was full", labels);
    blocked_ = &reg.get_counter("zmqkit_forwarder_blocked_total",
                                "Times a publication waited for a full subscriber (block)", labels);
    capture_drops_ = &reg.get_counter(
        "zmqkit_device_capture_drops_total",
        "Messages not copied to the capture socket because it had no room or no peer", labels);
    snapshots_ = &reg.get_counter("zmqkit_forwarder_snapshots_total",
                                  "Last-value-cache snapshots sent", labels);
    cached_topics_ = &reg.get_gauge("zmqkit_forwarder_cached_topics",
                                    "Topics held by the last-value cache", labels);
    frames_.reserve(8);
}

forwarder::~forwarder() {
    stop();
}

void forwarder::setup() {
    frontend_.emplace(context(), zmq::socket_type::xsub);
    backend_.emplace(context(), zmq::socket_type::xpub);
    apply(*frontend_, options_.sockets);
    apply(*backend_, options_.sockets);
    // Every subscribe/unsubscribe is seen (counted, forwarded), not only a prefix's first/last.
    backend_->set(zmq::sockopt::xpub_verboser, 1);
    // With NODROP a send to a full subscriber fails instead of dropping silently: policy block
    // waits, policy drop counts it and resends lossy (send_publication).
    backend_->set(zmq::sockopt::xpub_nodrop, 1);
    auto fe = attach(*frontend_, options_.frontend, endpoint_action::bind);
    auto be = attach(*backend_, options_.backend, endpoint_action::bind);
    if (options_.last_value_cache) {
        const char everything = 1;
        frontend_->send(zmq::const_buffer(&everything, 1));
    }
    std::vector<std::string> cap;
    std::vector<std::string> ctl;
    if (!options_.capture.empty()) {
        capture_.emplace(context(), zmq::socket_type::push);
        apply(*capture_, options_.sockets);
        cap = attach(*capture_, options_.capture, endpoint_action::bind);
    }
    if (!options_.control.empty()) {
        control_.emplace(context(), zmq::socket_type::rep);
        control_->set(zmq::sockopt::linger, 500);
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
    watch(*backend_, [this] { handle_subscriptions(); });
    if (options_.policy == slow_subscriber_policy::block) {
        // A publication held back by a full subscriber is retried even when nothing else
        // wakes the loop.
        every(block_slice, [this] {
            if (pending_ > 0 && !paused_) {
                (void)forward(options_.batch);
            }
        });
    }
}

bool forwarder::send_publication(bool lossy) {
    if (lossy) {
        backend_->set(zmq::sockopt::xpub_nodrop, 0);
    }
    const bool block = !lossy && options_.policy == slow_subscriber_policy::block;
    if (block) {
        backend_->set(zmq::sockopt::sndtimeo, static_cast<int>(block_slice.count()));
    }
    const auto first_flags = (pending_ > 1 ? zmq::send_flags::sndmore : zmq::send_flags::none) |
                             (block ? zmq::send_flags::none : zmq::send_flags::dontwait);
    zmq::message_t first_copy;
    if (capture_) {
        first_copy.copy(frames_[0]);
    }
    const bool sent = backend_->send(frames_[0], first_flags).has_value();
    if (lossy) {
        backend_->set(zmq::sockopt::xpub_nodrop, 1);
    }
    if (!sent) {
        return false;
    }
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
    return true;
}

std::size_t forwarder::forward(std::size_t limit) {
    std::size_t forwarded = 0;
    while (forwarded < limit) {
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
                break;
            }
            pending_bytes_ = bytes;
            messages_in_->add();
            bytes_in_->add(bytes);
            if (options_.last_value_cache) {
                cache(frames_, pending_);
            }
        }
        if (!send_publication(false)) {
            if (options_.policy == slow_subscriber_policy::drop) {
                // A matching subscriber is full: it misses this one; the others get it.
                slow_drops_->add();
                (void)send_publication(true);
            } else {
                blocked_->add();
                set_watch_enabled(*frontend_, false); // retried by the timer
                break;
            }
        }
        messages_out_->add();
        bytes_out_->add(pending_bytes_);
        pending_ = 0;
        ++forwarded;
        if (!paused_) {
            set_watch_enabled(*frontend_, true);
        }
    }
    return forwarded;
}

void forwarder::handle_subscriptions() {
    zmq::message_t frame;
    for (int n = 0; n < 1024; ++n) {
        if (!backend_->recv(frame, zmq::recv_flags::dontwait)) {
            return;
        }
        subs_in_->add();
        subs_in_bytes_->add(frame.size());
        const auto* bytes = static_cast<const unsigned char*>(frame.data());
        const std::string_view body(reinterpret_cast<const char*>(bytes) + 1,
                                    frame.size() > 0 ? frame.size() - 1 : 0);
        const bool subscribe = frame.size() > 0 && bytes[0] == 1;
        const bool unsubscribe = frame.size() > 0 && bytes[0] == 0;
        if (subscribe) {
            subscribes_->add();
            subscriptions_->add(1);
        } else if (unsubscribe) {
            unsubscribes_->add();
            subscriptions_->add(-1);
        }
        if (body.starts_with(snapshot_topic_prefix)) {
            // A snapshot request is for this device, never for the publishers.
            if (subscribe) {
                send_snapshot(body);
            }
            continue;
        }
        if (options_.last_value_cache && (subscribe || unsubscribe)) {
            continue; // upstream we subscribe to everything already
        }
        const auto size = frame.size();
        if (frontend_->send(frame, zmq::send_flags::dontwait)) {
            subs_out_->add();
            subs_out_bytes_->add(size);
        }
    }
}

void forwarder::cache(const std::vector<zmq::message_t>& frames, std::size_t count) {
    if (count != 2 && count != 3) {
        return; // not an envelope publication
    }
    std::size_t header_size = 0;
    const auto& head = frames[1];
    const bool inline_body = count == 2;
    if (!decode_header(head.data(), head.size(), scratch_header_,
                       inline_body ? &header_size : nullptr)
             .ok()) {
        return;
    }
    if (!inline_body) {
        header_size = head.size();
    }
    const auto topic = frames[0].to_string_view();
    auto it = values_.find(topic);
    if (it == values_.end()) {
        it = values_.emplace(std::string(topic), cached_value{}).first;
        cached_topics_->set(static_cast<std::int64_t>(values_.size()));
    }
    const auto* data = static_cast<const char*>(head.data());
    it->second.header.assign(data, header_size);
    if (inline_body) {
        it->second.body.assign(data + header_size, head.size() - header_size);
    } else {
        it->second.body.assign(static_cast<const char*>(frames[2].data()), frames[2].size());
    }
    const auto* pub = scratch_header_.find_user_header(publisher_id_header);
    if (pub != nullptr && scratch_header_.sequence != 0) {
        auto& seq = stream_sequences_[{*pub, std::string(topic)}];
        seq = std::max(seq, scratch_header_.sequence);
    }
}

void forwarder::send_snapshot(std::string_view request_topic) {
    // request_topic = snapshot prefix + 16-byte nonce + the subscriber's topic prefix.
    const std::size_t nonce_end = snapshot_topic_prefix.size() + 16;
    const auto prefix =
        request_topic.size() >= nonce_end ? request_topic.substr(nonce_end) : std::string_view();
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    pk.pack_array(2);
    std::size_t streams = 0;
    for (const auto& [k, seq] : stream_sequences_) {
        streams += k.second.starts_with(prefix) ? 1U : 0U;
    }
    pk.pack_array(static_cast<std::uint32_t>(streams));
    for (const auto& [k, seq] : stream_sequences_) {
        if (k.second.starts_with(prefix)) {
            pk.pack_array(3);
            pk.pack_bin(static_cast<std::uint32_t>(k.first.size()));
            pk.pack_bin_body(k.first.data(), static_cast<std::uint32_t>(k.first.size()));
            pk.pack(k.second);
            pk.pack(seq);
        }
    }
    auto first = values_.lower_bound(prefix);
    std::size_t values = 0;
    for (auto it = first; it != values_.end() && it->first.starts_with(prefix); ++it) {
        ++values;
    }
    pk.pack_array(static_cast<std::uint32_t>(values));
    for (auto it = first; it != values_.end() && it->first.starts_with(prefix); ++it) {
        pk.pack_array(3);
        pk.pack(it->first);
        pk.pack_bin(static_cast<std::uint32_t>(it->second.header.size()));
        pk.pack_bin_body(it->second.header.data(),
                         static_cast<std::uint32_t>(it->second.header.size()));
        pk.pack_bin(static_cast<std::uint32_t>(it->second.body.size()));
        pk.pack_bin_body(it->second.body.data(),
                         static_cast<std::uint32_t>(it->second.body.size()));
    }
    header h = header::fresh();
    h.type = snapshot_type;
    h.content_type = content_type_msgpack;
    const auto encoded = encode_header(h);
    // Lossy: a snapshot must never wait behind (or for) another subscriber.
    backend_->set(zmq::sockopt::xpub_nodrop, 0);
    (void)backend_->send(zmq::buffer(request_topic), zmq::send_flags::sndmore);
    (void)backend_->send(zmq::buffer(encoded), zmq::send_flags::sndmore);
    (void)backend_->send(zmq::const_buffer(buffer.data(), buffer.size()), zmq::send_flags::none);
    backend_->set(zmq::sockopt::xpub_nodrop, 1);
    snapshots_->add();
}

std::vector<std::string> forwarder::execute(const std::string& command) {
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

void forwarder::handle_control() {
    zmq::message_t frame;
    std::string command;
    bool first = true;
    do {
        if (!control_->recv(frame, first ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) {
            return;
        }
        if (first) {
            command = frame.to_string();
        }
        first = false;
    } while (frame.more());
    const auto reply = execute(command);
    for (std::size_t i = 0; i < reply.size(); ++i) {
        (void)control_->send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore
                                                                         : zmq::send_flags::none);
    }
    if (terminated_) {
        on_stop(std::chrono::steady_clock::now() + options_.drain_timeout);
        request_exit();
    }
}

std::vector<std::string> forwarder::on_command(const std::vector<std::string>& frames) {
    auto reply = execute(frames.front());
    if (terminated_) {
        on_stop(std::chrono::steady_clock::now() + options_.drain_timeout);
        request_exit();
    }
    return reply;
}

void forwarder::set_paused(bool paused) {
    // Pausing stops publications only: subscriptions keep flowing upstream.
    paused_ = paused;
    set_watch_enabled(*frontend_, !paused && pending_ == 0);
}

bool forwarder::pause() {
    auto reply = command({control::pause});
    return reply && !reply->empty() && reply->front() == "OK";
}

bool forwarder::resume() {
    auto reply = command({control::resume});
    return reply && !reply->empty() && reply->front() == "OK";
}

void forwarder::on_stop(std::chrono::steady_clock::time_point deadline) {
    // Forward what has already arrived; stop at the deadline or when the frontend is idle.
    while (std::chrono::steady_clock::now() < deadline) {
        if (forward(options_.batch) > 0) {
            continue;
        }
        if (pending_ > 0) {
            continue; // blocked: forward() waited one slice; try until the deadline
        }
        zmq::pollitem_t item{frontend_->handle(), 0, ZMQ_POLLIN, 0};
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (zmq::poll(&item, 1, std::clamp(left, 0ms, 50ms)) == 0) {
            break;
        }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    backend_->set(zmq::sockopt::linger, static_cast<int>(std::max<std::int64_t>(0, left.count())));
}

void forwarder::teardown() noexcept {
    control_.reset();
    capture_.reset();
    frontend_.reset();
    backend_.reset();
}

proxy_statistics forwarder::statistics() const noexcept {
    proxy_statistics s;
    s.frontend_messages_in = messages_in_->value();
    s.frontend_bytes_in = bytes_in_->value();
    s.frontend_messages_out = subs_out_->value();
    s.frontend_bytes_out = subs_out_bytes_->value();
    s.backend_messages_in = subs_in_->value();
    s.backend_bytes_in = subs_in_bytes_->value();
    s.backend_messages_out = messages_out_->value();
    s.backend_bytes_out = bytes_out_->value();
    return s;
}

std::string forwarder::status_json() const {
    const char* policy = options_.policy == slow_subscriber_policy::block ? "block" : "drop";
    return std::string("{\"state\":\"") + (paused_ ? "paused" : "running") + "\",\"policy\":\"" +
           policy + "\",\"statistics\":" + statistics().to_json() +
           ",\"subscriptions\":" + std::to_string(subscriptions_->value()) +
           ",\"subscribes\":" + std::to_string(subscribes_->value()) +
           ",\"unsubscribes\":" + std::to_string(unsubscribes_->value()) +
           ",\"slow_subscriber_drops\":" + std::to_string(slow_drops_->value()) +
           ",\"blocked\":" + std::to_string(blocked_->value()) +
           ",\"capture_drops\":" + std::to_string(capture_drops_->value()) +
           ",\"cached_topics\":" + std::to_string(cached_topics_->value()) +
           ",\"snapshots\":" + std::to_string(snapshots_->value()) + "}";
}

std::vector<std::string> forwarder::frontend_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return frontend_endpoints_;
}
std::vector<std::string> forwarder::backend_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return backend_endpoints_;
}
std::vector<std::string> forwarder::control_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return control_endpoints_;
}
std::vector<std::string> forwarder::capture_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return capture_endpoints_;
}

} // namespace zmqkit::patterns
