// zmqkit-proxy: a forwarding device with a control socket. Parse, construct, run, drain.
#include "zmqkit-proxy/options.hpp"

#include <zmqkit/signals.hpp>

#include <cstring>

namespace {

using namespace zmqkit;

int run_proxy(const cli::proxy_config& cfg, const cli::logger& log, shutdown_signals& signals) {
    zmq::context_t context;
    patterns::streamer device(context, cfg.streamer);
    try {
        device.start();
    } catch (const zmqkit::error& e) {
        log.error(e.what());
        return cli::exit_unavailable;
    }
    for (const auto& ep : device.frontend_endpoints()) {
        log.info("frontend bound " + ep);
    }
    for (const auto& ep : device.backend_endpoints()) {
        log.info("backend bound " + ep);
    }
    for (const auto& ep : device.control_endpoints()) {
        log.info("control bound " + ep);
    }
    for (const auto& ep : device.capture_endpoints()) {
        log.info("capture bound " + ep);
    }
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

} // namespace

int main(int argc, char** argv) {
    return zmqkit::cli::run_tool<zmqkit::cli::proxy_config>(
        "zmqkit-proxy", argc, argv, zmqkit::cli::parse_proxy_options, run_proxy);
}
