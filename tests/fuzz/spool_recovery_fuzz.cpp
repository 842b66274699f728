// libFuzzer target for spool recovery: the input becomes one or two segment files in the
// in-memory file system (split at the first "SPLIT" marker; the first byte picks the file
// names) and, after a second "SPLIT", the synced-position marker (its bytes as they are when
// the first byte's top bit is set, else its first 24 bytes as segment, end sequence and end
// offset of a well-formed marker), then the spool opens (strict, then not), reads every
// message and opens once more.
// Properties: never crashes, hangs or leaks; strict mode throws only spool_error; the second
// open finds nothing new.
#include <zmqkit/spool.hpp>

#include "../support/memory_file_system.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

namespace {

void open_and_read(zmqkit::testing::memory_file_system& fs, bool strict, bool* clean) {
    zmqkit::metrics_registry registry;
    zmqkit::spool_options o;
    o.directory = "/fuzz/spool";
    o.fs = &fs;
    o.segment_bytes = 4096;
    o.reserve_bytes = 512;
    o.strict = strict;
    o.dead_letter_spool = false;
    o.dedup_window = 64; // the default's 1.6 MB ring per open would dominate the run time
    o.registry = &registry;
    o.now_ns = [] { return std::int64_t{1'700'000'000'000'000'000}; };
    try {
        zmqkit::spool s(o);
        if (clean != nullptr) {
            *clean = s.recovery().clean();
            for (const auto& f : s.recovery().findings) {
                std::fprintf(stderr, "third open found: %s\n", f.c_str());
            }
        }
        std::uint64_t n = 0;
        s.for_each(0, [&](const zmqkit::spooled_message& m, bool) {
            n += m.header.size() + m.body.size();
            return true;
        });
        while (auto m = s.deliver()) {
            (void)s.ack(m->sequence);
        }
        (void)s.commit();
        (void)s.stats();
    } catch (const zmqkit::spool_error&) {
        if (!strict) {
            // non-strict recovery only gives up on I/O errors, which the memory fs never has
            std::abort();
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0 || size > 64 * 1024) {
        return 0;
    }
    const std::uint8_t mode = data[0];
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::size_t split = input.find("SPLIT");
    std::vector<std::string_view> files;
    std::optional<std::string_view> marker;
    if (split == std::string_view::npos) {
        files.push_back(input);
    } else {
        files.push_back(input.substr(0, split));
        std::string_view rest = input.substr(split + 5);
        if (const std::size_t second = rest.find("SPLIT"); second != std::string_view::npos) {
            marker = rest.substr(second + 5);
            rest = rest.substr(0, second);
        }
        files.push_back(rest);
    }
    zmqkit::testing::memory_file_system fs(mode);
    (void)fs.create_directory("/fuzz/spool");
    std::uint64_t first = (mode & 1u) != 0 ? 0 : mode >> 1;
    for (const auto f : files) {
        std::vector<std::byte> bytes(f.size());
        std::memcpy(bytes.data(), f.data(), f.size());
        fs.put_file(std::filesystem::path("/fuzz/spool") /
                        zmqkit::spool_format::segment_file_name(first),
                    std::move(bytes));
        first += 1 + (mode >> 4);
    }
    if (marker) {
        std::vector<std::byte> bytes(marker->size());
        std::memcpy(bytes.data(), marker->data(), marker->size());
        if ((mode & 0x80u) == 0) {
            std::array<std::uint64_t, 3> fields{};
            std::memcpy(fields.data(), marker->data(), std::min(marker->size(), sizeof fields));
            bytes.assign(zmqkit::spool_format::synced_size, std::byte{0});
            zmqkit::spool_format::encode_synced({fields[0], fields[1], fields[2]}, bytes.data());
        }
        fs.put_file(std::filesystem::path("/fuzz/spool") / zmqkit::spool_format::synced_file_name,
                    std::move(bytes));
    }
    open_and_read(fs, true, nullptr);
    open_and_read(fs, false, nullptr);
    bool clean = false;
    open_and_read(fs, false, &clean);
    if (!clean) {
        std::abort(); // recovery must leave a spool that recovers cleanly
    }
    return 0;
}
