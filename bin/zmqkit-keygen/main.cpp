// zmqkit-keygen: CURVE key pairs in CZMQ's certificate format. Parse, run.
#include "zmqkit-keygen/keygen.hpp"
#include "zmqkit-keygen/options.hpp"

int main(int argc, char** argv) {
    using namespace zmqkit::cli;
    return run_tool<keygen_config>("zmqkit-keygen", argc, argv, parse_keygen_options, run_keygen);
}
