// zmqkit — which zmqkit and which libzmq a program runs: what STATUS documents, the metrics
// server's zmqkit_build_info and the tools' --version report.
#pragma once

#include <zmqkit/export.hpp>

#include <string>
#include <string_view>

namespace zmqkit {

// zmqkit's version, "0.1.0" (the project version the library was built as).
[[nodiscard]] ZMQKIT_API std::string_view version() noexcept;
// The libzmq the process runs on (zmq_version), "4.3.4".
[[nodiscard]] ZMQKIT_API std::string libzmq_version();

} // namespace zmqkit
