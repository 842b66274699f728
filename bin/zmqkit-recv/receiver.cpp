#include "zmqkit-recv/receiver.hpp"

#include "common/message_format.hpp"

#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/socket.hpp>

#include <algorithm>
#include <cstring>
#include <optional>

namespace zmqkit::cli {
namespace {
using clock = std::chrono::steady_clock;

// At --timeout with nothing received: a peer that cannot be reached (a host that does not
// resolve, a refused handshake; for a secured client also none made at all) is exit 69 with
// the reason, as every tool reports it; "" otherwise (a plain timeout).
std::string why_nothing_arrived(const recv_config& cfg, peer_reachability& reach,
                                handshake_monitor* secured) {
    if (cfg.security.server()) {
        return {};
    }
    auto why = reach.why_unreachable();
    if (why.empty()) {
        why = handshake_problem(secured);
    }
    return why;
}

// --ack: a reliable receiver. A message is acked only after its output reached stdout
// (flushed), so a crash of this tool or its reader loses nothing: the proxy redelivers.
int run_recv_acked(const recv_config& cfg, const logger& log, shutdown_signals& signals) {
    zmq::context_t context;
    const auto auth = start_authenticator(context, {&cfg.security}, log);
    metrics_registry registry;
    patterns::reliable_receiver_options ro;
    std::string spec;
    for (const auto& e : cfg.endpoints) {
        spec += (spec.empty() ? "" : ",") + e;
    }
    ro.endpoint = spec;
    ro.credit = cfg.credit;
    ro.ack_batch = std::size_t{1} << 30; // acked here, after the output is flushed
    ro.socket.recv_hwm = cfg.hwm;
    ro.socket.linger = cfg.linger;
    ro.socket.send_timeout = std::chrono::milliseconds(200);
    ro.socket.name = "zmqkit-recv";
    ro.socket.registry = &registry;
    ro.socket.security = cfg.security.socket;
    peer_reachability reach(cfg.endpoints, endpoint_action::connect);
    std::optional<handshake_counter> events;
    ro.configure = [&](zmq::socket_t& raw) {
        apply_socket_options(raw, cfg.socket_options);
        // Handshakes (and with -v connection events); with security the receiver's
        // handshake_monitor counts them (one monitor per socket).
        if (!cfg.security.enabled()) {
            events.emplace(context, raw, cfg.verbosity >= 1 ? &log : nullptr);
        }
    };
    std::optional<patterns::reliable_receiver> receiver;
    try {
        receiver.emplace(context, ro);
    } catch (const zmqkit::endpoint_error& e) {
        throw usage_error{e.what(), exit_usage};
    } catch (const zmqkit::error& e) {
        log.error(e.what());
        return exit_unavailable;
    }
    reach.watch(cfg.security.server() ? nullptr : receiver->handshakes(),
                events ? &*events : nullptr);
    const message_formatter format(cfg.format);
    output_buffer out;
    transfer_stats stats;
    stats.start();
    std::vector<patterns::delivery> unacked;
    const std::size_t ack_every =
        std::max<std::size_t>(1, std::min<std::size_t>(64, cfg.credit / 2));
    auto settle = [&] {
        if (unacked.empty()) {
            return true;
        }
        if (!out.flush()) {
            log.error("cannot write to stdout; " + std::to_string(unacked.size()) +
                      " message(s) left unacked (the proxy redelivers them)");
            unacked.clear();
            return false;
        }
        for (const auto& d : unacked) {
            receiver->ack(d);
        }
        receiver->flush_acks();
        unacked.clear();
        return true;
    };
    std::optional<clock::time_point> deadline;
    if (cfg.timeout) {
        deadline = clock::now() + *cfg.timeout;
    }
    clock::time_point last_message{};
    bool timed_out = false;
    bool idle = false;
    bool stopped = false;
    bool failed = false;
    for (;;) {
        if (cfg.count && stats.messages() >= *cfg.count) {
            break;
        }
        if (auto sig = signals.poll()) {
            log.info(std::string("received ") + strsignal(*sig) + ", stopping");
            stopped = true;
            break;
        }
        if (events) {
            (void)events->poll();
        }
        const auto now = clock::now();
        if (deadline && now >= *deadline) {
            timed_out = true;
            break;
        }
        if (cfg.idle_timeout && stats.messages() > 0 && now >= last_message + *cfg.idle_timeout) {
            idle = true;
            break;
        }
        auto wait = std::chrono::milliseconds(unacked.empty() ? 200 : 0);
        if (deadline) {
            wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(*deadline - now));
        }
        auto d = receiver->recv(wait);
        if (!d) {
            if (!settle()) { // nothing more right now: ack what was written
                failed = true;
                break;
            }
            if (cfg.stats) {
                stats.maybe_print_live("zmqkit-recv");
            }
            continue;
        }
        format.render(&d->message.header(), {}, d->message.body_view(), out.data());
        stats.add(d->message.body_size());
        if (cfg.idle_timeout) {
            last_message = clock::now();
        }
        unacked.push_back(std::move(*d));
        if (unacked.size() >= ack_every && !settle()) {
            failed = true;
            break;
        }
    }
    if (!failed) {
        (void)settle();
    }
    if (deadline) {
        (void)bound_linger(receiver->raw(), *deadline); // --timeout bounds the whole run
    }
    if (cfg.stats) {
        stats.print_final("zmqkit-recv");
    }
    if (receiver->duplicates() > 0) {
        log.info(std::to_string(receiver->duplicates()) +
                 " redelivered message(s) already output were skipped");
    }
    if (failed) {
        return exit_failure;
    }
    if (stopped) {
        return exit_ok;
    }
    if (timed_out && stats.messages() == 0) {
        if (const auto why = why_nothing_arrived(cfg, reach, receiver->handshakes());
            !why.empty()) {
            return report_unreachable(log, "nothing could be received from", cfg.endpoints,
                                      *cfg.timeout, why);
        }
    }
    const bool count_missed = cfg.count && stats.messages() < *cfg.count;
    if ((timed_out && (count_missed || stats.messages() == 0)) || (idle && count_missed)) {
        log.error(std::string(timed_out ? "timed out" : "idle") + " with " +
                  std::to_string(stats.messages()) + " message(s)" +
                  (cfg.count ? " of " + std::to_string(*cfg.count) : std::string()));
        return exit_timeout;
    }
    return exit_ok;
}

} // namespace

int run_recv(const recv_config& cfg, const logger& log, shutdown_signals& signals) {
    if (cfg.ack) {
        return run_recv_acked(cfg, log, signals);
    }
    zmq::context_t context;
    const auto auth = start_authenticator(context, {&cfg.security}, log);
    metrics_registry registry;
    socket_options so;
    so.send_hwm = cfg.hwm;
    so.recv_hwm = cfg.hwm;
    so.linger = cfg.linger;
    so.send_timeout = std::chrono::milliseconds(200);
    so.name = "zmqkit-recv";
    so.registry = &registry;
    so.security = cfg.security.socket;
    peer_reachability reach(cfg.endpoints, cfg.kind.default_action);
    zmqkit::socket sock(context, cfg.kind.type, so);
    apply_socket_options(sock.raw(), cfg.socket_options);
    if (cfg.kind.type == zmq::socket_type::sub) {
        for (const auto& topic : cfg.topics) {
            sock.raw().set(zmq::sockopt::subscribe, topic);
        }
    }
    // Handshakes (a refused one is reported at --timeout), with -v also the connection events
    // (connected, disconnected, handshake failed) on stderr. With security the socket's
    // handshake_monitor counts them instead (one monitor per socket).
    std::optional<handshake_counter> events;
    if (!cfg.security.enabled()) {
        events.emplace(context, sock.raw(), cfg.verbosity >= 1 ? &log : nullptr);
    }
    reach.watch(cfg.security.server() ? nullptr : sock.handshakes(), events ? &*events : nullptr);
    attach_all(sock, cfg.endpoints, cfg.kind.default_action, log);

    const bool is_router = cfg.kind.type == zmq::socket_type::router;
    const bool is_rep = cfg.kind.type == zmq::socket_type::rep;
    const frame_layout layout = sock.layout();
    const message_formatter format(cfg.format);
    output_buffer out;
    transfer_stats stats;
    stats.start();

    std::vector<zmq::message_t> frames(4);
    zmq::message_t routing;
    message msg;
    std::string topic;
    std::uint64_t decode_errors = 0;

    // One multipart message into frames[0, count) without blocking. Routing frames of a ROUTER
    // (the peer's id, and the empty delimiter a REQ peer adds) are removed unless raw.
    auto receive = [&](std::size_t& count) {
        count = 0;
        zmq::socket_t& s = sock.raw();
        bool more = false;
        if (is_router && !cfg.raw) {
            if (!s.recv(routing, zmq::recv_flags::dontwait)) {
                return false;
            }
            more = routing.more();
            if (more) {
                (void)s.recv(frames[0], zmq::recv_flags::none);
                more = frames[0].more();
                if (frames[0].size() == 0 && more) { // REQ envelope delimiter
                    (void)s.recv(frames[0], zmq::recv_flags::none);
                    more = frames[0].more();
                }
                count = 1;
            }
        } else {
            if (!s.recv(frames[0], zmq::recv_flags::dontwait)) {
                return false;
            }
            more = frames[0].more();
            count = 1;
        }
        while (more) {
            if (count == frames.size()) {
                frames.emplace_back();
            }
            (void)s.recv(frames[count], zmq::recv_flags::none);
            more = frames[count].more();
            ++count;
        }
        return true;
    };
    auto send_reply = [&](auto&& do_send) {
        for (;;) {
            if (do_send()) {
                return true;
            }
            if (auto sig = signals.poll()) { // not lost: it stops the tool
                log.info(std::string("received ") + strsignal(*sig) + ", stopping");
                return false;
            }
        }
    };

    std::optional<clock::time_point> deadline;
    if (cfg.timeout) {
        deadline = clock::now() + *cfg.timeout;
    }
    clock::time_point last_message{};
    bool timed_out = false;
    bool idle = false;
    bool stopped = false;
    // Deadlines and signals are checked at the top of the loop, whatever the previous message
    // was (a flood of malformed ones included), at most every check_interval: the clock every
    // 16 messages (vDSO, no syscall), the signal mask (sigtimedwait) when the interval passed.
    constexpr auto check_interval = std::chrono::milliseconds(50);
    auto next_check = clock::time_point{};
    std::uint32_t since_clock = 0;
    auto stop_now = [&](clock::time_point now) {
        if (events) {
            (void)events->poll();
        }
        if (auto sig = signals.poll()) {
            log.info(std::string("received ") + strsignal(*sig) + ", stopping");
            stopped = true;
            return true;
        }
        if (deadline && now >= *deadline) {
            timed_out = true; // a busy stream still ends at --timeout
            return true;
        }
        if (cfg.idle_timeout && stats.messages() > 0 && now >= last_message + *cfg.idle_timeout) {
            idle = true; // only good messages count as activity
            return true;
        }
        return false;
    };
    for (;;) {
        if (cfg.count && stats.messages() >= *cfg.count) {
            break;
        }
        if (++since_clock >= 16) {
            since_clock = 0;
            const auto now = clock::now();
            if (now >= next_check) {
                next_check = now + check_interval;
                if (stop_now(now)) {
                    break;
                }
                if (cfg.stats) {
                    stats.maybe_print_live("zmqkit-recv");
                }
            }
        }
        std::size_t count = 0;
        if (!receive(count)) {
            (void)out.flush();
            if (cfg.stats) {
                stats.maybe_print_live("zmqkit-recv");
            }
            const auto now = clock::now();
            auto wait = std::chrono::milliseconds(200);
            if (deadline) {
                if (now >= *deadline) {
                    timed_out = true;
                    break;
                }
                wait =
                    std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(*deadline - now));
            }
            if (cfg.idle_timeout && stats.messages() > 0) {
                const auto idle_end = last_message + *cfg.idle_timeout;
                if (now >= idle_end) {
                    idle = true;
                    break;
                }
                wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(idle_end - now));
            }
            zmq::pollitem_t item{sock.raw().handle(), 0, ZMQ_POLLIN, 0};
            (void)zmq::poll(&item, 1, wait);
            since_clock = 16; // after a wait, check at the top of the loop
            next_check = clock::time_point{};
            continue;
        }
        if (count == 0) { // a ROUTER message with nothing after the routing id
            ++decode_errors;
            if (cfg.verbosity >= 1) {
                log.warn("discarded a message with no frames after its routing id");
            }
            continue;
        }
        if (cfg.raw) {
            std::size_t bytes = 0;
            for (std::size_t i = 0; i < count; ++i) {
                const std::string_view frame(static_cast<const char*>(frames[i].data()),
                                             frames[i].size());
                format.render(nullptr, {}, frame, out.data());
                bytes += frame.size();
            }
            stats.add(bytes);
            if (cfg.idle_timeout) {
                last_message = clock::now();
            }
            if (is_rep) {
                const bool ok = send_reply([&] {
                    if (cfg.reply) {
                        return sock.raw()
                            .send(zmq::buffer(*cfg.reply), zmq::send_flags::none)
                            .has_value();
                    }
                    for (std::size_t i = 0; i < count; ++i) {
                        zmq::message_t copy(frames[i].data(), frames[i].size());
                        if (!sock.raw().send(copy, i + 1 < count ? zmq::send_flags::sndmore
                                                                 : zmq::send_flags::none)) {
                            return false;
                        }
                    }
                    return true;
                });
                if (!ok) {
                    stopped = true;
                    break;
                }
            }
        } else {
            const auto status = decode_frames(frames, count, layout, msg,
                                              layout == frame_layout::topic ? &topic : nullptr);
            if (!status.ok()) {
                ++decode_errors;
                sock.counters().decode_errors->add();
                if (cfg.verbosity >= 1) {
                    log.warn("discarded a malformed message (" + std::to_string(count) +
                             " frame(s)): " + status.message());
                }
                if (is_rep && // a REP socket must answer before it can receive again
                    !send_reply([&] {
                        return sock.raw().send(zmq::message_t(), zmq::send_flags::none).has_value();
                    })) {
                    stopped = true;
                    break;
                }
                continue;
            }
            format.render(&msg.header(), topic, msg.body_view(), out.data());
            stats.add(msg.body_size());
            if (cfg.idle_timeout) {
                last_message = clock::now();
            }
            if (is_rep) {
                header reply_header = header::follow_up(msg.header());
                const std::string_view body =
                    cfg.reply ? std::string_view(*cfg.reply) : msg.body_view();
                if (!cfg.reply) {
                    reply_header.content_type = msg.header().content_type;
                    reply_header.type = msg.header().type;
                }
                if (!send_reply([&] { return sock.send(reply_header, body); })) {
                    stopped = true;
                    break;
                }
            }
        }
        out.maybe_flush();
    }
    (void)out.flush();
    if (stopped) {
        sock.raw().set(zmq::sockopt::linger,
                       static_cast<int>(std::min<std::int64_t>(cfg.linger.count(), 1000)));
    }
    if (deadline) {
        (void)bound_linger(sock.raw(), *deadline); // --timeout bounds the whole run
    }
    if (cfg.stats) {
        stats.print_final("zmqkit-recv");
    }
    if (decode_errors > 0) {
        log.info(std::to_string(decode_errors) + " malformed message(s) discarded");
    }
    if (stopped) {
        return exit_ok;
    }
    if (timed_out && stats.messages() == 0) {
        if (const auto why = why_nothing_arrived(cfg, reach, sock.handshakes()); !why.empty()) {
            return report_unreachable(log, "nothing could be received from", cfg.endpoints,
                                      *cfg.timeout, why);
        }
    }
    const bool count_missed = cfg.count && stats.messages() < *cfg.count;
    if (timed_out && (count_missed || stats.messages() == 0)) {
        log.error("timed out after " + std::to_string(cfg.timeout->count()) + " ms with " +
                  std::to_string(stats.messages()) + " message(s)" +
                  (cfg.count ? " of " + std::to_string(*cfg.count) : std::string()));
        return exit_timeout;
    }
    if (idle && count_missed) {
        log.error("idle for " + std::to_string(cfg.idle_timeout->count()) + " ms after " +
                  std::to_string(stats.messages()) + " of " + std::to_string(*cfg.count) +
                  " message(s)");
        return exit_timeout;
    }
    return exit_ok;
}

} // namespace zmqkit::cli
