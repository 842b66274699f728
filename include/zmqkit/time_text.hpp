// zmqkit — points in time as users type them and as reports print them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace zmqkit {

// "2024-05-01T12:00:00Z" (RFC 3339: fractions and +hh:mm offsets allowed), "@SECONDS[.frac]"
// (Unix time), or a duration ("10m", "2h", "1.5s", "250ms", or milliseconds): that long before
// `now_ns`. Returns nanoseconds since the Unix epoch. Throws config_error naming the forms.
[[nodiscard]] std::int64_t parse_time(std::string_view text, std::int64_t now_ns);

// Nanoseconds since the Unix epoch as RFC 3339 UTC with milliseconds
// ("2024-05-01T12:00:00.123Z").
[[nodiscard]] std::string format_time(std::int64_t unix_ns);

} // namespace zmqkit
