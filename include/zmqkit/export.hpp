// zmqkit — the export macro of the libraries.
//
// ZMQKIT_API marks a class or function that the zmqkit libraries export. The libraries are built
// with the compiler's default visibility today, so the macro changes nothing yet; it is there so
// that a shared build can move to -fvisibility=hidden (smaller symbol tables, no accidental ABI)
// once every public class and free function carries it. What that still needs: ZMQKIT_API on
// the free functions of the public headers (codec.hpp, header.hpp, endpoint.hpp, security.hpp,
// ...), on the private parsers the tests call (ppp_protocol.hpp, mdp_protocol.hpp,
// durable_protocol.hpp), and a test that links the suite against the shared libraries.
#pragma once

#if defined(_WIN32)
#define ZMQKIT_API
#elif defined(__GNUC__) || defined(__clang__)
#define ZMQKIT_API __attribute__((visibility("default")))
#else
#define ZMQKIT_API
#endif
