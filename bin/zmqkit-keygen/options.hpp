// zmqkit-keygen: command and option parsing (a library function so tests can call it).
#pragma once

#include "common/cli.hpp"

#include <filesystem>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace zmqkit::cli {

// What cli.hpp's exit codes mean to zmqkit-keygen (docs/cli.md); exit_cannot_create (73): a
// file exists (no --force), or cannot be written.
inline constexpr int exit_bad_certificate = exit_data_error; // inspect: not a valid certificate
inline constexpr int exit_no_certificate = exit_no_input;    // no such file or directory

enum class keygen_command {
    generate, // zmqkit-keygen [generate] NAME | --output PATH
    list,     // zmqkit-keygen list DIR
    inspect,  // zmqkit-keygen inspect FILE
};

struct keygen_config {
    keygen_command command = keygen_command::generate;
    std::filesystem::path output; // generate: the public file (the secret one is output_secret)
    std::vector<std::pair<std::string, std::string>> metadata; // generate: name first
    bool force = false;                                        // generate: replace existing files
    std::filesystem::path target; // list: the directory; inspect: the file
    bool json = false;
    log_settings logging; // -v/-q, --log-level, --log-format (and zmqkit-proxy's --name)
    int verbosity = 0;    // logging.verbosity(): 1 with -v, -1 with -q
};

// Parses argv. Throws usage_error (exit 64).
[[nodiscard]] std::variant<keygen_config, print_and_exit>
parse_keygen_options(int argc, const char* const* argv);

} // namespace zmqkit::cli
