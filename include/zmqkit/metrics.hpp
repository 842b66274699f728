// zmqkit — a small metrics registry: counters and gauges with labels, exported as Prometheus
// text and JSON.
#pragma once

#include <zmqkit/export.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace zmqkit {

// Label set, e.g. {{"component", "worker"}, {"socket", "in"}}. Ordered, so rendering is stable.
using metric_labels = std::map<std::string, std::string>;

// A monotonically increasing count. add() is lock-free and may be called from any thread.
class ZMQKIT_API counter {
public:
    void add(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t value() const noexcept {
        return value_.load(std::memory_order_relaxed);
    }

private:
    std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (queue depth, in-flight count, age in seconds).
class ZMQKIT_API gauge {
public:
    void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void add(std::int64_t n) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    [[nodiscard]] std::int64_t value() const noexcept {
        return value_.load(std::memory_order_relaxed);
    }

private:
    std::atomic<std::int64_t> value_{0};
};

// Owns counters and gauges. Registration takes a lock and returns a reference that stays valid
// for the registry's lifetime; the same (name, labels) returns the same metric. Thread-safe.
class ZMQKIT_API metrics_registry {
public:
    metrics_registry() = default;
    metrics_registry(const metrics_registry&) = delete;
    metrics_registry& operator=(const metrics_registry&) = delete;

    // Process-wide registry that components use unless given another.
    static metrics_registry& global();

    // name must match [a-zA-Z_:][a-zA-Z0-9_:]* (throws config_error otherwise).
    counter& get_counter(std::string_view name, std::string_view help, metric_labels labels = {});
    gauge& get_gauge(std::string_view name, std::string_view help, metric_labels labels = {});

    // Prometheus text exposition format 0.0.4 (# HELP / # TYPE lines, one sample a series).
    [[nodiscard]] std::string prometheus_text() const;
    // {"name{label=\"v\"}": value, ...} — one flat JSON object whose keys are the series as
    // prometheus_text() names them. Always valid JSON: label bytes that are not UTF-8 appear
    // replaced by U+FFFD.
    [[nodiscard]] std::string json() const;
    // Calls fn(name, labels, value) for every series, in name order.
    void for_each(const std::function<void(const std::string&, const metric_labels&, std::int64_t)>&
                      fn) const;

private:
    struct family {
        std::string help;
        bool is_counter = true;
        std::map<metric_labels, counter*> counters;
        std::map<metric_labels, gauge*> gauges;
    };
    mutable std::mutex mutex_;
    std::map<std::string, family, std::less<>> families_;
    std::deque<counter> counter_storage_;
    std::deque<gauge> gauge_storage_;
};

} // namespace zmqkit
