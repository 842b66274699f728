// Points in time as text (include/zmqkit/time_text.hpp).
#include <zmqkit/error.hpp>
#include <zmqkit/time_text.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>

namespace zmqkit {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// A duration before now: a number of milliseconds, or a number with ms, s, m/min or h.
std::optional<std::int64_t> parse_ago(std::string_view text) {
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr == text.data() || !std::isfinite(value) || value < 0) {
        return std::nullopt;
    }
    const std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    double ns = 0;
    if (unit.empty() || unit == "ms") {
        ns = value * 1e6;
    } else if (unit == "s") {
        ns = value * 1e9;
    } else if (unit == "m" || unit == "min") {
        ns = value * 60e9;
    } else if (unit == "h") {
        ns = value * 3600e9;
    } else {
        return std::nullopt;
    }
    if (ns > 9e18) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(ns);
}

} // namespace

std::int64_t parse_time(std::string_view text, std::int64_t now_ns) {
    const std::string original(text);
    auto bad = [&]() -> config_error {
        return config_error("'" + original +
                            "' is not a time: use RFC 3339 (2024-05-01T12:00:00Z, "
                            "2024-05-01T14:00:00.5+02:00), @UNIX_SECONDS (@1714564800) or a "
                            "duration before now (10m, 2h)");
    };
    if (text.empty()) {
        throw bad();
    }
    if (text.front() == '@') {
        double seconds = 0;
        const auto* end = text.data() + text.size();
        auto [ptr, ec] = std::from_chars(text.data() + 1, end, seconds);
        if (ec != std::errc{} || ptr != end || !std::isfinite(seconds) || seconds < 0 ||
            seconds > 9.2e9) {
            throw bad();
        }
        return static_cast<std::int64_t>(std::llround(seconds * 1e9));
    }
    if (text.size() >= 10 && text[4] == '-' && text[7] == '-') {
        if (text[0] == '-') {
            throw bad();
        }
        // YYYY-MM-DD[(T| )HH:MM:SS[.frac]](Z|+hh:mm|-hh:mm)
        auto number = [&](std::size_t at, std::size_t n) -> int {
            if (at + n > text.size()) {
                throw bad();
            }
            int v = 0;
            auto [ptr, ec] = std::from_chars(text.data() + at, text.data() + at + n, v);
            if (ec != std::errc{} || ptr != text.data() + at + n) {
                throw bad();
            }
            return v;
        };
        const int year = number(0, 4);
        const int month = number(5, 2);
        const int day = number(8, 2);
        int hour = 0;
        int minute = 0;
        int second = 0;
        std::int64_t fraction_ns = 0;
        std::size_t pos = 10;
        if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
            if (pos + 9 > text.size() || text[pos + 3] != ':' || text[pos + 6] != ':') {
                throw bad();
            }
            hour = number(pos + 1, 2);
            minute = number(pos + 4, 2);
            second = number(pos + 7, 2);
            pos += 9;
            if (pos < text.size() && text[pos] == '.') {
                ++pos;
                std::int64_t scale = 100'000'000;
                const std::size_t start = pos;
                while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
                    fraction_ns += (text[pos] - '0') * scale;
                    scale /= 10;
                    ++pos;
                }
                if (pos == start) {
                    throw bad();
                }
            }
        }
        std::int64_t offset_s = 0;
        if (pos < text.size()) {
            if (text[pos] == 'Z' || text[pos] == 'z') {
                ++pos;
            } else if (text[pos] == '+' || text[pos] == '-') {
                if (pos + 6 != text.size() || text[pos + 3] != ':') {
                    throw bad();
                }
                const int sign = text[pos] == '+' ? 1 : -1;
                offset_s = sign * (number(pos + 1, 2) * 3600 + number(pos + 4, 2) * 60);
                pos += 6;
            }
        }
        if (pos != text.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
            minute > 59 || second > 60) {
            throw bad();
        }
        const std::int64_t days =
            days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
        const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
        if (seconds < 0 || seconds >= 9'200'000'000) { // ns since 1970 fit in 64 bits to 2261
            throw bad();
        }
        return seconds * 1'000'000'000 + fraction_ns;
    }
    if (const auto ago = parse_ago(text)) {
        return now_ns - *ago;
    }
    throw bad();
}

std::string format_time(std::int64_t unix_ns) {
    const std::int64_t seconds =
        unix_ns >= 0 ? unix_ns / 1'000'000'000 : -((-unix_ns + 999'999'999) / 1'000'000'000);
    const std::int64_t ms = (unix_ns - seconds * 1'000'000'000) / 1'000'000;
    const auto t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms));
    return buf;
}

} // namespace zmqkit
