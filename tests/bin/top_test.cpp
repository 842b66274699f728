// zmqkit-top against live proxies: the live view in a real terminal (tmux, 80x24) shows every
// device, sorts on `s`, quits on `q`; --once --json for scripts; a device that does not
// answer is "down" and exit 69; the table keeps to its width and height.
#include "zmqkit-top/top.hpp"

#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

#include <unistd.h>

using namespace zmqkit;
using namespace zmqkit::testing;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

// A program's exit status and stdout (bounded: 30 s).
struct ran {
    std::optional<int> rc;
    std::string out;
};
ran run(const std::vector<std::string>& argv) {
    child_process p(argv);
    ran r;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!r.rc && std::chrono::steady_clock::now() < deadline) {
        r.rc = p.wait(20ms);
    }
    r.out = p.read_stdout(100ms);
    return r;
}

// A proxy with a control socket in `dir`, running until the test ends.
struct proxy_with_control {
    std::string control;
    std::string frontend;
    child_process process;
    proxy_with_control(const std::filesystem::path& dir, const std::string& name,
                       std::vector<std::string> extra)
        : control("ipc://" + (dir / (name + ".ctl")).string()), process([&] {
              std::vector<std::string> argv{bin_path("zmqkit-proxy"),
                                            "--name",
                                            name,
                                            "--frontend",
                                            "tcp://127.0.0.1:*",
                                            "--backend",
                                            "tcp://127.0.0.1:*",
                                            "--control",
                                            "ipc://" + (dir / (name + ".ctl")).string()};
              argv.insert(argv.end(), extra.begin(), extra.end());
              return argv;
          }()) {
        frontend = process.wait_for_stderr(std::regex("frontend bound (\\S+)"), 30s).value_or("");
        (void)process.wait_for_stderr(std::regex("running"), 30s);
    }
};

// A tmux server of the test's own (-L), killed at the end.
class tmux_server {
public:
    tmux_server() : name_("zmqkit-top-test-" + std::to_string(::getpid())) {}
    ~tmux_server() { (void)tmux({"kill-server"}); }
    tmux_server(const tmux_server&) = delete;
    tmux_server& operator=(const tmux_server&) = delete;

    ran tmux(std::vector<std::string> args) const {
        args.insert(args.begin(), {"/usr/bin/tmux", "-L", name_}); // Debian's tmux (scripts/dev)
        return run(args);
    }
    [[nodiscard]] std::string screen() const {
        return tmux({"capture-pane", "-p", "-t", "top"}).out;
    }
    // Waits (bounded) until the screen matches; returns the last screen.
    std::string wait_screen(const std::function<bool(const std::string&)>& ok,
                            std::chrono::seconds timeout = 20s) const {
        std::string s;
        (void)eventually(
            [&] {
                s = screen();
                return ok(s);
            },
            timeout);
        return s;
    }

private:
    std::string name_;
};

std::string line_with(const std::string& screen, const std::string& word) {
    std::istringstream in(screen);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(word, 0) == 0) {
            return line;
        }
    }
    return {};
}

} // namespace

TEST(top_process, live_view_in_an_80x24_terminal_shows_every_device_sorts_and_quits) {
    temp_directory dir("top-live");
    proxy_with_control orders(dir.path(), "orders", {});
    proxy_with_control audit(dir.path(), "audit",
                             {"--mode", "durable", "--spool", (dir.path() / "spool").string(),
                              "--segment-size", "4MiB"});
    ASSERT_FALSE(audit.frontend.empty()) << ::testing::PrintToString(audit.process.stderr_lines());
    // 5000 messages confirmed into the durable proxy, no consumer: depth and lag 5000.
    const auto file = (dir.path() / "in.txt").string();
    {
        std::ofstream f(file);
        for (int i = 0; i < 5000; ++i) {
            f << "m" << i << "\n";
        }
    }
    ASSERT_EQ(run({bin_path("zmqkit-send"), "--wait-confirm", "--file", file, audit.frontend}).rc,
              std::optional<int>(0));

    ASSERT_TRUE(std::filesystem::exists("/usr/bin/tmux"))
        << "this test runs zmqkit-top in tmux: apt-get install tmux (scripts/dev does)";
    tmux_server tmux;
    const std::string command =
        bin_path("zmqkit-top") + " --interval 200ms " + orders.control + " " + audit.control;
    ASSERT_EQ(tmux.tmux({"new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command}).rc,
              std::optional<int>(0));
    auto screen = tmux.wait_screen([](const std::string& s) {
        return s.find("audit") != std::string::npos && s.find("orders") != std::string::npos;
    });
    ASSERT_THAT(screen, HasSubstr("NAME")) << screen;
    // Every column fits in 80: the last one is on the screen.
    EXPECT_THAT(line_with(screen, "NAME"), HasSubstr("CONN")) << screen;
    const auto row = line_with(screen, "audit");
    EXPECT_THAT(row, HasSubstr("durable")) << screen;
    EXPECT_THAT(row, HasSubstr("run")) << screen;
    EXPECT_THAT(row, ::testing::ContainsRegex("5\\.0k +5\\.0k")) << screen; // depth, lag
    EXPECT_THAT(line_with(screen, "orders"), HasSubstr("stream")) << screen;
    // Sorted by name: audit above orders.
    EXPECT_LT(screen.find("\naudit"), screen.find("\norders")) << screen;

    ASSERT_EQ(tmux.tmux({"send-keys", "-t", "top", "s"}).rc, std::optional<int>(0));
    screen = tmux.wait_screen(
        [](const std::string& s) { return s.find("sort: in") != std::string::npos; });
    EXPECT_THAT(screen, HasSubstr("sort: in")) << screen;

    // A device that stops answering shows as down, the others stay.
    orders.process.signal(SIGKILL);
    (void)orders.process.wait(10s);
    screen = tmux.wait_screen([](const std::string& s) {
        return s.find("down") != std::string::npos &&
               s.find("no answer within") != std::string::npos;
    });
    EXPECT_THAT(screen, HasSubstr("no answer within 500 ms")) << screen;
    EXPECT_THAT(line_with(screen, "audit"), HasSubstr("durable")) << screen;

    ASSERT_EQ(tmux.tmux({"send-keys", "-t", "top", "q"}).rc, std::optional<int>(0));
    // The view quits: its pane, and with it the session, goes away.
    EXPECT_TRUE(eventually(
        [&] {
            return tmux.tmux({"has-session", "-t", "top"}).rc != std::optional<int>(0);
        },
        10s))
        << "zmqkit-top did not quit on q";
}

TEST(top_process, once_json_for_scripts_and_exit_69_when_a_device_does_not_answer) {
    temp_directory dir("top-once");
    proxy_with_control audit(dir.path(), "audit",
                             {"--mode", "durable", "--spool", (dir.path() / "spool").string(),
                              "--segment-size", "4MiB"});
    ASSERT_EQ(
        run({bin_path("zmqkit-send"), "--wait-confirm", "--data", "a\nb\nc", audit.frontend}).rc,
        std::optional<int>(0));
    auto r =
        run({bin_path("zmqkit-top"), "--once", "--json", "--interval", "100ms", audit.control});
    ASSERT_EQ(r.rc, std::optional<int>(0)) << r.out;
    const auto doc = nlohmann::json::parse(r.out);
    ASSERT_EQ(doc["devices"].size(), 1u);
    const auto& d = doc["devices"][0];
    EXPECT_EQ(d["name"], "audit");
    EXPECT_EQ(d["mode"], "durable");
    EXPECT_EQ(d["state"], "running");
    EXPECT_EQ(d["depth"], 3);
    EXPECT_EQ(d["lag"], 3);
    EXPECT_TRUE(d["in_per_second"].is_number()); // two samples, one interval apart
    EXPECT_GE(d["oldest_age_ms"].get<std::int64_t>(), 0);

    const std::string nobody = "ipc://" + (dir.path() / "nobody.ctl").string();
    r = run({bin_path("zmqkit-top"), "--once", "--timeout", "200ms", "--interval", "100ms",
             audit.control, nobody});
    EXPECT_EQ(r.rc, std::optional<int>(69)) << r.out;
    EXPECT_THAT(line_with(r.out, "audit"), HasSubstr("durable")) << r.out;
    EXPECT_THAT(r.out, HasSubstr(nobody + ": no answer within 200 ms")) << r.out;

    for (const auto& bad : std::vector<std::vector<std::string>>{
             {bin_path("zmqkit-top")},
             {bin_path("zmqkit-top"), "--sort", "size", audit.control},
             {bin_path("zmqkit-top"), "--interval", "10ms", audit.control},
             {bin_path("zmqkit-top"), "-n", "0", audit.control},
             {bin_path("zmqkit-top"), "--once", "tcp://nowhere"}}) {
        EXPECT_EQ(run(bad).rc, std::optional<int>(64)) << ::testing::PrintToString(bad);
    }
}

TEST(top_view, the_table_keeps_to_the_terminal_and_sorts_numbers_down_and_down_devices_last) {
    std::vector<cli::top_row> rows;
    for (int i = 0; i < 30; ++i) {
        cli::top_row r;
        r.name = "dev" + std::to_string(i);
        r.endpoint = "ipc://x" + std::to_string(i);
        r.mode = "durable";
        r.state = i == 0 ? "down" : "running";
        r.lag = static_cast<std::uint64_t>(i * 1000);
        rows.push_back(r);
    }
    cli::sort_rows(rows, cli::top_sort::lag);
    EXPECT_EQ(rows.front().name, "dev29");
    EXPECT_EQ(rows.back().name, "dev0"); // down: last, whatever it shows
    const auto text = cli::render_table(rows, std::string(200, 't'), 80, 24);
    std::istringstream in(text);
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
        ++lines;
        EXPECT_LE(line.size(), 80u) << line;
    }
    EXPECT_EQ(lines, 23); // title, heads, 20 rows, "... N more"
    EXPECT_THAT(text, HasSubstr("... 10 more line(s)"));
    EXPECT_THAT(text, HasSubstr("29.0k"));

    const auto now = nlohmann::json::parse(
        R"({"state":"running","name":"q","statistics":{"frontend":{"messages_in":1500},"backend":{"messages_out":700}},"workers":[{},{}],"queued":4,"in_flight":2,"errors":1,"connections":{"frontend":{"open":3},"backend":{"open":2}},"uptime_seconds":9})");
    const auto before = nlohmann::json::parse(
        R"({"statistics":{"frontend":{"messages_in":500},"backend":{"messages_out":200}}})");
    const auto r = cli::row_from_status("ipc://q", now, &before, 2.0);
    EXPECT_EQ(r.mode, "lb");
    EXPECT_EQ(r.in_rate, std::optional<double>(500.0));
    EXPECT_EQ(r.out_rate, std::optional<double>(250.0));
    EXPECT_EQ(r.workers, std::optional<std::uint64_t>(2));
    EXPECT_EQ(r.depth, std::optional<std::uint64_t>(4));
    EXPECT_EQ(r.drops, std::optional<std::uint64_t>(1));
    EXPECT_EQ(r.connections, std::optional<std::uint64_t>(5));
    // No earlier document (or a malformed one): no rates, never a crash.
    EXPECT_FALSE(cli::row_from_status("x", now, nullptr, 0).in_rate);
    EXPECT_FALSE(
        cli::row_from_status("x", nlohmann::json::parse(R"({"statistics":7})"), &now, 1).in_rate);
}
