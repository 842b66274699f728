// A subscriber that speaks ZMTP 3.x (NULL mechanism) over a plain TCP socket, so a test can
// send a subscription frame libzmq's own SUB would not (too large for its trie, or in the
// ZMTP 3.0 message form), and close without libzmq tearing its own trie down.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace zmqkit::testing {

class raw_zmtp_subscriber {
public:
    // How the subscription travels: a ZMTP 3.0 message (0x01 + prefix) or a ZMTP 3.1
    // SUBSCRIBE command.
    enum class form { message, command };

    // Connects to "tcp://127.0.0.1:PORT" and completes the NULL handshake as a SUB socket
    // (greeting minor version 0 for form::message, 1 for form::command). Throws on failure.
    raw_zmtp_subscriber(const std::string& endpoint, form f) : form_(f) {
        const auto colon = endpoint.rfind(':');
        if (!endpoint.starts_with("tcp://127.0.0.1:") || colon == std::string::npos) {
            throw std::runtime_error("raw_zmtp_subscriber: tcp://127.0.0.1:PORT only");
        }
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        timeval bound{5, 0}; // every read and write of this peer is bounded
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof(bound));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<std::uint16_t>(std::stoi(endpoint.substr(colon + 1))));
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
            ::close(fd_);
            throw std::runtime_error("raw_zmtp_subscriber: cannot connect to " + endpoint);
        }
        std::string greeting(64, '\0');
        greeting[0] = '\xff';
        greeting[9] = '\x7f';
        greeting[10] = 3;
        greeting[11] = f == form::command ? 1 : 0;
        greeting.replace(12, 4, "NULL");
        write_all(greeting);
        std::string ready("\x05READY", 6);
        ready += '\x0b';
        ready += "Socket-Type";
        ready += std::string("\0\0\0\x03", 4);
        ready += "SUB";
        write_all(frame(0x04, ready));
        read_exactly(64); // the peer's greeting
        read_frame();     // and its READY
    }
    ~raw_zmtp_subscriber() { ::close(fd_); }
    raw_zmtp_subscriber(const raw_zmtp_subscriber&) = delete;
    raw_zmtp_subscriber& operator=(const raw_zmtp_subscriber&) = delete;

    // Sends a subscription to `prefix`. False if the peer closed the connection meanwhile.
    bool subscribe(std::string_view prefix) {
        if (form_ == form::command) {
            return write_all(frame(0x04, "\x09SUBSCRIBE" + std::string(prefix)));
        }
        return write_all(frame(0x00, "\x01" + std::string(prefix)));
    }
    // Sends only the head of a subscription frame that announces `size` bytes, and `sent` bytes
    // of it: what a peer claiming a huge subscription costs before the frame is complete.
    bool announce_subscription(std::uint64_t size, std::size_t sent) {
        std::string head(1, static_cast<char>(form_ == form::command ? 0x06 : 0x02));
        for (int shift = 56; shift >= 0; shift -= 8) {
            head += static_cast<char>((size >> shift) & 0xff);
        }
        head += form_ == form::command ? std::string("\x09SUBSCRIBE") : std::string("\x01");
        head.append(sent, 'x');
        return write_all(head);
    }
    // True once the peer has closed the connection (waits at most the 5 s read bound).
    bool closed_by_peer() {
        char c = 0;
        for (;;) {
            const auto n = ::recv(fd_, &c, 1, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                return true; // EOF or reset
            }
            if (n < 0) {
                return false; // the read bound passed
            }
        }
    }

private:
    static std::string frame(unsigned char flags, const std::string& body) {
        std::string out;
        if (body.size() < 256) {
            out += static_cast<char>(flags);
            out += static_cast<char>(body.size());
        } else {
            out += static_cast<char>(flags | 0x02);
            for (int shift = 56; shift >= 0; shift -= 8) {
                out += static_cast<char>((static_cast<std::uint64_t>(body.size()) >> shift) & 0xff);
            }
        }
        return out + body;
    }
    bool write_all(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }
    std::string read_exactly(std::size_t size) {
        std::string out(size, '\0');
        std::size_t got = 0;
        while (got < size) {
            const auto n = ::recv(fd_, out.data() + got, size - got, 0);
            if (n <= 0) {
                throw std::runtime_error("raw_zmtp_subscriber: the handshake did not complete");
            }
            got += static_cast<std::size_t>(n);
        }
        return out;
    }
    void read_frame() {
        const auto flags = static_cast<unsigned char>(read_exactly(1)[0]);
        std::uint64_t size = 0;
        for (const char c : read_exactly((flags & 0x02) != 0 ? 8 : 1)) {
            size = (size << 8) | static_cast<unsigned char>(c);
        }
        (void)read_exactly(static_cast<std::size_t>(size));
    }

    int fd_ = -1;
    form form_;
};

} // namespace zmqkit::testing
