// 9/TSP (Titanic) on a 7/MDP broker, in-process with real sockets: the library client's round
// trip; a client written from the RFC's frames on a raw REQ socket; malformed TSP requests
// answered 400 + reason and counted while the server keeps serving; requests stored with no
// worker dispatched after the server restarts over its store; the store file format (every
// truncation and damaged byte rejected); damaged and unfinished store files set aside at open.
#include "patterns/titanic/titanic_store.hpp"

#include <zmqkit/patterns/majordomo.hpp>
#include <zmqkit/patterns/titanic.hpp>

#include "support/memory_file_system.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <future>

using namespace zmqkit;
using namespace zmqkit::patterns;
using namespace zmqkit::testing;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

using frames_t = std::vector<std::string>;

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

void write_bytes(const std::filesystem::path& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary);
    out << bytes;
}

std::string read_bytes(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct titanic_fixture : ::testing::Test {
    zmq::context_t ctx;
    metrics_registry registry;
    temp_directory dir{"titanic"};
    std::optional<mdp_broker> broker;
    std::optional<titanic> server;
    std::vector<std::unique_ptr<mdp_worker>> workers;
    mdp_worker* slow_worker = nullptr;

    // From the slow worker's handler: heartbeats while it blocks.
    void slow_keep_alive() {
        if (slow_worker != nullptr) {
            slow_worker->keep_alive();
        }
    }

    void start_broker() {
        mdp_broker_options o;
        o.frontend = "tcp://127.0.0.1:*";
        o.backend = "tcp://127.0.0.1:*";
        o.registry = &registry;
        o.sockets.registry = &registry;
        o.heartbeat_interval = 250ms;
        o.request_expiry = 0ms;
        broker.emplace(ctx, std::move(o));
        broker->start();
    }

    titanic_options server_options() {
        titanic_options o;
        o.directory = (dir.path() / "store").string();
        o.frontend = broker->frontend_endpoints().at(0);
        o.backend = broker->backend_endpoints().at(0);
        o.heartbeat_interval = 250ms;
        o.retry_interval = 50ms;
        o.registry = &registry;
        o.socket.registry = &registry;
        return o;
    }

    void start_server() {
        server.emplace(ctx, server_options());
        server->start();
        ASSERT_TRUE(services_ready());
    }

    // The three titanic.* services have their worker at the broker.
    bool services_ready() {
        return eventually(
            [&] {
                const auto s = broker->broker_stats();
                std::size_t ready = 0;
                for (const auto& sv : s ? s->services : std::vector<mdp_service_stats>{}) {
                    ready += sv.name.starts_with("titanic.") && sv.workers == 1 ? 1U : 0U;
                }
                return ready == 3;
            },
            10s);
    }

    void start_echo_worker(const std::string& service = "echo") {
        mdp_worker_options o;
        o.endpoint = broker->backend_endpoints().at(0);
        o.service = service;
        o.name = "echo";
        o.heartbeat_interval = 250ms;
        auto w = std::make_unique<mdp_worker>(ctx, std::move(o), [](const auto& body) {
            frames_t out;
            for (const auto& f : body) {
                out.push_back(upper(f));
            }
            return out;
        });
        w->start();
        workers.push_back(std::move(w));
    }

    titanic_client client() {
        titanic_client_options o;
        o.endpoint = broker->frontend_endpoints().at(0);
        o.timeout = 5s;
        o.attempts = 2;
        return titanic_client(ctx, std::move(o));
    }

    // titanic.reply until it says something other than 300 (bounded).
    titanic_reply reply_when_ready(titanic_client& c, const std::string& id) {
        titanic_reply last;
        EXPECT_TRUE(eventually(
            [&] {
                auto r = c.reply(id);
                if (!r) {
                    return false;
                }
                last = *r;
                return last.status != titanic_reply::state::pending;
            },
            15s));
        return last;
    }

    void TearDown() override {
        workers.clear();
        server.reset();
        broker.reset();
    }
};

// A raw REQ client: [MDPC01][service][frames...] -> the reply's frames after [MDPC01][service].
frames_t tsp_call(zmq::socket_t& req, const std::string& service, const frames_t& frames) {
    frames_t out{"MDPC01", service};
    out.insert(out.end(), frames.begin(), frames.end());
    send_frames(req, out);
    auto reply = recv_frames(req, 10s);
    EXPECT_GE(reply.size(), 3u) << "no TSP answer from " << service;
    if (reply.size() < 3) {
        return {};
    }
    EXPECT_EQ(reply[0], "MDPC01");
    EXPECT_EQ(reply[1], service);
    return {reply.begin() + 2, reply.end()};
}

// ---- the library
// ---------------------------------------------------------------------------------

TEST_F(titanic_fixture, library_round_trip_request_reply_close) {
    start_broker();
    start_server();
    start_echo_worker();
    auto c = client();
    const auto id = c.request("echo", {"hello", "world"});
    ASSERT_TRUE(id) << id.error() << ": " << id.reason();
    EXPECT_TRUE(tsp::valid_id(*id));
    const auto reply = reply_when_ready(c, *id);
    ASSERT_EQ(reply.status, titanic_reply::state::ok) << reply.text;
    EXPECT_EQ(reply.body, (frames_t{"HELLO", "WORLD"}));
    // titanic.reply is idempotent: the same answer until closed.
    const auto again = c.reply(*id);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->body, (frames_t{"HELLO", "WORLD"}));
    EXPECT_TRUE(c.close(*id));
    const auto gone = c.reply(*id);
    ASSERT_TRUE(gone);
    EXPECT_EQ(gone->status, titanic_reply::state::unknown);
    // Closing an unknown id is 200 too (the RFC).
    EXPECT_TRUE(c.close(*id));
    const auto s = server->stats();
    EXPECT_EQ(s.stored, 1u);
    EXPECT_EQ(s.replied, 1u);
    EXPECT_EQ(s.closed, 1u);
    EXPECT_EQ(s.pending, 0u);
    EXPECT_EQ(s.replies_held, 0u);
    EXPECT_EQ(metric_total(registry, "zmqkit_titanic_requests_stored_total"), 1);
    const auto status = nlohmann::json::parse(server->status_json());
    EXPECT_EQ(status["stored"], 1);
    EXPECT_EQ(status["closed"], 1);
}

TEST_F(titanic_fixture, a_request_waits_for_its_service_and_is_then_dispatched) {
    start_broker();
    start_server();
    auto c = client();
    const auto id = c.request("later", {"job"});
    ASSERT_TRUE(id);
    // No worker: pending, and asked again it stays pending (300).
    for (int i = 0; i < 3; ++i) {
        const auto r = c.reply(*id);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, titanic_reply::state::pending) << r->text;
    }
    EXPECT_EQ(server->stats().pending, 1u);
    EXPECT_EQ(server->stats().dispatched, 0u); // mmi.service said 404: never sent blind
    start_echo_worker("later");
    const auto reply = reply_when_ready(c, *id);
    ASSERT_EQ(reply.status, titanic_reply::state::ok) << reply.text;
    EXPECT_EQ(reply.body, frames_t{"JOB"});
}

TEST_F(titanic_fixture, pending_requests_are_dispatched_after_the_server_restarts) {
    start_broker();
    start_server();
    std::vector<std::string> ids;
    {
        auto c = client();
        for (int i = 0; i < 5; ++i) {
            auto id = c.request("echo", {"m" + std::to_string(i)});
            ASSERT_TRUE(id);
            ids.push_back(*id);
        }
    }
    server.reset(); // stopped with five requests on disk, none dispatched
    server.emplace(ctx, server_options());
    EXPECT_EQ(server->recovery().requests, 5u);
    EXPECT_EQ(server->recovery().pending, 5u);
    server->start();
    start_echo_worker();
    auto c = client();
    for (int i = 0; i < 5; ++i) {
        const auto reply = reply_when_ready(c, ids[static_cast<std::size_t>(i)]);
        ASSERT_EQ(reply.status, titanic_reply::state::ok) << reply.text;
        EXPECT_EQ(reply.body, frames_t{"M" + std::to_string(i)});
    }
}

TEST_F(titanic_fixture,
       a_reply_late_past_the_dispatch_timeout_is_dropped_and_the_request_goes_again) {
    start_broker();
    auto o = server_options();
    o.dispatch_timeout = 300ms;
    server.emplace(ctx, std::move(o));
    server->start();
    ASSERT_TRUE(services_ready());
    // A worker whose first call blocks until the test releases it (bounded), then answers.
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<int> calls{0};
    mdp_worker_options wo;
    wo.endpoint = broker->backend_endpoints().at(0);
    wo.service = "slow";
    wo.name = "slow";
    wo.heartbeat_interval = 250ms;
    auto slow = std::make_unique<mdp_worker>(ctx, std::move(wo), [&](const auto& body) {
        if (calls.fetch_add(1) == 0) {
            while (released.wait_for(50ms) != std::future_status::ready) {
                slow_keep_alive();
            }
        }
        return frames_t{"done:" + std::string(body.at(0))};
    });
    slow_worker = slow.get();
    slow->start();
    workers.push_back(std::move(slow));
    auto c = client();
    const auto id = c.request("slow", {"job"});
    ASSERT_TRUE(id);
    ASSERT_TRUE(eventually([&] { return server->stats().dispatch_timeouts >= 1; }, 10s));
    const auto pending = c.reply(*id);
    ASSERT_TRUE(pending);
    EXPECT_EQ(pending->status, titanic_reply::state::pending);
    release.set_value(); // the late reply goes to a socket the dispatcher closed: dropped
    const auto reply = reply_when_ready(c, *id);
    ASSERT_EQ(reply.status, titanic_reply::state::ok) << reply.text;
    EXPECT_EQ(reply.body, frames_t{"done:job"});
    EXPECT_GE(calls.load(), 2); // at-least-once: the worker ran it again
    EXPECT_GE(server->stats().dispatched, 2u);
    EXPECT_EQ(server->stats().replied, 1u);
}

// ---- a client from the RFC's text, raw frames
// ----------------------------------------------------

TEST_F(titanic_fixture, raw_tsp_client_from_the_rfc) {
    start_broker();
    start_server();
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(broker->frontend_endpoints().at(0));

    // titanic.request: [service][body...] -> [200][32 hex digits]
    const auto stored = tsp_call(req, "titanic.request", {"echo", "hello"});
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0], "200");
    const std::string id = stored[1];
    ASSERT_EQ(id.size(), 32u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdefABCDEF"), std::string::npos);

    // titanic.reply: [id] -> [300] while no worker has answered
    EXPECT_EQ(tsp_call(req, "titanic.reply", {id}), frames_t{"300"});

    // A plain 7/MDP client asks mmi.service, as the RFC's Titanic does
    EXPECT_EQ(tsp_call(req, "mmi.service", {"titanic.request"}), frames_t{"200"});

    start_echo_worker();
    frames_t reply;
    ASSERT_TRUE(eventually(
        [&] {
            reply = tsp_call(req, "titanic.reply", {id});
            return reply.empty() || reply[0] != "300";
        },
        15s));
    EXPECT_EQ(reply, (frames_t{"200", "HELLO"}));
    // Upper-case hex is the same id (the RFC allows either case)
    EXPECT_EQ(tsp_call(req, "titanic.reply", {upper(id)}), (frames_t{"200", "HELLO"}));

    // titanic.close: [id] -> [200]; then the id is unknown: [400]
    EXPECT_EQ(tsp_call(req, "titanic.close", {id}), frames_t{"200"});
    EXPECT_EQ(tsp_call(req, "titanic.reply", {id}), frames_t{"400"});
    EXPECT_EQ(tsp_call(req, "titanic.close", {id}), frames_t{"200"}); // idempotent
}

// ---- bad input
// ------------------------------------------------------------------------------------

TEST_F(titanic_fixture, malformed_tsp_requests_are_answered_400_and_counted) {
    start_broker();
    start_server();
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(broker->frontend_endpoints().at(0));
    const std::string garbage("\x00\xff\x01zz", 5);
    const std::vector<std::pair<std::string, frames_t>> bad{
        {"titanic.request", {"echo"}},                                // no body
        {"titanic.request", {"", "body"}},                            // empty service
        {"titanic.request", {"mmi.service", "echo"}},                 // the broker's namespace
        {"titanic.request", {"titanic.request", "x"}},                // Titanic's own
        {"titanic.request", {garbage, "body"}},                       // not printable
        {"titanic.reply", {"not-an-id"}},                             // not 32 hex digits
        {"titanic.reply", {std::string(32, 'g')}},                    // 32 chars, not hex
        {"titanic.reply", {"0123456789abcdef0123456789abcdef", "x"}}, // two frames
        {"titanic.close", {garbage}},                                 // garbage
        {"titanic.close", {""}},                                      // empty
    };
    for (const auto& [service, frames] : bad) {
        const auto answer = tsp_call(req, service, frames);
        ASSERT_EQ(answer.size(), 1u) << service;
        EXPECT_THAT(answer[0], StartsWith("400 malformed: ")) << service;
    }
    EXPECT_EQ(server->stats().malformed, bad.size());
    EXPECT_EQ(metric_total(registry, "zmqkit_titanic_malformed_total"),
              static_cast<std::int64_t>(bad.size()));
    EXPECT_EQ(server->stats().stored, 0u);
    // An unknown (well-formed) id is 400 without text, counted as unknown, not malformed.
    EXPECT_EQ(tsp_call(req, "titanic.reply", {"0123456789abcdef0123456789abcdef"}),
              frames_t{"400"});
    EXPECT_EQ(server->stats().unknown, 1u);
    // Still serving.
    const auto ok = tsp_call(req, "titanic.request", {"echo", "x"});
    ASSERT_EQ(ok.size(), 2u);
    EXPECT_EQ(ok[0], "200");
    // The library client reads a 400 as "refused".
    auto c = client();
    const auto refused = c.request("mmi.service", {"x"});
    ASSERT_TRUE(refused.is_failed());
    EXPECT_EQ(refused.error(), "refused");
    EXPECT_THAT(refused.reason(), HasSubstr("400"));
}

// ---- the store
// -----------------------------------------------------------------------------------

TEST(titanic_store_format, round_trip_and_every_damage_rejected) {
    namespace fmt = titanic_store_format;
    const frames_t frames{"echo", "", std::string("\x00\x01", 2), std::string(300, 'x')};
    const auto bytes = fmt::encode(fmt::kind::request, frames);
    std::string why;
    const auto back = fmt::decode(bytes, fmt::kind::request, why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(*back, frames);
    EXPECT_FALSE(fmt::decode(bytes, fmt::kind::reply, why)); // another kind
    EXPECT_THAT(why, HasSubstr("kind"));
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        EXPECT_FALSE(fmt::decode(std::string_view(bytes).substr(0, n), fmt::kind::request, why))
            << "truncated to " << n;
    }
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        auto damaged = bytes;
        damaged[i] = static_cast<char>(damaged[i] ^ 0x10);
        EXPECT_FALSE(fmt::decode(damaged, fmt::kind::request, why)) << "byte " << i;
    }
    EXPECT_FALSE(fmt::decode(bytes + "x", fmt::kind::request, why));
}

TEST(titanic_store, damaged_and_unfinished_files_are_set_aside_at_open) {
    namespace fmt = titanic_store_format;
    temp_directory dir("titanic-store");
    const std::string good = "0190163d8694739baea5966c26f8ad91";
    const std::string bad = "0190163d8694739baea5966c26f8ad92";
    const std::string bad_reply = "0190163d8694739baea5966c26f8ad93";
    write_bytes(dir.path() / (good + ".request"), fmt::encode(fmt::kind::request, {"s", "b"}));
    auto damaged = fmt::encode(fmt::kind::request, {"s", "b"});
    damaged[20] = 'X';
    write_bytes(dir.path() / (bad + ".request"), damaged);
    write_bytes(dir.path() / (bad_reply + ".request"), fmt::encode(fmt::kind::request, {"s", "c"}));
    write_bytes(dir.path() / (bad_reply + ".reply"), "ZKTSP001R\0\0\0 cut short");
    write_bytes(dir.path() / (good + ".reply.tmp"), "half a write");
    std::vector<std::string> lines;
    patterns::detail::titanic_store store(dir.path(),
                                          [&](std::string_view l) { lines.emplace_back(l); });
    const auto& r = store.recovery();
    EXPECT_EQ(r.requests, 2u);
    EXPECT_EQ(r.pending, 2u); // the damaged reply's request goes again
    EXPECT_EQ(r.replies, 0u);
    EXPECT_EQ(r.corrupt, 2u);
    EXPECT_EQ(r.temporaries, 1u);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_THAT(lines[0] + lines[1], HasSubstr("bad checksum"));
    EXPECT_TRUE(std::filesystem::exists(dir.path() / (bad + ".request.corrupt")));
    EXPECT_TRUE(std::filesystem::exists(dir.path() / (bad_reply + ".reply.corrupt")));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / (good + ".reply.tmp")));
    EXPECT_EQ(store.lookup(good), patterns::detail::titanic_store::state::pending);
    EXPECT_EQ(store.lookup(bad), patterns::detail::titanic_store::state::unknown);
    EXPECT_EQ(store.pending_after({}, 10), (frames_t{good, bad_reply}));

    // A reply damaged after it was stored: reported when read, the request pending again.
    ASSERT_TRUE(store.store_reply(good, {"R"}));
    EXPECT_EQ(store.lookup(good), patterns::detail::titanic_store::state::replied);
    auto reply_bytes = read_bytes(dir.path() / (good + ".reply"));
    reply_bytes.back() = static_cast<char>(reply_bytes.back() ^ 1);
    write_bytes(dir.path() / (good + ".reply"), reply_bytes);
    const auto damaged_reply = store.read_reply(good);
    EXPECT_TRUE(damaged_reply.is_failed());
    EXPECT_EQ(damaged_reply.error(), "corrupt");
    EXPECT_EQ(store.lookup(good), patterns::detail::titanic_store::state::pending);
    EXPECT_EQ(store.corrupt_count(), 3u);
    EXPECT_TRUE(store.close(good));
    EXPECT_FALSE(std::filesystem::exists(dir.path() / (good + ".request")));
}

// Power loss at every changing file operation (write, sync, create, rename, remove) while
// requests and replies are stored, torn or not: after the restart every request whose id was
// answered is there, every stored reply is there whole, and nothing is damaged (an unfinished
// write is a .tmp file, removed).
TEST(titanic_store, a_second_server_on_the_same_store_is_refused) {
    temp_directory dir("titanic-lock");
    patterns::detail::titanic_store first(dir.path(), [](std::string_view) {});
    try {
        patterns::detail::titanic_store second(dir.path(), [](std::string_view) {});
        ADD_FAILURE() << "two servers opened one store";
    } catch (const zmqkit::error& e) {
        EXPECT_NE(std::string(e.what()).find("in use by another process"), std::string::npos)
            << e.what();
    }
}

TEST(titanic_store, a_crash_at_any_point_loses_nothing_acknowledged_and_damages_nothing) {
    using store_t = patterns::detail::titanic_store;
    bool crashed = true;
    int points = 0;
    for (int ops = 1; crashed && ops <= 200; ++ops) {
        ++points;
        for (const bool torn : {false, true}) {
            SCOPED_TRACE("crash at operation " + std::to_string(ops) + (torn ? ", torn" : ""));
            memory_file_system fs(static_cast<std::uint64_t>(ops));
            std::vector<std::string> stored, replied;
            {
                store_t store("/titanic", {}, {}, &fs);
                fs.crash_after(ops, torn);
                for (int i = 0; i < 3 && !fs.frozen(); ++i) {
                    const auto id = store.store_request("svc", {"body" + std::to_string(i)});
                    if (!id) {
                        continue;
                    }
                    stored.push_back(*id);
                    if (store.store_reply(*id, {"reply" + std::to_string(i)})) {
                        replied.push_back(*id);
                    }
                }
                crashed = fs.frozen(); // false: the run ended first, every point is covered
            }
            fs.restart();
            store_t again("/titanic", {}, {}, &fs);
            EXPECT_EQ(again.recovery().corrupt, 0u)
                << ::testing::PrintToString(again.recovery().problems);
            for (const auto& id : stored) {
                EXPECT_NE(again.lookup(id), store_t::state::unknown) << id;
                const auto request = again.read_request(id);
                if (again.lookup(id) == store_t::state::pending) {
                    ASSERT_TRUE(request) << id;
                    EXPECT_EQ(request->at(0), "svc");
                }
            }
            for (std::size_t i = 0; i < replied.size(); ++i) {
                EXPECT_EQ(again.lookup(replied[i]), store_t::state::replied);
                const auto reply = again.read_reply(replied[i]);
                ASSERT_TRUE(reply) << replied[i];
                EXPECT_EQ(reply->size(), 1u);
            }
        }
    }
    // Three requests and three replies: six durable writes of several operations each.
    EXPECT_GT(points, 30);
    EXPECT_FALSE(crashed); // the last run had no crash: every point before it was covered
}

TEST_F(titanic_fixture, a_corrupt_store_file_is_reported_and_skipped_by_the_server) {
    namespace fmt = titanic_store_format;
    start_broker();
    const auto store = dir.path() / "store";
    std::filesystem::create_directories(store);
    const std::string good = "0190163d8694739baea5966c26f8ad91";
    write_bytes(store / (good + ".request"), fmt::encode(fmt::kind::request, {"echo", "ok"}));
    write_bytes(store / "0190163d8694739baea5966c26f8ad92.request", "garbage");
    std::vector<std::string> lines;
    std::mutex m;
    auto o = server_options();
    o.log = [&](std::string_view l) {
        const std::lock_guard lock(m);
        lines.emplace_back(l);
    };
    server.emplace(ctx, std::move(o));
    server->start();
    ASSERT_TRUE(services_ready());
    EXPECT_EQ(server->stats().corrupt, 1u);
    EXPECT_EQ(metric_total(registry, "zmqkit_titanic_corrupt_files_total"), 1);
    {
        const std::lock_guard lock(m);
        ASSERT_FALSE(lines.empty());
        EXPECT_THAT(lines[0], HasSubstr("0190163d8694739baea5966c26f8ad92.request is damaged"));
    }
    start_echo_worker();
    auto c = client();
    const auto reply = reply_when_ready(c, good);
    ASSERT_EQ(reply.status, titanic_reply::state::ok) << reply.text;
    EXPECT_EQ(reply.body, frames_t{"OK"});
}

} // namespace
