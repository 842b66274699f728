#include <zmqkit/version.hpp>

#include <zmq.h>

namespace zmqkit {

std::string_view version() noexcept {
    return ZMQKIT_VERSION;
}

std::string libzmq_version() {
    int major = 0;
    int minor = 0;
    int patch = 0;
    zmq_version(&major, &minor, &patch);
    return std::to_string(major) + '.' + std::to_string(minor) + '.' + std::to_string(patch);
}

} // namespace zmqkit
