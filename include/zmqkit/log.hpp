// zmqkit's one log: levels, a component name per line, timestamps, rate limiting, a pluggable
// sink. Every library component and every binary writes through it; a program that embeds
// zmqkit replaces the sink (all of it, or one component's) to route the lines into its own log.
//
// Default: standard error, one line per record, in one write() so that threads never
// interleave:
//     2026-12-07T04:05:06.123456Z INFO  zmqkit-proxy: frontend bound tcp://127.0.0.1:5555
// or, on request (make_stderr_sink(log_format::json)), one JSON object per line:
//     {"ts":"2026-12-07T04:05:06.123456Z","level":"info","component":"zmqkit-proxy",
//      "msg":"frontend bound tcp://127.0.0.1:5555"}
// with the record's structured fields (message_id, correlation_id, ...) as more members.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace zmqkit {

// The severity of a line. `off` as a threshold lets nothing through.
enum class log_level : std::uint8_t { trace, debug, info, warn, error, off };

// "trace", "debug", "info", "warn", "error", "off".
[[nodiscard]] std::string_view to_string(log_level level) noexcept;
// The level named `text` ("warning" is also accepted for warn); nullopt for anything else.
[[nodiscard]] std::optional<log_level> parse_log_level(std::string_view text) noexcept;

// A structured field of a record: {"message_id", "0193..."}. JSON sinks write it as a member,
// the text sink as " key=value" after the message.
struct log_field {
    std::string_view key;
    std::string_view value;
};

// One line, as a sink receives it. The views are valid for the duration of log_sink::write
// only.
struct log_record {
    std::chrono::system_clock::time_point time;
    log_level level = log_level::info;
    std::string_view component;
    std::string_view message;
    std::span<const log_field> fields;
};

// Where records go. Implement write() to route zmqkit's lines into another log (spdlog, syslog,
// a test's vector). write() is called for records at or above the component's level, from any
// thread and concurrently: it must be thread-safe. It must not throw (an exception is dropped).
class log_sink {
public:
    log_sink() = default;
    log_sink(const log_sink&) = delete;
    log_sink& operator=(const log_sink&) = delete;
    virtual ~log_sink() = default;
    virtual void write(const log_record& record) noexcept = 0;
};

enum class log_format : std::uint8_t { text, json };

// `time` as the log lines write it: RFC 3339 in UTC with microseconds,
// "2026-12-07T04:05:06.123456Z". Also what STATUS documents use for points in time.
[[nodiscard]] std::string format_timestamp(std::chrono::system_clock::time_point time);

// The text line of a record, newline included:
// "2026-12-07T04:05:06.123456Z WARN  zap: ZAP denied ... key=value\n". Control characters of
// the message are escaped (\n, \r, \xNN) so that a record is always one line.
[[nodiscard]] std::string format_log_text(const log_record& record);
// The JSON line of a record, newline included: {"ts":...,"level":"warn","component":...,
// "msg":...,<fields>}. Bytes that are not UTF-8 are replaced (U+FFFD), never an invalid line.
[[nodiscard]] std::string format_log_json(const log_record& record);

// A sink writing each record to file descriptor `fd` as one write() of one line (a pipe keeps
// lines up to PIPE_BUF bytes whole between processes too). Does not own `fd`. Thread-safe.
[[nodiscard]] std::shared_ptr<log_sink> make_fd_sink(int fd, log_format format = log_format::text);
// make_fd_sink(STDERR_FILENO, format): the default sink is make_stderr_sink(log_format::text).
[[nodiscard]] std::shared_ptr<log_sink> make_stderr_sink(log_format format = log_format::text);
// A sink calling `write` for every record (the caller makes `write` thread-safe).
[[nodiscard]] std::shared_ptr<log_sink>
make_callback_sink(std::function<void(const log_record&)> write);

// ---- process-wide configuration (thread-safe; takes effect for every logger at once) --------

// Replaces the sink of every component that has no sink of its own. nullptr: the default
// (standard error, text).
void set_log_sink(std::shared_ptr<log_sink> sink);
// Gives one component its own sink (nullptr: back to the process-wide one).
void set_log_sink(std::string_view component, std::shared_ptr<log_sink> sink);
// The threshold of every component without a level of its own (default: info).
void set_log_level(log_level level);
// The threshold of one component (nullopt: back to the process-wide level).
void set_log_level(std::string_view component, std::optional<log_level> level);
// Back to the defaults: stderr text sink, level info, no per-component settings.
void reset_log_configuration();

// A named source of lines. Cheap to copy (it shares its component's settings); loggers of the
// same name share one level and sink. enabled() is one relaxed atomic load, so a hot path
// asks it (or uses ZMQKIT_LOG / lazy()) before it builds a line. Thread-safe.
class logger {
public:
    // The component's name appears in every line ("zmqkit.zap", "zmqkit-proxy", a proxy's
    // --name). Components are never forgotten: use a bounded set of names.
    explicit logger(std::string_view component = "zmqkit");

    [[nodiscard]] const std::string& component() const noexcept;
    // True if a line at `level` would be written.
    [[nodiscard]] bool enabled(log_level level) const noexcept;

    // Writes `message` (with `fields`) if `level` is enabled. Never throws.
    void write(log_level level, std::string_view message,
               std::initializer_list<log_field> fields = {}) const noexcept;
    void write(log_level level, std::string_view message,
               std::span<const log_field> fields) const noexcept;
    void trace(std::string_view message) const noexcept { write(log_level::trace, message); }
    void debug(std::string_view message) const noexcept { write(log_level::debug, message); }
    void info(std::string_view message) const noexcept { write(log_level::info, message); }
    void warn(std::string_view message) const noexcept { write(log_level::warn, message); }
    void error(std::string_view message) const noexcept { write(log_level::error, message); }

    // Calls `make` (returning something a string_view can view, e.g. a std::string) and writes
    // its result only if `level` is enabled: a disabled line costs one atomic load.
    template <class Make> void lazy(log_level level, Make&& make) const {
        if (enabled(level)) {
            write(level, std::forward<Make>(make)());
        }
    }

    struct channel; // the shared settings of a component (src/log.cpp)

private:
    std::shared_ptr<channel> channel_;
};

// ZMQKIT_LOG(log, zmqkit::log_level::debug, "sent " + id): the message expression is evaluated
// only if the level is enabled.
#define ZMQKIT_LOG(logger_, level_, ...)                                                           \
    do {                                                                                           \
        if ((logger_).enabled(level_)) {                                                           \
            (logger_).write((level_), __VA_ARGS__);                                                \
        }                                                                                          \
    } while (false)

// A callback for the `log` member of the pattern and security options that writes each line
// through logger(component) at `level`. What an unset `log` option means.
[[nodiscard]] std::function<void(std::string_view)> log_callback(std::string_view component,
                                                                 log_level level = log_level::warn);

// Lets the first `burst` lines of a kind (a key: a peer address, a reason) through in each
// `interval`, then none until the interval ends; the next line let through carries the number
// held back in between, so a peer retrying every 100 ms does not flood the log while the count
// stays exact. Keys are bounded (the table is cleared past 4096, e.g. when many addresses
// attack). Thread-safe.
class log_rate_limiter {
public:
    using clock_function = std::function<std::chrono::steady_clock::time_point()>;
    // `clock` (nullptr: steady_clock::now) lets tests drive time. `burst` >= 1.
    explicit log_rate_limiter(
        std::chrono::steady_clock::duration interval = std::chrono::seconds(10),
        clock_function clock = {}, std::uint32_t burst = 1);
    ~log_rate_limiter();
    log_rate_limiter(const log_rate_limiter&) = delete;
    log_rate_limiter& operator=(const log_rate_limiter&) = delete;

    // nullopt: drop this line. Otherwise write it: the value is the number of lines of this
    // key dropped since the last one written.
    [[nodiscard]] std::optional<std::uint64_t> admit(std::string_view key);

    // " (N similar lines suppressed)" for N > 0, "" for 0: what a written line appends.
    [[nodiscard]] static std::string suppressed_suffix(std::uint64_t suppressed);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace zmqkit
