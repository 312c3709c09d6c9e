#include "ngrams.hpp"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

namespace critic {

NgramTable::NgramTable(int order, int32_t base, std::vector<uint64_t> keys, int64_t buckets,
                       bool distinct)
    : order_(order), base_(base), buckets_(buckets), distinct_(distinct) {
  if (order < 1 || order > kMaxNgramOrder) {
    throw std::invalid_argument("n-gram order must be 1, 2 or 3, got " + std::to_string(order));
  }
  if (base < 1) throw std::invalid_argument("the first n-gram id must be >= 1");
  if (buckets < 0) throw std::invalid_argument("buckets must be >= 0");
  if (buckets > 0 && !keys.empty()) {
    throw std::invalid_argument("an n-gram table is either fitted (keys) or hashed (buckets)");
  }
  const int64_t size = buckets > 0 ? buckets : static_cast<int64_t>(keys.size());
  if (size > static_cast<int64_t>(INT32_MAX) - base) {
    throw std::invalid_argument("n-gram ids would exceed 2**31 - 1");
  }
  keys_ = keys.size();
  size_t capacity = 16;
  while (capacity < 2 * keys_) capacity *= 2;
  slot_keys_.assign(capacity, 0);
  slot_ids_.assign(capacity, -1);
  mask_ = capacity - 1;
  for (size_t r = 0; r < keys_; ++r) {
    const uint64_t key = keys[r];
    if (key == 0) throw std::invalid_argument("n-gram key 0 is not a valid key");
    size_t s = mix64(key) & mask_;
    while (slot_keys_[s] != 0 && slot_keys_[s] != key) s = (s + 1) & mask_;
    if (slot_keys_[s] == key) {
      throw std::invalid_argument("n-gram key " + std::to_string(key) + " appears twice");
    }
    slot_keys_[s] = key;
    slot_ids_[s] = base + static_cast<int32_t>(r);
  }
}

int32_t NgramTable::find(uint64_t key) const {
  if (hashed()) return base_ + static_cast<int32_t>(mix64(key) % static_cast<uint64_t>(buckets_));
  for (size_t s = mix64(key) & mask_;; s = (s + 1) & mask_) {
    if (slot_keys_[s] == key) return slot_ids_[s];
    if (slot_keys_[s] == 0) return -1;
  }
}

void NgramTable::apply(std::vector<int32_t>& ids, std::vector<uint64_t>& scratch) const {
  const size_t m = ids.size();
  for (int n = 2; n <= order_; ++n) {
    for (size_t i = 0; i + n <= m; ++i) {
      const uint64_t key = ngram_key(ids.data() + i, n);
      if (key == 0) continue;
      const int32_t id = find(key);
      if (id >= 0) ids.push_back(id);  // reads stay below m: push_back may reallocate
    }
  }
  if (distinct_) keep_distinct(ids, scratch);
}

void keep_distinct(std::vector<int32_t>& ids, std::vector<uint64_t>& scratch) {
  // (id, position) pairs sorted: the first of each id run is its first occurrence.
  const size_t m = ids.size();
  scratch.resize(m);
  for (size_t i = 0; i < m; ++i) {
    scratch[i] = (static_cast<uint64_t>(static_cast<uint32_t>(ids[i])) << 32) | i;
  }
  std::sort(scratch.begin(), scratch.end());
  size_t kept = 0;
  uint64_t previous = UINT64_MAX;  // ids are < 2**32
  for (size_t i = 0; i < m; ++i) {
    const uint64_t id = scratch[i] >> 32;
    if (id != previous) scratch[kept++] = scratch[i] & 0xFFFFFFFFULL;  // its first position
    previous = id;
  }
  std::sort(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(kept));
  for (size_t k = 0; k < kept; ++k) ids[k] = ids[scratch[k]];
  ids.resize(kept);
}

}  // namespace critic
