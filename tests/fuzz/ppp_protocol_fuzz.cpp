// Fuzzes the 6/PPP frame parsers (worker messages, broker messages, client requests) with
// arbitrary multipart messages: the input is split into frames at 0xFF bytes. Covers zmqkit's
// READY with credit ("\x01" "credit=N"; seeds ready_credit* in corpus/ppp_protocol_fuzz).
#include "patterns/load_balancer/ppp_protocol.hpp"

#include <zmqkit/patterns/load_balancer.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace ppp = zmqkit::patterns::ppp;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::vector<std::string_view> frames;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= input.size(); ++i) {
        if (i == input.size() || input[i] == '\xff') {
            frames.push_back(input.substr(start, i - start));
            start = i + 1;
        }
    }
    std::string why;
    if (const auto w = ppp::parse_worker_message(frames, why)) {
        if (w->what == ppp::worker_message::kind::reply &&
            (w->envelope_size == 0 || w->envelope_size + 1 >= frames.size() ||
             !frames[w->envelope_size].empty())) {
            __builtin_trap(); // a reply has an address, the delimiter and content
        }
        if (w->what == ppp::worker_message::kind::ready &&
            (w->credit == 0 || (w->credit_rejected && (w->credit != 1 || why.empty())) ||
             (w->credit > 1 &&
              (frames.size() != 1 || frames[0].substr(0, 8) != ppp::ready_credit_prefix)))) {
            __builtin_trap(); // credit >= 1; a rejected credit is 1 and says why
        }
    } else if (why.empty()) {
        __builtin_trap(); // a rejection must say why
    }
    why.clear();
    if (const auto b = ppp::parse_broker_message(frames, why)) {
        if (b->what == ppp::broker_message::kind::request &&
            (b->envelope_size == 0 || b->envelope_size + 1 >= frames.size())) {
            __builtin_trap();
        }
    } else if (why.empty()) {
        __builtin_trap();
    }
    why.clear();
    if (const auto d = ppp::parse_client_request(frames, why)) {
        if (*d + 1 >= frames.size() || !frames[*d].empty()) {
            __builtin_trap();
        }
    } else if (why.empty()) {
        __builtin_trap();
    }
    return 0;
}
