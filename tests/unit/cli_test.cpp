// Option parsing of the command-line tools, called as a library.
#include "common/cli.hpp"
#include "zmqkit-proxy/options.hpp"
#include "zmqkit-recv/options.hpp"
#include "zmqkit-send/options.hpp"
#include "zmqkit-spooler/options.hpp"
#include "zmqkit-worker/options.hpp"

#include "support/testing.hpp"

#include <zmqkit/error.hpp>
#include <zmqkit/security.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

using namespace zmqkit;
using namespace zmqkit::cli;
using ::testing::HasSubstr;
using ::testing::Not;

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
    EXPECT_EQ(mode_name(cfg.mode), "stream");
    EXPECT_EQ(std::get<patterns::streamer_options>(cfg.mode).frontend, "tcp://127.0.0.1:*");
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
    EXPECT_EQ(std::get<patterns::streamer_options>(cfg.mode).frontend, "tcp://127.0.0.1:*")
        << "from the file";
    EXPECT_EQ(cfg.drain_timeout, std::chrono::milliseconds(700)) << "environment beats file";
    EXPECT_EQ(std::get<patterns::streamer_options>(cfg.mode).sockets.send_hwm, 70)
        << "command line beats file";
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

TEST(cli, proxy_forwarder_slow_subscriber_disconnect_policy_and_timeout) {
    auto r = parse({"--mode", "forwarder", "--frontend", "tcp://127.0.0.1:*", "--backend",
                    "tcp://127.0.0.1:*", "--slow-subscriber-policy", "disconnect",
                    "--slow-subscriber-timeout", "750ms"});
    auto& cfg = std::get<proxy_config>(r);
    EXPECT_EQ(std::get<patterns::forwarder_options>(cfg.mode).policy,
              patterns::slow_subscriber_policy::disconnect);
    EXPECT_EQ(std::get<patterns::forwarder_options>(cfg.mode).slow_subscriber_timeout,
              std::chrono::milliseconds(750));
    auto defaults = parse({"--mode", "forwarder", "--frontend", "tcp://127.0.0.1:*", "--backend",
                           "tcp://127.0.0.1:*", "--slow-subscriber-policy", "disconnect"});
    EXPECT_EQ(std::get<patterns::forwarder_options>(std::get<proxy_config>(defaults).mode)
                  .slow_subscriber_timeout,
              std::chrono::milliseconds(5000));
    const auto path = temp_file("mode = forwarder\nfrontend = tcp://127.0.0.1:*\n"
                                "backend = tcp://127.0.0.1:*\nslow-subscriber-policy = disconnect\n"
                                "slow-subscriber-timeout = 2s\n");
    auto from_file = parse({"--config", path});
    std::remove(path.c_str());
    EXPECT_EQ(std::get<patterns::forwarder_options>(std::get<proxy_config>(from_file).mode)
                  .slow_subscriber_timeout,
              std::chrono::milliseconds(2000));
    EXPECT_THAT(usage_error_of({"--mode", "forwarder", "--frontend", "tcp://a:1", "--backend",
                                "tcp://b:2", "--slow-subscriber-policy", "kick"})
                    .message,
                HasSubstr("(drop | block | disconnect)"));
    EXPECT_THAT(
        usage_error_of({"--mode", "forwarder", "--frontend", "tcp://a:1", "--backend", "tcp://b:2",
                        "--slow-subscriber-policy", "disconnect", "--slow-subscriber-timeout", "0"})
            .message,
        HasSubstr("--slow-subscriber-timeout must be positive"));
    EXPECT_THAT(usage_error_of({"--mode", "forwarder", "--frontend", "tcp://a:1", "--backend",
                                "tcp://b:2", "--slow-subscriber-timeout", "1s"})
                    .message,
                HasSubstr("applies to --slow-subscriber-policy disconnect only"));
    EXPECT_THAT(usage_error_of({"--frontend", "tcp://a:1", "--backend", "tcp://b:2",
                                "--slow-subscriber-timeout", "1s"})
                    .message,
                HasSubstr("apply to --mode forwarder only"));
    auto help = std::get<print_and_exit>(parse({"--help"}));
    EXPECT_THAT(help.text, HasSubstr("--slow-subscriber-timeout"));
    EXPECT_THAT(help.text, HasSubstr("disconnect"));
}

// ---- security flags (one parser for every binary) ----------------------------------------------

namespace {

// Key pairs and allow directories in a private temp directory.
struct security_files {
    zmqkit::testing::temp_directory dir{"cli-security"};
    certificate server = certificate::generate();
    certificate client = certificate::generate();
    security_files() {
        server.save(path("server.key"));
        client.save(path("client.key"));
        std::filesystem::create_directory(path("clients"));
        client.save_public(path("clients/client.key"));
        std::ofstream(path("passwords")) << "alice=secret\n";
        std::ofstream(path("password")) << "pa55word\n";
    }
    [[nodiscard]] std::string path(const std::string& name) const {
        return (dir.path() / name).string();
    }
};

template <class Config, class Parse>
Config parse_tool(const char* tool, std::vector<std::string> args, Parse parse_fn) {
    args.insert(args.begin(), tool);
    std::vector<const char*> argv;
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    return std::get<Config>(parse_fn(static_cast<int>(argv.size()), argv.data()));
}
send_config parse_send_options_for_test(std::vector<std::string> args) {
    return parse_tool<send_config>("zmqkit-send", std::move(args), parse_send_options);
}
recv_config parse_recv_options_for_test(std::vector<std::string> args) {
    return parse_tool<recv_config>("zmqkit-recv", std::move(args), parse_recv_options);
}

proxy_config proxy_cfg(std::vector<std::string> args) {
    args.insert(args.begin(),
                {"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*"});
    return std::get<proxy_config>(parse(std::move(args)));
}

std::string proxy_error(std::vector<std::string> args) {
    args.insert(args.begin(),
                {"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*"});
    return usage_error_of(std::move(args)).message;
}

} // namespace

TEST(cli_security, no_flags_means_no_security_as_before) {
    auto cfg = proxy_cfg({"--control", "tcp://127.0.0.1:*"});
    EXPECT_FALSE(cfg.frontend_security.enabled());
    EXPECT_FALSE(cfg.backend_security.enabled());
    EXPECT_FALSE(cfg.control_security.enabled());
    EXPECT_FALSE(std::get<patterns::streamer_options>(cfg.mode).frontend_security.enabled());
    EXPECT_FALSE(std::get<patterns::streamer_options>(cfg.mode).sockets.security.enabled());
}

TEST(cli_security, curve_allow_makes_a_server_the_plain_flags_apply_to_both_sides) {
    security_files f;
    auto cfg = proxy_cfg(
        {"--curve-secret", f.path("server.key_secret"), "--curve-allow", f.path("clients")});
    for (const auto* side : {&cfg.frontend_security, &cfg.backend_security}) {
        EXPECT_TRUE(side->server());
        EXPECT_EQ(side->socket.mechanism, security_mechanism::curve);
        EXPECT_TRUE(side->socket.server);
        EXPECT_EQ(side->socket.public_key, f.server.public_key);
        EXPECT_EQ(side->policy->curve_allow_directory, f.path("clients"));
        EXPECT_FALSE(side->policy->curve_allow_any);
    }
    EXPECT_EQ(cfg.frontend_security.socket.zap_domain, "frontend");
    EXPECT_EQ(cfg.backend_security.socket.zap_domain, "backend");
    EXPECT_EQ(std::get<patterns::streamer_options>(cfg.mode).frontend_security.zap_domain,
              "frontend")
        << "copied to the device";
    EXPECT_FALSE(std::get<patterns::streamer_options>(cfg.mode).sockets.security.enabled());
}

TEST(cli_security, per_side_flags_override_the_plain_ones) {
    security_files f;
    std::filesystem::create_directory(f.path("producers"));
    auto cfg = proxy_cfg({"--mode", "durable", "--spool", f.path("spool"), "--curve-secret",
                          f.path("server.key_secret"), "--frontend-curve-allow",
                          f.path("producers"), "--backend-curve-allow", "any"});
    EXPECT_EQ(std::get<patterns::durable_proxy_options>(cfg.mode).frontend_security.mechanism,
              security_mechanism::curve);
    EXPECT_EQ(cfg.frontend_security.policy->curve_allow_directory, f.path("producers"));
    EXPECT_TRUE(cfg.backend_security.policy->curve_allow_any);
    EXPECT_EQ(std::get<patterns::durable_proxy_options>(cfg.mode).backend_security.zap_domain,
              "backend");

    // A side that connects elsewhere: its own --backend-curve-server-key drops the inherited
    // --curve-allow (a per-side flag of the other role replaces it).
    auto client = proxy_cfg({"--curve-secret", f.path("server.key_secret"), "--curve-allow", "any",
                             "--backend-curve-server-key", f.path("client.key")});
    EXPECT_TRUE(client.frontend_security.server());
    EXPECT_FALSE(client.backend_security.server());
    EXPECT_EQ(client.backend_security.socket.server_key, f.client.public_key);
    EXPECT_EQ(client.backend_security.socket.public_key, f.server.public_key) << "identity";

    // Per-side IP filters on a plaintext side.
    auto ips = proxy_cfg({"--frontend-zap-deny-ip", "127.0.0.1", "--frontend-zap-deny-ip",
                          "10.0.0.0/8", "--backend-zap-allow-ip", "::1"});
    EXPECT_EQ(ips.frontend_security.socket.mechanism, security_mechanism::null);
    EXPECT_EQ(ips.frontend_security.socket.zap_domain, "frontend");
    EXPECT_EQ(ips.frontend_security.policy->deny_ips,
              (std::vector<std::string>{"127.0.0.1", "10.0.0.0/8"}));
    EXPECT_EQ(ips.backend_security.policy->allow_ips, (std::vector<std::string>{"::1"}));
}

TEST(cli_security, control_and_capture_take_the_flags_only_when_bound) {
    security_files f;
    auto cfg = proxy_cfg({"--control", "tcp://127.0.0.1:*", "--curve-secret",
                          f.path("server.key_secret"), "--curve-allow", "any"});
    EXPECT_TRUE(cfg.control_security.server());
    EXPECT_EQ(std::get<patterns::streamer_options>(cfg.mode).control_security.zap_domain,
              "control");
    EXPECT_FALSE(cfg.capture_security.enabled());
    EXPECT_THAT(proxy_error({"--capture-curve-allow", "any"}),
                HasSubstr("--capture-curve-allow is given but there is no --capture socket"));
    EXPECT_THAT(proxy_error({"--control", "tcp://127.0.0.1:*", "--curve-secret",
                             f.path("server.key_secret"), "--frontend-curve-allow", "any",
                             "--backend-curve-allow", "any"}),
                HasSubstr("control: --curve-secret alone does not say this side's role: add "
                          "--control-curve-allow DIR|any"));
}

TEST(cli_security, config_file_keys_and_environment_mirror_the_flags) {
    security_files f;
    const auto path =
        temp_file("frontend = tcp://127.0.0.1:*\nbackend = tcp://127.0.0.1:*\n"
                  "curve-secret = " +
                  f.path("server.key_secret") + "\nfrontend-curve-allow = " + f.path("clients") +
                  "\nzap-deny-ip = 192.168.0.0/16\nzap-deny-ip = 10.1.2.3\n");
    ::setenv("ZMQKIT_BACKEND_CURVE_ALLOW", "any", 1);
    auto r = parse({"--config", path});
    ::unsetenv("ZMQKIT_BACKEND_CURVE_ALLOW");
    auto& cfg = std::get<proxy_config>(r);
    EXPECT_EQ(cfg.frontend_security.policy->curve_allow_directory, f.path("clients"));
    EXPECT_TRUE(cfg.backend_security.policy->curve_allow_any);
    EXPECT_EQ(cfg.frontend_security.policy->deny_ips,
              (std::vector<std::string>{"192.168.0.0/16", "10.1.2.3"}));
    std::remove(path.c_str());
}

TEST(cli_security, plain_client_reads_its_password_from_the_environment_or_a_file) {
    security_files f;
    ::setenv("ZMQKIT_PLAIN_PASSWORD", "from-env", 1);
    auto env = proxy_cfg(
        {"--backend-plain-user", "bob", "--frontend-plain-passwords", f.path("passwords")});
    ::unsetenv("ZMQKIT_PLAIN_PASSWORD");
    EXPECT_EQ(env.backend_security.socket.mechanism, security_mechanism::plain);
    EXPECT_EQ(env.backend_security.socket.username, "bob");
    EXPECT_EQ(env.backend_security.socket.password, "from-env");
    EXPECT_TRUE(env.frontend_security.server());
    EXPECT_EQ(env.frontend_security.policy->plain_password_file, f.path("passwords"));

    ::setenv("ZMQKIT_BACKEND_PLAIN_PASSWORD", "side-env", 1);
    ::setenv("ZMQKIT_PLAIN_PASSWORD", "from-env", 1);
    auto side = proxy_cfg({"--backend-plain-user", "bob"});
    ::unsetenv("ZMQKIT_BACKEND_PLAIN_PASSWORD");
    ::unsetenv("ZMQKIT_PLAIN_PASSWORD");
    EXPECT_EQ(side.backend_security.socket.password, "side-env");

    auto file = proxy_cfg(
        {"--backend-plain-user", "bob", "--backend-plain-password-file", f.path("password")});
    EXPECT_EQ(file.backend_security.socket.password, "pa55word") << "first line, no newline";
}

TEST(cli_security, every_error_says_what_is_missing) {
    security_files f;
    const auto secret = f.path("server.key_secret");
    struct expectation {
        std::vector<std::string> args;
        std::string message;
    };
    const std::vector<expectation> cases{
        {{"--curve-secret", secret},
         "frontend: --curve-secret alone does not say this side's role: add "
         "--frontend-curve-allow DIR|any to make it a CURVE server, or "
         "--frontend-curve-server-key KEY|FILE"},
        {{"--curve-allow", "any"},
         "frontend: --curve-allow makes this side a CURVE server, which needs its own key pair: "
         "add --curve-secret FILE"},
        {{"--curve-secret", secret, "--curve-allow", "any", "--curve-server-key",
          f.path("client.key")},
         "give --curve-allow (a CURVE server that checks its clients) or --curve-server-key"},
        {{"--curve-secret", secret, "--curve-allow", f.path("nowhere")},
         "--curve-allow '" + f.path("nowhere") + "' is not a directory"},
        {{"--curve-secret", f.path("server.key"), "--curve-allow", "any"},
         "is a public certificate: give the secret one"},
        {{"--curve-secret", f.path("missing_secret"), "--curve-allow", "any"}, "missing_secret"},
        {{"--curve-server-key", "not-a-key"}, "not-a-key"},
        {{"--plain-passwords", f.path("passwords"), "--plain-user", "bob"},
         "give --plain-passwords (a PLAIN server) or --plain-user (a PLAIN client), not both"},
        {{"--plain-user", "bob"},
         "--plain-user needs a password: set ZMQKIT_PLAIN_PASSWORD (or "
         "ZMQKIT_FRONTEND_PLAIN_PASSWORD) or give --plain-password-file FILE (never on the "
         "command line)"},
        {{"--plain-password-file", f.path("password")},
         "--plain-password-file is the password of a PLAIN client: add --plain-user NAME"},
        {{"--plain-passwords", f.path("nope")},
         "--plain-passwords '" + f.path("nope") + "': cannot read it"},
        {{"--curve-secret", secret, "--curve-allow", "any", "--plain-passwords",
          f.path("passwords")},
         "choose CURVE (--curve-*) or PLAIN (--plain-*) for one socket, not both"},
        {{"--zap-deny-ip", "localhost"},
         "--zap-deny-ip 'localhost' is not an address or CIDR block"},
        {{"--zap-allow-ip", "10.0.0.0/33"}, "--zap-allow-ip '10.0.0.0/33' is not an address"},
        {{"--curve-server-key", f.path("server.key"), "--zap-deny-ip", "10.0.0.1"},
         "--zap-allow-ip / --zap-deny-ip filter the peers of a server side; this side is a "
         "client"},
    };
    ::unsetenv("ZMQKIT_PLAIN_PASSWORD");
    for (const auto& c : cases) {
        const auto e = [&] {
            auto args = c.args;
            args.insert(args.begin(),
                        {"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*"});
            return usage_error_of(args);
        }();
        EXPECT_EQ(e.code, exit_usage) << c.message;
        EXPECT_THAT(e.message, HasSubstr(c.message));
        EXPECT_THAT(e.message, Not(HasSubstr(f.server.secret_key))) << "never a secret";
    }
}

TEST(cli_security, help_lists_the_flags_with_an_example_and_no_secret) {
    auto r = parse({"--help"});
    auto& p = std::get<print_and_exit>(r);
    for (const auto& name : security_flag_names()) {
        EXPECT_THAT(p.text, HasSubstr("--" + name)) << name;
    }
    EXPECT_THAT(p.text, HasSubstr("--frontend-curve-allow producers/"));
    EXPECT_THAT(p.text, HasSubstr("--<side>-<flag> overrides one flag for one side"));
    EXPECT_THAT(p.text, Not(HasSubstr("--frontend-zap-deny-ip"))) << "per-side flags: one line";
}

TEST(cli_security, the_tools_use_the_same_parser) {
    security_files f;
    ::setenv("ZMQKIT_CURVE_SERVER_KEY", f.server.public_key.c_str(), 1);
    auto send = parse_send_options_for_test({"tcp://127.0.0.1:5555"});
    ::unsetenv("ZMQKIT_CURVE_SERVER_KEY");
    EXPECT_EQ(send.security.socket.mechanism, security_mechanism::curve);
    EXPECT_FALSE(send.security.server());
    EXPECT_EQ(send.security.socket.server_key, f.server.public_key);

    auto recv =
        parse_recv_options_for_test({"--curve-secret", f.path("server.key_secret"), "--curve-allow",
                                     f.path("clients"), "@tcp://127.0.0.1:*"});
    EXPECT_TRUE(recv.security.server());
    EXPECT_EQ(recv.security.socket.zap_domain, "zmqkit-recv");
    EXPECT_EQ(recv.security.policy->curve_allow_directory, f.path("clients"));
}

// ---- config files and environment variables (issue 14, items 13 and 14) ----------------------

namespace {

// The usage_error a tool's parser throws for `args` ("no error" if none).
template <class Parse>
usage_error tool_error(const char* tool, std::vector<std::string> args, Parse parse_fn) {
    args.insert(args.begin(), tool);
    std::vector<const char*> argv;
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    try {
        (void)parse_fn(static_cast<int>(argv.size()), argv.data());
    } catch (const usage_error& e) {
        return e;
    }
    return usage_error{"no error", 0};
}

// The error of each tool that reads a config file, given `--config path`.
std::map<std::string, usage_error> config_errors(const std::string& path) {
    return {
        {"proxy", tool_error("zmqkit-proxy",
                             {"--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                              "--config", path},
                             parse_proxy_options)},
        {"send",
         tool_error("zmqkit-send", {"--config", path, "tcp://127.0.0.1:5555"}, parse_send_options)},
        {"recv",
         tool_error("zmqkit-recv", {"--config", path, "@tcp://127.0.0.1:*"}, parse_recv_options)},
        {"spooler", tool_error("zmqkit-spooler", {"inspect", "/tmp", "--config", path},
                               parse_spooler_options)},
    };
}

bool printable_ascii(const std::string& text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// Sets environment variables for one scope.
class scoped_environment {
public:
    scoped_environment(std::initializer_list<std::pair<std::string, std::string>> vars)
        : vars_(vars) {
        for (const auto& [name, value] : vars_) {
            ::setenv(name.c_str(), value.c_str(), 1);
        }
    }
    ~scoped_environment() {
        for (const auto& [name, value] : vars_) {
            ::unsetenv(name.c_str());
        }
    }
    scoped_environment(const scoped_environment&) = delete;
    scoped_environment& operator=(const scoped_environment&) = delete;

private:
    std::vector<std::pair<std::string, std::string>> vars_;
};

// The long option names in a --help text's option column.
std::set<std::string> option_names(const std::string& help) {
    std::set<std::string> names;
    std::istringstream lines(help);
    std::string line;
    const std::regex flag("--([a-z0-9][a-z0-9-]*)");
    while (std::getline(lines, line)) {
        if (line.rfind("  -", 0) != 0) {
            continue;
        }
        const std::string column = line.substr(0, line.find("  ", 2));
        for (std::sregex_iterator it(column.begin(), column.end(), flag), end; it != end; ++it) {
            names.insert((*it)[1]);
        }
    }
    return names;
}

template <class Parse>
std::string help_of(const char* tool, std::vector<std::string> args, Parse parse_fn) {
    args.insert(args.begin(), tool);
    args.emplace_back("--help");
    std::vector<const char*> argv;
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    return std::get<print_and_exit>(parse_fn(static_cast<int>(argv.size()), argv.data())).text;
}

} // namespace

TEST(cli_config, a_directory_is_exit_78_in_every_tool) {
    zmqkit::testing::temp_directory dir("config-dir");
    for (const auto& [tool, e] : config_errors(dir.path().string())) {
        EXPECT_EQ(e.code, exit_config) << tool << ": " << e.message;
        EXPECT_THAT(e.message, HasSubstr("is a directory")) << tool;
    }
}

TEST(cli_config, a_binary_file_is_not_echoed_raw) {
    std::string bytes("\x7f"
                      "ELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00",
                      20);
    bytes += std::string(600, '\xee') + "\n\x1b[31mred\n";
    const auto path = temp_file(bytes);
    for (const auto& [tool, e] : config_errors(path)) {
        EXPECT_EQ(e.code, exit_config) << tool << ": " << e.message;
        EXPECT_TRUE(printable_ascii(e.message)) << tool << ": " << e.message;
        EXPECT_THAT(e.message, HasSubstr("config file '" + path + "'")) << tool;
        EXPECT_LT(e.message.size(), 600U) << tool << ": a long line is cut";
    }
    std::remove(path.c_str());
}

TEST(cli_config, escaped_shows_text_and_escapes_the_rest) {
    EXPECT_EQ(escaped("plain text"), "plain text");
    EXPECT_EQ(escaped(std::string("a\0b\n\x1b\xff\\", 7)), "a\\x00b\\n\\x1b\\xff\\\\");
    EXPECT_EQ(escaped("abcdef", 3), "abc...(3 more bytes)");
}

TEST(cli_environment, a_variable_for_one_tool_does_not_break_another) {
    // The issue: ZMQKIT_FORMAT=json exported for zmqkit-recv made zmqkit-send exit 64.
    scoped_environment env({{"ZMQKIT_FORMAT", "json"}, {"ZMQKIT_COUNT", "3"}});
    auto send = parse_send_options_for_test({"--data", "hi", "tcp://127.0.0.1:5555"});
    EXPECT_EQ(send.format, "text") << "--format is not read from the plain variable";
    auto recv = parse_recv_options_for_test({"@tcp://127.0.0.1:*"});
    EXPECT_EQ(recv.format, "text");
    const auto notes = ignored_environment_notes("recv");
    ASSERT_EQ(notes.size(), 2U);
    EXPECT_THAT(notes[0] + notes[1], HasSubstr("set ZMQKIT_RECV_FORMAT for zmqkit-recv"));
}

TEST(cli_environment, each_tool_reads_its_own_prefix_first) {
    scoped_environment env({{"ZMQKIT_RECV_FORMAT", "json"},
                            {"ZMQKIT_SEND_HWM", "7"},
                            {"ZMQKIT_HWM", "9"},
                            {"ZMQKIT_PROXY_DRAIN_TIMEOUT", "300ms"},
                            {"ZMQKIT_DRAIN_TIMEOUT", "700ms"}});
    EXPECT_EQ(parse_recv_options_for_test({"@tcp://127.0.0.1:*"}).format, "json");
    EXPECT_EQ(parse_send_options_for_test({"tcp://127.0.0.1:5555"}).hwm, 7) << "own beats plain";
    EXPECT_EQ(parse_recv_options_for_test({"@tcp://127.0.0.1:*"}).hwm, 9) << "plain: shared";
    EXPECT_EQ(proxy_cfg({}).drain_timeout, std::chrono::milliseconds(300));
    EXPECT_EQ(proxy_cfg({"--drain-timeout", "1s"}).drain_timeout, std::chrono::milliseconds(1000))
        << "the command line beats both";
}

TEST(cli_environment, an_error_names_the_variable) {
    {
        scoped_environment env({{"ZMQKIT_SEND_HWM", "many"}});
        const auto e = tool_error("zmqkit-send", {"tcp://127.0.0.1:5555"}, parse_send_options);
        EXPECT_EQ(e.code, exit_usage);
        EXPECT_THAT(e.message, ::testing::StartsWith("ZMQKIT_SEND_HWM=many: ")) << e.message;
    }
    {
        // A value the parser takes but the tool refuses later: run_tool() names the variable.
        scoped_environment env({{"ZMQKIT_SEND_FORMAT", "json"}});
        const auto e = tool_error("zmqkit-send", {"tcp://127.0.0.1:5555"}, parse_send_options);
        EXPECT_EQ(e.code, exit_usage);
        EXPECT_THAT(name_environment_source(e.message),
                    ::testing::StartsWith("ZMQKIT_SEND_FORMAT=json: "));
    }
    {
        scoped_environment env({{"ZMQKIT_DRAIN_TIMEOUT", "soon"}});
        EXPECT_THAT(name_environment_source(proxy_error({})),
                    ::testing::StartsWith("ZMQKIT_DRAIN_TIMEOUT=soon: bad duration 'soon'"));
    }
}

TEST(cli_environment, every_name_two_tools_share_is_shared_or_tool_specific) {
    std::map<std::string, std::set<std::string>> tools_of;
    auto add = [&](const std::string& tool, const std::string& help) {
        for (const auto& name : option_names(help)) {
            tools_of[name].insert(tool);
        }
    };
    add("proxy", help_of("zmqkit-proxy", {}, parse_proxy_options));
    add("send", help_of("zmqkit-send", {}, parse_send_options));
    add("recv", help_of("zmqkit-recv", {}, parse_recv_options));
    add("worker", help_of("zmqkit-worker", {}, parse_worker_options));
    for (const auto& command : std::vector<std::vector<std::string>>{{"inspect"},
                                                                     {"verify"},
                                                                     {"repair"},
                                                                     {"dlq", "list"},
                                                                     {"dlq", "requeue"},
                                                                     {"dlq", "purge"},
                                                                     {"record"},
                                                                     {"replay"}}) {
        add("spooler", help_of("zmqkit-spooler", command, parse_spooler_options));
    }
    ASSERT_GT(tools_of.size(), 40U) << "the help texts were read";
    const auto& specific = tool_specific_option_names();
    for (const auto& [name, tools] : tools_of) {
        if (tools.size() < 2 || name == "help" || name == "version" || name == "config") {
            continue;
        }
        EXPECT_TRUE(shared_option_name(name) ||
                    std::find(specific.begin(), specific.end(), name) != specific.end())
            << "--" << name << " is taken by " << tools.size()
            << " tools: add it to tool_specific_option_names() or shared_option_name()";
    }
}
