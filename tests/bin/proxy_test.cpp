// zmqkit-proxy as a real process: start, route, STATISTICS on the control socket, SIGTERM
// drain, TERMINATE, bad usage, a port already in use; SIGHUP in every mode (reload, never
// stop) and what a drain that cannot finish reports in every mode.
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/patterns/majordomo.hpp>
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/socket.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <regex>
#include <set>
#include <unordered_set>

using namespace zmqkit;
using namespace zmqkit::testing;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

struct stream_proxy : running_proxy {
    explicit stream_proxy(const std::vector<std::string>& extra = {})
        : running_proxy("stream", extra) {}
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
    stream_proxy proxy;
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
    EXPECT_THAT(all, HasSubstr("INFO  zmqkit-proxy: drain complete"));
    EXPECT_THAT(all, HasSubstr("\"drain\":{\"dropped\":0}}"));
}

TEST(proxy_process, pause_and_resume_through_the_control_socket) {
    stream_proxy proxy;
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
    stream_proxy proxy;
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
        auto line = p.wait_for_stderr(std::regex("ERROR zmqkit-proxy: (.*)"), 1s);
        ASSERT_TRUE(line.has_value());
        EXPECT_THAT(*line, HasSubstr("--backend are required"));
    }
    {
        child_process p({bin_path("zmqkit-proxy"), "--frontend", "tcp://127.0.0.1", "--backend",
                         "tcp://127.0.0.1:*"});
        EXPECT_EQ(p.wait(10s), 64);
        auto line = p.wait_for_stderr(std::regex("ERROR zmqkit-proxy: (.*)"), 1s);
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

// A monitored socket (-v, or a secured side) used to report a port in use as "Resource
// temporarily unavailable": the monitor's bind-failed event overwrote errno.
TEST(proxy_process, a_port_in_use_exits_69_as_address_already_in_use) {
    zmq::context_t ctx;
    zmq::socket_t holder(ctx, zmq::socket_type::pull);
    holder.set(zmq::sockopt::linger, 0);
    holder.bind("tcp://127.0.0.1:*");
    const std::string taken = holder.get(zmq::sockopt::last_endpoint);
    const std::vector<std::vector<std::string>> commands{
        {bin_path("zmqkit-proxy"), "--frontend", taken, "--backend", "tcp://127.0.0.1:*"},
        {bin_path("zmqkit-proxy"), "-v", "--frontend", taken, "--backend", "tcp://127.0.0.1:*",
         "--frontend-zap-allow-ip", "127.0.0.1"},
        {bin_path("zmqkit-recv"), "-v", "--pull", "@" + taken},
        {bin_path("zmqkit-recv"), "--pull", "@" + taken},
    };
    for (const auto& argv : commands) {
        child_process p(argv);
        EXPECT_EQ(p.wait(10s), 69) << argv[0];
        auto line = p.wait_for_stderr(std::regex("ERROR zmqkit-[a-z]+: (.*)"), 1s);
        ASSERT_TRUE(line.has_value()) << argv[0];
        EXPECT_THAT(*line, HasSubstr("cannot bind to " + taken));
        EXPECT_THAT(*line, HasSubstr("Address already in use")) << argv[0] << " " << argv[1];
    }
}

namespace {

// A proxy of `mode` with a control socket; durable mode also gets a PULL frontend and a PUSH
// backend (best effort), which the tests use, and a spool in a private directory.
struct mode_proxy {
    std::string mode;
    temp_directory spool{"proxy-spool"};
    std::unique_ptr<running_proxy> proxy;
    std::string frontend_pull, backend_push;

    explicit mode_proxy(std::string m, std::vector<std::string> extra = {}) : mode(std::move(m)) {
        std::vector<std::string> args;
        if (mode == "durable") {
            args.insert(args.end(), {"--spool", spool.path().string(), "--frontend-pull",
                                     "tcp://127.0.0.1:*", "--backend-push", "tcp://127.0.0.1:*"});
        }
        args.insert(args.end(), extra.begin(), extra.end());
        proxy = std::make_unique<running_proxy>(mode, args);
        (void)proxy->process.wait_for_stderr(std::regex("mode \\S+ running"), 10s);
        if (mode == "durable") {
            frontend_pull = bound("frontend-pull");
            backend_push = bound("backend-push");
        }
    }
    child_process& process() { return proxy->process; }

    // The endpoint of "<side> bound <endpoint>" among the lines read so far.
    [[nodiscard]] std::string bound(const std::string& side) const {
        const std::regex pattern(side + " bound (\\S+)");
        for (const auto& line : proxy->process.stderr_lines()) {
            std::smatch m;
            if (std::regex_search(line, m, pattern)) {
                return m[1].str();
            }
        }
        return {};
    }
};

// Peers of a proxy in its mode (producer and consumer, client and worker, publisher and
// subscriber), kept for several round trips so that no message goes to a peer that just left.
class mode_peers {
public:
    // `consumer`: false for a producer alone (stream and durable mode).
    mode_peers(mode_proxy& m, zmq::context_t& ctx, bool consumer = true) : m_(m), ctx_(ctx) {
        so_.registry = &registry_;
        so_.linger = 1s;
        if (m.mode == "stream" || m.mode == "durable") {
            const bool durable = m.mode == "durable";
            push_.emplace(ctx, zmq::socket_type::push, so_);
            push_->attach(durable ? m.frontend_pull : m.proxy->frontend, endpoint_action::connect);
            if (consumer) {
                pull_.emplace(ctx, zmq::socket_type::pull, so_);
                pull_->attach(durable ? m.backend_push : m.proxy->backend,
                              endpoint_action::connect);
            }
        } else if (m.mode == "forwarder") {
            raw_out_ = raw(zmq::socket_type::pub, m.proxy->frontend);
            raw_in_ = raw(zmq::socket_type::sub, m.proxy->backend);
            raw_in_->set(zmq::sockopt::subscribe, "");
        } else if (m.mode == "lb") {
            patterns::lb_worker_options wo;
            wo.endpoint = m.proxy->backend;
            lb_worker_ = std::make_unique<patterns::lb_worker>(
                ctx, wo,
                patterns::lb_bytes_handler([](std::string_view b) { return std::string(b); }));
            lb_worker_->start();
            raw_out_ = raw(zmq::socket_type::req, m.proxy->frontend);
        } else {
            patterns::mdp_worker_options wo;
            wo.endpoint = m.proxy->backend;
            wo.service = "echo";
            mdp_worker_ = std::make_unique<patterns::mdp_worker>(
                ctx, wo, [](const std::vector<std::string_view>& b) {
                    return std::vector<std::string>(b.begin(), b.end());
                });
            mdp_worker_->start();
            patterns::mdp_client_options co;
            co.endpoint = m.proxy->frontend;
            mdp_client_ = std::make_unique<patterns::mdp_client>(ctx, co);
        }
    }

    // Sends `body` the way the mode forwards; what the other side got (nullopt: nothing within
    // the deadline).
    std::optional<std::string> through(const std::string& body) {
        if (push_) {
            if (!produce(body)) {
                return std::nullopt;
            }
            auto got = pull_->recv(10s);
            return got ? std::optional<std::string>(std::string(got->body_view())) : std::nullopt;
        }
        if (m_.mode == "forwarder") {
            // Published until the subscription has reached the publisher (bounded).
            const auto deadline = std::chrono::steady_clock::now() + 10s;
            while (std::chrono::steady_clock::now() < deadline) {
                raw_out_->send(zmq::buffer(body));
                if (auto f = recv_within(*raw_in_, 50ms)) {
                    return f->to_string();
                }
            }
            return std::nullopt;
        }
        if (m_.mode == "lb") {
            raw_out_->send(zmq::buffer(body));
            auto reply = recv_within(*raw_out_, 10s);
            return reply ? std::optional<std::string>(reply->to_string()) : std::nullopt;
        }
        auto reply = mdp_client_->call("echo", {body});
        return reply && !reply->empty() ? std::optional<std::string>(reply->front()) : std::nullopt;
    }

    // Stream and durable mode: sends `body` to the proxy only.
    bool produce(const std::string& body) { return push_->send(message{body}); }

private:
    zmq::socket_t raw(zmq::socket_type type, const std::string& endpoint) {
        zmq::socket_t s(ctx_, type);
        s.set(zmq::sockopt::linger, 0);
        s.connect(endpoint);
        return s;
    }

    mode_proxy& m_;
    zmq::context_t& ctx_;
    metrics_registry registry_;
    socket_options so_;
    std::optional<zmqkit::socket> push_, pull_;
    std::optional<zmq::socket_t> raw_out_, raw_in_;
    std::unique_ptr<patterns::lb_worker> lb_worker_;
    std::unique_ptr<patterns::mdp_worker> mdp_worker_;
    std::unique_ptr<patterns::mdp_client> mdp_client_;
};

std::string all_stderr(child_process& p) {
    std::string all;
    for (const auto& l : p.stderr_lines()) {
        all += l + "\n";
    }
    return all;
}

// SIGTERM, the exit code, and everything the proxy wrote on stderr up to its final statistics.
std::string stop(mode_proxy& m, int expected_exit) {
    m.process().signal(SIGTERM);
    EXPECT_EQ(m.process().wait(20s), expected_exit);
    (void)m.process().wait_for_stderr(std::regex("final statistics"), 1s);
    return all_stderr(m.process());
}

const std::vector<std::string> every_mode{"stream", "forwarder", "lb", "mdp", "durable"};

} // namespace

// SIGHUP used to stop an unsecured proxy ("received Hangup, draining"); it reloads in every
// mode and never stops.
TEST(proxy_process, sighup_reloads_and_never_stops_in_any_mode) {
    for (const auto& mode : every_mode) {
        SCOPED_TRACE(mode);
        mode_proxy m(mode);
        zmq::context_t ctx;
        mode_peers peers(m, ctx);
        ASSERT_EQ(peers.through("before"), "before");
        m.process().signal(SIGHUP);
        ASSERT_TRUE(m.process()
                        .wait_for_stderr(std::regex("received SIGHUP: nothing to reload"), 10s)
                        .has_value());
        m.process().signal(SIGHUP);
        ASSERT_EQ(peers.through("after"), "after") << "still forwarding after SIGHUP";
        EXPECT_THAT(all_stderr(m.process()), Not(HasSubstr("draining")));
        EXPECT_THAT(stop(m, 0), HasSubstr("drain complete"));
    }
}

// The issue: stream mode, SIGTERM, no consumer: 50 in, exit 0, no warning. A drain that ends
// with messages held says how many it dropped, in the log and the final statistics, in every
// mode, and exits 1; durable mode keeps them in the spool (exit 0).
TEST(proxy_process, a_drain_that_drops_messages_says_how_many_and_exits_1) {
    for (const auto& mode : std::vector<std::string>{"stream", "lb", "mdp"}) {
        SCOPED_TRACE(mode);
        mode_proxy m(mode, {"--drain-timeout", "300ms"});
        zmq::context_t ctx;
        constexpr int count = 50;
        std::vector<zmq::socket_t> clients;
        if (mode == "stream") {
            clients.emplace_back(ctx, zmq::socket_type::push);
        }
        auto& producer =
            mode == "stream" ? clients.back() : clients.emplace_back(ctx, zmq::socket_type::dealer);
        producer.set(zmq::sockopt::linger, 0);
        producer.connect(m.proxy->frontend);
        for (int i = 0; i < count; ++i) {
            const std::string body = "m" + std::to_string(i);
            if (mode == "stream") {
                producer.send(zmq::buffer(body));
            } else if (mode == "lb") { // a REQ envelope: empty delimiter, body
                producer.send(zmq::message_t(), zmq::send_flags::sndmore);
                producer.send(zmq::buffer(body));
            } else { // 7/MDP client REQUEST for a service nobody offers
                producer.send(zmq::message_t(), zmq::send_flags::sndmore);
                producer.send(zmq::buffer(std::string("MDPC01")), zmq::send_flags::sndmore);
                producer.send(zmq::buffer(std::string("nobody")), zmq::send_flags::sndmore);
                producer.send(zmq::buffer(body));
            }
        }
        // Every message reached the proxy (no consumer, so none left it).
        ASSERT_TRUE(eventually(
            [&] {
                auto st = proxy_statistics::from_frames(
                    control_request(ctx, m.proxy->control, "STATISTICS"));
                return st && st->frontend_messages_in >= (mode == "stream" ? 1U : 50U);
            },
            10s));
        const auto all = stop(m, 1); // messages were dropped
        EXPECT_THAT(all, HasSubstr("WARN  zmqkit-proxy: drain ended with 50 messages dropped"))
            << all;
        EXPECT_THAT(all, HasSubstr("\"drain\":{\"dropped\":50}}")) << all;
    }
}

TEST(proxy_process, a_durable_drain_says_what_remains_in_the_spool_and_exits_0) {
    mode_proxy m("durable", {"--drain-timeout", "300ms"});
    zmq::context_t ctx;
    mode_peers producer(m, ctx, false);
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(producer.produce("kept" + std::to_string(i)));
    }
    ASSERT_TRUE(eventually(
        [&] {
            return control_request(ctx, m.proxy->control, "STATUS").at(0).find("\"messages\":3,") !=
                   std::string::npos;
        },
        10s));
    const auto all = stop(m, 0); // kept in the spool is not a loss
    EXPECT_THAT(all,
                HasSubstr("INFO  zmqkit-proxy: drain complete: 3 messages remain in the spool"))
        << all;
    EXPECT_THAT(all, HasSubstr("\"drain\":{\"dropped\":0,\"remaining_in_spool\":3}}")) << all;
}

// --log-format json: every stderr line is one JSON object (ts, level, component, msg), and
// --name is the component of the proxy's lines.
TEST(proxy_process, log_format_json_writes_json_lines_named_by_name) {
    child_process p({bin_path("zmqkit-proxy"), "--name", "orders", "--log-format", "json",
                     "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                     "--control", "tcp://127.0.0.1:*"});
    const auto control = p.wait_for_stderr(std::regex("control bound ([^\"\\s]+)"), 10s);
    ASSERT_TRUE(control.has_value());
    p.signal(SIGHUP); // a line while running (reload), then the drain's lines
    ASSERT_TRUE(p.wait_for_stderr(std::regex("received SIGHUP"), 10s).has_value());
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(10s), 0);
    while (p.next_stderr_line(100ms)) {
    }
    const auto& lines = p.stderr_lines();
    ASSERT_GE(lines.size(), 5U);
    std::set<std::string> levels;
    bool final_statistics = false;
    for (const auto& line : lines) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        ASSERT_TRUE(j.is_object()) << line;
        EXPECT_THAT(j.value("ts", ""),
                    ::testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{6}Z"));
        EXPECT_EQ(j.value("component", ""), "orders") << line;
        levels.insert(j.value("level", ""));
        final_statistics = final_statistics || j.value("msg", "").starts_with("final statistics");
    }
    EXPECT_EQ(levels, std::set<std::string>{"info"});
    EXPECT_TRUE(final_statistics);
}
