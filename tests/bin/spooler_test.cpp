// zmqkit-spooler as a real process over real spool directories built with the zmqkit::spool API:
// inspect counts, verify/repair of damaged and torn spools, dead letters, record from a PUSH
// socket, replay into a PULL socket, JSON output, exit codes, and the spool lock.
#include "zmqkit-spooler/options.hpp"
#include "zmqkit-spooler/spooler.hpp"

#include "support/process.hpp"
#include "support/testing.hpp"
#include "support/unknown_entries.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/socket.hpp>
#include <zmqkit/spool.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <functional>
#include <map>
#include <regex>

using namespace zmqkit;
using namespace zmqkit::testing;
using ::testing::HasSubstr;
using json = nlohmann::json;

namespace {

namespace sf = spool_format;

struct run_result {
    std::optional<int> code;
    std::string out;
    std::string err;
};

std::string collect_stdout(child_process& p) {
    std::string out = p.read_stdout(20ms);
    for (;;) {
        const auto more = p.read_stdout(20ms);
        if (more.size() == out.size()) {
            return out;
        }
        out = more;
    }
}

std::string collect_stderr(child_process& p) {
    while (p.next_stderr_line(50ms)) {
    }
    std::string text;
    for (const auto& l : p.stderr_lines()) {
        text += l + "\n";
    }
    return text;
}

std::vector<std::string> spooler_cmd(std::vector<std::string> args) {
    args.insert(args.begin(), bin_path("zmqkit-spooler"));
    return args;
}

// Runs zmqkit-spooler to completion (bounded) and returns its exit code and output.
run_result spooler(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) {
    child_process p(spooler_cmd(std::move(args)));
    run_result r;
    r.code = p.wait(timeout);
    r.out = collect_stdout(p);
    r.err = collect_stderr(p);
    return r;
}

json parse_json(const run_result& r) {
    try {
        return json::parse(r.out);
    } catch (const json::exception& e) {
        ADD_FAILURE() << "not JSON (" << e.what() << "):\n" << r.out << "\nstderr:\n" << r.err;
        return json::object();
    }
}

spool_options small_spool(const std::filesystem::path& dir, metrics_registry& registry) {
    spool_options o;
    o.directory = dir;
    o.segment_bytes = 16 * 1024;
    o.reserve_bytes = 2048;
    o.registry = &registry;
    return o;
}

struct appended {
    message_id id;
    message_id correlation_id;
    std::string body;
};

// Appends n enveloped messages (type "t<i>", a user header, body "body-<i>" padded to pad
// bytes) and commits. Returns them in order.
std::vector<appended> append_messages(spool& s, int n, std::size_t pad = 0) {
    std::vector<appended> out;
    for (int i = 0; i < n; ++i) {
        header h = header::fresh();
        h.type = "t" + std::to_string(i);
        h.content_type = "text/plain";
        h.set_user_header("tenant", "acme");
        std::string body = "body-" + std::to_string(i);
        if (body.size() < pad) {
            body.append(pad - body.size(), 'x');
        }
        const auto r = s.append(encode_header(h), body);
        EXPECT_EQ(r.outcome, append_result::status::appended);
        out.push_back({h.id, h.correlation_id, body});
    }
    EXPECT_TRUE(s.commit());
    return out;
}

// Calls fn(message, settled) for every message record of the spool at dir, read-only, until it
// returns false.
void for_each_spooled(const std::filesystem::path& dir,
                      const std::function<bool(const spooled_message&, bool)>& fn) {
    metrics_registry registry;
    spool_options o;
    o.directory = dir;
    o.read_only = true;
    o.registry = &registry;
    spool(o).for_each(0, fn);
}

// (sequence, id) of every message record, in order.
std::vector<std::pair<std::uint64_t, message_id>> spooled_ids(const std::filesystem::path& dir,
                                                              bool unsettled_only = false) {
    std::vector<std::pair<std::uint64_t, message_id>> ids;
    for_each_spooled(dir, [&](const spooled_message& m, bool settled) {
        if (unsettled_only && settled) {
            return true;
        }
        header h;
        EXPECT_TRUE(decode_header(m.header.data(), m.header.size(), h).ok());
        ids.emplace_back(m.sequence, h.id);
        return true;
    });
    return ids;
}

std::vector<std::filesystem::path> segment_files(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        if (sf::parse_segment_file_name(e.path().filename().string())) {
            files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::filesystem::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// (offset, type) of every valid record of a segment file.
std::vector<std::pair<std::size_t, sf::record_type>> record_offsets(const std::string& data) {
    std::vector<std::pair<std::size_t, sf::record_type>> out;
    std::size_t off = 0;
    const auto* base = reinterpret_cast<const std::byte*>(data.data());
    while (off < data.size()) {
        sf::record_view r;
        std::size_t n = 0;
        if (sf::parse_record(base + off, data.size() - off, r, &n) != sf::scan_result::ok) {
            break;
        }
        out.emplace_back(off, r.type);
        off += n;
    }
    return out;
}

} // namespace

// ---- options ------------------------------------------------------------------------------------

TEST(spooler_options, commands_and_values) {
    using namespace zmqkit::cli;
    auto parse = [](std::vector<const char*> argv) {
        argv.insert(argv.begin(), "zmqkit-spooler");
        return parse_spooler_options(static_cast<int>(argv.size()), argv.data());
    };
    auto cfg = std::get<spooler_config>(parse({"dlq", "list", "--limit", "3", "--json", "/d"}));
    EXPECT_EQ(cfg.command, spooler_command::dlq_list);
    EXPECT_EQ(cfg.limit, 3u);
    EXPECT_TRUE(cfg.json);
    EXPECT_EQ(cfg.directory, "/d");
    cfg = std::get<spooler_config>(
        parse({"replay", "/d", "--pub", "-e", "@tcp://127.0.0.1:*", "--from-sequence", "7"}));
    EXPECT_EQ(cfg.kind.type, zmq::socket_type::pub);
    EXPECT_EQ(cfg.from_sequence, 7u);
    EXPECT_THROW((void)parse({"dlq", "requeue", "/d"}), usage_error);
    EXPECT_THROW((void)parse({"dlq", "requeue", "--id", "nope", "/d"}), usage_error);
    EXPECT_THROW((void)parse({"record", "/d", "-e", "tcp://127.0.0.1:*", "--json"}), usage_error);
    EXPECT_THROW((void)parse({"replay", "/d", "-e", ">tcp://127.0.0.1:1", "--rate", "0"}),
                 usage_error);
    EXPECT_THROW((void)parse({"inspect", "/a", "/b"}), usage_error);
    EXPECT_TRUE(std::holds_alternative<print_and_exit>(parse({"verify", "--help"})));
}

TEST(spooler_options, times) {
    using namespace zmqkit::cli;
    EXPECT_EQ(parse_time("1970-01-01T00:00:01Z", 0), 1'000'000'000);
    EXPECT_EQ(parse_time("2024-05-01T12:00:00.5Z", 0), 1714564800'500'000'000);
    EXPECT_EQ(parse_time("2024-05-01T14:00:00+02:00", 0), 1714564800'000'000'000);
    EXPECT_EQ(parse_time("@1714564800", 0), 1714564800'000'000'000);
    EXPECT_EQ(parse_time("10s", 20'000'000'000), 10'000'000'000);
    EXPECT_THROW((void)parse_time("yesterday", 0), usage_error);
    EXPECT_THROW((void)parse_time("2024-13-01T00:00:00Z", 0), usage_error);
    EXPECT_THROW((void)parse_time("2999-01-01T00:00:00Z", 0), usage_error); // past 64-bit ns
    EXPECT_EQ(format_time(1714564800'123'000'000), "2024-05-01T12:00:00.123Z");
}

// ---- exit codes ---------------------------------------------------------------------------------

TEST(spooler, bad_usage_and_missing_directory_exit_codes) {
    temp_directory dir("spooler");
    const auto missing = (dir.path() / "missing").string();
    EXPECT_EQ(spooler({}).code, 64);
    EXPECT_EQ(spooler({"frobnicate", dir.path().string()}).code, 64);
    auto r = spooler({"inspect", "--bogus", dir.path().string()});
    EXPECT_EQ(r.code, 64);
    EXPECT_THAT(r.err, HasSubstr("ERROR zmqkit-spooler: unrecognised option '--bogus'"));
    EXPECT_EQ(spooler({"inspect"}).code, 64);
    EXPECT_EQ(spooler({"dlq", "requeue", dir.path().string()}).code, 64);
    EXPECT_EQ(spooler({"dlq", "list", "--limit", "x", dir.path().string()}).code, 64);
    EXPECT_EQ(spooler({"record", dir.path().string()}).code, 64); // no endpoint
    EXPECT_EQ(spooler({"replay", dir.path().string(), "-e", "bogus://x"}).code, 64);
    for (const char* command : {"inspect", "verify", "repair"}) {
        r = spooler({command, missing});
        EXPECT_EQ(r.code, 66) << command << ": " << r.err;
        EXPECT_THAT(r.err, HasSubstr("no spool at " + missing));
    }
    EXPECT_EQ(spooler({"dlq", "purge", missing}).code, 66);
    EXPECT_FALSE(std::filesystem::exists(missing)); // repair/purge never create a spool
    r = spooler({"--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr("dlq requeue DIR"));
    r = spooler({"replay", "--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr("--from-sequence"));
}

// ---- inspect ------------------------------------------------------------------------------------

TEST(spooler, inspect_counts_messages_per_state) {
    temp_directory dir("spooler");
    metrics_registry registry;
    {
        spool s(small_spool(dir.path(), registry));
        (void)append_messages(s, 10);
        std::vector<std::uint64_t> delivered;
        for (int i = 0; i < 6; ++i) {
            auto d = s.deliver();
            ASSERT_TRUE(d);
            delivered.push_back(d->sequence);
        }
        ASSERT_TRUE(s.commit());
        ASSERT_TRUE(s.ack(delivered[0]));
        ASSERT_TRUE(s.ack(delivered[1]));
        ASSERT_TRUE(s.dead_letter(delivered[2], "poison"));
        ASSERT_TRUE(s.commit());
    }
    auto r = spooler({"inspect", "--json", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = parse_json(r);
    const auto& m = j["messages"];
    EXPECT_EQ(m["waiting"], 7);
    EXPECT_EQ(m["ready"], 4);
    EXPECT_EQ(m["in_flight"], 3);
    EXPECT_EQ(m["acked"], 2);
    EXPECT_EQ(m["dead_lettered"], 1);
    EXPECT_EQ(m["dropped_full"], 0);
    EXPECT_EQ(j["dead_letter"]["messages"], 1);
    EXPECT_TRUE(j["recovery"]["clean"].get<bool>());
    EXPECT_EQ(j["next_sequence"].get<std::uint64_t>(), j["recovery"]["next_sequence"]);
    ASSERT_FALSE(j["segments"].empty());
    EXPECT_EQ(j["segments"][0]["file"], sf::segment_file_name(0));
    EXPECT_EQ(j["segments"][0]["record_types"]["message"], 10);
    EXPECT_FALSE(j["oldest"].is_null());
    EXPECT_GE(j["oldest"]["age_ms"].get<std::int64_t>(), 0);

    r = spooler({"inspect", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("messages: 7 waiting (4 ready, 3 in flight"));
    EXPECT_THAT(r.out, HasSubstr("2 acked, 1 dead-lettered"));
    EXPECT_THAT(r.out, HasSubstr("dead-letter spool: 1 message(s)"));
    EXPECT_THAT(r.out, HasSubstr("recovery: clean"));
}

// ---- verify / repair
// ------------------------------------------------------------------------------

TEST(spooler, verify_finds_a_flipped_byte_in_a_middle_segment_and_repair_fixes_it) {
    temp_directory dir("spooler");
    metrics_registry registry;
    std::vector<appended> messages;
    {
        spool s(small_spool(dir.path(), registry));
        for (int batch = 0; batch < 10; ++batch) {
            auto more = append_messages(s, 20, 200);
            messages.insert(messages.end(), more.begin(), more.end());
        }
    }
    const auto files = segment_files(dir.path());
    ASSERT_GE(files.size(), 4u);
    auto r = spooler({"verify", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr(": clean"));

    // Flip a byte in the body of a message record in the middle of the second segment.
    const auto victim = files[1];
    std::string data = read_file(victim);
    const auto records = record_offsets(data);
    std::vector<std::size_t> message_offsets;
    for (const auto& [off, type] : records) {
        if (type == sf::record_type::message) {
            message_offsets.push_back(off);
        }
    }
    ASSERT_GE(message_offsets.size(), 3u);
    const std::size_t bad_offset = message_offsets[message_offsets.size() / 2];
    data[bad_offset + sf::record_header_size + 40] ^= 0x5a;
    write_file(victim, data);

    r = spooler({"verify", "--json", dir.path().string()});
    EXPECT_EQ(r.code, 65) << r.err;
    auto j = parse_json(r);
    EXPECT_FALSE(j["clean"].get<bool>());
    EXPECT_EQ(j["exit_code"], 65);
    EXPECT_FALSE(j["recovery"]["clean"].get<bool>());
    EXPECT_FALSE(j["recovery"]["lost"].empty());
    EXPECT_FALSE(j["recovery"]["findings"].empty());
    bool found = false;
    for (const auto& f : j["files"]) {
        if (f["file"] == victim.filename().string() && f["spool"] == "main") {
            found = true;
            EXPECT_EQ(f["first_bad_offset"].get<std::size_t>(), bad_offset);
            EXPECT_EQ(f["first_bad_reason"], "bad checksum");
        } else {
            EXPECT_TRUE(f["first_bad_offset"].is_null()) << f.dump();
        }
    }
    EXPECT_TRUE(found);
    r = spooler({"verify", dir.path().string()});
    EXPECT_EQ(r.code, 65);
    EXPECT_THAT(r.out, HasSubstr("DAMAGED"));
    EXPECT_THAT(r.out, HasSubstr("first bad offset " + std::to_string(bad_offset)));
    // verify changed nothing on disk
    EXPECT_EQ(read_file(victim), data);
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "quarantine"));

    r = spooler({"repair", "--json", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    j = parse_json(r);
    EXPECT_FALSE(j["clean"].get<bool>());
    ASSERT_EQ(j["recovery"]["quarantined_files"].size(), 1u);
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "quarantine" / victim.filename()));
    EXPECT_EQ(j["recovery"]["lost"].size(), 1u);

    r = spooler({"verify", dir.path().string()});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    // Every message but the damaged one is still there, in order.
    const auto ids = spooled_ids(dir.path());
    EXPECT_EQ(ids.size(), messages.size() - 1);
}

// A torn tail is a write that was never synced: the last commit's, with the marker put back to
// what it said before that commit (a crash between its write and its fdatasync).
TEST(spooler, verify_finds_a_torn_tail_and_repair_cuts_it) {
    temp_directory dir("spooler");
    metrics_registry registry;
    const auto marker = dir.path() / sf::synced_file_name;
    std::string synced_before_last_commit;
    {
        spool s(small_spool(dir.path(), registry));
        (void)append_messages(s, 20, 100);
        synced_before_last_commit = read_file(marker);
        (void)append_messages(s, 10, 100);
    }
    write_file(marker, synced_before_last_commit);
    const auto files = segment_files(dir.path());
    ASSERT_FALSE(files.empty());
    const auto last = files.back();
    std::string data = read_file(last);
    const auto records = record_offsets(data);
    ASSERT_GE(records.size(), 2u);
    const std::size_t cut_at = records.back().first + 30; // inside the last record
    std::filesystem::resize_file(last, cut_at);
    // Recovery cuts up to the last non-zero byte (zeros after it are preallocation): the 30 kept
    // bytes may end in zeros (a sequence number's high bytes, a timestamp's), so count them off.
    std::size_t torn = 30;
    while (torn > 0 && data[records.back().first + torn - 1] == '\0') {
        --torn;
    }

    auto r = spooler({"verify", "--json", dir.path().string()});
    EXPECT_EQ(r.code, 65) << r.err;
    auto j = parse_json(r);
    EXPECT_EQ(j["recovery"]["truncated_bytes"], torn);
    EXPECT_EQ(j["recovery"]["truncated_file"], last.filename().string());
    EXPECT_EQ(std::filesystem::file_size(last), cut_at); // read-only: nothing cut

    r = spooler({"repair", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("torn tail: " + std::to_string(torn) + " bytes cut from " +
                                 last.filename().string()));
    r = spooler({"verify", dir.path().string()});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    r = spooler({"repair", dir.path().string()});
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr("nothing to repair"));
}

// Issue 14 item 1: cutting bytes off the end of a cleanly closed spool loses confirmed records;
// verify reports them lost (not as a torn tail), as the proxy's recovery does, and repair
// records the loss once.
TEST(spooler, verify_reports_synced_records_cut_off_the_end_as_lost) {
    temp_directory dir("spooler");
    metrics_registry registry;
    std::uint64_t next = 0;
    {
        spool s(small_spool(dir.path(), registry));
        (void)append_messages(s, 30, 100);
        next = s.stats().next_sequence;
    }
    const auto last = segment_files(dir.path()).back();
    const auto records = record_offsets(read_file(last));
    ASSERT_GE(records.size(), 4u);
    std::filesystem::resize_file(last, records[records.size() - 3].first + 30);

    auto r = spooler({"verify", "--json", dir.path().string()});
    EXPECT_EQ(r.code, 65) << r.err;
    auto j = parse_json(r);
    EXPECT_EQ(j["recovery"]["truncated_bytes"], 0);
    EXPECT_EQ(j["recovery"]["synced_sequence"], next);
    ASSERT_EQ(j["recovery"]["lost"].size(), 1u);
    EXPECT_EQ(j["recovery"]["lost"][0]["end"], next);
    EXPECT_EQ(j["recovery"]["lost"][0]["end"].get<std::uint64_t>() -
                  j["recovery"]["lost"][0]["first"].get<std::uint64_t>(),
              3u);
    r = spooler({"verify", dir.path().string()});
    EXPECT_THAT(r.out, HasSubstr("3 confirmed record(s)"));

    r = spooler({"repair", "--json", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    j = parse_json(r);
    EXPECT_EQ(j["recovery"]["lost"].size(), 1u);
    EXPECT_EQ(j["recovery"]["quarantined_files"].size(), 1u);
    r = spooler({"verify", dir.path().string()});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(spooled_ids(dir.path()).size(), 27u);
}

TEST(spooler, repair_refuses_a_spool_held_by_another_process) {
    temp_directory dir("spooler");
    metrics_registry registry;
    spool held(small_spool(dir.path(), registry));
    (void)append_messages(held, 3);
    auto r = spooler({"repair", dir.path().string()});
    EXPECT_EQ(r.code, 75);
    EXPECT_THAT(r.err, HasSubstr("ERROR zmqkit-spooler: spool"));
    EXPECT_THAT(r.err, HasSubstr("is in use by another process"));
    EXPECT_EQ(spooler({"dlq", "purge", dir.path().string()}).code, 75);
    // Read-only commands work alongside the owner.
    r = spooler({"inspect", "--json", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(parse_json(r)["messages"]["waiting"], 3);
}

// ---- dead letters
// ---------------------------------------------------------------------------------

TEST(spooler, dlq_list_requeue_and_purge) {
    temp_directory dir("spooler");
    metrics_registry registry;
    std::vector<appended> messages;
    {
        spool s(small_spool(dir.path(), registry));
        messages = append_messages(s, 4);
        for (int i = 0; i < 3; ++i) {
            auto d = s.deliver();
            ASSERT_TRUE(d);
            ASSERT_TRUE(s.dead_letter(d->sequence, "reason-" + std::to_string(i)));
        }
        ASSERT_TRUE(s.commit());
    }
    auto r = spooler({"dlq", "list", "--json", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = parse_json(r);
    EXPECT_EQ(j["dead_letters"], 3);
    ASSERT_EQ(j["messages"].size(), 3u);
    for (int i = 0; i < 3; ++i) {
        const auto& m = j["messages"][static_cast<std::size_t>(i)];
        EXPECT_EQ(m["id"], messages[static_cast<std::size_t>(i)].id.to_string());
        EXPECT_EQ(m["correlation_id"],
                  messages[static_cast<std::size_t>(i)].correlation_id.to_string());
        EXPECT_EQ(m["type"], "t" + std::to_string(i));
        EXPECT_EQ(m["reason"], "reason-" + std::to_string(i));
        EXPECT_EQ(m["attempts"], 1);
        EXPECT_EQ(m["body_bytes"], messages[static_cast<std::size_t>(i)].body.size());
    }
    r = spooler({"dlq", "list", "--limit", "1", "--json", dir.path().string()});
    j = parse_json(r);
    EXPECT_EQ(j["dead_letters"], 3);
    EXPECT_EQ(j["listed"], 1);
    r = spooler({"dlq", "list", dir.path().string()});
    EXPECT_THAT(r.out, HasSubstr("reason: reason-1"));
    EXPECT_THAT(r.out, HasSubstr("3 dead letter(s)"));

    // Requeue one by id: a new message caused by the dead letter.
    const auto& original = messages[1];
    r = spooler({"dlq", "requeue", "--id", original.id.to_string(), dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("requeued 1 dead letter(s)"));
    {
        spool_options o;
        o.directory = dir.path();
        o.read_only = true;
        o.registry = &registry;
        spool s(o);
        int copies = 0;
        s.for_each(0, [&](const spooled_message& m, bool settled) -> bool {
            header h;
            EXPECT_TRUE(decode_header(m.header.data(), m.header.size(), h).ok());
            if (h.causation_id == original.id) {
                ++copies;
                EXPECT_FALSE(settled);
                EXPECT_NE(h.id, original.id);
                EXPECT_EQ(h.correlation_id, original.correlation_id);
                EXPECT_EQ(h.type, "t1");
                EXPECT_EQ(h.content_type, "text/plain");
                EXPECT_EQ(m.body, original.body);
                const std::string* tenant = h.find_user_header("tenant");
                EXPECT_TRUE(tenant != nullptr && *tenant == "acme");
                EXPECT_EQ(h.find_user_header("zmqkit-dead-letter-reason"), nullptr);
            }
            return true;
        });
        EXPECT_EQ(copies, 1);
    }
    j = parse_json(spooler({"dlq", "list", "--json", dir.path().string()}));
    ASSERT_EQ(j["messages"].size(), 2u);
    EXPECT_EQ(j["messages"][0]["id"], messages[0].id.to_string());
    EXPECT_EQ(j["messages"][1]["id"], messages[2].id.to_string());

    r = spooler({"dlq", "requeue", "--id", original.id.to_string(), dir.path().string()});
    EXPECT_EQ(r.code, 1); // no longer there
    EXPECT_THAT(r.err, HasSubstr("no dead letter with id"));

    r = spooler({"dlq", "requeue", "--all", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("requeued 2 dead letter(s)"));
    j = parse_json(spooler({"dlq", "list", "--json", dir.path().string()}));
    EXPECT_EQ(j["dead_letters"], 0);
    EXPECT_TRUE(j["messages"].empty());
    // 1 never dead-lettered + 3 requeued copies wait in the main spool.
    EXPECT_EQ(spooled_ids(dir.path(), true).size(), 4u);

    // Dead-letter two of them again, then purge.
    {
        spool s(small_spool(dir.path(), registry));
        for (int i = 0; i < 2; ++i) {
            auto d = s.deliver();
            ASSERT_TRUE(d);
            ASSERT_TRUE(s.dead_letter(d->sequence, "again"));
        }
        ASSERT_TRUE(s.commit());
    }
    r = spooler({"dlq", "purge", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("purged 2 dead letter(s)"));
    j = parse_json(spooler({"dlq", "list", "--json", dir.path().string()}));
    EXPECT_EQ(j["dead_letters"], 0);

    // Purging an empty dead-letter spool is done, not a failure (it once said "cannot commit
    // the purge: " with no reason, exit 1: a script's `requeue --id X && purge` failed).
    r = spooler({"dlq", "purge", dir.path().string()});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("purged 0 dead letter(s)"));
}

// Header keys zmqkit does not know survive a dead letter's requeue, byte for byte, whatever
// their msgpack type (docs/wire-protocol.md §2 rule 6; the requeued copy once dropped them).
TEST(spooler, dlq_requeue_keeps_unknown_header_keys) {
    temp_directory dir("spooler");
    metrics_registry registry;
    const auto entries = zmqkit::testing::unknown_entries_of_every_type();
    {
        spool s(small_spool(dir.path(), registry));
        header h;
        h.id = message_id::generate();
        h.correlation_id = h.id;
        h.type = "order.created";
        const auto plain = encode_header(h);
        const auto frame = zmqkit::testing::with_unknown_entries(plain, plain.size(), entries);
        ASSERT_EQ(s.append(frame, "body").outcome, append_result::status::appended);
        ASSERT_TRUE(s.commit());
        auto d = s.deliver();
        ASSERT_TRUE(d);
        ASSERT_TRUE(s.dead_letter(d->sequence, "poison"));
        ASSERT_TRUE(s.commit());
    }
    auto r = spooler({"dlq", "requeue", "--all", dir.path().string()});
    ASSERT_EQ(r.code, 0) << r.err;
    std::vector<std::string> waiting;
    for_each_spooled(dir.path(), [&](const spooled_message& m, bool settled) {
        if (!settled) {
            waiting.emplace_back(m.header);
        }
        return true;
    });
    ASSERT_EQ(waiting.size(), 1U);
    const auto pairs = zmqkit::testing::header_pairs(waiting[0]);
    for (const auto& e : entries) {
        EXPECT_EQ(std::count(pairs.begin(), pairs.end(), e.bytes), 1) << e.what;
    }
}

// ---- record / replay
// ------------------------------------------------------------------------------

TEST(spooler, record_stores_messages_from_a_push_socket) {
    temp_directory dir("spooler");
    zmq::context_t context;
    zmqkit::socket push(context, zmq::socket_type::push);
    const auto endpoint = push.attach("tcp://127.0.0.1:*", endpoint_action::bind).at(0);
    constexpr int count = 50;
    child_process recorder(spooler_cmd({"record", (dir.path() / "spool").string(), "--endpoint",
                                        ">" + endpoint, "-c", std::to_string(count), "--batch", "7",
                                        "--timeout", "30s", "--segment-bytes", "65536"}));
    std::vector<message_id> sent;
    for (int i = 0; i < count; ++i) {
        header h = header::fresh();
        h.type = "rec";
        // Small and large bodies: inline and separate frame layouts.
        const std::string body = i % 10 == 0 ? std::string(5000, 'b') : "m" + std::to_string(i);
        ASSERT_TRUE(push.send(h, body));
        sent.push_back(h.id);
    }
    ASSERT_EQ(recorder.wait(30s), 0) << collect_stderr(recorder);
    EXPECT_THAT(collect_stderr(recorder), HasSubstr("recorded 50 message(s)"));
    const auto ids = spooled_ids(dir.path() / "spool");
    ASSERT_EQ(ids.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        EXPECT_EQ(ids[i].second, sent[i]) << i;
    }
}

TEST(spooler, record_raw_frames_and_stop_on_sigterm) {
    temp_directory dir("spooler");
    child_process recorder(
        spooler_cmd({"record", dir.path().string(), "--raw", "-e", "@tcp://127.0.0.1:*",
                     "--timeout", "30s", "--segment-bytes", "65536"}));
    const auto endpoint =
        recorder.wait_for_stderr(std::regex("INFO  zmqkit-spooler: bound (\\S+)"), 10s);
    ASSERT_TRUE(endpoint) << collect_stderr(recorder);
    zmq::context_t context;
    zmq::socket_t push(context, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 1000);
    push.connect(*endpoint);
    for (int i = 0; i < 5; ++i) {
        const std::string body = "raw-" + std::to_string(i);
        ASSERT_TRUE(push.send(zmq::buffer(body), zmq::send_flags::none));
    }
    // Recorded (committed) before the signal: visible to a read-only open.
    std::vector<std::string> bodies;
    ASSERT_TRUE(eventually(
        [&] {
            bodies.clear();
            for_each_spooled(dir.path(), [&](const spooled_message& m, bool) {
                bodies.emplace_back(m.body);
                return true;
            });
            return bodies.size() == 5;
        },
        10s));
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(bodies[static_cast<std::size_t>(i)], "raw-" + std::to_string(i));
    }
    recorder.signal(SIGTERM);
    ASSERT_EQ(recorder.wait(10s), 0);
    EXPECT_THAT(collect_stderr(recorder), HasSubstr("recorded 5 message(s)"));
}

TEST(spooler, record_sub_then_replay_pub_keeps_topics) {
    // Issue 14 item 17: publications whose topic is not their type were replayed on the type,
    // so a subscriber to their topic got none of them.
    temp_directory dir("spooler");
    zmq::context_t context;
    zmqkit::socket publisher(context, zmq::socket_type::xpub);
    const auto pub_endpoint = publisher.attach("tcp://127.0.0.1:*", endpoint_action::bind).at(0);
    constexpr int count = 20;
    child_process recorder(
        spooler_cmd({"record", dir.path().string(), "--sub", "--topic", "orders.", "-e",
                     ">" + pub_endpoint, "-c", std::to_string(count), "--timeout", "30s"}));
    publisher.raw().set(zmq::sockopt::rcvtimeo, 10000);
    zmq::message_t subscription;
    ASSERT_TRUE(publisher.raw().recv(subscription)) << collect_stderr(recorder);
    ASSERT_EQ(subscription.to_string(), std::string("\x01orders.", 8));

    std::map<message_id, std::string> topic_of; // what was published
    std::string same_header;                    // the encoded header whose topic is its type
    for (int i = 0; i < count; ++i) {
        header h = header::fresh();
        // The first one's topic is its type: its header is stored as received.
        h.type = i == 0 ? "orders.same" : "order.created";
        const auto topic = i == 0 ? h.type : "orders.eu." + std::to_string(i);
        const auto body = "m" + std::to_string(i);
        ASSERT_TRUE(publisher.send(topic, h, body));
        if (i == 0) {
            same_header = encode_header(h);
        }
        topic_of[h.id] = topic;
        header other = header::fresh();
        ASSERT_TRUE(publisher.send("prices.eur", other, "not recorded"));
    }
    ASSERT_EQ(recorder.wait(30s), 0) << collect_stderr(recorder);
    EXPECT_THAT(collect_stderr(recorder), HasSubstr("recorded 20 message(s)"));
    const auto spooled = spooled_ids(dir.path());
    ASSERT_EQ(spooled.size(), static_cast<std::size_t>(count));
    for_each_spooled(dir.path(), [&](const spooled_message& m, bool) {
        EXPECT_EQ(std::string(m.header), same_header);
        return false; // the first one only
    });

    // Replay to a subscriber of "orders." until it has every recorded message: a PUB drops
    // what it sends before the subscription arrives, so each run starts at the first missing.
    zmqkit::socket sub(context, zmq::socket_type::sub);
    sub.raw().set(zmq::sockopt::subscribe, "orders.");
    const auto sub_endpoint = sub.attach("tcp://127.0.0.1:*", endpoint_action::bind).at(0);
    std::map<message_id, std::pair<std::string, header>> received;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    int runs = 0;
    while (received.size() < spooled.size() && std::chrono::steady_clock::now() < deadline) {
        auto first_missing = spooled.front().first;
        for (const auto& [sequence, id] : spooled) {
            if (!received.contains(id)) {
                first_missing = sequence;
                break;
            }
        }
        ++runs;
        child_process replay(
            spooler_cmd({"replay", dir.path().string(), "--pub", "-e", ">" + sub_endpoint,
                         "--from-sequence", std::to_string(first_missing), "--wait-peers", "1",
                         "--rate", "500", "--linger", "1s"}));
        std::optional<int> exited;
        message m;
        std::string topic;
        for (;;) {
            if (sub.recv(m, topic, 200ms)) {
                received[m.id()] = {topic, m.header()};
                continue;
            }
            if (exited || std::chrono::steady_clock::now() >= deadline) {
                break;
            }
            exited = replay.wait(0ms);
        }
        ASSERT_EQ(replay.wait(10s), 0) << collect_stderr(replay);
    }
    ASSERT_EQ(received.size(), spooled.size()) << "after " << runs << " replay run(s)";
    for (const auto& [id, got] : received) {
        ASSERT_TRUE(topic_of.contains(id));
        EXPECT_EQ(got.first, topic_of[id]);
        EXPECT_EQ(got.second.find_user_header(cli::recorded_topic_header), nullptr)
            << "the recorded topic header is removed on replay";
        EXPECT_EQ(got.second.type, got.first == "orders.same" ? "orders.same" : "order.created");
    }
}

TEST(spooler, replay_sends_every_message_in_order_to_a_pull_socket) {
    temp_directory dir("spooler");
    metrics_registry registry;
    std::vector<appended> messages;
    {
        spool s(small_spool(dir.path(), registry));
        messages = append_messages(s, 30, 300);
        for (int i = 0; i < 5; ++i) { // acked messages are replayed too
            auto d = s.deliver();
            ASSERT_TRUE(d);
            ASSERT_TRUE(s.ack(d->sequence));
        }
        ASSERT_TRUE(s.commit());
    }
    const auto ids = spooled_ids(dir.path());
    ASSERT_EQ(ids.size(), messages.size());

    zmq::context_t context;
    zmqkit::socket pull(context, zmq::socket_type::pull);
    const auto endpoint = pull.attach("tcp://127.0.0.1:*", endpoint_action::bind).at(0);
    child_process replay(spooler_cmd(
        {"replay", dir.path().string(), "--endpoint", ">" + endpoint, "--rate", "2000"}));
    for (std::size_t i = 0; i < messages.size(); ++i) {
        auto m = pull.recv(10s);
        ASSERT_TRUE(m) << i << collect_stderr(replay);
        EXPECT_EQ(m->id(), messages[i].id) << i;
        EXPECT_EQ(m->body_view(), messages[i].body) << i;
        EXPECT_EQ(m->header().type, "t" + std::to_string(i));
    }
    ASSERT_EQ(replay.wait(20s), 0) << collect_stderr(replay);
    EXPECT_THAT(collect_stderr(replay), HasSubstr("replayed 30 message(s)"));

    // A subset: from the 11th message's sequence, at most 5.
    child_process subset(
        spooler_cmd({"replay", dir.path().string(), "--endpoint", ">" + endpoint, "--from-sequence",
                     std::to_string(ids[10].first), "-c", "5"}));
    for (std::size_t i = 10; i < 15; ++i) {
        auto m = pull.recv(10s);
        ASSERT_TRUE(m) << i << collect_stderr(subset);
        EXPECT_EQ(m->id(), ids[i].second) << i;
    }
    ASSERT_EQ(subset.wait(20s), 0) << collect_stderr(subset);
    EXPECT_FALSE(pull.recv(100ms)); // nothing after the 5
    // Replay changed nothing: the spool still verifies and holds the same state.
    auto r = spooler({"inspect", "--json", dir.path().string()});
    ASSERT_EQ(r.code, 0);
    EXPECT_EQ(parse_json(r)["messages"]["acked"], 5);

    // --since in the future: nothing to send.
    r = spooler({"replay", dir.path().string(), "--endpoint", ">" + endpoint, "--since",
                 "2200-01-01T00:00:00Z", "--linger", "0"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.err, HasSubstr("replayed 0 message(s)"));
}

// Replay gives up on a peer it cannot reach by the rule zmqkit-send follows
// (handshake_give_up): once its sends wait (here: --hwm 1 and no peer), a host name that does
// not resolve is exit 69 with the reason after --timeout, not a replay that waits for ever.
TEST(spooler, replay_to_a_host_that_does_not_resolve_is_exit_69_with_the_reason) {
    const std::string host = "nosuchhost.invalid";
    if (!resolver_fails_fast(host)) { // the check needs NXDOMAIN or "no network" quickly
        GTEST_SKIP() << "this machine's resolver does not fail fast for " << host;
    }
    temp_directory dir("spooler");
    metrics_registry registry;
    {
        spool s(small_spool(dir.path(), registry));
        (void)append_messages(s, 20, 100); // committed
    }
    const std::string endpoint = "tcp://" + host + ":5557";
    auto r = spooler({"replay", dir.path().string(), "--endpoint", ">" + endpoint, "--hwm", "1",
                      "--timeout", "2s", "--linger", "0"});
    EXPECT_EQ(r.code, 69) << r.err;
    EXPECT_THAT(r.err, HasSubstr("no message could be sent to >" + endpoint +
                                 " within 2 s: cannot resolve host " + host));
}
