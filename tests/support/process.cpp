#include "support/process.hpp"
#include "support/testing.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h> // environ (_GNU_SOURCE, which g++ and clang++ define)

namespace zmqkit::testing {

child_process::child_process(std::vector<std::string> argv, bool with_stdin) {
    int in[2] = {-1, -1};
    int out[2];
    int err[2];
    if ((with_stdin && ::pipe2(in, O_CLOEXEC) != 0) || ::pipe2(out, O_CLOEXEC) != 0 ||
        ::pipe2(err, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (with_stdin) {
        posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    } else {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    // The child must not inherit the test's blocked signal mask.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (with_stdin) {
        ::close(in[0]);
        stdin_fd_ = in[1];
    }
    ::close(out[1]);
    ::close(err[1]);
    stdout_fd_ = out[0];
    stderr_fd_ = err[0];
    if (rc != 0) {
        throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
    }
}

child_process::~child_process() {
    if (!status_) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
    for (int fd : {stdin_fd_, stdout_fd_, stderr_fd_}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

void child_process::pump(std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{stderr_fd_, POLLIN, 0}, {stdout_fd_, POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(timeout.count())) <= 0) {
        return;
    }
    char buf[65536];
    if ((fds[0].revents & (POLLIN | POLLHUP)) != 0) {
        const auto n = ::read(stderr_fd_, buf, sizeof buf);
        if (n > 0) {
            err_buffer_.append(buf, static_cast<std::size_t>(n));
            std::size_t pos = 0;
            while ((pos = err_buffer_.find('\n')) != std::string::npos) {
                lines_.push_back(err_buffer_.substr(0, pos));
                err_buffer_.erase(0, pos + 1);
            }
        }
    }
    if ((fds[1].revents & (POLLIN | POLLHUP)) != 0) {
        const auto n = ::read(stdout_fd_, buf, sizeof buf);
        if (n > 0) {
            out_buffer_.append(buf, static_cast<std::size_t>(n));
        }
    }
}

std::optional<std::string> child_process::next_stderr_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (next_line_ >= lines_.size()) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            return std::nullopt;
        }
        pump(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
             std::chrono::milliseconds(1));
    }
    return lines_[next_line_++];
}

std::optional<std::string> child_process::wait_for_stderr(const std::regex& pattern,
                                                          std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto now = std::chrono::steady_clock::now();
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        if (left.count() <= 0) {
            return std::nullopt;
        }
        auto line = next_stderr_line(left);
        if (!line) {
            return std::nullopt;
        }
        std::smatch m;
        if (std::regex_search(*line, m, pattern)) {
            return m.size() > 1 ? m[1].str() : m[0].str();
        }
    }
}

std::string child_process::read_stdout(std::chrono::milliseconds timeout) {
    pump(timeout);
    return out_buffer_;
}

std::string child_process::stdout_text() {
    for (;;) {
        const auto before = out_buffer_.size();
        pump(std::chrono::milliseconds(50));
        if (out_buffer_.size() == before) {
            return out_buffer_;
        }
    }
}

std::string child_process::stderr_text() {
    while (next_stderr_line(std::chrono::milliseconds(100))) {
    }
    std::string text;
    for (const auto& l : lines_) {
        text += l + "\n";
    }
    return text;
}

void child_process::write_stdin(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const auto n = ::write(stdin_fd_, data.data() + done, data.size() - done);
        if (n <= 0) {
            throw std::runtime_error("write to child stdin failed");
        }
        done += static_cast<std::size_t>(n);
    }
}

void child_process::close_stdin() {
    if (stdin_fd_ >= 0) {
        ::close(stdin_fd_);
        stdin_fd_ = -1;
    }
}

void child_process::signal(int sig) {
    ::kill(pid_, sig);
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
    if (status_) {
        return status_;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return status_;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        // Keep the pipes drained so the child never blocks on a full stderr while we wait.
        pump(std::chrono::milliseconds(5));
    }
}

bool resolver_fails_fast(const std::string& host) {
    const auto start = std::chrono::steady_clock::now();
    addrinfo* result = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), nullptr, nullptr, &result);
    if (result != nullptr) {
        ::freeaddrinfo(result);
    }
    return rc != 0 && std::chrono::steady_clock::now() - start <= std::chrono::seconds(1);
}

namespace {

std::vector<std::string> proxy_argv(const std::string& mode,
                                    const std::vector<std::string>& extra) {
    std::vector<std::string> argv{bin_path("zmqkit-proxy"),
                                  "--mode",
                                  mode,
                                  "--frontend",
                                  "tcp://127.0.0.1:*",
                                  "--backend",
                                  "tcp://127.0.0.1:*",
                                  "--control",
                                  "tcp://127.0.0.1:*"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

} // namespace

running_proxy::running_proxy(const std::string& mode, const std::vector<std::string>& extra)
    : process(proxy_argv(mode, extra)) {
    using std::chrono::seconds;
    frontend =
        process.wait_for_stderr(std::regex("frontend bound (\\S+)"), seconds(20)).value_or("");
    backend = process.wait_for_stderr(std::regex("backend bound (\\S+)"), seconds(20)).value_or("");
    control = process.wait_for_stderr(std::regex("control bound (\\S+)"), seconds(20)).value_or("");
}

} // namespace zmqkit::testing
