#include <zmqkit/patterns/pubsub.hpp>

#include <zmqkit/error.hpp>
#include <zmqkit/message_id.hpp>

#include "../common/device_support.hpp"

#include <thread>

using namespace std::chrono_literals;

namespace zmqkit::patterns {
namespace {

socket_options named(socket_options o, const std::string& name) {
    o.name = name;
    return o;
}

} // namespace

std::string_view publisher_id_of(const header& h) noexcept {
    if (!h.publisher_id.is_nil()) {
        return {reinterpret_cast<const char*>(h.publisher_id.data()), message_id::size};
    }
    // A publisher from before header key 12.
    const auto* legacy = h.user_headers.empty() ? nullptr : h.find_user_header(publisher_id_header);
    return legacy != nullptr ? std::string_view(*legacy) : std::string_view();
}

void bound_subscriptions(zmq::socket_t& xpub, const socket_security& security,
                         std::size_t max_size) {
    detail::check_max_subscription_size(max_size, "bound_subscriptions");
    detail::bound_subscriptions(xpub, max_size, security);
}

publication_sequencer::publication_sequencer() : id_(message_id::generate()) {}

std::uint64_t& publication_sequencer::stamp(std::string_view topic, header& h) {
    auto it = sequences_.find(topic);
    if (it == sequences_.end()) {
        it = sequences_.emplace(std::string(topic), 0).first;
    }
    h.sequence = it->second + 1;
    h.publisher_id = id_;
    return it->second; // a node of an unordered_map: stays put
}

publisher::publisher(zmq::context_t& context, const publisher_options& options)
    : socket_(context, zmq::socket_type::xpub, named(options.sockets, options.name)) {
    // Every subscribe and unsubscribe reaches us (not only the first/last of a prefix), so
    // subscription_count() counts subscribers.
    socket_.raw().set(zmq::sockopt::xpub_verboser, 1);
    detail::check_max_subscription_size(options.max_subscription_size,
                                        "publisher '" + options.name + "'");
    detail::bound_subscriptions(socket_.raw(), options.max_subscription_size,
                                options.sockets.security);
    max_subscription_size_ = options.max_subscription_size;
    if (options.block_when_full) {
        socket_.raw().set(zmq::sockopt::xpub_nodrop, 1);
    }
    id_.assign(reinterpret_cast<const char*>(sequencer_.id().data()), message_id::size);
    (void)socket_.attach(options.endpoints, endpoint_action::bind);
}

std::uint64_t& publisher::prepare(std::string_view topic, header& h) {
    // Subscription messages queue up on the XPUB until read; read them now and then so they
    // never accumulate.
    if (++sends_since_read_ >= 1024) {
        read_subscriptions();
    }
    return sequencer_.stamp(topic, h);
}

bool publisher::send(std::string_view topic, message& m) {
    auto& last = prepare(topic, m.header());
    if (!socket_.send(topic, m)) {
        return false;
    }
    ++last;
    return true;
}

bool publisher::send(std::string_view topic, header& h, std::string_view body) {
    auto& last = prepare(topic, h);
    if (!socket_.send(topic, h, body)) {
        return false;
    }
    ++last;
    return true;
}

void publisher::read_subscriptions() {
    sends_since_read_ = 0;
    zmq::message_t frame;
    while (socket_.raw().recv(frame, zmq::recv_flags::dontwait)) {
        if (frame.empty() || detail::subscription_too_large(frame, max_subscription_size_)) {
            continue; // over the limit (within libzmq's framing allowance): not a subscriber
        }
        const auto* bytes = static_cast<const unsigned char*>(frame.data());
        std::string prefix(reinterpret_cast<const char*>(bytes) + 1, frame.size() - 1);
        if (bytes[0] == 1) {
            ++subscriptions_[prefix];
        } else if (bytes[0] == 0) {
            auto it = subscriptions_.find(prefix);
            if (it != subscriptions_.end() && --it->second == 0) {
                subscriptions_.erase(it);
            }
        }
    }
}

std::size_t publisher::subscription_count(std::string_view prefix) {
    read_subscriptions();
    const auto it = subscriptions_.find(prefix);
    return it == subscriptions_.end() ? 0 : it->second;
}

bool publisher::wait_for_subscriber(std::string_view topic, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        read_subscriptions();
        for (const auto& [prefix, count] : subscriptions_) {
            if (count > 0 && topic.starts_with(prefix)) {
                return true;
            }
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            return false;
        }
        zmq::pollitem_t item{socket_.raw().handle(), 0, ZMQ_POLLIN, 0};
        (void)zmq::poll(&item, 1,
                        std::chrono::ceil<std::chrono::milliseconds>(
                            std::min(deadline - now, std::chrono::steady_clock::duration(50ms))));
    }
}

// ---- sequence_tracker -------------------------------------------------------------------

std::string sequence_tracker::key(std::string_view publisher, std::string_view topic) {
    std::string k;
    k.reserve(publisher.size() + 1 + topic.size());
    k.append(publisher).push_back('\0');
    k.append(topic);
    return k;
}

const std::string& sequence_tracker::scratch_key(std::string_view publisher,
                                                 std::string_view topic) {
    scratch_.clear();
    scratch_.append(publisher).push_back('\0');
    scratch_.append(topic);
    return scratch_;
}

sequence_tracker::stream& sequence_tracker::find_or_add(const std::string& k, bool& added) {
    auto it = streams_.find(k);
    added = it == streams_.end();
    if (added) {
        if (max_streams_ > 0 && streams_.size() >= max_streams_) {
            auto oldest = streams_.begin();
            for (auto s = streams_.begin(); s != streams_.end(); ++s) {
                if (s->second.touched < oldest->second.touched) {
                    oldest = s;
                }
            }
            if (&oldest->second == last_.value) {
                last_ = {};
            }
            streams_.erase(oldest);
        }
        it = streams_.emplace(k, stream{}).first;
        ++stats_.streams;
    }
    it->second.touched = ++clock_;
    last_.key = &it->first;
    last_.value = &it->second;
    return it->second;
}

sequence_tracker::stream& sequence_tracker::lookup(std::string_view publisher,
                                                   std::string_view topic, bool& added) {
    // The last stream's key is publisher \0 topic: compare in place, no key built or hashed.
    if (last_.key != nullptr) {
        const std::string_view k(*last_.key);
        if (k.size() == publisher.size() + 1 + topic.size() &&
            k.compare(0, publisher.size(), publisher) == 0 && k[publisher.size()] == '\0' &&
            k.compare(publisher.size() + 1, topic.size(), topic) == 0) {
            added = false;
            last_.value->touched = ++clock_;
            return *last_.value;
        }
    }
    return find_or_add(scratch_key(publisher, topic), added);
}

sequence_verdict sequence_tracker::observe(std::string_view publisher, std::string_view topic,
                                           std::uint64_t sequence, sequence_event* event) {
    if (event != nullptr) {
        event->publisher.assign(publisher);
        event->topic.assign(topic);
        event->sequence = sequence;
        event->missing_first = event->missing_last = 0;
    }
    auto verdict = sequence_verdict::untracked;
    if (sequence == 0 || publisher.empty()) {
        if (event != nullptr) {
            event->verdict = verdict;
        }
        return verdict;
    }
    bool added = false;
    auto& s = lookup(publisher, topic, added);
    if (added) {
        // A publisher (or topic) we have not heard from: where it starts is not a gap.
        verdict = sequence_verdict::first;
        s.last = sequence;
    } else if (sequence == s.last + 1) {
        verdict = sequence_verdict::in_order;
        ++stats_.in_order;
        s.last = sequence;
    } else if (sequence > s.last + 1) {
        verdict = sequence_verdict::gap;
        ++stats_.gaps;
        stats_.missing += sequence - s.last - 1;
        if (event != nullptr) {
            event->missing_first = s.last + 1;
            event->missing_last = sequence - 1;
        }
        s.missing.emplace_back(s.last + 1, sequence - 1);
        if (s.missing.size() > 16) {
            s.missing.pop_front();
        }
        s.last = sequence;
    } else {
        verdict = sequence_verdict::duplicate;
        for (auto it = s.missing.begin(); it != s.missing.end(); ++it) {
            if (sequence < it->first || sequence > it->second) {
                continue;
            }
            // A number we reported missing: it arrived late. Split its range.
            verdict = sequence_verdict::late;
            const auto [first, last] = *it;
            it = s.missing.erase(it);
            if (sequence < last) {
                it = s.missing.insert(it, {sequence + 1, last});
            }
            if (sequence > first) {
                s.missing.insert(it, {first, sequence - 1});
            }
            break;
        }
        if (verdict == sequence_verdict::late) {
            ++stats_.late;
        } else {
            ++stats_.duplicates;
        }
    }
    if (event != nullptr) {
        event->verdict = verdict;
    }
    return verdict;
}

void sequence_tracker::seed(std::string_view publisher, std::string_view topic,
                            std::uint64_t sequence) {
    bool added = false;
    auto& s = lookup(publisher, topic, added);
    if (added || sequence > s.last) {
        s.last = sequence;
    }
}

std::optional<std::uint64_t> sequence_tracker::last(std::string_view publisher,
                                                    std::string_view topic) const {
    const auto it = streams_.find(key(publisher, topic));
    if (it == streams_.end()) {
        return std::nullopt;
    }
    return it->second.last;
}

// ---- subscriber -------------------------------------------------------------------------

subscriber::subscriber(zmq::context_t& context, subscriber_options options)
    : socket_(context, zmq::socket_type::sub, named(options.sockets, options.name)),
      options_(std::move(options)), tracker_(options_.max_streams) {
    auto& reg = options_.registry != nullptr ? *options_.registry : metrics_registry::global();
    const metric_labels labels{{"component", options_.name}};
    gaps_ = &reg.get_counter("zmqkit_subscriber_gaps_total",
                             "Missing sequence ranges detected (publications lost)", labels);
    missing_ = &reg.get_counter("zmqkit_subscriber_missing_total",
                                "Publications in the missing ranges", labels);
    duplicates_ = &reg.get_counter("zmqkit_subscriber_duplicates_total",
                                   "Publications whose sequence number was already seen", labels);
    late_ = &reg.get_counter("zmqkit_subscriber_late_total",
                             "Publications that arrived after being reported missing", labels);
    if (!options_.endpoints.empty()) {
        (void)socket_.attach(options_.endpoints, endpoint_action::connect);
    }
}

void subscriber::subscribe(std::string_view prefix) {
    socket_.raw().set(zmq::sockopt::subscribe, prefix);
}

void subscriber::unsubscribe(std::string_view prefix) {
    socket_.raw().set(zmq::sockopt::unsubscribe, prefix);
}

void subscriber::subscribe_with_snapshot(std::string_view prefix) {
    // First the live subscription, then the request: the forwarder reads both from the same
    // pipe in this order, so the live stream is on before the snapshot is cut.
    subscribe(prefix);
    const auto nonce = message_id::generate();
    std::string topic(snapshot_topic_prefix);
    topic.append(reinterpret_cast<const char*>(nonce.data()), message_id::size);
    topic.append(prefix);
    subscribe(topic);
    pending_snapshots_.push_back({std::string(prefix), std::move(topic)});
}

std::size_t subscriber::abandon_snapshots() {
    const std::size_t abandoned = pending_snapshots_.size();
    for (const auto& p : pending_snapshots_) {
        socket_.raw().set(zmq::sockopt::unsubscribe, p.topic);
    }
    pending_snapshots_.clear();
    release_held();
    return abandoned;
}

void subscriber::on(std::string_view prefix, handler h) {
    subscribe(prefix);
    handlers_.emplace_back(std::string(prefix), std::move(h));
}

bool subscriber::held_back(const publication& d) const {
    for (const auto& p : pending_snapshots_) {
        if (d.topic.starts_with(p.prefix)) {
            return true;
        }
    }
    return false;
}

bool subscriber::accept_live(publication& d) {
    ++stats_.received;
    const auto& h = d.message.header();
    sequence_event event;
    const auto missing_before = tracker_.stats().missing;
    const auto verdict = tracker_.observe(publisher_id_of(h), d.topic, h.sequence,
                                          on_sequence_event_ ? &event : nullptr);
    d.verdict = verdict;
    d.missing_first = 0;
    d.missing_last = 0;
    switch (verdict) {
    case sequence_verdict::gap: {
        const auto missing = tracker_.stats().missing - missing_before;
        gaps_->add();
        missing_->add(missing);
        d.missing_first = h.sequence - missing; // the numbers just before this one
        d.missing_last = h.sequence - 1;
        break;
    }
    case sequence_verdict::duplicate:
        duplicates_->add();
        break;
    case sequence_verdict::late:
        late_->add();
        break;
    default:
        break;
    }
    if (on_sequence_event_ &&
        (verdict == sequence_verdict::gap || verdict == sequence_verdict::duplicate ||
         verdict == sequence_verdict::late)) {
        event.message = &h;
        on_sequence_event_(event);
        event.message = nullptr;
    }
    return verdict != sequence_verdict::duplicate;
}

void subscriber::apply_snapshot(std::size_t index, publication& d) {
    const auto prefix = pending_snapshots_[index].prefix;
    socket_.raw().set(zmq::sockopt::unsubscribe, pending_snapshots_[index].topic);
    pending_snapshots_.erase(pending_snapshots_.begin() + static_cast<std::ptrdiff_t>(index));
    // Body: [ [[publisher, topic, sequence]...], [[topic, header, body]...] ]
    std::map<std::string, std::uint64_t> covered; // publisher\0topic -> last sequence
    try {
        const auto body = d.message.body_view();
        auto oh = msgpack::unpack(body.data(), body.size());
        const auto& root = oh.get();
        if (root.type != msgpack::type::ARRAY || root.via.array.size != 2) {
            throw body_type_error("snapshot body is not [streams, values]");
        }
        using stream_row = std::tuple<std::string, std::string, std::uint64_t>;
        using value_row = std::tuple<std::string, std::string, std::string>;
        const auto streams = root.via.array.ptr[0].as<std::vector<stream_row>>();
        const auto values = root.via.array.ptr[1].as<std::vector<value_row>>();
        for (const auto& [pub, topic, seq] : streams) {
            tracker_.seed(pub, topic, seq);
            covered[pub + '\0' + topic] = seq;
        }
        for (const auto& [topic, head, payload] : values) {
            publication value;
            value.topic = topic;
            value.from_snapshot = true;
            if (!decode_header(head.data(), head.size(), value.message.header()).ok()) {
                continue;
            }
            value.message.set_body(payload);
            ++stats_.snapshot_values;
            ready_.push_back(std::move(value));
        }
    } catch (const std::exception&) {
        // A malformed snapshot: the live stream continues unseeded (the tracker treats each
        // stream's next message as its first).
    }
    // Held live messages under this prefix that the snapshot already covers are dropped;
    // the rest continue in arrival order.
    std::deque<publication> keep;
    for (auto& h : held_) {
        if (h.topic.starts_with(prefix)) {
            const auto pub = publisher_id_of(h.message.header());
            if (!pub.empty() && h.message.header().sequence != 0) {
                std::string key(pub);
                key.push_back('\0');
                key.append(h.topic);
                const auto it = covered.find(key);
                if (it != covered.end() && h.message.header().sequence <= it->second) {
                    ++stats_.snapshot_overlap;
                    continue;
                }
            }
        }
        keep.push_back(std::move(h));
    }
    held_ = std::move(keep);
    release_held();
}

void subscriber::release_held() {
    std::deque<publication> still;
    for (auto& h : held_) {
        if (held_back(h)) {
            still.push_back(std::move(h));
        } else if (accept_live(h)) {
            ready_.push_back(std::move(h));
        }
    }
    held_ = std::move(still);
}

subscriber::receive_outcome subscriber::receive_into(publication& d,
                                                     std::chrono::milliseconds timeout) {
    if (!socket_.recv(d.message, d.topic, timeout)) {
        return receive_outcome::timeout;
    }
    d.from_snapshot = false;
    d.verdict = sequence_verdict::untracked;
    if (d.topic.starts_with(snapshot_topic_prefix)) {
        for (std::size_t i = 0; i < pending_snapshots_.size(); ++i) {
            if (pending_snapshots_[i].topic == d.topic) {
                apply_snapshot(i, d);
                break;
            }
        }
        return receive_outcome::absorbed; // or another subscriber's snapshot (we subscribe to
                                          // a prefix of it)
    }
    if (held_back(d)) {
        held_.push_back(std::move(d));
        return receive_outcome::absorbed;
    }
    return accept_live(d) ? receive_outcome::deliver : receive_outcome::absorbed; // duplicate
}

bool subscriber::recv(publication& into, std::chrono::milliseconds timeout) {
    // Publications queued by a snapshot come first. receive_into only queues (never delivers)
    // when it takes a snapshot, so a delivery from it is always the next in order.
    std::optional<std::chrono::steady_clock::time_point> deadline; // read the clock if idle
    auto wait = 0ms; // under load a publication is usually waiting: try without a wait first
    for (;;) {
        if (!ready_.empty()) {
            into = std::move(ready_.front());
            ready_.pop_front();
            return true;
        }
        const auto outcome = receive_into(into, wait);
        if (outcome == receive_outcome::deliver) {
            return true;
        }
        // Bounded by the deadline even under a flood of messages that are not delivered.
        const auto now = std::chrono::steady_clock::now();
        if (!deadline) {
            deadline = now + timeout;
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - now);
        if (left <= 0ms) {
            if (!ready_.empty()) {
                continue;
            }
            return false;
        }
        wait = left;
    }
}

std::optional<publication> subscriber::recv(std::chrono::milliseconds timeout) {
    std::optional<publication> out(std::in_place);
    if (!recv(*out, timeout)) {
        out.reset();
    }
    return out;
}

bool subscriber::dispatch(std::chrono::milliseconds timeout) {
    if (!recv(dispatched_, timeout)) {
        return false;
    }
    auto* d = &dispatched_;
    const handler* best = nullptr;
    std::size_t best_length = 0;
    for (const auto& [prefix, h] : handlers_) {
        if (d->topic.starts_with(prefix) && (best == nullptr || prefix.size() > best_length)) {
            best = &h;
            best_length = prefix.size();
        }
    }
    if (best == nullptr) {
        ++stats_.unhandled;
        return true;
    }
    (*best)(*d);
    return true;
}

subscriber_stats subscriber::stats() const noexcept {
    auto s = stats_;
    s.sequences = tracker_.stats();
    return s;
}

} // namespace zmqkit::patterns
