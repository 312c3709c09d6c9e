#include "ngrams.hpp"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

namespace critic {

namespace {
inline uint8_t tag_of(uint64_t h) { return static_cast<uint8_t>((h >> 56) | 1); }
}  // namespace

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
  slots_ = LargeArray<Slot>(capacity, Slot{0, -1});
  tags_ = LargeArray<uint8_t>(capacity, 0);
  mask_ = capacity - 1;
  for (size_t r = 0; r < keys_; ++r) {
    const uint64_t key = keys[r];
    if (key == 0) throw std::invalid_argument("n-gram key 0 is not a valid key");
    size_t s = mix64(key) & mask_;
    while (slots_[s].key != 0 && slots_[s].key != key) s = (s + 1) & mask_;
    if (slots_[s].key == key) {
      throw std::invalid_argument("n-gram key " + std::to_string(key) + " appears twice");
    }
    slots_[s] = Slot{key, base + static_cast<int32_t>(r)};
    tags_[s] = tag_of(mix64(key));
  }
  prefix_closed_ = !hashed();
  for (size_t r = 0; r < keys_ && prefix_closed_; ++r) {
    const uint64_t key = keys[r];
    if ((key >> (2 * kNgramIdBits)) != 0) prefix_closed_ = find(key >> kNgramIdBits) >= 0;
  }
}

int32_t NgramTable::find(uint64_t key) const {
  if (hashed()) return base_ + static_cast<int32_t>(mix64(key) % static_cast<uint64_t>(buckets_));
  const uint64_t h = mix64(key);
  const uint8_t tag = tag_of(h);
  for (size_t s = h & mask_;; s = (s + 1) & mask_) {
    const uint8_t t = tags_[s];
    if (t == 0) return -1;
    if (t == tag && slots_[s].key == key) return slots_[s].id;
  }
}

void NgramTable::prefetch(uint64_t key) const {
#if defined(__GNUC__) || defined(__clang__)
  if (!hashed()) {
    const size_t s = mix64(key) & mask_;
    __builtin_prefetch(&tags_[s]);
    __builtin_prefetch(&slots_[s]);  // a hit reads its slot next
  }
#else
  (void)key;
#endif
}

void NgramTable::apply(std::vector<int32_t>& ids, NgramScratch& scratch) const {
  const size_t m = ids.size();
  // With a prefix-closed table a trigram can only be there when its first bigram is, so
  // trigrams whose bigram missed are not looked up (the result is the same).
  const bool skip = prefix_closed_ && order_ == 3;
  if (skip) scratch.hit.assign(m, 0);
  for (int n = 2; n <= order_; ++n) {
    scratch.keys.clear();
    scratch.positions.clear();
    for (size_t i = 0; i + n <= m; ++i) {
      if (n == 3 && skip && !scratch.hit[i]) continue;
      const uint64_t key = ngram_key(ids.data() + i, n);
      if (key == 0) continue;
      scratch.keys.push_back(key);
      scratch.positions.push_back(static_cast<uint32_t>(i));
    }
    lookup(ids, scratch, n == 2 && skip);
  }
  if (distinct_) keep_distinct(ids, static_cast<int64_t>(base_) + size(), scratch);
}

void NgramTable::lookup(std::vector<int32_t>& ids, NgramScratch& scratch, bool mark) const {
  // Lookups a few keys behind their prefetches: the table is larger than the caches, and
  // overlapping the misses is most of the speed.
  constexpr size_t kAhead = 32;
  const std::vector<uint64_t>& keys = scratch.keys;
  const size_t k = keys.size();
  for (size_t j = 0; j < k && j < kAhead; ++j) prefetch(keys[j]);
  for (size_t j = 0; j < k; ++j) {
    if (j + kAhead < k) prefetch(keys[j + kAhead]);
    const int32_t id = find(keys[j]);
    if (id < 0) continue;
    ids.push_back(id);
    if (mark) scratch.hit[scratch.positions[j]] = 1;
  }
}

namespace {
constexpr int64_t kSeenLimit = int64_t{1} << 24;  // ids tracked in a bitset (2 MB a thread)
}

void keep_distinct(std::vector<int32_t>& ids, int64_t limit, NgramScratch& work) {
  const size_t m = ids.size();
  bool small = limit <= kSeenLimit;
  for (size_t i = 0; small && i < m; ++i) small = ids[i] < limit;  // ids are >= 0
  if (small) {
    const size_t words = static_cast<size_t>((limit + 63) / 64);
    if (work.seen.size() < words) work.seen.resize(words, 0);
    uint64_t* seen = work.seen.data();
    size_t kept = 0;
    for (size_t i = 0; i < m; ++i) {
      const uint32_t id = static_cast<uint32_t>(ids[i]);
      const uint64_t bit = uint64_t{1} << (id & 63);
      if (!(seen[id >> 6] & bit)) {
        seen[id >> 6] |= bit;
        ids[kept++] = ids[i];
      }
    }
    ids.resize(kept);
    for (size_t i = 0; i < kept; ++i) seen[static_cast<uint32_t>(ids[i]) >> 6] = 0;  // clean
    return;
  }
  // (id, position) pairs sorted: the first of each id run is its first occurrence.
  std::vector<uint64_t>& scratch = work.keys;
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
