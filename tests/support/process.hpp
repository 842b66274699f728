// Test support: run a real binary as a child process, read its stderr line by line with
// deadlines, signal it, kill it, and wait for its exit with a bounded wait.
#pragma once

#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <sys/types.h>

namespace zmqkit::testing {

class child_process {
public:
    // Starts argv[0] with the arguments; stdin is /dev/null unless with_stdin, stdout and
    // stderr are pipes read by this object. Throws std::runtime_error if it cannot start.
    explicit child_process(std::vector<std::string> argv, bool with_stdin = false);
    ~child_process(); // SIGKILL + reap if still running
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    // Next complete stderr line within timeout (nullopt: none yet, or stream closed).
    std::optional<std::string> next_stderr_line(std::chrono::milliseconds timeout);
    // Reads stderr lines until one matches; returns the first capture group (or the whole
    // match). nullopt on timeout or EOF. Lines read are kept in stderr_lines().
    std::optional<std::string> wait_for_stderr(const std::regex& pattern,
                                               std::chrono::milliseconds timeout);
    [[nodiscard]] const std::vector<std::string>& stderr_lines() const noexcept { return lines_; }
    // Everything written to stdout so far (reads what is available, then returns).
    std::string read_stdout(std::chrono::milliseconds timeout);
    // What an exited (or quiet) child wrote: stdout until 50 ms pass without more; every
    // stderr line joined with '\n' after reading what is left.
    std::string stdout_text();
    std::string stderr_text();
    // Writes to the child's stdin (with_stdin); close_stdin() sends EOF.
    void write_stdin(const std::string& data);
    void close_stdin();

    void signal(int sig);
    // Waits for exit; returns the exit status (exit code, or 128+signal), nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);

private:
    void pump(std::chrono::milliseconds timeout);
    pid_t pid_ = -1;
    int stdin_fd_ = -1;
    int stdout_fd_ = -1;
    int stderr_fd_ = -1;
    std::string err_buffer_;
    std::string out_buffer_;
    std::vector<std::string> lines_;
    std::size_t next_line_ = 0;
    std::optional<int> status_;
};

// zmqkit-proxy --mode `mode` as a child process, its frontend, backend and control bound on
// 127.0.0.1 ports the kernel picks (read back from its "<side> bound <endpoint>" log lines,
// empty if it did not start within 20 s), with `extra` arguments.
struct running_proxy {
    child_process process;
    std::string frontend, backend, control;
    explicit running_proxy(const std::string& mode, const std::vector<std::string>& extra = {});
};

// Whether this machine's resolver fails fast (within a second) for `host`, a name that must not
// resolve: tests of "cannot resolve host" skip where it does not.
[[nodiscard]] bool resolver_fails_fast(const std::string& host);

} // namespace zmqkit::testing
