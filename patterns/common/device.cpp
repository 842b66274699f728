#include <zmqkit/endpoint.hpp>
#include <zmqkit/patterns/device.hpp>
#include <zmqkit/version.hpp>

#include "device_support.hpp"

#include <algorithm>
#include <cstdio>

namespace zmqkit::patterns {
namespace {

// Runs a queued call (on_device_thread) instead of a control command.
constexpr std::string_view call_command = "$CALL";

} // namespace

device::device(zmq::context_t& context, std::string name, device_settings settings)
    : actor(context, std::move(name)), settings_(std::move(settings)), logger_(this->name()),
      clock_(settings_.clock),
      registry_(settings_.registry != nullptr ? settings_.registry : &metrics_registry::global()),
      monitors_(std::make_unique<detail::side_monitors>()),
      event_limiter_(
          std::chrono::seconds(1), [this] { return now(); }, 20) {
    if (!settings_.control.empty()) {
        (void)parse_endpoints(settings_.control, endpoint_action::bind);
    }
}

device::~device() {
    stop(settings_.drain_timeout);
}

// ---- public, any thread ----

bool device::pause() {
    auto reply = command({control::pause});
    return reply && !reply->empty() && reply->front() == "OK";
}

bool device::resume() {
    auto reply = command({control::resume});
    return reply && !reply->empty() && reply->front() == "OK";
}

proxy_statistics device::statistics() const noexcept {
    return counters_.frontend_in != nullptr ? counters_.snapshot() : proxy_statistics{};
}

drain_report device::drain_result() const noexcept {
    drain_report r{drain_dropped_.load(), std::nullopt};
    if (settings_.reports_remaining) {
        r.remaining_in_spool = drain_remaining_.load();
    }
    return r;
}

std::string device::status_json() {
    auto status = on_device_thread<std::string>([this] { return build_status(); });
    return status ? *status : std::string("{}");
}

std::optional<std::string> device::reload() {
    return on_device_thread<std::string>([this] { return on_reload(); });
}

std::vector<std::string> device::sides() const {
    std::lock_guard lock(endpoints_mutex_);
    std::vector<std::string> names;
    for (const auto& [name, eps] : endpoints_) {
        names.push_back(name);
    }
    return names;
}

std::vector<std::string> device::endpoints(std::string_view side) const {
    std::lock_guard lock(endpoints_mutex_);
    for (const auto& [name, eps] : endpoints_) {
        if (name == side) {
            return eps;
        }
    }
    return {};
}

bool device::call(std::function<void()> fn, std::chrono::milliseconds timeout) {
    std::uint64_t id = 0;
    {
        std::lock_guard lock(calls_mutex_);
        id = next_call_++;
        calls_.emplace(id, std::move(fn));
    }
    const auto reply = command({std::string(call_command), std::to_string(id)}, timeout);
    std::lock_guard lock(calls_mutex_);
    calls_.erase(id); // not run (not running, timed out before it was taken)
    return reply && !reply->empty() && reply->front() == "OK";
}

// ---- for the device ----

zmq::socket_t& device::open_side(const std::string& name, zmq::socket_type type,
                                 const std::string& spec, const socket_options* sockets,
                                 const socket_security& security,
                                 const std::function<void(zmq::socket_t&)>& configure) {
    auto owned = std::make_unique<side_socket>(side_socket{name, zmq::socket_t(context(), type)});
    auto& s = owned->socket;
    sides_.push_back(std::move(owned));
    if (sockets != nullptr) {
        detail::apply_socket_options(s, *sockets);
    }
    monitors_->watch(context(), s, security, this->name(), name, settings_.registry);
    if (configure) {
        configure(s);
    }
    auto bound = attach(s, spec, endpoint_action::bind);
    std::lock_guard lock(endpoints_mutex_);
    endpoints_.emplace_back(name, std::move(bound));
    return s;
}

void device::log(log_level level, std::string_view text,
                 std::span<const zmqkit::log_field> fields) const {
    if (settings_.log) {
        if (fields.empty()) {
            settings_.log(text);
            return;
        }
        std::string line(text);
        for (const auto& f : fields) {
            line.append(1, ' ').append(f.key).append(1, '=').append(f.value);
        }
        settings_.log(line);
        return;
    }
    // Unset: the process-wide log (zmqkit/log.hpp), component = the device's name, at the
    // line's own level, as every component does.
    static constexpr zmqkit::log_level levels[] = {zmqkit::log_level::debug,
                                                   zmqkit::log_level::info, zmqkit::log_level::warn,
                                                   zmqkit::log_level::error};
    logger_.write(levels[static_cast<std::size_t>(level)], text, fields);
}

bool device::log_enabled(log_level level) const noexcept {
    static constexpr zmqkit::log_level levels[] = {zmqkit::log_level::debug,
                                                   zmqkit::log_level::info, zmqkit::log_level::warn,
                                                   zmqkit::log_level::error};
    // A callback has no level of its own: it gets info and above (what devices always wrote to
    // it), never the per-message debug lines.
    if (settings_.log) {
        return level != log_level::debug;
    }
    return logger_.enabled(levels[static_cast<std::size_t>(level)]);
}

std::optional<std::uint64_t> device::admit_event(log_level level, std::string_view kind) {
    if (!log_enabled(level)) {
        return std::nullopt;
    }
    return event_limiter_.admit(kind);
}

void device::write_event(log_level level, std::string_view text, std::uint64_t held,
                         std::span<const zmqkit::log_field> fields) const {
    if (held == 0) {
        log(level, text, fields);
        return;
    }
    log(level, std::string(text) + zmqkit::log_rate_limiter::suppressed_suffix(held), fields);
}

void device::log_event(log_level level, std::string_view kind, std::string_view text,
                       std::span<const zmqkit::log_field> fields) {
    if (const auto held = admit_event(level, kind)) {
        write_event(level, text, *held, fields);
    }
}

void device::report_malformed(std::string_view where, std::string_view why) {
    const auto t = now();
    if (t < malformed_log_after_) {
        ++malformed_unlogged_;
    } else {
        std::string line = "dropped a malformed message on the ";
        line.append(where).append(": ").append(why);
        if (malformed_unlogged_ > 0) {
            line += " (and " + std::to_string(malformed_unlogged_) + " more since the last report)";
        }
        log(log_level::warning, line);
        malformed_unlogged_ = 0;
        malformed_log_after_ = t + std::chrono::seconds(1);
    }
    if (malformed_ != nullptr) {
        malformed_->add(); // after the line: whoever sees the count finds the line too
    }
}

// ---- actor hooks ----

void device::setup() {
    open_sides();
    if (!settings_.control.empty()) {
        // Long enough for the reply to TERMINATE to leave before the socket closes.
        control_ = &open_side("control", zmq::socket_type::rep, settings_.control, nullptr,
                              settings_.control_security,
                              [](zmq::socket_t& s) { s.set(zmq::sockopt::linger, 500); });
        watch(*control_, [this] { handle_control(); });
    }
}

std::vector<std::string> device::on_command(const std::vector<std::string>& frames) {
    if (frames.front() == call_command) {
        std::function<void()> fn;
        {
            std::lock_guard lock(calls_mutex_);
            const auto it = frames.size() > 1 ? calls_.find(std::stoull(frames[1])) : calls_.end();
            if (it == calls_.end()) {
                return {"ERROR no such call"};
            }
            fn = std::move(it->second);
            calls_.erase(it);
        }
        fn();
        return {"OK"};
    }
    auto reply = execute(frames.front());
    if (terminated_) {
        drain(std::chrono::steady_clock::now() + settings_.drain_timeout);
        request_exit();
    }
    return reply;
}

void device::on_stop(time_point deadline) {
    drain(deadline);
}

void device::teardown() noexcept {
    monitors_->clear();
    control_ = nullptr;
    while (!sides_.empty()) {
        sides_.pop_back(); // the control side (opened last) first
    }
    after_close();
}

// ---- control ----

std::vector<std::string> device::execute(const std::string& command) {
    const std::string cmd = detail::upper(command);
    if (cmd == control::pause || cmd == control::resume) {
        paused_ = cmd == control::pause;
        on_pause(paused_);
        return {"OK"};
    }
    if (cmd == control::statistics) {
        return statistics().to_frames();
    }
    if (cmd == control::status) {
        return {build_status()};
    }
    if (cmd == control::terminate) {
        terminated_ = true;
        return {"OK"};
    }
    // The device's own commands: the first word in upper case, arguments as sent (names).
    const auto word_end = command.find(' ');
    const std::string own =
        word_end == std::string::npos
            ? cmd
            : detail::upper(command.substr(0, word_end)) + command.substr(word_end);
    if (auto reply = on_extra_command(own)) {
        return std::move(*reply);
    }
    std::string known = "PAUSE, RESUME, TERMINATE, STATISTICS, STATUS";
    for (const auto& extra : extra_commands()) {
        known += ", " + extra;
    }
    return {"ERROR unknown command '" + command + "' (known: " + known + ")"};
}

void device::handle_control() {
    const auto command = detail::receive_control_command(*control_);
    if (!command) {
        return;
    }
    detail::send_control_reply(*control_, execute(*command));
    if (terminated_) {
        drain(std::chrono::steady_clock::now() + settings_.drain_timeout);
        request_exit();
    }
}

void device::drain(time_point deadline) {
    const auto report = on_drain(deadline);
    drain_dropped_ += report.dropped;
    if (report.remaining_in_spool) {
        drain_remaining_ = *report.remaining_in_spool;
    }
}

std::string device::build_status() {
    detail::status_object status;
    auto& j = status.json;
    j["state"] = status_state();
    detail::set_text(j, "name", name());
    j["version"] = zmqkit::version();
    j["libzmq"] = zmqkit::libzmq_version();
    j["started"] = zmqkit::format_timestamp(started_);
    j["uptime_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now() - started_)
                              .count();
    add_status_head(status);
    j["statistics"] = detail::status_document::parse(statistics().to_json());
    add_status(status);
    monitors_->add_status(j);
    return detail::dump_status(j);
}

} // namespace zmqkit::patterns
