// The spool's real file system: POSIX calls, errno values back.
#include <zmqkit/spool.hpp>

#include <cerrno>
#include <climits>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace zmqkit {

namespace {

class posix_fs final : public spool_file_system {
public:
    // Missing parents are created too (mode 0750, like `mkdir -p`): `--spool
    // /var/spool/zmqkit/orders` works on a machine where /var/spool/zmqkit does not exist yet.
    int create_directory(const std::filesystem::path& dir) override {
        int made = ::mkdir(dir.c_str(), 0750);
        if (made != 0 && errno == ENOENT && dir.has_relative_path() && dir.parent_path() != dir) {
            if (const int e = create_directory(dir.parent_path()); e != 0) {
                return e;
            }
            made = ::mkdir(dir.c_str(), 0750);
        }
        if (made == 0 || errno == EEXIST) {
            struct stat st {};
            if (::stat(dir.c_str(), &st) != 0) {
                return errno;
            }
            return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
        }
        return errno;
    }

    int list(const std::filesystem::path& dir, std::vector<std::string>& names) override {
        names.clear();
        DIR* d = ::opendir(dir.c_str());
        if (d == nullptr) {
            return errno;
        }
        while (const dirent* e = ::readdir(d)) {
            const std::string name = e->d_name;
            if (name == "." || name == "..") {
                continue;
            }
            struct stat st {};
            if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(st.st_mode)) {
                names.push_back(name);
            }
        }
        ::closedir(d);
        return 0;
    }

    int open(const std::filesystem::path& file, bool writable, bool create, handle& out) override {
        int flags = O_CLOEXEC | (writable ? O_RDWR : O_RDONLY);
        if (create) {
            flags |= O_CREAT | O_EXCL;
        }
        const int fd = ::open(file.c_str(), flags, 0640);
        if (fd < 0) {
            return errno;
        }
        out = fd;
        return 0;
    }

    void close(handle h) noexcept override {
        if (h >= 0) {
            ::close(h);
        }
    }

    int size(handle h, std::uint64_t& out) override {
        struct stat st {};
        if (::fstat(h, &st) != 0) {
            return errno;
        }
        out = static_cast<std::uint64_t>(st.st_size);
        return 0;
    }

    int allocate(handle h, std::uint64_t bytes) override {
        std::uint64_t current = 0;
        if (const int e = size(h, current); e != 0) {
            return e;
        }
        if (bytes <= current) {
            return 0;
        }
        const int rc = ::posix_fallocate(h, 0, static_cast<off_t>(bytes));
        if (rc == 0) {
            return 0;
        }
        if (rc == EOPNOTSUPP || rc == EINVAL) { // a file system without fallocate
            return ::ftruncate(h, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
        }
        // posix_fallocate may have extended the file part way: give the space back.
        (void)::ftruncate(h, static_cast<off_t>(current));
        return rc;
    }

    int truncate(handle h, std::uint64_t bytes) override {
        return ::ftruncate(h, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
    }

    int read(handle h, void* data, std::size_t n, std::uint64_t offset, std::size_t& got) override {
        got = 0;
        auto* p = static_cast<char*>(data);
        while (got < n) {
            const ssize_t r = ::pread(h, p + got, n - got, static_cast<off_t>(offset + got));
            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return errno;
            }
            if (r == 0) {
                break;
            }
            got += static_cast<std::size_t>(r);
        }
        return 0;
    }

    int write(handle h, const void* data, std::size_t n, std::uint64_t offset) override {
        const auto* p = static_cast<const char*>(data);
        std::size_t done = 0;
        while (done < n) {
            const ssize_t r = ::pwrite(h, p + done, n - done, static_cast<off_t>(offset + done));
            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return errno;
            }
            if (r == 0) {
                return EIO;
            }
            done += static_cast<std::size_t>(r);
        }
        return 0;
    }

    int sync_data(handle h) override { return ::fdatasync(h) == 0 ? 0 : errno; }

    int sync_directory(const std::filesystem::path& dir) override {
        const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            return errno;
        }
        const int rc = ::fsync(fd) == 0 ? 0 : errno;
        ::close(fd);
        return rc;
    }

    int rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
        return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
    }

    int remove(const std::filesystem::path& file) override {
        return ::unlink(file.c_str()) == 0 || errno == ENOENT ? 0 : errno;
    }
};

} // namespace

spool_file_system& posix_file_system() noexcept {
    static posix_fs fs;
    return fs;
}

} // namespace zmqkit
