// The device base (include/zmqkit/patterns/device.hpp) on a small device of the test's own: a
// PULL side that counts what arrives. What every real device gets from the base is pinned here:
// the control protocol and a device's extra command, STATUS composition, the drain deadline and
// its report, rate-limited malformed-input lines on an injected clock, reload.
#include <zmqkit/patterns/device.hpp>

#include "../../patterns/common/device_support.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <mutex>
#include <span>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

using namespace zmqkit;
using namespace zmqkit::testing;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

std::atomic<int> endpoint_counter{0};

std::string inproc(const std::string& what) {
    return "inproc://device-test-" + what + "-" + std::to_string(endpoint_counter.fetch_add(1));
}

// A device that reads one-frame messages: "bad" is malformed, "hold" is kept until the drain
// (which reports it dropped), anything else is counted. While it holds something its drain
// keeps reading until the deadline, so that a test sees the deadline end it.
class counting_device final : public patterns::device {
public:
    struct options {
        std::string input;
        std::string control;
        patterns::device_clock clock;
        patterns::device_log log;
        metrics_registry* registry = nullptr;
    };

    counting_device(zmq::context_t& context, const options& o)
        : device(context, "counting", settings_of(o)), input_spec_(o.input) {
        counters_ = device_counters::register_in(registry(), "counting", "nothing", "nothing");
        count_malformed_in(registry().get_counter("zmqkit_test_malformed_total", "Malformed",
                                                  {{"component", "counting"}}));
    }
    ~counting_device() override { stop(); }

    [[nodiscard]] std::uint64_t received() const noexcept { return received_.load(); }
    [[nodiscard]] std::uint64_t held() const noexcept { return held_.load(); }
    // A per-message event, as the real devices write them (the limiter is thread-safe).
    void event(std::string_view kind, std::string_view text, std::span<const log_field> fields) {
        log_event(log_level::warning, kind, text, fields);
    }

private:
    static patterns::device_settings settings_of(const options& o) {
        patterns::device_settings s;
        s.control = o.control;
        s.clock = o.clock;
        s.log = o.log;
        s.registry = o.registry;
        return s;
    }

    void open_sides() override {
        input_ = &open_side("frontend", zmq::socket_type::pull, input_spec_, nullptr, {});
        watch(*input_, [this] { read(); });
    }
    void read() {
        zmq::message_t m;
        while (input_->recv(m, zmq::recv_flags::dontwait)) {
            counters_.frontend_in->add();
            const auto text = m.to_string();
            if (text == "bad") {
                report_malformed("frontend", "it said bad");
            } else if (text == "hold") {
                ++held_;
            } else {
                ++received_;
            }
        }
    }
    void on_pause(bool paused) override { set_watch_enabled(*input_, !paused); }
    drain_report on_drain(time_point deadline) override {
        while (held_ > 0 && patterns::detail::before(deadline)) {
            if (patterns::detail::wait_for(*input_, ZMQ_POLLIN, deadline, 20ms)) {
                read();
            }
        }
        return drain_report{held_.load(), std::nullopt};
    }
    void add_status_head(patterns::detail::status_object& status) override {
        status.json["kind"] = "counting";
    }
    void add_status(patterns::detail::status_object& status) override {
        status.json["received"] = received_.load();
    }
    std::optional<std::vector<std::string>> on_extra_command(const std::string& cmd) override {
        if (cmd == "PING") {
            return std::vector<std::string>{"PONG"};
        }
        return std::nullopt;
    }
    std::vector<std::string> extra_commands() const override { return {"PING"}; }
    std::string on_reload() override { return "reloaded " + std::to_string(++reloads_); }

    std::string input_spec_;
    zmq::socket_t* input_ = nullptr;
    std::atomic<std::uint64_t> received_{0};
    std::atomic<std::uint64_t> held_{0};
    int reloads_ = 0;
};

// A device's log lines and its clock, both in the test's hands.
struct log_and_clock {
    std::mutex mutex;
    std::vector<std::string> lines;
    std::atomic<std::int64_t> now_ms{1'000'000};
    void attach(counting_device::options& o) {
        o.clock = [this] {
            return std::chrono::steady_clock::time_point(std::chrono::milliseconds(now_ms.load()));
        };
        o.log = [this](std::string_view line) {
            std::lock_guard lock(mutex);
            lines.emplace_back(line);
        };
    }
};

class device_fixture : public ::testing::Test {
protected:
    zmq::context_t ctx;
    metrics_registry registry;

    counting_device::options options(bool with_control = true) {
        counting_device::options o;
        o.input = inproc("input");
        if (with_control) {
            o.control = inproc("control");
        }
        o.registry = &registry;
        return o;
    }
    zmq::socket_t connect(zmq::socket_type type, const std::string& endpoint) {
        zmq::socket_t s(ctx, type);
        s.set(zmq::sockopt::linger, 0);
        s.connect(endpoint);
        return s;
    }
    // One request on the control socket, its reply frames (ASSERTs a reply within 5 s).
    std::vector<std::string> ask(zmq::socket_t& req, const std::string& command) {
        req.send(zmq::buffer(command));
        std::vector<std::string> frames;
        auto first = recv_within(req, 5s);
        EXPECT_TRUE(first) << command;
        if (!first) {
            return frames;
        }
        frames.push_back(first->to_string());
        bool more = first->more();
        while (more) {
            zmq::message_t m;
            (void)req.recv(m);
            frames.push_back(m.to_string());
            more = m.more();
        }
        return frames;
    }
    void send_text(zmq::socket_t& push, const std::string& text) {
        push.send(zmq::buffer(text), zmq::send_flags::none);
    }
};

TEST_F(device_fixture, answers_every_control_command_and_an_extra_one_through_the_hook) {
    auto o = options();
    counting_device dev(ctx, o);
    dev.start();
    EXPECT_EQ(dev.sides(), (std::vector<std::string>{"frontend", "control"}));
    ASSERT_EQ(dev.control_endpoints(), std::vector<std::string>{o.control});
    auto req = connect(zmq::socket_type::req, o.control);
    auto push = connect(zmq::socket_type::push, o.input);
    send_text(push, "one");
    ASSERT_TRUE(eventually([&] { return dev.received() == 1; }));

    EXPECT_EQ(ask(req, "PAUSE"), std::vector<std::string>{"OK"});
    EXPECT_TRUE(dev.paused());
    EXPECT_EQ(ask(req, "resume"), std::vector<std::string>{"OK"}); // case does not matter
    EXPECT_FALSE(dev.paused());
    const auto stats = proxy_statistics::from_frames(ask(req, "STATISTICS"));
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->frontend_messages_in, 1U);
    EXPECT_EQ(ask(req, "ping"), std::vector<std::string>{"PONG"});
    EXPECT_EQ(ask(req, "FLY"), std::vector<std::string>{"ERROR unknown command 'FLY' (known: "
                                                        "PAUSE, RESUME, TERMINATE, STATISTICS, "
                                                        "STATUS, PING)"});
    EXPECT_EQ(ask(req, "TERMINATE"), std::vector<std::string>{"OK"});
    EXPECT_TRUE(dev.wait_finished(10s));
    EXPECT_TRUE(dev.terminated());
    EXPECT_TRUE(dev.failure().empty()) << dev.failure();
}

TEST_F(device_fixture, status_is_one_json_object_with_the_base_members_around_the_device_part) {
    counting_device dev(ctx, options());
    EXPECT_EQ(dev.status_json(), "{}"); // not running: nobody to answer
    dev.start();
    auto push = connect(zmq::socket_type::push, dev.endpoints("frontend").at(0));
    send_text(push, "a");
    send_text(push, "b");
    ASSERT_TRUE(eventually([&] { return dev.received() == 2; }));
    ASSERT_TRUE(dev.pause());
    const auto status = nlohmann::ordered_json::parse(dev.status_json());
    std::vector<std::string> keys;
    for (const auto& [key, value] : status.items()) {
        keys.push_back(key);
    }
    EXPECT_EQ(keys, (std::vector<std::string>{"state", "name", "version", "libzmq", "started",
                                              "uptime_seconds", "kind", "statistics", "received",
                                              "connections"}));
    EXPECT_EQ(status["started"].get<std::string>().size(), 27u); // 2026-12-07T04:05:06.123456Z
    EXPECT_GE(status["uptime_seconds"].get<std::int64_t>(), 0);
    EXPECT_EQ(status["state"], "paused");
    EXPECT_EQ(status["statistics"]["frontend"]["messages_in"], 2);
    EXPECT_EQ(status["received"], 2);
    ASSERT_TRUE(dev.resume());
    EXPECT_THAT(dev.status_json(), HasSubstr("\"state\":\"running\""));
}

TEST_F(device_fixture, the_control_reply_to_status_is_the_same_document) {
    auto o = options();
    counting_device dev(ctx, o);
    dev.start();
    auto req = connect(zmq::socket_type::req, o.control);
    const auto reply = ask(req, "STATUS");
    ASSERT_EQ(reply.size(), 1U);
    EXPECT_EQ(reply[0], dev.status_json());
}

TEST_F(device_fixture, drain_ends_at_its_deadline_and_reports_what_it_held) {
    counting_device dev(ctx, options(false));
    dev.start();
    auto push = connect(zmq::socket_type::push, dev.endpoints("frontend").at(0));
    for (int i = 0; i < 3; ++i) {
        send_text(push, "hold");
    }
    ASSERT_TRUE(eventually([&] { return dev.held() == 3; }));
    const auto began = std::chrono::steady_clock::now();
    dev.stop(300ms);
    const auto took = std::chrono::steady_clock::now() - began;
    EXPECT_GE(took, 290ms);
    EXPECT_LT(took, 3s);
    const auto report = dev.drain_result();
    EXPECT_EQ(report.dropped, 3U);
    EXPECT_FALSE(report.remaining_in_spool);
}

TEST_F(device_fixture, malformed_input_is_counted_always_and_logged_once_a_second_of_its_clock) {
    log_and_clock captured;
    auto o = options(false);
    captured.attach(o);
    auto& mutex = captured.mutex;
    auto& lines = captured.lines;
    auto& now_ms = captured.now_ms;
    counting_device dev(ctx, o);
    dev.start();
    auto& malformed = registry.get_counter("zmqkit_test_malformed_total", "Malformed",
                                           {{"component", "counting"}});
    auto push = connect(zmq::socket_type::push, dev.endpoints("frontend").at(0));
    for (int i = 0; i < 3; ++i) {
        send_text(push, "bad");
    }
    ASSERT_TRUE(eventually([&] { return malformed.value() == 3; }));
    {
        std::lock_guard lock(mutex);
        ASSERT_EQ(lines.size(), 1U);
        EXPECT_EQ(lines[0], "dropped a malformed message on the frontend: it said bad");
    }
    now_ms += 999; // still within the second: counted, not logged
    send_text(push, "bad");
    ASSERT_TRUE(eventually([&] { return malformed.value() == 4; }));
    now_ms += 1;
    send_text(push, "bad");
    ASSERT_TRUE(eventually([&] { return malformed.value() == 5; }));
    std::lock_guard lock(mutex);
    ASSERT_EQ(lines.size(), 2U);
    EXPECT_EQ(lines[1], "dropped a malformed message on the frontend: it said bad (and 3 more "
                        "since the last report)");
}

TEST_F(device_fixture, per_message_events_carry_the_ids_and_are_rate_limited_per_kind) {
    log_and_clock captured;
    auto o = options(false);
    captured.attach(o);
    auto& mutex = captured.mutex;
    auto& lines = captured.lines;
    auto& now_ms = captured.now_ms;
    counting_device dev(ctx, o);
    header h = header::fresh();
    h.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const message_log_fields ids(h);
    ASSERT_EQ(ids.fields().size(), 3u);
    for (int i = 0; i < 25; ++i) {
        dev.event("dead_lettered", "dead-lettered: rejected by the consumer", ids);
    }
    dev.event("redelivered", "redelivering", ids); // another kind has its own budget
    now_ms += 1000;
    dev.event("dead_lettered", "dead-lettered: rejected by the consumer", ids);
    std::lock_guard lock(mutex);
    ASSERT_EQ(lines.size(), 22u);
    const std::string id_fields = " message_id=" + h.id.to_string() +
                                  " correlation_id=" + h.correlation_id.to_string() +
                                  " trace_id=4bf92f3577b34da6a3ce929d0e0e4736";
    EXPECT_EQ(lines[0], "dead-lettered: rejected by the consumer" + id_fields);
    EXPECT_EQ(lines[19], lines[0]);
    EXPECT_EQ(lines[20], "redelivering" + id_fields);
    EXPECT_EQ(lines[21],
              "dead-lettered: rejected by the consumer (5 similar lines suppressed)" + id_fields);
}

TEST_F(device_fixture, connections_are_logged_counted_and_listed_in_status_per_side) {
    std::mutex mutex;
    std::vector<std::string> lines;
    set_log_sink("counting.frontend", make_callback_sink([&](const log_record& r) {
                     std::lock_guard lock(mutex);
                     lines.emplace_back(std::string(to_string(r.level)) + " " +
                                        std::string(r.message));
                 }));
    auto o = options();
    o.input = "tcp://127.0.0.1:*";
    counting_device dev(ctx, o);
    dev.start();
    const auto endpoint = dev.endpoints("frontend").at(0);
    auto status = [&] { return nlohmann::json::parse(dev.status_json())["connections"]; };
    auto& connects = registry.get_counter("zmqkit_device_connects_total", "",
                                          {{"component", "counting"}, {"side", "frontend"}});
    auto& disconnects = registry.get_counter("zmqkit_device_disconnects_total", "",
                                             {{"component", "counting"}, {"side", "frontend"}});
    auto& open = registry.get_gauge("zmqkit_device_connections", "",
                                    {{"component", "counting"}, {"side", "frontend"}});
    EXPECT_EQ(status()["frontend"]["open"], 0);

    std::optional<zmq::socket_t> push = connect(zmq::socket_type::push, endpoint);
    send_text(*push, "a");
    ASSERT_TRUE(eventually([&] { return dev.received() == 1 && open.value() == 1; }));
    auto c = status();
    ASSERT_EQ(c["frontend"]["peers"].size(), 1u) << c.dump();
    const auto peer = c["frontend"]["peers"][0];
    const std::string address = peer["peer"];
    EXPECT_THAT(address, ::testing::StartsWith("127.0.0.1:"));
    EXPECT_EQ(peer["endpoint"], endpoint);
    EXPECT_EQ(peer["direction"], "accepted");
    EXPECT_EQ(peer["since"].get<std::string>().size(), 27u);
    EXPECT_EQ(c["frontend"]["open"], 1);
    EXPECT_EQ(c["frontend"]["connects"], 1);
    EXPECT_EQ(connects.value(), 1u);
    EXPECT_TRUE(c["control"]["peers"].empty()); // inproc: libzmq has no events for it

    push.reset();                                                      // the peer goes away
    ASSERT_TRUE(eventually([&] { return disconnects.value() == 1; })); // counted last
    EXPECT_EQ(open.value(), 0);
    c = status();
    EXPECT_EQ(c["frontend"]["open"], 0);
    EXPECT_EQ(c["frontend"]["disconnects"], 1);
    EXPECT_TRUE(c["frontend"]["peers"].empty());
    {
        std::lock_guard lock(mutex);
        ASSERT_EQ(lines.size(), 2u);
        EXPECT_EQ(lines[0], "info accepted " + address + " on " + endpoint);
        EXPECT_THAT(lines[1], ::testing::StartsWith("info disconnected " + address + " on " +
                                                    endpoint + " after "));
    }

    // A health probe: a TCP connect and close, no ZMTP. On a side without security that is a
    // connection like any other, not a failed security handshake (no warning, no counter).
    const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port =
        htons(static_cast<std::uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1))));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(probe, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
    ::close(probe);
    ASSERT_TRUE(eventually([&] { return disconnects.value() == 2; }));
    set_log_sink("counting.frontend", nullptr);
    std::lock_guard lock(mutex);
    ASSERT_EQ(lines.size(), 4u) << ::testing::PrintToString(lines);
    // (The probe may be gone before its address is read: then the line names the endpoint.)
    EXPECT_THAT(lines[2], ::testing::StartsWith("info accepted ")) << lines[2];
    EXPECT_THAT(lines[3], ::testing::ContainsRegex("^info (disconnected 127\\.0\\.0\\.1:[0-9]+|a "
                                                   "connection) on " +
                                                   std::string("tcp://127\\.0\\.0\\.1:")))
        << lines[3];
    EXPECT_EQ(metric_total(registry, "zmqkit_security_handshake_failures_total"), 0);
}

TEST_F(device_fixture, reload_runs_the_hook_on_the_device_thread) {
    counting_device dev(ctx, options(false));
    EXPECT_FALSE(dev.reload()); // not running
    dev.start();
    EXPECT_EQ(dev.reload(), std::optional<std::string>("reloaded 1"));
    EXPECT_EQ(dev.reload(), std::optional<std::string>("reloaded 2"));
}

} // namespace
