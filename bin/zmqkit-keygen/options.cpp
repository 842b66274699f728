#include "zmqkit-keygen/options.hpp"

#include "common/tool_options.hpp"

#include <algorithm>
#include <sstream>

namespace po = boost::program_options;

namespace zmqkit::cli {
namespace {

constexpr const char* overview = R"(Usage: zmqkit-keygen [generate] NAME [options]
       zmqkit-keygen list DIR [--json]
       zmqkit-keygen inspect FILE [--json]

CURVE key pairs for zmqkit's encrypted sockets, as certificate files in CZMQ's zcert format
(ZPL text, Z85 keys), so CZMQ tools and zmqkit read each other's files.

Commands:
  generate NAME      (the default) write a fresh key pair: NAME, the public certificate to
                     give to peers (mode 0644), and NAME_secret, the key pair to keep (mode
                     0600, created with that mode). Prints the public key (only the public
                     key) on stdout. Refuses to replace either file without --force.
  list DIR           the certificates of a directory (e.g. a server's --curve-allow DIR): file,
                     public key, metadata, and the files that are not valid certificates
  inspect FILE       one certificate: its kind, public key, metadata; of a secret file it says
                     "secret key: present" and never prints the secret key

Examples:
  zmqkit-keygen server                      writes ./server and ./server_secret
  zmqkit-keygen --output /etc/zmqkit/keys/alice --meta email=alice@example.com alice
  zmqkit-keygen list /etc/zmqkit/allowed    the client keys a server admits
  zmqkit-keygen inspect server_secret --json

Give the public file (never the _secret one) to the other side: a client needs the server's
public key (--curve-server-key FILE), a server's allow directory holds its clients' public
files (--curve-allow DIR). docs/security.md explains the whole setup.

Options:
  -h [ --help ]   print this help and exit (COMMAND --help: the options of a command)
  --version       print the version and exit

Exit codes: 0 ok, 64 bad usage, 65 inspect: not a valid certificate, 66 no such file or
directory, 73 a file exists (use --force) or cannot be written, 70 internal error.
)";

constexpr const char* generate_head = R"(Usage: zmqkit-keygen [generate] NAME [options]
       zmqkit-keygen [generate] --output PATH [options]

Writes a fresh CURVE key pair: PATH (the public certificate, mode 0644) and PATH_secret (public
and secret key, mode 0600, never readable by others even briefly), in CZMQ's zcert format.
PATH is NAME unless --output is given; the metadata "name" is NAME (or PATH's file name)
unless --meta name=... is given. Prints the public key on stdout, nothing else. Refuses (exit
73) to replace an existing file unless --force.

Examples:
  zmqkit-keygen server
  zmqkit-keygen --output keys/alice --meta email=alice@example.com alice
  KEY=$(zmqkit-keygen backend) && echo "backend public key: $KEY")";

constexpr const char* list_head = R"(Usage: zmqkit-keygen list DIR [options]

Lists the public certificates of DIR as a server's allow directory reads them: every regular
file that is not hidden and does not end in _secret. Shows the file, the public key, the
metadata and whether a _secret file sits next to it; files that are not valid certificates
are listed as problems (a server skips them).

Example:
  zmqkit-keygen list /etc/zmqkit/allowed --json)";

constexpr const char* inspect_head = R"(Usage: zmqkit-keygen inspect FILE [options]

Shows one certificate file: public or secret, the public key, the metadata. Of a secret file
it checks that the secret key belongs to the public key and says "secret key: present"; the
secret key itself is never printed. Exit 65 with the reason (file:line) when FILE is not a
valid certificate.

Example:
  zmqkit-keygen inspect server_secret)";

constexpr const char* common_tail = R"(
Exit codes: 0 ok, 64 bad usage, 65 not a valid certificate (inspect), 66 no such file or
directory, 73 a file exists (use --force) or cannot be written.
)";

bool is_meta_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("$-_@.&+/").find(c) != std::string_view::npos;
}

} // namespace

std::variant<keygen_config, print_and_exit> parse_keygen_options(int argc,
                                                                 const char* const* argv) {
    keygen_config cfg;
    int consumed = 1;
    const char* head = generate_head;
    const std::string first = argc >= 2 ? argv[1] : "";
    if (first == "--help" || first == "-h" || first == "help") {
        return print_and_exit{overview, exit_ok};
    }
    if (first == "--version") {
        return print_and_exit{"zmqkit-keygen " ZMQKIT_VERSION "\n", exit_ok};
    }
    if (first == "list") {
        cfg.command = keygen_command::list;
        head = list_head;
        consumed = 2;
    } else if (first == "inspect") {
        cfg.command = keygen_command::inspect;
        head = inspect_head;
        consumed = 2;
    } else if (first == "generate") {
        consumed = 2;
    }
    const auto command = cfg.command;
    const bool generating = command == keygen_command::generate;

    std::string positional_value;
    std::string output;
    std::vector<std::string> metas;
    tool_options options("keygen", false); // --version only as the first argument
    // clang-format off
    options.add()
        ("json", generating ? "print {\"public_key\", \"public_file\", \"secret_file\"} as JSON"
                            : "print one JSON document (see docs/cli.md)");
    if (generating) {
        options.add()
            ("output,o", po::value(&output), "write PATH and PATH_secret (default: NAME)")
            ("meta", po::value(&metas)->composing(), "metadata name=value (repeatable)")
            ("force", "replace existing files");
    }
    // clang-format on
    options.add_diagnostics("more diagnostics", false);
    options.add_hidden()("positional", po::value(&positional_value), "NAME, DIR or FILE");
    options.positional("positional", 1);

    std::vector<const char*> args;
    args.push_back(argv[0]);
    for (int i = consumed; i < argc; ++i) {
        args.push_back(argv[i]);
    }
    // The command line only: no ZMQKIT_* variables or config file, so that nothing in the
    // environment can make keygen replace a key (--force).
    options.parse_command_line(static_cast<int>(args.size()), args.data());
    if (options.wants_help()) {
        std::ostringstream text;
        text << head << "\n\nOptions:\n" << options.options() << common_tail;
        return print_and_exit{text.str(), exit_ok};
    }
    cfg.json = options.given("json");
    cfg.logging = options.logging();
    cfg.verbosity = cfg.logging.verbosity();

    if (!generating) {
        if (positional_value.empty()) {
            throw usage_error{command == keygen_command::list
                                  ? "list needs a directory (zmqkit-keygen list DIR)"
                                  : "inspect needs a file (zmqkit-keygen inspect FILE)",
                              exit_usage};
        }
        cfg.target = positional_value;
        return cfg;
    }

    if (positional_value.empty() && output.empty()) {
        throw usage_error{"no certificate name given (zmqkit-keygen NAME, or --output PATH; see "
                          "--help)",
                          exit_usage};
    }
    cfg.output =
        output.empty() ? std::filesystem::path(positional_value) : std::filesystem::path(output);
    if (cfg.output.filename().empty()) {
        throw usage_error{"'" + cfg.output.string() + "' names a directory, not a file",
                          exit_usage};
    }
    if (cfg.output.string().size() >= 7 &&
        cfg.output.string().compare(cfg.output.string().size() - 7, 7, "_secret") == 0) {
        throw usage_error{"give the public file's name ('" +
                              cfg.output.string().substr(0, cfg.output.string().size() - 7) +
                              "'): the secret file is that name + _secret",
                          exit_usage};
    }
    cfg.force = options.given("force");
    bool has_name = false;
    for (const auto& m : metas) {
        const auto eq = m.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw usage_error{"--meta '" + m + "' is not name=value", exit_usage};
        }
        const std::string name = m.substr(0, eq);
        if (!std::all_of(name.begin(), name.end(), is_meta_name_char)) {
            throw usage_error{"--meta name '" + name +
                                  "' may contain only letters, digits and $-_@.&+/",
                              exit_usage};
        }
        const std::string value = m.substr(eq + 1);
        if (std::any_of(value.begin(), value.end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20; }) ||
            (value.find('"') != std::string::npos && value.find('\'') != std::string::npos)) {
            throw usage_error{"--meta " + name +
                                  ": the value may not contain control characters, nor both a "
                                  "double and a single quote",
                              exit_usage};
        }
        has_name = has_name || name == "name";
        cfg.metadata.emplace_back(name, value);
    }
    if (!has_name) {
        const std::string name = !output.empty() && !positional_value.empty()
                                     ? positional_value
                                     : cfg.output.filename().string();
        cfg.metadata.insert(cfg.metadata.begin(), {"name", name});
    }
    return cfg;
}

} // namespace zmqkit::cli
