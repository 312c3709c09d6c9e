#include "tokenize.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

namespace critic {
namespace {

constexpr size_t kChunk = 128;  // rows handed to a worker at a time

struct Worker {
  TokenBuf tok;
  std::string scratch;
  std::vector<int32_t> ids;
  RowError err;
};

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
      fn(c, workers[w]);
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

void pick_first_error(const std::vector<Worker>& workers, RowError* err) {
  for (const Worker& w : workers) {
    if (w.err.has() && (!err->has() || w.err.row < err->row)) *err = w.err;
  }
}

// Calls on_token for every token of row i. Returns false (and records) on a bad row.
template <class OnToken>
bool split_row(const WordSplitter& splitter, const TextSource& src, size_t i, Worker& w,
               std::atomic<size_t>& first_bad, OnToken&& on_token) {
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
    const SplitStatus st = splitter.split(data, len, mode, w.tok, on_token);
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

// Tokenizes and looks up row i into w.ids.
bool ids_of_row(const WordSplitter& splitter, const Vocabulary& vocab, const TextSource& src,
                size_t i, Worker& w, std::atomic<size_t>& first_bad) {
  w.ids.clear();
  bool missing_oov = false;
  const bool ok = split_row(splitter, src, i, w, first_bad, [&](const char* s, size_t n) {
    const int32_t id = vocab.lookup(s, n);
    if (id >= 0) {
      w.ids.push_back(id);
    } else if (id == kOovError) {
      missing_oov = true;
    }
  });
  if (ok && missing_oov) {
    record(w.err, first_bad, RowError::kMissingOov, i, 0);
    return false;
  }
  return ok;
}

}  // namespace

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void fit_counts(const WordSplitter& splitter, const TextSource& src, int /*threads*/,
                FitCounts* out, RowError* err) {
  std::vector<Worker> workers(1);
  std::atomic<size_t> first_bad{SIZE_MAX};
  StringTable index;
  std::vector<size_t> last_doc;
  const size_t n = src.size();
  for (size_t i = 0; i < n; ++i) {
    const bool ok = split_row(splitter, src, i, workers[0], first_bad, [&](const char* s, size_t k) {
      auto [slot, inserted] = index.insert(s, k, static_cast<int32_t>(out->words.size()));
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
    });
    if (!ok) {
      *err = workers[0].err;
      return;
    }
  }
  out->documents = n;
}

void encode_ragged(const WordSplitter& splitter, const Vocabulary& vocab, const TextSource& src,
                   int threads, Ragged<int32_t>* out, RowError* err) {
  const size_t n = src.size();
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Ragged<int32_t>> parts(chunks);
  std::vector<Worker> workers;
  std::atomic<size_t> first_bad{SIZE_MAX};
  parallel_chunks(n, threads, workers, first_bad, [&](size_t c, Worker& w) {
    Ragged<int32_t>& part = parts[c];
    const size_t end = std::min(n, (c + 1) * kChunk);
    for (size_t i = c * kChunk; i < end; ++i) {
      if (!ids_of_row(splitter, vocab, src, i, w, first_bad)) return;
      part.values.insert(part.values.end(), w.ids.begin(), w.ids.end());
      part.offsets.push_back(static_cast<int64_t>(part.values.size()));
    }
  });
  pick_first_error(workers, err);
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
void encode_padded(const WordSplitter& splitter, const Vocabulary& vocab, const TextSource& src,
                   const PadSpec& spec, int threads, T* out, RowError* err) {
  const size_t n = src.size();
  const size_t width = static_cast<size_t>(spec.maxlen);
  std::vector<Worker> workers;
  std::atomic<size_t> first_bad{SIZE_MAX};
  parallel_chunks(n, threads, workers, first_bad, [&](size_t c, Worker& w) {
    const size_t end = std::min(n, (c + 1) * kChunk);
    for (size_t i = c * kChunk; i < end; ++i) {
      if (!ids_of_row(splitter, vocab, src, i, w, first_bad)) return;
      write_padded_row(w.ids.data(), w.ids.size(), spec, out + i * width);
    }
  });
  pick_first_error(workers, err);
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
}

template void encode_padded<int32_t>(const WordSplitter&, const Vocabulary&, const TextSource&,
                                     const PadSpec&, int, int32_t*, RowError*);
template void encode_padded<int64_t>(const WordSplitter&, const Vocabulary&, const TextSource&,
                                     const PadSpec&, int, int64_t*, RowError*);
template void pad_ragged<int64_t, int32_t>(const Ragged<int64_t>&, const PadSpec&, int,
                                           int32_t*);
template void pad_ragged<int64_t, int64_t>(const Ragged<int64_t>&, const PadSpec&, int,
                                           int64_t*);

}  // namespace critic
