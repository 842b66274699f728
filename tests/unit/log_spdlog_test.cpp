// A program that logs with spdlog routes zmqkit's lines into its own spdlog logger with a
// sink of a few lines (docs/architecture.md, "Logging"): zmqkit does not depend on spdlog.
#include <zmqkit/log.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <sstream>

namespace {

spdlog::level::level_enum spdlog_level(zmqkit::log_level level) {
    switch (level) {
    case zmqkit::log_level::trace:
        return spdlog::level::trace;
    case zmqkit::log_level::debug:
        return spdlog::level::debug;
    case zmqkit::log_level::info:
        return spdlog::level::info;
    case zmqkit::log_level::warn:
        return spdlog::level::warn;
    case zmqkit::log_level::error:
        return spdlog::level::err;
    case zmqkit::log_level::off:
        break;
    }
    return spdlog::level::off;
}

} // namespace

TEST(log_spdlog, zmqkit_lines_go_into_an_spdlog_logger) {
    std::ostringstream out;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    auto app = std::make_shared<spdlog::logger>("app", sink);
    app->set_pattern("[%n] [%l] %v");
    zmqkit::set_log_sink(zmqkit::make_callback_sink([app](const zmqkit::log_record& r) {
        app->log(spdlog_level(r.level), "{}: {}", r.component, r.message);
    }));
    zmqkit::logger("zmqkit.zap").warn("ZAP denied 10.1.2.3");
    zmqkit::log_callback("orders")("worker 01 expired");
    app->flush();
    zmqkit::reset_log_configuration();
    EXPECT_EQ(out.str(), "[app] [warning] zmqkit.zap: ZAP denied 10.1.2.3\n"
                         "[app] [warning] orders: worker 01 expired\n");
}
