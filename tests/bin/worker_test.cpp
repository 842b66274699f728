// zmqkit-worker: its command runner in-process (splitting --exec, pipes, limits, no leaked
// descriptors, no zombies), and the binary as a real process behind zmqkit-proxy --mode lb and
// --mode mdp: a farm of shell workers, an MDP service, commands that hang, flood, fail or do not
// exist, a request over --max-size, four requests at once, SIGTERM while a command runs, --count,
// the debugging mode, usage errors.
#include "zmqkit-worker/command.hpp"
#include "zmqkit-worker/options.hpp"

#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/patterns/majordomo.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ; // NOLINT: POSIX declares it nowhere

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using zmqkit::cli::command_cutoff;
using zmqkit::cli::command_limits;
using zmqkit::cli::command_status;
using zmqkit::cli::run_command;
using zmqkit::cli::split_command;

namespace {

// ---- in-process helpers ------------------------------------------------------------------------

std::vector<std::string> environment() {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        env.emplace_back(*e);
    }
    return env;
}

cli::command_result run(const std::vector<std::string>& argv, std::string_view input = {},
                        command_limits limits = {}) {
    static const command_cutoff never;
    return run_command(argv, environment(), input, limits, never, {});
}

// No child of this process is left, reaped or not.
bool no_children() {
    int status = 0;
    return ::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::size_t lines_in(const std::filesystem::path& p) {
    const auto text = read_file(p);
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return s;
}

// ---- process helpers ---------------------------------------------------------------------------

using proxy_process = running_proxy;

std::string status(zmq::context_t& ctx, const std::string& control) {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(control);
    const auto reply = request(req, "STATUS", 10s);
    return reply.empty() ? std::string() : reply[0];
}

long long count_of(const std::string& text, const std::string& what) {
    long long n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
        ++n;
    }
    return n;
}

// The number after "key": in a JSON text (first occurrence), -1 if absent.
long long json_number(const std::string& json, const std::string& key) {
    const auto at = json.find("\"" + key + "\":");
    return at == std::string::npos ? -1 : std::stoll(json.substr(at + key.size() + 3));
}

// A zmqkit-worker process connected to `backend`, started (its first log line seen).
std::unique_ptr<child_process> start_worker(const std::vector<std::string>& args,
                                            const std::string& backend) {
    std::vector<std::string> argv{bin_path("zmqkit-worker")};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(backend);
    auto w = std::make_unique<child_process>(argv);
    EXPECT_TRUE(w->wait_for_stderr(std::regex("worker\\(s\\) of"), 20s).has_value());
    return w;
}

bool lb_ready(zmq::context_t& ctx, const proxy_process& proxy, long long n) {
    return eventually(
        [&] { return count_of(status(ctx, proxy.control), "\"state\":\"ready\"") == n; }, 20s);
}

lb_client_options client_options(const std::string& frontend) {
    lb_client_options o;
    o.endpoint = frontend;
    o.timeout = 60s; // no retries: each request is sent once
    o.attempts = 1;
    return o;
}

// Requests submitted through an lb_client, their outcomes kept by body (each body unique): a
// failed outcome has no reply to take an id from.
class outcomes_by_body {
public:
    explicit outcomes_by_body(lb_client& client) : client_(client) {}
    void submit(const std::string& body) {
        (void)client_.submit(message(body),
                             [this, body](lb_result r) { done_.emplace(body, std::move(r)); });
    }
    // Polls the client until `body` has its outcome, at most `within`.
    std::optional<lb_result> wait(const std::string& body, std::chrono::milliseconds within = 30s) {
        const auto deadline = std::chrono::steady_clock::now() + within;
        while (done_.count(body) == 0 && std::chrono::steady_clock::now() < deadline) {
            (void)client_.poll(50ms);
        }
        const auto it = done_.find(body);
        if (it == done_.end()) {
            return std::nullopt;
        }
        std::optional<lb_result> r(std::move(it->second));
        done_.erase(it);
        return r;
    }
    [[nodiscard]] std::size_t done() {
        (void)client_.poll(0ms);
        return done_.size();
    }

private:
    lb_client& client_;
    std::map<std::string, lb_result> done_;
};

// Sends `body` and waits for its outcome.
lb_result call(lb_client& client, const std::string& body) {
    return client.call(message(body));
}

// A FIFO the commands under test block on (`read -r _ < gate`): each line written releases one
// of them. The destructor releases whatever still waits, so that no command outlives a test.
class fifo_gate {
public:
    explicit fifo_gate(std::filesystem::path path) : path_(std::move(path)) {
        if (::mkfifo(path_.c_str(), 0600) != 0) {
            throw std::runtime_error("mkfifo failed");
        }
        // Read-write: never blocks, and keeps the FIFO open so that a reader that arrives after
        // a release still finds its line.
        fd_ = ::open(path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    }
    ~fifo_gate() {
        release(64);
        ::close(fd_);
    }
    fifo_gate(const fifo_gate&) = delete;
    fifo_gate& operator=(const fifo_gate&) = delete;
    void release(int n) {
        const std::string lines(static_cast<std::size_t>(n), '\n');
        (void)!::write(fd_, lines.data(), lines.size());
    }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    int fd_ = -1;
};

// An executable script in `dir`.
std::string write_script(const std::filesystem::path& dir, const std::string& name,
                         const std::string& body) {
    const auto path = dir / name;
    std::ofstream(path) << "#!/bin/sh\n" << body;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    return path.string();
}

// The usage error of a command line: exit code and stderr.
std::pair<std::optional<int>, std::string> usage_of(const std::vector<std::string>& args) {
    std::vector<std::string> argv{bin_path("zmqkit-worker")};
    argv.insert(argv.end(), args.begin(), args.end());
    child_process p(argv);
    const auto code = p.wait(20s);
    (void)p.wait_for_stderr(std::regex("(ERROR.*)"), 2s);
    std::string all;
    for (const auto& l : p.stderr_lines()) {
        all += l + "\n";
    }
    return {code, all};
}

} // namespace

// ---- --exec split into words -------------------------------------------------------------------

TEST(worker_command, exec_text_is_split_as_a_simple_command_without_a_shell) {
    EXPECT_THAT(split_command("tr a-z A-Z"), ElementsAre("tr", "a-z", "A-Z"));
    EXPECT_THAT(split_command("  grep  -E\t'a|b c' \"x\\\"y\\\\z\" w\\ v "),
                ElementsAre("grep", "-E", "a|b c", "x\"y\\z", "w v"));
    EXPECT_THAT(split_command("a'b'\"c\"d ''"), ElementsAre("abcd", ""));
    EXPECT_THAT(split_command("awk '{print $1}'"), ElementsAre("awk", "{print $1}"));
    EXPECT_THAT(split_command("echo \"$HOME\""), ElementsAre("echo", "$HOME")) << "no variables";
    for (const char* bad : {"", "   ", "echo 'open", "echo \"open", "echo \\", "sort | uniq",
                            "a > b", "a; b", "echo $HOME", "a && b", "echo `id`", "(a)"}) {
        EXPECT_THROW((void)split_command(bad), cli::usage_error) << bad;
    }
    try {
        (void)split_command("sort | uniq -c");
    } catch (const cli::usage_error& e) {
        EXPECT_EQ(e.code, cli::exit_usage);
        EXPECT_THAT(e.message, HasSubstr("shell syntax"));
        EXPECT_THAT(e.message, HasSubstr("--shell"));
    }
}

// ---- the command runner ------------------------------------------------------------------------

TEST(worker_command, stdin_in_stdout_out_even_when_both_are_larger_than_a_pipe) {
    std::string big(3 << 20, 'x');
    for (std::size_t i = 0; i < big.size(); i += 4099) {
        big[i] = static_cast<char>('a' + i % 26);
    }
    command_limits limits;
    limits.max_output = big.size();
    const auto r = run({"cat"}, big, limits);
    ASSERT_TRUE(r.ok()) << r.reason(limits.max_output);
    EXPECT_EQ(r.output, big);
    EXPECT_TRUE(no_children());
}

TEST(worker_command, a_command_inherits_no_descriptor_but_its_three) {
    const auto r = run({"ls", "/proc/self/fd"});
    ASSERT_TRUE(r.ok()) << r.reason(1 << 20);
    // 0, 1, 2 and the directory ls reads.
    EXPECT_EQ(r.output, "0\n1\n2\n3\n");
}

TEST(worker_command, exit_status_signal_and_the_stderr_tail_make_the_reason) {
    auto r = run({"/bin/sh", "-c", "echo partial; echo 'no such user' >&2; exit 3"});
    EXPECT_EQ(r.status, command_status::exit_status);
    EXPECT_EQ(r.code, 3);
    EXPECT_EQ(r.reason(1 << 20), "exit status 3; stderr: no such user");

    r = run({"/bin/sh", "-c", "kill -SEGV $$"});
    EXPECT_EQ(r.status, command_status::signal);
    EXPECT_EQ(r.reason(1 << 20), "killed by signal 11 (SIGSEGV)");

    // Only the last KiB of a long stderr, marked as cut.
    r = run({"/bin/sh", "-c",
             "i=0; while [ $i -lt 500 ]; do echo line-$i >&2; i=$((i+1)); done; "
             "exit 1"});
    EXPECT_EQ(r.status, command_status::exit_status);
    EXPECT_LE(r.stderr_tail.size(), 1024U);
    EXPECT_THAT(r.reason(1 << 20), HasSubstr("; stderr: ..."));
    EXPECT_THAT(r.reason(1 << 20), ::testing::EndsWith("line-499"));

    r = run({"no-such-program-zmqkit"});
    EXPECT_EQ(r.status, command_status::not_run);
    EXPECT_EQ(r.reason(1 << 20), "cannot run 'no-such-program-zmqkit': No such file or directory");
    EXPECT_TRUE(no_children());
}

TEST(worker_command, a_timeout_stops_the_whole_group_with_sigterm_then_sigkill) {
    temp_directory dir("worker-timeout");
    const auto pidfile = dir.path() / "child.pid";
    command_limits limits;
    limits.timeout = 300ms;
    limits.kill_grace = 200ms;
    // The shell ignores SIGTERM (SIGKILL is needed); its background sleep is in its group.
    auto r = run({"/bin/sh", "-c",
                  "trap '' TERM; sleep 60 & echo $! > " + pidfile.string() +
                      "; while :; do sleep 0.05; done"},
                 {}, limits);
    EXPECT_EQ(r.status, command_status::timeout);
    EXPECT_TRUE(r.killed);
    EXPECT_EQ(r.reason(1 << 20), "timed out after 300 ms (--exec-timeout); killed with SIGKILL");
    EXPECT_GE(r.elapsed, 500ms);
    EXPECT_LT(r.elapsed, 5s);
    const pid_t background = std::stoi(read_file(pidfile));
    // Reparented and reaped by init once killed: gone.
    EXPECT_TRUE(eventually([&] { return ::kill(background, 0) != 0 && errno == ESRCH; }, 10s));

    limits.kill_grace = 5s; // SIGTERM is enough for sleep
    r = run({"sleep", "60"}, {}, limits);
    EXPECT_EQ(r.status, command_status::timeout);
    EXPECT_FALSE(r.killed);
    EXPECT_LT(r.elapsed, 3s);
    EXPECT_TRUE(no_children());
}

TEST(worker_command, a_flood_of_stdout_stops_the_command) {
    command_limits limits;
    limits.max_output = 100000;
    const auto r = run({"yes"}, {}, limits);
    EXPECT_EQ(r.status, command_status::flood);
    EXPECT_TRUE(r.output.empty());
    EXPECT_THAT(r.reason(limits.max_output),
                ::testing::StartsWith("output larger than --max-size (100000 bytes)"));
    EXPECT_TRUE(no_children());
}

TEST(worker_command, a_background_process_left_behind_is_killed_when_the_command_exits) {
    command_limits limits;
    limits.kill_grace = 200ms;
    // It holds the command's stdout: without the kill the output would never end.
    const auto r = run({"/bin/sh", "-c", "sleep 60 & echo $!"}, {}, limits);
    ASSERT_TRUE(r.ok()) << r.reason(1 << 20);
    const pid_t background = std::stoi(r.output);
    EXPECT_LT(r.elapsed, 5s);
    EXPECT_TRUE(eventually([&] { return ::kill(background, 0) != 0 && errno == ESRCH; }, 10s));
    EXPECT_TRUE(no_children());
}

TEST(worker_command, a_cutoff_stops_running_commands_from_another_thread) {
    command_cutoff cutoff;
    command_limits limits;
    limits.kill_grace = 10s;
    std::optional<cli::command_result> r;
    std::thread t([&] { r = run_command({"sleep", "60"}, environment(), {}, limits, cutoff, {}); });
    cutoff.now(); // a second signal: SIGKILL at once, whenever the command is seen running
    t.join();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, command_status::stopped);
    EXPECT_TRUE(r->killed);

    command_cutoff drain;
    drain.at(std::chrono::steady_clock::now() + 200ms);
    r = run_command({"sleep", "60"}, environment(), {}, limits, drain, {});
    EXPECT_EQ(r->status, command_status::drained);
    EXPECT_LT(r->elapsed, 5s);
    EXPECT_TRUE(no_children());
}

TEST(worker_command, on_wait_runs_while_the_command_runs) {
    command_limits limits;
    limits.wake = 20ms;
    static const command_cutoff never;
    std::atomic<int> calls{0};
    const auto r = run_command({"sleep", "0.3"}, environment(), {}, limits, never,
                               [&] { calls.fetch_add(1); });
    EXPECT_TRUE(r.ok());
    EXPECT_GE(calls.load(), 5); // 300 ms / 20 ms, with room for a slow machine
}

// ---- options
// -------------------------------------------------------------------------------------

TEST(worker_options, usage_errors_exit_64_with_a_clear_message) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{"--exec", "cat", "--reply", "x", "tcp://127.0.0.1:5556"},
         "--exec and --reply cannot be combined"},
        {{"--exec", "cat", "--concurrency", "0", "tcp://127.0.0.1:5556"},
         "--concurrency must be 1 to 1024, got 0"},
        {{"--exec", "cat"}, "no endpoint given"},
        {{"--exec", "cat", "--exec-timeout", "soon", "tcp://127.0.0.1:5556"},
         "--exec-timeout: bad duration 'soon'"},
        {{"--exec", "cat", "--exec-timeout", "0", "tcp://127.0.0.1:5556"},
         "--exec-timeout must be positive"},
        {{"--exec", "no-such-program-zmqkit --x", "tcp://127.0.0.1:5556"},
         "--exec: 'no-such-program-zmqkit' is not an executable in PATH"},
        {{"--exec", "sort | uniq", "tcp://127.0.0.1:5556"}, "is shell syntax"},
        {{"--mdp", "--exec", "cat", "tcp://127.0.0.1:5556"}, "--mdp needs --service NAME"},
        {{"--service", "echo", "--exec", "cat", "tcp://127.0.0.1:5556"}, "--service needs --mdp"},
        {{"--shell", "tcp://127.0.0.1:5556"}, "--shell needs --exec"},
        {{"--exec", "cat", "-f", "json", "tcp://127.0.0.1:5556"}, "-f/--format formats"},
        {{"--exec", "cat", "--max-size", "many", "tcp://127.0.0.1:5556"},
         "--max-size 'many' is not a non-negative integer"},
    };
    for (const auto& [args, message] : cases) {
        const auto [code, err] = usage_of(args);
        EXPECT_EQ(code, std::optional<int>(64)) << message;
        EXPECT_THAT(err, HasSubstr(message));
    }
}

TEST(worker_options, defaults_follow_the_protocol_and_the_exec_timeout) {
    auto parse = [](std::vector<const char*> args) {
        args.insert(args.begin(), "zmqkit-worker");
        auto parsed = cli::parse_worker_options(static_cast<int>(args.size()), args.data());
        return std::get<cli::worker_config>(parsed);
    };
    auto lb = parse({"--exec", "cat", "--exec-timeout", "7s", "tcp://127.0.0.1:5556"});
    EXPECT_EQ(lb.protocol, cli::worker_protocol::lb);
    EXPECT_EQ(lb.heartbeat_interval, 1000ms);
    EXPECT_EQ(lb.drain_timeout, 7000ms);
    EXPECT_THAT(lb.command, ElementsAre("cat"));
    auto mdp = parse({"--mdp", "--service", "echo", "--shell", "--exec", "cat | tr a b",
                      "tcp://127.0.0.1:5556"});
    EXPECT_EQ(mdp.heartbeat_interval, 2500ms);
    EXPECT_THAT(mdp.command, ElementsAre("/bin/sh", "-c", "cat | tr a b"));
}

// ---- the binary behind the brokers
// -----------------------------------------------------------------

TEST(worker_process, a_farm_of_two_shell_workers_answers_every_request_correctly) {
    proxy_process proxy("lb", {});
    ASSERT_FALSE(proxy.control.empty());
    auto a = start_worker({"--exec", "tr a-z A-Z"}, proxy.backend);
    auto b = start_worker({"--exec", "tr a-z A-Z", "-v"}, proxy.backend);
    zmq::context_t ctx;
    ASSERT_TRUE(lb_ready(ctx, proxy, 2));

    lb_client client(ctx, client_options(proxy.frontend));
    std::map<message_id, std::string> bodies;
    std::map<message_id, int> answers;
    constexpr int total = 60;
    for (int i = 0; i < total; ++i) {
        const std::string body = "request-" + std::to_string(i);
        const auto id = client.submit(message(body), [&, body](lb_result r) {
            ASSERT_TRUE(r.ok()) << r.reason();
            ++answers[r->causation_id()];
            EXPECT_EQ(r->body_view(), upper(body));
        });
        bodies[id] = body;
        if (client.pending() >= 8) {
            (void)client.poll(100ms);
        }
    }
    ASSERT_TRUE(client.flush(60s));
    ASSERT_EQ(answers.size(), bodies.size());
    for (const auto& [id, n] : answers) {
        EXPECT_EQ(n, 1);
        EXPECT_EQ(bodies.count(id), 1U);
    }
    // Both took part (LRU dispatch), and -v named each request's id.
    const auto json = status(ctx, proxy.control);
    EXPECT_EQ(json_number(json, "replies"), total);
    EXPECT_EQ(count_of(json, "\"served\":0"), 0) << json;
    EXPECT_TRUE(b->wait_for_stderr(std::regex("DEBUG.*request \\d+ \\(slot 0\\): exit status 0.*"
                                              "message_id=([0-9a-f-]+)"),
                                   10s)
                    .has_value());

    // zmqkit-send --req through the same farm.
    child_process send({bin_path("zmqkit-send"), "--req", "--timeout", "20s", proxy.frontend},
                       true);
    send.write_stdin("hello\nworld\n");
    send.close_stdin();
    EXPECT_EQ(send.wait(30s), std::optional<int>(0));
    EXPECT_EQ(send.read_stdout(1s), "HELLO\nWORLD\n");

    a->signal(SIGTERM);
    b->signal(SIGTERM);
    EXPECT_EQ(a->wait(20s), std::optional<int>(0));
    EXPECT_EQ(b->wait(20s), std::optional<int>(0));
}

TEST(worker_process, an_mdp_service_answers_and_its_errors_are_zmqkit_error_replies) {
    proxy_process proxy("mdp", {"--heartbeat-interval", "500ms"});
    ASSERT_FALSE(proxy.control.empty());
    auto echo = start_worker({"--mdp", "--service", "echo", "--heartbeat-interval", "500ms",
                              "--shell", "--exec", "printf '%s:' \"$ZMQKIT_SERVICE\"; cat"},
                             proxy.backend);
    auto failing = start_worker({"--mdp", "--service", "fail", "--heartbeat-interval", "500ms",
                                 "--shell", "--exec", "echo 'it broke' >&2; exit 2"},
                                proxy.backend);
    zmq::context_t ctx;
    mdp_client_options o;
    o.endpoint = proxy.frontend;
    o.timeout = 30s;
    o.attempts = 1;
    mdp_client client(ctx, o);
    ASSERT_TRUE(eventually(
        [&] {
            auto s = client.service_status("echo");
            auto f = client.service_status("fail");
            return s.ok() && *s == "200" && f.ok() && *f == "200";
        },
        20s));

    auto r = client.call("echo", {"hello"});
    ASSERT_TRUE(r.ok()) << r.reason();
    EXPECT_THAT(*r, ElementsAre("echo:hello"));
    EXPECT_FALSE(parse_mdp_error_reply(*r).has_value());
    // Several body frames reach stdin one after the other.
    r = client.call("echo", {"a", "b", "c"});
    ASSERT_TRUE(r.ok()) << r.reason();
    EXPECT_THAT(*r, ElementsAre("echo:abc"));

    r = client.call("fail", {"x"});
    ASSERT_TRUE(r.ok()) << r.reason();
    const auto error = parse_mdp_error_reply(*r);
    ASSERT_TRUE(error.has_value()) << ::testing::PrintToString(*r);
    EXPECT_EQ(error->code, lb_error::handler);
    EXPECT_EQ(error->reason, "exit status 2; stderr: it broke");
    // The worker stayed registered (an error reply, not a DISCONNECT) and serves the next one.
    r = client.call("fail", {"y"});
    ASSERT_TRUE(r.ok()) << r.reason();
    EXPECT_TRUE(parse_mdp_error_reply(*r).has_value());
    const auto json = status(ctx, proxy.control);
    EXPECT_EQ(json_number(json, "workers_disconnected"), 0) << json;

    echo->signal(SIGINT);
    failing->signal(SIGTERM);
    EXPECT_EQ(echo->wait(20s), std::optional<int>(0));
    EXPECT_EQ(failing->wait(20s), std::optional<int>(0));
}

TEST(worker_process, bad_commands_get_error_replies_and_the_worker_serves_the_next_request) {
    temp_directory dir("worker-bad");
    const auto runs = dir.path() / "runs.log";
    const auto script = write_script(dir.path(), "job.sh",
                                     "read -r what\n"
                                     "echo \"$ZMQKIT_MESSAGE_ID\" >> " +
                                         runs.string() +
                                         "\n"
                                         "case $what in\n"
                                         "hang) echo $$ > " +
                                         (dir.path() / "hang.pid").string() +
                                         "; sleep 60 ;;\n"
                                         "stubborn) trap '' TERM; while :; do sleep 0.05; done ;;\n"
                                         "flood) yes ;;\n"
                                         "fail) echo partial; echo 'bad things happened' >&2; "
                                         "exit 3 ;;\n"
                                         "*) printf 'ok:%s:%s:%s:%s' \"$what\" "
                                         "\"$ZMQKIT_MESSAGE_ID\" \"$ZMQKIT_CORRELATION_ID\" "
                                         "\"$ZMQKIT_ATTEMPT\" ;;\n"
                                         "esac\n");
    // A worker silent for 4 x 250 ms expires: the commands that hang run longer than that.
    proxy_process proxy("lb", {"--heartbeat-interval", "250ms", "--liveness", "4"});
    ASSERT_FALSE(proxy.control.empty());
    auto w = start_worker({"--exec", script, "--exec-timeout", "1500ms", "--kill-grace", "300ms",
                           "--max-size", "65536", "--heartbeat-interval", "250ms", "--liveness",
                           "4", "--stats"},
                          proxy.backend);
    zmq::context_t ctx;
    ASSERT_TRUE(lb_ready(ctx, proxy, 1));
    lb_client client(ctx, client_options(proxy.frontend));

    auto normal = [&](const std::string& what) {
        message m(what);
        m.header().stamp();
        const auto id = m.id();
        auto r = client.call(std::move(m));
        ASSERT_TRUE(r.ok()) << what << ": " << r.reason();
        EXPECT_EQ(r->body_view(),
                  "ok:" + what + ":" + id.to_string() + ":" + id.to_string() + ":1");
    };
    auto failed = [&](const std::string& what) {
        auto r = call(client, what);
        EXPECT_TRUE(r.is_failed()) << what;
        EXPECT_EQ(r.error(), lb_error::handler) << what;
        return r.reason();
    };

    normal("first");
    // A command that hangs: stopped at --exec-timeout with its whole group; the next one runs.
    EXPECT_EQ(failed("hang"), "timed out after 1.5 s (--exec-timeout); stopped with SIGTERM");
    const pid_t hung = std::stoi(read_file(dir.path() / "hang.pid"));
    EXPECT_TRUE(eventually([&] { return ::kill(-hung, 0) != 0 && errno == ESRCH; }, 10s))
        << "its process group is gone";
    normal("after-hang");
    // One that ignores SIGTERM: SIGKILL --kill-grace later. Both ran longer than the broker's
    // expiry: the worker heartbeats while a command runs, so no request is run elsewhere.
    EXPECT_EQ(failed("stubborn"), "timed out after 1.5 s (--exec-timeout); killed with SIGKILL");
    normal("after-stubborn");
    EXPECT_THAT(failed("flood"), ::testing::StartsWith("output larger than --max-size (65536 "
                                                       "bytes)"));
    normal("after-flood");
    EXPECT_EQ(failed("fail"), "exit status 3; stderr: bad things happened");
    normal("after-fail");
    // A request over --max-size is refused and never run.
    const auto runs_before = lines_in(runs);
    EXPECT_EQ(failed(std::string(65537, 'x')),
              "request of 65537 bytes is larger than --max-size (65536 bytes); not run");
    EXPECT_EQ(lines_in(runs), runs_before);
    normal("after-refused");

    auto json = status(ctx, proxy.control);
    EXPECT_EQ(json_number(json, "workers_expired"), 0) << json;
    EXPECT_EQ(json_number(json, "redispatched"), 0) << json;
    EXPECT_EQ(lines_in(runs), 10U) << "every command ran once: " << read_file(runs);

    w->signal(SIGTERM);
    EXPECT_EQ(w->wait(20s), std::optional<int>(0));
    const auto stats = w->wait_for_stderr(std::regex("(zmqkit-worker: stats: .*)"), 5s);
    ASSERT_TRUE(stats.has_value());
    EXPECT_THAT(*stats, HasSubstr("handled=11 failed=5 (exit=1 signal=0 timeout=2 flood=1 "
                                  "refused=1 not_run=0 cut=0)"));
}

TEST(worker_process, a_program_that_does_not_exist_is_a_clear_error) {
    // Found at start-up: a usage error.
    const auto [code, err] = usage_of({"--exec", "no-such-program-zmqkit", "tcp://127.0.0.1:1"});
    EXPECT_EQ(code, std::optional<int>(64));
    EXPECT_THAT(err, HasSubstr("'no-such-program-zmqkit' is not an executable in PATH"));
    // Through a shell, it is the shell's exit status 127 and its message.
    proxy_process proxy("lb", {});
    auto w = start_worker({"--shell", "--exec", "no-such-program-zmqkit"}, proxy.backend);
    zmq::context_t ctx;
    ASSERT_TRUE(lb_ready(ctx, proxy, 1));
    lb_client client(ctx, client_options(proxy.frontend));
    auto r = call(client, "x");
    ASSERT_TRUE(r.is_failed());
    EXPECT_THAT(r.reason(), ::testing::StartsWith("exit status 127; stderr: "));
    EXPECT_THAT(r.reason(), HasSubstr("not found"));
}

TEST(worker_process, concurrency_four_runs_four_commands_at_once) {
    temp_directory dir("worker-concurrency");
    fifo_gate gate(dir.path() / "gate");
    const auto started = dir.path() / "started.log";
    proxy_process proxy("lb", {});
    auto w =
        start_worker({"--concurrency", "4", "--shell", "--exec",
                      "body=$(cat); echo \"$ZMQKIT_WORKER_SLOT\" >> " + started.string() +
                          "; read -r _ < " + gate.path().string() + "; printf 'done:%s' \"$body\""},
                     proxy.backend);
    zmq::context_t ctx;
    ASSERT_TRUE(lb_ready(ctx, proxy, 4));
    lb_client client(ctx, client_options(proxy.frontend));
    outcomes_by_body requests(client);
    for (int i = 0; i < 5; ++i) {
        requests.submit("job-" + std::to_string(i));
    }
    // Four commands run at once, each in its own slot; the fifth waits at the broker.
    ASSERT_TRUE(eventually(
        [&] {
            (void)requests.done();
            return lines_in(started) == 4;
        },
        20s))
        << read_file(started);
    const auto text = read_file(started);
    for (const char* slot : {"0\n", "1\n", "2\n", "3\n"}) {
        EXPECT_THAT(text, HasSubstr(slot));
    }
    const auto json = status(ctx, proxy.control);
    EXPECT_EQ(json_number(json, "in_flight"), 4) << json;
    EXPECT_EQ(json_number(json, "queued"), 1) << json;
    EXPECT_EQ(requests.done(), 0U);

    gate.release(5);
    for (int i = 0; i < 5; ++i) {
        const std::string body = "job-" + std::to_string(i);
        const auto r = requests.wait(body);
        ASSERT_TRUE(r.has_value()) << body;
        ASSERT_TRUE(r->ok()) << r->reason();
        EXPECT_EQ((*r)->body_view(), "done:" + body);
    }
    EXPECT_EQ(lines_in(started), 5U);
}

TEST(worker_process, sigterm_finishes_the_running_command_takes_nothing_new_and_exits_0) {
    temp_directory dir("worker-drain");
    fifo_gate gate(dir.path() / "gate");
    const auto started = dir.path() / "started.log";
    proxy_process proxy("lb", {});
    auto a = start_worker({"--shell", "--exec",
                           "body=$(cat); echo \"$body\" >> " + started.string() + "; read -r _ < " +
                               gate.path().string() + "; printf 'A:%s' \"$body\""},
                          proxy.backend);
    zmq::context_t ctx;
    ASSERT_TRUE(lb_ready(ctx, proxy, 1));
    lb_client client(ctx, client_options(proxy.frontend));
    outcomes_by_body requests(client);
    requests.submit("first");
    ASSERT_TRUE(eventually(
        [&] {
            (void)requests.done();
            return lines_in(started) == 1;
        },
        20s));

    a->signal(SIGTERM);
    ASSERT_TRUE(a->wait_for_stderr(std::regex("draining: (1) request"), 10s).has_value());
    // Sent after the signal: A is busy, so it waits at the broker, and A must not take it.
    requests.submit("second");
    ASSERT_TRUE(
        eventually([&] { return json_number(status(ctx, proxy.control), "queued") == 1; }, 10s));
    gate.release(1);

    const auto r1 = requests.wait("first");
    ASSERT_TRUE(r1.has_value());
    ASSERT_TRUE(r1->ok()) << r1->reason();
    EXPECT_EQ((*r1)->body_view(), "A:first");
    EXPECT_EQ(a->wait(20s), std::optional<int>(0));
    EXPECT_EQ(lines_in(started), 1U) << "A ran one command: " << read_file(started);

    // The second request is still the broker's, and goes to the next worker.
    auto b = start_worker({"--reply", "B"}, proxy.backend);
    const auto r2 = requests.wait("second");
    ASSERT_TRUE(r2.has_value());
    ASSERT_TRUE(r2->ok()) << r2->reason();
    EXPECT_EQ((*r2)->body_view(), "B");
    EXPECT_THAT(b->read_stdout(2s), HasSubstr("second\n")) << "the debugging mode prints it";
}

TEST(worker_process, a_second_signal_kills_the_running_command_and_exits_1) {
    temp_directory dir("worker-second-signal");
    const auto started = dir.path() / "started";
    proxy_process proxy("lb", {});
    auto w = start_worker({"--shell", "--exec", "echo $$ > " + started.string() + "; sleep 60"},
                          proxy.backend);
    zmq::context_t ctx;
    ASSERT_TRUE(lb_ready(ctx, proxy, 1));
    lb_client client(ctx, client_options(proxy.frontend));
    outcomes_by_body requests(client);
    requests.submit("x");
    ASSERT_TRUE(eventually(
        [&] {
            (void)requests.done();
            return lines_in(started) == 1;
        },
        20s));
    const pid_t command = std::stoi(read_file(started));
    w->signal(SIGTERM);
    ASSERT_TRUE(w->wait_for_stderr(std::regex("draining: (1) request"), 10s).has_value());
    w->signal(SIGTERM);
    const auto r = requests.wait("x");
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->is_failed());
    EXPECT_THAT(r->reason(), HasSubstr("told to stop at once (a second signal)"));
    EXPECT_EQ(w->wait(20s), std::optional<int>(1));
    EXPECT_TRUE(eventually([&] { return ::kill(-command, 0) != 0 && errno == ESRCH; }, 10s))
        << "the command's group is gone";
}

TEST(worker_process, count_exits_after_n_requests_and_leaves_the_next_to_the_broker) {
    proxy_process proxy("lb", {});
    auto w = start_worker({"--exec", "cat", "--count", "3", "--stats"}, proxy.backend);
    zmq::context_t ctx;
    ASSERT_TRUE(lb_ready(ctx, proxy, 1));
    lb_client client(ctx, client_options(proxy.frontend));
    outcomes_by_body requests(client);
    for (int i = 0; i < 4; ++i) {
        requests.submit("n" + std::to_string(i));
    }
    for (int i = 0; i < 3; ++i) {
        const auto r = requests.wait("n" + std::to_string(i));
        ASSERT_TRUE(r.has_value());
        ASSERT_TRUE(r->ok());
        EXPECT_EQ((*r)->body_view(), "n" + std::to_string(i));
    }
    EXPECT_EQ(w->wait(20s), std::optional<int>(0));
    EXPECT_TRUE(w->wait_for_stderr(std::regex("stats: (handled=3) failed=0"), 5s).has_value());
    EXPECT_TRUE(
        eventually([&] { return json_number(status(ctx, proxy.control), "queued") == 1; }, 10s))
        << "the fourth waits for another worker";
}

TEST(worker_process, without_exec_it_prints_each_request_and_replies_with_reply_or_the_body) {
    proxy_process proxy("lb", {});
    auto w = start_worker({"-f", "%i %s\\n", "--reply", "ok"}, proxy.backend);
    auto echo = start_worker({"--concurrency", "2"}, proxy.backend);
    zmq::context_t ctx;
    ASSERT_TRUE(lb_ready(ctx, proxy, 3));
    lb_client client(ctx, client_options(proxy.frontend));
    std::map<std::string, int> replies;
    for (int i = 0; i < 6; ++i) {
        auto r = call(client, "ping-" + std::to_string(i));
        ASSERT_TRUE(r.ok()) << r.reason();
        ++replies[std::string(r->body_view()) == "ok" ? "ok" : "echo"];
    }
    EXPECT_EQ(replies["ok"] + replies["echo"], 6);
    EXPECT_GE(replies["ok"], 1);
    EXPECT_GE(replies["echo"], 1);
    const auto printed = w->read_stdout(2s) + "\n" + echo->read_stdout(2s);
    for (int i = 0; i < 6; ++i) {
        EXPECT_THAT(printed, HasSubstr("ping-" + std::to_string(i)));
    }
    EXPECT_THAT(printed, ::testing::ContainsRegex("[0-9a-f]{8}-[0-9a-f-]+ ping-"));
}
