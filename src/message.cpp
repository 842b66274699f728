#include <zmqkit/message.hpp>

namespace zmqkit {

zmq::message_t message::take_body() {
    zmq::message_t body;
    if (offset_ == 0) {
        body = std::move(frame_);
    } else {
        const auto view = body_view();
        body.rebuild(view.data(), view.size());
        frame_.rebuild();
    }
    offset_ = 0;
    return body;
}

} // namespace zmqkit
