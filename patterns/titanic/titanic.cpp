// The Titanic server (9/TSP): three 7/MDP workers answer titanic.request, titanic.reply and
// titanic.close from the store; a dispatcher, an MDP client of the same broker, sends each
// pending request to its service once mmi.service says the service has a worker, and stores the
// reply. Frames and choices: docs/wire-protocol.md §9.5.
#include <zmqkit/actor.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/patterns/majordomo.hpp>
#include <zmqkit/patterns/titanic.hpp>

#include "../common/device_support.hpp"
#include "../common/socket_close.hpp"
#include "../load_balancer/mdp_protocol.hpp"
#include "titanic_store.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <deque>
#include <set>

namespace zmqkit::patterns {
namespace {

using clock = std::chrono::steady_clock;

// A service name a stored request may name: printable ASCII, at most 255 bytes, outside the
// broker's (mmi.*) and Titanic's own (titanic.*) namespaces. Empty when it may; why not else.
std::string service_problem(std::string_view service) {
    if (service.empty()) {
        return "an empty service name";
    }
    if (service.size() > 255) {
        return "a service name longer than 255 bytes";
    }
    for (const char c : service) {
        if (c < 0x21 || c > 0x7e) {
            return "a service name that is not printable ASCII";
        }
    }
    if (mmi::reserved(service) || service.starts_with(tsp::prefix)) {
        return "service '" + std::string(service) + "' (mmi.* and titanic.* are not workers')";
    }
    return {};
}

std::vector<std::string> status_only(std::string_view code, const std::string& text = {}) {
    return {text.empty() ? std::string(code) : std::string(code) + " " + text};
}

} // namespace

// ---- the dispatcher ---------------------------------------------------------------------------

namespace detail {

// Sends pending requests to their services, one at a time (MDP/Client has no request id: a
// reply is known by its service, and a fresh socket after every timeout keeps a late reply from
// being taken for another's). Before each request it asks mmi.service, as the zguide's Titanic
// does; a service without workers, or one that let a request time out, is skipped until the
// next round.
class titanic_dispatcher final : public actor {
public:
    struct counters {
        counter* dispatched;
        counter* timeouts;
        counter* replied;
    };

    titanic_dispatcher(zmq::context_t& context, const titanic_options& options,
                       titanic_store& store, counters c)
        : actor(context, options.name + "-dispatch"), opt_(options), store_(store), c_(c) {}
    ~titanic_dispatcher() override { stop(); }
    titanic_dispatcher(const titanic_dispatcher&) = delete;
    titanic_dispatcher& operator=(const titanic_dispatcher&) = delete;

    // Any thread: a request was stored; look at it within a tick.
    void wake() noexcept { new_work_.store(true); }

protected:
    void setup() override {
        open_socket();
        watch(*socket_, [this] { read(); });
        every(std::chrono::milliseconds(20), [this] { tick(); });
    }
    void teardown() noexcept override { detail::close_now(socket_, handshakes_); }

private:
    enum class phase { idle, asking, waiting };

    void open_socket() {
        detail::close_now(socket_, handshakes_);
        socket_.emplace(context(), zmq::socket_type::dealer);
        detail::apply_socket_options(*socket_, opt_.socket);
        handshakes_ = detail::apply_side_security(context(), *socket_, opt_.socket.security,
                                                  opt_.socket.name, opt_.socket.registry);
        (void)attach(*socket_, opt_.frontend, endpoint_action::connect);
    }

    bool send(std::string_view service, const std::vector<std::string>& body) {
        std::vector<std::string_view> frames{std::string_view(), mdp::client_protocol, service};
        for (const auto& f : body) {
            frames.emplace_back(f);
        }
        for (std::size_t i = 0; i < frames.size(); ++i) {
            const auto flags =
                zmq::send_flags::dontwait |
                (i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
            if (!socket_->send(zmq::buffer(frames[i].data(), frames[i].size()), flags)) {
                return false;
            }
        }
        return true;
    }

    void read() {
        for (;;) {
            const std::size_t n = detail::receive_multipart(*socket_, frames_);
            if (n == 0) {
                return;
            }
            std::vector<std::string_view> views;
            for (std::size_t i = 0; i < n; ++i) {
                views.push_back(detail::view(frames_[i]));
            }
            std::string why;
            const auto r = mdp::parse_client_reply(views, why);
            if (!r) {
                continue;
            }
            if (phase_ == phase::asking && r->service == mmi::service) {
                const bool found = n == 4 && views[3] == mmi::found;
                if (found) {
                    dispatch();
                } else {
                    give_up_service();
                }
            } else if (phase_ == phase::waiting && r->service == service_) {
                std::vector<std::string> reply;
                for (std::size_t i = r->body; i < n; ++i) {
                    reply.push_back(frames_[i].to_string());
                }
                if (store_.store_reply(id_, reply)) {
                    c_.replied->add();
                }
                finish_current();
            }
            // Anything else is a late answer to a question already given up: dropped.
        }
    }

    void tick() {
        const auto now = clock::now();
        if (phase_ != phase::idle) {
            if (now < deadline_) {
                return;
            }
            if (phase_ == phase::waiting) {
                c_.timeouts->add();
                log("request " + id_ + " for '" + service_ + "' got no reply within " +
                    std::to_string(opt_.dispatch_timeout.count()) +
                    " ms; it stays pending and goes again later");
            }
            // A fresh socket: the late answer is lost with the old one.
            open_socket();
            give_up_service();
            return;
        }
        if (round_.empty() && !cursor_.empty()) {
            // The round goes on with the next batch of pending ids.
            const auto ids = store_.pending_after(cursor_, batch);
            round_.assign(ids.begin(), ids.end());
            cursor_ = ids.empty() ? std::string() : ids.back();
        }
        if (round_.empty()) {
            if (!new_work_.exchange(false) && now < next_round_) {
                return;
            }
            const auto ids = store_.pending_after({}, batch);
            round_.assign(ids.begin(), ids.end());
            cursor_ = ids.empty() ? std::string() : ids.back();
            skipped_.clear();
            next_round_ = now + opt_.retry_interval;
        }
        next_request();
    }

    // Takes the next request of the round whose service is not known to lack workers.
    void next_request() {
        while (phase_ == phase::idle && !round_.empty()) {
            id_ = round_.front();
            round_.pop_front();
            auto frames = store_.read_request(id_);
            if (!frames) {
                continue; // closed meanwhile, or its file was damaged (reported by the store)
            }
            service_ = (*frames)[0];
            if (skipped_.contains(service_)) {
                continue;
            }
            body_.assign(frames->begin() + 1, frames->end());
            if (!send(mmi::service, {service_})) {
                give_up_service();
                return;
            }
            phase_ = phase::asking;
            deadline_ = clock::now() + opt_.mmi_timeout;
        }
    }

    void dispatch() {
        if (!send(service_, body_)) {
            give_up_service();
            return;
        }
        c_.dispatched->add();
        phase_ = phase::waiting;
        deadline_ = clock::now() + opt_.dispatch_timeout;
    }

    // The current request waits for the next round, and so does every other of its service.
    void give_up_service() {
        skipped_.insert(service_);
        finish_current();
    }

    void finish_current() {
        phase_ = phase::idle;
        body_.clear();
        next_request();
    }

    void log(const std::string& line) const {
        if (opt_.log) {
            opt_.log(line);
        }
    }

    const titanic_options& opt_;
    titanic_store& store_;
    counters c_;
    std::optional<zmq::socket_t> socket_; // same storage across reconnects (watched by address)
    std::unique_ptr<handshake_monitor> handshakes_;
    std::vector<zmq::message_t> frames_;
    std::atomic<bool> new_work_{true};
    phase phase_ = phase::idle;
    // A round: every pending request in id order, read from the store `batch` ids at a time
    // (cursor_: the last id read; empty between rounds).
    static constexpr std::size_t batch = 1024;
    std::deque<std::string> round_;
    std::string cursor_;
    std::set<std::string, std::less<>> skipped_; // services without workers this round
    clock::time_point next_round_{};
    clock::time_point deadline_{};
    std::string id_, service_;
    std::vector<std::string> body_;
};

} // namespace detail

// ---- the server -------------------------------------------------------------------------------

struct titanic::impl {
    zmq::context_t& context;
    titanic_options opt;
    std::unique_ptr<detail::titanic_store> store;
    std::optional<mdp_worker> request_worker, reply_worker, close_worker;
    std::unique_ptr<detail::titanic_dispatcher> dispatcher;

    counter* c_stored;
    counter* c_replied;
    counter* c_closed;
    counter* c_fetched;
    counter* c_malformed;
    counter* c_unknown;
    counter* c_dispatched;
    counter* c_timeouts;
    counter* c_corrupt;
    counter* c_store_errors;
    gauge* g_pending;
    gauge* g_replies;

    impl(zmq::context_t& ctx, titanic_options o) : context(ctx), opt(std::move(o)) {
        if (!opt.log) {
            opt.log = log_callback(opt.name);
        }
        const std::string who = "Titanic '" + opt.name + "'";
        if (opt.frontend.empty() || opt.backend.empty()) {
            throw config_error(who + ": the broker's frontend and backend endpoints are required");
        }
        (void)parse_endpoints(opt.frontend, endpoint_action::connect);
        (void)parse_endpoints(opt.backend, endpoint_action::connect);
        if (opt.dispatch_timeout.count() <= 0 || opt.mmi_timeout.count() <= 0 ||
            opt.retry_interval.count() <= 0 || opt.heartbeat_interval.count() <= 0 ||
            opt.liveness == 0) {
            throw config_error(who + ": timeouts, intervals and liveness must be positive");
        }
        auto& reg = opt.registry != nullptr ? *opt.registry : metrics_registry::global();
        const metric_labels l{{"component", opt.name}};
        auto c = [&](const char* n, const char* h) { return &reg.get_counter(n, h, l); };
        auto g = [&](const char* n, const char* h) { return &reg.get_gauge(n, h, l); };
        c_stored = c("zmqkit_titanic_requests_stored_total", "Requests stored (answered 200 + id)");
        c_replied = c("zmqkit_titanic_replies_stored_total", "Replies of services stored");
        c_closed = c("zmqkit_titanic_closed_total", "Requests closed (titanic.close, known id)");
        c_fetched = c("zmqkit_titanic_fetched_total", "titanic.reply answered with a reply");
        c_malformed =
            c("zmqkit_titanic_malformed_total", "TSP requests refused as malformed (400 + reason)");
        c_unknown = c("zmqkit_titanic_unknown_total", "titanic.reply for an unknown id");
        c_dispatched = c("zmqkit_titanic_dispatched_total", "Requests sent to their service");
        c_timeouts = c("zmqkit_titanic_dispatch_timeouts_total",
                       "Dispatched requests without a reply within the dispatch timeout");
        c_corrupt = c("zmqkit_titanic_corrupt_files_total",
                      "Store files that failed their check (set aside)");
        c_store_errors =
            c("zmqkit_titanic_store_errors_total", "Store writes that failed (answered 500)");
        g_pending = g("zmqkit_titanic_pending", "Requests stored without a reply");
        g_replies = g("zmqkit_titanic_replies", "Replies stored and not closed");
        store = std::make_unique<detail::titanic_store>(
            opt.directory, [this](std::string_view line) { opt.log(line); },
            detail::titanic_store_counters{c_corrupt, c_store_errors});
        const auto& r = store->recovery();
        if (r.corrupt + r.temporaries > 0) {
            opt.log("store " + opt.directory + " opened: " + std::to_string(r.corrupt) +
                    " damaged file(s) set aside, " + std::to_string(r.temporaries) +
                    " unfinished write(s) removed; " + std::to_string(r.pending) +
                    " request(s) pending, " + std::to_string(r.replies) + " replies stored");
        }
        update_gauges();
    }

    void update_gauges() {
        g_pending->set(static_cast<std::int64_t>(store->pending_count()));
        g_replies->set(static_cast<std::int64_t>(store->replied_count()));
    }

    std::vector<std::string> refuse(const std::string& why) {
        c_malformed->add();
        return status_only(tsp::unknown, "malformed: " + why);
    }

    // titanic.request: [service][body...] -> "200" id | "400 ..." | "500 ...".
    std::vector<std::string> on_request(const std::vector<std::string_view>& frames) {
        if (frames.size() < 2) {
            return refuse("titanic.request takes [service][body...], got " +
                          std::to_string(frames.size()) + " frame(s)");
        }
        if (auto why = service_problem(frames[0]); !why.empty()) {
            return refuse(why);
        }
        std::size_t bytes = 0;
        for (const auto& f : frames) {
            bytes += f.size();
        }
        if (bytes > opt.max_request_bytes) {
            return refuse("too large: " + std::to_string(bytes) + " bytes, the limit is " +
                          std::to_string(opt.max_request_bytes));
        }
        const std::vector<std::string_view> body(frames.begin() + 1, frames.end());
        auto id = store->store_request(frames[0], body);
        if (!id) {
            opt.log(id.reason());
            return status_only(tsp::error, id.reason());
        }
        c_stored->add();
        update_gauges();
        dispatcher->wake();
        return {std::string(tsp::ok), std::move(*id)};
    }

    // One frame, a 32-hex-digit id; why not, else empty.
    static std::string id_problem(std::string_view service,
                                  const std::vector<std::string_view>& frames) {
        if (frames.size() != 1) {
            return std::string(service) + " takes one frame, a request id, got " +
                   std::to_string(frames.size());
        }
        if (!tsp::valid_id(frames[0])) {
            return "not a request id (32 hex digits)";
        }
        return {};
    }

    // titanic.reply: [id] -> "200" body... | "300" | "400".
    std::vector<std::string> on_reply(const std::vector<std::string_view>& frames) {
        if (auto why = id_problem(tsp::reply_service, frames); !why.empty()) {
            return refuse(why);
        }
        switch (store->lookup(frames[0])) {
        case detail::titanic_store::state::unknown:
            c_unknown->add();
            return status_only(tsp::unknown);
        case detail::titanic_store::state::pending:
            return status_only(tsp::pending);
        case detail::titanic_store::state::replied:
            break;
        }
        auto body = store->read_reply(frames[0]);
        if (body.is_failed()) {
            // Damaged (reported, set aside, counted): the request goes to its service again.
            update_gauges();
            dispatcher->wake();
            return status_only(tsp::pending);
        }
        if (!body) {
            c_unknown->add(); // closed since the lookup
            return status_only(tsp::unknown);
        }
        c_fetched->add();
        std::vector<std::string> out{std::string(tsp::ok)};
        for (auto& f : *body) {
            out.push_back(std::move(f));
        }
        return out;
    }

    // titanic.close: [id] -> "200" (known or not, as the RFC says) | "400 ...".
    std::vector<std::string> on_close(const std::vector<std::string_view>& frames) {
        if (auto why = id_problem(tsp::close_service, frames); !why.empty()) {
            return refuse(why);
        }
        if (store->close(frames[0])) {
            c_closed->add();
            update_gauges();
        }
        return status_only(tsp::ok);
    }

    mdp_worker_options worker_options(std::string_view service) const {
        mdp_worker_options w;
        w.endpoint = opt.backend;
        w.service = std::string(service);
        w.name = opt.name + "-" + std::string(service.substr(tsp::prefix.size()));
        w.heartbeat_interval = opt.heartbeat_interval;
        w.liveness = opt.liveness;
        w.socket = opt.socket;
        w.log = opt.log;
        return w;
    }

    void start() {
        // The counters of the dispatcher's replies are the server's: one set of metrics.
        dispatcher = std::make_unique<detail::titanic_dispatcher>(
            context, opt, *store,
            detail::titanic_dispatcher::counters{c_dispatched, c_timeouts, c_replied});
        request_worker.emplace(context, worker_options(tsp::request_service),
                               [this](const auto& frames) { return on_request(frames); });
        reply_worker.emplace(context, worker_options(tsp::reply_service),
                             [this](const auto& frames) { return on_reply(frames); });
        close_worker.emplace(context, worker_options(tsp::close_service),
                             [this](const auto& frames) { return on_close(frames); });
        dispatcher->start();
        request_worker->start();
        reply_worker->start();
        close_worker->start();
    }

    void stop(std::chrono::milliseconds deadline) noexcept {
        for (auto* w : {&request_worker, &reply_worker, &close_worker}) {
            if (*w) {
                (*w)->stop(deadline);
            }
        }
        if (dispatcher) {
            dispatcher->stop(deadline);
        }
    }

    titanic_stats stats() const {
        titanic_stats s;
        s.stored = c_stored->value();
        s.replied = c_replied->value();
        s.closed = c_closed->value();
        s.fetched = c_fetched->value();
        s.malformed = c_malformed->value();
        s.unknown = c_unknown->value();
        s.dispatched = c_dispatched->value();
        s.dispatch_timeouts = c_timeouts->value();
        s.corrupt = c_corrupt->value();
        s.store_errors = c_store_errors->value();
        s.pending = store->pending_count();
        s.replies_held = store->replied_count();
        return s;
    }
};

titanic::titanic(zmq::context_t& context, titanic_options options)
    : impl_(std::make_unique<impl>(context, std::move(options))) {}

titanic::~titanic() {
    stop();
}

void titanic::start() {
    impl_->start();
}

void titanic::stop(std::chrono::milliseconds deadline) noexcept {
    impl_->stop(deadline);
}

titanic_stats titanic::stats() const {
    return impl_->stats();
}

const titanic_recovery& titanic::recovery() const noexcept {
    return impl_->store->recovery();
}

std::string titanic::status_json() const {
    const auto s = stats();
    const auto& r = recovery();
    nlohmann::ordered_json j;
    detail::set_text(j, "directory", impl_->opt.directory);
    j["stored"] = s.stored;
    j["pending"] = s.pending;
    j["replies"] = s.replies_held;
    j["replied"] = s.replied;
    j["fetched"] = s.fetched;
    j["closed"] = s.closed;
    j["malformed"] = s.malformed;
    j["unknown"] = s.unknown;
    j["dispatched"] = s.dispatched;
    j["dispatch_timeouts"] = s.dispatch_timeouts;
    j["corrupt"] = s.corrupt;
    j["store_errors"] = s.store_errors;
    j["recovery"] = {{"requests", r.requests},
                     {"pending", r.pending},
                     {"replies", r.replies},
                     {"corrupt", r.corrupt},
                     {"temporaries", r.temporaries}};
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace zmqkit::patterns
