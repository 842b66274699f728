#include <zmqkit/error.hpp>
#include <zmqkit/metrics.hpp>

#include <nlohmann/json.hpp>

namespace zmqkit {
namespace {

void check_name(std::string_view name) {
    bool ok = !name.empty();
    for (std::size_t i = 0; ok && i < name.size(); ++i) {
        const char c = name[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        ok = alpha || (i > 0 && c >= '0' && c <= '9');
    }
    if (!ok) {
        throw config_error("bad metric name '" + std::string(name) +
                           "': use letters, digits, '_' and ':' (not starting with a digit)");
    }
}

void escape_to(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '"':
            out += "\\\"";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            out += c;
        }
    }
}

std::string series_name(const std::string& name, const metric_labels& labels) {
    std::string s = name;
    if (!labels.empty()) {
        s += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!first) {
                s += ',';
            }
            first = false;
            s += k;
            s += "=\"";
            escape_to(s, v);
            s += '"';
        }
        s += '}';
    }
    return s;
}

} // namespace

metrics_registry& metrics_registry::global() {
    static metrics_registry registry;
    return registry;
}

counter& metrics_registry::get_counter(std::string_view name, std::string_view help,
                                       metric_labels labels) {
    check_name(name);
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) {
        it = families_.emplace(std::string(name), family{std::string(help), true, {}, {}}).first;
    } else if (!it->second.is_counter) {
        throw config_error("metric '" + std::string(name) + "' is already a gauge");
    }
    auto& slot = it->second.counters[labels];
    if (slot == nullptr) {
        slot = &counter_storage_.emplace_back();
    }
    return *slot;
}

gauge& metrics_registry::get_gauge(std::string_view name, std::string_view help,
                                   metric_labels labels) {
    check_name(name);
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) {
        it = families_.emplace(std::string(name), family{std::string(help), false, {}, {}}).first;
    } else if (it->second.is_counter) {
        throw config_error("metric '" + std::string(name) + "' is already a counter");
    }
    auto& slot = it->second.gauges[labels];
    if (slot == nullptr) {
        slot = &gauge_storage_.emplace_back();
    }
    return *slot;
}

void metrics_registry::for_each(
    const std::function<void(const std::string&, const metric_labels&, std::int64_t)>& fn) const {
    std::lock_guard lock(mutex_);
    for (const auto& [name, fam] : families_) {
        for (const auto& [labels, c] : fam.counters) {
            fn(name, labels, static_cast<std::int64_t>(c->value()));
        }
        for (const auto& [labels, g] : fam.gauges) {
            fn(name, labels, g->value());
        }
    }
}

std::string metrics_registry::prometheus_text() const {
    std::string out;
    std::lock_guard lock(mutex_);
    for (const auto& [name, fam] : families_) {
        out += "# HELP " + name + ' ';
        escape_to(out, fam.help);
        out += "\n# TYPE " + name + (fam.is_counter ? " counter\n" : " gauge\n");
        for (const auto& [labels, c] : fam.counters) {
            out += series_name(name, labels) + ' ' + std::to_string(c->value()) + '\n';
        }
        for (const auto& [labels, g] : fam.gauges) {
            out += series_name(name, labels) + ' ' + std::to_string(g->value()) + '\n';
        }
    }
    return out;
}

std::string metrics_registry::json() const {
    // Keys are the series as prometheus_text() writes them; label values are the bytes they
    // were registered with, so invalid UTF-8 is replaced by U+FFFD rather than making the
    // document unparseable.
    auto out = nlohmann::ordered_json::object();
    for_each([&](const std::string& name, const metric_labels& labels, std::int64_t v) {
        out[series_name(name, labels)] = v;
    });
    return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace zmqkit
