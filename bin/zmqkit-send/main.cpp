// zmqkit-send: messages from stdin (or --data / --file) to a ZeroMQ socket. Parse, run.
#include "zmqkit-send/options.hpp"
#include "zmqkit-send/sender.hpp"

#include <zmqkit/signals.hpp>

#include <iostream>

int main(int argc, char** argv) {
    using namespace zmqkit;
    shutdown_signals signals; // before any thread starts, so every thread inherits the mask
    cli::logger log("zmqkit-send");
    cli::send_config cfg;
    try {
        auto parsed = cli::parse_send_options(argc, argv);
        if (auto* p = std::get_if<cli::send_print_and_exit>(&parsed)) {
            std::cout << p->text;
            return p->code;
        }
        cfg = std::get<cli::send_config>(std::move(parsed));
    } catch (const cli::usage_error& e) {
        log.error(e.message);
        return e.code;
    }
    log.set_verbosity(cfg.verbosity);
    try {
        return cli::run_send(cfg, log, signals);
    } catch (const cli::usage_error& e) {
        log.error(e.message);
        return e.code;
    } catch (const std::exception& e) {
        log.error(std::string("internal error: ") + e.what());
        return cli::exit_software;
    }
}
