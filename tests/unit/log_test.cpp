// zmqkit's one log (zmqkit/log.hpp) and the tools' log flags (common/cli.hpp).
#include "common/cli.hpp"
#include "zmqkit-proxy/options.hpp"

#include <zmqkit/header.hpp>
#include <zmqkit/log.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

using namespace zmqkit;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

// What a sink received, copied out of the records' views.
struct captured {
    log_level level;
    std::string component;
    std::string message;
    std::vector<std::pair<std::string, std::string>> fields;
};

class capture {
public:
    std::shared_ptr<log_sink> sink() {
        return make_callback_sink([this](const log_record& r) {
            captured c{r.level, std::string(r.component), std::string(r.message), {}};
            for (const auto& f : r.fields) {
                c.fields.emplace_back(f.key, f.value);
            }
            std::lock_guard lock(mutex_);
            lines_.push_back(std::move(c));
        });
    }
    std::vector<captured> lines() const {
        std::lock_guard lock(mutex_);
        return lines_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<captured> lines_;
};

// Every test starts and ends with the defaults (the configuration is process-wide).
class log_test : public ::testing::Test {
protected:
    void SetUp() override { reset_log_configuration(); }
    void TearDown() override { reset_log_configuration(); }
};

log_record record_at(std::chrono::microseconds since_epoch, log_level level,
                     std::string_view component, std::string_view message,
                     std::span<const log_field> fields = {}) {
    return log_record{std::chrono::system_clock::time_point(since_epoch), level, component, message,
                      fields};
}

} // namespace

TEST_F(log_test, level_names_round_trip) {
    for (const auto level : {log_level::trace, log_level::debug, log_level::info, log_level::warn,
                             log_level::error, log_level::off}) {
        EXPECT_EQ(parse_log_level(to_string(level)), level);
    }
    EXPECT_EQ(parse_log_level("warning"), log_level::warn);
    EXPECT_EQ(parse_log_level("WARN"), std::nullopt);
    EXPECT_EQ(parse_log_level(""), std::nullopt);
}

TEST_F(log_test, the_level_is_a_threshold_set_globally_or_per_component) {
    const logger a("test.a");
    const logger b("test.b");
    EXPECT_FALSE(a.enabled(log_level::debug)); // default info
    EXPECT_TRUE(a.enabled(log_level::info));
    EXPECT_TRUE(a.enabled(log_level::error));
    EXPECT_FALSE(a.enabled(log_level::off)); // "off" is a threshold, never a line's level

    set_log_level(log_level::warn);
    EXPECT_FALSE(a.enabled(log_level::info));
    EXPECT_TRUE(b.enabled(log_level::warn));

    set_log_level("test.a", log_level::trace); // a component's own level wins
    EXPECT_TRUE(a.enabled(log_level::trace));
    EXPECT_FALSE(b.enabled(log_level::info));
    set_log_level(log_level::error); // and stays when the global one changes
    EXPECT_TRUE(a.enabled(log_level::trace));
    EXPECT_FALSE(b.enabled(log_level::warn));

    set_log_level("test.a", std::nullopt); // back to the global level
    EXPECT_FALSE(a.enabled(log_level::warn));
    set_log_level(log_level::off);
    EXPECT_FALSE(a.enabled(log_level::error));

    // A level set before the component's first logger exists applies to it.
    set_log_level("test.later", log_level::debug);
    EXPECT_TRUE(logger("test.later").enabled(log_level::debug));
}

TEST_F(log_test, the_sink_is_replaced_globally_or_per_component) {
    capture all;
    capture own;
    set_log_sink(all.sink());
    set_log_sink("test.own", own.sink());
    const logger plain("test.plain");
    const logger mine("test.own");
    plain.info("to the global sink");
    mine.warn("to its own sink");
    plain.debug("below the level: nowhere");
    const log_field fields[] = {{"message_id", "0193abc"}, {"correlation_id", "c-7"}};
    plain.write(log_level::error, "with fields", fields);

    const auto got = all.lines();
    ASSERT_EQ(got.size(), 2U);
    EXPECT_EQ(got[0].component, "test.plain");
    EXPECT_EQ(got[0].message, "to the global sink");
    EXPECT_EQ(got[0].level, log_level::info);
    EXPECT_EQ(got[1].level, log_level::error);
    ASSERT_EQ(got[1].fields.size(), 2U);
    EXPECT_EQ(got[1].fields[0], (std::pair<std::string, std::string>{"message_id", "0193abc"}));
    ASSERT_EQ(own.lines().size(), 1U);
    EXPECT_EQ(own.lines()[0].message, "to its own sink");

    set_log_sink("test.own", nullptr); // back to the global sink
    mine.warn("now global");
    EXPECT_EQ(all.lines().size(), 3U);
    EXPECT_EQ(own.lines().size(), 1U);
}

TEST_F(log_test, a_throwing_sink_never_reaches_the_caller) {
    set_log_sink(make_callback_sink([](const log_record&) { throw std::runtime_error("boom"); }));
    EXPECT_NO_THROW(logger("test.throw").error("lost"));
}

TEST_F(log_test, a_disabled_line_is_never_formatted) {
    capture sink;
    set_log_sink(sink.sink());
    const logger log("test.lazy");
    int formatted = 0;
    auto format = [&] {
        ++formatted;
        return std::string("expensive ") + std::to_string(formatted);
    };
    ZMQKIT_LOG(log, log_level::debug, format());
    log.lazy(log_level::trace, format);
    EXPECT_EQ(formatted, 0);
    ZMQKIT_LOG(log, log_level::info, format());
    log.lazy(log_level::warn, format);
    EXPECT_EQ(formatted, 2);
    ASSERT_EQ(sink.lines().size(), 2U);
    EXPECT_EQ(sink.lines()[1].message, "expensive 2");
}

// A micro benchmark of the hot-path promise: a disabled debug line costs one relaxed load and a
// compare (a few ns; the bound is loose so that sanitizer builds pass too).
TEST_F(log_test, a_disabled_line_costs_next_to_nothing) {
    const logger log("test.cost");
    constexpr int n = 2'000'000;
    std::uint64_t formatted = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
        ZMQKIT_LOG(log, log_level::debug, (++formatted, std::to_string(i)));
    }
    const auto ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() /
        n;
    RecordProperty("ns_per_disabled_line", std::to_string(ns));
    std::printf("disabled debug line: %.2f ns\n", ns);
    EXPECT_EQ(formatted, 0U);
    EXPECT_LT(ns, 200.0);
}

TEST_F(log_test, the_rate_limiter_counts_what_it_held_back) {
    auto now = std::chrono::steady_clock::time_point{} + 1h;
    log_rate_limiter limiter(10s, [&] { return now; });
    EXPECT_EQ(limiter.admit("peer 10.0.0.1"), 0U); // the first line of a kind goes through
    EXPECT_EQ(limiter.admit("peer 10.0.0.1"), std::nullopt);
    now += 9s;
    EXPECT_EQ(limiter.admit("peer 10.0.0.1"), std::nullopt);
    EXPECT_EQ(limiter.admit("peer 10.0.0.2"), 0U); // keys are independent
    now += 1s;
    EXPECT_EQ(limiter.admit("peer 10.0.0.1"), 2U); // the interval passed: with the count
    EXPECT_EQ(limiter.admit("peer 10.0.0.1"), std::nullopt);
    now += 1h;
    EXPECT_EQ(limiter.admit("peer 10.0.0.1"), 1U);
    EXPECT_EQ(limiter.admit("peer 10.0.0.2"), 0U);

    EXPECT_EQ(log_rate_limiter::suppressed_suffix(0), "");
    EXPECT_EQ(log_rate_limiter::suppressed_suffix(3), " (3 similar lines suppressed)");
}

TEST_F(log_test, a_burst_of_lines_per_interval_then_the_count_of_what_was_held_back) {
    auto now = std::chrono::steady_clock::time_point(std::chrono::hours(1));
    log_rate_limiter limiter(
        1s, [&] { return now; }, 3);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(limiter.admit("dead_lettered"), 0U) << i;
    }
    EXPECT_EQ(limiter.admit("dead_lettered"), std::nullopt);
    EXPECT_EQ(limiter.admit("dead_lettered"), std::nullopt);
    now += 999ms;
    EXPECT_EQ(limiter.admit("dead_lettered"), std::nullopt);
    now += 1ms; // a new interval: three more, the first with the count
    EXPECT_EQ(limiter.admit("dead_lettered"), 3U);
    EXPECT_EQ(limiter.admit("dead_lettered"), 0U);
    EXPECT_EQ(limiter.admit("dead_lettered"), 0U);
    EXPECT_EQ(limiter.admit("dead_lettered"), std::nullopt);
}

TEST_F(log_test, the_ids_of_a_message_as_fields_and_the_trace_id_of_a_traceparent) {
    EXPECT_EQ(trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
              "4bf92f3577b34da6a3ce929d0e0e4736");
    // a later version may append fields; anything else is not a traceparent
    EXPECT_EQ(trace_id_of("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz"),
              "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), "");
    EXPECT_EQ(trace_id_of("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), "");
    EXPECT_EQ(trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"), "");
    EXPECT_EQ(trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"), "");
    EXPECT_EQ(trace_id_of(""), "");

    header h = header::fresh();
    const message_log_fields plain(h);
    ASSERT_EQ(plain.fields().size(), 2u); // no traceparent: no trace id
    EXPECT_EQ(plain.fields()[0].key, "message_id");
    EXPECT_EQ(plain.fields()[0].value, h.id.to_string());
    EXPECT_EQ(plain.fields()[1].key, "correlation_id");
    EXPECT_EQ(plain.fields()[1].value, h.correlation_id.to_string());
    const auto later = header::follow_up(h);
    const message_log_fields follow(later);
    EXPECT_EQ(follow.fields()[1].value, h.id.to_string()); // one conversation, one id to grep
    EXPECT_TRUE(message_log_fields(header{}).fields().empty());
}

TEST_F(log_test, the_text_line_has_time_level_component_and_stays_one_line) {
    const auto t = std::chrono::seconds(1796616306) + std::chrono::microseconds(123456);
    EXPECT_EQ(format_log_text(record_at(t, log_level::info, "zmqkit-proxy", "frontend bound x")),
              "2026-12-07T04:05:06.123456Z INFO  zmqkit-proxy: frontend bound x\n");
    EXPECT_EQ(format_log_text(record_at(t, log_level::warn, "c", "a\nb\rc\x01")),
              "2026-12-07T04:05:06.123456Z WARN  c: a\\nb\\rc\\x01\n");
    const log_field fields[] = {{"message_id", "0193"}};
    EXPECT_EQ(format_log_text(record_at(t, log_level::error, "c", "m", fields)),
              "2026-12-07T04:05:06.123456Z ERROR c: m message_id=0193\n");
    EXPECT_THAT(format_log_text(record_at(t, log_level::debug, "c", "m")), HasSubstr(" DEBUG c:"));
    EXPECT_THAT(format_log_text(record_at(t, log_level::trace, "c", "m")), HasSubstr(" TRACE c:"));
}

TEST_F(log_test, json_lines_parse_as_json_with_the_fields) {
    const auto t = std::chrono::seconds(1796616306) + std::chrono::microseconds(5);
    const log_field fields[] = {{"message_id", "0193abc"}, {"correlation_id", "c\"7"}};
    // Quotes, control characters and bytes that are not UTF-8 must not break the line.
    const std::string message = "denied \"x\"\n\t\x01 \xff\xfe end";
    const auto line = format_log_json(record_at(t, log_level::warn, "zap", message, fields));
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1); // one line
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("ts"), "2026-12-07T04:05:06.000005Z");
    EXPECT_EQ(j.at("level"), "warn");
    EXPECT_EQ(j.at("component"), "zap");
    EXPECT_THAT(j.at("msg").get<std::string>(), HasSubstr("denied \"x\"\n\t\x01 "));
    EXPECT_EQ(j.at("message_id"), "0193abc");
    EXPECT_EQ(j.at("correlation_id"), "c\"7");
}

// Many threads, one pipe: every line arrives whole (one write() per line), none is lost.
TEST_F(log_test, threads_never_interleave_lines) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    for (const auto format : {log_format::text, log_format::json}) {
        set_log_sink(make_fd_sink(fds[1], format));
        constexpr int threads = 6;
        constexpr int per_thread = 1500;
        std::string received;
        std::thread reader([&] {
            char buf[65536];
            const std::size_t want = static_cast<std::size_t>(threads) * per_thread;
            std::size_t lines = 0;
            while (lines < want) {
                const auto n = ::read(fds[0], buf, sizeof buf);
                if (n <= 0) {
                    return;
                }
                received.append(buf, static_cast<std::size_t>(n));
                lines =
                    static_cast<std::size_t>(std::count(received.begin(), received.end(), '\n'));
            }
        });
        std::vector<std::thread> writers;
        for (int t = 0; t < threads; ++t) {
            writers.emplace_back([t] {
                const logger log("test.thread" + std::to_string(t));
                const std::string padding(200, static_cast<char>('a' + t));
                for (int i = 0; i < per_thread; ++i) {
                    log.info(std::to_string(i) + " " + padding);
                }
            });
        }
        for (auto& w : writers) {
            w.join();
        }
        reader.join();

        const std::regex text_line(
            R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z INFO  test\.thread(\d): (\d+) ([a-z])+)");
        std::set<std::string> seen;
        std::size_t start = 0;
        for (auto end = received.find('\n'); end != std::string::npos;
             start = end + 1, end = received.find('\n', start)) {
            const std::string line = received.substr(start, end - start);
            std::string component;
            std::string message;
            if (format == log_format::text) {
                std::smatch m;
                ASSERT_TRUE(std::regex_match(line, m, text_line)) << line.substr(0, 120);
                component = m[1];
                message = m[2];
                EXPECT_EQ(m[3], std::string(1, static_cast<char>('a' + std::stoi(m[1].str()))));
            } else {
                const auto j = nlohmann::json::parse(line); // throws on a torn line
                component = j.at("component").get<std::string>();
                message = j.at("msg").get<std::string>();
                message = message.substr(0, message.find(' '));
            }
            EXPECT_TRUE(seen.insert(component + "/" + message).second) << line;
        }
        EXPECT_EQ(seen.size(), static_cast<std::size_t>(threads) * per_thread);
    }
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_F(log_test, log_callback_is_what_an_unset_log_option_means) {
    capture sink;
    set_log_sink(sink.sink());
    const auto callback = log_callback("test.device");
    callback("worker 01 expired");
    log_callback("test.device", log_level::debug)("below info: dropped");
    const auto got = sink.lines();
    ASSERT_EQ(got.size(), 1U);
    EXPECT_EQ(got[0].component, "test.device");
    EXPECT_EQ(got[0].level, log_level::warn);
    EXPECT_EQ(got[0].message, "worker 01 expired");
}

// ---- the tools' flags ---------------------------------------------------------------------------

namespace {

cli::proxy_config proxy_config_of(std::vector<std::string> args) {
    args.insert(args.begin(), "zmqkit-proxy");
    args.insert(args.end(), {"--frontend", "@inproc://f", "--backend", "@inproc://b"});
    std::vector<const char*> argv;
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    return std::get<cli::proxy_config>(
        cli::parse_proxy_options(static_cast<int>(argv.size()), argv.data()));
}

} // namespace

TEST_F(log_test, verbose_quiet_and_log_level_map_to_levels) {
    EXPECT_EQ(proxy_config_of({}).logging.level, log_level::info);
    EXPECT_EQ(proxy_config_of({"-v"}).logging.level, log_level::debug);
    EXPECT_EQ(proxy_config_of({"-q"}).logging.level, log_level::warn);
    EXPECT_EQ(proxy_config_of({"-v"}).verbosity, 1);
    EXPECT_EQ(proxy_config_of({"-q"}).verbosity, -1);
    EXPECT_EQ(proxy_config_of({"-q", "--log-level", "trace"}).logging.level, log_level::trace);
    EXPECT_EQ(proxy_config_of({"--log-level", "error"}).verbosity, -1);
    EXPECT_EQ(proxy_config_of({}).logging.format, log_format::text);
    EXPECT_EQ(proxy_config_of({"--log-format", "json"}).logging.format, log_format::json);
    EXPECT_THROW(proxy_config_of({"--log-level", "loud"}), cli::usage_error);
    EXPECT_THROW(proxy_config_of({"--log-format", "xml"}), cli::usage_error);
}

TEST_F(log_test, the_proxy_name_is_the_component_of_its_lines) {
    EXPECT_EQ(proxy_config_of({}).logging.component, ""); // the tool's name
    EXPECT_EQ(proxy_config_of({"--name", "orders"}).logging.component, "orders");
}
