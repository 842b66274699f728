// zmqkit::patterns — 9/TSP, the Titanic Service Protocol (rfc.zeromq.org/spec:9): durable
// request-reply on top of a 7/MDP broker. A client stores a request (titanic.request) and gets
// an id back once the request is on disk; a dispatcher sends it to its 7/MDP service when the
// service has a worker and stores the reply; the client fetches the reply by id later
// (titanic.reply) and closes it (titanic.close).
//
//   titanic_client ──> [mdp_broker] ──> titanic's three workers (titanic.request/reply/close)
//                           ^                          │ store (one file per request, fsync)
//                           └── titanic's dispatcher <─┘ (an MDP client of the real services)
//
// The frames, status codes, store files and zmqkit's choices: docs/wire-protocol.md §9.5.
#pragma once

#include <zmqkit/export.hpp>
#include <zmqkit/metrics.hpp>
#include <zmqkit/result.hpp>
#include <zmqkit/socket.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zmq {
class context_t;
class socket_t;
} // namespace zmq

namespace zmqkit::patterns {

// ---- 9/TSP constants --------------------------------------------------------------------------

namespace tsp {
inline constexpr std::string_view prefix = "titanic.";
inline constexpr std::string_view request_service = "titanic.request"; // [service][body...]
inline constexpr std::string_view reply_service = "titanic.reply";     // [id]
inline constexpr std::string_view close_service = "titanic.close";     // [id]
// Status frames: three digits, optionally a space and text no client may rely on.
inline constexpr std::string_view ok = "200";      // done (titanic.reply: the reply follows)
inline constexpr std::string_view pending = "300"; // no reply yet: ask again later
inline constexpr std::string_view unknown = "400"; // unknown or invalid id (or request): do not
                                                   // retry
inline constexpr std::string_view error = "500";   // the server failed (disk): retry later
// Request ids: 32 hexadecimal characters (zmqkit: a UUIDv7, lower case).
inline constexpr std::size_t id_size = 32;
// True for 32 hex digits (either case).
[[nodiscard]] ZMQKIT_API bool valid_id(std::string_view id) noexcept;
} // namespace tsp

// ---- the server -------------------------------------------------------------------------------

struct ZMQKIT_API titanic_options {
    std::string directory; // the store: one file per request and per reply (created if missing)
    std::string frontend;  // the broker's frontend (the dispatcher's MDP client connects)
    std::string backend;   // the broker's backend (the three service workers connect)
    std::string name = "titanic"; // metric label {component="<name>"}, log component
    // The broker's (7/MDP): the service workers heartbeat at this interval.
    std::chrono::milliseconds heartbeat_interval = std::chrono::milliseconds{2500};
    std::uint32_t liveness = 3;
    // A dispatched request waits this long for its reply; then the dispatcher takes a fresh
    // socket and tries the request again later (at-least-once: the worker may run it twice).
    std::chrono::milliseconds dispatch_timeout = std::chrono::seconds{10};
    // How long an mmi.service question may take before the broker counts as not answering.
    std::chrono::milliseconds mmi_timeout = std::chrono::seconds{2};
    // Pending requests whose service had no worker are looked at again after this (a new
    // request is looked at within a tick).
    std::chrono::milliseconds retry_interval = std::chrono::seconds{1};
    // A titanic.request whose frames add up to more is refused with "400 too large".
    std::size_t max_request_bytes = std::size_t{64} << 20;
    // Linger, HWMs and security of the dispatcher's DEALER and the workers' DEALERs (a broker
    // reached over inproc needs no security).
    socket_options socket;
    metrics_registry* registry = nullptr; // nullptr: metrics_registry::global()
    // A line per notable event (a corrupt store file, a store error, a dispatch timeout).
    // Unset: zmqkit's log (zmqkit/log.hpp), component `name`, level warn.
    std::function<void(std::string_view)> log;
};

// What opening the store found (the store is read at construction).
struct ZMQKIT_API titanic_recovery {
    std::uint64_t requests = 0;        // request files read
    std::uint64_t pending = 0;         // of them without a reply: dispatched again
    std::uint64_t replies = 0;         // reply files read
    std::uint64_t corrupt = 0;         // files that failed their check: renamed to NAME.corrupt
    std::uint64_t temporaries = 0;     // unfinished writes (NAME.tmp) of a crash: removed
    std::vector<std::string> problems; // one readable line per corrupt file
};

// Counters (also metrics zmqkit_titanic_*{component="<name>"}).
struct ZMQKIT_API titanic_stats {
    std::uint64_t stored = 0;            // requests stored (200 + id)
    std::uint64_t replied = 0;           // replies stored
    std::uint64_t closed = 0;            // titanic.close of a known id
    std::uint64_t fetched = 0;           // titanic.reply answered 200
    std::uint64_t malformed = 0;         // TSP requests refused with 400 + reason (bad frames)
    std::uint64_t unknown = 0;           // titanic.reply for an id the store does not know
    std::uint64_t dispatched = 0;        // requests sent to their service
    std::uint64_t dispatch_timeouts = 0; // ... without a reply within dispatch_timeout
    std::uint64_t corrupt = 0;           // store files that failed their check
    std::uint64_t store_errors = 0;      // writes that failed (answered 500)
    std::uint64_t pending = 0;           // now: stored, no reply yet
    std::uint64_t replies_held = 0;      // now: replies stored and not closed
};

// The Titanic server: three 7/MDP workers (titanic.request, titanic.reply, titanic.close) on
// the broker's backend and a dispatcher, an MDP client on its frontend, each on its own thread,
// over one store directory. The constructor opens the store (creating the directory) and reads
// it: pending requests are dispatched again after start() (at-least-once). A request is
// answered "200" + id only after its file is written, fdatasync'ed, renamed and its directory
// fsync'ed; a reply counts only once stored the same way. Throws config_error for options it
// cannot use and error when the directory cannot be created or read. Thread-safe public methods.
class ZMQKIT_API titanic final {
public:
    titanic(zmq::context_t& context, titanic_options options);
    ~titanic(); // stop()
    titanic(const titanic&) = delete;
    titanic& operator=(const titanic&) = delete;

    // Starts the workers and the dispatcher (they connect: the broker need not be up yet).
    // Throws component_error when a thread cannot start.
    void start();
    // Stops the dispatcher (a request in flight stays pending) and the workers (DISCONNECT).
    // Bounded: each part's stop waits at most `deadline`. Never throws.
    void stop(std::chrono::milliseconds deadline = std::chrono::seconds{2}) noexcept;

    [[nodiscard]] titanic_stats stats() const;
    [[nodiscard]] const titanic_recovery& recovery() const noexcept;
    // {"directory":..,"stored":..,...,"recovery":{..}} (one JSON object; the proxy's STATUS
    // carries it as "titanic").
    [[nodiscard]] std::string status_json() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// ---- the client -------------------------------------------------------------------------------

struct ZMQKIT_API titanic_client_options {
    std::string endpoint; // the broker's frontend; prefix-less entries connect
    // Each TSP call is a 7/MDP request (mdp_client): sent again on a fresh socket after
    // `timeout`, `attempts` sends in all.
    std::chrono::milliseconds timeout = std::chrono::milliseconds{2500};
    std::uint32_t attempts = 3;
    socket_options socket;
    std::function<void(zmq::socket_t&)> configure;
};

// What titanic.reply said.
struct ZMQKIT_API titanic_reply {
    enum class state { ok, pending, unknown, error };
    state status = state::error;
    std::vector<std::string> body; // ok: the service's reply frames
    std::string text;              // the status frame as received ("300", "500 disk full")
};

// A synchronous 9/TSP client over mdp_client (its Lazy Pirate recovery: a fresh socket and a
// resend after each timeout). Single-threaded. Movable; a moved-from client may only be
// destroyed or assigned to. Closing it drops what is in flight (linger 0); never throws.
class ZMQKIT_API titanic_client {
public:
    titanic_client(zmq::context_t& context, titanic_client_options options);
    ~titanic_client();
    titanic_client(const titanic_client&) = delete;
    titanic_client& operator=(const titanic_client&) = delete;
    titanic_client(titanic_client&& other) noexcept;
    titanic_client& operator=(titanic_client&& other) noexcept;

    // titanic.request: stores the request for `service`; done with its id once on disk.
    // Failed: "timeout" (no answer: the broker or Titanic is down; the request may or may
    // not be stored), "refused" (400: a bad service or body, reason says why), "error" (500:
    // retry later), "malformed" (an answer that is not TSP). Throws config_error for an empty
    // body or service.
    [[nodiscard]] result<std::string> request(std::string_view service,
                                              std::vector<std::string> body);
    // titanic.reply: done with what the server said (ok with the body, pending, unknown,
    // error). Failed: "timeout", "malformed".
    [[nodiscard]] result<titanic_reply> reply(std::string_view id);
    // titanic.close: done once the server answered 200 (also for an id it does not know).
    // Failed: "timeout", "refused" (400: not an id), "error", "malformed".
    [[nodiscard]] result<bool> close(std::string_view id);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace zmqkit::patterns
