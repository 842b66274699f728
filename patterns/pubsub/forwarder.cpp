#include <zmqkit/log.hpp>
#include <zmqkit/patterns/pubsub.hpp>

#include <zmqkit/codec.hpp>
#include <zmqkit/error.hpp>

#include "../common/device_support.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace zmqkit::patterns {
namespace {

// How long one blocked send may hold the actor thread (policy block): short, so control
// commands and stop requests are served between attempts.
constexpr auto block_slice = std::chrono::milliseconds(20);

} // namespace

namespace detail {

// Policy disconnect. libzmq neither says which XPUB subscriber is full nor closes one
// connection, and its socket monitor is taken (one per socket; security reporting uses it).
// The kernel shows it instead: a tcp/ipc subscriber that does not keep up leaves this
// process's send queue of its connection full. So every interval the detector lists
// /proc/self/fd, keeps the connected sockets whose local address is a bound backend endpoint
// (accepted subscriber connections; the listener has no peer), and follows each one:
//
// - "behind" starts at a scan that finds the socket not writable (poll without POLLOUT: the
//   very condition libzmq's I/O thread waits on, so its queue for that subscriber grows and
//   then drops) with bytes queued; `level` is the largest queue seen since.
// - it ends at a scan that finds the queue (SIOCOUTQ) below half of `level`: the subscriber
//   drained a real part of its backlog. A momentarily writable socket does not end it: a
//   reader slower than the stream hovers at the writable edge and misses messages all along.
// - behind for `timeout`: shutdown(SHUT_RDWR) with SO_LINGER 0. libzmq then reads EOF, closes
//   its fd (the kernel resets the connection and frees its buffers) and the pipe with its
//   queued messages; the subscriber reconnects by itself and sees the gap.
//
// Every syscall goes to a duplicate of the fd whose inode was checked against the one
// /proc named, so an fd libzmq closed and reused meanwhile is never touched; libzmq's own fd
// is never closed.
class slow_subscriber_detector {
public:
    struct cut_connection {
        std::string peer;
        std::chrono::steady_clock::duration behind{};
        long queued = 0;
    };

    slow_subscriber_detector(const std::vector<std::string>& endpoints,
                             std::chrono::milliseconds timeout)
        : timeout_(timeout) {
        for (const auto& ep : endpoints) {
            if (auto b = parse(ep)) {
                bound_.push_back(std::move(*b));
            }
        }
    }

    // False when no backend endpoint is tcp or ipc (inproc only): nothing to watch.
    [[nodiscard]] bool watching() const noexcept { return !bound_.empty(); }

    // One scan; returns the connections cut by it.
    std::vector<cut_connection> scan(std::chrono::steady_clock::time_point now) {
        std::vector<cut_connection> cut;
        ++generation_;
        DIR* dir = ::opendir("/proc/self/fd");
        if (dir == nullptr) {
            return cut;
        }
        const int own = ::dirfd(dir);
        char link[64];
        while (const dirent* entry = ::readdir(dir)) {
            int fd = -1;
            const std::string_view name(entry->d_name);
            if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc() ||
                fd == own) {
                continue;
            }
            const auto length =
                ::readlinkat(own, entry->d_name, link, sizeof(link) - 1); // "socket:[inode]"
            if (length <= 8 || std::string_view(link, 8) != "socket:[") {
                continue;
            }
            ino_t inode = 0;
            if (std::from_chars(link + 8, link + length, inode).ec != std::errc()) {
                continue;
            }
            follow(fd, inode, now, cut);
        }
        ::closedir(dir);
        std::erase_if(connections_, [&](const auto& kv) { return kv.second.seen != generation_; });
        return cut;
    }

private:
    struct bound_address {
        int family = AF_UNSPEC; // AF_INET, AF_INET6 (tcp) or AF_UNIX (ipc)
        std::uint16_t port = 0;
        bool any_address = false;                // 0.0.0.0 / [::]: match the port only
        std::array<unsigned char, 16> address{}; // 4 or 16 bytes
        std::string path;                        // ipc: sun_path bytes (abstract: a leading '\0')
    };
    struct connection {
        std::uint64_t seen = 0;
        bool backend = false; // an accepted connection of a backend endpoint
        bool behind = false;
        bool cut = false;
        long level = 0;
        std::chrono::steady_clock::time_point since;
    };

    // A duplicate fd, closed on scope exit.
    class duplicate_fd {
    public:
        explicit duplicate_fd(int fd) noexcept : fd_(::fcntl(fd, F_DUPFD_CLOEXEC, 0)) {}
        ~duplicate_fd() {
            if (fd_ >= 0) {
                ::close(fd_);
            }
        }
        duplicate_fd(const duplicate_fd&) = delete;
        duplicate_fd& operator=(const duplicate_fd&) = delete;
        [[nodiscard]] int get() const noexcept { return fd_; }

    private:
        int fd_;
    };

    static std::optional<bound_address> parse(std::string_view endpoint) {
        bound_address b;
        if (endpoint.starts_with("ipc://")) {
            b.family = AF_UNIX;
            b.path = std::string(endpoint.substr(6));
            if (b.path.starts_with('@')) {
                b.path[0] = '\0'; // abstract namespace
            }
            return b;
        }
        if (!endpoint.starts_with("tcp://")) {
            return std::nullopt; // inproc (no fd), pgm, ...: not watched
        }
        auto rest = endpoint.substr(6);
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos ||
            std::from_chars(rest.data() + colon + 1, rest.data() + rest.size(), b.port).ec !=
                std::errc()) {
            return std::nullopt;
        }
        auto host = std::string(rest.substr(0, colon));
        if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
            host = host.substr(1, host.size() - 2);
        }
        if (::inet_pton(AF_INET, host.c_str(), b.address.data()) == 1) {
            b.family = AF_INET;
            b.any_address = host == "0.0.0.0";
        } else if (::inet_pton(AF_INET6, host.c_str(), b.address.data()) == 1) {
            b.family = AF_INET6;
            b.any_address = host == "::";
        } else {
            b.family = AF_INET; // not numeric: the port alone identifies the listener
            b.any_address = true;
        }
        return b;
    }

    [[nodiscard]] bool is_backend(const sockaddr_storage& local, socklen_t length) const {
        for (const auto& b : bound_) {
            if (local.ss_family == AF_UNIX && b.family == AF_UNIX) {
                const auto& un = reinterpret_cast<const sockaddr_un&>(local);
                const auto bytes =
                    static_cast<std::size_t>(length) - offsetof(sockaddr_un, sun_path);
                std::string_view path(un.sun_path, std::min(bytes, sizeof(un.sun_path)));
                if (!path.empty() && path.front() != '\0') {
                    path = path.substr(0, path.find('\0'));
                }
                if (path == b.path) {
                    return true;
                }
            } else if (local.ss_family == AF_INET && b.family != AF_UNIX) {
                const auto& in = reinterpret_cast<const sockaddr_in&>(local);
                if (ntohs(in.sin_port) == b.port &&
                    (b.any_address || (b.family == AF_INET &&
                                       std::memcmp(&in.sin_addr, b.address.data(), 4) == 0))) {
                    return true;
                }
            } else if (local.ss_family == AF_INET6 && b.family != AF_UNIX) {
                const auto& in6 = reinterpret_cast<const sockaddr_in6&>(local);
                if (ntohs(in6.sin6_port) == b.port &&
                    (b.any_address || (b.family == AF_INET6 &&
                                       std::memcmp(&in6.sin6_addr, b.address.data(), 16) == 0))) {
                    return true;
                }
            }
        }
        return false;
    }

    static std::string describe(int fd, const sockaddr_storage& local, socklen_t local_length,
                                const sockaddr_storage& peer) {
        char text[INET6_ADDRSTRLEN] = {};
        if (peer.ss_family == AF_INET) {
            const auto& in = reinterpret_cast<const sockaddr_in&>(peer);
            ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text));
            return std::string(text) + ":" + std::to_string(ntohs(in.sin_port));
        }
        if (peer.ss_family == AF_INET6) {
            const auto& in6 = reinterpret_cast<const sockaddr_in6&>(peer);
            ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text));
            return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6.sin6_port));
        }
        // ipc peers are unnamed: the endpoint and the peer's process.
        const auto& un = reinterpret_cast<const sockaddr_un&>(local);
        const auto bytes = static_cast<std::size_t>(local_length) - offsetof(sockaddr_un, sun_path);
        std::string path(un.sun_path, std::min(bytes, sizeof(un.sun_path)));
        if (!path.empty() && path.front() == '\0') {
            path[0] = '@';
        } else {
            path = path.substr(0, path.find('\0'));
        }
        std::string who = "ipc://" + path;
        ucred credentials{};
        socklen_t size = sizeof(credentials);
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0) {
            who += " (pid " + std::to_string(credentials.pid) + ")";
        }
        return who;
    }

    void follow(int fd, ino_t inode, std::chrono::steady_clock::time_point now,
                std::vector<cut_connection>& cut) {
        const auto found = connections_.find(static_cast<std::uint64_t>(inode));
        if (found != connections_.end() && (!found->second.backend || found->second.cut)) {
            found->second.seen = generation_; // another socket of the process, or cut already
            return;                           // (libzmq has not closed it yet)
        }
        const duplicate_fd dup(fd);
        struct stat st {};
        if (dup.get() < 0 || ::fstat(dup.get(), &st) != 0 || st.st_ino != inode) {
            return; // closed (and perhaps reused) since /proc listed it
        }
        sockaddr_storage local{};
        sockaddr_storage peer{};
        socklen_t local_length = sizeof(local);
        socklen_t peer_length = sizeof(peer);
        const bool backend =
            ::getsockname(dup.get(), reinterpret_cast<sockaddr*>(&local), &local_length) == 0 &&
            is_backend(local, local_length) &&
            ::getpeername(dup.get(), reinterpret_cast<sockaddr*>(&peer), &peer_length) == 0;
        auto& c = connections_[static_cast<std::uint64_t>(inode)];
        c.seen = generation_;
        c.backend = backend; // what a socket is does not change: decided once
        if (!backend) {
            return; // not a backend endpoint, or its listener
        }
        int queued = 0;
        if (::ioctl(dup.get(), SIOCOUTQ, &queued) != 0) {
            return;
        }
        pollfd item{dup.get(), POLLOUT, 0};
        const bool writable = ::poll(&item, 1, 0) == 1 && (item.revents & POLLOUT) != 0;
        if (!c.behind) {
            if (writable || queued == 0) {
                return;
            }
            c.behind = true;
            c.since = now;
            c.level = queued;
            return;
        }
        if (queued < c.level / 2) {
            c.behind = false; // it drained: caught up, or catching up
            return;
        }
        c.level = std::max<long>(c.level, queued);
        if (now - c.since < timeout_) {
            return;
        }
        cut_connection out{describe(dup.get(), local, local_length, peer), now - c.since, queued};
        if (local.ss_family != AF_UNIX) {
            // Reset instead of a FIN queued behind data the peer will not read: the kernel
            // frees the connection's buffers when libzmq closes its fd.
            const linger abort{1, 0};
            (void)::setsockopt(dup.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
        }
        if (::shutdown(dup.get(), SHUT_RDWR) == 0) {
            c.cut = true;
            cut.push_back(std::move(out));
        }
    }

    std::chrono::milliseconds timeout_;
    std::vector<bound_address> bound_;
    std::unordered_map<std::uint64_t, connection> connections_; // by socket inode
    std::uint64_t generation_ = 0;
};

} // namespace detail

slow_subscriber_policy parse_slow_subscriber_policy(std::string_view text) {
    if (text == "drop") {
        return slow_subscriber_policy::drop;
    }
    if (text == "block") {
        return slow_subscriber_policy::block;
    }
    if (text == "disconnect") {
        return slow_subscriber_policy::disconnect;
    }
    throw config_error("slow-subscriber policy '" + std::string(text) +
                       "' is not valid (drop | block | disconnect)");
}

namespace {

device_settings forwarder_settings(const forwarder_options& o) {
    auto s = detail::settings_of(o);
    s.log = o.log;
    return s;
}

} // namespace

forwarder::forwarder(zmq::context_t& context, forwarder_options options)
    : device(context, options.name, forwarder_settings(options)), options_(std::move(options)) {
    detail::refuse_shared_security(
        options_.sockets, "forwarder '" + options_.name + "'",
        "frontend_security, backend_security, capture_security and control_security");
    if (options_.frontend.empty() || options_.backend.empty()) {
        throw config_error("forwarder '" + options_.name +
                           "': both a frontend and a backend endpoint are required");
    }
    detail::check_endpoints({&options_.frontend, &options_.backend, &options_.capture});
    if (options_.slow_subscriber_timeout.count() <= 0) {
        throw config_error("forwarder '" + options_.name +
                           "': slow_subscriber_timeout must be positive, got " +
                           std::to_string(options_.slow_subscriber_timeout.count()) + " ms");
    }
    detail::check_max_subscription_size(options_.max_subscription_size,
                                        "forwarder '" + options_.name + "'");
    options_.batch = std::max<std::size_t>(1, options_.batch);
    auto& reg = registry();
    const metric_labels labels{{"component", options_.name}};
    messages_in_ = &reg.get_counter("zmqkit_device_messages_in_total",
                                    "Messages received on the frontend", labels);
    bytes_in_ =
        &reg.get_counter("zmqkit_device_bytes_in_total", "Bytes received on the frontend", labels);
    messages_out_ = &reg.get_counter("zmqkit_device_messages_out_total",
                                     "Messages sent on the backend", labels);
    bytes_out_ =
        &reg.get_counter("zmqkit_device_bytes_out_total", "Bytes sent on the backend", labels);
    subs_in_ = &reg.get_counter("zmqkit_forwarder_subscription_messages_in_total",
                                "Subscription messages received from subscribers", labels);
    subs_in_bytes_ = &reg.get_counter("zmqkit_forwarder_subscription_bytes_in_total",
                                      "Bytes of subscription messages from subscribers", labels);
    subs_out_ = &reg.get_counter("zmqkit_forwarder_subscription_messages_out_total",
                                 "Subscription messages sent upstream to publishers", labels);
    subs_out_bytes_ = &reg.get_counter("zmqkit_forwarder_subscription_bytes_out_total",
                                       "Bytes of subscription messages sent upstream", labels);
    subscribes_ =
        &reg.get_counter("zmqkit_forwarder_subscribes_total", "Subscribe messages seen", labels);
    unsubscribes_ = &reg.get_counter("zmqkit_forwarder_unsubscribes_total",
                                     "Unsubscribe messages seen", labels);
    subscriptions_ = &reg.get_gauge("zmqkit_forwarder_subscriptions",
                                    "Subscriptions active on the backend", labels);
    subscriptions_refused_ = &reg.get_counter(
        "zmqkit_forwarder_subscriptions_refused_total",
        "Subscriptions refused for being longer than max_subscription_size", labels);
    slow_drops_ = &reg.get_counter(
        "zmqkit_forwarder_slow_subscriber_drops_total",
        "Publications at least one matching subscriber missed because its queue was full", labels);
    slow_disconnects_ = &reg.get_counter(
        "zmqkit_forwarder_slow_subscriber_disconnects_total",
        "Subscriber connections cut because their send queue stayed full (policy disconnect)",
        labels);
    blocked_ = &reg.get_counter("zmqkit_forwarder_blocked_total",
                                "Times a publication waited for a full subscriber (block)", labels);
    capture_drops_ = &reg.get_counter(
        "zmqkit_device_capture_drops_total",
        "Messages not copied to the capture socket because it had no room or no peer", labels);
    snapshots_ = &reg.get_counter("zmqkit_forwarder_snapshots_total",
                                  "Last-value-cache snapshots sent", labels);
    cached_topics_ = &reg.get_gauge("zmqkit_forwarder_cached_topics",
                                    "Topics held by the last-value cache", labels);
    frames_.reserve(8);
}

forwarder::~forwarder() {
    stop();
}

void forwarder::open_sides() {
    frontend_ = &open_side("frontend", zmq::socket_type::xsub, options_.frontend, &options_.sockets,
                           options_.frontend_security);
    backend_ = &open_side("backend", zmq::socket_type::xpub, options_.backend, &options_.sockets,
                          options_.backend_security, [this](zmq::socket_t& s) {
                              // Every subscribe/unsubscribe is seen (counted, forwarded), not
                              // only a prefix's first/last.
                              s.set(zmq::sockopt::xpub_verboser, 1);
                              detail::bound_subscriptions(s, options_.max_subscription_size,
                                                          options_.backend_security);
                              // With NODROP a send to a full subscriber fails instead of
                              // dropping silently: policy block waits, policy drop counts it
                              // and resends lossy (send_publication).
                              s.set(zmq::sockopt::xpub_nodrop, 1);
                          });
    if (options_.last_value_cache) {
        const char everything = 1;
        frontend_->send(zmq::const_buffer(&everything, 1));
    }
    if (!options_.capture.empty()) {
        capture_ = &open_side("capture", zmq::socket_type::push, options_.capture,
                              &options_.sockets, options_.capture_security);
    }
    if (options_.policy == slow_subscriber_policy::disconnect) {
        slow_detector_ = std::make_unique<detail::slow_subscriber_detector>(
            endpoints("backend"), options_.slow_subscriber_timeout);
        if (slow_detector_->watching()) {
            every(std::clamp(options_.slow_subscriber_timeout / 4, std::chrono::milliseconds(10),
                             std::chrono::milliseconds(250)),
                  [this] { disconnect_slow_subscribers(); });
        }
    }
    watch(*frontend_, [this] { (void)forward(options_.batch); });
    watch(*backend_, [this] { handle_subscriptions(); });
    if (options_.policy == slow_subscriber_policy::block) {
        // A publication held back by a full subscriber is retried even when nothing else
        // wakes the loop.
        every(block_slice, [this] {
            if (pending_ > 0 && !paused()) {
                (void)forward(options_.batch);
            }
        });
    }
}

bool forwarder::send_publication(bool lossy) {
    if (lossy) {
        backend_->set(zmq::sockopt::xpub_nodrop, 0);
    }
    const bool block = !lossy && options_.policy == slow_subscriber_policy::block;
    if (block) {
        backend_->set(zmq::sockopt::sndtimeo, static_cast<int>(block_slice.count()));
    }
    const auto first_flags = (pending_ > 1 ? zmq::send_flags::sndmore : zmq::send_flags::none) |
                             (block ? zmq::send_flags::none : zmq::send_flags::dontwait);
    zmq::message_t first_copy;
    if (capture_) {
        first_copy.copy(frames_[0]);
    }
    const bool sent = backend_->send(frames_[0], first_flags).has_value();
    if (lossy) {
        backend_->set(zmq::sockopt::xpub_nodrop, 1);
    }
    if (!sent) {
        return false;
    }
    detail::send_rest_and_tap(*backend_, capture_, frames_, pending_, first_copy, capture_drops_);
    return true;
}

void forwarder::refuse_subscription(std::size_t size) {
    // libzmq has put it in the backend's trie already (bounded by the decoder: at most the
    // framing allowance over the limit); it is not counted as a subscription, not passed
    // upstream and never answered as a snapshot request.
    log(log_level::warning, options_.name + ": refused a subscription of " + std::to_string(size) +
                                " bytes (max_subscription_size " +
                                std::to_string(options_.max_subscription_size) + ")");
    subscriptions_refused_->add(); // after the line: whoever sees the count finds the line too
}

void forwarder::disconnect_slow_subscribers() {
    for (const auto& cut : slow_detector_->scan(now())) {
        char seconds[32];
        std::snprintf(seconds, sizeof(seconds), "%.1f",
                      std::chrono::duration<double>(cut.behind).count());
        const std::string line = options_.name + ": disconnected slow subscriber " + cut.peer +
                                 ": send queue full for " + seconds + " s (" +
                                 std::to_string(cut.queued) + " bytes queued)";
        log(log_level::warning, line);
        slow_disconnects_->add(); // after the line: whoever sees the count finds the line too
    }
}

std::size_t forwarder::forward(std::size_t limit) {
    std::size_t forwarded = 0;
    while (forwarded < limit) {
        if (pending_ == 0) {
            std::size_t bytes = 0;
            pending_ = detail::receive_message(*frontend_, frames_, bytes);
            if (pending_ == 0) {
                note_drained(*frontend_); // empty; forward() does not use it again
                break;
            }
            pending_bytes_ = bytes;
            messages_in_->add();
            bytes_in_->add(bytes);
            if (options_.last_value_cache) {
                cache(frames_, pending_);
            }
        }
        if (!send_publication(false)) {
            if (options_.policy != slow_subscriber_policy::block) {
                // A matching subscriber is full: it misses this one; the others get it.
                slow_drops_->add();
                (void)send_publication(true);
            } else {
                blocked_->add();
                set_watch_enabled(*frontend_, false); // retried by the timer
                break;
            }
        }
        messages_out_->add();
        bytes_out_->add(pending_bytes_);
        pending_ = 0;
        ++forwarded;
        if (!paused()) {
            set_watch_enabled(*frontend_, true);
        }
    }
    return forwarded;
}

void forwarder::handle_subscriptions() {
    zmq::message_t frame;
    for (int n = 0; n < 1024; ++n) {
        if (!backend_->recv(frame, zmq::recv_flags::dontwait)) {
            note_drained(*backend_); // every snapshot sent on it came before this receive
            return;
        }
        subs_in_->add();
        subs_in_bytes_->add(frame.size());
        if (detail::subscription_too_large(frame, options_.max_subscription_size)) {
            if (static_cast<const unsigned char*>(frame.data())[0] == 1) {
                refuse_subscription(frame.size() - 1);
            } // an unsubscribe of one: that subscription was refused already
            continue;
        }
        const auto* bytes = static_cast<const unsigned char*>(frame.data());
        const std::string_view body(reinterpret_cast<const char*>(bytes) + 1,
                                    !frame.empty() ? frame.size() - 1 : 0);
        const bool subscribe = !frame.empty() && bytes[0] == 1;
        const bool unsubscribe = !frame.empty() && bytes[0] == 0;
        if (subscribe) {
            subscribes_->add();
            subscriptions_->add(1);
        } else if (unsubscribe) {
            unsubscribes_->add();
            subscriptions_->add(-1);
        }
        if (body.starts_with(snapshot_topic_prefix)) {
            // A snapshot request is for this device, never for the publishers.
            if (subscribe) {
                send_snapshot(body);
            }
            continue;
        }
        if (options_.last_value_cache && (subscribe || unsubscribe)) {
            continue; // upstream we subscribe to everything already
        }
        const auto size = frame.size();
        if (frontend_->send(frame, zmq::send_flags::dontwait)) {
            subs_out_->add();
            subs_out_bytes_->add(size);
        }
    }
}

void forwarder::cache(const std::vector<zmq::message_t>& frames, std::size_t count) {
    if (count != 2 && count != 3) {
        return; // not an envelope publication
    }
    std::size_t header_size = 0;
    const auto& head = frames[1];
    const bool inline_body = count == 2;
    if (!decode_header(head.data(), head.size(), scratch_header_,
                       inline_body ? &header_size : nullptr)
             .ok()) {
        return;
    }
    if (!inline_body) {
        header_size = head.size();
    }
    const auto topic = frames[0].to_string_view();
    auto it = values_.find(topic);
    if (it == values_.end()) {
        it = values_.emplace(std::string(topic), cached_value{}).first;
        cached_topics_->set(static_cast<std::int64_t>(values_.size()));
    }
    const auto* data = static_cast<const char*>(head.data());
    it->second.header.assign(data, header_size);
    if (inline_body) {
        it->second.body.assign(data + header_size, head.size() - header_size);
    } else {
        it->second.body.assign(static_cast<const char*>(frames[2].data()), frames[2].size());
    }
    const auto pub = publisher_id_of(scratch_header_); // key 12, or an older publisher's
    if (!pub.empty() && scratch_header_.sequence != 0) {
        auto& seq = stream_sequences_[{std::string(pub), std::string(topic)}];
        seq = std::max(seq, scratch_header_.sequence);
    }
}

void forwarder::send_snapshot(std::string_view request_topic) {
    // request_topic = snapshot prefix + 16-byte nonce + the subscriber's topic prefix.
    const std::size_t nonce_end = snapshot_topic_prefix.size() + 16;
    const auto prefix =
        request_topic.size() >= nonce_end ? request_topic.substr(nonce_end) : std::string_view();
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    pk.pack_array(2);
    std::size_t streams = 0;
    for (const auto& [k, seq] : stream_sequences_) {
        streams += k.second.starts_with(prefix) ? 1U : 0U;
    }
    pk.pack_array(static_cast<std::uint32_t>(streams));
    for (const auto& [k, seq] : stream_sequences_) {
        if (k.second.starts_with(prefix)) {
            pk.pack_array(3);
            pk.pack_bin(static_cast<std::uint32_t>(k.first.size()));
            pk.pack_bin_body(k.first.data(), static_cast<std::uint32_t>(k.first.size()));
            pk.pack(k.second);
            pk.pack(seq);
        }
    }
    auto first = values_.lower_bound(prefix);
    std::size_t values = 0;
    for (auto it = first; it != values_.end() && it->first.starts_with(prefix); ++it) {
        ++values;
    }
    pk.pack_array(static_cast<std::uint32_t>(values));
    for (auto it = first; it != values_.end() && it->first.starts_with(prefix); ++it) {
        pk.pack_array(3);
        pk.pack(it->first);
        pk.pack_bin(static_cast<std::uint32_t>(it->second.header.size()));
        pk.pack_bin_body(it->second.header.data(),
                         static_cast<std::uint32_t>(it->second.header.size()));
        pk.pack_bin(static_cast<std::uint32_t>(it->second.body.size()));
        pk.pack_bin_body(it->second.body.data(),
                         static_cast<std::uint32_t>(it->second.body.size()));
    }
    header h = header::fresh();
    h.type = snapshot_type;
    h.content_type = content_type_msgpack;
    const auto encoded = encode_header(h);
    // Lossy: a snapshot must never wait behind (or for) another subscriber.
    backend_->set(zmq::sockopt::xpub_nodrop, 0);
    (void)backend_->send(zmq::buffer(request_topic), zmq::send_flags::sndmore);
    (void)backend_->send(zmq::buffer(encoded), zmq::send_flags::sndmore);
    (void)backend_->send(zmq::const_buffer(buffer.data(), buffer.size()), zmq::send_flags::none);
    backend_->set(zmq::sockopt::xpub_nodrop, 1);
    snapshots_->add();
}

void forwarder::on_pause(bool paused) {
    // Pausing stops publications only: subscriptions keep flowing upstream.
    set_watch_enabled(*frontend_, !paused && pending_ == 0);
}

drain_report forwarder::on_drain(time_point deadline) {
    // Forward what has already arrived; stop at the deadline or when the frontend is idle.
    while (detail::before(deadline)) {
        if (forward(options_.batch) > 0) {
            continue;
        }
        if (pending_ > 0) {
            continue; // blocked: forward() waited one slice; try until the deadline
        }
        if (!detail::wait_for(*frontend_, ZMQ_POLLIN, deadline, 50ms)) {
            break;
        }
    }
    // What is still held (a publication blocked by a full subscriber, input not read) is
    // dropped.
    const std::uint64_t dropped =
        (pending_ > 0 ? 1 : 0) + detail::discard_waiting(*frontend_, messages_in_, bytes_in_);
    pending_ = 0;
    detail::linger_until(*backend_, deadline);
    return drain_report{dropped, std::nullopt};
}

proxy_statistics forwarder::statistics() const noexcept {
    proxy_statistics s;
    s.frontend_messages_in = messages_in_->value();
    s.frontend_bytes_in = bytes_in_->value();
    s.frontend_messages_out = subs_out_->value();
    s.frontend_bytes_out = subs_out_bytes_->value();
    s.backend_messages_in = subs_in_->value();
    s.backend_bytes_in = subs_in_bytes_->value();
    s.backend_messages_out = messages_out_->value();
    s.backend_bytes_out = bytes_out_->value();
    return s;
}

void forwarder::add_status_head(detail::status_object& status) {
    status.json["policy"] = options_.policy == slow_subscriber_policy::block        ? "block"
                            : options_.policy == slow_subscriber_policy::disconnect ? "disconnect"
                                                                                    : "drop";
}

void forwarder::add_status(detail::status_object& status) {
    auto& j = status.json;
    j["subscriptions"] = subscriptions_->value();
    j["subscribes"] = subscribes_->value();
    j["unsubscribes"] = unsubscribes_->value();
    j["subscriptions_refused"] = subscriptions_refused_->value();
    j["slow_subscriber_drops"] = slow_drops_->value();
    j["slow_subscriber_disconnects"] = slow_disconnects_->value();
    j["blocked"] = blocked_->value();
    j["capture_drops"] = capture_drops_->value();
    j["cached_topics"] = cached_topics_->value();
    j["snapshots"] = snapshots_->value();
}

} // namespace zmqkit::patterns
