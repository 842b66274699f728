// zmqkit-proxy as a real process: start, route, STATISTICS on the control socket, SIGTERM
// drain, TERMINATE, bad usage, a port already in use (also with -v or a secured side).
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/socket.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <regex>
#include <unordered_set>

using namespace zmqkit;
using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

struct running_proxy {
    child_process process;
    std::string frontend;
    std::string backend;
    std::string control;

    explicit running_proxy(std::vector<std::string> extra = {})
        : process([&] {
              std::vector<std::string> argv{
                  bin_path("zmqkit-proxy"), "--frontend", "tcp://127.0.0.1:*", "--backend",
                  "tcp://127.0.0.1:*",      "--control",  "tcp://127.0.0.1:*"};
              argv.insert(argv.end(), extra.begin(), extra.end());
              return argv;
          }()) {
        frontend = process.wait_for_stderr(std::regex("frontend bound (\\S+)"), 10s).value_or("");
        backend = process.wait_for_stderr(std::regex("backend bound (\\S+)"), 10s).value_or("");
        control = process.wait_for_stderr(std::regex("control bound (\\S+)"), 10s).value_or("");
    }
};

std::vector<std::string> control_request(zmq::context_t& ctx, const std::string& endpoint,
                                         const std::string& command) {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(endpoint);
    return request(req, command);
}

} // namespace

TEST(proxy_process, routes_counts_and_drains_on_sigterm) {
    running_proxy proxy;
    ASSERT_THAT(proxy.frontend, ::testing::StartsWith("tcp://127.0.0.1:"));
    ASSERT_THAT(proxy.backend, ::testing::StartsWith("tcp://127.0.0.1:"));
    ASSERT_THAT(proxy.control, ::testing::StartsWith("tcp://127.0.0.1:"));

    zmq::context_t ctx;
    metrics_registry registry;
    socket_options so;
    so.registry = &registry;
    zmqkit::socket push(ctx, zmq::socket_type::push, so);
    push.attach(proxy.frontend, endpoint_action::connect);
    zmqkit::socket pull(ctx, zmq::socket_type::pull, so);
    pull.attach(proxy.backend, endpoint_action::connect);

    constexpr int count = 10000;
    std::unordered_set<message_id, message_id_hash> sent;
    for (int i = 0; i < count; ++i) {
        message m{"m" + std::to_string(i)};
        m.header().type = "test";
        ASSERT_TRUE(push.send(m));
        sent.insert(m.id());
    }
    for (int i = 0; i < count; ++i) {
        auto m = pull.recv(10s);
        ASSERT_TRUE(m.has_value()) << "after " << i;
        ASSERT_EQ(sent.erase(m->id()), 1U);
        ASSERT_EQ(m->header().type, "test");
    }
    EXPECT_TRUE(sent.empty());

    auto stats = proxy_statistics::from_frames(control_request(ctx, proxy.control, "STATISTICS"));
    ASSERT_TRUE(stats.has_value());
    EXPECT_EQ(stats->frontend_messages_in, static_cast<std::uint64_t>(count));
    EXPECT_EQ(stats->backend_messages_out, static_cast<std::uint64_t>(count));
    EXPECT_GT(stats->frontend_bytes_in, static_cast<std::uint64_t>(count) * 30U);
    EXPECT_THAT(control_request(ctx, proxy.control, "STATUS").at(0), HasSubstr("\"running\""));

    proxy.process.signal(SIGTERM);
    auto code = proxy.process.wait(10s);
    ASSERT_TRUE(code.has_value()) << "SIGTERM must stop the proxy within its drain deadline";
    EXPECT_EQ(*code, 0);
    (void)proxy.process.wait_for_stderr(std::regex("final statistics"), 1s);
    std::string all;
    for (const auto& l : proxy.process.stderr_lines()) {
        all += l + "\n";
    }
    EXPECT_THAT(all, HasSubstr("received Terminated, draining"));
    EXPECT_THAT(all, HasSubstr("final statistics {\"frontend\":{\"messages_in\":10000"));
}

TEST(proxy_process, pause_and_resume_through_the_control_socket) {
    running_proxy proxy;
    zmq::context_t ctx;
    metrics_registry registry;
    socket_options so;
    so.registry = &registry;
    zmqkit::socket push(ctx, zmq::socket_type::push, so);
    push.attach(proxy.frontend, endpoint_action::connect);
    zmqkit::socket pull(ctx, zmq::socket_type::pull, so);
    pull.attach(proxy.backend, endpoint_action::connect);
    ASSERT_TRUE(push.send(message{"first"}));
    ASSERT_TRUE(pull.recv(10s).has_value());
    EXPECT_EQ(control_request(ctx, proxy.control, "PAUSE"), (std::vector<std::string>{"OK"}));
    ASSERT_TRUE(push.send(message{"held"}));
    EXPECT_FALSE(pull.recv(100ms).has_value());
    EXPECT_THAT(control_request(ctx, proxy.control, "STATUS").at(0), HasSubstr("\"paused\""));
    EXPECT_EQ(control_request(ctx, proxy.control, "RESUME"), (std::vector<std::string>{"OK"}));
    auto held = pull.recv(10s);
    ASSERT_TRUE(held.has_value());
    EXPECT_EQ(held->body_view(), "held");
}

TEST(proxy_process, terminate_command_stops_it_cleanly) {
    running_proxy proxy;
    zmq::context_t ctx;
    EXPECT_EQ(control_request(ctx, proxy.control, "TERMINATE"), (std::vector<std::string>{"OK"}));
    auto code = proxy.process.wait(10s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0);
}

TEST(proxy_process, bad_usage_exits_64_with_a_reason) {
    {
        child_process p({bin_path("zmqkit-proxy"), "--frontend", "tcp://127.0.0.1:*"});
        EXPECT_EQ(p.wait(10s), 64);
        auto line = p.wait_for_stderr(std::regex("error: (.*)"), 1s);
        ASSERT_TRUE(line.has_value());
        EXPECT_THAT(*line, HasSubstr("--backend are required"));
    }
    {
        child_process p({bin_path("zmqkit-proxy"), "--frontend", "tcp://127.0.0.1", "--backend",
                         "tcp://127.0.0.1:*"});
        EXPECT_EQ(p.wait(10s), 64);
        auto line = p.wait_for_stderr(std::regex("error: (.*)"), 1s);
        ASSERT_TRUE(line.has_value());
        EXPECT_THAT(*line, HasSubstr("bad endpoint 'tcp://127.0.0.1': missing ':port'"));
    }
    {
        child_process p({bin_path("zmqkit-proxy"), "--bogus"});
        EXPECT_EQ(p.wait(10s), 64);
    }
}

TEST(proxy_process, help_prints_usage_and_exits_0) {
    child_process p({bin_path("zmqkit-proxy"), "--help"});
    ASSERT_EQ(p.wait(10s), 0);
    const auto out = p.read_stdout(1s);
    EXPECT_THAT(out, HasSubstr("Usage: zmqkit-proxy"));
    EXPECT_THAT(out, HasSubstr("Examples:"));
}

TEST(proxy_process, a_port_in_use_exits_69) {
    zmq::context_t ctx;
    zmq::socket_t holder(ctx, zmq::socket_type::pull);
    holder.set(zmq::sockopt::linger, 0);
    holder.bind("tcp://127.0.0.1:*");
    const std::string taken = holder.get(zmq::sockopt::last_endpoint);
    child_process p(
        {bin_path("zmqkit-proxy"), "--frontend", taken, "--backend", "tcp://127.0.0.1:*"});
    EXPECT_EQ(p.wait(10s), 69);
    auto line = p.wait_for_stderr(std::regex("error: (.*)"), 1s);
    ASSERT_TRUE(line.has_value());
    EXPECT_THAT(*line, HasSubstr("cannot bind to " + taken));
    EXPECT_THAT(*line, HasSubstr("Address already in use"));
}

// A monitored socket (-v, or a secured side) used to report a port in use as "Resource
// temporarily unavailable": the monitor's bind-failed event overwrote errno.
TEST(proxy_process, a_port_in_use_is_address_already_in_use_with_a_monitor_too) {
    zmq::context_t ctx;
    zmq::socket_t holder(ctx, zmq::socket_type::pull);
    holder.set(zmq::sockopt::linger, 0);
    holder.bind("tcp://127.0.0.1:*");
    const std::string taken = holder.get(zmq::sockopt::last_endpoint);
    const std::vector<std::vector<std::string>> commands{
        {bin_path("zmqkit-recv"), "-v", "--pull", "@" + taken},
        {bin_path("zmqkit-recv"), "--pull", "@" + taken},
        {bin_path("zmqkit-proxy"), "-v", "--frontend", taken, "--backend", "tcp://127.0.0.1:*",
         "--frontend-zap-allow-ip", "127.0.0.1"},
    };
    for (const auto& argv : commands) {
        child_process p(argv);
        EXPECT_EQ(p.wait(10s), 69) << argv[0];
        auto line = p.wait_for_stderr(std::regex("error: (.*)"), 1s);
        ASSERT_TRUE(line.has_value()) << argv[0];
        EXPECT_THAT(*line, HasSubstr("Address already in use")) << argv[0] << " " << argv[1];
    }
}
