// n-gram ids appended to word ids (Keras' imdb_fasttext recipe, fastText's hashing trick),
// and each row's distinct ids (a binarized bag, for NBSVM).
//
// An n-gram of word ids w1..wn (2 <= n <= 3) is packed into one 64-bit key, 21 bits per id:
// ((w1 << 21) | w2) for a bigram, ((w1 << 42) | (w2 << 21) | w3) for a trigram. Ids are >= 1,
// so a bigram key never equals a trigram key. n-grams that contain an id outside
// [1, 2**21) are not formed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "large_array.hpp"

namespace critic {

constexpr int kNgramIdBits = 21;
constexpr int32_t kNgramIdLimit = int32_t{1} << kNgramIdBits;
constexpr int kMaxNgramOrder = 3;

// splitmix64's finalizer: the bucket hash of the hashed variant (mirrored in Python).
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The key of ids[0..n), or 0 when one of them cannot be packed.
inline uint64_t ngram_key(const int32_t* ids, int n) {
  uint64_t key = 0;
  for (int k = 0; k < n; ++k) {
    if (ids[k] < 1 || ids[k] >= kNgramIdLimit) return 0;
    key = (key << kNgramIdBits) | static_cast<uint64_t>(ids[k]);
  }
  return key;
}

// Per-thread working memory of NgramTable::apply.
struct NgramScratch {
  std::vector<uint64_t> keys;
  std::vector<uint32_t> positions;  // where each key's n-gram starts
  std::vector<uint8_t> hit;         // hit[i]: the bigram at position i is in the table
  std::vector<uint64_t> seen;  // one bit per id: already kept in this row (cleared after it)
};

class NgramTable {
 public:
  // Fitted variant: keys[r] gets id base + r. Hashed variant (keys empty, buckets > 0):
  // a key gets id base + mix64(key) % buckets. order: the longest n-gram (1 = words only).
  NgramTable(int order, int32_t base, std::vector<uint64_t> keys, int64_t buckets,
             bool distinct);

  // Appends the n-gram ids of ids (orders 2..order, in position order, n = 2 first), then,
  // with distinct, keeps the first occurrence of every id.
  void apply(std::vector<int32_t>& ids, NgramScratch& scratch) const;

  // The id of one packed key (the table's slot for it is read once), or -1 when absent.
  int32_t find(uint64_t key) const;

  int order() const { return order_; }
  int32_t base() const { return base_; }
  bool distinct() const { return distinct_; }
  int64_t size() const { return hashed() ? buckets_ : static_cast<int64_t>(keys_); }
  bool hashed() const { return buckets_ > 0; }

 private:
  struct Slot {
    uint64_t key;  // 0 = empty
    int32_t id;
  };
  void prefetch(uint64_t key) const;
  // Appends the ids of scratch.keys found in the table; with mark, sets scratch.hit at the
  // position of every key found.
  void lookup(std::vector<int32_t>& ids, NgramScratch& scratch, bool mark) const;

  int order_;
  int32_t base_;
  int64_t buckets_;
  bool distinct_;
  size_t keys_ = 0;
  bool prefix_closed_ = false;  // every trigram's first bigram is a key too
  LargeArray<Slot> slots_;  // open addressing: key and id share a cache line
  // One byte per slot (0 = empty, else 8 bits of the key's hash with the low bit set): most
  // lookups miss, and a miss reads only this small array, not the slots.
  LargeArray<uint8_t> tags_;
  size_t mask_ = 0;
};

// Keeps the first occurrence of every id, in order. Ids below `limit` are tracked in an array
// (one pass); a limit too large for one falls back to sorting.
void keep_distinct(std::vector<int32_t>& ids, int64_t limit, NgramScratch& scratch);

}  // namespace critic
