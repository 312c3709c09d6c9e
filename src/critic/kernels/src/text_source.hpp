// Rows of text as the kernel reads them: pointers into memory owned by the caller
// (Python str objects, numpy buffers, Arrow buffers). Nothing here copies the corpus.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "utf8.hpp"

namespace critic {

enum class RowKind : uint8_t {
  kUtf8,    // len bytes of UTF-8, decoded with the row's mode
  kLatin1,  // len bytes, one code point each (CPython 1-byte kind)
  kUcs2,    // len uint16 units (CPython 2-byte kind; may hold lone surrogates)
  kUcs4,    // len uint32 units (CPython 4-byte kind, numpy str_)
  kNull,    // a missing value
};

struct TextRow {
  const void* data = nullptr;
  size_t len = 0;
  RowKind kind = RowKind::kUtf8;
  Utf8Mode mode = Utf8Mode::kStrict;
};

// A random-access collection of rows.
class TextSource {
 public:
  virtual ~TextSource() = default;
  virtual size_t size() const = 0;
  virtual TextRow row(size_t i) const = 0;
};

class RowVectorSource final : public TextSource {
 public:
  explicit RowVectorSource(std::vector<TextRow> rows) : rows_(std::move(rows)) {}
  size_t size() const override { return rows_.size(); }
  TextRow row(size_t i) const override { return rows_[i]; }

 private:
  std::vector<TextRow> rows_;
};

// An Arrow (Large)StringArray read in place. Offsets are validated per row.
template <class Offset>
class ArrowStringSource final : public TextSource {
 public:
  ArrowStringSource(const Offset* offsets, size_t offsets_len, const uint8_t* data,
                    size_t data_len, const uint8_t* validity, size_t validity_len,
                    size_t array_offset, size_t length, Utf8Mode mode)
      : offsets_(offsets),
        data_(data),
        data_len_(data_len),
        validity_(validity),
        array_offset_(array_offset),
        length_(length),
        mode_(mode) {
    if (array_offset > SIZE_MAX / 2 || length > SIZE_MAX / 2 ||
        offsets_len < array_offset + length + 1) {
      throw std::invalid_argument("Arrow offsets buffer is shorter than the array");
    }
    if (validity != nullptr && validity_len * 8 < array_offset + length) {
      throw std::invalid_argument("Arrow validity bitmap is shorter than the array");
    }
  }
  size_t size() const override { return length_; }
  TextRow row(size_t i) const override {
    const size_t j = array_offset_ + i;
    if (validity_ != nullptr && !((validity_[j >> 3] >> (j & 7)) & 1)) {
      return {nullptr, 0, RowKind::kNull, mode_};
    }
    const Offset a = offsets_[j];
    const Offset b = offsets_[j + 1];
    if (a < 0 || b < a || static_cast<size_t>(b) > data_len_) {
      throw std::out_of_range("Arrow offsets out of bounds at row " + std::to_string(i));
    }
    return {data_ + a, static_cast<size_t>(b - a), RowKind::kUtf8, mode_};
  }

 private:
  const Offset* offsets_;
  const uint8_t* data_;
  size_t data_len_;
  const uint8_t* validity_;
  size_t array_offset_;
  size_t length_;
  Utf8Mode mode_;
};

// Several sources back to back (an Arrow ChunkedArray).
class ConcatSource final : public TextSource {
 public:
  void add(std::unique_ptr<TextSource> s) {
    starts_.push_back(total_);
    total_ += s->size();
    parts_.push_back(std::move(s));
  }
  size_t size() const override { return total_; }
  TextRow row(size_t i) const override {
    size_t k = parts_.size() - 1;
    // Few chunks in practice: a short scan beats a search.
    while (starts_[k] > i) --k;
    return parts_[k]->row(i - starts_[k]);
  }

 private:
  std::vector<std::unique_ptr<TextSource>> parts_;
  std::vector<size_t> starts_;
  size_t total_ = 0;
};

// Converts n fixed-width code units to UTF-8 in `out` (resized to fit). Units above
// U+10FFFF become U+FFFD unless strict, where the function returns false with *bad set.
template <class Unit>
bool units_to_utf8(const Unit* p, size_t n, bool strict, std::string& out, size_t* bad) {
  out.resize(n * 4);
  char* dst = &out[0];
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    char32_t cp = p[i];
    if (cp < 0x80) {
      dst[k++] = static_cast<char>(cp);
      continue;
    }
    if (cp > 0x10FFFF) {
      if (strict) {
        *bad = i;
        return false;
      }
      cp = kReplacementChar;
    }
    k += encode_utf8(cp, dst + k);
  }
  out.resize(k);
  return true;
}

// Gives a UTF-8 view of a row, converting fixed-width rows into `scratch`.
// Returns false when a UCS-4 unit is not a code point and mode is strict; *bad is then
// the unit's index.
inline bool row_as_utf8(const TextRow& r, std::string& scratch, const uint8_t** out,
                        size_t* out_len, Utf8Mode* mode, size_t* bad) {
  const bool strict = r.mode == Utf8Mode::kStrict;
  bool ok = true;
  switch (r.kind) {
    case RowKind::kUtf8:
      *out = static_cast<const uint8_t*>(r.data);
      *out_len = r.len;
      *mode = r.mode;
      return true;
    case RowKind::kLatin1:
      ok = units_to_utf8(static_cast<const uint8_t*>(r.data), r.len, strict, scratch, bad);
      break;
    case RowKind::kUcs2:
      ok = units_to_utf8(static_cast<const uint16_t*>(r.data), r.len, strict, scratch, bad);
      break;
    case RowKind::kUcs4:
      ok = units_to_utf8(static_cast<const uint32_t*>(r.data), r.len, strict, scratch, bad);
      break;
    case RowKind::kNull:
      *out = nullptr;
      *out_len = 0;
      return true;
  }
  if (!ok) return false;
  *out = reinterpret_cast<const uint8_t*>(scratch.data());
  *out_len = scratch.size();
  *mode = Utf8Mode::kSurrogates;
  return true;
}

}  // namespace critic
