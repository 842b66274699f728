#include <zmqkit/patterns/pubsub.hpp>

#include <zmqkit/error.hpp>

#include "../common/device_support.hpp"

#include <algorithm>
#include <set>

using namespace std::chrono_literals;

namespace zmqkit::patterns {
namespace {

void apply(zmq::socket_t& s, const socket_options& o) {
    s.set(zmq::sockopt::linger, static_cast<int>(std::max<std::int64_t>(0, o.linger.count())));
    s.set(zmq::sockopt::sndhwm, o.send_hwm);
    s.set(zmq::sockopt::rcvhwm, o.recv_hwm);
}

} // namespace

consumer_groups::consumer_groups(zmq::context_t& context, consumer_groups_options options)
    : actor(context, options.name), options_(std::move(options)),
      monitors_(std::make_unique<detail::side_monitors>()) {
    detail::refuse_shared_security(options_.sockets, "consumer_groups '" + options_.name + "'",
                                   "frontend_security (the input) and backend_security (the "
                                   "groups)");
    if (options_.input.empty()) {
        throw config_error("consumer_groups '" + options_.name +
                           "': an input endpoint is required");
    }
    if (options_.groups.empty()) {
        throw config_error("consumer_groups '" + options_.name + "': at least one group is needed");
    }
    (void)parse_endpoints(options_.input, endpoint_action::connect);
    std::set<std::string> names;
    for (const auto& g : options_.groups) {
        if (g.name.empty() || g.endpoints.empty() || !names.insert(g.name).second) {
            throw config_error("consumer_groups '" + options_.name +
                               "': every group needs a distinct name and endpoints");
        }
        (void)parse_endpoints(g.endpoints, endpoint_action::bind);
    }
    options_.batch = std::max<std::size_t>(1, options_.batch);
    auto& reg = options_.registry != nullptr ? *options_.registry : metrics_registry::global();
    received_ = &reg.get_counter("zmqkit_consumer_groups_received_total", "Publications received",
                                 {{"component", options_.name}});
    for (const auto& g : options_.groups) {
        delivered_.push_back(&reg.get_counter("zmqkit_consumer_groups_delivered_total",
                                              "Publications handed to a group",
                                              {{"component", options_.name}, {"group", g.name}}));
    }
    frames_.reserve(8);
}

consumer_groups::~consumer_groups() {
    stop();
}

void consumer_groups::setup() {
    input_.emplace(context(), zmq::socket_type::sub);
    apply(*input_, options_.sockets);
    monitors_->watch(context(), *input_, options_.frontend_security, options_.name, "frontend",
                     options_.registry);
    for (const auto& topic : options_.topics) {
        input_->set(zmq::sockopt::subscribe, topic);
    }
    auto in = attach(*input_, options_.input, endpoint_action::connect);
    std::vector<std::vector<std::string>> out;
    outputs_.reserve(options_.groups.size()); // the monitors hold on to the sockets
    for (const auto& g : options_.groups) {
        auto& s = outputs_.emplace_back(context(), zmq::socket_type::push);
        apply(s, options_.sockets);
        monitors_->watch(context(), s, options_.backend_security, options_.name,
                         "backend." + g.name, options_.registry);
        out.push_back(attach(s, g.endpoints, endpoint_action::bind));
    }
    {
        std::lock_guard lock(endpoints_mutex_);
        input_endpoints_ = std::move(in);
        group_endpoints_ = std::move(out);
    }
    watch(*input_, [this] { pump(); });
    for (auto& s : outputs_) {
        // A group without room stops the flow until it has room again.
        watch(
            s, ZMQ_POLLOUT,
            [this, &s] {
                set_watch_enabled(s, ZMQ_POLLOUT, false);
                if (push_pending()) {
                    set_watch_enabled(*input_, true);
                    pump();
                }
            },
            false);
    }
}

// Sends the current message to groups [next_group_, n). False when a group has no room (the
// message stays; that group's POLLOUT resumes).
bool consumer_groups::push_pending() {
    while (next_group_ < outputs_.size()) {
        auto& out = outputs_[next_group_];
        bool sent = false;
        for (std::size_t i = 0; i < frame_count_; ++i) {
            zmq::message_t copy;
            copy.copy(frames_[i]);
            const auto flags =
                (i + 1 < frame_count_ ? zmq::send_flags::sndmore : zmq::send_flags::none) |
                (i == 0 ? zmq::send_flags::dontwait : zmq::send_flags::none);
            if (!out.send(copy, flags)) {
                break; // only the first frame can be refused
            }
            sent = i + 1 == frame_count_;
        }
        if (!sent) {
            set_watch_enabled(*input_, false);
            set_watch_enabled(out, ZMQ_POLLOUT, true);
            return false;
        }
        delivered_[next_group_]->add();
        ++next_group_;
    }
    frame_count_ = 0;
    next_group_ = 0;
    return true;
}

void consumer_groups::pump() {
    for (std::size_t n = 0; n < options_.batch; ++n) {
        if (frame_count_ > 0 && !push_pending()) {
            return;
        }
        bool more = true;
        while (more) {
            if (frame_count_ == frames_.size()) {
                frames_.emplace_back();
            }
            if (!input_->recv(frames_[frame_count_], frame_count_ == 0 ? zmq::recv_flags::dontwait
                                                                       : zmq::recv_flags::none)) {
                break;
            }
            more = frames_[frame_count_].more();
            ++frame_count_;
        }
        if (frame_count_ == 0) {
            return;
        }
        received_->add();
        if (!push_pending()) {
            return;
        }
    }
}

void consumer_groups::teardown() noexcept {
    monitors_->clear();
    input_.reset();
    outputs_.clear();
}

std::vector<std::vector<std::string>> consumer_groups::group_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return group_endpoints_;
}

std::vector<std::string> consumer_groups::input_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return input_endpoints_;
}

std::uint64_t consumer_groups::delivered(std::size_t group) const {
    return group < delivered_.size() ? delivered_[group]->value() : 0;
}

consumer_group_member::consumer_group_member(zmq::context_t& context, std::string_view endpoints,
                                             socket_options options)
    : socket_(context, zmq::socket_type::pull, std::move(options)) {
    if (!endpoints.empty()) {
        attach(endpoints);
    }
    frames_.resize(4);
}

std::optional<publication> consumer_group_member::recv(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto& s = socket_.raw();
    for (;;) {
        zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (zmq::poll(&item, 1, std::max(left, 0ms)) == 0) {
            return std::nullopt;
        }
        std::size_t count = 0;
        bool more = true;
        while (more) {
            if (count == frames_.size()) {
                frames_.emplace_back();
            }
            if (!s.recv(frames_[count],
                        count == 0 ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) {
                break;
            }
            more = frames_[count].more();
            ++count;
        }
        if (count == 0) {
            continue;
        }
        publication p;
        if (decode_frames(frames_, count, frame_layout::topic, p.message, &p.topic).ok()) {
            socket_.counters().messages_received->add();
            return p;
        }
        socket_.counters().decode_errors->add();
    }
}

} // namespace zmqkit::patterns
