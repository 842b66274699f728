#include "zmqkit-spooler/spooler.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/header.hpp>

#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <span>
#include <sstream>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace zmqkit::cli {
namespace {

namespace sf = spool_format;
using json = nlohmann::ordered_json;

constexpr std::string_view dead_letter_reason_header = "zmqkit-dead-letter-reason";
constexpr std::string_view dead_letter_sequence_header = "zmqkit-dead-letter-sequence";

std::int64_t now_unix_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string dump(const json& j) {
    return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// True when another process holds the spool lock file (flock LOCK_EX, spool.cpp).
bool lock_held(const std::filesystem::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    return held;
}

std::uint64_t largest_segment_file(const std::filesystem::path& dir) {
    std::uint64_t largest = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (sf::parse_segment_file_name(it->path().filename().string())) {
            std::error_code size_ec;
            const auto size = std::filesystem::file_size(it->path(), size_ec);
            if (!size_ec) {
                largest = std::max<std::uint64_t>(largest, size);
            }
        }
    }
    return largest;
}

std::string format_age(std::int64_t ns) {
    const double s = static_cast<double>(ns) / 1e9;
    char buf[64];
    if (s < 120) {
        std::snprintf(buf, sizeof buf, "%.1fs", s);
    } else if (s < 7200) {
        std::snprintf(buf, sizeof buf, "%.1fm", s / 60);
    } else if (s < 172800) {
        std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
    } else {
        std::snprintf(buf, sizeof buf, "%.1fd", s / 86400);
    }
    return buf;
}

json time_json(std::int64_t ns, std::int64_t now) {
    if (ns == 0) {
        return nullptr;
    }
    return json{{"time", format_time(ns)}, {"unix_ns", ns}, {"age_ms", (now - ns) / 1'000'000}};
}

json id_json(const message_id& id) {
    return id.is_nil() ? json(nullptr) : json(id.to_string());
}

json report_json(const recovery_report& r) {
    json lost = json::array();
    for (const auto& g : r.lost) {
        lost.push_back({{"first", g.first}, {"end", g.end}});
    }
    return json{
        {"clean", r.clean()},
        {"segments", r.segments},
        {"records", r.records},
        {"bytes_scanned", r.bytes_scanned},
        {"messages", r.messages},
        {"log_start", r.log_start},
        {"next_sequence", r.next_sequence},
        {"synced_sequence", r.synced_sequence ? json(*r.synced_sequence) : json(nullptr)},
        {"truncated_bytes", r.truncated_bytes},
        {"truncated_file", r.truncated_file.empty() ? json(nullptr) : json(r.truncated_file)},
        {"quarantined_files", r.quarantined_files},
        {"lost", lost},
        {"findings", r.findings},
        {"duration_ms", std::chrono::duration<double, std::milli>(r.duration).count()},
    };
}

void print_report(std::ostream& out, const std::string& title, const recovery_report& r,
                  bool acted) {
    out << title << ": " << (r.clean() ? "clean" : (acted ? "repaired" : "DAMAGED")) << " ("
        << r.segments << " segment(s), " << r.records << " record(s), " << r.bytes_scanned
        << " bytes scanned)\n";
    if (r.synced_sequence) {
        out << "  synced: every record below sequence " << *r.synced_sequence
            << " was on disk (damage there is never cut as a torn tail)\n";
    }
    if (r.truncated_bytes > 0) {
        out << "  torn tail: " << r.truncated_bytes << " bytes " << (acted ? "cut" : "to cut")
            << " from " << r.truncated_file << "\n";
    }
    for (const auto& q : r.quarantined_files) {
        out << "  quarantined: " << q << "\n";
    }
    for (const auto& g : r.lost) {
        out << "  lost sequence numbers " << g.first << ".." << (g.end - 1) << " ("
            << (g.end - g.first) << ")\n";
    }
    for (const auto& f : r.findings) {
        out << "  finding: " << f << "\n";
    }
}

json walk_json(const segment_walk& w, std::string_view spool_name) {
    json types = json::object();
    for (std::size_t t = 0; t < w.by_type.size(); ++t) {
        if (w.by_type[t] != 0) {
            types[std::string(record_type_name(t))] = w.by_type[t];
        }
    }
    auto opt = [](const std::optional<std::uint64_t>& v) { return v ? json(*v) : json(nullptr); };
    return json{
        {"spool", spool_name},
        {"file", w.file},
        {"file_bytes", w.file_bytes},
        {"first_sequence", w.first_sequence},
        {"lowest_sequence", opt(w.lowest_sequence)},
        {"highest_sequence", opt(w.highest_sequence)},
        {"records", w.records},
        {"record_bytes", w.record_bytes},
        {"record_types", types},
        {"sequence_jumps", w.sequence_jumps},
        {"first_bad_offset", opt(w.first_bad_offset)},
        {"first_bad_reason", w.first_bad_reason.empty() ? json(nullptr) : json(w.first_bad_reason)},
        {"damaged_regions", w.damaged_regions},
        {"read_error", w.read_error.empty() ? json(nullptr) : json(w.read_error)},
    };
}

void print_walk(std::ostream& out, const segment_walk& w) {
    out << "  " << w.file << "  " << w.file_bytes << " bytes  " << w.records << " records";
    if (w.lowest_sequence) {
        out << "  sequences " << *w.lowest_sequence << ".." << *w.highest_sequence;
    }
    out << (w.records == 0 ? "  (empty" : "  (");
    bool first = true;
    for (std::size_t t = 0; t < w.by_type.size(); ++t) {
        if (w.by_type[t] != 0) {
            out << (first ? "" : ", ") << record_type_name(t) << " " << w.by_type[t];
            first = false;
        }
    }
    out << ")";
    if (!w.read_error.empty()) {
        out << "  UNREADABLE: " << w.read_error;
    } else if (w.first_bad_offset) {
        out << "  DAMAGED: first bad offset " << *w.first_bad_offset << " (" << w.first_bad_reason
            << "), " << w.damaged_regions << " damaged region(s)";
    }
    out << "\n";
}

void classify(const sf::record_view& r, std::unordered_map<std::uint64_t, settled_by>& settled) {
    switch (r.type) {
    case sf::record_type::acked:
        (void)sf::decode_sequence_list(
            r.payload, [&](std::uint64_t seq, std::uint64_t) { settled[seq] = settled_by::acked; });
        break;
    case sf::record_type::dropped:
        if (!r.payload.empty()) {
            const auto how = static_cast<std::uint8_t>(r.payload[0]) == 2
                                 ? settled_by::dropped_purged
                                 : settled_by::dropped_full;
            (void)sf::decode_sequence_list(
                r.payload.subspan(1),
                [&](std::uint64_t seq, std::uint64_t) { settled[seq] = how; });
        }
        break;
    case sf::record_type::dead_lettered:
        if (r.payload.size() >= 8) {
            std::uint64_t seq = 0;
            std::memcpy(&seq, r.payload.data(), 8);
            settled[seq] = settled_by::dead_lettered;
        }
        break;
    default:
        break;
    }
}

segment_walk walk_file(const std::filesystem::path& path, std::uint64_t first_sequence,
                       std::unordered_map<std::uint64_t, settled_by>* settled) {
    segment_walk w;
    w.file = path.filename().string();
    w.first_sequence = first_sequence;
    std::vector<std::byte> data;
    {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            w.read_error = std::strerror(errno);
            return w;
        }
        std::array<std::byte, 1 << 16> chunk{};
        for (;;) {
            const auto n = ::read(fd, chunk.data(), chunk.size());
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                w.read_error = std::strerror(errno);
                break;
            }
            if (n == 0) {
                break;
            }
            data.insert(data.end(), chunk.begin(), chunk.begin() + n);
        }
        ::close(fd);
    }
    w.file_bytes = data.size();
    const std::size_t size = data.size();
    std::size_t off = 0;
    std::optional<std::uint64_t> expected;
    // From `from` on, the next offset holding a valid record (or size).
    auto resync = [&](std::size_t from) {
        for (std::size_t at = from; at + sf::record_header_size <= size; ++at) {
            const void* hit = std::memchr(data.data() + at, 'Z', size - at);
            if (hit == nullptr) {
                return size;
            }
            at = static_cast<std::size_t>(static_cast<const std::byte*>(hit) - data.data());
            sf::record_view r;
            std::size_t n = 0;
            if (sf::parse_record(data.data() + at, size - at, r, &n) == sf::scan_result::ok) {
                return at;
            }
        }
        return size;
    };
    auto bad = [&](std::size_t at, sf::scan_result why) {
        if (!w.first_bad_offset) {
            w.first_bad_offset = at;
            w.first_bad_reason = std::string(sf::to_string(why));
        }
        ++w.damaged_regions;
    };
    while (off < size) {
        sf::record_view r;
        std::size_t n = 0;
        const auto res = sf::parse_record(data.data() + off, size - off, r, &n);
        if (res == sf::scan_result::ok) {
            ++w.records;
            w.record_bytes += n;
            const auto t = static_cast<std::size_t>(r.type);
            ++w.by_type[t < w.by_type.size() ? t : 0];
            if (expected && r.sequence != *expected) {
                ++w.sequence_jumps;
            }
            expected = r.sequence + 1;
            w.lowest_sequence = std::min(w.lowest_sequence.value_or(r.sequence), r.sequence);
            w.highest_sequence = std::max(w.highest_sequence.value_or(r.sequence), r.sequence);
            if (settled != nullptr) {
                classify(r, *settled);
            }
            off += n;
            continue;
        }
        if (res == sf::scan_result::end) {
            // Preallocated zeros: the end, unless something non-zero follows.
            std::size_t nonzero = off;
            while (nonzero < size && data[nonzero] == std::byte{0}) {
                ++nonzero;
            }
            if (nonzero == size) {
                break;
            }
            bad(nonzero, res);
            off = resync(nonzero);
            continue;
        }
        bad(off, res);
        off = resync(off + 1);
    }
    return w;
}

// ---- inspect ------------------------------------------------------------------------------------

struct state_counts {
    std::uint64_t waiting = 0, ready = 0, in_flight = 0;
    std::uint64_t acked = 0, dead_lettered = 0, dropped_full = 0, dropped_purged = 0, other = 0;
};

state_counts count_states(spool& s, const std::unordered_map<std::uint64_t, settled_by>& how) {
    state_counts c;
    s.for_each(0, [&](const spooled_message& m, bool settled) {
        if (!settled) {
            ++c.waiting;
            ++(m.attempt == 0 ? c.ready : c.in_flight);
            return true;
        }
        const auto it = how.find(m.sequence);
        if (it == how.end()) {
            ++c.other;
            return true;
        }
        switch (it->second) {
        case settled_by::acked:
            ++c.acked;
            break;
        case settled_by::dead_lettered:
            ++c.dead_lettered;
            break;
        case settled_by::dropped_full:
            ++c.dropped_full;
            break;
        case settled_by::dropped_purged:
            ++c.dropped_purged;
            break;
        }
        return true;
    });
    return c;
}

int run_inspect(const spooler_config& cfg) {
    metrics_registry registry;
    auto s = open_spool(cfg, false, registry);
    std::unordered_map<std::uint64_t, settled_by> how;
    const auto walks = walk_segments(cfg.directory, &how);
    const auto counts = count_states(*s, how);
    const auto st = s->stats();
    const auto now = now_unix_ns();
    spool* dlq = s->dead_letters();
    std::optional<spool_stats> dst;
    if (dlq != nullptr) {
        dst = dlq->stats();
    }
    if (cfg.json) {
        json segments = json::array();
        for (const auto& w : walks) {
            segments.push_back(walk_json(w, "main"));
        }
        json j{
            {"directory", cfg.directory.string()},
            {"log_start", st.log_start},
            {"next_sequence", st.next_sequence},
            {"segments", segments},
            {"disk_bytes", st.disk_bytes},
            {"messages",
             {{"waiting", counts.waiting},
              {"ready", counts.ready},
              {"in_flight", counts.in_flight},
              {"acked", counts.acked},
              {"dead_lettered", counts.dead_lettered},
              {"dropped_full", counts.dropped_full},
              {"dropped_purged", counts.dropped_purged},
              {"settled_other", counts.other}}},
            {"message_bytes", st.message_bytes},
            {"oldest", time_json(st.oldest_ns, now)},
            {"newest", time_json(st.newest_ns, now)},
            {"dead_letter", dst ? json{{"messages", dst->messages},
                                       {"message_bytes", dst->message_bytes},
                                       {"segments", dst->segments},
                                       {"disk_bytes", dst->disk_bytes},
                                       {"oldest", time_json(dst->oldest_ns, now)},
                                       {"newest", time_json(dst->newest_ns, now)}}
                                : json(nullptr)},
            {"recovery", report_json(s->recovery())},
            {"dead_letter_recovery", dlq != nullptr ? report_json(dlq->recovery()) : json(nullptr)},
        };
        std::cout << dump(j);
        return exit_ok;
    }
    std::ostringstream out;
    out << "spool " << cfg.directory.string() << "\n";
    out << "log start " << st.log_start << ", next sequence " << st.next_sequence << "\n";
    out << "segments: " << walks.size() << " (" << st.disk_bytes << " bytes on disk)\n";
    for (const auto& w : walks) {
        print_walk(out, w);
    }
    out << "messages: " << counts.waiting << " waiting (" << counts.ready << " ready, "
        << counts.in_flight << " in flight: delivered, not acked), " << counts.acked << " acked, "
        << counts.dead_lettered << " dead-lettered, " << counts.dropped_full
        << " dropped (spool full), " << counts.dropped_purged << " purged";
    if (counts.other != 0) {
        out << ", " << counts.other << " settled otherwise";
    }
    out << "\n";
    out << "waiting bytes: " << st.message_bytes << "\n";
    if (st.oldest_ns != 0) {
        out << "oldest waiting: " << format_time(st.oldest_ns) << " (age "
            << format_age(now - st.oldest_ns) << ")\n";
    } else {
        out << "oldest waiting: none\n";
    }
    if (st.newest_ns != 0) {
        out << "newest: " << format_time(st.newest_ns) << " (age " << format_age(now - st.newest_ns)
            << ")\n";
    }
    if (dst) {
        out << "dead-letter spool: " << dst->messages << " message(s), " << dst->message_bytes
            << " bytes, " << dst->segments << " segment(s), " << dst->disk_bytes
            << " bytes on disk\n";
    } else {
        out << "dead-letter spool: none\n";
    }
    print_report(out, "recovery", s->recovery(), false);
    if (dlq != nullptr) {
        print_report(out, "dead-letter recovery", dlq->recovery(), false);
    }
    std::cout << out.str();
    return exit_ok;
}

// ---- verify / repair ----------------------------------------------------------------------------

int run_verify(const spooler_config& cfg) {
    metrics_registry registry;
    auto s = open_spool(cfg, false, registry);
    const auto walks = walk_segments(cfg.directory);
    const auto dlq_walks = walk_segments(cfg.directory / "dead-letter");
    spool* dlq = s->dead_letters();
    bool clean = s->recovery().clean() && (dlq == nullptr || dlq->recovery().clean());
    for (const auto* list : {&walks, &dlq_walks}) {
        for (const auto& w : *list) {
            clean = clean && !w.damaged();
        }
    }
    const int code = clean ? exit_ok : exit_spool_damaged;
    if (cfg.json) {
        json files = json::array();
        for (const auto& w : walks) {
            files.push_back(walk_json(w, "main"));
        }
        for (const auto& w : dlq_walks) {
            files.push_back(walk_json(w, "dead-letter"));
        }
        json j{
            {"directory", cfg.directory.string()},
            {"clean", clean},
            {"exit_code", code},
            {"recovery", report_json(s->recovery())},
            {"dead_letter_recovery", dlq != nullptr ? report_json(dlq->recovery()) : json(nullptr)},
            {"files", files},
        };
        std::cout << dump(j);
        return code;
    }
    std::ostringstream out;
    out << "spool " << cfg.directory.string() << ": " << (clean ? "clean" : "DAMAGED") << "\n";
    print_report(out, "recovery", s->recovery(), false);
    if (dlq != nullptr) {
        print_report(out, "dead-letter recovery", dlq->recovery(), false);
    }
    out << "segment files:\n";
    for (const auto& w : walks) {
        print_walk(out, w);
    }
    if (!dlq_walks.empty()) {
        out << "dead-letter segment files:\n";
        for (const auto& w : dlq_walks) {
            print_walk(out, w);
        }
    }
    if (!clean) {
        out << "run 'zmqkit-spooler repair " << cfg.directory.string()
            << "' (with the proxy stopped) to cut the torn tail and quarantine damaged segments\n";
    }
    std::cout << out.str();
    return code;
}

int run_repair(const spooler_config& cfg) {
    metrics_registry registry;
    auto s = open_spool(cfg, true, registry);
    spool* dlq = s->dead_letters();
    const bool clean = s->recovery().clean() && (dlq == nullptr || dlq->recovery().clean());
    if (cfg.json) {
        json j{
            {"directory", cfg.directory.string()},
            {"clean", clean},
            {"recovery", report_json(s->recovery())},
            {"dead_letter_recovery", dlq != nullptr ? report_json(dlq->recovery()) : json(nullptr)},
        };
        std::cout << dump(j);
        return exit_ok;
    }
    std::ostringstream out;
    out << "spool " << cfg.directory.string() << ": " << (clean ? "nothing to repair" : "repaired")
        << "\n";
    print_report(out, "recovery", s->recovery(), true);
    if (dlq != nullptr) {
        print_report(out, "dead-letter recovery", dlq->recovery(), true);
    }
    std::cout << out.str();
    return exit_ok;
}

// ---- dead letters -------------------------------------------------------------------------------

// One control command to the running proxy (REQ, bounded wait); its reply's first frame.
std::string ask_control(const spooler_config& cfg, const std::string& command) {
    zmq::context_t context;
    zmq::socket_t socket(context, zmq::socket_type::req);
    socket.set(zmq::sockopt::linger, 0);
    apply_security(socket, cfg.security.socket);
    try {
        (void)attach(socket, cfg.control, endpoint_action::connect);
    } catch (const zmqkit::error& e) {
        throw usage_error{"--control " + cfg.control + ": " + e.what(), exit_usage};
    }
    (void)socket.send(zmq::buffer(command), zmq::send_flags::none);
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, cfg.control_timeout) <= 0) {
        throw usage_error{"no answer from the proxy's control socket " + cfg.control + " within " +
                              std::to_string(cfg.control_timeout.count()) +
                              " ms (is the proxy running with --control there?)",
                          exit_unavailable};
    }
    std::vector<zmq::message_t> frames;
    (void)zmq::recv_multipart(socket, std::back_inserter(frames));
    return frames.empty() ? std::string() : frames.front().to_string();
}

// The proxy's answer to a DLQ command: "OK <words>" gives the words, "ERROR why" is exit 1.
std::optional<std::string> control_ok(const spooler_config& cfg, const std::string& command,
                                      const logger& log) {
    const std::string reply = ask_control(cfg, command);
    if (reply.rfind("OK", 0) == 0) {
        return reply.size() > 3 ? reply.substr(3) : std::string();
    }
    log.error(reply.rfind("ERROR ", 0) == 0 ? reply.substr(6) : reply);
    return std::nullopt;
}

int run_dlq_list_online(const spooler_config& cfg) {
    const std::string reply =
        ask_control(cfg, "DLQ LIST " + std::to_string(cfg.limit.value_or(100)));
    auto doc = json::parse(reply, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        throw usage_error{"the answer of " + cfg.control + " is not a list of dead letters (" +
                              reply.substr(0, 200) + ")",
                          exit_failure};
    }
    if (cfg.json) {
        std::cout << dump(doc) << "\n";
        return exit_ok;
    }
    std::ostringstream out;
    for (const auto& m : doc.value("messages", json::array())) {
        const auto text = [&](const char* k) {
            return m.contains(k) && m[k].is_string() ? m[k].get<std::string>() : std::string("-");
        };
        out << m.value("sequence", 0ull) << "  " << text("id") << "  type " << text("type")
            << "  attempts " << m.value("attempts", 0u) << "  group " << text("group") << "  at "
            << format_time(m.value("dead_lettered_ns", std::int64_t{0})) << "  body "
            << m.value("body_bytes", 0ull) << " bytes  reason: " << text("reason") << "\n";
    }
    out << doc.value("dead_letters", 0ull) << " dead letter(s)\n";
    std::cout << out.str();
    return exit_ok;
}

int run_dlq_list(const spooler_config& cfg) {
    if (!cfg.control.empty()) {
        return run_dlq_list_online(cfg);
    }
    metrics_registry registry;
    auto s = open_spool(cfg, false, registry);
    spool* dlq = s->dead_letters();
    json list = json::array();
    std::ostringstream out;
    std::uint64_t waiting = 0;
    std::uint64_t shown = 0;
    if (dlq != nullptr) {
        dlq->for_each(0, [&](const spooled_message& m, bool settled) {
            if (settled) {
                return true;
            }
            ++waiting;
            if (cfg.limit && shown >= *cfg.limit) {
                return true; // keep counting
            }
            ++shown;
            header h;
            const bool decoded = decode_header(m.header.data(), m.header.size(), h).ok();
            const std::string* reason = h.find_user_header(dead_letter_reason_header);
            const std::string* original = h.find_user_header(dead_letter_sequence_header);
            if (cfg.json) {
                list.push_back(json{
                    {"sequence", m.sequence},
                    {"id", decoded ? id_json(h.id) : json(nullptr)},
                    {"correlation_id", decoded ? id_json(h.correlation_id) : json(nullptr)},
                    {"causation_id", decoded ? id_json(h.causation_id) : json(nullptr)},
                    {"type", h.type},
                    {"attempts", h.attempt},
                    {"reason", reason != nullptr ? json(*reason) : json(nullptr)},
                    {"original_sequence", original != nullptr ? json(*original) : json(nullptr)},
                    {"dead_lettered_at", format_time(m.appended_ns)},
                    {"dead_lettered_ns", m.appended_ns},
                    {"body_bytes", m.body.size()},
                });
                return true;
            }
            out << m.sequence << "  " << (decoded ? h.id.to_string() : "(undecodable header)")
                << "  correlation "
                << (h.correlation_id.is_nil() ? "-" : h.correlation_id.to_string()) << "  type "
                << (h.type.empty() ? "-" : h.type) << "  attempts " << h.attempt << "  at "
                << format_time(m.appended_ns) << "  body " << m.body.size()
                << " bytes  reason: " << (reason != nullptr ? *reason : std::string("-")) << "\n";
            return true;
        });
    }
    if (cfg.json) {
        std::cout << dump(json{{"directory", cfg.directory.string()},
                               {"dead_letters", waiting},
                               {"listed", shown},
                               {"messages", list}});
        return exit_ok;
    }
    out << waiting << " dead letter(s)";
    if (shown < waiting) {
        out << ", " << shown << " listed (--limit)";
    }
    out << "\n";
    std::cout << out.str();
    return exit_ok;
}

int run_dlq_requeue(const spooler_config& cfg, const logger& log) {
    if (!cfg.control.empty()) {
        const auto words = control_ok(
            cfg, "DLQ REQUEUE " + (cfg.id ? cfg.id->to_string() : std::string("ALL")), log);
        if (!words) {
            return exit_failure;
        }
        std::cout << *words << " dead letter(s)\n";
        return exit_ok;
    }
    metrics_registry registry;
    auto s = open_spool(cfg, true, registry);
    if (s->dead_letters() == nullptr) {
        log.error("no dead-letter spool at " + (cfg.directory / "dead-letter").string());
        return exit_failure;
    }
    const auto r = s->requeue_dead_letters(cfg.id);
    if (r.undecodable > 0) {
        log.warn(std::to_string(r.undecodable) +
                 " dead letter(s) with an undecodable header left in place");
    }
    if (r.no_group > 0) {
        log.warn(std::to_string(r.no_group) +
                 " dead letter(s) whose consumer group (or default queue) no longer exists left "
                 "in place");
    }
    if (!r.error.empty()) {
        log.error(r.error);
        return exit_failure;
    }
    if (cfg.id && r.requeued.empty()) {
        log.error("no dead letter with id " + cfg.id->to_string() + " in " +
                  (cfg.directory / "dead-letter").string() + " that could be requeued");
        return exit_failure;
    }
    if (r.unsettled > 0) {
        log.warn(std::to_string(r.unsettled) +
                 " requeued dead letter(s) could not be settled and are still listed");
    }
    std::ostringstream out;
    for (const auto& [original, fresh] : r.requeued) {
        out << "requeued " << original.to_string() << " as " << fresh.to_string() << "\n";
    }
    out << "requeued " << r.requeued.size() << " dead letter(s)\n";
    std::cout << out.str();
    return r.unsettled > 0 ? exit_failure : exit_ok;
}

// ---- consumer groups ----

json group_json(const group_info& g) {
    json o;
    o["name"] = g.name;
    o["start"] = g.start;
    o["floor"] = g.floor;
    o["cursor"] = g.cursor;
    o["pending"] = g.pending;
    o["in_flight"] = g.in_flight;
    o["lag"] = g.undelivered;
    o["acked"] = g.acked;
    o["redelivered"] = g.redelivered;
    o["dead_lettered"] = g.dead_lettered;
    o["lost"] = g.lost;
    return o;
}

void print_groups(std::ostream& out, const json& groups) {
    out << "group                start                      floor     pending   lag       lost\n";
    for (const auto& g : groups) {
        const std::string name = g.value("name", "");
        char line[256];
        std::snprintf(line, sizeof line, "%-20s %-26s %-9s %-9s %-9s %s\n",
                      (name.empty() ? std::string("(default queue)") : name).c_str(),
                      g.value("start", "").c_str(), std::to_string(g.value("floor", 0ull)).c_str(),
                      std::to_string(g.value("pending", 0ull)).c_str(),
                      std::to_string(g.value("lag", 0ull)).c_str(),
                      std::to_string(g.value("lost", 0ull)).c_str());
        out << line;
    }
}

int run_group_list(const spooler_config& cfg) {
    json groups = json::array();
    if (!cfg.control.empty()) {
        const std::string reply = ask_control(cfg, "GROUPS");
        groups = json::parse(reply, nullptr, false);
        if (groups.is_discarded() || !groups.is_array()) {
            throw usage_error{"the answer of " + cfg.control + " is not a list of groups (" +
                                  reply.substr(0, 200) +
                                  "): is it a durable proxy's control "
                                  "socket?",
                              exit_failure};
        }
    } else {
        metrics_registry registry;
        auto s = open_spool(cfg, false, registry);
        for (const auto& g : s->groups()) {
            groups.push_back(group_json(g));
        }
    }
    if (cfg.json) {
        std::cout << dump(json{{"groups", groups}}) << "\n";
    } else {
        print_groups(std::cout, groups);
    }
    return exit_ok;
}

int run_group_change(const spooler_config& cfg, const logger& log) {
    const bool reset = cfg.command == spooler_command::group_reset;
    if (!cfg.control.empty()) {
        const std::string reply =
            ask_control(cfg, reset ? "GROUP RESET " + cfg.group + " " + cfg.start
                                   : "GROUP DELETE " + cfg.group);
        if (reply != "OK") {
            log.error(reply.rfind("ERROR ", 0) == 0 ? reply.substr(6) : reply);
            return exit_failure;
        }
    } else {
        metrics_registry registry;
        auto s = open_spool(cfg, true, registry);
        bool found = false;
        try {
            found = reset ? s->reset_group(cfg.group, group_start::parse(cfg.start))
                          : s->delete_group(cfg.group);
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            return exit_failure;
        }
        if (!found) {
            log.error("no consumer group '" + cfg.group + "' in " + cfg.directory.string());
            return exit_failure;
        }
        if (!s->commit()) {
            log.error("cannot commit: " + s->stats().failure);
            return exit_failure;
        }
    }
    std::cout << (reset ? "reset" : "deleted") << " consumer group '" << cfg.group << "'"
              << (reset ? " to " + cfg.start : std::string()) << "\n";
    return exit_ok;
}

int run_dlq_purge(const spooler_config& cfg, const logger& log) {
    if (!cfg.control.empty()) {
        const auto words = control_ok(cfg, "DLQ PURGE", log);
        if (!words) {
            return exit_failure;
        }
        std::cout << *words << " dead letter(s)\n";
        return exit_ok;
    }
    metrics_registry registry;
    auto s = open_spool(cfg, true, registry);
    spool* dlq = s->dead_letters();
    if (dlq == nullptr) {
        std::cout << "purged 0 dead letter(s)\n";
        return exit_ok;
    }
    const std::uint64_t n = dlq->purge();
    // Nothing to purge writes nothing: commit() reports false for an empty commit.
    if (dlq->commit_pending() && !dlq->commit()) {
        log.error("cannot commit the purge: " + dlq->stats().failure);
        return exit_failure;
    }
    std::cout << "purged " << n << " dead letter(s)\n";
    return exit_ok;
}

} // namespace

std::string_view record_type_name(std::size_t type) noexcept {
    switch (type) {
    case 1:
        return "message";
    case 2:
        return "delivered";
    case 3:
        return "acked";
    case 4:
        return "dead_lettered";
    case 5:
        return "dropped";
    case 6:
        return "segment_start";
    case 7:
        return "gap";
    case 8:
        return "log_start";
    case 9:
        return "group";
    case 10:
        return "group_delivered";
    case 11:
        return "group_acked";
    case 12:
        return "group_dead_lettered";
    default:
        return "unknown";
    }
}

std::vector<segment_walk> walk_segments(const std::filesystem::path& dir,
                                        std::unordered_map<std::uint64_t, settled_by>* settled) {
    std::vector<std::pair<std::uint64_t, std::filesystem::path>> files;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (auto first = sf::parse_segment_file_name(it->path().filename().string())) {
            files.emplace_back(*first, it->path());
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<segment_walk> walks;
    walks.reserve(files.size());
    for (const auto& [first, path] : files) {
        walks.push_back(walk_file(path, first, settled));
    }
    return walks;
}

std::unique_ptr<spool> open_spool(const spooler_config& cfg, bool writable,
                                  metrics_registry& registry) {
    const auto& dir = cfg.directory;
    std::error_code ec;
    const bool exists = std::filesystem::is_directory(dir, ec);
    if (!exists && !(writable && cfg.command == spooler_command::record)) {
        throw usage_error{
            "no spool at " + dir.string() + ": " +
                (std::filesystem::exists(dir, ec) ? "not a directory" : "no such directory"),
            exit_no_spool};
    }
    spool_options o;
    o.directory = dir;
    o.read_only = !writable;
    o.name = "spooler";
    o.registry = &registry;
    o.max_attempts = 0; // requeue() never dead-letters here
    if (cfg.command == spooler_command::record) {
        o.sync = sync_policy::parse(cfg.sync);
    }
    const std::uint64_t existing = largest_segment_file(dir);
    if (cfg.command == spooler_command::record && cfg.segment_bytes) {
        o.segment_bytes = *cfg.segment_bytes;
    } else if (existing >= 4096) {
        o.segment_bytes = existing;
    }
    o.reserve_bytes = std::min<std::uint64_t>(o.reserve_bytes, o.segment_bytes / 8);
    try {
        return std::make_unique<spool>(std::move(o));
    } catch (const spool_error& e) {
        if (writable && (lock_held(dir / "lock") || lock_held(dir / "dead-letter" / "lock"))) {
            throw usage_error{std::string(e.what()), exit_spool_in_use};
        }
        throw usage_error{std::string(e.what()), exit_no_spool};
    } catch (const config_error& e) {
        throw usage_error{std::string(e.what()), exit_usage};
    }
}

int run_spooler(const spooler_config& cfg, const logger& log, shutdown_signals& signals) {
    switch (cfg.command) {
    case spooler_command::inspect:
        return run_inspect(cfg);
    case spooler_command::verify:
        return run_verify(cfg);
    case spooler_command::repair:
        return run_repair(cfg);
    case spooler_command::dlq_list:
        return run_dlq_list(cfg);
    case spooler_command::dlq_requeue:
        return run_dlq_requeue(cfg, log);
    case spooler_command::dlq_purge:
        return run_dlq_purge(cfg, log);
    case spooler_command::record:
        return run_record(cfg, log, signals);
    case spooler_command::replay:
        return run_replay(cfg, log, signals);
    case spooler_command::group_list:
        return run_group_list(cfg);
    case spooler_command::group_reset:
    case spooler_command::group_delete:
        return run_group_change(cfg, log);
    }
    return exit_software;
}

} // namespace zmqkit::cli
