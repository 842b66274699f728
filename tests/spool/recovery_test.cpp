// Recovery alone (detail::spool_recovery), against directories of hand-built and hand-damaged
// segment files on the in-memory file system: what it rebuilds, cuts, quarantines and reports.
#include "spool_parts_fixture.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace zmqkit::testing {
namespace {

namespace sf = spool_format;

class Recovery : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(fs.create_directory("/spool"), 0); }
    void put(const segment_image& s, std::uint64_t first) {
        fs.put_file(std::filesystem::path("/spool") / sf::segment_file_name(first), s.file());
    }
    memory_file_system fs;
    spool_parts parts{fs};
};

TEST_F(Recovery, RebuildsWaitingMessagesAttemptsAndTheDedupWindow) {
    segment_image s(0);
    const auto a = s.message(test_id(1), "a");
    const auto b = s.message(test_id(2), "b");
    const auto c = s.message(test_id(3), "c");
    s.list(sf::record_type::delivered, b, 3);
    s.list(sf::record_type::acked, a, 3);
    put(s, 0);

    parts.recover();

    EXPECT_TRUE(parts.report.clean());
    EXPECT_EQ(parts.report.records, s.next_sequence());
    EXPECT_EQ(parts.report.messages, 2u);
    EXPECT_EQ(parts.log->total_waiting, 2u);
    EXPECT_EQ(parts.log->next_seq, s.next_sequence());
    EXPECT_EQ(parts.delivery->attempt(b), 3u);
    EXPECT_EQ(parts.delivery->attempt(c), 0u);
    EXPECT_EQ(parts.delivery->attempt(a), 0u); // settled: attempts forgotten
    for (std::uint64_t n = 1; n <= 3; ++n) {
        EXPECT_TRUE(parts.dedup->contains(test_id(n))) << n;
    }
    // The next delivery is the oldest waiting message, then the next.
    auto first = parts.delivery->deliver();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->sequence, b);
    EXPECT_EQ(first->attempt, 4u);
}

TEST_F(Recovery, CutsATornTailAfterTheLastSyncedRecord) {
    segment_image s(0);
    s.message(test_id(1), "kept");
    const std::size_t synced_end = s.size();
    const auto torn = s.message(test_id(2), "torn write");
    s.bytes().resize(s.bytes().size() - 4); // the write reached the disk in part
    put(s, 0);
    fs.put_file("/spool/synced", synced_marker(0, torn, synced_end));

    parts.recover();

    EXPECT_EQ(parts.report.synced_sequence, torn);
    EXPECT_EQ(parts.report.truncated_file, sf::segment_file_name(0));
    EXPECT_EQ(parts.report.truncated_bytes, s.size() - synced_end);
    EXPECT_TRUE(parts.report.lost.empty());
    EXPECT_TRUE(parts.report.quarantined_files.empty());
    EXPECT_EQ(parts.log->total_waiting, 1u);
    EXPECT_FALSE(parts.dedup->contains(test_id(2)));
    // On disk: zeros from the cut on.
    const auto after = fs.file_content("/spool/" + sf::segment_file_name(0));
    ASSERT_TRUE(after);
    EXPECT_TRUE(std::all_of(after->begin() + static_cast<std::ptrdiff_t>(synced_end),
                            after->begin() + static_cast<std::ptrdiff_t>(s.size()),
                            [](std::byte b) { return b == std::byte{0}; }));
}

TEST_F(Recovery, DamageInsideSyncedDataIsLostQuarantinedAndRecorded) {
    segment_image s(0);
    s.message(test_id(1), "one");
    const auto bad = s.message(test_id(2), "two");
    s.message(test_id(3), "three");
    const std::size_t end = s.size();
    s.bytes()[s.offset_of(bad) + sf::record_header_size + 30] ^= std::byte{0x40};
    put(s, 0);
    fs.put_file("/spool/synced", synced_marker(0, s.next_sequence(), end));

    parts.recover();

    ASSERT_EQ(parts.report.lost.size(), 1u);
    EXPECT_EQ(parts.report.lost[0], (sequence_range{bad, bad + 1}));
    ASSERT_EQ(parts.report.quarantined_files.size(), 1u);
    EXPECT_TRUE(std::any_of(
        parts.report.findings.begin(), parts.report.findings.end(),
        [](const std::string& f) { return f.find("inside synced data") != std::string::npos; }));
    EXPECT_EQ(parts.report.truncated_bytes, 0u);
    EXPECT_EQ(parts.log->total_waiting, 2u);
    EXPECT_TRUE(fs.file_content("/spool/quarantine/" + sf::segment_file_name(0)));
    // The lost range is recorded (a gap record), so the next recovery does not report it again.
    parts.report = {};
    parts.recover();
    EXPECT_TRUE(parts.report.lost.empty());
    EXPECT_EQ(parts.log->total_waiting, 2u);
}

TEST_F(Recovery, StrictModeRefusesDamageAndChangesNothing) {
    segment_image s(0);
    const auto bad = s.message(test_id(1), "one");
    s.message(test_id(2), "two");
    s.bytes()[s.offset_of(bad) + sf::record_header_size + 30] ^= std::byte{0x40};
    put(s, 0);
    fs.put_file("/spool/synced", synced_marker(0, s.next_sequence(), s.size()));
    const auto before = fs.file_content("/spool/" + sf::segment_file_name(0));
    parts.options.strict = true;

    try {
        parts.recover();
        FAIL() << "strict mode opened a damaged spool";
    } catch (const spool_damaged_error& e) {
        EXPECT_TRUE(e.report().refused);
        EXPECT_FALSE(e.report().lost.empty());
    }
    EXPECT_EQ(fs.file_content("/spool/" + sf::segment_file_name(0)), before);
    EXPECT_TRUE(fs.files_in("/spool/quarantine").empty());
}

TEST_F(Recovery, AMissingSegmentIsALostRange) {
    segment_image first(0);
    first.message(test_id(1), "a");
    first.message(test_id(2), "b");
    put(first, 0);
    segment_image third(10);
    third.message(test_id(3), "c");
    put(third, 10);

    parts.recover();

    ASSERT_EQ(parts.report.lost.size(), 1u);
    EXPECT_EQ(parts.report.lost[0], (sequence_range{first.next_sequence(), 10}));
    EXPECT_EQ(parts.log->total_waiting, 3u);
    EXPECT_EQ(parts.log->next_seq, third.next_sequence() + 1); // + the gap record it wrote
}

TEST_F(Recovery, ReadOnlyChangesNothingOnDisk) {
    segment_image s(0);
    s.message(test_id(1), "kept");
    s.message(test_id(2), "torn");
    s.bytes().resize(s.bytes().size() - 3);
    put(s, 0);
    const auto before = fs.file_content("/spool/" + sf::segment_file_name(0));
    parts.options.read_only = true;

    parts.recover();

    EXPECT_GT(parts.report.truncated_bytes, 0u);
    EXPECT_EQ(fs.file_content("/spool/" + sf::segment_file_name(0)), before);
    EXPECT_FALSE(fs.file_content("/spool/synced"));
}

} // namespace
} // namespace zmqkit::testing
