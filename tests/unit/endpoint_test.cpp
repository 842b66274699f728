#include <zmqkit/endpoint.hpp>
#include <zmqkit/error.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zmq.hpp>

#include <filesystem>
#include <fstream>

using namespace zmqkit;
using ::testing::HasSubstr;

namespace {
std::string error_of(std::string_view spec) {
    try {
        (void)parse_endpoints(spec, endpoint_action::bind);
    } catch (const endpoint_error& e) {
        return e.what();
    }
    return "no error";
}
} // namespace

TEST(endpoint, prefixes_choose_bind_or_connect) {
    auto eps =
        parse_endpoints("@tcp://*:5555,>ipc:///tmp/x.sock,inproc://jobs", endpoint_action::connect);
    ASSERT_EQ(eps.size(), 3U);
    EXPECT_EQ(eps[0], (endpoint{endpoint_action::bind, "tcp://*:5555"}));
    EXPECT_EQ(eps[1], (endpoint{endpoint_action::connect, "ipc:///tmp/x.sock"}));
    EXPECT_EQ(eps[2], (endpoint{endpoint_action::connect, "inproc://jobs"})) << "role default";
    EXPECT_EQ(parse_endpoints("inproc://jobs", endpoint_action::bind)[0].action,
              endpoint_action::bind);
    EXPECT_EQ(eps[0].to_string(), "@tcp://*:5555");
}

TEST(endpoint, spaces_around_entries_are_ignored) {
    auto eps = parse_endpoints(" @tcp://127.0.0.1:* , >tcp://[::1]:7000 ", endpoint_action::bind);
    ASSERT_EQ(eps.size(), 2U);
    EXPECT_EQ(eps[0].address, "tcp://127.0.0.1:*");
    EXPECT_EQ(eps[1].address, "tcp://[::1]:7000");
}

TEST(endpoint, accepted_forms) {
    for (const char* ok :
         {"tcp://eth0:5555", "tcp://127.0.0.1:0", "tcp://*:!", "tcp://*:[6000-6100]",
          "tcp://192.168.1.1;10.0.0.1:5555", "ws://127.0.0.1:8080/path", "ipc://@abstract",
          "pgm://eth0;239.192.1.1:5555", "inproc://a-b_c"}) {
        EXPECT_NO_THROW((void)parse_endpoints(ok, endpoint_action::bind)) << ok;
    }
}

TEST(endpoint, errors_name_the_bad_part) {
    EXPECT_THAT(error_of(""), HasSubstr("empty endpoint list"));
    EXPECT_THAT(error_of("tcp://a:1,,tcp://b:2"), HasSubstr("empty entry"));
    EXPECT_THAT(error_of("tcp://a:1,"), HasSubstr("empty entry"));
    EXPECT_THAT(error_of("localhost:5555"), HasSubstr("missing 'transport://'"));
    EXPECT_THAT(error_of("udp://127.0.0.1:5"), HasSubstr("unknown transport 'udp'"));
    EXPECT_THAT(error_of("tcp://127.0.0.1"), HasSubstr("missing ':port'"));
    EXPECT_THAT(error_of("tcp://127.0.0.1:99999"), HasSubstr("port '99999'"));
    EXPECT_THAT(error_of("tcp://127.0.0.1:http"), HasSubstr("port 'http'"));
    EXPECT_THAT(error_of("tcp://:5555"), HasSubstr("missing host"));
    EXPECT_THAT(error_of("tcp://"), HasSubstr("nothing after 'tcp://'"));
    EXPECT_THAT(error_of("@>tcp://a:1"), HasSubstr("more than one"));
    EXPECT_THAT(error_of("@tcp://ok:1,>tcp://bad"), HasSubstr("'>tcp://bad'"))
        << "the message names the entry, not the whole list";
}

TEST(endpoint, attach_reports_the_ephemeral_port) {
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::pull);
    s.set(zmq::sockopt::linger, 0);
    auto bound = attach(s, "tcp://127.0.0.1:*", endpoint_action::bind);
    ASSERT_EQ(bound.size(), 1U);
    EXPECT_THAT(bound[0], ::testing::MatchesRegex("tcp://127\\.0\\.0\\.1:[0-9]+"));
    EXPECT_NE(bound[0], "tcp://127.0.0.1:0");
}

TEST(endpoint, attach_failure_names_endpoint_and_reason) {
    zmq::context_t ctx;
    zmq::socket_t a(ctx, zmq::socket_type::pull);
    zmq::socket_t b(ctx, zmq::socket_type::pull);
    a.set(zmq::sockopt::linger, 0);
    b.set(zmq::sockopt::linger, 0);
    auto bound = attach(a, "tcp://127.0.0.1:*", endpoint_action::bind);
    try {
        (void)attach(b, bound[0], endpoint_action::bind);
        FAIL() << "binding the same port twice must fail";
    } catch (const zmqkit::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("cannot bind to " + bound[0]));
        EXPECT_THAT(e.what(), HasSubstr("in use"));
    }
}

// `--control ipc:///run/zmqkit/proxy.ctl` on a fresh machine: the directory does not exist yet.
// The bind creates it (0750) as `mkdir -p` would, and a peer can connect and talk.
TEST(endpoint, ipc_bind_creates_missing_parent_directories) {
    zmqkit::testing::temp_directory dir("endpoint");
    const auto file = dir.path() / "run" / "zmqkit" / "proxy.ctl";
    zmq::context_t ctx;
    zmq::socket_t server(ctx, zmq::socket_type::pair);
    zmq::socket_t client(ctx, zmq::socket_type::pair);
    server.set(zmq::sockopt::linger, 0);
    client.set(zmq::sockopt::linger, 0);
    const auto bound = attach(server, "ipc://" + file.string(), endpoint_action::bind);
    ASSERT_EQ(bound.size(), 1U);
    EXPECT_EQ(std::filesystem::status(file.parent_path()).permissions() &
                  std::filesystem::perms::all,
              std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                  std::filesystem::perms::group_exec);
    (void)attach(client, bound[0], endpoint_action::connect);
    client.set(zmq::sockopt::sndtimeo, 5000);
    server.set(zmq::sockopt::rcvtimeo, 5000);
    ASSERT_TRUE(client.send(zmq::str_buffer("hello")));
    zmq::message_t got;
    ASSERT_TRUE(server.recv(got));
    EXPECT_EQ(got.to_string(), "hello");
}

TEST(endpoint, ipc_bind_under_a_file_names_the_directory_it_could_not_create) {
    zmqkit::testing::temp_directory dir("endpoint");
    std::ofstream(dir.path() / "plain-file") << "x";
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::pull);
    s.set(zmq::sockopt::linger, 0);
    const auto spec = "ipc://" + (dir.path() / "plain-file" / "sub" / "x.sock").string();
    try {
        (void)attach(s, spec, endpoint_action::bind);
        FAIL() << "a directory cannot be made under a plain file";
    } catch (const zmqkit::error& e) {
        EXPECT_THAT(e.what(), HasSubstr("cannot bind to " + spec));
        EXPECT_THAT(e.what(), HasSubstr("plain-file"));
    }
}
