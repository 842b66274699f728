// Fuzzes the 7/MDP frame parsers (client requests and replies, worker messages, broker
// messages) with arbitrary multipart messages: the input is split into frames at 0xFF bytes.
#include "patterns/load_balancer/mdp_protocol.hpp"

#include <zmqkit/patterns/majordomo.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using frames_t = std::vector<std::string_view>;
namespace mdp = zmqkit::patterns::mdp;

// Every accepted message starts with the empty frame and the protocol header.
bool header(const frames_t& f, std::string_view protocol) {
    return f.size() >= 3 && f[0].empty() && f[1] == protocol;
}

// REQUEST and REPLY of MDP/Worker: one client address frame, the delimiter, a body.
bool envelope(const frames_t& f, std::string_view client, std::size_t body) {
    return body == 5 && f.size() >= 6 && !f[3].empty() && f[4].empty() && client == f[3];
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    frames_t frames;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= input.size(); ++i) {
        if (i == input.size() || input[i] == '\xff') {
            frames.push_back(input.substr(start, i - start));
            start = i + 1;
        }
    }
    std::string why;
    if (const auto r = mdp::parse_client_request(frames, why)) {
        if (!header(frames, mdp::client_protocol) || frames.size() < 4 || r->service.empty() ||
            r->body != 3) {
            __builtin_trap();
        }
    } else if (why.empty()) {
        __builtin_trap(); // a rejection must say why
    }
    why.clear();
    if (const auto r = mdp::parse_client_reply(frames, why)) {
        if (!header(frames, mdp::client_protocol) || frames.size() < 4 || r->service != frames[2]) {
            __builtin_trap();
        }
    } else if (why.empty()) {
        __builtin_trap();
    }
    why.clear();
    if (const auto w = mdp::parse_worker_message(frames, why)) {
        if (!header(frames, mdp::worker_protocol)) {
            __builtin_trap();
        }
        using kind = mdp::worker_message::kind;
        switch (w->what) {
        case kind::ready:
            if (frames.size() != 4 || frames[2] != mdp::ready_command || w->service.empty()) {
                __builtin_trap();
            }
            break;
        case kind::reply:
            if (frames[2] != mdp::reply_command || !envelope(frames, w->client, w->body)) {
                __builtin_trap();
            }
            break;
        case kind::heartbeat:
        case kind::disconnect:
            if (frames.size() != 3) {
                __builtin_trap();
            }
            break;
        }
    } else if (why.empty()) {
        __builtin_trap();
    }
    why.clear();
    if (const auto b = mdp::parse_broker_message(frames, why)) {
        if (!header(frames, mdp::worker_protocol)) {
            __builtin_trap();
        }
        if (b->what == mdp::broker_message::kind::request) {
            if (frames[2] != mdp::request_command || !envelope(frames, b->client, b->body)) {
                __builtin_trap();
            }
        } else if (frames.size() != 3) {
            __builtin_trap();
        }
    } else if (why.empty()) {
        __builtin_trap();
    }
    return 0;
}
