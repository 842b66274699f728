// zmqkit-spooler record / replay: a ZeroMQ endpoint into a spool, a spool into an endpoint.
#include "zmqkit-spooler/spooler.hpp"

#include <zmqkit/codec.hpp>
#include <zmqkit/header.hpp>
#include <zmqkit/patterns/pubsub.hpp>
#include <zmqkit/socket.hpp>

#include <zmq.hpp>

#include <algorithm>
#include <cstring>
#include <optional>
#include <thread>

namespace zmqkit::cli {
namespace {

using clock = std::chrono::steady_clock;

} // namespace

namespace {

// Applies the --curve-* / --plain-* settings to a raw socket (before bind/connect) and returns
// its handshake monitor (nullptr without security); destroy it before the socket closes.
std::unique_ptr<handshake_monitor> secure(zmq::context_t& context, zmq::socket_t& sock,
                                          const spooler_config& cfg, const logger& log,
                                          metrics_registry& registry) {
    if (!cfg.security.enabled()) {
        return nullptr;
    }
    try {
        apply_security(sock, cfg.security.socket);
    } catch (const security_error& e) {
        throw usage_error{e.what(), exit_usage};
    }
    return std::make_unique<handshake_monitor>(
        context, sock, "zmqkit-spooler", [&log](std::string_view line) { log.warn(line); },
        &registry);
}

} // namespace

namespace {

// record: a ZeroMQ endpoint into a spool, committed in batches of --batch (and whenever the
// input pauses), until --count, --timeout, --idle-timeout, a stop signal or a failed commit.
class recorder {
public:
    recorder(const spooler_config& cfg, const logger& log, shutdown_signals& signals)
        : cfg_(cfg), log_(log), signals_(signals), spool_(open_spool(cfg, true, registry_)) {
        if (!spool_->recovery().clean()) {
            for (const auto& f : spool_->recovery().findings) {
                log_.warn("recovery: " + f);
            }
        }
        metrics_ = serve_metrics(cfg_.metrics_listen, registry_, log_);
        first_sequence_ = spool_->stats().next_sequence;
        open_socket();
    }

    int run() {
        if (cfg_.timeout) {
            deadline_ = clock::now() + *cfg_.timeout;
        }
        while (!failed_ && !(cfg_.count && received_ >= *cfg_.count)) {
            const auto now = clock::now();
            if (now >= next_check_) { // at most every 50 ms on a busy stream
                next_check_ = now + std::chrono::milliseconds(50);
                if (time_to_stop(now)) {
                    break;
                }
            }
            std::size_t count = 0;
            if (!receive(count)) {
                // Nothing waiting: commit what the batch holds, then wait (bounded).
                if (uncommitted_ > 0 && !commit()) {
                    break;
                }
                wait_for_input(now);
                next_check_ = clock::time_point{};
                continue;
            }
            last_message_ = clock::now();
            store_message(count);
            if (uncommitted_ >= cfg_.batch && !commit()) {
                break;
            }
        }
        if (!failed_) {
            (void)commit();
        }
        log_.info(summary());
        return failed_ ? exit_failure : exit_ok;
    }

private:
    void open_socket() {
        auth_ = start_authenticator(context_, {&cfg_.security}, log_);
        sock_ = zmq::socket_t(context_, cfg_.kind.type);
        sock_.set(zmq::sockopt::linger, 0);
        sock_.set(zmq::sockopt::rcvhwm, cfg_.hwm);
        apply_socket_options(sock_, cfg_.socket_options);
        handshakes_ = secure(context_, sock_, cfg_, log_, registry_);
        if (topic_layout_) {
            for (const auto& topic : cfg_.topics) {
                sock_.set(zmq::sockopt::subscribe, topic);
            }
        }
        if (cfg_.verbosity >= 1 && !handshakes_) { // one monitor per socket: security reports
            events_.emplace(context_, sock_, &log_);
        }
        attach_all(sock_, cfg_.endpoints, cfg_.kind.default_action, log_);
    }

    // A stop signal, the deadline or the idle limit.
    bool time_to_stop(clock::time_point now) {
        if (auto sig = signals_.poll()) {
            log_stop_signal(log_, *sig);
            return true;
        }
        if (deadline_ && now >= *deadline_) {
            return true;
        }
        if (cfg_.idle_timeout && received_ > 0 && now >= last_message_ + *cfg_.idle_timeout) {
            return true;
        }
        if (events_) {
            (void)events_->poll();
        }
        return false;
    }

    // Waits for input at most 200 ms, and never past the deadline or the idle limit.
    void wait_for_input(clock::time_point now) {
        auto wait = std::chrono::milliseconds(200);
        auto until = [&](clock::time_point end) {
            wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(
                                      std::max(end - now, clock::duration::zero())));
        };
        if (deadline_) {
            until(*deadline_);
        }
        if (cfg_.idle_timeout && received_ > 0) {
            until(last_message_ + *cfg_.idle_timeout);
        }
        zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
        (void)zmq::poll(&item, 1, wait);
    }

    // Receives one multipart message without blocking into frames_[0, count).
    bool receive(std::size_t& count) {
        count = 0;
        if (!sock_.recv(frames_[0], zmq::recv_flags::dontwait)) {
            return false;
        }
        bool more = frames_[0].more();
        count = 1;
        while (more) {
            if (count == frames_.size()) {
                frames_.emplace_back();
            }
            (void)sock_.recv(frames_[count], zmq::recv_flags::none);
            more = frames_[count].more();
            ++count;
        }
        return true;
    }

    static std::string_view view(const zmq::message_t& f) {
        return {static_cast<const char*>(f.data()), f.size()};
    }

    void store_message(std::size_t count) {
        std::size_t first = 0;
        std::string_view topic;
        if (topic_layout_) {
            topic = view(frames_[0]);
            first = 1;
        }
        if (cfg_.raw) {
            store_raw(first, count, topic);
        } else {
            store_enveloped(first, count, topic);
        }
    }

    // --raw: every frame is a body under a fresh header whose type is the topic.
    void store_raw(std::size_t first, std::size_t count, std::string_view topic) {
        if (first >= count) { // a one-frame SUB message: the frame is the body
            first = 0;
            topic = {};
        }
        for (std::size_t i = first; i < count; ++i) {
            if (cfg_.count && received_ >= *cfg_.count) {
                break;
            }
            header_ = header::fresh();
            header_.type = std::string(topic);
            encoded_ = encode_header(header_);
            store(encoded_, view(frames_[i]));
        }
    }

    // A zmqkit message, inline [header+body] or [header][body], after the topic frame.
    void store_enveloped(std::size_t first, std::size_t count, std::string_view topic) {
        const std::size_t n = count - first;
        decode_status status;
        std::string_view header_bytes;
        std::string_view body;
        if (n == 1) {
            std::size_t header_size = 0;
            const auto f = view(frames_[first]);
            status = decode_header(f.data(), f.size(), header_, &header_size);
            header_bytes = f.substr(0, header_size);
            body = f.substr(header_size);
        } else if (n == 2) {
            const auto f = view(frames_[first]);
            status = decode_header(f.data(), f.size(), header_);
            header_bytes = f;
            body = view(frames_[first + 1]);
        } else {
            status.code = decode_errc::bad_frame_count;
            status.value = count;
        }
        if (!status.ok()) {
            ++malformed_;
            log_.debug("discarded a malformed message (" + std::to_string(count) +
                       " frame(s)): " + status.message());
            return;
        }
        if (topic_layout_ && topic != header_.type) {
            // The spool keeps header and body: a topic that replay --pub cannot take from the
            // type travels in a user header (the header bytes are re-encoded then).
            header_.set_user_header(recorded_topic_header, topic);
            encoded_ = encode_header(header_);
            header_bytes = encoded_;
        }
        store(header_bytes, body);
    }

    void store(std::string_view header_bytes, std::string_view body) {
        const auto r = spool_->append(header_bytes, body);
        switch (r.outcome) {
        case append_result::status::appended:
            ++appended_;
            ++uncommitted_;
            break;
        case append_result::status::duplicate:
            ++duplicates_;
            break;
        case append_result::status::full:
        case append_result::status::rejected:
            ++refused_;
            log_.warn("message not stored: " + (r.reason.empty() ? "the spool is full" : r.reason));
            break;
        }
        ++received_;
    }

    bool commit() {
        if (!spool_->commit_pending()) {
            uncommitted_ = 0;
            return true;
        }
        if (!spool_->commit()) {
            const auto st = spool_->stats();
            log_.error("cannot commit to " + cfg_.directory.string() + ": " +
                       (st.failure.empty() ? std::string("disk full") : st.failure));
            failed_ = true;
            return false;
        }
        uncommitted_ = 0;
        return true;
    }

    std::string summary() const {
        std::string text =
            "recorded " + std::to_string(appended_) + " message(s) into " + cfg_.directory.string();
        if (appended_ > 0) {
            text += " (sequences from " + std::to_string(first_sequence_) + ", next " +
                    std::to_string(spool_->stats().next_sequence) + ")";
        }
        if (duplicates_ > 0) {
            text += ", " + std::to_string(duplicates_) + " duplicate(s) skipped";
        }
        if (malformed_ > 0) {
            text += ", " + std::to_string(malformed_) + " malformed discarded";
        }
        if (refused_ > 0) {
            text += ", " + std::to_string(refused_) + " refused";
        }
        return text;
    }

    const spooler_config& cfg_;
    const logger& log_;
    shutdown_signals& signals_;
    metrics_registry registry_;
    std::unique_ptr<spool> spool_;
    std::unique_ptr<metrics_server> metrics_;
    std::uint64_t first_sequence_ = 0;
    // Socket side; destroyed in reverse: the monitors before the socket, the socket before
    // the authenticator and the context.
    zmq::context_t context_;
    std::unique_ptr<authenticator> auth_;
    zmq::socket_t sock_;
    std::unique_ptr<handshake_monitor> handshakes_;
    std::optional<handshake_counter> events_;
    const bool topic_layout_ = cfg_.kind.type == zmq::socket_type::sub;

    std::vector<zmq::message_t> frames_ = std::vector<zmq::message_t>(4);
    header header_;
    std::string encoded_;
    std::uint64_t appended_ = 0;
    std::uint64_t duplicates_ = 0;
    std::uint64_t malformed_ = 0;
    std::uint64_t refused_ = 0;
    std::uint64_t uncommitted_ = 0; // appends since the last commit
    std::uint64_t received_ = 0;    // messages (each raw frame counts as one with --raw)
    bool failed_ = false;
    std::optional<clock::time_point> deadline_;
    clock::time_point last_message_{};
    clock::time_point next_check_{};
};

} // namespace

int run_record(const spooler_config& cfg, const logger& log, shutdown_signals& signals) {
    recorder r(cfg, log, signals);
    return r.run();
}

namespace {

// replay: a spool into an endpoint, from --from-sequence / --since, paced by --rate, after
// --wait-peers peers (and, with --pub, their subscriptions) are there.
class replayer {
public:
    replayer(const spooler_config& cfg, const logger& log, shutdown_signals& signals)
        : cfg_(cfg), log_(log), signals_(signals), spool_(open_spool(cfg, false, registry_)),
          // --pub sends like a PUB from an XPUB, which also shows the subscriptions:
          // --wait-peers waits for them, not only for the connections (a PUB drops what it
          // sends before a subscriber's subscription has arrived).
          sock_(context_, pub_ ? zmq::socket_type::xpub : cfg.kind.type),
          reach_(cfg.endpoints, cfg.kind.default_action) {
        auth_ = start_authenticator(context_, {&cfg_.security}, log_);
        if (pub_) {
            sock_.set(zmq::sockopt::xpub_verbose, 1); // every subscriber's subscription
            patterns::bound_subscriptions(sock_,
                                          cfg_.security.socket); // a hostile one can't crash it
        }
        sock_.set(zmq::sockopt::linger, static_cast<int>(cfg_.linger.count()));
        sock_.set(zmq::sockopt::sndhwm, cfg_.hwm);
        sock_.set(zmq::sockopt::sndtimeo, 200);
        apply_socket_options(sock_, cfg_.socket_options);
        handshakes_ = secure(context_, sock_, cfg_, log_, registry_);
        // One monitor per socket: with security the handshake_monitor counts the peers.
        if (!handshakes_) {
            peers_.emplace(context_, sock_, cfg_.verbosity >= 1 ? &log_ : nullptr);
        }
        // A client whose peers cannot be reached (a refused handshake, a host that does not
        // resolve) gives up after the limit with the reason, as zmqkit-send does.
        client_handshakes_ = cfg_.security.server() ? nullptr : handshakes_.get();
        reach_.watch(client_handshakes_, peers_ ? &*peers_ : nullptr);
        give_up_.emplace(reach_, client_handshakes_, cfg_.security.server(), cfg_.timeout);
        attach_all(sock_, cfg_.endpoints, cfg_.kind.default_action, log_);
    }

    int run() {
        if (cfg_.wait_peers > 0) {
            if (const auto rc = wait_for_peers()) {
                return *rc;
            }
        }
        if (cfg_.rate) {
            interval_ = std::chrono::duration_cast<clock::duration>(
                std::chrono::duration<double>(1.0 / *cfg_.rate));
        }
        next_send_ = clock::now();
        spool_->for_each(cfg_.from_sequence,
                         [&](const spooled_message& m, bool) { return replay(m); });
        log_.info(summary());
        return finish();
    }

private:
    bool stop() {
        if (stopped_) {
            return true;
        }
        if (auto sig = signals_.poll()) {
            log_stop_signal(log_, *sig);
            stopped_ = true;
        }
        return stopped_;
    }

    int report_refused() {
        return give_up_->report(log_, "no message could be sent to", cfg_.endpoints, sock_);
    }

    // --wait-peers: the peers, then (--pub) their subscriptions. An exit code when replay
    // must not start (stopped, or the peers did not come within the limit).
    std::optional<int> wait_for_peers() {
        const auto limit = cfg_.timeout.value_or(std::chrono::milliseconds(10000));
        auto stopping = [this] { return stop(); };
        const auto seen = handshakes_
                              ? wait_secured_peers(*handshakes_, cfg_.wait_peers, limit, stopping)
                              : peers_->wait(cfg_.wait_peers, limit, stopping);
        if (stopped_) {
            return exit_ok;
        }
        if (seen == 0 && !reach_.why_unreachable().empty()) {
            return report_refused();
        }
        if (seen < cfg_.wait_peers) {
            log_.error("only " + std::to_string(seen) + " of " + std::to_string(cfg_.wait_peers) +
                       " peer(s) connected within " + std::to_string(limit.count()) + " ms");
            sock_.set(zmq::sockopt::linger, 0);
            return exit_unavailable;
        }
        if (pub_ && !wait_for_subscriptions(limit)) {
            return exit_unavailable;
        }
        if (stopped_) {
            return exit_ok;
        }
        return std::nullopt;
    }

    // Reads subscriptions until --wait-peers of them came (false: the limit passed first).
    bool wait_for_subscriptions(std::chrono::milliseconds limit) {
        std::size_t subscribed = 0;
        for (zmq::message_t subscription; subscribed < cfg_.wait_peers && !stop();) {
            if (sock_.recv(subscription, zmq::recv_flags::dontwait)) {
                subscribed += !subscription.empty() && subscription.data<char>()[0] == 1 ? 1U : 0U;
                continue;
            }
            const auto left = give_up_->started() + limit - clock::now();
            if (left <= clock::duration::zero()) {
                log_.error("only " + std::to_string(subscribed) + " of " +
                           std::to_string(cfg_.wait_peers) + " subscriber(s) subscribed within " +
                           std::to_string(limit.count()) + " ms");
                sock_.set(zmq::sockopt::linger, 0);
                return false;
            }
            zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
            (void)zmq::poll(&item, 1,
                            std::min(std::chrono::ceil<std::chrono::milliseconds>(left),
                                     std::chrono::milliseconds(200)));
        }
        return true;
    }

    // --rate: waits for the next send's turn (false: a stop signal came). Otherwise checks
    // for a stop signal every 64 messages.
    bool pace() {
        if (!interval_) {
            return (sent_ & 63U) != 0 || !stop();
        }
        for (auto now = clock::now(); now < next_send_; now = clock::now()) {
            const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_send_ - now);
            if (auto sig = signals_.wait(wait)) {
                log_stop_signal(log_, *sig);
                stopped_ = true;
                return false;
            }
        }
        next_send_ = std::max(next_send_ + *interval_, clock::now() - *interval_);
        return true;
    }

    // One record out (false: stop replaying).
    bool replay(const spooled_message& m) {
        if (cfg_.since_ns && m.appended_ns < *cfg_.since_ns) {
            return true;
        }
        if (cfg_.count && sent_ >= *cfg_.count) {
            return false;
        }
        if (!pace()) {
            return false;
        }
        std::string_view header_bytes = m.header;
        if (pub_) {
            std::string_view topic;
            header_bytes = publication(m, topic);
            if (!send_part(topic, true)) {
                return false;
            }
        }
        // [header][body]: the separate layout, which every zmqkit reader accepts.
        if (!send_part(header_bytes, true) || !send_part(m.body, false)) {
            return false;
        }
        ++sent_;
        bytes_ += m.header.size() + m.body.size();
        if (!first_sent_) {
            first_sent_ = m.sequence;
        }
        last_sent_ = m.sequence;
        return true;
    }

    // --pub: the topic (the type, or the topic recorded beside it) and the header to send.
    std::string_view publication(const spooled_message& m, std::string_view& topic) {
        const bool decoded = decode_header(m.header.data(), m.header.size(), header_).ok();
        topic = decoded ? std::string_view(header_.type) : std::string_view();
        const auto* recorded = decoded ? header_.find_user_header(recorded_topic_header) : nullptr;
        if (recorded == nullptr) {
            return m.header;
        }
        // Recorded from a topic other than the type: that topic again, and the header as it
        // was published.
        recorded_topic_ = *recorded;
        topic = recorded_topic_;
        std::erase_if(header_.user_headers,
                      [](const auto& entry) { return entry.first == recorded_topic_header; });
        encoded_ = encode_header(header_);
        return encoded_;
    }

    bool send_part(std::string_view data, bool more) {
        for (;;) {
            if (sock_.send(zmq::buffer(data.data(), data.size()),
                           more ? zmq::send_flags::sndmore : zmq::send_flags::none)) {
                return true;
            }
            if (stop() || give_up_->check()) { // the send waited sndtimeo: no room, no peer
                return false;
            }
        }
    }

    std::string summary() const {
        std::string text = "replayed " + std::to_string(sent_) + " message(s), " +
                           std::to_string(bytes_) + " bytes";
        if (first_sent_) {
            text += " (sequences " + std::to_string(*first_sent_) + ".." +
                    std::to_string(last_sent_) + ")";
        }
        return text;
    }

    int finish() {
        if (!stopped_ && sent_ > 0) {
            // Queued messages wait for a handshake, at most what is left of the limit.
            give_up_->wait_for_queued(std::nullopt);
        }
        if (give_up_->gave_up() && !stopped_) {
            return report_refused();
        }
        if (stopped_) {
            sock_.set(zmq::sockopt::linger,
                      static_cast<int>(std::min<std::int64_t>(cfg_.linger.count(), 1000)));
        } else if (!pub_ && sent_ > 0 && peers_ && peers_->poll() == 0) {
            log_.debug(
                "no peer has connected yet; queued messages leave if one comes within --linger");
        }
        return exit_ok;
    }

    const spooler_config& cfg_;
    const logger& log_;
    shutdown_signals& signals_;
    metrics_registry registry_;
    std::unique_ptr<spool> spool_;
    const bool pub_ = cfg_.kind.type == zmq::socket_type::pub;
    // Destroyed in reverse: the monitors before the socket, the socket before the
    // authenticator and the context.
    zmq::context_t context_;
    std::unique_ptr<authenticator> auth_;
    zmq::socket_t sock_;
    std::unique_ptr<handshake_monitor> handshakes_;
    std::optional<handshake_counter> peers_;
    handshake_monitor* client_handshakes_ = nullptr;
    peer_reachability reach_;
    std::optional<handshake_give_up> give_up_;

    bool stopped_ = false;
    std::optional<clock::duration> interval_;
    clock::time_point next_send_{};
    std::uint64_t sent_ = 0;
    std::uint64_t bytes_ = 0;
    std::optional<std::uint64_t> first_sent_;
    std::uint64_t last_sent_ = 0;
    header header_;
    std::string recorded_topic_;
    std::string encoded_;
};

} // namespace

int run_replay(const spooler_config& cfg, const logger& log, shutdown_signals& signals) {
    replayer r(cfg, log, signals);
    return r.run();
}

} // namespace zmqkit::cli
