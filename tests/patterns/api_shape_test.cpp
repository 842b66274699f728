// The public API's shape (docs/architecture.md, "Public API and targets"): handles move, their
// destructors and moves never throw, actors do not move, result<T> reads like std::optional.
#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/patterns/majordomo.hpp>
#include <zmqkit/patterns/pipeline.hpp>
#include <zmqkit/patterns/pubsub.hpp>
#include <zmqkit/patterns/titanic.hpp>
#include <zmqkit/result.hpp>
#include <zmqkit/socket.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace zmqkit;
using namespace zmqkit::patterns;

namespace {

template <class T>
constexpr bool movable_handle =
    std::is_nothrow_move_constructible_v<T>&& std::is_nothrow_move_assignable_v<T>&&
        std::is_nothrow_destructible_v<T> &&
    !std::is_copy_constructible_v<T>;

static_assert(movable_handle<zmqkit::socket>);
static_assert(movable_handle<lb_client>);
static_assert(movable_handle<mdp_client>);
static_assert(movable_handle<titanic_client>);
static_assert(movable_handle<reliable_sender>);
static_assert(movable_handle<reliable_receiver>);
static_assert(std::is_nothrow_move_constructible_v<source>);
static_assert(std::is_nothrow_move_constructible_v<sink>);
// Components on their own thread hold `this` there: they do not move.
static_assert(!std::is_move_constructible_v<lb_worker>);
static_assert(!std::is_move_constructible_v<mdp_worker>);
static_assert(!std::is_move_constructible_v<load_balancer>);
static_assert(!std::is_move_constructible_v<titanic>);

TEST(api_shape, clients_move_and_close_without_throwing_with_no_broker_there) {
    zmq::context_t ctx;
    lb_client_options lo;
    lo.endpoint = "tcp://127.0.0.1:1"; // nothing listens: connects stay pending
    lb_client a(ctx, lo);
    lb_client b(std::move(a));
    lb_client c(ctx, lo);
    c = std::move(b); // closes c's own socket first
    EXPECT_EQ(c.pending(), 0u);

    mdp_client_options mo;
    mo.endpoint = "tcp://127.0.0.1:1";
    mo.timeout = 10ms;
    mo.attempts = 1;
    mdp_client m(ctx, mo);
    mdp_client n(std::move(m));
    const auto r = n.call("echo", {"x"}); // nobody answers: failed, with the reason
    EXPECT_FALSE(r);
    EXPECT_TRUE(r.is_failed());
    EXPECT_EQ(r.error(), "timeout");
    EXPECT_NE(r.reason().find("after 1 sends"), std::string::npos) << r.reason();

    titanic_client_options to;
    to.endpoint = "tcp://127.0.0.1:1";
    to.timeout = 10ms;
    to.attempts = 1;
    titanic_client t(ctx, to);
    titanic_client u(std::move(t));
    const auto stored = u.request("echo", {"x"});
    EXPECT_TRUE(stored.is_failed());
    EXPECT_EQ(stored.error(), "timeout");
    // a, b, m and t are moved from: destroying them must not touch a socket (nor throw).
}

TEST(api_shape, result_reads_like_optional_and_says_why_otherwise) {
    result<std::string> done(std::string("200"));
    ASSERT_TRUE(done);
    EXPECT_TRUE(done.has_value());
    EXPECT_EQ(*done, "200");
    EXPECT_EQ(done->size(), 3u);
    EXPECT_EQ(done.state(), result_state::done);
    EXPECT_TRUE(done == std::string("200"));
    EXPECT_TRUE(done == std::optional<std::string>("200"));

    const result<std::string> nothing;
    EXPECT_FALSE(nothing);
    EXPECT_TRUE(nothing.is_nothing());
    EXPECT_FALSE(nothing == std::string("200"));
    EXPECT_THROW((void)nothing.value(), std::bad_optional_access);

    const auto failed = result<int>::failed("busy", "too many requests waiting");
    EXPECT_EQ(failed.state(), result_state::failed);
    EXPECT_EQ(failed.error(), "busy");
    EXPECT_EQ(failed.reason(), "too many requests waiting");
}

} // namespace
