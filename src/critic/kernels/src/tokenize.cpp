#include "tokenize.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <unordered_map>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>

namespace critic {
namespace {

constexpr size_t kChunk = 128;  // rows handed to a worker at a time

// Tokens waiting for their table lookup. Hashing a token and prefetching its slot as soon
// as it is complete, then looking up a few dozen tokens later, overlaps the cache misses.
class PendingTokens {
 public:
  static constexpr size_t kBatch = 32;
  // Returns true when the batch is full and should be drained.
  template <class Table>
  bool add(const char* s, size_t n, const Table& table) {
    const uint64_t h = StringTable::hash(s, n);
    table.prefetch(h);
    if (used_ + n + 2 * kKeySlack > bytes_.size()) {
      bytes_.resize((used_ + n + 2 * kKeySlack) * 2);
    }
    // Copy in whole words: s has kKeySlack readable bytes after it, and so does bytes_.
    char* dst = bytes_.data() + used_;
    for (size_t i = 0; i < n; i += 8) std::memcpy(dst + i, s + i, 8);
    // Separate arrays, not an array of structs: a struct temporary here costs a
    // store-forwarding stall per token.
    off_[count_] = used_;
    len_[count_] = n;
    hash_[count_] = h;
    used_ += n;
    return ++count_ == kBatch;
  }
  template <class F>
  void drain(F&& f) {
    const char* base = bytes_.data();
    for (size_t i = 0; i < count_; ++i) f(base + off_[i], len_[i], hash_[i]);
    count_ = 0;
    used_ = 0;
  }

 private:
  std::vector<char> bytes_ = std::vector<char>(1024);
  size_t off_[kBatch];
  size_t len_[kBatch];
  uint64_t hash_[kBatch];
  size_t count_ = 0;
  size_t used_ = 0;
};

// Calls f(word, len, hash) for a batch of words from WordSplitter::split_words, hashing
// and prefetching ahead of the lookups.
template <class Table, class F>
void for_each_word_prefetched(const char* base, const uint32_t* bounds, size_t k,
                              const Table& table, std::vector<uint64_t>& hashes, F&& f) {
  constexpr size_t kAhead = 16;
  const size_t words = k / 2;
  if (hashes.size() < words) hashes.resize(words);
  uint64_t* h = hashes.data();
  for (size_t j = 0; j < words; ++j) {
    h[j] = StringTable::hash(base + bounds[2 * j], bounds[2 * j + 1] - bounds[2 * j]);
  }
  for (size_t j = 0; j < words && j < kAhead; ++j) table.prefetch(h[j]);
  for (size_t j = 0; j < words; ++j) {
    if (j + kAhead < words) table.prefetch(h[j + kAhead]);
    f(base + bounds[2 * j], bounds[2 * j + 1] - bounds[2 * j], h[j]);
  }
}

struct Worker {
  std::vector<uint64_t> hashes;
  SplitScratch split;
  std::string scratch;
  std::vector<int32_t> ids;
  std::vector<uint64_t> keys;  // bag scratch
  NgramScratch ngram;
  PendingTokens pending;
  RowError err;
};

void record(RowError& e, std::atomic<size_t>& first_bad, RowError::Kind kind, size_t row,
            size_t offset, std::string message = {}) {
  if (e.has() && e.row <= row) return;
  e.kind = kind;
  e.row = row;
  e.offset = offset;
  e.message = std::move(message);
  size_t cur = first_bad.load();
  while (row < cur && !first_bad.compare_exchange_weak(cur, row)) {
  }
}

// The exception being handled, as the error of `row` (call inside a catch block).
void record_exception(RowError& e, std::atomic<size_t>& first_bad, size_t row) {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    record(e, first_bad, RowError::kOutOfMemory, row, 0, "out of memory");
  } catch (const std::exception& ex) {
    record(e, first_bad, RowError::kOther, row, 0, ex.what());
  } catch (...) {
    record(e, first_bad, RowError::kOther, row, 0, "unknown C++ exception");
  }
}

// Runs fn(chunk_index, worker) over ceil(n / kChunk) chunks on `threads` threads.
// Chunks after the first failed row are skipped; errors are reported by the caller.
template <class Fn>
void parallel_chunks(size_t n, int threads, std::vector<Worker>& workers,
                     std::atomic<size_t>& first_bad, Fn&& fn) {
  const size_t chunks = (n + kChunk - 1) / kChunk;
  const size_t t = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(threads), chunks));
  workers.resize(std::max<size_t>(t, 1));
  std::atomic<size_t> next{0};
  auto run = [&](size_t w) {
    for (;;) {
      const size_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks || c * kChunk > first_bad.load(std::memory_order_relaxed)) return;
      // Nothing may escape a worker thread (std::terminate): an exception becomes the
      // chunk's error, raised on the calling thread like any row error.
      try {
        fn(c, workers[w]);
      } catch (...) {
        record_exception(workers[w].err, first_bad, c * kChunk);
        return;
      }
    }
  };
  if (t == 1) {
    run(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  for (size_t w = 1; w < t; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& th : pool) th.join();
}

void pick_first_error(const std::vector<Worker>& workers, RowError* err) {
  for (const Worker& w : workers) {
    if (w.err.has() && (!err->has() || w.err.row < err->row)) *err = w.err;
  }
}

// How many contiguous row ranges parallel_ranges uses for n rows.
size_t range_count(size_t n, int threads) {
  return std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(threads), n / 256 + 1));
}

// Runs fn(j, begin, end, worker, first_bad) over range_count(n, threads) contiguous row
// ranges, one per thread (for counting, whose per-range results are merged in row order);
// returns that count. Errors land in err.
template <class Fn>
size_t parallel_ranges(size_t n, int threads, std::vector<Worker>& workers, RowError* err,
                       Fn&& fn) {
  const size_t t = range_count(n, threads);
  workers.assign(t, Worker());
  std::atomic<size_t> first_bad{SIZE_MAX};
  auto run = [&](size_t j) {
    try {
      fn(j, n * j / t, n * (j + 1) / t, workers[j], first_bad);
    } catch (...) {
      record_exception(workers[j].err, first_bad, n * j / t);
    }
  };
  std::vector<std::thread> pool;
  for (size_t j = 1; j < t; ++j) pool.emplace_back(run, j);
  run(0);
  for (auto& th : pool) th.join();
  pick_first_error(workers, err);
  return t;
}

// Calls on_token for every token of row i (or on_words for batches of them, see
// WordSplitter::split_words). Returns false (and records) on a bad row.
template <class OnToken, class OnWords>
bool split_row(const WordSplitter& splitter, const TextSource& src, size_t i, Worker& w,
               std::atomic<size_t>& first_bad, OnToken&& on_token, OnWords&& on_words) {
  try {
    const TextRow r = src.row(i);
    if (r.kind == RowKind::kNull) {
      record(w.err, first_bad, RowError::kNull, i, 0);
      return false;
    }
    const uint8_t* data;
    size_t len;
    Utf8Mode mode;
    size_t bad = 0;
    if (!row_as_utf8(r, w.scratch, &data, &len, &mode, &bad)) {
      record(w.err, first_bad, RowError::kInvalidText, i, bad);
      return false;
    }
    const SplitStatus st = splitter.split_words(data, len, mode, w.split, on_token, on_words);
    if (!st.ok) {
      record(w.err, first_bad, RowError::kInvalidText, i, st.error_offset);
      return false;
    }
    return true;
  } catch (const std::exception& e) {
    record(w.err, first_bad, RowError::kOther, i, 0, e.what());
    return false;
  }
}

// When a padded row keeps only `spec.maxlen` ids and every word yields at most one id
// with no error possible, only the words that can reach the row are looked up: the last
// ones for truncating='pre' (walking backwards), the first ones for 'post'. Words are
// hashed and prefetched a span at a time before their lookups.
void ids_within_row(const char* base, const uint32_t* bounds, size_t k, const PadSpec& spec,
                    const Vocabulary& vocab, Worker& w) {
  constexpr size_t kSpan = 64;
  const size_t words = k / 2;
  const size_t need = static_cast<size_t>(spec.maxlen);
  if (w.hashes.size() < kSpan) w.hashes.resize(kSpan);
  uint64_t* h = w.hashes.data();
  auto word = [&](size_t j) { return base + bounds[2 * j]; };
  auto len = [&](size_t j) { return static_cast<size_t>(bounds[2 * j + 1] - bounds[2 * j]); };
  auto hash_span = [&](size_t lo, size_t hi) {
    for (size_t j = lo; j < hi; ++j) {
      h[j - lo] = StringTable::hash(word(j), len(j));
      vocab.prefetch(h[j - lo]);
    }
  };
  w.ids.resize(need);
  int32_t* out = w.ids.data();
  size_t got = 0;
  if (spec.trunc_pre) {
    size_t pos = need;  // out[pos..need) is filled, from the back
    size_t hi = words;
    while (hi > 0 && pos > 0) {
      const size_t lo = hi - std::min({hi, kSpan, pos});
      hash_span(lo, hi);
      for (size_t j = hi; j-- > lo;) {
        const int32_t id = vocab.lookup(word(j), len(j), h[j - lo]);
        if (id >= 0) out[--pos] = id;
      }
      hi = lo;
    }
    got = need - pos;
    std::memmove(out, out + pos, got * sizeof(int32_t));
  } else {
    size_t lo = 0;
    while (lo < words && got < need) {
      const size_t hi = lo + std::min({words - lo, kSpan, need - got});
      hash_span(lo, hi);
      for (size_t j = lo; j < hi; ++j) {
        const int32_t id = vocab.lookup(word(j), len(j), h[j - lo]);
        if (id >= 0) out[got++] = id;
      }
      lo = hi;
    }
  }
  w.ids.resize(got);
}

// Tokenizes and looks up row i into w.ids, n-gram ids appended when `ngrams` is given.
// With `spec` (and no n-grams), ids that cannot reach the padded row may be left out.
bool ids_of_row(const WordSplitter& splitter, const Vocabulary& vocab, const NgramTable* ngrams,
                const TextSource& src, size_t i, Worker& w, std::atomic<size_t>& first_bad,
                const PadSpec* spec = nullptr) {
  w.ids.clear();
  if (vocab.start() >= 0) w.ids.push_back(vocab.start());
  const bool may_skip = spec != nullptr && ngrams == nullptr && vocab.start() < 0 &&
                        vocab.unknown() != kOovError;
  bool missing_oov = false;
  auto emit = [&](const char* s, size_t n, uint64_t h) {
    const int32_t id = vocab.lookup(s, n, h);
    if (id >= 0) {
      w.ids.push_back(id);
    } else if (id == kOovError) {
      missing_oov = true;
    }
  };
  const bool ok = split_row(
      splitter, src, i, w, first_bad,
      [&](const char* s, size_t n) {
        if (w.pending.add(s, n, vocab)) w.pending.drain(emit);
      },
      [&](const char* base, const uint32_t* bounds, size_t k, bool whole) {
        w.pending.drain(emit);
        if (may_skip && whole && k / 2 > static_cast<size_t>(spec->maxlen)) {
          ids_within_row(base, bounds, k, *spec, vocab, w);
          return;
        }
        // Branch-free emission: write every id, advance only over real ones.
        const size_t first = w.ids.size();
        w.ids.resize(first + k / 2);
        int32_t* out = w.ids.data() + first;
        size_t m = 0;
        bool missing = false;
        for_each_word_prefetched(base, bounds, k, vocab, w.hashes,
                                 [&](const char* s, size_t n, uint64_t h) {
                                   const int32_t id = vocab.lookup(s, n, h);
                                   out[m] = id;
                                   m += id >= 0;
                                   missing |= id == kOovError;
                                 });
        w.ids.resize(first + m);
        missing_oov |= missing;
      });
  w.pending.drain(emit);
  if (ok && missing_oov) {
    record(w.err, first_bad, RowError::kMissingOov, i, 0);
    return false;
  }
  if (ok && ngrams != nullptr) ngrams->apply(w.ids, w.ngram);
  return ok;
}

// Runs fn(chunk, row, worker) with w.ids holding the row's ids (n-grams applied), for every
// row, chunk by chunk on `threads` threads; stops at the first bad row (reported in err).
// spec: see ids_of_row.
template <class Fn>
void for_each_row_ids(const WordSplitter& splitter, const Vocabulary& vocab,
                      const NgramTable* ngrams, const TextSource& src, int threads,
                      const PadSpec* spec, RowError* err, Fn&& fn) {
  const size_t n = src.size();
  std::vector<Worker> workers;
  std::atomic<size_t> first_bad{SIZE_MAX};
  parallel_chunks(n, threads, workers, first_bad, [&](size_t c, Worker& w) {
    const size_t end = std::min(n, (c + 1) * kChunk);
    for (size_t i = c * kChunk; i < end; ++i) {
      if (!ids_of_row(splitter, vocab, ngrams, src, i, w, first_bad, spec)) return;
      fn(c, i, w);
    }
  });
  pick_first_error(workers, err);
}

}  // namespace

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

namespace {

// Counts rows [begin, end) into `out` (words in first-occurrence order).
bool count_range(const WordSplitter& splitter, const TextSource& src, size_t begin, size_t end,
                 Worker& w, std::atomic<size_t>& first_bad, FitCounts* out) {
  StringTable index;
  std::vector<size_t> last_doc;
  for (size_t i = begin; i < end; ++i) {
    if (i > first_bad.load(std::memory_order_relaxed)) return false;
    auto count = [&](const char* s, size_t k, uint64_t h) {
      if (out->words.size() >= static_cast<size_t>(INT32_MAX)) {
        throw std::length_error("more than 2**31 - 1 distinct words");
      }
      auto [slot, inserted] = index.insert(s, k, static_cast<int32_t>(out->words.size()), h);
      if (inserted) {
        out->words.emplace_back(s, k);
        out->counts.push_back(0);
        out->docs.push_back(0);
        last_doc.push_back(SIZE_MAX);
      }
      const size_t id = static_cast<size_t>(*slot);
      ++out->counts[id];
      if (last_doc[id] != i) {
        last_doc[id] = i;
        ++out->docs[id];
      }
    };
    const bool ok = split_row(
        splitter, src, i, w, first_bad,
        [&](const char* s, size_t k) {
          if (w.pending.add(s, k, index)) w.pending.drain(count);
        },
        [&](const char* base, const uint32_t* bounds, size_t k, bool) {
          w.pending.drain(count);
          for_each_word_prefetched(base, bounds, k, index, w.hashes, count);
        });
    w.pending.drain(count);
    if (!ok) return false;
  }
  return true;
}

}  // namespace

void fit_counts(const WordSplitter& splitter, const TextSource& src, int threads,
                FitCounts* out, RowError* err) {
  const size_t n = src.size();
  // Contiguous row ranges, one per thread; merged in row order, which keeps the global
  // first-occurrence order of words.
  std::vector<Worker> workers;
  std::vector<FitCounts> parts(range_count(n, threads));
  const size_t t = parallel_ranges(
      n, threads, workers, err,
      [&](size_t j, size_t begin, size_t end, Worker& w, std::atomic<size_t>& first_bad) {
        count_range(splitter, src, begin, end, w, first_bad, &parts[j]);
      });
  if (err->has()) return;
  *out = std::move(parts[0]);
  if (t > 1) {
    StringTable index;
    std::string key;
    for (size_t id = 0; id < out->words.size(); ++id) {
      key.assign(out->words[id]).append(kKeySlack, '\0');
      index.insert(key.data(), out->words[id].size(), static_cast<int32_t>(id));
    }
    for (size_t j = 1; j < t; ++j) {
      FitCounts& p = parts[j];
      for (size_t q = 0; q < p.words.size(); ++q) {
        key.assign(p.words[q]).append(kKeySlack, '\0');
        auto [slot, inserted] =
            index.insert(key.data(), p.words[q].size(), static_cast<int32_t>(out->words.size()));
        if (inserted) {
          out->words.push_back(std::move(p.words[q]));
          out->counts.push_back(p.counts[q]);
          out->docs.push_back(p.docs[q]);
        } else {
          out->counts[*slot] += p.counts[q];
          out->docs[*slot] += p.docs[q];
        }
      }
    }
  }
  out->documents = n;
}

void encode_ragged(const WordSplitter& splitter, const Vocabulary& vocab,
                   const NgramTable* ngrams, const TextSource& src, int threads,
                   Ragged<int32_t>* out, RowError* err) {
  const size_t n = src.size();
  std::vector<Ragged<int32_t>> parts((n + kChunk - 1) / kChunk);
  for_each_row_ids(splitter, vocab, ngrams, src, threads, nullptr, err,
                   [&](size_t c, size_t, Worker& w) {
                     Ragged<int32_t>& part = parts[c];
                     part.values.insert(part.values.end(), w.ids.begin(), w.ids.end());
                     part.offsets.push_back(static_cast<int64_t>(part.values.size()));
                   });
  if (err->has()) return;
  size_t total = 0;
  for (const auto& p : parts) total += p.values.size();
  out->values.clear();
  out->values.reserve(total);
  out->offsets.assign(1, 0);
  out->offsets.reserve(n + 1);
  for (const auto& p : parts) {
    const int64_t base = static_cast<int64_t>(out->values.size());
    out->values.insert(out->values.end(), p.values.begin(), p.values.end());
    for (size_t k = 1; k < p.offsets.size(); ++k) out->offsets.push_back(base + p.offsets[k]);
  }
}

template <class T>
void encode_padded(const WordSplitter& splitter, const Vocabulary& vocab,
                   const NgramTable* ngrams, const TextSource& src, const PadSpec& spec,
                   int threads, T* out, RowError* err) {
  const size_t width = static_cast<size_t>(spec.maxlen);
  for_each_row_ids(splitter, vocab, ngrams, src, threads, &spec, err,
                   [&](size_t, size_t i, Worker& w) {
                     write_padded_row(w.ids.data(), w.ids.size(), spec, out + i * width);
                   });
}

template <class In, class Out>
void pad_ragged(const Ragged<In>& in, const PadSpec& spec, int threads, Out* out) {
  const size_t n = in.rows();
  const size_t width = static_cast<size_t>(spec.maxlen);
  std::vector<Worker> workers;
  std::atomic<size_t> first_bad{SIZE_MAX};
  parallel_chunks(n, threads, workers, first_bad, [&](size_t c, Worker&) {
    const size_t end = std::min(n, (c + 1) * kChunk);
    for (size_t i = c * kChunk; i < end; ++i) {
      const size_t a = static_cast<size_t>(in.offsets[i]);
      const size_t b = static_cast<size_t>(in.offsets[i + 1]);
      write_padded_row(in.values.data() + a, b - a, spec, out + i * width);
    }
  });
  RowError err;
  pick_first_error(workers, &err);
  if (err.kind == RowError::kOutOfMemory) throw std::bad_alloc();
  if (err.has()) throw std::runtime_error(err.message);
}

template void encode_padded<int32_t>(const WordSplitter&, const Vocabulary&,
                                     const NgramTable*, const TextSource&, const PadSpec&, int,
                                     int32_t*, RowError*);
template void encode_padded<int64_t>(const WordSplitter&, const Vocabulary&,
                                     const NgramTable*, const TextSource&, const PadSpec&, int,
                                     int64_t*, RowError*);
template void pad_ragged<int64_t, int32_t>(const Ragged<int64_t>&, const PadSpec&, int,
                                           int32_t*);
template void pad_ragged<int64_t, int64_t>(const Ragged<int64_t>&, const PadSpec&, int,
                                           int64_t*);

namespace {

// The n-gram counts of rows [begin, end), keys in first-occurrence order.
void count_ngram_range(const WordSplitter& splitter, const Vocabulary& vocab,
                       const TextSource& src, int order, size_t begin, size_t end, Worker& w,
                       std::atomic<size_t>& first_bad, NgramCounts* out) {
  std::unordered_map<uint64_t, size_t> index;
  std::vector<size_t> last_doc;
  for (size_t i = begin; i < end; ++i) {
    if (i > first_bad.load(std::memory_order_relaxed)) return;
    if (!ids_of_row(splitter, vocab, nullptr, src, i, w, first_bad)) return;
    const size_t m = w.ids.size();
    for (int n = 2; n <= order; ++n) {
      for (size_t p = 0; p + n <= m; ++p) {
        const uint64_t key = ngram_key(w.ids.data() + p, n);
        if (key == 0) continue;
        auto [it, inserted] = index.try_emplace(key, out->keys.size());
        if (inserted) {
          out->keys.push_back(key);
          out->counts.push_back(0);
          out->docs.push_back(0);
          last_doc.push_back(SIZE_MAX);
        }
        const size_t r = it->second;
        ++out->counts[r];
        if (last_doc[r] != i) {
          last_doc[r] = i;
          ++out->docs[r];
        }
      }
    }
  }
}

// One row's bag: (id, value) for ids < spec.columns, ids ascending, from w.ids.
template <class T, class Emit>
void bag_of_row(Worker& w, const BagSpec& spec, Emit&& emit) {
  const size_t m = w.ids.size();
  w.keys.assign(w.ids.begin(), w.ids.end());  // ids are >= 0
  std::sort(w.keys.begin(), w.keys.end());
  for (size_t a = 0; a < m;) {
    size_t b = a + 1;
    while (b < m && w.keys[b] == w.keys[a]) ++b;
    const auto id = static_cast<int64_t>(w.keys[a]);
    if (id >= spec.columns) break;
    const double c = static_cast<double>(b - a);
    double v = 1.0;
    switch (spec.mode) {
      case BagMode::kBinary:
        break;
      case BagMode::kCount:
        v = c;
        break;
      case BagMode::kFreq:
        v = c / static_cast<double>(m);
        break;
      case BagMode::kTfidf:
        v = (1.0 + std::log(c)) * spec.idf[id];
        break;
    }
    emit(static_cast<int32_t>(id), static_cast<T>(v));
    a = b;
  }
}

}  // namespace

void fit_ngrams(const WordSplitter& splitter, const Vocabulary& vocab, const TextSource& src,
                int order, int threads, NgramCounts* out, RowError* err) {
  const size_t n = src.size();
  std::vector<Worker> workers;
  std::vector<NgramCounts> parts(range_count(n, threads));
  const size_t t = parallel_ranges(
      n, threads, workers, err,
      [&](size_t j, size_t begin, size_t end, Worker& w, std::atomic<size_t>& first_bad) {
        count_ngram_range(splitter, vocab, src, order, begin, end, w, first_bad, &parts[j]);
      });
  if (err->has()) return;
  // Merged in row order, which keeps the global first-occurrence order.
  *out = std::move(parts[0]);
  std::unordered_map<uint64_t, size_t> index;
  if (t > 1) {
    index.reserve(out->keys.size());
    for (size_t r = 0; r < out->keys.size(); ++r) index.emplace(out->keys[r], r);
  }
  for (size_t j = 1; j < t; ++j) {
    const NgramCounts& p = parts[j];
    for (size_t q = 0; q < p.keys.size(); ++q) {
      auto [it, inserted] = index.try_emplace(p.keys[q], out->keys.size());
      if (inserted) {
        out->keys.push_back(p.keys[q]);
        out->counts.push_back(p.counts[q]);
        out->docs.push_back(p.docs[q]);
      } else {
        out->counts[it->second] += p.counts[q];
        out->docs[it->second] += p.docs[q];
      }
    }
    parts[j] = NgramCounts();
  }
}

template <class T>
void encode_bags_dense(const WordSplitter& splitter, const Vocabulary& vocab,
                       const NgramTable* ngrams, const TextSource& src, const BagSpec& spec,
                       int threads, T* out, RowError* err) {
  const size_t width = static_cast<size_t>(spec.columns);
  for_each_row_ids(splitter, vocab, ngrams, src, threads, nullptr, err,
                   [&](size_t, size_t i, Worker& w) {
                     T* row = out + i * width;
                     bag_of_row<T>(w, spec, [&](int32_t id, T v) { row[id] = v; });
                   });
}

template <class T>
void encode_bags_sparse(const WordSplitter& splitter, const Vocabulary& vocab,
                        const NgramTable* ngrams, const TextSource& src, const BagSpec& spec,
                        int threads, SparseRows<T>* out, RowError* err) {
  const size_t n = src.size();
  std::vector<SparseRows<T>> parts((n + kChunk - 1) / kChunk);
  for_each_row_ids(splitter, vocab, ngrams, src, threads, nullptr, err,
                   [&](size_t c, size_t, Worker& w) {
                     SparseRows<T>& part = parts[c];
                     bag_of_row<T>(w, spec, [&](int32_t id, T v) {
                       part.indices.push_back(id);
                       part.values.push_back(v);
                     });
                     part.indptr.push_back(static_cast<int64_t>(part.indices.size()));
                   });
  if (err->has()) return;
  size_t total = 0;
  for (const auto& p : parts) total += p.indices.size();
  *out = SparseRows<T>();
  out->indices.reserve(total);
  out->values.reserve(total);
  out->indptr.reserve(n + 1);
  for (auto& p : parts) {
    const auto base = static_cast<int64_t>(out->indices.size());
    out->indices.insert(out->indices.end(), p.indices.begin(), p.indices.end());
    out->values.insert(out->values.end(), p.values.begin(), p.values.end());
    for (size_t k = 1; k < p.indptr.size(); ++k) out->indptr.push_back(base + p.indptr[k]);
    p = SparseRows<T>();
  }
}

template void encode_bags_dense<float>(const WordSplitter&, const Vocabulary&,
                                       const NgramTable*, const TextSource&, const BagSpec&,
                                       int, float*, RowError*);
template void encode_bags_dense<double>(const WordSplitter&, const Vocabulary&,
                                        const NgramTable*, const TextSource&, const BagSpec&,
                                        int, double*, RowError*);
template void encode_bags_sparse<float>(const WordSplitter&, const Vocabulary&,
                                        const NgramTable*, const TextSource&, const BagSpec&,
                                        int, SparseRows<float>*, RowError*);
template void encode_bags_sparse<double>(const WordSplitter&, const Vocabulary&,
                                         const NgramTable*, const TextSource&, const BagSpec&,
                                         int, SparseRows<double>*, RowError*);

}  // namespace critic
