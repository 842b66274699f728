// zmqkit — the one dedup window: a bounded set of recently seen message ids, each with a value.
#pragma once

#include <zmqkit/message_id.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace zmqkit {

// The message ids seen last, at most capacity() of them, each with a 64-bit value (the spool: the
// ticket of the append; reliable_sender: the ring sequence of an unconfirmed message;
// reliable_receiver: unused). Inserting a new id into a full window evicts the oldest one
// (insertion order: a repeated insert does not make an id younger); erase() takes an id out
// early. Ids expire by count only, never by time (none of its users wants time-based expiry).
// A flat open-addressing table (linear probing, backward-shift deletion) over a ring of the ids
// in insertion order: no allocation after construction, a lookup touches one or two cache lines.
// erase() leaves a hole in the ring that is closed when the ring is full (O(capacity)): a user
// that erases should keep size() well below capacity() (reliable_sender: at most half).
// Not thread-safe: one owner thread. Movable.
class message_id_window {
public:
    // capacity 0: holds nothing (every find misses). At most 2^30.
    explicit message_id_window(std::size_t capacity);

    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::size_t size() const noexcept { return count_; }

    // The value of id if the window holds it, else nullptr (valid until the next change).
    [[nodiscard]] const std::uint64_t* find(const message_id& id) const noexcept;
    [[nodiscard]] bool contains(const message_id& id) const noexcept { return find(id) != nullptr; }
    // Adds id with value, evicting the oldest id when the window is full. An id already held
    // keeps its value and its age: returns false. Also false when capacity() is 0.
    bool insert(const message_id& id, std::uint64_t value = 0) noexcept;
    // Takes id out (its value into *value when given). False if the window does not hold it.
    bool erase(const message_id& id, std::uint64_t* value = nullptr) noexcept;

private:
    struct slot {
        std::uint32_t index = 0; // ring position + 1; 0: empty
        std::uint32_t hash = 0;
    };
    [[nodiscard]] static std::uint32_t hash(const message_id& id) noexcept;
    [[nodiscard]] std::size_t slot_of(const message_id& id, std::uint32_t h) const noexcept;
    void put_slot(std::uint32_t h, std::size_t position) noexcept;
    void remove_slot(std::size_t i) noexcept;
    void drop_head_holes() noexcept;
    void evict_oldest() noexcept;
    void compact() noexcept;
    void prefetch_eviction() const noexcept;

    std::size_t capacity_;
    std::size_t mask_ = 0;
    std::vector<slot> slots_;           // power of two, at least twice the capacity
    std::vector<message_id> ids_;       // the ring, in insertion order (capacity positions)
    std::vector<std::uint64_t> values_; // beside ids_
    std::vector<std::uint8_t> held_;    // 1: the position holds an id; 0: a hole (erased)
    std::size_t head_ = 0;              // ring position of the oldest id (or a hole)
    std::size_t used_ = 0;              // positions from head_ in use, holes included
    std::size_t count_ = 0;             // ids held
};

} // namespace zmqkit
