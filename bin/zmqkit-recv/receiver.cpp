#include "zmqkit-recv/receiver.hpp"

#include "common/message_format.hpp"

#include <zmqkit/encoding.hpp>
#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/patterns/pubsub.hpp>
#include <zmqkit/socket.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace zmqkit::cli {
namespace {
using clock = std::chrono::steady_clock;

// What both receivers (plain and --ack) share: the socket's context, its ZAP handler and its
// connection events; the run's limits (a signal, --timeout, --idle-timeout, --count); the
// output and statistics; and the report at the end. Members in the order they must close:
// the context last.
class receive_run {
protected:
    receive_run(const recv_config& cfg, const logger& log, shutdown_signals& signals)
        : cfg_(cfg), log_(log), signals_(signals), format_(cfg.format, cfg.key_delimiter) {
        auth_ = start_authenticator(context_, {&cfg.security}, log);
        if (cfg.timeout) {
            deadline_ = clock::now() + *cfg.timeout;
        }
    }

    // The socket's connection events (handshakes, and with -v connected, disconnected,
    // handshake failed on stderr) into `slot`, a member of the receiver declared after its
    // socket (a monitor stops before its socket closes). With security the socket's
    // handshake_monitor counts them instead (one monitor per socket).
    void watch(std::optional<handshake_counter>& slot, zmq::socket_t& socket) {
        if (!cfg_.security.enabled()) {
            events_ = &slot.emplace(context_, socket, cfg_.verbosity >= 1 ? &log_ : nullptr);
        }
    }
    [[nodiscard]] handshake_counter* events() const noexcept { return events_; }

    [[nodiscard]] bool count_reached() const {
        return cfg_.count && stats_.messages() >= *cfg_.count;
    }
    // A SIGINT/SIGTERM (logged): the run stops.
    bool signalled() {
        stopped_ = stopped_ || stop_signal_pending(signals_, log_);
        return stopped_;
    }
    // --timeout passed at `now`: a busy stream still ends then.
    bool past_deadline(clock::time_point now) {
        timed_out_ = timed_out_ || (deadline_ && now >= *deadline_);
        return timed_out_;
    }
    // --idle-timeout passed since the last good message (only good messages count).
    bool idle_at(clock::time_point now) {
        idle_ = idle_ || (cfg_.idle_timeout && stats_.messages() > 0 && now >= idle_end());
        return idle_;
    }
    [[nodiscard]] clock::time_point idle_end() const { return last_message_ + *cfg_.idle_timeout; }
    // How long a wait for the next message may take: `at_most`, less before --timeout.
    [[nodiscard]] std::chrono::milliseconds wait_at_most(std::chrono::milliseconds at_most,
                                                         clock::time_point now) const {
        if (deadline_) {
            at_most =
                std::min(at_most, std::chrono::ceil<std::chrono::milliseconds>(*deadline_ - now));
        }
        return at_most;
    }
    // `h`: the envelope, when the message had one; with --metrics-listen its age at arrival
    // (now - its timestamp) goes into zmqkit_recv_age_seconds. One clock read, no lock. With
    // -v each message is a debug line with its ids. `note`: what the sequence check found.
    void message_arrived(std::size_t bytes, const header* h = nullptr,
                         const sequence_note* note = nullptr) {
        if (h != nullptr && log_.enabled(log_level::debug)) {
            const message_log_fields ids(*h);
            log_.core().write(log_level::debug, "received", ids.fields());
        }
        if (note != nullptr &&
            (note->verdict != patterns::sequence_verdict::untracked || note->from_snapshot)) {
            ++sequenced_;
        }
        if (age_ != nullptr && h != nullptr && h->timestamp_ns != 0) {
            const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
            age_->observe(std::chrono::nanoseconds(
                now_ns -
                static_cast<std::int64_t>(std::min<std::uint64_t>(h->timestamp_ns, INT64_MAX))));
        }
        stats_.add(bytes);
        if (cfg_.idle_timeout) {
            last_message_ = clock::now();
        }
    }

    // A sequenced publication (publisher id and sequence number) received on a socket of the
    // tool's own, checked for gaps, duplicates and late arrivals (`topic`: its topic frame,
    // else the envelope's type). Untracked for anything else.
    sequence_note observe_sequence(const header& h, std::string_view topic) {
        sequence_note note;
        if (h.sequence == 0 || h.publisher_id.is_nil()) {
            return note;
        }
        const auto& id = h.publisher_id.bytes();
        const std::string_view publisher(reinterpret_cast<const char*>(id.data()), id.size());
        auto& e = sequence_event_; // reused: its strings keep their capacity
        note.verdict = sequences_.observe(
            publisher, topic.empty() ? std::string_view(h.type) : topic, h.sequence, &e);
        note.missing_first = e.missing_first;
        note.missing_last = e.missing_last;
        if (note.verdict == patterns::sequence_verdict::gap ||
            note.verdict == patterns::sequence_verdict::duplicate ||
            note.verdict == patterns::sequence_verdict::late) {
            e.message = &h;
            report_sequence(e);
            e.message = nullptr;
        }
        return note;
    }

    // A gap, a duplicate or a late arrival: counted, and a warning with the publisher, the
    // topic and the numbers (at most 20 lines a second of each kind; the next one says how
    // many were held back), with the ids of the message that showed it.
    void report_sequence(const patterns::sequence_event& e) {
        const std::string publisher = publisher_name(e.publisher);
        std::string line;
        std::string_view kind;
        switch (e.verdict) {
        case patterns::sequence_verdict::gap: {
            const auto missing = e.missing_last - e.missing_first + 1;
            ++seq_gaps_;
            seq_missing_ += missing;
            gaps_.add();
            missing_.add(missing);
            kind = "gap";
            line = "gap: " + std::to_string(missing) + " message(s) of publisher " + publisher +
                   " on '" + e.topic + "' never arrived (sequence " +
                   std::to_string(e.missing_first) +
                   (missing > 1 ? ".." + std::to_string(e.missing_last) : std::string()) +
                   "; this one is " + std::to_string(e.sequence) + ")";
            break;
        }
        case patterns::sequence_verdict::duplicate:
            ++seq_duplicates_;
            duplicates_.add();
            kind = "duplicate";
            line = "duplicate: sequence " + std::to_string(e.sequence) + " of publisher " +
                   publisher + " on '" + e.topic + "' arrived again";
            break;
        case patterns::sequence_verdict::late:
            ++seq_late_;
            late_.add();
            kind = "late";
            line = "late: sequence " + std::to_string(e.sequence) + " of publisher " + publisher +
                   " on '" + e.topic + "' arrived after it was reported missing";
            break;
        default:
            return;
        }
        if (const auto held = sequence_lines_.admit(kind)) {
            line += log_rate_limiter::suppressed_suffix(*held);
            if (e.message != nullptr) {
                const message_log_fields ids(*e.message);
                log_.core().write(log_level::warn, line, ids.fields());
            } else {
                log_.warn(line);
            }
        }
    }
    static std::string publisher_name(std::string_view bytes) {
        if (bytes.size() != message_id::size) {
            return to_hex(bytes);
        }
        std::array<std::uint8_t, message_id::size> id{};
        std::memcpy(id.data(), bytes.data(), id.size());
        return message_id(id).to_string();
    }

    // --stats: the sequence check's counts after the transfer numbers, when publications
    // were sequenced.
    void describe_sequences() {
        if (sequenced_ == 0 && seq_duplicates_ == 0) {
            return;
        }
        stats_.set_detail(" sequenced=" + std::to_string(sequenced_) + " gaps=" +
                          std::to_string(seq_gaps_) + " missing=" + std::to_string(seq_missing_) +
                          " duplicates=" + std::to_string(seq_duplicates_) +
                          " late=" + std::to_string(seq_late_));
    }
    // --fail-on-gap and publications were missing: logged, exit 65.
    std::optional<int> gap_failure() {
        if (!cfg_.fail_on_gap || seq_gaps_ == 0) {
            return std::nullopt;
        }
        log_.error(std::to_string(seq_missing_) + " publication(s) missing in " +
                   std::to_string(seq_gaps_) + " gap(s) (--fail-on-gap)");
        return exit_data_error;
    }

    // Nothing arrived by --timeout: a peer that cannot be reached (a host that does not
    // resolve, a refused handshake; for a secured client also none made at all) is exit 69
    // with the reason, as every tool reports it; nullopt otherwise (a plain timeout).
    std::optional<int> report_unreachable_peer(handshake_monitor* secured) {
        if (!timed_out_ || stats_.messages() != 0 || cfg_.security.server()) {
            return std::nullopt;
        }
        auto why = reach_.why_unreachable();
        if (why.empty()) {
            why = handshake_problem(secured);
        }
        if (why.empty()) {
            return std::nullopt;
        }
        return report_unreachable(log_, "nothing could be received from", cfg_.endpoints,
                                  *cfg_.timeout, why);
    }
    [[nodiscard]] bool count_missed() const {
        return cfg_.count && stats_.messages() < *cfg_.count;
    }
    [[nodiscard]] std::string count_text() const {
        return std::to_string(stats_.messages()) + " message(s)" +
               (cfg_.count ? " of " + std::to_string(*cfg_.count) : std::string());
    }

    const recv_config& cfg_;
    const logger& log_;
    shutdown_signals& signals_;
    peer_reachability reach_{cfg_.endpoints, cfg_.kind.default_action};
    zmq::context_t context_;
    std::unique_ptr<authenticator> auth_;
    metrics_registry registry_;
    // --metrics-listen: the registry over HTTP, and the age of each message at arrival.
    std::unique_ptr<metrics_server> metrics_ = serve_metrics(cfg_.metrics_listen, registry_, log_);
    histogram* age_ =
        metrics_ ? &registry_.get_histogram("zmqkit_recv_age_seconds",
                                            "Age of each enveloped message when it arrived: now "
                                            "minus its envelope timestamp (clocks of both hosts)")
                 : nullptr;
    // Sequenced publications: their streams, what was found, at most 20 lines a second of each.
    patterns::sequence_tracker sequences_;
    patterns::sequence_event sequence_event_;
    counter& gaps_ = registry_.get_counter("zmqkit_recv_gaps_total",
                                           "Gaps found in sequenced publications (missing ranges)");
    counter& missing_ = registry_.get_counter(
        "zmqkit_recv_missing_messages_total",
        "Sequenced publications that never arrived (the messages in those gaps)");
    counter& duplicates_ = registry_.get_counter(
        "zmqkit_recv_duplicate_publications_total",
        "Sequenced publications that arrived more than once (by publisher and sequence number)");
    counter& late_ = registry_.get_counter(
        "zmqkit_recv_late_publications_total",
        "Sequenced publications that arrived after they were reported missing (out of order)");
    log_rate_limiter sequence_lines_{std::chrono::seconds(1), {}, 20};
    std::uint64_t sequenced_ = 0; // received publications that carried a sequence number
    std::uint64_t seq_gaps_ = 0;
    std::uint64_t seq_missing_ = 0;
    std::uint64_t seq_duplicates_ = 0;
    std::uint64_t seq_late_ = 0;
    handshake_counter* events_ = nullptr;
    const message_formatter format_;
    output_buffer out_;
    transfer_stats stats_;
    std::optional<clock::time_point> deadline_;
    clock::time_point last_message_{};
    bool timed_out_ = false;
    bool idle_ = false;
    bool stopped_ = false;
};

// --ack: a reliable receiver. A message is acked only after its output reached stdout
// (flushed), so a crash of this tool or its reader loses nothing: the proxy redelivers.
class acked_receiver final : receive_run {
public:
    acked_receiver(const recv_config& cfg, const logger& log, shutdown_signals& signals)
        : receive_run(cfg, log, signals) {}

    int run() {
        if (const int code = open(); code != exit_ok) {
            return code;
        }
        stats_.start();
        bool failed = false;
        try {
            failed = !receive_all();
        } catch (const config_error& e) {
            // The proxy refused --group/--from (a start before its log start, in the future).
            log_.error(e.what());
            return exit_usage;
        }
        if (!failed) {
            (void)settle();
        }
        return finish(failed);
    }

private:
    int open() {
        patterns::reliable_receiver_options ro;
        ro.endpoint = endpoint_spec(cfg_.endpoints);
        ro.credit = cfg_.credit;
        ro.group = cfg_.group;
        ro.start = cfg_.start;
        ro.ack_batch = std::size_t{1} << 30; // acked here, after the output is flushed
        ro.socket.recv_hwm = cfg_.hwm;
        ro.socket.linger = cfg_.linger;
        ro.socket.send_timeout = std::chrono::milliseconds(200);
        ro.socket.name = "zmqkit-recv";
        ro.socket.registry = &registry_;
        ro.socket.security = cfg_.security.socket;
        ro.configure = [this](zmq::socket_t& raw) {
            apply_socket_options(raw, cfg_.socket_options);
            watch(monitor_, raw);
        };
        if (const int code = start_component(receiver_, log_, context_, ro); code != exit_ok) {
            return code;
        }
        reach_.watch(cfg_.security.server() ? nullptr : receiver_->handshakes(), events());
        return exit_ok;
    }
    // Until the count, a signal, --timeout or --idle-timeout. False if stdout failed.
    bool receive_all() {
        const std::size_t ack_every =
            std::max<std::size_t>(1, std::min<std::size_t>(64, cfg_.credit / 2));
        for (;;) {
            if (count_reached() || signalled()) {
                return true;
            }
            if (events() != nullptr) {
                (void)events()->poll();
            }
            const auto now = clock::now();
            if (past_deadline(now) || idle_at(now)) {
                return true;
            }
            auto d = receiver_->recv(
                wait_at_most(std::chrono::milliseconds(unacked_.empty() ? 200 : 0), now));
            if (!d) {
                if (!settle()) { // nothing more right now: ack what was written
                    return false;
                }
                if (cfg_.stats) {
                    stats_.maybe_print_live("zmqkit-recv");
                }
                if (cfg_.exit_at_end && reached_the_end()) {
                    return true;
                }
                continue;
            }
            format_.render(&d->message.header(), {}, d->message.body_view(), out_.data());
            message_arrived(d->message.body_size(), &d->message.header());
            unacked_.push_back(std::move(*d));
            if (unacked_.size() >= ack_every && !settle()) {
                return false;
            }
        }
    }
    // --exit-at-end, when nothing arrived for a moment and everything written was acked: asks
    // the proxy what is left (its answer comes through recv()); true once it says nothing is
    // ready and nothing is in flight to us.
    bool reached_the_end() {
        if (const auto left = receiver_->pending(); left && asked_) {
            asked_ = false;
            if (left->ready == 0 && left->in_flight == 0) {
                at_end_ = true;
                log_.info("end: the proxy has nothing ready and nothing in flight for this "
                          "consumer (" +
                          std::to_string(stats_.messages()) + " message(s) written)");
                return true;
            }
        }
        if (!asked_) {
            receiver_->ask_pending();
            asked_ = true;
        }
        return false;
    }
    // Flushes stdout, then acks what it holds. False if stdout is gone.
    bool settle() {
        if (unacked_.empty()) {
            return true;
        }
        if (!out_.flush()) {
            log_.error("cannot write to stdout; " + std::to_string(unacked_.size()) +
                       " message(s) left unacked (the proxy redelivers them)");
            unacked_.clear();
            return false;
        }
        for (const auto& d : unacked_) {
            receiver_->ack(d);
        }
        receiver_->flush_acks();
        unacked_.clear();
        return true;
    }
    int finish(bool failed) {
        if (deadline_) {
            (void)bound_linger(receiver_->raw(), *deadline_); // --timeout bounds the whole run
        }
        if (cfg_.stats) {
            stats_.print_final("zmqkit-recv");
        }
        if (receiver_->duplicates() > 0) {
            log_.info(std::to_string(receiver_->duplicates()) +
                      " redelivered message(s) already output were skipped");
        }
        if (failed) {
            return exit_failure;
        }
        if (stopped_) {
            return exit_ok;
        }
        if (const auto code = report_unreachable_peer(receiver_->handshakes())) {
            return *code;
        }
        if ((timed_out_ && (count_missed() || stats_.messages() == 0)) ||
            ((idle_ || at_end_) && count_missed())) {
            log_.error(std::string(timed_out_ ? "timed out" : (idle_ ? "idle" : "at the end")) +
                       " with " + count_text());
            return exit_timeout;
        }
        return exit_ok;
    }

    std::optional<patterns::reliable_receiver> receiver_;
    std::optional<handshake_counter> monitor_;
    std::vector<patterns::delivery> unacked_;
    bool asked_ = false;  // --exit-at-end: a PENDING question is out
    bool at_end_ = false; // ... and the answer was: nothing left
};

// Without --ack: a plain zmqkit socket (or raw frames), with --rep a reply to each request.
class plain_receiver final : receive_run {
public:
    plain_receiver(const recv_config& cfg, const logger& log, shutdown_signals& signals)
        : receive_run(cfg, log, signals) {}

    int run() {
        open();
        stats_.start();
        receive_all();
        (void)out_.flush();
        return finish();
    }

private:
    // The socket: with --sub (envelopes) a zmqkit subscriber, which checks the sequence
    // numbers and takes the snapshots; otherwise a zmqkit socket of the tool's own.
    void open() {
        auto options = tool_socket_options("zmqkit-recv", cfg_.hwm, cfg_.linger, registry_,
                                           cfg_.security.socket);
        const bool sub = cfg_.kind.type == zmq::socket_type::sub;
        if (sub && !cfg_.raw) {
            patterns::subscriber_options so;
            so.name = "zmqkit-recv";
            so.sockets = std::move(options);
            so.registry = &registry_; // endpoints: attached below, with the tool's log lines
            sock_ = &subscriber_.emplace(context_, std::move(so)).socket();
            subscriber_->on_sequence_event(
                [this](const patterns::sequence_event& e) { report_sequence(e); });
            sock_->on_decode_error([this](const decode_status& status) {
                ++decode_errors_;
                if (cfg_.verbosity >= 1) {
                    log_.warn("discarded a malformed message: " + status.message());
                }
            });
        } else {
            sock_ = &own_socket_.emplace(context_, cfg_.kind.type, std::move(options));
        }
        zmqkit::socket& sock = *sock_;
        apply_socket_options(sock.raw(), cfg_.socket_options);
        watch(monitor_, sock.raw()); // a refused handshake is reported at --timeout
        reach_.watch(cfg_.security.server() ? nullptr : sock.handshakes(), events());
        attach_all(sock, cfg_.endpoints, cfg_.kind.default_action, log_);
        if (!sub) {
            return;
        }
        // After connecting: a connected SUB sends its subscriptions in this order, so the
        // forwarder sees each live subscription before its snapshot request.
        for (const auto& topic : cfg_.topics) {
            if (cfg_.snapshot) {
                subscriber_->subscribe_with_snapshot(topic);
            } else {
                sock.raw().set(zmq::sockopt::subscribe, topic);
            }
        }
        if (cfg_.snapshot) {
            snapshot_deadline_ = clock::now() + cfg_.snapshot_timeout;
        }
    }

    // --snapshot: when it came, says so; when it did not come in time, goes on with the live
    // stream (what was held back for it first).
    void check_snapshot(clock::time_point now) {
        if (!snapshot_deadline_) {
            return;
        }
        if (!subscriber_->snapshot_pending()) {
            log_.info("snapshot: " + std::to_string(subscriber_->stats().snapshot_values) +
                      " value(s) from the last-value cache; live publications follow");
            snapshot_deadline_.reset();
        } else if (now >= *snapshot_deadline_) {
            (void)subscriber_->abandon_snapshots();
            log_.warn("no snapshot within --snapshot-timeout " +
                      std::to_string(cfg_.snapshot_timeout.count()) +
                      " ms (is the forwarder running with --last-value-cache?); going on with "
                      "the live publications");
            snapshot_deadline_.reset();
        }
    }

    // Deadlines and signals are checked at the top of the loop, whatever the previous
    // message was (a flood of malformed ones included), at most every 50 ms: the clock every
    // 16 messages (vDSO, no syscall), the signal mask (sigtimedwait) when the interval passed.
    bool time_to_stop() {
        if (++since_clock_ < 16) {
            return false;
        }
        since_clock_ = 0;
        const auto now = clock::now();
        if (now < next_check_) {
            return false;
        }
        next_check_ = now + std::chrono::milliseconds(50);
        if (events() != nullptr) {
            (void)events()->poll();
        }
        check_snapshot(now);
        if (signalled() || past_deadline(now) || idle_at(now)) {
            return true;
        }
        if (cfg_.stats) {
            stats_.maybe_print_live("zmqkit-recv");
        }
        return false;
    }
    void receive_all() {
        for (;;) {
            if (count_reached() || time_to_stop()) {
                return;
            }
            if (subscriber_) {
                if (!subscriber_->recv(publication_, std::chrono::milliseconds(0))) {
                    if (!wait_for_input()) {
                        return;
                    }
                    continue;
                }
                take_publication();
                out_.maybe_flush();
                continue;
            }
            std::size_t count = 0;
            if (!receive(count)) {
                if (!wait_for_input()) {
                    return;
                }
                continue;
            }
            if (count == 0) { // a ROUTER message with nothing after the routing id
                ++decode_errors_;
                if (cfg_.verbosity >= 1) {
                    log_.warn("discarded a message with no frames after its routing id");
                }
                continue;
            }
            if (!(cfg_.raw ? take_raw(count) : take_envelope(count))) {
                stopped_ = true;
                return;
            }
            out_.maybe_flush();
        }
    }
    // Nothing to read now: flushes the output and waits (bounded) for the socket. False when
    // the run ends (--timeout, --idle-timeout).
    bool wait_for_input() {
        (void)out_.flush();
        if (cfg_.stats) {
            stats_.maybe_print_live("zmqkit-recv");
        }
        const auto now = clock::now();
        if (past_deadline(now) || idle_at(now)) {
            return false;
        }
        auto wait = wait_at_most(std::chrono::milliseconds(200), now);
        if (cfg_.idle_timeout && stats_.messages() > 0) {
            wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(idle_end() - now));
        }
        zmq::pollitem_t item{sock_->raw().handle(), 0, ZMQ_POLLIN, 0};
        (void)zmq::poll(&item, 1, wait);
        since_clock_ = 16; // after a wait, check at the top of the loop
        next_check_ = clock::time_point{};
        return true;
    }
    // One multipart message into frames_[0, count) without blocking. Routing frames of a
    // ROUTER (the peer's id, and the empty delimiter a REQ peer adds) are removed unless raw.
    bool receive(std::size_t& count) {
        count = 0;
        zmq::socket_t& s = sock_->raw();
        bool more = false;
        if (cfg_.kind.type == zmq::socket_type::router && !cfg_.raw) {
            if (!s.recv(routing_, zmq::recv_flags::dontwait)) {
                return false;
            }
            more = routing_.more();
            if (more) {
                (void)s.recv(frames_[0], zmq::recv_flags::none);
                more = frames_[0].more();
                if (frames_[0].empty() && more) { // REQ envelope delimiter
                    (void)s.recv(frames_[0], zmq::recv_flags::none);
                    more = frames_[0].more();
                }
                count = 1;
            }
        } else {
            if (!s.recv(frames_[0], zmq::recv_flags::dontwait)) {
                return false;
            }
            more = frames_[0].more();
            count = 1;
        }
        while (more) {
            if (count == frames_.size()) {
                frames_.emplace_back();
            }
            (void)s.recv(frames_[count], zmq::recv_flags::none);
            more = frames_[count].more();
            ++count;
        }
        return true;
    }
    // --raw: every frame is output; --rep echoes them (or sends --reply). False on a signal.
    bool take_raw(std::size_t count) {
        std::size_t bytes = 0;
        for (std::size_t i = 0; i < count; ++i) {
            const std::string_view frame(static_cast<const char*>(frames_[i].data()),
                                         frames_[i].size());
            format_.render(nullptr, {}, frame, out_.data());
            bytes += frame.size();
        }
        message_arrived(bytes);
        if (!is_rep()) {
            return true;
        }
        zmq::socket_t& s = sock_->raw();
        return send_reply([&] {
            if (cfg_.reply) {
                return s.send(zmq::buffer(*cfg_.reply), zmq::send_flags::none).has_value();
            }
            for (std::size_t i = 0; i < count; ++i) {
                zmq::message_t copy(frames_[i].data(), frames_[i].size());
                if (!s.send(copy,
                            i + 1 < count ? zmq::send_flags::sndmore : zmq::send_flags::none)) {
                    return false;
                }
            }
            return true;
        });
    }
    // An envelope: decoded and output (a malformed one is counted and, with -v, named);
    // --rep answers it. False on a signal.
    bool take_envelope(std::size_t count) {
        const frame_layout layout = sock_->layout();
        const auto status = decode_frames(frames_, count, layout, msg_,
                                          layout == frame_layout::topic ? &topic_ : nullptr);
        if (!status.ok()) {
            ++decode_errors_;
            sock_->counters().decode_errors->add();
            if (cfg_.verbosity >= 1) {
                log_.warn("discarded a malformed message (" + std::to_string(count) +
                          " frame(s)): " + status.message());
            }
            // A REP socket must answer before it can receive again.
            return !is_rep() || send_reply([&] {
                return sock_->raw().send(zmq::message_t(), zmq::send_flags::none).has_value();
            });
        }
        const sequence_note note = observe_sequence(msg_.header(), topic_);
        format_.render(&msg_.header(), topic_, msg_.body_view(), out_.data(), &note);
        message_arrived(msg_.body_size(), &msg_.header(), &note);
        if (!is_rep()) {
            return true;
        }
        header reply_header = header::follow_up(msg_.header());
        const std::string_view body = cfg_.reply ? std::string_view(*cfg_.reply) : msg_.body_view();
        if (!cfg_.reply) {
            reply_header.content_type = msg_.header().content_type;
            reply_header.type = msg_.header().type;
        }
        return send_reply([&] { return sock_->send(reply_header, body); });
    }
    // A publication from the subscriber (sequence-checked; duplicates never get here).
    void take_publication() {
        const sequence_note note{publication_.verdict, publication_.from_snapshot,
                                 publication_.missing_first, publication_.missing_last};
        const auto& m = publication_.message;
        format_.render(&m.header(), publication_.topic, m.body_view(), out_.data(), &note);
        message_arrived(m.body_size(), &m.header(), &note);
    }
    // Retries a reply until it leaves; false on a signal (not lost: it stops the tool).
    template <class Send> bool send_reply(Send&& do_send) {
        for (;;) {
            if (do_send()) {
                return true;
            }
            if (stop_signal_pending(signals_, log_)) {
                return false;
            }
        }
    }
    int finish() {
        zmq::socket_t& s = sock_->raw();
        if (cfg_.kind.type == zmq::socket_type::sub) {
            // A SUB sends only subscriptions: re-queued for a publisher that went away, they
            // would hold the exit for the whole --linger (a second by default) for nothing.
            s.set(zmq::sockopt::linger, 0);
        }
        if (stopped_) {
            s.set(zmq::sockopt::linger,
                  static_cast<int>(std::min<std::int64_t>(cfg_.linger.count(), 1000)));
        }
        if (deadline_) {
            (void)bound_linger(s, *deadline_); // --timeout bounds the whole run
        }
        if (cfg_.stats) {
            describe_sequences();
            stats_.print_final("zmqkit-recv");
        }
        if (decode_errors_ > 0) {
            log_.info(std::to_string(decode_errors_) + " malformed message(s) discarded");
        }
        if (const auto code = gap_failure()) {
            return *code;
        }
        if (stopped_) {
            return exit_ok;
        }
        if (const auto code = report_unreachable_peer(sock_->handshakes())) {
            return *code;
        }
        if (timed_out_ && (count_missed() || stats_.messages() == 0)) {
            log_.error("timed out after " + std::to_string(cfg_.timeout->count()) + " ms with " +
                       count_text());
            return exit_timeout;
        }
        if (idle_ && count_missed()) {
            log_.error("idle for " + std::to_string(cfg_.idle_timeout->count()) + " ms after " +
                       std::to_string(stats_.messages()) + " of " + std::to_string(*cfg_.count) +
                       " message(s)");
            return exit_timeout;
        }
        return exit_ok;
    }
    [[nodiscard]] bool is_rep() const noexcept { return cfg_.kind.type == zmq::socket_type::rep; }

    std::optional<zmqkit::socket> own_socket_;
    std::optional<patterns::subscriber> subscriber_;
    zmqkit::socket* sock_ = nullptr; // own_socket_ or the subscriber's
    std::optional<handshake_counter> monitor_;
    patterns::publication publication_; // reused: the subscriber's strings keep their capacity
    std::optional<clock::time_point> snapshot_deadline_; // --snapshot, until it came
    std::vector<zmq::message_t> frames_ = std::vector<zmq::message_t>(4);
    zmq::message_t routing_;
    message msg_;
    std::string topic_;
    std::uint64_t decode_errors_ = 0;
    clock::time_point next_check_{};
    std::uint32_t since_clock_ = 0;
};

} // namespace

int run_recv(const recv_config& cfg, const logger& log, shutdown_signals& signals) {
    if (cfg.ack) {
        return acked_receiver(cfg, log, signals).run();
    }
    return plain_receiver(cfg, log, signals).run();
}

} // namespace zmqkit::cli
