#include <zmqkit/error.hpp>
#include <zmqkit/metrics.hpp>

#include <gtest/gtest.h>

#include <thread>
#include <vector>

using namespace zmqkit;

TEST(metrics, same_name_and_labels_is_the_same_counter) {
    metrics_registry reg;
    auto& a = reg.get_counter("zmqkit_test_total", "help", {{"socket", "in"}});
    auto& b = reg.get_counter("zmqkit_test_total", "help", {{"socket", "in"}});
    auto& c = reg.get_counter("zmqkit_test_total", "help", {{"socket", "out"}});
    EXPECT_EQ(&a, &b);
    EXPECT_NE(&a, &c);
}

TEST(metrics, prometheus_text_format) {
    metrics_registry reg;
    reg.get_counter("zmqkit_messages_total", "Messages seen", {{"socket", "in"}}).add(3);
    reg.get_gauge("zmqkit_queue_depth", "Messages waiting").set(-2);
    EXPECT_EQ(reg.prometheus_text(), "# HELP zmqkit_messages_total Messages seen\n"
                                     "# TYPE zmqkit_messages_total counter\n"
                                     "zmqkit_messages_total{socket=\"in\"} 3\n"
                                     "# HELP zmqkit_queue_depth Messages waiting\n"
                                     "# TYPE zmqkit_queue_depth gauge\n"
                                     "zmqkit_queue_depth -2\n");
    EXPECT_EQ(reg.json(),
              "{\"zmqkit_messages_total{socket=\\\"in\\\"}\":3,\"zmqkit_queue_depth\":-2}");
}

TEST(metrics, bad_names_and_kind_clashes_are_errors) {
    metrics_registry reg;
    EXPECT_THROW((void)reg.get_counter("9lives", ""), config_error);
    EXPECT_THROW((void)reg.get_counter("has space", ""), config_error);
    (void)reg.get_counter("zmqkit_x", "");
    EXPECT_THROW((void)reg.get_gauge("zmqkit_x", ""), config_error);
}

TEST(metrics, counters_are_safe_from_many_threads) {
    metrics_registry reg;
    auto& c = reg.get_counter("zmqkit_concurrent_total", "");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 100000; ++i) {
                c.add();
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(c.value(), 400000U);
}
