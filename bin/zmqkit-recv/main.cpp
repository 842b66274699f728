// zmqkit-recv: messages from a ZeroMQ socket to stdout. Parse, run.
#include "zmqkit-recv/options.hpp"
#include "zmqkit-recv/receiver.hpp"

int main(int argc, char** argv) {
    using namespace zmqkit::cli;
    return run_tool<recv_config>("zmqkit-recv", argc, argv, parse_recv_options, run_recv);
}
