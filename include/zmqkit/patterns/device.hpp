// zmqkit::patterns — the device layer: what every forwarding device (streamer, forwarder, load
// balancer, Majordomo broker, durable proxy) shares, so that each one only writes its own part.
//
//   actor  ->  device  ->  streamer | forwarder | load_balancer | mdp_broker | durable_proxy
//
// The base owns the named sides and their endpoints, the control socket and its protocol
// (PAUSE, RESUME, TERMINATE, STATISTICS, STATUS, plus a device's own commands), the STATUS
// document (one JSON object to which each device adds its members), drain with a deadline and
// its report, rate-limited reports of malformed input, the device's log lines, its clock, and
// reload (SIGHUP). docs/architecture.md, "Device layer", says how a device is built.
#pragma once

#include <zmqkit/actor.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/security.hpp>
#include <zmqkit/socket.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::patterns {

namespace detail {
class side_monitors;  // the handshake monitors of a device's secured sides
struct status_object; // a STATUS document being built (patterns/common/device_support.hpp)
} // namespace detail

// The time a device's timers read (heartbeats, expiry, ack deadlines, log rate limits).
// nullptr: std::chrono::steady_clock::now. Tests inject one to drive time by hand. Drains do not
// use it: their deadline is the caller's, in real time.
using device_clock = std::function<std::chrono::steady_clock::time_point()>;

// A device's log line, one event each, as the device's log callback receives it.
using device_log = std::function<void(std::string_view line)>;

// The part of every device's configuration the base acts on (each device fills it from its
// own options).
struct device_settings {
    // Optional REP control socket (PAUSE, RESUME, TERMINATE, STATISTICS, STATUS, and the
    // device's own commands); entries without a prefix bind. Empty: none.
    std::string control;
    socket_security control_security; // who may PAUSE/TERMINATE the device
    // TERMINATE drains this long before the device ends.
    std::chrono::milliseconds drain_timeout = std::chrono::seconds(2);
    device_log log;     // nullptr: the process-wide log (zmqkit/log.hpp), component = the name
    device_clock clock; // nullptr: steady_clock::now
    metrics_registry* registry = nullptr; // nullptr: metrics_registry::global()
    // True for a device that keeps messages across restarts (durable): drain_result() then
    // always carries remaining_in_spool.
    bool reports_remaining = false;
};

// Base of the forwarding devices. Public methods are thread-safe.
class ZMQKIT_API device : public actor {
public:
    ~device() override;

    // Stop / restart reading (PAUSE / RESUME). True when the device acknowledged.
    bool pause();
    bool resume();
    [[nodiscard]] bool paused() const noexcept { return paused_.load(); }
    // True once a TERMINATE control command has been received (the actor then finishes).
    [[nodiscard]] bool terminated() const noexcept { return terminated_.load(); }
    // The eight counters of zmq_proxy_steerable's STATISTICS reply. Any thread.
    [[nodiscard]] virtual proxy_statistics statistics() const noexcept;
    // What the last drain left undone (valid once stop() returned or the device finished).
    [[nodiscard]] drain_report drain_result() const noexcept;
    // The STATUS reply, taken on the device's thread: {"state":..,"statistics":{..},<the
    // device's members>} plus "security":{..} when a side is secured. "{}" when the device
    // does not answer (not running).
    [[nodiscard]] std::string status_json();
    // Reload (SIGHUP): runs the device's reload hook on its thread. The line says what was
    // reloaded; empty when the device has nothing to reload; nullopt when it does not answer.
    [[nodiscard]] std::optional<std::string> reload();

    // The sides opened so far, in their order ("frontend", "backend", "capture", "control",
    // ...), and the endpoints each one bound or connected (":*" resolved). Any thread.
    [[nodiscard]] std::vector<std::string> sides() const;
    [[nodiscard]] std::vector<std::string> endpoints(std::string_view side) const;
    // The sides every device has (empty when a device runs without one).
    [[nodiscard]] std::vector<std::string> frontend_endpoints() const {
        return endpoints("frontend");
    }
    [[nodiscard]] std::vector<std::string> backend_endpoints() const {
        return endpoints("backend");
    }
    [[nodiscard]] std::vector<std::string> control_endpoints() const {
        return endpoints("control");
    }

    enum class log_level { debug, info, warning, error };

protected:
    using time_point = std::chrono::steady_clock::time_point;

    // name: thread name, metric label and the name in log lines. Throws config_error for an
    // invalid control endpoint.
    device(zmq::context_t& context, std::string name, device_settings settings);

    // ---- for the device, on its thread ----

    // Creates the socket of side `side`, applies `sockets` (HWMs, linger; nullptr: leave the
    // defaults), the side's security (with a handshake monitor reported in STATUS), then
    // `configure` (the device's own options), then binds/connects `spec` and records the
    // endpoints. The socket lives until the device's thread ends.
    zmq::socket_t& open_side(const std::string& side, zmq::socket_type type,
                             const std::string& spec, const socket_options* sockets,
                             const socket_security& security,
                             const std::function<void(zmq::socket_t&)>& configure = {});
    // The one way a device writes a log line (settings.log, or the default). `fields` go to
    // the default log as structured fields, to settings.log as " key=value" after the text.
    void log(log_level level, std::string_view text,
             std::span<const zmqkit::log_field> fields = {}) const;
    // True if a line at `level` would be written (settings.log: info and above). Ask before
    // building an expensive line.
    [[nodiscard]] bool log_enabled(log_level level) const noexcept;
    // A per-message event (dead-lettered, redelivered, rejected, expired, refused): `text`
    // with the message's ids (message_log_fields) as `fields`. At most 20 lines a second of
    // each `kind`; the next line of that kind let through says how many were held back.
    void log_event(log_level level, std::string_view kind, std::string_view text,
                   std::span<const zmqkit::log_field> fields = {});
    // log_event in two steps, for a line that costs something to build (a spool read, a
    // header decode): admit_event says whether a line of `kind` may be written now (nullopt:
    // not enabled, or over the rate; else how many were held back), write_event writes it.
    [[nodiscard]] std::optional<std::uint64_t> admit_event(log_level level, std::string_view kind);
    void write_event(log_level level, std::string_view text, std::uint64_t held,
                     std::span<const zmqkit::log_field> fields = {}) const;
    // Counts a malformed message (the counter given to count_malformed_in) and logs
    // "dropped a malformed message on the <where>: <why>", at most one line a second; the
    // next line says how many were not logged.
    void report_malformed(std::string_view where, std::string_view why);
    void count_malformed_in(counter& malformed) noexcept { malformed_ = &malformed; }
    // The device's clock (settings.clock).
    [[nodiscard]] time_point now() const {
        return clock_ ? clock_() : std::chrono::steady_clock::now();
    }
    [[nodiscard]] metrics_registry& registry() const noexcept { return *registry_; }
    // Runs fn on the device's thread and returns its value (nullopt if the device does not
    // answer within `timeout`). Any thread but the device's own.
    template <class T>
    [[nodiscard]] std::optional<T>
    on_device_thread(std::function<T()> fn,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        auto result = std::make_shared<std::optional<T>>();
        if (!call([fn = std::move(fn), result] { *result = fn(); }, timeout)) {
            return std::nullopt;
        }
        return std::move(*result);
    }

    // Metrics every device shares (zmqkit_device_*); a device that registers them here gets
    // statistics() from them.
    device_counters counters_{};

private:
    // ---- hooks: what a device writes ----

    // setup(): open the sides (open_side) and watch them. The base opens the control side after.
    virtual void open_sides() = 0;
    // PAUSE / RESUME: stop or restart reading (paused() is already updated).
    virtual void on_pause(bool paused) = 0;
    // stop() or TERMINATE: forward or settle what can be before `deadline`; say what was left.
    virtual drain_report on_drain(time_point deadline) = 0;
    // STATUS: "state" ("running" / "paused" unless the device knows better), members that
    // come before "statistics" (rare), then the device's members.
    [[nodiscard]] virtual std::string status_state() { return paused() ? "paused" : "running"; }
    virtual void add_status_head(detail::status_object& /*status*/) {}
    virtual void add_status(detail::status_object& /*status*/) {}
    // A control command the base does not know: its first word in upper case, the rest (the
    // arguments, whose case may matter: names) as sent. nullopt: not this device's either.
    virtual std::optional<std::vector<std::string>> on_extra_command(const std::string& /*cmd*/) {
        return std::nullopt;
    }
    // Names of those commands, for the "unknown command" reply.
    [[nodiscard]] virtual std::vector<std::string> extra_commands() const { return {}; }
    // SIGHUP: reread what can be reread; a line saying what was, empty for nothing.
    virtual std::string on_reload() { return {}; }
    // After every side closed (the durable proxy closes its spool here). Must not throw.
    virtual void after_close() noexcept {}

    // ---- actor hooks: the base's ----
    void setup() final;
    std::vector<std::string> on_command(const std::vector<std::string>& frames) final;
    void on_stop(time_point deadline) final;
    void teardown() noexcept final;

    std::vector<std::string> execute(const std::string& command);
    void handle_control();
    void drain(time_point deadline);
    std::string build_status();
    bool call(std::function<void()> fn, std::chrono::milliseconds timeout);

    struct side_socket {
        std::string name;
        zmq::socket_t socket;
    };

    device_settings settings_;
    zmqkit::logger logger_; // where log() writes when settings_.log is unset
    device_clock clock_;
    metrics_registry* registry_;
    std::unique_ptr<detail::side_monitors> monitors_; // cleared before the sockets close
    std::vector<std::unique_ptr<side_socket>> sides_; // device thread only
    zmq::socket_t* control_ = nullptr;
    std::atomic<bool> paused_{false};
    std::atomic<bool> terminated_{false};
    std::atomic<std::uint64_t> drain_dropped_{0};
    std::atomic<std::uint64_t> drain_remaining_{0};
    zmqkit::log_rate_limiter event_limiter_; // log_event(): per kind, on the device's clock
    std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
    counter* malformed_ = nullptr;
    time_point malformed_log_after_{};
    std::uint64_t malformed_unlogged_ = 0;

    mutable std::mutex endpoints_mutex_;
    std::vector<std::pair<std::string, std::vector<std::string>>> endpoints_;

    std::mutex calls_mutex_;
    std::map<std::uint64_t, std::function<void()>> calls_;
    std::uint64_t next_call_ = 0;
};

} // namespace zmqkit::patterns
