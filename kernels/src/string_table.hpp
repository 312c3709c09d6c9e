// An open-addressing hash table from byte strings to int32 values.
//
// Keys live in one contiguous arena; slots are 16 bytes (hash tag, arena offset, length,
// value) so the hot part of a 20k-word vocabulary stays in cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace critic {

inline uint64_t hash_bytes(const char* p, size_t n) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  uint64_t h = 0x243F6A8885A308D3ULL ^ (n * kMul);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * kMul;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * kMul;
    h ^= h >> 29;
  }
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ULL;
  h ^= h >> 32;
  return h;
}

class StringTable {
 public:
  StringTable() { rehash(16); }

  size_t size() const { return size_; }

  // Returns the value slot of key, or nullptr.
  const int32_t* find(const char* key, size_t n) const {
    const uint64_t h = hash_bytes(key, n);
    const uint32_t tag = tag_of(h);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.tag == 0) return nullptr;
      if (s.tag == tag && s.len == n && std::memcmp(arena_.data() + s.off, key, n) == 0) {
        return &s.value;
      }
    }
  }

  // Inserts key with value if absent. Returns the value slot and whether it was inserted.
  std::pair<int32_t*, bool> insert(const char* key, size_t n, int32_t value) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    const uint64_t h = hash_bytes(key, n);
    const uint32_t tag = tag_of(h);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.tag == 0) {
        if (n > kMaxArena || arena_.size() > kMaxArena - n) {
          throw std::length_error("vocabulary larger than 4 GiB of key bytes");
        }
        s.tag = tag;
        s.off = static_cast<uint32_t>(arena_.size());
        s.len = static_cast<uint32_t>(n);
        s.value = value;
        arena_.append(key, n);
        ++size_;
        return {&s.value, true};
      }
      if (s.tag == tag && s.len == n && std::memcmp(arena_.data() + s.off, key, n) == 0) {
        return {&s.value, false};
      }
    }
  }

 private:
  struct Slot {
    uint32_t tag;  // 0 marks an empty slot
    uint32_t len;
    uint32_t off;
    int32_t value;
  };
  static constexpr size_t kMaxArena = 0xFFFFFFFFu;
  static uint32_t tag_of(uint64_t h) { return static_cast<uint32_t>(h >> 32) | 1u; }

  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.tag == 0) continue;
      const uint64_t h = hash_bytes(arena_.data() + s.off, s.len);
      size_t i = h & mask_;
      while (slots_[i].tag != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace critic
