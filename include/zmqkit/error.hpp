// zmqkit — errors.
//
// Setup and programming errors throw a subclass of zmqkit::error with a message a user can act
// on. Expected outcomes (a timeout, a malformed frame from the network) are values, never
// exceptions: see decode_error in codec.hpp.
#pragma once

#include <zmqkit/export.hpp>

#include <stdexcept>
#include <string>

namespace zmqkit {

// Base of every exception zmqkit throws.
class ZMQKIT_API error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A malformed endpoint specification (CZMQ grammar: "@bind", ">connect", comma lists).
// what() names the offending part.
class ZMQKIT_API endpoint_error : public error {
public:
    using error::error;
};

// A bad configuration value (option out of range, unknown mode, unreadable config file).
class ZMQKIT_API config_error : public error {
public:
    using error::error;
};

// A component failed to start (bind failed, setup threw) or did not answer in time.
class ZMQKIT_API component_error : public error {
public:
    using error::error;
};

// A message body could not be converted to the requested C++ type (recv<T>, body_as<T>).
class ZMQKIT_API body_type_error : public error {
public:
    using error::error;
};

} // namespace zmqkit
