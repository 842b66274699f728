// zmqkit-send and zmqkit-recv as real processes: throughput runs checked line by line, binary
// framing, JSON, topics, raw interop with plain ZeroMQ peers, formats, REQ/REP, exit codes.
#include "common/input_reader.hpp"
#include "common/message_format.hpp"
#include "zmqkit-recv/options.hpp"
#include "zmqkit-send/options.hpp"
#include "zmqkit-send/sender.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/encoding.hpp>
#include <zmqkit/patterns/pubsub.hpp>

#include "support/process.hpp"
#include "support/testing.hpp"
#include "support/zmtp_peer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace zmqkit;
using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

// A test that writes to a child's stdin must not die of SIGPIPE when the child has exited.
const bool sigpipe_ignored = [] {
    (void)std::signal(SIGPIPE, SIG_IGN);
    return true;
}();

// An ipc endpoint in its own mkdtemp directory, removed (with the socket file) at scope exit.
struct ipc_dir {
    explicit ipc_dir(const std::string& stem) : endpoint(ipc_endpoint(stem)) {}
    ~ipc_dir() {
        std::error_code ignored;
        const auto path = std::filesystem::path(endpoint.substr(std::string("ipc://").size()));
        std::filesystem::remove_all(path.parent_path(), ignored);
    }
    ipc_dir(const ipc_dir&) = delete;
    ipc_dir& operator=(const ipc_dir&) = delete;
    std::string endpoint;
};

// A mkstemp file with the given content, removed at scope exit.
struct temp_file {
    explicit temp_file(const std::string& content) {
        const int fd = ::mkstemp(path.data());
        if (fd < 0) {
            throw std::runtime_error("mkstemp failed");
        }
        const auto n = ::write(fd, content.data(), content.size());
        ::close(fd);
        if (n != static_cast<ssize_t>(content.size())) {
            throw std::runtime_error("short write to " + path);
        }
    }
    ~temp_file() { ::unlink(path.c_str()); }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
    std::string path = "/tmp/zmqkit-send-file-XXXXXX";
};

std::string length_prefixed(const std::vector<std::string>& bodies) {
    std::string input;
    for (const auto& b : bodies) {
        const auto n = static_cast<std::uint32_t>(b.size());
        input += static_cast<char>((n >> 24) & 0xFF);
        input += static_cast<char>((n >> 16) & 0xFF);
        input += static_cast<char>((n >> 8) & 0xFF);
        input += static_cast<char>(n & 0xFF);
        input += b;
    }
    return input;
}

std::vector<std::string> recv_cmd(std::vector<std::string> args) {
    args.insert(args.begin(), bin_path("zmqkit-recv"));
    return args;
}
std::vector<std::string> send_cmd(std::vector<std::string> args) {
    args.insert(args.begin(), bin_path("zmqkit-send"));
    return args;
}

// The endpoint a tool printed as "<time> INFO  <tool>: bound <endpoint>".
std::string bound_endpoint(child_process& p) {
    return p.wait_for_stderr(std::regex("INFO  zmqkit-[a-z]+: bound (\\S+)"), 10s).value_or("");
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
    const ipc_dir dir("lines");
    lines_arrive_once_and_in_order("@" + dir.endpoint);
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
        EXPECT_EQ(lines[i], zmqkit::to_hex(bodies[i])) << "message " << i;
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
    child_process send(send_cmd({"--pub", "-K", " ", "--wait-peers", "1", "--timeout", "60s",
                                 "tcp://127.0.0.1:*"}),
                       true);
    const auto endpoint = bound_endpoint(send);
    ASSERT_FALSE(endpoint.empty()) << all_stderr(send);
    child_process recv(recv_cmd({"--sub", "--topic", "orders.", "--topic", "audit", "-c", "50",
                                 "-f", "%t|%s\\n", endpoint}));
    std::optional<int> code;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (int batch = 0; !code && std::chrono::steady_clock::now() < deadline; ++batch) {
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

namespace {

// Publishes lines with `send_args` (a --pub sender that binds) until a subscriber to exactly
// `topic` has 10 of them, and returns what it printed as "<topic>|<body>" lines.
std::vector<std::string> published_to_topic(const std::string& topic,
                                            const std::vector<std::string>& send_args,
                                            const std::function<std::string(int)>& line) {
    auto args = send_args;
    for (const auto& a : {"--pub", "--wait-peers", "1", "--timeout", "60s", "tcp://127.0.0.1:*"}) {
        args.emplace_back(a);
    }
    child_process send(send_cmd(args), true);
    const auto endpoint = bound_endpoint(send);
    EXPECT_FALSE(endpoint.empty()) << all_stderr(send);
    child_process recv(
        recv_cmd({"--sub", "--topic", topic, "-c", "10", "-f", "%t|%s\\n", endpoint}));
    std::optional<int> code;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (int n = 0; !code && std::chrono::steady_clock::now() < deadline; ++n) {
        send.write_stdin(line(n));
        code = recv.wait(5ms);
    }
    EXPECT_EQ(code, 0) << "nothing arrived on the topic; " << all_stderr(recv);
    send.close_stdin();
    EXPECT_EQ(send.wait(20s), 0) << all_stderr(send);
    return split_lines(all_stdout(recv));
}

} // namespace

TEST(send_recv, pub_topics_are_byte_exact_in_every_mode) {
    // Short topics (kept inside the std::string) lost their first byte to a 0x00 (issue 14
    // item 5); non-ASCII and control bytes must pass unchanged too.
    const std::vector<std::string> topics{"orders", std::string("\xc3\xa9t\xff\x01", 5),
                                          "a.topic.longer.than.sixteen.bytes"};
    for (const auto& topic : topics) {
        SCOPED_TRACE("topic of " + std::to_string(topic.size()) + " bytes");
        const auto body = [](const std::string& tag, int n) { return tag + std::to_string(n); };
        const auto typed = published_to_topic(topic, {"--type", topic},
                                              [&](int n) { return body("t", n) + "\n"; });
        const auto json = published_to_topic(topic, {"--json", "--type", topic}, [&](int n) {
            return "{\"body\": \"" + body("j", n) + "\"}\n";
        });
        const auto keyed = published_to_topic(topic, {"-K", " "}, [&](int n) {
            return topic + " " + body("k", n) + "\nother " + body("x", n) + "\n";
        });
        for (const auto& [lines, tag] :
             {std::pair{typed, "t"}, std::pair{json, "j"}, std::pair{keyed, "k"}}) {
            ASSERT_EQ(lines.size(), 10U) << tag;
            std::set<std::string> bodies;
            for (const auto& l : lines) {
                ASSERT_GT(l.size(), topic.size()) << tag;
                EXPECT_EQ(l.substr(0, topic.size() + 1), topic + "|") << tag;
                auto b = l.substr(topic.size() + 1);
                if (std::string_view(tag) == "j" && !b.empty()) {
                    b.erase(0, 1); // the msgpack str header of the JSON string body
                }
                EXPECT_THAT(b, ::testing::MatchesRegex(std::string(tag) + "[0-9]+"));
                EXPECT_TRUE(bodies.insert(b).second) << "twice: " << b;
            }
        }
    }
}

// Issue 14 item 4 for the tool's own XPUB: a 256 KiB subscription crashed `zmqkit-send --pub`
// (libzmq's recursive trie) when its subscriber left, as it crashed the forwarder. The tool
// closes such a connection at the frame's head, stays alive and keeps publishing.
TEST(send_recv, pub_survives_an_oversize_subscription) {
    child_process send(send_cmd({"--pub", "--timeout", "60s", "tcp://127.0.0.1:*"}), true);
    const auto endpoint = bound_endpoint(send);
    ASSERT_FALSE(endpoint.empty()) << all_stderr(send);
    using form = zmqkit::testing::raw_zmtp_subscriber::form;
    const std::string big(256 * 1024, 'o');
    for (const auto f : {form::command, form::message}) {
        zmqkit::testing::raw_zmtp_subscriber peer(endpoint, f);
        (void)peer.subscribe(big); // may fail half-way: the tool closes at the frame head
        EXPECT_TRUE(peer.closed_by_peer()) << "form " << static_cast<int>(f);
    } // the hostile peer is gone: the moment that crashed it before
    child_process recv(recv_cmd({"--sub", "-c", "3", endpoint}));
    std::optional<int> code;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (int n = 0; !code && std::chrono::steady_clock::now() < deadline; ++n) {
        send.write_stdin("line " + std::to_string(n) + "\n");
        code = recv.wait(5ms);
    }
    EXPECT_EQ(code, 0) << all_stderr(recv);
    send.close_stdin();
    EXPECT_EQ(send.wait(20s), 0) << all_stderr(send);
}

// A subscriber's sequence check on the wire, from a PUB written by hand: a gap (named with the
// missing numbers and the ids of the message that showed it), a duplicate (dropped), a late
// arrival; %g/%G per message, the counts in --stats, and --fail-on-gap's exit 65.
TEST(send_recv, sub_reports_gaps_duplicates_and_late_publications_with_their_ids) {
    child_process recv(
        recv_cmd({"--sub", "--stats", "--fail-on-gap", "-f", "%g|%G|%s\\n", "@tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    ASSERT_FALSE(endpoint.empty()) << all_stderr(recv);
    zmq::context_t ctx;
    zmq::socket_t pub(ctx, zmq::socket_type::pub);
    pub.set(zmq::sockopt::linger, 0);
    pub.connect(endpoint);
    const auto publish = [&](const header& h, const std::string& body) {
        pub.send(zmq::buffer(std::string("t")), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(encode_header(h)), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(body), zmq::send_flags::none);
    };
    // Until the subscription has reached the PUB: unsequenced messages (not tracked).
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (out.find("warm\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        publish(header::fresh(), "warm");
        out = recv.read_stdout(20ms);
    }
    ASSERT_NE(out.find("||warm\n"), std::string::npos) << all_stderr(recv);

    const auto publisher = message_id::generate();
    const auto conversation = message_id::generate();
    std::vector<header> sent;
    // 3 comes after 4 (late), 4 comes twice (a duplicate), 6 and 7 never come.
    for (const std::uint64_t seq : {1UL, 2UL, 4UL, 4UL, 3UL, 5UL, 8UL}) {
        header h = header::fresh();
        h.correlation_id = conversation;
        h.publisher_id = publisher;
        h.sequence = seq;
        if (!sent.empty() && seq == sent.back().sequence) {
            h = sent.back(); // the same message again
        }
        publish(h, "p" + std::to_string(seq));
        sent.push_back(h);
    }
    const auto gap = recv.wait_for_stderr(
        std::regex("WARN  zmqkit-recv: (gap: 1 message\\(s\\) of publisher .*)"), 10s);
    ASSERT_TRUE(gap) << all_stderr(recv);
    EXPECT_EQ(*gap, "gap: 1 message(s) of publisher " + publisher.to_string() +
                        " on 't' never arrived (sequence 3; this one is 4) message_id=" +
                        sent[2].id.to_string() + " correlation_id=" + conversation.to_string());
    const auto duplicate =
        recv.wait_for_stderr(std::regex("WARN  zmqkit-recv: (duplicate: .*)"), 10s);
    ASSERT_TRUE(duplicate) << all_stderr(recv);
    EXPECT_EQ(*duplicate, "duplicate: sequence 4 of publisher " + publisher.to_string() +
                              " on 't' arrived again message_id=" + sent[2].id.to_string() +
                              " correlation_id=" + conversation.to_string());
    const auto late = recv.wait_for_stderr(std::regex("WARN  zmqkit-recv: (late: .*)"), 10s);
    ASSERT_TRUE(late) << all_stderr(recv);
    EXPECT_EQ(*late, "late: sequence 3 of publisher " + publisher.to_string() +
                         " on 't' arrived after it was reported missing message_id=" +
                         sent[4].id.to_string() + " correlation_id=" + conversation.to_string());
    ASSERT_TRUE(recv.wait_for_stderr(
        std::regex(
            "(gap: 2 message\\(s\\) of publisher .* \\(sequence 6\\.\\.7; this one is 8\\))"),
        10s))
        << all_stderr(recv);
    recv.signal(SIGTERM);
    EXPECT_EQ(recv.wait(10s), 65) << all_stderr(recv); // --fail-on-gap
    // The duplicate is dropped; every other one is written with what the check found.
    EXPECT_THAT(all_stdout(recv), HasSubstr("first||p1\nin_order||p2\ngap|3|p4\nlate||p3\n"
                                            "in_order||p5\ngap|6..7|p8\n"));
    const auto all = all_stderr(recv);
    EXPECT_THAT(all, HasSubstr("sequenced=6 gaps=2 missing=3 duplicates=1 late=1"));
    EXPECT_THAT(all, HasSubstr("3 publication(s) missing in 2 gap(s) (--fail-on-gap)"));
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
    const std::string traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // Every field set through a JSON envelope, so %p, %y, %a and %q print real values.
    const std::string envelope =
        R"({"headers":{"type":"greeting","correlation_id":")" + correlation +
        R"(","reply_to":"tcp://host:1","traceparent":")" + traceparent +
        R"(","content_type":"text/plain","attempt":3,"sequence":42,"tenant":"acme"},)"
        R"("body":"hello"})";
    child_process send(send_cmd({"-v", "--json", "--data", envelope, endpoint}));
    ASSERT_EQ(recv.wait(10s), 0) << all_stderr(recv);
    ASSERT_EQ(send.wait(10s), 0) << all_stderr(send);
    const auto sent_id = send.wait_for_stderr(std::regex("sent (\\S+)"), 1s);
    ASSERT_TRUE(sent_id.has_value());
    const auto out = all_stdout(recv);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(out, m,
                                 std::regex("hello\\|5\\|\\|greeting\\|" + correlation +
                                            "\\|([0-9a-f-]{36})\\|\\|([0-9]+)\\|3\\|42\\|"
                                            "tcp://host:1\\|" +
                                            traceparent + "\\|text/plain\\|acme\\|\\|%\t\\.\n")))
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
    // Generous: the three messages arrive together; the idle timeout only ends the run.
    child_process recv(recv_cmd({"--pair", "--idle-timeout", "2s", "@tcp://127.0.0.1:*"}));
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
        {recv_cmd({"-f", "fancy", "tcp://127.0.0.1:*"}), "available: raw, text, quoted, hex, json"},
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
    const ipc_dir dir("nobody");
    const auto& endpoint = dir.endpoint;
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
    child_process send(send_cmd({"--timeout", "2s", endpoint}), true);
    send.write_stdin("only\n");
    ASSERT_EQ(recv.wait(10s), 0);
    EXPECT_EQ(send.wait(10s), 75); // stdin stays open: the input did not end in time
    EXPECT_THAT(all_stderr(send), HasSubstr("timed out after 2000 ms (1 message(s) sent)"));
}

TEST(send_recv, file_input_count_and_rate) {
    const temp_file file("a\nb\nc\nd\ne\nf\n");
    child_process recv(recv_cmd({"-c", "5", "-f", "%d %s\\n", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--file", file.path, "-c", "5", "--rate", "50", endpoint}));
    ASSERT_EQ(send.wait(10s), 0) << all_stderr(send);
    ASSERT_EQ(recv.wait(10s), 0);
    // Five messages at 50/s, stamped when sent: the sends are 20 ms apart on a fixed schedule,
    // so the fifth is stamped at least 4 intervals (80 ms, less clock granularity) after the
    // first, whatever the time the processes took to start.
    const auto lines = split_lines(all_stdout(recv));
    ASSERT_EQ(lines.size(), 5U);
    std::vector<std::uint64_t> stamps;
    std::string bodies;
    for (const auto& l : lines) {
        const auto space = l.find(' ');
        ASSERT_NE(space, std::string::npos) << l;
        stamps.push_back(std::stoull(l.substr(0, space)));
        bodies += l.substr(space + 1);
    }
    EXPECT_EQ(bodies, "abcde");
    EXPECT_GE(stamps[4] - stamps[0], 79'000'000U);
    for (std::size_t i = 1; i < stamps.size(); ++i) {
        EXPECT_GE(stamps[i], stamps[i - 1]);
    }
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
    EXPECT_TRUE(zmqkit::is_valid_utf8("h\xc3\xa9llo"));
    EXPECT_FALSE(zmqkit::is_valid_utf8("\xc3"));
    EXPECT_FALSE(zmqkit::is_valid_utf8("\xed\xa0\x80")); // a surrogate
    EXPECT_EQ(zmqkit::base64_encode("ab"), "YWI=");
    EXPECT_THROW(cli::message_formatter("%h"), cli::usage_error);
}

TEST(send_recv, garbage_length_prefix_is_a_data_error_after_the_messages_before_it) {
    zmq::context_t ctx;
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.bind("tcp://127.0.0.1:*");
    const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);
    // "abcd" read as a length is 1.6 GB: refused at once, not allocated, and the tool stops.
    child_process send(send_cmd({"--length-prefixed", "--timeout", "20s", endpoint}), true);
    send.write_stdin(length_prefixed({"ok"}) + "abcd and more text");
    EXPECT_EQ(send.wait(10s), 65); // stdin is still open: the tool stopped by itself
    EXPECT_THAT(all_stderr(send), HasSubstr("message 2 is larger than --max-size 268435456"));
    auto frame = recv_within(pull, 10s);
    ASSERT_TRUE(frame.has_value());
    header h;
    std::size_t header_size = 0;
    ASSERT_TRUE(decode_header(frame->data(), frame->size(), h, &header_size).ok());
    EXPECT_EQ(frame->to_string().substr(header_size), "ok");
}

TEST(send_recv, max_size_limits_lines_and_whole_input) {
    {
        child_process send(send_cmd(
            {"--max-size", "4", "--data", "abcd\nabcde\n", "--linger", "0", "tcp://127.0.0.1:9"}));
        EXPECT_EQ(send.wait(10s), 65);
        EXPECT_THAT(all_stderr(send), HasSubstr("message 2 is larger than --max-size 4 bytes"));
    }
    {
        child_process send(
            send_cmd({"--whole", "--max-size", "3", "--data", "abcd", "tcp://127.0.0.1:9"}));
        EXPECT_EQ(send.wait(10s), 65);
        EXPECT_THAT(all_stderr(send), HasSubstr("larger than --max-size 3 bytes"));
    }
}

TEST(send_recv, a_flood_of_malformed_messages_does_not_bypass_timeout_or_sigterm) {
    for (const bool by_signal : {false, true}) {
        // -v makes zmqkit-recv write a line per discarded message (to /dev/null here), so it
        // drains more slowly than the flood fills its queue: it never finds the queue empty.
        const ipc_dir dir("flood");
        child_process recv({"/bin/sh", "-c",
                            "exec " + shell_quote(bin_path("zmqkit-recv")) + " -v -c 1 --timeout " +
                                (by_signal ? "60s" : "500ms") + " " +
                                shell_quote("@" + dir.endpoint) + " 2>/dev/null"});
        zmq::context_t ctx;
        zmq::socket_t push(ctx, zmq::socket_type::push);
        push.set(zmq::sockopt::linger, 0);
        push.set(zmq::sockopt::sndhwm, 100000);
        push.connect(dir.endpoint);
        std::optional<int> code;
        bool signalled = false;
        std::uint64_t sent = 0;
        const auto start = std::chrono::steady_clock::now();
        const auto deadline = start + 8s;
        while (!code && std::chrono::steady_clock::now() < deadline) {
            for (int i = 0; i < 1000; ++i) { // never a valid envelope: nothing counts
                if (push.send(zmq::str_buffer("not an envelope"), zmq::send_flags::dontwait)) {
                    ++sent;
                }
            }
            if (by_signal && !signalled && sent > 200000) {
                recv.signal(SIGTERM);
                signalled = true;
            }
            code = recv.wait(0ms);
        }
        ASSERT_TRUE(code.has_value())
            << "still running under the flood; by_signal=" << by_signal << " sent=" << sent;
        EXPECT_EQ(*code, by_signal ? 0 : 75);
        EXPECT_GT(sent, 100000U); // it was a flood
    }
}

TEST(send_recv, sigterm_stops_send_under_a_slow_trickle_of_input) {
    child_process recv(recv_cmd({"tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--stats", "--timeout", "60s", endpoint}), true);
    send.write_stdin("first\n");
    ASSERT_TRUE(eventually([&] { return recv.read_stdout(10ms) == "first\n"; }, 10s));
    send.signal(SIGTERM);
    // A line every 20 ms: the reader never waits 200 ms for input, and 1024 lines take 20 s.
    std::optional<int> code;
    const auto start = std::chrono::steady_clock::now();
    while (!code && std::chrono::steady_clock::now() - start < 5s) {
        code = send.wait(20ms);
        if (!code) {
            try {
                send.write_stdin("more\n");
            } catch (const std::runtime_error&) {
                // it exited between the check and the write (stdin closed): the next wait sees it
            }
        }
    }
    ASSERT_EQ(code, 0) << all_stderr(send);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_THAT(all_stderr(send), HasSubstr("zmqkit-send: stats: messages="));
}

TEST(send_recv, exit_64_for_values_that_would_make_waits_unbounded_or_overflow) {
    struct usage_case {
        std::vector<std::string> argv;
        std::string reason;
    };
    const std::vector<usage_case> cases{
        {send_cmd({"-X", "sndtimeo=-1", "tcp://127.0.0.1:1"}),
         "every wait of this tool is bounded"},
        {recv_cmd({"-X", "rcvtimeo=-5", "tcp://127.0.0.1:*"}), "a negative rcvtimeo"},
        {send_cmd({"-X", "linger=-1", "tcp://127.0.0.1:1"}), "a negative linger"},
        {send_cmd({"--linger", "2147483648", "tcp://127.0.0.1:1"}), "--linger 2147483648 ms"},
        {recv_cmd({"--linger", "2147483648", "tcp://127.0.0.1:*"}), "is out of range"},
        {send_cmd({"--rate", "nan", "tcp://127.0.0.1:1"}), "--rate must be"},
        {send_cmd({"--rate", "inf", "tcp://127.0.0.1:1"}), "--rate must be"},
        {send_cmd({"--rate", "0", "tcp://127.0.0.1:1"}), "from 0.001 to 1e9"},
        {send_cmd({"--rate", "1e-300", "tcp://127.0.0.1:1"}), "from 0.001 to 1e9"},
        {send_cmd({"--rate", "1e10", "tcp://127.0.0.1:1"}), "from 0.001 to 1e9"},
        {send_cmd({"-f", "json", "tcp://127.0.0.1:1"}), "formats the replies of --req"},
        {send_cmd({"--max-size", "0", "tcp://127.0.0.1:1"}), "--max-size must be at least 1"},
        {recv_cmd({"-f", "%h{}", "tcp://127.0.0.1:*"}), "%h needs a header name"},
    };
    for (const auto& c : cases) {
        child_process p(c.argv);
        EXPECT_EQ(p.wait(10s), 64) << c.reason;
        EXPECT_THAT(all_stderr(p), HasSubstr(c.reason));
    }
}

TEST(send_recv, a_rate_wait_ends_at_the_timeout) {
    // One message per 1000 s: the second waits, and --timeout ends the wait.
    const ipc_dir dir("slow");
    child_process send(send_cmd({"--rate", "0.001", "--timeout", "300ms", "--linger", "100ms",
                                 "--data", "a\nb", dir.endpoint}));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(send.wait(10s), 75);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_THAT(all_stderr(send), HasSubstr("timed out after 300 ms"));
}

TEST(send_recv, messages_nobody_took_within_linger_exit_75_with_a_warning) {
    const ipc_dir dir("nobody-home");
    child_process send(
        send_cmd({"--stats", "--linger", "300ms", "--data", "1\n2\n3", dir.endpoint}));
    EXPECT_EQ(send.wait(10s), 75);
    const auto err = all_stderr(send);
    EXPECT_THAT(err, HasSubstr("WARN  zmqkit-send: 3 messages may not have been delivered "
                               "(no peer took them within --linger 300 ms"));
}

TEST(send_recv, a_peer_that_stops_reading_leaves_messages_undelivered_exit_75) {
    // A peer connects (handshake) but never reads, with tiny buffers: the queue cannot drain.
    zmq::context_t ctx;
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.set(zmq::sockopt::rcvhwm, 1);
    pull.set(zmq::sockopt::rcvbuf, 4096);
    pull.bind("tcp://127.0.0.1:*");
    const std::string endpoint = pull.get(zmq::sockopt::last_endpoint);
    child_process send(send_cmd({"--wait-peers", "1", "--linger", "300ms", "-X", "sndbuf=4096",
                                 "--hwm", "0", endpoint}),
                       true);
    std::string lines;
    for (int i = 0; i < 1000000; ++i) { // far more than a one-message queue and the buffers
        lines += "x\n";
    }
    send.write_stdin(lines);
    send.close_stdin();
    EXPECT_EQ(send.wait(10s), 75);
    EXPECT_THAT(all_stderr(send), HasSubstr("queued, not necessarily delivered"));
}

TEST(send_recv, json_output_fed_back_to_send_reproduces_text_and_msgpack_bodies) {
    auto relay = [](const std::string& input, std::size_t count) {
        child_process recv(
            recv_cmd({"-c", std::to_string(count), "-f", "json", "tcp://127.0.0.1:*"}));
        const auto endpoint = bound_endpoint(recv);
        child_process send(send_cmd({"--json", endpoint}), true);
        send.write_stdin(input);
        send.close_stdin();
        EXPECT_EQ(recv.wait(20s), 0) << all_stderr(recv);
        EXPECT_EQ(send.wait(20s), 0) << all_stderr(send);
        return all_stdout(recv);
    };
    // First hop: a text body (no content type, as zmqkit-send sends lines) and a msgpack body.
    child_process recv(recv_cmd({"-c", "2", "-f", "json", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process text(send_cmd({"--type", "note", "--data", "plain text", endpoint}));
    ASSERT_EQ(text.wait(20s), 0) << all_stderr(text);
    child_process packed(send_cmd({"--json", "--data", R"({"n":[1,"two"]})", endpoint}));
    ASSERT_EQ(packed.wait(20s), 0) << all_stderr(packed);
    ASSERT_EQ(recv.wait(20s), 0) << all_stderr(recv);
    const auto first = all_stdout(recv);
    const auto second = relay(first, 2);
    const auto a = split_lines(first);
    const auto b = split_lines(second);
    ASSERT_EQ(a.size(), 2U);
    ASSERT_EQ(b.size(), 2U);
    std::map<std::string, nlohmann::json> before;
    std::map<std::string, nlohmann::json> after;
    for (std::size_t i = 0; i < 2; ++i) {
        const auto ja = nlohmann::json::parse(a[i]);
        const auto jb = nlohmann::json::parse(b[i]);
        before[ja["content_type"].get<std::string>()] = ja;
        after[jb["content_type"].get<std::string>()] = jb;
    }
    ASSERT_EQ(before.count(""), 1U) << first;
    ASSERT_EQ(after.count(""), 1U) << second; // still a text body, not a msgpack string
    EXPECT_EQ(after[""]["body"], "plain text");
    EXPECT_EQ(after[""]["type"], "note");
    ASSERT_EQ(after.count("application/msgpack"), 1U) << second;
    EXPECT_EQ(after["application/msgpack"]["body"], before["application/msgpack"]["body"]);
    EXPECT_EQ(after["application/msgpack"]["body"], nlohmann::json::parse(R"({"n":[1,"two"]})"));
}

TEST(send_recv, default_line_mode_strips_one_carriage_return) {
    child_process recv(recv_cmd({"-c", "3", "-f", "hex", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(send_cmd({"--data", "a\r\nb\r\r\nc\r", endpoint}));
    ASSERT_EQ(recv.wait(10s), 0) << all_stderr(recv);
    ASSERT_EQ(send.wait(10s), 0) << all_stderr(send);
    EXPECT_EQ(all_stdout(recv), "61\n620d\n63\n");
}

TEST(send_recv_parts, input_reader_limits_and_empty_whole_input) {
    std::string_view m;
    // A garbage prefix ("abcd" = 1.6 GB) is refused before anything is allocated for it.
    cli::input_reader garbage("abcdefgh", cli::input_reader::framing::length_prefixed, "");
    EXPECT_EQ(garbage.next(m), cli::input_reader::status::too_large);
    cli::input_reader limited(length_prefixed({"12345", "123456"}),
                              cli::input_reader::framing::length_prefixed, "", 5);
    ASSERT_EQ(limited.next(m), cli::input_reader::status::message);
    EXPECT_EQ(m, "12345");
    EXPECT_EQ(limited.next(m), cli::input_reader::status::too_large);
    cli::input_reader lines("abc\nabcd", cli::input_reader::framing::delimited, "\n", 3);
    ASSERT_EQ(lines.next(m), cli::input_reader::status::message);
    EXPECT_EQ(lines.next(m), cli::input_reader::status::too_large);
    cli::input_reader empty_whole("", cli::input_reader::framing::whole, "\n");
    EXPECT_EQ(empty_whole.next(m), cli::input_reader::status::end);
}

TEST(send_recv_parts, input_reader_from_a_pipe_written_in_chunks) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    // Messages around a large one (3 MiB, past the 1 MiB buffer, so the buffer grows), many
    // small ones (the buffer compacts), and chunk sizes that split the 2-byte delimiter.
    std::vector<std::string> expected{"first", std::string(3 << 20, 'x')};
    for (int i = 0; i < 20000; ++i) {
        expected.push_back(std::to_string(i));
    }
    expected.emplace_back("");
    expected.emplace_back("last");
    std::string data;
    for (const auto& e : expected) {
        data += e + "<>";
    }
    data.resize(data.size() - 2); // the last message has no delimiter
    std::thread writer([&] {
        std::size_t at = 0;
        std::size_t chunk = 1;
        while (at < data.size()) {
            const auto n = std::min(chunk, data.size() - at);
            const auto w = ::write(fds[1], data.data() + at, n);
            if (w <= 0) {
                break;
            }
            at += static_cast<std::size_t>(w);
            chunk = chunk % 4093 + 7; // 1, 8, 15, ...: every alignment of the delimiter
        }
        ::close(fds[1]);
    });
    int stop_calls = 0;
    cli::input_reader reader(fds[0], cli::input_reader::framing::delimited, "<>", [&] {
        ++stop_calls;
        return false;
    });
    std::vector<std::string> got;
    std::string_view m;
    cli::input_reader::status st{};
    while ((st = reader.next(m)) == cli::input_reader::status::message) {
        got.emplace_back(m);
    }
    writer.join();
    ::close(fds[0]);
    EXPECT_EQ(st, cli::input_reader::status::end);
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ(got[i], expected[i]) << "message " << i;
    }
    EXPECT_GT(stop_calls, 0); // asked before reads, not only when the input is idle
}

TEST(send_recv_parts, format_strings_decode_escapes_and_tokens_in_one_pass) {
    std::string out;
    cli::message_formatter("100\\x25").render(nullptr, {}, "body", out);
    EXPECT_EQ(out, "100%");
    out.clear();
    cli::message_formatter("\\x25s|%s").render(nullptr, {}, "body", out);
    EXPECT_EQ(out, "%s|body");
    out.clear();
    cli::message_formatter("%%s\\n").render(nullptr, {}, "body", out);
    EXPECT_EQ(out, "%s\n");
    EXPECT_THROW(cli::message_formatter("%h{}"), cli::usage_error);
    EXPECT_THROW(cli::message_formatter("%s\\q"), cli::usage_error);
    EXPECT_THROW(cli::message_formatter("%s\\x4"), cli::usage_error);
}

// A user header name written twice: "headers" shows its first entry, which is its value
// (docs/wire-protocol.md §2 rule 10), the later ones stay in "headers_repeated", and
// zmqkit-send --json reads the document back to the same entries in the same order.
TEST(send_recv_parts, json_output_keeps_a_repeated_header_name_first_value_first) {
    header h;
    h.user_headers.emplace_back("tenant", "first");
    h.user_headers.emplace_back("other", "x");
    h.user_headers.emplace_back("tenant", "second");
    std::string out;
    cli::message_formatter("json").render(&h, {}, "body", out);
    const auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["headers"]["tenant"], "first");
    ASSERT_EQ(j["headers_repeated"].size(), 1U) << out;
    EXPECT_EQ(j["headers_repeated"][0][0], "tenant");
    EXPECT_EQ(j["headers_repeated"][0][1], "second");
    header back;
    std::string back_body;
    std::string error;
    ASSERT_TRUE(cli::json_to_envelope(out, back, back_body, error)) << error;
    ASSERT_NE(back.find_user_header("tenant"), nullptr);
    EXPECT_EQ(*back.find_user_header("tenant"), "first");
    std::vector<std::string> tenants;
    for (const auto& [name, value] : back.user_headers) {
        if (name == "tenant") {
            tenants.push_back(value);
        }
    }
    EXPECT_EQ(tenants, (std::vector<std::string>{"first", "second"}));
}

TEST(send_recv_parts, json_output_is_never_silently_lossy) {
    header h;
    h.content_type = "application/msgpack";
    h.set_user_header(std::string("n\xff", 2), std::string("v\xfe", 2));
    h.set_user_header("ok", "fine");
    // A msgpack string (fixstr, 2 bytes) that is not UTF-8.
    const std::string body("\xa2\xc3\x28", 3);
    std::string out;
    cli::message_formatter("json").render(&h, {}, body, out);
    EXPECT_EQ(out.find("\xef\xbf\xbd"), std::string::npos) << out; // no U+FFFD
    const auto j = nlohmann::json::parse(out);
    EXPECT_FALSE(j.contains("body"));
    EXPECT_EQ(j["body_base64"], zmqkit::base64_encode(body));
    EXPECT_EQ(j["headers"]["ok"], "fine");
    ASSERT_EQ(j["headers_base64"].size(), 1U);
    EXPECT_EQ(j["headers_base64"][0][0]["base64"], zmqkit::base64_encode(std::string("n\xff", 2)));
    EXPECT_EQ(j["headers_base64"][0][1]["base64"], zmqkit::base64_encode(std::string("v\xfe", 2)));
    // And zmqkit-send --json reads it back to the same bytes.
    header back;
    std::string back_body;
    std::string error;
    ASSERT_TRUE(cli::json_to_envelope(out, back, back_body, error)) << error;
    EXPECT_EQ(back_body, body);
    ASSERT_NE(back.find_user_header(std::string("n\xff", 2)), nullptr);
    EXPECT_EQ(*back.find_user_header(std::string("n\xff", 2)), std::string("v\xfe", 2));
}

TEST(send_recv_parts, json_output_names_an_older_publishers_id) {
    // A publisher from before header key 12 sent its id as the user header zmqkit-publisher;
    // readers use it when key 12 is absent (docs/wire-protocol.md §10.2, issue 14 item 20).
    const auto legacy = message_id::generate();
    const auto current = message_id::generate();
    const std::string legacy_bytes(reinterpret_cast<const char*>(legacy.data()), message_id::size);
    header h;
    h.sequence = 7;
    h.set_user_header(patterns::publisher_id_header, legacy_bytes);
    std::string out;
    cli::message_formatter("json").render(&h, "orders", "b", out);
    auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["publisher_id"], legacy.to_string()) << out;
    EXPECT_EQ(j["sequence"], 7);
    EXPECT_EQ(j["headers"]["zmqkit-publisher"]["base64"], zmqkit::base64_encode(legacy_bytes));
    // Key 12 wins when both are present.
    h.publisher_id = current;
    out.clear();
    cli::message_formatter("json").render(&h, "orders", "b", out);
    EXPECT_EQ(nlohmann::json::parse(out)["publisher_id"], current.to_string()) << out;
    // A header of another size is not an id: no publisher_id, the header is shown as it is.
    h.publisher_id = message_id{};
    h.set_user_header(patterns::publisher_id_header, "short");
    out.clear();
    cli::message_formatter("json").render(&h, "orders", "b", out);
    j = nlohmann::json::parse(out);
    EXPECT_FALSE(j.contains("publisher_id")) << out;
    EXPECT_EQ(j["headers"]["zmqkit-publisher"], "short");
}

TEST(send_recv, recv_json_shows_the_publisher_id_of_an_older_publisher) {
    zmq::context_t ctx;
    zmq::socket_t pub(ctx, zmq::socket_type::xpub);
    pub.set(zmq::sockopt::linger, 0);
    pub.bind("tcp://127.0.0.1:*");
    const auto endpoint = pub.get(zmq::sockopt::last_endpoint);
    child_process recv(recv_cmd(
        {"--sub", "--topic", "orders", "-c", "1", "-f", "json", "--timeout", "20s", endpoint}));
    zmq::message_t subscription;
    pub.set(zmq::sockopt::rcvtimeo, 10000);
    ASSERT_TRUE(pub.recv(subscription)) << all_stderr(recv); // waits for the subscription
    const auto legacy = message_id::generate();
    header h = header::fresh();
    h.sequence = 3;
    h.set_user_header(patterns::publisher_id_header,
                      std::string(reinterpret_cast<const char*>(legacy.data()), message_id::size));
    const auto encoded = encode_header(h);
    (void)pub.send(zmq::buffer(std::string_view("orders.new")), zmq::send_flags::sndmore);
    (void)pub.send(zmq::buffer(encoded), zmq::send_flags::sndmore);
    (void)pub.send(zmq::buffer(std::string_view("hello")), zmq::send_flags::none);
    ASSERT_EQ(recv.wait(20s), 0) << all_stderr(recv);
    const auto j = nlohmann::json::parse(all_stdout(recv));
    EXPECT_EQ(j["id"], h.id.to_string());
    EXPECT_EQ(j["topic"], "orders.new");
    EXPECT_EQ(j["sequence"], 3);
    EXPECT_EQ(j["publisher_id"], legacy.to_string());
}

TEST(send_recv_parts, json_envelope_with_a_text_content_type_keeps_the_body_bytes) {
    header h;
    std::string body;
    std::string error;
    // As zmqkit-recv -f json prints a plain text message: content_type present but empty.
    ASSERT_TRUE(cli::json_to_envelope(R"({"content_type":"","body":"hi"})", h, body, error));
    EXPECT_EQ(body, "hi");
    EXPECT_EQ(h.content_type, "");
    header m;
    ASSERT_TRUE(cli::json_to_envelope(R"({"content_type":"application/msgpack","body":"hi"})", m,
                                      body, error));
    EXPECT_EQ(body, std::string("\xa2hi", 3));
}

TEST(send_recv_parts, quoted_format_escapes_like_nngcat) {
    std::string out;
    cli::message_formatter("quoted").render(nullptr, {}, std::string("a\"b\\c\n\t\x01\xff", 9),
                                            out);
    EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\t\\x01\\xff\"\n");
}

TEST(send_recv_parts, interval_is_a_rate) {
    const char* argv[] = {"zmqkit-send", "--interval", "250ms", "tcp://127.0.0.1:5557"};
    auto parsed = cli::parse_send_options(static_cast<int>(std::size(argv)), argv);
    ASSERT_TRUE(std::holds_alternative<cli::send_config>(parsed));
    EXPECT_DOUBLE_EQ(std::get<cli::send_config>(parsed).rate, 4.0);
    const char* both[] = {"zmqkit-send", "--interval", "1s", "--rate", "3", "tcp://127.0.0.1:5557"};
    EXPECT_THROW((void)cli::parse_send_options(static_cast<int>(std::size(both)), both),
                 cli::usage_error);
    const char* zero[] = {"zmqkit-send", "--interval", "0", "tcp://127.0.0.1:5557"};
    EXPECT_THROW((void)cli::parse_send_options(static_cast<int>(std::size(zero)), zero),
                 cli::usage_error);
}

TEST(send_recv_parts, batch_options_apply_to_wait_confirm) {
    const char* argv[] = {"zmqkit-send", "--wait-confirm",      "--batch", "64", "--batch-linger",
                          "20ms",        "tcp://127.0.0.1:5557"};
    auto parsed = cli::parse_send_options(static_cast<int>(std::size(argv)), argv);
    ASSERT_TRUE(std::holds_alternative<cli::send_config>(parsed));
    const auto& cfg = std::get<cli::send_config>(parsed);
    EXPECT_EQ(cfg.batch, 64u);
    EXPECT_EQ(cfg.batch_linger, std::chrono::milliseconds(20));
    const char* plain[] = {"zmqkit-send", "--wait-confirm", "tcp://127.0.0.1:5557"};
    parsed = cli::parse_send_options(static_cast<int>(std::size(plain)), plain);
    ASSERT_TRUE(std::holds_alternative<cli::send_config>(parsed));
    EXPECT_EQ(std::get<cli::send_config>(parsed).batch, 1u); // no batching by default
    const char* without[] = {"zmqkit-send", "--batch", "64", "tcp://127.0.0.1:5557"};
    EXPECT_THROW((void)cli::parse_send_options(static_cast<int>(std::size(without)), without),
                 cli::usage_error);
    const char* zero[] = {"zmqkit-send", "--wait-confirm", "--batch", "0", "tcp://127.0.0.1:5557"};
    EXPECT_THROW((void)cli::parse_send_options(static_cast<int>(std::size(zero)), zero),
                 cli::usage_error);
}

TEST(send_recv, exit_78_for_a_missing_or_malformed_config_file) {
    child_process send(send_cmd({"--config", "/nonexistent/zmqkit.conf", "tcp://127.0.0.1:1"}));
    EXPECT_EQ(send.wait(10s), 78);
    EXPECT_THAT(all_stderr(send), HasSubstr("cannot read config file '/nonexistent/zmqkit.conf'"));

    char path[] = "/tmp/zmqkit-recv-conf-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    const std::string text = "count = 3\nno-such-option = 1\n";
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
    child_process recv(recv_cmd({"--config", path, "tcp://127.0.0.1:*"}));
    EXPECT_EQ(recv.wait(10s), 78);
    EXPECT_THAT(all_stderr(recv), HasSubstr("no-such-option"));
    ::unlink(path);
}

TEST(send_recv, verbose_logs_socket_events) {
    child_process recv(
        recv_cmd({"-v", "--pull", "-c", "1", "--timeout", "30s", "@tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    ASSERT_FALSE(endpoint.empty()) << all_stderr(recv);
    child_process send(
        send_cmd({"-v", "--wait-peers", "1", "--timeout", "30s", "--data", "hello", endpoint}));
    EXPECT_EQ(send.wait(30s), 0);
    EXPECT_EQ(recv.wait(30s), 0);
    const auto send_log = all_stderr(send);
    EXPECT_THAT(send_log, HasSubstr("DEBUG zmqkit-send: connected " + endpoint));
    EXPECT_THAT(send_log, HasSubstr("DEBUG zmqkit-send: handshake succeeded on " + endpoint));
    EXPECT_THAT(all_stderr(recv),
                HasSubstr("DEBUG zmqkit-recv: accepted a connection on " + endpoint));

    // A peer that is not ZeroMQ: the receiver names the failed handshake and keeps serving.
    child_process recv2(recv_cmd({"-v", "--pull", "--timeout", "3s", "@tcp://127.0.0.1:*"}));
    const auto endpoint2 = bound_endpoint(recv2);
    ASSERT_FALSE(endpoint2.empty());
    const auto port = endpoint2.substr(endpoint2.rfind(':') + 1);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    // A ZMTP 3.0 greeting that asks for a security mechanism nobody speaks.
    std::string greeting("\xff\0\0\0\0\0\0\0\x01\x7f\x03\x00", 12);
    std::string mechanism = "BOGUS";
    mechanism.resize(20, '\0');
    greeting += mechanism;
    greeting += '\0'; // as-server
    greeting.resize(64, '\0');
    ASSERT_EQ(::write(fd, greeting.data(), greeting.size()), static_cast<ssize_t>(greeting.size()));
    EXPECT_TRUE(recv2.wait_for_stderr(std::regex("handshake failed on"), 10s).has_value());
    ::close(fd);
    EXPECT_EQ(recv2.wait(30s), 75) << "nothing arrived before --timeout";
}

TEST(send_recv, send_idle_timeout_ends_a_quiet_open_input_normally) {
    child_process recv(recv_cmd({"--pull", "-c", "2", "--timeout", "30s", "@tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    ASSERT_FALSE(endpoint.empty());
    child_process send(send_cmd({"--idle-timeout", "300ms", "--timeout", "30s", endpoint}), true);
    send.write_stdin("first\nsecond\n"); // stdin stays open: only --idle-timeout ends the run
    EXPECT_EQ(send.wait(20s), 0) << all_stderr(send);
    EXPECT_THAT(all_stderr(send), HasSubstr("--idle-timeout"));
    EXPECT_EQ(recv.wait(20s), 0);
    EXPECT_EQ(all_stdout(recv), "first\nsecond\n");
}

TEST(send_recv_parts, string_socket_options_and_refused_secrets) {
    const auto id = cli::parse_socket_option("routing_id=worker\\x01");
    EXPECT_TRUE(id.is_bytes);
    EXPECT_EQ(id.option, ZMQ_ROUTING_ID);
    EXPECT_EQ(id.bytes, std::string("worker\x01", 7));
    EXPECT_THROW((void)cli::parse_socket_option("curve_secretkey=abc"), cli::usage_error);
    EXPECT_THROW((void)cli::parse_socket_option("plain_password=hunter2"), cli::usage_error);
    try {
        (void)cli::parse_socket_option("plain_password=hunter2");
    } catch (const cli::usage_error& e) {
        EXPECT_THAT(e.message, ::testing::Not(HasSubstr("hunter2"))) << "never echo a secret";
    }
}

TEST(send_recv, routing_id_through_sockopt_reaches_a_router) {
    zmq::context_t ctx;
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
    child_process send(send_cmd(
        {"--dealer", "-X", "routing_id=alice", "--data", "hi", "--timeout", "30s", endpoint}));
    auto who = recv_within(router, 20s);
    ASSERT_TRUE(who.has_value());
    EXPECT_EQ(who->to_string(), "alice");
    EXPECT_EQ(send.wait(30s), 0);
}

namespace {

struct timed_exit {
    std::optional<int> rc;
    std::chrono::duration<double> took{};
    std::string err;
};
// Runs a tool to its exit (at most 30 s); its exit code, wall time and stderr.
timed_exit run_timed(std::vector<std::string> argv) {
    const auto start = std::chrono::steady_clock::now();
    child_process p(std::move(argv));
    timed_exit r;
    r.rc = p.wait(30s);
    r.took = std::chrono::steady_clock::now() - start;
    r.err = all_stderr(p);
    return r;
}

} // namespace

// Issue 14 item 12: --timeout bounds the whole run, the linger and closing the socket
// included (docs/cli.md: at most half a second later). The machine may be loaded: the bound
// checked is generous, but far below the linger the old code added on top.
TEST(send_recv, timeout_bounds_the_whole_run_linger_and_close_included) {
    const ipc_dir nobody("nobody-listens");
    const auto bound = std::chrono::duration<double>(2.0 + 1.5);
    // Three messages queued for a peer that never comes, --linger 5 s.
    auto send = run_timed(
        send_cmd({"--data", "a\nb\nc", "--timeout", "2s", "--linger", "5s", nobody.endpoint}));
    EXPECT_EQ(send.rc, std::optional<int>(75)) << send.err;
    EXPECT_LT(send.took, bound) << send.err;
    EXPECT_THAT(send.err, HasSubstr("3 messages may not have been delivered (no peer took them "
                                    "within the rest of --timeout 2000 ms"));
    // The same with --wait-confirm: unconfirmed at the deadline.
    auto confirm = run_timed(send_cmd(
        {"--wait-confirm", "--data", "a", "--timeout", "2s", "--linger", "5s", nobody.endpoint}));
    EXPECT_EQ(confirm.rc, std::optional<int>(76)) << confirm.err;
    EXPECT_LT(confirm.took, bound) << confirm.err;
    // A subscriber (its subscription is queued for the absent publisher) and an acked
    // consumer, with a long --linger.
    for (const auto& flag : {"--sub", "--ack"}) {
        auto recv =
            run_timed(recv_cmd({flag, "--timeout", "2s", "--linger", "5s", ">" + nobody.endpoint}));
        EXPECT_EQ(recv.rc, std::optional<int>(75)) << flag << ": " << recv.err;
        EXPECT_LT(recv.took, bound) << flag << ": " << recv.err;
    }
}

// Issue 14 item 12: a host name that does not resolve is named as such (exit 69, as any peer
// that cannot be reached), not reported as a generic timeout.
TEST(send_recv, a_host_name_that_does_not_resolve_is_named_exit_69) {
    const std::string host = "nosuchhost.invalid";
    if (!resolver_fails_fast(host)) { // the check needs NXDOMAIN or "no network" quickly
        GTEST_SKIP() << "this machine's resolver does not fail fast for " << host;
    }
    const std::string endpoint = "tcp://" + host + ":5555";
    auto send = run_timed(send_cmd({"--data", "x", "--timeout", "3s", endpoint}));
    EXPECT_EQ(send.rc, std::optional<int>(69)) << send.err;
    EXPECT_THAT(send.err, HasSubstr("no message could be sent to " + endpoint +
                                    " within 3 s: cannot resolve host " + host + ": "));
    auto confirm =
        run_timed(send_cmd({"--wait-confirm", "--data", "x", "--timeout", "3s", endpoint}));
    EXPECT_EQ(confirm.rc, std::optional<int>(69)) << confirm.err;
    EXPECT_THAT(confirm.err, HasSubstr("cannot resolve host " + host));
    for (const auto& flag : {"--pull", "--ack", "--sub"}) {
        auto recv = run_timed(recv_cmd({flag, "--timeout", "3s", ">" + endpoint}));
        EXPECT_EQ(recv.rc, std::optional<int>(69)) << flag << ": " << recv.err;
        EXPECT_THAT(recv.err, HasSubstr("nothing could be received from >" + endpoint +
                                        " within 3 s: cannot resolve host " + host));
    }
}

// Issue 17 item 4: the tokens added for kcat parity and for sequenced publications, in-process.
TEST(send_recv_parts, key_time_publisher_and_sequence_tokens) {
    header h;
    h.type = "order.created";
    h.timestamp_ns = 1'796'616'306'123'456'789ULL; // 2026-12-07T04:05:06.123456789Z
    h.sequence = 10;
    h.publisher_id = message_id::generate();
    std::string out;
    cli::message_formatter("%k|%D|%P|%q\\n").render(&h, "prices.eur", "b", out);
    EXPECT_EQ(out,
              "prices.eur|2026-12-07T04:05:06.123456Z|" + h.publisher_id.to_string() + "|10\n");
    out.clear();
    cli::message_formatter("%k|%g|%G\\n").render(&h, {}, "b", out); // no topic: the type
    EXPECT_EQ(out, "order.created||\n");                            // nothing checked
    cli::sequence_note gap{patterns::sequence_verdict::gap, false, 7, 9};
    out.clear();
    cli::message_formatter("%g|%G\\n").render(&h, {}, "b", out, &gap);
    EXPECT_EQ(out, "gap|7..9\n");
    gap.missing_last = 7;
    out.clear();
    cli::message_formatter("%g|%G\\n").render(&h, {}, "b", out, &gap);
    EXPECT_EQ(out, "gap|7\n");
    const cli::sequence_note snap{patterns::sequence_verdict::untracked, true, 0, 0};
    out.clear();
    cli::message_formatter("json").render(&h, "prices.eur", "b", out, &gap);
    const auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["verdict"], "gap");
    EXPECT_EQ(j["missing"]["first"], 7);
    EXPECT_EQ(j["missing"]["last"], 7);
    out.clear();
    cli::message_formatter("%g\\n").render(&h, {}, "b", out, &snap);
    EXPECT_EQ(out, "snapshot\n");
    // -K: "KEY<delim>BODY" lines; with another format it is a usage error naming %k.
    out.clear();
    cli::message_formatter("text", std::string(" = ")).render(&h, "prices.eur", "1.08", out);
    EXPECT_EQ(out, "prices.eur = 1.08\n");
    try {
        (void)cli::message_formatter("json", std::string(" "));
        ADD_FAILURE() << "-K with json accepted";
    } catch (const cli::usage_error& e) {
        EXPECT_THAT(e.message, HasSubstr("%k"));
    }
    h.timestamp_ns = 0;
    out.clear();
    cli::message_formatter("[%D]").render(&h, {}, "b", out);
    EXPECT_EQ(out, "[]");
}

// kcat parity: several --file inputs in turn (- is stdin), --repeat of the input, and -K on
// zmqkit-recv giving back what zmqkit-send -K read.
TEST(send_recv, several_files_in_turn_repeat_and_keyed_output) {
    const temp_file first("a.x 1\nb.x 2"); // the last line has no newline: still a message
    const temp_file second("c.x 3\n");
    child_process recv(recv_cmd({"-c", "7", "-K", " ", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    ASSERT_FALSE(endpoint.empty()) << all_stderr(recv);
    child_process send(
        send_cmd({"-K", " ", "--file", first.path, "--file", "-", "--file", second.path, endpoint}),
        true);
    send.write_stdin("s.x 9\n");
    send.close_stdin();
    ASSERT_EQ(send.wait(10s), 0) << all_stderr(send);
    child_process again(
        send_cmd({"-K", " ", "--file", second.path, "--data", "x", endpoint})); // not both
    EXPECT_EQ(again.wait(10s), 64);
    child_process repeat(send_cmd({"-K", " ", "--file", second.path, "--repeat", "3", endpoint}));
    ASSERT_EQ(repeat.wait(10s), 0) << all_stderr(repeat);
    ASSERT_EQ(recv.wait(10s), 0) << all_stderr(recv);
    EXPECT_EQ(all_stdout(recv), "a.x 1\nb.x 2\ns.x 9\nc.x 3\nc.x 3\nc.x 3\nc.x 3\n");
}

TEST(send_recv, a_later_file_that_cannot_be_read_is_exit_66_after_the_earlier_ones) {
    const temp_file first("one\ntwo\n");
    child_process recv(recv_cmd({"-c", "2", "tcp://127.0.0.1:*"}));
    const auto endpoint = bound_endpoint(recv);
    child_process send(
        send_cmd({"--file", first.path, "--file", "/nonexistent/zmqkit-input", endpoint}));
    EXPECT_EQ(send.wait(10s), 66);
    EXPECT_THAT(all_stderr(send),
                HasSubstr("cannot read --file '/nonexistent/zmqkit-input': No such file"));
    EXPECT_EQ(recv.wait(10s), 0);
    EXPECT_EQ(all_stdout(recv), "one\ntwo\n");
}

TEST(send_recv_parts, usage_errors_of_the_pattern_flags) {
    const auto rejects = [](std::vector<std::string> args, const std::string& words, bool recv) {
        args.insert(args.begin(), recv ? "zmqkit-recv" : "zmqkit-send");
        std::vector<const char*> argv;
        for (const auto& a : args) {
            argv.push_back(a.c_str());
        }
        try {
            if (recv) {
                (void)cli::parse_recv_options(static_cast<int>(argv.size()), argv.data());
            } else {
                (void)cli::parse_send_options(static_cast<int>(argv.size()), argv.data());
            }
            ADD_FAILURE() << "accepted: " << ::testing::PrintToString(args);
        } catch (const cli::usage_error& e) {
            EXPECT_EQ(e.code, 64);
            EXPECT_THAT(e.message, HasSubstr(words)) << ::testing::PrintToString(args);
        }
    };
    rejects({"--retries", "2", "tcp://h:1"}, "apply to --req and --mdp only", false);
    rejects({"--req", "--raw", "--retries", "2", "tcp://h:1"}, "need envelopes", false);
    rejects({"--mdp", "--service", "echo", "--raw", "tcp://h:1"}, "need envelopes", false);
    rejects({"--mdp", "tcp://h:1"}, "give both", false);
    rejects({"--service", "echo", "tcp://h:1"}, "give both", false);
    rejects({"--req", "--request-timeout", "1s", "--wait-peers", "1", "tcp://h:1"},
            "--wait-peers does not apply", false);
    rejects({"--req", "--request-timeout", "0", "tcp://h:1"}, "more than 0", false);
    rejects({"--mdp", "--service", "mmi.service", "tcp://h:1"}, "not mmi.*", false);
    rejects({"--mdp", "--service", "echo", "--push", "tcp://h:1"}, "socket of its own", false);
    rejects({"--repeat", "2", "tcp://h:1"}, "stdin is read once", false);
    rejects({"--file", "-", "--repeat", "2", "tcp://h:1"}, "cannot read stdin", false);
    rejects({"--file", "-", "--file", "-", "tcp://h:1"}, "read once only", false);
    rejects({"--snapshot", "tcp://h:1"}, "needs --sub", true);
    rejects({"--sub", "--raw", "--fail-on-gap", "tcp://h:1"}, "needs --sub with envelopes", true);
    rejects({"--sub", "--snapshot", "@tcp://*:1"}, "binds", true);
    rejects({"--sub", "--snapshot-timeout", "1s", "tcp://h:1"}, "needs --snapshot", true);
    rejects({"--sub", "-K", " ", "-f", "json", "tcp://h:1"}, "%k", true);
    rejects({"--sub", "-K", "", "tcp://h:1"}, "must not be empty", true);
}
