// A synchronous 9/TSP client: each call is a 7/MDP request to a titanic.* service through
// mdp_client (Lazy Pirate), its status frame read by its three digits only (the RFC: the text
// after them is not significant). Frames: docs/wire-protocol.md §9.5.
#include <zmqkit/error.hpp>
#include <zmqkit/patterns/majordomo.hpp>
#include <zmqkit/patterns/titanic.hpp>

#include <utility>

namespace zmqkit::patterns {
namespace {

// The status code of a status frame: "200", "300 pending", ... -> "200", "300"; empty when the
// frame does not start with three digits followed by the end or a space.
std::string_view code_of(std::string_view frame) {
    if (frame.size() < 3 || (frame.size() > 3 && frame[3] != ' ')) {
        return {};
    }
    for (std::size_t i = 0; i < 3; ++i) {
        if (frame[i] < '0' || frame[i] > '9') {
            return {};
        }
    }
    return frame.substr(0, 3);
}

} // namespace

struct titanic_client::impl {
    mdp_client mdp;

    // A TSP call: the reply's frames (status first), or failed as mdp_client's call.
    result<std::vector<std::string>> call(std::string_view service, std::vector<std::string> body) {
        auto r = mdp.call(service, std::move(body));
        if (r && (r->empty() || code_of(r->front()).empty())) {
            return result<std::vector<std::string>>::failed(
                "malformed", std::string(service) + " answered without a TSP status frame");
        }
        return r;
    }

    // A status other than 200 as a failure of request() and close().
    template <class T> static result<T> failure(const std::string& status) {
        const auto code = code_of(status);
        if (code == tsp::unknown) {
            return result<T>::failed("refused", status);
        }
        if (code == tsp::error) {
            return result<T>::failed("error", status);
        }
        return result<T>::failed("malformed", "unexpected status '" + status + "'");
    }
};

titanic_client::titanic_client(zmq::context_t& context, titanic_client_options options) {
    mdp_client_options o;
    o.endpoint = std::move(options.endpoint);
    o.timeout = options.timeout;
    o.attempts = options.attempts;
    o.socket = std::move(options.socket);
    o.configure = std::move(options.configure);
    impl_ = std::make_unique<impl>(impl{mdp_client(context, std::move(o))});
}

titanic_client::~titanic_client() = default;
titanic_client::titanic_client(titanic_client&& other) noexcept = default;
titanic_client& titanic_client::operator=(titanic_client&& other) noexcept = default;

result<std::string> titanic_client::request(std::string_view service,
                                            std::vector<std::string> body) {
    if (service.empty() || body.empty()) {
        throw config_error("Titanic client: a request needs a service name and a body frame");
    }
    body.insert(body.begin(), std::string(service));
    auto r = impl_->call(tsp::request_service, std::move(body));
    if (!r) {
        return result<std::string>::failed(r.error(), r.reason());
    }
    const auto& frames = *r;
    if (code_of(frames[0]) != tsp::ok) {
        return impl::failure<std::string>(frames[0]);
    }
    if (frames.size() != 2 || !tsp::valid_id(frames[1])) {
        return result<std::string>::failed("malformed",
                                           "titanic.request answered 200 without a request id");
    }
    return frames[1];
}

result<titanic_reply> titanic_client::reply(std::string_view id) {
    auto r = impl_->call(tsp::reply_service, {std::string(id)});
    if (!r) {
        return result<titanic_reply>::failed(r.error(), r.reason());
    }
    auto& frames = *r;
    titanic_reply out;
    out.text = frames[0];
    const auto code = code_of(frames[0]);
    if (code == tsp::ok) {
        out.status = titanic_reply::state::ok;
        out.body.assign(std::make_move_iterator(frames.begin() + 1),
                        std::make_move_iterator(frames.end()));
    } else if (code == tsp::pending) {
        out.status = titanic_reply::state::pending;
    } else if (code == tsp::unknown) {
        out.status = titanic_reply::state::unknown;
    } else {
        out.status = titanic_reply::state::error;
    }
    return out;
}

result<bool> titanic_client::close(std::string_view id) {
    auto r = impl_->call(tsp::close_service, {std::string(id)});
    if (!r) {
        return result<bool>::failed(r.error(), r.reason());
    }
    if (code_of((*r)[0]) != tsp::ok) {
        return impl::failure<bool>((*r)[0]);
    }
    return true;
}

} // namespace zmqkit::patterns
