// Logs an operator can follow, on the real binaries: one conversation found by its correlation
// id in the JSON logs of three processes (zmqkit-send -> zmqkit-proxy --mode durable ->
// zmqkit-recv), with the same message id and trace id in each, and the proxy's connection
// lines (peer address, side) at info.
#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <regex>

using namespace zmqkit;
using namespace zmqkit::testing;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

// Every stderr line of a process that has exited (or is about to), each parsed as JSON: a
// line that is not JSON fails the test (--log-format json promises one object per line).
std::vector<nlohmann::json> json_lines(child_process& p) {
    while (p.next_stderr_line(300ms)) { // the process has exited: its lines are in the pipe
    }
    std::vector<nlohmann::json> lines;
    for (const auto& line : p.stderr_lines()) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
        if (!j.is_discarded()) {
            lines.push_back(std::move(j));
        }
    }
    return lines;
}

// The "msg" of each line that carries `correlation_id`, in order.
std::vector<std::string> conversation(const std::vector<nlohmann::json>& lines,
                                      const std::string& correlation_id,
                                      const std::string& message_id, const std::string& trace_id) {
    std::vector<std::string> path;
    for (const auto& j : lines) {
        if (j.value("correlation_id", "") != correlation_id) {
            continue;
        }
        EXPECT_EQ(j.value("message_id", ""), message_id) << j.dump();
        EXPECT_EQ(j.value("trace_id", ""), trace_id) << j.dump();
        path.push_back(j.value("msg", ""));
    }
    return path;
}

} // namespace

TEST(logs_process, a_conversation_is_followed_by_its_correlation_id_across_three_processes) {
    temp_directory dir("logs-conversation");
    const std::vector<std::string> json_debug{"--log-format", "json", "-v"};
    std::vector<std::string> proxy_argv{bin_path("zmqkit-proxy"),
                                        "--mode",
                                        "durable",
                                        "--spool",
                                        (dir.path() / "spool").string(),
                                        "--segment-size",
                                        "4MiB",
                                        "--frontend",
                                        "tcp://127.0.0.1:*",
                                        "--backend",
                                        "tcp://127.0.0.1:*",
                                        "--name",
                                        "orders"};
    proxy_argv.insert(proxy_argv.end(), json_debug.begin(), json_debug.end());
    child_process proxy(proxy_argv);
    const auto frontend =
        proxy.wait_for_stderr(std::regex("frontend bound ([^\"\\s]+)"), 30s).value_or("");
    const auto backend =
        proxy.wait_for_stderr(std::regex("backend bound ([^\"\\s]+)"), 30s).value_or("");
    ASSERT_FALSE(frontend.empty() || backend.empty())
        << ::testing::PrintToString(proxy.stderr_lines());

    const std::string correlation = "0193a5b0-7c1e-7d2f-8a3b-4c5d6e7f8091";
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const std::string record = R"({"headers":{"correlation_id":")" + correlation +
                               R"(","traceparent":"00-)" + trace +
                               R"(-00f067aa0ba902b7-01"},"body":"order 42"})";
    // Another conversation in the same run: its lines must not show up under the first id.
    const std::string other = R"({"body":"order 43"})";
    // No resend within the test (a slow fsync must not add a second "stored" line).
    std::vector<std::string> send_argv{bin_path("zmqkit-send"), "--wait-confirm",
                                       "--retry-interval", "60s", "--json"};
    send_argv.insert(send_argv.end(), json_debug.begin(), json_debug.end());
    send_argv.push_back(frontend);
    child_process sender(send_argv, true);
    sender.write_stdin(record + "\n" + other + "\n");
    sender.close_stdin();
    std::vector<std::string> recv_argv{
        bin_path("zmqkit-recv"), "--ack", "-c", "2", "--timeout", "30s", "-f", "%i\\n"};
    recv_argv.insert(recv_argv.end(), json_debug.begin(), json_debug.end());
    recv_argv.push_back(backend);
    child_process consumer(recv_argv);

    ASSERT_EQ(sender.wait(30s), std::optional<int>(0))
        << ::testing::PrintToString(sender.stderr_lines());
    ASSERT_EQ(consumer.wait(30s), std::optional<int>(0))
        << ::testing::PrintToString(consumer.stderr_lines());
    const auto received_ids = consumer.read_stdout(1s);
    // The proxy may log the acks and the two disconnects after the peers exit: wait for them
    // (bounded), then stop the proxy.
    const auto count = [&](const std::string& what) {
        return std::count_if(proxy.stderr_lines().begin(), proxy.stderr_lines().end(),
                             [&](const std::string& l) { return l.find(what) != l.npos; });
    };
    const auto until = std::chrono::steady_clock::now() + 20s;
    while ((count("acked by consumer") < 2 || count("\"msg\":\"disconnected 127.0.0.1:") < 2) &&
           std::chrono::steady_clock::now() < until) {
        (void)proxy.next_stderr_line(200ms);
    }
    proxy.signal(SIGTERM);
    ASSERT_EQ(proxy.wait(30s), std::optional<int>(0));

    const auto send_lines = json_lines(sender);
    const auto proxy_lines = json_lines(proxy);
    const auto recv_lines = json_lines(consumer);
    // The message id: the sender's line names it.
    std::string id;
    for (const auto& j : send_lines) {
        if (j.value("correlation_id", "") == correlation) {
            id = j.value("message_id", "");
        }
    }
    ASSERT_EQ(id.size(), 36u) << ::testing::PrintToString(sender.stderr_lines());
    EXPECT_THAT(received_ids, HasSubstr(id));

    // `grep <correlation id>` over the three logs: the conversation's path, and only it.
    EXPECT_EQ(conversation(send_lines, correlation, id, trace),
              std::vector<std::string>{"sent " + id});
    const auto through_proxy = conversation(proxy_lines, correlation, id, trace);
    ASSERT_EQ(through_proxy.size(), 3u) << ::testing::PrintToString(proxy.stderr_lines());
    EXPECT_EQ(through_proxy[0], "stored");
    EXPECT_THAT(through_proxy[1], StartsWith("delivering to consumer "));
    EXPECT_THAT(through_proxy[1], HasSubstr("attempt 1)"));
    EXPECT_THAT(through_proxy[2], StartsWith("acked by consumer "));
    EXPECT_EQ(conversation(recv_lines, correlation, id, trace),
              std::vector<std::string>{"received"});
    for (const auto& j : proxy_lines) {
        EXPECT_EQ(j.value("component", "").rfind("orders", 0), 0u) << j.dump(); // --name
        EXPECT_EQ(j.value("ts", "").size(), 27u) << j.dump();
    }

    // Connections at info, with the peer's address and the side, counted once each way.
    int accepted = 0;
    int disconnected = 0;
    for (const auto& j : proxy_lines) {
        const std::string msg = j.value("msg", "");
        if (j.value("component", "") == "orders.frontend" ||
            j.value("component", "") == "orders.backend") {
            EXPECT_EQ(j.value("level", ""), "info") << j.dump();
            if (msg.rfind("accepted 127.0.0.1:", 0) == 0) {
                ++accepted;
                EXPECT_THAT(msg, HasSubstr(j.value("component", "") == "orders.frontend"
                                               ? " on " + frontend
                                               : " on " + backend));
            } else if (msg.rfind("disconnected 127.0.0.1:", 0) == 0) {
                ++disconnected;
            }
        }
    }
    EXPECT_EQ(accepted, 2) << ::testing::PrintToString(proxy.stderr_lines());
    EXPECT_EQ(disconnected, 2) << ::testing::PrintToString(proxy.stderr_lines());
}
