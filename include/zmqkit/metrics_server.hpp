// zmqkit — serving a metrics_registry over HTTP for Prometheus (and anyone with curl).
//
//     metrics_server server(metrics_registry::global(), {.listen = "127.0.0.1:9464"});
//     // GET http://127.0.0.1:9464/metrics -> the Prometheus text exposition (format 0.0.4)
//
// The server runs on its own threads (cpp-httplib underneath) and reads the registry's atomics
// at scrape time: the components that count never wait for it. What it serves:
//   /metrics  the registry, plus zmqkit_build_info, zmqkit_start_time_seconds and
//             zmqkit_uptime_seconds;
//   /status   the `status` callback's JSON, when one is given (zmqkit-proxy: the STATUS reply);
//   /         a short index naming both.
// Anything else is 404, any method but GET (and HEAD) 405. Every request is counted in
// zmqkit_metrics_http_requests_total{code}. Slow or hostile clients are bounded: a request must
// arrive within `io_timeout`, at most `threads` are served at once and `backlog` more wait;
// past that the acceptor serves one itself, so new connections wait in the kernel's queue
// rather than taking file descriptors from the process.
#pragma once

#include <zmqkit/export.hpp>
#include <zmqkit/metrics.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace zmqkit {

struct metrics_server_options {
    // "HOST:PORT": "127.0.0.1:9464", "[::1]:9464", "*:9464" or ":9464" (every IPv4 address),
    // "localhost:9464". Port 0 picks a free port (port() says which).
    std::string listen{};
    // A request's headers must arrive, and a response leave, within this.
    std::chrono::milliseconds io_timeout{2000};
    unsigned threads = 2;  // requests served at once
    unsigned backlog = 16; // accepted connections waiting for a thread
    // When set, GET /status returns its result as application/json (it runs on a server thread).
    std::function<std::string()> status{};
};

class ZMQKIT_API metrics_server {
public:
    // Binds and starts serving. Throws config_error for a malformed `listen`, endpoint_error
    // when the address cannot be bound (in use, not local).
    metrics_server(metrics_registry& registry, metrics_server_options options);
    // Stops accepting and waits for requests in progress: bounded by io_timeout.
    ~metrics_server();
    metrics_server(const metrics_server&) = delete;
    metrics_server& operator=(const metrics_server&) = delete;

    // The bound port (the one picked when `listen` asked for 0).
    [[nodiscard]] std::uint16_t port() const noexcept;
    // "http://HOST:PORT/metrics" with the host as given ("0.0.0.0" for "*" or "").
    [[nodiscard]] std::string url() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// "HOST:PORT" split into host and port, as metrics_server reads it ("[::1]:80" -> "::1", 80;
// "*:80" and ":80" -> "0.0.0.0", 80). Throws config_error naming what is wrong.
struct listen_address {
    std::string host;
    std::uint16_t port = 0;
};
[[nodiscard]] ZMQKIT_API listen_address parse_listen_address(std::string_view text);

} // namespace zmqkit
