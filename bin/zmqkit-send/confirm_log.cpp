#include "zmqkit-send/confirm_log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace zmqkit::cli {

confirm_log::~confirm_log() {
    if (file_ != nullptr) {
        (void)std::fclose(file_);
    }
}

bool confirm_log::open(const std::string& path, std::string& error) {
    file_ = std::fopen(path.c_str(), "we");
    if (file_ == nullptr) {
        error = "cannot create --confirm-log '" + path + "': " + std::strerror(errno);
        return false;
    }
    path_ = path;
    return true;
}

void confirm_log::write(std::uint64_t record, const message_id* id, std::string_view outcome,
                        std::string_view reason) {
    std::string line = std::to_string(record);
    line += ' ';
    line += id != nullptr ? id->to_string() : std::string("-");
    line += ' ';
    line += outcome;
    if (!reason.empty()) {
        line += ':';
        // One line per record whatever the proxy's reason contains.
        std::transform(reason.begin(), reason.end(), std::back_inserter(line), [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c;
        });
    }
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() && !write_failed_) {
        write_failed_ = true;
        write_errno_ = errno; // the first failure's reason, not whatever fflush leaves
    }
}

void confirm_log::sent(std::uint64_t record, const message_id& id) {
    if (file_ != nullptr) {
        open_.emplace(id, record);
    }
}

void confirm_log::not_sent(std::uint64_t record, const message_id* id) {
    if (file_ != nullptr) {
        if (id != nullptr) {
            open_.erase(*id);
        }
        unsent_.push_back(record);
    }
}

void confirm_log::confirmed(const message_id& id) {
    if (file_ == nullptr) {
        return;
    }
    if (const auto it = open_.find(id); it != open_.end()) {
        write(it->second, &id, "confirmed");
        open_.erase(it);
    }
}

void confirm_log::rejected(const message_id& id, std::string_view reason) {
    if (file_ == nullptr) {
        return;
    }
    if (const auto it = open_.find(id); it != open_.end()) {
        write(it->second, &id, "rejected",
              reason.empty() ? std::string_view("no reason given") : reason);
        open_.erase(it);
    }
}

bool confirm_log::finish(std::string& error) {
    if (file_ == nullptr) {
        return true;
    }
    std::vector<std::pair<std::uint64_t, const message_id*>> left;
    left.reserve(open_.size() + unsent_.size());
    for (const auto& [id, record] : open_) {
        left.emplace_back(record, &id);
    }
    for (const auto record : unsent_) {
        left.emplace_back(record, nullptr);
    }
    std::sort(left.begin(), left.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [record, id] : left) {
        write(record, id, "unconfirmed");
    }
    open_.clear();
    unsent_.clear();
    const bool flushed = std::fflush(file_) == 0;
    const int saved = errno;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (write_failed_ || !flushed || !closed) {
        error = "cannot write --confirm-log '" + path_ + "': " +
                std::strerror(write_failed_ ? write_errno_
                              : !flushed    ? saved
                                            : errno);
        return false;
    }
    return true;
}

} // namespace zmqkit::cli
