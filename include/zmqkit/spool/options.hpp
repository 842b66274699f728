// zmqkit — spool options (sync and full policies, limits) and the spool error.
#pragma once

#include <zmqkit/error.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/spool/file_system.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace zmqkit {

// ---- options ----------------------------------------------------------------------------------

// When appended records reach the disk (docs/operations.md says what each mode can lose).
struct sync_policy {
    enum class mode {
        always,   // write + fdatasync before commit() returns: a confirm means on disk
        interval, // write at commit(), fdatasync at most every `interval`: an OS crash or power
                  // loss can lose confirmed records of the last interval; kill -9 loses nothing
        none,     // write only; the kernel flushes when it likes (an OS crash loses ~30 s)
    };
    mode how = mode::always;
    std::chrono::milliseconds interval{100};

    // "always", "none" or "interval:<ms>" (e.g. interval:100). Throws config_error.
    [[nodiscard]] static sync_policy parse(std::string_view text);
    [[nodiscard]] std::string to_string() const;
};

// What append() does when the spool holds max_messages or max_bytes.
enum class full_policy {
    block,       // append() answers `full`; the caller stops reading and retries (back-pressure)
    reject,      // append() answers `rejected`; the caller tells the producer
    drop_oldest, // the oldest waiting (not in-flight) messages are dropped and counted
};
[[nodiscard]] full_policy parse_full_policy(std::string_view text); // throws config_error
[[nodiscard]] std::string_view to_string(full_policy p) noexcept;

struct spool_options {
    std::filesystem::path directory;
    sync_policy sync;
    std::uint64_t segment_bytes = 64ull << 20; // preallocated size of a segment file
    // Bytes kept free at the end of every segment for control records (acks, delivery
    // attempts) so that they can still be written when the disk is full.
    std::uint64_t reserve_bytes = 1ull << 20;
    std::uint64_t max_messages = 0; // 0: no limit (messages not yet acked or dead-lettered)
    std::uint64_t max_bytes = 0;    // 0: no limit (payload bytes of those messages)
    full_policy when_full = full_policy::block;
    std::uint32_t max_attempts = 5;    // deliveries before requeue() dead-letters a message
    std::size_t dedup_window = 100000; // message ids remembered for duplicate suppression
    bool strict = false;               // refuse to open (spool_damaged_error) on damaged records or
                                       // lost sequence numbers (a torn tail is not damage)
    bool read_only = false;        // open and recover in memory only: nothing on disk is changed
    bool dead_letter_spool = true; // keep a dead-letter spool in <directory>/dead-letter
    // The queue of consumers without a group (deliver(), ack()... without a group id). When
    // false, every message is stored for the consumer groups only: it never waits for an
    // ungrouped consumer, and max_messages / max_bytes have nothing to count.
    bool default_queue = true;
    // Retention limits (0: none). Head segments are reclaimed once the default queue and every
    // consumer group settled them, or — whatever they settled — once their newest message is
    // older than retain_age, or while the spool's segments take more than retain_bytes. What a
    // limit removes before a group (or the default queue) settled it is counted as lost there
    // and reported through `notice`. The active segment is never reclaimed.
    std::chrono::milliseconds retain_age{0};
    std::uint64_t retain_bytes = 0;
    // Lines for the owner's log about what the spool did on its own (retention removing
    // messages not yet settled). nullptr: not reported (still counted).
    std::function<void(const std::string&)> notice;
    std::string name = "spool";           // metric label {spool="<name>"}
    metrics_registry* registry = nullptr; // nullptr: metrics_registry::global()
    spool_file_system* fs = nullptr;      // nullptr: posix_file_system()
    // Time source for record timestamps and ages (tests inject one). nullptr: system_clock.
    std::function<std::int64_t()> now_ns;
};

// A failure that makes the spool unusable (cannot create the directory, strict-mode corruption,
// another process holds it). The message names the file and what to do.
class spool_error : public error {
public:
    using error::error;
};

} // namespace zmqkit
