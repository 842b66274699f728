// Group commit alone (detail::group_commit over a segment log on the in-memory file system):
// one write per commit, ENOSPC keeps what was queued and retries it, control records batch up.
#include "spool_parts_fixture.hpp"

#include <gtest/gtest.h>

namespace zmqkit::testing {
namespace {

class GroupCommit : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(fs.create_directory("/spool"), 0);
        parts.options.segment_bytes = 1 << 20;
        parts.build();
    }
    std::uint64_t queue(std::uint64_t n) {
        return parts.queue->queue_message(parts.now, test_id(n), "hd", "body");
    }
    memory_file_system fs;
    spool_parts parts{fs};
    std::uint64_t committed = 0;
};

TEST_F(GroupCommit, WritesEverythingQueuedInOneWriteAndOneSync) {
    queue(0);
    ASSERT_TRUE(parts.queue->commit(&committed)); // creates the first segment
    ASSERT_EQ(committed, 1u);
    const auto writes = fs.writes();
    const auto syncs = fs.syncs();
    std::uint64_t last = 0;
    for (std::uint64_t n = 1; n <= 100; ++n) {
        last = queue(n);
    }
    EXPECT_EQ(parts.queue->queued_messages(), 100u);
    EXPECT_EQ(committed, 1u); // nothing confirmed before its commit
    ASSERT_TRUE(parts.queue->commit(&committed));
    EXPECT_EQ(committed, last);
    EXPECT_EQ(fs.writes() - writes, 1u);
    EXPECT_EQ(fs.syncs() - syncs, 1u); // sync policy always: one fdatasync
    EXPECT_EQ(parts.queue->queued_messages(), 0u);
    EXPECT_FALSE(parts.queue->pending());
    EXPECT_EQ(parts.log->total_waiting, 101u);
    EXPECT_EQ(parts.log->next_seq, 102u); // segment_start + 101 messages
}

TEST_F(GroupCommit, ControlRecordsOfACommitGoInTheSameWrite) {
    queue(0);
    queue(1);
    ASSERT_TRUE(parts.queue->commit(&committed));
    const auto writes = fs.writes();
    parts.queue->delivered(2, 1);
    parts.queue->delivered(1, 1);
    parts.queue->acked(1, 6);
    parts.queue->dropped_purged(2, 6);
    EXPECT_TRUE(parts.queue->pending());
    ASSERT_TRUE(parts.queue->commit(&committed));
    EXPECT_EQ(fs.writes() - writes, 1u);
    EXPECT_FALSE(parts.queue->pending());
    EXPECT_EQ(parts.log->next_seq, 6u); // delivered, acked, dropped: three records
}

TEST_F(GroupCommit, DiskFullKeepsTheQueueAndTheNextCommitWritesIt) {
    queue(0);
    ASSERT_TRUE(parts.queue->commit(&committed));
    const std::uint64_t ticket = queue(1);
    fs.fail_next_writes(1, ENOSPC);
    EXPECT_FALSE(parts.queue->commit(&committed));
    EXPECT_EQ(committed, 1u); // not confirmed
    EXPECT_TRUE(parts.log->disk_full());
    EXPECT_FALSE(parts.log->failed());
    EXPECT_EQ(parts.queue->queued_messages(), 1u);

    ASSERT_TRUE(parts.queue->commit(&committed)); // room again
    EXPECT_EQ(committed, ticket);
    EXPECT_FALSE(parts.log->disk_full());
    EXPECT_EQ(parts.queue->queued_messages(), 0u);
}

TEST_F(GroupCommit, AnIoErrorStopsAllWriting) {
    queue(0);
    ASSERT_TRUE(parts.queue->commit(&committed));
    queue(1);
    fs.fail_all_writes(EIO);
    EXPECT_FALSE(parts.queue->commit(&committed));
    EXPECT_TRUE(parts.log->failed());
    EXPECT_NE(parts.log->failure().find("read-only"), std::string::npos);
    fs.fail_all_writes(0);
    EXPECT_FALSE(parts.queue->commit(&committed)); // never again until restart
    EXPECT_EQ(committed, 1u);
}

TEST_F(GroupCommit, RotatesWhenTheActiveSegmentIsFull) {
    parts.options.segment_bytes = 4096;
    parts.options.reserve_bytes = 512;
    parts.build();
    std::uint64_t last = 0;
    for (std::uint64_t n = 0; n < 200; ++n) { // ~60 bytes each: more than one segment
        last = queue(n);
    }
    ASSERT_TRUE(parts.queue->commit(&committed));
    EXPECT_EQ(committed, last);
    EXPECT_GT(parts.log->segments().size(), 1u);
    for (const auto& s : parts.log->segments()) {
        EXPECT_LE(s.used, parts.log->message_limit(s));
        EXPECT_FALSE(s.dirty);
    }
}

} // namespace
} // namespace zmqkit::testing
