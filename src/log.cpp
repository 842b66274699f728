#include <zmqkit/log.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <map>
#include <mutex>
#include <unordered_map>

#include <unistd.h>

namespace zmqkit {

// ---- levels -----------------------------------------------------------------------------------

namespace {

// By log_level's value: the name (to_string, JSON) and the text line's five columns.
constexpr std::array<std::string_view, 6> level_names{"trace", "debug", "info",
                                                      "warn",  "error", "off"};
constexpr std::array<std::string_view, 6> level_columns{"TRACE", "DEBUG", "INFO ",
                                                        "WARN ", "ERROR", "OFF  "};

std::size_t level_index(log_level level) noexcept {
    return std::min<std::size_t>(static_cast<std::size_t>(level), level_names.size() - 1);
}

} // namespace

std::string_view to_string(log_level level) noexcept {
    return level_names[level_index(level)];
}

std::optional<log_level> parse_log_level(std::string_view text) noexcept {
    for (const auto level : {log_level::trace, log_level::debug, log_level::info, log_level::warn,
                             log_level::error, log_level::off}) {
        if (text == to_string(level)) {
            return level;
        }
    }
    if (text == "warning") {
        return log_level::warn;
    }
    return std::nullopt;
}

// ---- formats ----------------------------------------------------------------------------------

namespace {

// "2026-12-07T04:05:06.123456Z"
void append_timestamp(std::string& out, std::chrono::system_clock::time_point time) {
    using namespace std::chrono;
    const auto us = duration_cast<microseconds>(time.time_since_epoch()).count();
    auto seconds = static_cast<std::time_t>(us / 1'000'000);
    auto micros = us % 1'000'000;
    if (micros < 0) { // before 1970: floor, not truncation
        micros += 1'000'000;
        --seconds;
    }
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    char buf[64];
    const auto n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                 tm.tm_min, tm.tm_sec, static_cast<int>(micros));
    out.append(buf, static_cast<std::size_t>(n > 0 ? n : 0));
}

} // namespace

std::string format_timestamp(std::chrono::system_clock::time_point time) {
    std::string out;
    append_timestamp(out, time);
    return out;
}

namespace {

// The message on one line: \n, \r and other control bytes as escapes, the rest as it is.
void append_one_line(std::string& out, std::string_view text) {
    static constexpr char digits[] = "0123456789abcdef";
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 && c != '\t') {
            out += "\\x";
            out += digits[c >> 4U];
            out += digits[c & 15U];
        } else {
            out += ch;
        }
    }
}

} // namespace

std::string format_log_text(const log_record& record) {
    std::string line;
    line.reserve(48 + record.component.size() + record.message.size());
    append_timestamp(line, record.time);
    line += ' ';
    line += level_columns[level_index(record.level)];
    line += ' ';
    line += record.component;
    line += ": ";
    append_one_line(line, record.message);
    for (const auto& f : record.fields) {
        line += ' ';
        line += f.key;
        line += '=';
        append_one_line(line, f.value);
    }
    line += '\n';
    return line;
}

std::string format_log_json(const log_record& record) {
    nlohmann::ordered_json j;
    j["ts"] = format_timestamp(record.time);
    j["level"] = to_string(record.level);
    j["component"] = record.component;
    j["msg"] = record.message;
    for (const auto& f : record.fields) {
        j[std::string(f.key)] = f.value;
    }
    auto line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    return line;
}

// ---- sinks ------------------------------------------------------------------------------------

namespace {

class fd_sink final : public log_sink {
public:
    fd_sink(int fd, log_format format) : fd_(fd), format_(format) {}

    void write(const log_record& record) noexcept override {
        try {
            const std::string line =
                format_ == log_format::json ? format_log_json(record) : format_log_text(record);
            // One write() per line; a short write (a full pipe, a signal) writes the rest.
            std::size_t done = 0;
            while (done < line.size()) {
                const auto n = ::write(fd_, line.data() + done, line.size() - done);
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0) {
                    return; // nowhere to report that the log cannot be written
                }
                done += static_cast<std::size_t>(n);
            }
        } catch (...) { // std::bad_alloc: drop the line
        }
    }

private:
    int fd_;
    log_format format_;
};

class callback_sink final : public log_sink {
public:
    explicit callback_sink(std::function<void(const log_record&)> write)
        : write_(std::move(write)) {}
    void write(const log_record& record) noexcept override {
        try {
            if (write_) {
                write_(record);
            }
        } catch (...) { // a sink must not throw into the component that logged
        }
    }

private:
    std::function<void(const log_record&)> write_;
};

} // namespace

std::shared_ptr<log_sink> make_fd_sink(int fd, log_format format) {
    return std::make_shared<fd_sink>(fd, format);
}

std::shared_ptr<log_sink> make_stderr_sink(log_format format) {
    return make_fd_sink(STDERR_FILENO, format);
}

std::shared_ptr<log_sink> make_callback_sink(std::function<void(const log_record&)> write) {
    return std::make_shared<callback_sink>(std::move(write));
}

// ---- configuration ----------------------------------------------------------------------------

// The shared settings of one component. The level is read on every enabled() (relaxed atomic);
// the sink only for lines that are written (under the registry's mutex, then written outside).
struct logger::channel {
    std::string name;
    std::atomic<log_level> level{log_level::info};
    std::optional<log_level> own_level; // set_log_level(component, ...)
    std::shared_ptr<log_sink> own_sink; // set_log_sink(component, ...)
};

namespace {

class log_registry {
public:
    static log_registry& instance() {
        static log_registry* registry = new log_registry(); // never destroyed: threads may log
        return *registry;                                   // during static destruction
    }

    std::shared_ptr<logger::channel> channel(std::string_view name) {
        std::lock_guard lock(mutex_);
        return find_or_add(name);
    }

    std::shared_ptr<log_sink> sink_of(const logger::channel& c) {
        std::lock_guard lock(mutex_);
        return c.own_sink ? c.own_sink : sink_;
    }

    void set_sink(std::shared_ptr<log_sink> sink) {
        std::lock_guard lock(mutex_);
        sink_ = sink ? std::move(sink) : make_stderr_sink();
    }

    void set_sink(std::string_view name, std::shared_ptr<log_sink> sink) {
        std::lock_guard lock(mutex_);
        find_or_add(name)->own_sink = std::move(sink);
    }

    void set_level(log_level level) {
        std::lock_guard lock(mutex_);
        level_ = level;
        for (auto& [name, c] : channels_) {
            c->level.store(c->own_level.value_or(level), std::memory_order_relaxed);
        }
    }

    void set_level(std::string_view name, std::optional<log_level> level) {
        std::lock_guard lock(mutex_);
        auto c = find_or_add(name);
        c->own_level = level;
        c->level.store(level.value_or(level_), std::memory_order_relaxed);
    }

    void reset() {
        std::lock_guard lock(mutex_);
        sink_ = make_stderr_sink();
        level_ = log_level::info;
        for (auto& [name, c] : channels_) {
            c->own_level.reset();
            c->own_sink.reset();
            c->level.store(level_, std::memory_order_relaxed);
        }
    }

private:
    log_registry() : sink_(make_stderr_sink()) {}

    std::shared_ptr<logger::channel> find_or_add(std::string_view name) {
        auto it = channels_.find(name);
        if (it == channels_.end()) {
            auto c = std::make_shared<logger::channel>();
            c->name = std::string(name);
            c->level.store(level_, std::memory_order_relaxed);
            it = channels_.emplace(c->name, std::move(c)).first;
        }
        return it->second;
    }

    std::mutex mutex_;
    std::shared_ptr<log_sink> sink_;
    log_level level_ = log_level::info;
    std::map<std::string, std::shared_ptr<logger::channel>, std::less<>> channels_;
};

} // namespace

void set_log_sink(std::shared_ptr<log_sink> sink) {
    log_registry::instance().set_sink(std::move(sink));
}
void set_log_sink(std::string_view component, std::shared_ptr<log_sink> sink) {
    log_registry::instance().set_sink(component, std::move(sink));
}
void set_log_level(log_level level) {
    log_registry::instance().set_level(level);
}
void set_log_level(std::string_view component, std::optional<log_level> level) {
    log_registry::instance().set_level(component, level);
}
void reset_log_configuration() {
    log_registry::instance().reset();
}

// ---- logger -----------------------------------------------------------------------------------

logger::logger(std::string_view component)
    : channel_(log_registry::instance().channel(component)) {}

const std::string& logger::component() const noexcept {
    return channel_->name;
}

bool logger::enabled(log_level level) const noexcept {
    return level != log_level::off && level >= channel_->level.load(std::memory_order_relaxed);
}

void logger::write(log_level level, std::string_view message,
                   std::initializer_list<log_field> fields) const noexcept {
    write(level, message, std::span<const log_field>(fields.begin(), fields.size()));
}

void logger::write(log_level level, std::string_view message,
                   std::span<const log_field> fields) const noexcept {
    if (!enabled(level)) {
        return;
    }
    try {
        const auto sink = log_registry::instance().sink_of(*channel_);
        const log_record record{std::chrono::system_clock::now(), level, channel_->name, message,
                                fields};
        sink->write(record);
    } catch (...) { // std::system_error from the mutex: the line is lost, the caller goes on
    }
}

std::function<void(std::string_view)> log_callback(std::string_view component, log_level level) {
    return [to = logger(component), level](std::string_view line) { to.write(level, line); };
}

// ---- rate limiting ----------------------------------------------------------------------------

struct log_rate_limiter::impl {
    struct entry {
        std::chrono::steady_clock::time_point window{}; // start of the current interval
        std::uint32_t written = 0;                      // lines let through in it
        std::uint64_t suppressed = 0;                   // held back since the last written
    };
    std::chrono::steady_clock::duration interval;
    std::uint32_t burst = 1;
    clock_function clock;
    std::mutex mutex;
    std::unordered_map<std::string, entry> entries;
};

log_rate_limiter::log_rate_limiter(std::chrono::steady_clock::duration interval,
                                   clock_function clock, std::uint32_t burst)
    : impl_(std::make_unique<impl>()) {
    impl_->interval = interval;
    impl_->burst = std::max<std::uint32_t>(1, burst);
    impl_->clock = std::move(clock);
}

log_rate_limiter::~log_rate_limiter() = default;

std::optional<std::uint64_t> log_rate_limiter::admit(std::string_view key) {
    const auto now = impl_->clock ? impl_->clock() : std::chrono::steady_clock::now();
    std::lock_guard lock(impl_->mutex);
    if (impl_->entries.size() > 4096) {
        impl_->entries.clear(); // a bound on memory when keys churn (many attacking addresses)
    }
    auto [it, fresh] = impl_->entries.try_emplace(std::string(key));
    auto& e = it->second;
    if (fresh || now - e.window >= impl_->interval) {
        e.window = now;
        e.written = 0;
    }
    if (e.written >= impl_->burst) {
        ++e.suppressed;
        return std::nullopt;
    }
    ++e.written;
    const auto suppressed = e.suppressed;
    e.suppressed = 0;
    return suppressed;
}

std::string log_rate_limiter::suppressed_suffix(std::uint64_t suppressed) {
    if (suppressed == 0) {
        return {};
    }
    return " (" + std::to_string(suppressed) + " similar lines suppressed)";
}

} // namespace zmqkit
