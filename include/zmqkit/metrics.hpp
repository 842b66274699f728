// zmqkit — a small metrics registry: counters, gauges and histograms with labels, exported as
// Prometheus text and JSON (served over HTTP by zmqkit/metrics_server.hpp).
#pragma once

#include <zmqkit/export.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

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

// Counts observations (latencies in seconds, sizes) into buckets: a Prometheus histogram, read
// as cumulative `<name>_bucket{le="..."}`, `<name>_sum` and `<name>_count`. observe() is
// lock-free and allocation-free (two relaxed adds and one compare-exchange on the sum), so a hot
// path may call it per message, from any thread.
class ZMQKIT_API histogram {
public:
    // `upper_bounds`: increasing, finite; the +Inf bucket is implicit. Throws config_error for
    // an empty, unsorted or non-finite list.
    explicit histogram(std::vector<double> upper_bounds);
    histogram(const histogram&) = delete;
    histogram& operator=(const histogram&) = delete;
    ~histogram();

    void observe(double value) noexcept;
    // A duration, observed in seconds.
    void observe(std::chrono::nanoseconds elapsed) noexcept {
        observe(static_cast<double>(elapsed.count()) / 1e9);
    }

    struct snapshot {
        std::vector<double> upper_bounds;      // without +Inf
        std::vector<std::uint64_t> cumulative; // one per bound, then +Inf (== count)
        std::uint64_t count = 0;
        double sum = 0;
    };
    // The counts at one moment (each bucket read once; concurrent observations may land in
    // some buckets and not yet in others, as with every Prometheus client).
    [[nodiscard]] snapshot collect() const;
    [[nodiscard]] const std::vector<double>& upper_bounds() const noexcept { return bounds_; }

    // 100 us .. 10 s, for latencies in seconds (round trips, fsync, confirm, end-to-end age).
    [[nodiscard]] static std::vector<double> latency_buckets();

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_; // bounds_.size() + 1 (+Inf)
    std::atomic<double> sum_{0};
};

// Owns counters, gauges and histograms. Registration takes a lock and returns a reference that
// stays valid for the registry's lifetime; the same (name, labels) returns the same metric.
// Thread-safe.
class ZMQKIT_API metrics_registry {
public:
    metrics_registry() = default;
    metrics_registry(const metrics_registry&) = delete;
    metrics_registry& operator=(const metrics_registry&) = delete;

    // Process-wide registry that components use unless given another.
    static metrics_registry& global();

    // name must match [a-zA-Z_:][a-zA-Z0-9_:]* (throws config_error otherwise). `scale`: the
    // exposition shows value() x scale, so a hot path counts in integers of a small unit and
    // the metric is in base units as Prometheus wants (nanoseconds counted, seconds shown:
    // 1e-9). It is the family's: the first registration of a name sets it.
    counter& get_counter(std::string_view name, std::string_view help,
                         const metric_labels& labels = {}, double scale = 1.0);
    gauge& get_gauge(std::string_view name, std::string_view help, const metric_labels& labels = {},
                     double scale = 1.0);
    // `upper_bounds` apply when the series is created (histogram::latency_buckets() if empty);
    // a later call for the same series returns it as it is.
    histogram& get_histogram(std::string_view name, std::string_view help,
                             std::vector<double> upper_bounds = {},
                             const metric_labels& labels = {});

    // Prometheus text exposition format 0.0.4 (# HELP / # TYPE lines, one sample a series).
    [[nodiscard]] std::string prometheus_text() const;
    // {"name{label=\"v\"}": value, ...} — one flat JSON object whose keys are the series as
    // prometheus_text() names them (a histogram: its _count and _sum). Always valid JSON: label
    // bytes that are not UTF-8 appear replaced by U+FFFD.
    [[nodiscard]] std::string json() const;
    // Calls fn(name, labels, value) for every counter and gauge series, in name order (a
    // histogram as its "<name>_count").
    void for_each(const std::function<void(const std::string&, const metric_labels&, std::int64_t)>&
                      fn) const;

private:
    enum class kind : std::uint8_t { counter, gauge, histogram };
    struct family {
        std::string help;
        kind type = kind::counter;
        double scale = 1.0;
        std::map<metric_labels, counter*> counters;
        std::map<metric_labels, gauge*> gauges;
        std::map<metric_labels, histogram*> histograms;
    };
    family& family_of(std::string_view name, std::string_view help, kind type, double scale = 1.0);

    mutable std::mutex mutex_;
    std::map<std::string, family, std::less<>> families_;
    std::deque<counter> counter_storage_;
    std::deque<gauge> gauge_storage_;
    std::deque<histogram> histogram_storage_;
};

} // namespace zmqkit
