// zmqkit-worker: running one command per request. The --exec text split into argv without a
// shell, and a child process fed the request on stdin whose stdout is the reply: posix_spawn
// with pipes (O_CLOEXEC: a command never inherits another's; descriptors from 3 up closed in
// the child), its own process group (killed as a whole), poll(2) over its pipes and a pidfd,
// every wait bounded. Thread-safe: each worker slot runs its own commands concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace zmqkit::cli {

// Splits the --exec text into argv the way a shell splits a simple command, without running one:
// words are separated by blanks (space, tab, newline); '...' keeps everything inside as it is;
// "..." too, except that \" and \\ stand for " and \; outside quotes a backslash takes the next
// character as it is; adjacent parts join ('a'"b"c is abc; '' is an empty word). No variables,
// globbing, pipes or redirections: an unquoted | & ; < > ( ) $ or ` is refused (they need
// --shell). Throws usage_error (exit 64) naming the problem: an unterminated quote, a trailing
// backslash, shell syntax, no word at all.
[[nodiscard]] std::vector<std::string> split_command(std::string_view text);

// The file a program name runs: a name with a '/' as it is, a bare name searched in $PATH (as
// execvp does); nullopt when there is no executable regular file by that name.
[[nodiscard]] std::optional<std::string> find_program(const std::string& name);

// What bounds one command.
struct command_limits {
    std::chrono::milliseconds timeout{30000};   // --exec-timeout: then SIGTERM to its group
    std::chrono::milliseconds kill_grace{1000}; // SIGTERM -> SIGKILL; output lingering after exit
    std::size_t max_output = 1 << 20;           // --max-size: more stdout is a flood
    std::size_t stderr_tail = 1024;             // the last stderr bytes kept for the reason
    std::chrono::milliseconds wake{100};        // on_wait() runs at least this often
};

// Cuts running commands short, from another thread: a drain's deadline (SIGTERM then SIGKILL, as
// for a timeout) or at once (a second signal: SIGKILL). Thread-safe.
class command_cutoff {
public:
    using time_point = std::chrono::steady_clock::time_point;
    void at(time_point deadline) noexcept { deadline_.store(deadline.time_since_epoch().count()); }
    void now() noexcept { now_.store(true); }
    [[nodiscard]] time_point deadline() const noexcept {
        return time_point(time_point::duration(deadline_.load()));
    }
    [[nodiscard]] bool immediate() const noexcept { return now_.load(); }

private:
    std::atomic<time_point::rep> deadline_{time_point::max().time_since_epoch().count()};
    std::atomic<bool> now_{false};
};

// How a command ended.
enum class command_status {
    ok,          // exit status 0
    exit_status, // another exit status (code)
    signal,      // killed by a signal it did not get from here (code: the signal)
    timeout,     // still running at --exec-timeout
    flood,       // more stdout than --max-size
    not_run,     // posix_spawn failed (spawn_error says why)
    drained,     // still running at the drain's deadline
    stopped,     // killed by a second signal to the worker
};

struct command_result {
    command_status status = command_status::ok;
    int code = 0;            // the exit status, or the signal that killed it
    bool killed = false;     // SIGKILL was needed (SIGTERM was not enough, or a second signal)
    std::string output;      // stdout (complete only when ok)
    std::string stderr_tail; // the last stderr bytes (limits.stderr_tail)
    bool stderr_cut = false; // stderr had more than the tail
    std::string spawn_error; // not_run: "cannot run 'x': No such file or directory"
    std::chrono::milliseconds elapsed{0};
    std::chrono::milliseconds timeout{0}; // the limit it ran under (for the reason)

    [[nodiscard]] bool ok() const noexcept { return status == command_status::ok; }
    // A readable reason for an error reply: "exit status 3; stderr: no such user", "killed by
    // signal 11 (SIGSEGV)", "timed out after 2 s (--exec-timeout); stopped with SIGTERM", ...
    [[nodiscard]] std::string reason(std::size_t max_output) const;
};

// Runs `argv` (argv[0] searched in $PATH unless it has a '/') with `environment` ("NAME=value"
// entries: the whole environment), `input` written to its stdin (then EOF), stdout and stderr
// read, until it exits and its output ends, within `limits`. The command runs in a process group
// of its own; when it ends, whatever is left of that group is killed (a background process it
// forgot), and the command is reaped — or, when even SIGKILL does not end it within 2 s (a process
// stuck in the kernel), handed to reap_leftovers(). `on_wait` runs on this thread at least every
// limits.wake while the command runs (the worker's heartbeats). Never throws for what the
// command does; std::bad_alloc aside.
[[nodiscard]] command_result run_command(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& environment,
                                         std::string_view input, const command_limits& limits,
                                         const command_cutoff& cutoff,
                                         const std::function<void()>& on_wait);

// Reaps the commands run_command() could not (see there), waiting at most `wait` for them.
// Returns how many are still not reaped. Thread-safe.
std::size_t reap_leftovers(std::chrono::milliseconds wait);

} // namespace zmqkit::cli
