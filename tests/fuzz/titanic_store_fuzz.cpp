// libFuzzer target for the Titanic store's file decoder (patterns/titanic/titanic_store.hpp) on
// arbitrary bytes, as a request file and as a reply file. Properties: never crashes, never reads
// out of bounds (ASan), and what decodes encodes back to exactly the same bytes.
#include "patterns/titanic/titanic_store.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace fmt = zmqkit::patterns::titanic_store_format;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    for (const auto kind : {fmt::kind::request, fmt::kind::reply}) {
        std::string why;
        const auto frames = fmt::decode(bytes, kind, why);
        if (frames) {
            if (fmt::encode(kind, *frames) != bytes) {
                std::abort(); // a decoded file re-encodes to itself
            }
        } else if (why.empty()) {
            std::abort(); // a rejection says why
        }
    }
    return 0;
}
