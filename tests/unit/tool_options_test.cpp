// bin/common/tool_options: the options every tool shares, built in one place.
#include "common/tool_options.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <vector>

using namespace zmqkit::cli;
using ::testing::HasSubstr;

namespace po = boost::program_options;

namespace {

// A tool "demo" with one option of its own, --level.
struct demo_tool {
    int level = 0;
    tool_options options{"demo"};
    demo_tool() {
        options.add()("level", po::value(&level)->default_value(1), "how much");
        options.add_diagnostics("more diagnostics");
        options.add_security();
    }
    void parse(std::vector<const char*> args) {
        args.insert(args.begin(), "zmqkit-demo");
        options.parse(static_cast<int>(args.size()), args.data());
    }
};

std::string help_of(const tool_options& options) {
    std::ostringstream text;
    text << options.options();
    return text.str();
}

} // namespace

TEST(tool_options, help_lists_the_shared_options_around_the_tools_own) {
    demo_tool demo;
    const std::string help = help_of(demo.options);
    const auto at = [&](const char* what) { return help.find(what); };
    ASSERT_NE(at("--help"), std::string::npos);
    EXPECT_LT(at("--help"), at("--version"));
    EXPECT_LT(at("--version"), at("--level"));
    EXPECT_LT(at("--level"), at("--config"));
    EXPECT_LT(at("--config"), at("--verbose"));
    EXPECT_LT(at("--verbose"), at("--quiet"));
    std::ostringstream security;
    security << demo.options.security_options();
    EXPECT_THAT(security.str(), HasSubstr("--curve-secret"));
}

TEST(tool_options, version_verbosity_and_help_read_back_alike) {
    demo_tool plain;
    plain.parse({});
    EXPECT_FALSE(plain.options.version());
    EXPECT_FALSE(plain.options.wants_help());
    EXPECT_EQ(plain.options.verbosity(), 0);
    EXPECT_FALSE(plain.options.security().enabled());

    demo_tool asked;
    asked.parse({"--version", "-v"});
    ASSERT_TRUE(asked.options.version());
    EXPECT_EQ(asked.options.version()->text, "zmqkit-demo " ZMQKIT_VERSION "\n");
    EXPECT_EQ(asked.options.verbosity(), 1);

    demo_tool quiet;
    quiet.parse({"-q", "-h"});
    EXPECT_EQ(quiet.options.verbosity(), -1);
    EXPECT_TRUE(quiet.options.wants_help());
}

TEST(tool_options, the_environment_sets_options_under_the_tools_prefix) {
    ::setenv("ZMQKIT_DEMO_LEVEL", "7", 1);
    demo_tool from_env;
    from_env.parse({});
    EXPECT_EQ(from_env.level, 7);
    demo_tool command_line_wins;
    command_line_wins.parse({"--level", "3"});
    EXPECT_EQ(command_line_wins.level, 3);

    // parse_command_line(): the environment is not read (zmqkit-keygen).
    tool_options only_argv("demo", false);
    int level = 0;
    only_argv.add()("level", po::value(&level)->default_value(1), "how much");
    const char* args[] = {"zmqkit-demo"};
    only_argv.parse_command_line(1, args);
    ::unsetenv("ZMQKIT_DEMO_LEVEL");
    EXPECT_EQ(level, 1);
    EXPECT_EQ(help_of(only_argv).find("--version"), std::string::npos);
}

TEST(tool_options, usage_errors_name_the_problem) {
    demo_tool demo;
    try {
        demo.parse({"--no-such-flag"});
        FAIL() << "an unknown flag is a usage error";
    } catch (const usage_error& e) {
        EXPECT_EQ(e.code, exit_usage);
        EXPECT_THAT(e.message, HasSubstr("no-such-flag"));
    }
    EXPECT_EQ(parse_count("42", "--count"), 42U);
    try {
        (void)parse_count("-1", "--count");
        FAIL();
    } catch (const usage_error& e) {
        EXPECT_EQ(e.message, "--count '-1' is not a non-negative integer");
    }
    EXPECT_THROW(check_hwm(-1), usage_error);
    check_hwm(0);
}
