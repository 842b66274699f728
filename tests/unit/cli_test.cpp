// Option parsing of the command-line tools, called as a library.
#include "common/cli.hpp"
#include "zmqkit-proxy/options.hpp"

#include <zmqkit/error.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

using namespace zmqkit;
using namespace zmqkit::cli;
using ::testing::HasSubstr;

namespace {

std::variant<proxy_config, print_and_exit> parse(std::vector<std::string> args) {
    args.insert(args.begin(), "zmqkit-proxy");
    std::vector<const char*> argv;
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    return parse_proxy_options(static_cast<int>(argv.size()), argv.data());
}

usage_error usage_error_of(std::vector<std::string> args) {
    try {
        (void)parse(std::move(args));
    } catch (const usage_error& e) {
        return e;
    }
    return usage_error{"no error", 0};
}

std::string temp_file(const std::string& content) {
    std::string path = "/tmp/zmqkit-cli-test-XXXXXX";
    const int fd = ::mkstemp(path.data());
    ::close(fd);
    std::ofstream(path) << content;
    return path;
}

} // namespace

TEST(cli, durations) {
    EXPECT_EQ(parse_duration("250"), std::chrono::milliseconds(250));
    EXPECT_EQ(parse_duration("250ms"), std::chrono::milliseconds(250));
    EXPECT_EQ(parse_duration("2s"), std::chrono::milliseconds(2000));
    EXPECT_EQ(parse_duration("1.5s"), std::chrono::milliseconds(1500));
    EXPECT_EQ(parse_duration("1m"), std::chrono::milliseconds(60000));
    for (const char* bad : {"", "s", "-1s", "10 parsecs", "1.5.5s", "1e30", "nan", "infs"}) {
        try {
            (void)parse_duration(bad);
            ADD_FAILURE() << bad;
        } catch (const config_error& e) {
            EXPECT_THAT(e.what(), HasSubstr("250ms, 2s")) << "lists the accepted forms";
        }
    }
}

TEST(cli, proxy_minimal_command_line) {
    auto r = parse({"--frontend", "tcp://127.0.0.1:*", "--backend", ">tcp://127.0.0.1:9"});
    auto& cfg = std::get<proxy_config>(r);
    EXPECT_EQ(cfg.mode, "stream");
    EXPECT_EQ(cfg.streamer.frontend, "tcp://127.0.0.1:*");
    EXPECT_EQ(cfg.drain_timeout, std::chrono::milliseconds(5000));
}

TEST(cli, proxy_help_lists_examples_and_exit_codes) {
    auto r = parse({"--help"});
    auto& p = std::get<print_and_exit>(r);
    EXPECT_EQ(p.code, 0);
    EXPECT_THAT(p.text, HasSubstr("Examples:"));
    EXPECT_THAT(p.text, HasSubstr("--drain-timeout"));
    EXPECT_THAT(p.text, HasSubstr("STATISTICS"));
    EXPECT_THAT(p.text, HasSubstr("Exit codes"));
}

TEST(cli, proxy_usage_errors_say_what_is_wrong) {
    EXPECT_THAT(usage_error_of({"--frontend", "tcp://a:1"}).message,
                HasSubstr("--backend are required"));
    EXPECT_THAT(usage_error_of({"--mode", "carrier-pigeon", "--frontend", "tcp://a:1", "--backend",
                                "tcp://b:2"})
                    .message,
                HasSubstr("available: stream"));
    EXPECT_THAT(usage_error_of({"--frontend", "tcp://a", "--backend", "tcp://b:2"}).message,
                HasSubstr("missing ':port'"));
    EXPECT_THAT(usage_error_of({"--frontend", "tcp://a:1", "--backend", "tcp://b:2",
                                "--drain-timeout", "soon"})
                    .message,
                HasSubstr("bad duration 'soon'"));
    EXPECT_THAT(
        usage_error_of({"--frontend", "tcp://a:1", "--backend", "tcp://b:2", "--hwm", "many"})
            .message,
        HasSubstr("hwm"));
    EXPECT_THAT(
        usage_error_of({"--frontend", "tcp://a:1", "--backend", "tcp://b:2", "--linger", "1000h"})
            .message,
        HasSubstr("--linger 3600000000 ms is out of range"));
    EXPECT_THAT(usage_error_of({"--no-such-flag"}).message, HasSubstr("no-such-flag"));
    EXPECT_EQ(usage_error_of({"--no-such-flag"}).code, exit_usage);
}

TEST(cli, proxy_config_file_and_environment) {
    const auto path = temp_file("frontend = tcp://127.0.0.1:*\nbackend = tcp://127.0.0.1:*\n"
                                "drain-timeout = 3s\nhwm = 50\n");
    ::setenv("ZMQKIT_DRAIN_TIMEOUT", "700ms", 1);
    auto r = parse({"--config", path, "--hwm", "70"});
    ::unsetenv("ZMQKIT_DRAIN_TIMEOUT");
    auto& cfg = std::get<proxy_config>(r);
    EXPECT_EQ(cfg.streamer.frontend, "tcp://127.0.0.1:*") << "from the file";
    EXPECT_EQ(cfg.drain_timeout, std::chrono::milliseconds(700)) << "environment beats file";
    EXPECT_EQ(cfg.streamer.sockets.send_hwm, 70) << "command line beats file";
    std::remove(path.c_str());
}

TEST(cli, proxy_bad_config_file) {
    auto missing = usage_error_of({"--config", "/nonexistent/zmqkit.conf"});
    EXPECT_EQ(missing.code, exit_config);
    EXPECT_THAT(missing.message, HasSubstr("cannot read config file '/nonexistent/zmqkit.conf'"));
    const auto path = temp_file("frontend = tcp://a:1\nwhat-is-this = 1\n");
    auto bad = usage_error_of({"--config", path});
    EXPECT_EQ(bad.code, exit_config);
    EXPECT_THAT(bad.message, HasSubstr("what-is-this"));
    std::remove(path.c_str());
}
