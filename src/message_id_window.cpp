#include <zmqkit/message_id_window.hpp>

#include <algorithm>

namespace zmqkit {

message_id_window::message_id_window(std::size_t capacity)
    : capacity_(std::min<std::size_t>(capacity, std::size_t{1} << 30)) {
    if (capacity_ == 0) {
        return;
    }
    std::size_t table = 16;
    while (table < 2 * capacity_) {
        table *= 2;
    }
    slots_.assign(table, slot{});
    mask_ = table - 1;
    ids_.resize(capacity_);
    values_.resize(capacity_);
    held_.assign(capacity_, 0);
}

std::uint32_t message_id_window::hash(const message_id& id) noexcept {
    return static_cast<std::uint32_t>(message_id_hash{}(id) >> 16);
}

// The table slot holding id, or the empty slot where its probe run ends.
std::size_t message_id_window::slot_of(const message_id& id, std::uint32_t h) const noexcept {
    std::size_t i = h & mask_;
    while (slots_[i].index != 0 && !(slots_[i].hash == h && ids_[slots_[i].index - 1] == id)) {
        i = (i + 1) & mask_;
    }
    return i;
}

const std::uint64_t* message_id_window::find(const message_id& id) const noexcept {
    if (capacity_ == 0) {
        return nullptr;
    }
    const std::size_t i = slot_of(id, hash(id));
    return slots_[i].index == 0 ? nullptr : &values_[slots_[i].index - 1];
}

void message_id_window::put_slot(std::uint32_t h, std::size_t position) noexcept {
    std::size_t i = h & mask_;
    while (slots_[i].index != 0) {
        i = (i + 1) & mask_;
    }
    slots_[i] = slot{static_cast<std::uint32_t>(position + 1), h};
}

// Backward shift: later entries of the probe run move into the hole unless their home slot is
// cyclically in (hole, their position].
void message_id_window::remove_slot(std::size_t i) noexcept {
    for (std::size_t j = i;;) {
        j = (j + 1) & mask_;
        if (slots_[j].index == 0) {
            break;
        }
        const std::size_t home = slots_[j].hash & mask_;
        const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            slots_[i] = slots_[j];
            i = j;
        }
    }
    slots_[i] = slot{};
}

void message_id_window::drop_head_holes() noexcept {
    while (used_ > 0 && held_[head_] == 0) {
        head_ = head_ + 1 == ids_.size() ? 0 : head_ + 1;
        --used_;
    }
}

void message_id_window::evict_oldest() noexcept {
    drop_head_holes();
    const message_id& oldest = ids_[head_];
    remove_slot(slot_of(oldest, hash(oldest)));
    held_[head_] = 0;
    --count_;
    drop_head_holes();
}

// The ring is full of positions but holds fewer ids (erased holes behind the oldest id): close
// the holes, keeping the order, and point the table at the new positions. O(capacity); a user
// that erases keeps size() well below capacity() so that this stays rare (reliable_sender: at
// most half, so at most once per capacity/2 inserts).
void message_id_window::compact() noexcept {
    // Oldest first from position 0, then close the holes moving forwards (a write never passes
    // the read position).
    const auto by = static_cast<std::ptrdiff_t>(head_);
    std::rotate(ids_.begin(), ids_.begin() + by, ids_.end());
    std::rotate(values_.begin(), values_.begin() + by, values_.end());
    std::rotate(held_.begin(), held_.begin() + by, held_.end());
    std::size_t to = 0;
    for (std::size_t at = 0; at < used_; ++at) {
        if (held_[at] == 0) {
            continue;
        }
        held_[at] = 0;
        ids_[to] = ids_[at];
        values_[to] = values_[at];
        held_[to] = 1;
        ++to;
    }
    std::fill(slots_.begin(), slots_.end(), slot{});
    for (std::size_t k = 0; k < to; ++k) {
        put_slot(hash(ids_[k]), k);
    }
    head_ = 0;
    used_ = to;
}

void message_id_window::prefetch_eviction() const noexcept {
    // The next insert evicts the oldest id: its slot is a cache miss in a table of megabytes, so
    // fetch it now, while the caller does other work (measured in the spool: the eviction's
    // probe was a third of the time of an append).
    if (used_ > 0 && held_[head_] != 0) {
        __builtin_prefetch(&slots_[hash(ids_[head_]) & mask_]);
    }
}

bool message_id_window::insert(const message_id& id, std::uint64_t value) noexcept {
    if (capacity_ == 0) {
        return false;
    }
    const std::uint32_t h = hash(id);
    if (slots_[slot_of(id, h)].index != 0) {
        return false;
    }
    if (count_ == capacity_) {
        evict_oldest();
    }
    if (used_ == ids_.size()) {
        compact();
    }
    std::size_t position = head_ + used_;
    if (position >= ids_.size()) {
        position -= ids_.size();
    }
    ids_[position] = id;
    values_[position] = value;
    held_[position] = 1;
    ++used_;
    ++count_;
    put_slot(h, position);
    if (count_ == capacity_) {
        prefetch_eviction();
    }
    return true;
}

bool message_id_window::erase(const message_id& id, std::uint64_t* value) noexcept {
    if (capacity_ == 0) {
        return false;
    }
    const std::size_t i = slot_of(id, hash(id));
    if (slots_[i].index == 0) {
        return false;
    }
    const std::size_t position = slots_[i].index - 1;
    if (value != nullptr) {
        *value = values_[position];
    }
    held_[position] = 0;
    --count_;
    remove_slot(i);
    drop_head_holes();
    return true;
}

} // namespace zmqkit
