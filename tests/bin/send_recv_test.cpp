// zmqkit-send and zmqkit-recv as real processes: throughput runs checked line by line, binary
// framing, JSON, topics, raw interop with plain ZeroMQ peers, formats, REQ/REP, exit codes.
#include "common/input_reader.hpp"
#include "common/message_format.hpp"
#include "zmqkit-recv/options.hpp"
#include "zmqkit-send/options.hpp"
#include "zmqkit-send/sender.hpp"

#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <regex>
#include <sstream>

using namespace zmqkit;
using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

std::vector<std::string> recv_cmd(std::vector<std::string> args) {
    args.insert(args.begin(), bin_path("zmqkit-recv"));
    return args;
}
std::vector<std::string> send_cmd(std::vector<std::string> args) {
    args.insert(args.begin(), bin_path("zmqkit-send"));
    return args;
}

// The endpoint a tool printed as "<tool>: info: bound <endpoint>".
std::string bound_endpoint(child_process& p) {
    return p.wait_for_stderr(std::regex("info: bound (\\S+)"), 10s).value_or("");
}

// Everything the (exited) child wrote on stdout.
std::string all_stdout(child_process& p) {
    std::string out = p.read_stdout(50ms);
    for (;;) {
        const auto more = p.read_stdout(50ms);
        if (more.size() == out.size()) {
            return out;
        }
        out = more;
    }
}

// Every stderr line, joined (reads what is left first).
std::string all_stderr(child_process& p) {
    while (p.next_stderr_line(100ms)) {
    }
    std::string text;
    for (const auto& l : p.stderr_lines()) {
        text += l + "\n";
    }
    return text;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        lines.push_back(l);
    }
    return lines;
}

std::string shell_quote(const std::string& s) {
    return "'" + s + "'";
}

void lines_arrive_once_and_in_order(const std::string& bind_spec) {
    constexpr int count = 100000;
    child_process recv(recv_cmd({"-c", std::to_string(count), "--stats", bind_spec}));
    const auto endpoint = bound_endpoint(recv);
    ASSERT_FALSE(endpoint.empty()) << all_stderr(recv);
    child_process send({"/bin/sh", "-c",
                        "seq 1 " + std::to_string(count) + " | " +
                            shell_quote(bin_path("zmqkit-send")) + " --stats " +
                            shell_quote(endpoint)});
    // Keep both children's pipes drained while they run.
    std::optional<int> received;
    std::optional<int> sent;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while ((!received || !sent) && std::chrono::steady_clock::now() < deadline) {
        received = recv.wait(10ms);
        sent = send.wait(0ms);
    }
    ASSERT_EQ(received, 0) << all_stderr(recv) << "\nsender: " << all_stderr(send);
    ASSERT_EQ(sent, 0) << all_stderr(send);
    const auto lines = split_lines(all_stdout(recv));
    ASSERT_EQ(lines.size(), static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        ASSERT_EQ(lines[static_cast<std::size_t>(i)], std::to_string(i + 1)) << "at " << i;
    }
    EXPECT_THAT(all_stderr(recv),
                ::testing::ContainsRegex("zmqkit-recv: stats: messages=100000 bytes=[0-9]+ "
                                         "elapsed=[0-9.]+s rate=[0-9]+ msgs/s"));
    EXPECT_THAT(all_stderr(send), HasSubstr("zmqkit-send: stats: messages=100000 "));
}

} // namespace

TEST(send_recv, hundred_thousand_lines_over_tcp_arrive_once_in_order) {
    lines_arrive_once_and_in_order("tcp://127.0.0.1:*");
}

TEST(send_recv, hundred_thousand_lines_over_ipc_arrive_once_in_order) {
    lines_arrive_once_and_in_order("@" + ipc_endpoint("lines"));
}

TEST(send_recv, length_prefixed_binary_is_byte_exact) {
    const std::vector<std::string> bodies{std::string("a\0b\nc", 5), std::string(1, '\0'), "",
                                          std::string("\n\n\xff\xfe", 4), std::string(70000, '\n')};
    std::string input;
    for (const auto& b : bodies) {
        const auto n = static_cast<std::uint32_t>(b.size());
        input += static_cast<char>((n >> 24) & 0xFF);
        input += static_cast<char>((n >> 16) & 0xFF);
        input += static_cast<char>((n >> 8) & 0xFF);
        input += static_cast<char>(n & 0xFF);
        input += b;
    }
    child_process recv(recv_cmd({"-c", "5", "-f", "hex", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--length-prefixed", endpoint}), true);
    send.write_stdin(input);
    send.close_stdin();
    ASSERT_EQ(recv.wait(20s), 0) << all_stderr(recv);
    ASSERT_EQ(send.wait(20s), 0) << all_stderr(send);
    const auto lines = split_lines(all_stdout(recv));
    ASSERT_EQ(lines.size(), bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        std::string hex;
        for (const char c : bodies[i]) {
            static constexpr char digits[] = "0123456789abcdef";
            hex += digits[static_cast<unsigned char>(c) >> 4];
            hex += digits[static_cast<unsigned char>(c) & 15];
        }
        EXPECT_EQ(lines[i], hex) << "message " << i;
    }
}

TEST(send_recv, custom_delimiter_and_raw_output) {
    child_process recv(recv_cmd({"-c", "3", "-f", "raw", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"-D", "\\x1e", "--data",
                                 "one\x1etwo\nlines\x1e"
                                 "three",
                                 endpoint}));
    ASSERT_EQ(recv.wait(20s), 0) << all_stderr(recv);
    ASSERT_EQ(send.wait(20s), 0);
    EXPECT_EQ(all_stdout(recv), "onetwo\nlinesthree");
}

TEST(send_recv, json_lines_round_trip) {
    const std::string correlation = "0193f1a2-b3c0-7000-8000-00000000c0de";
    const std::string input =
        "{\"a\":1,\"b\":[true,null,\"x\"]}\n"
        "\"just a string\"\n"
        "\n"
        "{\"headers\":{\"type\":\"order.created\",\"correlation_id\":\"" +
        correlation +
        "\",\"reply_to\":\"tcp://10.0.0.5:5555\",\"tenant\":\"acme\"},\"body\":{\"id\":7}}\n"
        "{\"headers\":{\"content_type\":\"text/plain\"},\"body\":\"plain text\"}\n";
    child_process recv(recv_cmd({"-c", "4", "-f", "json", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--json", endpoint}), true);
    send.write_stdin(input);
    send.close_stdin();
    ASSERT_EQ(recv.wait(20s), 0) << all_stderr(recv);
    ASSERT_EQ(send.wait(20s), 0) << all_stderr(send);
    const auto lines = split_lines(all_stdout(recv));
    ASSERT_EQ(lines.size(), 4U);
    std::vector<nlohmann::json> out;
    for (const auto& l : lines) {
        out.push_back(nlohmann::json::parse(l));
    }
    EXPECT_EQ(out[0]["body"], nlohmann::json::parse("{\"a\":1,\"b\":[true,null,\"x\"]}"));
    EXPECT_EQ(out[0]["content_type"], "application/msgpack");
    EXPECT_EQ(out[0]["correlation_id"], out[0]["id"]);
    EXPECT_EQ(out[0]["attempt"], 1);
    EXPECT_TRUE(out[0]["causation_id"].is_null());
    EXPECT_TRUE(out[0]["timestamp"].is_number_unsigned());
    EXPECT_EQ(out[1]["body"], "just a string");
    EXPECT_EQ(out[2]["type"], "order.created");
    EXPECT_EQ(out[2]["correlation_id"], correlation);
    EXPECT_NE(out[2]["id"], correlation);
    EXPECT_EQ(out[2]["reply_to"], "tcp://10.0.0.5:5555");
    EXPECT_EQ(out[2]["headers"]["tenant"], "acme");
    EXPECT_EQ(out[2]["body"], nlohmann::json::parse("{\"id\":7}"));
    EXPECT_EQ(out[3]["content_type"], "text/plain");
    EXPECT_EQ(out[3]["body"], "plain text");
    EXPECT_EQ(std::string(out[0]["id"]).size(), 36U);
}

TEST(send_recv, json_output_of_binary_bodies_is_base64) {
    child_process recv(recv_cmd({"-c", "1", "-f", "json", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--whole", endpoint}), true);
    send.write_stdin(std::string("\xff\x00\x01", 3));
    send.close_stdin();
    ASSERT_EQ(recv.wait(20s), 0);
    ASSERT_EQ(send.wait(20s), 0);
    auto j = nlohmann::json::parse(all_stdout(recv));
    EXPECT_EQ(j["body_base64"], "/wAB");
    EXPECT_FALSE(j.contains("body"));
}

TEST(send_recv, malformed_json_line_is_reported_and_the_rest_delivered) {
    child_process recv(recv_cmd({"-c", "2", "-f", "json", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--json", endpoint}), true);
    send.write_stdin("{\"n\":1}\n{\"n\": oops}\n{\"n\":3}\n");
    send.close_stdin();
    ASSERT_EQ(recv.wait(20s), 0) << all_stderr(recv);
    EXPECT_EQ(send.wait(20s), 65);
    EXPECT_THAT(all_stderr(send), HasSubstr("line 2: malformed JSON"));
    const auto lines = split_lines(all_stdout(recv));
    ASSERT_EQ(lines.size(), 2U);
    EXPECT_EQ(nlohmann::json::parse(lines[0])["body"]["n"], 1);
    EXPECT_EQ(nlohmann::json::parse(lines[1])["body"]["n"], 3);
}

TEST(send_recv, sub_receives_only_its_topics) {
    // The publisher binds and keeps publishing until the subscriber has what it asked for:
    // a SUB's subscription reaches the PUB some time after the connection.
    child_process send(send_cmd({"--pub", "-K", " ", "--wait-peers", "1", "tcp://127.0.0.1:*"}),
                       true);
    const auto endpoint = bound_endpoint(send);
    ASSERT_FALSE(endpoint.empty()) << all_stderr(send);
    child_process recv(recv_cmd({"--sub", "--topic", "orders.", "--topic", "audit", "-c", "50",
                                 "-f", "%t|%s\\n", endpoint}));
    std::optional<int> code;
    for (int batch = 0; batch < 2000 && !code; ++batch) {
        send.write_stdin("orders.new o" + std::to_string(batch) + "\nprices.eur p\naudit a" +
                         std::to_string(batch) + "\n");
        code = recv.wait(5ms);
    }
    ASSERT_EQ(code, 0) << all_stderr(recv);
    send.close_stdin();
    EXPECT_EQ(send.wait(20s), 0) << all_stderr(send);
    const auto lines = split_lines(all_stdout(recv));
    ASSERT_EQ(lines.size(), 50U);
    for (const auto& l : lines) {
        EXPECT_THAT(l, ::testing::MatchesRegex("(orders\\.new\\|o[0-9]+|audit\\|a[0-9]+)"));
    }
}

TEST(send_recv, raw_send_reaches_a_plain_zeromq_peer) {
    zmq::context_t ctx;
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.bind("tcp://127.0.0.1:*");
    const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);
    child_process send(send_cmd({"--raw", "-K", ":", "--data", "plain\nkey:value", endpoint}));
    auto first = recv_within(pull, 10s);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->to_string(), "plain");
    EXPECT_FALSE(first->more());
    auto key = recv_within(pull, 10s);
    ASSERT_TRUE(key.has_value());
    EXPECT_EQ(key->to_string(), "key");
    ASSERT_TRUE(key->more());
    auto value = recv_within(pull, 10s);
    ASSERT_TRUE(value.has_value());
    EXPECT_EQ(value->to_string(), "value");
    EXPECT_EQ(send.wait(10s), 0);
}

TEST(send_recv, raw_recv_outputs_every_frame_of_a_plain_zeromq_peer) {
    child_process recv(recv_cmd({"--raw", "-c", "2", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    zmq::context_t ctx;
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 1000);
    push.connect(endpoint);
    push.send(zmq::buffer(std::string("a")), zmq::send_flags::sndmore);
    push.send(zmq::buffer(std::string("b")), zmq::send_flags::none);
    push.send(zmq::buffer(std::string("c")), zmq::send_flags::none);
    ASSERT_EQ(recv.wait(10s), 0) << all_stderr(recv);
    EXPECT_EQ(all_stdout(recv), "a\nb\nc\n");
}

TEST(send_recv, malformed_messages_are_counted_and_do_not_stop_recv) {
    child_process recv(recv_cmd({"-v", "-c", "1", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    zmq::context_t ctx;
    zmqkit::socket push(ctx, zmq::socket_type::push);
    push.attach(endpoint, endpoint_action::connect);
    push.raw().send(zmq::buffer(std::string("not an envelope")), zmq::send_flags::none);
    ASSERT_TRUE(push.send(message{"good"}));
    ASSERT_EQ(recv.wait(10s), 0);
    EXPECT_EQ(all_stdout(recv), "good\n");
    EXPECT_THAT(all_stderr(recv), HasSubstr("discarded a malformed message"));
}

TEST(send_recv, every_format_token) {
    child_process recv(recv_cmd(
        {"-c", "1", "-f", "%s|%S|%t|%T|%c|%i|%C|%d|%a|%q|%r|%p|%y|%h{tenant}|%h{none}|%%\\t.\\n",
         "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    const std::string correlation = "0193f1a2-b3c0-7000-8000-00000000c0de";
    child_process send(
        send_cmd({"-v", "--type", "greeting", "--correlation-id", correlation, "--header",
                  "tenant=acme", "--reply-to", "tcp://host:1", "--data", "hello", endpoint}));
    ASSERT_EQ(recv.wait(10s), 0) << all_stderr(recv);
    ASSERT_EQ(send.wait(10s), 0) << all_stderr(send);
    const auto sent_id = send.wait_for_stderr(std::regex("sent (\\S+)"), 1s);
    ASSERT_TRUE(sent_id.has_value());
    const auto out = all_stdout(recv);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(out, m,
                                 std::regex("hello\\|5\\|\\|greeting\\|" + correlation +
                                            "\\|([0-9a-f-]{36})\\|\\|([0-9]+)\\|1\\|0\\|"
                                            "tcp://host:1\\|\\|\\|acme\\|\\|%\t\\.\n")))
        << out;
    EXPECT_EQ(m[1].str(), *sent_id);
    EXPECT_GT(std::stoull(m[2].str()), 1'700'000'000'000'000'000ULL);
}

TEST(send_recv, req_rep_round_trip) {
    {
        child_process rep(recv_cmd({"--rep", "-c", "2", "tcp://127.0.0.1:*"}));
        const auto endpoint = bound_endpoint(rep);
        child_process req(send_cmd({"--req", "--data", "ping\nagain", endpoint}));
        ASSERT_EQ(req.wait(10s), 0) << all_stderr(req);
        ASSERT_EQ(rep.wait(10s), 0) << all_stderr(rep);
        EXPECT_EQ(all_stdout(req), "ping\nagain\n");
        EXPECT_EQ(all_stdout(rep), "ping\nagain\n");
    }
    {
        child_process rep(recv_cmd({"--rep", "--reply", "pong", "-c", "1", "tcp://127.0.0.1:*"}));
        const auto endpoint = bound_endpoint(rep);
        child_process req(send_cmd({"--req", "-f", "%s %C\\n", "--data", "ping", endpoint}));
        ASSERT_EQ(req.wait(10s), 0) << all_stderr(req);
        ASSERT_EQ(rep.wait(10s), 0);
        // The reply is a follow-up: its causation id is the request's id.
        EXPECT_THAT(all_stdout(req), ::testing::MatchesRegex("pong [0-9a-f-]{36}\n"));
    }
}

TEST(send_recv, dealer_to_router) {
    child_process router(recv_cmd({"--router", "-c", "2", "-f", "%T %s\\n", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(router);
    child_process dealer(send_cmd({"--dealer", "-K", "=", "--data", "k1=v1\nk2=v2", endpoint}));
    ASSERT_EQ(router.wait(10s), 0) << all_stderr(router);
    EXPECT_EQ(dealer.wait(10s), 0);
    EXPECT_EQ(all_stdout(router), "k1 v1\nk2 v2\n");
}

TEST(send_recv, pair_with_idle_timeout) {
    child_process recv(recv_cmd({"--pair", "--idle-timeout", "300ms", "@tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--pair", "--data", "x\ny\nz", endpoint}));
    ASSERT_EQ(recv.wait(10s), 0) << all_stderr(recv);
    EXPECT_EQ(send.wait(10s), 0);
    EXPECT_EQ(all_stdout(recv), "x\ny\nz\n");
}

TEST(send_recv, sigterm_stops_recv_with_stats_and_exit_0) {
    child_process recv(recv_cmd({"--stats", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--data", "one", endpoint}));
    ASSERT_EQ(send.wait(10s), 0);
    // Something got through before the signal: wait for its output line.
    ASSERT_TRUE(eventually([&] { return recv.read_stdout(10ms) == "one\n"; }, 10s));
    recv.signal(SIGTERM);
    ASSERT_EQ(recv.wait(10s), 0);
    EXPECT_THAT(all_stderr(recv), HasSubstr("zmqkit-recv: stats: messages=1 bytes=3 "));
}

TEST(send_recv, exit_64_for_bad_usage_with_the_reason) {
    struct usage_case {
        std::vector<std::string> argv;
        std::string reason;
    };
    const std::vector<usage_case> cases{
        {recv_cmd({"--bogus", "tcp://127.0.0.1:*"}), "unrecognised option '--bogus'"},
        {send_cmd({"tcp://127.0.0.1"}), "bad endpoint 'tcp://127.0.0.1': missing ':port'"},
        {recv_cmd({"-f", "fancy", "tcp://127.0.0.1:*"}), "available: raw, text, hex, json"},
        {recv_cmd({"-f", "%z", "tcp://127.0.0.1:*"}), "unknown token '%z'"},
        {send_cmd({"-X", "nosuch=1", "tcp://127.0.0.1:1"}), "known: sndhwm, rcvhwm, linger"},
        {send_cmd({"--push", "--pub", "tcp://127.0.0.1:1"}), "choose one socket type"},
        {send_cmd({"--timeout", "soon", "tcp://127.0.0.1:1"}), "bad duration 'soon'"},
        {send_cmd({"-D", "\\q", "tcp://127.0.0.1:1"}), "bad escape"},
        {recv_cmd({"--topic", "x", "tcp://127.0.0.1:*"}), "--topic needs --sub"},
        {send_cmd({}), "no endpoint given"},
    };
    for (const auto& c : cases) {
        child_process p(c.argv);
        EXPECT_EQ(p.wait(10s), 64) << c.reason;
        EXPECT_THAT(all_stderr(p), HasSubstr(c.reason));
    }
}

TEST(send_recv, exit_65_for_a_truncated_length_prefix) {
    zmq::context_t ctx;
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.bind("tcp://127.0.0.1:*");
    const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);
    child_process send(send_cmd({"--length-prefixed", endpoint}), true);
    send.write_stdin(std::string("\0\0\0\x02ok\0\0\0\x09short", 15));
    send.close_stdin();
    EXPECT_EQ(send.wait(10s), 65);
    EXPECT_THAT(all_stderr(send), HasSubstr("message 2 is truncated"));
    // The complete first message was still sent.
    auto frame = recv_within(pull, 10s);
    ASSERT_TRUE(frame.has_value());
    header h;
    std::size_t header_size = 0;
    ASSERT_TRUE(decode_header(frame->data(), frame->size(), h, &header_size).ok());
    EXPECT_EQ(frame->to_string().substr(header_size), "ok");
}

TEST(send_recv, exit_66_for_an_unreadable_file) {
    child_process send(send_cmd({"--file", "/nonexistent/zmqkit-input", "tcp://127.0.0.1:1"}));
    EXPECT_EQ(send.wait(10s), 66);
    EXPECT_THAT(all_stderr(send), HasSubstr("cannot read --file '/nonexistent/zmqkit-input'"));
}

TEST(send_recv, exit_69_for_a_port_in_use) {
    zmq::context_t ctx;
    zmq::socket_t holder(ctx, zmq::socket_type::pull);
    holder.set(zmq::sockopt::linger, 0);
    holder.bind("tcp://127.0.0.1:*");
    const std::string taken = holder.get(zmq::sockopt::last_endpoint);
    child_process recv(recv_cmd({taken}));
    EXPECT_EQ(recv.wait(10s), 69);
    EXPECT_THAT(all_stderr(recv), HasSubstr("cannot bind to " + taken));
}

TEST(send_recv, exit_75_when_the_count_is_not_reached_in_time) {
    child_process recv(recv_cmd({"-c", "1", "--timeout", "200ms", "tcp://127.0.0.1:*"}));
    EXPECT_EQ(recv.wait(10s), 75);
    EXPECT_THAT(all_stderr(recv), HasSubstr("timed out after 200 ms with 0 message(s) of 1"));
}

TEST(send_recv, exit_75_when_peers_do_not_connect_in_time) {
    const auto endpoint = ipc_endpoint("nobody");
    child_process send(
        send_cmd({"--wait-peers", "1", "--timeout", "200ms", "--data", "x", endpoint}));
    EXPECT_EQ(send.wait(10s), 75);
    EXPECT_THAT(all_stderr(send), HasSubstr("waiting for 1 peer(s)"));
}

TEST(send_recv, help_lists_examples) {
    for (const auto* tool : {"zmqkit-send", "zmqkit-recv"}) {
        child_process p({bin_path(tool), "--help"});
        ASSERT_EQ(p.wait(10s), 0);
        const auto out = all_stdout(p);
        EXPECT_THAT(out, HasSubstr(std::string("Usage: ") + tool));
        EXPECT_THAT(out, HasSubstr("Examples:"));
        EXPECT_THAT(out, HasSubstr("Exit codes:"));
    }
}

TEST(send_recv, sigterm_stops_send_waiting_for_input_with_stats_and_exit_0) {
    child_process recv(recv_cmd({"-c", "2", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--stats", endpoint}), true);
    send.write_stdin("first\nsecond\n");
    ASSERT_EQ(recv.wait(10s), 0); // both went through; the sender now waits for more input
    EXPECT_EQ(all_stdout(recv), "first\nsecond\n");
    send.signal(SIGTERM);
    ASSERT_EQ(send.wait(10s), 0);
    EXPECT_THAT(all_stderr(send), HasSubstr("zmqkit-send: stats: messages=2 bytes=11 "));
}

TEST(send_recv, send_timeout_while_input_is_pending_exits_75) {
    child_process recv(recv_cmd({"-c", "1", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--timeout", "300ms", endpoint}), true);
    send.write_stdin("only\n");
    ASSERT_EQ(recv.wait(10s), 0);
    EXPECT_EQ(send.wait(10s), 75); // stdin stays open: the input did not end in time
    EXPECT_THAT(all_stderr(send), HasSubstr("timed out after 300 ms (1 message(s) sent)"));
}

TEST(send_recv, file_input_count_and_rate) {
    char path[] = "/tmp/zmqkit-send-file-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    const std::string content = "a\nb\nc\nd\ne\nf\n";
    ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
    child_process recv(recv_cmd({"-c", "5", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    const auto start = std::chrono::steady_clock::now();
    child_process send(send_cmd({"--file", path, "-c", "5", "--rate", "50", endpoint}));
    ASSERT_EQ(send.wait(10s), 0) << all_stderr(send);
    ASSERT_EQ(recv.wait(10s), 0);
    // Five messages at 50/s: the last one leaves no earlier than 80 ms after the first.
    EXPECT_GE(std::chrono::steady_clock::now() - start, 80ms);
    EXPECT_EQ(all_stdout(recv), "a\nb\nc\nd\ne\n");
    ::unlink(path);
}

TEST(send_recv, socket_options_are_applied_and_checked) {
    {
        child_process p(send_cmd({"-X", "sndhwm=lots", "tcp://127.0.0.1:1"}));
        EXPECT_EQ(p.wait(10s), 64);
        EXPECT_THAT(all_stderr(p), HasSubstr("'lots' is not an integer"));
    }
    child_process recv(
        recv_cmd({"-X", "rcvhwm=10", "-X", "maxmsgsize=100000", "-c", "1", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd(
        {"-X", "sndhwm=5", "-X", "immediate=1", "--wait-peers", "1", "--data", "ok", endpoint}));
    ASSERT_EQ(send.wait(10s), 0) << all_stderr(send);
    ASSERT_EQ(recv.wait(10s), 0);
    EXPECT_EQ(all_stdout(recv), "ok\n");
}

// In-process checks of the pieces the tools are built from (zmqkit_cli_transfer).
TEST(send_recv_parts, option_parsing) {
    const char* argv[] = {"zmqkit-send",       "--pub", "-D", "\\t",      "-K",     ":",
                          "--header",          "a=b=c", "-X", "sndhwm=7", "--rate", "2.5",
                          "@tcp://127.0.0.1:*"};
    auto parsed = cli::parse_send_options(static_cast<int>(std::size(argv)), argv);
    ASSERT_TRUE(std::holds_alternative<cli::send_config>(parsed));
    const auto& cfg = std::get<cli::send_config>(parsed);
    EXPECT_EQ(cfg.kind.type, zmq::socket_type::pub);
    EXPECT_EQ(cfg.delimiter, "\t");
    EXPECT_EQ(cfg.key_delimiter, ":");
    ASSERT_EQ(cfg.headers.size(), 1U);
    EXPECT_EQ(cfg.headers[0].second, "b=c");
    ASSERT_EQ(cfg.socket_options.size(), 1U);
    EXPECT_EQ(cfg.socket_options[0].option, ZMQ_SNDHWM);
    EXPECT_EQ(cfg.socket_options[0].value, 7);
    EXPECT_DOUBLE_EQ(cfg.rate, 2.5);

    const char* recv_argv[] = {
        "zmqkit-recv", "--sub", "--topic", "a", "--topic", "b", "-c", "3", "tcp://127.0.0.1:5556"};
    auto r = cli::parse_recv_options(static_cast<int>(std::size(recv_argv)), recv_argv);
    const auto& rc = std::get<cli::recv_config>(r);
    EXPECT_EQ(rc.kind.default_action, endpoint_action::connect);
    EXPECT_EQ(rc.topics, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(rc.count, 3U);
}

TEST(send_recv_parts, escapes) {
    EXPECT_EQ(cli::decode_escapes("a\\n\\t\\0\\\\\\x41\\x7e", "x"), std::string("a\n\t\0\\A~", 7));
    EXPECT_THROW((void)cli::decode_escapes("\\x4", "x"), cli::usage_error);
    EXPECT_THROW((void)cli::decode_escapes("\\", "x"), cli::usage_error);
    EXPECT_THROW((void)cli::decode_escapes("\\xzz", "x"), cli::usage_error);
}

TEST(send_recv_parts, input_reader_framings) {
    auto all = [](cli::input_reader& r) {
        std::vector<std::string> out;
        std::string_view m;
        while (r.next(m) == cli::input_reader::status::message) {
            out.emplace_back(m);
        }
        return out;
    };
    cli::input_reader lines("a\n\nbc\nlast", cli::input_reader::framing::delimited, "\n");
    EXPECT_EQ(all(lines), (std::vector<std::string>{"a", "", "bc", "last"}));
    cli::input_reader multi("x<>y<><>z<>", cli::input_reader::framing::delimited, "<>");
    EXPECT_EQ(all(multi), (std::vector<std::string>{"x", "y", "", "z"}));
    cli::input_reader prefixed(std::string("\0\0\0\x01"
                                           "a\0\0\0\0",
                                           9),
                               cli::input_reader::framing::length_prefixed, "");
    EXPECT_EQ(all(prefixed), (std::vector<std::string>{"a", ""}));
    cli::input_reader truncated(std::string("\0\0\0\x05"
                                            "ab",
                                            6),
                                cli::input_reader::framing::length_prefixed, "");
    std::string_view m;
    EXPECT_EQ(truncated.next(m), cli::input_reader::status::truncated);
    cli::input_reader whole("a\nb", cli::input_reader::framing::whole, "\n");
    EXPECT_EQ(all(whole), (std::vector<std::string>{"a\nb"}));
}

TEST(send_recv_parts, json_envelopes) {
    header h;
    std::string body;
    std::string error;
    ASSERT_TRUE(cli::json_to_envelope("[1,2]", h, body, error));
    EXPECT_EQ(h.content_type, "application/msgpack");
    EXPECT_EQ(body, std::string("\x92\x01\x02", 3));
    header h2;
    ASSERT_TRUE(cli::json_to_envelope(
        R"({"headers":{"type":"t","attempt":2,"k":"v"},"body_base64":"/wAB"})", h2, body, error));
    EXPECT_EQ(h2.type, "t");
    EXPECT_EQ(h2.attempt, 2U);
    ASSERT_NE(h2.find_user_header("k"), nullptr);
    EXPECT_EQ(body, std::string("\xff\x00\x01", 3));
    header h3;
    EXPECT_FALSE(cli::json_to_envelope(R"({"headers":{"attempt":"x"},"body":1})", h3, body, error));
    EXPECT_THAT(error, HasSubstr("attempt"));
    EXPECT_FALSE(cli::json_to_envelope("{nope", h3, body, error));
    EXPECT_THAT(error, HasSubstr("parse error"));
}

TEST(send_recv_parts, formatter_and_helpers) {
    header h;
    h.type = "t";
    h.set_user_header("bin", std::string("\xff", 1));
    std::string out;
    cli::message_formatter("%T:%s:%S\\n").render(&h, "topic", "body", out);
    EXPECT_EQ(out, "t:body:4\n");
    out.clear();
    cli::message_formatter("hex").render(nullptr, {}, std::string("\x00\xab", 2), out);
    EXPECT_EQ(out, "00ab\n");
    out.clear();
    cli::message_formatter("json").render(&h, {}, "text", out);
    auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["body"], "text");
    EXPECT_EQ(j["headers"]["bin"]["base64"], "/w==");
    EXPECT_TRUE(cli::is_valid_utf8("h\xc3\xa9llo"));
    EXPECT_FALSE(cli::is_valid_utf8("\xc3"));
    EXPECT_FALSE(cli::is_valid_utf8("\xed\xa0\x80")); // a surrogate
    EXPECT_EQ(cli::base64_encode("ab"), "YWI=");
    EXPECT_THROW(cli::message_formatter("%h"), cli::usage_error);
}
