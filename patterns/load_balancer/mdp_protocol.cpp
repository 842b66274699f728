// Parsing of 7/MDP v0.1 frames (docs/wire-protocol.md §9). Fuzzed
// (tests/fuzz/mdp_protocol_fuzz.cpp): never throws on any input, never reads out of bounds.
#include <zmqkit/patterns/majordomo.hpp>

#include "mdp_protocol.hpp"

#include <zmqkit/encoding.hpp>
namespace zmqkit::patterns::mdp {
namespace {

std::string printable(std::string_view s) {
    std::string out;
    for (const char c : s.substr(0, 16)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f) {
            out += c;
        } else {
            out += "\\x" + to_hex({&c, 1});
        }
    }
    return s.size() > 16 ? out + "..." : out;
}

// Frames 0 and 1 of every MDP message: the empty frame and the protocol header.
bool header_ok(const std::vector<std::string_view>& frames, std::string_view protocol,
               std::string& why) {
    if (frames.size() < 2) {
        why =
            "fewer than 2 frames (an empty frame and \"" + std::string(protocol) + "\" come first)";
        return false;
    }
    if (!frames[0].empty()) {
        why = "frame 0 must be empty, got '" + printable(frames[0]) + "'";
        return false;
    }
    if (frames[1] != protocol) {
        why =
            "frame 1 must be \"" + std::string(protocol) + "\", got '" + printable(frames[1]) + "'";
        return false;
    }
    return true;
}

// ["" header service body...]: shared by REQUEST and REPLY of MDP/Client.
bool client_frames_ok(const std::vector<std::string_view>& frames, std::string& why) {
    if (!header_ok(frames, client_protocol, why)) {
        return false;
    }
    if (frames.size() < 4) {
        why = "a client message has 4 or more frames: \"\", \"MDPC01\", service, body";
        return false;
    }
    if (frames[2].empty()) {
        why = "the service name (frame 2) is empty";
        return false;
    }
    return true;
}

// [client][""][body...] from index 3: the one client address frame REQUEST and REPLY carry.
bool envelope_ok(const std::vector<std::string_view>& frames, const char* what, std::string& why) {
    if (frames.size() < 6) {
        why = std::string(what) +
              " has 6 or more frames: \"\", \"MDPW01\", command, client, \"\", body";
        return false;
    }
    if (frames[3].empty()) {
        why = std::string(what) + ": the client address (frame 3) is empty";
        return false;
    }
    if (!frames[4].empty()) {
        why = std::string(what) +
              ": frame 4 must be the empty envelope delimiter (exactly one client address frame)";
        return false;
    }
    return true;
}

bool exact(const std::vector<std::string_view>& frames, std::size_t n, const char* what,
           std::string& why) {
    if (frames.size() != n) {
        why = std::string(what) + " has exactly " + std::to_string(n) + " frames, got " +
              std::to_string(frames.size());
        return false;
    }
    return true;
}

} // namespace

std::optional<client_request> parse_client_request(const std::vector<std::string_view>& frames,
                                                   std::string& why) {
    if (!client_frames_ok(frames, why)) {
        return std::nullopt;
    }
    return client_request{frames[2], 3};
}

std::optional<client_reply> parse_client_reply(const std::vector<std::string_view>& frames,
                                               std::string& why) {
    if (!client_frames_ok(frames, why)) {
        return std::nullopt;
    }
    return client_reply{frames[2], 3};
}

std::optional<worker_message> parse_worker_message(const std::vector<std::string_view>& frames,
                                                   std::string& why) {
    if (!header_ok(frames, worker_protocol, why)) {
        return std::nullopt;
    }
    if (frames.size() < 3) {
        why = "no command frame (frame 2)";
        return std::nullopt;
    }
    const std::string_view command = frames[2];
    worker_message m;
    if (command == ready_command) {
        if (!exact(frames, 4, "READY", why)) {
            return std::nullopt;
        }
        if (frames[3].empty()) {
            why = "READY: the service name (frame 3) is empty";
            return std::nullopt;
        }
        m.what = worker_message::kind::ready;
        m.service = frames[3];
        return m;
    }
    if (command == reply_command) {
        if (!envelope_ok(frames, "REPLY", why)) {
            return std::nullopt;
        }
        m.what = worker_message::kind::reply;
        m.client = frames[3];
        m.body = 5;
        return m;
    }
    if (command == heartbeat_command) {
        if (!exact(frames, 3, "HEARTBEAT", why)) {
            return std::nullopt;
        }
        m.what = worker_message::kind::heartbeat;
        return m;
    }
    if (command == disconnect_command) {
        if (!exact(frames, 3, "DISCONNECT", why)) {
            return std::nullopt;
        }
        m.what = worker_message::kind::disconnect;
        return m;
    }
    if (command == request_command) {
        why = "REQUEST (0x02) goes from the broker to a worker, not back";
        return std::nullopt;
    }
    why = "unknown command '" + printable(command) +
          "' (known from a worker: 0x01 READY, 0x03 REPLY, 0x04 HEARTBEAT, 0x05 DISCONNECT)";
    return std::nullopt;
}

std::optional<broker_message> parse_broker_message(const std::vector<std::string_view>& frames,
                                                   std::string& why) {
    if (!header_ok(frames, worker_protocol, why)) {
        return std::nullopt;
    }
    if (frames.size() < 3) {
        why = "no command frame (frame 2)";
        return std::nullopt;
    }
    const std::string_view command = frames[2];
    broker_message m;
    if (command == request_command) {
        if (!envelope_ok(frames, "REQUEST", why)) {
            return std::nullopt;
        }
        m.what = broker_message::kind::request;
        m.client = frames[3];
        m.body = 5;
        return m;
    }
    if (command == heartbeat_command) {
        if (!exact(frames, 3, "HEARTBEAT", why)) {
            return std::nullopt;
        }
        m.what = broker_message::kind::heartbeat;
        return m;
    }
    if (command == disconnect_command) {
        if (!exact(frames, 3, "DISCONNECT", why)) {
            return std::nullopt;
        }
        m.what = broker_message::kind::disconnect;
        return m;
    }
    why = "unknown command '" + printable(command) +
          "' (known from the broker: 0x02 REQUEST, 0x04 HEARTBEAT, 0x05 DISCONNECT)";
    return std::nullopt;
}

} // namespace zmqkit::patterns::mdp
