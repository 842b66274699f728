#include "zmqkit-keygen/keygen.hpp"

#include <zmqkit/security.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>

namespace zmqkit::cli {
namespace {

using json = nlohmann::ordered_json;

// As JSON text; file names and metadata are bytes, so invalid UTF-8 is replaced by U+FFFD
// rather than throwing.
std::string text_of(const json& j, int indent) {
    return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

bool is_secret_name(const std::string& name) {
    return name.size() >= 7 && name.compare(name.size() - 7, 7, "_secret") == 0;
}

json metadata_json(const certificate& c) {
    json out = json::object();
    for (const auto& [name, value] : c.metadata) {
        out[name] = value;
    }
    return out;
}

std::string metadata_text(const certificate& c) {
    std::string out;
    for (const auto& [name, value] : c.metadata) {
        if (!out.empty()) {
            out += ' ';
        }
        out += name + "=\"" + value + "\"";
    }
    return out;
}

int generate(const keygen_config& cfg, const logger& log) {
    auto cert = certificate::generate();
    cert.metadata = cfg.metadata;
    const std::string secret_file = cfg.output.string() + "_secret";
    try {
        cert.save(cfg.output, cfg.force);
    } catch (const security_error& e) {
        log.error(e.what());
        return exit_cannot_create;
    }
    std::fill(cert.secret_key.begin(), cert.secret_key.end(), '\0');
    if (cfg.json) {
        json out;
        out["public_key"] = cert.public_key;
        out["public_file"] = cfg.output.string();
        out["secret_file"] = secret_file;
        std::cout << text_of(out, -1) << "\n";
    } else {
        std::cout << cert.public_key << "\n";
    }
    log.info("wrote " + cfg.output.string() + " (public certificate: give it to peers) and " +
             secret_file + " (key pair, mode 0600: keep it private)");
    return exit_ok;
}

int inspect(const keygen_config& cfg, const logger& log) {
    std::error_code ec;
    if (!std::filesystem::exists(cfg.target, ec)) {
        log.error(cfg.target.string() + ": no such file");
        return exit_no_certificate;
    }
    if (std::filesystem::is_directory(cfg.target, ec)) {
        log.error(cfg.target.string() + " is a directory (zmqkit-keygen list DIR lists one)");
        return exit_usage;
    }
    certificate cert;
    try {
        cert = certificate::load(cfg.target);
    } catch (const security_error& e) {
        log.error(e.what());
        return exit_bad_certificate;
    }
    const bool secret = !cert.secret_key.empty();
    std::fill(cert.secret_key.begin(), cert.secret_key.end(), '\0');
    if (cfg.json) {
        json out;
        out["file"] = cfg.target.string();
        out["kind"] = secret ? "secret" : "public";
        out["public_key"] = cert.public_key;
        out["secret_key"] = secret ? "present" : "absent";
        out["metadata"] = metadata_json(cert);
        std::cout << text_of(out, 2) << "\n";
        return exit_ok;
    }
    std::cout << "file: " << cfg.target.string() << "\n"
              << "kind: "
              << (secret ? "secret certificate (key pair: keep it private)" : "public certificate")
              << "\n"
              << "public key: " << cert.public_key << "\n"
              << "secret key: " << (secret ? "present" : "absent") << "\n"
              << "metadata:" << (cert.metadata.empty() ? " (none)" : "") << "\n";
    for (const auto& [name, value] : cert.metadata) {
        std::cout << "    " << name << " = \"" << value << "\"\n";
    }
    return exit_ok;
}

int list(const keygen_config& cfg, const logger& log) {
    std::error_code ec;
    if (!std::filesystem::is_directory(cfg.target, ec)) {
        log.error(cfg.target.string() + ": no such directory");
        return exit_no_certificate;
    }
    std::filesystem::directory_iterator it(cfg.target, ec);
    if (ec) {
        log.error(cfg.target.string() + ": cannot read: " + ec.message());
        return exit_no_certificate;
    }
    std::vector<std::filesystem::path> files;
    for (const auto& entry : it) {
        const auto name = entry.path().filename().string();
        std::error_code type_ec;
        if (name.empty() || name.front() == '.' || is_secret_name(name) ||
            !entry.is_regular_file(type_ec)) {
            continue;
        }
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    json certs = json::array();
    json problems = json::array();
    std::vector<std::string> problem_lines;
    for (const auto& f : files) {
        try {
            auto cert = certificate::load(f);
            std::fill(cert.secret_key.begin(), cert.secret_key.end(), '\0');
            const bool has_secret =
                std::filesystem::exists(std::filesystem::path(f.string() + "_secret"), ec);
            if (cfg.json) {
                json c;
                c["file"] = f.filename().string();
                c["public_key"] = cert.public_key;
                c["metadata"] = metadata_json(cert);
                c["secret_file"] = has_secret;
                certs.push_back(std::move(c));
            } else {
                std::cout << f.filename().string() << "  " << cert.public_key << "  "
                          << metadata_text(cert) << (has_secret ? "  (+ _secret file)" : "")
                          << "\n";
            }
        } catch (const security_error& e) {
            problems.push_back(e.what());
            problem_lines.emplace_back(e.what());
        }
    }
    if (cfg.json) {
        json out;
        out["directory"] = cfg.target.string();
        out["certificates"] = std::move(certs);
        out["problems"] = std::move(problems);
        std::cout << text_of(out, 2) << "\n";
        return exit_ok;
    }
    if (files.empty()) {
        std::cout << "(no certificates in " << cfg.target.string() << ")\n";
    }
    for (const auto& p : problem_lines) {
        std::cout << "problem: " << p << " (skipped)\n";
    }
    return exit_ok;
}

} // namespace

int run_keygen(const keygen_config& cfg, const logger& log, shutdown_signals& /*signals*/) {
    if (!curve_available()) {
        log.error("this libzmq was built without CURVE support (libsodium): no key pairs");
        return exit_unavailable;
    }
    switch (cfg.command) {
    case keygen_command::generate:
        return generate(cfg, log);
    case keygen_command::list:
        return list(cfg, log);
    case keygen_command::inspect:
        return inspect(cfg, log);
    }
    return exit_software;
}

} // namespace zmqkit::cli
