// Certificates in CZMQ's zcert format (a subset of ZPL, rfc.zeromq.org/spec:4), key checks,
// and the per-socket security settings (socket_security, apply_security).
#include <zmqkit/security.hpp>

#include <zmq.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace zmqkit {
namespace {

constexpr std::size_t z85_key_size = 40;
constexpr std::size_t max_certificate_bytes = 64 * 1024; // a certificate is a few hundred bytes

constexpr std::string_view z85_alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                                          "TUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// ZPL name characters: alphanumerics and $-_@.&+/
bool is_name_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("$-_@.&+/").find(c) != std::string_view::npos;
}

std::string public_of(const std::string& secret_key) {
    std::array<char, z85_key_size + 1> out{};
    if (zmq_curve_public(out.data(), secret_key.c_str()) != 0) {
        return {};
    }
    return std::string(out.data(), z85_key_size);
}

std::string errno_text(int e) {
    return std::strerror(e);
}

// One line of a ZPL file after the indentation: a name, and optionally "= value".
struct zpl_line {
    std::size_t level = 0;
    std::string name;
    bool has_value = false;
    std::string value;
};

class zpl_parser {
public:
    zpl_parser(std::string_view text, const std::string& origin) : text_(text), origin_(origin) {}

    certificate run() {
        if (text_.empty()) {
            fail_file("empty file: not a certificate");
        }
        if (text_.size() > max_certificate_bytes) {
            fail_file("too large for a certificate (" + std::to_string(text_.size()) +
                      " bytes; at most " + std::to_string(max_certificate_bytes) + ")");
        }
        certificate cert;
        std::string section;   // the current top-level section
        std::size_t depth = 0; // levels open (0: none)
        bool seen_public = false;
        bool seen_secret = false;
        bool any_property = false;
        std::size_t pos = 0;
        while (pos < text_.size()) {
            ++line_;
            std::size_t end = pos;
            while (end < text_.size() && text_[end] != '\n' && text_[end] != '\r') {
                ++end;
            }
            const std::string_view raw = text_.substr(pos, end - pos);
            // \n, \r or \r\n end a line
            if (end < text_.size() && text_[end] == '\r' && end + 1 < text_.size() &&
                text_[end + 1] == '\n') {
                ++end;
            }
            pos = end + 1;
            auto parsed = parse_line(raw);
            if (!parsed) {
                continue; // blank or comment
            }
            any_property = true;
            if (parsed->level > depth) {
                fail("indented deeper than the line above allows (" +
                     std::to_string(parsed->level * 4) + " spaces under a level-" +
                     std::to_string(depth) + " line)");
            }
            if (parsed->level == 0) {
                section = parsed->name;
                if ((section == "metadata" || section == "curve") && parsed->has_value &&
                    !parsed->value.empty()) {
                    fail("'" + section + "' is a section and takes no value");
                }
                depth = 1;
                continue;
            }
            depth = parsed->level + 1;
            if (parsed->level != 1) {
                continue; // deeper properties: not part of zcert, ignored like CZMQ does
            }
            if (section == "metadata") {
                if (!parsed->has_value) {
                    continue; // a subsection of metadata: zcert has none, ignored
                }
                cert.metadata.emplace_back(parsed->name, parsed->value);
            } else if (section == "curve") {
                if (parsed->name == "public-key") {
                    if (seen_public) {
                        fail("a second curve/public-key");
                    }
                    seen_public = true;
                    if (!is_z85_key(parsed->value)) {
                        fail("curve/public-key is not a 40-character Z85 key (" +
                             std::to_string(parsed->value.size()) + " characters)");
                    }
                    cert.public_key = parsed->value;
                } else if (parsed->name == "secret-key") {
                    if (seen_secret) {
                        fail("a second curve/secret-key");
                    }
                    seen_secret = true;
                    if (!is_z85_key(parsed->value)) {
                        fail("curve/secret-key is not a 40-character Z85 key (" +
                             std::to_string(parsed->value.size()) + " characters)");
                    }
                    cert.secret_key = parsed->value;
                }
            }
        }
        if (!any_property) {
            fail_file("no properties (only blank lines and comments): not a certificate");
        }
        if (!seen_public) {
            fail_file("no curve/public-key: not a CURVE certificate");
        }
        if (seen_secret && public_of(cert.secret_key) != cert.public_key) {
            fail_file("the secret key does not belong to the public key (curve/public-key is "
                      "not the public key of curve/secret-key)");
        }
        return cert;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw security_error(origin_ + ":" + std::to_string(line_) + ": " + what);
    }
    [[noreturn]] void fail_file(const std::string& what) const {
        throw security_error(origin_ + ": " + what);
    }

    std::optional<zpl_line> parse_line(std::string_view raw) const {
        for (const char c : raw) {
            const auto u = static_cast<unsigned char>(c);
            if (u == 0 || (u < 0x20 && c != '\t')) {
                char hex[8];
                std::snprintf(hex, sizeof hex, "0x%02x", u);
                fail(std::string("control byte ") + hex + ": not a text certificate file");
            }
        }
        // Trailing whitespace is insignificant.
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) {
            raw.remove_suffix(1);
        }
        std::size_t indent = 0;
        while (indent < raw.size() && raw[indent] == ' ') {
            ++indent;
        }
        if (indent == raw.size()) {
            return std::nullopt; // blank
        }
        if (raw[indent] == '#') {
            return std::nullopt; // comment
        }
        if (raw[indent] == '\t') {
            fail("tab in the indentation (ZPL indents with 4 spaces per level)");
        }
        if (indent % 4 != 0) {
            fail("indentation of " + std::to_string(indent) +
                 " spaces is not a multiple of 4 (ZPL indents with 4 spaces per level)");
        }
        zpl_line out;
        out.level = indent / 4;
        std::size_t i = indent;
        while (i < raw.size() && is_name_char(raw[i])) {
            ++i;
        }
        if (i == indent) {
            fail(std::string("expected a property name, found '") + printable(raw[indent]) + "'");
        }
        out.name = std::string(raw.substr(indent, i - indent));
        auto skip_blanks = [&] {
            while (i < raw.size() && (raw[i] == ' ' || raw[i] == '\t')) {
                ++i;
            }
        };
        const std::size_t after_name = i;
        skip_blanks();
        if (i == raw.size() || (raw[i] == '#' && i > after_name)) {
            return out; // a section (comment allowed after whitespace)
        }
        if (raw[i] != '=') {
            fail("expected '=' after '" + out.name + "', found '" + printable(raw[i]) + "'");
        }
        ++i;
        skip_blanks();
        out.has_value = true;
        if (i < raw.size() && (raw[i] == '"' || raw[i] == '\'')) {
            const char quote = raw[i];
            const auto close = raw.find(quote, i + 1);
            if (close == std::string_view::npos) {
                fail("the value of '" + out.name + "' has no closing " +
                     (quote == '"' ? "double" : "single") + " quote");
            }
            out.value = std::string(raw.substr(i + 1, close - i - 1));
            i = close + 1;
        } else {
            const std::size_t start = i;
            while (i < raw.size() && raw[i] != ' ' && raw[i] != '\t') {
                const auto u = static_cast<unsigned char>(raw[i]);
                if (u >= 0x80) {
                    fail("non-ASCII byte in the unquoted value of '" + out.name +
                         "': not a text certificate file");
                }
                ++i;
            }
            out.value = std::string(raw.substr(start, i - start));
        }
        const std::size_t after_value = i;
        skip_blanks();
        if (i < raw.size() && !(raw[i] == '#' && i > after_value)) {
            fail("unexpected text after the value of '" + out.name + "'");
        }
        return out;
    }

    static std::string printable(char c) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f) {
            return std::string(1, c);
        }
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", u);
        return hex;
    }

    std::string_view text_;
    const std::string& origin_;
    std::size_t line_ = 0;
};

std::string timestamp() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buffer[32];
    if (std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        return "unknown time";
    }
    return buffer;
}

// A metadata value as a ZPL quoted string. Throws if it cannot be written so that CZMQ reads it
// back unchanged.
std::string quoted(const std::string& name, const std::string& value) {
    for (const char c : value) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            throw security_error("metadata '" + name +
                                 "': control characters (e.g. a newline) cannot be stored in a "
                                 "certificate");
        }
    }
    if (value.find('"') == std::string::npos) {
        return '"' + value + '"';
    }
    if (value.find('\'') == std::string::npos) {
        return '\'' + value + '\'';
    }
    throw security_error("metadata '" + name +
                         "': a value cannot contain both a double and a single quote");
}

std::string render(const certificate& c, bool secret) {
    std::string out = "#   ****  Generated on " + timestamp() + " by zmqkit  ****\n";
    if (secret) {
        out += "#   ZeroMQ CURVE **Secret** Certificate\n"
               "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n";
    } else {
        out += "#   ZeroMQ CURVE Public Certificate\n"
               "#   Exchange securely, or use a secure mechanism to verify the contents\n"
               "#   of this file after exchange. Store public certificates in your home\n"
               "#   directory, in the .curve subdirectory.\n";
    }
    out += "\nmetadata\n";
    for (const auto& [name, value] : c.metadata) {
        if (name.empty() || !std::all_of(name.begin(), name.end(), is_name_char)) {
            throw security_error("metadata name '" + name +
                                 "' is not a ZPL name (letters, digits and $-_@.&+/ only)");
        }
        out += "    " + name + " = " + quoted(name, value) + "\n";
    }
    out += "curve\n    public-key = \"" + c.public_key + "\"\n";
    if (secret) {
        out += "    secret-key = \"" + c.secret_key + "\"\n";
    }
    return out;
}

bool exists_no_follow(const std::filesystem::path& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

// Writes `text` to `target` with `mode`: into a temporary file in the same directory created
// with mode 0600 (never readable by others), fsynced, then linked (refusing an existing target)
// or renamed (overwrite) into place.
void write_file(const std::filesystem::path& target, const std::string& text, mode_t mode,
                bool overwrite) {
    if (!overwrite && exists_no_follow(target)) {
        throw security_error(target.string() +
                             ": already exists; not overwritten (remove it or use --force)");
    }
    std::string tmp = target.string() + ".tmp-XXXXXX";
    const int fd = ::mkostemp(tmp.data(), O_CLOEXEC); // mode 0600
    if (fd < 0) {
        throw security_error(target.string() + ": cannot create: " + errno_text(errno));
    }
    auto fail = [&](const std::string& what, int e) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw security_error(target.string() + ": " + what + ": " + errno_text(e));
    };
    if (::fchmod(fd, mode) != 0) {
        fail("cannot set permissions", errno);
    }
    std::size_t done = 0;
    while (done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("cannot write", errno);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        fail("cannot sync", errno);
    }
    if (::close(fd) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        throw security_error(target.string() + ": cannot write: " + errno_text(e));
    }
    if (overwrite) {
        if (::rename(tmp.c_str(), target.c_str()) != 0) {
            const int e = errno;
            ::unlink(tmp.c_str());
            throw security_error(target.string() + ": cannot replace: " + errno_text(e));
        }
    } else {
        if (::link(tmp.c_str(), target.c_str()) != 0) {
            const int e = errno;
            ::unlink(tmp.c_str());
            if (e == EEXIST) {
                throw security_error(target.string() +
                                     ": already exists; not overwritten (remove it or use "
                                     "--force)");
            }
            throw security_error(target.string() + ": cannot create: " + errno_text(e));
        }
        ::unlink(tmp.c_str());
    }
    // Make the new directory entry durable too.
    auto dir = target.parent_path();
    if (dir.empty()) {
        dir = ".";
    }
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
}

std::filesystem::path secret_path(const std::filesystem::path& public_file) {
    return std::filesystem::path(public_file.string() + "_secret");
}

void check_public(const certificate& c) {
    if (!is_z85_key(c.public_key)) {
        throw security_error("certificate has no valid public key (40 Z85 characters)");
    }
}

} // namespace

bool curve_available() noexcept {
    return zmq_has("curve") != 0;
}

bool is_z85_key(std::string_view text) noexcept {
    if (text.size() != z85_key_size) {
        return false;
    }
    for (const char c : text) {
        if (z85_alphabet.find(c) == std::string_view::npos) {
            return false;
        }
    }
    char buffer[z85_key_size + 1];
    std::memcpy(buffer, text.data(), z85_key_size);
    buffer[z85_key_size] = '\0';
    std::uint8_t decoded[32];
    return zmq_z85_decode(decoded, buffer) != nullptr;
}

certificate certificate::generate() {
    if (!curve_available()) {
        throw security_error("cannot generate a CURVE key pair: this libzmq was built without "
                             "CURVE support (libsodium)");
    }
    std::array<char, z85_key_size + 1> pub{};
    std::array<char, z85_key_size + 1> sec{};
    if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
        throw security_error(std::string("cannot generate a CURVE key pair: ") +
                             zmq_strerror(zmq_errno()));
    }
    certificate c;
    c.public_key.assign(pub.data(), z85_key_size);
    c.secret_key.assign(sec.data(), z85_key_size);
    std::fill(sec.begin(), sec.end(), '\0');
    return c;
}

certificate certificate::parse(std::string_view text, const std::string& origin) {
    return zpl_parser(text, origin).run();
}

certificate certificate::load(const std::filesystem::path& file) {
    const std::string name = file.string();
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        throw security_error(name + ": cannot read: " + errno_text(errno));
    }
    std::string text;
    char buffer[4096];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_certificate_bytes) {
            break; // the parser reports it
        }
    }
    if (in.bad()) {
        throw security_error(name + ": cannot read");
    }
    return parse(text, name);
}

void certificate::save(const std::filesystem::path& public_file, bool overwrite) const {
    check_public(*this);
    if (!is_z85_key(secret_key)) {
        throw security_error(public_file.string() +
                             ": cannot save a key pair without a valid secret key");
    }
    if (public_of(secret_key) != public_key) {
        throw security_error(public_file.string() +
                             ": the secret key does not belong to the public key");
    }
    const auto secret_file = secret_path(public_file);
    const std::string public_text = render(*this, false);
    const std::string secret_text = render(*this, true);
    if (!overwrite) {
        // Check both first, so a refusal leaves nothing half-written.
        for (const auto& p : {public_file, secret_file}) {
            if (exists_no_follow(p)) {
                throw security_error(p.string() +
                                     ": already exists; not overwritten (remove it or use "
                                     "--force)");
            }
        }
    }
    write_file(secret_file, secret_text, 0600, overwrite);
    try {
        write_file(public_file, public_text, 0644, overwrite);
    } catch (...) {
        if (!overwrite) {
            std::error_code ec;
            std::filesystem::remove(secret_file, ec); // the pair is written whole or not at all
        }
        throw;
    }
}

void certificate::save_public(const std::filesystem::path& public_file, bool overwrite) const {
    check_public(*this);
    write_file(public_file, render(*this, false), 0644, overwrite);
}

std::string certificate::meta(std::string_view name) const {
    for (const auto& [n, v] : metadata) {
        if (n == name) {
            return v;
        }
    }
    return {};
}

std::vector<certificate> load_certificate_directory(const std::filesystem::path& dir,
                                                    std::vector<std::string>* problems) {
    std::error_code ec;
    std::filesystem::directory_iterator it(dir, ec);
    if (ec) {
        throw security_error(dir.string() +
                             ": cannot read the certificate directory: " + ec.message());
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : it) {
        const auto name = entry.path().filename().string();
        if (name.empty() || name.front() == '.' ||
            (name.size() >= 7 && name.compare(name.size() - 7, 7, "_secret") == 0)) {
            continue;
        }
        std::error_code type_ec;
        if (!entry.is_regular_file(type_ec)) {
            continue;
        }
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    std::vector<certificate> out;
    for (const auto& f : files) {
        try {
            auto c = certificate::load(f);
            c.secret_key.clear(); // a secret in an allow directory is not used (nor kept)
            out.push_back(std::move(c));
        } catch (const security_error& e) {
            if (problems != nullptr) {
                problems->push_back(std::string(e.what()) + " (skipped)");
            }
        }
    }
    return out;
}

std::string resolve_public_key(std::string_view key_or_file) {
    if (is_z85_key(key_or_file)) {
        return std::string(key_or_file);
    }
    const std::filesystem::path path(key_or_file);
    std::error_code ec;
    if (key_or_file.empty() || !std::filesystem::exists(path, ec)) {
        if (key_or_file.size() == z85_key_size) {
            throw security_error("the 40-character server key is not valid Z85 (and no file "
                                 "has that name)");
        }
        throw security_error("'" + std::string(key_or_file) +
                             "' is neither a 40-character Z85 public key nor a certificate file");
    }
    return certificate::load(path).public_key;
}

// ---- socket_security ------------------------------------------------------------------------

socket_security socket_security::curve_server(const certificate& own, std::string zap_domain) {
    socket_security s;
    s.mechanism = security_mechanism::curve;
    s.server = true;
    s.public_key = own.public_key;
    s.secret_key = own.secret_key;
    s.zap_domain = std::move(zap_domain);
    return s;
}

socket_security socket_security::curve_client(std::string server_public_key,
                                              const certificate* own) {
    socket_security s;
    s.mechanism = security_mechanism::curve;
    s.server_key = std::move(server_public_key);
    if (own != nullptr) {
        s.public_key = own->public_key;
        s.secret_key = own->secret_key;
    }
    return s;
}

socket_security socket_security::plain_server(std::string zap_domain) {
    socket_security s;
    s.mechanism = security_mechanism::plain;
    s.server = true;
    s.zap_domain = std::move(zap_domain);
    return s;
}

socket_security socket_security::plain_client(std::string username, std::string password) {
    socket_security s;
    s.mechanism = security_mechanism::plain;
    s.username = std::move(username);
    s.password = std::move(password);
    return s;
}

socket_security socket_security::null_server(std::string zap_domain) {
    socket_security s;
    s.server = true;
    s.zap_domain = std::move(zap_domain);
    return s;
}

std::string socket_security::describe() const {
    const std::string domain = zap_domain.empty() ? "" : ", domain '" + zap_domain + "'";
    switch (mechanism) {
    case security_mechanism::curve: {
        std::string own = public_key;
        if (own.empty() && is_z85_key(secret_key)) {
            own = public_of(secret_key);
        }
        if (server) {
            return "curve server, public key " + (own.empty() ? std::string("(none)") : own) +
                   domain;
        }
        return "curve client, server key " + (server_key.empty() ? "(none)" : server_key) +
               (own.empty() ? std::string(", ephemeral key pair") : ", public key " + own) + domain;
    }
    case security_mechanism::plain:
        if (server) {
            return "plain server" + domain;
        }
        return "plain client, user '" + username + "'" + domain;
    case security_mechanism::null:
        break;
    }
    if (!zap_domain.empty()) {
        return std::string(server ? "null server" : "null") + domain +
               " (no encryption; IP filters)";
    }
    return "none (plaintext, anyone)";
}

void socket_security::validate() const {
    if (zap_domain.size() > 254) {
        throw security_error("zap_domain is too long (" + std::to_string(zap_domain.size()) +
                             " bytes; at most 254)");
    }
    switch (mechanism) {
    case security_mechanism::curve:
        if (!curve_available()) {
            throw security_error("CURVE is configured but this libzmq was built without CURVE "
                                 "support (libsodium)");
        }
        if (server) {
            if (secret_key.empty()) {
                throw security_error("a CURVE server needs its secret key (a certificate's "
                                     "_secret file)");
            }
            if (!is_z85_key(secret_key)) {
                throw security_error("the CURVE server's secret key is not a 40-character Z85 "
                                     "key");
            }
            if (!public_key.empty() && public_of(secret_key) != public_key) {
                throw security_error("the CURVE server's public key does not belong to its "
                                     "secret key");
            }
            if (zap_domain.empty()) {
                throw security_error("a CURVE server needs a zap_domain (the authenticator "
                                     "policy that admits its clients)");
            }
        } else {
            if (server_key.empty()) {
                throw security_error("a CURVE client needs the server's public key");
            }
            if (!is_z85_key(server_key)) {
                throw security_error("the CURVE server key is not a 40-character Z85 key (" +
                                     std::to_string(server_key.size()) + " characters)");
            }
            if (public_key.empty() != secret_key.empty()) {
                throw security_error("a CURVE client needs both its public and its secret key, "
                                     "or neither (a fresh ephemeral pair)");
            }
            if (!secret_key.empty()) {
                if (!is_z85_key(public_key) || !is_z85_key(secret_key)) {
                    throw security_error("the CURVE client's key pair is not 40-character Z85 "
                                         "keys");
                }
                if (public_of(secret_key) != public_key) {
                    throw security_error("the CURVE client's public key does not belong to its "
                                         "secret key");
                }
            }
        }
        break;
    case security_mechanism::plain:
        if (server) {
            if (zap_domain.empty()) {
                throw security_error("a PLAIN server needs a zap_domain (the authenticator "
                                     "policy with its password file)");
            }
        } else {
            if (username.empty()) {
                throw security_error("a PLAIN client needs a username");
            }
            if (username.size() > 255 || password.size() > 255) {
                throw security_error("PLAIN username and password are at most 255 bytes each");
            }
        }
        break;
    case security_mechanism::null:
        if (server && zap_domain.empty()) {
            throw security_error("a NULL-mechanism server needs a zap_domain (the authenticator "
                                 "policy with its IP filters)");
        }
        break;
    }
}

void apply_security(zmq::socket_t& socket, const socket_security& s) {
    s.validate();
    void* handle = socket.handle();
    auto set_int = [&](int option, int value, const char* what) {
        if (zmq_setsockopt(handle, option, &value, sizeof value) != 0) {
            throw security_error(std::string("cannot set ") + what + ": " +
                                 zmq_strerror(zmq_errno()));
        }
    };
    auto set_text = [&](int option, const std::string& value, const char* what,
                        bool with_terminator) {
        // Z85 keys go in with their terminating NUL (41 bytes), as libzmq expects.
        const std::size_t size = value.size() + (with_terminator ? 1 : 0);
        if (zmq_setsockopt(handle, option, value.c_str(), size) != 0) {
            throw security_error(std::string("cannot set ") + what + ": " +
                                 zmq_strerror(zmq_errno()));
        }
    };
    switch (s.mechanism) {
    case security_mechanism::curve:
        if (s.server) {
            set_int(ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER");
            set_text(ZMQ_CURVE_SECRETKEY, s.secret_key, "the CURVE secret key", true);
            set_text(ZMQ_CURVE_PUBLICKEY,
                     s.public_key.empty() ? public_of(s.secret_key) : s.public_key,
                     "the CURVE public key", true);
        } else {
            set_text(ZMQ_CURVE_SERVERKEY, s.server_key, "the CURVE server key", true);
            if (s.secret_key.empty()) {
                auto ephemeral = certificate::generate();
                set_text(ZMQ_CURVE_PUBLICKEY, ephemeral.public_key, "the CURVE public key", true);
                set_text(ZMQ_CURVE_SECRETKEY, ephemeral.secret_key, "the CURVE secret key", true);
                std::fill(ephemeral.secret_key.begin(), ephemeral.secret_key.end(), '\0');
            } else {
                set_text(ZMQ_CURVE_PUBLICKEY, s.public_key, "the CURVE public key", true);
                set_text(ZMQ_CURVE_SECRETKEY, s.secret_key, "the CURVE secret key", true);
            }
        }
        break;
    case security_mechanism::plain:
        if (s.server) {
            set_int(ZMQ_PLAIN_SERVER, 1, "ZMQ_PLAIN_SERVER");
        } else {
            set_text(ZMQ_PLAIN_USERNAME, s.username, "the PLAIN username", false);
            set_text(ZMQ_PLAIN_PASSWORD, s.password, "the PLAIN password", false);
        }
        break;
    case security_mechanism::null:
        break;
    }
    if (!s.zap_domain.empty()) {
        set_text(ZMQ_ZAP_DOMAIN, s.zap_domain, "ZMQ_ZAP_DOMAIN", false);
    }
}

} // namespace zmqkit
