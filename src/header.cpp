#include <zmqkit/header.hpp>

#include <chrono>

namespace zmqkit {

namespace {
std::uint64_t now_unix_ns() noexcept {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}
} // namespace

header header::fresh() {
    header h;
    h.stamp();
    return h;
}

header header::follow_up(const header& cause) {
    header h;
    h.timestamp_ns = now_unix_ns();
    h.id = message_id::generate(h.timestamp_ns);
    h.correlation_id = cause.correlation_id.is_nil() ? cause.id : cause.correlation_id;
    h.causation_id = cause.id;
    h.traceparent = cause.traceparent;
    return h;
}

void header::stamp() {
    if (id.is_nil()) {
        timestamp_ns = now_unix_ns();
        id = message_id::generate(timestamp_ns);
    } else if (timestamp_ns == 0) {
        timestamp_ns = now_unix_ns();
    }
    if (correlation_id.is_nil()) {
        correlation_id = id;
    }
}

const std::string* header::find_user_header(std::string_view name) const noexcept {
    for (const auto& [key, value] : user_headers) {
        if (key == name) {
            return &value;
        }
    }
    return nullptr;
}

void header::set_user_header(std::string_view name, std::string_view value) {
    for (auto& [key, existing] : user_headers) {
        if (key == name) {
            existing.assign(value);
            return;
        }
    }
    user_headers.emplace_back(std::string(name), std::string(value));
}

void header::clear() noexcept {
    id = {};
    correlation_id = {};
    causation_id = {};
    timestamp_ns = 0;
    type.clear();
    attempt = 1;
    reply_to.clear();
    traceparent.clear();
    content_type.clear();
    sequence = 0;
    user_headers.clear();
    publisher_id = {};
    unknown.bytes.clear();
    unknown.count = 0;
}

std::string_view trace_id_of(std::string_view traceparent) noexcept {
    // version "-" trace-id "-" parent-id "-" flags; later versions may append "-..." fields.
    constexpr std::size_t trace_at = 3;
    constexpr std::size_t trace_size = 32;
    if (traceparent.size() < 55 || traceparent[2] != '-' || traceparent[35] != '-' ||
        traceparent[52] != '-' || (traceparent.size() > 55 && traceparent[55] != '-')) {
        return {};
    }
    const auto id = traceparent.substr(trace_at, trace_size);
    bool nonzero = false;
    for (const char c : id) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return {};
        }
        nonzero = nonzero || c != '0';
    }
    return nonzero ? id : std::string_view{};
}

message_log_fields::message_log_fields(const header& h) {
    if (!h.id.is_nil()) {
        id_ = h.id.to_string();
        fields_[count_++] = {"message_id", id_};
    }
    if (!h.correlation_id.is_nil()) {
        correlation_ = h.correlation_id.to_string();
        fields_[count_++] = {"correlation_id", correlation_};
    }
    if (const auto t = trace_id_of(h.traceparent); !t.empty()) {
        trace_.assign(t);
        fields_[count_++] = {"trace_id", trace_};
    }
}

bool is_valid_utf8(std::string_view bytes) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    const auto* end = p + bytes.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        int extra = 0;
        std::uint32_t cp = 0;
        if ((c & 0xE0) == 0xC0) {
            extra = 1;
            cp = c & 0x1Fu;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2;
            cp = c & 0x0Fu;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (end - p <= extra) {
            return false;
        }
        for (int i = 1; i <= extra; ++i) {
            if ((p[i] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i] & 0x3Fu);
        }
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        p += extra + 1;
    }
    return true;
}

} // namespace zmqkit
