// An in-memory spool_file_system that can crash. Every file keeps what was written and what is
// durable: sync_data makes a file's current content durable; a directory entry (create, rename,
// remove) becomes durable only when its directory is synced. crash() throws away everything not
// durable — optionally keeping a random prefix of the unsynced writes, the last one torn — as a
// power loss would. Faults: the next N writes/allocates fail (ENOSPC), all writes or syncs fail
// (EIO), a disk size. Deterministic for a seed. Not thread-safe (the spool is single-threaded).
// Directories are durable as soon as they are created (the spool never syncs their parents).
#pragma once

#include <zmqkit/spool.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace zmqkit::testing {

class memory_file_system final : public spool_file_system {
public:
    explicit memory_file_system(std::uint64_t seed = 1) : random_(seed) {}

    // ---- crash simulation ----

    // Power loss: every file goes back to its durable content (torn: plus a random prefix of its
    // unsynced writes, the last of them cut at a random byte), every directory to its durable
    // entries; files no directory names any more are gone. Open handles die (EBADF), and until
    // restart() every call fails with EIO, so a spool destroyed after the crash cannot write.
    void crash(bool torn = false) {
        for (auto& [id, f] : files_) {
            std::vector<std::byte> image = f->durable;
            if (torn && !f->pending.empty()) {
                std::uniform_int_distribution<std::size_t> pick(0, f->pending.size());
                const std::size_t keep = pick(random_);
                for (std::size_t i = 0; i < keep && i < f->pending.size(); ++i) {
                    const auto& pending_op = f->pending[i];
                    if (i + 1 == keep && pending_op.kind == op_kind::write &&
                        !pending_op.data.empty()) {
                        // the last kept write reached the disk only in part
                        std::uniform_int_distribution<std::size_t> cut(0, pending_op.data.size());
                        replay(image, pending_op, cut(random_));
                    } else {
                        replay(image, pending_op, pending_op.data.size());
                    }
                }
            }
            f->current = image;
            f->durable = std::move(image);
            f->pending.clear();
        }
        for (auto& [path, d] : directories_) {
            d.current = d.durable;
        }
        collect();
        handles_.clear();
        frozen_ = true;
        crash_countdown_ = 0;
        ++crashes_;
    }
    // After crash(): the machine is back; the spool can be opened again.
    void restart() noexcept { frozen_ = false; }
    // Power loss in the middle of things: the `ops`-th changing call from now on (write,
    // allocate, truncate, sync, create, rename, remove) crashes instead of running.
    void crash_after(int ops, bool torn = false) {
        crash_countdown_ = ops;
        crash_torn_ = torn;
    }
    [[nodiscard]] bool frozen() const noexcept { return frozen_; }

    // ---- faults ----

    // The next n write() or allocate() calls fail with `error` (one each).
    void fail_next_writes(int n, int error = ENOSPC) {
        fail_writes_left_ = n;
        fail_writes_error_ = error;
    }
    // Every write() fails with `error` (0: stop).
    void fail_all_writes(int error) { write_error_ = error; }
    // Every sync_data() / sync_directory() fails with `error` (0: stop).
    void fail_syncs(int error) { sync_error_ = error; }
    // The disk holds at most `bytes` bytes of file content (0: unlimited).
    void set_disk_size(std::uint64_t bytes) { disk_size_ = bytes; }
    void clear_faults() {
        fail_writes_left_ = 0;
        write_error_ = 0;
        sync_error_ = 0;
    }

    // ---- inspection and setup (tests, fuzzers) ----

    [[nodiscard]] std::uint64_t used_bytes() const {
        std::uint64_t n = 0;
        for (const auto& [id, f] : files_) {
            n += f->current.size();
        }
        return n;
    }
    [[nodiscard]] int crashes() const noexcept { return crashes_; }
    [[nodiscard]] std::uint64_t writes() const noexcept { return writes_; }
    [[nodiscard]] std::uint64_t syncs() const noexcept { return syncs_; }

    // Creates (or replaces) a durable file with these bytes (its directory must exist).
    void put_file(const std::filesystem::path& file, std::vector<std::byte> bytes) {
        auto& d = directories_.at(key(file.parent_path()));
        auto f = std::make_shared<inode>();
        f->id = next_inode_++;
        f->durable = bytes;
        f->current = std::move(bytes);
        files_[f->id] = f;
        d.current[file.filename().string()] = f->id;
        d.durable[file.filename().string()] = f->id;
        collect();
    }
    // The current content of a file (nullopt: no such file).
    [[nodiscard]] std::optional<std::vector<std::byte>>
    file_content(const std::filesystem::path& file) const {
        const auto d = directories_.find(key(file.parent_path()));
        if (d == directories_.end()) {
            return std::nullopt;
        }
        const auto e = d->second.current.find(file.filename().string());
        if (e == d->second.current.end()) {
            return std::nullopt;
        }
        return files_.at(e->second)->current;
    }
    // Names of the files in a directory now (sorted).
    [[nodiscard]] std::vector<std::string> files_in(const std::filesystem::path& dir) const {
        std::vector<std::string> out;
        if (const auto d = directories_.find(key(dir)); d != directories_.end()) {
            for (const auto& [name, id] : d->second.current) {
                out.push_back(name);
            }
        }
        return out;
    }

    // ---- spool_file_system ----

    int create_directory(const std::filesystem::path& dir) override {
        if (frozen_) {
            return EIO;
        }
        const std::string k = key(dir);
        if (directories_.contains(k)) {
            return 0;
        }
        if (const int e = tick(); e != 0) {
            return e;
        }
        if (k != "/" && !directories_.contains(key(dir.parent_path())) &&
            !dir.parent_path().empty()) {
            // parents are created implicitly: the spool's parent directory is "given"
            (void)create_directory(dir.parent_path());
        }
        if (const auto p = directories_.find(key(dir.parent_path())); p != directories_.end()) {
            if (p->second.current.contains(dir.filename().string())) {
                return ENOTDIR;
            }
        }
        directories_[k];
        return 0;
    }

    int list(const std::filesystem::path& dir, std::vector<std::string>& names) override {
        names.clear();
        if (frozen_) {
            return EIO;
        }
        const auto d = directories_.find(key(dir));
        if (d == directories_.end()) {
            return ENOENT;
        }
        for (const auto& [name, id] : d->second.current) {
            names.push_back(name);
        }
        return 0;
    }

    int open(const std::filesystem::path& file, bool writable, bool create, handle& out) override {
        if (frozen_) {
            return EIO;
        }
        const auto d = directories_.find(key(file.parent_path()));
        if (d == directories_.end()) {
            return ENOENT;
        }
        const std::string name = file.filename().string();
        auto e = d->second.current.find(name);
        std::uint64_t id = 0;
        if (create) {
            if (const int t = tick(); t != 0) {
                return t;
            }
            if (e != d->second.current.end() || directories_.contains(key(file))) {
                return EEXIST;
            }
            auto f = std::make_shared<inode>();
            f->id = next_inode_++;
            files_[f->id] = f;
            d->second.current[name] = f->id;
            id = f->id;
        } else {
            if (e == d->second.current.end()) {
                return directories_.contains(key(file)) ? EISDIR : ENOENT;
            }
            id = e->second;
        }
        // the lowest free handle, as POSIX does with descriptors (so stale caches show)
        handle h = 3;
        while (handles_.contains(h)) {
            ++h;
        }
        handles_[h] = open_file{files_.at(id), writable};
        out = h;
        return 0;
    }

    void close(handle h) noexcept override { handles_.erase(h); }

    int size(handle h, std::uint64_t& out) override {
        inode* f = lookup(h);
        if (f == nullptr) {
            return EBADF;
        }
        out = f->current.size();
        return 0;
    }

    int allocate(handle h, std::uint64_t bytes) override {
        if (const int e = tick(); e != 0) {
            return e;
        }
        inode* f = lookup(h, true);
        if (f == nullptr) {
            return frozen_ ? EIO : EBADF;
        }
        if (bytes <= f->current.size()) {
            return 0;
        }
        if (const int e = injected_write_failure(false); e != 0) {
            return e;
        }
        if (disk_size_ != 0 && used_bytes() + (bytes - f->current.size()) > disk_size_) {
            return ENOSPC;
        }
        apply(*f, op{op_kind::resize, bytes, {}});
        return 0;
    }

    int truncate(handle h, std::uint64_t bytes) override {
        if (const int e = tick(); e != 0) {
            return e;
        }
        inode* f = lookup(h, true);
        if (f == nullptr) {
            return frozen_ ? EIO : EBADF;
        }
        if (bytes > f->current.size() && disk_size_ != 0 &&
            used_bytes() + (bytes - f->current.size()) > disk_size_) {
            return ENOSPC;
        }
        apply(*f, op{op_kind::resize, bytes, {}});
        return 0;
    }

    int read(handle h, void* data, std::size_t n, std::uint64_t offset, std::size_t& got) override {
        got = 0;
        inode* f = lookup(h);
        if (f == nullptr) {
            return frozen_ ? EIO : EBADF;
        }
        if (offset < f->current.size()) {
            got = static_cast<std::size_t>(std::min<std::uint64_t>(n, f->current.size() - offset));
            std::memcpy(data, f->current.data() + offset, got);
        }
        return 0;
    }

    int write(handle h, const void* data, std::size_t n, std::uint64_t offset) override {
        if (const int e = tick(); e != 0) {
            return e;
        }
        inode* f = lookup(h, true);
        if (f == nullptr) {
            return frozen_ ? EIO : EBADF;
        }
        if (const int e = injected_write_failure(true); e != 0) {
            return e;
        }
        const std::uint64_t end = offset + n;
        if (end > f->current.size() && disk_size_ != 0 &&
            used_bytes() + (end - f->current.size()) > disk_size_) {
            return ENOSPC;
        }
        const auto* p = static_cast<const std::byte*>(data);
        apply(*f, op{op_kind::write, offset, std::vector<std::byte>(p, p + n)});
        ++writes_;
        return 0;
    }

    int sync_data(handle h) override {
        if (const int e = tick(); e != 0) {
            return e;
        }
        inode* f = lookup(h);
        if (f == nullptr) {
            return frozen_ ? EIO : EBADF;
        }
        if (sync_error_ != 0) {
            return sync_error_;
        }
        f->durable = f->current;
        f->pending.clear();
        ++syncs_;
        return 0;
    }

    int sync_directory(const std::filesystem::path& dir) override {
        if (const int e = tick(); e != 0) {
            return e;
        }
        if (sync_error_ != 0) {
            return sync_error_;
        }
        const auto d = directories_.find(key(dir));
        if (d == directories_.end()) {
            return ENOENT;
        }
        d->second.durable = d->second.current;
        ++syncs_;
        collect();
        return 0;
    }

    int rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
        if (const int e = tick(); e != 0) {
            return e;
        }
        const auto s = directories_.find(key(from.parent_path()));
        const auto t = directories_.find(key(to.parent_path()));
        if (s == directories_.end() || t == directories_.end()) {
            return ENOENT;
        }
        const auto e = s->second.current.find(from.filename().string());
        if (e == s->second.current.end()) {
            return ENOENT;
        }
        const std::uint64_t id = e->second;
        s->second.current.erase(e);
        t->second.current[to.filename().string()] = id;
        collect();
        return 0;
    }

    int remove(const std::filesystem::path& file) override {
        if (const int e = tick(); e != 0) {
            return e;
        }
        const auto d = directories_.find(key(file.parent_path()));
        if (d == directories_.end()) {
            return 0;
        }
        d->second.current.erase(file.filename().string());
        collect();
        return 0;
    }

private:
    enum class op_kind { write, resize };
    struct op {
        op_kind kind;
        std::uint64_t offset; // write: offset; resize: new size
        std::vector<std::byte> data;
    };
    struct inode {
        std::uint64_t id = 0;
        std::vector<std::byte> current;
        std::vector<std::byte> durable;
        std::vector<op> pending; // since the last sync, in order
    };
    struct directory {
        std::map<std::string, std::uint64_t> current;
        std::map<std::string, std::uint64_t> durable;
    };
    struct open_file {
        std::shared_ptr<inode> file;
        bool writable = false;
    };

    static std::string key(const std::filesystem::path& p) { return p.lexically_normal().string(); }

    static void replay(std::vector<std::byte>& image, const op& o, std::size_t bytes) {
        if (o.kind == op_kind::resize) {
            image.resize(static_cast<std::size_t>(o.offset), std::byte{0});
            return;
        }
        const std::size_t end = static_cast<std::size_t>(o.offset) + bytes;
        if (image.size() < end) {
            image.resize(end, std::byte{0});
        }
        std::memcpy(image.data() + o.offset, o.data.data(), bytes);
    }

    void apply(inode& f, op o) {
        replay(f.current, o, o.data.size());
        f.pending.push_back(std::move(o));
        // keep the log bounded: a long unsynced history only matters for its prefixes
        if (f.pending.size() > 4096) { // the kernel wrote the oldest one back on its own
            replay(f.durable, f.pending.front(), f.pending.front().data.size());
            f.pending.erase(f.pending.begin());
        }
    }

    // Counts a changing call toward crash_after(); EIO when the machine is (now) down.
    int tick() {
        if (frozen_) {
            return EIO;
        }
        if (crash_countdown_ > 0 && --crash_countdown_ == 0) {
            crash(crash_torn_);
            return EIO;
        }
        return 0;
    }

    int injected_write_failure(bool is_write) {
        if (frozen_) {
            return EIO;
        }
        if (fail_writes_left_ > 0) {
            --fail_writes_left_;
            return fail_writes_error_;
        }
        if (is_write && write_error_ != 0) {
            return write_error_;
        }
        return 0;
    }

    inode* lookup(handle h, bool for_writing = false) {
        if (frozen_) {
            return nullptr;
        }
        const auto it = handles_.find(h);
        if (it == handles_.end() || (for_writing && !it->second.writable)) {
            return nullptr;
        }
        return it->second.file.get();
    }

    // Drops files no directory names (now or durably) and no handle holds.
    void collect() {
        std::set<std::uint64_t> live;
        for (const auto& [path, d] : directories_) {
            for (const auto& [name, id] : d.current) {
                live.insert(id);
            }
            for (const auto& [name, id] : d.durable) {
                live.insert(id);
            }
        }
        for (const auto& [h, f] : handles_) {
            live.insert(f.file->id);
        }
        for (auto it = files_.begin(); it != files_.end();) {
            it = live.contains(it->first) ? std::next(it) : files_.erase(it);
        }
    }

    std::mt19937_64 random_;
    std::map<std::uint64_t, std::shared_ptr<inode>> files_;
    std::map<std::string, directory> directories_;
    std::map<handle, open_file> handles_;
    std::uint64_t next_inode_ = 1;
    bool frozen_ = false;
    int crash_countdown_ = 0;
    bool crash_torn_ = false;
    int fail_writes_left_ = 0;
    int fail_writes_error_ = ENOSPC;
    int write_error_ = 0;
    int sync_error_ = 0;
    std::uint64_t disk_size_ = 0;
    int crashes_ = 0;
    std::uint64_t writes_ = 0;
    std::uint64_t syncs_ = 0;
};

} // namespace zmqkit::testing
