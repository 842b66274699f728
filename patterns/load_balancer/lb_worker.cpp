// A 6/PPP worker: READY (with credit when prefetching), one request at a time, heartbeats both
// ways, a fresh socket after a backoff when the broker goes silent, DISCONNECT when stopped.
// Frames: docs/wire-protocol.md §8.
#include <zmqkit/codec.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/patterns/load_balancer.hpp>

#include "../common/device_support.hpp"
#include "../common/peer_liveness.hpp"
#include "../common/socket_close.hpp"
#include "ppp_protocol.hpp"

#include <algorithm>

namespace zmqkit::patterns {
namespace {

using clock = std::chrono::steady_clock;

std::string_view view(const zmq::message_t& f) {
    return {static_cast<const char*>(f.data()), f.size()};
}

// READY with credit (docs/wire-protocol.md §8.2), also for prefetch 1: it tells a zmqkit broker
// that this worker reads both envelope layouts (a plain 6/PPP worker gets [header+body] joined),
// and a 6/PPP broker takes it for READY.
std::string ready_command(std::uint32_t prefetch) {
    std::string frame(ppp::ready_credit_prefix);
    frame += std::to_string(prefetch);
    return frame;
}

} // namespace

lb_handler lb_bytes_handler(std::function<std::string(std::string_view)> fn) {
    return [fn = std::move(fn)](const lb_request& r) { return message(fn(r.message.body_view())); };
}

lb_worker::lb_worker(zmq::context_t& context, lb_worker_options options, lb_handler handler)
    : actor(context, options.name), options_(std::move(options)), handler_(std::move(handler)) {
    if (!options_.log) { // unset: the process-wide log sink, as every component
        options_.log = log_callback(options_.name);
    }
    if (options_.endpoint.empty()) {
        throw config_error("load-balancer worker '" + options_.name +
                           "': the broker's backend endpoint is required");
    }
    (void)parse_endpoints(options_.endpoint, endpoint_action::connect);
    if (!handler_) {
        throw config_error("load-balancer worker '" + options_.name + "': a handler is required");
    }
    liveness_ = std::make_unique<detail::peer_liveness>(
        detail::peer_liveness::settings{options_.heartbeat_interval, options_.liveness,
                                        options_.reconnect_initial, options_.reconnect_max},
        "load-balancer worker '" + options_.name + "'");
    if (options_.prefetch == 0) {
        throw config_error("load-balancer worker '" + options_.name +
                           "': prefetch must be at least 1 (1: one request at a time)");
    }
    ready_command_ = ready_command(options_.prefetch);
    frames_.reserve(8);
    views_.reserve(8);
}

lb_worker::~lb_worker() {
    stop();
}

lb_worker_counters lb_worker::counters() const noexcept {
    return lb_worker_counters{handled_.load(), failed_.load(), reconnects_.load(),
                              malformed_.load()};
}

void lb_worker::keep_alive() noexcept {
    if (std::this_thread::get_id() != thread_id_.load() || !socket_) {
        return;
    }
    try {
        if (liveness_->heartbeat_due()) {
            send_command(ppp::heartbeat_byte);
        }
    } catch (const zmq::error_t&) {
        // Not sent now (the context is closing): the next call, or the broker's expiry, covers it.
    }
}

void lb_worker::stop_taking() noexcept {
    taking_.store(false);
}

void lb_worker::setup() {
    thread_id_.store(std::this_thread::get_id());
    open_socket();
    watch(*socket_, [this] { handle_incoming(); });
    every(liveness_->tick_interval(), [this] { tick(); });
}

void lb_worker::open_socket() {
    socket_.emplace(context(), zmq::socket_type::dealer);
    auto& s = *socket_;
    detail::apply_socket_options(s, options_.socket);
    s.set(zmq::sockopt::sndtimeo, static_cast<int>(options_.socket.send_timeout.count()));
    handshakes_ = detail::apply_side_security(context(), s, options_.socket.security,
                                              options_.socket.name, options_.socket.registry);
    if (options_.configure) {
        options_.configure(s);
    }
    (void)attach(s, options_.endpoint, endpoint_action::connect);
    liveness_->connected();
    send_command(ready_command_);
}

void lb_worker::send_command(std::string_view command) {
    (void)socket_->send(zmq::buffer(command.data(), command.size()), zmq::send_flags::dontwait);
}

void lb_worker::tick() {
    // After a handler that ran past the silence limit the broker's heartbeats wait unread, and
    // this timer runs before the socket's reader: a waiting message is the broker speaking.
    // Taken for silence, it would close the socket, and the reply just sent with it.
    if (socket_ && !liveness_->reconnecting() && detail::input_waiting(*socket_)) {
        liveness_->heard();
    }
    liveness_->dispatch([this] { send_command(ppp::heartbeat_byte); },
                        [this](const std::string& why) {
                            if (options_.log) {
                                options_.log(why);
                            }
                            set_watch_enabled(*socket_, false);
                            detail::close_now(socket_, handshakes_);
                        },
                        [this] {
                            open_socket();
                            set_watch_enabled(*socket_, true);
                            reconnects_.fetch_add(1);
                        });
}

void lb_worker::handle_incoming() {
    if (!socket_) {
        return;
    }
    for (int round = 0; round < 64; ++round) {
        std::size_t n = 0;
        bool more = true;
        while (more) {
            if (n == frames_.size()) {
                frames_.emplace_back();
            }
            if (!socket_->recv(frames_[n],
                               n == 0 ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) {
                break;
            }
            more = frames_[n].more();
            ++n;
        }
        if (n == 0) {
            return;
        }
        liveness_->heard();
        views_.clear();
        for (std::size_t i = 0; i < n; ++i) {
            views_.push_back(view(frames_[i]));
        }
        std::string why;
        const auto m = ppp::parse_broker_message(views_, why);
        if (!m) {
            malformed_.fetch_add(1);
            if (options_.log) {
                options_.log("dropped a malformed message from the broker: " + why);
            }
            continue;
        }
        if (m->what == ppp::broker_message::kind::request) {
            if (!taking_.load()) {
                continue; // stop_taking(): the broker dispatches it again on DISCONNECT
            }
            answer(frames_, m->envelope_size, n);
            // One request per call: with prefetch 1 the next receive would find the queue
            // empty (a system call or two), and with prefetch > 1 the actor loop gets to see a
            // stop() between two requests. It checks the socket before it waits again and
            // calls back at once if anything is left.
            return;
        }
    }
}

void lb_worker::answer(std::vector<zmq::message_t>& frames, std::size_t envelope_size,
                       std::size_t count) {
    const std::size_t first = envelope_size + 1;
    const std::size_t content = count - first;
    lb_request request;
    header h;
    std::size_t header_size = 0;
    if ((content == 1 || content == 2) &&
        decode_header(frames[first].data(), frames[first].size(), h,
                      content == 1 ? &header_size : nullptr)
            .ok() &&
        !h.id.is_nil()) {
        request.envelope = true;
        request.message.header() = std::move(h);
        if (content == 1) {
            request.message.set_frame(std::move(frames[first]), header_size);
        } else {
            request.message.set_body(std::move(frames[first + 1]));
        }
    } else if (content == 1) {
        request.message.set_body(std::move(frames[first]));
    }
    std::string reply_frame;
    zmq::message_t reply_body; // a large envelope body travels in a frame of its own
    bool separate = false;
    auto error_reply = [&](std::string_view code, const std::string& reason) {
        if (request.envelope) {
            header eh = header::follow_up(request.message.header());
            eh.type = lb_error::type;
            eh.content_type = "text/plain";
            eh.set_user_header(lb_error::header_name, code);
            reply_frame = encode_header(eh) + reason;
        } else {
            reply_frame = "ERROR " + std::string(code) + ": " + reason;
        }
    };
    if (!request.envelope && content != 1) {
        error_reply(lb_error::malformed, "a raw request must have exactly one content frame, got " +
                                             std::to_string(content));
    } else {
        try {
            message reply = handler_(request);
            if (request.envelope) {
                auto& rh = reply.header();
                const auto& q = request.message.header();
                if (rh.causation_id.is_nil()) {
                    rh.causation_id = q.id;
                }
                if (rh.correlation_id.is_nil()) {
                    rh.correlation_id = q.correlation_id;
                }
                if (rh.traceparent.empty()) {
                    rh.traceparent = q.traceparent;
                }
                rh.stamp();
                reply_frame = encode_header(rh);
                if (reply.body_size() > options_.socket.inline_body_limit) {
                    separate = true;
                    reply_body = reply.take_body();
                } else {
                    reply_frame += reply.body_view();
                }
            } else {
                reply_frame = std::string(reply.body_view());
            }
        } catch (const std::exception& e) {
            failed_.fetch_add(1);
            error_reply(lb_error::handler, e.what());
        } catch (...) {
            failed_.fetch_add(1);
            error_reply(lb_error::handler, "non-standard exception");
        }
    }
    // [address...][""][reply]: the envelope as it came, so the broker routes it back.
    for (std::size_t i = 0; i < first; ++i) {
        (void)socket_->send(frames[i], zmq::send_flags::sndmore);
    }
    (void)socket_->send(zmq::buffer(reply_frame),
                        separate ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (separate) {
        (void)socket_->send(reply_body, zmq::send_flags::none);
    }
    handled_.fetch_add(1);
}

void lb_worker::on_stop(std::chrono::steady_clock::time_point deadline) {
    if (!socket_) {
        return;
    }
    // One request at a time: one that already arrived is answered (the broker sent it before
    // it could know). With prefetch the requests waiting here are left to the broker, which
    // dispatches every request it has not had a reply to again when DISCONNECT arrives
    // (replies sent before DISCONNECT reach it first: nothing is lost, nothing answered twice).
    // Then DISCONNECT: the broker sends nothing more and re-dispatches anything it still sends.
    if (options_.prefetch == 1) {
        zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
        while (clock::now() < deadline && zmq::poll(&item, 1, std::chrono::milliseconds(0)) > 0) {
            handle_incoming();
        }
    }
    send_command(ppp::disconnect_byte);
    detail::linger_until(*socket_, deadline, std::chrono::seconds(1));
}

void lb_worker::teardown() noexcept {
    handshakes_.reset(); // before its socket closes
    socket_.reset();
}

} // namespace zmqkit::patterns
