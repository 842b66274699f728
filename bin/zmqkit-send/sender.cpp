#include "zmqkit-send/sender.hpp"

#include "common/input_reader.hpp"
#include "common/message_format.hpp"
#include "zmqkit-send/confirm_log.hpp"

#include <zmqkit/error.hpp>
#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/patterns/majordomo.hpp>
#include <zmqkit/patterns/pubsub.hpp>
#include <zmqkit/patterns/titanic.hpp>
#include <zmqkit/socket.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <optional>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace zmqkit::cli {
namespace {

using clock = std::chrono::steady_clock;

// Closes the --file descriptor.
struct file_descriptor {
    int fd = -1;
    ~file_descriptor() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

// The run's limits, asked between sends and while a send or the input waits: a SIGINT or
// SIGTERM, --timeout (the whole run) and --idle-timeout (input that stays open but quiet ends
// the run normally).
class run_limits {
public:
    run_limits(const send_config& cfg, const logger& log, shutdown_signals& signals)
        : cfg_(cfg), log_(log), signals_(signals) {
        if (cfg.timeout) {
            deadline_ = started_ + *cfg.timeout;
        }
    }

    // Whether a stop was requested. A pending signal is read with sigtimedwait (a syscall),
    // so the hot path asks at most every 50 ms; steady_clock::now() is a vDSO call.
    bool stop_requested() {
        if (!stop_requested_) {
            const auto now = clock::now();
            if (now < next_signal_check_) {
                return false;
            }
            next_signal_check_ = now + std::chrono::milliseconds(50);
            if (auto sig = signals_.poll()) {
                note_signal(*sig);
            }
        }
        return stop_requested_;
    }
    // Waits until `until` for a signal (a --rate wait). True if one came.
    bool wait_for_signal(clock::time_point until) {
        if (auto sig =
                signals_.wait(std::chrono::ceil<std::chrono::milliseconds>(until - clock::now()))) {
            note_signal(*sig);
            return true;
        }
        return false;
    }
    bool past_deadline() {
        if (deadline_ && clock::now() >= *deadline_) {
            timed_out_ = true;
        }
        return timed_out_;
    }
    bool input_idle() {
        if (cfg_.idle_timeout && clock::now() >= last_input_ + *cfg_.idle_timeout) {
            idle_ = true;
        }
        return idle_;
    }
    void input_arrived() {
        if (cfg_.idle_timeout) {
            last_input_ = clock::now();
        }
    }
    void set_timed_out() noexcept { timed_out_ = true; }

    [[nodiscard]] bool stopped() const noexcept { return stop_requested_; }
    [[nodiscard]] bool timed_out() const noexcept { return timed_out_; }
    [[nodiscard]] bool idle() const noexcept { return idle_; }
    [[nodiscard]] std::optional<clock::time_point> deadline() const noexcept { return deadline_; }

private:
    void note_signal(int sig) {
        stop_requested_ = true;
        log_stop_signal(log_, sig);
    }

    const send_config& cfg_;
    const logger& log_;
    shutdown_signals& signals_;
    clock::time_point started_ = clock::now();
    std::optional<clock::time_point> deadline_;
    clock::time_point next_signal_check_{};
    clock::time_point last_input_ = clock::now();
    bool stop_requested_ = false;
    bool timed_out_ = false;
    bool idle_ = false;
};

// Part: the input (--data, the --file paths in turn, or stdin) split into records, --repeat
// times. Each source is opened when its turn comes; the first before any network activity, so
// an unreadable file is reported first.
class send_input {
public:
    // Opens the first source; exit_no_input (logged) if it cannot be read, else exit_ok.
    int open(const send_config& cfg, const logger& log, run_limits& limits) {
        cfg_ = &cfg;
        limits_ = &limits;
        if (!start()) {
            log.error("cannot read " + source() + ": " + open_error_);
            return exit_no_input;
        }
        return exit_ok;
    }
    // The next record (valid until the next call), across the sources and the repetitions.
    [[nodiscard]] input_reader::status next(std::string_view& out) {
        for (;;) {
            const auto status = reader_->next(out);
            if (status == input_reader::status::message) {
                ++records_in_pass_;
                return status;
            }
            if (status != input_reader::status::end || !advance()) {
                return open_error_.empty() ? status : input_reader::status::failed;
            }
        }
    }
    // Why the input failed: the open or read error of the current source.
    [[nodiscard]] std::string error() const {
        return open_error_.empty() ? reader_->error() : open_error_;
    }
    // "--file 'x'", "stdin" or "--data": the current source, for messages.
    [[nodiscard]] std::string source() const {
        if (cfg_->data) {
            return "--data";
        }
        if (cfg_->files.empty() || cfg_->files[index_] == "-") {
            return "stdin";
        }
        return "--file '" + cfg_->files[index_] + "'";
    }
    // Whether the current source is a file (an unreadable one is exit 66).
    [[nodiscard]] bool from_file() const {
        return !cfg_->data && !cfg_->files.empty() && cfg_->files[index_] != "-";
    }
    [[nodiscard]] int fd() const noexcept { return file_.fd >= 0 ? file_.fd : STDIN_FILENO; }
    // Whether more input is ready to read without waiting.
    [[nodiscard]] bool ready() const {
        if (cfg_->data) {
            return true;
        }
        pollfd p{fd(), POLLIN, 0};
        return ::poll(&p, 1, 0) != 0;
    }

    // Called before the reader waits for more input (--batch: a partly filled batch leaves).
    std::function<void()> before_wait;

private:
    // Opens source index_ (false with open_error_ set if it cannot be read).
    bool start() {
        const auto framing = cfg_->framing == input_framing::whole
                                 ? input_reader::framing::whole
                                 : (cfg_->framing == input_framing::length_prefixed
                                        ? input_reader::framing::length_prefixed
                                        : input_reader::framing::delimited);
        if (cfg_->data) {
            reader_.emplace(*cfg_->data, framing, cfg_->delimiter, cfg_->max_size);
            return true;
        }
        if (file_.fd >= 0) {
            ::close(file_.fd);
            file_.fd = -1;
        }
        if (from_file()) {
            file_.fd = ::open(cfg_->files[index_].c_str(), O_RDONLY | O_CLOEXEC);
            if (file_.fd < 0) {
                open_error_ = std::strerror(errno);
                return false;
            }
        }
        reader_.emplace(
            fd(), framing, cfg_->delimiter,
            [this] {
                if (before_wait) {
                    before_wait();
                }
                return limits_->stop_requested() || limits_->past_deadline() ||
                       limits_->input_idle();
            },
            cfg_->max_size);
        return true;
    }
    // At the end of a source: the next file, or the next repetition. False at the very end,
    // or when the next file cannot be opened (open_error_).
    bool advance() {
        const std::size_t sources = cfg_->data ? 1 : std::max<std::size_t>(1, cfg_->files.size());
        if (index_ + 1 < sources) {
            ++index_;
            return start();
        }
        if (!cfg_->repeat) {
            return false;
        }
        ++passes_;
        // A pass without a record would repeat for ever without sending anything.
        if ((*cfg_->repeat != 0 && passes_ >= *cfg_->repeat) || records_in_pass_ == 0) {
            return false;
        }
        records_in_pass_ = 0;
        index_ = 0;
        return start();
    }

    const send_config* cfg_ = nullptr;
    run_limits* limits_ = nullptr;
    file_descriptor file_;
    std::optional<input_reader> reader_;
    std::size_t index_ = 0; // the current --file
    std::uint64_t passes_ = 0;
    std::uint64_t records_in_pass_ = 0;
    std::string open_error_;
};

// Part: the transport messages leave through: a plain zmqkit socket (envelopes, or raw frames
// with --raw), or with --wait-confirm a reliable sender (a DEALER that keeps every message
// until the durable proxy confirms it); the socket monitor, the ZAP handler of a server side,
// and whether the peers can be reached. Members in the order they must close: the context last.
class send_transport {
public:
    send_transport(const send_config& cfg, const logger& log)
        : cfg_(cfg), log_(log), reach_(cfg.endpoints, cfg.kind.default_action) {}

    // Creates the socket and binds/connects it. exit_ok, or the exit code (logged).
    int open(send_input& input) {
        // A server side (--curve-allow, --plain-passwords, --zap-*-ip) needs the context's
        // ZAP handler before it binds; closed before the context at the end.
        auth_ = start_authenticator(context_, {&cfg_.security}, log_);
        if (cfg_.confirm_log) {
            std::string error;
            if (!outcomes_.open(*cfg_.confirm_log, error)) {
                log_.error(error);
                return exit_cannot_create;
            }
        }
        if (cfg_.wait_confirm) {
            if (const int code = open_reliable(input); code != exit_ok) {
                return code;
            }
        } else {
            open_plain();
        }
        raw_ = reliable_ ? &reliable_->raw() : &plain_->raw();
        secured_ = reliable_ ? reliable_->handshakes() : plain_->handshakes();
        // A client that never completes a security handshake gives up with the reason (exit
        // 69) instead of waiting for ever; asked the same way on every path.
        client_handshakes_ = cfg_.security.server() ? nullptr : secured_;
        reach_.watch(client_handshakes_, monitor_ ? &*monitor_ : nullptr);
        give_up_.emplace(reach_, client_handshakes_, cfg_.security.server(), cfg_.timeout);
        return exit_ok;
    }

    [[nodiscard]] zmq::socket_t& raw() { return *raw_; }
    [[nodiscard]] zmqkit::socket& plain() { return *plain_; }
    [[nodiscard]] patterns::reliable_sender* reliable() {
        return reliable_ ? &*reliable_ : nullptr;
    }
    // The security handshakes (nullptr without security).
    [[nodiscard]] handshake_monitor* secured() const noexcept { return secured_; }
    [[nodiscard]] handshake_monitor* client_handshakes() const noexcept {
        return client_handshakes_;
    }
    // The plaintext socket's monitor (nullptr with security, or a --pub without -v or
    // --wait-peers).
    [[nodiscard]] handshake_counter* monitor() { return monitor_ ? &*monitor_ : nullptr; }
    [[nodiscard]] confirm_log& outcomes() noexcept { return outcomes_; }
    [[nodiscard]] peer_reachability& reach() noexcept { return reach_; }
    [[nodiscard]] handshake_give_up& give_up() { return *give_up_; }

    // Stops monitoring and closes the monitor's socket, so that the context can terminate.
    void close_monitor() {
        reach_.watch(nullptr, nullptr);
        monitor_.reset();
    }
    // Closes the socket, the ZAP handler and the context: what closing waits for is the
    // linger of the messages still queued.
    void close() {
        plain_.reset();
        auth_.reset(); // its ZAP socket too
        context_.close();
    }

private:
    socket_options options() {
        return tool_socket_options("zmqkit-send", cfg_.hwm, cfg_.linger, registry_,
                                   cfg_.security.socket);
    }
    // Always on: --wait-peers waits for handshakes, and at the end "no peer ever connected"
    // tells that every queued message was dropped; with -v it logs the connection events.
    // With security the socket's own handshake_monitor does this (one monitor per socket).
    void watch(zmq::socket_t& socket) {
        if (!cfg_.security.enabled() &&
            (cfg_.wait_peers > 0 || cfg_.kind.type != zmq::socket_type::pub ||
             cfg_.verbosity >= 1)) {
            monitor_.emplace(context_, socket, cfg_.verbosity >= 1 ? &log_ : nullptr);
        }
    }
    int open_reliable(send_input& input) {
        patterns::reliable_sender_options ro;
        ro.endpoint = endpoint_spec(cfg_.endpoints);
        ro.window = cfg_.window;
        ro.retry_interval = cfg_.retry_interval;
        ro.batch_messages = cfg_.batch;
        // A partly filled batch leaves when no more input is ready and before a long --rate
        // wait, so the sender itself need not send it early: without --batch-linger it waits
        // for more messages as long as input keeps coming.
        ro.linger = cfg_.batch_linger.count() > 0 ? cfg_.batch_linger : std::chrono::hours(1);
        ro.socket = options();
        ro.configure = [this](zmq::socket_t& raw) {
            apply_socket_options(raw, cfg_.socket_options);
            watch(raw);
        };
        if (const int code = start_component(reliable_, log_, context_, ro); code != exit_ok) {
            return code;
        }
        reliable_->on_reject([this](const message_id& id, std::string_view reason) {
            outcomes_.rejected(id, reason);
            log_.error("message " + id.to_string() +
                       " was rejected by the proxy: " + std::string(reason));
        });
        if (outcomes_.enabled()) {
            reliable_->on_confirm([this](const message_id& id) { outcomes_.confirmed(id); });
        }
        if (cfg_.batch > 1) {
            // A partly filled batch does not wait for input that is not there yet.
            input.before_wait = [this, &input] {
                if (reliable_->waiting() != 0 && !input.ready()) {
                    reliable_->send_batch();
                }
            };
        }
        return exit_ok;
    }
    void open_plain() {
        // --pub is an XPUB: it publishes like a PUB and also sees the subscriptions arrive,
        // so --wait-peers can wait for subscribers, not just connections.
        const bool pub = cfg_.kind.type == zmq::socket_type::pub;
        zmqkit::socket& created =
            plain_.emplace(context_, pub ? zmq::socket_type::xpub : cfg_.kind.type, options());
        if (pub) {
            created.raw().set(zmq::sockopt::xpub_verbose, 1); // every subscriber's subscription
            // One hostile subscriber must not crash the tool (issue 14 item 4).
            patterns::bound_subscriptions(created.raw(), cfg_.security.socket);
        }
        if (cfg_.verbosity >= 1) {
            created.on_decode_error([this](const decode_status& s) {
                log_.warn("discarded a malformed reply: " + s.message());
            });
        }
        apply_socket_options(created.raw(), cfg_.socket_options);
        watch(created.raw());
        attach_all(created, cfg_.endpoints, cfg_.kind.default_action, log_);
    }

    const send_config& cfg_;
    const logger& log_;
    peer_reachability reach_;
    zmq::context_t context_;
    std::unique_ptr<authenticator> auth_;
    metrics_registry registry_;
    // Closed explicitly at the end, where the context shutdown is timed (delivery check).
    std::optional<zmqkit::socket> plain_;
    std::optional<patterns::reliable_sender> reliable_;
    std::optional<handshake_counter> monitor_; // stops before its socket closes
    confirm_log outcomes_;                     // --confirm-log: every input record's outcome
    zmq::socket_t* raw_ = nullptr;
    handshake_monitor* secured_ = nullptr;
    handshake_monitor* client_handshakes_ = nullptr;
    std::optional<handshake_give_up> give_up_;
};

// Part: requests that survive (Lazy Pirate, zguide chapter 4). --req with --retries or
// --request-timeout talks to a 6/PPP broker (or any REP) through patterns::lb_client, --mdp
// SERVICE to a 7/MDP broker through patterns::mdp_client: each waits --request-timeout for the
// reply, then sends the request again on a fresh socket, --retries times. The message id stays
// the same across the copies, so a zmqkit broker joins them.
class request_client {
public:
    request_client(const send_config& cfg, const logger& log) : cfg_(cfg), log_(log) {}

    // exit_ok, or the exit code (logged).
    int open() {
        auth_ = start_authenticator(context_, {&cfg_.security}, log_);
        // The two clients take the same settings (their option structs differ in type only).
        auto settings = [this](auto& o) {
            o.endpoint = endpoint_spec(cfg_.endpoints);
            o.timeout = cfg_.request_timeout;
            o.attempts = cfg_.retries + 1;
            o.socket = tool_socket_options("zmqkit-send", cfg_.hwm, cfg_.linger, registry_,
                                           cfg_.security.socket);
            o.socket.linger = std::chrono::milliseconds(0); // what is unanswered is reported
            o.configure = [this](zmq::socket_t& raw) {
                apply_socket_options(raw, cfg_.socket_options);
            };
        };
        if (cfg_.titanic) {
            patterns::titanic_client_options o;
            settings(o);
            return start_component(titanic_, log_, context_, std::move(o));
        }
        if (cfg_.mdp_service) {
            patterns::mdp_client_options o;
            settings(o);
            return start_component(mdp_, log_, context_, std::move(o));
        }
        patterns::lb_client_options o;
        settings(o);
        return start_component(lb_, log_, context_, std::move(o));
    }

    // The outcome of one request.
    struct outcome {
        enum class kind { reply, error_reply, unanswered, stopped } what = kind::stopped;
        message reply;                   // --req: the reply
        std::vector<std::string> frames; // --mdp: the reply's body frames
        std::string error;               // error_reply, unanswered: the code ("timeout", ...)
        std::string reason;
    };

    // Sends one request and waits for its outcome. A stop signal or --timeout ends the wait
    // (stopped) for --req at once; --mdp is synchronous, bounded by --request-timeout x
    // (--retries + 1).
    outcome call(const header& h, std::string_view body, run_limits& limits) {
        outcome out;
        if (titanic_) {
            // Stored: the reply is the request id (titanic.request's 200).
            auto r = titanic_->request(*cfg_.mdp_service, {std::string(body)});
            if (r) {
                out.what = outcome::kind::reply;
                out.frames = {std::move(*r)};
            } else {
                out.what =
                    r.error() == "timeout" ? outcome::kind::unanswered : outcome::kind::error_reply;
                out.error = r.error();
                out.reason = r.reason();
            }
            return out;
        }
        if (mdp_) {
            auto r = mdp_->call(*cfg_.mdp_service, {std::string(body)});
            if (r) {
                // A worker that failed answers {"zmqkit.error", code, reason} (wire protocol
                // §9.4, zmqkit-worker): an error reply, not a result.
                if (auto error = patterns::parse_mdp_error_reply(*r)) {
                    out.what = outcome::kind::error_reply;
                    out.error = std::move(error->code);
                    out.reason = std::move(error->reason);
                    return out;
                }
                out.what = outcome::kind::reply;
                out.frames = std::move(*r);
            } else {
                out.what = outcome::kind::unanswered;
                out.error = r.error();
                out.reason = r.reason();
            }
            return out;
        }
        message request;
        request.header() = h;
        request.set_body(body);
        std::optional<patterns::lb_result> result;
        lb_->submit(std::move(request),
                    [&result](patterns::lb_result r) { result = std::move(r); });
        while (!result) {
            if (limits.stop_requested() || limits.past_deadline()) {
                return out; // stopped: the request is abandoned with the client
            }
            (void)lb_->poll(std::chrono::milliseconds(100));
        }
        if (result->ok()) {
            out.what = outcome::kind::reply;
            out.reply = std::move(**result);
        } else {
            // lb_client's own give-up is "timeout: no reply after N sends ..."; a broker's
            // error reply can say "timeout" too (--request-timeout of zmqkit-proxy --mode lb).
            out.what =
                result->error() == "timeout" && result->reason().starts_with("no reply after ")
                    ? outcome::kind::unanswered
                    : outcome::kind::error_reply;
            out.error = result->error();
            out.reason = result->reason();
        }
        return out;
    }

    [[nodiscard]] std::uint64_t resent() const noexcept {
        return mdp_ ? mdp_->resent() : (lb_ ? lb_->resent() : 0);
    }
    // --titanic: the client of titanic.request, titanic.reply and titanic.close (after open()).
    [[nodiscard]] patterns::titanic_client& titanic() { return *titanic_; }

private:
    const send_config& cfg_;
    const logger& log_;
    zmq::context_t context_;
    std::unique_ptr<authenticator> auth_;
    metrics_registry registry_;
    std::optional<patterns::lb_client> lb_;
    std::optional<patterns::mdp_client> mdp_;
    std::optional<patterns::titanic_client> titanic_;
};

// One input record split at the --key-delimiter.
struct send_record {
    std::string_view key;
    std::string_view value;
    bool has_key = false;
};

// zmqkit-send: reads records from its input part and sends them through its transport part;
// waits for peers first (--wait-peers), for each reply with --req, and at the end reports what
// was delivered or confirmed as documented in docs/cli.md.
class sender {
public:
    sender(const send_config& cfg, const logger& log, shutdown_signals& signals)
        : cfg_(cfg), log_(log), limits_(cfg, log, signals), reply_format_(cfg.format) {
        base_.type = cfg.type;
        base_.reply_to = cfg.reply_to;
        base_.user_headers = cfg.headers;
        base_.correlation_id = cfg.correlation_id;
        h_ = base_;
    }

    int run() {
        if (const int code = input_.open(cfg_, log_, limits_); code != exit_ok) {
            return code;
        }
        if (cfg_.lazy_pirate) {
            client_.emplace(cfg_, log_);
            if (const int code = client_->open(); code != exit_ok) {
                return code;
            }
            stats_.start();
            send_input_records();
            out_.flush();
            return finish_requests();
        }
        transport_.emplace(cfg_, log_); // name lookups start now
        if (const int code = transport_->open(input_); code != exit_ok) {
            return code;
        }
        if (const int code = wait_for_peers(); code != exit_ok) {
            return code;
        }
        stats_.start();
        send_input_records();
        out_.flush();
        return finish();
    }

private:
    // ---- peer wait (--wait-peers) --------------------------------------------------------
    int wait_for_peers() {
        if (cfg_.wait_peers == 0) {
            return exit_ok;
        }
        return cfg_.kind.type == zmq::socket_type::pub ? wait_for_subscriptions()
                                                       : wait_for_handshakes();
    }
    // --pub: subscriptions, not handshakes: a publication made before a subscription arrived
    // would be dropped for that subscriber.
    int wait_for_subscriptions() {
        const auto limit = cfg_.timeout ? *cfg_.timeout : std::chrono::milliseconds(10'000);
        const auto until = clock::now() + limit;
        zmq::socket_t& socket = transport_->raw();
        std::size_t seen = 0;
        zmq::message_t event;
        while (seen < cfg_.wait_peers && clock::now() < until && !limits_.stop_requested()) {
            zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
            (void)zmq::poll(&item, 1, std::chrono::milliseconds(50));
            while (seen < cfg_.wait_peers && socket.recv(event, zmq::recv_flags::dontwait)) {
                if (!event.empty() && static_cast<const std::uint8_t*>(event.data())[0] == 1) {
                    ++seen;
                    log_.debug(
                        "subscription '" +
                        std::string(static_cast<const char*>(event.data()) + 1, event.size() - 1) +
                        "' arrived");
                }
            }
        }
        if (seen < cfg_.wait_peers && !limits_.stopped()) {
            log_.error("timed out after " + std::to_string(limit.count()) + " ms waiting for " +
                       std::to_string(cfg_.wait_peers) + " subscription(s) (" +
                       std::to_string(seen) + " arrived)");
            socket.set(zmq::sockopt::linger, 0);
            return exit_timeout;
        }
        return exit_ok;
    }
    int wait_for_handshakes() {
        const auto limit = cfg_.timeout ? *cfg_.timeout : std::chrono::milliseconds(10'000);
        const auto stop = [this] { return limits_.stop_requested(); };
        const auto seen =
            transport_->secured() != nullptr
                ? wait_secured_peers(*transport_->secured(), cfg_.wait_peers, limit, stop)
            : transport_->monitor() != nullptr
                ? transport_->monitor()->wait(cfg_.wait_peers, limit, stop)
                : 0;
        if (seen == 0 && !limits_.stopped() && !transport_->reach().why_unreachable().empty()) {
            return report_unreachable_peers();
        }
        if (seen < cfg_.wait_peers && !limits_.stopped()) {
            log_.error("timed out after " + std::to_string(limit.count()) + " ms waiting for " +
                       std::to_string(cfg_.wait_peers) + " peer(s) to connect (" +
                       std::to_string(seen) + " did)");
            transport_->raw().set(zmq::sockopt::linger, 0);
            return exit_timeout;
        }
        log_.debug(std::to_string(seen) + " peer(s) connected");
        return exit_ok;
    }
    int report_unreachable_peers() {
        return transport_->give_up().report(log_, "no message could be sent to", cfg_.endpoints,
                                            transport_->raw());
    }

    // ---- input -> transport ---------------------------------------------------------------
    void send_input_records() {
        next_send_ = clock::now();
        std::string_view input;
        for (;;) {
            if (cfg_.count && stats_.messages() >= *cfg_.count) {
                break;
            }
            if (limits_.stop_requested()) { // time-throttled: at most one syscall per 50 ms
                break;
            }
            if (cfg_.verbosity >= 1 && transport_ && transport_->monitor() != nullptr) {
                (void)transport_->monitor()->poll(); // -v: socket events as they happen
            }
            const auto status = input_.next(input);
            if (!accept_input(status)) {
                break;
            }
            ++line_;
            if (limits_.past_deadline() || !pace()) {
                break;
            }
            const auto sent = send_one(split(input));
            if (sent == outcome::skipped) {
                continue;
            }
            if (sent == outcome::failed || (is_req() && !client_ && !wait_reply())) {
                break;
            }
        }
    }
    // Whether the reader returned a record; logs why the input ends otherwise.
    bool accept_input(input_reader::status status) {
        using status_t = input_reader::status;
        if (status == status_t::end || status == status_t::stopped) {
            if (limits_.idle() && !limits_.timed_out() && !limits_.stopped()) {
                log_.info("no input for " + std::to_string(cfg_.idle_timeout->count()) +
                          " ms (--idle-timeout), stopping");
            }
            return false;
        }
        limits_.input_arrived();
        if (status == status_t::truncated) {
            log_.error("input ends inside a length-prefixed message (message " +
                       std::to_string(line_ + 1) + " is truncated)");
            code_ = exit_data_error;
            return false;
        }
        if (status == status_t::too_large) {
            log_.error("message " + std::to_string(line_ + 1) + " is larger than --max-size " +
                       std::to_string(cfg_.max_size) +
                       " bytes; stopping (the messages before it were sent)");
            code_ = exit_data_error;
            return false;
        }
        if (status == status_t::failed) {
            log_.error("cannot read " + input_.source() + ": " + input_.error());
            code_ = input_.from_file() ? exit_no_input : exit_failure;
            return false;
        }
        return true;
    }
    // --rate: waits for the next message's turn (at the latest until --timeout). False when
    // the run ends meanwhile.
    bool pace() {
        if (cfg_.rate <= 0) {
            return true;
        }
        const auto interval = std::chrono::duration_cast<clock::duration>(
            std::chrono::duration<double>(1.0 / cfg_.rate));
        const auto now = clock::now();
        if (now >= next_send_) {
            next_send_ = now + interval;
            return true;
        }
        const auto deadline = limits_.deadline();
        const auto until = deadline ? std::min(next_send_, *deadline) : next_send_;
        auto* reliable = transport_ ? transport_->reliable() : nullptr;
        if (reliable != nullptr && cfg_.batch > 1 && until - now > cfg_.batch_linger) {
            reliable->send_batch(); // a partly filled batch does not wait that long
        }
        if (limits_.wait_for_signal(until) || limits_.past_deadline()) {
            return false;
        }
        next_send_ += interval;
        return true;
    }
    [[nodiscard]] send_record split(std::string_view input) const {
        if (cfg_.strip_cr && cfg_.framing == input_framing::delimited && !input.empty() &&
            input.back() == '\r') {
            input.remove_suffix(1); // CRLF input in the default line mode
        }
        send_record r{{}, input, false};
        if (cfg_.key_delimiter) {
            const auto at = input.find(*cfg_.key_delimiter);
            if (at != std::string_view::npos) {
                r.key = input.substr(0, at);
                r.value = input.substr(at + cfg_.key_delimiter->size());
                r.has_key = true;
            }
        }
        return r;
    }

    enum class outcome { sent, skipped, failed };
    // Sends one record as --raw frames, a --json envelope or a text envelope.
    outcome send_one(const send_record& r) {
        bool sent = false;
        header* used = &h_;
        std::size_t body_bytes = r.value.size();
        if (cfg_.raw) {
            sent = send_raw(r);
        } else if (cfg_.json) {
            if (r.value.find_first_not_of(" \t\r\n") == std::string_view::npos) {
                return outcome::skipped; // blank lines between JSON values
            }
            if (!to_json_envelope(r)) {
                return outcome::skipped;
            }
            used = &json_header_;
            body_bytes = json_body_.size();
            sent = send_envelope(
                json_header_, r.has_key ? r.key : std::string_view(json_header_.type), json_body_);
        } else {
            h_.id = message_id{};
            h_.timestamp_ns = 0;
            h_.sequence = 0; // --pub numbers each publication afresh
            h_.correlation_id = cfg_.correlation_id;
            if (cfg_.key_delimiter && !is_pub()) {
                if (r.has_key) {
                    h_.type.assign(r.key);
                } else {
                    h_.type = cfg_.type;
                }
            }
            sent = send_envelope(h_, r.has_key ? r.key : std::string_view(h_.type), r.value);
        }
        if (!sent) {
            if (transport_) {
                transport_->outcomes().not_sent(line_, &used->id);
            }
            ++not_sent_;
            return outcome::failed;
        }
        stats_.add(body_bytes);
        if (cfg_.verbosity >= 1 && !cfg_.raw) {
            const message_log_fields ids(*used);
            log_.core().write(log_level::debug, "sent " + used->id.to_string(), ids.fields());
        }
        if (cfg_.stats && (stats_.messages() & 255U) == 0) {
            stats_.maybe_print_live("zmqkit-send");
        }
        return outcome::sent;
    }
    // --json: the record into json_header_ / json_body_; a malformed one is counted, named
    // and skipped (the rest is still sent; exit 65).
    bool to_json_envelope(const send_record& r) {
        json_header_ = base_;
        if (r.has_key && !is_pub()) {
            json_header_.type.assign(r.key);
        }
        std::string error;
        if (json_to_envelope(r.value, json_header_, json_body_, error)) {
            return true;
        }
        ++json_errors_;
        log_.error("line " + std::to_string(line_) + ": malformed JSON: " + error);
        if (transport_) {
            transport_->outcomes().not_sent(line_);
        }
        ++not_sent_;
        return false;
    }
    // After a send that could not leave yet (the socket waited its send timeout): whether to
    // try again, or stop (a signal, --timeout, a peer that cannot be reached).
    bool try_again() {
        return !(limits_.stop_requested() || limits_.past_deadline() ||
                 transport_->give_up().check());
    }
    bool send_raw(const send_record& r) {
        zmq::socket_t& socket = transport_->raw();
        for (;;) {
            bool ok = false;
            if (r.has_key) {
                zmq::message_t first(r.key.data(), r.key.size());
                ok = socket.send(first, zmq::send_flags::sndmore).has_value();
                if (ok) {
                    // libzmq accepts the later parts of a started multipart message at once;
                    // if it does not, the message is lost: count it and stop.
                    zmq::message_t second(r.value.data(), r.value.size());
                    if (!socket.send(second, zmq::send_flags::none)) {
                        ++send_failures_;
                        log_.error("the value frame of message " + std::to_string(line_) +
                                   " could not be sent after its key frame");
                        return false;
                    }
                }
            } else {
                zmq::message_t only(r.value.data(), r.value.size());
                ok = socket.send(only, zmq::send_flags::none).has_value();
            }
            if (ok) {
                return true;
            }
            if (!try_again()) {
                return false;
            }
        }
    }
    bool send_envelope(header& hh, std::string_view topic, std::string_view body) {
        if (client_) {
            return request(hh, body);
        }
        auto* reliable = transport_->reliable();
        // --pub: the publisher's numbering (publisher id, a sequence per topic), so that a
        // subscriber tells a gap; a --json record that carries both keeps its own (a replay).
        std::uint64_t* topic_counter = nullptr;
        if (is_pub() && (hh.sequence == 0 || hh.publisher_id.is_nil())) {
            topic_counter = &sequencer_.stamp(topic, hh);
        }
        for (;;) {
            bool ok = false;
            if (reliable != nullptr) {
                if (hh.id.is_nil()) {
                    // The id is known before its confirm can arrive (send() reads replies).
                    hh.stamp();
                    transport_->outcomes().sent(line_, hh.id);
                }
                confirm_message_.header() = hh;
                confirm_message_.set_body(body);
                ok = reliable->send(confirm_message_, std::chrono::milliseconds(200));
                hh.id = confirm_message_.header().id;
            } else if (is_pub()) {
                // hh is stamped in place; `topic` may view hh.type, so hh must not move.
                ok = transport_->plain().send(topic, hh, body);
            } else {
                ok = transport_->plain().send(hh, body);
            }
            if (ok) {
                if (topic_counter != nullptr) {
                    ++*topic_counter; // queued: the number is used
                }
                return true;
            }
            if (!try_again()) {
                return false;
            }
        }
    }

    // ---- Lazy Pirate requests (--retries, --request-timeout, --mdp) -------------------------
    // One request through the request client; its reply on stdout. False when the run ends:
    // a request never answered (the service is gone: the next would fare no better), a stop
    // signal or --timeout. An error reply is named and the next request goes.
    bool request(header& hh, std::string_view body) {
        if (hh.id.is_nil()) {
            hh.stamp(); // the id the copies share, known before the first send
        }
        auto o = client_->call(hh, body, limits_);
        using kind = request_client::outcome::kind;
        switch (o.what) {
        case kind::reply:
            if (cfg_.mdp_service) {
                for (const auto& frame : o.frames) {
                    reply_format_.render(nullptr, {}, frame, out_.data());
                }
            } else {
                reply_format_.render(&o.reply.header(), {}, o.reply.body_view(), out_.data());
            }
            out_.flush();
            ++answered_;
            return true;
        case kind::error_reply:
            note_error_reply(patterns::lb_error_reply{std::move(o.error), std::move(o.reason)});
            return true;
        case kind::unanswered:
            ++unanswered_;
            log_.error("request " + std::to_string(line_) + " (" + hh.id.to_string() +
                       ") got no reply: " + o.reason + "; giving up");
            return false;
        case kind::stopped:
            break;
        }
        return false;
    }
    int finish_requests() {
        if (cfg_.stats) {
            stats_.print_final("zmqkit-send");
            log_.info("requests: answered=" + std::to_string(answered_) +
                      " errors=" + std::to_string(error_replies_) + " unanswered=" +
                      std::to_string(unanswered_) + " resent=" + std::to_string(client_->resent()));
        }
        if (const auto code = input_or_timeout_exit()) {
            return *code;
        }
        if (error_replies_ > 0) {
            log_.error(std::to_string(error_replies_) + " of " + std::to_string(stats_.messages()) +
                       " request(s) answered with an error");
        }
        return unanswered_ > 0 || error_replies_ > 0 ? exit_unavailable : exit_ok;
    }

    // ---- replies (--req) ------------------------------------------------------------------
    // An error reply (docs/wire-protocol.md §8.3: the broker's timeout, busy, attempts, a
    // worker's handler error) is printed like any reply, so that stdout keeps one reply per
    // request, and named on stderr; the exit code is 69 (the service could not answer).
    void note_error_reply(const std::optional<patterns::lb_error_reply>& error) {
        if (error) {
            ++error_replies_;
            log_.error("request " + std::to_string(line_) +
                       " was answered with an error: " + error->code + ": " + error->reason);
        }
    }
    bool wait_reply() {
        for (;;) {
            if (cfg_.raw ? receive_raw_reply() : receive_reply()) {
                return true;
            }
            if (!try_again()) {
                return false;
            }
        }
    }
    bool receive_reply() {
        if (!transport_->plain().recv(reply_, std::chrono::milliseconds(200))) {
            return false;
        }
        reply_format_.render(&reply_.header(), {}, reply_.body_view(), out_.data());
        out_.flush();
        note_error_reply(patterns::parse_error_reply(reply_.header(), reply_.body_view()));
        return true;
    }
    bool receive_raw_reply() {
        zmq::socket_t& socket = transport_->raw();
        zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(200)) <= 0) {
            return false;
        }
        bool more = true;
        std::size_t frames = 0;
        while (more) {
            zmq::message_t frame;
            if (!socket.recv(frame, zmq::recv_flags::none)) {
                break;
            }
            more = frame.more();
            reply_format_.render(nullptr, {}, frame.to_string_view(), out_.data());
            if (!more && frames == 0) { // a broker's raw error reply is a single frame
                note_error_reply(patterns::parse_raw_error_reply(frame.to_string_view()));
            }
            ++frames;
        }
        out_.flush();
        return true;
    }

    // ---- shutdown report ------------------------------------------------------------------
    int finish() {
        if (!limits_.stopped()) {
            // Queued messages wait for a handshake: within what is left of --timeout, or of
            // the handshake limit.
            transport_->give_up().wait_for_queued(limits_.deadline());
        }
        if (transport_->give_up().gave_up() && !limits_.stopped()) {
            std::string ignored;
            (void)transport_->outcomes().finish(ignored); // every record it holds: unconfirmed
            return report_unreachable_peers();
        }
        if (transport_->reliable() != nullptr) {
            return finish_confirmed();
        }
        return finish_plain();
    }
    // --wait-confirm: waits (bounded) for the last confirms, counts every outcome, names what
    // is left. A message not confirmed (rejected, or no confirm in time) makes the exit code
    // 76 unless an earlier failure decides it; a peer found unreachable meanwhile, 69.
    int finish_confirmed() {
        auto& reliable = *transport_->reliable();
        bool unreachable = wait_for_confirms(reliable);
        if (!limits_.stopped() && !unreachable && reliable.unconfirmed() > 0) {
            unreachable = !transport_->reach().why_unreachable().empty();
        }
        reliable.raw().set(zmq::sockopt::linger, 0); // what is unconfirmed is reported
        const std::size_t left = reliable.unconfirmed();
        std::string log_error;
        const bool log_written = transport_->outcomes().finish(log_error);
        if (cfg_.stats) {
            stats_.print_final("zmqkit-send");
            log_.info("confirms: confirmed=" + std::to_string(reliable.confirmed()) +
                      " resent=" + std::to_string(reliable.resent()) +
                      " rejected=" + std::to_string(reliable.rejected()) +
                      " unconfirmed=" + std::to_string(left + not_sent_) +
                      " batches=" + std::to_string(reliable.batches()));
        }
        if (unreachable) {
            return report_unreachable_peers();
        }
        report_confirms(reliable, left);
        if (!log_written) {
            log_.error(log_error);
        }
        if (const auto code = input_or_timeout_exit()) {
            return *code;
        }
        if (!log_written) {
            return exit_cannot_create;
        }
        return left > 0 || reliable.rejected() > 0 || not_sent_ > 0 ? exit_unconfirmed : exit_ok;
    }
    // Waits until every message is confirmed, --confirm-timeout passed (a second after a
    // signal) or --timeout. True if the peer was found unreachable meanwhile.
    bool wait_for_confirms(patterns::reliable_sender& reliable) {
        const auto at_most = limits_.stopped()
                                 ? std::min(cfg_.confirm_timeout, std::chrono::milliseconds(1000))
                                 : cfg_.confirm_timeout;
        auto until = clock::now() + at_most;
        if (limits_.deadline() && *limits_.deadline() < until) {
            until = *limits_.deadline();
        }
        const bool stopped_before = limits_.stopped();
        while (reliable.unconfirmed() > 0 && clock::now() < until) {
            (void)reliable.flush(
                std::min(std::chrono::ceil<std::chrono::milliseconds>(until - clock::now()),
                         std::chrono::milliseconds(200)));
            if (!stopped_before && limits_.stop_requested()) {
                until = std::min(until, clock::now() + std::chrono::milliseconds(1000));
            }
            if (!limits_.stopped() && transport_->give_up().check()) {
                return true;
            }
        }
        return false;
    }
    void report_confirms(patterns::reliable_sender& reliable, std::size_t left) {
        if (left > 0) {
            const auto ids = reliable.unconfirmed_ids();
            const std::size_t shown =
                cfg_.verbosity >= 1 ? ids.size() : std::min<std::size_t>(10, ids.size());
            std::string names;
            for (std::size_t i = 0; i < shown; ++i) {
                names += (i == 0 ? "" : ", ") + ids[i].to_string();
            }
            if (shown < ids.size()) {
                names += ", ... (-v lists all)";
            }
            log_.error(std::to_string(left) + " of " + std::to_string(stats_.messages()) +
                       " message(s) not confirmed by the durable proxy within --confirm-timeout " +
                       std::to_string(cfg_.confirm_timeout.count()) + " ms: " + names);
        } else {
            log_.debug(std::to_string(reliable.confirmed()) + " message(s) confirmed, " +
                       std::to_string(reliable.resent()) + " resent");
        }
        if (reliable.rejected() > 0) {
            log_.error(std::to_string(reliable.rejected()) + " of " +
                       std::to_string(stats_.messages()) +
                       " message(s) rejected by the durable proxy (each is named above)");
        }
    }
    // The exit code an input problem (its own code, malformed JSON) or --timeout decides,
    // before what the transport found.
    std::optional<int> input_or_timeout_exit() {
        if (code_ != exit_ok) {
            return code_;
        }
        if (json_errors_ > 0) {
            return exit_data_error;
        }
        if (limits_.timed_out() && !limits_.stopped()) {
            return report_timeout();
        }
        return std::nullopt;
    }
    int report_timeout() {
        log_.error("timed out after " + std::to_string(cfg_.timeout->count()) + " ms (" +
                   std::to_string(stats_.messages()) + " message(s) sent)");
        return exit_timeout;
    }

    // Plain sockets: messages the socket accepted are only queued. Closing the socket and
    // terminating the context waits until the queue is empty or the linger expires; if the
    // shutdown took the whole linger, messages were still queued and have been dropped. (PUB
    // drops messages for absent subscribers by design, so it is not checked.) --timeout bounds
    // the whole run: the linger is at most what is left of it.
    int finish_plain() {
        zmq::socket_t& socket = transport_->raw();
        if (limits_.stopped()) {
            // Bounded flush on a signal: at most a second, less if --linger says so.
            socket.set(zmq::sockopt::linger,
                       static_cast<int>(std::min<std::int64_t>(cfg_.linger.count(), 1000)));
        }
        const bool linger_cut =
            limits_.deadline() && !limits_.stopped() && bound_linger(socket, *limits_.deadline());
        const int linger_ms = socket.get(zmq::sockopt::linger);
        const std::string linger_name =
            linger_cut ? "the rest of --timeout " + std::to_string(cfg_.timeout->count()) + " ms"
                       : "--linger " + std::to_string(linger_ms) + " ms";
        bool check_delivery = stats_.messages() > 0 && !is_pub() && (linger_ms > 0 || linger_cut);
        // No peer yet: wait for one for the linger (what closing would wait anyway); a peer
        // that cannot be reached is reported (exit 69), none at all is "not delivered".
        bool no_peer_within_linger = false;
        auto* monitor = transport_->monitor();
        if (check_delivery && monitor != nullptr && !cfg_.security.enabled() &&
            !limits_.stopped() && monitor->poll() == 0 &&
            monitor->wait(1, std::chrono::milliseconds(linger_ms),
                          [this] { return limits_.stop_requested(); }) == 0) {
            if (!transport_->reach().why_unreachable().empty()) {
                return report_unreachable_peers();
            }
            no_peer_within_linger = true;
            socket.set(zmq::sockopt::linger, 0); // the linger has been waited already
            check_delivery = false;
        }
        const bool peer_seen =
            (monitor != nullptr && monitor->poll() > 0) ||
            (transport_->secured() != nullptr && transport_->secured()->stats().succeeded > 0);
        transport_->close_monitor();
        const auto closing = clock::now();
        transport_->close();
        const auto shutdown_took = clock::now() - closing;
        const bool undelivered = no_peer_within_linger ||
                                 (check_delivery && linger_ms > 0 &&
                                  shutdown_took >= std::chrono::milliseconds(linger_ms) * 9 / 10);
        if (cfg_.stats) {
            stats_.print_final("zmqkit-send");
        }
        report_delivery(undelivered, peer_seen, linger_name);
        if (undelivered && linger_cut) {
            limits_.set_timed_out();
        }
        return plain_exit_code(undelivered);
    }
    void report_delivery(bool undelivered, bool peer_seen, const std::string& linger_name) {
        if (undelivered && !peer_seen) { // nobody ever connected: nothing left the queue
            log_.warn(std::to_string(stats_.messages()) +
                      " messages may not have been delivered (no peer took them within " +
                      linger_name + "; no peer ever connected)");
        } else if (undelivered) {
            log_.warn("messages may not have been delivered (no peer took them within " +
                      linger_name + "; the " + std::to_string(stats_.messages()) +
                      " counted by --stats were queued, not necessarily delivered)");
        }
        if (send_failures_ > 0) {
            log_.error(std::to_string(send_failures_) + " message(s) could not be sent completely");
        }
        if (json_errors_ > 0) {
            log_.error(std::to_string(json_errors_) + " malformed JSON line(s) skipped");
        }
    }
    int plain_exit_code(bool undelivered) {
        if (limits_.timed_out() && !limits_.stopped()) {
            return report_timeout();
        }
        if (code_ != exit_ok) {
            return code_;
        }
        if (send_failures_ > 0) {
            return exit_failure;
        }
        if (json_errors_ > 0) {
            return exit_data_error;
        }
        if (error_replies_ > 0) {
            log_.error(std::to_string(error_replies_) + " of " + std::to_string(stats_.messages()) +
                       " request(s) answered with an error");
            return exit_unavailable;
        }
        return undelivered ? exit_timeout : exit_ok;
    }

    [[nodiscard]] bool is_pub() const noexcept { return cfg_.kind.type == zmq::socket_type::pub; }
    [[nodiscard]] bool is_req() const noexcept { return cfg_.kind.type == zmq::socket_type::req; }

    const send_config& cfg_;
    const logger& log_;
    run_limits limits_;
    send_input input_;
    std::optional<send_transport> transport_; // after the input: an unreadable file first
    std::optional<request_client> client_;    // --retries, --request-timeout, --mdp
    header base_; // the envelope fields of every message (--type, --header, ...)
    patterns::publication_sequencer sequencer_; // --pub
    header h_;
    header json_header_;
    std::string json_body_;
    message confirm_message_;
    message reply_;
    output_buffer out_;
    const message_formatter reply_format_;
    transfer_stats stats_;
    clock::time_point next_send_;
    std::uint64_t line_ = 0;
    std::uint64_t send_failures_ = 0;
    std::uint64_t json_errors_ = 0;
    std::uint64_t not_sent_ = 0; // records read but not sent (malformed JSON, the run ended)
    std::uint64_t error_replies_ = 0;
    std::uint64_t answered_ = 0;   // Lazy Pirate requests answered
    std::uint64_t unanswered_ = 0; // ... never answered, after every resend
    int code_ = exit_ok;           // an input error's exit code, if any
};

} // namespace

// zmqkit-send --titanic --fetch ID [--wait] [--keep]: titanic.reply until it is not pending
// (--wait) or once, the reply's frames on stdout as --mdp prints them, then titanic.close.
class titanic_fetch {
public:
    titanic_fetch(const send_config& cfg, const logger& log, shutdown_signals& signals)
        : cfg_(cfg), log_(log), limits_(cfg, log, signals), client_(cfg, log), format_(cfg.format) {
    }

    int run() {
        if (const int code = client_.open(); code != exit_ok) {
            return code;
        }
        const std::string& id = *cfg_.titanic_fetch;
        auto& titanic = client_.titanic();
        for (;;) {
            auto r = titanic.reply(id);
            if (!r) {
                log_.error("titanic.reply for " + id + " got no answer: " + r.reason());
                return exit_unavailable;
            }
            using state = patterns::titanic_reply::state;
            switch (r->status) {
            case state::ok:
                return print_and_close(id, r->body);
            case state::unknown:
                log_.error("Titanic does not know request " + id +
                           " (400: never stored, or closed already)");
                return exit_data_error;
            case state::error:
                log_.error("Titanic could not answer for request " + id + ": " + r->text);
                return exit_unavailable;
            case state::pending:
                break;
            }
            if (!cfg_.titanic_wait) {
                log_.info("request " + id +
                          " is pending: no reply yet (300); ask again later, "
                          "or give --wait");
                return exit_timeout;
            }
            const auto next = clock::now() + cfg_.titanic_poll;
            const auto until = limits_.deadline() ? std::min(next, *limits_.deadline()) : next;
            if (limits_.wait_for_signal(until)) {
                return exit_timeout;
            }
            if (limits_.past_deadline()) {
                log_.error("request " + id + " still pending when --timeout expired");
                return exit_timeout;
            }
        }
    }

private:
    int print_and_close(const std::string& id, const std::vector<std::string>& body) {
        for (const auto& frame : body) {
            format_.render(nullptr, {}, frame, out_.data());
        }
        out_.flush();
        if (auto error = patterns::parse_mdp_error_reply(body)) {
            log_.error("request " + id + " was answered with an error: " + error->code + ": " +
                       error->reason);
        }
        if (!cfg_.titanic_keep) {
            if (auto closed = client_.titanic().close(id); !closed) {
                log_.warn("titanic.close for " + id + " failed (" + closed.error() +
                          "): the reply stays stored: " + closed.reason());
            }
        }
        return patterns::parse_mdp_error_reply(body) ? exit_unavailable : exit_ok;
    }

    const send_config& cfg_;
    const logger& log_;
    run_limits limits_;
    request_client client_;
    const message_formatter format_;
    output_buffer out_;
};

int run_send(const send_config& cfg, const logger& log, shutdown_signals& signals) {
    if (cfg.titanic_fetch) {
        return titanic_fetch(cfg, log, signals).run();
    }
    return sender(cfg, log, signals).run();
}

} // namespace zmqkit::cli
