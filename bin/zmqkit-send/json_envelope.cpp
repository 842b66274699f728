// zmqkit-send --json: one JSON text into an envelope (its fields, user headers, the body).
#include "zmqkit-send/sender.hpp"

#include <zmqkit/encoding.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <optional>

namespace zmqkit::cli {
namespace {

using json = nlohmann::json;

// A {"base64": "..."} value (as zmqkit-recv -f json writes bytes that are not UTF-8).
bool decode_base64_into(std::string_view text, std::string& out) {
    auto bytes = base64_decode(text);
    if (!bytes) {
        return false;
    }
    out = std::move(*bytes);
    return true;
}

std::string strip_json_prefix(const char* what) {
    std::string text(what);
    if (!text.empty() && text[0] == '[') { // "[json.exception.parse_error.101] parse error ..."
        const auto close = text.find("] ");
        if (close != std::string::npos) {
            text.erase(0, close + 2);
        }
    }
    return text;
}

// Sets one envelope field from JSON. User headers go to h.user_headers when allow_user.
bool apply_field(const std::string& name, const json& value, header& h, bool allow_user,
                 std::string& error) {
    auto need_string = [&](std::string& field) {
        if (!value.is_string()) {
            error = "header '" + name + "' must be a string";
            return false;
        }
        field = value.get<std::string>();
        return true;
    };
    auto need_id = [&](message_id& field) {
        if (value.is_null()) {
            return true;
        }
        std::optional<message_id> id;
        if (value.is_string()) {
            id = message_id::parse(value.get<std::string>());
        }
        if (!id) {
            error = "header '" + name + "' must be a UUID string";
            return false;
        }
        field = *id;
        return true;
    };
    if (name == "type") {
        return need_string(h.type);
    }
    if (name == "reply_to") {
        return need_string(h.reply_to);
    }
    if (name == "traceparent") {
        return need_string(h.traceparent);
    }
    if (name == "content_type") {
        return need_string(h.content_type);
    }
    if (name == "correlation_id") {
        return need_id(h.correlation_id);
    }
    if (name == "causation_id") {
        return need_id(h.causation_id);
    }
    if (name == "publisher_id") {
        return need_id(h.publisher_id);
    }
    if (name == "attempt" || name == "sequence") {
        if (!value.is_number_unsigned() ||
            (name == "attempt" && value.get<std::uint64_t>() > 0xFFFFFFFFu)) {
            error = "header '" + name + "' must be a non-negative integer";
            return false;
        }
        if (name == "attempt") {
            h.attempt = static_cast<std::uint32_t>(value.get<std::uint64_t>());
        } else {
            h.sequence = value.get<std::uint64_t>();
        }
        return true;
    }
    if (name == "id" || name == "timestamp" || name == "topic") {
        return true; // from zmqkit-recv -f json output: a resent message gets a fresh id
    }
    if (!allow_user) {
        error = "unknown field '" + name + "'";
        return false;
    }
    if (value.is_object() && value.size() == 1 && value.contains("base64") &&
        value["base64"].is_string()) {
        std::string bytes;
        if (!decode_base64_into(value["base64"].get<std::string>(), bytes)) {
            error = "header '" + name + "': bad base64";
            return false;
        }
        h.set_user_header(name, bytes);
        return true;
    }
    h.set_user_header(name, value.is_string() ? value.get<std::string>() : value.dump());
    return true;
}

// "headers_base64": [[{"base64": name}, value], ...] as zmqkit-recv -f json prints user headers
// whose name is not UTF-8 (value: a string or {"base64": ...}).
// "headers_base64" (names that are not UTF-8) and "headers_repeated" (the later entries of a
// name that appears twice), as zmqkit-recv -f json writes them: [[name, value], ...], each a
// string or {"base64": ...}. Repeated entries are appended, so the header keeps them all.
bool apply_header_pairs(const json& list, const char* field, bool append, header& h,
                        std::string& error) {
    auto bytes_of = [](const json& v, std::string& out) {
        if (v.is_string()) {
            out = v.get<std::string>();
            return true;
        }
        return v.is_object() && v.size() == 1 && v.contains("base64") && v["base64"].is_string() &&
               decode_base64_into(v["base64"].get<std::string>(), out);
    };
    if (!list.is_array()) {
        error = std::string("\"") + field + "\" must be an array of [name, value] pairs";
        return false;
    }
    for (const auto& pair : list) {
        std::string name;
        std::string value;
        if (!pair.is_array() || pair.size() != 2 || !bytes_of(pair[0], name) ||
            !bytes_of(pair[1], value)) {
            error = std::string("\"") + field +
                    "\" entries must be [name, value] with strings or {\"base64\": ...}";
            return false;
        }
        if (append) {
            h.user_headers.emplace_back(std::move(name), std::move(value));
        } else {
            h.set_user_header(name, value);
        }
    }
    return true;
}

bool is_envelope_object(const json& j) {
    static constexpr std::array<std::string_view, 17> allowed{
        "headers",   "body",  "body_base64",    "id",           "correlation_id",  "causation_id",
        "timestamp", "type",  "attempt",        "reply_to",     "traceparent",     "content_type",
        "sequence",  "topic", "headers_base64", "publisher_id", "headers_repeated"};
    if (!j.is_object() ||
        !(j.contains("body") || j.contains("body_base64") || j.contains("headers"))) {
        return false;
    }
    return std::all_of(j.items().begin(), j.items().end(), [](const auto& item) {
        return std::find(allowed.begin(), allowed.end(), item.key()) != allowed.end();
    });
}

} // namespace

bool json_to_envelope(std::string_view text, header& h, std::string& body, std::string& error) {
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        error = strip_json_prefix(e.what());
        return false;
    }
    const json* value = &j;
    bool body_is_bytes = false;
    bool content_type_given = false;
    if (is_envelope_object(j)) {
        for (const auto& [name, field] : j.items()) {
            if (name == "headers") {
                if (!field.is_object()) {
                    error = "\"headers\" must be an object";
                    return false;
                }
                for (const auto& [hname, hvalue] : field.items()) {
                    content_type_given = content_type_given || hname == "content_type";
                    if (!apply_field(hname, hvalue, h, true, error)) {
                        return false;
                    }
                }
            } else if (name == "headers_base64" || name == "headers_repeated") {
                continue; // after "headers": repeated entries follow the first one
            } else if (name != "body" && name != "body_base64") {
                content_type_given = content_type_given || name == "content_type";
                if (!apply_field(name, field, h, false, error)) {
                    return false;
                }
            }
        }
        if (j.contains("headers_base64") &&
            !apply_header_pairs(j["headers_base64"], "headers_base64", false, h, error)) {
            return false;
        }
        if (j.contains("headers_repeated") &&
            !apply_header_pairs(j["headers_repeated"], "headers_repeated", true, h, error)) {
            return false;
        }
        if (j.contains("body_base64")) {
            if (!j["body_base64"].is_string() ||
                !decode_base64_into(j["body_base64"].get<std::string>(), body)) {
                error = "\"body_base64\" must be a base64 string";
                return false;
            }
            return true;
        }
        static const json null_body;
        value = j.contains("body") ? &j["body"] : &null_body;
        // A content_type that is present (even empty, as zmqkit-recv -f json prints for a text
        // body) and is not msgpack means the body string is the bytes themselves.
        body_is_bytes = content_type_given && h.content_type != content_type_msgpack;
    }
    if (body_is_bytes) {
        body = value->is_string() ? value->get<std::string>() : value->dump();
        return true;
    }
    const auto packed = json::to_msgpack(*value);
    body.assign(packed.begin(), packed.end());
    h.content_type = std::string(content_type_msgpack);
    return true;
}

} // namespace zmqkit::cli
