// zmqkit-spooler: the commands (inspect, verify, repair, dlq, record, replay), separate from main
// so that tests can call the pieces.
#pragma once

#include "zmqkit-spooler/options.hpp"

#include <zmqkit/metrics.hpp>
#include <zmqkit/signals.hpp>
#include <zmqkit/spool.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zmqkit::cli {

// Runs the command of cfg. Returns the exit code (options.hpp, docs/cli.md).
[[nodiscard]] int run_spooler(const spooler_config& cfg, const logger& log,
                              shutdown_signals& signals);

// Opens the spool at cfg.directory: read-only (nothing on disk changes, no lock) or writable
// (recovery repairs, the directory lock is taken; record may create the spool). Segment size
// for new segments: --segment-bytes, else the size of the largest existing segment file.
// Throws usage_error: exit_no_spool (no spool there, unreadable), exit_spool_in_use (another
// process holds it), each with the spool's own message.
[[nodiscard]] std::unique_ptr<spool> open_spool(const spooler_config& cfg, bool writable,
                                                metrics_registry& registry);

// record and replay (stream.cpp).
// The user header in which `record --sub` keeps a publication's topic frame when it differs
// from the header's type; `replay --pub` sends it as the topic frame again and removes it.
inline constexpr std::string_view recorded_topic_header = "zmqkit-topic";
[[nodiscard]] int run_record(const spooler_config& cfg, const logger& log,
                             shutdown_signals& signals);
[[nodiscard]] int run_replay(const spooler_config& cfg, const logger& log,
                             shutdown_signals& signals);

// How a settled message was settled, as the control records of the log say.
enum class settled_by : std::uint8_t { acked, dead_lettered, dropped_full, dropped_purged };

// One segment file read record by record with spool_format::parse_record, independently of the
// spool's recovery (verify, inspect).
struct segment_walk {
    std::string file;                              // file name
    std::uint64_t file_bytes = 0;                  // size on disk (preallocated space included)
    std::uint64_t first_sequence = 0;              // from the file name
    std::uint64_t records = 0;                     // valid records
    std::uint64_t record_bytes = 0;                // bytes of valid records
    std::optional<std::uint64_t> lowest_sequence;  // of the valid records
    std::optional<std::uint64_t> highest_sequence; // of the valid records
    std::array<std::uint64_t, 13> by_type{}; // index: spool_format::record_type (0: unknown type)
    std::uint64_t sequence_jumps = 0;        // a valid record not numbered previous + 1
    std::optional<std::uint64_t> first_bad_offset;
    std::string first_bad_reason;      // "bad checksum", "bad magic", ...
    std::uint64_t damaged_regions = 0; // stretches of bytes that are not valid records
    std::string read_error;            // the file could not be read (errno text)

    [[nodiscard]] bool damaged() const noexcept {
        return first_bad_offset.has_value() || !read_error.empty();
    }
};

// Walks every segment file of dir (not sub-directories), in sequence order. With `settled`,
// also records how each sequence number named by an acked, dead_lettered or dropped record was
// settled. Missing dir: an empty list.
[[nodiscard]] std::vector<segment_walk>
walk_segments(const std::filesystem::path& dir,
              std::unordered_map<std::uint64_t, settled_by>* settled = nullptr);

// Name of a record type ("message", "acked", ...; "unknown" for anything else).
[[nodiscard]] std::string_view record_type_name(std::size_t type) noexcept;

} // namespace zmqkit::cli
