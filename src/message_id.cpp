#include <zmqkit/message_id.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <zmqkit/encoding.hpp>

#include <pthread.h>
#include <unistd.h>

namespace zmqkit {
namespace {

// Bumped in the child after fork(), so a forked process never repeats its parent's ids.
std::atomic<std::uint64_t> fork_generation{0};

void on_fork_child() noexcept {
    fork_generation.fetch_add(1, std::memory_order_relaxed);
}

[[maybe_unused]] const bool fork_handler_installed = [] {
    pthread_atfork(nullptr, nullptr, on_fork_child);
    return true;
}();

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31U);
}

// Per-thread generator: no lock on the hot path. xoshiro256** for the random bits.
struct id_generator {
    std::uint64_t generation = ~std::uint64_t{0};
    std::uint64_t s[4] = {};
    std::uint64_t last_ms = 0;
    std::uint32_t counter = 0; // 12-bit sub-millisecond counter (RFC 9562 method 1)

    void seed() noexcept {
        std::uint64_t seed = 0;
        try {
            std::random_device device;
            seed = (static_cast<std::uint64_t>(device()) << 32U) ^ device();
        } catch (...) {
            // No entropy source: pid, thread and clocks below still separate generators.
        }
        seed ^=
            static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
        seed ^= static_cast<std::uint64_t>(::getpid()) << 16U;
        seed ^= std::hash<std::thread::id>{}(std::this_thread::get_id());
        seed ^=
            static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        for (auto& word : s) {
            word = splitmix64(seed);
        }
        last_ms = 0;
        counter = 0;
    }

    static std::uint64_t rotl(std::uint64_t x, int k) noexcept {
        return (x << k) | (x >> (64 - k));
    }
    std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s[1] * 5, 7) * 9;
        const std::uint64_t t = s[1] << 17U;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }

    message_id make(std::uint64_t now_ms) noexcept {
        const auto gen = fork_generation.load(std::memory_order_relaxed);
        if (gen != generation) {
            seed();
            generation = gen;
        }
        // Strictly increasing within a thread: same millisecond -> counter + 1; a clock that
        // went backwards or a counter overflow keeps/advances the last millisecond.
        if (now_ms > last_ms) {
            last_ms = now_ms;
            counter = static_cast<std::uint32_t>(next() & 0x1FFU); // random start, room to count
        } else if (++counter > 0xFFFU) {
            ++last_ms;
            counter = 0;
        }
        const std::uint64_t rand_b = next();
        // Big-endian: 48-bit ms | version 7 + 12-bit counter; variant 10 + 62 random bits.
        const std::uint64_t high = (last_ms << 16U) | 0x7000U | (counter & 0x0FFFU);
        const std::uint64_t low = (rand_b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
        std::array<std::uint8_t, message_id::size> b{};
        const std::uint64_t be[2] = {__builtin_bswap64(high), __builtin_bswap64(low)};
        std::memcpy(b.data(), be, sizeof be);
        return message_id{b};
    }
};

thread_local id_generator generator;

} // namespace

message_id message_id::generate() noexcept {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return generator.make(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now).count()));
}

message_id message_id::generate(std::uint64_t unix_ns) noexcept {
    return generator.make(unix_ns / 1'000'000U);
}

std::optional<message_id> message_id::parse(std::string_view text) noexcept {
    std::array<std::uint8_t, size> b{};
    std::size_t nibble = 0;
    if (text.size() != 36 && text.size() != 32) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (text.size() == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (c != '-') {
                return std::nullopt;
            }
            continue;
        }
        const int v = hex_value(c);
        if (v < 0) {
            return std::nullopt;
        }
        auto& byte = b[nibble / 2];
        byte = static_cast<std::uint8_t>(byte | (nibble % 2 == 0 ? v << 4 : v));
        ++nibble;
    }
    return message_id{b};
}

void message_id::format_to(char* out) const noexcept {
    std::size_t pos = 0;
    for (std::size_t i = 0; i < size; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[pos++] = '-';
        }
        out[pos++] = hex_digit(bytes_[i] >> 4U);
        out[pos++] = hex_digit(bytes_[i]);
    }
}

std::string message_id::to_string() const {
    std::string s(36, '\0');
    format_to(s.data());
    return s;
}

std::uint64_t message_id::unix_ms() const noexcept {
    std::uint64_t ms = 0;
    for (std::size_t i = 0; i < 6; ++i) {
        ms = (ms << 8U) | bytes_[i];
    }
    return ms;
}

std::size_t message_id_hash::operator()(const message_id& id) const noexcept {
    // The last 8 bytes are random for generated ids.
    std::uint64_t h = 0;
    std::memcpy(&h, id.data() + 8, sizeof h);
    std::uint64_t t = 0;
    std::memcpy(&t, id.data(), sizeof t);
    return static_cast<std::size_t>(h ^ (t * 0x9e3779b97f4a7c15ULL));
}

} // namespace zmqkit
