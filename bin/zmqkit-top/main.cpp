// zmqkit-top: a live view of running zmqkit proxies through their control sockets. Parse, run.
#include "zmqkit-top/options.hpp"
#include "zmqkit-top/top.hpp"

int main(int argc, char** argv) {
    using namespace zmqkit::cli;
    return run_tool<top_config>("zmqkit-top", argc, argv, parse_top_options, run_top);
}
