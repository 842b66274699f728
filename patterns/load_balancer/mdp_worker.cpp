// A 7/MDP worker: READY(service), one request at a time, heartbeats both ways, a fresh socket
// after a backoff when the broker goes silent and at once after a DISCONNECT, DISCONNECT when
// stopped. Frames: docs/wire-protocol.md §9.
#include <zmqkit/endpoint.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/patterns/majordomo.hpp>

#include "../common/device_support.hpp"
#include "../common/peer_liveness.hpp"
#include "../common/socket_close.hpp"
#include "mdp_protocol.hpp"

#include <algorithm>

namespace zmqkit::patterns {
namespace {

using clock = std::chrono::steady_clock;
using detail::view;

void send_frames(zmq::socket_t& s, const std::vector<std::string_view>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
        (void)s.send(zmq::buffer(frames[i].data(), frames[i].size()),
                     zmq::send_flags::dontwait | (i + 1 < frames.size() ? zmq::send_flags::sndmore
                                                                        : zmq::send_flags::none));
    }
}

} // namespace

mdp_worker::mdp_worker(zmq::context_t& context, mdp_worker_options options, mdp_handler handler)
    : actor(context, options.name), options_(std::move(options)), handler_(std::move(handler)) {
    if (!options_.log) { // unset: the process-wide log sink, as every component
        options_.log = log_callback(options_.name);
    }
    const std::string who = "MDP worker '" + options_.name + "'";
    if (options_.endpoint.empty()) {
        throw config_error(who + ": the broker's backend endpoint is required");
    }
    (void)parse_endpoints(options_.endpoint, endpoint_action::connect);
    if (options_.service.empty() || mmi::reserved(options_.service)) {
        throw config_error(who +
                           ": a service name is required, outside the mmi.* namespace, got '" +
                           options_.service + "'");
    }
    if (!handler_) {
        throw config_error(who + ": a handler is required");
    }
    liveness_ = std::make_unique<detail::peer_liveness>(
        detail::peer_liveness::settings{options_.heartbeat_interval, options_.liveness,
                                        options_.reconnect_initial, options_.reconnect_max},
        who);
    frames_.reserve(8);
}

mdp_worker::~mdp_worker() {
    stop();
}

mdp_worker_counters mdp_worker::counters() const noexcept {
    return mdp_worker_counters{handled_.load(), failed_.load(), reconnects_.load(),
                               disconnects_.load(), malformed_.load()};
}

void mdp_worker::keep_alive() noexcept {
    if (std::this_thread::get_id() != thread_id_.load() || !socket_) {
        return;
    }
    try {
        if (liveness_->heartbeat_due()) {
            send_command(mdp::heartbeat_command);
        }
    } catch (const zmq::error_t&) {
        // Not sent now (the context is closing): the next call, or the broker's expiry, covers it.
    }
}

void mdp_worker::stop_taking() noexcept {
    taking_.store(false);
}

void mdp_worker::setup() {
    thread_id_.store(std::this_thread::get_id());
    open_socket();
    watch(*socket_, [this] { handle_incoming(); });
    every(liveness_->tick_interval(), [this] { tick(); });
}

void mdp_worker::open_socket() {
    socket_.emplace(context(), zmq::socket_type::dealer);
    auto& s = *socket_;
    detail::apply_socket_options(s, options_.socket);
    handshakes_ = detail::apply_side_security(context(), s, options_.socket.security,
                                              options_.socket.name, options_.socket.registry);
    if (options_.configure) {
        options_.configure(s);
    }
    (void)attach(s, options_.endpoint, endpoint_action::connect);
    liveness_->connected();
    send_frames(s, {"", mdp::worker_protocol, mdp::ready_command, options_.service});
}

void mdp_worker::close_socket() {
    set_watch_enabled(*socket_, false);
    detail::close_now(socket_, handshakes_);
}

void mdp_worker::send_command(std::string_view command) {
    send_frames(*socket_, {"", mdp::worker_protocol, command});
}

void mdp_worker::tick() {
    liveness_->dispatch([this] { send_command(mdp::heartbeat_command); },
                        [this](const std::string& why) {
                            if (options_.log) {
                                options_.log(why);
                            }
                            close_socket();
                        },
                        [this] {
                            open_socket();
                            set_watch_enabled(*socket_, true);
                            reconnects_.fetch_add(1);
                        });
}

void mdp_worker::handle_incoming() {
    for (int round = 0; round < 64 && socket_ && !liveness_->reconnecting(); ++round) {
        const std::size_t n = detail::receive_multipart(*socket_, frames_);
        if (n == 0) {
            return;
        }
        liveness_->heard();
        std::vector<std::string_view> views;
        views.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            views.push_back(view(frames_[i]));
        }
        std::string why;
        const auto m = mdp::parse_broker_message(views, why);
        if (!m) {
            malformed_.fetch_add(1);
            if (options_.log) {
                options_.log("dropped a malformed message from the broker: " + why);
            }
            continue;
        }
        switch (m->what) {
        case mdp::broker_message::kind::request:
            if (taking_.load()) {
                answer(views, m->body);
            } // else stop_taking(): the broker gives it to another worker on DISCONNECT
            break;
        case mdp::broker_message::kind::heartbeat:
            break;
        case mdp::broker_message::kind::disconnect:
            // 7/MDP: close the socket and register again on a new one.
            disconnects_.fetch_add(1);
            close_socket();
            liveness_->reconnect_now();
            return;
        }
    }
}

void mdp_worker::answer(const std::vector<std::string_view>& frames, std::size_t body) {
    std::vector<std::string> reply;
    try {
        reply = handler_(std::vector<std::string_view>(
            frames.begin() + static_cast<std::ptrdiff_t>(body), frames.end()));
    } catch (const std::exception& e) {
        failed_.fetch_add(1);
        if (options_.log) {
            options_.log(std::string("the handler failed (") + e.what() +
                         "); leaving so that the broker gives the request to another worker");
        }
        send_command(mdp::disconnect_command);
        close_socket();
        liveness_->reconnect_now();
        return;
    }
    if (reply.empty()) {
        reply.emplace_back();
    }
    // ["" "MDPW01" 0x03 client ""][body...]: the client address as it came.
    std::vector<std::string_view> out{"", mdp::worker_protocol, mdp::reply_command, frames[3], ""};
    for (const auto& f : reply) {
        out.emplace_back(f);
    }
    send_frames(*socket_, out);
    handled_.fetch_add(1);
}

void mdp_worker::on_stop(std::chrono::steady_clock::time_point deadline) {
    if (!socket_) {
        return;
    }
    // Requests that already arrived are answered; then DISCONNECT: the broker sends nothing
    // more and gives anything it still sent to another worker.
    zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
    while (socket_ && clock::now() < deadline &&
           zmq::poll(&item, 1, std::chrono::milliseconds(0)) > 0) {
        handle_incoming();
    }
    if (!socket_) {
        return;
    }
    send_command(mdp::disconnect_command);
    detail::linger_until(*socket_, deadline, std::chrono::seconds(1));
}

void mdp_worker::teardown() noexcept {
    handshakes_.reset(); // before its socket closes
    socket_.reset();
}

} // namespace zmqkit::patterns
