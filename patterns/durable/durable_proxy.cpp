// The durable forwarding proxy: producers' messages go to the spool and are confirmed once
// committed; consumers get them from the spool under credit, ack or nack them, and get them
// again after an ack timeout or their own disappearance. Frames: docs/wire-protocol.md §7.
#include <zmqkit/codec.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/patterns/durable.hpp>

#include "../common/device_support.hpp"
#include "durable_protocol.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <sstream>

namespace zmqkit::patterns {
namespace {

using clock = std::chrono::steady_clock;
namespace proto = durable_protocol;

void put_u64_be(char* out, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        out[i] = static_cast<char>(v & 0xff);
        v >>= 8;
    }
}

using detail::hex;
using detail::view;

device_settings durable_settings(const durable_proxy_options& o) {
    auto s = detail::logged_settings_of(o);
    s.reports_remaining = true;
    return s;
}

} // namespace

struct durable_proxy::impl {
    durable_proxy& self;
    durable_proxy_options& opt;

    std::optional<spool> sp;
    zmq::socket_t* frontend = nullptr;
    zmq::socket_t* frontend_pull = nullptr;
    zmq::socket_t* backend = nullptr;
    zmq::socket_t* backend_push = nullptr;

    // Confirms waiting for the commit that covers their append.
    struct pending_confirm {
        std::uint64_t ticket;
        std::string rid;
        bool delimiter; // REQ producer: the reply needs the empty frame
        message_id id;
        std::chrono::steady_clock::time_point taken; // when its pump round began
    };
    std::deque<pending_confirm> confirms;
    std::chrono::steady_clock::time_point round_began{}; // one clock read per pump round

    // Messages the spool could not take (block policy, disk full): reading stops until they
    // are in. More than one when the spool filled up in the middle of a batch: the rest of
    // the batch waits behind the first, in order.
    struct held_message {
        bool from_router = false;
        std::string rid;
        bool delimiter = false;
        message_id id;
        std::string header;
        std::string body;
    };
    std::deque<held_message> held;

    struct consumer_state {
        std::uint32_t credit = 0;
        std::uint32_t in_flight = 0;
        clock::time_point last_seen;
        std::uint64_t delivered = 0, acked = 0, nacked = 0;
        group_id group = default_group; // its consumer group (docs/wire-protocol.md §7.3)
        std::string group_name;         // empty: the default queue
    };
    std::unordered_map<std::string, consumer_state> consumers;
    std::vector<std::string> order; // round-robin order of consumers
    std::size_t next_consumer = 0;

    // A delivery in flight is one message of one group: the same sequence number can be in
    // flight to a consumer of each group.
    using flight_key = std::pair<group_id, std::uint64_t>;
    struct flight_hash {
        std::size_t operator()(const flight_key& k) const noexcept {
            return std::hash<std::uint64_t>{}(k.second ^ (std::uint64_t{k.first} << 48));
        }
    };
    struct flight {
        std::string rid;
        clock::time_point deadline;
        std::uint32_t attempt = 1;
    };
    std::unordered_map<flight_key, flight, flight_hash> inflight;
    std::deque<std::pair<clock::time_point, flight_key>> deadlines; // lazily pruned

    // Deliveries taken from the spool, sent after the commit that records them.
    struct outgoing {
        std::string rid; // empty: the PUSH backend
        group_id group;
        std::uint64_t tag;
        std::string header;
        zmq::message_t body;
    };
    std::vector<outgoing> outbox;
    std::vector<group_id> exhausted; // groups with nothing ready in this round of deliveries

    std::vector<zmq::message_t> frames;
    std::vector<std::string_view> views;
    std::vector<std::string_view> batch_entries;
    header scratch;
    bool push_blocked = false;
    bool disk_full_reported = false;
    bool read_only_reported = false;
    clock::time_point next_gauges{};

    // metrics
    counter* confirms_sent;
    histogram* confirm_latency;
    counter* rejects_sent;
    counter* duplicates;
    counter* malformed;
    counter* deliveries;
    counter* redeliveries;
    counter* ack_timeouts;
    counter* nacks;
    counter* dead_lettered;
    counter* dead_max_attempts; // zmqkit_durable_dead_letters_total{reason}
    counter* dead_rejected;
    counter* consumers_expired;
    counter* unknown_acks;
    counter* undeliverable;
    gauge* g_consumers;
    gauge* g_in_flight;
    gauge* g_depth;
    gauge* g_bytes;
    gauge* g_lag;
    gauge* g_credit;
    gauge* g_oldest_unacked_ms;
    gauge* g_held;

    impl(durable_proxy& s, durable_proxy_options& o) : self(s), opt(o) {
        auto& reg = o.registry != nullptr ? *o.registry : metrics_registry::global();
        const metric_labels l{{"component", o.name}};
        auto c = [&](const char* n, const char* h) -> counter* {
            return &reg.get_counter(n, h, l);
        };
        auto g = [&](const char* n, const char* h) -> gauge* { return &reg.get_gauge(n, h, l); };
        confirms_sent = c("zmqkit_durable_confirms_total", "Messages confirmed to producers");
        confirm_latency = &reg.get_histogram(
            "zmqkit_durable_confirm_seconds",
            "From a message read on the frontend to its confirm: the spool's commit (and fsync)",
            {}, l);
        rejects_sent = c("zmqkit_durable_rejects_total", "Messages rejected (full, read-only)");
        duplicates = c("zmqkit_durable_duplicates_total",
                       "Messages received again (same id): confirmed, not stored twice");
        malformed = c("zmqkit_durable_malformed_total",
                      "Malformed frames received on any socket and discarded");
        deliveries = c("zmqkit_durable_deliveries_total", "Deliveries sent to consumers");
        redeliveries = c("zmqkit_durable_redeliveries_total",
                         "Messages requeued for another delivery (timeout, nack, consumer lost)");
        ack_timeouts = c("zmqkit_durable_ack_timeouts_total", "Deliveries not acked in time");
        nacks = c("zmqkit_durable_nacks_total", "Deliveries nacked by consumers");
        dead_lettered =
            c("zmqkit_durable_dead_lettered_total", "Messages moved to the dead-letter spool");
        consumers_expired = c("zmqkit_durable_consumers_expired_total",
                              "Consumers that went silent past the consumer timeout");
        unknown_acks = c("zmqkit_durable_unknown_acks_total",
                         "Acks or nacks for tags not in flight to that consumer (late, repeated)");
        undeliverable = c("zmqkit_durable_undeliverable_total",
                          "Confirms or deliveries that could not be sent (peer gone or full)");
        g_consumers = g("zmqkit_durable_consumers", "Reliable consumers connected");
        g_in_flight = g("zmqkit_durable_in_flight", "Deliveries not yet acked");
        g_depth = g("zmqkit_durable_depth", "Messages in the spool not yet acked");
        g_bytes = g("zmqkit_durable_depth_bytes", "Payload bytes of those messages");
        g_lag = g("zmqkit_durable_consumer_lag", "Messages never delivered yet");
        g_credit = g("zmqkit_durable_consumer_credit",
                     "Deliveries the consumers would take now (their credit minus what they hold, "
                     "summed): 0 with a backlog means every consumer is busy");
        const auto by_reason = [&](const char* reason) {
            auto labels = l;
            labels.emplace("reason", reason);
            return &reg.get_counter("zmqkit_durable_dead_letters_total",
                                    "Messages dead-lettered, by reason (max_attempts: delivered "
                                    "that often without an ack; rejected: by a consumer)",
                                    labels);
        };
        dead_max_attempts = by_reason("max_attempts");
        dead_rejected = by_reason("rejected");
        g_oldest_unacked_ms = &reg.get_gauge("zmqkit_durable_oldest_unacked_age_seconds",
                                             "Age of the oldest message not acked", l, 1e-3);
        g_held = g("zmqkit_durable_backpressure",
                   "1 while producers are held back (spool full or disk full)");
        frames.reserve(8);
    }

    void log(const std::string& line) const { self.log(device::log_level::info, line); }
    void report_malformed(const std::string& where, const std::string& why) {
        self.report_malformed(where, why);
    }

    // ---- setup ----

    void open_sides() {
        spool_options so = opt.spool;
        if (so.name == "spool") {
            so.name = opt.name;
        }
        if (so.registry == nullptr) {
            so.registry = opt.registry;
        }
        if (!so.notice) {
            so.notice = [this](const std::string& line) {
                self.log(device::log_level::warning, "spool: " + line);
            };
        }
        try {
            sp.emplace(std::move(so)); // recovers; throws spool_error
        } catch (const spool_damaged_error& e) {
            // strict mode refused: keep what recovery found for recovery() (the exit code)
            std::lock_guard lock(self.recovery_mutex_);
            self.recovery_ = e.report();
            throw;
        }
        const auto& r = sp->recovery();
        {
            std::lock_guard lock(self.recovery_mutex_);
            self.recovery_ = r;
        }
        log("spool " + opt.spool.directory.string() + ": recovered " + std::to_string(r.messages) +
            " waiting messages from " + std::to_string(r.records) + " records in " +
            std::to_string(r.segments) + " segments in " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::milliseconds>(r.duration).count()) +
            " ms");
        for (const auto& f : r.findings) {
            log("spool recovery: " + f);
        }

        auto open = [&](const char* side, zmq::socket_type type, const std::string& spec,
                        const socket_security& security,
                        const std::function<void(zmq::socket_t&)>& configure = {}) {
            return spec.empty()
                       ? nullptr
                       : &self.open_side(side, type, spec, &opt.sockets, security, configure);
        };
        // ROUTER_MANDATORY: a confirm to a producer that left, or a delivery to a consumer
        // that left, fails at once (EHOSTUNREACH) instead of vanishing: the message is
        // requeued.
        const auto mandatory = [](zmq::socket_t& s) {
            s.set(zmq::sockopt::router_mandatory, true);
        };
        frontend = open("frontend", zmq::socket_type::router, opt.frontend, opt.frontend_security,
                        mandatory);
        frontend_pull =
            open("frontend-pull", zmq::socket_type::pull, opt.frontend_pull, opt.frontend_security);
        backend =
            open("backend", zmq::socket_type::router, opt.backend, opt.backend_security, mandatory);
        backend_push =
            open("backend-push", zmq::socket_type::push, opt.backend_push, opt.backend_security);
        for (auto* s : {frontend, frontend_pull, backend}) {
            if (s != nullptr) {
                self.watch(*s, [this] { pump(); });
            }
        }
        if (backend_push) {
            self.watch(
                *backend_push, ZMQ_POLLOUT,
                [this] {
                    self.set_watch_enabled(*backend_push, ZMQ_POLLOUT, false);
                    push_blocked = false;
                    pump();
                },
                false);
        }
        self.every(opt.tick, [this] { tick(); });
        update_gauges(self.now());
    }

    void update_reading() {
        const bool on = !self.paused() && held.empty();
        if (frontend) {
            self.set_watch_enabled(*frontend, on);
        }
        if (frontend_pull) {
            self.set_watch_enabled(*frontend_pull, on);
        }
        g_held->set(held.empty() ? 0 : 1);
    }

    // ---- the main step ----

    void pump() {
        for (int round = 0; round < 4; ++round) {
            bool work = false;
            if (!held.empty()) {
                retry_held(); // acks may have made room
            }
            round_began = self.now();
            if (!self.paused() && held.empty()) {
                work |= ingest_router(opt.batch);
                work |= ingest_pull(opt.batch);
            }
            work |= read_backend(opt.batch);
            if (!self.paused()) {
                work |= fill_deliveries(opt.batch);
            }
            if (!work && confirms.empty() && outbox.empty() && !sp->commit_pending()) {
                break;
            }
            commit_and_release();
            if (!work) {
                break;
            }
        }
    }

    // One multipart message into `frames` (0: none waiting; more than 16 frames: malformed).
    std::size_t receive(zmq::socket_t& s) { return detail::receive_multipart(s, frames, 16); }

    // Splits frames[first..n) into header bytes and body (inline or separate). False when
    // malformed (reason in `why`).
    bool split_message(std::size_t first, std::size_t n, std::string_view& header_bytes,
                       std::string_view& body, std::string& why) {
        const std::size_t count = n - first;
        if (count != 1 && count != 2) {
            why = "expected [header+body] or [header][body], got " + std::to_string(count) +
                  " frames";
            return false;
        }
        const auto& hf = frames[first];
        std::size_t header_size = 0;
        const decode_status st =
            decode_header(hf.data(), hf.size(), scratch, count == 1 ? &header_size : nullptr);
        if (!st) {
            why = st.message();
            return false;
        }
        if (count == 2) {
            header_size = hf.size();
            body = view(frames[first + 1]);
        } else {
            body = view(hf).substr(header_size);
        }
        header_bytes = view(hf).substr(0, header_size);
        if (scratch.id.is_nil()) {
            why = "the header has no message id";
            return false;
        }
        return true;
    }

    // Appends; queues the confirm or sends a reject. False when the spool is full (nothing
    // done: the caller holds the message).
    bool try_accept(bool from_router, std::string_view rid, bool delimiter, const message_id& id,
                    std::string_view header_bytes, std::string_view body) {
        const auto r = sp->append(header_bytes, body, id); // the caller decoded it
        switch (r.outcome) {
        case append_result::status::duplicate:
            duplicates->add();
            [[fallthrough]];
        case append_result::status::appended:
            if (self.log_enabled(device::log_level::debug)) { // -v: each message's path
                header h;
                (void)decode_header(header_bytes.data(), header_bytes.size(), h);
                const message_log_fields ids(h);
                self.log(device::log_level::debug,
                         r.outcome == append_result::status::appended
                             ? "stored"
                             : "stored already (a resent message is kept once)",
                         ids.fields());
            }
            if (from_router) {
                confirms.push_back({r.ticket, std::string(rid), delimiter, id, round_began});
            }
            return true;
        case append_result::status::full:
            return false;
        case append_result::status::rejected:
            rejects_sent->add();
            if (const auto unlogged = self.admit_event(device::log_level::warning, "rejected")) {
                header h;
                (void)decode_header(header_bytes.data(), header_bytes.size(), h);
                const message_log_fields ids(h);
                self.write_event(device::log_level::warning, "rejected a message: " + r.reason,
                                 *unlogged, ids);
            }
            if (from_router) {
                send_reject(rid, delimiter, id, r.reason);
            }
            return true;
        }
        return true;
    }

    // try_accept, or hold the message (behind those already held) and stop reading.
    void accept(bool from_router, std::string_view rid, bool delimiter, const message_id& id,
                std::string_view header_bytes, std::string_view body) {
        if (held.empty() && try_accept(from_router, rid, delimiter, id, header_bytes, body)) {
            return;
        }
        held.push_back({from_router, std::string(rid), delimiter, id, std::string(header_bytes),
                        std::string(body)});
        update_reading();
    }

    // [BATCH][payload] (docs/wire-protocol.md §7.1): each entry is stored as if it had come
    // alone. A payload that does not split into entries is rejected as a whole (zero id); an
    // entry whose header does not decode gets its own REJECT and the others are stored.
    // Returns the number of entries (the read budget counts messages, not batches).
    std::size_t ingest_batch(bool from_router, std::string_view rid, bool delimiter,
                             std::string_view payload, const char* where) {
        std::string why;
        if (delimiter) {
            why = "a batch needs a DEALER producer (a REQ request gets a single reply)";
        } else if (!proto::parse_batch(payload, batch_entries, why)) {
            why.insert(0, "malformed batch: ");
        }
        if (!why.empty()) {
            report_malformed(where_text(where, rid), why);
            if (from_router) {
                send_reject(rid, delimiter, message_id{}, why);
            }
            return 1;
        }
        for (const std::string_view entry : batch_entries) {
            std::size_t header_size = 0;
            const decode_status st =
                decode_header(entry.data(), entry.size(), scratch, &header_size);
            if (!st || scratch.id.is_nil()) {
                why = "malformed: batch entry at offset ";
                why += std::to_string(static_cast<std::size_t>(entry.data() - payload.data()) -
                                      proto::batch_length_size);
                why += ": ";
                why += st ? std::string("the header has no message id") : st.message();
                report_malformed(where_text(where, rid), why);
                if (from_router) {
                    send_reject(rid, delimiter, message_id{}, why);
                }
                continue;
            }
            accept(from_router, rid, delimiter, scratch.id, entry.substr(0, header_size),
                   entry.substr(header_size));
        }
        return batch_entries.size();
    }

    static std::string where_text(const char* where, std::string_view rid) {
        std::string w(where);
        if (!rid.empty()) {
            w += " (from peer ";
            w += hex(rid);
            w += ")";
        }
        return w;
    }

    void send_reject(std::string_view rid, bool delimiter, const message_id& id,
                     std::string_view reason) {
        try {
            (void)frontend->send(zmq::buffer(rid), zmq::send_flags::sndmore);
            if (delimiter) {
                (void)frontend->send(zmq::message_t(), zmq::send_flags::sndmore);
            }
            (void)frontend->send(zmq::buffer(proto::reject), zmq::send_flags::sndmore);
            (void)frontend->send(zmq::buffer(id.data(), message_id::size),
                                 zmq::send_flags::sndmore);
            (void)frontend->send(zmq::buffer(reason), zmq::send_flags::dontwait);
            self.counters_.frontend_out->add();
        } catch (const zmq::error_t&) {
            undeliverable->add(); // producer gone
        }
    }

    bool ingest_router(std::size_t limit) {
        if (!frontend) {
            return false;
        }
        std::size_t done = 0;
        while (done < limit && held.empty()) {
            const std::size_t n = receive(*frontend);
            if (n == 0) {
                break;
            }
            ++done;
            std::size_t bytes = 0;
            for (std::size_t i = 0; i < n; ++i) {
                bytes += frames[i].size();
            }
            self.counters_.frontend_in->add();
            self.counters_.frontend_bytes_in->add(bytes);
            const std::string_view rid = view(frames[0]);
            const bool delimiter = n > 1 && frames[1].empty();
            const std::size_t first = delimiter ? 2 : 1;
            if (n == first + 2 && view(frames[first]) == proto::batch) {
                done += ingest_batch(true, rid, delimiter, view(frames[first + 1]), "frontend") - 1;
                continue;
            }
            std::string_view header_bytes, body;
            std::string why;
            if (n <= first || !split_message(first, n, header_bytes, body, why)) {
                if (n <= first) {
                    why = "no message frames";
                }
                report_malformed("frontend (from peer " + hex(rid) + ")", why);
                if (frontend && n > first) {
                    send_reject(rid, delimiter, message_id{}, "malformed: " + why);
                }
                continue;
            }
            accept(true, rid, delimiter, scratch.id, header_bytes, body);
        }
        return done > 0;
    }

    bool ingest_pull(std::size_t limit) {
        if (!frontend_pull) {
            return false;
        }
        std::size_t done = 0;
        while (done < limit && held.empty()) {
            const std::size_t n = receive(*frontend_pull);
            if (n == 0) {
                break;
            }
            ++done;
            std::size_t bytes = 0;
            for (std::size_t i = 0; i < n; ++i) {
                bytes += frames[i].size();
            }
            self.counters_.frontend_in->add();
            self.counters_.frontend_bytes_in->add(bytes);
            if (n == 2 && view(frames[0]) == proto::batch) {
                done += ingest_batch(false, {}, false, view(frames[1]), "pull frontend") - 1;
                continue;
            }
            std::string_view header_bytes, body;
            std::string why;
            if (!split_message(0, n, header_bytes, body, why)) {
                report_malformed("pull frontend", why);
                continue;
            }
            accept(false, {}, false, scratch.id, header_bytes, body);
        }
        return done > 0;
    }

    void retry_held() {
        if (held.empty() || self.paused()) {
            return;
        }
        while (!held.empty()) {
            const auto& h = held.front();
            if (!try_accept(h.from_router, h.rid, h.delimiter, h.id, h.header, h.body)) {
                return; // still full
            }
            held.pop_front();
        }
        update_reading();
    }

    // ---- consumers ----

    consumer_state& touch(const std::string& rid, clock::time_point now) {
        auto [it, fresh] = consumers.try_emplace(rid);
        if (fresh) {
            order.push_back(rid);
            g_consumers->set(static_cast<std::int64_t>(consumers.size()));
        }
        it->second.last_seen = now;
        return it->second;
    }

    void release_inflight(const flight_key& key) {
        const auto it = inflight.find(key);
        if (it == inflight.end()) {
            return;
        }
        const auto c = consumers.find(it->second.rid);
        if (c != consumers.end() && c->second.in_flight > 0) {
            --c->second.in_flight;
        }
        inflight.erase(it);
    }

    // attempt: the number of deliveries so far; the first retry waits `backoff`.
    std::chrono::milliseconds backoff_for(const flight_key& key) {
        const auto it = inflight.find(key);
        const std::uint32_t attempt = it == inflight.end() ? 1 : std::max(1u, it->second.attempt);
        auto d = opt.redelivery_backoff;
        for (std::uint32_t i = 1; i < attempt && d < opt.redelivery_backoff_max; ++i) {
            d *= 2;
        }
        return std::min(d, opt.redelivery_backoff_max);
    }

    // The header and delivery count of spooled message `seq`, for a per-message event line
    // (empty ids if it cannot be read).
    std::pair<header, std::uint32_t> spooled_ids(std::uint64_t seq) {
        std::pair<header, std::uint32_t> out{};
        if (const auto m = sp->read(seq)) {
            (void)decode_header(m->header.data(), m->header.size(), out.first);
            out.second = m->attempt;
        }
        return out;
    }

    // A per-message event: `text` with the message's ids, read from the spool only once the
    // line is admitted (enabled, and within its kind's rate). `deliveries`: the count to show
    // when the spool no longer knows it (a settled message).
    void message_event(device::log_level level, std::string_view kind, std::uint64_t seq,
                       const std::string& text, std::uint32_t delivered = 0) {
        const auto unlogged = self.admit_event(level, kind);
        if (!unlogged) {
            return;
        }
        const auto spooled = spooled_ids(seq);
        const message_log_fields ids(spooled.first);
        self.write_event(level,
                         text + " (sequence " + std::to_string(seq) + ", " +
                             std::to_string(std::max(delivered, spooled.second)) + " deliveries)",
                         *unlogged, ids);
    }

    // The record stays readable after a requeue or dead-letter until the next commit retires
    // its segment, so the event reads it afterwards, only when it is written.
    void requeue(const flight_key& key, std::chrono::milliseconds delay) {
        const auto [group, seq] = key;
        bool dead = false;
        if (sp->requeue(group, seq, delay, &dead)) {
            if (dead) {
                dead_lettered->add();
                dead_max_attempts->add();
                const auto max = sp->options().max_attempts;
                message_event(device::log_level::warning, "dead_lettered", seq,
                              "dead-lettered: delivered " + std::to_string(max) +
                                  " times without an ack",
                              max);
            } else {
                redeliveries->add();
                message_event(device::log_level::info, "redelivered", seq,
                              delay.count() > 0
                                  ? "redelivering in " + std::to_string(delay.count()) + " ms"
                                  : std::string("redelivering"));
            }
        }
        release_inflight(key);
    }

    // Requeues every delivery in flight to consumer rid, in sequence order. Returns how many.
    std::size_t requeue_deliveries_of(const std::string& rid) {
        std::vector<flight_key> theirs;
        for (const auto& [key, f] : inflight) {
            if (f.rid == rid) {
                theirs.push_back(key);
            }
        }
        std::sort(theirs.begin(), theirs.end());
        for (const auto& key : theirs) {
            requeue(key, std::chrono::milliseconds(0));
        }
        return theirs.size();
    }

    void drop_consumer(const std::string& rid, const char* why) {
        const std::size_t requeued = requeue_deliveries_of(rid);
        consumers.erase(rid);
        order.erase(std::remove(order.begin(), order.end(), rid), order.end());
        g_consumers->set(static_cast<std::int64_t>(consumers.size()));
        if (requeued > 0 || std::string_view(why) != "said BYE") {
            log("consumer " + hex(rid) + " " + why + "; " + std::to_string(requeued) +
                " unacked deliveries requeued");
        }
    }

    bool read_backend(std::size_t limit) {
        if (!backend) {
            return false;
        }
        std::size_t done = 0;
        const auto now = self.now();
        while (done < limit) {
            const std::size_t n = receive(*backend);
            if (n == 0) {
                break;
            }
            ++done;
            std::size_t bytes = 0;
            for (std::size_t i = 0; i < n; ++i) {
                bytes += frames[i].size();
            }
            self.counters_.backend_in->add();
            self.counters_.backend_bytes_in->add(bytes);
            const std::string rid(view(frames[0]));
            views.clear();
            for (std::size_t i = 1; i < n; ++i) {
                views.push_back(view(frames[i]));
            }
            std::string why;
            const auto c = proto::parse_consumer_command(views, why);
            if (!c) {
                report_malformed("backend (from consumer " + hex(rid) + ")", why);
                continue;
            }
            using kind = proto::consumer_command::kind;
            if (c->what == kind::leaving) {
                if (consumers.count(rid) != 0) {
                    drop_consumer(rid, "said BYE");
                }
                continue;
            }
            auto& state = touch(rid, now);
            if (c->what == kind::pending_query) {
                answer_pending(rid, state);
                continue;
            }
            if (c->what == kind::credit_window && !join_group(rid, state, *c)) {
                state.credit = 0;
                continue;
            }
            if (c->what == kind::credit_window) {
                // Never more in flight than the backend queue holds: a delivery refused at
                // the high-water mark would count an attempt for nothing.
                state.credit =
                    opt.sockets.send_hwm > 0
                        ? std::min<std::uint32_t>(c->credit,
                                                  static_cast<std::uint32_t>(opt.sockets.send_hwm))
                        : c->credit;
                continue;
            }
            for (std::size_t i = 0; i < c->tag_count(); ++i) {
                const std::uint64_t seq = c->tag(i);
                const flight_key key{state.group, seq};
                const auto it = inflight.find(key);
                if (it == inflight.end() || it->second.rid != rid) {
                    unknown_acks->add();
                    continue;
                }
                if (c->what == kind::acked) {
                    if (self.log_enabled(device::log_level::debug)) {
                        const auto spooled = spooled_ids(seq);
                        const message_log_fields ids(spooled.first);
                        self.log(device::log_level::debug,
                                 "acked by consumer " + hex(rid) + " (sequence " +
                                     std::to_string(seq) + ")",
                                 ids.fields());
                    }
                    (void)sp->ack(key.first, seq);
                    ++state.acked;
                    release_inflight(key);
                    continue;
                }
                nacks->add();
                ++state.nacked;
                if (c->requeue) {
                    requeue(key, backoff_for(key));
                    continue;
                }
                const std::string reason =
                    c->reason.empty() ? std::string("rejected by the consumer")
                                      : "rejected by the consumer: " + std::string(c->reason);
                // The ids and delivery count are read before (a settled message's count is
                // gone), and only for a line that will be written.
                const auto unlogged = self.admit_event(device::log_level::warning, "dead_lettered");
                const auto spooled =
                    unlogged ? spooled_ids(seq) : std::pair<header, std::uint32_t>{};
                if (sp->dead_letter(key.first, seq, reason)) {
                    dead_lettered->add();
                    dead_rejected->add();
                    if (unlogged) {
                        const message_log_fields ids(spooled.first);
                        self.write_event(device::log_level::warning,
                                         "dead-lettered: " + reason + " (sequence " +
                                             std::to_string(seq) + ", " +
                                             std::to_string(spooled.second) + " deliveries)",
                                         *unlogged, ids);
                    }
                }
                release_inflight(key);
            }
        }
        return done > 0;
    }

    // A CREDIT's group: the consumer joins it (created at its start position when new). A
    // consumer that names another group than before leaves the old one first (its deliveries
    // are requeued there). False, with [ERROR][why] sent to it, when the group cannot be had:
    // a bad name or start, or a start the spool refuses (before the log start, in the future).
    bool join_group(const std::string& rid, consumer_state& state,
                    const proto::consumer_command& c) {
        if (c.group == state.group_name) {
            return true;
        }
        std::string why;
        group_id id = default_group;
        if (!c.group.empty()) {
            try {
                const auto start = c.start.empty() ? group_start{} : group_start::parse(c.start);
                id = sp->open_group(c.group, start);
            } catch (const zmqkit::error& e) {
                why = e.what();
            }
        } else if (!sp->options().default_queue) {
            why = "this proxy has no default queue (--default-queue off): name a consumer group";
        }
        if (!why.empty()) {
            report_malformed("backend (from consumer " + hex(rid) + ")",
                             "consumer group refused: " + why);
            send_error(rid, why);
            return false;
        }
        if (state.in_flight > 0) {
            (void)requeue_deliveries_of(rid);
        }
        state.group = id;
        state.group_name.assign(c.group);
        log("consumer " + hex(rid) + " joined " +
            (c.group.empty() ? std::string("the default queue")
                             : "consumer group '" + state.group_name + "'"));
        return true;
    }

    void send_error(const std::string& rid, const std::string& why) {
        try {
            if (backend->send(zmq::buffer(rid),
                              zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                (void)backend->send(zmq::buffer(proto::error_reply), zmq::send_flags::sndmore);
                (void)backend->send(zmq::buffer(why), zmq::send_flags::none);
            }
        } catch (const zmq::error_t&) {
            // it left meanwhile
        }
    }

    // [PENDING][ready][in flight to it] to a consumer that asked what is left (§7.3): after its
    // acks before the question (one socket, in order).
    void answer_pending(const std::string& rid, const consumer_state& state) {
        const std::string ready = std::to_string(sp->ready(state.group));
        const std::string in_flight = std::to_string(state.in_flight);
        try {
            if (backend->send(zmq::buffer(rid),
                              zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                (void)backend->send(zmq::buffer(proto::pending), zmq::send_flags::sndmore);
                (void)backend->send(zmq::buffer(ready), zmq::send_flags::sndmore);
                (void)backend->send(zmq::buffer(in_flight), zmq::send_flags::none);
            }
        } catch (const zmq::error_t&) {
            // EHOSTUNREACH: it left meanwhile; its consumer timeout cleans up.
        }
    }

    // Takes messages from the spool for consumers with credit; they leave after the commit.
    bool fill_deliveries(std::size_t limit) {
        std::size_t taken = 0;
        const auto now = self.now();
        // Reliable consumers, round robin over those with credit left whose group has
        // something ready (a group found empty is skipped for the rest of this round).
        exhausted.clear();
        while (taken < limit && !order.empty()) {
            std::string* target = nullptr;
            for (std::size_t k = 0; k < order.size(); ++k) {
                const std::size_t i = (next_consumer + k) % order.size();
                auto& c = consumers[order[i]];
                if (c.in_flight < c.credit &&
                    std::find(exhausted.begin(), exhausted.end(), c.group) == exhausted.end()) {
                    target = &order[i];
                    next_consumer = i + 1;
                    break;
                }
            }
            if (target == nullptr) {
                break;
            }
            auto& c = consumers[*target];
            auto m = sp->deliver(c.group);
            if (!m) {
                exhausted.push_back(c.group);
                continue;
            }
            ++c.in_flight;
            ++c.delivered;
            const auto deadline = now + opt.ack_timeout;
            const flight_key key{c.group, m->sequence};
            inflight[key] = flight{*target, deadline, m->attempt};
            deadlines.emplace_back(deadline, key);
            outbox.push_back(make_outgoing(*target, c.group, *m));
            ++taken;
        }
        // Best-effort consumers: as long as the PUSH socket has room.
        if (backend_push) {
            while (taken < limit) {
                if ((backend_push->get(zmq::sockopt::events) & ZMQ_POLLOUT) == 0) {
                    push_blocked = true;
                    break;
                }
                auto m = sp->deliver();
                if (!m) {
                    break;
                }
                outbox.push_back(make_outgoing({}, default_group, *m));
                ++taken;
            }
        }
        return taken > 0;
    }

    outgoing make_outgoing(const std::string& rid, group_id group, const spooled_message& m) {
        outgoing o{rid, group, m.sequence, {}, zmq::message_t(m.body.data(), m.body.size())};
        if (decode_header(m.header.data(), m.header.size(), scratch)) {
            scratch.attempt = std::max<std::uint32_t>(1, m.attempt);
            o.header = encode_header(scratch);
            if (self.log_enabled(device::log_level::debug)) {
                const message_log_fields ids(scratch);
                self.log(device::log_level::debug,
                         (rid.empty() ? std::string("delivering on the push backend")
                                      : "delivering to consumer " + hex(rid)) +
                             " (sequence " + std::to_string(m.sequence) + ", attempt " +
                             std::to_string(scratch.attempt) + ")",
                         ids.fields());
            }
        } else {
            o.header.assign(m.header); // cannot happen: the spool checked it on append
        }
        return o;
    }

    void send_deliveries() {
        std::vector<std::string> gone;
        for (auto& o : outbox) {
            if (o.rid.empty()) {
                send_push(o);
                continue;
            }
            if (const auto it = inflight.find({o.group, o.tag});
                it == inflight.end() || it->second.rid != o.rid) {
                continue; // its consumer left before the commit; it was requeued
            }
            char tag[8];
            put_u64_be(tag, o.tag);
            const std::size_t bytes = o.header.size() + o.body.size();
            bool sent = false;
            try {
                if (backend->send(zmq::buffer(o.rid),
                                  zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                    (void)backend->send(zmq::buffer(proto::deliver), zmq::send_flags::sndmore);
                    (void)backend->send(zmq::buffer(tag, 8), zmq::send_flags::sndmore);
                    (void)backend->send(zmq::buffer(o.header), zmq::send_flags::sndmore);
                    (void)backend->send(o.body, zmq::send_flags::none);
                    sent = true;
                }
            } catch (const zmq::error_t& e) {
                // EHOSTUNREACH: the consumer left. Its deliveries go back to the queue.
                if (e.num() == EHOSTUNREACH &&
                    std::find(gone.begin(), gone.end(), o.rid) == gone.end()) {
                    gone.push_back(o.rid);
                }
            }
            if (sent) {
                deliveries->add();
                self.counters_.backend_out->add();
                self.counters_.backend_bytes_out->add(bytes);
            } else {
                // Never sent (the queue to it is full, or it left): ready again, no attempt.
                undeliverable->add();
                (void)sp->return_unsent(o.group, o.tag);
                release_inflight({o.group, o.tag});
            }
        }
        outbox.clear();
        if (!gone.empty()) {
            // A consumer that acked and said BYE just before it closed: libzmq refuses sends to
            // it (EHOSTUNREACH) while its last ACKs and BYE still wait, readable, in the pipe.
            // Settle those first, so acked deliveries are not handed to someone else again.
            for (int i = 0; i < 64 && read_backend(256); ++i) {
            }
        }
        for (const auto& rid : gone) {
            if (consumers.count(rid) != 0) {
                drop_consumer(rid, "disconnected");
            }
        }
    }

    void send_push(outgoing& o) {
        const std::size_t bytes = o.header.size() + o.body.size();
        bool sent = false;
        try {
            if (backend_push->send(zmq::buffer(o.header),
                                   zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                (void)backend_push->send(o.body, zmq::send_flags::none);
                sent = true;
            }
        } catch (const zmq::error_t&) {
        }
        if (sent) {
            // Best effort: handed to libzmq counts as delivered.
            (void)sp->ack(o.tag);
            deliveries->add();
            self.counters_.backend_out->add();
            self.counters_.backend_bytes_out->add(bytes);
        } else {
            push_blocked = true;
            (void)sp->return_unsent(default_group, o.tag);
        }
    }

    // ---- commit, then confirms and deliveries ----

    void commit_and_release() {
        const bool wrote = sp->commit();
        bool failed = false;
        if (!wrote) {
            const auto st = sp->stats();
            failed = st.read_only;
            if (st.read_only && !read_only_reported) {
                read_only_reported = true;
                log("spool is read-only, nothing more is confirmed or delivered: " + st.failure);
            }
            if (st.disk_full && !disk_full_reported) {
                disk_full_reported = true;
                log("spool disk full: producers are held back until space returns (" +
                    opt.spool.directory.string() + ")");
            }
        }
        send_confirms();
        if (!failed) {
            send_deliveries();
        } else {
            // Not recorded: they stay in flight in memory and go out again after a restart.
            outbox.clear();
        }
        if (push_blocked && backend_push) {
            self.set_watch_enabled(*backend_push, ZMQ_POLLOUT, !self.paused());
        }
    }

    void send_confirms() {
        const std::uint64_t done = sp->committed_ticket();
        if (confirms.empty() || confirms.front().ticket > done) {
            return;
        }
        if (disk_full_reported) {
            disk_full_reported = false;
            log("spool disk space is back: confirming again");
        }
        // One CONFIRM per producer for this batch, ids concatenated.
        struct batch {
            std::string rid;
            bool delimiter;
            std::string ids;
            std::size_t count;
        };
        std::vector<batch> batches;
        std::size_t last = 0; // confirms come in runs per producer (a batch, a burst): try it first
        const auto now = self.now();
        while (!confirms.empty() && confirms.front().ticket <= done) {
            auto& pc = confirms.front();
            confirm_latency->observe(now - pc.taken);
            batch* b = nullptr;
            if (!pc.delimiter) {
                if (last < batches.size() && !batches[last].delimiter &&
                    batches[last].rid == pc.rid) {
                    b = &batches[last];
                } else {
                    for (std::size_t i = 0; i < batches.size(); ++i) {
                        if (!batches[i].delimiter && batches[i].rid == pc.rid) {
                            b = &batches[i];
                            last = i;
                            break;
                        }
                    }
                }
            }
            if (b == nullptr) { // a new producer, or REQ: one reply per request
                batches.push_back({std::move(pc.rid), pc.delimiter, {}, 0});
                last = batches.size() - 1;
                b = &batches.back();
            }
            b->ids.append(reinterpret_cast<const char*>(pc.id.data()), message_id::size);
            ++b->count;
            confirms.pop_front();
        }
        for (auto& b : batches) {
            bool sent = false;
            try {
                if (frontend->send(zmq::buffer(b.rid),
                                   zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                    if (b.delimiter) {
                        (void)frontend->send(zmq::message_t(), zmq::send_flags::sndmore);
                    }
                    (void)frontend->send(zmq::buffer(proto::confirm), zmq::send_flags::sndmore);
                    (void)frontend->send(zmq::buffer(b.ids), zmq::send_flags::none);
                    sent = true;
                }
            } catch (const zmq::error_t&) {
            }
            if (sent) {
                confirms_sent->add(b.count);
                self.counters_.frontend_out->add();
                self.counters_.frontend_bytes_out->add(b.ids.size() + proto::confirm.size());
            } else {
                undeliverable->add(b.count); // the producer resends and is confirmed then
            }
        }
    }

    // ---- timers ----

    void tick() {
        const auto now = self.now();
        // Ack timeouts (deadlines are in order: one ack_timeout after each delivery). Entries
        // of deliveries already settled go from the front at once, due or not: the queue holds
        // what is unacked (and what was acked behind it), not every delivery of the last
        // ack timeout.
        while (!deadlines.empty()) {
            const auto [deadline, key] = deadlines.front();
            const auto it = inflight.find(key);
            const bool settled = it == inflight.end() || it->second.deadline != deadline;
            if (!settled && deadline > now) {
                break;
            }
            deadlines.pop_front();
            if (settled) {
                continue;
            }
            ack_timeouts->add();
            requeue(key, backoff_for(key));
        }
        // Silent consumers.
        std::vector<std::string> gone;
        for (const auto& [rid, c] : consumers) {
            if (now - c.last_seen > opt.consumer_timeout) {
                gone.push_back(rid);
            }
        }
        for (const auto& rid : gone) {
            consumers_expired->add();
            drop_consumer(rid, "sent nothing for longer than the consumer timeout");
        }
        retry_held();
        pump();
        if (now >= next_gauges) {
            update_gauges(now);
            next_gauges = now + std::chrono::milliseconds(250);
        }
    }

    void update_gauges(clock::time_point) {
        const auto st = sp->stats();
        g_in_flight->set(static_cast<std::int64_t>(st.in_flight));
        g_depth->set(static_cast<std::int64_t>(st.messages));
        g_bytes->set(static_cast<std::int64_t>(st.message_bytes));
        g_lag->set(static_cast<std::int64_t>(st.undelivered));
        std::int64_t credit = 0;
        for (const auto& [rid, c] : consumers) {
            credit +=
                c.credit > c.in_flight ? static_cast<std::int64_t>(c.credit - c.in_flight) : 0;
        }
        g_credit->set(credit);
        const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count();
        g_oldest_unacked_ms->set(st.oldest_ns == 0 ? 0 : (now_ns - st.oldest_ns) / 1'000'000);
        if (st.groups > 0 || !group_gauges.empty()) {
            update_group_metrics();
        }
        if (st.read_only && !read_only_reported) {
            read_only_reported = true;
            log("spool is read-only, nothing more is confirmed or delivered: " + st.failure);
        }
    }

    // ---- control ----

    void pause(bool p) {
        update_reading();
        if (backend_push && p) {
            self.set_watch_enabled(*backend_push, ZMQ_POLLOUT, false);
        }
        if (!p) {
            pump();
        }
    }

    // docs/wire-protocol.md: "backpressure" while the spool or its disk is full. A full disk holds
    // confirms back even before a message waits in `held`.
    std::string state() {
        const auto st = sp->stats();
        return st.read_only                    ? "read-only"
               : self.paused()                 ? "paused"
               : !held.empty() || st.disk_full ? "backpressure"
                                               : "running";
    }

    void add_status(detail::status_object& status) {
        const auto st = sp->stats();
        const auto& r = sp->recovery();
        const std::int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count();
        using std::chrono::duration_cast;
        using std::chrono::milliseconds;
        auto& j = status.json;
        auto& spool_json = j["spool"];
        detail::set_text(spool_json, "directory", opt.spool.directory.string());
        spool_json["sync"] = opt.spool.sync.to_string();
        spool_json["messages"] = st.messages;
        spool_json["bytes"] = st.message_bytes;
        spool_json["ready"] = st.ready;
        spool_json["in_flight"] = st.in_flight;
        spool_json["consumer_lag"] = st.undelivered;
        spool_json["segments"] = st.segments;
        spool_json["disk_bytes"] = st.disk_bytes;
        spool_json["log_start"] = st.log_start;
        spool_json["next_sequence"] = st.next_sequence;
        spool_json["oldest_age_ms"] = st.oldest_ns == 0 ? 0 : (now_ns - st.oldest_ns) / 1'000'000;
        spool_json["appended"] = st.appended;
        spool_json["duplicates"] = st.duplicates;
        spool_json["acked"] = st.acked;
        spool_json["redelivered"] = st.redelivered;
        spool_json["dead_lettered"] = st.dead_lettered;
        spool_json["dead_letter_messages"] = st.dead_letter_messages;
        spool_json["dropped_full"] = st.dropped_full;
        spool_json["rejected_full"] = st.rejected_full;
        spool_json["commits"] = st.commits;
        spool_json["syncs"] = st.syncs;
        spool_json["sync_avg_us"] = st.syncs == 0 ? 0 : st.sync_ns_total / st.syncs / 1000;
        spool_json["sync_max_us"] = st.sync_ns_max / 1000;
        spool_json["avg_batch"] = st.commits == 0 ? 0 : st.committed_records / st.commits;
        spool_json["read_only"] = st.read_only;
        spool_json["disk_full"] = st.disk_full;
        detail::set_text(spool_json, "failure", st.failure);
        auto& recovery_json = j["recovery"];
        recovery_json["duration_ms"] = duration_cast<milliseconds>(r.duration).count();
        recovery_json["records"] = r.records;
        recovery_json["truncated_bytes"] = r.truncated_bytes;
        recovery_json["quarantined_files"] = r.quarantined_files.size();
        std::uint64_t lost = 0;
        for (const auto& l : r.lost) {
            lost += l.end - l.first;
        }
        recovery_json["lost_sequences"] = lost;
        j["confirms"] = confirms_sent->value();
        j["rejects"] = rejects_sent->value();
        j["deliveries"] = deliveries->value();
        j["redeliveries"] = redeliveries->value();
        j["ack_timeouts"] = ack_timeouts->value();
        j["nacks"] = nacks->value();
        j["malformed"] = malformed->value();
        auto& consumer_list = j["consumers"] = detail::status_document::array();
        const auto now = self.now();
        for (const auto& rid : order) {
            const auto& c = consumers[rid];
            auto& o = consumer_list.emplace_back();
            o["id"] = hex(rid);
            o["credit"] = c.credit;
            o["in_flight"] = c.in_flight;
            o["delivered"] = c.delivered;
            o["acked"] = c.acked;
            o["nacked"] = c.nacked;
            o["last_seen_ms"] = duration_cast<milliseconds>(now - c.last_seen).count();
            detail::set_text(o, "group", c.group_name);
        }
        j["groups"] = groups_json();
    }

    // ---- consumer groups ----

    // Every group (the default queue first, named ""), as STATUS and GROUPS show them.
    nlohmann::ordered_json groups_json() {
        auto list = nlohmann::ordered_json::array();
        for (const auto& g : sp->groups()) {
            std::size_t members = 0;
            for (const auto& [rid, c] : consumers) {
                members += c.group_name == g.name ? 1U : 0U;
            }
            auto& o = list.emplace_back();
            detail::set_text(o, "name", g.name);
            detail::set_text(o, "start", g.start);
            o["consumers"] = members;
            o["floor"] = g.floor;
            o["cursor"] = g.cursor;
            o["pending"] = g.pending;
            o["in_flight"] = g.in_flight;
            o["lag"] = g.undelivered;
            o["acked"] = g.acked;
            o["redelivered"] = g.redelivered;
            o["dead_lettered"] = g.dead_lettered;
            o["lost"] = g.lost;
        }
        return list;
    }

    // GROUPS | GROUP LIST | GROUP RESET <name> <start> | GROUP DELETE <name> (docs/operations.md).
    std::optional<std::vector<std::string>> group_command(const std::vector<std::string>& words) {
        const std::string verb = words.size() > 1 ? detail::upper(words[1]) : std::string();
        if (detail::upper(words[0]) == "GROUPS" || verb == "LIST") {
            if (words.size() > (detail::upper(words[0]) == "GROUPS" ? 1u : 2u)) {
                return std::vector<std::string>{"ERROR GROUP LIST takes no arguments"};
            }
            return std::vector<std::string>{groups_json().dump()};
        }
        if (verb != "RESET" && verb != "DELETE") {
            return std::vector<std::string>{
                "ERROR usage: GROUP LIST | GROUP RESET <name> <start> | GROUP DELETE <name>"};
        }
        const bool reset = verb == "RESET";
        if (words.size() != (reset ? 4u : 3u)) {
            return std::vector<std::string>{reset ? "ERROR usage: GROUP RESET <name> <start>"
                                                  : "ERROR usage: GROUP DELETE <name>"};
        }
        const std::string& name = words[2];
        if (!sp->find_group(name)) {
            return std::vector<std::string>{"ERROR no consumer group '" + name + "'"};
        }
        std::size_t members = 0;
        for (const auto& [rid, c] : consumers) {
            members += c.group_name == name ? 1U : 0U;
        }
        if (members > 0) {
            return std::vector<std::string>{
                "ERROR consumer group '" + name + "' has " + std::to_string(members) +
                " consumer(s) connected: stop them first (a group is reset or deleted only while "
                "nobody reads it)"};
        }
        try {
            if (reset) {
                (void)sp->reset_group(name, group_start::parse(words[3]));
            } else {
                (void)sp->delete_group(name);
            }
        } catch (const zmqkit::error& e) {
            return std::vector<std::string>{std::string("ERROR ") + e.what()};
        }
        (void)sp->commit();
        log(std::string(reset ? "reset" : "deleted") + " consumer group '" + name + "'" +
            (reset ? " to " + words[3] : std::string()));
        return std::vector<std::string>{"OK"};
    }

    // DLQ LIST [n] | DLQ REQUEUE <id>|ALL | DLQ PURGE: the dead letters of the running proxy.
    std::optional<std::vector<std::string>> dlq_command(const std::vector<std::string>& words) {
        const std::string verb = words.size() > 1 ? detail::upper(words[1]) : std::string();
        spool* dlq = sp->dead_letters();
        auto reply = [](std::string text) { return std::vector<std::string>{std::move(text)}; };
        if (dlq == nullptr) {
            return reply("ERROR this proxy's spool keeps no dead letters");
        }
        if (verb == "LIST" && words.size() <= 3) {
            std::uint64_t limit = 100;
            if (words.size() == 3) {
                const auto& n = words[2];
                const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), limit);
                if (ec != std::errc{} || end != n.data() + n.size()) {
                    return reply("ERROR usage: DLQ LIST [N] (N: how many to list, default 100)");
                }
            }
            return reply(dead_letters_json(*dlq, limit).dump());
        }
        if (verb == "REQUEUE" && words.size() == 3) {
            std::optional<message_id> only;
            if (detail::upper(words[2]) != "ALL") {
                only = message_id::parse(words[2]);
                if (!only) {
                    return reply("ERROR '" + words[2] + "' is not a message id (or ALL)");
                }
            }
            const auto r = sp->requeue_dead_letters(only);
            if (!r.error.empty()) {
                return reply("ERROR " + r.error);
            }
            if (only && r.requeued.empty()) {
                return reply("ERROR no dead letter with id " + only->to_string() +
                             " that could be requeued" +
                             (r.no_group > 0 ? " (its consumer group no longer exists)" : ""));
            }
            log("requeued " + std::to_string(r.requeued.size()) + " dead letter(s)" +
                (r.no_group > 0 ? "; " + std::to_string(r.no_group) +
                                      " left in place (their consumer group is gone)"
                                : std::string()));
            pump();
            return reply("OK requeued " + std::to_string(r.requeued.size()) +
                         (r.unsettled > 0 ? " (" + std::to_string(r.unsettled) +
                                                " still listed: settling failed)"
                                          : std::string()));
        }
        if (verb == "PURGE" && words.size() == 2) {
            const std::uint64_t n = dlq->purge();
            if (dlq->commit_pending() && !dlq->commit()) {
                return reply("ERROR cannot commit the purge: " + dlq->stats().failure);
            }
            log("purged " + std::to_string(n) + " dead letter(s)");
            return reply("OK purged " + std::to_string(n));
        }
        return reply("ERROR usage: DLQ LIST [N] | DLQ REQUEUE <id>|ALL | DLQ PURGE");
    }

    // The waiting dead letters (the first `limit`), as zmqkit-spooler dlq list --json shows them.
    static nlohmann::ordered_json dead_letters_json(spool& dlq, std::uint64_t limit) {
        auto list = nlohmann::ordered_json::array();
        std::uint64_t waiting = 0;
        dlq.for_each(0, [&](const spooled_message& m, bool settled) {
            if (settled) {
                return true;
            }
            if (++waiting > limit) {
                return true; // keep counting
            }
            header h;
            const bool decoded = decode_header(m.header.data(), m.header.size(), h).ok();
            auto text_or_null = [&](const char* name) {
                const std::string* v = h.find_user_header(name);
                return v != nullptr ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
            };
            auto& o = list.emplace_back();
            o["sequence"] = m.sequence;
            o["id"] = decoded ? nlohmann::ordered_json(h.id.to_string())
                              : nlohmann::ordered_json(nullptr);
            o["correlation_id"] = decoded && !h.correlation_id.is_nil()
                                      ? nlohmann::ordered_json(h.correlation_id.to_string())
                                      : nlohmann::ordered_json(nullptr);
            detail::set_text(o, "type", h.type);
            o["attempts"] = h.attempt;
            o["reason"] = text_or_null("zmqkit-dead-letter-reason");
            o["group"] = text_or_null(spool_format::dead_letter_group_header);
            o["original_sequence"] = text_or_null("zmqkit-dead-letter-sequence");
            o["dead_lettered_ns"] = m.appended_ns;
            o["body_bytes"] = m.body.size();
            return true;
        });
        nlohmann::ordered_json doc;
        doc["dead_letters"] = waiting;
        doc["listed"] = std::min(waiting, limit);
        doc["messages"] = std::move(list);
        return doc;
    }

    // Per-group gauges and the lost counter, labelled {component, group}.
    struct group_metrics {
        gauge* pending;
        gauge* lag;
        counter* lost;
        std::uint64_t lost_seen = 0;
    };
    std::map<std::string, group_metrics> group_gauges;

    void update_group_metrics() {
        auto& reg = opt.registry != nullptr ? *opt.registry : metrics_registry::global();
        for (const auto& g : sp->groups()) {
            auto it = group_gauges.find(g.name);
            if (it == group_gauges.end()) {
                const metric_labels l{{"component", opt.name}, {"group", g.name}};
                group_metrics m{
                    &reg.get_gauge("zmqkit_durable_group_pending",
                                   "Messages a consumer group has not settled", l),
                    &reg.get_gauge("zmqkit_durable_group_lag",
                                   "Messages a consumer group has not been delivered yet", l),
                    &reg.get_counter("zmqkit_durable_group_lost_total",
                                     "Messages retention removed before the group settled them", l),
                    0};
                it = group_gauges.emplace(g.name, m).first;
            }
            auto& m = it->second;
            m.pending->set(static_cast<std::int64_t>(g.pending));
            m.lag->set(static_cast<std::int64_t>(g.undelivered));
            if (g.lost > m.lost_seen) {
                m.lost->add(g.lost - m.lost_seen);
                m.lost_seen = g.lost;
            }
        }
    }

    // ---- stopping ----

    // Stop taking messages; commit and confirm what was taken; settle acks that arrive.
    drain_report drain(clock::time_point deadline) {
        if (frontend) {
            self.set_watch_enabled(*frontend, false);
        }
        if (frontend_pull) {
            self.set_watch_enabled(*frontend_pull, false);
        }
        (void)read_backend(opt.batch);
        commit_and_release();
        // Acks for what is in flight, while they come and time allows.
        while (!inflight.empty() && detail::before(deadline) && backend) {
            if (!detail::wait_for(*backend, ZMQ_POLLIN, deadline, std::chrono::milliseconds(100))) {
                break;
            }
            (void)read_backend(opt.batch);
            commit_and_release();
        }
        (void)sp->commit();
        // Unacked messages stay in the spool (not a loss). Messages held back unstored (spool
        // full) and those waiting on the PULL frontend (no confirm to resend them) are dropped.
        drain_report report;
        report.remaining_in_spool = sp->stats().messages;
        report.dropped =
            held.size() + (frontend_pull
                               ? detail::discard_waiting(*frontend_pull, self.counters_.frontend_in,
                                                         self.counters_.frontend_bytes_in)
                               : 0);
        held.clear();
        for (auto* s : {frontend, backend, backend_push}) {
            if (s != nullptr) {
                detail::linger_until(*s, deadline);
            }
        }
        return report;
    }
};

durable_proxy::durable_proxy(zmq::context_t& context, durable_proxy_options options)
    : device(context, options.name, durable_settings(options)), options_(std::move(options)) {
    detail::refuse_shared_security(options_.sockets, "durable proxy '" + options_.name + "'",
                                   "frontend_security, backend_security and control_security");
    if (options_.spool.directory.empty()) {
        throw config_error("durable proxy '" + options_.name + "': a spool directory is required");
    }
    if (options_.frontend.empty() && options_.frontend_pull.empty()) {
        throw config_error("durable proxy '" + options_.name +
                           "': a frontend (ROUTER, for confirmed producers) or a pull frontend "
                           "(PULL) endpoint is required");
    }
    if (options_.backend.empty() && options_.backend_push.empty()) {
        throw config_error("durable proxy '" + options_.name +
                           "': a backend (ROUTER, for acking consumers) or a push backend "
                           "(PUSH) endpoint is required");
    }
    detail::check_endpoints(
        {&options_.frontend, &options_.frontend_pull, &options_.backend, &options_.backend_push});
    if (options_.ack_timeout.count() <= 0 || options_.consumer_timeout.count() <= 0 ||
        options_.tick.count() <= 0 || options_.redelivery_backoff.count() < 0) {
        throw config_error("durable proxy '" + options_.name +
                           "': ack timeout, consumer timeout and tick must be positive");
    }
    options_.batch = std::max<std::size_t>(1, options_.batch);
    options_.redelivery_backoff_max =
        std::max(options_.redelivery_backoff_max, options_.redelivery_backoff);
    impl_ = std::make_unique<impl>(*this, options_);
    counters_ = device_counters::register_in(registry(), options_.name, "confirms, rejects",
                                             "credit, acks");
    count_malformed_in(*impl_->malformed);
}

durable_proxy::~durable_proxy() {
    stop(options_.drain_timeout);
}

void durable_proxy::open_sides() {
    impl_->open_sides();
}

std::optional<std::vector<std::string>>
durable_proxy::on_extra_command(const std::string& command) {
    std::vector<std::string> words;
    std::istringstream in(command);
    for (std::string w; in >> w;) {
        words.push_back(std::move(w));
    }
    if (words.empty()) {
        return std::nullopt;
    }
    const std::string first = detail::upper(words[0]);
    if (first == "DLQ") {
        return impl_->dlq_command(words);
    }
    if (first != "GROUP" && first != "GROUPS") {
        return std::nullopt;
    }
    return impl_->group_command(words);
}

std::vector<std::string> durable_proxy::extra_commands() const {
    return {"GROUPS", "GROUP LIST|RESET|DELETE", "DLQ LIST|REQUEUE|PURGE"};
}

void durable_proxy::on_pause(bool paused) {
    impl_->pause(paused);
}

drain_report durable_proxy::on_drain(time_point deadline) {
    return impl_->sp ? impl_->drain(deadline) : drain_report{0, 0};
}

std::string durable_proxy::status_state() {
    return impl_->state();
}

void durable_proxy::add_status(detail::status_object& status) {
    impl_->add_status(status);
}

void durable_proxy::after_close() noexcept {
    impl_->sp.reset(); // commits what is queued, closes the files, releases the lock
}

recovery_report durable_proxy::recovery() const {
    std::lock_guard lock(recovery_mutex_);
    return recovery_;
}

} // namespace zmqkit::patterns
