// Histograms and scaled metrics in the exposition, and the metrics server as an HTTP client
// (and a hostile one) sees it: /metrics, /status, 404, 405, huge headers, garbage, slow
// partial requests, a port in use.
#include <zmqkit/error.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/metrics_server.hpp>

#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

using namespace zmqkit;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

// A raw TCP connection to 127.0.0.1:port (the hostile client); closed with the object.
class raw_connection {
public:
    explicit raw_connection(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        timeval tv{5, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~raw_connection() { ::close(fd_); }
    raw_connection(const raw_connection&) = delete;
    raw_connection& operator=(const raw_connection&) = delete;

    [[nodiscard]] bool connected() const noexcept { return ok_; }
    bool send(const std::string& bytes) {
        return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(bytes.size());
    }
    // What the server answered before closing (or within the receive timeout).
    std::string read_all() {
        std::string out;
        char buf[4096];
        for (;;) {
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) {
                return out;
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
    }

private:
    int fd_;
    bool ok_ = false;
};

httplib::Result get(std::uint16_t port, const std::string& path) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(5, 0);
    client.set_read_timeout(5, 0);
    return client.Get(path);
}

} // namespace

TEST(metrics_histogram, renders_cumulative_buckets_sum_and_count) {
    metrics_registry reg;
    auto& h = reg.get_histogram("zmqkit_rtt_seconds", "Round trips", {0.1, 1}, {{"side", "a"}});
    h.observe(0.05);
    h.observe(0.1); // le is inclusive
    h.observe(0.5);
    h.observe(30.0);
    EXPECT_EQ(reg.prometheus_text(), "# HELP zmqkit_rtt_seconds Round trips\n"
                                     "# TYPE zmqkit_rtt_seconds histogram\n"
                                     "zmqkit_rtt_seconds_bucket{le=\"0.1\",side=\"a\"} 2\n"
                                     "zmqkit_rtt_seconds_bucket{le=\"1\",side=\"a\"} 3\n"
                                     "zmqkit_rtt_seconds_bucket{le=\"+Inf\",side=\"a\"} 4\n"
                                     "zmqkit_rtt_seconds_sum{side=\"a\"} 30.65\n"
                                     "zmqkit_rtt_seconds_count{side=\"a\"} 4\n");
    EXPECT_EQ(reg.json(), "{\"zmqkit_rtt_seconds_count{side=\\\"a\\\"}\":4,"
                          "\"zmqkit_rtt_seconds_sum{side=\\\"a\\\"}\":30.65}");
    const auto snap = h.collect();
    EXPECT_EQ(snap.cumulative, (std::vector<std::uint64_t>{2, 3, 4}));
}

TEST(metrics_histogram, durations_are_seconds_and_default_buckets_cover_latencies) {
    metrics_registry reg;
    auto& h = reg.get_histogram("zmqkit_wait_seconds", "Waits");
    h.observe(std::chrono::milliseconds(3));
    const auto snap = h.collect();
    EXPECT_EQ(snap.upper_bounds, histogram::latency_buckets());
    EXPECT_DOUBLE_EQ(snap.sum, 0.003);
    EXPECT_THAT(reg.prometheus_text(), HasSubstr("zmqkit_wait_seconds_bucket{le=\"0.0025\"} 0\n"
                                                 "zmqkit_wait_seconds_bucket{le=\"0.005\"} 1\n"));
}

TEST(metrics_histogram, bad_buckets_and_clashes_are_errors) {
    metrics_registry reg;
    EXPECT_THROW(histogram({1, 1}), config_error);
    EXPECT_THROW(histogram({2, 1}), config_error);
    EXPECT_THROW(histogram({std::numeric_limits<double>::infinity()}), config_error);
    EXPECT_THROW((void)reg.get_histogram("zmqkit_h", "", {1}, {{"le", "x"}}), config_error);
    (void)reg.get_counter("zmqkit_c_total", "");
    EXPECT_THROW((void)reg.get_histogram("zmqkit_c_total", ""), config_error);
}

TEST(metrics_histogram, observations_from_many_threads_all_count) {
    metrics_registry reg;
    auto& h = reg.get_histogram("zmqkit_many_seconds", "", {0.5});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&h, t] {
            for (int i = 0; i < 50000; ++i) {
                h.observe(t % 2 == 0 ? 0.25 : 1.0);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    const auto snap = h.collect();
    EXPECT_EQ(snap.count, 200000U);
    EXPECT_EQ(snap.cumulative[0], 100000U);
    EXPECT_DOUBLE_EQ(snap.sum, 100000 * 0.25 + 100000 * 1.0);
}

TEST(metrics_scale, counted_in_small_units_shown_in_base_units) {
    metrics_registry reg;
    reg.get_counter("zmqkit_busy_seconds_total", "Busy", {}, 1e-9).add(1'500'000'000);
    reg.get_gauge("zmqkit_age_seconds", "Age", {}, 1e-3).set(250);
    EXPECT_THAT(reg.prometheus_text(), HasSubstr("zmqkit_busy_seconds_total 1.5\n"));
    EXPECT_THAT(reg.prometheus_text(), HasSubstr("zmqkit_age_seconds 0.25\n"));
    EXPECT_EQ(reg.json(), "{\"zmqkit_age_seconds\":0.25,\"zmqkit_busy_seconds_total\":1.5}");
}

TEST(metrics_listen_address, forms_users_write) {
    EXPECT_EQ(parse_listen_address("127.0.0.1:9464").host, "127.0.0.1");
    EXPECT_EQ(parse_listen_address("127.0.0.1:9464").port, 9464);
    EXPECT_EQ(parse_listen_address(":9464").host, "0.0.0.0");
    EXPECT_EQ(parse_listen_address("*:0").host, "0.0.0.0");
    EXPECT_EQ(parse_listen_address("*:0").port, 0);
    EXPECT_EQ(parse_listen_address("[::1]:80").host, "::1");
    EXPECT_EQ(parse_listen_address("localhost:80").host, "localhost");
    for (const char* bad : {"9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "1.2.3.4:x1",
                            "::1:80", "[]:80", "host:-1"}) {
        EXPECT_THROW((void)parse_listen_address(bad), config_error) << bad;
    }
}

TEST(metrics_server, serves_the_registry_with_build_info_and_uptime) {
    metrics_registry reg;
    auto& c = reg.get_counter("zmqkit_things_total", "Things", {{"component", "t"}});
    c.add(42);
    metrics_server server(reg, {.listen = "127.0.0.1:0"});
    ASSERT_GT(server.port(), 0);
    EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics");
    const auto res = get(server.port(), "/metrics");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_THAT(res->body, HasSubstr("zmqkit_things_total{component=\"t\"} 42\n"));
    EXPECT_THAT(res->body, HasSubstr("# TYPE zmqkit_build_info gauge\nzmqkit_build_info{libzmq="));
    EXPECT_THAT(res->body, HasSubstr("zmqkit_uptime_seconds "));
    // Counted when they happen, read at scrape time.
    c.add(8);
    EXPECT_THAT(get(server.port(), "/metrics")->body,
                HasSubstr("zmqkit_things_total{component=\"t\"} 50\n"));
    // The two scrapes before this one are counted (each once it has been written, so the
    // last may still be in flight when its client reads it: wait for it, bounded).
    std::string body;
    EXPECT_TRUE(zmqkit::testing::eventually([&] {
        body = get(server.port(), "/metrics")->body;
        const std::string key = "zmqkit_metrics_http_requests_total{code=\"200\"} ";
        const auto at = body.find(key);
        return at != std::string::npos && std::stoi(body.substr(at + key.size())) >= 2;
    })) << body;
}

TEST(metrics_server, status_index_wrong_paths_and_methods) {
    metrics_registry reg;
    metrics_server with_status(reg, {.listen = "127.0.0.1:0", .status = [] {
                                         return std::string(R"({"state":"running"})");
                                     }});
    auto res = get(with_status.port(), "/status");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, R"({"state":"running"})");
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    EXPECT_THAT(get(with_status.port(), "/")->body, HasSubstr("/status"));
    EXPECT_EQ(get(with_status.port(), "/metricsx")->status, 404);
    EXPECT_EQ(get(with_status.port(), "/../etc/passwd")->status, 404);

    httplib::Client client("127.0.0.1", with_status.port());
    client.set_read_timeout(5, 0);
    const auto post = client.Post("/metrics", "x", "text/plain");
    ASSERT_TRUE(post);
    EXPECT_EQ(post->status, 405);
    EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");

    metrics_server without_status(reg, {.listen = "127.0.0.1:0"});
    EXPECT_EQ(get(without_status.port(), "/status")->status, 404);
    // An answer is counted once it has been written (httplib's logger), so the last 404 may
    // still be uncounted when the client reads it: wait for it, bounded.
    std::string body;
    EXPECT_TRUE(zmqkit::testing::eventually([&] {
        body = get(with_status.port(), "/metrics")->body;
        return body.find("zmqkit_metrics_http_requests_total{code=\"404\"} 3\n") !=
               std::string::npos;
    })) << body;
}

TEST(metrics_server, a_port_in_use_or_an_address_not_here_is_an_endpoint_error) {
    metrics_registry reg;
    metrics_server first(reg, {.listen = "127.0.0.1:0"});
    try {
        metrics_server second(reg, {.listen = "127.0.0.1:" + std::to_string(first.port())});
        FAIL() << "bound a port already in use";
    } catch (const endpoint_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("cannot listen for metrics on 127.0.0.1:"));
    }
    // 192.0.2.0/24 is TEST-NET-1: never an address of this host (bind fails, nothing is sent).
    EXPECT_THROW(metrics_server(reg, {.listen = "192.0.2.1:0"}), endpoint_error);
    EXPECT_THROW(metrics_server(reg, {.listen = "nonsense"}), config_error);
}

TEST(metrics_server, garbage_and_huge_headers_get_errors_and_the_server_keeps_serving) {
    metrics_registry reg;
    metrics_server server(reg, {.listen = "127.0.0.1:0", .io_timeout = 500ms});
    {
        raw_connection garbage(server.port());
        ASSERT_TRUE(garbage.connected());
        ASSERT_TRUE(garbage.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) +
                                 "\r\n\r\n"));
        EXPECT_THAT(garbage.read_all(), StartsWith("HTTP/1.1 400"));
    }
    {
        raw_connection huge(server.port());
        ASSERT_TRUE(huge.connected());
        std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ";
        request += std::string(64 * 1024, 'a');
        request += "\r\n\r\n";
        (void)huge.send(request); // the server may close before it is all written
        const auto answer = huge.read_all();
        EXPECT_THAT(answer, ::testing::Not(HasSubstr("zmqkit_build_info"))) << answer;
    }
    {
        raw_connection long_uri(server.port());
        ASSERT_TRUE(long_uri.connected());
        (void)long_uri.send("GET /" + std::string(100 * 1024, 'u') + " HTTP/1.1\r\n\r\n");
        EXPECT_THAT(long_uri.read_all(), ::testing::Not(HasSubstr("zmqkit_build_info")));
    }
    const auto res = get(server.port(), "/metrics");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_THAT(res->body, HasSubstr("zmqkit_metrics_http_requests_total{code=\"400\"}"));
}

TEST(metrics_server, slow_partial_requests_time_out_and_never_hold_up_the_counting) {
    metrics_registry reg;
    auto& c = reg.get_counter("zmqkit_work_total", "Work");
    metrics_server server(reg, {.listen = "127.0.0.1:0", .io_timeout = 300ms});
    // More slow clients than threads + backlog: each sends half a request line and stops.
    std::vector<std::unique_ptr<raw_connection>> slow;
    for (int i = 0; i < 40; ++i) {
        slow.push_back(std::make_unique<raw_connection>(server.port()));
        (void)slow.back()->send("GET /metr");
    }
    // The component counting on its own thread is never blocked by the server.
    std::atomic<bool> done{false};
    std::thread worker([&] {
        for (int i = 0; i < 100000; ++i) {
            c.add();
        }
        done = true;
    });
    worker.join();
    EXPECT_TRUE(done.load());
    // Each slow request is cut at the timeout; then a scrape gets through (bounded wait).
    ASSERT_TRUE(zmqkit::testing::eventually(
        [&] {
            const auto res = get(server.port(), "/metrics");
            return res && res->status == 200 &&
                   res->body.find("zmqkit_work_total 100000\n") != std::string::npos;
        },
        30s));
    for (auto& s : slow) {
        EXPECT_EQ(s->read_all(), "") << "a partial request is closed without an answer";
    }
}

TEST(metrics_server, stopping_with_clients_connected_is_bounded) {
    metrics_registry reg;
    auto server = std::make_unique<metrics_server>(
        reg, metrics_server_options{.listen = "127.0.0.1:0", .io_timeout = 300ms});
    std::vector<std::unique_ptr<raw_connection>> slow;
    for (int i = 0; i < 5; ++i) {
        slow.push_back(std::make_unique<raw_connection>(server->port()));
        (void)slow.back()->send("GET / HTTP/1.1\r\n");
    }
    const auto t0 = std::chrono::steady_clock::now();
    server.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s)
        << "the destructor waits at most for the requests in progress (io_timeout each)";
}
