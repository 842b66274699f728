#include "common/cli.hpp"

#include <zmqkit/error.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

namespace po = boost::program_options;

namespace zmqkit::cli {

std::chrono::milliseconds parse_duration(std::string_view text) {
    const std::string original(text);
    auto bad = [&]() -> config_error {
        return config_error("bad duration '" + original +
                            "': use a number of milliseconds or a number with a unit, e.g. "
                            "250ms, 2s, 1.5s, 1m");
    };
    if (text.empty()) {
        throw bad();
    }
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr == text.data() || !std::isfinite(value) || value < 0) {
        throw bad();
    }
    const std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    double ms = 0;
    if (unit.empty() || unit == "ms") {
        ms = value;
    } else if (unit == "s") {
        ms = value * 1000;
    } else if (unit == "m" || unit == "min") {
        ms = value * 60'000;
    } else if (unit == "h") {
        ms = value * 3'600'000;
    } else {
        throw bad();
    }
    if (ms > 1e12) {
        throw bad();
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

void check_linger(std::chrono::milliseconds linger) {
    if (linger.count() < 0 || linger.count() > INT32_MAX) {
        throw usage_error{"--linger " + std::to_string(linger.count()) +
                              " ms is out of range (0 to " + std::to_string(INT32_MAX) + " ms)",
                          exit_usage};
    }
}

std::string environment_option(const po::options_description& desc, const std::string& variable) {
    static constexpr std::string_view prefix = "ZMQKIT_";
    if (variable.rfind(prefix, 0) != 0) {
        return {};
    }
    std::string name = variable.substr(prefix.size());
    for (auto& c : name) {
        c = c == '_' ? '-' : static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    if (name == "config" || desc.find_nothrow(name, false) != nullptr) {
        return name;
    }
    return {};
}

void parse_all(int argc, const char* const* argv, const po::options_description& desc,
               const po::positional_options_description* positional, po::variables_map& vm) {
    try {
        auto parser = po::command_line_parser(argc, argv).options(desc);
        if (positional != nullptr) {
            parser.positional(*positional);
        }
        po::store(parser.run(), vm);
        po::store(po::parse_environment(
                      desc, [&](const std::string& v) { return environment_option(desc, v); }),
                  vm);
    } catch (const po::error& e) {
        throw usage_error{std::string(e.what()) + " (see --help)", exit_usage};
    }
    if (vm.count("config") != 0U) {
        const auto path = vm["config"].as<std::string>();
        std::ifstream file(path);
        if (!file) {
            throw usage_error{"cannot read config file '" + path + "'", exit_config};
        }
        try {
            po::store(po::parse_config_file(file, desc, false), vm);
        } catch (const po::error& e) {
            throw usage_error{"config file '" + path + "': " + e.what(), exit_config};
        }
    }
    try {
        po::notify(vm);
    } catch (const po::error& e) {
        throw usage_error{std::string(e.what()) + " (see --help)", exit_usage};
    }
}

void logger::write(std::string_view level, std::string_view text) const {
    std::string line = tool_;
    line += ": ";
    line += level;
    line += ": ";
    line += text;
    line += '\n';
    // One write() per line so concurrent lines from threads do not interleave.
    (void)::write(STDERR_FILENO, line.data(), line.size());
}

void logger::info(std::string_view text) const {
    if (verbosity_ >= 0) {
        write("info", text);
    }
}
void logger::debug(std::string_view text) const {
    if (verbosity_ >= 1) {
        write("debug", text);
    }
}
void logger::warn(std::string_view text) const {
    write("warning", text);
}
void logger::error(std::string_view text) const {
    write("error", text);
}

} // namespace zmqkit::cli
