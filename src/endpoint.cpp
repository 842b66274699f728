#include <zmqkit/endpoint.hpp>
#include <zmqkit/error.hpp>

#include <zmq.hpp>

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

namespace zmqkit {
namespace {

constexpr std::array<std::string_view, 8> known_transports = {"tcp",  "ipc",  "inproc", "pgm",
                                                              "epgm", "vmci", "ws",     "wss"};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

[[noreturn]] void bad(std::string_view entry, const std::string& why) {
    throw endpoint_error("bad endpoint '" + std::string(entry) + "': " + why);
}

void check_port(std::string_view entry, std::string_view port) {
    if (port == "*" || port == "!") {
        return; // ephemeral
    }
    // libzmq's ephemeral range syntax: "!" or "*" or "[first-last]"
    if (port.size() > 2 && port.front() == '[' && port.back() == ']') {
        return;
    }
    unsigned value = 0;
    const auto* first = port.data();
    const auto* last = port.data() + port.size();
    auto [ptr, ec] = std::from_chars(first, last, value);
    if (port.empty() || ec != std::errc{} || ptr != last || value > 65535) {
        bad(entry, "port '" + std::string(port) +
                       "' is not a number from 0 to 65535 or '*' for an ephemeral port");
    }
}

void check_address(std::string_view entry, std::string_view transport, std::string_view rest) {
    if (rest.empty()) {
        bad(entry, "nothing after '" + std::string(transport) + "://'");
    }
    if (transport == "tcp" || transport == "ws" || transport == "wss" || transport == "pgm" ||
        transport == "epgm") {
        // host:port, [ipv6]:port, or a tcp "source;host:port"; ws may have a path after the port
        std::string_view hostport = rest;
        if (auto semi = hostport.rfind(';'); semi != std::string_view::npos) {
            hostport = hostport.substr(semi + 1);
        }
        if ((transport == "ws" || transport == "wss")) {
            if (auto slash = hostport.find('/'); slash != std::string_view::npos) {
                hostport = hostport.substr(0, slash);
            }
        }
        const auto colon = hostport.rfind(':');
        if (colon == std::string_view::npos) {
            bad(entry, "missing ':port' (write " + std::string(transport) + "://host:port, or " +
                           std::string(transport) + "://host:* for an ephemeral port)");
        }
        const auto host = hostport.substr(0, colon);
        if (host.empty()) {
            bad(entry, "missing host before ':' (use '*' to bind every interface)");
        }
        if (host.front() == '[' && host.back() != ']') {
            bad(entry, "unterminated IPv6 address '" + std::string(host) + "'");
        }
        check_port(entry, hostport.substr(colon + 1));
    }
}

// Before an ipc bind: the socket file's missing parent directories, mode 0750 (owner and group
// only: the directory decides who may reach the socket), as `mkdir -p` would. A recipe such as
// `--control ipc:///run/zmqkit/proxy.ctl` then works on a fresh machine. Abstract (`ipc://@name`)
// and wildcard (`ipc://*`) addresses have no directory.
void create_ipc_parents(const std::string& address) {
    constexpr std::string_view scheme = "ipc://";
    if (address.rfind(scheme, 0) != 0) {
        return;
    }
    const std::filesystem::path file(address.substr(scheme.size()));
    if (file.empty() || file.native().front() == '@' || file == "*" || !file.has_parent_path()) {
        return;
    }
    std::filesystem::path dir;
    for (const auto& part : file.parent_path()) {
        dir /= part;
        if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
            throw error("cannot bind to " + address + ": cannot create directory " + dir.string() +
                        ": " + std::strerror(errno));
        }
    }
}

} // namespace

std::string endpoint::to_string() const {
    return (action == endpoint_action::bind ? "@" : ">") + address;
}

std::vector<endpoint> parse_endpoints(std::string_view spec, endpoint_action default_action) {
    std::vector<endpoint> result;
    if (trim(spec).empty()) {
        throw endpoint_error("empty endpoint list: give at least one endpoint such as "
                             "'@tcp://*:5555' (bind) or '>tcp://127.0.0.1:5555' (connect)");
    }
    std::size_t start = 0;
    while (start <= spec.size()) {
        auto comma = spec.find(',', start);
        if (comma == std::string_view::npos) {
            comma = spec.size();
        }
        std::string_view entry = trim(spec.substr(start, comma - start));
        const std::string_view original = entry;
        if (entry.empty()) {
            throw endpoint_error("bad endpoint list '" + std::string(spec) +
                                 "': empty entry (two commas in a row, or a trailing comma)");
        }
        endpoint ep;
        ep.action = default_action;
        if (entry.front() == '@' || entry.front() == '>') {
            ep.action = entry.front() == '@' ? endpoint_action::bind : endpoint_action::connect;
            entry.remove_prefix(1);
            if (!entry.empty() && (entry.front() == '@' || entry.front() == '>')) {
                bad(original, "more than one '@'/'>' prefix");
            }
        }
        const auto scheme = entry.find("://");
        if (scheme == std::string_view::npos) {
            bad(original, "missing 'transport://' (e.g. tcp://127.0.0.1:5555, ipc:///tmp/sock, "
                          "inproc://name)");
        }
        const auto transport = entry.substr(0, scheme);
        bool known = false;
        for (auto t : known_transports) {
            known = known || t == transport;
        }
        if (!known) {
            bad(original, "unknown transport '" + std::string(transport) +
                              "' (known: tcp, ipc, inproc, pgm, epgm, vmci, ws, wss)");
        }
        check_address(original, transport, entry.substr(scheme + 3));
        ep.address = std::string(entry);
        result.push_back(std::move(ep));
        start = comma + 1;
    }
    return result;
}

std::vector<std::string> attach(zmq::socket_t& socket, std::string_view spec,
                                endpoint_action default_action) {
    std::vector<std::string> effective;
    for (const auto& ep : parse_endpoints(spec, default_action)) {
        try {
            if (ep.action == endpoint_action::bind) {
                create_ipc_parents(ep.address);
                socket.bind(ep.address);
                effective.push_back(socket.get(zmq::sockopt::last_endpoint));
            } else {
                socket.connect(ep.address);
                effective.push_back(ep.address);
            }
        } catch (const zmq::error_t& e) {
            throw error(std::string("cannot ") +
                        (ep.action == endpoint_action::bind ? "bind to " : "connect to ") +
                        ep.address + ": " + e.what());
        }
    }
    return effective;
}

} // namespace zmqkit
