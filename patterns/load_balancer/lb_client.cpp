// The Lazy Pirate client: requests resent with the same id on a fresh socket when no reply came
// in time, replies matched to requests by causation id, late and duplicate replies dropped.
#include <zmqkit/codec.hpp>
#include <zmqkit/endpoint.hpp>
#include <zmqkit/patterns/load_balancer.hpp>

#include "../common/device_support.hpp"
#include "../common/socket_close.hpp"

#include <algorithm>
#include <utility>

namespace zmqkit::patterns {
namespace {

using clock = std::chrono::steady_clock;

} // namespace

std::optional<lb_error_reply> parse_error_reply(const header& h, std::string_view body) {
    if (h.type != lb_error::type) {
        return std::nullopt;
    }
    const auto* code = h.find_user_header(lb_error::header_name);
    return lb_error_reply{code != nullptr ? *code : std::string("error"), std::string(body)};
}

std::optional<lb_error_reply> parse_raw_error_reply(std::string_view frame) {
    constexpr std::string_view prefix = "ERROR ";
    if (frame.substr(0, prefix.size()) != prefix) {
        return std::nullopt;
    }
    const auto rest = frame.substr(prefix.size());
    const auto colon = rest.find(": ");
    if (colon == 0 || colon == std::string_view::npos) {
        return std::nullopt;
    }
    const auto code = rest.substr(0, colon);
    if (!std::all_of(code.begin(), code.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; })) {
        return std::nullopt;
    }
    return lb_error_reply{std::string(code), std::string(rest.substr(colon + 2))};
}

lb_client::lb_client(zmq::context_t& context, lb_client_options options)
    : options_(std::move(options)), context_(&context) {
    if (options_.endpoint.empty()) {
        throw config_error("load-balancer client: the broker's frontend endpoint is required");
    }
    (void)parse_endpoints(options_.endpoint, endpoint_action::connect);
    if (options_.timeout.count() <= 0 || options_.attempts == 0) {
        throw config_error("load-balancer client: timeout and attempts must be positive");
    }
    frames_.reserve(4);
    open_socket();
}

lb_client::~lb_client() {
    detail::close_now(socket_, handshakes_);
}

lb_client::lb_client(lb_client&& other) noexcept = default;

lb_client& lb_client::operator=(lb_client&& other) noexcept {
    if (this != &other) {
        detail::close_now(socket_, handshakes_); // requests pending here are dropped
        options_ = std::move(other.options_);
        context_ = other.context_;
        socket_ = std::exchange(other.socket_, std::nullopt);
        handshakes_ = std::move(other.handshakes_);
        pending_ = std::move(other.pending_);
        retry_order_ = std::move(other.retry_order_);
        last_reconnect_ = other.last_reconnect_;
        late_replies_ = other.late_replies_;
        resent_ = other.resent_;
        reconnects_ = other.reconnects_;
        malformed_ = other.malformed_;
        frames_ = std::move(other.frames_);
        completed_ = other.completed_;
    }
    return *this;
}

void lb_client::open_socket() {
    detail::close_now(socket_, handshakes_); // what the old socket still holds is resent
    socket_.emplace(*context_, zmq::socket_type::dealer);
    auto& s = *socket_;
    detail::apply_socket_options(s, options_.socket);
    handshakes_ = detail::apply_side_security(*context_, s, options_.socket.security,
                                              options_.socket.name, options_.socket.registry);
    if (options_.configure) {
        options_.configure(s);
    }
    (void)attach(s, options_.endpoint, endpoint_action::connect);
}

void lb_client::transmit(entry& e) {
    // ["" delimiter][header+body]: what a REQ socket would send.
    if (socket_->send(zmq::message_t(), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        (void)socket_->send(zmq::buffer(e.frame), zmq::send_flags::none);
    }
}

message_id lb_client::submit(message request, std::function<void(lb_result)> done) {
    header& h = request.header();
    h.stamp();
    if (pending_.count(h.id) != 0) {
        throw error("load-balancer client: request " + h.id.to_string() + " is already pending");
    }
    entry e;
    e.request_header = h;
    e.frame = encode_header(h);
    e.header_size = e.frame.size();
    e.frame += request.body_view();
    e.sends = 1;
    e.due = clock::now() + options_.timeout;
    e.done = std::move(done);
    const message_id id = h.id;
    transmit(e);
    retry_order_.emplace_back(e.due, id);
    pending_.emplace(id, std::move(e));
    return id;
}

std::future<lb_result> lb_client::submit(message request) {
    auto promise = std::make_shared<std::promise<lb_result>>();
    auto future = promise->get_future();
    (void)submit(std::move(request),
                 [promise](lb_result r) mutable { promise->set_value(std::move(r)); });
    return future;
}

lb_result lb_client::call(message request) {
    std::optional<lb_result> outcome;
    (void)submit(std::move(request), [&outcome](lb_result r) { outcome = std::move(r); });
    // Every request completes within timeout x attempts (a reply, an error or "timeout").
    while (!outcome) {
        (void)poll(options_.timeout);
    }
    return std::move(*outcome);
}

void lb_client::complete(std::unordered_map<message_id, entry, message_id_hash>::iterator it,
                         lb_result result) {
    auto done = std::move(it->second.done);
    pending_.erase(it);
    ++completed_;
    if (done) {
        done(std::move(result));
    }
}

bool lb_client::handle_reply() {
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
        if (n > 3 && more) {
            zmq::message_t rest;
            while (more && socket_->recv(rest, zmq::recv_flags::none)) {
                more = rest.more();
            }
            ++malformed_;
            return true;
        }
    }
    if (n == 0) {
        return false;
    }
    // ["" delimiter][header+body] or ["" delimiter][header][body]
    message reply;
    bool ok = false;
    if ((n == 2 || n == 3) && frames_[0].empty()) {
        std::size_t header_size = 0;
        ok = decode_header(frames_[1].data(), frames_[1].size(), reply.header(),
                           n == 2 ? &header_size : nullptr)
                 .ok();
        if (ok && n == 2) {
            reply.set_frame(std::move(frames_[1]), header_size);
        } else if (ok) {
            reply.set_frame(std::move(frames_[2]), 0);
        }
    }
    if (!ok) {
        ++malformed_;
        return true;
    }
    const auto it = pending_.find(reply.causation_id());
    if (it == pending_.end()) {
        ++late_replies_; // late (answered already, or after a retry) or a duplicate
        return true;
    }
    if (auto error = parse_error_reply(reply.header(), reply.body_view())) {
        complete(it, lb_result::failed(std::move(error->code), std::move(error->reason)));
    } else {
        complete(it, lb_result(std::move(reply)));
    }
    return true;
}

void lb_client::check_overdue() {
    const auto now = clock::now();
    std::vector<message_id> resend;
    while (!retry_order_.empty() && retry_order_.front().first <= now) {
        const auto [due, id] = retry_order_.front();
        retry_order_.pop_front();
        const auto it = pending_.find(id);
        if (it == pending_.end() || it->second.due != due) {
            continue; // answered, or rescheduled
        }
        if (it->second.sends >= options_.attempts) {
            complete(it, lb_result::failed(
                             "timeout", "no reply after " + std::to_string(it->second.sends) +
                                            " sends of " +
                                            std::to_string(options_.timeout.count()) + " ms each"));
            continue;
        }
        resend.push_back(id);
    }
    if (resend.empty()) {
        return;
    }
    // Lazy Pirate: the socket may be stuck on a dead broker; start over on a fresh one (at most
    // once per timeout). Replies to the old socket are lost, so everything pending goes again
    // (the broker joins a resend to the pending request with the same id).
    const bool fresh = now - last_reconnect_ >= options_.timeout;
    if (fresh) {
        open_socket();
        last_reconnect_ = now;
        ++reconnects_;
    }
    for (const auto& id : resend) {
        auto& e = pending_.at(id);
        e.sends += 1;
        e.request_header.attempt += 1;
        std::string frame = encode_header(e.request_header);
        frame.append(e.frame, e.header_size, std::string::npos);
        e.header_size = frame.size() - (e.frame.size() - e.header_size);
        e.frame = std::move(frame);
        e.due = now + options_.timeout;
        retry_order_.emplace_back(e.due, id);
        ++resent_;
        if (!fresh) {
            transmit(e);
        }
    }
    if (fresh) {
        for (auto& [id, e] : pending_) {
            transmit(e);
        }
    }
}

std::size_t lb_client::poll(std::chrono::milliseconds timeout) {
    completed_ = 0;
    const auto deadline = clock::now() + timeout;
    for (;;) {
        check_overdue();
        auto now = clock::now();
        if (completed_ > 0 || pending_.empty() || now >= deadline) {
            // Take replies that are already there before returning (a non-blocking receive
            // says when none is left: no zmq_poll system call per reply).
            while (handle_reply()) {
            }
            return completed_;
        }
        auto until = deadline;
        if (!retry_order_.empty()) {
            until = std::min(until, retry_order_.front().first);
        }
        const auto wait =
            std::max(std::chrono::milliseconds(0),
                     std::chrono::ceil<std::chrono::milliseconds>(until - clock::now()));
        zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, wait) > 0) {
            for (int i = 0; i < 1024 && handle_reply(); ++i) {
            }
        }
    }
}

bool lb_client::flush(std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    while (!pending_.empty()) {
        const auto now = clock::now();
        if (now >= deadline) {
            return false;
        }
        (void)poll(std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
    }
    return true;
}

} // namespace zmqkit::patterns
