// Test support: bounded waits and unique names. Never sleep to synchronise; wait for a
// condition with a deadline.
#pragma once

#include <zmqkit/encoding.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/socket.hpp>
#include <zmqkit/socket_monitor.hpp>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

namespace zmqkit::testing {

using namespace std::chrono_literals;

// The source tree, as CMake gives it to the test support library (tests/data, docs/...).
// Compiled into one file (support/source_dir.cpp) so that no other object carries the
// checkout's absolute path: ccache then reuses test objects across checkouts.
std::filesystem::path source_dir();

// The bytes in lower-case hex, two digits a byte ("ff01" for "\xff\x01"): the library's.
using zmqkit::to_hex;

// Polls cond until true or the deadline; true if it became true. Between checks it waits,
// 50 us at first and doubling up to 5 ms, so that a waiting test leaves the CPU to the threads
// and processes it waits for (spinning with yield() took a whole core of this 2-core machine
// from them). The wait is the poll interval of a condition check with a deadline, not
// synchronisation.
// The sum of every series of metric `name` in `r` (a histogram's observations: "<name>_count").
inline std::int64_t metric_total(const metrics_registry& r, const std::string& name) {
    std::int64_t total = 0;
    r.for_each([&](const std::string& n, const metric_labels&, std::int64_t v) {
        if (n == name) {
            total += v;
        }
    });
    return total;
}

inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::chrono::microseconds pause{50};
    while (std::chrono::steady_clock::now() < deadline) {
        if (cond()) {
            return true;
        }
        std::this_thread::sleep_for(pause);
        pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(5));
    }
    return cond();
}

// One raw frame from a raw socket within timeout.
inline std::optional<zmq::message_t> recv_within(zmq::socket_t& s,
                                                 std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0) {
        return std::nullopt;
    }
    zmq::message_t m;
    if (!s.recv(m, zmq::recv_flags::dontwait)) {
        return std::nullopt;
    }
    return m;
}

// Every frame of the next multipart message, each within timeout (empty if none came).
inline std::vector<std::string> recv_frames(zmq::socket_t& s,
                                            std::chrono::milliseconds timeout = 10s) {
    std::vector<std::string> frames;
    auto f = recv_within(s, timeout);
    while (f) {
        frames.push_back(f->to_string());
        if (!f->more()) {
            break;
        }
        f = recv_within(s, timeout);
    }
    return frames;
}

// Sends `frames` as one multipart message.
inline void send_frames(zmq::socket_t& s, const std::vector<std::string>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
        s.send(zmq::buffer(frames[i]),
               i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
}

// Sends one command frame on a REQ socket and returns the reply's frames (empty on timeout,
// with a test failure recorded).
inline std::vector<std::string> request(zmq::socket_t& req, const std::string& command,
                                        std::chrono::milliseconds timeout = 5s) {
    req.send(zmq::buffer(command));
    std::vector<std::string> frames;
    for (;;) {
        auto f = recv_within(req, timeout);
        if (!f) {
            ADD_FAILURE() << "no reply to " << command;
            return frames;
        }
        frames.push_back(f->to_string());
        if (!f->more()) {
            return frames;
        }
    }
}

// A name unique to this process and call, for inproc endpoints and ipc paths.
inline std::string unique_name(const std::string& stem) {
    static std::atomic<int> counter{0};
    return stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

// An ipc endpoint in a fresh private directory under $TMPDIR (no shared directories).
inline std::string ipc_endpoint(const std::string& stem) {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/zmqkit-test-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    return "ipc://" + dir + "/" + stem + ".sock";
}

// A fresh private directory under $TMPDIR, removed (with its contents) on destruction.
class temp_directory {
public:
    explicit temp_directory(const std::string& stem = "dir") {
        const char* tmp = std::getenv("TMPDIR");
        std::string dir =
            std::string(tmp != nullptr ? tmp : "/tmp") + "/zmqkit-" + stem + "-XXXXXX";
        if (::mkdtemp(dir.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = dir;
    }
    ~temp_directory() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_directory(const temp_directory&) = delete;
    temp_directory& operator=(const temp_directory&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

// Watches a socket's handshakes with the ZeroMQ socket monitor. Construct it before the
// socket connects; wait() returns once a ZMTP handshake has completed (the peer is really
// there), so tests never sleep for "connection established".
class handshake_monitor {
public:
    handshake_monitor(zmq::context_t& /*ctx*/, zmq::socket_t& socket)
        : monitor_(socket, ZMQ_EVENT_HANDSHAKE_SUCCEEDED,
                   [this](const zmqkit::socket_event&) { ++seen_; }) {}
    handshake_monitor(const handshake_monitor&) = delete; // the handler holds `this`
    handshake_monitor& operator=(const handshake_monitor&) = delete;

    // True once one more handshake (than the earlier calls returned) succeeded within timeout.
    bool wait(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (seen_ <= taken_) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return false;
            }
            (void)monitor_.poll(left);
        }
        ++taken_;
        return true;
    }

private:
    std::size_t seen_ = 0;
    std::size_t taken_ = 0;
    zmqkit::socket_monitor monitor_; // last: its handler counts into seen_
};

// Path of a built binary (ZMQKIT_BIN_DIR is set by CTest).
// True in a build under AddressSanitizer: its quarantine keeps freed memory resident, so RSS
// says nothing about a component's own memory use there.
inline constexpr bool rss_is_meaningful =
#if defined(__SANITIZE_ADDRESS__)
    false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    false;
#else
    true;
#endif
#else
    true;
#endif

inline std::string bin_path(const std::string& tool) {
    const char* dir = std::getenv("ZMQKIT_BIN_DIR");
    return std::string(dir != nullptr ? dir : "bin") + "/" + tool;
}

} // namespace zmqkit::testing
