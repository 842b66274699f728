#include <zmqkit/patterns/pipeline.hpp>

namespace zmqkit::patterns {
namespace {

socket_options with_name(socket_options o, const std::string& name,
                         const socket_security& security) {
    o.name = name;
    o.security = security;
    return o;
}

// A worker retries a send that found the HWM full in short slices, so that stop() is noticed.
constexpr auto output_retry_slice = std::chrono::milliseconds(100);

} // namespace

source::source(zmq::context_t& context, std::string_view endpoints, socket_options options)
    : socket_(context, zmq::socket_type::push, std::move(options)) {
    socket_.attach(endpoints, endpoint_action::bind);
}

sink::sink(zmq::context_t& context, std::string_view endpoints, socket_options options)
    : socket_(context, zmq::socket_type::pull, std::move(options)) {
    socket_.attach(endpoints, endpoint_action::bind);
}

worker::worker(zmq::context_t& context, worker_options options, worker_handler handler)
    : actor(context, options.name), options_(std::move(options)), handler_(std::move(handler)) {
    if (!handler_) {
        throw config_error("worker '" + options_.name + "': no handler given");
    }
    if (options_.input.empty()) {
        throw config_error("worker '" + options_.name + "': no input endpoint given");
    }
    if (options_.sockets.security.enabled()) {
        throw config_error("worker '" + options_.name +
                           "': sockets.security is not used by a worker (its input and output "
                           "usually have different servers); set input_security and "
                           "output_security instead");
    }
    // Endpoint lists are checked here, in the caller's thread, for an early, clear error.
    (void)parse_endpoints(options_.input, endpoint_action::connect);
    if (!options_.output.empty()) {
        (void)parse_endpoints(options_.output, endpoint_action::connect);
    }
    if (!options_.errors.empty()) {
        (void)parse_endpoints(options_.errors, endpoint_action::connect);
    }
    if (options_.batch == 0) {
        options_.batch = 1;
    }
    auto& reg = options_.registry != nullptr ? *options_.registry : metrics_registry::global();
    options_.sockets.registry = &reg;
    const metric_labels labels{{"component", options_.name}};
    received_ = &reg.get_counter("zmqkit_worker_messages_received_total",
                                 "Inputs handed to the worker's handler", labels);
    sent_ =
        &reg.get_counter("zmqkit_worker_messages_sent_total", "Outputs passed downstream", labels);
    failed_ = &reg.get_counter("zmqkit_worker_handler_failures_total",
                               "Inputs whose handler threw (sent to the error endpoint)", labels);
    dropped_ = &reg.get_counter(
        "zmqkit_worker_messages_dropped_total",
        "Failed inputs with no error endpoint, or outputs not delivered before stop", labels);
}

worker::~worker() {
    stop();
}

void worker::setup() {
    input_.emplace(context(), zmq::socket_type::pull,
                   with_name(options_.sockets, options_.name + ".input", options_.input_security));
    auto in = input_->attach(options_.input, endpoint_action::connect);
    std::vector<std::string> out;
    if (!options_.output.empty()) {
        auto o = with_name(options_.sockets, options_.name + ".output", options_.output_security);
        o.send_timeout = std::min(o.send_timeout, output_retry_slice);
        output_.emplace(context(), zmq::socket_type::push, o);
        out = output_->attach(options_.output, endpoint_action::connect);
    }
    if (!options_.errors.empty()) {
        auto o = with_name(options_.sockets, options_.name + ".errors", options_.output_security);
        o.send_timeout = std::min(o.send_timeout, output_retry_slice);
        errors_.emplace(context(), zmq::socket_type::push, o);
        (void)errors_->attach(options_.errors, endpoint_action::connect);
    }
    {
        std::lock_guard lock(endpoints_mutex_);
        input_endpoints_ = std::move(in);
        output_endpoints_ = std::move(out);
    }
    watch(input_->raw(), [this] { handle_batch(); });
}

void worker::handle_batch() {
    // One reused message: decoding reuses its header's string capacity (the handler may move
    // from it; a moved-from message is received into like a fresh one).
    for (std::size_t i = 0; i < options_.batch && !stop_requested(); ++i) {
        if (!input_->recv(input_message_, std::chrono::milliseconds(0))) {
            return;
        }
        handle_one(input_message_);
    }
}

void worker::handle_one(message& in) {
    received_->add();
    std::optional<message> out;
    try {
        out = handler_(in);
    } catch (const std::exception& e) {
        fail(in, e.what());
        return;
    } catch (...) {
        fail(in, "handler threw a non-standard exception");
        return;
    }
    if (!out || !output_) {
        return;
    }
    auto& h = out->header();
    if (h.id != in.id()) {
        if (h.correlation_id.is_nil()) {
            h.correlation_id = in.correlation_id();
        }
        if (h.causation_id.is_nil()) {
            h.causation_id = in.id();
        }
        if (h.traceparent.empty()) {
            h.traceparent = in.header().traceparent;
        }
    }
    // Back-pressure: a full downstream blocks this worker (and so its input queue fills and
    // upstream sources slow down) instead of dropping. Only stop()'s deadline ends the wait.
    if (!send_until_stop_deadline(*output_, *out)) {
        dropped_->add();
        return;
    }
    sent_->add();
}

void worker::fail(message& in, const std::string& why) {
    failed_->add();
    if (!errors_) {
        dropped_->add();
        return;
    }
    in.header().set_user_header("error", why);
    in.header().set_user_header("error-stage", options_.name);
    if (!send_until_stop_deadline(*errors_, in)) {
        dropped_->add();
    }
}

bool worker::send_until_stop_deadline(zmqkit::socket& socket, message& m) {
    // Each attempt blocks at most output_retry_slice, so a stop request is seen promptly.
    while (!socket.send(m)) {
        if (stop_requested() && std::chrono::steady_clock::now() >= stop_deadline()) {
            return false;
        }
    }
    return true;
}

std::vector<std::string> worker::on_command(const std::vector<std::string>& frames) {
    if (frames.front() == "STATISTICS") {
        const auto s = stats();
        return {std::to_string(s.received), std::to_string(s.sent), std::to_string(s.failed),
                std::to_string(s.dropped)};
    }
    return actor::on_command(frames);
}

void worker::on_stop(std::chrono::steady_clock::time_point deadline) {
    // Finish what has already arrived in this worker's queue, within the deadline.
    while (std::chrono::steady_clock::now() < deadline) {
        if (input_->recv(input_message_, std::chrono::milliseconds(0))) {
            handle_one(input_message_);
        } else if ((input_->raw().get(zmq::sockopt::events) & ZMQ_POLLIN) == 0) {
            break; // empty (a malformed message also returns false, but leaves input readable)
        }
    }
}

void worker::teardown() noexcept {
    errors_.reset();
    output_.reset();
    input_.reset();
}

worker_stats worker::stats() const noexcept {
    return worker_stats{received_->value(), sent_->value(), failed_->value(), dropped_->value()};
}

std::vector<std::string> worker::input_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return input_endpoints_;
}

std::vector<std::string> worker::output_endpoints() const {
    std::lock_guard lock(endpoints_mutex_);
    return output_endpoints_;
}

worker_pool::worker_pool(zmq::context_t& context, std::size_t size, worker_options options,
                         worker_handler handler) {
    if (size == 0) {
        throw config_error("worker pool '" + options.name + "': size must be at least 1");
    }
    workers_.reserve(size);
    for (std::size_t i = 0; i < size; ++i) {
        auto o = options;
        o.name = options.name + "-" + std::to_string(i);
        workers_.push_back(std::make_unique<worker>(context, std::move(o), handler));
    }
}

worker_pool::~worker_pool() {
    stop();
}

void worker_pool::start(std::chrono::milliseconds timeout) {
    try {
        for (auto& w : workers_) {
            w->start(timeout);
        }
    } catch (...) {
        stop(std::chrono::milliseconds(0));
        throw;
    }
}

void worker_pool::stop(std::chrono::milliseconds deadline) noexcept {
    for (auto& w : workers_) {
        w->stop(deadline);
    }
}

worker_stats worker_pool::stats() const noexcept {
    worker_stats total;
    for (const auto& w : workers_) {
        const auto s = w->stats();
        total.received += s.received;
        total.sent += s.sent;
        total.failed += s.failed;
        total.dropped += s.dropped;
    }
    return total;
}

} // namespace zmqkit::patterns
