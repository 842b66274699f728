#include <zmqkit/signals.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

#include <pthread.h>

namespace zmqkit {
namespace {
sigset_t shutdown_set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
}
} // namespace

static_assert(sizeof(sigset_t) <= 128, "sigset_t larger than the storage reserved for it");

shutdown_signals::shutdown_signals() {
    const sigset_t set = shutdown_set();
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &set, &old);
    std::memcpy(old_mask_, &old, sizeof old);
}

shutdown_signals::~shutdown_signals() {
    sigset_t old;
    std::memcpy(&old, old_mask_, sizeof old);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

std::optional<int> shutdown_signals::wait(std::chrono::milliseconds timeout) {
    const sigset_t set = shutdown_set();
    if (timeout.count() < 0) {
        timeout = std::chrono::milliseconds(0);
    }
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1'000'000);
    for (;;) {
        const int sig = sigtimedwait(&set, nullptr, &ts);
        if (sig > 0) {
            return sig;
        }
        if (errno == EINTR) {
            continue; // another signal interrupted the wait; the timeout restarts (bounded)
        }
        return std::nullopt;
    }
}

} // namespace zmqkit
