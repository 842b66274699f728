#include "common/cli.hpp"

#include <zmqkit/encoding.hpp>
#include <zmqkit/error.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

namespace po = boost::program_options;

namespace zmqkit::cli {

std::chrono::milliseconds parse_duration(std::string_view text) {
    const std::string original(text);
    auto bad = [&]() -> config_error {
        return config_error("bad duration '" + original +
                            "': use a number of milliseconds or a number with a unit, e.g. "
                            "250ms, 2s, 1.5s, 1m");
    };
    if (text.empty()) {
        throw bad();
    }
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr == text.data() || !std::isfinite(value) || value < 0) {
        throw bad();
    }
    const std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
    double ms = 0;
    if (unit.empty() || unit == "ms") {
        ms = value;
    } else if (unit == "s") {
        ms = value * 1000;
    } else if (unit == "m" || unit == "min") {
        ms = value * 60'000;
    } else if (unit == "h") {
        ms = value * 3'600'000;
    } else {
        throw bad();
    }
    if (ms > 1e12) {
        throw bad();
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

void check_linger(std::chrono::milliseconds linger) {
    if (linger.count() < 0 || linger.count() > INT32_MAX) {
        throw usage_error{"--linger " + std::to_string(linger.count()) +
                              " ms is out of range (0 to " + std::to_string(INT32_MAX) + " ms)",
                          exit_usage};
    }
}

bool shared_option_name(const std::string& name) {
    // zmqkit-worker's --heartbeat-interval and --liveness must match its broker's (zmqkit-proxy);
    // --drain-timeout is, for both, the longest a drain may take.
    static const std::vector<std::string> shared{
        "hwm",        "linger",        "sockopt",
        "verbose",    "quiet",         "log-level",
        "log-format", "drain-timeout", "heartbeat-interval",
        "liveness"};
    if (std::find(shared.begin(), shared.end(), name) != shared.end()) {
        return true;
    }
    for (const auto& flag : security_flag_names()) {
        // --curve-allow, and a side's --frontend-curve-allow
        if (name == flag || (name.size() > flag.size() && name.ends_with("-" + flag))) {
            return true;
        }
    }
    return false;
}

namespace {

constexpr std::string_view environment_prefix = "ZMQKIT_";

// One option parse_all() took from the environment: "hwm" from "ZMQKIT_SEND_HWM".
struct environment_setting {
    std::string option;
    std::string variable;
    std::string value;
    // "ZMQKIT_SEND_HWM=many" (the value's unprintable bytes escaped, a long one cut).
    [[nodiscard]] std::string describe() const { return variable + "=" + escaped(value, 64); }
};

// "DRAIN_TIMEOUT" -> "drain-timeout"
std::string option_name(std::string_view variable_part) {
    std::string name(variable_part);
    for (auto& c : name) {
        c = c == '_' ? '-' : static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    return name;
}

std::string upper_tool(std::string_view tool) {
    std::string out(environment_prefix);
    for (const char c : tool) {
        out += c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
    }
    return out + "_";
}

std::vector<environment_setting>& settings_taken() {
    static std::vector<environment_setting> settings;
    return settings;
}

// True if `text` mentions "--<option>" as a whole option name.
bool mentions_option(std::string_view text, const std::string& option) {
    const std::string flag = "--" + option;
    for (auto at = text.find(flag); at != std::string_view::npos; at = text.find(flag, at + 1)) {
        const auto after = at + flag.size();
        if (after == text.size() ||
            !(std::isalnum(static_cast<unsigned char>(text[after])) != 0 || text[after] == '-')) {
            return true;
        }
    }
    return false;
}

} // namespace

const std::vector<std::string>& tool_specific_option_names() {
    // tests/unit/cli_test.cpp checks that every name two tools share is here or
    // shared_option_name().
    static const std::vector<std::string> names{
        "all", "batch", "count", "data", "dealer", "endpoint", "format", "idle-timeout", "json",
        "max-size", "pair", "pub", "pull", "push", "raw", "rate", "reply", "stats", "sub", "sync",
        "timeout", "topic", "wait-peers",
        // send -K reads keys, recv -K writes them: a pipe may want one without the other
        "key-delimiter",
        // zmqkit-proxy: the broker's deadline for a reply; zmqkit-send: when to resend
        "request-timeout",
        // zmqkit-worker sets ZMQKIT_SERVICE for its command: a zmqkit-send it runs must not
        // take it for its own --service
        "mdp", "service",
        // zmqkit-proxy --titanic DIR serves Titanic; zmqkit-send --titanic is its client
        "titanic",
        // one port per process: ZMQKIT_<TOOL>_METRICS_LISTEN, never a plain ZMQKIT_ one
        "metrics-listen",
        // zmqkit-proxy binds its control socket there; zmqkit-spooler asks a proxy there
        "control",
        // zmqkit-recv reads as a member of the group; zmqkit-spooler resets or deletes it
        "group"};
    return names;
}

namespace {

struct environment_match {
    std::string option;     // "" when the tool does not read the variable
    bool plain = false;     // ZMQKIT_<OPTION>, not ZMQKIT_<TOOL>_<OPTION>
    bool ambiguous = false; // plain, names an option of the tool, not read (tool-specific name)
};

environment_match match_environment(const po::options_description& desc, std::string_view tool,
                                    const std::string& variable) {
    environment_match m;
    if (!variable.starts_with(environment_prefix)) {
        return m;
    }
    const std::string own = upper_tool(tool);
    m.plain = !variable.starts_with(own);
    const std::string name = option_name(
        std::string_view(variable).substr(m.plain ? environment_prefix.size() : own.size()));
    if (name.empty() || desc.find_nothrow(name, false) == nullptr) {
        return m;
    }
    if (m.plain) {
        const auto& specific = tool_specific_option_names();
        if (name == "config" ||
            (!shared_option_name(name) &&
             std::find(specific.begin(), specific.end(), name) != specific.end())) {
            m.ambiguous = name != "config";
            return m;
        }
    }
    m.option = name;
    return m;
}

std::vector<std::string>& ignored_variables() {
    static std::vector<std::string> ignored;
    return ignored;
}

} // namespace

std::vector<std::string> ignored_environment_notes(std::string_view tool) {
    std::vector<std::string> notes;
    for (const auto& variable : ignored_variables()) {
        const auto option =
            option_name(std::string_view(variable).substr(environment_prefix.size()));
        notes.push_back("ignoring " + variable + ": tools take --" + option +
                        " with different meanings; set " + upper_tool(tool) +
                        variable.substr(environment_prefix.size()) + " for zmqkit-" +
                        std::string(tool));
    }
    return notes;
}

std::string name_environment_source(const std::string& message) {
    for (const auto& s : settings_taken()) {
        if (message.starts_with(s.variable + "=")) {
            return message;
        }
        if (mentions_option(message, s.option) ||
            (!s.value.empty() && message.find("'" + s.value + "'") != std::string::npos)) {
            return s.describe() + ": " + message;
        }
    }
    return message;
}

void parse_all(std::string_view tool, int argc, const char* const* argv,
               const po::options_description& desc,
               const po::positional_options_description* positional, po::variables_map& vm) {
    auto& taken = settings_taken();
    taken.clear();
    ignored_variables().clear();
    try {
        auto parser = po::command_line_parser(argc, argv).options(desc);
        if (positional != nullptr) {
            parser.positional(*positional);
        }
        po::store(parser.run(), vm);
    } catch (const po::error& e) {
        throw usage_error{escaped(e.what(), 200) + " (see --help)", exit_usage};
    }
    // The tool's own variables first, then the plain ones: po::store keeps the first value.
    for (const bool plain_pass : {false, true}) {
        std::vector<environment_setting> pass;
        auto mapper = [&](const std::string& variable) -> std::string {
            const auto m = match_environment(desc, tool, variable);
            if (m.plain != plain_pass) {
                return {};
            }
            if (m.ambiguous) {
                ignored_variables().push_back(variable);
            }
            const auto& name = m.option;
            if (name.empty()) {
                return {};
            }
            const char* value = std::getenv(variable.c_str());
            if (vm.count(name) == 0U || vm[name].defaulted()) {
                pass.push_back({name, variable, value != nullptr ? value : ""});
            }
            return name;
        };
        try {
            po::store(po::parse_environment(desc, mapper), vm);
        } catch (const po::error_with_option_name& e) {
            std::string option = e.get_option_name();
            option.erase(0, option.find_first_not_of('-'));
            for (const auto& s : pass) {
                if (option == s.option) {
                    throw usage_error{s.describe() + ": " + escaped(e.what(), 200), exit_usage};
                }
            }
            throw usage_error{escaped(e.what(), 200) + " (from the environment)", exit_usage};
        } catch (const po::error& e) {
            throw usage_error{escaped(e.what(), 200) + " (from the environment)", exit_usage};
        }
        taken.insert(taken.end(), pass.begin(), pass.end());
    }
    if (vm.count("config") != 0U) {
        const auto path = vm["config"].as<std::string>();
        const std::string shown = "config file '" + escaped(path, 200) + "'";
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec)) {
            throw usage_error{shown + " is a directory: give an INI file (\"option = value\" "
                                      "lines)",
                              exit_config};
        }
        std::ifstream file(path);
        if (!file) {
            throw usage_error{"cannot read " + shown + ": " + std::strerror(errno), exit_config};
        }
        try {
            po::store(po::parse_config_file(file, desc, false), vm);
        } catch (const po::error& e) {
            // The message quotes the offending line: a binary file's bytes are escaped, and a
            // long line is cut.
            throw usage_error{shown + ": " + escaped(e.what(), 200), exit_config};
        }
        if (file.bad()) {
            throw usage_error{"cannot read " + shown + ": " + std::strerror(errno), exit_config};
        }
    }
    try {
        po::notify(vm);
    } catch (const po::error& e) {
        throw usage_error{name_environment_source(escaped(e.what(), 200)) + " (see --help)",
                          exit_usage};
    }
}

void append_escaped(std::string& out, std::string_view bytes, bool quote, std::size_t limit) {
    const std::size_t shown = std::min(bytes.size(), limit);
    for (std::size_t i = 0; i < shown; ++i) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        switch (c) {
        case '"':
            out += quote ? "\\\"" : "\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                out += "\\x";
                out += hex_digit(c >> 4U);
                out += hex_digit(c);
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    if (shown < bytes.size()) {
        out += "...(" + std::to_string(bytes.size() - shown) + " more bytes)";
    }
}

std::string escaped(std::string_view bytes, std::size_t limit) {
    std::string out;
    out.reserve(std::min(bytes.size(), limit) + 16);
    append_escaped(out, bytes, false, limit);
    return out;
}

void add_log_options(po::options_description& desc, const char* verbose_help) {
    // clang-format off
    desc.add_options()
        ("verbose,v", verbose_help)
        ("quiet,q", "warnings and errors only (--log-level warn)")
        ("log-level", po::value<std::string>()->value_name("LEVEL"), "trace, debug, info, warn, error or off (default info; -v is debug, -q warn)")
        ("log-format", po::value<std::string>()->value_name("FORMAT")->default_value("text"), "stderr lines as 'text' (<time> <LEVEL> <component>: <text>) or 'json' (one object per line)");
    // clang-format on
}

log_settings log_settings_from(const po::variables_map& vm) {
    log_settings s;
    if (vm.count("quiet") != 0U) {
        s.level = log_level::warn;
    } else if (vm.count("verbose") != 0U) {
        s.level = log_level::debug;
    }
    if (vm.count("log-level") != 0U) {
        const auto& text = vm["log-level"].as<std::string>();
        const auto level = parse_log_level(text);
        if (!level) {
            throw usage_error{"--log-level '" + escaped(text, 64) +
                                  "': use trace, debug, info, warn, error or off",
                              exit_usage};
        }
        s.level = *level;
    }
    if (vm.count("log-format") != 0U) {
        const auto& text = vm["log-format"].as<std::string>();
        if (text == "json") {
            s.format = log_format::json;
        } else if (text != "text") {
            throw usage_error{"--log-format '" + escaped(text, 64) + "': use text or json",
                              exit_usage};
        }
    }
    return s;
}

void apply_log_settings(const log_settings& settings) {
    set_log_sink(make_stderr_sink(settings.format));
    set_log_level(settings.level);
}

} // namespace zmqkit::cli

// ---- security flags ---------------------------------------------------------------------------

namespace zmqkit::cli {
namespace {

constexpr const char* flag_curve_secret = "curve-secret";
constexpr const char* flag_curve_server_key = "curve-server-key";
constexpr const char* flag_curve_allow = "curve-allow";
constexpr const char* flag_zap_allow_ip = "zap-allow-ip";
constexpr const char* flag_zap_deny_ip = "zap-deny-ip";
constexpr const char* flag_plain_passwords = "plain-passwords";
constexpr const char* flag_plain_user = "plain-user";
constexpr const char* flag_plain_password_file = "plain-password-file";

bool is_list_flag(std::string_view name) {
    return name == flag_zap_allow_ip || name == flag_zap_deny_ip;
}

// "ADDR" or "ADDR/BITS" with an IPv4 or IPv6 address and a prefix length that fits it.
bool valid_ip_entry(const std::string& entry) {
    const auto slash = entry.find('/');
    const std::string address = entry.substr(0, slash);
    unsigned char buffer[16];
    int max_bits = 0;
    if (::inet_pton(AF_INET, address.c_str(), buffer) == 1) {
        max_bits = 32;
    } else if (::inet_pton(AF_INET6, address.c_str(), buffer) == 1) {
        max_bits = 128;
    } else {
        return false;
    }
    if (slash == std::string::npos) {
        return true;
    }
    const std::string bits = entry.substr(slash + 1);
    int value = -1;
    const auto [ptr, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
    return ec == std::errc{} && ptr == bits.data() + bits.size() && !bits.empty() && value >= 0 &&
           value <= max_bits;
}

std::string environment_name(std::string_view side, std::string_view what) {
    std::string name = "ZMQKIT_";
    for (const char c : side) {
        name += c == '-' ? '_' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    if (!side.empty()) {
        name += '_';
    }
    name += what;
    return name;
}

// The merged values of one side's flags.
struct side_flags {
    std::string curve_secret, curve_server_key, curve_allow, plain_passwords, plain_user,
        plain_password_file;
    std::vector<std::string> allow_ips, deny_ips;
};

} // namespace

const std::vector<std::string>& security_flag_names() {
    static const std::vector<std::string> names{
        flag_curve_secret, flag_curve_server_key, flag_curve_allow, flag_zap_allow_ip,
        flag_zap_deny_ip,  flag_plain_passwords,  flag_plain_user,  flag_plain_password_file};
    return names;
}

void add_security_options(po::options_description& visible, po::options_description& hidden,
                          const std::vector<std::string>& sides) {
    // clang-format off
    visible.add_options()
        (flag_curve_secret, po::value<std::string>()->value_name("FILE"), "CURVE: this side's certificate, the secret file (zmqkit-keygen NAME writes NAME and NAME_secret)")
        (flag_curve_server_key, po::value<std::string>()->value_name("KEY|FILE"), "CURVE client: the server's public key, Z85 text or its public certificate file")
        (flag_curve_allow, po::value<std::string>()->value_name("DIR|any"), "CURVE server: admit the clients whose public certificates are in DIR (reread on SIGHUP), or 'any' client (encryption only); needs --curve-secret")
        (flag_zap_allow_ip, po::value<std::vector<std::string>>()->composing()->value_name("ADDR[/BITS]"), "server: admit only these peer addresses (repeatable)")
        (flag_zap_deny_ip, po::value<std::vector<std::string>>()->composing()->value_name("ADDR[/BITS]"), "server: refuse these peer addresses (repeatable; wins over --zap-allow-ip)")
        (flag_plain_passwords, po::value<std::string>()->value_name("FILE"), "PLAIN server (development only, cleartext): 'user=password' lines")
        (flag_plain_user, po::value<std::string>()->value_name("NAME"), "PLAIN client: the user name; the password comes from ZMQKIT_PLAIN_PASSWORD or --plain-password-file")
        (flag_plain_password_file, po::value<std::string>()->value_name("FILE"), "PLAIN client: read the password from the first line of FILE");
    // clang-format on
    for (const auto& side : sides) {
        for (const auto& name : security_flag_names()) {
            const std::string full = side + "-" + name;
            if (is_list_flag(name)) {
                hidden.add_options()(full.c_str(),
                                     po::value<std::vector<std::string>>()->composing(), "");
            } else {
                hidden.add_options()(full.c_str(), po::value<std::string>(), "");
            }
        }
    }
}

std::string security_help(const std::vector<std::string>& sides) {
    std::string text = R"(
Security (docs/security.md): a side with --curve-allow is a CURVE server (it needs
--curve-secret), a side with --curve-server-key a CURVE client (--curve-secret then gives it a
known identity; without it a fresh key pair is used). A CURVE server refuses plaintext peers.
--zap-allow-ip / --zap-deny-ip alone filter a plaintext server's peers. Keys, passwords and
secret files are never printed; a password is never taken from the command line.
)";
    if (!sides.empty()) {
        text += "The flags apply to every side (";
        for (std::size_t i = 0; i < sides.size(); ++i) {
            text += (i == 0 ? "" : ", ") + sides[i];
        }
        text += ");\n--<side>-<flag> overrides one flag for one side, e.g. --frontend-curve-allow "
                "DIR or\n--backend-plain-user NAME (password: ZMQKIT_BACKEND_PLAIN_PASSWORD, else "
                "ZMQKIT_PLAIN_PASSWORD).\n";
    }
    return text;
}

namespace {

// One side's flags merged: "--<side>-<flag>" over the plain flag, with the inherited values a
// side's own flags replace dropped (the other mechanism, the other role).
side_flags merge_side_flags(const po::variables_map& vm, const std::string& side, bool per_side) {
    auto given = [&](const std::string& name) {
        return per_side && vm.count(side + "-" + name) != 0U;
    };
    bool own_curve = false;
    bool own_plain = false;
    for (const auto& name : security_flag_names()) {
        if (given(name)) {
            own_curve = own_curve || name.rfind("curve-", 0) == 0;
            own_plain = own_plain || name.rfind("plain-", 0) == 0;
        }
    }
    auto inherited_dropped = [&](std::string_view name) {
        if (name.rfind("curve-", 0) == 0 && own_plain && !own_curve) {
            return true;
        }
        if (name.rfind("plain-", 0) == 0 && own_curve && !own_plain) {
            return true;
        }
        if (name == flag_curve_allow && given(flag_curve_server_key)) {
            return true;
        }
        if (name == flag_curve_server_key && given(flag_curve_allow)) {
            return true;
        }
        if (name == flag_plain_passwords && (given(flag_plain_user))) {
            return true;
        }
        if ((name == flag_plain_user || name == flag_plain_password_file) &&
            given(flag_plain_passwords)) {
            return true;
        }
        return false;
    };
    auto text = [&](const char* name) -> std::string {
        if (given(name)) {
            return vm[side + "-" + name].as<std::string>();
        }
        if (vm.count(name) != 0U && !inherited_dropped(name)) {
            return vm[name].as<std::string>();
        }
        return {};
    };
    auto list = [&](const char* name) -> std::vector<std::string> {
        if (given(name)) {
            return vm[side + "-" + name].as<std::vector<std::string>>();
        }
        if (vm.count(name) != 0U) {
            return vm[name].as<std::vector<std::string>>();
        }
        return {};
    };
    side_flags f;
    f.curve_secret = text(flag_curve_secret);
    f.curve_server_key = text(flag_curve_server_key);
    f.curve_allow = text(flag_curve_allow);
    f.plain_passwords = text(flag_plain_passwords);
    f.plain_user = text(flag_plain_user);
    f.plain_password_file = text(flag_plain_password_file);
    f.allow_ips = list(flag_zap_allow_ip);
    f.deny_ips = list(flag_zap_deny_ip);
    return f;
}

// The role one side's merged flags give it, checked: a combination that does not make sense
// throws usage_error (through `fail`) naming the flag to add or remove.
struct side_role {
    bool curve_server = false;
    bool curve_client = false;
    bool plain_server = false;
    bool plain_client = false;
    bool filters = false;
};

template <class Fail>
side_role check_side_flags(const side_flags& f, const std::string& side, bool per_side,
                           const Fail& fail) {
    side_role r;
    r.curve_server = !f.curve_allow.empty();
    r.curve_client = !f.curve_server_key.empty();
    r.plain_server = !f.plain_passwords.empty();
    r.plain_client = !f.plain_user.empty();
    r.filters = !f.allow_ips.empty() || !f.deny_ips.empty();
    if (r.curve_server && r.curve_client) {
        throw fail("give --curve-allow (a CURVE server that checks its clients) or "
                   "--curve-server-key (a client of that server), not both");
    }
    if (r.plain_server && r.plain_client) {
        throw fail("give --plain-passwords (a PLAIN server) or --plain-user (a PLAIN client), "
                   "not both");
    }
    const bool curve = r.curve_server || r.curve_client || !f.curve_secret.empty();
    const bool plain = r.plain_server || r.plain_client || !f.plain_password_file.empty();
    if (curve && plain) {
        throw fail("choose CURVE (--curve-*) or PLAIN (--plain-*) for one socket, not both");
    }
    if (!f.curve_secret.empty() && !r.curve_server && !r.curve_client) {
        const std::string prefix = per_side ? "--" + side + "-" : "--";
        throw fail("--curve-secret alone does not say this side's role: add " + prefix +
                   "curve-allow DIR|any to make it a CURVE server, or " + prefix +
                   "curve-server-key KEY|FILE to make it a client of that server");
    }
    if (r.curve_server && f.curve_secret.empty()) {
        throw fail("--curve-allow makes this side a CURVE server, which needs its own key pair: "
                   "add --curve-secret FILE (a secret certificate, e.g. from zmqkit-keygen)");
    }
    if (!f.plain_password_file.empty() && !r.plain_client) {
        throw fail("--plain-password-file is the password of a PLAIN client: add --plain-user "
                   "NAME");
    }
    if (r.filters && (r.curve_client || r.plain_client)) {
        throw fail("--zap-allow-ip / --zap-deny-ip filter the peers of a server side; this side "
                   "is a client (--curve-server-key / --plain-user)");
    }
    for (const auto* entries : {&f.allow_ips, &f.deny_ips}) {
        for (const auto& e : *entries) {
            if (!valid_ip_entry(e)) {
                throw fail(
                    "--" +
                    std::string(entries == &f.allow_ips ? flag_zap_allow_ip : flag_zap_deny_ip) +
                    " '" + e +
                    "' is not an address or CIDR block (e.g. 127.0.0.1, 10.0.0.0/8, "
                    "::1, fd00::/8)");
            }
        }
    }
    if (curve && !curve_available()) {
        throw fail("CURVE is not available: libzmq was built without it (libsodium)");
    }
    return r;
}

// A PLAIN client's password: the first line of --plain-password-file, else the side's
// environment variable (per side), else ZMQKIT_PLAIN_PASSWORD. Never the command line.
template <class Fail>
std::string plain_client_password(const side_flags& f, const std::string& side, bool per_side,
                                  const Fail& fail) {
    std::string password;
    if (!f.plain_password_file.empty()) {
        std::ifstream file(f.plain_password_file);
        if (!file) {
            throw fail("--plain-password-file '" + f.plain_password_file + "': cannot read it");
        }
        std::getline(file, password);
        if (!password.empty() && password.back() == '\r') {
            password.pop_back();
        }
        return password;
    }
    const char* env = nullptr;
    if (per_side) {
        env = std::getenv(environment_name(side, "PLAIN_PASSWORD").c_str());
    }
    if (env == nullptr) {
        env = std::getenv("ZMQKIT_PLAIN_PASSWORD");
    }
    if (env == nullptr) {
        throw fail(
            "--plain-user needs a password: set ZMQKIT_PLAIN_PASSWORD" +
            std::string(per_side ? " (or " + environment_name(side, "PLAIN_PASSWORD") + ")" : "") +
            " or give --plain-password-file FILE (never on the command line)");
    }
    return env;
}

// The side's own CURVE certificate (--curve-secret), if any; refuses a public certificate.
template <class Fail>
std::optional<certificate> own_certificate(const side_flags& f, const Fail& fail) {
    if (f.curve_secret.empty()) {
        return std::nullopt;
    }
    auto own = certificate::load(f.curve_secret);
    if (own.secret_key.empty()) {
        throw fail("--curve-secret '" + f.curve_secret +
                   "' is a public certificate: give the secret one ('" + f.curve_secret +
                   "_secret')");
    }
    return own;
}

} // namespace

side_security resolve_side_security(const po::variables_map& vm, const std::string& side,
                                    bool per_side, const std::string& zap_domain) {
    const side_flags f = merge_side_flags(vm, side, per_side);
    const std::string where = per_side ? side + ": " : std::string();
    auto fail = [&](const std::string& what) -> usage_error {
        return usage_error{where + what, exit_usage};
    };
    const side_role role = check_side_flags(f, side, per_side, fail);

    side_security out;
    out.side = side;
    try {
        const auto own = own_certificate(f, fail);
        zap_policy policy;
        policy.allow_ips = f.allow_ips;
        policy.deny_ips = f.deny_ips;
        if (role.curve_server) {
            if (f.curve_allow == "any") {
                policy.curve_allow_any = true;
            } else {
                std::error_code ec;
                if (!std::filesystem::is_directory(f.curve_allow, ec)) {
                    throw fail("--curve-allow '" + f.curve_allow +
                               "' is not a directory (give a directory of client public "
                               "certificates, or 'any' for encryption without client "
                               "authentication)");
                }
                policy.curve_allow_directory = f.curve_allow;
            }
            out.socket = socket_security::curve_server(*own, zap_domain);
            out.policy = std::move(policy);
        } else if (role.curve_client) {
            out.socket = socket_security::curve_client(resolve_public_key(f.curve_server_key),
                                                       own ? &*own : nullptr);
        } else if (role.plain_server) {
            if (::access(f.plain_passwords.c_str(), R_OK) != 0) {
                throw fail("--plain-passwords '" + f.plain_passwords + "': cannot read it");
            }
            policy.plain_password_file = f.plain_passwords;
            out.socket = socket_security::plain_server(zap_domain);
            out.policy = std::move(policy);
        } else if (role.plain_client) {
            out.socket = socket_security::plain_client(
                f.plain_user, plain_client_password(f, side, per_side, fail));
        } else if (role.filters) {
            out.socket = socket_security::null_server(zap_domain);
            out.policy = std::move(policy);
        }
        if (out.socket.enabled()) {
            out.socket.validate();
        }
    } catch (const security_error& e) {
        throw fail(e.what());
    }
    return out;
}

std::unique_ptr<authenticator> start_authenticator(zmq::context_t& context,
                                                   const std::vector<const side_security*>& sides,
                                                   const logger& log) {
    bool any_server = false;
    for (const auto* s : sides) {
        any_server = any_server || (s != nullptr && s->server());
    }
    if (!any_server) {
        return nullptr;
    }
    authenticator_options options;
    options.log = [&log](std::string_view line) { log.warn(line); };
    auto auth = std::make_unique<authenticator>(context, std::move(options));
    for (const auto* s : sides) {
        if (s == nullptr || !s->server()) {
            continue;
        }
        try {
            auth->set_policy(s->socket.zap_domain, *s->policy);
        } catch (const security_error& e) {
            throw usage_error{s->side + ": " + e.what(), exit_usage};
        }
    }
    return auth;
}

std::vector<std::string> describe_security(const std::vector<const side_security*>& sides) {
    std::vector<std::string> lines;
    for (const auto* s : sides) {
        if (s != nullptr && s->enabled()) {
            lines.push_back(s->side + ": " + s->socket.describe());
        }
    }
    return lines;
}

} // namespace zmqkit::cli
