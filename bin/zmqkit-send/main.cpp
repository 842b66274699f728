// zmqkit-send: messages from stdin (or --data / --file) to a ZeroMQ socket. Parse, run.
#include "zmqkit-send/options.hpp"
#include "zmqkit-send/sender.hpp"

int main(int argc, char** argv) {
    using namespace zmqkit::cli;
    return run_tool<send_config>("zmqkit-send", argc, argv, parse_send_options, run_send);
}
