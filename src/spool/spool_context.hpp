// Private to zmqkit::spool: what every part of the spool shares — its options, the file system,
// the clock of record timestamps, the metrics and the cumulative counters of spool_stats.
#pragma once

#include <zmqkit/metrics.hpp>
#include <zmqkit/spool/options.hpp>
#include <zmqkit/spool/report.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>

namespace zmqkit::detail {

struct spool_metrics {
    counter* appended;
    counter* duplicates;
    counter* acked;
    counter* redelivered;
    counter* dead_lettered;
    counter* dropped_full;
    counter* dropped_purged;
    counter* rejected_full;
    counter* commits;
    counter* syncs;
    counter* sync_ns;
    histogram* sync_latency;
    counter* committed_records;
    counter* write_errors;
    gauge* messages;
    gauge* message_bytes;
    gauge* in_flight;
    gauge* undelivered;
    gauge* segments;
    gauge* disk_bytes;
    gauge* oldest_age_ms;
    gauge* sync_ns_max;
    gauge* last_batch;
    gauge* read_only;
    gauge* disk_full;
    gauge* recovery_ms;
    gauge* recovery_truncated_bytes;
    gauge* recovery_lost;
    gauge* quarantined;

    // Registers (or finds) the spool's metrics, labelled {spool="<name>"}.
    static spool_metrics in(metrics_registry& r, const std::string& name);
};

class spool_context {
public:
    explicit spool_context(const spool_options& o)
        : opt(o), fs(o.fs != nullptr ? *o.fs : posix_file_system()), dir(o.directory),
          m(spool_metrics::in(o.registry != nullptr ? *o.registry : metrics_registry::global(),
                              o.name)) {}

    const spool_options& opt;
    spool_file_system& fs;
    const std::filesystem::path dir;
    spool_metrics m;
    spool_stats counts; // the cumulative counters part of stats()

    // Time of record timestamps and ages: options.now_ns, else the system clock.
    [[nodiscard]] std::int64_t now_ns() const {
        if (opt.now_ns) {
            return opt.now_ns();
        }
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
};

} // namespace zmqkit::detail
