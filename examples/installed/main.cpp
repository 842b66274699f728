// Built against the installed package (find_package(zmqkit)): one message through a pipeline.
#include <zmqkit/patterns/pipeline.hpp>

#include <iostream>

int main() {
    zmq::context_t context;
    zmqkit::patterns::source out(context, "inproc://hello");
    zmqkit::patterns::sink in(context, "inproc://world");
    zmqkit::patterns::worker_options options;
    options.input = "inproc://hello";
    options.output = "inproc://world";
    zmqkit::patterns::worker shout(context, options, [](zmqkit::message& m) {
        std::string text(m.body_view());
        for (auto& c : text) {
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        return std::optional<zmqkit::message>(m.follow_up(text));
    });
    shout.start();
    zmqkit::message hello{"hello from an installed zmqkit"};
    if (!out.send(hello)) {
        return 1;
    }
    auto reply = in.recv(std::chrono::seconds(5));
    if (!reply || reply->correlation_id() != hello.id()) {
        std::cerr << "no reply\n";
        return 1;
    }
    std::cout << reply->body_view() << "\n";
    return 0;
}
