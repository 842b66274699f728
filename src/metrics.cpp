#include <zmqkit/error.hpp>
#include <zmqkit/metrics.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>

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

// A sample value as Prometheus writes floats: shortest round-trip form, "+Inf", "NaN".
void append_number(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    std::array<char, 32> buf{};
    const auto r =
        std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::general);
    out.append(buf.data(), r.ptr);
}

// `labels` plus le="bound", as series_name() writes them (le sorts where it sorts).
std::string bucket_series(const std::string& name, metric_labels labels, double bound) {
    std::string le;
    append_number(le, bound);
    labels["le"] = le;
    return series_name(name + "_bucket", labels);
}

} // namespace

histogram::histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
    if (bounds_.empty() ||
        !std::all_of(bounds_.begin(), bounds_.end(), [](double b) { return std::isfinite(b); }) ||
        std::adjacent_find(bounds_.begin(), bounds_.end(), std::greater_equal<>()) !=
            bounds_.end()) {
        throw config_error("histogram buckets must be finite and strictly increasing");
    }
    counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

histogram::~histogram() = default;

void histogram::observe(double value) noexcept {
    // le is inclusive: a value equal to a bound counts in that bound's bucket. NaN goes to +Inf.
    const std::size_t bucket =
        std::isnan(value)
            ? bounds_.size()
            : static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                       bounds_.begin());
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
}

histogram::snapshot histogram::collect() const {
    snapshot s;
    s.upper_bounds = bounds_;
    s.cumulative.reserve(bounds_.size() + 1);
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        running += counts_[i].load(std::memory_order_relaxed);
        s.cumulative.push_back(running);
    }
    s.count = running;
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
}

std::vector<double> histogram::latency_buckets() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
            0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

metrics_registry& metrics_registry::global() {
    static metrics_registry registry;
    return registry;
}

metrics_registry::family& metrics_registry::family_of(std::string_view name, std::string_view help,
                                                      kind type, double scale) {
    static constexpr std::array<const char*, 3> kind_names{"a counter", "a gauge", "a histogram"};
    auto it = families_.find(name);
    if (it == families_.end()) {
        it =
            families_.emplace(std::string(name), family{std::string(help), type, scale, {}, {}, {}})
                .first;
    } else if (it->second.type != type) {
        throw config_error("metric '" + std::string(name) + "' is already " +
                           kind_names.at(static_cast<std::size_t>(it->second.type)));
    }
    return it->second;
}

counter& metrics_registry::get_counter(std::string_view name, std::string_view help,
                                       const metric_labels& labels, double scale) {
    check_name(name);
    std::lock_guard lock(mutex_);
    auto& slot = family_of(name, help, kind::counter, scale).counters[labels];
    if (slot == nullptr) {
        slot = &counter_storage_.emplace_back();
    }
    return *slot;
}

gauge& metrics_registry::get_gauge(std::string_view name, std::string_view help,
                                   const metric_labels& labels, double scale) {
    check_name(name);
    std::lock_guard lock(mutex_);
    auto& slot = family_of(name, help, kind::gauge, scale).gauges[labels];
    if (slot == nullptr) {
        slot = &gauge_storage_.emplace_back();
    }
    return *slot;
}

histogram& metrics_registry::get_histogram(std::string_view name, std::string_view help,
                                           std::vector<double> upper_bounds,
                                           const metric_labels& labels) {
    check_name(name);
    if (labels.count("le") != 0U) {
        throw config_error("metric '" + std::string(name) +
                           "': a histogram's label may not be called 'le'");
    }
    if (upper_bounds.empty()) {
        upper_bounds = histogram::latency_buckets();
    }
    std::lock_guard lock(mutex_);
    auto& slot = family_of(name, help, kind::histogram).histograms[labels];
    if (slot == nullptr) {
        slot = &histogram_storage_.emplace_back(std::move(upper_bounds));
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
        for (const auto& [labels, h] : fam.histograms) {
            fn(name + "_count", labels, static_cast<std::int64_t>(h->collect().count));
        }
    }
}

std::string metrics_registry::prometheus_text() const {
    std::string out;
    std::lock_guard lock(mutex_);
    for (const auto& [name, fam] : families_) {
        out += "# HELP " + name + ' ';
        escape_to(out, fam.help);
        static constexpr std::array<const char*, 3> type_lines{" counter\n", " gauge\n",
                                                               " histogram\n"};
        out += "\n# TYPE " + name + type_lines.at(static_cast<std::size_t>(fam.type));
        const auto sample = [&out, scale = fam.scale](const std::string& series, auto value) {
            out += series;
            out += ' ';
            if (scale == 1.0) {
                out += std::to_string(value);
            } else {
                append_number(out, static_cast<double>(value) * scale);
            }
            out += '\n';
        };
        for (const auto& [labels, c] : fam.counters) {
            sample(series_name(name, labels), c->value());
        }
        for (const auto& [labels, g] : fam.gauges) {
            sample(series_name(name, labels), g->value());
        }
        for (const auto& [labels, h] : fam.histograms) {
            const auto snap = h->collect();
            for (std::size_t i = 0; i < snap.upper_bounds.size(); ++i) {
                out += bucket_series(name, labels, snap.upper_bounds[i]) + ' ' +
                       std::to_string(snap.cumulative[i]) + '\n';
            }
            out += bucket_series(name, labels, std::numeric_limits<double>::infinity()) + ' ' +
                   std::to_string(snap.count) + '\n';
            out += series_name(name + "_sum", labels) + ' ';
            append_number(out, snap.sum);
            out += '\n' + series_name(name + "_count", labels) + ' ' + std::to_string(snap.count) +
                   '\n';
        }
    }
    return out;
}

std::string metrics_registry::json() const {
    // Keys are the series as prometheus_text() writes them; label values are the bytes they
    // were registered with, so invalid UTF-8 is replaced by U+FFFD rather than making the
    // document unparseable.
    auto out = nlohmann::ordered_json::object();
    std::lock_guard lock(mutex_);
    for (const auto& [name, fam] : families_) {
        const auto put = [&out, scale = fam.scale](const std::string& series, auto value) {
            if (scale == 1.0) {
                out[series] = value;
            } else {
                out[series] = static_cast<double>(value) * scale;
            }
        };
        for (const auto& [labels, c] : fam.counters) {
            put(series_name(name, labels), c->value());
        }
        for (const auto& [labels, g] : fam.gauges) {
            put(series_name(name, labels), g->value());
        }
        for (const auto& [labels, h] : fam.histograms) {
            const auto snap = h->collect();
            out[series_name(name + "_count", labels)] = snap.count;
            out[series_name(name + "_sum", labels)] = snap.sum;
        }
    }
    return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace zmqkit
