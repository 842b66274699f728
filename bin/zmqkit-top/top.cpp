#include "zmqkit-top/top.hpp"

#include "common/tool_support.hpp"

#include <zmqkit/endpoint.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/security.hpp>

#include <zmq.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

namespace zmqkit::cli {
namespace {

using json = nlohmann::json;
using ordered = nlohmann::ordered_json;
using clock = std::chrono::steady_clock;

std::optional<std::uint64_t> number(const json& j, const char* key) {
    if (!j.is_object()) {
        return std::nullopt;
    }
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) {
        return std::nullopt;
    }
    const auto v = it->get<std::int64_t>();
    return v < 0 ? 0 : static_cast<std::uint64_t>(v);
}

std::optional<std::uint64_t> sum(std::optional<std::uint64_t> a, std::optional<std::uint64_t> b) {
    if (!a) {
        return b;
    }
    return b ? *a + *b : a;
}

std::string mode_of(const json& s) {
    if (s.contains("spool")) {
        return "durable";
    }
    if (s.contains("services")) {
        return "mdp";
    }
    if (s.contains("workers")) {
        return "lb";
    }
    if (s.contains("subscriptions_refused")) {
        return "forwarder";
    }
    return "stream";
}

std::string short_state(const std::string& state) {
    if (state == "running") {
        return "run";
    }
    if (state == "paused") {
        return "pause";
    }
    if (state == "backpressure") {
        return "bp";
    }
    if (state == "read-only") {
        return "ro";
    }
    return state.substr(0, 5);
}

// 999, 12.3k, 123k, 1.2M, 12M, 1.2G
std::string compact(double v) {
    char buf[32];
    const char* units = "kMGTP";
    if (std::isnan(v)) {
        return "?";
    }
    if (v < 999.5) {
        std::snprintf(buf, sizeof buf,
                      v < 9.95 && v != static_cast<double>(static_cast<long>(v)) ? "%.1f" : "%.0f",
                      v);
        return buf;
    }
    if (!std::isfinite(v)) {
        return "?";
    }
    std::size_t u = 0; // v >= 999.5 here: at least k
    v /= 1000.0;
    while (v >= 999.5 && u + 1 < std::strlen(units)) {
        v /= 1000.0;
        ++u;
    }
    std::snprintf(buf, sizeof buf, v < 99.95 ? "%.1f%c" : "%.0f%c", v, units[u]);
    return buf;
}

std::string compact(std::optional<std::uint64_t> v) {
    return v ? compact(static_cast<double>(*v)) : "-";
}

std::string rate(std::optional<double> v) {
    return v ? compact(*v) : "-";
}

// 850ms, 12s, 5m, 3h, 2d
std::string duration_text(std::optional<std::uint64_t> ms) {
    if (!ms) {
        return "-";
    }
    const auto v = *ms;
    if (v < 1000) {
        return std::to_string(v) + "ms";
    }
    if (v < 60'000) {
        return std::to_string(v / 1000) + "s";
    }
    if (v < 3'600'000) {
        return std::to_string(v / 60'000) + "m";
    }
    if (v < 86'400'000) {
        return std::to_string(v / 3'600'000) + "h";
    }
    return std::to_string(v / 86'400'000) + "d";
}

// Pads or cuts `text` to `width` (right-aligned numbers, left-aligned words).
std::string cell(std::string text, std::size_t width, bool right) {
    if (text.size() > width) {
        text.resize(width);
    }
    const std::string pad(width - text.size(), ' ');
    return right ? pad + text : text + pad;
}

std::string fit(std::string line, std::size_t width) {
    while (!line.empty() && line.back() == ' ') {
        line.pop_back();
    }
    if (line.size() > width) {
        line.resize(width);
    }
    return line;
}

struct column {
    const char* head;
    std::size_t width;
    bool right;
};

// 75 columns: an 80x24 terminal shows every one.
constexpr column columns[] = {{"NAME", 10, false}, {"MODE", 9, false}, {"ST", 5, false},
                              {"IN/s", 6, true},   {"OUT/s", 6, true}, {"DEPTH", 6, true},
                              {"LAG", 6, true},    {"AGE", 5, true},   {"WRK", 3, true},
                              {"DROP", 5, true},   {"CONN", 4, true}};

std::string row_line(const top_row& r) {
    const bool down = r.state == "down";
    const std::string cells[] = {
        r.name,
        down ? "-" : r.mode,
        short_state(r.state),
        rate(r.in_rate),
        rate(r.out_rate),
        compact(r.depth),
        compact(r.lag),
        duration_text(r.oldest_age_ms),
        compact(r.workers),
        compact(r.drops),
        compact(r.connections),
    };
    std::string line;
    for (std::size_t i = 0; i < std::size(columns); ++i) {
        line += cell(cells[i], columns[i].width, columns[i].right);
        line += ' ';
    }
    return line;
}

nlohmann::ordered_json opt_o(const std::optional<std::uint64_t>& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}
nlohmann::ordered_json opt_o(const std::optional<double>& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

// ---- the control sockets --------------------------------------------------------------------

// One device asked for STATUS each round. A REQ socket that got no answer in time is closed
// and opened again for the next round (Lazy Pirate): a REQ cannot send twice in a row.
class peer {
public:
    peer(zmq::context_t& context, std::string endpoint, const socket_security& security)
        : context_(context), endpoint_(std::move(endpoint)), security_(security) {}

    [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }

    // Sends STATUS (opening the socket first if needed). False if it could not be sent.
    bool ask() {
        answered_ = false;
        if (!socket_) {
            socket_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::req);
            socket_->set(zmq::sockopt::linger, 0);
            apply_security(*socket_, security_);
            (void)attach(*socket_, endpoint_, endpoint_action::connect);
        }
        try {
            return socket_->send(zmq::str_buffer("STATUS"), zmq::send_flags::dontwait).has_value();
        } catch (const zmq::error_t& e) {
            error_ = e.what();
            socket_.reset();
            return false;
        }
    }
    [[nodiscard]] zmq::socket_t* socket() const noexcept { return socket_.get(); }
    // The reply is readable: takes it.
    void take() {
        zmq::message_t reply;
        if (!socket_->recv(reply, zmq::recv_flags::dontwait)) {
            return;
        }
        answered_ = true;
        while (reply.more()) { // a STATUS reply is one frame; drop anything else
            zmq::message_t extra;
            (void)socket_->recv(extra);
        }
        auto doc = json::parse(reply.to_string_view(), nullptr, false);
        if (doc.is_discarded() || !doc.is_object()) {
            error_ = "the STATUS reply is not a JSON object (is this a zmqkit proxy's control "
                     "socket?)";
            document_.reset();
            return;
        }
        before_ = std::move(document_);
        before_at_ = at_;
        document_ = std::move(doc);
        at_ = clock::now();
        error_.clear();
    }
    // After the round's deadline: no reply means down.
    void settle(std::chrono::milliseconds timeout) {
        if (answered_) {
            return;
        }
        socket_.reset();
        document_.reset();
        before_.reset();
        if (error_.empty() || error_.rfind("no answer", 0) == 0) {
            error_ = "no answer within " + std::to_string(timeout.count()) + " ms";
        }
    }
    [[nodiscard]] top_row row() const {
        if (!document_) {
            top_row r;
            r.endpoint = endpoint_;
            r.name = endpoint_;
            r.state = "down";
            r.error = error_;
            return r;
        }
        const double seconds = std::chrono::duration<double>(at_ - before_at_).count();
        return row_from_status(endpoint_, *document_, before_ ? &*before_ : nullptr, seconds);
    }

private:
    zmq::context_t& context_;
    std::string endpoint_;
    socket_security security_;
    std::unique_ptr<zmq::socket_t> socket_;
    bool answered_ = false;
    std::string error_;
    std::optional<json> document_, before_;
    clock::time_point at_{}, before_at_{};
};

// One round: STATUS to every device at once, replies until `timeout`.
void poll_round(std::vector<peer>& peers, std::chrono::milliseconds timeout) {
    std::vector<peer*> waiting;
    for (auto& p : peers) {
        if (p.ask()) {
            waiting.push_back(&p);
        }
    }
    const auto deadline = clock::now() + timeout;
    while (!waiting.empty()) {
        const auto left =
            std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) {
            break;
        }
        std::vector<zmq::pollitem_t> items;
        items.reserve(waiting.size());
        for (auto* p : waiting) {
            items.push_back({p->socket()->handle(), 0, ZMQ_POLLIN, 0});
        }
        if (zmq::poll(items, std::chrono::milliseconds(left)) <= 0) {
            continue;
        }
        std::vector<peer*> still;
        for (std::size_t i = 0; i < items.size(); ++i) {
            if ((items[i].revents & ZMQ_POLLIN) != 0) {
                waiting[i]->take();
            } else {
                still.push_back(waiting[i]);
            }
        }
        waiting = std::move(still);
    }
    for (auto& p : peers) {
        p.settle(timeout);
    }
}

// ---- the terminal ---------------------------------------------------------------------------

// Raw keys from stdin (when it is a terminal) and the alternate screen, restored on every way
// out.
class terminal_session {
public:
    terminal_session() {
        if (::isatty(STDIN_FILENO) == 1 && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
            termios raw = saved_;
            raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
            raw.c_cc[VMIN] = 0;
            raw.c_cc[VTIME] = 0;
            keys_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
        }
        std::fputs("\x1b[?1049h\x1b[?25l", stdout); // alternate screen, no cursor
        std::fflush(stdout);
    }
    ~terminal_session() {
        std::fputs("\x1b[?25h\x1b[?1049l", stdout);
        std::fflush(stdout);
        if (keys_) {
            (void)::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
        }
    }
    terminal_session(const terminal_session&) = delete;
    terminal_session& operator=(const terminal_session&) = delete;

    // A key pressed within `timeout` (0: none).
    [[nodiscard]] char key(std::chrono::milliseconds timeout) const {
        if (!keys_) {
            (void)::poll(nullptr, 0, static_cast<int>(timeout.count())); // a plain wait
            return 0;
        }
        pollfd p{STDIN_FILENO, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
            return 0;
        }
        char c = 0;
        return ::read(STDIN_FILENO, &c, 1) == 1 ? c : 0;
    }

    static std::pair<std::size_t, std::size_t> size() {
        winsize ws{};
        if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
            return {ws.ws_col, ws.ws_row};
        }
        return {80, 24};
    }

private:
    termios saved_{};
    bool keys_ = false;
};

std::string clock_text() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
    return buf;
}

top_sort next_sort(top_sort s) {
    return static_cast<top_sort>((static_cast<int>(s) + 1) %
                                 (static_cast<int>(top_sort::connections) + 1));
}

} // namespace

top_row row_from_status(const std::string& endpoint, const json& now, const json* before,
                        double seconds) {
    top_row r;
    r.endpoint = endpoint;
    const auto text = [&](const char* key, const std::string& otherwise) {
        const auto it = now.find(key);
        return it != now.end() && it->is_string() ? it->get<std::string>() : otherwise;
    };
    r.name = text("name", endpoint);
    r.mode = mode_of(now);
    r.state = text("state", "?");
    const json empty = json::object();
    const auto stats = [&](const json& doc, const char* side) -> const json& {
        const auto s = doc.find("statistics");
        if (s == doc.end() || !s->is_object()) {
            return empty;
        }
        const auto it = s->find(side);
        return it != s->end() ? *it : empty;
    };
    if (before != nullptr && seconds > 0) {
        const auto delta = [&](const char* side, const char* key) -> std::optional<double> {
            const auto a = number(stats(now, side), key);
            const auto b = number(stats(*before, side), key);
            if (!a || !b) {
                return std::nullopt;
            }
            return *a >= *b ? static_cast<double>(*a - *b) / seconds : 0.0; // a restart
        };
        r.in_rate = delta("frontend", "messages_in");
        r.out_rate = delta("backend", "messages_out");
    }
    if (r.mode == "durable") {
        const auto& spool = *now.find("spool"); // mode_of: it is there
        r.depth = number(spool, "messages");
        r.in_flight = number(spool, "in_flight");
        r.lag = number(spool, "consumer_lag");
        r.oldest_age_ms = number(spool, "oldest_age_ms");
        r.drops = sum(number(now, "rejects"), number(spool, "dropped_full"));
    } else if (r.mode == "lb" || r.mode == "mdp") {
        r.depth = number(now, "queued");
        r.in_flight = number(now, "in_flight");
        if (const auto w = now.find("workers"); w != now.end() && w->is_array()) {
            r.workers = w->size();
        }
        r.drops = r.mode == "lb" ? number(now, "errors")
                                 : sum(number(now, "dropped"), number(now, "expired"));
    } else if (r.mode == "forwarder") {
        r.drops = sum(number(now, "slow_subscriber_drops"), number(now, "subscriptions_refused"));
    }
    if (const auto c = now.find("connections"); c != now.end() && c->is_object()) {
        std::uint64_t open = 0;
        for (const auto& [side, v] : c->items()) {
            if (side != "control") { // not the control connections (this view's own among them)
                open += number(v, "open").value_or(0);
            }
        }
        r.connections = open;
    }
    if (const auto up = number(now, "uptime_seconds")) {
        r.uptime_seconds = static_cast<std::int64_t>(*up);
    }
    return r;
}

void sort_rows(std::vector<top_row>& rows, top_sort sort) {
    const auto key = [sort](const top_row& r) -> double {
        switch (sort) {
        case top_sort::in:
            return r.in_rate.value_or(-1);
        case top_sort::out:
            return r.out_rate.value_or(-1);
        case top_sort::depth:
            return r.depth ? static_cast<double>(*r.depth) : -1;
        case top_sort::lag:
            return r.lag ? static_cast<double>(*r.lag) : -1;
        case top_sort::age:
            return r.oldest_age_ms ? static_cast<double>(*r.oldest_age_ms) : -1;
        case top_sort::drops:
            return r.drops ? static_cast<double>(*r.drops) : -1;
        case top_sort::connections:
            return r.connections ? static_cast<double>(*r.connections) : -1;
        case top_sort::name:
            break;
        }
        return 0;
    };
    std::stable_sort(rows.begin(), rows.end(), [&](const top_row& a, const top_row& b) {
        const bool a_down = a.state == "down";
        const bool b_down = b.state == "down";
        if (a_down != b_down) {
            return b_down;
        }
        if (sort == top_sort::name) {
            return a.name < b.name;
        }
        return key(a) > key(b);
    });
}

std::string render_table(const std::vector<top_row>& rows, const std::string& title,
                         std::size_t width, std::size_t height) {
    std::string out = fit(title, width) + "\n";
    std::string heads;
    for (const auto& c : columns) {
        heads += cell(c.head, c.width, c.right) + ' ';
    }
    out += fit(heads, width) + "\n";
    std::vector<std::string> lines;
    lines.reserve(rows.size() * 2);
    for (const auto& r : rows) {
        lines.push_back(fit(row_line(r), width));
    }
    for (const auto& r : rows) {
        if (!r.error.empty()) {
            // The reason stays whole; a long endpoint loses its start.
            const std::string why = ": " + r.error;
            std::string where = r.endpoint;
            if (where.size() + why.size() > width && width > why.size() + 8) {
                where = "..." + where.substr(where.size() - (width - why.size() - 3));
            }
            lines.push_back(fit(where + why, width));
        }
    }
    const std::size_t room = height > 3 ? height - 3 : 1; // title, heads, last line
    if (lines.size() > room) {
        const auto hidden = lines.size() - (room - 1);
        lines.resize(room - 1);
        lines.push_back("... " + std::to_string(hidden) +
                        " more line(s): a taller terminal, or "
                        "--json");
    }
    for (const auto& l : lines) {
        out += l + "\n";
    }
    return out;
}

std::string render_json(const std::vector<top_row>& rows) {
    ordered doc;
    doc["time"] = format_timestamp(std::chrono::system_clock::now());
    auto& devices = doc["devices"] = ordered::array();
    for (const auto& r : rows) {
        ordered d;
        d["endpoint"] = r.endpoint;
        d["name"] = r.name;
        d["mode"] = r.state == "down" ? ordered(nullptr) : ordered(r.mode);
        d["state"] = r.state;
        if (!r.error.empty()) {
            d["error"] = r.error;
        }
        d["in_per_second"] = opt_o(r.in_rate);
        d["out_per_second"] = opt_o(r.out_rate);
        d["depth"] = opt_o(r.depth);
        d["in_flight"] = opt_o(r.in_flight);
        d["lag"] = opt_o(r.lag);
        d["oldest_age_ms"] = opt_o(r.oldest_age_ms);
        d["workers"] = opt_o(r.workers);
        d["drops"] = opt_o(r.drops);
        d["connections"] = opt_o(r.connections);
        d["uptime_seconds"] = r.uptime_seconds ? ordered(*r.uptime_seconds) : ordered(nullptr);
        devices.push_back(std::move(d));
    }
    return doc.dump(-1, ' ', false, ordered::error_handler_t::replace);
}

int run_top(const top_config& cfg, const logger& log, shutdown_signals& signals) {
    for (const auto& c : cfg.controls) {
        try {
            (void)parse_endpoints(c, endpoint_action::connect);
        } catch (const std::exception& e) {
            log.error(std::string("control endpoint: ") + e.what());
            return exit_usage;
        }
    }
    zmq::context_t context;
    std::vector<peer> peers;
    peers.reserve(cfg.controls.size());
    for (const auto& c : cfg.controls) {
        peers.emplace_back(context, c, cfg.security.socket);
    }
    const bool interactive = !cfg.once && !cfg.json && ::isatty(STDOUT_FILENO) == 1;
    std::optional<terminal_session> term;
    if (interactive) {
        term.emplace();
    }
    top_sort sort = cfg.sort;
    std::vector<top_row> rows;
    const auto collect = [&] {
        poll_round(peers, cfg.timeout);
        rows.clear();
        for (const auto& p : peers) {
            rows.push_back(p.row());
        }
    };
    const auto title = [&] {
        return "zmqkit-top  " + std::to_string(rows.size()) + " device(s)  every " +
               std::to_string(cfg.interval.count()) + "ms  sort: " + std::string(to_string(sort)) +
               (interactive ? "  [s]ort [q]uit  " : "  ") + clock_text();
    };
    const auto show = [&] {
        sort_rows(rows, sort);
        if (cfg.json) {
            std::cout << render_json(rows) << '\n' << std::flush;
        } else if (interactive) {
            const auto [w, h] = terminal_session::size();
            std::cout << "\x1b[H\x1b[2J" << render_table(rows, title(), w, h) << std::flush;
        } else {
            std::cout << render_table(rows, title(), 200, SIZE_MAX) << '\n' << std::flush;
        }
    };
    const auto any_down = [&] {
        return std::any_of(rows.begin(), rows.end(),
                           [](const top_row& r) { return r.state == "down"; });
    };

    // The first round gives no rates: --once and the pipe show the second.
    collect();
    if (interactive) {
        show();
    }
    std::uint64_t shown = interactive ? 1 : 0;
    for (;;) {
        if (cfg.iterations && shown >= *cfg.iterations) {
            return any_down() ? exit_unavailable : exit_ok;
        }
        const auto next = clock::now() + cfg.interval;
        bool quit = false;
        while (!quit && clock::now() < next) {
            if (stop_signal_pending(signals, log)) {
                return exit_ok;
            }
            const auto left =
                std::min(std::chrono::milliseconds(100),
                         std::chrono::ceil<std::chrono::milliseconds>(next - clock::now()));
            if (!term) {
                if (const auto sig = signals.wait(std::max(left, std::chrono::milliseconds(0)))) {
                    (void)sig;
                    return exit_ok;
                }
                continue;
            }
            const char k = term->key(std::max(left, std::chrono::milliseconds(0)));
            if (k == 'q' || k == 'Q') {
                quit = true;
            } else if (k == 's' || k == 'S') {
                sort = next_sort(sort);
                show();
            }
        }
        if (quit) {
            return exit_ok;
        }
        collect();
        show();
        ++shown;
        if (cfg.once) {
            return any_down() ? exit_unavailable : exit_ok;
        }
    }
}

} // namespace zmqkit::cli
