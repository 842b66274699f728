#include "common/message_format.hpp"

#include "common/cli.hpp"
#include "common/tool_support.hpp"

#include <zmqkit/encoding.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/patterns/pubsub.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstring>

namespace zmqkit::cli {
namespace {

void append_number(std::string& out, std::uint64_t v) {
    char buf[24];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
    (void)ec;
    out.append(buf, ptr);
}

void append_id(std::string& out, const message_id& id) {
    char buf[36];
    id.format_to(buf);
    out.append(buf, sizeof buf);
}

// "..." with C escapes: \" \\ \n \r \t, other bytes outside printable ASCII as \xNN.
void append_quoted(std::string& out, std::string_view bytes) {
    out += '"';
    append_escaped(out, bytes, true);
    out += '"';
}

nlohmann::ordered_json id_json(const message_id& id) {
    if (id.is_nil()) {
        return nullptr;
    }
    return id.to_string();
}

// A string field: as a JSON string when it is UTF-8, else its base64 (rare: header strings
// are UTF-8 by the wire protocol, user header values are bytes).
nlohmann::ordered_json bytes_json(std::string_view bytes) {
    if (is_valid_utf8(bytes)) {
        return std::string(bytes);
    }
    return nlohmann::ordered_json{{"base64", base64_encode(bytes)}};
}

// %g and the json "verdict": "first", "in_order", "gap", "late", "snapshot"; "" when nothing
// was checked (an unsequenced message).
std::string_view verdict_name(const sequence_note& note) {
    if (note.from_snapshot) {
        return "snapshot";
    }
    switch (note.verdict) {
    case patterns::sequence_verdict::first:
        return "first";
    case patterns::sequence_verdict::in_order:
        return "in_order";
    case patterns::sequence_verdict::gap:
        return "gap";
    case patterns::sequence_verdict::duplicate:
        return "duplicate";
    case patterns::sequence_verdict::late:
        return "late";
    case patterns::sequence_verdict::untracked:
        break;
    }
    return {};
}

// %P: the publisher id of a sequenced publication (key 12, else the user header of a
// publisher from before key 12), as a UUID; nothing for other messages.
void append_publisher(std::string& out, const header& h) {
    const auto publisher = patterns::publisher_id_of(h);
    if (publisher.size() != message_id::size) {
        return;
    }
    std::array<std::uint8_t, message_id::size> bytes{};
    std::memcpy(bytes.data(), publisher.data(), bytes.size());
    append_id(out, message_id(bytes));
}

} // namespace

std::string message_formatter::help() {
    return "raw, text, quoted, hex, json, msgpack, or a format string with the tokens "
           "%s body, %S body length, %k key (topic, else type), %t topic, %T type, "
           "%c correlation id, %i message id, %C causation id, %d timestamp ns, "
           "%D timestamp RFC 3339, %a attempt, %q sequence, %P publisher id, "
           "%g sequence verdict, %G numbers missing before this one, %r reply-to, "
           "%p traceparent, %y content type, %h{name} user header, %% '%', and the escapes "
           "\\n \\t \\r \\0 \\\\ \\xNN";
}

// The token of "%c" for the tokens that take no argument (nullopt for '%', 'h' and unknown).
std::optional<message_formatter::token> message_formatter::simple_token(char c) noexcept {
    static constexpr std::pair<char, token> table[] = {
        {'s', token::body},      {'S', token::body_size},   {'t', token::topic},
        {'T', token::type},      {'c', token::correlation}, {'i', token::id},
        {'C', token::causation}, {'d', token::timestamp},   {'D', token::time},
        {'k', token::key},       {'P', token::publisher},   {'g', token::verdict},
        {'G', token::missing},   {'a', token::attempt},     {'q', token::sequence},
        {'r', token::reply_to},  {'p', token::traceparent}, {'y', token::content_type}};
    for (const auto& [letter, t] : table) {
        if (letter == c) {
            return t;
        }
    }
    return std::nullopt;
}

message_formatter::message_formatter(std::string_view spec,
                                     const std::optional<std::string>& key_delimiter) {
    if (key_delimiter) {
        if (spec != "text") {
            throw usage_error{"-K/--key-delimiter writes 'KEY" + *key_delimiter +
                                  "BODY' lines in the text format, not with --format '" +
                                  std::string(spec) + "' (a format string can use %k instead)",
                              exit_usage};
        }
        kind_ = kind::custom;
        pieces_ = {{token::key, {}},
                   {token::literal, *key_delimiter},
                   {token::body, {}},
                   {token::literal, "\n"}};
        return;
    }
    if (spec == "raw") {
        kind_ = kind::raw;
        return;
    }
    if (spec == "text") {
        kind_ = kind::text;
        return;
    }
    if (spec == "quoted") {
        kind_ = kind::quoted;
        return;
    }
    if (spec == "hex") {
        kind_ = kind::hex;
        return;
    }
    if (spec == "json") {
        kind_ = kind::json;
        return;
    }
    if (spec == "msgpack") {
        kind_ = kind::msgpack;
        return;
    }
    if (spec.find('%') == std::string_view::npos && spec.find('\\') == std::string_view::npos) {
        throw usage_error{
            "unknown --format '" + std::string(spec) + "' (available: " + help() + ")", exit_usage};
    }
    kind_ = kind::custom;
    // Escapes and tokens are decoded in one pass over the spec, so the result of an escape is
    // never read as a token: '100\x25' prints "100%", '\x25s' prints "%s".
    const std::string_view text = spec;
    std::string literal;
    auto push = [&](token t, std::string arg = {}) {
        if (!literal.empty()) {
            pieces_.push_back({token::literal, std::move(literal)});
            literal.clear();
        }
        pieces_.push_back({t, std::move(arg)});
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\') {
            const std::size_t length =
                i + 1 < text.size() && text[i + 1] == 'x' ? 4 : 2; // \xNN or \c
            literal +=
                decode_escapes(text.substr(i, std::min(length, text.size() - i)), "--format");
            i += std::min(length, text.size() - i) - 1;
            continue;
        }
        if (text[i] != '%') {
            literal += text[i];
            continue;
        }
        if (i + 1 >= text.size()) {
            throw usage_error{"--format '" + std::string(spec) +
                                  "' ends with a lone '%' (tokens: " + help() + ")",
                              exit_usage};
        }
        const char c = text[++i];
        if (const auto t = simple_token(c)) {
            push(*t);
            continue;
        }
        switch (c) {
        case '%':
            literal += '%';
            break;
        case 'h': {
            const auto close = text.find('}', i);
            if (i + 1 >= text.size() || text[i + 1] != '{' || close == std::string::npos ||
                close == i + 2) {
                throw usage_error{"--format '" + std::string(spec) +
                                      "': %h needs a header name in braces, e.g. %h{tenant}",
                                  exit_usage};
            }
            push(token::user_header, std::string(text.substr(i + 2, close - i - 2)));
            i = close;
            break;
        }
        default:
            throw usage_error{"--format '" + std::string(spec) + "': unknown token '%" +
                                  std::string(1, c) + "' (available: " + help() + ")",
                              exit_usage};
        }
    }
    if (!literal.empty()) {
        pieces_.push_back({token::literal, std::move(literal)});
    }
}

void message_formatter::render(const header* h, std::string_view topic, std::string_view body,
                               std::string& out, const sequence_note* note) const {
    switch (kind_) {
    case kind::raw:
    case kind::msgpack:
        out.append(body);
        return;
    case kind::text:
        out.append(body);
        out += '\n';
        return;
    case kind::quoted:
        append_quoted(out, body);
        out += '\n';
        return;
    case kind::hex:
        append_hex(out, body);
        out += '\n';
        return;
    case kind::json:
        render_json(h, topic, body, out, note);
        return;
    case kind::custom:
        break;
    }
    static const header empty;
    const header& hd = h != nullptr ? *h : empty;
    for (const auto& p : pieces_) {
        switch (p.what) {
        case token::literal:
            out += p.text;
            break;
        case token::body:
            out.append(body);
            break;
        case token::body_size:
            append_number(out, body.size());
            break;
        case token::topic:
            out.append(topic);
            break;
        case token::type:
            out += hd.type;
            break;
        case token::correlation:
            if (!hd.correlation_id.is_nil()) {
                append_id(out, hd.correlation_id);
            }
            break;
        case token::id:
            if (!hd.id.is_nil()) {
                append_id(out, hd.id);
            }
            break;
        case token::causation:
            if (!hd.causation_id.is_nil()) {
                append_id(out, hd.causation_id);
            }
            break;
        case token::timestamp:
            append_number(out, hd.timestamp_ns);
            break;
        case token::time:
            if (hd.timestamp_ns != 0) {
                out += format_timestamp(std::chrono::system_clock::time_point(
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::nanoseconds(
                            std::min<std::uint64_t>(hd.timestamp_ns, INT64_MAX)))));
            }
            break;
        case token::key:
            if (!topic.empty()) {
                out.append(topic);
            } else {
                out += hd.type;
            }
            break;
        case token::publisher:
            append_publisher(out, hd);
            break;
        case token::verdict:
            if (note != nullptr) {
                out += verdict_name(*note);
            }
            break;
        case token::missing:
            if (note != nullptr && note->verdict == patterns::sequence_verdict::gap) {
                append_number(out, note->missing_first);
                if (note->missing_last > note->missing_first) {
                    out += "..";
                    append_number(out, note->missing_last);
                }
            }
            break;
        case token::attempt:
            append_number(out, hd.attempt);
            break;
        case token::sequence:
            append_number(out, hd.sequence);
            break;
        case token::reply_to:
            out += hd.reply_to;
            break;
        case token::traceparent:
            out += hd.traceparent;
            break;
        case token::content_type:
            out += hd.content_type;
            break;
        case token::user_header:
            if (const auto* v = hd.find_user_header(p.text)) {
                out += *v;
            }
            break;
        }
    }
}

void message_formatter::render_json(const header* h, std::string_view topic, std::string_view body,
                                    std::string& out, const sequence_note* note) const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    if (h != nullptr) {
        j["id"] = id_json(h->id);
        j["correlation_id"] = id_json(h->correlation_id);
        j["causation_id"] = id_json(h->causation_id);
        j["timestamp"] = h->timestamp_ns;
        j["type"] = bytes_json(h->type);
        j["attempt"] = h->attempt;
        j["reply_to"] = bytes_json(h->reply_to);
        j["traceparent"] = bytes_json(h->traceparent);
        j["content_type"] = bytes_json(h->content_type);
        j["sequence"] = h->sequence;
        // pub-sub: the publisher whose counter `sequence` is — key 12, else the user header
        // of a publisher from before key 12 (docs/wire-protocol.md §10.2), which stays in
        // "headers" too (the output is lossless).
        if (const auto publisher = patterns::publisher_id_of(*h);
            publisher.size() == message_id::size) {
            std::array<std::uint8_t, message_id::size> bytes{};
            std::memcpy(bytes.data(), publisher.data(), bytes.size());
            j["publisher_id"] = id_json(message_id(bytes));
        }
        auto& user = j["headers"] = nlohmann::ordered_json::object();
        nlohmann::ordered_json binary_names = nlohmann::ordered_json::array();
        nlohmann::ordered_json repeated = nlohmann::ordered_json::array();
        for (const auto& [name, value] : h->user_headers) {
            if (!is_valid_utf8(name)) { // a JSON key must be text: [{"base64": name}, value]
                binary_names.push_back({bytes_json(name), bytes_json(value)});
            } else if (user.contains(name)) { // the first entry is the name's value (§2 rule 10)
                repeated.push_back({name, bytes_json(value)});
            } else {
                user[name] = bytes_json(value);
            }
        }
        if (!binary_names.empty()) {
            j["headers_base64"] = std::move(binary_names);
        }
        if (!repeated.empty()) {
            j["headers_repeated"] = std::move(repeated);
        }
    }
    if (!topic.empty()) {
        j["topic"] = bytes_json(topic);
    }
    if (note != nullptr && !verdict_name(*note).empty()) {
        j["verdict"] = verdict_name(*note);
        if (note->verdict == patterns::sequence_verdict::gap) {
            j["missing"] = {{"first", note->missing_first}, {"last", note->missing_last}};
        }
    }
    bool done = false;
    if (h != nullptr && h->content_type == content_type_msgpack) {
        try {
            auto decoded = nlohmann::ordered_json::from_msgpack(body.begin(), body.end());
            // A msgpack string may hold bytes that are not UTF-8: a strict dump finds them (it
            // throws), and the body is then shown as body_base64 rather than with U+FFFD.
            (void)decoded.dump();
            j["body"] = std::move(decoded);
            done = true;
        } catch (const nlohmann::json::exception&) {
            // not msgpack after all, a map with non-string keys, or not UTF-8: show the bytes
        }
    }
    if (!done) {
        if (is_valid_utf8(body)) {
            j["body"] = std::string(body);
        } else {
            j["body_base64"] = base64_encode(body);
        }
    }
    out += j.dump(); // strict: every string above is checked UTF-8, nothing is replaced
    out += '\n';
}

} // namespace zmqkit::cli
