// --metrics-listen on the real binaries, checked by the real Prometheus tools: every proxy mode's
// exposition passes `promtool check metrics`, and a Prometheus server (Debian's, started here on
// 127.0.0.1 with a 1 s scrape interval) scrapes a proxy and a zmqkit-recv under load; its query
// API then reports the counts the test sent and the age quantile of what it sent.
#include <zmqkit/message.hpp>
#include <zmqkit/socket.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>

using namespace zmqkit;
using namespace zmqkit::testing;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

namespace fs = std::filesystem;

// "http://127.0.0.1:PORT/metrics" -> PORT.
int port_of(const std::string& url) {
    std::smatch m;
    if (!std::regex_search(url, m, std::regex(":(\\d+)/"))) {
        return -1;
    }
    return std::stoi(m[1]);
}

httplib::Result http_get(int port, const std::string& path) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(5, 0);
    client.set_read_timeout(10, 0);
    return client.Get(path);
}

// A fresh directory under the system's temporary directory, removed with the object.
struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "zmqkit-metrics-XXXXXX").string();
        path = ::mkdtemp(pattern.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

// A TCP port on 127.0.0.1 that was free a moment ago (for Prometheus's own listener, which
// cannot say which port it picked).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

struct proxy_with_metrics {
    child_process process;
    std::string frontend;
    std::string backend;
    int metrics_port = -1;

    explicit proxy_with_metrics(const std::string& mode, std::vector<std::string> extra = {})
        : process([&] {
              std::vector<std::string> argv{bin_path("zmqkit-proxy"),
                                            "--mode",
                                            mode,
                                            "--frontend",
                                            "tcp://127.0.0.1:*",
                                            "--backend",
                                            "tcp://127.0.0.1:*",
                                            "--metrics-listen",
                                            "127.0.0.1:0"};
              argv.insert(argv.end(), extra.begin(), extra.end());
              return argv;
          }()) {
        frontend = process.wait_for_stderr(std::regex("frontend bound (\\S+)"), 20s).value_or("");
        backend = process.wait_for_stderr(std::regex("backend bound (\\S+)"), 20s).value_or("");
        metrics_port =
            port_of(process.wait_for_stderr(std::regex("metrics at (\\S+)"), 20s).value_or(""));
    }
};

// The value of a one-sample instant query, nullopt while Prometheus has none (not scraped yet).
std::optional<double> query(int prometheus_port, const std::string& promql) {
    const auto res = http_get(prometheus_port,
                              "/api/v1/query?query=" + httplib::detail::encode_query_param(promql));
    if (!res || res->status != 200) {
        return std::nullopt;
    }
    const auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") {
        return std::nullopt;
    }
    const auto& result = j["data"]["result"];
    if (!result.is_array() || result.size() != 1) {
        return std::nullopt;
    }
    const std::string value = result[0]["value"][1];
    return std::stod(value);
}

} // namespace

TEST(metrics_process, every_proxy_mode_serves_an_exposition_promtool_accepts) {
    ASSERT_TRUE(fs::exists("/usr/bin/promtool"))
        << "promtool comes with Debian's prometheus package (scripts/dev installs it)";
    temp_dir dir;
    std::ifstream doc_file(source_dir() / "docs" / "operations.md");
    const std::string operations_md((std::istreambuf_iterator<char>(doc_file)),
                                    std::istreambuf_iterator<char>());
    ASSERT_FALSE(operations_md.empty());
    for (std::string mode : {"stream", "durable", "lb", "mdp", "mdp --titanic", "forwarder"}) {
        std::vector<std::string> extra;
        if (mode == "durable") {
            extra = {"--spool", (dir.path / "spool").string()};
        }
        if (mode == "mdp --titanic") { // the Titanic server's metrics beside the broker's
            mode = "mdp";
            extra = {"--titanic", (dir.path / "titanic").string()};
        }
        proxy_with_metrics proxy(mode, extra);
        ASSERT_GT(proxy.metrics_port, 0) << mode;
        const auto res = http_get(proxy.metrics_port, "/metrics");
        ASSERT_TRUE(res) << mode;
        ASSERT_EQ(res->status, 200) << mode;
        EXPECT_THAT(res->body, HasSubstr("zmqkit_build_info{")) << mode;
        EXPECT_THAT(res->body, HasSubstr("zmqkit_device_messages_in_total{component=\"proxy\"}"))
            << mode;

        // Every family served is in docs/operations.md's table.
        const std::regex type_line("# TYPE (\\S+) ");
        for (auto it = std::sregex_iterator(res->body.begin(), res->body.end(), type_line);
             it != std::sregex_iterator(); ++it) {
            EXPECT_THAT(operations_md, HasSubstr("`" + (*it)[1].str() + "`"))
                << mode << ": metric " << (*it)[1] << " is not documented";
        }

        child_process promtool({"/usr/bin/promtool", "check", "metrics"}, true);
        promtool.write_stdin(res->body);
        promtool.close_stdin();
        const auto status = promtool.wait(30s);
        std::string said;
        while (const auto line = promtool.next_stderr_line(0ms)) {
            said += *line + "\n";
        }
        EXPECT_EQ(status, 0) << mode << ": " << said << promtool.read_stdout(0ms);

        const auto st = http_get(proxy.metrics_port, "/status");
        ASSERT_TRUE(st) << mode;
        const auto j = nlohmann::json::parse(st->body, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << mode << ": " << st->body;
        EXPECT_TRUE(j.contains("state")) << mode << ": " << st->body;

        proxy.process.signal(SIGTERM);
        EXPECT_EQ(proxy.process.wait(20s), 0) << mode;
    }
}

TEST(metrics_process, a_bad_or_busy_metrics_address_is_a_clear_error) {
    {
        child_process bad({bin_path("zmqkit-proxy"), "--frontend", "tcp://127.0.0.1:*", "--backend",
                           "tcp://127.0.0.1:*", "--metrics-listen", "9464"});
        EXPECT_EQ(bad.wait(20s), 64);
        EXPECT_TRUE(bad.wait_for_stderr(std::regex("--metrics-listen: .*has no port"), 1s));
    }
    proxy_with_metrics first("stream");
    ASSERT_GT(first.metrics_port, 0);
    child_process busy({bin_path("zmqkit-recv"), "--metrics-listen",
                        "127.0.0.1:" + std::to_string(first.metrics_port), ">" + first.backend});
    EXPECT_EQ(busy.wait(20s), 69);
    EXPECT_TRUE(busy.wait_for_stderr(std::regex("cannot listen for metrics on"), 1s));
}

TEST(metrics_process, a_real_prometheus_scrapes_a_proxy_and_a_receiver_under_load) {
    ASSERT_TRUE(fs::exists("/usr/bin/prometheus"))
        << "Debian's prometheus package (scripts/dev installs it)";
    temp_dir dir;
    proxy_with_metrics proxy("stream");
    ASSERT_GT(proxy.metrics_port, 0);
    child_process recv(
        {bin_path("zmqkit-recv"), "--metrics-listen", "127.0.0.1:0", ">" + proxy.backend});
    const int recv_port =
        port_of(recv.wait_for_stderr(std::regex("metrics at (\\S+)"), 20s).value_or(""));
    ASSERT_GT(recv_port, 0);

    const int prometheus_port = free_port();
    ASSERT_GT(prometheus_port, 0);
    {
        std::ofstream config(dir.path / "prometheus.yml");
        config << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
               << "scrape_configs:\n  - job_name: zmqkit\n    static_configs:\n"
               << "      - targets: ['127.0.0.1:" << proxy.metrics_port
               << "', '127.0.0.1:" << recv_port << "']\n";
    }
    child_process prometheus({"/usr/bin/prometheus",
                              "--config.file=" + (dir.path / "prometheus.yml").string(),
                              "--storage.tsdb.path=" + (dir.path / "data").string(),
                              "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port)});

    // 1000 messages, each stamped three seconds in the past: the receiver's age histogram must
    // put their median between the 2.5 s and 5 s bounds.
    constexpr int count = 1000;
    zmq::context_t ctx;
    zmqkit::socket push(ctx, zmq::socket_type::push);
    push.attach(proxy.frontend, endpoint_action::connect);
    const auto three_seconds_ago = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       (std::chrono::system_clock::now() - 3s).time_since_epoch())
                                       .count();
    for (int i = 0; i < count; ++i) {
        message m{"m" + std::to_string(i)};
        m.header().stamp(); // an id now, so that sending keeps the timestamp set below
        m.header().timestamp_ns = static_cast<std::uint64_t>(three_seconds_ago);
        ASSERT_TRUE(push.send(m));
    }

    const auto eventually_equals = [&](const std::string& promql, double expected) {
        std::optional<double> last;
        const bool ok = eventually(
            [&] {
                last = query(prometheus_port, promql);
                return last && *last == expected;
            },
            90s);
        EXPECT_TRUE(ok) << promql << " = " << (last ? std::to_string(*last) : "no sample");
    };
    eventually_equals("up{instance=\"127.0.0.1:" + std::to_string(proxy.metrics_port) + "\"}", 1);
    eventually_equals(R"(zmqkit_device_messages_in_total{component="proxy"})", count);
    eventually_equals(R"(zmqkit_device_messages_out_total{component="proxy"})", count);
    eventually_equals("zmqkit_recv_age_seconds_count", count);
    const auto median =
        query(prometheus_port, "histogram_quantile(0.5, zmqkit_recv_age_seconds_bucket)");
    ASSERT_TRUE(median);
    EXPECT_GT(*median, 2.5);
    EXPECT_LE(*median, 5.0);

    recv.signal(SIGTERM);
    EXPECT_EQ(recv.wait(20s), 0);
    proxy.process.signal(SIGTERM);
    EXPECT_EQ(proxy.process.wait(20s), 0);
    prometheus.signal(SIGTERM);
    EXPECT_TRUE(prometheus.wait(30s).has_value());
}

TEST(metrics_process, stats_interval_lines_carry_rates_and_the_durable_depth) {
    temp_dir dir;
    child_process proxy({bin_path("zmqkit-proxy"), "--mode", "durable", "--spool",
                         (dir.path / "spool").string(), "--frontend-pull", "tcp://127.0.0.1:*",
                         "--backend", "tcp://127.0.0.1:*", "--stats-interval", "200ms"});
    const auto pull =
        proxy.wait_for_stderr(std::regex("frontend-pull bound (\\S+)"), 20s).value_or("");
    ASSERT_FALSE(pull.empty());
    constexpr int count = 100;
    zmq::context_t ctx;
    zmqkit::socket push(ctx, zmq::socket_type::push);
    push.attach(pull, endpoint_action::connect);
    for (int i = 0; i < count; ++i) {
        ASSERT_TRUE(push.send(message{"m" + std::to_string(i)}));
    }
    // No consumer: all 100 wait in the spool. A line after they arrived says so, and the line
    // that counted them shows a frontend rate above zero.
    bool saw_rate = false;
    std::optional<nlohmann::json> last;
    ASSERT_TRUE(eventually(
        [&] {
            while (const auto line = proxy.next_stderr_line(100ms)) {
                const auto at = line->find("statistics {");
                if (at == std::string::npos) {
                    continue;
                }
                auto j = nlohmann::json::parse(line->substr(at + 11), nullptr, false);
                if (j.is_discarded()) {
                    continue;
                }
                saw_rate = saw_rate || j["rates"]["frontend_in_per_s"].get<double>() > 0;
                last = j;
            }
            return last && (*last)["spool"]["messages"] == count && saw_rate &&
                   (*last)["rates"]["frontend_in_per_s"].get<double>() == 0.0;
        },
        20s))
        << (last ? last->dump() : "no statistics line");
    EXPECT_EQ((*last)["spool"]["consumer_lag"], count);
    EXPECT_EQ((*last)["frontend"]["messages_in"], count);
    EXPECT_GE((*last)["spool"]["oldest_age_ms"].get<int>(), 0);
    proxy.signal(SIGTERM);
    EXPECT_EQ(proxy.wait(20s), 0);
}
