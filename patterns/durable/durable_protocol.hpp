// Private to zmqkit::durable: the parsers and builders of the durable protocol's frames (the
// proxy, reliable_sender/receiver, the tests and tests/fuzz/durable_protocol_fuzz.cpp use them;
// users do not). docs/wire-protocol.md §7.
#pragma once

#include <zmqkit/message_id.hpp>
#include <zmqkit/patterns/durable.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmqkit::patterns::durable_protocol {

// A consumer's command, parsed from its frames (after the routing id). Views into the frames.
struct consumer_command {
    enum class kind { credit_window, acked, nacked, leaving, pending_query };
    kind what = kind::leaving;
    std::uint32_t credit = 0; // CREDIT
    std::string_view group;   // CREDIT: the consumer group (empty: the default queue)
    std::string_view start;   // CREDIT: where a new group starts (empty: earliest)
    std::string_view tags;    // ACK, NACK: 8-byte big-endian tags, concatenated (size % 8 == 0)
    bool requeue = true;      // NACK: requeue, or dead-letter
    std::string_view reason;  // NACK: may be empty
    [[nodiscard]] std::size_t tag_count() const noexcept { return tags.size() / 8; }
    [[nodiscard]] std::uint64_t tag(std::size_t i) const noexcept;
};
// Parses [CREDIT][n]([group]([start])) | [ACK][tags] | [NACK][tags][requeue|dead-letter]([reason])
// | [BYE] | [PENDING]. nullopt if malformed; `why` then says what is wrong (for a log line). Never
// throws.
[[nodiscard]] std::optional<consumer_command>
parse_consumer_command(const std::vector<std::string_view>& frames, std::string& why);

// A proxy's reply to a producer, parsed: [CONFIRM][ids] or [REJECT][id][reason].
struct producer_reply {
    bool confirmed = true;   // CONFIRM, or REJECT
    std::string_view ids;    // 16-byte ids, concatenated (size % 16 == 0; one id for REJECT)
    std::string_view reason; // REJECT
    [[nodiscard]] std::size_t id_count() const noexcept { return ids.size() / message_id::size; }
    [[nodiscard]] message_id id(std::size_t i) const noexcept;
};
[[nodiscard]] std::optional<producer_reply>
parse_producer_reply(const std::vector<std::string_view>& frames);

// The proxy's answer to [PENDING]: messages ready for the consumers (stored, not acked, not
// in flight: waiting for delivery or for a redelivery backoff), and those in flight to the
// consumer that asked (delivered to it, not yet acked).
struct pending_report {
    std::uint64_t ready = 0;
    std::uint64_t in_flight = 0;
};
// [PENDING][ready][in flight], both decimal ASCII. nullopt if it is not one.
[[nodiscard]] std::optional<pending_report>
parse_pending_report(const std::vector<std::string_view>& frames);

// A delivery's frames: [DELIVER][tag][header...]. nullopt if it is not one.
[[nodiscard]] std::optional<std::uint64_t>
parse_delivery_tag(const std::vector<std::string_view>& frames);

// Splits the payload frame of [BATCH][payload] into its entries (views into `payload`, each
// an inline-layout message [header+body]; the headers are not decoded here). The payload is
// one or more entries, each a 4-byte big-endian length L >= 1 and then L bytes, with nothing
// after the last. False if it is not exactly that: `why` then names the fault and its byte
// offset in the payload (for the REJECT and the log). `entries` is cleared first (its capacity
// is reused). Never throws, never reads outside `payload`.
[[nodiscard]] bool parse_batch(std::string_view payload, std::vector<std::string_view>& entries,
                               std::string& why);
// Appends one entry (its length, then `message`) to a batch payload being built.
void append_batch_entry(std::string& payload, std::string_view message);
} // namespace zmqkit::patterns::durable_protocol
