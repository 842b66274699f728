// Splits an input stream (a file descriptor or an in-memory string) into messages through one
// large reused buffer: delimited, 4-byte big-endian length-prefixed, or whole.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace zmqkit::cli {

class input_reader {
public:
    enum class framing { delimited, length_prefixed, whole };
    enum class status {
        message,   // `out` holds the next message (valid until the next call)
        end,       // input exhausted
        truncated, // the input ended inside a length prefix or its payload
        stopped,   // should_stop() returned true while waiting for input
        failed,    // read error (errno text in error())
        too_large, // a message (or a length prefix) exceeds max_size; the reader cannot go on
    };

    // The default limit on one message: 256 MiB.
    static constexpr std::size_t default_max_size = std::size_t{256} << 20;

    // Reads from fd (not owned). should_stop is called before every read() and every 50 ms
    // while waiting for input. max_size bounds one message: the buffer grows as bytes arrive
    // (never to a size a length prefix merely claims), and a longer message is too_large.
    input_reader(int fd, framing f, std::string delimiter, std::function<bool()> should_stop,
                 std::size_t max_size = default_max_size);
    // Reads from the given bytes.
    input_reader(std::string data, framing f, std::string delimiter,
                 std::size_t max_size = default_max_size);

    [[nodiscard]] status next(std::string_view& out);
    [[nodiscard]] const std::string& error() const noexcept { return error_; }

private:
    // Reads more bytes into the buffer (compacting / growing it). False at end of input.
    bool fill();

    int fd_ = -1;
    framing framing_;
    std::string delimiter_;
    std::function<bool()> should_stop_;
    std::string buffer_;
    std::size_t begin_ = 0; // unread data is buffer_[begin_, end_)
    std::size_t end_ = 0;
    bool eof_ = false;
    bool stopped_ = false;
    bool whole_done_ = false;
    std::size_t max_size_;
    std::string error_;
};

} // namespace zmqkit::cli
