// The load-balancing broker: clients' requests go to the least recently used ready worker; a
// request is kept until its reply reached the client, so that a worker that dies, leaves or
// goes silent costs a re-dispatch, not a lost request. Frames: docs/wire-protocol.md §8.
#include <zmqkit/codec.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/patterns/load_balancer.hpp>

#include "../common/device_support.hpp"
#include "ppp_protocol.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <random>
#include <unordered_set>

namespace zmqkit::patterns {
namespace {

using clock = std::chrono::steady_clock;

using detail::copy_of;
using detail::hex;
using detail::send_all;
using detail::send_result;
using detail::view;

// The first address frame of a request to a worker with credit > 1 (docs/wire-protocol.md
// §8.2): the broker's 8-byte instance id, then the request's 8-byte tag. The worker returns it
// with the reply, which identifies the request whatever the order of the replies, and a reply
// meant for another broker (one that restarted) is not taken for one of this one's.
constexpr std::size_t tag_frame_size = 16;

std::uint64_t random_u64() {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ static_cast<std::uint64_t>(rd());
}

} // namespace

struct load_balancer::impl {
    load_balancer& self;
    load_balancer_options& opt;
    zmq::socket_t* frontend = nullptr;
    zmq::socket_t* backend = nullptr;

    struct request_state {
        std::vector<zmq::message_t> route;   // client routing id + address stack
        std::vector<zmq::message_t> content; // content frames
        bool envelope = false;
        header h;                     // envelope: the request's header (attempt kept current)
        std::uint32_t dispatches = 0; // sends to workers so far
        std::optional<clock::time_point> deadline;
        clock::time_point arrived; // for zmqkit_lb_request_seconds
        std::string worker;        // empty: queued
    };
    std::unordered_map<std::uint64_t, request_state> requests; // queued or in flight
    std::deque<std::uint64_t> queue;                           // tags waiting, oldest first
    std::unordered_map<message_id, std::uint64_t, message_id_hash> by_id;
    std::uint64_t next_tag = 1;
    std::size_t queued = 0;        // entries of `queue` still pending
    std::size_t with_deadline = 0; // pending requests that have a deadline

    struct worker_state {
        // Tags dispatched to it and not answered, oldest first (some may be abandoned: no
        // longer in `requests`, e.g. timed out; they still take credit until answered).
        std::vector<std::uint64_t> in_flight;
        // Of those, the ones the broker gave up on (answered with "timeout", or by another
        // worker) while it held them, oldest first, each with the time from which the worker
        // counts as stuck if it still holds it.
        std::vector<std::pair<std::uint64_t, clock::time_point>> given_up;
        std::uint32_t credit = 1; // > 1: its requests carry the tag frame
        bool ready = false;       // in ready_queue: it has free credit
        // Said READY with credit (zmqkit's): reads [header][body]; a plain 6/PPP worker gets an
        // envelope request as one frame [header+body].
        bool reads_both_layouts = false;
        ppp::dialect dialect = ppp::dialect::bytes; // heartbeats go in the one it spoke
        clock::time_point last_seen;
        std::uint64_t served = 0;
        [[nodiscard]] bool has_credit() const noexcept { return in_flight.size() < credit; }
    };
    std::unordered_map<std::string, worker_state> workers;
    std::deque<std::string> ready_queue; // least recently used first
    std::unordered_map<std::string, std::uint64_t> expired_by_id;
    // Workers cut off as stuck (see cut_off_stuck) until they say READY again, with the time
    // they were last heard from.
    std::unordered_map<std::string, clock::time_point> stuck;
    enum class worker_loss { disconnected, expired, stuck };

    std::vector<zmq::message_t> frames;
    std::vector<zmq::message_t> outgoing; // frames being sent (reused)
    std::vector<std::string_view> views;
    const std::uint64_t instance = random_u64(); // first half of every tag frame
    header scratch;
    bool draining = false;
    std::uint64_t frontend_sends = 0; // sends on each socket so far (see send_frontend)
    std::uint64_t backend_sends = 0;
    clock::time_point next_heartbeat{};

    counter* c_requests;
    counter* c_replies;
    histogram* h_round_trip;
    counter* c_errors;
    counter* c_redispatched;
    counter* c_duplicates;
    counter* c_late;
    counter* c_malformed;
    counter* c_expired;
    counter* c_disconnected;
    counter* c_stuck;
    counter* c_undeliverable;
    gauge* g_workers;
    gauge* g_ready;
    gauge* g_queued;
    gauge* g_in_flight;

    impl(load_balancer& s, load_balancer_options& o) : self(s), opt(o) {
        auto& reg = o.registry != nullptr ? *o.registry : metrics_registry::global();
        const metric_labels l{{"component", o.name}};
        auto c = [&](const char* n, const char* h) { return &reg.get_counter(n, h, l); };
        auto g = [&](const char* n, const char* h) { return &reg.get_gauge(n, h, l); };
        c_requests = c("zmqkit_lb_requests_total", "Requests accepted from clients");
        c_replies = c("zmqkit_lb_replies_total", "Worker replies forwarded to clients");
        h_round_trip = &reg.get_histogram(
            "zmqkit_lb_request_seconds",
            "From a request's arrival to its reply leaving for the client (queue + worker)", {}, l);
        c_errors = c("zmqkit_lb_error_replies_total",
                     "Error replies sent by the broker (attempts, timeout, busy)");
        c_redispatched = c("zmqkit_lb_redispatched_total",
                           "Requests dispatched again after their worker was lost");
        c_duplicates = c("zmqkit_lb_duplicate_requests_total",
                         "Resent requests joined to the pending one with the same id");
        c_late = c("zmqkit_lb_late_replies_total",
                   "Replies for requests no longer in flight (timed out, re-dispatched), dropped");
        c_malformed = c("zmqkit_lb_malformed_total", "Malformed messages dropped");
        c_expired = c("zmqkit_lb_workers_expired_total",
                      "Workers silent past heartbeat interval x liveness");
        c_disconnected = c("zmqkit_lb_workers_disconnected_total",
                           "Workers that sent DISCONNECT or were found unreachable");
        c_stuck = c("zmqkit_lb_workers_stuck_total",
                    "Workers cut off for holding a request past its deadline and a grace period");
        c_undeliverable = c("zmqkit_lb_undeliverable_total",
                            "Replies that could not go to their client (gone or full)");
        g_workers = g("zmqkit_lb_workers", "Workers known to the broker");
        g_ready = g("zmqkit_lb_workers_ready", "Workers waiting for a request");
        g_queued = g("zmqkit_lb_queued", "Requests waiting for a worker");
        g_in_flight = g("zmqkit_lb_in_flight", "Requests at workers");
        frames.reserve(8);
        outgoing.reserve(8);
    }

    [[nodiscard]] clock::time_point now() const { return self.now(); }
    [[nodiscard]] clock::duration expiry() const {
        return opt.heartbeat_interval * static_cast<std::int64_t>(opt.liveness);
    }

    void log(const std::string& line) const { self.log(device::log_level::info, line); }
    void report_malformed(const std::string& where, const std::string& why) {
        self.report_malformed(where, why);
    }

    void open_sides() {
        frontend = &self.open_side("frontend", zmq::socket_type::router, opt.frontend, &opt.sockets,
                                   opt.frontend_security, detail::configure_broker_frontend);
        backend = &self.open_side("backend", zmq::socket_type::router, opt.backend, &opt.sockets,
                                  opt.backend_security, detail::configure_broker_backend);
        self.watch(*frontend, [this] { read_frontend(); });
        self.watch(*backend, [this] { read_backend(); });
        next_heartbeat = now() + opt.heartbeat_interval;
        self.every(opt.tick, [this] { tick(); });
    }

    // Receives one multipart message into `frames`; returns its frame count (0: none).
    std::size_t receive(zmq::socket_t& s) { return detail::receive_multipart(s, frames); }

    // Every send goes through these two: a handler tells the actor loop that it drained a
    // socket (note_drained) only if nothing was sent on it after the receive that found it
    // empty.
    send_result send_frontend(std::vector<zmq::message_t>& out) {
        ++frontend_sends;
        return send_all(*frontend, out, self.counters_.frontend_out,
                        self.counters_.frontend_bytes_out);
    }
    send_result send_backend(std::vector<zmq::message_t>& out) {
        ++backend_sends;
        return send_all(*backend, out, self.counters_.backend_out,
                        self.counters_.backend_bytes_out);
    }

    void make_views(std::size_t first, std::size_t n) {
        views.clear();
        for (std::size_t i = first; i < n; ++i) {
            views.push_back(view(frames[i]));
        }
    }

    // ---- frontend ----

    void read_frontend() {
        bool drained = false;
        for (std::size_t round = 0; round < opt.batch && !self.paused() && !draining; ++round) {
            const std::size_t n = receive(*frontend);
            if (n == 0) {
                drained = true;
                break;
            }
            std::size_t bytes = 0;
            for (std::size_t i = 0; i < n; ++i) {
                bytes += frames[i].size();
            }
            self.counters_.frontend_in->add();
            self.counters_.frontend_bytes_in->add(bytes);
            if (n > 65) {
                report_malformed("frontend", "more than 64 frames");
                continue;
            }
            make_views(1, n);
            std::string why;
            const auto stack = ppp::parse_client_request(views, why);
            if (!stack) {
                report_malformed("frontend", why);
                continue;
            }
            accept_request(n, 1 + *stack);
        }
        const auto sends = frontend_sends;
        dispatch(); // may answer an expired request on the frontend
        if (drained && frontend_sends == sends) {
            self.note_drained(*frontend);
        }
    }

    // frames[0, route_end) is the route, frames[route_end] the delimiter, then the content.
    void accept_request(std::size_t n, std::size_t route_end) {
        request_state r;
        const std::size_t first = route_end + 1;
        const std::size_t count = n - first;
        if (count == 1 || count == 2) {
            std::size_t header_size = 0;
            const auto st = decode_header(frames[first].data(), frames[first].size(), scratch,
                                          count == 1 ? &header_size : nullptr);
            r.envelope = st.ok() && !scratch.id.is_nil();
        }
        for (std::size_t i = 0; i < route_end; ++i) {
            r.route.push_back(std::move(frames[i]));
        }
        if (r.envelope) {
            if (const auto it = by_id.find(scratch.id); it != by_id.end()) {
                // A retry of a request still pending (possibly from a fresh socket): its
                // reply goes to the newest sender; it is not run twice.
                c_duplicates->add();
                requests[it->second].route = std::move(r.route);
                return;
            }
            r.h = scratch;
        }
        for (std::size_t i = first; i < n; ++i) {
            r.content.push_back(std::move(frames[i]));
        }
        if (queued >= opt.max_queued) {
            send_error(r, lb_error::queue_full,
                       std::to_string(queued) + " requests are waiting for a worker already");
            return;
        }
        const auto t = now();
        r.arrived = t;
        if (opt.request_timeout.count() > 0) {
            r.deadline = t + opt.request_timeout;
        }
        if (r.envelope) {
            if (const auto* d = r.h.find_user_header(lb_deadline_header)) {
                std::int64_t unix_ms = 0;
                const auto [p, ec] = std::from_chars(d->data(), d->data() + d->size(), unix_ms);
                if (ec == std::errc() && p == d->data() + d->size()) {
                    const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count();
                    const auto at = t + std::chrono::milliseconds(unix_ms - wall);
                    r.deadline = r.deadline ? std::min(*r.deadline, at) : at;
                }
            }
        }
        const std::uint64_t tag = next_tag++;
        if (r.deadline) {
            ++with_deadline;
        }
        if (r.envelope) {
            by_id.emplace(r.h.id, tag);
        }
        requests.emplace(tag, std::move(r));
        queue.push_back(tag);
        ++queued;
        c_requests->add();
    }

    // Answers a request with an error and forgets it (the caller erases it from `requests`).
    void send_error(request_state& r, std::string_view code, const std::string& reason) {
        std::vector<zmq::message_t> out;
        for (const auto& f : r.route) {
            out.push_back(copy_of(f));
        }
        out.emplace_back();
        if (r.envelope) {
            header h = header::follow_up(r.h);
            h.type = lb_error::type;
            h.content_type = "text/plain";
            h.set_user_header(lb_error::header_name, code);
            out.emplace_back(encode_header(h) + reason);
        } else {
            out.emplace_back("ERROR " + std::string(code) + ": " + reason);
        }
        c_errors->add();
        if (send_frontend(out) != send_result::sent) {
            c_undeliverable->add();
        }
    }

    void forget(std::uint64_t tag) {
        const auto it = requests.find(tag);
        if (it == requests.end()) {
            return;
        }
        if (it->second.envelope) {
            by_id.erase(it->second.h.id);
        }
        if (it->second.deadline) {
            --with_deadline;
        }
        if (it->second.worker.empty()) {
            --queued; // its entry in `queue` is skipped when reached
        } else if (const auto w = workers.find(it->second.worker);
                   w != workers.end() &&
                   std::find(w->second.in_flight.begin(), w->second.in_flight.end(), tag) !=
                       w->second.in_flight.end()) {
            // Given up (timed out, or answered by another worker) while this worker has it:
            // its slot stays taken, as it may still answer (the reply is then dropped); if it
            // has not within the grace, it is stuck (cut_off_stuck).
            w->second.given_up.emplace_back(tag, now() + expiry());
        }
        requests.erase(it);
    }

    void fail(std::uint64_t tag, std::string_view code, const std::string& reason) {
        const auto it = requests.find(tag);
        if (it == requests.end()) {
            return;
        }
        // Each failed request, with its ids when it came in an envelope (built only for a line
        // that is written).
        if (const auto held = self.admit_event(device::log_level::warning, code)) {
            const std::string text = "request failed (" + std::string(code) + "): " + reason;
            if (it->second.envelope) {
                const message_log_fields ids(it->second.h);
                self.write_event(device::log_level::warning, text, *held, ids);
            } else {
                self.write_event(device::log_level::warning, text, *held);
            }
        }
        send_error(it->second, code, reason);
        forget(tag);
    }

    // ---- dispatch ----

    void dispatch() {
        while (!draining && !queue.empty() && !ready_queue.empty()) {
            const std::uint64_t tag = queue.front();
            queue.pop_front();
            const auto it = requests.find(tag);
            if (it == requests.end() || !it->second.worker.empty()) {
                continue; // answered or forgotten while waiting
            }
            --queued;
            auto& r = it->second;
            if (r.deadline && now() >= *r.deadline) {
                r.worker = "-"; // not queued any more (forget() must not count it)
                fail(tag, lb_error::timeout, "the deadline passed before a worker was free");
                continue;
            }
            const std::string rid = ready_queue.front();
            ready_queue.pop_front();
            auto& w = workers[rid];
            w.ready = false;
            if (!w.has_credit()) {
                continue; // cannot happen (a worker is queued only with free credit); be safe
            }
            if (r.dispatches > 0 && r.envelope) {
                // Tell the worker this is another attempt: re-encode the header.
                r.h.attempt += 1;
                const bool inline_body = r.content.size() == 1;
                std::string frame = encode_header(r.h);
                if (inline_body) {
                    std::size_t header_size = 0;
                    (void)decode_header(r.content[0].data(), r.content[0].size(), scratch,
                                        &header_size);
                    frame += view(r.content[0]).substr(header_size);
                }
                r.content[0] = zmq::message_t(frame.data(), frame.size());
            }
            outgoing.clear();
            outgoing.emplace_back(rid.data(), rid.size());
            if (w.credit > 1) {
                char tag_frame[tag_frame_size];
                std::memcpy(tag_frame, &instance, sizeof instance);
                std::memcpy(tag_frame + sizeof instance, &tag, sizeof tag);
                outgoing.emplace_back(tag_frame, sizeof tag_frame);
            }
            for (const auto& f : r.route) {
                outgoing.push_back(copy_of(f));
            }
            outgoing.emplace_back();
            if (r.envelope && r.content.size() == 2 && !w.reads_both_layouts) {
                // [header][body] would be two content frames, which 6/PPP workers written like
                // the zguide's (exactly 3 frames) drop as invalid: one frame, as every zmqkit
                // reader accepts too.
                outgoing.push_back(joined(r.content[0], r.content[1]));
            } else {
                for (const auto& f : r.content) {
                    outgoing.push_back(copy_of(f));
                }
            }
            const auto sent = send_backend(outgoing);
            if (sent != send_result::sent) {
                // Gone (or hopelessly full): this worker is lost; the request waits again.
                if (r.dispatches > 0 && r.envelope) {
                    r.h.attempt -= 1;
                }
                queue.push_front(tag);
                ++queued;
                remove_worker(rid, worker_loss::disconnected);
                continue;
            }
            ++r.dispatches;
            r.worker = rid;
            w.in_flight.push_back(tag);
            if (w.has_credit()) {
                // Credit left: it takes its turn again behind the others (LRU-fair).
                w.ready = true;
                ready_queue.push_back(rid);
            }
        }
        update_gauges();
    }

    // The worker's requests (if any) wait again at the front of the queue, in the order they
    // were dispatched to it, or fail when they had all their attempts.
    void requeue_in_flight(worker_state& w, const std::string& rid, const char* what) {
        for (auto t = w.in_flight.rbegin(); t != w.in_flight.rend(); ++t) {
            const std::uint64_t tag = *t;
            const auto it = requests.find(tag);
            if (it == requests.end() || it->second.worker != rid) {
                continue; // abandoned (timed out, or answered by an earlier worker) already
            }
            auto& r = it->second;
            if (r.dispatches >= opt.max_attempts) {
                fail(tag, lb_error::attempts,
                     "no reply after " + std::to_string(r.dispatches) +
                         " attempts (the last worker, " + hex(rid) + ", " + what + ")");
                continue;
            }
            r.worker.clear();
            queue.push_front(tag);
            ++queued;
            c_redispatched->add();
        }
        w.in_flight.clear();
        w.given_up.clear();
    }

    void remove_worker(const std::string& rid, worker_loss why) {
        const auto it = workers.find(rid);
        if (it == workers.end()) {
            return;
        }
        requeue_in_flight(it->second, rid,
                          why == worker_loss::expired ? "expired"
                          : why == worker_loss::stuck ? "was stuck"
                                                      : "disconnected");
        if (it->second.ready) {
            ready_queue.erase(std::remove(ready_queue.begin(), ready_queue.end(), rid),
                              ready_queue.end());
        }
        workers.erase(it);
        if (why == worker_loss::stuck) {
            c_stuck->add();
        } else if (why == worker_loss::expired) {
            c_expired->add();
            if (expired_by_id.size() >= 4096) {
                expired_by_id.clear(); // bounded memory under worker churn
            }
            ++expired_by_id[rid];
            log("worker " + hex(rid) + " expired (silent for more than " +
                std::to_string(
                    std::chrono::duration_cast<std::chrono::milliseconds>(expiry()).count()) +
                " ms)");
        } else {
            c_disconnected->add();
        }
    }

    // A worker that still holds a request the broker gave up on (answered with "timeout", or
    // by another worker's reply) a grace period (heartbeat_interval x liveness) later is stuck: it
    // heartbeats, so it is alive, but it lost the request or its handler hangs. Its slot cannot
    // simply be freed: without a tag, a reply that comes after all would be taken for the next
    // request's. So the worker is dropped (its other requests go to other workers), and gets no
    // more heartbeats, so that a 6/PPP worker reconnects and starts over with READY; until it says
    // READY, whatever it sends is ignored (a reply is counted as late).
    void cut_off_stuck(const std::string& rid, clock::time_point t) {
        log("worker " + hex(rid) + " is stuck: it still holds a request " +
            std::to_string(
                std::chrono::duration_cast<std::chrono::milliseconds>(expiry()).count()) +
            " ms after the broker gave up on it (its client was answered); it gets no more "
            "requests and no heartbeats until it says READY again");
        if (stuck.size() >= 4096) {
            stuck.clear(); // bounded memory under worker churn
        }
        stuck[rid] = t;
        remove_worker(rid, worker_loss::stuck);
    }

    // [header][body] as one frame [header+body] (a copy: only for plain 6/PPP workers).
    static zmq::message_t joined(const zmq::message_t& head, const zmq::message_t& body) {
        zmq::message_t m(head.size() + body.size());
        std::memcpy(m.data(), head.data(), head.size());
        if (!body.empty()) {
            std::memcpy(static_cast<char*>(m.data()) + head.size(), body.data(), body.size());
        }
        return m;
    }

    void make_ready(const std::string& rid, worker_state& w) {
        if (!w.ready && w.has_credit()) {
            w.ready = true;
            ready_queue.push_back(rid);
        }
    }

    // ---- backend ----

    void read_backend() {
        bool drained = false;
        for (std::size_t round = 0; round < opt.batch; ++round) {
            const std::size_t n = receive(*backend);
            if (n == 0) {
                drained = true;
                break;
            }
            std::size_t bytes = 0;
            for (std::size_t i = 0; i < n; ++i) {
                bytes += frames[i].size();
            }
            self.counters_.backend_in->add();
            self.counters_.backend_bytes_in->add(bytes);
            if (n > 65) {
                report_malformed("backend", "more than 64 frames");
                continue;
            }
            make_views(1, n);
            std::string why;
            const auto m = ppp::parse_worker_message(views, why);
            std::string rid(view(frames[0]));
            if (!m) {
                report_malformed("backend", "from worker " + hex(rid) + ": " + why);
                continue;
            }
            const auto t = now();
            auto found = workers.find(rid);
            if (m->what == ppp::worker_message::kind::disconnect) {
                stuck.erase(rid);
                if (found != workers.end()) {
                    remove_worker(rid, worker_loss::disconnected);
                }
                continue;
            }
            if (const auto cut = stuck.find(rid); cut != stuck.end()) {
                if (m->what != ppp::worker_message::kind::ready) {
                    // Cut off until it starts over: a reply now is one the client was told
                    // "timeout" for, or would be taken for the next request's.
                    cut->second = t;
                    if (m->what == ppp::worker_message::kind::reply) {
                        c_late->add();
                    }
                    continue;
                }
                stuck.erase(cut);
            }
            if (found == workers.end()) {
                // READY, or any sign of life from a worker this broker does not know (it was
                // connected to a broker that restarted): it is idle and can take requests.
                found = workers.emplace(rid, worker_state{}).first;
            }
            auto& w = found->second;
            w.last_seen = t;
            switch (m->what) {
            case ppp::worker_message::kind::ready:
                if (m->credit_rejected) {
                    report_malformed("backend", "from worker " + hex(rid) + ": " + why);
                }
                // A worker that says READY again lost its conversation: its requests are lost.
                requeue_in_flight(w, rid, "restarted its conversation");
                w.credit = std::min(m->credit, opt.max_prefetch);
                w.reads_both_layouts = m->credit_announced;
                w.dialect = m->spoken;
                make_ready(rid, w);
                break;
            case ppp::worker_message::kind::heartbeat:
                w.dialect = m->spoken;
                make_ready(rid, w);
                break;
            case ppp::worker_message::kind::reply:
                handle_reply(w, n, 1 + m->envelope_size);
                make_ready(rid, w);
                break;
            case ppp::worker_message::kind::disconnect:
                break;
            }
        }
        const auto sends = backend_sends;
        dispatch();
        if (drained && backend_sends == sends) {
            self.note_drained(*backend);
        }
    }

    // The tag of a reply whose first address frame is one of this broker's tag frames.
    [[nodiscard]] std::optional<std::uint64_t> reply_tag(std::size_t delimiter) const {
        if (delimiter < 3 || frames[1].size() != tag_frame_size ||
            std::memcmp(frames[1].data(), &instance, sizeof instance) != 0) {
            return std::nullopt;
        }
        std::uint64_t tag = 0;
        std::memcpy(&tag, static_cast<const char*>(frames[1].data()) + sizeof instance, sizeof tag);
        return tag;
    }

    // frames[1, delimiter) is the reply's address stack, then the delimiter, then the content.
    void handle_reply(worker_state& w, std::size_t n, std::size_t delimiter) {
        std::uint64_t tag = 0;
        if (const auto tagged = reply_tag(delimiter)) {
            // A worker with credit: the tag names the request. The first reply to a request
            // wins, from whichever worker had it (one that expired may still answer first);
            // a later one finds it gone and is late.
            tag = *tagged;
            if (const auto at = std::find(w.in_flight.begin(), w.in_flight.end(), tag);
                at != w.in_flight.end()) {
                w.in_flight.erase(at);
            }
            std::erase_if(w.given_up, [tag](const auto& g) { return g.first == tag; });
        } else if (w.credit == 1 && w.in_flight.size() == 1) {
            // One request at a time (6/PPP): the reply is to the one it has.
            tag = w.in_flight.front();
            w.in_flight.clear();
            w.given_up.clear();
        } else {
            // No request here (the worker was forgotten or said READY again since), or a worker
            // with credit that did not return the tag frame: nothing tells which request it is.
            c_late->add();
            return;
        }
        const auto it = requests.find(tag);
        if (it == requests.end() || it->second.dispatches == 0) {
            c_late->add(); // gone (answered, timed out): dropped
            return;
        }
        // (A request waiting in the queue again after its worker was lost is answered too.)
        ++w.served;
        auto& r = it->second;
        outgoing.clear();
        for (auto& f : r.route) {
            outgoing.push_back(std::move(f));
        }
        outgoing.emplace_back();
        for (std::size_t i = delimiter + 1; i < n; ++i) {
            outgoing.push_back(std::move(frames[i]));
        }
        c_replies->add();
        h_round_trip->observe(now() - r.arrived);
        if (send_frontend(outgoing) != send_result::sent) {
            c_undeliverable->add();
        }
        forget(tag);
    }

    // ---- timers ----

    void tick() {
        const auto t = now();
        if (t >= next_heartbeat) {
            next_heartbeat = t + opt.heartbeat_interval;
            std::vector<std::string> gone;
            for (const auto& [rid, w] : workers) {
                std::vector<zmq::message_t> out;
                out.emplace_back(rid.data(), rid.size());
                const auto heartbeat = ppp::heartbeat_in(w.dialect);
                out.emplace_back(heartbeat.data(), heartbeat.size());
                if (send_backend(out) == send_result::unreachable) {
                    gone.push_back(rid);
                }
            }
            for (const auto& rid : gone) {
                remove_worker(rid, worker_loss::disconnected);
            }
        }
        std::vector<std::string> silent, stuck_now;
        for (const auto& [rid, w] : workers) {
            if (t - w.last_seen > expiry()) {
                silent.push_back(rid);
            } else if (!w.given_up.empty() && t >= w.given_up.front().second) {
                stuck_now.push_back(rid);
            }
        }
        for (const auto& rid : silent) {
            remove_worker(rid, worker_loss::expired);
        }
        for (const auto& rid : stuck_now) {
            cut_off_stuck(rid, t);
        }
        // A worker cut off and silent since has gone (or reconnected under another id).
        std::erase_if(stuck, [&](const auto& s) { return t - s.second > expiry(); });
        if (with_deadline > 0) {
            std::vector<std::uint64_t> overdue;
            for (const auto& [tag, r] : requests) {
                if (r.deadline && t >= *r.deadline) {
                    overdue.push_back(tag);
                }
            }
            for (const auto tag : overdue) {
                auto& r = requests[tag];
                fail(tag, lb_error::timeout,
                     r.worker.empty() ? "the deadline passed before a worker was free"
                                      : "the deadline passed while worker " + hex(r.worker) +
                                            " had the request");
            }
        }
        dispatch();
    }

    void update_gauges() {
        g_workers->set(static_cast<std::int64_t>(workers.size()));
        g_ready->set(static_cast<std::int64_t>(ready_queue.size()));
        g_queued->set(static_cast<std::int64_t>(queued));
        g_in_flight->set(static_cast<std::int64_t>(requests.size() - queued));
    }

    // ---- control ----

    lb_broker_stats stats() {
        lb_broker_stats s;
        s.requests = c_requests->value();
        s.replies = c_replies->value();
        s.errors = c_errors->value();
        s.redispatched = c_redispatched->value();
        s.duplicates = c_duplicates->value();
        s.late_replies = c_late->value();
        s.malformed = c_malformed->value();
        s.workers_expired = c_expired->value();
        s.workers_disconnected = c_disconnected->value();
        s.workers_stuck = c_stuck->value();
        s.queued = queued;
        s.in_flight = requests.size() - queued;
        const auto t = now();
        for (const auto& [rid, w] : workers) {
            lb_worker_stats ws;
            ws.id = hex(rid);
            ws.ready = w.ready;
            ws.busy = !w.has_credit();
            ws.in_flight = static_cast<std::uint32_t>(w.in_flight.size());
            ws.credit = w.credit;
            ws.served = w.served;
            ws.last_heartbeat_ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(t - w.last_seen).count();
            const auto e = expired_by_id.find(rid);
            ws.expired = e == expired_by_id.end() ? 0 : e->second;
            s.workers.push_back(std::move(ws));
        }
        std::sort(s.workers.begin(), s.workers.end(),
                  [](const auto& a, const auto& b) { return a.id < b.id; });
        return s;
    }

    void add_status(detail::status_object& status) {
        const auto s = stats();
        auto& j = status.json;
        j["requests"] = s.requests;
        j["replies"] = s.replies;
        j["errors"] = s.errors;
        j["redispatched"] = s.redispatched;
        j["duplicates"] = s.duplicates;
        j["late_replies"] = s.late_replies;
        j["malformed"] = s.malformed;
        detail::add_broker_members(j, s, c_undeliverable->value(), opt);
        j["workers_stuck"] = s.workers_stuck;
        auto& worker_list = j["workers"] = detail::status_document::array();
        for (const auto& w : s.workers) {
            auto& o = worker_list.emplace_back();
            o["id"] = w.id;
            o["state"] = w.busy ? "busy" : w.ready ? "ready" : "idle";
            o["served"] = w.served;
            o["in_flight"] = w.in_flight;
            o["credit"] = w.credit;
            o["last_heartbeat_ms"] = w.last_heartbeat_ms;
            o["expired"] = w.expired;
        }
    }

    void pause(bool paused) {
        if (!draining) {
            self.set_watch_enabled(*frontend, !paused);
        }
    }

    // Stop taking requests; wait (until the deadline) for the replies of requests in flight.
    // Queued requests are dropped: their Lazy Pirate clients send them again.
    std::uint64_t drain(clock::time_point deadline) {
        draining = true;
        self.set_watch_enabled(*frontend, false);
        return detail::drain_broker(*this, deadline, self.counters_);
    }
};

load_balancer::load_balancer(zmq::context_t& context, load_balancer_options options)
    : device(context, options.name, detail::logged_settings_of(options)),
      options_(std::move(options)) {
    const std::string who = "load balancer '" + options_.name + "'";
    if (options_.request_timeout.count() < 0) {
        throw config_error(who + ": the request timeout must not be negative");
    }
    if (options_.max_prefetch == 0) {
        throw config_error(who + ": max prefetch must be at least 1 (1: one request per worker)");
    }
    detail::check_broker_options(options_, who);
    impl_ = std::make_unique<impl>(*this, options_);
    counters_ = device_counters::register_in(registry(), options_.name, "replies",
                                             "worker replies, heartbeats");
    count_malformed_in(*impl_->c_malformed);
}

load_balancer::~load_balancer() {
    stop(options_.drain_timeout);
}

void load_balancer::open_sides() {
    impl_->open_sides();
}

void load_balancer::on_pause(bool paused) {
    impl_->pause(paused);
}

drain_report load_balancer::on_drain(time_point deadline) {
    return drain_report{impl_->frontend != nullptr ? impl_->drain(deadline) : 0, std::nullopt};
}

void load_balancer::add_status(detail::status_object& status) {
    impl_->add_status(status);
}

std::optional<lb_broker_stats> load_balancer::broker_stats() {
    return on_device_thread<lb_broker_stats>([this] { return impl_->stats(); });
}

} // namespace zmqkit::patterns
