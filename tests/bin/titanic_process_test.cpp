// Titanic (9/TSP) as real processes: zmqkit-proxy --mode mdp --titanic DIR, zmqkit-send
// --titanic (store, fetch) and zmqkit-worker. Requests stored while no worker exists survive a
// kill -9 of the proxy and are answered after the restart; a stored reply survives a kill -9
// before it is fetched (and is not run again); a damaged store file is reported in STATUS and
// skipped; exit codes and usage errors.
#include "support/process.hpp"
#include "support/testing.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>

using namespace zmqkit::testing;
using ::testing::HasSubstr;

namespace {

struct outcome {
    int code = -1;
    std::string out, err;
};

outcome run(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s) {
    child_process p(args);
    outcome o;
    o.code = p.wait(timeout).value_or(-1);
    o.out = p.stdout_text();
    o.err = p.stderr_text();
    return o;
}

outcome send(const std::vector<std::string>& args) {
    std::vector<std::string> argv{bin_path("zmqkit-send")};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

nlohmann::json titanic_status(zmq::context_t& ctx, const std::string& control) {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect(control);
    const auto reply = request(req, "STATUS", 10s);
    if (reply.empty()) {
        return {};
    }
    const auto j = nlohmann::json::parse(reply[0], nullptr, false);
    return j.is_object() && j.contains("titanic") ? j["titanic"] : nlohmann::json{};
}

std::unique_ptr<child_process> start_worker(const std::string& backend) {
    return std::make_unique<child_process>(
        std::vector<std::string>{bin_path("zmqkit-worker"), "--mdp", "--service", "upper",
                                 "--heartbeat-interval", "500ms", "--exec", "tr a-z A-Z", backend});
}

void kill_9(running_proxy& proxy) {
    proxy.process.signal(SIGKILL);
    ASSERT_TRUE(proxy.process.wait(10s));
}

struct titanic_proxy : running_proxy {
    explicit titanic_proxy(const std::filesystem::path& store)
        : running_proxy("mdp", {"--titanic", store.string(), "--heartbeat-interval", "500ms"}) {}
};

} // namespace

TEST(titanic_process, requests_stored_without_a_worker_survive_kill_9_of_the_proxy) {
    temp_directory dir("titanic-proc");
    const auto store = dir.path() / "store";
    std::vector<std::string> ids;
    {
        titanic_proxy proxy(store);
        ASSERT_FALSE(proxy.frontend.empty());
        const auto stored =
            send({"--titanic", "--service", "upper", "--data", "one\ntwo\nthree", proxy.frontend});
        ASSERT_EQ(stored.code, 0) << stored.err;
        ids = lines_of(stored.out);
        ASSERT_EQ(ids.size(), 3u) << stored.out;
        for (const auto& id : ids) {
            EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{32}"))) << id;
        }
        // No worker: pending (exit 75), and the request is on disk before its id was printed.
        const auto pending = send({"--titanic", "--fetch", ids[0], proxy.frontend});
        EXPECT_EQ(pending.code, 75) << pending.err;
        EXPECT_THAT(pending.err, HasSubstr("pending"));
        kill_9(proxy);
    }
    // A damaged file beside them, as a crash on another disk might leave one.
    std::ofstream(store / "0190163d8694739baea5966c26f8ad92.request") << "not a store file";

    titanic_proxy proxy(store);
    ASSERT_FALSE(proxy.frontend.empty());
    zmq::context_t ctx;
    const auto status = titanic_status(ctx, proxy.control);
    EXPECT_EQ(status["pending"], 3) << status.dump();
    EXPECT_EQ(status["corrupt"], 1) << status.dump();
    EXPECT_EQ(status["recovery"]["requests"], 3) << status.dump();
    auto worker = start_worker(proxy.backend);
    const std::vector<std::string> expected{"ONE", "TWO", "THREE"};
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto fetched =
            send({"--titanic", "--fetch", ids[i], "--wait", "--timeout", "30s", proxy.frontend});
        ASSERT_EQ(fetched.code, 0) << fetched.err;
        EXPECT_EQ(fetched.out, expected[i] + "\n");
    }
    // Fetched and closed: unknown now (exit 65).
    const auto again = send({"--titanic", "--fetch", ids[0], proxy.frontend});
    EXPECT_EQ(again.code, 65) << again.err;
    EXPECT_THAT(again.err, HasSubstr("does not know"));
    const auto after = titanic_status(ctx, proxy.control);
    EXPECT_EQ(after["pending"], 0) << after.dump();
    EXPECT_EQ(after["closed"], 3) << after.dump();
}

TEST(titanic_process, a_stored_reply_survives_kill_9_before_it_is_fetched) {
    temp_directory dir("titanic-proc");
    const auto store = dir.path() / "store";
    std::string id;
    {
        titanic_proxy proxy(store);
        ASSERT_FALSE(proxy.frontend.empty());
        auto worker = start_worker(proxy.backend);
        const auto stored =
            send({"--titanic", "--service", "upper", "--data", "hello", proxy.frontend});
        ASSERT_EQ(stored.code, 0) << stored.err;
        id = lines_of(stored.out).at(0);
        zmq::context_t ctx;
        ASSERT_TRUE(
            eventually([&] { return titanic_status(ctx, proxy.control)["replies"] == 1; }, 30s));
        kill_9(proxy);
        worker->signal(SIGKILL);
    }
    // No worker now: the reply can only come from the store.
    titanic_proxy proxy(store);
    ASSERT_FALSE(proxy.frontend.empty());
    const auto kept = send({"--titanic", "--fetch", id, "--keep", proxy.frontend});
    ASSERT_EQ(kept.code, 0) << kept.err;
    EXPECT_EQ(kept.out, "HELLO\n");
    const auto fetched = send({"--titanic", "--fetch", id, "-f", "hex", proxy.frontend});
    ASSERT_EQ(fetched.code, 0) << fetched.err;
    EXPECT_EQ(fetched.out, "48454c4c4f\n");
    EXPECT_EQ(send({"--titanic", "--fetch", id, proxy.frontend}).code, 65);
    zmq::context_t ctx;
    EXPECT_EQ(titanic_status(ctx, proxy.control)["dispatched"], 0);
}

TEST(titanic_process, usage_errors_name_the_problem) {
    const auto lb =
        run({bin_path("zmqkit-proxy"), "--mode", "lb", "--frontend", "tcp://127.0.0.1:*",
             "--backend", "tcp://127.0.0.1:*", "--titanic", "/tmp/x"});
    EXPECT_EQ(lb.code, 64);
    EXPECT_THAT(lb.err, HasSubstr("--titanic applies to --mode mdp only"));
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad{
        {{"--titanic", "tcp://127.0.0.1:5555"}, "--service NAME"},
        {{"--titanic", "--fetch", "nope", "tcp://127.0.0.1:5555"}, "32 hex digits"},
        {{"--titanic", "--service", "titanic.reply", "tcp://127.0.0.1:5555"}, "not one of"},
        {{"--titanic", "--mdp", "--service", "x", "tcp://127.0.0.1:5555"}, "not both"},
        {{"--fetch", "0190163d8694739baea5966c26f8ad92", "tcp://127.0.0.1:5555"},
         "--fetch applies to --titanic only"},
        {{"--titanic", "--service", "x", "--wait", "tcp://127.0.0.1:5555"}, "--fetch only"},
    };
    for (const auto& [args, why] : bad) {
        const auto o = send(args);
        EXPECT_EQ(o.code, 64) << ::testing::PrintToString(args);
        EXPECT_THAT(o.err, HasSubstr(why)) << ::testing::PrintToString(args);
    }
}
