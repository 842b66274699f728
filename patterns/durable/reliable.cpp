// The reliable sender and receiver: the two ends of a durable proxy (docs/wire-protocol.md §7).
#include <zmqkit/codec.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/patterns/durable.hpp>

#include "../common/device_support.hpp"

#include <algorithm>
#include <cstring>

namespace zmqkit::patterns {
namespace {

using clock = std::chrono::steady_clock;
namespace proto = durable_protocol;

// Linger and HWMs, and a bounded send timeout (acks and credit may wait for room briefly).
void apply(zmq::socket_t& s, const socket_options& o) {
    detail::apply_socket_options(s, o);
    s.set(zmq::sockopt::sndtimeo,
          static_cast<int>(std::max<std::int64_t>(0, o.send_timeout.count())));
}

std::chrono::milliseconds until(clock::time_point t, clock::time_point now) {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::ceil<std::chrono::milliseconds>(t - now));
}

std::size_t receive(zmq::socket_t& s, std::vector<zmq::message_t>& frames) {
    return detail::receive_multipart(s, frames, 16);
}

using detail::view;

void put_u64_be(char* out, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        out[i] = static_cast<char>(v & 0xff);
        v >>= 8;
    }
}

} // namespace

// ---- reliable_sender ----------------------------------------------------------------------

reliable_sender::reliable_sender(zmq::context_t& context, reliable_sender_options options)
    : options_(std::move(options)), socket_(context, zmq::socket_type::dealer) {
    if (options_.endpoint.empty()) {
        throw config_error("reliable sender: an endpoint (the durable proxy's frontend) is "
                           "required");
    }
    if (options_.window == 0 || options_.retry_interval.count() <= 0) {
        throw config_error("reliable sender: window and retry interval must be positive");
    }
    apply(socket_, options_.socket);
    handshakes_ = detail::apply_side_security(context, socket_, options_.socket.security,
                                              options_.socket.name, options_.socket.registry);
    if (options_.configure) {
        options_.configure(socket_);
    }
    endpoints_ = attach(socket_, options_.endpoint, endpoint_action::connect);
    auto& reg = options_.socket.registry != nullptr ? *options_.socket.registry
                                                    : metrics_registry::global();
    const metric_labels labels{{"socket", options_.socket.name}};
    confirmed_counter_ = &reg.get_counter("zmqkit_reliable_confirmed_total",
                                          "Messages the durable proxy confirmed", labels);
    resent_counter_ = &reg.get_counter("zmqkit_reliable_resent_total",
                                       "Messages sent again for want of a confirm", labels);
    frames_.reserve(4);
}

reliable_sender::~reliable_sender() = default;

// Never blocks: when the socket has no room (the proxy holds producers back), the message
// waits in unsent_ and leaves as soon as there is room (flush_unsent).
bool reliable_sender::transmit(const std::string& frame) {
    try {
        return socket_.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
    } catch (const zmq::error_t&) {
        return false;
    }
}

void reliable_sender::flush_unsent() {
    const auto now = clock::now();
    while (!unsent_.empty()) {
        const auto it = pending_.find(unsent_.front());
        if (it == pending_.end()) {
            unsent_.pop_front(); // confirmed meanwhile (an earlier copy got through)
            continue;
        }
        if (!transmit(it->second.frame)) {
            return;
        }
        it->second.sent_at = now;
        retry_order_.emplace_back(it->first, now);
        unsent_.pop_front();
    }
}

bool reliable_sender::send(message& m, std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    (void)handle_replies(std::chrono::milliseconds(0));
    while (pending_.size() >= options_.window) {
        const auto now = clock::now();
        if (now >= deadline) {
            return false;
        }
        (void)handle_replies(std::min(until(deadline, now), options_.retry_interval));
        resend_overdue();
    }
    auto& h = m.header();
    h.stamp();
    const auto body = m.body_view();
    std::string frame(encoded_size(h) + body.size(), '\0');
    const std::size_t n = encode_header(h, reinterpret_cast<std::byte*>(frame.data()));
    if (!body.empty()) {
        std::memcpy(frame.data() + n, body.data(), body.size());
    }
    // Kept until confirmed, in the order sent.
    auto [it, fresh] = pending_.try_emplace(h.id);
    it->second.frame = std::move(frame);
    it->second.sent_at = {};
    unsent_.push_back(h.id);
    (void)fresh;
    flush_unsent();
    resend_overdue();
    return true;
}

std::size_t reliable_sender::handle_replies(std::chrono::milliseconds timeout) {
    std::size_t settled = 0;
    flush_unsent();
    const short events = static_cast<short>(ZMQ_POLLIN | (unsent_.empty() ? 0 : ZMQ_POLLOUT));
    zmq::pollitem_t item{socket_.handle(), 0, events, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) {
        return 0;
    }
    flush_unsent();
    for (;;) {
        const std::size_t n = receive(socket_, frames_);
        if (n == 0) {
            break;
        }
        std::vector<std::string_view> views;
        views.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            views.push_back(view(frames_[i]));
        }
        const auto reply = proto::parse_producer_reply(views);
        if (!reply) {
            continue; // not for us (a newer proxy's reply): ignored
        }
        for (std::size_t i = 0; i < reply->id_count(); ++i) {
            const message_id id = reply->id(i);
            if (pending_.erase(id) == 0) {
                continue; // confirmed before (a resend's second confirm)
            }
            ++settled;
            if (reply->confirmed) {
                ++confirmed_;
                confirmed_counter_->add();
                if (on_confirm_) {
                    on_confirm_(id);
                }
            } else {
                ++rejected_;
                if (on_reject_) {
                    on_reject_(id, reply->reason);
                }
            }
        }
    }
    return settled;
}

void reliable_sender::resend_overdue() {
    const auto now = clock::now();
    while (!retry_order_.empty() && now - retry_order_.front().second >= options_.retry_interval) {
        const auto [id, at] = retry_order_.front();
        retry_order_.pop_front();
        const auto it = pending_.find(id);
        if (it == pending_.end() || it->second.sent_at != at) {
            continue; // confirmed, or resent since
        }
        ++resent_;
        resent_counter_->add();
        if (!unsent_.empty() || !transmit(it->second.frame)) {
            it->second.sent_at = {}; // leaves with the others when there is room
            unsent_.push_back(id);
            continue;
        }
        it->second.sent_at = now;
        retry_order_.emplace_back(id, now);
    }
    // Entries of confirmed messages leave the queue as they reach its head; keep it bounded
    // when confirms outpace retries.
    if (retry_order_.size() > 4 * options_.window + 64) {
        std::erase_if(retry_order_, [this](const auto& e) {
            const auto it = pending_.find(e.first);
            return it == pending_.end() || it->second.sent_at != e.second;
        });
    }
}

std::vector<message_id> reliable_sender::unconfirmed_ids() const {
    std::vector<message_id> ids;
    ids.reserve(pending_.size());
    for (const auto& [id, e] : pending_) {
        ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end()); // time-ordered ids: the order they were made
    return ids;
}

std::size_t reliable_sender::poll(std::chrono::milliseconds timeout) {
    const std::size_t n = handle_replies(timeout);
    resend_overdue();
    return n;
}

bool reliable_sender::flush(std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    while (!pending_.empty()) {
        const auto now = clock::now();
        if (now >= deadline) {
            break;
        }
        (void)handle_replies(std::min(until(deadline, now), std::chrono::milliseconds(100)));
        resend_overdue();
    }
    return pending_.empty();
}

// ---- reliable_receiver --------------------------------------------------------------------

reliable_receiver::reliable_receiver(zmq::context_t& context, reliable_receiver_options options)
    : options_(std::move(options)), socket_(context, zmq::socket_type::dealer) {
    if (options_.endpoint.empty()) {
        throw config_error("reliable receiver: an endpoint (the durable proxy's backend) is "
                           "required");
    }
    if (options_.credit == 0 || options_.heartbeat.count() <= 0) {
        throw config_error("reliable receiver: credit and heartbeat must be positive");
    }
    options_.ack_batch = std::max<std::size_t>(1, options_.ack_batch);
    apply(socket_, options_.socket);
    handshakes_ = detail::apply_side_security(context, socket_, options_.socket.security,
                                              options_.socket.name, options_.socket.registry);
    if (options_.configure) {
        options_.configure(socket_);
    }
    endpoints_ = attach(socket_, options_.endpoint, endpoint_action::connect);
    frames_.reserve(6);
    send_credit();
}

reliable_receiver::~reliable_receiver() {
    try {
        flush_acks();
        (void)socket_.send(zmq::buffer(proto::bye), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
}

void reliable_receiver::send_credit() {
    const std::string n = std::to_string(options_.credit);
    try {
        if (socket_.send(zmq::buffer(proto::credit),
                         zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
            (void)socket_.send(zmq::buffer(n), zmq::send_flags::none);
        }
    } catch (const zmq::error_t&) {
    }
    next_heartbeat_ = clock::now() + options_.heartbeat;
}

void reliable_receiver::remember(const message_id& id) {
    if (options_.dedup_window == 0) {
        return;
    }
    if (processed_.insert(id).second) {
        processed_order_.push_back(id);
        while (processed_order_.size() > options_.dedup_window) {
            processed_.erase(processed_order_.front());
            processed_order_.pop_front();
        }
    }
}

void reliable_receiver::flush_acks() {
    if (pending_ack_count_ == 0) {
        return;
    }
    try {
        if (socket_.send(zmq::buffer(proto::ack), zmq::send_flags::sndmore)) {
            (void)socket_.send(zmq::buffer(pending_acks_), zmq::send_flags::none);
        }
    } catch (const zmq::error_t&) {
        // Not sent: the proxy redelivers after its ack timeout and the ids are remembered.
    }
    pending_acks_.clear();
    pending_ack_count_ = 0;
}

void reliable_receiver::ack(const delivery& d) {
    char tag[8];
    put_u64_be(tag, d.tag);
    pending_acks_.append(tag, 8);
    ++pending_ack_count_;
    remember(d.message.id());
    if (pending_ack_count_ >= options_.ack_batch) {
        flush_acks();
    }
}

void reliable_receiver::nack(const delivery& d, bool requeue, std::string_view reason) {
    flush_acks();
    char tag[8];
    put_u64_be(tag, d.tag);
    try {
        if (socket_.send(zmq::buffer(proto::nack), zmq::send_flags::sndmore)) {
            (void)socket_.send(zmq::buffer(tag, 8), zmq::send_flags::sndmore);
            (void)socket_.send(zmq::buffer(requeue ? proto::nack_requeue : proto::nack_dead_letter),
                               zmq::send_flags::sndmore);
            (void)socket_.send(zmq::buffer(reason), zmq::send_flags::none);
        }
    } catch (const zmq::error_t&) {
    }
}

std::optional<delivery> reliable_receiver::recv(std::chrono::milliseconds timeout) {
    flush_acks();
    const auto deadline = clock::now() + timeout;
    std::vector<std::string_view> views;
    views.reserve(6);
    for (;;) {
        auto now = clock::now();
        if (now >= next_heartbeat_) {
            send_credit();
        }
        std::size_t n = receive(socket_, frames_);
        if (n == 0) {
            if (now >= deadline) {
                return std::nullopt;
            }
            flush_acks(); // acks of duplicates: the proxy counts them against our credit
            zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
            (void)zmq::poll(&item, 1, std::min(until(deadline, now), until(next_heartbeat_, now)));
            continue;
        }
        views.clear();
        for (std::size_t i = 0; i < n; ++i) {
            views.push_back(view(frames_[i]));
        }
        const auto parsed = proto::parse_delivery_tag(views);
        if (!parsed) {
            continue; // not a delivery: nothing else is sent to consumers
        }
        const std::uint64_t tag = *parsed;
        std::vector<zmq::message_t> parts;
        parts.reserve(n - 2);
        for (std::size_t i = 2; i < n; ++i) {
            parts.push_back(std::move(frames_[i]));
        }
        delivery d;
        d.tag = tag;
        const decode_status st =
            decode_frames(parts, parts.size(), frame_layout::plain, d.message, nullptr);
        if (!st) {
            // Cannot be processed here, ever: dead-letter it with the reason.
            delivery bad;
            bad.tag = tag;
            nack(bad, false, "the consumer cannot decode it: " + st.message());
            continue;
        }
        d.attempt = d.message.header().attempt;
        if (processed_.count(d.message.id()) != 0) {
            ++duplicates_;
            char t[8];
            put_u64_be(t, tag);
            pending_acks_.append(t, 8);
            ++pending_ack_count_;
            if (pending_ack_count_ >= options_.ack_batch) {
                flush_acks();
            }
            continue;
        }
        ++received_;
        return d;
    }
}

bool reliable_receiver::process(const std::function<void(const zmqkit::message&)>& handler,
                                std::chrono::milliseconds timeout) {
    auto d = recv(timeout);
    if (!d) {
        return false;
    }
    try {
        handler(d->message);
    } catch (const std::exception& e) {
        nack(*d, true, e.what());
        throw;
    } catch (...) {
        nack(*d, true, "the handler threw");
        throw;
    }
    ack(*d);
    return true;
}

} // namespace zmqkit::patterns
