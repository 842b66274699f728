#include <zmqkit/socket_monitor.hpp>

#include <algorithm>
#include <atomic>
#include <memory>

namespace zmqkit {

// cppzmq's monitor_t decodes the two-frame events ([id + value][endpoint]) and dispatches
// them to one virtual handler per event; each handler here forwards to the one callback.
class socket_monitor::reader final : public zmq::monitor_t {
public:
    explicit reader(handler on_event) : on_event_(std::move(on_event)) {}

    std::size_t poll(std::chrono::milliseconds timeout) {
        std::size_t handled = 0;
        const int wait = static_cast<int>(std::max<std::int64_t>(0, timeout.count()));
        if (!check_event(wait)) {
            return 0;
        }
        ++handled;
        while (check_event(0)) {
            ++handled;
        }
        return handled;
    }

private:
    void forward(const zmq_event_t& e, const char* address) {
        on_event_(socket_event{e.event, static_cast<std::uint32_t>(e.value),
                               address != nullptr ? address : ""});
    }
    void on_event_connected(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_connect_delayed(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_connect_retried(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_listening(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_bind_failed(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_accepted(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_accept_failed(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_closed(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_close_failed(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_disconnected(const zmq_event_t& e, const char* a) override { forward(e, a); }
    void on_event_handshake_failed_no_detail(const zmq_event_t& e, const char* a) override {
        forward(e, a);
    }
    void on_event_handshake_failed_protocol(const zmq_event_t& e, const char* a) override {
        forward(e, a);
    }
    void on_event_handshake_failed_auth(const zmq_event_t& e, const char* a) override {
        forward(e, a);
    }
    void on_event_handshake_succeeded(const zmq_event_t& e, const char* a) override {
        forward(e, a);
    }
    void on_event_unknown(const zmq_event_t& e, const char* a) override { forward(e, a); }

    handler on_event_;
};

namespace {

std::string unique_monitor_endpoint() {
    static std::atomic<std::uint64_t> next{0};
    return "inproc://zmqkit.socket-monitor." + std::to_string(next.fetch_add(1));
}

} // namespace

socket_monitor::socket_monitor(zmq::socket_t& socket, int events, handler on_event)
    : reader_(std::make_unique<reader>(std::move(on_event))) {
    reader_->init(socket, unique_monitor_endpoint(), events);
}

socket_monitor::~socket_monitor() = default; // monitor_t stops monitoring, closes its PAIR
socket_monitor::socket_monitor(socket_monitor&&) noexcept = default;
socket_monitor& socket_monitor::operator=(socket_monitor&&) noexcept = default;

std::size_t socket_monitor::poll(std::chrono::milliseconds timeout) {
    return reader_ ? reader_->poll(timeout) : 0;
}

void socket_monitor::stop() noexcept {
    if (reader_) {
        reader_->abort();
    }
}

} // namespace zmqkit
