// zmqkit — statistics of a forwarding device, in the layout of zmq_proxy_steerable's
// STATISTICS reply, and the control-socket commands every zmqkit device answers.
#pragma once

#include <zmqkit/export.hpp>
#include <zmqkit/metrics.hpp>

#include <zmq.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit {

// Eight counters, in the order zmq_proxy_steerable (libzmq 4.3) replies to STATISTICS.
// "messages" are whole multipart messages; "bytes" the sum of their frames.
struct ZMQKIT_API proxy_statistics {
    std::uint64_t frontend_messages_in = 0;
    std::uint64_t frontend_bytes_in = 0;
    std::uint64_t frontend_messages_out = 0;
    std::uint64_t frontend_bytes_out = 0;
    std::uint64_t backend_messages_in = 0;
    std::uint64_t backend_bytes_in = 0;
    std::uint64_t backend_messages_out = 0;
    std::uint64_t backend_bytes_out = 0;

    // Eight frames, each one uint64 in host byte order (as libzmq sends them).
    [[nodiscard]] std::vector<std::string> to_frames() const;
    // Parses the eight frames of a STATISTICS reply; nullopt if they are not 8 x 8 bytes.
    [[nodiscard]] static std::optional<proxy_statistics>
    from_frames(const std::vector<std::string>& frames);
    // {"frontend":{"messages_in":..,"bytes_in":..,"messages_out":..,"bytes_out":..},"backend":{..}}
    [[nodiscard]] std::string to_json() const;

    friend bool operator==(const proxy_statistics&, const proxy_statistics&) = default;
};

// The eight counters behind proxy_statistics, registered as zmqkit_device_*{component=<name>}
// (names shared by every device kind, so one dashboard reads them all). Lock-free to update
// from the device's thread and to read from any other.
struct ZMQKIT_API device_counters {
    counter* frontend_in = nullptr;
    counter* frontend_bytes_in = nullptr;
    counter* frontend_out = nullptr;
    counter* frontend_bytes_out = nullptr;
    counter* backend_in = nullptr;
    counter* backend_bytes_in = nullptr;
    counter* backend_out = nullptr;
    counter* backend_bytes_out = nullptr;

    // Registers (or finds) them. frontend_out / backend_in say in the help text what those
    // messages are for this device (e.g. "confirms, rejects"; "credit, acks").
    [[nodiscard]] static device_counters register_in(metrics_registry& registry,
                                                     const std::string& component,
                                                     std::string_view frontend_out,
                                                     std::string_view backend_in);
    [[nodiscard]] proxy_statistics snapshot() const noexcept;
};

// What a device's drain (stop() or TERMINATE) could not finish before its deadline. Every
// device reports through this one type, so zmqkit-proxy logs it and adds it to its final
// statistics the same way in every mode.
struct ZMQKIT_API drain_report {
    // Messages the device had taken in (received, or waiting in its input queue) and never
    // passed on: lost when the process ends. Stream, forwarder: messages not forwarded; lb,
    // mdp: requests queued or at a worker and not answered; durable: messages held back
    // unstored (spool full) or waiting on a PULL frontend.
    std::uint64_t dropped = 0;
    // Durable mode: messages not yet acked, kept in the spool for the next start (not a loss).
    std::optional<std::uint64_t> remaining_in_spool;

    // "drain ended with 50 messages dropped (received, never passed on)", "drain complete: 3
    // messages remain in the spool", or "drain complete" when nothing was left.
    [[nodiscard]] std::string describe() const;
    // {"dropped":N} or {"dropped":N,"remaining_in_spool":N}
    [[nodiscard]] std::string to_json() const;
};

// Control commands (one frame each, upper case), as accepted on a device's control socket:
//   PAUSE       stop reading from the frontend (and backend); replies "OK"
//   RESUME      read again; replies "OK"
//   TERMINATE   drain and stop the device; replies "OK"
//   STATISTICS  replies proxy_statistics::to_frames()
//   STATUS      replies one JSON frame: state, statistics and the device's metrics
namespace control {
inline constexpr const char* pause = "PAUSE";
inline constexpr const char* resume = "RESUME";
inline constexpr const char* terminate = "TERMINATE";
inline constexpr const char* statistics = "STATISTICS";
inline constexpr const char* status = "STATUS";
} // namespace control

} // namespace zmqkit
