// Output formats of zmqkit-recv (and of zmqkit-send --req replies): raw, text, hex, json,
// msgpack, or a format string with %-tokens.
#pragma once

#include <zmqkit/header.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::cli {

class message_formatter {
public:
    // "raw", "text", "hex", "json", "msgpack", or a format string (anything containing '%'):
    //   %s body  %S body length  %t topic  %T type  %c correlation id  %i message id
    //   %C causation id  %d timestamp (ns)  %a attempt  %q sequence  %r reply-to
    //   %p traceparent  %y content type  %h{name} user header  %% a '%'
    //   escapes \n \t \r \0 \\ \xNN
    // Throws usage_error naming the bad format or token and listing the valid ones.
    explicit message_formatter(std::string_view spec);

    // Appends the rendering of one message to out. h is nullptr for raw (non-envelope) frames.
    void render(const header* h, std::string_view topic, std::string_view body,
                std::string& out) const;

    [[nodiscard]] static std::string help();

private:
    enum class kind { raw, text, quoted, hex, json, msgpack, custom };
    enum class token : char {
        literal,
        body,
        body_size,
        topic,
        type,
        correlation,
        id,
        causation,
        timestamp,
        attempt,
        sequence,
        reply_to,
        traceparent,
        content_type,
        user_header
    };
    struct piece {
        token what = token::literal;
        std::string text; // literal text, or the user header name
    };
    void render_json(const header* h, std::string_view topic, std::string_view body,
                     std::string& out) const;

    kind kind_ = kind::text;
    std::vector<piece> pieces_;
};

} // namespace zmqkit::cli
