// zmqkit-spooler: the offline tool of a spool directory. Parse, run.
#include "zmqkit-spooler/options.hpp"
#include "zmqkit-spooler/spooler.hpp"

int main(int argc, char** argv) {
    using namespace zmqkit::cli;
    return run_tool<spooler_config>("zmqkit-spooler", argc, argv, parse_spooler_options,
                                    run_spooler);
}
