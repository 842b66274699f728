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

int run_record(const spooler_config& cfg, const logger& log, shutdown_signals& signals) {
    metrics_registry registry;
    auto s = open_spool(cfg, true, registry);
    if (!s->recovery().clean()) {
        for (const auto& f : s->recovery().findings) {
            log.warn("recovery: " + f);
        }
    }
    const auto metrics = serve_metrics(cfg.metrics_listen, registry, log);
    const std::uint64_t first_sequence = s->stats().next_sequence;

    zmq::context_t context;
    const auto auth = start_authenticator(context, {&cfg.security}, log);
    zmq::socket_t sock(context, cfg.kind.type);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::rcvhwm, cfg.hwm);
    apply_socket_options(sock, cfg.socket_options);
    const auto handshakes = secure(context, sock, cfg, log, registry);
    if (cfg.kind.type == zmq::socket_type::sub) {
        for (const auto& topic : cfg.topics) {
            sock.set(zmq::sockopt::subscribe, topic);
        }
    }
    std::optional<handshake_counter> events;
    if (cfg.verbosity >= 1 && !handshakes) { // one monitor per socket: the security one reports
        events.emplace(context, sock, &log);
    }
    attach_all(sock, cfg.endpoints, cfg.kind.default_action, log);

    const bool topic_layout = cfg.kind.type == zmq::socket_type::sub;
    std::vector<zmq::message_t> frames(4);
    std::uint64_t appended = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t malformed = 0;
    std::uint64_t refused = 0;
    std::uint64_t uncommitted = 0; // appends since the last commit
    std::uint64_t received = 0;    // messages (each raw frame counts as one with --raw)
    header h;
    std::string encoded;
    bool failed = false;

    auto commit = [&]() {
        if (!s->commit_pending()) {
            uncommitted = 0;
            return true;
        }
        if (!s->commit()) {
            const auto st = s->stats();
            log.error("cannot commit to " + cfg.directory.string() + ": " +
                      (st.failure.empty() ? std::string("disk full") : st.failure));
            failed = true;
            return false;
        }
        uncommitted = 0;
        return true;
    };
    auto store = [&](std::string_view header_bytes, std::string_view body) {
        const auto r = s->append(header_bytes, body);
        switch (r.outcome) {
        case append_result::status::appended:
            ++appended;
            ++uncommitted;
            break;
        case append_result::status::duplicate:
            ++duplicates;
            break;
        case append_result::status::full:
        case append_result::status::rejected:
            ++refused;
            log.warn("message not stored: " + (r.reason.empty() ? "the spool is full" : r.reason));
            break;
        }
        ++received;
    };
    // Receives one multipart message without blocking into frames[0, count).
    auto receive = [&](std::size_t& count) {
        count = 0;
        if (!sock.recv(frames[0], zmq::recv_flags::dontwait)) {
            return false;
        }
        bool more = frames[0].more();
        count = 1;
        while (more) {
            if (count == frames.size()) {
                frames.emplace_back();
            }
            (void)sock.recv(frames[count], zmq::recv_flags::none);
            more = frames[count].more();
            ++count;
        }
        return true;
    };
    auto view = [](const zmq::message_t& f) {
        return std::string_view(static_cast<const char*>(f.data()), f.size());
    };

    std::optional<clock::time_point> deadline;
    if (cfg.timeout) {
        deadline = clock::now() + *cfg.timeout;
    }
    clock::time_point last_message{};
    bool stopped = false;
    auto next_check = clock::time_point{};
    while (!failed) {
        if (cfg.count && received >= *cfg.count) {
            break;
        }
        const auto now = clock::now();
        if (now >= next_check) { // at most every 50 ms on a busy stream
            next_check = now + std::chrono::milliseconds(50);
            if (auto sig = signals.poll()) {
                log_stop_signal(log, *sig);
                stopped = true;
                break;
            }
            if (deadline && now >= *deadline) {
                break;
            }
            if (cfg.idle_timeout && received > 0 && now >= last_message + *cfg.idle_timeout) {
                break;
            }
            if (events) {
                (void)events->poll();
            }
        }
        std::size_t count = 0;
        if (!receive(count)) {
            // Nothing waiting: commit what the batch holds, then wait (bounded).
            if (uncommitted > 0 && !commit()) {
                break;
            }
            auto wait = std::chrono::milliseconds(200);
            if (deadline) {
                wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(
                                          std::max(*deadline - now, clock::duration::zero())));
            }
            if (cfg.idle_timeout && received > 0) {
                const auto idle_end = last_message + *cfg.idle_timeout;
                wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(
                                          std::max(idle_end - now, clock::duration::zero())));
            }
            zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
            (void)zmq::poll(&item, 1, wait);
            next_check = clock::time_point{};
            continue;
        }
        last_message = clock::now();
        std::size_t first = 0;
        std::string_view topic;
        if (topic_layout) {
            topic = view(frames[0]);
            first = 1;
        }
        if (cfg.raw) {
            if (first >= count) { // a one-frame SUB message: the frame is the body
                first = 0;
                topic = {};
            }
            for (std::size_t i = first; i < count; ++i) {
                if (cfg.count && received >= *cfg.count) {
                    break;
                }
                h = header::fresh();
                h.type = std::string(topic);
                encoded = encode_header(h);
                store(encoded, view(frames[i]));
            }
        } else {
            const std::size_t n = count - first;
            decode_status status;
            std::string_view header_bytes;
            std::string_view body;
            if (n == 1) {
                std::size_t header_size = 0;
                const auto f = view(frames[first]);
                status = decode_header(f.data(), f.size(), h, &header_size);
                header_bytes = f.substr(0, header_size);
                body = f.substr(header_size);
            } else if (n == 2) {
                const auto f = view(frames[first]);
                status = decode_header(f.data(), f.size(), h);
                header_bytes = f;
                body = view(frames[first + 1]);
            } else {
                status.code = decode_errc::bad_frame_count;
                status.value = count;
            }
            if (!status.ok()) {
                ++malformed;
                log.debug("discarded a malformed message (" + std::to_string(count) +
                          " frame(s)): " + status.message());
                continue;
            }
            if (topic_layout && topic != h.type) {
                // The spool keeps header and body: a topic that replay --pub cannot take from
                // the type travels in a user header (the header bytes are re-encoded then).
                h.set_user_header(recorded_topic_header, topic);
                encoded = encode_header(h);
                header_bytes = encoded;
            }
            store(header_bytes, body);
        }
        if (uncommitted >= cfg.batch && !commit()) {
            break;
        }
    }
    if (!failed) {
        (void)commit();
    }
    const auto st = s->stats();
    std::string summary =
        "recorded " + std::to_string(appended) + " message(s) into " + cfg.directory.string();
    if (appended > 0) {
        summary += " (sequences from " + std::to_string(first_sequence) + ", next " +
                   std::to_string(st.next_sequence) + ")";
    }
    if (duplicates > 0) {
        summary += ", " + std::to_string(duplicates) + " duplicate(s) skipped";
    }
    if (malformed > 0) {
        summary += ", " + std::to_string(malformed) + " malformed discarded";
    }
    if (refused > 0) {
        summary += ", " + std::to_string(refused) + " refused";
    }
    log.info(summary);
    (void)stopped;
    return failed ? exit_failure : exit_ok;
}

int run_replay(const spooler_config& cfg, const logger& log, shutdown_signals& signals) {
    metrics_registry registry;
    auto s = open_spool(cfg, false, registry);

    zmq::context_t context;
    const auto auth = start_authenticator(context, {&cfg.security}, log);
    const bool pub = cfg.kind.type == zmq::socket_type::pub;
    // --pub sends like a PUB from an XPUB, which also shows the subscriptions: --wait-peers
    // waits for them, not only for the connections (a PUB drops what it sends before a
    // subscriber's subscription has arrived).
    zmq::socket_t sock(context, pub ? zmq::socket_type::xpub : cfg.kind.type);
    if (pub) {
        sock.set(zmq::sockopt::xpub_verbose, 1); // every subscriber's subscription, not the first
        patterns::bound_subscriptions(sock, cfg.security.socket); // a hostile one cannot crash it
    }
    sock.set(zmq::sockopt::linger, static_cast<int>(cfg.linger.count()));
    sock.set(zmq::sockopt::sndhwm, cfg.hwm);
    sock.set(zmq::sockopt::sndtimeo, 200);
    apply_socket_options(sock, cfg.socket_options);
    const auto handshakes = secure(context, sock, cfg, log, registry);
    // One monitor per socket: with security the handshake_monitor counts the peers.
    std::optional<handshake_counter> peers;
    if (!handshakes) {
        peers.emplace(context, sock, cfg.verbosity >= 1 ? &log : nullptr);
    }
    handshake_monitor* client_handshakes = cfg.security.server() ? nullptr : handshakes.get();
    // A client whose peers cannot be reached (a refused handshake, a host that does not
    // resolve) gives up after the limit with the reason, as zmqkit-send does.
    peer_reachability reach(cfg.endpoints, cfg.kind.default_action);
    reach.watch(client_handshakes, peers ? &*peers : nullptr);
    handshake_give_up give_up(reach, client_handshakes, cfg.security.server(), cfg.timeout);
    const auto started = give_up.started();
    auto report_refused = [&]() {
        return give_up.report(log, "no message could be sent to", cfg.endpoints, sock);
    };
    attach_all(sock, cfg.endpoints, cfg.kind.default_action, log);

    bool stopped = false;
    auto stop = [&]() {
        if (stopped) {
            return true;
        }
        if (auto sig = signals.poll()) {
            log_stop_signal(log, *sig);
            stopped = true;
        }
        return stopped;
    };
    if (cfg.wait_peers > 0) {
        const auto limit = cfg.timeout.value_or(std::chrono::milliseconds(10000));
        const auto seen = handshakes ? wait_secured_peers(*handshakes, cfg.wait_peers, limit, stop)
                                     : peers->wait(cfg.wait_peers, limit, stop);
        if (stopped) {
            return exit_ok;
        }
        if (seen == 0 && !reach.why_unreachable().empty()) {
            return report_refused();
        }
        if (seen < cfg.wait_peers) {
            log.error("only " + std::to_string(seen) + " of " + std::to_string(cfg.wait_peers) +
                      " peer(s) connected within " + std::to_string(limit.count()) + " ms");
            sock.set(zmq::sockopt::linger, 0);
            return exit_unavailable;
        }
        std::size_t subscribed = 0;
        for (zmq::message_t subscription; pub && subscribed < cfg.wait_peers && !stop();) {
            if (sock.recv(subscription, zmq::recv_flags::dontwait)) {
                subscribed += !subscription.empty() && subscription.data<char>()[0] == 1 ? 1U : 0U;
                continue;
            }
            const auto left = started + limit - clock::now();
            if (left <= clock::duration::zero()) {
                log.error("only " + std::to_string(subscribed) + " of " +
                          std::to_string(cfg.wait_peers) + " subscriber(s) subscribed within " +
                          std::to_string(limit.count()) + " ms");
                sock.set(zmq::sockopt::linger, 0);
                return exit_unavailable;
            }
            zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
            (void)zmq::poll(&item, 1,
                            std::min(std::chrono::ceil<std::chrono::milliseconds>(left),
                                     std::chrono::milliseconds(200)));
        }
        if (stopped) {
            return exit_ok;
        }
    }

    std::optional<clock::duration> interval;
    if (cfg.rate) {
        interval = std::chrono::duration_cast<clock::duration>(
            std::chrono::duration<double>(1.0 / *cfg.rate));
    }
    auto next_send = clock::now();
    std::uint64_t sent = 0;
    std::uint64_t bytes = 0;
    std::optional<std::uint64_t> first_sent;
    std::uint64_t last_sent = 0;
    header h;
    std::string recorded_topic;
    std::string encoded;
    auto send_part = [&](std::string_view data, bool more) {
        for (;;) {
            if (sock.send(zmq::buffer(data.data(), data.size()),
                          more ? zmq::send_flags::sndmore : zmq::send_flags::none)) {
                return true;
            }
            if (stop() || give_up.check()) { // the send waited sndtimeo: no room, no peer
                return false;
            }
        }
    };
    s->for_each(cfg.from_sequence, [&](const spooled_message& m, bool) {
        if (cfg.since_ns && m.appended_ns < *cfg.since_ns) {
            return true;
        }
        if (cfg.count && sent >= *cfg.count) {
            return false;
        }
        if (interval) {
            for (auto now = clock::now(); now < next_send; now = clock::now()) {
                const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_send - now);
                if (auto sig = signals.wait(wait)) {
                    log_stop_signal(log, *sig);
                    stopped = true;
                    return false;
                }
            }
            next_send = std::max(next_send + *interval, clock::now() - *interval);
        } else if ((sent & 63u) == 0 && stop()) {
            return false;
        }
        std::string_view header_bytes = m.header;
        if (pub) {
            const bool decoded = decode_header(m.header.data(), m.header.size(), h).ok();
            std::string_view topic = decoded ? std::string_view(h.type) : std::string_view();
            if (const auto* recorded =
                    decoded ? h.find_user_header(recorded_topic_header) : nullptr) {
                // Recorded from a topic other than the type: that topic again, and the header
                // as it was published.
                recorded_topic = *recorded;
                topic = recorded_topic;
                std::erase_if(h.user_headers, [](const auto& entry) {
                    return entry.first == recorded_topic_header;
                });
                encoded = encode_header(h);
                header_bytes = encoded;
            }
            if (!send_part(topic, true)) {
                return false;
            }
        }
        // [header][body]: the separate layout, which every zmqkit reader accepts.
        if (!send_part(header_bytes, true) || !send_part(m.body, false)) {
            return false;
        }
        ++sent;
        bytes += m.header.size() + m.body.size();
        if (!first_sent) {
            first_sent = m.sequence;
        }
        last_sent = m.sequence;
        return true;
    });
    std::string summary =
        "replayed " + std::to_string(sent) + " message(s), " + std::to_string(bytes) + " bytes";
    if (first_sent) {
        summary +=
            " (sequences " + std::to_string(*first_sent) + ".." + std::to_string(last_sent) + ")";
    }
    log.info(summary);
    if (!stopped && sent > 0) {
        // Queued messages wait for a handshake, at most what is left of the limit.
        give_up.wait_for_queued(std::nullopt);
    }
    if (give_up.gave_up() && !stopped) {
        return report_refused();
    }
    if (stopped) {
        sock.set(zmq::sockopt::linger,
                 static_cast<int>(std::min<std::int64_t>(cfg.linger.count(), 1000)));
    } else if (!pub && sent > 0 && peers && peers->poll() == 0) {
        log.debug("no peer has connected yet; queued messages leave if one comes within --linger");
    }
    return exit_ok;
}

} // namespace zmqkit::cli
