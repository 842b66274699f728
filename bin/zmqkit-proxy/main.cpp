// zmqkit-proxy: a forwarding device with a control socket. Parse, construct, run, drain.
#include "zmqkit-proxy/options.hpp"

#include <zmqkit/signals.hpp>

#include <cstring>

namespace {

using namespace zmqkit;

void print_bound(const cli::logger& log, const char* what, const std::vector<std::string>& eps) {
    for (const auto& ep : eps) {
        log.info(std::string(what) + " bound " + ep);
    }
}

// Runs a started device until a signal or TERMINATE; then drains. Device: streamer,
// durable_proxy, load_balancer or mdp_broker (actors with statistics()).
template <class Device>
int run_device(Device& device, const cli::proxy_config& cfg, const cli::logger& log,
               shutdown_signals& signals) {
    log.info("mode " + cfg.mode + " running");

    auto next_stats = std::chrono::steady_clock::now() + cfg.stats_interval;
    for (;;) {
        if (auto sig = signals.wait(std::chrono::milliseconds(200))) {
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
            log.info("statistics " + device.statistics().to_json());
        }
    }
    log.info("final statistics " + device.statistics().to_json());
    return cli::exit_ok;
}

int run_proxy(const cli::proxy_config& cfg, const cli::logger& log, shutdown_signals& signals) {
    zmq::context_t context;
    if (cfg.mode == "durable") {
        auto options = cfg.durable;
        options.log = [&log](std::string_view line) { log.info(line); };
        patterns::durable_proxy device(context, options);
        try {
            device.start(options.start_timeout);
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            return cli::exit_unavailable;
        }
        print_bound(log, "frontend", device.frontend_endpoints());
        print_bound(log, "frontend-pull", device.frontend_pull_endpoints());
        print_bound(log, "backend", device.backend_endpoints());
        print_bound(log, "backend-push", device.backend_push_endpoints());
        print_bound(log, "control", device.control_endpoints());
        return run_device(device, cfg, log, signals);
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
        return run_device(device, cfg, log, signals);
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
        return run_device(device, cfg, log, signals);
    }
    if (cfg.mode == "forwarder") {
        patterns::forwarder device(context, cfg.forwarder);
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
        return run_device(device, cfg, log, signals);
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
    return run_device(device, cfg, log, signals);
}

} // namespace

int main(int argc, char** argv) {
    return zmqkit::cli::run_tool<zmqkit::cli::proxy_config>(
        "zmqkit-proxy", argc, argv, zmqkit::cli::parse_proxy_options, run_proxy);
}
