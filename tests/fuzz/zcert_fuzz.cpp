// libFuzzer target for the certificate file parser (CZMQ's zcert format, a subset of ZPL).
// Properties: never crashes, never reads out of bounds (ASan); a parse either succeeds with
// valid keys or throws security_error whose message names the origin; whatever parses with a
// secret key carries keys that match (checked by the parser).
#include <zmqkit/security.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::string origin = "fuzz-input";
    zmqkit::certificate c;
    try {
        c = zmqkit::certificate::parse(text, origin);
    } catch (const zmqkit::security_error& e) {
        if (std::string_view(e.what()).rfind(origin, 0) != 0) {
            std::abort(); // every error names the file
        }
        return 0;
    }
    if (!zmqkit::is_z85_key(c.public_key) ||
        (!c.secret_key.empty() && !zmqkit::is_z85_key(c.secret_key))) {
        std::abort(); // a parsed certificate carries valid keys
    }
    return 0;
}
