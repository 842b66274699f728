// The spool's parts wired as spool::impl wires them, over an in-memory file system, for tests of
// one part at a time; and hand-built segment files for recovery to read.
#pragma once

#include "consumer_groups.hpp"
#include "delivery_state.hpp"
#include "group_commit.hpp"
#include "recovery.hpp"
#include "segment_log.hpp"
#include "spool_context.hpp"
#include "support/memory_file_system.hpp"

#include <zmqkit/message_id_window.hpp>
#include <zmqkit/spool.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace zmqkit::testing {

inline message_id test_id(std::uint64_t n) {
    std::array<std::uint8_t, message_id::size> bytes{};
    bytes[0] = 0x01;
    for (std::size_t i = 0; i < 8; ++i) {
        bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
    }
    return message_id(bytes);
}

struct spool_parts {
    explicit spool_parts(memory_file_system& fs, std::filesystem::path dir = "/spool",
                         metrics_registry* registry = nullptr) {
        options.directory = std::move(dir);
        options.fs = &fs;
        options.registry = registry != nullptr ? registry : &own_registry;
        options.segment_bytes = 4096;
        options.reserve_bytes = 512;
        options.dead_letter_spool = false;
        options.now_ns = [this] { return now; };
    }

    // Runs recovery over the directory (the parts are built now, from the options as set).
    void recover() {
        build();
        detail::spool_recovery(*ctx, *log, *delivery, *groups, *queue, *dedup, report).run();
    }
    void build() {
        dedup.reset(); // the parts hold references to those built before them
        groups.reset();
        delivery.reset();
        queue.reset();
        log.reset();
        ctx = std::make_unique<detail::spool_context>(options);
        log = std::make_unique<detail::segment_log>(*ctx);
        queue = std::make_unique<detail::group_commit>(*ctx, *log, nullptr);
        delivery = std::make_unique<detail::delivery_state>(*ctx, *log, *queue, nullptr);
        groups = std::make_unique<detail::consumer_groups>(*ctx, *log, *queue, nullptr);
        dedup = std::make_unique<message_id_window>(options.dedup_window);
    }

    metrics_registry own_registry;
    spool_options options;
    std::int64_t now = 1'000'000'000;
    recovery_report report;
    std::unique_ptr<detail::spool_context> ctx;
    std::unique_ptr<detail::segment_log> log;
    std::unique_ptr<detail::group_commit> queue;
    std::unique_ptr<detail::delivery_state> delivery;
    std::unique_ptr<detail::consumer_groups> groups;
    std::unique_ptr<message_id_window> dedup;
};

// A segment file built record by record (docs/spool-format.md §2), zero-padded to its size.
class segment_image {
public:
    explicit segment_image(std::uint64_t first, std::uint64_t log_start = 0) : next_(first) {
        std::vector<std::byte> p;
        detail::put64(p, log_start);
        detail::put64(p, 1);
        add(spool_format::record_type::segment_start, p, spool_format::flag_commit_start);
    }
    // A message record; returns its sequence number.
    std::uint64_t message(const message_id& id, std::string_view body) {
        std::vector<std::byte> p;
        detail::put64(p, 5);
        p.insert(p.end(), reinterpret_cast<const std::byte*>(id.data()),
                 reinterpret_cast<const std::byte*>(id.data()) + message_id::size);
        detail::put32(p, 2);
        for (const char c : std::string("hd") + std::string(body)) {
            p.push_back(static_cast<std::byte>(c));
        }
        return add(spool_format::record_type::message, p, 0);
    }
    // A delivered / acked record for one sequence number.
    std::uint64_t list(spool_format::record_type type, std::uint64_t seq, std::uint64_t value) {
        std::vector<std::byte> p;
        spool_format::write_varint(p, 1);
        spool_format::write_varint(p, seq);
        spool_format::write_varint(p, value);
        return add(type, p, 0);
    }
    [[nodiscard]] std::uint64_t next_sequence() const noexcept { return next_; }
    [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
    // Offset of the record with this sequence number.
    [[nodiscard]] std::size_t offset_of(std::uint64_t seq) const { return offsets_.at(seq); }
    [[nodiscard]] std::vector<std::byte> file(std::size_t capacity = 4096) const {
        std::vector<std::byte> f = bytes_;
        f.resize(std::max(capacity, f.size()));
        return f;
    }
    std::vector<std::byte>& bytes() noexcept { return bytes_; }

private:
    std::uint64_t add(spool_format::record_type type, const std::vector<std::byte>& payload,
                      std::uint8_t flags) {
        const std::size_t at = bytes_.size();
        offsets_[next_] = at;
        bytes_.resize(at + spool_format::record_header_size);
        bytes_.insert(bytes_.end(), payload.begin(), payload.end());
        spool_format::seal_record(bytes_.data() + at, type, flags, next_,
                                  static_cast<std::uint32_t>(payload.size()));
        return next_++;
    }
    std::vector<std::byte> bytes_;
    std::map<std::uint64_t, std::size_t> offsets_;
    std::uint64_t next_;
};

inline std::vector<std::byte> synced_marker(std::uint64_t segment, std::uint64_t end_sequence,
                                            std::uint64_t end_offset) {
    std::vector<std::byte> m(spool_format::synced_size);
    spool_format::encode_synced({segment, end_sequence, end_offset}, m.data());
    return m;
}

} // namespace zmqkit::testing
