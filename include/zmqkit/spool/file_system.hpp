// zmqkit — the file system the spool writes through (tests inject faults through it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace zmqkit {

// ---- the file system the spool writes through -------------------------------------------------

// Every file operation the spool performs, so tests can inject ENOSPC, EIO and crashes (drop
// what was not synced). Functions return 0 or an errno value; they never throw.
class spool_file_system {
public:
    using handle = int;
    spool_file_system() = default;
    spool_file_system(const spool_file_system&) = delete;
    spool_file_system& operator=(const spool_file_system&) = delete;
    virtual ~spool_file_system() = default;

    [[nodiscard]] virtual int create_directory(const std::filesystem::path& dir) = 0; // EEXIST ok
    // Names (not paths) of the regular files in dir.
    [[nodiscard]] virtual int list(const std::filesystem::path& dir,
                                   std::vector<std::string>& names) = 0;
    // Opens for reading and writing (create: O_CREAT|O_EXCL) or for reading only.
    [[nodiscard]] virtual int open(const std::filesystem::path& file, bool writable, bool create,
                                   handle& out) = 0;
    virtual void close(handle h) noexcept = 0;
    [[nodiscard]] virtual int size(handle h, std::uint64_t& out) = 0;
    // Makes the file exactly `bytes` long with zeros past the old end, reserving the space
    // (fallocate), so later writes inside it cannot fail with ENOSPC.
    [[nodiscard]] virtual int allocate(handle h, std::uint64_t bytes) = 0;
    [[nodiscard]] virtual int truncate(handle h, std::uint64_t bytes) = 0;
    // Reads up to n bytes at offset; `got` < n only at the end of the file.
    [[nodiscard]] virtual int read(handle h, void* data, std::size_t n, std::uint64_t offset,
                                   std::size_t& got) = 0;
    // Writes all n bytes at offset, or fails.
    [[nodiscard]] virtual int write(handle h, const void* data, std::size_t n,
                                    std::uint64_t offset) = 0;
    [[nodiscard]] virtual int sync_data(handle h) = 0;
    [[nodiscard]] virtual int sync_directory(const std::filesystem::path& dir) = 0;
    [[nodiscard]] virtual int rename(const std::filesystem::path& from,
                                     const std::filesystem::path& to) = 0;
    [[nodiscard]] virtual int remove(const std::filesystem::path& file) = 0;
};

// The real one (POSIX: open/pread/pwrite/fdatasync/fallocate). Thread-safe, stateless.
[[nodiscard]] spool_file_system& posix_file_system() noexcept;

} // namespace zmqkit
