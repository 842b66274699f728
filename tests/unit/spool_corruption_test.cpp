// Damaged spools on real files: flipped bits and zeroed ranges in the middle of the log, a bit
// flipped in every record of the last (synced) commit and the last segment cut at each of its
// records, head, middle and last segments deleted, garbage after the tail, an unsynced last
// commit cut at every offset, a missing or damaged synced-position marker. Each time the spool
// opens, the recovery report says exactly what was cut or lost, every other message is still
// there, strict mode refuses instead (a torn tail is not damage), a read-only open (what
// `zmqkit-spooler verify` does) reports the same, and a second open finds nothing new.
#include <zmqkit/codec.hpp>
#include <zmqkit/spool.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <charconv>
#include <fstream>
#include <map>
#include <optional>
#include <set>

namespace zmqkit {
namespace {

using testing::temp_directory;
namespace fs = std::filesystem;
namespace sf = spool_format;

std::string body_of(std::uint64_t n) {
    return "c" + std::to_string(n) + ":" + std::string(10 + n % 50, 'x');
}

std::uint64_t number_of(std::string_view body) {
    std::uint64_t n = 0;
    (void)std::from_chars(body.data() + 1, body.data() + body.size(), n);
    return n;
}

struct record_info {
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
    std::uint64_t sequence = 0;
    bool message = false;
    std::uint64_t number = 0; // for messages
};

struct segment_info {
    fs::path path;
    std::uint64_t first = 0;
    std::vector<record_info> records;
};

std::vector<std::byte> read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

void write_bytes(const fs::path& p, const std::vector<std::byte>& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
}

// The segments of a spool directory and their records, parsed independently of the spool.
std::vector<segment_info> segments_of(const fs::path& dir) {
    std::vector<segment_info> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        const auto first = sf::parse_segment_file_name(e.path().filename().string());
        if (!e.is_regular_file() || !first) {
            continue;
        }
        segment_info s{e.path(), *first, {}};
        const auto bytes = read_bytes(e.path());
        std::size_t offset = 0;
        for (;;) {
            sf::record_view r;
            std::size_t consumed = 0;
            if (sf::parse_record(bytes.data() + offset, bytes.size() - offset, r, &consumed) !=
                sf::scan_result::ok) {
                break;
            }
            record_info info{offset, consumed, r.sequence, r.type == sf::record_type::message, 0};
            if (info.message) {
                const std::size_t header_size = [&] {
                    std::uint32_t v = 0;
                    std::memcpy(&v, r.payload.data() + 24, 4);
                    return v;
                }();
                const auto* body =
                    reinterpret_cast<const char*>(r.payload.data()) + 28 + header_size;
                info.number =
                    number_of(std::string_view(body, r.payload.size() - 28 - header_size));
            }
            s.records.push_back(info);
            offset += consumed;
        }
        out.push_back(std::move(s));
    }
    std::sort(out.begin(), out.end(),
              [](const segment_info& a, const segment_info& b) { return a.first < b.first; });
    return out;
}

class SpoolCorruption : public ::testing::Test {
protected:
    spool_options options(const fs::path& dir, bool strict = false) {
        spool_options o;
        o.directory = dir;
        o.segment_bytes = 64 * 1024;
        o.reserve_bytes = 4096;
        o.dead_letter_spool = false;
        o.strict = strict;
        o.registry = &registry_;
        return o;
    }

    fs::path marker_path() const { return dir_.path() / sf::synced_file_name; }

    // A spool of `count` messages in commits of `per_commit` (so many segments and commit
    // starts). last_commit_synced false: the marker is put back to what it said before the last
    // commit, as after a crash between that commit's write and its fdatasync (its records are in
    // the file, never confirmed).
    void fill(std::uint64_t count, bool last_commit_synced = true, std::uint64_t per_commit = 50) {
        std::vector<std::byte> marker;
        {
            spool s(options(dir_.path()));
            for (std::uint64_t n = 0; n < count; ++n) {
                ASSERT_EQ(s.append(encode_header(header::fresh()), body_of(n)).outcome,
                          append_result::status::appended);
                if (n % per_commit == per_commit - 1 || n + 1 == count) {
                    marker = read_bytes(marker_path());
                    ASSERT_TRUE(s.commit());
                }
            }
        }
        count_ = count;
        if (!last_commit_synced) {
            write_bytes(marker_path(), marker);
        }
    }

    // The numbers of the messages waiting in the spool.
    static std::set<std::uint64_t> waiting(spool& s) {
        std::set<std::uint64_t> out;
        s.for_each(0, [&](const spooled_message& m, bool settled) {
            if (!settled) {
                EXPECT_EQ(m.body, body_of(number_of(m.body)));
                EXPECT_TRUE(out.insert(number_of(m.body)).second);
            }
            return true;
        });
        return out;
    }

    std::set<std::uint64_t> all_except(const std::set<std::uint64_t>& gone) const {
        std::set<std::uint64_t> out;
        for (std::uint64_t n = 0; n < count_; ++n) {
            if (!gone.contains(n)) {
                out.insert(n);
            }
        }
        return out;
    }

    // strict mode on a copy of the damaged directory throws spool_damaged_error, whose report
    // names the lost ranges (when given).
    void expect_strict_refuses(const std::optional<std::vector<sequence_range>>& lost = {}) {
        temp_directory copy("spool-strict");
        fs::copy(dir_.path(), copy.path(),
                 fs::copy_options::recursive | fs::copy_options::overwrite_existing);
        try {
            spool s(options(copy.path(), true));
            ADD_FAILURE() << "strict mode opened a damaged spool";
        } catch (const spool_damaged_error& e) {
            EXPECT_TRUE(e.report().refused);
            if (lost) {
                EXPECT_EQ(e.report().lost, *lost) << e.what();
            }
        }
    }

    // Opens, checks the report and the messages, then opens again: nothing new.
    void expect_recovery(const std::vector<sequence_range>& lost, std::size_t quarantined,
                         const std::set<std::uint64_t>& gone) {
        {
            spool_options o = options(dir_.path());
            o.read_only = true; // what zmqkit-spooler verify does: the same recovery, in memory
            spool v(o);
            EXPECT_EQ(v.recovery().lost, lost);
        }
        {
            spool s(options(dir_.path()));
            const recovery_report& r = s.recovery();
            EXPECT_EQ(r.lost, lost);
            EXPECT_EQ(r.truncated_bytes, 0u);
            EXPECT_EQ(r.quarantined_files.size(), quarantined);
            for (const auto& q : r.quarantined_files) {
                EXPECT_TRUE(fs::exists(q)) << q;
                EXPECT_EQ(fs::path(q).parent_path(), dir_.path() / "quarantine");
            }
            EXPECT_FALSE(r.findings.empty());
            EXPECT_EQ(waiting(s), all_except(gone));
            EXPECT_EQ(s.stats().messages, count_ - gone.size());
        }
        spool again(options(dir_.path()));
        EXPECT_TRUE(again.recovery().clean()) << again.recovery().findings.front();
        EXPECT_TRUE(again.recovery().findings.empty());
        EXPECT_EQ(waiting(again), all_except(gone));
    }

    temp_directory dir_{"spool-corrupt"};
    metrics_registry registry_;
    std::uint64_t count_ = 0;
};

TEST_F(SpoolCorruption, FlippedBitInAMiddleRecordLosesExactlyThatRecord) {
    fill(3000);
    const auto segs = segments_of(dir_.path());
    ASSERT_GE(segs.size(), 5u);
    const segment_info& mid = segs[segs.size() / 2];
    const record_info& victim = mid.records[mid.records.size() / 2];
    ASSERT_TRUE(victim.message);
    auto bytes = read_bytes(mid.path);
    bytes[victim.offset + victim.size - 5] ^= std::byte{0x10}; // in the body
    write_bytes(mid.path, bytes);
    expect_strict_refuses();
    expect_recovery({{victim.sequence, victim.sequence + 1}}, 1, {victim.number});
}

TEST_F(SpoolCorruption, FlippedBitInARecordHeaderLosesExactlyThatRecord) {
    fill(3000);
    const auto segs = segments_of(dir_.path());
    const segment_info& mid = segs[1];
    const record_info& victim = mid.records[mid.records.size() / 3];
    ASSERT_TRUE(victim.message);
    auto bytes = read_bytes(mid.path);
    bytes[victim.offset + 17] ^= std::byte{0x01}; // the length field
    write_bytes(mid.path, bytes);
    expect_strict_refuses();
    expect_recovery({{victim.sequence, victim.sequence + 1}}, 1, {victim.number});
}

TEST_F(SpoolCorruption, ZeroedRangeLosesTheRecordsItTouches) {
    fill(3000);
    const auto segs = segments_of(dir_.path());
    const segment_info& mid = segs[segs.size() / 2];
    const std::size_t i = mid.records.size() / 2;
    const record_info& a = mid.records[i];
    const record_info& c = mid.records[i + 2];
    auto bytes = read_bytes(mid.path);
    std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(a.offset + a.size / 2),
              bytes.begin() + static_cast<std::ptrdiff_t>(c.offset + c.size / 2), std::byte{0});
    write_bytes(mid.path, bytes);
    expect_strict_refuses();
    expect_recovery({{a.sequence, c.sequence + 1}}, 1,
                    {a.number, mid.records[i + 1].number, c.number});
}

TEST_F(SpoolCorruption, ZeroedRecordStartInTheLastSegmentBeforeALaterCommitIsDamageNotATornTail) {
    fill(3000);
    // more commits of 50 until the last segment holds several of them
    for (int i = 0; i < 100 && segments_of(dir_.path()).back().records.size() < 120; ++i) {
        spool s(options(dir_.path()));
        for (int k = 0; k < 50; ++k) {
            ASSERT_EQ(s.append(encode_header(header::fresh()), body_of(count_)).outcome,
                      append_result::status::appended);
            ++count_;
        }
        ASSERT_TRUE(s.commit());
    }
    const auto segs = segments_of(dir_.path());
    const segment_info& last = segs.back();
    ASSERT_GT(last.records.size(), 120u); // several commits of 50 in the last segment
    const record_info& victim = last.records[10];
    auto bytes = read_bytes(last.path);
    std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(victim.offset),
              bytes.begin() + static_cast<std::ptrdiff_t>(victim.offset + 24), std::byte{0});
    write_bytes(last.path, bytes);
    expect_strict_refuses();
    expect_recovery({{victim.sequence, victim.sequence + 1}}, 1, {victim.number});
}

TEST_F(SpoolCorruption, DeletedHeadSegmentIsAReportedLostRange) {
    fill(3000);
    const auto segs = segments_of(dir_.path());
    std::set<std::uint64_t> gone;
    for (const auto& r : segs[0].records) {
        if (r.message) {
            gone.insert(r.number);
        }
    }
    fs::remove(segs[0].path);
    expect_strict_refuses();
    expect_recovery({{0, segs[1].first}}, 0, gone);
}

TEST_F(SpoolCorruption, DeletedMiddleSegmentIsAReportedLostRange) {
    fill(3000);
    const auto segs = segments_of(dir_.path());
    const std::size_t k = segs.size() / 2;
    std::set<std::uint64_t> gone;
    for (const auto& r : segs[k].records) {
        if (r.message) {
            gone.insert(r.number);
        }
    }
    fs::remove(segs[k].path);
    expect_strict_refuses();
    expect_recovery({{segs[k].first, segs[k + 1].first}}, 0, gone);
}

TEST_F(SpoolCorruption, LostRangeNextToAnEarlierOneIsReportedAloneAndOnlyOnce) {
    fill(3000);
    const auto segs = segments_of(dir_.path());
    ASSERT_GE(segs.size(), 4u);
    std::set<std::uint64_t> gone;
    auto lose = [&](const segment_info& seg) {
        for (const auto& r : seg.records) {
            if (r.message) {
                gone.insert(r.number);
            }
        }
        fs::remove(seg.path);
    };
    lose(segs[1]);
    expect_recovery({{segs[1].first, segs[2].first}}, 0, gone);
    // Now the head goes too: the head gap [0, segs[2].first) is partly known already.
    lose(segs[0]);
    expect_strict_refuses();
    expect_recovery({{0, segs[1].first}}, 0, gone);
}

// A torn tail is not corruption: strict mode opens too, and only the cut bytes are reported.
void expect_torn_tail(SpoolCorruption* /*fixture*/, const fs::path& dir, spool_options o,
                      std::uint64_t truncated, const std::set<std::uint64_t>& expected) {
    for (const bool strict : {true, false}) {
        o.strict = strict;
        if (strict) {
            // strict opens a copy (its recovery cuts the tail as well)
            temp_directory copy("spool-strict");
            fs::copy(dir, copy.path(),
                     fs::copy_options::recursive | fs::copy_options::overwrite_existing);
            spool_options c = o;
            c.directory = copy.path();
            spool s(c);
            EXPECT_EQ(s.recovery().truncated_bytes, truncated);
            continue;
        }
        {
            spool s(o);
            const recovery_report& r = s.recovery();
            EXPECT_EQ(r.truncated_bytes, truncated);
            EXPECT_TRUE(r.lost.empty());
            EXPECT_TRUE(r.quarantined_files.empty());
            std::set<std::uint64_t> got;
            s.for_each(0, [&](const spooled_message& m, bool settled) {
                if (!settled) {
                    got.insert(number_of(m.body));
                }
                return true;
            });
            EXPECT_EQ(got, expected);
        }
        spool again(o);
        EXPECT_TRUE(again.recovery().clean());
        EXPECT_EQ(again.stats().messages, expected.size());
    }
}

// The last commit was written but never synced (a crash before its fdatasync; the marker says
// so): cutting it anywhere is a torn write, cut silently, also in strict mode.
TEST_F(SpoolCorruption, UnsyncedLastCommitTruncatedAtEveryOffsetOfItsLastRecordsIsATornTail) {
    fill(400, false);
    const auto segs = segments_of(dir_.path());
    const segment_info& last = segs.back();
    ASSERT_GE(last.records.size(), 4u);
    const auto original = read_bytes(last.path);
    const auto marker = read_bytes(marker_path());
    const std::size_t from = last.records.size() - 3;
    const std::uint64_t start = last.records[from].offset;
    const std::uint64_t end = last.records.back().offset + last.records.back().size;
    for (std::uint64_t cut = start; cut <= end; ++cut) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        // restore the whole directory's last segment, then cut it
        std::vector<std::byte> bytes(original.begin(),
                                     original.begin() + static_cast<std::ptrdiff_t>(cut));
        write_bytes(last.path, bytes);
        // messages whose record ends at or before the cut survive; the partial record's
        // non-zero bytes are the torn tail
        std::set<std::uint64_t> expected;
        std::uint64_t truncated = 0;
        for (const auto& s : segs) {
            for (const auto& r : s.records) {
                const bool whole = &s != &last || r.offset + r.size <= cut;
                if (r.message && whole) {
                    expected.insert(r.number);
                }
                if (&s == &last && r.offset < cut && cut < r.offset + r.size) {
                    std::uint64_t nonzero = r.offset;
                    for (std::uint64_t b = r.offset; b < cut; ++b) {
                        if (original[b] != std::byte{0}) {
                            nonzero = b + 1;
                        }
                    }
                    truncated = nonzero - r.offset;
                }
            }
        }
        expect_torn_tail(this, dir_.path(), options(dir_.path()), truncated, expected);
        if (::testing::Test::HasFailure()) {
            return;
        }
        write_bytes(last.path, original);
        write_bytes(marker_path(), marker);
    }
}

TEST_F(SpoolCorruption, GarbageAfterTheTailIsCutAsATornWrite) {
    fill(400);
    const auto segs = segments_of(dir_.path());
    const segment_info& last = segs.back();
    auto bytes = read_bytes(last.path);
    const std::uint64_t tail = last.records.back().offset + last.records.back().size;
    for (std::size_t i = 0; i < 100; ++i) {
        bytes[tail + i] = static_cast<std::byte>(0x41 + i % 26);
    }
    write_bytes(last.path, bytes);
    expect_torn_tail(this, dir_.path(), options(dir_.path()), 100, all_except({}));
}

TEST_F(SpoolCorruption, GarbageAppendedPastTheFileEndIsCutAsATornWrite) {
    fill(400);
    const auto segs = segments_of(dir_.path());
    const segment_info& last = segs.back();
    auto bytes = read_bytes(last.path);
    const std::uint64_t tail = last.records.back().offset + last.records.back().size;
    const std::uint64_t size = bytes.size();
    for (std::size_t i = 0; i < 77; ++i) {
        bytes.push_back(static_cast<std::byte>(0x61 + i % 26));
    }
    write_bytes(last.path, bytes);
    expect_torn_tail(this, dir_.path(), options(dir_.path()), size + 77 - tail, all_except({}));
}

// ---- a synced last commit: damage in it is damage, never a torn write (issue 14 item 1) -------

// Two commits of 100 messages in one segment, both synced, the spool closed cleanly.
class SpoolSyncedTail : public SpoolCorruption {
protected:
    void SetUp() override {
        fill(200, true, 100);
        const auto segs = segments_of(dir_.path());
        ASSERT_EQ(segs.size(), 1u);
        last_ = segs.back();
        for (std::size_t i = 0; i < last_.records.size(); ++i) {
            if (last_.records[i].message && last_.records[i].number >= 100) {
                last_commit_.push_back(i);
            }
        }
        ASSERT_EQ(last_commit_.size(), 100u);
        end_ = last_.records.back().sequence + 1;
        fs::copy(dir_.path(), pristine_.path(), fs::copy_options::recursive);
    }

    void restore() {
        fs::remove_all(dir_.path());
        fs::copy(pristine_.path(), dir_.path(), fs::copy_options::recursive);
    }

    // The message numbers of the last segment's records from index `from` on.
    std::set<std::uint64_t> numbers_from(std::size_t from) const {
        std::set<std::uint64_t> out;
        for (std::size_t i = from; i < last_.records.size(); ++i) {
            if (last_.records[i].message) {
                out.insert(last_.records[i].number);
            }
        }
        return out;
    }

    temp_directory pristine_{"spool-pristine"};
    segment_info last_;
    std::vector<std::size_t> last_commit_; // indexes into last_.records
    std::uint64_t end_ = 0;                // sequence after the last record
};

TEST_F(SpoolSyncedTail, FlippedBitInEveryRecordOfTheLastCommitLosesExactlyThatRecord) {
    for (const std::size_t i : last_commit_) {
        const record_info& r = last_.records[i];
        for (const bool in_header : {true, false}) {
            SCOPED_TRACE("record " + std::to_string(i) + (in_header ? " header" : " body"));
            restore();
            auto bytes = read_bytes(last_.path);
            const std::uint64_t at = in_header ? r.offset + i % sf::record_header_size
                                               : r.offset + sf::record_header_size +
                                                     (i * 7) % (r.size - sf::record_header_size);
            bytes[at] ^= static_cast<std::byte>(1u << (i % 8));
            write_bytes(last_.path, bytes);
            const std::vector<sequence_range> lost{{r.sequence, r.sequence + 1}};
            expect_strict_refuses(lost);
            expect_recovery(lost, 1, {r.number});
            if (HasFailure()) {
                return;
            }
        }
    }
}

TEST_F(SpoolSyncedTail, LastSegmentCutAtEveryRecordOfTheLastCommitLosesExactlyWhatWasCut) {
    for (const std::size_t i : last_commit_) {
        const record_info& r = last_.records[i];
        for (const bool mid_record : {false, true}) {
            SCOPED_TRACE("cut at record " + std::to_string(i) + (mid_record ? " (middle)" : ""));
            restore();
            fs::resize_file(last_.path, r.offset + (mid_record ? r.size / 2 : 0));
            const std::vector<sequence_range> lost{{r.sequence, end_}};
            expect_strict_refuses(lost);
            // a partial record is damaged bytes (the file goes to quarantine); a cut between
            // records only loses what follows
            expect_recovery(lost, mid_record ? 1 : 0, numbers_from(i));
            if (HasFailure()) {
                return;
            }
        }
    }
    // Cut right after the last record: nothing lost.
    restore();
    fs::resize_file(last_.path, last_.records.back().offset + last_.records.back().size);
    spool s(options(dir_.path(), true));
    EXPECT_TRUE(s.recovery().clean());
    EXPECT_EQ(waiting(s), all_except({}));
}

TEST_F(SpoolCorruption, DeletedLastSegmentIsAReportedLostRange) {
    fill(3000);
    const auto segs = segments_of(dir_.path());
    const segment_info& last = segs.back();
    std::set<std::uint64_t> gone;
    for (const auto& r : last.records) {
        if (r.message) {
            gone.insert(r.number);
        }
    }
    fs::remove(last.path);
    const std::vector<sequence_range> lost{{last.first, last.records.back().sequence + 1}};
    expect_strict_refuses(lost);
    expect_recovery(lost, 0, gone);
}

// What the marker cannot tell: a commit that was written but never synced, damaged, with no
// later commit after it, is cut as a torn write (it was never confirmed in sync mode always).
TEST_F(SpoolCorruption, FlippedBitInAnUnsyncedLastCommitIsCutAsATornWrite) {
    fill(200, false, 100);
    const auto segs = segments_of(dir_.path());
    const segment_info& last = segs.back();
    const auto victim = std::find_if(last.records.begin(), last.records.end(),
                                     [](const record_info& r) { return r.number == 102; });
    ASSERT_NE(victim, last.records.end());
    auto bytes = read_bytes(last.path);
    bytes[victim->offset + victim->size - 3] ^= std::byte{0x04};
    write_bytes(last.path, bytes);
    std::set<std::uint64_t> expected;
    for (std::uint64_t n = 0; n < 102; ++n) {
        expected.insert(n);
    }
    const auto end = last.records.back().offset + last.records.back().size;
    expect_torn_tail(this, dir_.path(), options(dir_.path()), end - victim->offset, expected);
}

// A spool from before the marker, or a damaged marker: the torn-tail rule, and the report says
// why it could not tell. The next open has a marker again.
TEST_F(SpoolCorruption, WithoutAUsableMarkerDamageAtTheEndIsCutAsATornWriteAndTheReportSaysWhy) {
    for (const bool remove : {true, false}) {
        SCOPED_TRACE(remove ? "no marker" : "damaged marker");
        fs::remove_all(dir_.path());
        fill(200, true, 100);
        if (remove) {
            fs::remove(marker_path());
        } else {
            auto m = read_bytes(marker_path());
            m[17] ^= std::byte{0x01};
            write_bytes(marker_path(), m);
        }
        const auto segs = segments_of(dir_.path());
        const segment_info& last = segs.back();
        const record_info& victim = last.records[103];
        auto bytes = read_bytes(last.path);
        bytes[victim.offset + victim.size - 3] ^= std::byte{0x04};
        write_bytes(last.path, bytes);
        {
            spool s(options(dir_.path()));
            const recovery_report& r = s.recovery();
            EXPECT_FALSE(r.synced_sequence.has_value());
            EXPECT_GT(r.truncated_bytes, 0u);
            EXPECT_TRUE(r.lost.empty());
            ASSERT_FALSE(r.findings.empty());
            EXPECT_THAT(r.findings.front(),
                        ::testing::StartsWith(remove ? "synced: missing" : "synced: bad checksum"));
        }
        spool again(options(dir_.path()));
        EXPECT_TRUE(again.recovery().findings.empty()) << again.recovery().findings.front();
        EXPECT_TRUE(again.recovery().synced_sequence.has_value());
    }
}

} // namespace
} // namespace zmqkit
