#include <zmqkit/message.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

using namespace zmqkit;

namespace {
struct order {
    int id = 0;
    std::string customer;
    std::vector<double> amounts;
    MSGPACK_DEFINE_MAP(id, customer, amounts)
    friend bool operator==(const order&, const order&) = default;
};
} // namespace

TEST(message, bytes_body_is_kept_as_is) {
    const std::string payload("a\0b\nc", 5);
    message m{payload};
    EXPECT_EQ(m.body_view(), payload);
    EXPECT_TRUE(m.id().is_nil()) << "ids are assigned at send time";
}

TEST(message, typed_body_round_trips) {
    const order o{17, "acme", {1.5, 2.25}};
    auto m = message::pack(o);
    EXPECT_EQ(m.header().content_type, "application/msgpack");
    EXPECT_EQ(m.body_as<order>(), o);
    auto n = message::pack(std::map<std::string, int>{{"a", 1}, {"b", 2}});
    EXPECT_EQ((n.body_as<std::map<std::string, int>>()),
              (std::map<std::string, int>{{"a", 1}, {"b", 2}}));
}

TEST(message, body_of_the_wrong_type_is_a_clear_error) {
    auto m = message::pack(std::string("not a number"));
    EXPECT_THROW((void)m.body_as<int>(), body_type_error);
    message garbage{std::string("\xc1", 1)};
    try {
        (void)garbage.body_as<int>();
        FAIL();
    } catch (const body_type_error& e) {
        EXPECT_THAT(e.what(), ::testing::HasSubstr("not a msgpack value"));
    }
    message trailing{std::string("\x01\x02", 2)};
    EXPECT_THROW((void)trailing.body_as<int>(), body_type_error);
}

TEST(message, follow_up_keeps_the_conversation) {
    message first{"start"};
    first.header().stamp();
    first.header().traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    auto second = first.follow_up("step 2");
    auto third = second.follow_up_packed(42);
    EXPECT_NE(second.id(), first.id());
    EXPECT_EQ(second.correlation_id(), first.id()) << "first message starts the conversation";
    EXPECT_EQ(second.causation_id(), first.id());
    EXPECT_EQ(third.correlation_id(), first.id());
    EXPECT_EQ(third.causation_id(), second.id());
    EXPECT_EQ(third.header().traceparent, first.header().traceparent);
    EXPECT_EQ(third.body_as<int>(), 42);
    EXPECT_LT(first.id(), second.id()) << "time-ordered";
}

TEST(header, stamp_assigns_only_missing_fields) {
    header h;
    h.stamp();
    EXPECT_FALSE(h.id.is_nil());
    EXPECT_EQ(h.correlation_id, h.id);
    EXPECT_GT(h.timestamp_ns, 0U);
    const auto id = h.id;
    h.stamp();
    EXPECT_EQ(h.id, id) << "stamping twice keeps the id";
}

TEST(header, user_headers_set_and_find) {
    header h;
    h.set_user_header("tenant", "acme");
    h.set_user_header("tenant", "globex");
    h.set_user_header("region", "eu");
    ASSERT_NE(h.find_user_header("tenant"), nullptr);
    EXPECT_EQ(*h.find_user_header("tenant"), "globex");
    EXPECT_EQ(h.user_headers.size(), 2U);
    EXPECT_EQ(h.find_user_header("missing"), nullptr);
}
