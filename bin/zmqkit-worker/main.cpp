// zmqkit-worker: any command as a worker of a zmqkit broker. Parse, run.
#include "zmqkit-worker/options.hpp"
#include "zmqkit-worker/worker.hpp"

int main(int argc, char** argv) {
    using namespace zmqkit::cli;
    return run_tool<worker_config>("zmqkit-worker", argc, argv, parse_worker_options, run_worker);
}
