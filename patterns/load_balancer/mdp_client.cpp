// A synchronous 7/MDP client with the RFC's recommended recovery (Lazy Pirate): a fresh socket
// and a resend after each timeout, up to a number of sends. Frames: docs/wire-protocol.md §9.
#include <zmqkit/endpoint.hpp>
#include <zmqkit/patterns/majordomo.hpp>

#include "../common/device_support.hpp"
#include "../common/socket_close.hpp"
#include "mdp_protocol.hpp"

#include <utility>

namespace zmqkit::patterns {

std::vector<std::string> mdp_error_body(std::string_view code, std::string_view reason) {
    return {std::string(mdp_error::marker), std::string(code), std::string(reason)};
}

std::optional<mdp_error_reply> parse_mdp_error_reply(const std::vector<std::string>& body) {
    if (body.size() != 3 || body[0] != mdp_error::marker) {
        return std::nullopt;
    }
    return mdp_error_reply{body[1].empty() ? std::string("error") : body[1], body[2]};
}

mdp_client::mdp_client(zmq::context_t& context, mdp_client_options options)
    : options_(std::move(options)), context_(&context) {
    if (options_.endpoint.empty()) {
        throw config_error("MDP client: the broker's frontend endpoint is required");
    }
    (void)parse_endpoints(options_.endpoint, endpoint_action::connect);
    if (options_.timeout.count() <= 0 || options_.attempts == 0) {
        throw config_error("MDP client: timeout and attempts must be positive");
    }
    open_socket();
}

mdp_client::~mdp_client() {
    detail::close_now(socket_, handshakes_);
}

mdp_client::mdp_client(mdp_client&& other) noexcept = default;

mdp_client& mdp_client::operator=(mdp_client&& other) noexcept {
    if (this != &other) {
        detail::close_now(socket_, handshakes_);
        options_ = std::move(other.options_);
        context_ = other.context_;
        socket_ = std::exchange(other.socket_, std::nullopt);
        handshakes_ = std::move(other.handshakes_);
        resent_ = other.resent_;
        reconnects_ = other.reconnects_;
        malformed_ = other.malformed_;
    }
    return *this;
}

void mdp_client::open_socket() {
    // A reply still on its way to the old socket is lost with it: it can never be taken for
    // the answer to a later request.
    detail::close_now(socket_, handshakes_);
    socket_.emplace(*context_, zmq::socket_type::dealer);
    detail::apply_socket_options(*socket_, options_.socket);
    handshakes_ = detail::apply_side_security(*context_, *socket_, options_.socket.security,
                                              options_.socket.name, options_.socket.registry);
    if (options_.configure) {
        options_.configure(*socket_);
    }
    (void)attach(*socket_, options_.endpoint, endpoint_action::connect);
}

result<std::vector<std::string>> mdp_client::call(std::string_view service,
                                                  std::vector<std::string> body) {
    if (body.empty()) {
        throw config_error("MDP client: a request needs at least one body frame");
    }
    if (service.empty()) {
        throw config_error("MDP client: a request needs a service name");
    }
    std::vector<zmq::message_t> frames;
    for (std::uint32_t send = 1; send <= options_.attempts; ++send) {
        if (send > 1) {
            ++resent_;
            ++reconnects_;
            open_socket();
        }
        // ["" "MDPC01" service body...]: what a REQ socket would send, empty frame included.
        auto& s = *socket_;
        const auto more = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
        bool sent = s.send(zmq::message_t(), more).has_value() &&
                    s.send(zmq::buffer(mdp::client_protocol), more).has_value() &&
                    s.send(zmq::buffer(service.data(), service.size()), more).has_value();
        for (std::size_t i = 0; sent && i < body.size(); ++i) {
            sent =
                s.send(zmq::buffer(body[i]), i + 1 < body.size() ? more : zmq::send_flags::dontwait)
                    .has_value();
        }
        const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
        while (sent) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                break;
            }
            zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
            if (zmq::poll(&item, 1, left) == 0) {
                break;
            }
            const std::size_t n = detail::receive_multipart(s, frames);
            std::vector<std::string_view> views;
            for (std::size_t i = 0; i < n; ++i) {
                views.push_back(detail::view(frames[i]));
            }
            std::string why;
            const auto r = mdp::parse_client_reply(views, why);
            if (!r || r->service != service) {
                ++malformed_;
                continue;
            }
            std::vector<std::string> reply;
            for (std::size_t i = r->body; i < n; ++i) {
                reply.push_back(frames[i].to_string());
            }
            return reply;
        }
    }
    return result<std::vector<std::string>>::failed(
        "timeout", "no reply from service '" + std::string(service) + "' after " +
                       std::to_string(options_.attempts) + " sends");
}

result<std::string> mdp_client::service_status(std::string_view service) {
    auto reply = call(mmi::service, {std::string(service)});
    if (!reply) {
        return result<std::string>::failed(reply.error(), reply.reason());
    }
    if (reply->size() != 1) {
        return result<std::string>::failed("malformed", "mmi.service answered with " +
                                                            std::to_string(reply->size()) +
                                                            " frames instead of one");
    }
    return std::move(reply->front());
}

} // namespace zmqkit::patterns
