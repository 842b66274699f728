// Private to zmqkit::titanic: the store of 9/TSP requests and replies, one file each
// (docs/wire-protocol.md §9.5 gives the file format), and the pure codec of those files (the
// store, the tests and tests/fuzz/titanic_file_fuzz.cpp use it).
#pragma once

#include <zmqkit/patterns/titanic.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit {
class spool_file_system;
} // namespace zmqkit

namespace zmqkit::patterns::titanic_store_format {

// "ZKTSP001", the kind byte, three zero bytes, the frame count (u32 LE), each frame as a u32 LE
// length and its bytes, then the CRC-32C (u32 LE) of every byte before it.
inline constexpr std::string_view magic = "ZKTSP001";
enum class kind : std::uint8_t { request = 'Q', reply = 'R' };
inline constexpr std::uint32_t max_frames = 4096;
inline constexpr std::size_t header_size = 16;

[[nodiscard]] std::string encode(kind k, const std::vector<std::string>& frames);
// The frames of a file of kind k; nullopt with `why` set when the bytes are not one (short,
// another magic or kind, a length past the end, trailing bytes, a bad checksum). Never throws
// (but std::bad_alloc), never reads outside `bytes`.
[[nodiscard]] std::optional<std::vector<std::string>> decode(std::string_view bytes, kind k,
                                                             std::string& why);

} // namespace zmqkit::patterns::titanic_store_format

namespace zmqkit::patterns::detail {

// What the store counts as it happens, when given (the server's metrics): damaged files, failed
// writes.
struct titanic_store_counters {
    counter* corrupt = nullptr;
    counter* write_errors = nullptr;
};

// The directory of a Titanic server: ID.request (the service, then the body) and ID.reply (the
// reply's body; the request's file stays until titanic.close, so that a damaged reply costs a
// second dispatch rather than the request), each written to ID.<kind>.tmp, fdatasync'ed, renamed
// and the directory fsync'ed. An index in memory (ids in order: UUIDv7 ids sort by time) says which
// requests wait for a reply. Thread-safe: one mutex, held during a write (fsyncs are serialised).
class titanic_store {
public:
    enum class state { unknown, pending, replied };

    // Opens (creates) the directory and reads it into the index: a .tmp file is removed, a file
    // that fails its check is renamed to NAME.corrupt and reported through `report`. A corrupt
    // reply of a valid request makes the request pending again. Throws zmqkit::error when the
    // directory cannot be created or listed.
    titanic_store(std::filesystem::path directory, std::function<void(std::string_view)> report,
                  titanic_store_counters metrics = {}, spool_file_system* fs = nullptr);
    ~titanic_store(); // releases the store's lock
    titanic_store(const titanic_store&) = delete;
    titanic_store& operator=(const titanic_store&) = delete;

    [[nodiscard]] const titanic_recovery& recovery() const noexcept { return recovery_; }

    // Stores a request durably; its new id, or failed "io" with the reason.
    [[nodiscard]] result<std::string> store_request(std::string_view service,
                                                    const std::vector<std::string_view>& body);
    // Stores the reply of a pending request durably. False when the request is no longer
    // pending (closed meanwhile: nothing is written) or the write failed (reported).
    bool store_reply(const std::string& id, const std::vector<std::string>& frames);
    [[nodiscard]] state lookup(std::string_view id);
    // The reply's frames; nothing when the id has no reply (unknown, pending, closed meanwhile);
    // failed "corrupt" when its file is damaged or unreadable (reported, set aside; the request
    // is pending again).
    [[nodiscard]] result<std::vector<std::string>> read_reply(std::string_view id);
    // The request's frames (service, then the body); nullopt when the request is not pending
    // or its file cannot be read (reported; the request is dropped from the index).
    [[nodiscard]] std::optional<std::vector<std::string>> read_request(const std::string& id);
    // Removes the request and its reply. True when the id was known.
    bool close(std::string_view id);
    // Up to `max` pending ids after `after` (exclusive; "" for the first), oldest first.
    [[nodiscard]] std::vector<std::string> pending_after(const std::string& after, std::size_t max);

    [[nodiscard]] std::uint64_t pending_count();
    [[nodiscard]] std::uint64_t replied_count();
    [[nodiscard]] std::uint64_t corrupt_count();
    [[nodiscard]] std::uint64_t write_errors();

private:
    void recover();
    // Writes `bytes` to `name` durably (tmp, fdatasync, rename, fsync dir): 0 or an errno.
    int write_file(const std::string& name, const std::string& bytes);
    int read_file(const std::string& name, std::string& bytes);
    void note_write_error();
    void remove_file(const std::string& name);
    void lock();
    void quarantine(const std::string& name, const std::string& why);

    std::filesystem::path dir_;
    std::function<void(std::string_view)> report_;
    titanic_store_counters metrics_;
    spool_file_system* fs_;
    std::mutex mutex_;
    std::map<std::string, state, std::less<>> index_;
    titanic_recovery recovery_;
    std::uint64_t pending_ = 0, replied_ = 0;
    std::uint64_t corrupt_ = 0;
    std::uint64_t write_errors_ = 0;
    int lock_fd_ = -1; // flock of DIR/lock (the real file system only): one server per store
};

} // namespace zmqkit::patterns::detail
