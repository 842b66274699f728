#include "spool_context.hpp"

namespace zmqkit::detail {

spool_metrics spool_metrics::in(metrics_registry& r, const std::string& name) {
    spool_metrics m{};
    const metric_labels l{{"spool", name}};
    auto c = [&](const char* metric, const char* help, metric_labels labels = {}) {
        labels.insert(l.begin(), l.end());
        return &r.get_counter(metric, help, labels);
    };
    auto g = [&](const char* metric, const char* help, double scale = 1.0) {
        return &r.get_gauge(metric, help, l, scale);
    };
    m.appended = c("zmqkit_spool_appended_total", "Messages appended to the spool");
    m.duplicates = c("zmqkit_spool_duplicates_total",
                     "Appends of a message id already spooled (confirmed, not stored)");
    m.acked = c("zmqkit_spool_acked_total", "Messages acknowledged by consumers");
    m.redelivered = c("zmqkit_spool_redelivered_total", "Deliveries with attempt > 1");
    m.dead_lettered =
        c("zmqkit_spool_dead_lettered_total", "Messages moved to the dead-letter spool");
    m.dropped_full = c("zmqkit_spool_dropped_total", "Messages dropped", {{"reason", "full"}});
    m.dropped_purged = c("zmqkit_spool_dropped_total", "Messages dropped", {{"reason", "purged"}});
    m.rejected_full = c("zmqkit_spool_rejected_total", "Appends refused", {{"reason", "full"}});
    m.commits = c("zmqkit_spool_commits_total", "Group commits (one write each)");
    m.syncs = c("zmqkit_spool_syncs_total", "fdatasync calls");
    m.sync_ns =
        &r.get_counter("zmqkit_spool_sync_seconds_total", "Time spent in fdatasync", l, 1e-9);
    m.sync_latency = &r.get_histogram("zmqkit_spool_sync_duration_seconds",
                                      "How long each fdatasync took", {}, l);
    m.committed_records = c("zmqkit_spool_committed_records_total", "Records written");
    m.write_errors = c("zmqkit_spool_write_errors_total", "Failed writes and syncs (ENOSPC, EIO)");
    m.messages = g("zmqkit_spool_messages", "Messages waiting (not acked or dead-lettered)");
    m.message_bytes = g("zmqkit_spool_message_bytes", "Bytes of the waiting messages");
    m.in_flight = g("zmqkit_spool_in_flight", "Messages delivered and not yet acked");
    m.undelivered = g("zmqkit_spool_undelivered", "Messages never delivered (consumer lag)");
    m.segments = g("zmqkit_spool_segments", "Segment files");
    m.disk_bytes = g("zmqkit_spool_disk_bytes", "Bytes of segment files");
    m.oldest_age_ms = g("zmqkit_spool_oldest_age_seconds",
                        "Age of the oldest waiting message (at the last statistics)", 1e-3);
    m.sync_ns_max = g("zmqkit_spool_sync_seconds_max", "Longest fdatasync", 1e-9);
    m.last_batch = g("zmqkit_spool_last_commit_records", "Records in the last group commit");
    m.read_only = g("zmqkit_spool_read_only", "1 when an I/O error stopped all writing");
    m.disk_full = g("zmqkit_spool_disk_full", "1 while appends wait for disk space");
    m.recovery_ms = g("zmqkit_spool_recovery_seconds", "Time the last recovery took", 1e-3);
    m.recovery_truncated_bytes =
        g("zmqkit_spool_recovery_truncated_bytes", "Torn-tail bytes cut by the last recovery");
    m.recovery_lost = g("zmqkit_spool_recovery_lost_records",
                        "Records lost to corruption or missing segments (last recovery)");
    m.quarantined =
        g("zmqkit_spool_quarantined_segments", "Segments moved to quarantine by the last recovery");
    return m;
}

} // namespace zmqkit::detail
