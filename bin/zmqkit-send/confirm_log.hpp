// zmqkit-send --confirm-log FILE: the outcome of every input message of a --wait-confirm run,
// one line each, so that a script knows exactly which input records are safely stored.
#pragma once

#include <zmqkit/message_id.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zmqkit::cli {

// Lines "<record> <message id> <outcome>\n" (docs/cli.md, "--confirm-log"):
//   <record>   the input record number, from 1 (the line number in the default line mode;
//              blank lines skipped by --json still count)
//   <id>       the message id (canonical UUID), "-" for a record that was never sent
//   <outcome>  "confirmed", "rejected:<reason>" or "unconfirmed"
// Confirmed and rejected lines are written when the proxy's answer arrives; the records left
// (never answered, never sent) at finish(), in input order. Writes through a buffered FILE;
// not thread-safe. Move-only in spirit: not copyable.
class confirm_log {
public:
    confirm_log() = default; // disabled: every call is a no-op
    ~confirm_log();
    confirm_log(const confirm_log&) = delete;
    confirm_log& operator=(const confirm_log&) = delete;

    // Creates (truncates) `path`. False with `error` set when it cannot be created.
    [[nodiscard]] bool open(const std::string& path, std::string& error);
    [[nodiscard]] bool enabled() const noexcept { return file_ != nullptr; }

    // Record `record` is handed to the sender as message `id` (call before the send: its
    // answer may arrive during it).
    void sent(std::uint64_t record, const message_id& id);
    // Record `record` was read but not sent after all (malformed, or the run ended before it
    // left); `id`: the id sent() was given for it, if any.
    void not_sent(std::uint64_t record, const message_id* id = nullptr);
    // The proxy's answer for `id` (ids not sent through sent() are ignored).
    void confirmed(const message_id& id);
    void rejected(const message_id& id, std::string_view reason);
    // Writes "unconfirmed" for every record without an answer, in input order, and closes the
    // file. False with `error` set when writing failed (disk full, ...).
    [[nodiscard]] bool finish(std::string& error);

private:
    void write(std::uint64_t record, const message_id* id, std::string_view outcome,
               std::string_view reason = {});
    std::FILE* file_ = nullptr;
    std::string path_;
    std::unordered_map<message_id, std::uint64_t, message_id_hash> open_; // id -> record
    std::vector<std::uint64_t> unsent_;
    bool write_failed_ = false;
    int write_errno_ = 0;
};

} // namespace zmqkit::cli
