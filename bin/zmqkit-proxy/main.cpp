// zmqkit-proxy: a forwarding device with a control socket. Parse, construct, run, drain.
#include "zmqkit-proxy/options.hpp"

#include <zmqkit/signals.hpp>

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace {

using namespace zmqkit;

void print_bound(const cli::logger& log, const char* what, const std::vector<std::string>& eps) {
    for (const auto& ep : eps) {
        log.info(std::string(what) + " bound " + ep);
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

// SIGHUP means "reload" in every mode, never "stop": the allow directories and password files
// of the secured sides are reread; a proxy without them says there is nothing to reload.
void reload(const cli::logger& log, authenticator* auth) {
    if (auth == nullptr) {
        log.info("received SIGHUP: nothing to reload (no --curve-allow, --plain-passwords or "
                 "--zap-*-ip side); still running");
        return;
    }
    const auto problems = auth->reload();
    log.info(
        "received SIGHUP: allow lists reloaded" +
        (problems > 0 ? " (" + std::to_string(problems) + " problem(s) reported)" : std::string()));
}

// Runs a started device until SIGINT/SIGTERM or TERMINATE; then drains. Device: streamer,
// forwarder, durable_proxy, load_balancer or mdp_broker (actors with statistics() and
// drain_result()). The drain's outcome is reported here, the same way for every mode: a log
// line, a "drain" member in the final statistics, and exit 1 when messages were dropped.
template <class Device>
int run_device(Device& device, const cli::proxy_config& cfg, const cli::logger& log,
               shutdown_signals& signals, authenticator* auth) {
    log.info("mode " + cfg.mode + " running");

    auto next_stats = std::chrono::steady_clock::now() + cfg.stats_interval;
    for (;;) {
        if (auto sig = signals.wait(std::chrono::milliseconds(200))) {
            if (*sig == SIGHUP) {
                reload(log, auth);
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
            log.info("statistics " + device.statistics().to_json() + zap_counts(auth));
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
    if (cfg.mode == "durable") {
        auto options = cfg.durable;
        options.log = [&log](std::string_view line) { log.info(line); };
        patterns::durable_proxy device(context, options);
        try {
            device.start(options.start_timeout);
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            // --strict found damage or lost records: a data error, not an unavailable resource
            return device.recovery().refused ? cli::exit_damaged : cli::exit_unavailable;
        }
        print_bound(log, "frontend", device.frontend_endpoints());
        print_bound(log, "frontend-pull", device.frontend_pull_endpoints());
        print_bound(log, "backend", device.backend_endpoints());
        print_bound(log, "backend-push", device.backend_push_endpoints());
        print_bound(log, "control", device.control_endpoints());
        return run_device(device, cfg, log, signals, auth.get());
    }
    if (cfg.mode == "lb") {
        auto options = cfg.lb;
        options.log = [&log](std::string_view line) { log.info(line); };
        patterns::load_balancer device(context, options);
        try {
            device.start();
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            return cli::exit_unavailable;
        }
        print_bound(log, "frontend", device.frontend_endpoints());
        print_bound(log, "backend", device.backend_endpoints());
        print_bound(log, "control", device.control_endpoints());
        return run_device(device, cfg, log, signals, auth.get());
    }
    if (cfg.mode == "mdp") {
        auto options = cfg.mdp;
        options.log = [&log](std::string_view line) { log.info(line); };
        patterns::mdp_broker device(context, options);
        try {
            device.start();
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            return cli::exit_unavailable;
        }
        print_bound(log, "frontend", device.frontend_endpoints());
        print_bound(log, "backend", device.backend_endpoints());
        print_bound(log, "control", device.control_endpoints());
        return run_device(device, cfg, log, signals, auth.get());
    }
    if (cfg.mode == "forwarder") {
        auto options = cfg.forwarder;
        options.log = [&log](std::string_view line) { log.warn(line); };
        patterns::forwarder device(context, options);
        try {
            device.start();
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            return cli::exit_unavailable;
        }
        print_bound(log, "frontend", device.frontend_endpoints());
        print_bound(log, "backend", device.backend_endpoints());
        print_bound(log, "control", device.control_endpoints());
        print_bound(log, "capture", device.capture_endpoints());
        return run_device(device, cfg, log, signals, auth.get());
    }
    patterns::streamer device(context, cfg.streamer);
    try {
        device.start();
    } catch (const zmqkit::error& e) {
        log.error(e.what());
        return cli::exit_unavailable;
    }
    print_bound(log, "frontend", device.frontend_endpoints());
    print_bound(log, "backend", device.backend_endpoints());
    print_bound(log, "control", device.control_endpoints());
    print_bound(log, "capture", device.capture_endpoints());
    return run_device(device, cfg, log, signals, auth.get());
}

} // namespace

int main(int argc, char** argv) {
    return zmqkit::cli::run_tool<zmqkit::cli::proxy_config>(
        "zmqkit-proxy", argc, argv, zmqkit::cli::parse_proxy_options, run_proxy);
}
