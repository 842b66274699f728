// zmqkit — a message: envelope header + body.
#pragma once

#include <zmqkit/error.hpp>
#include <zmqkit/export.hpp>
#include <zmqkit/header.hpp>

#include <msgpack.hpp>
#include <zmq.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace zmqkit {

// A header plus an opaque body. The body lives in a zmq::message_t: a body handed over as a
// zmq::message_t travels to libzmq without a copy (bodies above the socket's inline limit),
// and a received body is a view into the frame it arrived in, never copied out.
// Move-only (like zmq::message_t). Not synchronised: one thread at a time.
class ZMQKIT_API message {
public:
    // Empty body, nil header (ids are assigned when sent).
    message() = default;
    // Body copied from bytes; header left to be stamped at send time.
    explicit message(std::string_view body) : frame_(body.data(), body.size()) {}
    // Body taken over without a copy.
    explicit message(zmq::message_t&& body) noexcept : frame_(std::move(body)) {}
    message(zmqkit::header h, zmq::message_t&& body) noexcept
        : header_(std::move(h)), frame_(std::move(body)) {}

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
            const auto body = body_view();
            msgpack::object_handle oh = msgpack::unpack(body.data(), body.size(), offset);
            if (offset != body.size()) {
                throw body_type_error("message body has " + std::to_string(body.size() - offset) +
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
        return message{zmqkit::header::follow_up(header_),
                       zmq::message_t(body.data(), body.size())};
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
    // The body bytes (a view into the frame; valid while the message lives and is unchanged).
    [[nodiscard]] std::string_view body_view() const noexcept {
        return {static_cast<const char*>(frame_.data()) + offset_, frame_.size() - offset_};
    }
    [[nodiscard]] std::size_t body_size() const noexcept { return frame_.size() - offset_; }
    // Replaces the body (no copy for a zmq::message_t).
    void set_body(zmq::message_t&& body) noexcept {
        frame_ = std::move(body);
        offset_ = 0;
    }
    void set_body(std::string_view body) { set_body(zmq::message_t(body.data(), body.size())); }
    // Moves the body out as a frame of its own (copied only if it shares a frame with the
    // header it arrived with); the message's body is empty afterwards.
    [[nodiscard]] zmq::message_t take_body();

    // For codecs: the body is frame[body_offset ..] (the frame may start with the header).
    void set_frame(zmq::message_t&& frame, std::size_t body_offset) noexcept {
        frame_ = std::move(frame);
        offset_ = body_offset <= frame_.size() ? body_offset : frame_.size();
    }

    // Shorthands for common header fields.
    [[nodiscard]] const message_id& id() const noexcept { return header_.id; }
    [[nodiscard]] const message_id& correlation_id() const noexcept {
        return header_.correlation_id;
    }
    [[nodiscard]] const message_id& causation_id() const noexcept { return header_.causation_id; }

private:
    zmqkit::header header_;
    zmq::message_t frame_;   // holds the body at [offset_, size())
    std::size_t offset_ = 0; // > 0 when the body arrived inline after its header
};

} // namespace zmqkit
