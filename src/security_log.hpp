// Internal to the security sources: where their lines go by default, and a throttle so that a
// peer retrying every 100 ms does not flood the log (the metrics still count every event).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include <unistd.h>

namespace zmqkit::detail {

// "zmqkit: <line>\n" on standard error, in one write() so that threads do not interleave.
inline void log_to_stderr(std::string_view line) {
    std::string out = "zmqkit: ";
    out += line;
    out += '\n';
    (void)::write(STDERR_FILENO, out.data(), out.size());
}

inline std::function<void(std::string_view)>
log_or_stderr(std::function<void(std::string_view)> f) {
    if (f) {
        return f;
    }
    return [](std::string_view line) { log_to_stderr(line); };
}

// Lets the first line of a kind through, then at most one per `interval`; a line after a quiet
// spell says how many were held back. Thread-safe.
class log_throttle {
public:
    explicit log_throttle(std::chrono::steady_clock::duration interval = std::chrono::seconds(10))
        : interval_(interval) {}

    // The suffix to append (" (N similar lines suppressed)" or ""), or false to drop the line.
    bool admit(const std::string& key, std::string& suffix) {
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lock(mutex_);
        if (entries_.size() > 4096) {
            entries_.clear(); // a bound on memory when keys churn (many attacking addresses)
        }
        auto [it, fresh] = entries_.try_emplace(key);
        auto& e = it->second;
        if (!fresh && now - e.last < interval_) {
            ++e.suppressed;
            return false;
        }
        suffix.clear();
        if (e.suppressed > 0) {
            suffix = " (" + std::to_string(e.suppressed) + " similar lines suppressed)";
        }
        e.last = now;
        e.suppressed = 0;
        return true;
    }

private:
    struct entry {
        std::chrono::steady_clock::time_point last{};
        std::uint64_t suppressed = 0;
    };
    std::chrono::steady_clock::duration interval_;
    std::mutex mutex_;
    std::map<std::string, entry> entries_;
};

} // namespace zmqkit::detail
