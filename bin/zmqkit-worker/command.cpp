#include "zmqkit-worker/command.hpp"

#include "common/cli.hpp"
#include "common/tool_support.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace zmqkit::cli {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long a command killed with SIGKILL may take to be gone before it is left to
// reap_leftovers() (a process in uninterruptible sleep ignores even SIGKILL for a while).
constexpr milliseconds reap_bound{2000};

usage_error exec_error(const std::string& what) {
    return usage_error{"--exec: " + what, exit_usage};
}

// One file descriptor, closed once.
class descriptor {
public:
    descriptor() = default;
    explicit descriptor(int fd) noexcept : fd_(fd) {}
    ~descriptor() { reset(); }
    descriptor(const descriptor&) = delete;
    descriptor& operator=(const descriptor&) = delete;
    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool open() const noexcept { return fd_ >= 0; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) {
            (void)::close(fd_);
        }
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// A pipe whose both ends close on exec: a command spawned by another thread at the same moment
// never inherits this one's ends (it would keep the pipe open, and EOF would never come).
struct pipe_ends {
    descriptor read;
    descriptor write;
    bool make() {
        std::array<int, 2> fds{-1, -1};
        if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
            return false;
        }
        read.reset(fds[0]);
        write.reset(fds[1]);
        return true;
    }
};

void set_nonblocking(int fd) noexcept {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) {
        (void)::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    }
}

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::mutex leftovers_mutex;
std::vector<pid_t> leftovers; // killed, not reaped yet

void leave_to_reaper(pid_t pid) {
    const std::lock_guard lock(leftovers_mutex);
    leftovers.push_back(pid);
}

// posix_spawn's attributes and file actions, released on every path.
class spawn_setup {
public:
    spawn_setup(int in, int out, int err) {
        (void)::posix_spawn_file_actions_init(&actions_);
        (void)::posix_spawnattr_init(&attr_);
        (void)::posix_spawn_file_actions_adddup2(&actions_, in, STDIN_FILENO);
        (void)::posix_spawn_file_actions_adddup2(&actions_, out, STDOUT_FILENO);
        (void)::posix_spawn_file_actions_adddup2(&actions_, err, STDERR_FILENO);
        // Whatever else is open in the worker — its own pipes are close-on-exec, but a
        // descriptor it inherited without that flag would be passed on — stays out of the
        // command: it gets 0, 1 and 2, nothing else.
        (void)::posix_spawn_file_actions_addclosefrom_np(&actions_, STDERR_FILENO + 1);
        // The worker blocks SIGINT/SIGTERM/SIGHUP (its threads wait for them) and ignores
        // SIGPIPE: a command starts with no signal blocked and every disposition at its default.
        sigset_t none;
        sigemptyset(&none);
        (void)::posix_spawnattr_setsigmask(&attr_, &none);
        sigset_t all;
        sigfillset(&all);
        sigdelset(&all, SIGKILL);
        sigdelset(&all, SIGSTOP);
        (void)::posix_spawnattr_setsigdefault(&attr_, &all);
        // A process group of its own: a timeout kills the command and whatever it started, and
        // a Ctrl-C at the worker's terminal reaches the worker (which drains), not the command.
        (void)::posix_spawnattr_setpgroup(&attr_, 0);
        (void)::posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                     POSIX_SPAWN_SETSIGDEF);
    }
    ~spawn_setup() {
        (void)::posix_spawn_file_actions_destroy(&actions_);
        (void)::posix_spawnattr_destroy(&attr_);
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
    int spawn(pid_t& pid, const std::vector<std::string>& argv,
              const std::vector<std::string>& environment) {
        std::vector<char*> args;
        args.reserve(argv.size() + 1);
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str())); // NOLINT: the exec family's signature
        }
        args.push_back(nullptr);
        std::vector<char*> env;
        env.reserve(environment.size() + 1);
        for (const auto& e : environment) {
            env.push_back(const_cast<char*>(e.c_str())); // NOLINT: the exec family's signature
        }
        env.push_back(nullptr);
        return ::posix_spawnp(&pid, args[0], &actions_, &attr_, args.data(), env.data());
    }

private:
    posix_spawn_file_actions_t actions_{};
    posix_spawnattr_t attr_{};
};

// One running command: its pipes, its pidfd, what it wrote, and the state of its ending.
class running_command {
public:
    running_command(const command_limits& limits, const command_cutoff& cutoff,
                    std::string_view input, command_result& result)
        : limits_(limits), cutoff_(cutoff), input_(input), result_(result) {}

    // False (result: not_run) when the command could not be started.
    bool start(const std::vector<std::string>& argv, const std::vector<std::string>& environment);
    // Until it exited and its output ended, or it was given up on. Then reaps it.
    void supervise(const std::function<void()>& on_wait);

private:
    enum class ending { none, terminating, killing };
    void check_exit(clock::time_point now);
    void decide(clock::time_point now);
    void cut(command_status why, clock::time_point now, bool at_once);
    [[nodiscard]] int poll_timeout(clock::time_point now) const;
    void wait_for_events(clock::time_point now);
    void feed_input();
    void read_output();
    void read_errors();
    void finish();

    const command_limits& limits_;
    const command_cutoff& cutoff_;
    std::string_view input_;
    command_result& result_;
    clock::time_point started_ = clock::now();
    pid_t pid_ = -1;
    descriptor in_, out_, err_, pidfd_;
    std::size_t written_ = 0;
    bool exited_ = false;
    clock::time_point exited_at_{};
    bool group_killed_after_exit_ = false;
    std::optional<command_status> cut_;
    ending ending_ = ending::none;
    clock::time_point kill_at_{};
    clock::time_point give_up_at_{};
    bool given_up_ = false;
    std::array<char, 65536> buffer_{};
};

bool running_command::start(const std::vector<std::string>& argv,
                            const std::vector<std::string>& environment) {
    pipe_ends in, out, err;
    if (!in.make() || !out.make() || !err.make()) {
        result_.status = command_status::not_run;
        result_.spawn_error = "cannot run '" + argv[0] + "': pipe: " + std::strerror(errno);
        return false;
    }
    spawn_setup setup(in.read.get(), out.write.get(), err.write.get());
    const int rc = setup.spawn(pid_, argv, environment);
    if (rc != 0) {
        result_.status = command_status::not_run;
        result_.spawn_error = "cannot run '" + argv[0] + "': " + std::strerror(rc);
        return false;
    }
    // The child's ends are the child's now.
    in.read.reset();
    out.write.reset();
    err.write.reset();
    in_.reset(in.write.release());
    out_.reset(out.read.release());
    err_.reset(err.read.release());
    for (const auto* d : {&in_, &out_, &err_}) {
        set_nonblocking(d->get());
    }
#ifdef SYS_pidfd_open
    // Its exit wakes the poll at once (close-on-exec by definition); without pidfd (Linux < 5.3)
    // the loop checks for it every 10 ms.
    pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
#endif
    if (input_.empty()) {
        in_.reset();
    }
    return true;
}

void running_command::supervise(const std::function<void()>& on_wait) {
    for (;;) {
        auto now = clock::now();
        check_exit(now);
        decide(now);
        if (given_up_ || (exited_ && !out_.open() && !err_.open())) {
            break;
        }
        wait_for_events(now);
        if (on_wait) {
            on_wait();
        }
    }
    finish();
}

void running_command::check_exit(clock::time_point now) {
    if (exited_) {
        return;
    }
    siginfo_t info{};
    // WNOWAIT: seen, not reaped, so that the pid (and the group's id) stay this command's until
    // what is left of its group has been killed.
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid_) {
        exited_ = true;
        exited_at_ = now;
        pidfd_.reset();
    }
}

void running_command::cut(command_status why, clock::time_point now, bool at_once) {
    if (!cut_) {
        cut_ = why;
    }
    if (at_once || limits_.kill_grace.count() <= 0) {
        (void)::kill(-pid_, SIGKILL);
        result_.killed = true;
        ending_ = ending::killing;
        give_up_at_ = now + reap_bound;
        return;
    }
    (void)::kill(-pid_, SIGTERM);
    ending_ = ending::terminating;
    kill_at_ = now + limits_.kill_grace;
}

void running_command::decide(clock::time_point now) {
    if (exited_) {
        // Its output normally ends with it; a background process it left may hold the pipes:
        // after the grace what is left of its group is killed, and the output read until then.
        if ((out_.open() || err_.open()) && now >= exited_at_ + limits_.kill_grace) {
            if (!group_killed_after_exit_) {
                (void)::kill(-pid_, SIGKILL);
                group_killed_after_exit_ = true;
            } else if (now >= exited_at_ + limits_.kill_grace + reap_bound) {
                out_.reset(); // a process that escaped its group holds them: stop waiting
                err_.reset();
            }
        }
        return;
    }
    switch (ending_) {
    case ending::none:
        if (cutoff_.immediate()) {
            cut(command_status::stopped, now, true);
        } else if (now >= started_ + limits_.timeout) {
            cut(command_status::timeout, now, false);
        } else if (now >= cutoff_.deadline()) {
            cut(command_status::drained, now, false);
        }
        break;
    case ending::terminating:
        if (now >= kill_at_ || cutoff_.immediate()) {
            (void)::kill(-pid_, SIGKILL);
            result_.killed = true;
            ending_ = ending::killing;
            give_up_at_ = now + reap_bound;
        }
        break;
    case ending::killing:
        if (now >= give_up_at_) {
            given_up_ = true;
        }
        break;
    }
}

int running_command::poll_timeout(clock::time_point now) const {
    auto until = now + limits_.wake;
    auto sooner = [&](clock::time_point t) { until = std::max(now, std::min(until, t)); };
    if (exited_) {
        sooner(exited_at_ + limits_.kill_grace +
               (group_killed_after_exit_ ? reap_bound : milliseconds(0)));
    } else {
        switch (ending_) {
        case ending::none:
            sooner(started_ + limits_.timeout);
            sooner(cutoff_.deadline());
            break;
        case ending::terminating:
            sooner(kill_at_);
            break;
        case ending::killing:
            sooner(give_up_at_);
            break;
        }
        if (!pidfd_.open()) {
            sooner(now + milliseconds(10));
        }
    }
    return static_cast<int>(std::chrono::ceil<milliseconds>(until - now).count());
}

void running_command::wait_for_events(clock::time_point now) {
    std::array<pollfd, 4> fds{};
    fds[0] = {in_.get(), POLLOUT, 0};
    fds[1] = {out_.get(), POLLIN, 0};
    fds[2] = {err_.get(), POLLIN, 0};
    fds[3] = {exited_ ? -1 : pidfd_.get(), POLLIN, 0}; // negative descriptors are skipped
    const int rc = ::poll(fds.data(), fds.size(), poll_timeout(now));
    if (rc <= 0) {
        return; // timeout, or EINTR: the loop looks again
    }
    if (fds[0].revents != 0) {
        feed_input();
    }
    if (fds[1].revents != 0) {
        read_output();
    }
    if (fds[2].revents != 0) {
        read_errors();
    }
}

void running_command::feed_input() {
    while (in_.open() && written_ < input_.size()) {
        const std::size_t chunk = std::min<std::size_t>(input_.size() - written_, 1 << 16);
        const auto n = ::write(in_.get(), input_.data() + written_, chunk);
        if (n > 0) {
            written_ += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            in_.reset(); // EPIPE: the command does not read all of it, its choice
        }
    }
    in_.reset(); // all written: EOF
}

void running_command::read_output() {
    for (int round = 0; round < 16 && out_.open(); ++round) {
        const auto n = ::read(out_.get(), buffer_.data(), buffer_.size());
        if (n > 0) {
            const auto size = static_cast<std::size_t>(n);
            if (result_.output.size() + size > limits_.max_output) {
                // A flood: stop reading (a writer then gets SIGPIPE) and end the command.
                out_.reset();
                result_.output.clear();
                if (!exited_ && ending_ == ending::none) {
                    cut(command_status::flood, clock::now(), false);
                } else if (!cut_) {
                    cut_ = command_status::flood;
                }
                return;
            }
            result_.output.append(buffer_.data(), size);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            out_.reset(); // EOF
        }
    }
}

void running_command::read_errors() {
    auto& tail = result_.stderr_tail;
    for (int round = 0; round < 16 && err_.open(); ++round) {
        const auto n = ::read(err_.get(), buffer_.data(), buffer_.size());
        if (n > 0) {
            tail.append(buffer_.data(), static_cast<std::size_t>(n));
            if (tail.size() > 2 * limits_.stderr_tail) {
                tail.erase(0, tail.size() - limits_.stderr_tail);
                result_.stderr_cut = true;
            }
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            err_.reset();
        }
    }
}

void running_command::finish() {
    in_.reset();
    out_.reset();
    err_.reset();
    pidfd_.reset();
    auto& tail = result_.stderr_tail;
    if (tail.size() > limits_.stderr_tail) {
        tail.erase(0, tail.size() - limits_.stderr_tail);
        result_.stderr_cut = true;
    }
    result_.elapsed = std::chrono::duration_cast<milliseconds>(clock::now() - started_);
    if (!exited_) { // given up after SIGKILL: reaped later
        leave_to_reaper(pid_);
        result_.status = cut_.value_or(command_status::stopped);
        return;
    }
    // What is left of its group (a background process it forgot) goes with it; the group id
    // is still this command's: its leader is a zombie until the waitpid below.
    (void)::kill(-pid_, SIGKILL);
    int status = 0;
    pid_t reaped = -1;
    do {
        reaped = ::waitpid(pid_, &status, WNOHANG);
    } while (reaped < 0 && errno == EINTR);
    if (reaped != pid_) {
        leave_to_reaper(pid_);
    }
    if (cut_) {
        result_.status = *cut_;
        return;
    }
    if (WIFEXITED(status)) {
        result_.code = WEXITSTATUS(status);
        result_.status = result_.code == 0 ? command_status::ok : command_status::exit_status;
    } else if (WIFSIGNALED(status)) {
        result_.code = WTERMSIG(status);
        result_.status = command_status::signal;
    }
}

// "...", trailing blanks dropped: the stderr tail as a reason's end.
std::string trimmed_tail(const command_result& r) {
    std::string_view t = r.stderr_tail;
    while (!t.empty() &&
           (t.back() == '\n' || t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) {
        t.remove_suffix(1);
    }
    return (r.stderr_cut ? "..." : "") + std::string(t);
}

} // namespace

std::vector<std::string> split_command(std::string_view text) {
    constexpr std::string_view shell_syntax = "|&;<>()$`";
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) {
                words.push_back(std::move(word));
                word.clear();
                in_word = false;
            }
            continue;
        }
        if (c == '\\' && i + 1 < text.size() && text[i + 1] == '\n') {
            ++i; // a continued line
            continue;
        }
        in_word = true;
        if (c == '\'') {
            const auto end = text.find('\'', i + 1);
            if (end == std::string_view::npos) {
                throw exec_error("unterminated ' quote in '" + std::string(text) + "'");
            }
            word.append(text.substr(i + 1, end - i - 1));
            i = end;
        } else if (c == '"') {
            std::size_t j = i + 1;
            for (; j < text.size() && text[j] != '"'; ++j) {
                if (text[j] == '\\' && j + 1 < text.size() &&
                    (text[j + 1] == '"' || text[j + 1] == '\\')) {
                    ++j;
                }
                word += text[j];
            }
            if (j >= text.size()) {
                throw exec_error("unterminated \" quote in '" + std::string(text) + "'");
            }
            i = j;
        } else if (c == '\\') {
            if (i + 1 >= text.size()) {
                throw exec_error("a trailing backslash in '" + std::string(text) + "'");
            }
            word += text[++i];
        } else if (shell_syntax.find(c) != std::string_view::npos) {
            throw exec_error("'" + std::string(1, c) + "' in '" + std::string(text) +
                             "' is shell syntax, which --exec does not interpret (no pipes, "
                             "redirections, variables or command lists): quote it to pass it "
                             "as a character, or run the command through /bin/sh with --shell");
        } else {
            word += c;
        }
    }
    if (in_word) {
        words.push_back(std::move(word));
    }
    if (words.empty()) {
        throw exec_error("no command given");
    }
    return words;
}

std::optional<std::string> find_program(const std::string& name) {
    auto runnable = [](const std::string& path) {
        struct stat st {};
        return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
               ::access(path.c_str(), X_OK) == 0;
    };
    if (name.empty()) {
        return std::nullopt;
    }
    if (name.find('/') != std::string::npos) {
        return runnable(name) ? std::optional<std::string>(name) : std::nullopt;
    }
    const char* env = std::getenv("PATH"); // NOLINT(concurrency-mt-unsafe): read at start-up
    const std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
    std::size_t from = 0;
    for (;;) {
        const auto colon = path.find(':', from);
        std::string dir = path.substr(from, colon == std::string::npos ? colon : colon - from);
        const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
        if (runnable(candidate)) {
            return candidate;
        }
        if (colon == std::string::npos) {
            return std::nullopt;
        }
        from = colon + 1;
    }
}

std::string command_result::reason(std::size_t max_output) const {
    std::string r;
    const std::string how = killed ? "killed with SIGKILL" : "stopped with SIGTERM";
    switch (status) {
    case command_status::ok:
        r = "exit status 0";
        break;
    case command_status::exit_status:
        r = "exit status " + std::to_string(code);
        break;
    case command_status::signal:
        r = "killed by signal " + std::to_string(code) + " (" + signal_name(code) + ")";
        break;
    case command_status::timeout:
        r = "timed out after " + describe_duration(timeout) + " (--exec-timeout); " + how;
        break;
    case command_status::flood:
        r = "output larger than --max-size (" + std::to_string(max_output) + " bytes); " + how;
        break;
    case command_status::not_run:
        r = spawn_error;
        break;
    case command_status::drained:
        r = "still running at the drain deadline (--drain-timeout); " + how;
        break;
    case command_status::stopped:
        r = "the worker was told to stop at once (a second signal); killed with SIGKILL";
        break;
    }
    if (!stderr_tail.empty()) {
        r += "; stderr: " + trimmed_tail(*this);
    }
    return r;
}

command_result run_command(const std::vector<std::string>& argv,
                           const std::vector<std::string>& environment, std::string_view input,
                           const command_limits& limits, const command_cutoff& cutoff,
                           const std::function<void()>& on_wait) {
    command_result result;
    result.timeout = limits.timeout;
    if (argv.empty()) {
        result.status = command_status::not_run;
        result.spawn_error = "no command";
        return result;
    }
    running_command command(limits, cutoff, input, result);
    if (command.start(argv, environment)) {
        command.supervise(on_wait);
    }
    return result;
}

std::size_t reap_leftovers(milliseconds wait) {
    const auto deadline = clock::now() + wait;
    for (;;) {
        std::size_t left = 0;
        {
            const std::lock_guard lock(leftovers_mutex);
            std::erase_if(leftovers, [](pid_t pid) {
                int status = 0;
                const pid_t r = ::waitpid(pid, &status, WNOHANG);
                return r == pid || (r < 0 && errno == ECHILD);
            });
            left = leftovers.size();
        }
        if (left == 0 || clock::now() >= deadline) {
            return left;
        }
        std::this_thread::sleep_for(milliseconds(10)); // a bounded poll for a process to go
    }
}

} // namespace zmqkit::cli
