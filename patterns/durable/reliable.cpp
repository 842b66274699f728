// The reliable sender and receiver: the two ends of a durable proxy (docs/wire-protocol.md §7).
#include <zmqkit/codec.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/spool.hpp>

#include "../common/device_support.hpp"
#include "durable_protocol.hpp"

#include <algorithm>
#include <cstring>
#include <new>

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
    if (options_.batch_messages == 0 || options_.batch_bytes == 0 || options_.linger.count() < 0) {
        throw config_error("reliable sender: batch_messages and batch_bytes must be at least 1 "
                           "(1 message: no batching) and linger not negative");
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
    batches_counter_ = &reg.get_counter("zmqkit_reliable_batches_total",
                                        "ZeroMQ messages that carried a batch of messages", labels);
    frames_.reserve(4);
    views_.reserve(4);
    std::size_t ring = 16;
    while (ring < options_.window) {
        ring *= 2;
    }
    ring_.resize(ring);
    // Twice the ring: never full (live_ < window <= ring at every insert, so nothing is ever
    // evicted) and its holes (confirmed messages) are closed rarely.
    index_ = message_id_window(2 * ring);
    waiting_.reserve(std::min<std::size_t>(ring, 4096));
}

reliable_sender::~reliable_sender() = default;

reliable_sender::reliable_sender(reliable_sender&& other) noexcept = default;

reliable_sender& reliable_sender::operator=(reliable_sender&& other) noexcept {
    // Member-wise assignment would close the old socket before its handshake monitor stops:
    // destroy this one in order (monitor first), then take other's state.
    if (this != &other) {
        this->~reliable_sender();
        new (this) reliable_sender(std::move(other));
    }
    return *this;
}

// ---- the ring of kept messages and its id index ----

reliable_sender::slot* reliable_sender::live_slot(std::uint64_t seq) noexcept {
    auto& s = ring_[seq & (ring_.size() - 1)];
    return s.live && s.seq == seq ? &s : nullptr;
}

// The oldest kept message is still unconfirmed while newer ones were confirmed (a resend
// after a proxy restart): the ring holds more sequences than it has slots.
void reliable_sender::grow_ring() {
    std::vector<slot> bigger(ring_.size() * 2);
    const std::size_t mask = bigger.size() - 1;
    for (std::uint64_t seq = head_; seq < tail_; ++seq) {
        auto& s = ring_[seq & (ring_.size() - 1)];
        bigger[seq & mask] = std::move(s);
    }
    ring_ = std::move(bigger);
}

std::size_t reliable_sender::waiting() const noexcept {
    return waiting_count_;
}

// ---- sending ----

// Hands waiting messages to the socket, up to batch_messages / batch_bytes per ZeroMQ message
// (one message alone goes as a plain message). Unless `force`, a partly filled batch stays
// while its oldest message is younger than linger. Never blocks: when the socket has no room
// (the proxy holds producers back) the messages keep waiting and leave when there is room.
// Returns false if it stopped for want of room.
bool reliable_sender::transmit_waiting(bool force, time_point at) {
    const std::size_t max_messages = options_.batch_messages;
    while (waiting_head_ < waiting_.size()) {
        std::size_t k = waiting_head_;
        std::size_t count = 0;
        std::size_t bytes = 0;
        slot* first = nullptr;
        bool full = false;
        for (; k < waiting_.size(); ++k) {
            slot* s = live_slot(waiting_[k]);
            if (s == nullptr || !s->waiting) {
                continue; // confirmed meanwhile (an earlier copy got through), or sent
            }
            if (count > 0 &&
                (count == max_messages ||
                 bytes + proto::batch_length_size + s->frame.size() > options_.batch_bytes)) {
                full = true;
                break;
            }
            if (first == nullptr) {
                first = s;
            }
            ++count;
            bytes += proto::batch_length_size + s->frame.size();
        }
        full = full || count == max_messages;
        if (count == 0) {
            waiting_head_ = k;
            break;
        }
        if (!force && !full && options_.linger.count() > 0 &&
            at - first->queued_at < options_.linger) {
            break; // a partly filled batch waits for more
        }
        bool sent = false;
        try {
            if (count == 1) {
                zmq::message_t one(first->frame.data(), first->frame.size());
                sent = socket_.send(one, zmq::send_flags::dontwait).has_value();
            } else {
                zmq::message_t payload(bytes);
                auto* out = static_cast<char*>(payload.data());
                for (std::size_t i = waiting_head_; i < k; ++i) {
                    const slot* s = live_slot(waiting_[i]);
                    if (s == nullptr || !s->waiting) {
                        continue;
                    }
                    const auto n = static_cast<std::uint32_t>(s->frame.size());
                    out[0] = static_cast<char>(n >> 24);
                    out[1] = static_cast<char>(n >> 16);
                    out[2] = static_cast<char>(n >> 8);
                    out[3] = static_cast<char>(n);
                    std::memcpy(out + proto::batch_length_size, s->frame.data(), n);
                    out += proto::batch_length_size + n;
                }
                if (socket_.send(zmq::buffer(proto::batch),
                                 zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                    // The later parts of a started multipart message are always taken.
                    (void)socket_.send(payload, zmq::send_flags::none);
                    sent = true;
                }
            }
        } catch (const zmq::error_t&) {
            sent = false;
        }
        if (!sent) {
            blocked_ = true;
            return false;
        }
        blocked_ = false;
        if (count > 1) {
            ++batches_;
            batches_counter_->add();
        }
        for (std::size_t i = waiting_head_; i < k; ++i) {
            if (slot* s = live_slot(waiting_[i]); s != nullptr && s->waiting) {
                s->waiting = false;
                --waiting_count_;
                s->sent_at = at;
            }
        }
        waiting_head_ = k;
        next_retry_check_ = std::min(next_retry_check_, at + options_.retry_interval);
    }
    if (waiting_head_ == waiting_.size()) {
        waiting_.clear();
        waiting_head_ = 0;
    } else if (waiting_head_ > 4096 && waiting_head_ * 2 > waiting_.size()) {
        waiting_.erase(waiting_.begin(),
                       waiting_.begin() + static_cast<std::ptrdiff_t>(waiting_head_));
        waiting_head_ = 0;
    }
    return true;
}

bool reliable_sender::send(message& m, std::chrono::milliseconds timeout) {
    if (live_ >= options_.window) {
        // About to wait for confirms: what waits in the open batch leaves first.
        (void)transmit_waiting(true, now());
        const auto deadline = clock::now() + timeout;
        (void)handle_replies(std::chrono::milliseconds(0));
        while (live_ >= options_.window) {
            const auto real = clock::now();
            if (real >= deadline) {
                return false;
            }
            (void)handle_replies(std::min(until(deadline, real), options_.retry_interval));
            resend_overdue(now());
        }
    }
    const auto at = now();
    auto& h = m.header();
    h.stamp();
    const auto body = m.body_view();
    slot* s = nullptr;
    if (const std::uint64_t* seq = index_.find(h.id); seq != nullptr) {
        s = live_slot(*seq); // the same message again: its kept copy is replaced
        if (s == nullptr) {
            index_.erase(h.id);
        }
    }
    if (s == nullptr) {
        if (tail_ - head_ == ring_.size()) {
            grow_ring();
        }
        s = &ring_[tail_ & (ring_.size() - 1)];
        s->id = h.id;
        s->seq = tail_++;
        s->live = true;
        s->waiting = true;
        ++waiting_count_;
        ++live_;
        (void)index_.insert(h.id, s->seq);
        waiting_.push_back(s->seq);
    } else if (!s->waiting) {
        s->waiting = true;
        ++waiting_count_;
        waiting_.push_back(s->seq);
    }
    s->queued_at = at;
    const std::size_t header_size = encoded_size(h);
    s->frame.resize(header_size + body.size());
    (void)encode_header(h, reinterpret_cast<std::byte*>(s->frame.data()));
    if (!body.empty()) {
        std::memcpy(s->frame.data() + header_size, body.data(), body.size());
    }
    (void)transmit_waiting(false, at);
    resend_overdue(at);
    return true;
}

void reliable_sender::settle(const message_id& id, bool confirmed, std::string_view reason) {
    if (id.is_nil()) {
        return; // a REJECT of something malformed: no message of ours has the nil id
    }
    std::uint64_t seq = 0;
    if (!index_.erase(id, &seq)) {
        return; // settled before (a resend's second confirm), or not ours
    }
    slot* s = live_slot(seq);
    if (s == nullptr) {
        return;
    }
    s->live = false;
    if (s->waiting) {
        s->waiting = false;
        --waiting_count_;
    }
    --live_;
    while (head_ < tail_ && live_slot(head_) == nullptr) {
        ++head_;
    }
    if (confirmed) {
        ++confirmed_;
        confirmed_counter_->add();
        if (on_confirm_) {
            on_confirm_(id);
        }
    } else {
        ++rejected_;
        if (on_reject_) {
            on_reject_(id, reason);
        }
    }
}

std::size_t reliable_sender::handle_replies(std::chrono::milliseconds timeout) {
    std::size_t settled = 0;
    if (blocked_) {
        (void)transmit_waiting(true, now());
    }
    const short events = static_cast<short>(ZMQ_POLLIN | (blocked_ ? ZMQ_POLLOUT : 0));
    zmq::pollitem_t item{socket_.handle(), 0, events, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) {
        return 0;
    }
    if (blocked_) {
        (void)transmit_waiting(true, now());
    }
    for (;;) {
        const std::size_t n = receive(socket_, frames_);
        if (n == 0) {
            break;
        }
        views_.clear();
        for (std::size_t i = 0; i < n; ++i) {
            views_.push_back(view(frames_[i]));
        }
        const auto reply = proto::parse_producer_reply(views_);
        if (!reply) {
            continue; // not for us (a newer proxy's reply): ignored
        }
        for (std::size_t i = 0; i < reply->id_count(); ++i) {
            const std::uint64_t before = confirmed_ + rejected_;
            settle(reply->id(i), reply->confirmed, reply->reason);
            settled += static_cast<std::size_t>(confirmed_ + rejected_ - before);
        }
    }
    return settled;
}

// Overdue: sent, and not confirmed within retry_interval. The ring is scanned only when the
// earliest possible deadline has come (rarely, in a healthy run: confirms come first).
void reliable_sender::resend_overdue(time_point at) {
    if (live_ == 0 || at < next_retry_check_) {
        return;
    }
    // Confirms that arrived meanwhile first: they are not resent.
    (void)handle_replies(std::chrono::milliseconds(0));
    auto earliest = time_point::max();
    bool any = false;
    for (std::uint64_t seq = head_; seq < tail_; ++seq) {
        slot* s = live_slot(seq);
        if (s == nullptr || s->waiting) {
            continue; // settled, or waiting to be sent
        }
        if (at - s->sent_at >= options_.retry_interval) {
            ++resent_;
            resent_counter_->add();
            s->waiting = true;
            ++waiting_count_;
            s->queued_at = at;
            waiting_.push_back(seq);
            any = true;
        } else {
            earliest = std::min(earliest, s->sent_at);
        }
    }
    next_retry_check_ = earliest == time_point::max() ? at + options_.retry_interval
                                                      : earliest + options_.retry_interval;
    if (any) {
        (void)transmit_waiting(true, at); // overdue: no linger
    }
}

std::chrono::milliseconds reliable_sender::until_linger(time_point at) const {
    for (std::size_t k = waiting_head_; k < waiting_.size(); ++k) {
        const auto& s = ring_[waiting_[k] & (ring_.size() - 1)];
        if (s.live && s.seq == waiting_[k] && s.waiting) {
            return until(s.queued_at + options_.linger, at);
        }
    }
    return std::chrono::milliseconds::max();
}

std::vector<message_id> reliable_sender::unconfirmed_ids() const {
    std::vector<message_id> ids;
    ids.reserve(live_);
    for (const auto& s : ring_) {
        if (s.live) {
            ids.push_back(s.id);
        }
    }
    std::sort(ids.begin(), ids.end()); // time-ordered ids: the order they were made
    return ids;
}

std::size_t reliable_sender::poll(std::chrono::milliseconds timeout) {
    auto at = now();
    if (waiting_count_ > 0) {
        (void)transmit_waiting(false, at);
        if (waiting_count_ > 0 && !blocked_) {
            timeout = std::min(timeout, until_linger(at)); // the open batch leaves on time
        }
    }
    const std::size_t n = handle_replies(timeout);
    at = now();
    (void)transmit_waiting(false, at);
    resend_overdue(at);
    return n;
}

void reliable_sender::send_batch() {
    (void)transmit_waiting(true, now());
}

bool reliable_sender::flush(std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    (void)transmit_waiting(true, now());
    while (live_ > 0) {
        const auto real = clock::now();
        if (real >= deadline) {
            break;
        }
        (void)handle_replies(std::min(until(deadline, real), std::chrono::milliseconds(100)));
        const auto at = now();
        (void)transmit_waiting(true, at);
        resend_overdue(at);
    }
    return live_ == 0;
}

// ---- reliable_receiver --------------------------------------------------------------------

reliable_receiver::reliable_receiver(zmq::context_t& context, reliable_receiver_options options)
    : options_(std::move(options)), socket_(context, zmq::socket_type::dealer),
      processed_(options_.dedup_window) {
    if (options_.endpoint.empty()) {
        throw config_error("reliable receiver: an endpoint (the durable proxy's backend) is "
                           "required");
    }
    if (options_.credit == 0 || options_.heartbeat.count() <= 0) {
        throw config_error("reliable receiver: credit and heartbeat must be positive");
    }
    options_.ack_batch = std::max<std::size_t>(1, options_.ack_batch);
    if (!options_.group.empty()) {
        if (const std::string why = check_group_name(options_.group); !why.empty()) {
            throw config_error("reliable receiver: " + why);
        }
        start_ = options_.start.empty() ? group_start{}.to_string()
                                        : group_start::parse(options_.start).to_string();
    } else if (!options_.start.empty()) {
        throw config_error("reliable receiver: a start position needs a consumer group");
    }
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

reliable_receiver::reliable_receiver(reliable_receiver&& other) noexcept = default;

reliable_receiver& reliable_receiver::operator=(reliable_receiver&& other) noexcept {
    if (this != &other) { // acks and BYE of this one first, its monitor before its socket
        this->~reliable_receiver();
        new (this) reliable_receiver(std::move(other));
    }
    return *this;
}

reliable_receiver::~reliable_receiver() {
    if (socket_.handle() == nullptr) {
        return; // moved from
    }
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
            if (options_.group.empty()) {
                (void)socket_.send(zmq::buffer(n), zmq::send_flags::none);
            } else {
                (void)socket_.send(zmq::buffer(n), zmq::send_flags::sndmore);
                (void)socket_.send(zmq::buffer(options_.group), zmq::send_flags::sndmore);
                (void)socket_.send(zmq::buffer(start_), zmq::send_flags::none);
            }
        }
    } catch (const zmq::error_t&) {
    }
    next_heartbeat_ = clock::now() + options_.heartbeat;
}

void reliable_receiver::ask_pending() {
    flush_acks(); // before the question: the proxy settles them first (one socket, in order)
    pending_.reset();
    try {
        (void)socket_.send(zmq::buffer(proto::pending), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
}

void reliable_receiver::remember(const message_id& id) {
    (void)processed_.insert(id); // the oldest id goes once the window is full
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
            if (const auto report = proto::parse_pending_report(views)) {
                pending_ = pending_counts{report->ready, report->in_flight};
            }
            if (views.size() == 2 && views[0] == proto::error_reply) {
                throw config_error("the durable proxy refused this consumer" +
                                   (options_.group.empty()
                                        ? std::string()
                                        : " (consumer group '" + options_.group + "')") +
                                   ": " + std::string(views[1]));
            }
            continue; // not a delivery: the answer to PENDING, or nothing we know
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
        if (processed_.contains(d.message.id())) {
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
