// The spool's façade: options, validation, limits and statistics over its parts — the segment
// log, group commit, delivery state and recovery (docs/architecture.md "Spool"). Format and
// guarantees: docs/spool-format.md.
#include "consumer_groups.hpp"
#include "delivery_state.hpp"
#include "group_commit.hpp"
#include "recovery.hpp"
#include "segment_log.hpp"
#include "spool_context.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/header.hpp>
#include <zmqkit/message_id_window.hpp>
#include <zmqkit/spool.hpp>

#include <algorithm>
#include <charconv>
#include <map>

namespace zmqkit {

namespace sf = spool_format;

// ---- policies ---------------------------------------------------------------------------------

sync_policy sync_policy::parse(std::string_view text) {
    sync_policy p;
    if (text == "always") {
        return p;
    }
    if (text == "none") {
        p.how = mode::none;
        return p;
    }
    if (text.starts_with("interval:")) {
        const std::string_view number = text.substr(9);
        long long ms = 0;
        const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), ms);
        if (ec == std::errc{} && end == number.data() + number.size() && ms > 0 &&
            ms <= 3'600'000) {
            p.how = mode::interval;
            p.interval = std::chrono::milliseconds(ms);
            return p;
        }
    }
    throw config_error("sync mode '" + std::string(text) +
                       "' is not valid (valid: always, none, interval:<ms> with 1..3600000 ms)");
}

std::string sync_policy::to_string() const {
    switch (how) {
    case mode::always:
        return "always";
    case mode::none:
        return "none";
    case mode::interval:
        return "interval:" + std::to_string(interval.count());
    }
    return "always";
}

full_policy parse_full_policy(std::string_view text) {
    if (text == "block") {
        return full_policy::block;
    }
    if (text == "reject") {
        return full_policy::reject;
    }
    if (text == "drop_oldest" || text == "drop-oldest") {
        return full_policy::drop_oldest;
    }
    throw config_error("full policy '" + std::string(text) +
                       "' is not valid (valid: block, reject, drop_oldest)");
}

std::string_view to_string(full_policy p) noexcept {
    switch (p) {
    case full_policy::block:
        return "block";
    case full_policy::reject:
        return "reject";
    case full_policy::drop_oldest:
        return "drop_oldest";
    }
    return "block";
}

// ---- implementation ---------------------------------------------------------------------------

using detail::message_fixed;

struct spool::impl {
    impl(spool& s, const spool_options& o)
        : owner(s), ctx(o), log(ctx), queue(ctx, log, s.dead_letters_.get()),
          delivery(ctx, log, queue, s.dead_letters_.get()),
          groups(ctx, log, queue, s.dead_letters_.get()), dedup(o.dedup_window) {
        queue.on_written([this](std::uint64_t first, std::uint64_t n, std::uint64_t ticket) {
            groups.written(first, n);
            if (!targeted.empty()) {
                settle_targeted(first, n, ticket);
            }
        });
        queue.reclaim_policy({[this](const detail::segment& g) { return may_go(g); },
                              [this](std::uint64_t start) { return before_remove(start); }});
    }

    spool& owner;
    detail::spool_context ctx;
    detail::segment_log log;
    detail::group_commit queue;
    detail::delivery_state delivery;
    detail::consumer_groups groups;
    message_id_window dedup; // id -> ticket of the last dedup_window appends
    header scratch;
    // Appended messages for one queue only, by ticket: the target ("" the default queue) and
    // the message bytes. Settled for the other queues once written (sequence known).
    std::map<std::uint64_t, std::pair<std::string, std::uint64_t>> targeted;

    void recover() {
        detail::spool_recovery(ctx, log, delivery, groups, queue, dedup, owner.recovery_).run();
        update_gauges();
    }

    // ---- messages for one queue ----

    void settle_targeted(std::uint64_t first, std::uint64_t n, std::uint64_t first_ticket) {
        auto it = targeted.lower_bound(first_ticket);
        while (it != targeted.end() && it->first < first_ticket + n) {
            const std::uint64_t seq = first + (it->first - first_ticket);
            const auto& [target, bytes] = it->second;
            if (!target.empty()) {
                delivery.settle(seq, bytes);
            }
            groups.settle_except(target, seq, bytes);
            it = targeted.erase(it);
        }
    }

    // Appends a message for the queue `target` only (its header names it already).
    append_result append_targeted(const std::string& header_bytes, std::string_view body,
                                  const std::string& target) {
        append_result result;
        if (!writable()) {
            result.outcome = append_result::status::rejected;
            result.reason = log.failed() ? log.failure() : "the spool is open read-only";
            return result;
        }
        if (!check(header_bytes, body, nullptr, result)) {
            return result;
        }
        if (!make_room(header_bytes.size() + body.size(), result)) {
            return result;
        }
        const std::int64_t t = ctx.now_ns();
        result.ticket =
            queue.queue_message(t, scratch.id, header_bytes, body, spool_format::flag_targeted);
        targeted[result.ticket] = {target, header_bytes.size() + body.size()};
        log.newest_ns = t;
        (void)dedup.insert(scratch.id, result.ticket);
        ctx.m.appended->add();
        ++ctx.counts.appended;
        return result;
    }

    spool::requeue_report requeue_dead_letters(spool* dlq, const std::optional<message_id>& only);

    // ---- reclaiming and retention ----

    // Head segment g may go: the default queue and every group settled it, or a retention
    // limit says so.
    [[nodiscard]] bool may_go(const detail::segment& g) const {
        if (g.waiting == 0 && groups.past(g)) {
            return true;
        }
        const spool_options& o = ctx.opt;
        if (o.retain_age.count() > 0 &&
            g.newest_ns <
                ctx.now_ns() - static_cast<std::int64_t>(o.retain_age.count()) * 1'000'000) {
            return true;
        }
        if (o.retain_bytes > 0) {
            std::uint64_t from_here = 0; // g and everything after it
            for (const auto& x : log.segments()) {
                if (x.first >= g.first) {
                    from_here += x.capacity;
                }
            }
            return from_here > o.retain_bytes;
        }
        return false;
    }

    // Segments below `start` go: what the default queue had not settled there expires.
    bool before_remove(std::uint64_t start) {
        std::uint64_t expired = 0;
        for (const auto& g : log.segments()) {
            if (g.end <= start) {
                expired += g.waiting;
            }
        }
        if (expired > 0) {
            ctx.counts.expired += expired;
            delivery.forget_below(start);
            if (ctx.opt.notice) {
                ctx.opt.notice("the spool's default queue lost " + std::to_string(expired) +
                               " message(s) to the retention limits (reclaimed below sequence " +
                               std::to_string(start) + " before they were acked)");
            }
        }
        return groups.before_remove(start);
    }

    // ---- groups ----

    // The sequence number the next stored message gets (queued messages are written first at
    // the next commit).
    [[nodiscard]] std::uint64_t latest() const noexcept {
        return log.next_seq + queue.queued_messages();
    }

    void require_writable() const {
        if (!writable()) {
            throw spool_error("spool " + ctx.dir.string() + " cannot change its consumer groups: " +
                              (log.failed() ? log.failure() : "it is open read-only"));
        }
    }

    detail::delivery_state* queue_of(group_id g) {
        if (g == default_group) {
            return &delivery;
        }
        auto* x = groups.find(g);
        return x != nullptr ? &x->delivery : nullptr;
    }

    [[nodiscard]] bool writable() const noexcept { return !log.failed() && !ctx.opt.read_only; }

    // ---- append ----

    append_result append(std::string_view header_bytes, std::string_view body,
                         const message_id* known_id) {
        append_result result;
        if (!writable()) {
            result.outcome = append_result::status::rejected;
            result.reason = log.failed() ? log.failure() : "the spool is open read-only";
            return result;
        }
        if (!check(header_bytes, body, known_id, result)) {
            return result;
        }
        if (const auto* ticket = dedup.find(scratch.id); ticket != nullptr) {
            ctx.m.duplicates->add();
            ++ctx.counts.duplicates;
            result.outcome = append_result::status::duplicate;
            result.ticket = *ticket;
            return result;
        }
        if (log.disk_full()) {
            result.outcome = append_result::status::full;
            result.reason = "disk full";
            return result;
        }
        if (!make_room(header_bytes.size() + body.size(), result)) {
            return result;
        }
        const std::int64_t t = ctx.now_ns();
        result.ticket = queue.queue_message(t, scratch.id, header_bytes, body);
        log.newest_ns = t;
        (void)dedup.insert(scratch.id, result.ticket);
        ctx.m.appended->add();
        ++ctx.counts.appended;
        return result;
    }

    // A valid envelope with a message id, not too large; its id in scratch.id.
    bool check(std::string_view header_bytes, std::string_view body, const message_id* known_id,
               append_result& result) {
        if (known_id != nullptr) {
            scratch.id = *known_id; // the caller decoded and checked the header
        } else if (const decode_status st =
                       decode_header(header_bytes.data(), header_bytes.size(), scratch);
                   !st) {
            result.outcome = append_result::status::rejected;
            result.reason = "not a zmqkit envelope: " + st.message();
            return false;
        }
        if (scratch.id.is_nil()) {
            result.outcome = append_result::status::rejected;
            result.reason = "the header has no message id";
            return false;
        }
        const std::size_t message_bytes = header_bytes.size() + body.size();
        if (message_bytes + message_fixed > spool_format::max_payload) {
            result.outcome = append_result::status::rejected;
            result.reason = "message of " + std::to_string(message_bytes) +
                            " bytes is larger than the spool's limit of " +
                            std::to_string(spool_format::max_payload - message_fixed) + " bytes";
            return false;
        }
        return true;
    }

    [[nodiscard]] std::uint64_t waiting() const noexcept {
        return log.total_waiting + queue.queued_messages();
    }
    [[nodiscard]] std::uint64_t waiting_bytes() const noexcept {
        return log.total_waiting_bytes + queue.queued_bytes();
    }

    bool over_limit(std::size_t extra_bytes) const noexcept {
        const spool_options& opt = ctx.opt;
        return (opt.max_messages != 0 && waiting() + 1 > opt.max_messages) ||
               (opt.max_bytes != 0 && waiting_bytes() + extra_bytes > opt.max_bytes);
    }

    bool make_room(std::size_t bytes, append_result& result) {
        const spool_options& opt = ctx.opt;
        if (!over_limit(bytes)) {
            return true;
        }
        if (opt.when_full == full_policy::drop_oldest) {
            while (over_limit(bytes) && drop_oldest_one()) {
            }
            if (!over_limit(bytes)) {
                return true;
            }
        }
        const std::string why = "spool full (" + std::to_string(waiting()) + " messages, " +
                                std::to_string(waiting_bytes()) + " bytes; limits: max_messages " +
                                std::to_string(opt.max_messages) + ", max_bytes " +
                                std::to_string(opt.max_bytes) + ")";
        if (opt.when_full == full_policy::reject) {
            ctx.m.rejected_full->add();
            ++ctx.counts.rejected_full;
            result.outcome = append_result::status::rejected;
        } else {
            result.outcome = append_result::status::full;
        }
        result.reason = why;
        return false;
    }

    // Drops the oldest waiting message that is not in flight. False if there is none.
    bool drop_oldest_one() {
        for (auto& s : log.segments()) {
            if (s.waiting == 0) {
                continue;
            }
            for (std::uint64_t seq = s.first; seq < s.end; ++seq) {
                if (s.is_settled(seq) || delivery.in_flight(seq)) {
                    continue;
                }
                const auto msg = log.read_message(seq);
                const std::uint64_t bytes =
                    msg ? msg->payload.header.size() + msg->payload.body.size() : 0;
                delivery.forget(seq);
                delivery.settle(seq, bytes);
                queue.dropped_full(seq, bytes);
                ctx.m.dropped_full->add();
                ++ctx.counts.dropped_full;
                return true;
            }
        }
        return false;
    }

    // ---- commit ----

    bool commit() {
        if (!writable()) {
            return false;
        }
        const bool wrote = queue.commit(&owner.committed_ticket_);
        update_gauges();
        return wrote;
    }

    // ---- reading ----

    std::optional<spooled_message> read_message(std::uint64_t seq) {
        const auto m = log.read_message(seq);
        if (!m) {
            return std::nullopt;
        }
        spooled_message out;
        out.sequence = seq;
        out.attempt = delivery.attempt(seq);
        out.appended_ns = m->payload.appended_ns;
        out.header = m->payload.header;
        out.body = m->payload.body;
        return out;
    }

    std::uint64_t purge() {
        std::uint64_t n = 0;
        for_each(0, [&](const spooled_message& msg, bool settled) {
            if (!settled && !delivery.in_flight(msg.sequence)) {
                const std::uint64_t bytes = msg.header.size() + msg.body.size();
                delivery.forget(msg.sequence);
                delivery.settle(msg.sequence, bytes);
                queue.dropped_purged(msg.sequence, bytes);
                ctx.m.dropped_purged->add();
                ++n;
            }
            return true;
        });
        return n;
    }

    void for_each(std::uint64_t from,
                  const std::function<bool(const spooled_message&, bool settled)>& fn) {
        detail::buffered_reader reader;
        for (auto& s : log.segments()) {
            if (s.end <= from) {
                continue;
            }
            std::uint64_t offset = 0;
            if (from > s.first) {
                offset = s.index[(from - s.first) / detail::index_stride];
            }
            while (offset < s.used) {
                std::size_t consumed = 0;
                auto r = log.read_record(reader, s, offset, &consumed);
                if (!r) {
                    break;
                }
                offset += consumed;
                if (r->type != spool_format::record_type::message || r->sequence < from) {
                    continue;
                }
                detail::message_payload mp;
                if (!detail::parse_message_payload(r->payload, mp)) {
                    continue;
                }
                spooled_message msg;
                msg.sequence = r->sequence;
                msg.attempt = delivery.attempt(r->sequence);
                msg.appended_ns = mp.appended_ns;
                msg.header = mp.header;
                msg.body = mp.body;
                if (!fn(msg, s.is_settled(r->sequence))) {
                    return;
                }
            }
        }
    }

    // ---- statistics ----

    [[nodiscard]] std::uint64_t undelivered() const noexcept {
        return delivery.undelivered(log.total_waiting) + queue.queued_messages();
    }

    void update_gauges() {
        ctx.m.messages->set(static_cast<std::int64_t>(waiting()));
        ctx.m.message_bytes->set(static_cast<std::int64_t>(waiting_bytes()));
        ctx.m.in_flight->set(static_cast<std::int64_t>(delivery.in_flight_count()));
        ctx.m.undelivered->set(static_cast<std::int64_t>(undelivered()));
        ctx.m.segments->set(static_cast<std::int64_t>(log.segments().size()));
        ctx.m.disk_bytes->set(static_cast<std::int64_t>(log.disk_bytes()));
    }

    std::int64_t oldest_ns() {
        for (auto& s : log.segments()) {
            if (s.waiting == 0) {
                continue;
            }
            for (std::uint64_t seq = s.first; seq < s.end; ++seq) {
                if (!s.is_settled(seq)) {
                    const auto msg = log.read_message(seq);
                    return msg ? msg->payload.appended_ns : 0;
                }
            }
        }
        return 0;
    }

    spool_stats stats() {
        spool_stats st = ctx.counts;
        st.messages = waiting();
        st.message_bytes = waiting_bytes();
        st.in_flight = delivery.in_flight_count();
        st.ready = st.messages - st.in_flight;
        st.undelivered = undelivered();
        const auto& segments = log.segments();
        st.segments = segments.size();
        st.disk_bytes = log.disk_bytes();
        st.log_start = segments.empty() ? log.next_seq : segments.front().first;
        st.next_sequence = log.next_seq;
        st.durable_sequence = log.next_seq;
        for (const auto& s : segments) {
            if (s.dirty) {
                st.durable_sequence = std::min(st.durable_sequence, s.first);
            }
        }
        st.oldest_ns = oldest_ns();
        st.groups = groups.size();
        st.newest_ns = log.newest_ns;
        st.read_only = log.failed();
        st.disk_full = log.disk_full();
        st.failure = log.failure();
        if (owner.dead_letters_) {
            st.dead_letter_messages = owner.dead_letters_->stats().messages;
        }
        ctx.m.oldest_age_ms->set(st.oldest_ns == 0 ? 0 : (ctx.now_ns() - st.oldest_ns) / 1'000'000);
        return st;
    }

    // Best effort at close: commit what is queued, sync, and keep the marker through a power
    // loss (after a clean close it covers everything).
    void close() {
        if (ctx.opt.read_only || log.failed()) {
            return;
        }
        if (queue.pending()) {
            commit();
        }
        for (auto& s : log.segments()) {
            if (s.dirty) {
                (void)log.sync(s);
            }
        }
        if (log.marker_fd >= 0 && !log.failed()) {
            (void)ctx.fs.sync_data(log.marker_fd);
        }
    }
};

// ---- dead letters back -----------------------------------------------------------------------

spool::requeue_report spool::impl::requeue_dead_letters(spool* dlq,
                                                        const std::optional<message_id>& only) {
    spool::requeue_report report;
    if (dlq == nullptr) {
        report.error = "this spool keeps no dead letters";
        return report;
    }
    if (!writable()) {
        report.error = log.failed() ? log.failure() : "the spool is open read-only";
        return report;
    }
    // 1. The dead letters to requeue, copied out (for_each's views die with the call).
    struct chosen_letter {
        std::uint64_t dead_sequence;
        message_id original;
        message_id fresh;
        std::string target;
        std::string header;
        std::string body;
    };
    std::vector<chosen_letter> chosen;
    dlq->for_each(0, [&](const spooled_message& m, bool settled) {
        if (settled) {
            return true;
        }
        header original;
        if (!decode_header(m.header.data(), m.header.size(), original).ok()) {
            ++report.undecodable;
            return true;
        }
        if (only && original.id != *only) {
            return true;
        }
        const std::string* group = original.find_user_header(sf::dead_letter_group_header);
        const std::string target = group != nullptr ? *group : std::string();
        if (target.empty() ? !ctx.opt.default_queue : groups.find(target) == nullptr) {
            ++report.no_group;
            return true;
        }
        header h = header::follow_up(original); // fresh id, correlation id kept, causation id
        h.type = original.type;
        h.reply_to = original.reply_to;
        h.content_type = original.content_type;
        h.sequence = original.sequence;
        h.publisher_id = original.publisher_id; // the pair (publisher id, sequence) stays whole
        h.attempt = 1;
        h.unknown = original.unknown; // keys zmqkit does not know pass on (wire-protocol §2)
        for (const auto& [name, value] : original.user_headers) {
            if (!name.starts_with(sf::dead_letter_header_prefix) &&
                name != sf::target_group_header) {
                h.user_headers.emplace_back(name, value);
            }
        }
        h.user_headers.emplace_back(sf::target_group_header, target);
        chosen.push_back(
            {m.sequence, original.id, h.id, target, encode_header(h), std::string(m.body)});
        return true;
    });
    // 2. Append and commit: the new messages are on disk before any dead letter is settled.
    std::uint64_t last_ticket = 0;
    for (const auto& c : chosen) {
        const auto r = append_targeted(c.header, c.body, c.target);
        if (r.outcome != append_result::status::appended) {
            report.error = "cannot append the requeued copy of " + c.original.to_string() + ": " +
                           (r.reason.empty() ? std::string("the spool is full") : r.reason);
            return report;
        }
        last_ticket = std::max(last_ticket, r.ticket);
    }
    if (!chosen.empty() && (!commit() || owner.committed_ticket_ < last_ticket)) {
        report.error = "cannot commit the requeued messages: " +
                       (log.failed() ? log.failure() : std::string("disk full"));
        return report;
    }
    // 3. Settle them in the dead-letter spool: deliver in order until each chosen one came by,
    //    ack it; others delivered on the way go back to its queue.
    std::vector<std::uint64_t> wanted;
    wanted.reserve(chosen.size());
    for (const auto& c : chosen) {
        wanted.push_back(c.dead_sequence);
        report.requeued.emplace_back(c.original, c.fresh);
    }
    std::sort(wanted.begin(), wanted.end());
    std::vector<std::uint64_t> passed_by;
    std::size_t settled = 0;
    while (settled < wanted.size()) {
        auto d = dlq->deliver();
        if (!d) {
            break;
        }
        if (std::binary_search(wanted.begin(), wanted.end(), d->sequence)) {
            (void)dlq->ack(d->sequence);
            ++settled;
        } else {
            passed_by.push_back(d->sequence);
        }
    }
    for (const auto seq : passed_by) {
        (void)dlq->requeue(seq, std::chrono::milliseconds(0));
    }
    if ((dlq->commit_pending() && !dlq->commit()) || dlq->stats().read_only) {
        report.unsettled = wanted.size();
        return report;
    }
    report.unsettled = wanted.size() - settled;
    return report;
}

// ---- spool ------------------------------------------------------------------------------------

spool::spool(spool_options options) : options_(std::move(options)) {
    if (options_.directory.empty()) {
        throw config_error("spool: no directory given");
    }
    if (options_.segment_bytes < 4096) {
        throw config_error("spool: segment size " + std::to_string(options_.segment_bytes) +
                           " bytes is too small (minimum 4096)");
    }
    if (options_.dead_letter_spool) {
        spool_options d = options_;
        d.directory = options_.directory / "dead-letter";
        d.dead_letter_spool = false;
        d.max_messages = 0;
        d.max_bytes = 0;
        d.name = options_.name + "-dead-letter";
        spool_file_system& fs = options_.fs != nullptr ? *options_.fs : posix_file_system();
        if (!options_.read_only) {
            if (const int e = fs.create_directory(options_.directory); e != 0) {
                throw spool_error("cannot create spool directory " + options_.directory.string() +
                                  ": " + detail::errno_text(e));
            }
        }
        std::vector<std::string> probe;
        if (!options_.read_only || fs.list(d.directory, probe) == 0) {
            dead_letters_ = std::make_unique<spool>(std::move(d));
        }
    }
    impl_ = std::make_unique<impl>(*this, options_);
    impl_->recover();
}

spool::~spool() {
    if (impl_) {
        try {
            impl_->close();
        } catch (...) { // NOLINT(bugprone-empty-catch): best effort at destruction
        }
    }
}

append_result spool::append(std::string_view header, std::string_view body) {
    return impl_->append(header, body, nullptr);
}
append_result spool::append(std::string_view header, std::string_view body, const message_id& id) {
    return impl_->append(header, body, &id);
}
bool spool::commit() {
    return impl_->commit();
}
bool spool::commit_pending() const noexcept {
    return impl_->queue.pending();
}
std::optional<spooled_message> spool::deliver() {
    return impl_->delivery.deliver();
}
bool spool::ack(std::uint64_t sequence) {
    return impl_->delivery.ack(sequence);
}
bool spool::requeue(std::uint64_t sequence, std::chrono::milliseconds delay, bool* dead_lettered) {
    return impl_->delivery.requeue(sequence, delay, dead_lettered);
}
bool spool::dead_letter(std::uint64_t sequence, std::string_view reason) {
    return impl_->delivery.dead_letter(sequence, reason);
}
std::optional<spooled_message> spool::read(std::uint64_t sequence) {
    return impl_->read_message(sequence);
}
void spool::for_each(std::uint64_t from_sequence,
                     const std::function<bool(const spooled_message&, bool)>& fn) {
    impl_->for_each(from_sequence, fn);
}
std::uint64_t spool::purge() {
    return impl_->purge();
}
spool_stats spool::stats() const {
    return impl_->stats();
}
std::optional<std::chrono::steady_clock::time_point> spool::next_redelivery() const {
    auto first = impl_->delivery.next_redelivery();
    if (const auto g = impl_->groups.next_redelivery(); g && (!first || *g < *first)) {
        first = g;
    }
    return first;
}

group_id spool::open_group(std::string_view name, const group_start& start) {
    if (const auto id = find_group(name)) {
        return *id;
    }
    impl_->require_writable();
    return impl_->groups.open(name, start, impl_->latest());
}

std::optional<group_id> spool::find_group(std::string_view name) const {
    const auto* g = impl_->groups.find(name);
    return g != nullptr ? std::optional<group_id>(g->ledger.id) : std::nullopt;
}

bool spool::reset_group(std::string_view name, const group_start& start) {
    impl_->require_writable();
    return impl_->groups.reset(name, start, impl_->latest());
}

bool spool::delete_group(std::string_view name) {
    impl_->require_writable();
    return impl_->groups.remove(name);
}

std::vector<group_info> spool::groups() const {
    std::vector<group_info> out;
    if (options_.default_queue) {
        const spool_stats st = stats();
        group_info d;
        d.start = "earliest";
        d.floor = st.log_start;
        d.cursor = impl_->delivery.cursor();
        d.pending = st.messages;
        d.in_flight = st.in_flight;
        d.undelivered = st.undelivered;
        d.acked = st.acked;
        d.redelivered = st.redelivered;
        d.dead_lettered = st.dead_lettered;
        d.lost = st.expired;
        out.push_back(std::move(d));
    }
    auto named = impl_->groups.list();
    out.insert(out.end(), std::make_move_iterator(named.begin()),
               std::make_move_iterator(named.end()));
    return out;
}

std::optional<spooled_message> spool::deliver(group_id group) {
    if (group == default_group) {
        return impl_->delivery.deliver();
    }
    auto* q = impl_->queue_of(group);
    return q != nullptr ? q->deliver() : std::nullopt;
}

bool spool::ack(group_id group, std::uint64_t sequence) {
    auto* q = impl_->queue_of(group);
    return q != nullptr && q->ack(sequence);
}

bool spool::requeue(group_id group, std::uint64_t sequence, std::chrono::milliseconds delay,
                    bool* dead_lettered) {
    auto* q = impl_->queue_of(group);
    return q != nullptr && q->requeue(sequence, delay, dead_lettered);
}

bool spool::return_unsent(group_id group, std::uint64_t sequence) {
    auto* q = impl_->queue_of(group);
    return q != nullptr && q->unsend(sequence);
}

bool spool::dead_letter(group_id group, std::uint64_t sequence, std::string_view reason) {
    auto* q = impl_->queue_of(group);
    return q != nullptr && q->dead_letter(sequence, reason);
}

spool::requeue_report spool::requeue_dead_letters(const std::optional<message_id>& only) {
    return impl_->requeue_dead_letters(dead_letters_.get(), only);
}

std::uint64_t spool::ready(group_id group) const {
    if (group == default_group) {
        const spool_stats st = stats();
        return st.ready;
    }
    auto* g = impl_->groups.find(group);
    return g != nullptr ? g->delivery.ready(g->ledger.waiting) : 0;
}

} // namespace zmqkit
