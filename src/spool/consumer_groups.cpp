#include "consumer_groups.hpp"

#include <zmqkit/time_text.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>

namespace zmqkit {

namespace sf = spool_format;

// ---- names and start positions ----------------------------------------------------------------

std::string check_group_name(std::string_view name) {
    if (name.empty() || name.size() > 64) {
        return "a consumer group's name has 1 to 64 characters (got " +
               std::to_string(name.size()) + ")";
    }
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) {
            return "consumer group '" + std::string(name) +
                   "': a name has only the characters A-Z a-z 0-9 . _ -";
        }
    }
    return {};
}

namespace {

std::optional<std::uint64_t> decimal(std::string_view text) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return v;
}

std::int64_t system_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

group_start group_start::parse(std::string_view text) {
    group_start s;
    if (text == "earliest") {
        return s;
    }
    if (text == "latest") {
        s.where = kind::latest;
        return s;
    }
    std::string_view number = text;
    if (number.starts_with("sequence:")) {
        number.remove_prefix(9);
    }
    if (const auto n = decimal(number)) {
        s.where = kind::sequence;
        s.sequence = *n;
        return s;
    }
    if (text.starts_with("time:")) {
        if (const auto n = decimal(text.substr(5)); n && *n <= INT64_MAX) {
            s.where = kind::time;
            s.time_ns = static_cast<std::int64_t>(*n);
            return s;
        }
    } else {
        try {
            s.time_ns = parse_time(text, system_now_ns());
            s.where = kind::time;
            return s;
        } catch (const config_error&) { // NOLINT(bugprone-empty-catch): reported below
        }
    }
    throw config_error("start position '" + std::string(text) +
                       "' is not valid: use earliest, latest, a sequence number (1234 or "
                       "sequence:1234), a time (RFC 3339 2026-12-01T00:00:00Z, @UNIX_SECONDS, "
                       "time:UNIX_NS) or a duration before now (10m, 2h)");
}

std::string group_start::to_string() const {
    switch (where) {
    case kind::earliest:
        return "earliest";
    case kind::latest:
        return "latest";
    case kind::sequence:
        return "sequence:" + std::to_string(sequence);
    case kind::time:
        return "time:" + std::to_string(time_ns);
    }
    return "earliest";
}

} // namespace zmqkit

namespace zmqkit::detail {

namespace sf = spool_format;

// ---- groups -----------------------------------------------------------------------------------

const consumer_groups::group* consumer_groups::find(std::string_view name) const noexcept {
    for (const auto& [id, g] : groups_) {
        if (g->ledger.name == name) {
            return g.get();
        }
    }
    return nullptr;
}

consumer_groups::group& consumer_groups::add(std::uint32_t id, std::uint32_t epoch,
                                             std::string name, std::string start,
                                             std::uint64_t floor, std::int64_t time_ns) {
    auto g = std::make_unique<group>(ctx_, log_, commit_, dead_letters_);
    g->ledger.id = id;
    g->ledger.epoch = epoch;
    g->ledger.name = std::move(name);
    g->ledger.start = std::move(start);
    g->ledger.floor = floor;
    g->ledger.created_ns = time_ns;
    group& ref = *g;
    groups_[id] = std::move(g);
    next_id_ = std::max(next_id_, id + 1);
    return ref;
}

std::uint64_t consumer_groups::resolve(const group_start& start, std::uint64_t latest) {
    const auto& segments = log_.segments();
    const std::uint64_t head = segments.empty() ? latest : segments.front().first;
    switch (start.where) {
    case group_start::kind::earliest:
        return head;
    case group_start::kind::latest:
        return latest;
    case group_start::kind::sequence:
        if (start.sequence < head) {
            throw config_error("start sequence " + std::to_string(start.sequence) +
                               " is before the log start " + std::to_string(head) +
                               " (older messages were reclaimed): use earliest to read from the "
                               "oldest message held");
        }
        if (start.sequence > latest) {
            throw config_error("start sequence " + std::to_string(start.sequence) +
                               " is in the future (the next message stored gets " +
                               std::to_string(latest) + "): use latest");
        }
        return start.sequence;
    case group_start::kind::time: {
        const std::int64_t now = ctx_.now_ns();
        if (start.time_ns > now + 1'000'000'000) {
            throw config_error("start time " + format_time(start.time_ns) +
                               " is in the future (now " + format_time(now) + "): use latest");
        }
        if (start.time_ns <= reclaimed_ns_) {
            throw config_error(
                "start time " + format_time(start.time_ns) +
                " is before the log start: messages stored up to " + format_time(reclaimed_ns_) +
                " were reclaimed; use earliest to read from the oldest message held");
        }
        return first_message_at(start.time_ns, latest);
    }
    }
    return head;
}

std::uint64_t consumer_groups::first_message_at(std::int64_t time_ns, std::uint64_t latest) {
    for (auto& s : log_.segments()) {
        if (s.newest_ns < time_ns) {
            continue;
        }
        buffered_reader reader;
        std::uint64_t offset = 0;
        while (offset < s.used) {
            std::size_t consumed = 0;
            const auto r = log_.read_record(reader, s, offset, &consumed);
            if (!r) {
                break;
            }
            offset += consumed;
            message_payload mp;
            if (r->type == sf::record_type::message && parse_message_payload(r->payload, mp) &&
                mp.appended_ns >= time_ns) {
                return r->sequence;
            }
        }
    }
    return latest;
}

std::uint64_t consumer_groups::count_waiting(const group_ledger& g) const {
    std::uint64_t n = 0;
    for (const auto& s : log_.segments()) {
        if (s.end <= g.floor) {
            continue;
        }
        n += s.messages_between(std::max(s.first, g.floor), s.end);
    }
    return n >= g.acked.size() ? n - g.acked.size() : 0;
}

group_id consumer_groups::open(std::string_view name, const group_start& start,
                               std::uint64_t latest) {
    if (const std::string why = check_group_name(name); !why.empty()) {
        throw config_error(why);
    }
    for (const auto& [id, g] : groups_) {
        if (g->ledger.name == name) {
            return id;
        }
    }
    const std::uint64_t floor = resolve(start, latest);
    group& g = add(next_id_, 1, std::string(name), start.to_string(), floor, ctx_.now_ns());
    g.ledger.waiting = count_waiting(g.ledger);
    g.delivery.seek(floor);
    commit_.group_event({sf::group_event::created, g.ledger.id, g.ledger.epoch, floor,
                         g.ledger.created_ns, g.ledger.name, g.ledger.start, 0});
    return g.ledger.id;
}

bool consumer_groups::reset(std::string_view name, const group_start& start, std::uint64_t latest) {
    for (auto& [id, g] : groups_) {
        if (g->ledger.name != name) {
            continue;
        }
        const std::uint64_t floor = resolve(start, latest);
        group_ledger& l = g->ledger;
        ++l.epoch;
        l.floor = floor;
        l.start = start.to_string();
        l.created_ns = ctx_.now_ns();
        l.acked.clear();
        g->delivery.clear();
        g->delivery.seek(floor);
        l.waiting = count_waiting(l);
        commit_.group_event(
            {sf::group_event::reset, l.id, l.epoch, floor, l.created_ns, l.name, l.start, 0});
        return true;
    }
    return false;
}

bool consumer_groups::remove(std::string_view name) {
    for (auto it = groups_.begin(); it != groups_.end(); ++it) {
        const group_ledger& l = it->second->ledger;
        if (l.name == name) {
            commit_.group_event(
                {sf::group_event::deleted, l.id, l.epoch, l.floor, ctx_.now_ns(), l.name, {}, 0});
            groups_.erase(it);
            return true;
        }
    }
    return false;
}

group_info consumer_groups::info(const group& g) const {
    const group_ledger& l = g.ledger;
    group_info i;
    i.name = l.name;
    i.id = l.id;
    i.start = l.start;
    i.created_ns = l.created_ns;
    i.floor = l.floor;
    i.cursor = std::max(g.delivery.cursor(), l.floor);
    i.pending = l.waiting;
    i.in_flight = g.delivery.in_flight_count();
    i.undelivered = g.delivery.undelivered(l.waiting);
    i.acked = l.acked_count;
    i.redelivered = l.redelivered;
    i.dead_lettered = l.dead_lettered;
    i.lost = l.lost;
    return i;
}

std::vector<group_info> consumer_groups::list() const {
    std::vector<group_info> out;
    out.reserve(groups_.size());
    for (const auto& [id, g] : groups_) {
        out.push_back(info(*g));
    }
    std::sort(out.begin(), out.end(),
              [](const group_info& a, const group_info& b) { return a.name < b.name; });
    return out;
}

void consumer_groups::written(std::uint64_t first, std::uint64_t n) noexcept {
    for (auto& [id, g] : groups_) {
        group_ledger& l = g->ledger;
        if (first + n > l.floor) {
            l.waiting += first + n - std::max(first, l.floor);
        }
    }
}

void consumer_groups::settle_except(const std::string& target, std::uint64_t seq,
                                    std::uint64_t bytes) {
    for (auto& [id, g] : groups_) {
        if (g->ledger.name != target) {
            g->delivery.settle(seq, bytes);
        }
    }
}

bool consumer_groups::past(const segment& s) const noexcept {
    return std::all_of(groups_.begin(), groups_.end(),
                       [&](const auto& g) { return g.second->ledger.floor >= s.end; });
}

bool consumer_groups::before_remove(std::uint64_t start) {
    for (const auto& s : log_.segments()) {
        if (s.end <= start) {
            reclaimed_ns_ = std::max(reclaimed_ns_, s.newest_ns);
        }
    }
    for (auto& [id, g] : groups_) {
        group_ledger& l = g->ledger;
        if (l.floor >= start) {
            continue;
        }
        std::uint64_t messages = 0;
        for (const auto& s : log_.segments()) {
            if (s.first >= start) {
                break;
            }
            if (s.end > l.floor) {
                messages += s.messages_between(std::max(s.first, l.floor), std::min(s.end, start));
            }
        }
        const auto settled_below =
            static_cast<std::uint64_t>(std::distance(l.acked.begin(), l.acked.lower_bound(start)));
        const std::uint64_t lost = messages >= settled_below ? messages - settled_below : 0;
        const std::uint64_t from = l.floor;
        l.acked.erase(l.acked.begin(), l.acked.lower_bound(start));
        l.floor = start;
        l.waiting -= std::min(l.waiting, lost);
        l.lost += lost;
        g->delivery.forget_below(start);
        if (lost > 0 && ctx_.opt.notice) {
            ctx_.opt.notice("consumer group '" + l.name + "' lost " + std::to_string(lost) +
                            " message(s) to the retention limits (sequence numbers " +
                            std::to_string(from) + ".." + std::to_string(start - 1) +
                            " were reclaimed before the group acked them)");
        }
    }
    return write_file();
}

bool consumer_groups::write_file() {
    if (groups_.empty() && next_id_ == 1 && reclaimed_ns_ == 0) {
        return true; // a spool that never had a group needs no file
    }
    sf::groups_snapshot snap;
    snap.next_id = next_id_;
    snap.reclaimed_ns = reclaimed_ns_;
    for (const auto& [id, g] : groups_) {
        const group_ledger& l = g->ledger;
        snap.groups.push_back({sf::group_event::created, l.id, l.epoch, l.floor, l.created_ns,
                               l.name, l.start, l.lost});
    }
    sf::encode_groups_file(snap, file_buffer_);
    const auto path = ctx_.dir / sf::groups_file_name;
    const auto temporary = ctx_.dir / (std::string(sf::groups_file_name) + ".new");
    spool_file_system& fs = ctx_.fs;
    (void)fs.remove(temporary);
    spool_file_system::handle h = -1;
    int e = fs.open(temporary, true, true, h);
    if (e == 0) {
        e = fs.write(h, file_buffer_.data(), file_buffer_.size(), 0);
        if (e == 0) {
            e = fs.sync_data(h);
        }
        fs.close(h);
    }
    if (e == 0) {
        e = fs.rename(temporary, path);
    }
    if (e == 0) {
        e = fs.sync_directory(ctx_.dir);
    }
    if (e != 0) {
        (void)fs.remove(temporary);
        log_.write_error(e, "writing " + path.string());
        return false;
    }
    file_next_id_ = next_id_;
    return true;
}

std::optional<std::chrono::steady_clock::time_point> consumer_groups::next_redelivery() const {
    std::optional<std::chrono::steady_clock::time_point> first;
    for (const auto& [id, g] : groups_) {
        const auto t = g->delivery.next_redelivery();
        if (t && (!first || *t < *first)) {
            first = t;
        }
    }
    return first;
}

// ---- recovery ---------------------------------------------------------------------------------

void consumer_groups::load(recovery_report& report) {
    const auto path = ctx_.dir / sf::groups_file_name;
    spool_file_system::handle h = -1;
    if (const int e = ctx_.fs.open(path, false, false, h); e != 0) {
        if (e != ENOENT) {
            report.findings.push_back(std::string(sf::groups_file_name) + ": cannot be read (" +
                                      errno_text(e) + ")");
        }
        return;
    }
    std::uint64_t size = 0;
    int e = ctx_.fs.size(h, size);
    std::vector<std::byte> bytes;
    if (e == 0 && size <= (64u << 20)) {
        bytes.resize(static_cast<std::size_t>(size));
        std::size_t got = 0;
        e = ctx_.fs.read(h, bytes.data(), bytes.size(), 0, got);
        bytes.resize(got);
    }
    ctx_.fs.close(h);
    sf::groups_snapshot snap;
    std::string why = e != 0 ? "unreadable (" + errno_text(e) + ")" : std::string();
    if (e != 0 || !sf::parse_groups_file(bytes.data(), bytes.size(), snap, why)) {
        report.findings.push_back(
            std::string(sf::groups_file_name) + ": " + why +
            "; the consumer groups are rebuilt from the group records still in the log (a group "
            "whose records were all reclaimed is lost: create it again with its start position)");
        return;
    }
    for (auto& r : snap.groups) {
        if (!check_group_name(r.name).empty() || groups_.contains(r.id)) {
            continue;
        }
        add(r.id, r.epoch, std::move(r.name), std::move(r.start), r.floor, r.time_ns).ledger.lost =
            r.lost;
    }
    next_id_ = std::max(next_id_, snap.next_id);
    file_next_id_ = snap.next_id;
    reclaimed_ns_ = snap.reclaimed_ns;
}

void consumer_groups::apply(const sf::record_view& r) {
    if (r.type == sf::record_type::group) {
        sf::group_record g;
        if (!sf::parse_group_record(r.payload, g) || g.id == 0) {
            return;
        }
        next_id_ = std::max(next_id_, g.id + 1);
        group* known = find(g.id);
        switch (g.event) {
        case sf::group_event::created:
            if (known == nullptr && g.id >= file_next_id_ && check_group_name(g.name).empty()) {
                add(g.id, g.epoch, std::move(g.name), std::move(g.start), g.floor, g.time_ns);
            }
            break;
        case sf::group_event::reset:
            if (known != nullptr && g.epoch > known->ledger.epoch) {
                group_ledger& l = known->ledger;
                l.epoch = g.epoch;
                l.floor = g.floor;
                l.start = std::move(g.start);
                l.created_ns = g.time_ns;
                l.acked.clear();
                known->delivery.clear();
            }
            break;
        case sf::group_event::deleted:
            groups_.erase(g.id);
            break;
        }
        return;
    }
    std::span<const std::byte> in = r.payload;
    std::uint32_t id = 0;
    std::uint32_t epoch = 0;
    if (!sf::read_group_prefix(in, id, epoch)) {
        return;
    }
    group* g = find(id);
    if (g == nullptr || g->ledger.epoch != epoch) {
        return; // a deleted group, or from before a reset
    }
    switch (r.type) {
    case sf::record_type::group_delivered:
        (void)sf::decode_sequence_list(in, [&](std::uint64_t seq, std::uint64_t attempt) {
            g->delivery.recovered_attempt(seq, attempt);
        });
        break;
    case sf::record_type::group_acked:
        (void)sf::decode_sequence_list(
            in, [&](std::uint64_t seq, std::uint64_t bytes) { g->delivery.settle(seq, bytes); });
        break;
    case sf::record_type::group_dead_lettered:
        if (in.size() >= 12) {
            g->delivery.settle(get64(in.data()), get32(in.data() + 8));
        }
        break;
    default:
        break;
    }
}

void consumer_groups::recovered(recovery_report& report) {
    const auto& segments = log_.segments();
    const std::uint64_t head = segments.empty() ? log_.next_seq : segments.front().first;
    for (auto& [id, g] : groups_) {
        group_ledger& l = g->ledger;
        if (l.floor < head) {
            report.findings.push_back("consumer group '" + l.name + "': sequence numbers " +
                                      std::to_string(l.floor) + ".." + std::to_string(head - 1) +
                                      " it had not settled are no longer in the log");
            l.acked.erase(l.acked.begin(), l.acked.lower_bound(head));
            l.floor = head;
        }
        g->delivery.recovered();
        l.waiting = count_waiting(l);
    }
}

} // namespace zmqkit::detail
