// zmqkit-proxy: a forwarding device with a control socket. Parse, construct, run, drain.
#include "zmqkit-proxy/options.hpp"

#include "common/tool_support.hpp"

#include <zmqkit/signals.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace {

using namespace zmqkit;

// "frontend bound tcp://...", one line per endpoint, every side; the capture side last.
void print_bound(const cli::logger& log, const patterns::device& device) {
    auto sides = device.sides();
    std::stable_partition(sides.begin(), sides.end(),
                          [](const std::string& side) { return side != "capture"; });
    for (const auto& side : sides) {
        for (const auto& ep : device.endpoints(side)) {
            log.info(side + " bound " + ep);
        }
    }
}

// ", zap allowed=N denied=N" when the proxy authenticates its peers.
std::string zap_counts(const authenticator* auth) {
    if (auth == nullptr) {
        return {};
    }
    const auto s = auth->stats();
    return " zap allowed=" + std::to_string(s.allowed) + " denied=" + std::to_string(s.denied) +
           " malformed=" + std::to_string(s.malformed);
}

// The JSON object `object` with one more member `name` holding the JSON `value`:
// {"a":1} + ("b", "2") -> {"a":1,"b":2}.
std::string with_member(const std::string& object, const std::string& name,
                        const std::string& value) {
    auto j = nlohmann::ordered_json::parse(object);
    j[name] = nlohmann::ordered_json::parse(value);
    return j.dump();
}

// The --stats-interval line: the counters, then per side the messages per second since the
// previous line ("rates"), and for the durable proxy the spool's depth, consumer lag and the age
// of its oldest waiting message (from its STATUS), so that a line says how the queue moves.
class interval_statistics {
public:
    explicit interval_statistics(const patterns::device& device)
        : last_(device.statistics()), since_(std::chrono::steady_clock::now()) {}

    std::string line(patterns::device& device, bool durable) {
        const auto now = std::chrono::steady_clock::now();
        const auto stats = device.statistics();
        const double seconds = std::max(std::chrono::duration<double>(now - since_).count(), 1e-3);
        const auto per_second = [seconds](std::uint64_t now_count, std::uint64_t then) {
            // one decimal: 1234.5
            return std::round(static_cast<double>(now_count - then) / seconds * 10) / 10;
        };
        auto j = nlohmann::ordered_json::parse(stats.to_json());
        j["rates"] = {
            {"frontend_in_per_s",
             per_second(stats.frontend_messages_in, last_.frontend_messages_in)},
            {"frontend_out_per_s",
             per_second(stats.frontend_messages_out, last_.frontend_messages_out)},
            {"backend_in_per_s", per_second(stats.backend_messages_in, last_.backend_messages_in)},
            {"backend_out_per_s",
             per_second(stats.backend_messages_out, last_.backend_messages_out)},
            {"seconds", std::round(seconds * 1000) / 1000}};
        if (durable) {
            const auto status = nlohmann::ordered_json::parse(device.status_json(), nullptr, false);
            if (!status.is_discarded() && status.contains("spool")) {
                const auto& sp = status["spool"];
                j["spool"] = {{"messages", sp.value("messages", 0)},
                              {"consumer_lag", sp.value("consumer_lag", 0)},
                              {"in_flight", sp.value("in_flight", 0)},
                              {"oldest_age_ms", sp.value("oldest_age_ms", 0)}};
            }
        }
        last_ = stats;
        since_ = now;
        return "statistics " + j.dump();
    }

private:
    proxy_statistics last_;
    std::chrono::steady_clock::time_point since_;
};

// SIGHUP means "reload" in every mode, never "stop": the allow directories and password files
// of the secured sides are reread (and whatever the device itself rereads: its reload hook); a
// proxy without them says there is nothing to reload.
void reload(const cli::logger& log, authenticator* auth, patterns::device& device) {
    const auto reloaded = device.reload();
    if (reloaded && !reloaded->empty()) {
        log.info("received SIGHUP: " + *reloaded);
    }
    if (auth == nullptr) {
        if (!reloaded || reloaded->empty()) {
            log.info("received SIGHUP: nothing to reload (no --curve-allow, --plain-passwords or "
                     "--zap-*-ip side); still running");
        }
        return;
    }
    const auto problems = auth->reload();
    log.info(
        "received SIGHUP: allow lists reloaded" +
        (problems > 0 ? " (" + std::to_string(problems) + " problem(s) reported)" : std::string()));
}

// Runs a started device until SIGINT/SIGTERM or TERMINATE; then drains. The drain's outcome is
// reported here, the same way for every mode: a log line, a "drain" member in the final
// statistics, and exit 1 when messages were dropped.
int run_device(patterns::device& device, const cli::proxy_config& cfg, const cli::logger& log,
               shutdown_signals& signals, authenticator* auth) {
    log.info("mode " + cli::mode_name(cfg.mode) + " running");

    auto next_stats = std::chrono::steady_clock::now() + cfg.stats_interval;
    interval_statistics interval(device);
    const bool durable = std::holds_alternative<patterns::durable_proxy_options>(cfg.mode);
    for (;;) {
        if (auto sig = signals.wait(std::chrono::milliseconds(200))) {
            if (*sig == SIGHUP) {
                reload(log, auth, device);
                continue;
            }
            log.info(std::string("received ") + strsignal(*sig) + ", draining for up to " +
                     std::to_string(cfg.drain_timeout.count()) + " ms");
            device.stop(cfg.drain_timeout);
            break;
        }
        if (device.wait_finished(std::chrono::milliseconds(0))) {
            if (!device.failure().empty()) {
                log.error(device.failure());
                return cli::exit_software;
            }
            log.info("TERMINATE received, stopped");
            break;
        }
        if (cfg.stats_interval.count() > 0 && std::chrono::steady_clock::now() >= next_stats) {
            next_stats += cfg.stats_interval;
            log.info(interval.line(device, durable) + zap_counts(auth));
        }
    }
    const drain_report drain = device.drain_result();
    if (drain.dropped > 0) {
        log.warn(drain.describe());
    } else {
        log.info(drain.describe());
    }
    log.info("final statistics " +
             with_member(device.statistics().to_json(), "drain", drain.to_json()) +
             zap_counts(auth));
    return drain.dropped > 0 ? cli::exit_failure : cli::exit_ok;
}

// The mode's device. Its lines go to the proxy's log at their own levels: the device's name is
// --name, the component of the proxy's log lines, so both share one level and one sink (and
// -v shows the per-message debug lines, -q keeps only warnings).
std::unique_ptr<patterns::device> make_device(zmq::context_t& context,
                                              const cli::proxy_mode& mode) {
    return std::visit(
        [&](auto options) -> std::unique_ptr<patterns::device> {
            using options_type = decltype(options);
            if constexpr (std::is_same_v<options_type, patterns::streamer_options>) {
                return std::make_unique<patterns::streamer>(context, std::move(options));
            } else if constexpr (std::is_same_v<options_type, patterns::forwarder_options>) {
                return std::make_unique<patterns::forwarder>(context, std::move(options));
            } else if constexpr (std::is_same_v<options_type, patterns::durable_proxy_options>) {
                return std::make_unique<patterns::durable_proxy>(context, std::move(options));
            } else if constexpr (std::is_same_v<options_type, patterns::load_balancer_options>) {
                return std::make_unique<patterns::load_balancer>(context, std::move(options));
            } else {
                return std::make_unique<patterns::mdp_broker>(context, std::move(options));
            }
        },
        mode);
}

int run_proxy(const cli::proxy_config& cfg, const cli::logger& log, shutdown_signals& signals) {
    zmq::context_t context;
    // One ZAP handler for the context, before any side binds; destroyed after the device (it
    // is declared first), so it answers until the last socket closed.
    const std::vector<const cli::side_security*> sides{&cfg.frontend_security,
                                                       &cfg.backend_security, &cfg.control_security,
                                                       &cfg.capture_security};
    std::unique_ptr<authenticator> auth;
    try {
        auth = cli::start_authenticator(context, sides, log);
    } catch (const zmq::error_t& e) {
        log.error(std::string("cannot start the ZAP authenticator: ") + e.what());
        return cli::exit_unavailable;
    }
    for (const auto& line : cli::describe_security(sides)) {
        log.info("security " + line);
    }
    // --titanic: the Titanic server reaches the broker over inproc endpoints of its own (no
    // network, no security handshake), added to the broker's sides; it opens its store now, so
    // that a store it cannot use stops the proxy before it binds anything.
    auto mode = cfg.mode;
    std::unique_ptr<patterns::titanic> titanic;
    if (cfg.titanic) {
        auto t = *cfg.titanic;
        auto& broker = std::get<patterns::mdp_broker_options>(mode);
        t.frontend = "inproc://zmqkit-titanic-frontend";
        t.backend = "inproc://zmqkit-titanic-backend";
        broker.frontend += ",@" + t.frontend;
        broker.backend += ",@" + t.backend;
        try {
            titanic = std::make_unique<patterns::titanic>(context, std::move(t));
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            return cli::exit_unavailable;
        }
        broker.status_members = [&titanic] {
            return "{\"titanic\":" + titanic->status_json() + "}";
        };
    }
    auto device = make_device(context, mode);
    const auto* durable = std::get_if<patterns::durable_proxy_options>(&cfg.mode);
    try {
        // Recovery of a large spool happens in start().
        device->start(durable != nullptr ? durable->start_timeout : std::chrono::seconds(10));
    } catch (const zmqkit::error& e) {
        log.error(e.what());
        // --strict found damage or lost records: a data error, not an unavailable resource
        const bool refused =
            durable != nullptr && static_cast<patterns::durable_proxy&>(*device).recovery().refused;
        return refused ? cli::exit_data_error : cli::exit_unavailable;
    }
    print_bound(log, *device);
    if (titanic) {
        try {
            titanic->start();
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            return cli::exit_unavailable;
        }
        const auto& r = titanic->recovery();
        log.info("titanic store " + cfg.titanic->directory + ": " + std::to_string(r.pending) +
                 " pending request(s), " + std::to_string(r.replies) + " stored replies, " +
                 std::to_string(r.corrupt) + " damaged file(s) set aside");
    }
    // After start(): a scrape during a long recovery would wait on the device for STATUS.
    const auto metrics = cli::serve_metrics(cfg.metrics_listen, metrics_registry::global(), log,
                                            [&device] { return device->status_json(); });
    return run_device(*device, cfg, log, signals, auth.get());
}

} // namespace

int main(int argc, char** argv) {
    return zmqkit::cli::run_tool<zmqkit::cli::proxy_config>(
        "zmqkit-proxy", argc, argv, zmqkit::cli::parse_proxy_options, run_proxy);
}
