// The spool on a really full disk: a small tmpfs (needs root to mount; skipped otherwise).
// Appends until the disk is full, then checks back-pressure (confirms withheld, appends answer
// `full`), that acks still get written (the reserve), that freeing space lets the spool resume,
// and that recovery after a reopen holds every confirmed message.
#include <zmqkit/codec.hpp>
#include <zmqkit/spool.hpp>

#include "support/testing.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <sys/mount.h>
#include <unistd.h>

namespace zmqkit {
namespace {

using testing::temp_directory;

// A tmpfs of `bytes` mounted on `dir` for the guard's lifetime (unmounted even on failure).
class tmpfs_mount {
public:
    tmpfs_mount(const std::filesystem::path& dir, std::uint64_t bytes) : dir_(dir) {
        std::filesystem::create_directories(dir);
        const std::string data = "size=" + std::to_string(bytes) + ",mode=0700";
        if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, data.c_str()) == 0) {
            mounted_ = true;
        } else {
            error_ = std::strerror(errno);
        }
    }
    ~tmpfs_mount() {
        if (mounted_) {
            ::umount2(dir_.c_str(), MNT_DETACH);
        }
    }
    tmpfs_mount(const tmpfs_mount&) = delete;
    tmpfs_mount& operator=(const tmpfs_mount&) = delete;
    [[nodiscard]] bool mounted() const noexcept { return mounted_; }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }

private:
    std::filesystem::path dir_;
    bool mounted_ = false;
    std::string error_;
};

std::uint64_t number_of(std::string_view body) {
    return std::stoull(std::string(body.substr(1, body.find(':') - 1)));
}

TEST(SpoolDiskFull, BackPressureReserveResumeAndRecoveryOnARealFullDisk) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to mount a size-limited tmpfs (run the suite as root)";
    }
    temp_directory base("spool-full");
    const auto mnt = base.path() / "mnt";
    tmpfs_mount guard(mnt, 8ull << 20);
    if (!guard.mounted()) {
        GTEST_SKIP() << "cannot mount a tmpfs on " << mnt << ": " << guard.error()
                     << " (a container without CAP_SYS_ADMIN?)";
    }
    // A filler file to delete later.
    {
        std::ofstream filler(mnt / "filler", std::ios::binary);
        const std::string block(64 * 1024, 'f');
        for (int i = 0; i < 32; ++i) { // 2 MiB
            filler.write(block.data(), static_cast<std::streamsize>(block.size()));
        }
        ASSERT_TRUE(filler.good());
    }
    metrics_registry registry;
    std::int64_t clock_ns = 1'700'000'000'000'000'000;
    spool_options o;
    o.directory = mnt / "spool";
    o.segment_bytes = 1ull << 20;
    o.reserve_bytes = 64 * 1024;
    o.dead_letter_spool = false;
    o.registry = &registry;
    o.now_ns = [&] { return clock_ns; };

    const std::string payload(4000, 'p');
    std::map<std::uint64_t, std::uint64_t> ticket_of; // number -> ticket (this session)
    std::set<std::uint64_t> confirmed;
    std::uint64_t n = 0;
    auto confirm = [&](spool& s) {
        for (const auto& [k, t] : ticket_of) {
            if (t <= s.committed_ticket()) {
                confirmed.insert(k);
            }
        }
    };
    std::set<std::uint64_t> acked;
    {
        spool s(o);
        // 1. Fill the disk.
        bool full = false;
        for (int batch = 0; batch < 1000 && !full; ++batch) {
            for (int i = 0; i < 20; ++i) {
                const auto r = s.append(encode_header(header::fresh()),
                                        "m" + std::to_string(n) + ":" + payload);
                if (r.outcome == append_result::status::full) {
                    full = true;
                    break;
                }
                ASSERT_EQ(r.outcome, append_result::status::appended) << r.reason;
                ticket_of[n++] = r.ticket;
            }
            const bool wrote = s.commit();
            confirm(s);
            full = full || (!wrote && s.stats().disk_full) || s.stats().disk_full;
        }
        ASSERT_TRUE(full) << "the 8 MiB disk never filled";
        const spool_stats st = s.stats();
        EXPECT_TRUE(st.disk_full);
        EXPECT_FALSE(st.read_only) << st.failure;
        // 2. Back-pressure: appends answer `full`, the queued ones are not confirmed.
        EXPECT_EQ(s.append(encode_header(header::fresh()), "m999999:x").outcome,
                  append_result::status::full);
        EXPECT_LT(confirmed.size(), ticket_of.size()) << "every append confirmed on a full disk";
        EXPECT_GT(confirmed.size(), 100u);
        EXPECT_LT(s.committed_ticket(), ticket_of.rbegin()->second);
        // 3. Acks still get written (the reserve at the end of every segment).
        for (int i = 0; i < 40; ++i) {
            const auto m = s.deliver();
            ASSERT_TRUE(m);
            acked.insert(number_of(m->body));
            ASSERT_TRUE(s.ack(m->sequence));
        }
        EXPECT_TRUE(s.commit()) << "the acks could not be written on a full disk";
        EXPECT_FALSE(s.stats().read_only) << s.stats().failure;
        EXPECT_TRUE(s.stats().disk_full);
        // 4. Free space: the spool resumes (it retries the disk every 100 ms of its clock).
        std::filesystem::remove(mnt / "filler");
        for (int i = 0; i < 50 && (s.stats().disk_full || s.commit_pending()); ++i) {
            clock_ns += 200'000'000;
            s.commit();
            confirm(s);
        }
        EXPECT_FALSE(s.stats().disk_full);
        EXPECT_FALSE(s.commit_pending());
        EXPECT_EQ(confirmed.size(), ticket_of.size())
            << "queued appends not confirmed after resume";
        for (int i = 0; i < 20; ++i) {
            const auto r =
                s.append(encode_header(header::fresh()), "m" + std::to_string(n) + ":" + payload);
            ASSERT_EQ(r.outcome, append_result::status::appended) << r.reason;
            ticket_of[n++] = r.ticket;
        }
        EXPECT_TRUE(s.commit());
        confirm(s);
        EXPECT_EQ(confirmed.size(), ticket_of.size());
    }
    // 5. Recovery holds every confirmed message that was not acked.
    spool s(o);
    EXPECT_TRUE(s.recovery().clean());
    std::set<std::uint64_t> waiting;
    s.for_each(0, [&](const spooled_message& m, bool settled) {
        if (!settled) {
            waiting.insert(number_of(m.body));
        }
        return true;
    });
    std::set<std::uint64_t> expected;
    for (const std::uint64_t k : confirmed) {
        if (!acked.contains(k)) {
            expected.insert(k);
        }
    }
    EXPECT_EQ(waiting, expected);
}

} // namespace
} // namespace zmqkit
