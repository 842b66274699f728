// zmqkit — orderly shutdown on SIGINT / SIGTERM for programs built on zmqkit.
#pragma once

#include <zmqkit/export.hpp>

#include <chrono>
#include <optional>

namespace zmqkit {

// Blocks SIGINT, SIGTERM and SIGHUP in the constructing thread, and so in every thread it starts
// afterwards (construct it first thing in main), and lets one thread wait for them with a
// timeout. On destruction the previous signal mask is restored. Not copyable.
// What a signal means is the caller's choice: zmqkit-proxy (a daemon) reloads on SIGHUP and
// never stops for it; the shell tools stop on all three (SIGHUP: their terminal went away).
class ZMQKIT_API shutdown_signals {
public:
    shutdown_signals();
    ~shutdown_signals();
    shutdown_signals(const shutdown_signals&) = delete;
    shutdown_signals& operator=(const shutdown_signals&) = delete;

    // Waits at most `timeout` for one of the signals; returns its number, or nullopt.
    [[nodiscard]] std::optional<int> wait(std::chrono::milliseconds timeout);
    // Non-blocking check.
    [[nodiscard]] std::optional<int> poll() { return wait(std::chrono::milliseconds(0)); }

private:
    unsigned char old_mask_[128]; // sigset_t storage, kept opaque to avoid <signal.h> here
};

} // namespace zmqkit
