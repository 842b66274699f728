#include "common/input_reader.hpp"

#include <cerrno>
#include <cstring>

#include <poll.h>
#include <unistd.h>

namespace zmqkit::cli {
namespace {
constexpr std::size_t initial_buffer = 1 << 20;
constexpr int wait_slice_ms = 50; // how often should_stop() is asked while no input arrives
} // namespace

input_reader::input_reader(int fd, framing f, std::string delimiter,
                           std::function<bool()> should_stop, std::size_t max_size)
    : fd_(fd), framing_(f), delimiter_(std::move(delimiter)), should_stop_(std::move(should_stop)),
      max_size_(max_size) {
    buffer_.resize(initial_buffer);
}

input_reader::input_reader(std::string data, framing f, std::string delimiter, std::size_t max_size)
    : framing_(f), delimiter_(std::move(delimiter)), buffer_(std::move(data)), end_(buffer_.size()),
      eof_(true), max_size_(max_size) {}

bool input_reader::fill() {
    if (eof_ || stopped_) {
        return false;
    }
    if (begin_ > 0) { // keep the partial message at the front
        std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    if (end_ == buffer_.size()) {
        buffer_.resize(buffer_.size() * 2); // one message larger than the buffer
    }
    for (;;) {
        // Asked before every read, not only when idle: a slow trickle of input must not hide
        // a signal or the deadline.
        if (should_stop_ && should_stop_()) {
            stopped_ = true;
            return false;
        }
        // Wait in slices so a signal (blocked, read with sigtimedwait) is noticed while idle.
        pollfd p{fd_, POLLIN, 0};
        const int ready = ::poll(&p, 1, wait_slice_ms);
        if (ready == 0) {
            continue;
        }
        if (ready < 0 && errno != EINTR) {
            error_ = std::strerror(errno);
            return false;
        }
        const auto n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
        if (n > 0) {
            end_ += static_cast<std::size_t>(n);
            return true;
        }
        if (n == 0) {
            eof_ = true;
            return false;
        }
        if (errno == EINTR || errno == EAGAIN) {
            continue;
        }
        error_ = std::strerror(errno);
        eof_ = true;
        return false;
    }
}

input_reader::status input_reader::next(std::string_view& out) {
    auto finish = [&]() {
        if (stopped_) {
            return status::stopped;
        }
        return error_.empty() ? status::end : status::failed;
    };
    switch (framing_) {
    case framing::whole: {
        if (whole_done_) {
            return status::end;
        }
        while (end_ - begin_ <= max_size_ && fill()) {
        }
        if (stopped_ || !error_.empty()) {
            return finish();
        }
        whole_done_ = true;
        if (end_ - begin_ > max_size_) {
            return status::too_large;
        }
        if (end_ == begin_) { // empty input: nothing to send
            return status::end;
        }
        out = std::string_view(buffer_.data() + begin_, end_ - begin_);
        begin_ = end_;
        return status::message;
    }
    case framing::length_prefixed: {
        while (end_ - begin_ < 4) {
            if (!fill()) {
                if (end_ == begin_) {
                    return finish();
                }
                return stopped_ ? status::stopped : status::truncated;
            }
        }
        const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + begin_);
        const std::size_t length = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                                   (std::size_t{p[2]} << 8) | std::size_t{p[3]};
        if (length > max_size_) {
            // Possibly garbage (text "abcd" claims 1.6 GB): never allocate what is only
            // claimed, and stop, since a length-prefixed stream cannot be resynchronised.
            return status::too_large;
        }
        // fill() grows the buffer (doubling) only when it is full of bytes that did arrive.
        while (end_ - begin_ < 4 + length) {
            if (!fill()) {
                return stopped_ ? status::stopped : status::truncated;
            }
        }
        out = std::string_view(buffer_.data() + begin_ + 4, length);
        begin_ += 4 + length;
        return status::message;
    }
    case framing::delimited:
        break;
    }
    std::size_t searched = begin_; // no need to search the same bytes twice
    for (;;) {
        const std::string_view window(buffer_.data() + searched, end_ - searched);
        std::size_t found = std::string_view::npos;
        if (delimiter_.size() == 1) {
            const void* hit =
                window.empty() ? nullptr : std::memchr(window.data(), delimiter_[0], window.size());
            if (hit != nullptr) {
                found = static_cast<std::size_t>(static_cast<const char*>(hit) - buffer_.data());
            }
        } else {
            const auto at = window.find(delimiter_);
            if (at != std::string_view::npos) {
                found = searched + at;
            }
        }
        if (found != std::string_view::npos) {
            if (found - begin_ > max_size_) {
                return status::too_large;
            }
            out = std::string_view(buffer_.data() + begin_, found - begin_);
            begin_ = found + delimiter_.size();
            return status::message;
        }
        const std::size_t keep = delimiter_.size() - 1; // a delimiter may straddle reads
        const std::size_t offset = searched - begin_;
        const std::size_t next_offset =
            end_ - begin_ > keep ? std::max(offset, end_ - begin_ - keep) : offset;
        if (end_ - begin_ > max_size_ + keep) {
            return status::too_large; // no delimiter within max_size bytes
        }
        if (!fill()) {
            if (stopped_ || !error_.empty()) {
                return finish();
            }
            if (end_ > begin_) { // last message without a trailing delimiter
                if (end_ - begin_ > max_size_) {
                    return status::too_large;
                }
                out = std::string_view(buffer_.data() + begin_, end_ - begin_);
                begin_ = end_;
                return status::message;
            }
            return status::end;
        }
        searched = begin_ + next_offset;
    }
}

} // namespace zmqkit::cli
