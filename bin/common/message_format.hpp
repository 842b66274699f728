// Output formats of zmqkit-recv (and of zmqkit-send --req replies): raw, text, hex, json,
// msgpack, or a format string with %-tokens.
#pragma once

#include <zmqkit/header.hpp>
#include <zmqkit/patterns/pubsub.hpp>

#include <optional>

#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::cli {

// What the sequence check found about a received publication (zmqkit-recv --sub): the %g and
// %G tokens and the json format's "verdict" / "missing" members.
struct sequence_note {
    patterns::sequence_verdict verdict = patterns::sequence_verdict::untracked;
    bool from_snapshot = false;      // a last-value-cache value (--snapshot)
    std::uint64_t missing_first = 0; // gap: the numbers missing just before this one
    std::uint64_t missing_last = 0;
};

class message_formatter {
public:
    // "raw", "text", "hex", "json", "msgpack", or a format string (anything containing '%'):
    //   %s body  %S body length  %k key (the topic, else the type)  %t topic  %T type
    //   %c correlation id  %i message id  %C causation id  %d timestamp (ns)
    //   %D timestamp (RFC 3339, microseconds)  %a attempt  %q sequence  %P publisher id
    //   %g sequence verdict  %G numbers missing before this one  %r reply-to  %p traceparent
    //   %y content type  %h{name} user header  %% a '%'
    //   escapes \n \t \r \0 \\ \xNN
    // `key_delimiter` (-K): "KEY<delimiter>BODY" lines, the text format with the key in front
    // (what zmqkit-send -K reads back). Throws usage_error naming the bad format or token and
    // listing the valid ones.
    explicit message_formatter(std::string_view spec,
                               const std::optional<std::string>& key_delimiter = std::nullopt);

    // Appends the rendering of one message to out. h is nullptr for raw (non-envelope) frames;
    // `note` what the sequence check found (nullptr: nothing checked).
    void render(const header* h, std::string_view topic, std::string_view body, std::string& out,
                const sequence_note* note = nullptr) const;

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
        time,
        attempt,
        sequence,
        key,
        publisher,
        verdict,
        missing,
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
                     std::string& out, const sequence_note* note) const;
    [[nodiscard]] static std::optional<token> simple_token(char c) noexcept;

    kind kind_ = kind::text;
    std::vector<piece> pieces_;
};

} // namespace zmqkit::cli
