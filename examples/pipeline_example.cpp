// A push-pull pipeline in one process: a source, a pool of workers, a sink.
//
//   source --inproc--> 4 workers (word count) --inproc--> sink
//
// Every result carries the correlation id of the sentence it came from, so the sink can tell
// which input each result belongs to without any bookkeeping of its own.
#include <zmqkit/patterns/pipeline.hpp>

#include <iostream>
#include <map>
#include <sstream>

int main() {
    using namespace zmqkit;
    using namespace zmqkit::patterns;
    zmq::context_t context;

    // The ends bind (entries without '@'/'>' take the role's default: bind for source/sink).
    source sentences(context, "inproc://sentences");
    sink counts(context, "inproc://counts");

    // Workers connect to both ends; their handler turns a sentence into a word count.
    worker_options options;
    options.input = "inproc://sentences";
    options.output = "inproc://counts";
    options.name = "word-counter";
    worker_pool pool(context, 4, options,
                     typed_handler<std::string, std::size_t>([](const std::string& text) {
                         std::istringstream words(text);
                         std::size_t n = 0;
                         for (std::string w; words >> w;) {
                             ++n;
                         }
                         return n;
                     }));
    pool.start(); // returns once every worker has connected its sockets

    const std::vector<std::string> input = {
        "senders never wait on receivers",
        "queues absorb bursts and outages",
        "correlation ids let anyone trace a conversation end to end",
    };
    std::map<message_id, std::string> sent; // message id -> sentence
    for (const auto& text : input) {
        auto m = message::pack(text);
        m.header().type = "sentence";
        if (!sentences.send(m)) {
            std::cerr << "could not queue a sentence\n";
            return 1;
        }
        sent[m.id()] = text; // send() assigned the id
    }

    for (std::size_t i = 0; i < input.size(); ++i) {
        auto result = counts.recv(std::chrono::seconds(5)); // every wait is bounded
        if (!result) {
            std::cerr << "timed out waiting for results\n";
            return 1;
        }
        std::cout << result->body_as<std::size_t>() << " words in \""
                  << sent.at(result->correlation_id()) << "\"\n";
    }
    pool.stop();
    return 0;
}
