// The Majordomo broker (7/MDP v0.1 with 8/MMI): requests are routed by service name to that
// service's least recently used ready worker; a request is kept until its reply went out, so a
// worker that dies, leaves or goes silent costs a re-dispatch, not a lost request. Frames and
// choices: docs/wire-protocol.md §9.
#include <zmqkit/endpoint.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/patterns/majordomo.hpp>

#include "../common/device_support.hpp"
#include "mdp_protocol.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>

namespace zmqkit::patterns {
namespace {

using clock = std::chrono::steady_clock;
using detail::copy_of;
using detail::hex;
using detail::send_all;
using detail::send_result;
using detail::view;

zmq::message_t frame_of(std::string_view s) {
    return zmq::message_t(s.data(), s.size());
}

} // namespace

struct mdp_broker::impl {
    mdp_broker& self;
    mdp_broker_options& opt;
    zmq::socket_t* frontend = nullptr;
    zmq::socket_t* backend = nullptr;

    struct request_state {
        zmq::message_t client; // the client's routing id at the frontend
        std::string service;
        std::vector<zmq::message_t> body;
        std::uint32_t dispatches = 0;
        clock::time_point expires{}; // while queued (request_expiry > 0)
        clock::time_point arrived{}; // for zmqkit_mdp_request_seconds
        std::string worker;          // empty: queued
    };
    std::unordered_map<std::uint64_t, request_state> requests; // queued or in flight
    std::uint64_t next_tag = 1;
    std::size_t queued = 0; // over all services

    struct service_state {
        std::deque<std::uint64_t> queue; // tags in arrival order (answered ones are skipped)
        std::size_t queued = 0;
        std::deque<std::string> ready; // least recently used first
        std::size_t workers = 0;
        std::uint64_t requests = 0, replies = 0, expired = 0;
    };
    std::map<std::string, service_state, std::less<>> services;

    struct worker_state {
        std::string service;
        std::optional<std::uint64_t> in_flight;
        bool ready = false;
        clock::time_point last_seen;
        std::uint64_t served = 0;
    };
    std::unordered_map<std::string, worker_state> workers;
    std::unordered_map<std::string, std::uint64_t> expired_by_id;

    std::vector<zmq::message_t> frames;
    std::vector<std::string_view> views;
    bool draining = false;
    clock::time_point next_heartbeat{};

    counter* c_requests;
    counter* c_replies;
    histogram* h_round_trip;
    counter* c_mmi;
    counter* c_redispatched;
    counter* c_expired;
    counter* c_dropped;
    counter* c_malformed;
    counter* c_disconnects;
    counter* c_workers_expired;
    counter* c_workers_disconnected;
    counter* c_undeliverable;
    gauge* g_workers;
    gauge* g_queued;
    gauge* g_in_flight;

    impl(mdp_broker& s, mdp_broker_options& o) : self(s), opt(o) {
        auto& reg = o.registry != nullptr ? *o.registry : metrics_registry::global();
        const metric_labels l{{"component", o.name}};
        auto c = [&](const char* n, const char* h) { return &reg.get_counter(n, h, l); };
        auto g = [&](const char* n, const char* h) { return &reg.get_gauge(n, h, l); };
        c_requests = c("zmqkit_mdp_requests_total", "Client requests for worker services");
        c_replies = c("zmqkit_mdp_replies_total", "Worker replies forwarded to clients");
        // One series for every service: service names come from clients, so a label per name
        // would let a client grow the exposition without bound.
        h_round_trip = &reg.get_histogram(
            "zmqkit_mdp_request_seconds",
            "From a request's arrival to its reply leaving for the client (queue + worker)", {}, l);
        c_mmi = c("zmqkit_mdp_mmi_requests_total", "mmi.* requests answered by the broker");
        c_redispatched = c("zmqkit_mdp_redispatched_total",
                           "Requests dispatched again after their worker was lost");
        c_expired = c("zmqkit_mdp_expired_requests_total",
                      "Requests dropped after waiting request_expiry for a worker");
        c_dropped = c("zmqkit_mdp_dropped_requests_total",
                      "Requests dropped after max attempts or with the queue full");
        c_malformed = c("zmqkit_mdp_malformed_total", "Malformed messages dropped");
        c_disconnects = c("zmqkit_mdp_disconnects_sent_total",
                          "DISCONNECTs sent to workers (mmi.* READY, unexpected commands)");
        c_workers_expired = c("zmqkit_mdp_workers_expired_total",
                              "Workers silent past heartbeat interval x liveness");
        c_workers_disconnected = c("zmqkit_mdp_workers_disconnected_total",
                                   "Workers that sent DISCONNECT or were found unreachable");
        c_undeliverable = c("zmqkit_mdp_undeliverable_total",
                            "Replies that could not go to their client (gone or full)");
        g_workers = g("zmqkit_mdp_workers", "Workers registered");
        g_queued = g("zmqkit_mdp_queued", "Requests waiting for a worker");
        g_in_flight = g("zmqkit_mdp_in_flight", "Requests at workers");
        frames.reserve(8);
    }

    [[nodiscard]] clock::time_point now() const { return self.now(); }
    [[nodiscard]] clock::duration expiry() const {
        return opt.heartbeat_interval * static_cast<std::int64_t>(opt.liveness);
    }

    void log(const std::string& line) const { self.log(device::log_level::info, line); }
    // A request given up on (dropped, expired), with the ids of its envelope when its body
    // (`count` frames at `body`) is one ([header+body] or [header][body]); rate-limited per
    // kind, and nothing is decoded or formatted for a line that is not written.
    template <class Text>
    void request_event(std::string_view kind, const zmq::message_t* body, std::size_t count,
                       Text&& text) {
        const auto held = self.admit_event(device::log_level::warning, kind);
        if (!held) {
            return;
        }
        header h;
        if (count == 1 || count == 2) {
            std::size_t header_size = 0;
            if (!decode_header(body[0].data(), body[0].size(), h,
                               count == 1 ? &header_size : nullptr)
                     .ok()) {
                h = header{};
            }
        }
        const message_log_fields ids(h);
        self.write_event(device::log_level::warning, text(), *held, ids);
    }
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

    // Reads one message from `s` into frames/views (views exclude the routing id). Returns the
    // frame count (0: none waiting); counts it on the socket's counters.
    std::size_t receive(zmq::socket_t& s, counter* messages, counter* bytes) {
        const std::size_t n = detail::receive_multipart(s, frames);
        if (n == 0) {
            return 0;
        }
        std::size_t total = 0;
        views.clear();
        for (std::size_t i = 0; i < n; ++i) {
            total += frames[i].size();
            if (i > 0) {
                views.push_back(view(frames[i]));
            }
        }
        messages->add();
        bytes->add(total);
        return n;
    }

    service_state& service(std::string_view name) {
        auto it = services.find(name);
        if (it == services.end()) {
            it = services.emplace(std::string(name), service_state{}).first;
        }
        return it->second;
    }

    // ---- frontend (MDP/Client) ----

    void read_frontend() {
        for (std::size_t round = 0; round < opt.batch && !self.paused() && !draining; ++round) {
            const std::size_t n =
                receive(*frontend, self.counters_.frontend_in, self.counters_.frontend_bytes_in);
            if (n == 0) {
                // Found empty, and every send of this handler came before: the loop need not
                // ask the socket again before it waits.
                self.note_drained(*frontend);
                break;
            }
            if (n > 65) {
                report_malformed("frontend", "more than 64 frames");
                continue;
            }
            std::string why;
            const auto r = mdp::parse_client_request(views, why);
            if (!r) {
                report_malformed("frontend", why);
                continue;
            }
            if (mmi::reserved(r->service)) {
                answer_mmi(r->service, views[r->body]);
                continue;
            }
            accept_request(n, r->service);
        }
        update_gauges();
    }

    // Sends ["" "MDPC01" service body...] to `client` (body frames consumed).
    void reply_to_client(const zmq::message_t& client, std::string_view service,
                         std::vector<zmq::message_t>& body) {
        std::vector<zmq::message_t> out;
        out.reserve(body.size() + 4);
        out.push_back(copy_of(client));
        out.emplace_back();
        out.push_back(frame_of(mdp::client_protocol));
        out.push_back(frame_of(service));
        for (auto& f : body) {
            out.push_back(std::move(f));
        }
        if (send_all(*frontend, out, self.counters_.frontend_out,
                     self.counters_.frontend_bytes_out) != send_result::sent) {
            c_undeliverable->add();
        }
    }

    // 8/MMI: answered here, never queued.
    void answer_mmi(std::string_view name, std::string_view argument) {
        c_mmi->add();
        std::string_view code = mmi::not_implemented;
        if (name == mmi::service) {
            const auto it = services.find(argument);
            code = it != services.end() && it->second.workers > 0 ? mmi::found : mmi::not_found;
        }
        std::vector<zmq::message_t> body;
        body.push_back(frame_of(code));
        reply_to_client(frames[0], name, body);
    }

    void accept_request(std::size_t n, std::string_view service_name) {
        if (queued >= opt.max_queued) {
            c_dropped->add();
            request_event("dropped", frames.data() + 4, n - 4, [&] {
                return "dropped a request for '" + std::string(service_name) +
                       "': " + std::to_string(queued) + " requests are waiting already";
            });
            return;
        }
        request_state r;
        r.client = std::move(frames[0]);
        r.service = std::string(service_name);
        for (std::size_t i = 4; i < n; ++i) {
            r.body.push_back(std::move(frames[i]));
        }
        r.arrived = now();
        if (opt.request_expiry.count() > 0) {
            r.expires = r.arrived + opt.request_expiry;
        }
        auto& s = service(r.service);
        const std::uint64_t tag = next_tag++;
        requests.emplace(tag, std::move(r));
        s.queue.push_back(tag);
        ++s.queued;
        ++s.requests;
        ++queued;
        c_requests->add();
        dispatch(s);
    }

    // ---- dispatch ----

    void dispatch(service_state& s) {
        while (!draining && !s.queue.empty() && !s.ready.empty()) {
            const std::uint64_t tag = s.queue.front();
            s.queue.pop_front();
            const auto it = requests.find(tag);
            if (it == requests.end() || !it->second.worker.empty()) {
                continue;
            }
            --s.queued;
            --queued;
            auto& r = it->second;
            const std::string wid = s.ready.front();
            s.ready.pop_front();
            auto& w = workers[wid];
            w.ready = false;
            std::vector<zmq::message_t> out;
            out.reserve(r.body.size() + 6);
            out.push_back(frame_of(wid));
            out.emplace_back();
            out.push_back(frame_of(mdp::worker_protocol));
            out.push_back(frame_of(mdp::request_command));
            out.push_back(copy_of(r.client));
            out.emplace_back();
            for (const auto& f : r.body) {
                out.push_back(copy_of(f));
            }
            if (send_all(*backend, out, self.counters_.backend_out,
                         self.counters_.backend_bytes_out) != send_result::sent) {
                // Gone (or hopelessly full): the worker is lost; the request waits again.
                s.queue.push_front(tag);
                ++s.queued;
                ++queued;
                remove_worker(wid, false);
                continue;
            }
            ++r.dispatches;
            r.worker = wid;
            w.in_flight = tag;
        }
    }

    // The worker's request (if any) waits again at the front of its service's queue, or is
    // dropped when it had all its attempts.
    void requeue_in_flight(worker_state& w, const std::string& wid, const char* what) {
        if (!w.in_flight) {
            return;
        }
        const std::uint64_t tag = *w.in_flight;
        w.in_flight.reset();
        const auto it = requests.find(tag);
        if (it == requests.end()) {
            return;
        }
        auto& r = it->second;
        if (r.dispatches >= opt.max_attempts) {
            c_dropped->add();
            request_event("dropped", r.body.data(), r.body.size(), [&] {
                return "dropped a request for '" + r.service + "' after " +
                       std::to_string(r.dispatches) + " attempts (the last worker, " + hex(wid) +
                       ", " + what + ")";
            });
            requests.erase(it);
            return;
        }
        r.worker.clear();
        r.arrived = now();
        if (opt.request_expiry.count() > 0) {
            r.expires = r.arrived + opt.request_expiry;
        }
        auto& s = service(r.service);
        s.queue.push_front(tag);
        ++s.queued;
        ++queued;
        c_redispatched->add();
    }

    void remove_worker(const std::string& wid, bool expired) {
        const auto it = workers.find(wid);
        if (it == workers.end()) {
            return;
        }
        auto& w = it->second;
        auto& s = service(w.service);
        requeue_in_flight(w, wid, expired ? "expired" : "disconnected");
        if (w.ready) {
            s.ready.erase(std::remove(s.ready.begin(), s.ready.end(), wid), s.ready.end());
        }
        --s.workers;
        workers.erase(it);
        if (expired) {
            c_workers_expired->add();
            if (expired_by_id.size() >= 4096) {
                expired_by_id.clear(); // bounded memory under worker churn
            }
            ++expired_by_id[wid];
            log("worker " + hex(wid) + " expired (silent for more than " +
                std::to_string(
                    std::chrono::duration_cast<std::chrono::milliseconds>(expiry()).count()) +
                " ms)");
        } else {
            c_workers_disconnected->add();
        }
    }

    void make_ready(const std::string& wid, worker_state& w) {
        if (!w.ready && !w.in_flight) {
            w.ready = true;
            service(w.service).ready.push_back(wid);
        }
    }

    void send_to_worker(const std::string& wid, std::string_view command) {
        std::vector<zmq::message_t> out;
        out.push_back(frame_of(wid));
        out.emplace_back();
        out.push_back(frame_of(mdp::worker_protocol));
        out.push_back(frame_of(command));
        (void)send_all(*backend, out, self.counters_.backend_out, self.counters_.backend_bytes_out);
    }

    // 7/MDP: "The broker MUST respond to any valid but unexpected command by sending
    // DISCONNECT and then no further commands to that worker."
    void disconnect_worker(const std::string& wid, const std::string& why) {
        c_disconnects->add();
        log("DISCONNECT to worker " + hex(wid) + ": " + why);
        send_to_worker(wid, mdp::disconnect_command);
        remove_worker(wid, false);
    }

    // ---- backend (MDP/Worker) ----

    void read_backend() {
        for (std::size_t round = 0; round < opt.batch; ++round) {
            const std::size_t n =
                receive(*backend, self.counters_.backend_in, self.counters_.backend_bytes_in);
            if (n == 0) {
                // Found empty, and every send of this handler came before: the loop need not
                // ask the socket again before it waits.
                self.note_drained(*backend);
                break;
            }
            std::string wid(view(frames[0]));
            if (n > 65) {
                report_malformed("backend", "from worker " + hex(wid) + ": more than 64 frames");
                continue;
            }
            std::string why;
            const auto m = mdp::parse_worker_message(views, why);
            if (!m) {
                report_malformed("backend", "from worker " + hex(wid) + ": " + why);
                continue;
            }
            handle_worker(wid, *m, n);
        }
        update_gauges();
    }

    void handle_worker(const std::string& wid, const mdp::worker_message& m, std::size_t n) {
        const auto found = workers.find(wid);
        if (found == workers.end()) {
            switch (m.what) {
            case mdp::worker_message::kind::ready:
                if (mmi::reserved(m.service)) {
                    disconnect_worker(wid, "the mmi.* services are the broker's (8/MMI), got '" +
                                               std::string(m.service) + "'");
                    return;
                }
                register_worker(wid, m.service);
                return;
            case mdp::worker_message::kind::disconnect:
                return; // before READY, or after it was forgotten: nothing to undo
            case mdp::worker_message::kind::reply:
            case mdp::worker_message::kind::heartbeat:
                // Not registered (it expired, or this broker restarted): it must register
                // again on a fresh socket. A late REPLY's request went to another worker.
                disconnect_worker(wid, "a command from a worker that is not registered");
                return;
            }
            return;
        }
        auto& w = found->second;
        w.last_seen = now();
        switch (m.what) {
        case mdp::worker_message::kind::ready:
            disconnect_worker(wid, "a second READY");
            return;
        case mdp::worker_message::kind::disconnect:
            remove_worker(wid, false);
            return;
        case mdp::worker_message::kind::heartbeat:
            return;
        case mdp::worker_message::kind::reply:
            if (!w.in_flight) {
                disconnect_worker(wid, "a REPLY without a request");
                return;
            }
            forward_reply(wid, w, n);
            return;
        }
    }

    void register_worker(const std::string& wid, std::string_view service_name) {
        worker_state w;
        w.service = std::string(service_name);
        w.last_seen = now();
        auto& s = service(w.service);
        ++s.workers;
        auto& stored = workers.emplace(wid, std::move(w)).first->second;
        make_ready(wid, stored);
        dispatch(s);
    }

    // frames: [wid]["" "MDPW01" 0x03 client ""][body...]. The reply goes to the client of the
    // request the worker had (the broker's record, not the echoed address).
    void forward_reply(const std::string& wid, worker_state& w, std::size_t n) {
        const std::uint64_t tag = *w.in_flight;
        w.in_flight.reset();
        const auto it = requests.find(tag);
        auto& s = service(w.service);
        if (it != requests.end()) {
            std::vector<zmq::message_t> body;
            body.reserve(n - 6);
            for (std::size_t i = 6; i < n; ++i) {
                body.push_back(std::move(frames[i]));
            }
            h_round_trip->observe(now() - it->second.arrived);
            reply_to_client(it->second.client, w.service, body);
            requests.erase(it);
            ++w.served;
            ++s.replies;
            c_replies->add();
        }
        make_ready(wid, w);
        dispatch(s);
    }

    // ---- timers ----

    void tick() {
        const auto t = now();
        if (t >= next_heartbeat) {
            next_heartbeat = t + opt.heartbeat_interval;
            std::vector<std::string> gone;
            for (const auto& [wid, w] : workers) {
                std::vector<zmq::message_t> out;
                out.push_back(frame_of(wid));
                out.emplace_back();
                out.push_back(frame_of(mdp::worker_protocol));
                out.push_back(frame_of(mdp::heartbeat_command));
                if (send_all(*backend, out, self.counters_.backend_out,
                             self.counters_.backend_bytes_out) == send_result::unreachable) {
                    gone.push_back(wid);
                }
            }
            for (const auto& wid : gone) {
                remove_worker(wid, false);
            }
        }
        std::vector<std::string> silent;
        for (const auto& [wid, w] : workers) {
            if (t - w.last_seen > expiry()) {
                silent.push_back(wid);
            }
        }
        for (const auto& wid : silent) {
            remove_worker(wid, true);
        }
        if (opt.request_expiry.count() > 0) {
            expire_requests(t);
        }
        for (auto it = services.begin(); it != services.end();) {
            dispatch(it->second);
            // Bounded memory under arbitrary service names: forget idle empty services.
            const auto& s = it->second;
            if (services.size() > 1024 && s.workers == 0 && s.queued == 0) {
                it = services.erase(it);
            } else {
                ++it;
            }
        }
        update_gauges();
    }

    // Each service's queue is in arrival order (a re-dispatched request goes back to the front
    // with a fresh expiry), so expired requests are found at the front.
    void expire_requests(clock::time_point t) {
        for (auto& [name, s] : services) {
            while (!s.queue.empty()) {
                const auto it = requests.find(s.queue.front());
                if (it != requests.end() && it->second.worker.empty()) {
                    if (t < it->second.expires) {
                        break;
                    }
                    const std::string& service_name = name; // (clang 14: no lambda capture
                                                            // of a structured binding)
                    request_event("expired", it->second.body.data(), it->second.body.size(), [&] {
                        return "expired a request for '" + service_name +
                               "': no worker of the service took it within " +
                               std::to_string(opt.request_expiry.count()) + " ms";
                    });
                    requests.erase(it);
                    --s.queued;
                    --queued;
                    ++s.expired;
                    c_expired->add();
                }
                s.queue.pop_front();
            }
        }
    }

    void update_gauges() {
        g_workers->set(static_cast<std::int64_t>(workers.size()));
        g_queued->set(static_cast<std::int64_t>(queued));
        g_in_flight->set(static_cast<std::int64_t>(requests.size() - queued));
    }

    // ---- control ----

    mdp_broker_stats stats() {
        mdp_broker_stats s;
        s.requests = c_requests->value();
        s.replies = c_replies->value();
        s.mmi = c_mmi->value();
        s.redispatched = c_redispatched->value();
        s.expired = c_expired->value();
        s.dropped = c_dropped->value();
        s.malformed = c_malformed->value();
        s.disconnects = c_disconnects->value();
        s.workers_expired = c_workers_expired->value();
        s.workers_disconnected = c_workers_disconnected->value();
        s.queued = queued;
        s.in_flight = requests.size() - queued;
        for (const auto& [name, sv] : services) {
            s.services.push_back(mdp_service_stats{name, sv.workers, sv.ready.size(), sv.queued,
                                                   sv.requests, sv.replies, sv.expired});
        }
        const auto t = now();
        for (const auto& [wid, w] : workers) {
            mdp_worker_stats ws;
            ws.id = hex(wid);
            ws.service = w.service;
            ws.ready = w.ready;
            ws.busy = w.in_flight.has_value();
            ws.served = w.served;
            ws.last_heartbeat_ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(t - w.last_seen).count();
            const auto e = expired_by_id.find(wid);
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
        j["mmi"] = s.mmi;
        j["redispatched"] = s.redispatched;
        j["expired"] = s.expired;
        j["dropped"] = s.dropped;
        j["malformed"] = s.malformed;
        j["disconnects"] = s.disconnects;
        detail::add_broker_members(j, s, c_undeliverable->value(), opt);
        j["request_expiry_ms"] = opt.request_expiry.count();
        auto& service_list = j["services"] = detail::status_document::array();
        for (const auto& sv : s.services) {
            auto& o = service_list.emplace_back();
            detail::set_text(o, "name", sv.name);
            o["workers"] = sv.workers;
            o["ready"] = sv.ready;
            o["queued"] = sv.queued;
            o["requests"] = sv.requests;
            o["replies"] = sv.replies;
            o["expired"] = sv.expired;
        }
        auto& worker_list = j["workers"] = detail::status_document::array();
        for (const auto& w : s.workers) {
            auto& o = worker_list.emplace_back();
            o["id"] = w.id;
            detail::set_text(o, "service", w.service);
            o["state"] = w.busy ? "busy" : w.ready ? "ready" : "idle";
            o["served"] = w.served;
            o["in_flight"] = w.busy ? 1 : 0;
            o["last_heartbeat_ms"] = w.last_heartbeat_ms;
            o["expired"] = w.expired;
        }
        if (opt.status_members) {
            auto more = detail::status_document::parse(opt.status_members(), nullptr, false);
            if (more.is_object()) {
                for (auto& [key, value] : more.items()) {
                    j[key] = std::move(value);
                }
            }
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

mdp_broker::mdp_broker(zmq::context_t& context, mdp_broker_options options)
    : device(context, options.name, detail::logged_settings_of(options)),
      options_(std::move(options)) {
    const std::string who = "MDP broker '" + options_.name + "'";
    if (options_.request_expiry.count() < 0) {
        throw config_error(who + ": the request expiry must not be negative");
    }
    detail::check_broker_options(options_, who);
    impl_ = std::make_unique<impl>(*this, options_);
    counters_ = device_counters::register_in(registry(), options_.name, "replies",
                                             "worker replies, heartbeats");
    count_malformed_in(*impl_->c_malformed);
}

mdp_broker::~mdp_broker() {
    stop(options_.drain_timeout);
}

void mdp_broker::open_sides() {
    impl_->open_sides();
}

void mdp_broker::on_pause(bool paused) {
    impl_->pause(paused);
}

drain_report mdp_broker::on_drain(time_point deadline) {
    return drain_report{impl_->frontend != nullptr ? impl_->drain(deadline) : 0, std::nullopt};
}

void mdp_broker::add_status(detail::status_object& status) {
    impl_->add_status(status);
}

std::optional<mdp_broker_stats> mdp_broker::broker_stats() {
    return on_device_thread<mdp_broker_stats>([this] { return impl_->stats(); });
}

} // namespace zmqkit::patterns
