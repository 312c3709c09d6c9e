// Counting (fit), id lookup and padding over many texts, multi-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ngrams.hpp"
#include "string_table.hpp"
#include "text_source.hpp"
#include "word_splitter.hpp"

namespace critic {

constexpr int32_t kDrop = -1;      // the token yields no id
constexpr int32_t kOovError = -2;  // an unknown token, but the OOV token has no index

struct RowError {
  enum Kind : uint8_t { kNone, kNull, kInvalidText, kMissingOov, kOutOfMemory, kOther };
  Kind kind = kNone;
  size_t row = SIZE_MAX;
  size_t offset = 0;  // byte (or code unit) offset inside the row, for kInvalidText
  std::string message;
  bool has() const { return kind != kNone; }
};

// Maps tokens to output ids with Keras' num_words / oov_token rules already applied.
class Vocabulary {
 public:
  explicit Vocabulary(int32_t unknown_value) : unknown_(unknown_value) {}
  // value: the id to emit, or kDrop / kOovError. A later add of the same word is ignored.
  void add(const std::string& word, int32_t value) {
    if (value == unknown_) return;
    std::string padded = word;
    padded.append(kKeySlack, '\0');
    table_.insert(padded.data(), word.size(), value);
  }
  // word must be followed by kKeySlack readable bytes; h = StringTable::hash(word, n).
  int32_t lookup(const char* word, size_t n, uint64_t h) const {
    const int32_t* v = table_.find(word, n, h);
    return v ? *v : unknown_;
  }
  void prefetch(uint64_t h) const { table_.prefetch(h); }
  // An id emitted before the first token of every text (Keras IMDB's start_char), or -1.
  void set_start(int32_t id) { start_ = id; }
  int32_t start() const { return start_; }
  int32_t unknown() const { return unknown_; }
  size_t size() const { return table_.size(); }

 private:
  StringTable table_;
  int32_t unknown_;
  int32_t start_ = -1;
};

struct FitCounts {
  std::vector<std::string> words;  // in order of first occurrence
  std::vector<int64_t> counts;     // occurrences
  std::vector<int64_t> docs;       // texts containing the word
  size_t documents = 0;
};

// Counts tokens like Tokenizer.fit_on_texts. On error, err names the first bad row.
void fit_counts(const WordSplitter& splitter, const TextSource& src, int threads,
                FitCounts* out, RowError* err);

// Variable-length id sequences: row i is values[offsets[i] : offsets[i + 1]].
template <class T>
struct Ragged {
  std::vector<T> values;
  std::vector<int64_t> offsets{0};
  size_t rows() const { return offsets.size() - 1; }
};

// ngrams (may be null): n-gram ids appended to each row, see NgramTable::apply.
void encode_ragged(const WordSplitter& splitter, const Vocabulary& vocab,
                   const NgramTable* ngrams, const TextSource& src, int threads,
                   Ragged<int32_t>* out, RowError* err);

struct PadSpec {
  int64_t maxlen = 0;
  bool pad_pre = true;
  bool trunc_pre = true;
  int64_t value = 0;
};

// Tokenizes, looks up and pads every row straight into out[n * maxlen].
template <class T>
void encode_padded(const WordSplitter& splitter, const Vocabulary& vocab,
                   const NgramTable* ngrams, const TextSource& src, const PadSpec& spec,
                   int threads, T* out, RowError* err);

struct NgramCounts {
  std::vector<uint64_t> keys;  // in order of first occurrence
  std::vector<int64_t> counts;
  std::vector<int64_t> docs;
};

// Counts the n-grams (orders 2..order) of every row's word ids, for fitting an NgramTable.
void fit_ngrams(const WordSplitter& splitter, const Vocabulary& vocab, const TextSource& src,
                int order, int threads, NgramCounts* out, RowError* err);

// Keras' sequences_to_matrix modes.
enum class BagMode : uint8_t { kBinary, kCount, kFreq, kTfidf };

struct BagSpec {
  BagMode mode = BagMode::kBinary;
  int64_t columns = 0;                 // ids >= columns are left out, as in Keras
  const double* idf = nullptr;         // [columns], for kTfidf
};

// texts_to_matrix: each row's ids counted into a dense row-major out[n * columns] that the
// caller has zero-filled.
template <class T>
void encode_bags_dense(const WordSplitter& splitter, const Vocabulary& vocab,
                       const NgramTable* ngrams, const TextSource& src, const BagSpec& spec,
                       int threads, T* out, RowError* err);

// The same rows as CSR: row i is indices/values[indptr[i] : indptr[i + 1]], ids ascending.
template <class T>
struct SparseRows {
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  std::vector<T> values;
};

template <class T>
void encode_bags_sparse(const WordSplitter& splitter, const Vocabulary& vocab,
                        const NgramTable* ngrams, const TextSource& src, const BagSpec& spec,
                        int threads, SparseRows<T>* out, RowError* err);

// Keras pad_sequences on ragged input, into out[rows * maxlen].
template <class In, class Out>
void pad_ragged(const Ragged<In>& in, const PadSpec& spec, int threads, Out* out);

// Writes one sequence into a padded row of width spec.maxlen, as Keras does.
template <class In, class Out>
inline void write_padded_row(const In* seq, size_t len, const PadSpec& spec, Out* row) {
  const size_t width = static_cast<size_t>(spec.maxlen);
  const size_t keep = len < width ? len : width;
  const In* src = spec.trunc_pre ? seq + (len - keep) : seq;
  const size_t pad = width - keep;
  Out* dst = spec.pad_pre ? row + pad : row;
  Out* fill = spec.pad_pre ? row : row + keep;
  for (size_t i = 0; i < pad; ++i) fill[i] = static_cast<Out>(spec.value);
  for (size_t i = 0; i < keep; ++i) dst[i] = static_cast<Out>(src[i]);
}

int default_threads();

}  // namespace critic
