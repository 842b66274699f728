#include "zmqkit-send/sender.hpp"

#include "common/input_reader.hpp"
#include "common/message_format.hpp"
#include "zmqkit-send/confirm_log.hpp"

#include <zmqkit/error.hpp>
#include <zmqkit/patterns/durable.hpp>
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/patterns/pubsub.hpp>
#include <zmqkit/socket.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
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
using json = nlohmann::json;

// Closes the --file descriptor.
struct file_descriptor {
    int fd = -1;
    ~file_descriptor() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

bool base64_decode(std::string_view text, std::string& out) {
    std::array<int, 256> value{};
    value.fill(-1);
    const std::string_view table =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < table.size(); ++i) {
        value[static_cast<unsigned char>(table[i])] = static_cast<int>(i);
    }
    out.clear();
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : text) {
        if (c == '=') {
            break;
        }
        const int v = value[static_cast<unsigned char>(c)];
        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFFu);
        }
    }
    return true;
}

std::string strip_json_prefix(const char* what) {
    std::string text(what);
    if (!text.empty() && text[0] == '[') { // "[json.exception.parse_error.101] parse error ..."
        const auto close = text.find("] ");
        if (close != std::string::npos) {
            text.erase(0, close + 2);
        }
    }
    return text;
}

// Sets one envelope field from JSON. User headers go to h.user_headers when allow_user.
bool apply_field(const std::string& name, const json& value, header& h, bool allow_user,
                 std::string& error) {
    auto need_string = [&](std::string& field) {
        if (!value.is_string()) {
            error = "header '" + name + "' must be a string";
            return false;
        }
        field = value.get<std::string>();
        return true;
    };
    auto need_id = [&](message_id& field) {
        if (value.is_null()) {
            return true;
        }
        std::optional<message_id> id;
        if (value.is_string()) {
            id = message_id::parse(value.get<std::string>());
        }
        if (!id) {
            error = "header '" + name + "' must be a UUID string";
            return false;
        }
        field = *id;
        return true;
    };
    if (name == "type") {
        return need_string(h.type);
    }
    if (name == "reply_to") {
        return need_string(h.reply_to);
    }
    if (name == "traceparent") {
        return need_string(h.traceparent);
    }
    if (name == "content_type") {
        return need_string(h.content_type);
    }
    if (name == "correlation_id") {
        return need_id(h.correlation_id);
    }
    if (name == "causation_id") {
        return need_id(h.causation_id);
    }
    if (name == "publisher_id") {
        return need_id(h.publisher_id);
    }
    if (name == "attempt" || name == "sequence") {
        if (!value.is_number_unsigned() ||
            (name == "attempt" && value.get<std::uint64_t>() > 0xFFFFFFFFu)) {
            error = "header '" + name + "' must be a non-negative integer";
            return false;
        }
        if (name == "attempt") {
            h.attempt = static_cast<std::uint32_t>(value.get<std::uint64_t>());
        } else {
            h.sequence = value.get<std::uint64_t>();
        }
        return true;
    }
    if (name == "id" || name == "timestamp" || name == "topic") {
        return true; // from zmqkit-recv -f json output: a resent message gets a fresh id
    }
    if (!allow_user) {
        error = "unknown field '" + name + "'";
        return false;
    }
    if (value.is_object() && value.size() == 1 && value.contains("base64") &&
        value["base64"].is_string()) {
        std::string bytes;
        if (!base64_decode(value["base64"].get<std::string>(), bytes)) {
            error = "header '" + name + "': bad base64";
            return false;
        }
        h.set_user_header(name, bytes);
        return true;
    }
    h.set_user_header(name, value.is_string() ? value.get<std::string>() : value.dump());
    return true;
}

// "headers_base64": [[{"base64": name}, value], ...] as zmqkit-recv -f json prints user headers
// whose name is not UTF-8 (value: a string or {"base64": ...}).
// "headers_base64" (names that are not UTF-8) and "headers_repeated" (the later entries of a
// name that appears twice), as zmqkit-recv -f json writes them: [[name, value], ...], each a
// string or {"base64": ...}. Repeated entries are appended, so the header keeps them all.
bool apply_header_pairs(const json& list, const char* field, bool append, header& h,
                        std::string& error) {
    auto bytes_of = [](const json& v, std::string& out) {
        if (v.is_string()) {
            out = v.get<std::string>();
            return true;
        }
        return v.is_object() && v.size() == 1 && v.contains("base64") && v["base64"].is_string() &&
               base64_decode(v["base64"].get<std::string>(), out);
    };
    if (!list.is_array()) {
        error = std::string("\"") + field + "\" must be an array of [name, value] pairs";
        return false;
    }
    for (const auto& pair : list) {
        std::string name;
        std::string value;
        if (!pair.is_array() || pair.size() != 2 || !bytes_of(pair[0], name) ||
            !bytes_of(pair[1], value)) {
            error = std::string("\"") + field +
                    "\" entries must be [name, value] with strings or {\"base64\": ...}";
            return false;
        }
        if (append) {
            h.user_headers.emplace_back(std::move(name), std::move(value));
        } else {
            h.set_user_header(name, value);
        }
    }
    return true;
}

bool is_envelope_object(const json& j) {
    static constexpr std::array<std::string_view, 17> allowed{
        "headers",   "body",  "body_base64",    "id",           "correlation_id",  "causation_id",
        "timestamp", "type",  "attempt",        "reply_to",     "traceparent",     "content_type",
        "sequence",  "topic", "headers_base64", "publisher_id", "headers_repeated"};
    if (!j.is_object() ||
        !(j.contains("body") || j.contains("body_base64") || j.contains("headers"))) {
        return false;
    }
    return std::all_of(j.items().begin(), j.items().end(), [](const auto& item) {
        return std::find(allowed.begin(), allowed.end(), item.key()) != allowed.end();
    });
}

// Where a --wait-confirm run stands when the input is done.
struct confirm_run {
    patterns::reliable_sender& reliable;
    confirm_log& outcomes;         // --confirm-log (disabled without it)
    std::uint64_t not_sent = 0;    // records read but never handed to the sender
    int code = exit_ok;            // an input error's exit code, if any
    std::uint64_t json_errors = 0; // malformed JSON lines skipped
    bool timed_out = false;        // --timeout passed
    bool stop_requested = false;   // SIGINT/SIGTERM
    std::optional<clock::time_point> deadline;
    bool unreachable = false; // out: gave up on the handshake (the caller reports why)
};

// The end of a --wait-confirm run: wait (bounded) for the last confirms, count every outcome,
// name what is left. Any message not confirmed (rejected by the proxy, or no confirm in time)
// makes the exit code 76 unless an earlier failure decides it. `gave_up` is true once the
// handshake limit passed with the peer known to be unreachable (refused, a host that does not
// resolve), `unreachable` as soon as that is known; either ends the run as unreachable (exit
// 69; the caller reports why) instead of "not confirmed".
template <class CheckSignal, class GaveUp, class Unreachable>
int finish_confirmed(confirm_run& run, const send_config& cfg, const logger& log,
                     transfer_stats& stats, CheckSignal check_signal, GaveUp gave_up,
                     Unreachable unreachable) {
    auto& reliable = run.reliable;
    auto until = clock::now() + (run.stop_requested ? std::min(cfg.confirm_timeout,
                                                               std::chrono::milliseconds(1000))
                                                    : cfg.confirm_timeout);
    if (run.deadline && *run.deadline < until) {
        until = *run.deadline;
    }
    while (reliable.unconfirmed() > 0 && clock::now() < until) {
        (void)reliable.flush(
            std::min(std::chrono::ceil<std::chrono::milliseconds>(until - clock::now()),
                     std::chrono::milliseconds(200)));
        if (!run.stop_requested && check_signal()) {
            run.stop_requested = true;
            until = std::min(until, clock::now() + std::chrono::milliseconds(1000));
        }
        if (!run.stop_requested && gave_up()) {
            run.unreachable = true;
            break;
        }
    }
    if (!run.stop_requested && !run.unreachable && reliable.unconfirmed() > 0) {
        run.unreachable = unreachable();
    }
    reliable.raw().set(zmq::sockopt::linger, 0); // what is unconfirmed is reported, not waited for
    const std::size_t left = reliable.unconfirmed();
    std::string log_error;
    const bool log_written = run.outcomes.finish(log_error);
    if (cfg.stats) {
        stats.print_final("zmqkit-send");
        log.info("confirms: confirmed=" + std::to_string(reliable.confirmed()) +
                 " resent=" + std::to_string(reliable.resent()) +
                 " rejected=" + std::to_string(reliable.rejected()) +
                 " unconfirmed=" + std::to_string(left + run.not_sent) +
                 " batches=" + std::to_string(reliable.batches()));
    }
    if (run.unreachable) {
        return exit_unavailable; // the caller names the reason
    }
    if (left > 0) {
        const auto ids = reliable.unconfirmed_ids();
        const std::size_t shown =
            cfg.verbosity >= 1 ? ids.size() : std::min<std::size_t>(10, ids.size());
        std::string names;
        for (std::size_t i = 0; i < shown; ++i) {
            names += (i == 0 ? "" : ", ") + ids[i].to_string();
        }
        if (shown < ids.size()) {
            names += ", ... (-v lists all)";
        }
        log.error(std::to_string(left) + " of " + std::to_string(stats.messages()) +
                  " message(s) not confirmed by the durable proxy within --confirm-timeout " +
                  std::to_string(cfg.confirm_timeout.count()) + " ms: " + names);
    } else {
        log.debug(std::to_string(reliable.confirmed()) + " message(s) confirmed, " +
                  std::to_string(reliable.resent()) + " resent");
    }
    if (reliable.rejected() > 0) {
        log.error(std::to_string(reliable.rejected()) + " of " + std::to_string(stats.messages()) +
                  " message(s) rejected by the durable proxy (each is named above)");
    }
    if (!log_written) {
        log.error(log_error);
    }
    if (run.code != exit_ok) {
        return run.code;
    }
    if (run.json_errors > 0) {
        return exit_data_error;
    }
    if (run.timed_out && !run.stop_requested) {
        log.error("timed out after " + std::to_string(cfg.timeout->count()) + " ms (" +
                  std::to_string(stats.messages()) + " message(s) sent)");
        return exit_timeout;
    }
    if (!log_written) {
        return exit_cannot_create;
    }
    return left > 0 || reliable.rejected() > 0 || run.not_sent > 0 ? exit_unconfirmed : exit_ok;
}

} // namespace

bool json_to_envelope(std::string_view text, header& h, std::string& body, std::string& error) {
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        error = strip_json_prefix(e.what());
        return false;
    }
    const json* value = &j;
    bool body_is_bytes = false;
    bool content_type_given = false;
    if (is_envelope_object(j)) {
        for (const auto& [name, field] : j.items()) {
            if (name == "headers") {
                if (!field.is_object()) {
                    error = "\"headers\" must be an object";
                    return false;
                }
                for (const auto& [hname, hvalue] : field.items()) {
                    content_type_given = content_type_given || hname == "content_type";
                    if (!apply_field(hname, hvalue, h, true, error)) {
                        return false;
                    }
                }
            } else if (name == "headers_base64" || name == "headers_repeated") {
                continue; // after "headers": repeated entries follow the first one
            } else if (name != "body" && name != "body_base64") {
                content_type_given = content_type_given || name == "content_type";
                if (!apply_field(name, field, h, false, error)) {
                    return false;
                }
            }
        }
        if (j.contains("headers_base64") &&
            !apply_header_pairs(j["headers_base64"], "headers_base64", false, h, error)) {
            return false;
        }
        if (j.contains("headers_repeated") &&
            !apply_header_pairs(j["headers_repeated"], "headers_repeated", true, h, error)) {
            return false;
        }
        if (j.contains("body_base64")) {
            if (!j["body_base64"].is_string() ||
                !base64_decode(j["body_base64"].get<std::string>(), body)) {
                error = "\"body_base64\" must be a base64 string";
                return false;
            }
            return true;
        }
        static const json null_body;
        value = j.contains("body") ? &j["body"] : &null_body;
        // A content_type that is present (even empty, as zmqkit-recv -f json prints for a text
        // body) and is not msgpack means the body string is the bytes themselves.
        body_is_bytes = content_type_given && h.content_type != content_type_msgpack;
    }
    if (body_is_bytes) {
        body = value->is_string() ? value->get<std::string>() : value->dump();
        return true;
    }
    const auto packed = json::to_msgpack(*value);
    body.assign(packed.begin(), packed.end());
    h.content_type = std::string(content_type_msgpack);
    return true;
}

int run_send(const send_config& cfg, const logger& log, shutdown_signals& signals) {
    constexpr auto signal_check_interval = std::chrono::milliseconds(50);
    auto next_signal_check = clock::time_point{};
    bool stop_requested = false;
    auto check_signal = [&]() {
        if (!stop_requested) {
            // A pending SIGTERM/SIGINT is read with sigtimedwait (a syscall), so the hot path
            // asks at most every signal_check_interval; steady_clock::now() is a vDSO call.
            const auto now = clock::now();
            if (now < next_signal_check) {
                return false;
            }
            next_signal_check = now + signal_check_interval;
            if (auto sig = signals.poll()) {
                stop_requested = true;
                log.info(std::string("received ") + strsignal(*sig) + ", stopping");
            }
        }
        return stop_requested;
    };

    const auto started = clock::now();
    std::optional<clock::time_point> deadline;
    if (cfg.timeout) {
        deadline = started + *cfg.timeout;
    }
    bool timed_out = false;
    auto past_deadline = [&]() {
        if (deadline && clock::now() >= *deadline) {
            timed_out = true;
        }
        return timed_out;
    };
    // --idle-timeout: input that stays open but quiet ends the run normally.
    auto last_input = clock::now();
    bool idle = false;
    auto input_idle = [&]() {
        if (cfg.idle_timeout && clock::now() >= last_input + *cfg.idle_timeout) {
            idle = true;
        }
        return idle;
    };

    // Input first: an unreadable file is reported before any network activity.
    file_descriptor file;
    if (cfg.file) {
        file.fd = ::open(cfg.file->c_str(), O_RDONLY | O_CLOEXEC);
        if (file.fd < 0) {
            log.error("cannot read --file '" + *cfg.file + "': " + std::strerror(errno));
            return exit_no_input;
        }
    }
    const auto framing = cfg.framing == input_framing::whole
                             ? input_reader::framing::whole
                             : (cfg.framing == input_framing::length_prefixed
                                    ? input_reader::framing::length_prefixed
                                    : input_reader::framing::delimited);
    std::optional<input_reader> reader;
    // Called before the reader waits for more input (set below for --batch).
    std::function<void()> before_input_wait;
    const int input_fd = file.fd >= 0 ? file.fd : STDIN_FILENO;
    if (cfg.data) {
        reader.emplace(*cfg.data, framing, cfg.delimiter, cfg.max_size);
    } else {
        reader.emplace(
            input_fd, framing, cfg.delimiter,
            [&] {
                if (before_input_wait) {
                    before_input_wait();
                }
                return check_signal() || past_deadline() || input_idle();
            },
            cfg.max_size);
    }

    peer_reachability reach(cfg.endpoints, cfg.kind.default_action); // name lookups start now
    zmq::context_t context;
    // A server side (--curve-allow, --plain-passwords, --zap-*-ip) needs the context's ZAP
    // handler before it binds; closed before the context at the end.
    std::unique_ptr<authenticator> auth = start_authenticator(context, {&cfg.security}, log);
    // Closed explicitly at the end, where the context shutdown is timed (delivery check).
    std::optional<zmqkit::socket> sock_holder;
    metrics_registry registry;
    socket_options so;
    so.send_hwm = cfg.hwm;
    so.recv_hwm = cfg.hwm;
    so.linger = cfg.linger;
    so.send_timeout = std::chrono::milliseconds(200); // re-checked: signals, --timeout
    so.name = "zmqkit-send";
    so.registry = &registry;
    so.security = cfg.security.socket;
    // Always on: --wait-peers waits for handshakes, and at the end "no peer ever connected"
    // tells that every queued message was dropped (see below).
    // With -v it also logs the socket's connection events.
    // With security the socket's own handshake_monitor does this (libzmq allows one monitor
    // per socket): see `secured` below.
    std::optional<handshake_counter> monitor;
    const bool want_monitor =
        !cfg.security.enabled() &&
        (cfg.wait_peers > 0 || cfg.kind.type != zmq::socket_type::pub || cfg.verbosity >= 1);
    // --wait-confirm: a reliable sender (DEALER) keeps every message until the durable proxy
    // confirms it; otherwise a plain zmqkit socket.
    std::optional<patterns::reliable_sender> reliable;
    confirm_log outcomes; // --confirm-log: every input record's outcome
    if (cfg.confirm_log) {
        std::string error;
        if (!outcomes.open(*cfg.confirm_log, error)) {
            log.error(error);
            return exit_cannot_create;
        }
    }
    if (cfg.wait_confirm) {
        patterns::reliable_sender_options ro;
        std::string spec;
        for (const auto& e : cfg.endpoints) {
            spec += (spec.empty() ? "" : ",") + e;
        }
        ro.endpoint = spec;
        ro.window = cfg.window;
        ro.retry_interval = cfg.retry_interval;
        ro.batch_messages = cfg.batch;
        // A partly filled batch leaves when no more input is ready and before a long --rate
        // wait (below), so the sender itself need not send it early: without --batch-linger
        // it waits for more messages as long as input keeps coming.
        ro.linger = cfg.batch_linger.count() > 0 ? cfg.batch_linger : std::chrono::hours(1);
        ro.socket = so;
        ro.configure = [&](zmq::socket_t& raw) {
            apply_socket_options(raw, cfg.socket_options);
            if (want_monitor) {
                monitor.emplace(context, raw, cfg.verbosity >= 1 ? &log : nullptr);
            }
        };
        try {
            reliable.emplace(context, ro);
        } catch (const zmqkit::endpoint_error& e) {
            throw usage_error{e.what(), exit_usage};
        } catch (const zmqkit::error& e) {
            log.error(e.what());
            return exit_unavailable;
        }
        reliable->on_reject([&](const message_id& id, std::string_view reason) {
            outcomes.rejected(id, reason);
            log.error("message " + id.to_string() +
                      " was rejected by the proxy: " + std::string(reason));
        });
        if (outcomes.enabled()) {
            reliable->on_confirm([&](const message_id& id) { outcomes.confirmed(id); });
        }
        if (cfg.batch > 1) {
            // A partly filled batch does not wait for input that is not there yet.
            before_input_wait = [&] {
                if (reliable->waiting() == 0) {
                    return;
                }
                pollfd p{input_fd, POLLIN, 0};
                if (::poll(&p, 1, 0) == 0) {
                    reliable->send_batch();
                }
            };
        }
    } else {
        // --pub is an XPUB: it publishes like a PUB and also sees the subscriptions arrive,
        // so --wait-peers can wait for subscribers, not just connections.
        const bool pub = cfg.kind.type == zmq::socket_type::pub;
        zmqkit::socket& created =
            sock_holder.emplace(context, pub ? zmq::socket_type::xpub : cfg.kind.type, so);
        if (pub) {
            created.raw().set(zmq::sockopt::xpub_verbose, 1); // every subscriber's subscription
            // One hostile subscriber must not crash the tool (issue 14 item 4).
            patterns::bound_subscriptions(created.raw(), cfg.security.socket);
        }
        if (cfg.verbosity >= 1) {
            created.on_decode_error([&](const decode_status& s) {
                log.warn("discarded a malformed reply: " + s.message());
            });
        }
        apply_socket_options(created.raw(), cfg.socket_options);
        if (want_monitor) {
            monitor.emplace(context, created.raw(), cfg.verbosity >= 1 ? &log : nullptr);
        }
        attach_all(created, cfg.endpoints, cfg.kind.default_action, log);
    }
    zmq::socket_t& raw_socket = reliable ? reliable->raw() : sock_holder->raw();
    // The security handshakes (nullptr without security); a client that never completes one
    // gives up with the reason (exit 69) instead of waiting for ever.
    handshake_monitor* secured = reliable ? reliable->handshakes() : sock_holder->handshakes();
    handshake_monitor* client_handshakes = cfg.security.server() ? nullptr : secured;
    // Whether the peers can be reached at all (a host that does not resolve, a refused
    // handshake): asked the same way on every path, reported the same way (exit 69).
    reach.watch(client_handshakes, monitor ? &*monitor : nullptr);
    const auto handshake_limit = cfg.timeout ? *cfg.timeout : std::chrono::milliseconds(10'000);
    bool handshake_refused = false;
    // True once a client has had no handshake for handshake_limit and the reason is known
    // (a refused handshake, a host that does not resolve), or a secured client had none at all
    // within --timeout. Without --timeout, a server that is only down is waited for.
    auto handshake_gave_up = [&]() {
        if (handshake_refused || cfg.security.server() ||
            clock::now() - started < handshake_limit) {
            return handshake_refused;
        }
        const bool secured_silent = client_handshakes != nullptr && cfg.timeout.has_value() &&
                                    client_handshakes->stats().succeeded == 0;
        handshake_refused = secured_silent || !reach.why_unreachable().empty();
        return handshake_refused;
    };
    auto report_handshake = [&]() {
        std::string why = reach.why_unreachable();
        if (why.empty()) {
            why = client_handshakes != nullptr ? handshake_problem(client_handshakes)
                                               : std::string("no handshake completed");
        }
        raw_socket.set(zmq::sockopt::linger, 0);
        return report_unreachable(log, "no message could be sent to", cfg.endpoints,
                                  handshake_limit, why);
    };

    if (cfg.wait_peers > 0 && cfg.kind.type == zmq::socket_type::pub) {
        // Subscriptions, not handshakes: a publication made before a subscription arrived
        // would be dropped for that subscriber.
        const auto limit = cfg.timeout ? *cfg.timeout : std::chrono::milliseconds(10'000);
        const auto until = clock::now() + limit;
        std::size_t seen = 0;
        zmq::message_t event;
        while (seen < cfg.wait_peers && clock::now() < until && !check_signal()) {
            zmq::pollitem_t item{raw_socket.handle(), 0, ZMQ_POLLIN, 0};
            (void)zmq::poll(&item, 1, std::chrono::milliseconds(50));
            while (seen < cfg.wait_peers && raw_socket.recv(event, zmq::recv_flags::dontwait)) {
                if (event.size() > 0 && static_cast<const std::uint8_t*>(event.data())[0] == 1) {
                    ++seen;
                    log.debug(
                        "subscription '" +
                        std::string(static_cast<const char*>(event.data()) + 1, event.size() - 1) +
                        "' arrived");
                }
            }
        }
        if (seen < cfg.wait_peers && !stop_requested) {
            log.error("timed out after " + std::to_string(limit.count()) + " ms waiting for " +
                      std::to_string(cfg.wait_peers) + " subscription(s) (" + std::to_string(seen) +
                      " arrived)");
            raw_socket.set(zmq::sockopt::linger, 0);
            return exit_timeout;
        }
    } else if (cfg.wait_peers > 0) {
        const auto limit = cfg.timeout ? *cfg.timeout : std::chrono::milliseconds(10'000);
        const auto seen = secured != nullptr
                              ? wait_secured_peers(*secured, cfg.wait_peers, limit, check_signal)
                          : monitor ? monitor->wait(cfg.wait_peers, limit, check_signal)
                                    : 0;
        if (seen == 0 && !stop_requested && !reach.why_unreachable().empty()) {
            return report_handshake();
        }
        if (seen < cfg.wait_peers && !stop_requested) {
            log.error("timed out after " + std::to_string(limit.count()) + " ms waiting for " +
                      std::to_string(cfg.wait_peers) + " peer(s) to connect (" +
                      std::to_string(seen) + " did)");
            raw_socket.set(zmq::sockopt::linger, 0);
            return exit_timeout;
        }
        log.debug(std::to_string(seen) + " peer(s) connected");
    }

    const bool is_pub = cfg.kind.type == zmq::socket_type::pub;
    const bool is_req = cfg.kind.type == zmq::socket_type::req;
    header base;
    base.type = cfg.type;
    base.reply_to = cfg.reply_to;
    base.user_headers = cfg.headers;
    base.correlation_id = cfg.correlation_id;
    header h = base;
    header json_header;
    std::string json_body;
    message reply;
    output_buffer out;
    const message_formatter reply_format(cfg.format);
    transfer_stats stats;
    stats.start();

    std::vector<zmq::message_t> raw_reply;
    std::uint64_t line = 0;
    std::uint64_t send_failures = 0;
    auto send_raw = [&](std::string_view key, bool has_key, std::string_view body) {
        for (;;) {
            bool ok = false;
            if (has_key) {
                zmq::message_t first(key.data(), key.size());
                ok = raw_socket.send(first, zmq::send_flags::sndmore).has_value();
                if (ok) {
                    // libzmq accepts the later parts of a started multipart message at once;
                    // if it does not, the message is lost: count it and stop.
                    zmq::message_t second(body.data(), body.size());
                    if (!raw_socket.send(second, zmq::send_flags::none)) {
                        ++send_failures;
                        log.error("the value frame of message " + std::to_string(line) +
                                  " could not be sent after its key frame");
                        return false;
                    }
                }
            } else {
                zmq::message_t only(body.data(), body.size());
                ok = raw_socket.send(only, zmq::send_flags::none).has_value();
            }
            if (ok) {
                return true;
            }
            if (check_signal() || past_deadline() || handshake_gave_up()) {
                return false;
            }
        }
    };
    message confirm_message;
    auto send_envelope = [&](header& hh, std::string_view topic, std::string_view body) {
        for (;;) {
            bool ok = false;
            if (reliable) {
                if (hh.id.is_nil()) {
                    // The id is known before its confirm can arrive (send() reads replies).
                    hh.stamp();
                    outcomes.sent(line, hh.id);
                }
                confirm_message.header() = hh;
                confirm_message.set_body(body);
                ok = reliable->send(confirm_message, std::chrono::milliseconds(200));
                hh.id = confirm_message.header().id;
            } else if (is_pub) {
                // hh is stamped in place; `topic` may view hh.type, so hh must not move.
                ok = sock_holder->send(topic, hh, body);
            } else {
                ok = sock_holder->send(hh, body);
            }
            if (ok) {
                return true;
            }
            if (check_signal() || past_deadline() || handshake_gave_up()) {
                return false;
            }
        }
    };
    // --req: an error reply (docs/wire-protocol.md §8.3: the broker's timeout, busy, attempts,
    // a worker's handler error) is printed like any reply, so that stdout keeps one reply per
    // request, and named on stderr; the exit code is 69 (the service could not answer).
    std::uint64_t error_replies = 0;
    auto note_error_reply = [&](const std::optional<patterns::lb_error_reply>& error) {
        if (error) {
            ++error_replies;
            log.error("request " + std::to_string(line) +
                      " was answered with an error: " + error->code + ": " + error->reason);
        }
    };
    auto wait_reply = [&]() {
        for (;;) {
            if (cfg.raw) {
                zmq::pollitem_t item{raw_socket.handle(), 0, ZMQ_POLLIN, 0};
                if (zmq::poll(&item, 1, std::chrono::milliseconds(200)) > 0) {
                    bool more = true;
                    std::size_t frames = 0;
                    while (more) {
                        zmq::message_t frame;
                        if (!raw_socket.recv(frame, zmq::recv_flags::none)) {
                            break;
                        }
                        more = frame.more();
                        reply_format.render(nullptr, {}, frame.to_string_view(), out.data());
                        // A broker's raw error reply is a single frame.
                        if (!more && frames == 0) {
                            note_error_reply(
                                patterns::parse_raw_error_reply(frame.to_string_view()));
                        }
                        ++frames;
                    }
                    out.flush();
                    return true;
                }
            } else if (sock_holder->recv(reply, std::chrono::milliseconds(200))) {
                reply_format.render(&reply.header(), {}, reply.body_view(), out.data());
                out.flush();
                note_error_reply(patterns::parse_error_reply(reply.header(), reply.body_view()));
                return true;
            }
            if (check_signal() || past_deadline() || handshake_gave_up()) {
                return false;
            }
        }
    };

    double interval_s = cfg.rate > 0 ? 1.0 / cfg.rate : 0.0;
    auto next_send = clock::now();
    std::uint64_t json_errors = 0;
    std::uint64_t not_sent = 0; // records read but not sent (malformed JSON, the run ended)
    int code = exit_ok;
    std::string_view input;
    for (;;) {
        if (cfg.count && stats.messages() >= *cfg.count) {
            break;
        }
        if (check_signal()) { // time-throttled: at most one syscall per 50 ms
            break;
        }
        if (cfg.verbosity >= 1 && monitor) {
            (void)monitor->poll(); // -v: socket events as they happen
        }
        const auto status = reader->next(input);
        if (status == input_reader::status::end || status == input_reader::status::stopped) {
            if (idle && !timed_out && !stop_requested) {
                log.info("no input for " + std::to_string(cfg.idle_timeout->count()) +
                         " ms (--idle-timeout), stopping");
            }
            break;
        }
        if (cfg.idle_timeout) {
            last_input = clock::now();
        }
        if (status == input_reader::status::truncated) {
            log.error("input ends inside a length-prefixed message (message " +
                      std::to_string(line + 1) + " is truncated)");
            code = exit_data_error;
            break;
        }
        if (status == input_reader::status::too_large) {
            log.error("message " + std::to_string(line + 1) + " is larger than --max-size " +
                      std::to_string(cfg.max_size) +
                      " bytes; stopping (the messages before it were sent)");
            code = exit_data_error;
            break;
        }
        if (status == input_reader::status::failed) {
            log.error("cannot read " + (cfg.file ? "--file '" + *cfg.file + "'" : "stdin") + ": " +
                      reader->error());
            code = cfg.file ? exit_no_input : exit_failure;
            break;
        }
        ++line;
        if (past_deadline()) {
            break;
        }
        if (interval_s > 0) {
            const auto now = clock::now();
            if (now < next_send) {
                // The rate wait ends at --timeout at the latest.
                const auto until = deadline ? std::min(next_send, *deadline) : next_send;
                if (reliable && cfg.batch > 1 && until - now > cfg.batch_linger) {
                    reliable->send_batch(); // a partly filled batch does not wait that long
                }
                if (auto sig =
                        signals.wait(std::chrono::ceil<std::chrono::milliseconds>(until - now))) {
                    stop_requested = true;
                    log.info(std::string("received ") + strsignal(*sig) + ", stopping");
                    break;
                }
                if (past_deadline()) {
                    break;
                }
                next_send += std::chrono::duration_cast<clock::duration>(
                    std::chrono::duration<double>(interval_s));
            } else {
                next_send = now + std::chrono::duration_cast<clock::duration>(
                                      std::chrono::duration<double>(interval_s));
            }
        }

        if (cfg.strip_cr && cfg.framing == input_framing::delimited && !input.empty() &&
            input.back() == '\r') {
            input.remove_suffix(1); // CRLF input in the default line mode
        }
        std::string_view key;
        std::string_view value = input;
        bool has_key = false;
        if (cfg.key_delimiter) {
            const auto at = input.find(*cfg.key_delimiter);
            if (at != std::string_view::npos) {
                key = input.substr(0, at);
                value = input.substr(at + cfg.key_delimiter->size());
                has_key = true;
            }
        }

        bool sent = false;
        header* used = &h;
        std::size_t body_bytes = value.size();
        if (cfg.raw) {
            sent = send_raw(key, has_key, value);
        } else if (cfg.json) {
            if (value.find_first_not_of(" \t\r\n") == std::string_view::npos) {
                continue; // blank lines between JSON values
            }
            json_header = base;
            if (has_key && !is_pub) {
                json_header.type.assign(key);
            }
            std::string error;
            if (!json_to_envelope(value, json_header, json_body, error)) {
                ++json_errors;
                log.error("line " + std::to_string(line) + ": malformed JSON: " + error);
                outcomes.not_sent(line);
                ++not_sent;
                continue;
            }
            used = &json_header;
            body_bytes = json_body.size();
            sent = send_envelope(json_header, has_key ? key : std::string_view(json_header.type),
                                 json_body);
        } else {
            h.id = message_id{};
            h.timestamp_ns = 0;
            h.correlation_id = cfg.correlation_id;
            if (cfg.key_delimiter && !is_pub) {
                if (has_key) {
                    h.type.assign(key);
                } else {
                    h.type = cfg.type;
                }
            }
            sent = send_envelope(h, has_key ? key : std::string_view(h.type), value);
        }
        if (!sent) {
            outcomes.not_sent(line, &used->id);
            ++not_sent;
            break;
        }
        stats.add(body_bytes);
        if (cfg.verbosity >= 1 && !cfg.raw) {
            log.debug("sent " + used->id.to_string());
        }
        if (cfg.stats && (stats.messages() & 255U) == 0) {
            stats.maybe_print_live("zmqkit-send");
        }
        if (is_req && !wait_reply()) {
            break;
        }
    }
    out.flush();

    if (client_handshakes != nullptr && !stop_requested && !handshake_refused &&
        client_handshakes->stats().succeeded == 0) {
        // Queued messages wait for a handshake: within what is left of --timeout, or of the
        // handshake limit.
        const auto limit_end = deadline ? *deadline : started + handshake_limit;
        const auto left =
            std::max(std::chrono::milliseconds(0),
                     std::chrono::ceil<std::chrono::milliseconds>(limit_end - clock::now()));
        handshake_refused = !client_handshakes->wait_handshake(left);
    }
    if (handshake_refused && !stop_requested) {
        std::string ignored;
        (void)outcomes.finish(ignored); // every record it holds: unconfirmed
        return report_handshake();
    }

    if (reliable) {
        confirm_run run{*reliable, outcomes,       not_sent, code, json_errors,
                        timed_out, stop_requested, deadline, false};
        const int result = finish_confirmed(run, cfg, log, stats, check_signal, handshake_gave_up,
                                            [&] { return !reach.why_unreachable().empty(); });
        return run.unreachable ? report_handshake() : result;
    }
    if (stop_requested) {
        // Bounded flush on a signal: at most a second, less if --linger says so.
        raw_socket.set(zmq::sockopt::linger,
                       static_cast<int>(std::min<std::int64_t>(cfg.linger.count(), 1000)));
    }
    // Messages the socket accepted are only queued. Closing the socket and terminating the
    // context waits until the queue is empty or the linger expires; if the shutdown took the
    // whole linger, messages were still queued and have been dropped. (PUB drops messages for
    // absent subscribers by design, so it is not checked.) --timeout bounds the whole run:
    // the linger is at most what is left of it.
    const bool linger_cut = deadline && !stop_requested && bound_linger(raw_socket, *deadline);
    const int linger_ms = raw_socket.get(zmq::sockopt::linger);
    const std::string linger_name =
        linger_cut ? "the rest of --timeout " + std::to_string(cfg.timeout->count()) + " ms"
                   : "--linger " + std::to_string(linger_ms) + " ms";
    bool check_delivery = stats.messages() > 0 && !is_pub && (linger_ms > 0 || linger_cut);
    // No peer yet: wait for one for the linger (what closing would wait anyway); a peer that
    // cannot be reached (refused handshake, unknown host) is reported (exit 69), none at all
    // is "not delivered" as before.
    bool no_peer_within_linger = false;
    if (check_delivery && monitor && !cfg.security.enabled() && !stop_requested &&
        monitor->poll() == 0) {
        if (monitor->wait(1, std::chrono::milliseconds(linger_ms), check_signal) == 0) {
            if (!reach.why_unreachable().empty()) {
                return report_handshake();
            }
            no_peer_within_linger = true;
            raw_socket.set(zmq::sockopt::linger, 0); // the linger has been waited already
            check_delivery = false;
        }
    }
    const bool peer_seen =
        (monitor && monitor->poll() > 0) || (secured != nullptr && secured->stats().succeeded > 0);
    reach.watch(nullptr, nullptr);
    monitor.reset(); // stops monitoring and closes its socket: the context can terminate
    const auto closing = clock::now();
    sock_holder.reset();
    auth.reset(); // its ZAP socket too
    context.close();
    const auto shutdown_took = clock::now() - closing;
    const bool undelivered =
        no_peer_within_linger || (check_delivery && linger_ms > 0 &&
                                  shutdown_took >= std::chrono::milliseconds(linger_ms) * 9 / 10);
    if (cfg.stats) {
        stats.print_final("zmqkit-send");
    }
    if (undelivered && !peer_seen) { // nobody ever connected: nothing left the queue
        log.warn(std::to_string(stats.messages()) +
                 " messages may not have been delivered (no peer took them within " + linger_name +
                 "; no peer ever connected)");
    } else if (undelivered) {
        log.warn("messages may not have been delivered (no peer took them within " + linger_name +
                 "; the " + std::to_string(stats.messages()) +
                 " counted by --stats were queued, not necessarily delivered)");
    }
    timed_out = timed_out || (undelivered && linger_cut);
    if (send_failures > 0) {
        log.error(std::to_string(send_failures) + " message(s) could not be sent completely");
    }
    if (json_errors > 0) {
        log.error(std::to_string(json_errors) + " malformed JSON line(s) skipped");
    }
    if (timed_out && !stop_requested) {
        log.error("timed out after " + std::to_string(cfg.timeout->count()) + " ms (" +
                  std::to_string(stats.messages()) + " message(s) sent)");
        return exit_timeout;
    }
    if (code != exit_ok) {
        return code;
    }
    if (send_failures > 0) {
        return exit_failure;
    }
    if (json_errors > 0) {
        return exit_data_error;
    }
    if (error_replies > 0) {
        log.error(std::to_string(error_replies) + " of " + std::to_string(stats.messages()) +
                  " request(s) answered with an error");
        return exit_unavailable;
    }
    return undelivered ? exit_timeout : exit_ok;
}

} // namespace zmqkit::cli
