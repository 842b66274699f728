#include "zmqkit-worker/worker.hpp"

#include "common/message_format.hpp"
#include "common/tool_support.hpp"
#include "zmqkit-worker/command.hpp"

#include <zmqkit/header.hpp>
#include <zmqkit/log.hpp>
#include <zmqkit/patterns/load_balancer.hpp>
#include <zmqkit/patterns/majordomo.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

extern char** environ; // NOLINT: POSIX declares it nowhere

namespace zmqkit::cli {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The variables a command gets from its request; inherited ones of these names are dropped so
// that a request without ids never shows another's.
constexpr std::array<std::string_view, 7> request_variables{
    "ZMQKIT_MESSAGE_ID", "ZMQKIT_CORRELATION_ID", "ZMQKIT_CAUSATION_ID", "ZMQKIT_MESSAGE_TYPE",
    "ZMQKIT_ATTEMPT",    "ZMQKIT_SERVICE",        "ZMQKIT_WORKER_SLOT"};

// Descriptors 0, 1 and 2 stay open (on /dev/null if the worker was started without them): a
// pipe made later must never take one of those numbers, or the child's dup2 onto it would be a
// no-op that leaves it close-on-exec.
void keep_standard_descriptors_open() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) < 0) {
            const int opened = ::open("/dev/null", O_RDWR); // takes the lowest free number: fd
            (void)opened;
        }
    }
}

// Counters every slot adds to (the final statistics).
struct worker_counters {
    std::atomic<std::uint64_t> handled{0}; // answered, errors included
    std::atomic<std::uint64_t> failed{0};  // answered with an error
    std::atomic<std::uint64_t> exit_status{0}, signal{0}, timeout{0}, flood{0}, refused{0},
        not_run{0}, cut{0};
    std::atomic<std::uint64_t> bytes_in{0}, bytes_out{0};
    std::atomic<std::uint64_t> numbered{0}; // requests started (their numbers in the logs)
    std::atomic<std::uint32_t> running{0};  // requests in a handler now
};

// What the handler knows of a request.
struct request_info {
    const header* envelope = nullptr; // nullptr: a raw request (a plain REQ client) or 7/MDP
    std::uint32_t slot = 0;
    std::uint64_t number = 0;
};

// A request's outcome: the reply's body, or the reason of an error reply.
struct request_outcome {
    bool ok = true;
    std::string text;
};

// Turns one request into its outcome: runs the command, or (without --exec) prints the request
// and answers with --reply or its body. Shared by the slots; thread-safe.
class request_engine {
public:
    request_engine(const worker_config& cfg, const logger& log, worker_counters& counters,
                   const command_cutoff& cutoff)
        : cfg_(cfg), log_(log), counters_(counters), cutoff_(cutoff), format_(cfg.format) {
        limits_.timeout = cfg.exec_timeout;
        limits_.kill_grace = cfg.kill_grace;
        limits_.max_output = cfg.max_size;
        limits_.wake = std::clamp(cfg.heartbeat_interval / 4, milliseconds(10), milliseconds(100));
        for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
            const std::string_view entry(*e);
            const auto name = entry.substr(0, entry.find('='));
            if (std::find(request_variables.begin(), request_variables.end(), name) ==
                request_variables.end()) {
                base_environment_.emplace_back(entry);
            }
        }
    }

    // `keep_alive` runs while a command runs (the slot's heartbeats).
    request_outcome handle(const request_info& info, std::string_view body,
                           const std::function<void()>& keep_alive) {
        counters_.bytes_in.fetch_add(body.size());
        request_outcome outcome;
        if (body.size() > cfg_.max_size) {
            counters_.refused.fetch_add(1);
            outcome = {false, "request of " + std::to_string(body.size()) +
                                  " bytes is larger than --max-size (" +
                                  std::to_string(cfg_.max_size) + " bytes); not run"};
            report(info, outcome, "refused", {});
        } else if (cfg_.command.empty()) {
            outcome = print(info, body);
        } else {
            outcome = run(info, body, keep_alive);
        }
        if (outcome.ok) {
            counters_.bytes_out.fetch_add(outcome.text.size());
        } else {
            counters_.failed.fetch_add(1);
        }
        return outcome;
    }

private:
    request_outcome run(const request_info& info, std::string_view body,
                        const std::function<void()>& keep_alive) {
        auto r =
            run_command(cfg_.command, environment_for(info), body, limits_, cutoff_, keep_alive);
        switch (r.status) {
        case command_status::ok:
            break;
        case command_status::exit_status:
            counters_.exit_status.fetch_add(1);
            break;
        case command_status::signal:
            counters_.signal.fetch_add(1);
            break;
        case command_status::timeout:
            counters_.timeout.fetch_add(1);
            break;
        case command_status::flood:
            counters_.flood.fetch_add(1);
            break;
        case command_status::not_run:
            counters_.not_run.fetch_add(1);
            break;
        case command_status::drained:
        case command_status::stopped:
            counters_.cut.fetch_add(1);
            break;
        }
        request_outcome outcome{r.ok(), r.ok() ? std::move(r.output) : r.reason(cfg_.max_size)};
        report(info, outcome, r.ok() ? "exit status 0" : "failed", r.elapsed);
        return outcome;
    }

    request_outcome print(const request_info& info, std::string_view body) {
        {
            const std::lock_guard lock(out_mutex_);
            format_.render(info.envelope, {}, body, out_.data());
            if (!out_.flush() && !stdout_lost_) {
                stdout_lost_ = true;
                log_.warn("cannot write the requests to stdout; still answering them");
            }
        }
        request_outcome outcome{true, cfg_.reply ? *cfg_.reply : std::string(body)};
        report(info, outcome, cfg_.reply ? "answered with --reply" : "echoed", {});
        return outcome;
    }

    // The command's environment: the worker's, and the request's ids.
    std::vector<std::string> environment_for(const request_info& info) const {
        std::vector<std::string> env = base_environment_;
        env.push_back("ZMQKIT_WORKER_SLOT=" + std::to_string(info.slot));
        if (cfg_.protocol == worker_protocol::mdp) {
            env.push_back("ZMQKIT_SERVICE=" + cfg_.service);
        }
        if (const header* h = info.envelope) {
            env.push_back("ZMQKIT_MESSAGE_ID=" + h->id.to_string());
            if (!h->correlation_id.is_nil()) {
                env.push_back("ZMQKIT_CORRELATION_ID=" + h->correlation_id.to_string());
            }
            if (!h->causation_id.is_nil()) {
                env.push_back("ZMQKIT_CAUSATION_ID=" + h->causation_id.to_string());
            }
            if (!h->type.empty() && h->type.find('\0') == std::string::npos) {
                env.push_back("ZMQKIT_MESSAGE_TYPE=" + h->type);
            }
            env.push_back("ZMQKIT_ATTEMPT=" + std::to_string(h->attempt));
        }
        return env;
    }

    // -v: a debug line per request with its ids; an error reply: a warning (at most 20 a
    // second, the rest counted in the next line).
    void report(const request_info& info, const request_outcome& outcome, std::string_view what,
                std::optional<milliseconds> elapsed) {
        const bool failed = !outcome.ok;
        const auto level = failed ? log_level::warn : log_level::debug;
        if (!log_.enabled(level)) {
            return;
        }
        std::string line = "request " + std::to_string(info.number) + " (slot " +
                           std::to_string(info.slot) + "): ";
        if (failed) {
            std::optional<std::uint64_t> held;
            {
                const std::lock_guard lock(lines_mutex_);
                held = failure_lines_.admit("failed");
            }
            if (!held) {
                return;
            }
            line += "error reply: " + escaped(outcome.text, 2048) +
                    log_rate_limiter::suppressed_suffix(*held);
        } else {
            line += std::string(what) + ", " + std::to_string(outcome.text.size()) + " byte(s)";
        }
        if (elapsed) {
            line += " in " + describe_duration(*elapsed);
        }
        if (info.envelope != nullptr) {
            const message_log_fields ids(*info.envelope);
            log_.core().write(level, line, ids.fields());
        } else {
            log_.core().write(level, line);
        }
    }

    const worker_config& cfg_;
    const logger& log_;
    worker_counters& counters_;
    const command_cutoff& cutoff_;
    command_limits limits_;
    std::vector<std::string> base_environment_;
    const message_formatter format_;
    std::mutex out_mutex_;
    output_buffer out_;
    bool stdout_lost_ = false;
    std::mutex lines_mutex_;
    log_rate_limiter failure_lines_{std::chrono::seconds(1), {}, 20};
};

// What a handler throws for lb_worker to answer with error "handler" and this reason.
struct request_failed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One library worker: its own DEALER to the broker, credit 1, one request at a time.
struct worker_slot {
    std::unique_ptr<patterns::lb_worker> lb;
    std::unique_ptr<patterns::mdp_worker> mdp;

    void start() {
        if (lb) {
            lb->start();
        } else {
            mdp->start();
        }
    }
    void keep_alive() noexcept {
        if (lb) {
            lb->keep_alive();
        } else {
            mdp->keep_alive();
        }
    }
    void stop_taking() noexcept {
        if (lb) {
            lb->stop_taking();
        } else if (mdp) {
            mdp->stop_taking();
        }
    }
    void stop(milliseconds deadline) noexcept {
        if (lb) {
            lb->stop(deadline);
        } else if (mdp) {
            mdp->stop(deadline);
        }
    }
};

// The run: the context, the slots, the wait for a signal or --count, the drain, the report.
// Members in closing order: the slots (their threads use the rest) before the engine, the
// context last.
class worker_run {
public:
    worker_run(const worker_config& cfg, const logger& log, shutdown_signals& signals)
        : cfg_(cfg), log_(log), signals_(signals) {}

    int run() {
        auth_ = start_authenticator(context_, {&cfg_.security}, log_);
        if (const int code = start_slots(); code != exit_ok) {
            return code;
        }
        log_.info(describe());
        started_ = clock::now();
        for (;;) {
            if (const auto sig = signals_.wait(milliseconds(100))) {
                stop_taking();
                log_stop_signal(log_, *sig);
                return drain();
            }
            if (count_reached_.load()) {
                log_.info(std::to_string(counters_.handled.load()) +
                          " request(s) answered (--count " + std::to_string(*cfg_.count) +
                          "), stopping");
                return drain();
            }
            (void)reap_leftovers(milliseconds(0));
            if (cfg_.stats) {
                print_live();
            }
        }
    }

private:
    int start_slots() {
        try {
            // Every slot exists before the first starts: a handler may reach all of them.
            for (std::uint32_t i = 0; i < cfg_.concurrency; ++i) {
                auto& slot = *slots_.emplace_back(std::make_unique<worker_slot>());
                if (cfg_.protocol == worker_protocol::lb) {
                    slot.lb = std::make_unique<patterns::lb_worker>(context_, lb_options(i),
                                                                    lb_handler(i));
                } else {
                    slot.mdp = std::make_unique<patterns::mdp_worker>(context_, mdp_options(i),
                                                                      mdp_handler(i));
                }
            }
            for (auto& slot : slots_) {
                slot->start();
            }
        } catch (const zmqkit::endpoint_error& e) {
            throw usage_error{e.what(), exit_usage};
        } catch (const zmqkit::error& e) {
            log_.error(std::string("cannot start: ") + e.what());
            return exit_unavailable;
        }
        return exit_ok;
    }

    template <class Options> void common_options(Options& o, std::uint32_t slot) {
        o.endpoint = join_specs();
        o.name = "worker-" + std::to_string(slot);
        o.heartbeat_interval = cfg_.heartbeat_interval;
        o.liveness = cfg_.liveness;
        o.socket.name = "zmqkit-worker";
        o.socket.registry = &registry_;
        o.socket.security = cfg_.security.socket;
        o.log = [this](std::string_view line) { log_.warn(line); };
    }
    patterns::lb_worker_options lb_options(std::uint32_t slot) {
        patterns::lb_worker_options o;
        common_options(o, slot);
        return o;
    }
    patterns::mdp_worker_options mdp_options(std::uint32_t slot) {
        patterns::mdp_worker_options o;
        common_options(o, slot);
        o.service = cfg_.service;
        return o;
    }

    [[nodiscard]] bool echoes() const noexcept { return cfg_.command.empty() && !cfg_.reply; }

    patterns::lb_handler lb_handler(std::uint32_t slot) {
        return [this, slot](const patterns::lb_request& r) {
            const request_info info{r.envelope ? &r.message.header() : nullptr, slot,
                                    counters_.numbered.fetch_add(1) + 1};
            auto outcome = handle(info, r.message.body_view());
            if (!outcome.ok) {
                throw request_failed(outcome.text);
            }
            if (!r.envelope) {
                return message(outcome.text);
            }
            message reply = r.message.follow_up(outcome.text);
            if (echoes()) {
                reply.header().type = r.message.header().type;
                reply.header().content_type = r.message.header().content_type;
            }
            return reply;
        };
    }

    patterns::mdp_handler mdp_handler(std::uint32_t slot) {
        return [this, slot](const std::vector<std::string_view>& body) {
            const request_info info{nullptr, slot, counters_.numbered.fetch_add(1) + 1};
            std::string joined;
            for (const auto& frame : body) {
                joined += frame;
            }
            auto outcome = handle(info, joined);
            if (!outcome.ok) {
                return patterns::mdp_error_body(patterns::lb_error::handler, outcome.text);
            }
            if (echoes()) {
                return std::vector<std::string>(body.begin(), body.end()); // frame by frame
            }
            return std::vector<std::string>{std::move(outcome.text)};
        };
    }

    // Around every request: the slot's heartbeats while it runs, --count once it is answered.
    request_outcome handle(const request_info& info, std::string_view body) {
        counters_.running.fetch_add(1);
        worker_slot& slot = *slots_[info.slot];
        auto outcome = engine_.handle(info, body, [&slot] { slot.keep_alive(); });
        counters_.running.fetch_sub(1);
        const auto handled = counters_.handled.fetch_add(1) + 1;
        if (cfg_.count && handled >= *cfg_.count && !count_reached_.exchange(true)) {
            stop_taking(); // before this reply leaves: the next request is not taken
        }
        return outcome;
    }

    void stop_taking() noexcept {
        for (auto& slot : slots_) {
            slot->stop_taking();
        }
    }

    // Nothing new is taken (stop_taking() was called); the commands running finish by the
    // drain's deadline, each slot sends its last reply and DISCONNECT; a second signal kills
    // the commands still running. Exit 1 when any was cut short.
    int drain() {
        cutoff_.at(clock::now() + cfg_.drain_timeout);
        const auto running = counters_.running.load();
        log_.info("draining: " + std::to_string(running) +
                  " request(s) running, taking no more (up to " +
                  describe_duration(cfg_.drain_timeout) + ")");
        std::atomic<std::size_t> stopped{0};
        std::vector<std::thread> stoppers;
        stoppers.reserve(slots_.size());
        for (auto& slot : slots_) {
            stoppers.emplace_back([&slot, &stopped] {
                slot->stop(milliseconds(2000)); // its last reply and DISCONNECT may take this
                stopped.fetch_add(1);
            });
        }
        bool killed = false;
        while (stopped.load() < slots_.size()) {
            if (const auto sig = signals_.wait(milliseconds(50)); sig && !killed) {
                killed = true;
                log_.warn(std::string("received ") + strsignal(*sig) + " again: killing the " +
                          std::to_string(counters_.running.load()) + " command(s) still running");
                cutoff_.now();
            }
        }
        for (auto& t : stoppers) {
            t.join();
        }
        if (const auto left = reap_leftovers(milliseconds(2000)); left > 0) {
            log_.warn(std::to_string(left) +
                      " killed command(s) did not end within 2 s (stuck in the kernel?)");
        }
        if (cfg_.stats) {
            print_final();
        }
        if (counters_.cut.load() > 0) {
            log_.warn(std::to_string(counters_.cut.load()) +
                      " command(s) were cut short by the drain; their requests got error replies");
            return exit_failure;
        }
        return exit_ok;
    }

    [[nodiscard]] std::string join_specs() const {
        std::string spec;
        for (const auto& e : cfg_.endpoints) {
            spec += (spec.empty() ? "" : ",") + e;
        }
        return spec;
    }

    [[nodiscard]] std::string describe() const {
        std::string text =
            std::to_string(cfg_.concurrency) + " worker(s) of " +
            (cfg_.protocol == worker_protocol::lb ? std::string("6/PPP")
                                                  : "7/MDP service '" + cfg_.service + "'") +
            " at " + join_endpoints(cfg_.endpoints) + ", ";
        if (!cfg_.command.empty()) {
            text += std::string(cfg_.shell ? "running /bin/sh -c '" : "running '") +
                    cfg_.exec_text + "' per request (--exec-timeout " +
                    describe_duration(cfg_.exec_timeout) + ")";
        } else {
            text += cfg_.reply ? "answering with --reply" : "echoing each request";
        }
        return text;
    }

    [[nodiscard]] std::string stats_line() const {
        const double elapsed = std::chrono::duration<double>(clock::now() - started_).count();
        const auto handled = counters_.handled.load();
        char rate[64];
        std::snprintf(rate, sizeof rate, "elapsed=%.3fs rate=%.0f req/s", elapsed,
                      elapsed > 0 ? static_cast<double>(handled) / elapsed : 0.0);
        const auto n = [](const std::atomic<std::uint64_t>& v) { return std::to_string(v.load()); };
        return "zmqkit-worker: stats: handled=" + std::to_string(handled) +
               " failed=" + n(counters_.failed) + " (exit=" + n(counters_.exit_status) +
               " signal=" + n(counters_.signal) + " timeout=" + n(counters_.timeout) +
               " flood=" + n(counters_.flood) + " refused=" + n(counters_.refused) +
               " not_run=" + n(counters_.not_run) + " cut=" + n(counters_.cut) +
               ") bytes_in=" + n(counters_.bytes_in) + " bytes_out=" + n(counters_.bytes_out) +
               " " + rate;
    }
    // With --stats and stderr a terminal: the line rewritten at most once a second.
    void print_live() {
        if (tty_ < 0) {
            tty_ = ::isatty(STDERR_FILENO) != 0 ? 1 : 0;
        }
        const auto now = clock::now();
        if (tty_ == 0 || now - last_live_ < std::chrono::seconds(1)) {
            return;
        }
        last_live_ = now;
        const std::string text = "\r" + stats_line() + "\x1b[K";
        (void)::write(STDERR_FILENO, text.data(), text.size());
        live_shown_ = true;
    }
    void print_final() {
        const std::string text = (live_shown_ ? "\r\x1b[K" : "") + stats_line() + "\n";
        (void)::write(STDERR_FILENO, text.data(), text.size());
    }

    const worker_config& cfg_;
    const logger& log_;
    shutdown_signals& signals_;
    zmq::context_t context_;
    std::unique_ptr<authenticator> auth_;
    metrics_registry registry_;
    worker_counters counters_;
    command_cutoff cutoff_;
    request_engine engine_{cfg_, log_, counters_, cutoff_};
    std::atomic<bool> count_reached_{false};
    std::vector<std::unique_ptr<worker_slot>> slots_; // before the engine is gone: stopped first
    clock::time_point started_ = clock::now();
    clock::time_point last_live_{};
    int tty_ = -1;
    bool live_shown_ = false;
};

} // namespace

int run_worker(const worker_config& cfg, const logger& log, shutdown_signals& signals) {
    keep_standard_descriptors_open();
    // A command that exits without reading its stdin must not kill the worker writing to it:
    // the write fails with EPIPE instead. Commands get SIGPIPE back at their default.
    (void)std::signal(SIGPIPE, SIG_IGN);
    // The worker reaps its own commands; an inherited "ignore" would reap them for it.
    (void)std::signal(SIGCHLD, SIG_DFL);
    return worker_run(cfg, log, signals).run();
}

} // namespace zmqkit::cli
