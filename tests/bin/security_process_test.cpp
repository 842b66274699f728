// CURVE / PLAIN / ZAP through the binaries as processes: zmqkit-send -> zmqkit-proxy (stream,
// forwarder, durable, lb) -> zmqkit-recv encrypted; and what is refused — a client key not in
// the allow directory, a wrong server key, a plaintext client, an address on the deny list —
// with nothing getting in (checked after an allowed message got through the same side), the
// proxy still serving allowed peers, a log line and a count for every refusal, the refused tool
// exiting 69 with the reason, and no secret key anywhere in what the proxy prints.
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/security.hpp>
#include <zmqkit/socket.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <regex>
#include <sstream>

using namespace zmqkit;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using zmqkit::testing::bin_path;
using zmqkit::testing::child_process;
using zmqkit::testing::temp_directory;

namespace {

namespace fs = std::filesystem;

// Key pairs on disk: the proxy's, a producer's, a consumer's and a stranger's; allow
// directories "producers" (the producer's public certificate) and "consumers".
struct keys {
    temp_directory dir{"security-keys"};
    certificate proxy = certificate::generate();
    certificate producer = certificate::generate();
    certificate consumer = certificate::generate();
    certificate stranger = certificate::generate();

    keys() {
        proxy.save(path("proxy.key"));
        producer.save(path("producer.key"));
        consumer.save(path("consumer.key"));
        stranger.save(path("stranger.key"));
        fs::create_directory(path("producers"));
        fs::create_directory(path("consumers"));
        producer.save_public(path("producers/producer.key"));
        consumer.save_public(path("consumers/consumer.key"));
    }
    [[nodiscard]] std::string path(const std::string& name) const {
        return (dir.path() / name).string();
    }
    // Every secret key, to check that none is ever printed.
    [[nodiscard]] std::vector<std::string> secrets() const {
        return {proxy.secret_key, producer.secret_key, consumer.secret_key, stranger.secret_key};
    }
};

std::string all_stderr(const child_process& p) {
    std::string all;
    for (const auto& l : p.stderr_lines()) {
        all += l + "\n";
    }
    return all;
}

void expect_no_secret(const std::string& text, const keys& k) {
    for (const auto& secret : k.secrets()) {
        EXPECT_THAT(text, Not(HasSubstr(secret))) << "a secret key was printed";
    }
}

// A zmqkit-proxy process; the bound endpoints read from its stderr.
struct proxy_process {
    child_process process;
    std::string frontend, backend, control;

    explicit proxy_process(std::vector<std::string> args)
        : process([&] {
              args.insert(args.begin(), bin_path("zmqkit-proxy"));
              return args;
          }()) {
        frontend = process.wait_for_stderr(std::regex("frontend bound (\\S+)"), 10s).value_or("");
        backend = process.wait_for_stderr(std::regex("backend bound (\\S+)"), 10s).value_or("");
        const bool has_control = std::find(args.begin(), args.end(), "--control") != args.end();
        if (has_control) {
            control = process.wait_for_stderr(std::regex("control bound (\\S+)"), 10s).value_or("");
        }
        (void)process.wait_for_stderr(std::regex("running"), 10s);
    }
    ~proxy_process() {
        process.signal(SIGTERM);
        (void)process.wait(10s);
    }
    proxy_process(const proxy_process&) = delete;
    proxy_process& operator=(const proxy_process&) = delete;
};

std::vector<std::string> curve_client_flags(const keys& k, const std::string& own) {
    return {"--curve-server-key", k.path("proxy.key"), "--curve-secret", k.path(own + "_secret")};
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// One request on a CURVE REQ socket (the proxy's control side); the reply's first frame.
std::string curve_control(zmq::context_t& ctx, const std::string& endpoint, const keys& k,
                          const std::string& command) {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    apply_security(req, socket_security::curve_client(k.proxy.public_key, &k.producer));
    req.connect(endpoint);
    const auto reply = zmqkit::testing::request(req, command, 10s);
    return reply.empty() ? std::string() : reply.front();
}

// "sent <id>" debug lines of zmqkit-send -v.
std::vector<std::string> sent_ids(const child_process& p) {
    std::vector<std::string> ids;
    const std::regex sent("sent ([0-9a-f-]{36})");
    for (const auto& l : p.stderr_lines()) {
        std::smatch m;
        if (std::regex_search(l, m, sent)) {
            ids.push_back(m[1]);
        }
    }
    return ids;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

// A consumer in this process: a CURVE PULL client of the proxy's backend.
struct consumer_socket {
    metrics_registry registry;
    zmqkit::socket socket;
    consumer_socket(zmq::context_t& ctx, const keys& k, const certificate& own,
                    const std::string& endpoint)
        : socket(ctx, zmq::socket_type::pull, [&] {
              socket_options o;
              o.registry = &registry;
              o.name = "consumer";
              o.security = socket_security::curve_client(k.proxy.public_key, &own);
              return o;
          }()) {
        socket.attach(endpoint, endpoint_action::connect);
    }
};

// zmqkit-send of one line; returns the process after it exited (bounded).
struct send_result {
    int code = -1;
    std::string err;
    std::vector<std::string> ids;
};
send_result run_tool(const std::string& tool, std::vector<std::string> args) {
    args.insert(args.begin(), bin_path(tool));
    child_process p(args);
    send_result r;
    r.code = p.wait(30s).value_or(-1);
    while (p.next_stderr_line(100ms)) {
    }
    r.err = all_stderr(p);
    r.ids = sent_ids(p);
    return r;
}
send_result run_send(std::vector<std::string> args) {
    return run_tool("zmqkit-send", std::move(args));
}

// The reason after "... within N s: " of a tool's error line ("" if none).
std::string refusal_reason(const std::string& err) {
    std::smatch m;
    return std::regex_search(err, m, std::regex("within [0-9.]+ m?s: (.*)")) ? m[1].str() : "";
}

} // namespace

TEST(security_process, stream_mode_carries_send_to_recv_encrypted) {
    keys k;
    proxy_process proxy({"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                         "--curve-secret", k.path("proxy.key_secret"), "--frontend-curve-allow",
                         k.path("producers"), "--backend-curve-allow", k.path("consumers")});
    ASSERT_FALSE(proxy.backend.empty()) << all_stderr(proxy.process);
    child_process recv(with({bin_path("zmqkit-recv"), "--pull", "-c", "3", "--timeout", "30s", "-f",
                             "%i %s\n", ">" + proxy.backend},
                            curve_client_flags(k, "consumer.key")));
    auto sent =
        run_send(with({"-v", "--data", "one\ntwo\nthree", "--timeout", "20s", proxy.frontend},
                      curve_client_flags(k, "producer.key")));
    EXPECT_EQ(sent.code, 0) << sent.err;
    ASSERT_EQ(sent.ids.size(), 3U) << sent.err;
    ASSERT_EQ(recv.wait(30s).value_or(-1), 0) << all_stderr(recv);
    const auto got = lines_of(recv.read_stdout(1s));
    ASSERT_EQ(got.size(), 3U);
    EXPECT_EQ(got[0], sent.ids[0] + " one");
    EXPECT_EQ(got[1], sent.ids[1] + " two");
    EXPECT_EQ(got[2], sent.ids[2] + " three");
    expect_no_secret(all_stderr(proxy.process), k);
    EXPECT_THAT(all_stderr(proxy.process), HasSubstr("security frontend: curve server"));
}

TEST(security_process, refused_peers_get_nothing_in_and_the_proxy_keeps_serving) {
    keys k;
    proxy_process proxy({"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                         "--control", "tcp://127.0.0.1:*", "--curve-secret",
                         k.path("proxy.key_secret"), "--frontend-curve-allow", k.path("producers"),
                         "--backend-curve-allow", k.path("consumers"), "--control-curve-allow",
                         "any"});
    ASSERT_FALSE(proxy.control.empty()) << all_stderr(proxy.process);
    zmq::context_t ctx;
    consumer_socket consumer(ctx, k, k.consumer, proxy.backend);
    ASSERT_NE(consumer.socket.handshakes(), nullptr);
    ASSERT_TRUE(consumer.socket.handshakes()->wait_handshake(10s));

    // An allowed producer gets through first.
    auto first = run_send(with({"-v", "--data", "allowed-1", "--timeout", "10s", proxy.frontend},
                               curve_client_flags(k, "producer.key")));
    ASSERT_EQ(first.code, 0) << first.err;
    auto m = consumer.socket.recv(10s);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->id().to_string(), first.ids.at(0));

    // A client key not in the allow directory.
    auto unknown = run_send(with({"--data", "from-a-stranger", "--timeout", "3s", proxy.frontend},
                                 curve_client_flags(k, "stranger.key")));
    EXPECT_EQ(unknown.code, 69) << unknown.err;
    EXPECT_THAT(unknown.err, HasSubstr("no message could be sent to " + proxy.frontend));
    EXPECT_THAT(unknown.err, HasSubstr("did not allow this client"));

    // A wrong server key (the stranger's public key instead of the proxy's).
    auto wrong = run_send({"--data", "wrong-server-key", "--timeout", "3s", "--curve-server-key",
                           k.stranger.public_key, "--curve-secret", k.path("producer.key_secret"),
                           proxy.frontend});
    EXPECT_EQ(wrong.code, 69) << wrong.err;
    EXPECT_THAT(wrong.err, HasSubstr("no message could be sent to"));

    // A plaintext client.
    auto plaintext = run_send({"--data", "plaintext", "--timeout", "3s", proxy.frontend});
    EXPECT_EQ(plaintext.code, 69) << plaintext.err;
    EXPECT_THAT(plaintext.err,
                ::testing::AnyOf(HasSubstr("different security mechanism"),
                                 HasSubstr("closed the connection during the handshake")));

    // The proxy still serves the allowed producer; nothing of the refused ones came before it.
    auto second = run_send(with({"-v", "--data", "allowed-2", "--timeout", "10s", proxy.frontend},
                                curve_client_flags(k, "producer.key")));
    ASSERT_EQ(second.code, 0) << second.err;
    m = consumer.socket.recv(10s);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->id().to_string(), second.ids.at(0)) << "a refused message got through";
    EXPECT_FALSE(consumer.socket.recv(100ms).has_value());

    // Logged with the peer and the reason, and counted.
    const auto status = curve_control(ctx, proxy.control, k, "STATUS");
    EXPECT_THAT(status, HasSubstr("\"security\":{\"frontend\":{\"mode\":\"curve server"));
    const std::regex failures("\"frontend\":\\{\"mode\":\"[^\"]*\",\"handshakes\":[0-9]+,"
                              "\"handshake_failures\":([0-9]+)");
    std::smatch match;
    ASSERT_TRUE(std::regex_search(status, match, failures)) << status;
    EXPECT_GE(std::stoi(match[1]), 3) << status;
    (void)proxy.process.next_stderr_line(500ms);
    const auto err = all_stderr(proxy.process);
    EXPECT_THAT(err, HasSubstr("ZAP denied 127.0.0.1")) << err;
    EXPECT_THAT(err, HasSubstr("frontend: handshake with 127.0.0.1:")) << err;
    expect_no_secret(err + status, k);

    child_process help({bin_path("zmqkit-proxy"), "--help"});
    ASSERT_EQ(help.wait(10s).value_or(-1), 0);
    const auto help_text = help.read_stdout(1s);
    EXPECT_THAT(help_text, HasSubstr("--curve-allow"));
    expect_no_secret(help_text, k);
}

TEST(security_process, an_address_on_the_deny_list_is_refused_on_that_side) {
    keys k;
    // Plaintext with an IP filter on the frontend: 127.0.0.1 is denied; 127.0.0.2 (loopback
    // too) is the allowed producer.
    proxy_process proxy({"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                         "--frontend-zap-deny-ip", "127.0.0.1"});
    ASSERT_FALSE(proxy.frontend.empty()) << all_stderr(proxy.process);
    zmq::context_t ctx;
    metrics_registry registry;
    socket_options so;
    so.registry = &registry;
    zmqkit::socket consumer(ctx, zmq::socket_type::pull, so);
    consumer.attach(proxy.backend, endpoint_action::connect);
    zmqkit::socket allowed(ctx, zmq::socket_type::push, so);
    const auto port = proxy.frontend.substr(proxy.frontend.rfind(':') + 1);
    allowed.raw().connect("tcp://127.0.0.2:0;127.0.0.1:" + port);

    message one("from-127.0.0.2");
    ASSERT_TRUE(allowed.send(one));
    auto m = consumer.recv(10s);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->id(), one.id());

    auto denied = run_send({"--data", "from-127.0.0.1", "--timeout", "3s", proxy.frontend});
    EXPECT_EQ(denied.code, 69) << denied.err;
    EXPECT_THAT(denied.err, HasSubstr("did not allow this client"));

    message two("again-from-127.0.0.2");
    ASSERT_TRUE(allowed.send(two));
    m = consumer.recv(10s);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->id(), two.id()) << "a message from a denied address got through";
    EXPECT_FALSE(consumer.recv(100ms).has_value());
    (void)proxy.process.next_stderr_line(500ms);
    EXPECT_THAT(all_stderr(proxy.process), HasSubstr("deny list"));
}

TEST(security_process, a_key_allowed_on_the_frontend_is_refused_on_the_backend) {
    keys k;
    proxy_process proxy({"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                         "--curve-secret", k.path("proxy.key_secret"), "--frontend-curve-allow",
                         k.path("producers"), "--backend-curve-allow", k.path("consumers")});
    ASSERT_FALSE(proxy.backend.empty()) << all_stderr(proxy.process);
    child_process wrong_side(
        with({bin_path("zmqkit-recv"), "--pull", "-c", "1", "--timeout", "3s", ">" + proxy.backend},
             curve_client_flags(k, "producer.key")));
    zmq::context_t ctx;
    consumer_socket consumer(ctx, k, k.consumer, proxy.backend);
    ASSERT_TRUE(consumer.socket.handshakes()->wait_handshake(10s));
    auto sent =
        run_send(with({"-v", "--data", "for-the-consumer", "--timeout", "10s", proxy.frontend},
                      curve_client_flags(k, "producer.key")));
    ASSERT_EQ(sent.code, 0) << sent.err;
    auto m = consumer.socket.recv(10s);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->id().to_string(), sent.ids.at(0));
    EXPECT_EQ(wrong_side.wait(20s).value_or(-1), 69) << all_stderr(wrong_side);
    EXPECT_THAT(all_stderr(wrong_side), HasSubstr("nothing could be received from"));
    EXPECT_EQ(wrong_side.read_stdout(100ms), "");
}

TEST(security_process, forwarder_mode_carries_pub_to_sub_encrypted) {
    keys k;
    proxy_process proxy({"--mode", "forwarder", "--frontend", "tcp://127.0.0.1:*", "--backend",
                         "tcp://127.0.0.1:*", "--curve-secret", k.path("proxy.key_secret"),
                         "--frontend-curve-allow", k.path("producers"), "--backend-curve-allow",
                         k.path("consumers")});
    ASSERT_FALSE(proxy.backend.empty()) << all_stderr(proxy.process);
    child_process sub(with({bin_path("zmqkit-recv"), "--sub", "-c", "3", "--timeout", "30s", "-f",
                            "%i %t %s\n", proxy.backend},
                           curve_client_flags(k, "consumer.key")));
    auto sent = run_send(with({"--pub", "-v", "-K", " ", "--wait-peers", "1", "--timeout", "20s",
                               "--data", "a one\na two\na three", ">" + proxy.frontend},
                              curve_client_flags(k, "producer.key")));
    ASSERT_EQ(sent.code, 0) << sent.err;
    ASSERT_EQ(sub.wait(30s).value_or(-1), 0) << all_stderr(sub);
    const auto got = lines_of(sub.read_stdout(1s));
    ASSERT_EQ(got.size(), 3U);
    ASSERT_EQ(sent.ids.size(), 3U);
    EXPECT_EQ(got[0], sent.ids[0] + " a one");
    EXPECT_EQ(got[2], sent.ids[2] + " a three");
}

TEST(security_process, durable_mode_confirms_and_acks_encrypted) {
    keys k;
    temp_directory spool("security-spool");
    proxy_process proxy({"--mode", "durable", "--spool", spool.path().string(), "--frontend",
                         "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*", "--curve-secret",
                         k.path("proxy.key_secret"), "--frontend-curve-allow", k.path("producers"),
                         "--backend-curve-allow", k.path("consumers")});
    ASSERT_FALSE(proxy.backend.empty()) << all_stderr(proxy.process);
    auto sent = run_send(
        with({"--wait-confirm", "-v", "--data", "d1\nd2\nd3", "--timeout", "20s", proxy.frontend},
             curve_client_flags(k, "producer.key")));
    ASSERT_EQ(sent.code, 0) << sent.err;
    ASSERT_EQ(sent.ids.size(), 3U);
    child_process recv(with({bin_path("zmqkit-recv"), "--ack", "-c", "3", "--timeout", "30s", "-f",
                             "%i %s\n", proxy.backend},
                            curve_client_flags(k, "consumer.key")));
    ASSERT_EQ(recv.wait(30s).value_or(-1), 0) << all_stderr(recv);
    const auto got = lines_of(recv.read_stdout(1s));
    ASSERT_EQ(got.size(), 3U);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(got[i], sent.ids[i] + " d" + std::to_string(i + 1));
    }
    // A producer whose key is not allowed gets no confirm: it exits 69 with the reason.
    auto refused =
        run_send(with({"--wait-confirm", "--data", "x", "--timeout", "3s", proxy.frontend},
                      curve_client_flags(k, "stranger.key")));
    EXPECT_EQ(refused.code, 69) << refused.err;
}

TEST(security_process, lb_mode_answers_an_encrypted_request) {
    keys k;
    proxy_process proxy({"--mode", "lb", "--frontend", "tcp://127.0.0.1:*", "--backend",
                         "tcp://127.0.0.1:*", "--curve-secret", k.path("proxy.key_secret"),
                         "--frontend-curve-allow", k.path("producers"), "--backend-curve-allow",
                         k.path("consumers")});
    ASSERT_FALSE(proxy.backend.empty()) << all_stderr(proxy.process);
    zmq::context_t ctx;
    metrics_registry registry;
    patterns::lb_worker_options wo;
    wo.endpoint = proxy.backend;
    wo.socket.registry = &registry;
    wo.socket.security = socket_security::curve_client(k.proxy.public_key, &k.consumer);
    patterns::lb_worker worker(ctx, wo, patterns::lb_bytes_handler([](std::string_view body) {
                                   return "re:" + std::string(body);
                               }));
    worker.start();
    child_process req({bin_path("zmqkit-send"), "--req", "--data", "ping", "--timeout", "20s", "-f",
                       "%s\n", "--curve-server-key", k.path("proxy.key"), "--curve-secret",
                       k.path("producer.key_secret"), proxy.frontend});
    ASSERT_EQ(req.wait(30s).value_or(-1), 0) << all_stderr(req);
    EXPECT_EQ(req.read_stdout(1s), "re:ping\n");
    worker.stop();
}

TEST(security_process, sighup_rereads_the_allow_directory) {
    keys k;
    proxy_process proxy({"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                         "--curve-secret", k.path("proxy.key_secret"), "--frontend-curve-allow",
                         k.path("producers"), "--backend-curve-allow", k.path("consumers")});
    ASSERT_FALSE(proxy.backend.empty()) << all_stderr(proxy.process);
    zmq::context_t ctx;
    consumer_socket consumer(ctx, k, k.consumer, proxy.backend);
    ASSERT_TRUE(consumer.socket.handshakes()->wait_handshake(10s));
    auto before = run_send(with({"--data", "x", "--timeout", "2s", proxy.frontend},
                                curve_client_flags(k, "stranger.key")));
    EXPECT_EQ(before.code, 69) << before.err;
    k.stranger.save_public(k.path("producers/stranger.key"));
    proxy.process.signal(SIGHUP);
    ASSERT_TRUE(proxy.process.wait_for_stderr(std::regex("allow lists reloaded"), 10s));
    auto after = run_send(with({"-v", "--data", "now-allowed", "--timeout", "10s", proxy.frontend},
                               curve_client_flags(k, "stranger.key")));
    ASSERT_EQ(after.code, 0) << after.err;
    auto m = consumer.socket.recv(10s);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->id().to_string(), after.ids.at(0));
}

TEST(security_process, spooler_records_from_and_replays_to_encrypted_peers) {
    keys k;
    temp_directory spool("security-spooler");
    const auto dir = (spool.path() / "spool").string();
    // record: a CURVE server for the producers.
    child_process recorder({bin_path("zmqkit-spooler"), "record", dir, "--endpoint",
                            "@tcp://127.0.0.1:*", "-c", "2", "--timeout", "30s", "--curve-secret",
                            k.path("proxy.key_secret"), "--curve-allow", k.path("producers")});
    const auto recording = recorder.wait_for_stderr(std::regex("bound (\\S+)"), 10s);
    ASSERT_TRUE(recording.has_value()) << all_stderr(recorder);
    auto sent = run_send(with({"-v", "--data", "r1\nr2", "--timeout", "20s", *recording},
                              curve_client_flags(k, "producer.key")));
    ASSERT_EQ(sent.code, 0) << sent.err;
    ASSERT_EQ(recorder.wait(30s).value_or(-1), 0) << all_stderr(recorder);

    // replay: a CURVE client of a zmqkit-recv server that admits any client key.
    child_process recv({bin_path("zmqkit-recv"), "--pull", "@tcp://127.0.0.1:*", "-c", "2",
                        "--timeout", "30s", "-f", "%i %s\n", "--curve-secret",
                        k.path("consumer.key_secret"), "--curve-allow", "any"});
    const auto receiving = recv.wait_for_stderr(std::regex("bound (\\S+)"), 10s);
    ASSERT_TRUE(receiving.has_value()) << all_stderr(recv);
    child_process wrong({bin_path("zmqkit-spooler"), "replay", dir, "--endpoint", ">" + *receiving,
                         "--timeout", "3s", "--curve-server-key", k.path("stranger.key")});
    EXPECT_EQ(wrong.wait(30s).value_or(-1), 69) << all_stderr(wrong);
    EXPECT_THAT(all_stderr(wrong), HasSubstr("no message could be sent to"));
    child_process replay({bin_path("zmqkit-spooler"), "replay", dir, "--endpoint", ">" + *receiving,
                          "--curve-server-key", k.path("consumer.key")});
    EXPECT_EQ(replay.wait(30s).value_or(-1), 0) << all_stderr(replay);
    ASSERT_EQ(recv.wait(30s).value_or(-1), 0) << all_stderr(recv);
    const auto got = lines_of(recv.read_stdout(1s));
    ASSERT_EQ(got.size(), 2U);
    ASSERT_EQ(sent.ids.size(), 2U);
    EXPECT_EQ(got[0], sent.ids[0] + " r1");
    EXPECT_EQ(got[1], sent.ids[1] + " r2");
}

// Issue 14 item 11: a refused handshake is reported the same way on every tool path — plain
// zmqkit-send, zmqkit-send --wait-confirm, zmqkit-recv --pull, zmqkit-recv --ack — whether the
// refusal comes from a deny list or from CURVE: exit 69 and the same reason, never "not
// confirmed" (76) or "timed out" (75).
TEST(security_process, a_refused_handshake_is_exit_69_with_the_same_reason_on_every_tool_path) {
    keys k;
    temp_directory spool("security-refused");
    const std::vector<std::string> deny{"--frontend-zap-deny-ip", "127.0.0.1",
                                        "--backend-zap-deny-ip", "127.0.0.1"};
    proxy_process durable(
        with({"--mode", "durable", "--spool", (spool.path() / "a").string(), "--frontend",
              "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*"},
             deny));
    proxy_process stream(
        with({"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*"}, deny));
    ASSERT_FALSE(durable.backend.empty()) << all_stderr(durable.process);
    ASSERT_FALSE(stream.backend.empty()) << all_stderr(stream.process);

    // The deny list: every path, one reason.
    std::vector<std::pair<std::string, send_result>> denied;
    denied.emplace_back("send", run_send({"--data", "x", "--timeout", "3s", stream.frontend}));
    denied.emplace_back("send --wait-confirm", run_send({"--wait-confirm", "--data", "x",
                                                         "--timeout", "3s", durable.frontend}));
    denied.emplace_back("recv --pull", run_tool("zmqkit-recv", {"--pull", "--timeout", "3s",
                                                                ">" + stream.backend}));
    denied.emplace_back("recv --ack",
                        run_tool("zmqkit-recv", {"--ack", "--timeout", "3s", durable.backend}));
    const std::string reason = refusal_reason(denied.front().second.err);
    EXPECT_THAT(reason, HasSubstr("the server did not allow this client")) << reason;
    for (const auto& [path, r] : denied) {
        EXPECT_EQ(r.code, 69) << path << ": " << r.err;
        EXPECT_EQ(refusal_reason(r.err), reason) << path << ": " << r.err;
        EXPECT_THAT(r.err, HasSubstr(path.rfind("send", 0) == 0 ? "no message could be sent to"
                                                                : "nothing could be received from"))
            << path;
    }

    // CURVE: a plaintext client and a key that is not allowed, on the durable proxy's sides.
    proxy_process curve({"--mode", "durable", "--spool", (spool.path() / "b").string(),
                         "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                         "--curve-secret", k.path("proxy.key_secret"), "--frontend-curve-allow",
                         k.path("producers"), "--backend-curve-allow", k.path("consumers")});
    ASSERT_FALSE(curve.backend.empty()) << all_stderr(curve.process);
    const auto plaintext_send =
        run_send({"--wait-confirm", "--data", "x", "--timeout", "3s", curve.frontend});
    const auto plaintext_recv =
        run_tool("zmqkit-recv", {"--ack", "--timeout", "3s", curve.backend});
    for (const auto* r : {&plaintext_send, &plaintext_recv}) {
        EXPECT_EQ(r->code, 69) << r->err;
        EXPECT_THAT(r->err,
                    ::testing::AnyOf(HasSubstr("different security mechanism"),
                                     HasSubstr("closed the connection during the handshake")))
            << r->err;
    }
    const auto stranger_send =
        run_send(with({"--wait-confirm", "--data", "x", "--timeout", "3s", curve.frontend},
                      curve_client_flags(k, "stranger.key")));
    const auto stranger_recv =
        run_tool("zmqkit-recv", with({"--ack", "--timeout", "3s", curve.backend},
                                     curve_client_flags(k, "stranger.key")));
    EXPECT_EQ(stranger_send.code, 69) << stranger_send.err;
    EXPECT_EQ(stranger_recv.code, 69) << stranger_recv.err;
    EXPECT_EQ(refusal_reason(stranger_send.err), reason) << stranger_send.err;
    EXPECT_EQ(refusal_reason(stranger_recv.err), reason) << stranger_recv.err;
}
