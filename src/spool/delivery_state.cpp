#include "delivery_state.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/header.hpp>

#include <algorithm>

namespace zmqkit::detail {

namespace sf = spool_format;
using sf::record_type;

spooled_message delivery_state::message_of(std::uint64_t seq, const message_payload& p) const {
    spooled_message msg;
    msg.sequence = seq;
    msg.attempt = attempt(seq);
    msg.appended_ns = p.appended_ns;
    msg.header = p.header;
    msg.body = p.body;
    return msg;
}

std::optional<spooled_message> delivery_state::deliver() {
    if (log_.failed() || ctx_.opt.read_only) {
        return std::nullopt;
    }
    if (auto msg = next_ready()) {
        return start_delivery(*msg);
    }
    if (auto msg = next_new()) {
        return start_delivery(*msg);
    }
    return std::nullopt;
}

// A redelivery whose backoff has passed.
std::optional<spooled_message> delivery_state::next_ready() {
    const auto now = std::chrono::steady_clock::now();
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
        ready_again_.insert(delayed_.begin()->second);
        delayed_.erase(delayed_.begin());
    }
    while (!ready_again_.empty()) {
        const std::uint64_t seq = *ready_again_.begin();
        ready_again_.erase(ready_again_.begin());
        const segment* s = log_.find(seq);
        if (is_settled(s, seq)) {
            continue;
        }
        if (auto m = log_.read_message(seq)) {
            return message_of(seq, m->payload);
        }
    }
    return std::nullopt;
}

// The next never-delivered message after the cursor.
std::optional<spooled_message> delivery_state::next_new() {
    auto& segments = log_.segments();
    while (!segments.empty()) {
        if (cursor_seq_ < segments.front().first) {
            cursor_seq_ = segments.front().first;
            cursor_first_ = segments.front().first;
            cursor_offset_ = 0;
        }
        segment* s = log_.find(cursor_first_);
        if (s == nullptr || s->first != cursor_first_) {
            // The cursor's segment was reclaimed: start at the head.
            s = &segments.front();
            cursor_first_ = s->first;
            cursor_offset_ = 0;
        }
        if (cursor_offset_ >= s->used) {
            if (s == &segments.back()) {
                return std::nullopt;
            }
            segment* next = log_.find(s->end);
            if (next == nullptr) {
                // a known gap between segments: the next one up
                auto it =
                    std::upper_bound(segments.begin(), segments.end(), s->first,
                                     [](std::uint64_t v, const segment& g) { return v < g.first; });
                if (it == segments.end()) {
                    return std::nullopt;
                }
                next = &*it;
            }
            cursor_first_ = next->first;
            cursor_offset_ = 0;
            continue;
        }
        std::size_t consumed = 0;
        auto r = log_.read_record(log_.cursor_reader, *s, cursor_offset_, &consumed);
        if (!r) {
            log_.fail("spool " + ctx_.dir.string() + ": cannot read the record at offset " +
                      std::to_string(cursor_offset_) + " of " + s->file +
                      " (damaged while running?); restart to recover");
            return std::nullopt;
        }
        cursor_offset_ += consumed;
        cursor_seq_ = r->sequence + 1;
        if (r->type != record_type::message || is_settled(s, r->sequence) ||
            in_flight_.contains(r->sequence) || ready_again_.contains(r->sequence)) {
            continue;
        }
        message_payload mp;
        if (!parse_message_payload(r->payload, mp)) {
            continue;
        }
        spooled_message msg = message_of(r->sequence, mp);
        msg.attempt = 0;
        return msg;
    }
    return std::nullopt;
}

spooled_message delivery_state::start_delivery(spooled_message msg) {
    std::uint32_t& a = attempts_[msg.sequence];
    ++a;
    msg.attempt = a;
    if (a > 1) {
        ctx_.m.redelivered->add();
        ++ctx_.counts.redelivered;
        if (group_ != nullptr) {
            ++group_->redelivered;
        }
    }
    in_flight_[msg.sequence] = static_cast<std::uint32_t>(msg.header.size() + msg.body.size());
    if (group_ != nullptr) {
        commit_.group_delivered(group_->id, group_->epoch, msg.sequence, a);
    } else {
        commit_.delivered(msg.sequence, a);
    }
    return msg;
}

void delivery_state::settle(std::uint64_t seq, std::uint64_t bytes) {
    if (group_ == nullptr) {
        if (log_.settle(seq, bytes)) {
            attempts_.erase(seq);
        }
        return;
    }
    group_ledger& g = *group_;
    const segment* s = log_.find(seq);
    if (s == nullptr || g.settled(seq) || !s->is_message(seq)) {
        return;
    }
    g.acked.insert(seq);
    if (g.waiting > 0) {
        --g.waiting;
    }
    attempts_.erase(seq);
    advance_floor();
}

// Moves the group's floor up over what it settled and over records that are not messages, up
// to the end of the records known (written, or scanned by recovery).
void delivery_state::advance_floor() {
    group_ledger& g = *group_;
    const auto& segments = log_.segments();
    const std::uint64_t known_end = segments.empty() ? 0 : segments.back().end;
    while (g.floor < known_end) {
        if (!g.acked.empty() && *g.acked.begin() == g.floor) {
            g.acked.erase(g.acked.begin());
            ++g.floor;
            continue;
        }
        const segment* s = log_.find(g.floor);
        if (s == nullptr) {
            // before the head, or in a gap between segments: on to the next segment
            const auto it =
                std::upper_bound(segments.begin(), segments.end(), g.floor,
                                 [](std::uint64_t v, const segment& x) { return v < x.first; });
            if (it == segments.end()) {
                break;
            }
            g.floor = it->first;
            continue;
        }
        if (s->is_message(g.floor)) {
            break;
        }
        ++g.floor;
    }
    while (!g.acked.empty() && *g.acked.begin() < g.floor) {
        g.acked.erase(g.acked.begin());
    }
}

void delivery_state::forget(std::uint64_t seq) {
    ready_again_.erase(seq);
    std::erase_if(delayed_, [seq](const auto& d) { return d.second == seq; });
}

bool delivery_state::ack(std::uint64_t seq) {
    const auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) {
        return false;
    }
    const std::uint32_t bytes = it->second;
    in_flight_.erase(it);
    settle(seq, bytes);
    if (group_ != nullptr) {
        commit_.group_acked(group_->id, group_->epoch, seq, bytes);
        ++group_->acked_count;
    } else {
        commit_.acked(seq, bytes);
    }
    ctx_.m.acked->add();
    ++ctx_.counts.acked;
    return true;
}

bool delivery_state::requeue(std::uint64_t seq, std::chrono::milliseconds delay,
                             bool* dead_lettered) {
    if (dead_lettered != nullptr) {
        *dead_lettered = false;
    }
    const auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) {
        return false;
    }
    const std::uint32_t a = attempts_[seq];
    const std::uint32_t max_attempts = ctx_.opt.max_attempts;
    if (max_attempts != 0 && a >= max_attempts) {
        if (dead_lettered != nullptr) {
            *dead_lettered = true;
        }
        return dead_letter(seq, "delivered " + std::to_string(a) +
                                    " times without an ack (max_attempts " +
                                    std::to_string(max_attempts) + ")");
    }
    in_flight_.erase(it);
    if (delay.count() <= 0) {
        ready_again_.insert(seq);
    } else {
        delayed_.emplace(std::chrono::steady_clock::now() + delay, seq);
    }
    return true;
}

bool delivery_state::unsend(std::uint64_t seq) {
    const auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) {
        return false;
    }
    in_flight_.erase(it);
    // In memory: the delivered record stays in the log, so after a restart the attempt counts
    // (one too many then, never one too few).
    if (const auto a = attempts_.find(seq); a != attempts_.end() && a->second > 0) {
        --a->second;
    }
    ready_again_.insert(seq);
    return true;
}

bool delivery_state::dead_letter(std::uint64_t seq, std::string_view reason) {
    const auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) {
        return false;
    }
    const std::uint32_t bytes = it->second;
    queued_dead d{seq, bytes, std::string(reason), 0, std::nullopt};
    if (dead_letters_ != nullptr) {
        if (auto msg = log_.read_message(seq)) {
            header h;
            if (decode_header(msg->payload.header.data(), msg->payload.header.size(), h)) {
                h.attempt = std::max<std::uint32_t>(h.attempt, attempt(seq));
                h.user_headers.emplace_back("zmqkit-dead-letter-reason", std::string(reason));
                h.user_headers.emplace_back("zmqkit-dead-letter-sequence", std::to_string(seq));
                h.user_headers.emplace_back("zmqkit-dead-letter-spool", ctx_.opt.name);
                if (group_ != nullptr) {
                    h.user_headers.emplace_back("zmqkit-dead-letter-group", group_->name);
                }
                d.pending_copy.emplace(encode_header(h), std::string(msg->payload.body));
            }
        }
    }
    in_flight_.erase(it);
    settle(seq, bytes);
    if (group_ != nullptr) {
        d.group = group_->id;
        d.epoch = group_->epoch;
        ++group_->dead_lettered;
    }
    commit_.dead_lettered(std::move(d));
    ctx_.m.dead_lettered->add();
    ++ctx_.counts.dead_lettered;
    return true;
}

std::uint64_t delivery_state::undelivered(std::uint64_t waiting) const noexcept {
    const std::uint64_t behind = in_flight_.size() + ready_again_.size() + delayed_.size();
    return waiting > behind ? waiting - behind : 0;
}

std::optional<std::chrono::steady_clock::time_point> delivery_state::next_redelivery() const {
    if (delayed_.empty()) {
        return std::nullopt;
    }
    return delayed_.begin()->first;
}

void delivery_state::recovered_attempt(std::uint64_t seq, std::uint64_t attempt) {
    const segment* t = log_.find(seq);
    if (!is_settled(t, seq)) {
        auto& a = attempts_[seq];
        a = std::max<std::uint32_t>(
            a, static_cast<std::uint32_t>(std::min<std::uint64_t>(attempt, UINT32_MAX)));
    }
}

void delivery_state::recovered() {
    if (group_ != nullptr) {
        advance_floor();
    }
    for (auto it = attempts_.begin(); it != attempts_.end();) {
        const segment* s = log_.find(it->first);
        it = is_settled(s, it->first) ? attempts_.erase(it) : std::next(it);
    }
    if (group_ != nullptr) {
        seek(group_->floor);
    } else if (!log_.segments().empty()) {
        cursor_seq_ = log_.segments().front().first;
        cursor_first_ = log_.segments().front().first;
    }
}

void delivery_state::seek(std::uint64_t seq) {
    auto& segments = log_.segments();
    if (segments.empty()) {
        cursor_seq_ = seq;
        cursor_first_ = seq;
        cursor_offset_ = 0;
        return;
    }
    const segment* s = log_.find(seq);
    if (s == nullptr) {
        // before the head or in a gap: the next segment up (or the end of the last one)
        const auto it =
            std::upper_bound(segments.begin(), segments.end(), seq,
                             [](std::uint64_t v, const segment& x) { return v < x.first; });
        s = it == segments.end() ? &segments.back() : &*it;
        if (it == segments.end()) {
            cursor_seq_ = s->end;
            cursor_first_ = s->first;
            cursor_offset_ = s->used;
            return;
        }
        seq = s->first;
    }
    cursor_seq_ = seq;
    cursor_first_ = s->first;
    cursor_offset_ = s->index[(seq - s->first) / index_stride];
}

void delivery_state::forget_below(std::uint64_t start) {
    std::erase_if(attempts_, [start](const auto& a) { return a.first < start; });
    ready_again_.erase(ready_again_.begin(), ready_again_.lower_bound(start));
    std::erase_if(delayed_, [start](const auto& d) { return d.second < start; });
}

void delivery_state::clear() {
    attempts_.clear();
    in_flight_.clear();
    ready_again_.clear();
    delayed_.clear();
}

} // namespace zmqkit::detail
