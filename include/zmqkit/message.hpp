// zmqkit — a message: envelope header + body.
#pragma once

#include <zmqkit/error.hpp>
#include <zmqkit/header.hpp>

#include <msgpack.hpp>
#include <zmq.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace zmqkit {

// A header plus an opaque body frame. The body is a zmq::message_t, so it travels without a
// copy from the application to libzmq and back. Move-only (like zmq::message_t).
// Not synchronised: one thread at a time.
class message {
public:
    // Empty body, nil header (ids are assigned when sent).
    message() = default;
    // Body copied from bytes; header left to be stamped at send time.
    explicit message(std::string_view body) : body_(body.data(), body.size()) {}
    // Body taken over without a copy.
    explicit message(zmq::message_t&& body) noexcept : body_(std::move(body)) {}
    message(zmqkit::header h, zmq::message_t&& body) noexcept
        : header_(std::move(h)), body_(std::move(body)) {}

    message(message&&) noexcept = default;
    message& operator=(message&&) noexcept = default;
    message(const message&) = delete;
    message& operator=(const message&) = delete;
    ~message() = default;

    // A message whose body is `value` encoded with msgpack-c (any type with a msgpack adaptor:
    // arithmetic, std::string, std::vector, std::map, MSGPACK_DEFINE structs ...). Sets
    // content_type to application/msgpack. Throws whatever msgpack-c's packer throws.
    template <class T> [[nodiscard]] static message pack(const T& value) {
        msgpack::sbuffer buffer;
        msgpack::pack(buffer, value);
        message m{zmq::message_t(buffer.data(), buffer.size())};
        m.header_.content_type = content_type_msgpack;
        return m;
    }

    // The body decoded as T with msgpack-c. Throws body_type_error when the body is not
    // msgpack or does not convert to T (the message names the expected type's failure).
    template <class T> [[nodiscard]] T body_as() const {
        try {
            std::size_t offset = 0;
            msgpack::object_handle oh =
                msgpack::unpack(static_cast<const char*>(body_.data()), body_.size(), offset);
            if (offset != body_.size()) {
                throw body_type_error("message body has " + std::to_string(body_.size() - offset) +
                                      " bytes after the msgpack value");
            }
            return oh.get().as<T>();
        } catch (const body_type_error&) {
            throw;
        } catch (const std::exception& e) {
            throw body_type_error(std::string("message body is not a msgpack value of the "
                                              "requested type: ") +
                                  e.what());
        }
    }

    // A new message caused by this one: fresh id, same correlation id and traceparent,
    // causation id = this message's id. The body is the given bytes / value.
    [[nodiscard]] message follow_up(std::string_view body) const {
        return message{zmqkit::header::follow_up(header_), zmq::message_t(body.data(), body.size())};
    }
    [[nodiscard]] message follow_up(zmq::message_t&& body) const {
        return message{zmqkit::header::follow_up(header_), std::move(body)};
    }
    template <class T> [[nodiscard]] message follow_up_packed(const T& value) const {
        message m = pack(value);
        m.header_ = zmqkit::header::follow_up(header_);
        m.header_.content_type = content_type_msgpack;
        return m;
    }

    [[nodiscard]] zmqkit::header& header() noexcept { return header_; }
    [[nodiscard]] const zmqkit::header& header() const noexcept { return header_; }
    [[nodiscard]] zmq::message_t& body() noexcept { return body_; }
    [[nodiscard]] const zmq::message_t& body() const noexcept { return body_; }
    [[nodiscard]] std::string_view body_view() const noexcept {
        return {static_cast<const char*>(body_.data()), body_.size()};
    }

    // Shorthands for common header fields.
    [[nodiscard]] const message_id& id() const noexcept { return header_.id; }
    [[nodiscard]] const message_id& correlation_id() const noexcept {
        return header_.correlation_id;
    }
    [[nodiscard]] const message_id& causation_id() const noexcept { return header_.causation_id; }

private:
    zmqkit::header header_;
    zmq::message_t body_;
};

} // namespace zmqkit
