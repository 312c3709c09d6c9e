// An open-addressing hash table from byte strings to int32 values, built for lookups of
// short words that mostly miss the CPU cache.
//
// Slots are 16 bytes: the key's first 8 bytes (zero padded), its length and the value, so
// a word of up to 8 bytes is matched without touching any other memory. Longer keys keep
// their remaining bytes in an arena. Callers may hash first and prefetch() the slot, then
// find() later, to overlap the cache misses of many lookups.
//
// Keys passed to hash()/find()/insert() must be followed by at least 8 readable bytes
// (callers keep that slack in their buffers) so the first 8 bytes load as one word.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace critic {

constexpr size_t kKeySlack = 8;  // readable bytes required after every key

inline uint64_t load_u64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// The first min(n, 8) bytes of p as a little-endian-ordered word, the rest zero.
inline uint64_t load_head(const char* p, size_t n) {
  if (n >= 8) return load_u64(p);
  if (n == 0) return 0;
  uint64_t v = load_u64(p);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return v & (~uint64_t{0} << (64 - 8 * n));
#else
  return v & (~uint64_t{0} >> (64 - 8 * n));
#endif
}

// Multiply-xorshift over 8-byte words: one multiply per word (most words are one word).
inline uint64_t hash_bytes(const char* p, size_t n) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  uint64_t h = n * 0xC2B2AE3D27D4EB4FULL;
  size_t i = 0;
  for (; i + 8 < n; i += 8) {
    h = (h ^ load_u64(p + i)) * kMul;
    h ^= h >> 29;
  }
  h = (h ^ load_head(p + i, n - i)) * kMul;
  return h ^ (h >> 32);
}

class StringTable {
 public:
  StringTable() : arena_(kKeySlack, '\0') { rehash(16); }

  size_t size() const { return size_; }
  static uint64_t hash(const char* key, size_t n) { return hash_bytes(key, n); }
  void prefetch(uint64_t h) const { __builtin_prefetch(&slots_[h & mask_]); }

  // The value stored for key (hash h), or nullptr. The empty key is never stored.
  const int32_t* find(const char* key, size_t n, uint64_t h) const {
    const uint64_t head = load_head(key, n);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.len == 0) return nullptr;
      if (s.head == head && s.len == n && (n <= 8 || tail_equal(i, key, n))) return &s.value;
    }
  }
  const int32_t* find(const char* key, size_t n) const { return find(key, n, hash(key, n)); }

  // Inserts key -> value if absent. Returns the value slot and whether it was inserted.
  // Empty keys are rejected (nullptr, false).
  std::pair<int32_t*, bool> insert(const char* key, size_t n, int32_t value) {
    return insert(key, n, value, hash(key, n));
  }
  std::pair<int32_t*, bool> insert(const char* key, size_t n, int32_t value, uint64_t h) {
    if (n == 0) return {nullptr, false};
    if (n > UINT32_MAX) throw std::length_error("key longer than 4 GiB");
    if ((size_ + 1) * 4 > slots_.size() * 3) {
      rehash(slots_.size() * 2);
    }
    const uint64_t head = load_head(key, n);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.len == 0) {
        s.head = head;
        s.len = static_cast<uint32_t>(n);
        s.value = value;
        if (n > 8) {  // the arena always ends with kKeySlack zero bytes
          tails_[i] = arena_.size() - kKeySlack;
          arena_.resize(tails_[i]);
          arena_.append(key + 8, n - 8);
          arena_.append(kKeySlack, '\0');
        }
        ++size_;
        return {&s.value, true};
      }
      if (s.head == head && s.len == n && (n <= 8 || tail_equal(i, key, n))) {
        return {&s.value, false};
      }
    }
  }

 private:
  struct Slot {
    uint64_t head;  // first 8 key bytes, zero padded
    uint32_t len;   // 0 marks an empty slot
    int32_t value;
  };

  // Compares key bytes [8, n) with the slot's arena bytes, a word at a time (both sides
  // have kKeySlack readable bytes after their end).
  bool tail_equal(size_t slot, const char* key, size_t n) const {
    const char* a = arena_.data() + tails_[slot];
    const char* b = key + 8;
    size_t rest = n - 8;
    for (; rest > 8; rest -= 8, a += 8, b += 8) {
      if (load_u64(a) != load_u64(b)) return false;
    }
    return load_head(a, rest) == load_head(b, rest);
  }

  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    std::vector<size_t> old_tails = std::move(tails_);
    slots_.assign(capacity, Slot{0, 0, 0});
    tails_.assign(capacity, 0);
    mask_ = capacity - 1;
    std::string key;
    for (size_t j = 0; j < old.size(); ++j) {
      const Slot& s = old[j];
      if (s.len == 0) continue;
      key.assign(reinterpret_cast<const char*>(&s.head), s.len < 8 ? s.len : 8);
      if (s.len > 8) key.append(arena_, old_tails[j], s.len - 8);
      key.append(kKeySlack, '\0');
      size_t i = hash(key.data(), s.len) & mask_;
      while (slots_[i].len != 0) i = (i + 1) & mask_;
      slots_[i] = s;
      tails_[i] = old_tails[j];
    }
  }

  std::vector<Slot> slots_;
  std::vector<size_t> tails_;  // arena offset of bytes [8, len) of long keys, per slot
  std::string arena_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace critic
