// The Titanic store: a file per request and per reply, each made durable the same way (a
// temporary name, fdatasync, rename, fsync of the directory) so that a crash leaves either the
// old state or the new one, and a checksum so that damage is found rather than served.
#include "titanic_store.hpp"

#include <zmqkit/encoding.hpp>
#include <zmqkit/error.hpp>
#include <zmqkit/message_id.hpp>
#include <zmqkit/spool/file_system.hpp>
#include <zmqkit/spool/format.hpp>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace zmqkit::patterns {

bool tsp::valid_id(std::string_view id) noexcept {
    if (id.size() != id_size) {
        return false;
    }
    for (const char c : id) {
        if (hex_value(c) < 0) {
            return false;
        }
    }
    return true;
}

namespace titanic_store_format {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFU));
    }
}

std::uint32_t get_u32(std::string_view bytes, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
    }
    return v;
}

} // namespace

std::string encode(kind k, const std::vector<std::string>& frames) {
    std::size_t total = header_size + 4;
    for (const auto& f : frames) {
        total += 4 + f.size();
    }
    std::string out;
    out.reserve(total);
    out.append(magic);
    out.push_back(static_cast<char>(k));
    out.append(3, '\0');
    put_u32(out, static_cast<std::uint32_t>(frames.size()));
    for (const auto& f : frames) {
        put_u32(out, static_cast<std::uint32_t>(f.size()));
        out.append(f);
    }
    put_u32(out, spool_format::crc32c(out.data(), out.size()));
    return out;
}

std::optional<std::vector<std::string>> decode(std::string_view bytes, kind k, std::string& why) {
    if (bytes.size() < header_size + 4) {
        why = "too short (" + std::to_string(bytes.size()) + " bytes)";
        return std::nullopt;
    }
    if (bytes.substr(0, magic.size()) != magic) {
        why = "not a Titanic store file (bad magic)";
        return std::nullopt;
    }
    if (static_cast<std::uint8_t>(bytes[8]) != static_cast<std::uint8_t>(k) || bytes[9] != 0 ||
        bytes[10] != 0 || bytes[11] != 0) {
        why = "wrong kind or flags";
        return std::nullopt;
    }
    const std::size_t body_end = bytes.size() - 4;
    if (spool_format::crc32c(bytes.data(), body_end) != get_u32(bytes, body_end)) {
        why = "bad checksum";
        return std::nullopt;
    }
    const std::uint32_t count = get_u32(bytes, 12);
    if (count == 0 || count > max_frames) {
        why = "bad frame count " + std::to_string(count);
        return std::nullopt;
    }
    std::vector<std::string> frames;
    std::size_t at = header_size;
    for (std::uint32_t i = 0; i < count; ++i) {
        if (body_end - at < 4) {
            why = "frame " + std::to_string(i) + " runs past the end";
            return std::nullopt;
        }
        const std::uint32_t size = get_u32(bytes, at);
        at += 4;
        if (body_end - at < size) {
            why = "frame " + std::to_string(i) + " runs past the end";
            return std::nullopt;
        }
        frames.emplace_back(bytes.substr(at, size));
        at += size;
    }
    if (at != body_end) {
        why = std::to_string(body_end - at) + " bytes after the last frame";
        return std::nullopt;
    }
    return frames;
}

} // namespace titanic_store_format

namespace detail {
namespace {

namespace fmt = titanic_store_format;

constexpr std::string_view request_suffix = ".request";
constexpr std::string_view reply_suffix = ".reply";
constexpr std::string_view temporary_suffix = ".tmp";
constexpr std::string_view corrupt_suffix = ".corrupt";
// A store file larger than this is not read (a damaged length, another program's file).
constexpr std::uint64_t max_file_bytes = std::uint64_t{1} << 30;

std::string error_text(int e) {
    return std::system_category().message(e);
}

std::string lower(std::string_view id) {
    std::string out(id);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'F') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

} // namespace

titanic_store::titanic_store(std::filesystem::path directory,
                             std::function<void(std::string_view)> report,
                             titanic_store_counters metrics, spool_file_system* fs)
    : dir_(std::move(directory)), report_(std::move(report)), metrics_(metrics),
      fs_(fs != nullptr ? fs : &posix_file_system()) {
    if (dir_.empty()) {
        throw config_error("Titanic: the store directory is required");
    }
    if (const int e = fs_->create_directory(dir_); e != 0) {
        throw error("Titanic: cannot create the store directory " + dir_.string() + ": " +
                    error_text(e));
    }
    lock();
    recover();
}

titanic_store::~titanic_store() {
    if (lock_fd_ >= 0) {
        ::close(lock_fd_);
    }
}

// Two servers on one store would both dispatch its requests: the second one is refused.
void titanic_store::lock() {
    if (fs_ != &posix_file_system()) {
        return;
    }
    const auto path = dir_ / "lock";
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lock_fd_ < 0) {
        throw error("Titanic: cannot open " + path.string() + ": " + error_text(errno));
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        ::close(lock_fd_);
        lock_fd_ = -1;
        throw error("Titanic: the store " + dir_.string() + " is in use by another process (" +
                    path.string() + " is locked: " + error_text(e) +
                    "); stop it or choose another --titanic directory");
    }
}

void titanic_store::recover() {
    std::vector<std::string> names;
    if (const int e = fs_->list(dir_, names); e != 0) {
        throw error("Titanic: cannot list the store directory " + dir_.string() + ": " +
                    error_text(e));
    }
    std::map<std::string, bool, std::less<>> requests; // id -> has a valid reply
    std::vector<std::string> replies;
    for (const auto& name : names) {
        if (name.ends_with(temporary_suffix)) {
            remove_file(name); // a write the crash cut short: never answered 200
            ++recovery_.temporaries;
            continue;
        }
        const bool request = name.ends_with(request_suffix);
        const bool reply = name.ends_with(reply_suffix);
        if (!request && !reply) {
            continue; // NAME.corrupt and anything else is left alone
        }
        const std::string id =
            name.substr(0, name.size() - (request ? request_suffix : reply_suffix).size());
        if (!tsp::valid_id(id)) {
            continue;
        }
        std::string bytes;
        std::string why;
        if (const int e = read_file(name, bytes); e != 0) {
            why = "unreadable: " + error_text(e);
        } else if (fmt::decode(bytes, request ? fmt::kind::request : fmt::kind::reply, why)) {
            if (request) {
                ++recovery_.requests;
                requests.emplace(id, false);
            } else {
                ++recovery_.replies;
                replies.push_back(id);
            }
            continue;
        }
        quarantine(name, why);
        ++recovery_.corrupt;
    }
    for (const auto& id : replies) {
        index_[id] = state::replied;
        ++replied_;
        requests.erase(id);
    }
    for (const auto& [id, replied] : requests) {
        index_[id] = state::pending;
        ++pending_;
        ++recovery_.pending;
    }
    if (recovery_.temporaries > 0 || recovery_.corrupt > 0) {
        (void)fs_->sync_directory(dir_);
    }
}

void titanic_store::quarantine(const std::string& name, const std::string& why) {
    ++corrupt_;
    if (metrics_.corrupt != nullptr) {
        metrics_.corrupt->add();
    }
    const std::string line = "store file " + (dir_ / name).string() + " is damaged (" + why +
                             "): set aside as " + name + std::string(corrupt_suffix);
    if (recovery_.problems.size() < 100) {
        recovery_.problems.push_back(line);
    }
    if (report_) {
        report_(line);
    }
    (void)fs_->rename(dir_ / name, dir_ / (name + std::string(corrupt_suffix)));
}

int titanic_store::write_file(const std::string& name, const std::string& bytes) {
    const auto temporary = dir_ / (name + std::string(temporary_suffix));
    (void)fs_->remove(temporary);
    spool_file_system::handle h = -1;
    if (const int e = fs_->open(temporary, true, true, h); e != 0) {
        return e;
    }
    int e = fs_->write(h, bytes.data(), bytes.size(), 0);
    if (e == 0) {
        e = fs_->sync_data(h);
    }
    fs_->close(h);
    if (e == 0) {
        e = fs_->rename(temporary, dir_ / name);
    }
    if (e == 0) {
        e = fs_->sync_directory(dir_);
    }
    if (e != 0) {
        (void)fs_->remove(temporary);
    }
    return e;
}

int titanic_store::read_file(const std::string& name, std::string& bytes) {
    spool_file_system::handle h = -1;
    if (const int e = fs_->open(dir_ / name, false, false, h); e != 0) {
        return e;
    }
    std::uint64_t size = 0;
    int e = fs_->size(h, size);
    if (e == 0 && size > max_file_bytes) {
        e = EFBIG;
    }
    if (e == 0) {
        bytes.resize(static_cast<std::size_t>(size));
        std::size_t got = 0;
        e = fs_->read(h, bytes.data(), bytes.size(), 0, got);
        bytes.resize(got);
    }
    fs_->close(h);
    return e;
}

void titanic_store::note_write_error() {
    ++write_errors_;
    if (metrics_.write_errors != nullptr) {
        metrics_.write_errors->add();
    }
}

void titanic_store::remove_file(const std::string& name) {
    (void)fs_->remove(dir_ / name);
}

result<std::string> titanic_store::store_request(std::string_view service,
                                                 const std::vector<std::string_view>& body) {
    std::vector<std::string> frames;
    frames.reserve(body.size() + 1);
    frames.emplace_back(service);
    for (const auto& f : body) {
        frames.emplace_back(f);
    }
    const auto bytes = fmt::encode(fmt::kind::request, frames);
    const std::lock_guard lock(mutex_);
    // UUIDv7: ids sort by creation time, so the index is in arrival order.
    const auto generated = message_id::generate();
    std::string id =
        to_hex(std::string_view(reinterpret_cast<const char*>(generated.data()), message_id::size));
    if (const int e = write_file(id + std::string(request_suffix), bytes); e != 0) {
        note_write_error();
        return result<std::string>::failed("io", "cannot store the request in " + dir_.string() +
                                                     ": " + error_text(e));
    }
    index_.emplace(id, state::pending);
    ++pending_;
    return id;
}

bool titanic_store::store_reply(const std::string& id, const std::vector<std::string>& frames) {
    const auto bytes = fmt::encode(fmt::kind::reply, frames);
    const std::lock_guard lock(mutex_);
    const auto it = index_.find(id);
    if (it == index_.end() || it->second != state::pending) {
        return false;
    }
    if (const int e = write_file(id + std::string(reply_suffix), bytes); e != 0) {
        note_write_error();
        if (report_) {
            report_("cannot store the reply of request " + id + " in " + dir_.string() + ": " +
                    error_text(e) + " (the request stays pending)");
        }
        return false;
    }
    it->second = state::replied;
    --pending_;
    ++replied_;
    return true;
}

titanic_store::state titanic_store::lookup(std::string_view id) {
    const std::lock_guard lock(mutex_);
    const auto it = index_.find(lower(id));
    return it == index_.end() ? state::unknown : it->second;
}

result<std::vector<std::string>> titanic_store::read_reply(std::string_view raw_id) {
    const std::string id = lower(raw_id);
    const std::lock_guard lock(mutex_);
    const auto it = index_.find(id);
    if (it == index_.end() || it->second != state::replied) {
        return {};
    }
    const std::string name = id + std::string(reply_suffix);
    std::string bytes;
    std::string why;
    if (const int e = read_file(name, bytes); e != 0) {
        why = "unreadable: " + error_text(e);
    } else if (auto frames = fmt::decode(bytes, fmt::kind::reply, why)) {
        return std::move(*frames);
    }
    quarantine(name, why);
    // The request's file stays until close: the request is dispatched again (at-least-once).
    it->second = state::pending;
    --replied_;
    ++pending_;
    return result<std::vector<std::string>>::failed("corrupt", why);
}

std::optional<std::vector<std::string>> titanic_store::read_request(const std::string& id) {
    const std::lock_guard lock(mutex_);
    const auto it = index_.find(id);
    if (it == index_.end() || it->second != state::pending) {
        return std::nullopt;
    }
    const std::string name = id + std::string(request_suffix);
    std::string bytes;
    std::string why;
    if (const int e = read_file(name, bytes); e != 0) {
        why = "unreadable: " + error_text(e);
    } else if (auto frames = fmt::decode(bytes, fmt::kind::request, why)) {
        if (frames->size() >= 2) {
            return frames;
        }
        why = "no body";
    }
    quarantine(name, why);
    index_.erase(it);
    --pending_;
    return std::nullopt;
}

bool titanic_store::close(std::string_view raw_id) {
    const std::string id = lower(raw_id);
    const std::lock_guard lock(mutex_);
    const auto it = index_.find(id);
    if (it == index_.end()) {
        return false;
    }
    --(it->second == state::pending ? pending_ : replied_);
    index_.erase(it);
    remove_file(id + std::string(request_suffix));
    remove_file(id + std::string(reply_suffix));
    (void)fs_->sync_directory(dir_);
    return true;
}

std::vector<std::string> titanic_store::pending_after(const std::string& after, std::size_t max) {
    std::vector<std::string> out;
    const std::lock_guard lock(mutex_);
    for (auto it = after.empty() ? index_.begin() : index_.upper_bound(after);
         it != index_.end() && out.size() < max; ++it) {
        if (it->second == state::pending) {
            out.push_back(it->first);
        }
    }
    return out;
}

std::uint64_t titanic_store::pending_count() {
    const std::lock_guard lock(mutex_);
    return pending_;
}

std::uint64_t titanic_store::replied_count() {
    const std::lock_guard lock(mutex_);
    return replied_;
}

std::uint64_t titanic_store::corrupt_count() {
    const std::lock_guard lock(mutex_);
    return corrupt_;
}

std::uint64_t titanic_store::write_errors() {
    const std::lock_guard lock(mutex_);
    return write_errors_;
}

} // namespace detail
} // namespace zmqkit::patterns
