// zmqkit::patterns — the push-pull pipeline: source -> workers -> sink, and the streamer device
// that joins stages (fan-in / fan-out).
//
//   source (PUSH, binds)  ->  worker x N (PULL -> handler -> PUSH, connect)  ->  sink (PULL, binds)
//
// Every stage speaks the envelope (docs/wire-protocol.md): workers keep the correlation id and
// set the causation id, so a sink can trace each result back to the message that started it.
#pragma once

#include <zmqkit/actor.hpp>
#include <zmqkit/export.hpp>
#include <zmqkit/message.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/patterns/device.hpp>
#include <zmqkit/proxy_statistics.hpp>
#include <zmqkit/socket.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zmqkit::patterns {

// The head of a pipeline: a PUSH socket used from the caller's thread. Messages are
// load-balanced round-robin over the connected workers. Not thread-safe.
class ZMQKIT_API source {
public:
    // endpoints: CZMQ list; entries without a prefix bind ("tcp://127.0.0.1:*" works).
    source(zmq::context_t& context, std::string_view endpoints, socket_options options = {});

    // Queues m (see zmqkit::socket::send). False if it could not be queued within the send
    // timeout (no worker connected and the HWM full): the caller decides to retry or drop.
    [[nodiscard]] bool send(message& m) { return socket_.send(m); }
    [[nodiscard]] bool send(message&& m) { return socket_.send(m); }
    // Sends value encoded with msgpack-c as the body of a new message.
    template <class T> [[nodiscard]] bool send_packed(const T& value) {
        auto m = message::pack(value);
        return socket_.send(m);
    }

    [[nodiscard]] const std::vector<std::string>& endpoints() const noexcept {
        return socket_.endpoints();
    }
    [[nodiscard]] zmqkit::socket& socket() noexcept { return socket_; }

private:
    zmqkit::socket socket_;
};

// The tail of a pipeline: a PULL socket used from the caller's thread (fair-queued over the
// connected workers). Not thread-safe.
class ZMQKIT_API sink {
public:
    // endpoints: entries without a prefix bind.
    sink(zmq::context_t& context, std::string_view endpoints, socket_options options = {});

    // Next well-formed message within timeout, or nullopt. Malformed messages are counted and
    // skipped (zmqkit_socket_decode_errors_total).
    [[nodiscard]] std::optional<message> recv(std::chrono::milliseconds timeout) {
        return socket_.recv(timeout);
    }
    template <class T> [[nodiscard]] std::optional<T> recv_as(std::chrono::milliseconds timeout) {
        return socket_.recv_as<T>(timeout);
    }

    [[nodiscard]] const std::vector<std::string>& endpoints() const noexcept {
        return socket_.endpoints();
    }
    [[nodiscard]] zmqkit::socket& socket() noexcept { return socket_; }

private:
    zmqkit::socket socket_;
};

// What a worker does with one message. Return the message to pass downstream (build it with
// in.follow_up(...) or any new message: the worker sets its correlation id to the input's and
// its causation id to the input's id unless the handler set them), or nullopt to pass nothing.
// Throwing counts as a failure: the input goes to the error endpoint (see worker_options).
using worker_handler = std::function<std::optional<message>(message& in)>;

// Wraps a typed function Out(const In&) as a worker_handler: the input body is decoded with
// msgpack-c, the result encoded as the output body.
template <class In, class Out, class Fn> worker_handler typed_handler(Fn fn) {
    return [fn = std::move(fn)](message& in) -> std::optional<message> {
        return in.follow_up_packed<Out>(fn(in.body_as<In>()));
    };
}

struct ZMQKIT_API worker_options {
    std::string input;           // where to PULL from; entries without a prefix connect
    std::string output;          // where to PUSH results; empty: the worker is a terminal stage
    std::string errors;          // where to PUSH failed inputs; empty: failures counted and dropped
    std::string name = "worker"; // metric label {component="<name>"} and thread name
    socket_options sockets;      // applied to every socket of the worker; its `security` must
                                 // stay off (config_error): use the two fields below
    // CURVE / PLAIN of the input socket (the worker is usually the client of a streamer or a
    // source: socket_security::curve_client(server_key, &own)). Default: plaintext.
    socket_security input_security;
    // The same for the output and errors sockets (they usually connect to one downstream
    // server, which may differ from the input's).
    socket_security output_security;
    std::size_t batch = 256;              // messages handled per wake-up before polling again
    metrics_registry* registry = nullptr; // nullptr: metrics_registry::global()
};

// Counters of one worker (registered as zmqkit_worker_* {component="<name>"}: metrics are
// identified by name, so give each worker in a process a distinct name — worker_pool does —
// or they share one series).
struct ZMQKIT_API worker_stats {
    std::uint64_t received = 0; // inputs handled
    std::uint64_t sent = 0;     // outputs passed downstream
    std::uint64_t failed = 0;   // handler threw
    std::uint64_t dropped = 0;  // failed with no error endpoint, or output not queued in time
};

// One pipeline stage on its own thread: PULL -> handler -> PUSH.
// A handler exception never kills the worker: the input message is sent to the error
// endpoint with user headers "error" (the exception's what()) and "error-stage" (name), and
// counted. Thread-safe public methods (it is an actor).
class ZMQKIT_API worker : public actor {
public:
    worker(zmq::context_t& context, worker_options options, worker_handler handler);
    ~worker() override;

    [[nodiscard]] worker_stats stats() const noexcept;
    // Endpoints in effect for input, output and errors (after start()).
    [[nodiscard]] std::vector<std::string> input_endpoints() const;
    [[nodiscard]] std::vector<std::string> output_endpoints() const;

protected:
    void setup() override;
    std::vector<std::string> on_command(const std::vector<std::string>& frames) override;
    void on_stop(std::chrono::steady_clock::time_point deadline) override;
    void teardown() noexcept override;

private:
    void handle_batch();
    void handle_one(message& in);
    void fail(message& in, const std::string& why);
    bool send_until_stop_deadline(zmqkit::socket& socket, message& m);

    worker_options options_;
    worker_handler handler_;
    std::optional<zmqkit::socket> input_;
    std::optional<zmqkit::socket> output_;
    std::optional<zmqkit::socket> errors_;
    message input_message_; // reused for every input (actor thread only)
    counter* received_;
    counter* sent_;
    counter* failed_;
    counter* dropped_;
    mutable std::mutex endpoints_mutex_;
    std::vector<std::string> input_endpoints_;
    std::vector<std::string> output_endpoints_;
};

// N workers with the same options and handler, in this process. Over inproc the input and
// output must be bound by someone in the same zmq::context_t (a source/sink or a streamer).
// Worker i is named "<name>-<i>" for its thread and metrics.
class ZMQKIT_API worker_pool {
public:
    worker_pool(zmq::context_t& context, std::size_t size, worker_options options,
                worker_handler handler);
    ~worker_pool();
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;

    // Starts every worker; if one fails, the started ones are stopped and the error rethrown.
    void start(std::chrono::milliseconds timeout = std::chrono::seconds{10});
    // Stops every worker (each drains until the deadline). noexcept, idempotent.
    void stop(std::chrono::milliseconds deadline = std::chrono::seconds{5}) noexcept;

    [[nodiscard]] std::size_t size() const noexcept { return workers_.size(); }
    [[nodiscard]] worker& at(std::size_t i) { return *workers_.at(i); }
    // Sum over the workers.
    [[nodiscard]] worker_stats stats() const noexcept;

private:
    std::vector<std::unique_ptr<worker>> workers_;
};

struct ZMQKIT_API streamer_options {
    std::string frontend;          // PULL side; entries without a prefix bind
    std::string backend;           // PUSH side; entries without a prefix bind
    std::string capture;           // optional PUSH tap: a copy of every message; prefix-less bind
    std::string control;           // optional REP control socket (PAUSE, RESUME, TERMINATE,
                                   // STATISTICS, STATUS); entries without a prefix bind
    std::string name = "streamer"; // metric label
    socket_options sockets;        // HWMs and linger for frontend/backend; its `security`
                                   // must stay off (config_error): use the fields below
    // CURVE / PLAIN / ZAP per side (security.hpp). A side that binds is usually the server
    // (socket_security::curve_server(own, "frontend")); its ZAP domain needs a policy in the
    // context's authenticator. Default: plaintext, as before.
    socket_security frontend_security;
    socket_security backend_security;
    socket_security capture_security; // the tap's consumers
    socket_security control_security; // who may PAUSE/TERMINATE the device
    std::size_t batch = 512;          // messages forwarded per wake-up
    // TERMINATE: how long to drain before exit
    std::chrono::milliseconds drain_timeout = std::chrono::seconds{2};
    metrics_registry* registry = nullptr;
};

// The streamer device (PULL -> PUSH), the glue between pipeline stages: fan-in from many
// upstream pushers, fan-out to many downstream pullers. Frames are forwarded unchanged (it does
// not decode envelopes, so it also carries raw ZeroMQ traffic). Counts messages and bytes like
// zmq_proxy_steerable and is steerable through its control socket or the device methods
// (pause, resume, statistics, status_json, drain_result: device.hpp).
// When asked to stop it drains: it keeps forwarding what already arrived until the frontend is
// idle or the deadline passes, then closes with the remaining time as linger.
// STATUS: {"state":"running"|"paused","statistics":{...},"backend_stalls":N,"capture_drops":N},
// plus "security":{"frontend":{"mode":..,"handshakes":N,"handshake_failures":N,
// "last_failure":".."},..} when a side is secured (no secrets).
class ZMQKIT_API streamer final : public device {
public:
    streamer(zmq::context_t& context, streamer_options options);
    ~streamer() override;

    [[nodiscard]] proxy_statistics statistics() const noexcept override;

    [[nodiscard]] std::vector<std::string> capture_endpoints() const {
        return endpoints("capture");
    }

private:
    void open_sides() override;
    void on_pause(bool paused) override;
    drain_report on_drain(time_point deadline) override;
    void add_status(detail::status_object& status) override;

    std::size_t forward(std::size_t limit);

    streamer_options options_;
    zmq::socket_t* frontend_ = nullptr;
    zmq::socket_t* backend_ = nullptr;
    zmq::socket_t* capture_ = nullptr;
    counter* messages_in_;
    counter* bytes_in_;
    counter* messages_out_;
    counter* bytes_out_;
    counter* send_stalls_;
    counter* capture_drops_;
    std::vector<zmq::message_t> frames_; // the message being forwarded
    std::size_t pending_ = 0;            // frames of a message received but not yet sent
    std::size_t pending_bytes_ = 0;
};

} // namespace zmqkit::patterns
