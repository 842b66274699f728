// zmqkit-proxy --mode mdp as a real process, with a raw 7/MDP worker and client written here
// from the RFC frames: requests for two services routed and answered once each, 8/MMI
// (mmi.service 200/404, mmi.* 501), a worker registering mmi.* disconnected, malformed frames
// counted, STATUS per service and worker, TERMINATE, usage errors.
#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <regex>

using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

using frames_t = std::vector<std::string>;
const std::string ready_byte("\x01", 1), request_byte("\x02", 1), reply_byte("\x03", 1),
    heartbeat_byte("\x04", 1), disconnect_byte("\x05", 1);

struct mdp_proxy : running_proxy {
    explicit mdp_proxy(const std::vector<std::string>& extra) : running_proxy("mdp", extra) {}
};

zmq::socket_t connected(zmq::context_t& ctx, zmq::socket_type type, const std::string& ep) {
    zmq::socket_t s(ctx, type);
    s.set(zmq::sockopt::linger, 0);
    s.connect(ep);
    return s;
}

std::string status(zmq::context_t& ctx, const std::string& control) {
    auto req = connected(ctx, zmq::socket_type::req, control);
    const auto reply = request(req, "STATUS", 10s);
    return reply.empty() ? std::string() : reply[0];
}

} // namespace

TEST(mdp_process, raw_rfc_peers_through_zmqkit_proxy_mode_mdp) {
    mdp_proxy proxy({"--heartbeat-interval", "1s", "--liveness", "10"});
    ASSERT_FALSE(proxy.control.empty());
    zmq::context_t ctx;
    // Two raw workers per service: READY ["" "MDPW01" 0x01 service].
    std::vector<std::pair<std::string, zmq::socket_t>> workers;
    for (const std::string service : {"alpha", "beta"}) {
        for (int i = 0; i < 2; ++i) {
            workers.emplace_back(service, connected(ctx, zmq::socket_type::dealer, proxy.backend));
            send_frames(workers.back().second, {"", "MDPW01", ready_byte, service});
        }
    }
    ASSERT_TRUE(eventually(
        [&] {
            const auto s = status(ctx, proxy.control);
            return s.find("\"name\":\"alpha\",\"workers\":2") != std::string::npos &&
                   s.find("\"name\":\"beta\",\"workers\":2") != std::string::npos;
        },
        20s));

    // A raw DEALER client: ["" "MDPC01" service body]; workers answer in turn.
    auto client = connected(ctx, zmq::socket_type::dealer, proxy.frontend);
    constexpr int total = 200;
    std::map<std::string, int> answers;
    for (int i = 0; i < total; ++i) {
        const std::string service = i % 2 == 0 ? "alpha" : "beta";
        const std::string body = "r" + std::to_string(i);
        send_frames(client, {"", "MDPC01", service, body});
        // The broker gives it to a ready worker of that service: the first worker that gets
        // something other than a HEARTBEAT.
        std::size_t k = 0;
        frames_t request;
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (request.empty() && std::chrono::steady_clock::now() < deadline) {
            std::vector<zmq::pollitem_t> items;
            for (auto& [name, w] : workers) {
                items.push_back({w.handle(), 0, ZMQ_POLLIN, 0});
            }
            if (zmq::poll(items, 1s) == 0) {
                continue;
            }
            for (k = 0; k < items.size(); ++k) {
                if ((items[k].revents & ZMQ_POLLIN) == 0) {
                    continue;
                }
                auto f = recv_frames(workers[k].second);
                if (f == frames_t{"", "MDPW01", heartbeat_byte}) {
                    send_frames(workers[k].second, {"", "MDPW01", heartbeat_byte});
                    continue;
                }
                request = std::move(f);
                break;
            }
        }
        ASSERT_EQ(request.size(), 6u) << ::testing::PrintToString(request);
        EXPECT_EQ(workers[k].first, service);
        EXPECT_EQ(request[2], request_byte);
        EXPECT_EQ(request[5], body);
        send_frames(workers[k].second,
                    {"", "MDPW01", reply_byte, request[3], "", workers[k].first + ":" + body});
        const auto reply = recv_frames(client);
        ASSERT_EQ(reply, (frames_t{"", "MDPC01", service, service + ":" + body}));
        ++answers[body];
    }
    EXPECT_EQ(answers.size(), static_cast<std::size_t>(total));

    // 8/MMI.
    send_frames(client, {"", "MDPC01", "mmi.service", "alpha"});
    EXPECT_EQ(recv_frames(client), (frames_t{"", "MDPC01", "mmi.service", "200"}));
    send_frames(client, {"", "MDPC01", "mmi.service", "gamma"});
    EXPECT_EQ(recv_frames(client), (frames_t{"", "MDPC01", "mmi.service", "404"}));
    send_frames(client, {"", "MDPC01", "mmi.foo", "x"});
    EXPECT_EQ(recv_frames(client), (frames_t{"", "MDPC01", "mmi.foo", "501"}));
    auto intruder = connected(ctx, zmq::socket_type::dealer, proxy.backend);
    send_frames(intruder, {"", "MDPW01", ready_byte, "mmi.x"});
    EXPECT_EQ(recv_frames(intruder), (frames_t{"", "MDPW01", disconnect_byte}));
    // Malformed: counted and dropped.
    send_frames(intruder, {"", "MDPW01", std::string("\x09", 1)});
    send_frames(client, {"", "MDPC01", "alpha"});
    ASSERT_TRUE(eventually(
        [&] { return status(ctx, proxy.control).find("\"malformed\":2") != std::string::npos; },
        10s));

    const auto s = status(ctx, proxy.control);
    EXPECT_THAT(s, HasSubstr("\"requests\":200"));
    EXPECT_THAT(s, HasSubstr("\"replies\":200"));
    EXPECT_THAT(s, HasSubstr("\"mmi\":3"));
    EXPECT_THAT(s, HasSubstr("\"disconnects\":1"));
    EXPECT_THAT(s, HasSubstr("\"heartbeat_interval_ms\":1000"));
    EXPECT_THAT(s, HasSubstr("\"service\":\"alpha\",\"state\":\"ready\""));

    auto ctl = connected(ctx, zmq::socket_type::req, proxy.control);
    EXPECT_EQ(request(ctl, "TERMINATE", 10s), frames_t{"OK"});
    EXPECT_EQ(proxy.process.wait(20s), std::optional<int>(0));
}

TEST(mdp_process, usage_errors) {
    child_process expiry_in_lb({bin_path("zmqkit-proxy"), "--mode", "lb", "--frontend",
                                "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                                "--request-expiry", "5s"});
    EXPECT_EQ(expiry_in_lb.wait(10s), std::optional<int>(64));
    EXPECT_TRUE(expiry_in_lb.wait_for_stderr(std::regex("applies to --mode mdp only"), 5s));
    child_process timeout_in_mdp({bin_path("zmqkit-proxy"), "--mode", "mdp", "--frontend",
                                  "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                                  "--request-timeout", "5s"});
    EXPECT_EQ(timeout_in_mdp.wait(10s), std::optional<int>(64));
    child_process help({bin_path("zmqkit-proxy"), "--help"});
    EXPECT_EQ(help.wait(10s), std::optional<int>(0));
    EXPECT_THAT(help.read_stdout(1s), HasSubstr("--request-expiry"));
}

// Issue 17 item 3: zmqkit-send --mdp --service NAME is a 7/MDP client (Lazy Pirate): each input
// message a request to the service, each reply frame on stdout; a service nobody serves is
// given up after its resends with exit 69.
TEST(mdp_process, send_mdp_asks_a_service_and_gives_up_on_one_nobody_serves) {
    mdp_proxy proxy({"--heartbeat-interval", "1s", "--liveness", "10"});
    ASSERT_FALSE(proxy.frontend.empty());
    zmq::context_t ctx;
    auto worker = connected(ctx, zmq::socket_type::dealer, proxy.backend);
    send_frames(worker, {"", "MDPW01", ready_byte, "upper"});
    ASSERT_TRUE(eventually(
        [&] { return status(ctx, proxy.control).find("\"upper\"") != std::string::npos; }, 20s));
    child_process send({bin_path("zmqkit-send"), "--mdp", "--service", "upper", "--data",
                        "hello\nworld", "--timeout", "30s", proxy.frontend});
    // The raw worker answers the two requests: ["" MDPW01 0x03 client "" body...]
    for (int i = 0; i < 2; ++i) {
        auto frames = recv_frames(worker, 20s);
        while (!frames.empty() && frames.size() >= 3 && frames[2] == heartbeat_byte) {
            frames = recv_frames(worker, 20s);
        }
        ASSERT_GE(frames.size(), 6U);
        ASSERT_EQ(frames[2], request_byte);
        std::string body = frames[5];
        for (auto& c : body) {
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        send_frames(worker, {"", "MDPW01", reply_byte, frames[3], "", body});
    }
    EXPECT_EQ(send.wait(30s), std::optional<int>(0)) << send.stderr_text();
    EXPECT_EQ(send.stdout_text(), "HELLO\nWORLD\n");

    child_process nobody({bin_path("zmqkit-send"), "--mdp", "--service", "nobody", "--retries", "1",
                          "--request-timeout", "200ms", "--data", "x", "--timeout", "30s",
                          proxy.frontend});
    EXPECT_EQ(nobody.wait(30s), std::optional<int>(69)) << nobody.stderr_text();
    EXPECT_THAT(nobody.stderr_text(), HasSubstr("got no reply: "));
}

// The shell on both ends of 7/MDP: zmqkit-worker --exec serves a service, zmqkit-send --mdp asks
// it; a command that fails comes back as an error reply (wire protocol §9.4), exit 69 with the
// reason, and the next request is still answered.
TEST(mdp_process, send_mdp_and_zmqkit_worker_speak_results_and_error_replies) {
    mdp_proxy proxy({"--heartbeat-interval", "1s", "--liveness", "10"});
    ASSERT_FALSE(proxy.frontend.empty());
    child_process upper({bin_path("zmqkit-worker"), "--mdp", "--service", "upper",
                         "--heartbeat-interval", "1s", "--exec", "tr a-z A-Z", proxy.backend});
    child_process broken({bin_path("zmqkit-worker"), "--mdp", "--service", "broken",
                          "--heartbeat-interval", "1s", "--shell", "--exec",
                          "echo 'no disk' >&2; exit 3", proxy.backend});
    zmq::context_t ctx;
    ASSERT_TRUE(eventually(
        [&] {
            const auto s = status(ctx, proxy.control);
            return s.find("\"upper\"") != std::string::npos &&
                   s.find("\"broken\"") != std::string::npos;
        },
        20s))
        << upper.stderr_text() << broken.stderr_text();
    child_process ok({bin_path("zmqkit-send"), "--mdp", "--service", "upper", "--data", "hello",
                      "--timeout", "30s", proxy.frontend});
    EXPECT_EQ(ok.wait(30s), std::optional<int>(0)) << ok.stderr_text();
    EXPECT_EQ(ok.stdout_text(), "HELLO\n");
    child_process failed({bin_path("zmqkit-send"), "--mdp", "--service", "broken", "--data",
                          "one\ntwo", "--timeout", "30s", proxy.frontend});
    EXPECT_EQ(failed.wait(30s), std::optional<int>(69)) << failed.stderr_text();
    const auto err = failed.stderr_text();
    EXPECT_THAT(err, HasSubstr("request 1 was answered with an error: handler: exit status 3"));
    EXPECT_THAT(err, HasSubstr("no disk"));
    EXPECT_THAT(err, HasSubstr("request 2 was answered with an error"));
    EXPECT_EQ(failed.stdout_text(), "");
}
