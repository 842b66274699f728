// The ZAP handler (rfc.zeromq.org/spec:27): answers libzmq's authentication requests for the
// sockets of one context from a REP socket on inproc://zeromq.zap.01, on its own thread.

#include <zmqkit/log.hpp>
#include <zmqkit/security.hpp>

#include <zmq.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace zmqkit {
namespace {

constexpr const char* zap_endpoint = "inproc://zeromq.zap.01";
constexpr std::size_t max_request_frames = 16;

// An IPv4 or IPv6 address (IPv4 also as IPv4-mapped IPv6 is normalised to IPv4).
struct ip_address {
    int family = AF_INET;
    std::array<std::uint8_t, 16> bytes{};
};

struct ip_block {
    ip_address base;
    unsigned prefix = 0; // bits
    std::string text;
};

std::optional<ip_address> parse_address(const std::string& text) {
    ip_address a;
    if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
        a.family = AF_INET;
        return a;
    }
    if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) {
        a.family = AF_INET6;
        static constexpr std::array<std::uint8_t, 12> mapped{0, 0, 0, 0, 0,    0,
                                                             0, 0, 0, 0, 0xff, 0xff};
        if (std::equal(mapped.begin(), mapped.end(), a.bytes.begin())) {
            std::array<std::uint8_t, 16> v4{};
            std::copy(a.bytes.begin() + 12, a.bytes.end(), v4.begin());
            a.bytes = v4;
            a.family = AF_INET;
        }
        return a;
    }
    return std::nullopt;
}

ip_block parse_block(const std::string& entry) {
    const auto slash = entry.find('/');
    const std::string address = entry.substr(0, slash);
    auto a = parse_address(address);
    if (!a) {
        throw security_error("IP filter '" + entry +
                             "' is not an IPv4 or IPv6 address or CIDR block (e.g. 10.0.0.0/8, "
                             "::1, fd00::/8)");
    }
    const unsigned max_bits = a->family == AF_INET ? 32U : 128U;
    unsigned prefix = max_bits;
    if (slash != std::string::npos) {
        const std::string bits = entry.substr(slash + 1);
        if (bits.empty() || bits.size() > 3 ||
            !std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            throw security_error("IP filter '" + entry +
                                 "': the prefix length after '/' is not a "
                                 "number");
        }
        prefix = static_cast<unsigned>(std::stoul(bits));
        if (prefix > max_bits) {
            throw security_error("IP filter '" + entry + "': prefix length " + bits +
                                 " is more than " + std::to_string(max_bits) + " bits");
        }
    }
    return ip_block{*a, prefix, entry};
}

bool contains(const ip_block& b, const ip_address& a) noexcept {
    if (b.base.family != a.family) {
        return false;
    }
    unsigned bits = b.prefix;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
        const unsigned take = std::min(bits, 8U);
        const auto mask = static_cast<std::uint8_t>(0xFFU << (8U - take));
        if ((b.base.bytes[i] & mask) != (a.bytes[i] & mask)) {
            return false;
        }
        bits -= take;
    }
    return true;
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return std::string(s);
}

// "username=password" lines. Throws security_error when the file cannot be read; malformed lines
// are reported in problems (never with the password).
std::map<std::string, std::string> read_password_file(const std::filesystem::path& file,
                                                      std::vector<std::string>& problems) {
    std::ifstream in(file);
    if (!in) {
        throw security_error(file.string() +
                             ": cannot read the password file: " + std::strerror(errno));
    }
    std::map<std::string, std::string> out;
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        const std::string t = trim(line);
        if (t.empty() || t.front() == '#') {
            continue;
        }
        const auto eq = t.find('=');
        if (eq == std::string::npos || eq == 0) {
            problems.push_back(file.string() + ":" + std::to_string(number) +
                               ": not 'username=password' (line skipped)");
            continue;
        }
        out[trim(std::string_view(t).substr(0, eq))] = trim(std::string_view(t).substr(eq + 1));
    }
    return out;
}

bool equal_constant_time(const std::string& a, const std::string& b) noexcept {
    unsigned diff = a.size() == b.size() ? 0U : 1U;
    const std::size_t n = std::max(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        const auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0U;
        const auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0U;
        diff |= x ^ y;
    }
    return diff == 0;
}

std::string key_prefix(const std::string& z85) {
    return z85.substr(0, 8) + "...";
}

// What a domain admits, prepared from its zap_policy.
struct domain_state {
    zap_policy policy;
    std::vector<ip_block> allow;
    std::vector<ip_block> deny;
    std::map<std::string, std::string> keys; // Z85 public key -> user id (the "name" metadata)
    std::map<std::string, std::string> passwords;
};

struct verdict {
    bool allowed = false;
    std::string status = "400";
    std::string text;   // status text of the ZAP reply
    std::string reason; // metric label
    std::string detail; // log text
    std::string user;
};

} // namespace

struct authenticator::impl {
    zmq::context_t& context;
    std::function<void(std::string_view)> log;
    bool log_allowed;
    metrics_registry& registry;

    mutable std::mutex mutex;
    std::map<std::string, std::shared_ptr<const domain_state>> domains;

    std::atomic<std::uint64_t> allowed{0};
    std::atomic<std::uint64_t> denied{0};
    std::atomic<std::uint64_t> malformed{0};

    log_rate_limiter throttle;
    int wake_fd = -1;
    std::thread thread;

    impl(zmq::context_t& ctx, authenticator_options& o)
        : context(ctx), log(o.log ? std::move(o.log) : log_callback("zmqkit.zap")),
          log_allowed(o.log_allowed),
          registry(o.registry != nullptr ? *o.registry : metrics_registry::global()) {}

    void count(const std::string& domain, const std::string& mechanism, const char* result,
               const std::string& reason) {
        std::string mech = mechanism;
        std::transform(mech.begin(), mech.end(), mech.begin(), [](unsigned char c) {
            return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        });
        registry
            .get_counter(
                "zmqkit_zap_requests_total",
                "ZAP authentication requests answered, by domain, mechanism, result and "
                "reason",
                {{"domain", domain}, {"mechanism", mech}, {"result", result}, {"reason", reason}})
            .add();
    }

    // Keys of the directory and the explicit list; problems are appended.
    static void load_keys(domain_state& st, std::vector<std::string>& problems) {
        std::map<std::string, std::string> keys;
        if (!st.policy.curve_allow_directory.empty()) {
            for (auto& c : load_certificate_directory(st.policy.curve_allow_directory, &problems)) {
                keys[c.public_key] = c.meta("name");
            }
        }
        for (const auto& k : st.policy.curve_allow_keys) {
            keys.try_emplace(k, std::string());
        }
        st.keys = std::move(keys);
    }

    void report(const std::vector<std::string>& problems) {
        for (const auto& p : problems) {
            log("ZAP: " + p);
        }
    }

    verdict decide(const domain_state* st, const std::string& address, const std::string& mechanism,
                   const std::vector<zmq::message_t>& frames) {
        verdict v;
        auto deny = [&](std::string reason, std::string detail, std::string text) {
            v.allowed = false;
            v.status = "400";
            v.reason = std::move(reason);
            v.detail = std::move(detail);
            v.text = std::move(text);
            return v;
        };
        if (st == nullptr) {
            return deny("no_policy",
                        "no policy for this domain (authenticator::set_policy); denied by default",
                        "No access policy for this domain");
        }
        const auto peer = parse_address(address);
        if (peer) {
            for (const auto& b : st->deny) {
                if (contains(b, *peer)) {
                    return deny("ip_denied", "address is on the deny list (" + b.text + ")",
                                "Address denied");
                }
            }
        }
        if (!st->allow.empty()) {
            const bool in =
                peer && std::any_of(st->allow.begin(), st->allow.end(),
                                    [&](const ip_block& b) { return contains(b, *peer); });
            if (!in) {
                return deny("ip_not_allowed",
                            peer ? "address is not on the allow list"
                                 : "no IP address (not a tcp peer) and an IP allow list is set",
                            "Address not allowed");
            }
        }
        const std::size_t credentials = frames.size() - 6;
        if (mechanism == "NULL") {
            v.allowed = true;
            v.reason = "null";
        } else if (mechanism == "PLAIN") {
            if (credentials != 2) {
                v.status = "500";
                v.reason = "malformed";
                v.detail = "PLAIN request without username and password frames";
                v.text = "Malformed PLAIN credentials";
                return v;
            }
            const std::string user = frames[6].to_string();
            const std::string password = frames[7].to_string();
            if (st->policy.plain_password_file.empty()) {
                return deny("plain_not_configured",
                            "user \"" + user +
                                "\": PLAIN is not enabled for this domain (no "
                                "password file)",
                            "PLAIN not allowed");
            }
            const auto it = st->passwords.find(user);
            if (it == st->passwords.end()) {
                return deny("unknown_user",
                            "user \"" + user + "\" is not in the password file " +
                                st->policy.plain_password_file.string(),
                            "Invalid username or password");
            }
            if (!equal_constant_time(it->second, password)) {
                return deny("bad_password", "user \"" + user + "\": wrong password",
                            "Invalid username or password");
            }
            v.allowed = true;
            v.reason = "password";
            v.user = user;
        } else if (mechanism == "CURVE") {
            if (credentials != 1 || frames[6].size() != 32) {
                v.status = "500";
                v.reason = "malformed";
                v.detail = "CURVE request without a 32-byte client key";
                v.text = "Malformed CURVE credentials";
                return v;
            }
            char z85[41];
            if (zmq_z85_encode(z85, static_cast<const std::uint8_t*>(frames[6].data()), 32) ==
                nullptr) {
                v.status = "500";
                v.reason = "malformed";
                v.detail = "cannot encode the client key";
                v.text = "Internal error";
                return v;
            }
            const std::string key(z85, 40);
            const auto it = st->keys.find(key);
            if (it != st->keys.end()) {
                v.allowed = true;
                v.reason = "key_allowed";
                v.user = it->second;
            } else if (st->policy.curve_allow_any) {
                v.allowed = true;
                v.reason = "any_key";
            } else {
                std::string where;
                if (!st->policy.curve_allow_directory.empty()) {
                    where = "the allow list " + st->policy.curve_allow_directory.string();
                } else if (!st->policy.curve_allow_keys.empty()) {
                    where = "the allowed keys";
                } else {
                    where = "any allow list (none configured for this domain)";
                }
                return deny("key_not_allowed",
                            "client public key " + key_prefix(key) + " not in " + where,
                            "Client key not allowed");
            }
        } else {
            return deny("mechanism_not_supported", "mechanism " + mechanism + " is not supported",
                        "Mechanism not supported");
        }
        v.status = "200";
        v.text = "OK";
        return v;
    }

    void handle(zmq::socket_t& rep, std::vector<zmq::message_t>& frames) {
        auto reply = [&](const std::string& request_id, const std::string& status,
                         const std::string& text, const std::string& user) {
            const std::array<std::string, 6> out{"1.0", request_id, status, text, user, ""};
            for (std::size_t i = 0; i < out.size(); ++i) {
                (void)rep.send(zmq::buffer(out[i]), i + 1 < out.size() ? zmq::send_flags::sndmore
                                                                       : zmq::send_flags::none);
            }
        };
        if (frames.size() < 6 || frames[0].to_string() != "1.0") {
            malformed.fetch_add(1, std::memory_order_relaxed);
            count(frames.size() > 2 ? frames[2].to_string() : "", "", "error", "malformed");
            log("ZAP: a request that does not follow RFC 27 (" + std::to_string(frames.size()) +
                " frames); answered 500");
            reply(frames.size() > 1 ? frames[1].to_string() : "", "500", "Malformed request", "");
            return;
        }
        const std::string request_id = frames[1].to_string();
        const std::string domain = frames[2].to_string();
        const std::string address = frames[3].to_string();
        const std::string mechanism = frames[5].to_string();
        std::shared_ptr<const domain_state> st;
        {
            std::lock_guard lock(mutex);
            const auto it = domains.find(domain);
            if (it != domains.end()) {
                st = it->second;
            }
        }
        const verdict v = decide(st.get(), address, mechanism, frames);
        const std::string peer = address.empty() ? std::string("(no address)") : address;
        const std::string where = " (" + mechanism + ", domain \"" + domain + "\")";
        if (v.allowed) {
            allowed.fetch_add(1, std::memory_order_relaxed);
            count(domain, mechanism, "allowed", v.reason);
            if (log_allowed) {
                log("ZAP allowed " + peer + where +
                    (v.user.empty() ? std::string() : " as \"" + v.user + "\""));
            }
        } else if (v.status == "500") {
            malformed.fetch_add(1, std::memory_order_relaxed);
            count(domain, mechanism, "error", v.reason);
            log("ZAP error " + peer + where + ": " + v.detail);
        } else {
            denied.fetch_add(1, std::memory_order_relaxed);
            count(domain, mechanism, "denied", v.reason);
            if (const auto held = throttle.admit(address + '\n' + domain + '\n' + v.reason)) {
                log("ZAP denied " + peer + where + ": " + v.detail +
                    log_rate_limiter::suppressed_suffix(*held));
            }
        }
        reply(request_id, v.status, v.text, v.user);
    }

    void run(std::promise<void>& ready) {
        std::optional<zmq::socket_t> rep;
        try {
            rep.emplace(context, zmq::socket_type::rep);
            rep->set(zmq::sockopt::linger, 0);
            rep->bind(zap_endpoint);
        } catch (const zmq::error_t& e) {
            ready.set_exception(std::make_exception_ptr(security_error(
                e.num() == EADDRINUSE
                    ? std::string("cannot start the ZAP authenticator: another ZAP handler is "
                                  "already bound in this context (one authenticator per context)")
                    : std::string("cannot start the ZAP authenticator: ") + e.what())));
            return;
        }
        ready.set_value();
        std::vector<zmq::message_t> frames;
        for (;;) {
            try {
                zmq::pollitem_t items[2] = {{rep->handle(), 0, ZMQ_POLLIN, 0},
                                            {nullptr, wake_fd, ZMQ_POLLIN, 0}};
                zmq::poll(items, 2, std::chrono::milliseconds(-1));
                if ((items[1].revents & ZMQ_POLLIN) != 0) {
                    break;
                }
                if ((items[0].revents & ZMQ_POLLIN) == 0) {
                    continue;
                }
                frames.clear();
                bool more = true;
                while (more) {
                    zmq::message_t f;
                    if (!rep->recv(f, zmq::recv_flags::dontwait)) {
                        break;
                    }
                    more = f.more();
                    if (frames.size() < max_request_frames) {
                        frames.push_back(std::move(f));
                    }
                }
                handle(*rep, frames);
            } catch (const zmq::error_t& e) {
                if (e.num() == ETERM) {
                    break; // the context is closing: stop answering
                }
                log(std::string("ZAP: handler error: ") + e.what());
            } catch (const std::exception& e) {
                log(std::string("ZAP: handler error: ") + e.what());
            }
        }
    }
};

authenticator::authenticator(zmq::context_t& context, authenticator_options options)
    : impl_(std::make_unique<impl>(context, options)) {
    impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (impl_->wake_fd < 0) {
        throw security_error(std::string("cannot start the ZAP authenticator: eventfd: ") +
                             std::strerror(errno));
    }
    std::promise<void> ready;
    auto started = ready.get_future();
    impl_->thread = std::thread([this, &ready] { impl_->run(ready); });
    try {
        started.get(); // bound (or failed) before the constructor returns
    } catch (...) {
        impl_->thread.join();
        ::close(impl_->wake_fd);
        throw;
    }
}

authenticator::~authenticator() {
    const std::uint64_t one = 1;
    (void)::write(impl_->wake_fd, &one, sizeof one);
    if (impl_->thread.joinable()) {
        impl_->thread.join();
    }
    ::close(impl_->wake_fd);
}

void authenticator::set_policy(const std::string& domain, zap_policy policy) {
    auto st = std::make_shared<domain_state>();
    for (const auto& e : policy.allow_ips) {
        st->allow.push_back(parse_block(e));
    }
    for (const auto& e : policy.deny_ips) {
        st->deny.push_back(parse_block(e));
    }
    for (const auto& k : policy.curve_allow_keys) {
        if (!is_z85_key(k)) {
            throw security_error("domain \"" + domain +
                                 "\": an allowed CURVE key is not a 40-character Z85 public key");
        }
    }
    st->policy = std::move(policy);
    std::vector<std::string> problems;
    impl::load_keys(*st, problems);
    if (!st->policy.plain_password_file.empty()) {
        st->passwords = read_password_file(st->policy.plain_password_file, problems);
    }
    impl_->report(problems);
    std::lock_guard lock(impl_->mutex);
    impl_->domains[domain] = std::move(st);
}

std::size_t authenticator::reload() {
    std::map<std::string, std::shared_ptr<const domain_state>> current;
    {
        std::lock_guard lock(impl_->mutex);
        current = impl_->domains;
    }
    std::size_t problem_count = 0;
    for (const auto& [domain, old] : current) {
        auto st = std::make_shared<domain_state>(*old);
        std::vector<std::string> problems;
        try {
            impl::load_keys(*st, problems);
        } catch (const security_error& e) {
            problems.push_back(std::string(e.what()) + " (domain \"" + domain +
                               "\" keeps its previous keys)");
        }
        if (!st->policy.plain_password_file.empty()) {
            try {
                st->passwords = read_password_file(st->policy.plain_password_file, problems);
            } catch (const security_error& e) {
                problems.push_back(std::string(e.what()) + " (domain \"" + domain +
                                   "\" keeps its previous passwords)");
            }
        }
        impl_->report(problems);
        problem_count += problems.size();
        impl_->log("ZAP: reloaded domain \"" + domain + "\": " + std::to_string(st->keys.size()) +
                   " CURVE keys, " + std::to_string(st->passwords.size()) + " PLAIN users");
        std::lock_guard lock(impl_->mutex);
        auto it = impl_->domains.find(domain);
        if (it != impl_->domains.end() && it->second == old) { // not replaced meanwhile
            it->second = std::move(st);
        }
    }
    return problem_count;
}

authenticator_stats authenticator::stats() const {
    return authenticator_stats{impl_->allowed.load(), impl_->denied.load(),
                               impl_->malformed.load()};
}

} // namespace zmqkit
