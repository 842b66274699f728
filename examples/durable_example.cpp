// Store and forward in one process: a reliable sender, a durable proxy with its spool in a
// temporary directory, and a reliable receiver — then the proxy is stopped and started again
// over the same spool, and what was confirmed but not yet consumed is still there.
//
//   reliable_sender --tcp--> durable_proxy (+ spool on disk) --tcp--> reliable_receiver
#include <zmqkit/patterns/durable.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>

int main() {
    using namespace zmqkit;
    using namespace zmqkit::patterns;
    using namespace std::chrono_literals;
    zmq::context_t context;

    char dir_template[] = "/tmp/zmqkit-durable-example-XXXXXX";
    const char* made = ::mkdtemp(dir_template);
    if (made == nullptr) {
        std::cerr << "cannot create a temporary directory\n";
        return 1;
    }
    const std::filesystem::path spool_dir = std::filesystem::path(made) / "orders";

    durable_proxy_options options;
    options.frontend = "tcp://127.0.0.1:*";
    options.backend = "tcp://127.0.0.1:*";
    options.spool.directory = spool_dir;
    std::set<message_id> sent;
    std::string frontend, backend;
    {
        durable_proxy proxy(context, options);
        proxy.start();
        frontend = proxy.frontend_endpoints().at(0);
        backend = proxy.backend_endpoints().at(0);

        // Each message is kept and resent until the proxy confirms it is on disk.
        reliable_sender out(context, frontend);
        for (int i = 0; i < 100; ++i) {
            message m = message::pack(std::string("order ") + std::to_string(i));
            m.header().type = "order.created";
            (void)out.send(m);
            sent.insert(m.id());
        }
        if (!out.flush(10s)) {
            std::cerr << out.unconfirmed() << " messages not confirmed\n";
            return 1;
        }
        std::cout << "confirmed " << out.confirmed() << " messages; stopping the proxy\n";
    } // the proxy stops; the messages are in the spool

    // Same spool, same ports: the messages are waiting.
    options.frontend = frontend;
    options.backend = backend;
    durable_proxy proxy(context, options);
    proxy.start();
    std::cout << "restarted: " << proxy.recovery().messages << " messages waiting\n";

    reliable_receiver in(context, backend);
    std::set<message_id> received;
    while (received.size() < sent.size()) {
        // The handler runs once per message id; the ack goes out after it returns.
        const bool handled = in.process(
            [&](const message& m) {
                received.insert(m.id());
                if (received.size() <= 3) {
                    std::cout << m.header().type << " " << m.body_as<std::string>() << " (attempt "
                              << m.header().attempt << ")\n";
                }
            },
            5s);
        if (!handled) {
            break;
        }
    }
    in.flush_acks();
    std::filesystem::remove_all(made);
    std::cout << "received " << received.size() << " of " << sent.size()
              << (received == sent ? ": every message, once\n" : ": MISSING MESSAGES\n");
    return received == sent ? 0 : 1;
}
