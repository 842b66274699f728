#include "support/testing.hpp"

namespace zmqkit::testing {

std::filesystem::path source_dir() {
    return ZMQKIT_TEST_SOURCE_DIR;
}

} // namespace zmqkit::testing
