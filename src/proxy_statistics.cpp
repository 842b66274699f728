#include <zmqkit/proxy_statistics.hpp>

#include <nlohmann/json.hpp>

#include <cstring>

namespace zmqkit {

std::vector<std::string> proxy_statistics::to_frames() const {
    const std::uint64_t values[8] = {
        frontend_messages_in, frontend_bytes_in, frontend_messages_out, frontend_bytes_out,
        backend_messages_in,  backend_bytes_in,  backend_messages_out,  backend_bytes_out};
    std::vector<std::string> frames;
    for (auto v : values) {
        frames.emplace_back(reinterpret_cast<const char*>(&v), sizeof v);
    }
    return frames;
}

std::optional<proxy_statistics> proxy_statistics::from_frames(const std::vector<std::string>& f) {
    if (f.size() != 8) {
        return std::nullopt;
    }
    std::uint64_t v[8];
    for (std::size_t i = 0; i < 8; ++i) {
        if (f[i].size() != sizeof(std::uint64_t)) {
            return std::nullopt;
        }
        std::memcpy(&v[i], f[i].data(), sizeof(std::uint64_t));
    }
    return proxy_statistics{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
}

std::string proxy_statistics::to_json() const {
    using json = nlohmann::ordered_json;
    auto side = [](std::uint64_t mi, std::uint64_t bi, std::uint64_t mo, std::uint64_t bo) {
        return json{{"messages_in", mi}, {"bytes_in", bi}, {"messages_out", mo}, {"bytes_out", bo}};
    };
    const json j{{"frontend", side(frontend_messages_in, frontend_bytes_in, frontend_messages_out,
                                   frontend_bytes_out)},
                 {"backend", side(backend_messages_in, backend_bytes_in, backend_messages_out,
                                  backend_bytes_out)}};
    return j.dump();
}

std::string drain_report::describe() const {
    auto messages = [](std::uint64_t n) {
        return std::to_string(n) + (n == 1 ? " message" : " messages");
    };
    std::string text = dropped > 0 ? "drain ended with " + messages(dropped) +
                                         " dropped (received, never passed on)"
                                   : std::string("drain complete");
    if (remaining_in_spool && *remaining_in_spool > 0) {
        text += (dropped > 0 ? "; " : ": ") + messages(*remaining_in_spool) +
                " remain in the spool (delivered after the next start)";
    }
    return text;
}

std::string drain_report::to_json() const {
    nlohmann::ordered_json j{{"dropped", dropped}};
    if (remaining_in_spool) {
        j["remaining_in_spool"] = *remaining_in_spool;
    }
    return j.dump();
}

device_counters device_counters::register_in(metrics_registry& reg, const std::string& component,
                                             std::string_view frontend_out,
                                             std::string_view backend_in) {
    const metric_labels l{{"component", component}};
    device_counters c;
    c.frontend_in =
        &reg.get_counter("zmqkit_device_messages_in_total", "Messages received on the frontend", l);
    c.frontend_bytes_in =
        &reg.get_counter("zmqkit_device_bytes_in_total", "Bytes received on the frontend", l);
    c.frontend_out =
        &reg.get_counter("zmqkit_device_frontend_messages_out_total",
                         "Messages sent on the frontend (" + std::string(frontend_out) + ")", l);
    c.frontend_bytes_out =
        &reg.get_counter("zmqkit_device_frontend_bytes_out_total", "Bytes sent on the frontend", l);
    c.backend_in =
        &reg.get_counter("zmqkit_device_backend_messages_in_total",
                         "Messages received on the backend (" + std::string(backend_in) + ")", l);
    c.backend_bytes_in = &reg.get_counter("zmqkit_device_backend_bytes_in_total",
                                          "Bytes received on the backend", l);
    c.backend_out =
        &reg.get_counter("zmqkit_device_messages_out_total", "Messages sent on the backend", l);
    c.backend_bytes_out =
        &reg.get_counter("zmqkit_device_bytes_out_total", "Bytes sent on the backend", l);
    return c;
}

proxy_statistics device_counters::snapshot() const noexcept {
    proxy_statistics s;
    s.frontend_messages_in = frontend_in->value();
    s.frontend_bytes_in = frontend_bytes_in->value();
    s.frontend_messages_out = frontend_out->value();
    s.frontend_bytes_out = frontend_bytes_out->value();
    s.backend_messages_in = backend_in->value();
    s.backend_bytes_in = backend_bytes_in->value();
    s.backend_messages_out = backend_out->value();
    s.backend_bytes_out = backend_bytes_out->value();
    return s;
}

} // namespace zmqkit
