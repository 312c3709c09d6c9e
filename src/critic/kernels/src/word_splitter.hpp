// Keras' legacy text_to_word_sequence (and the char_level path of its Tokenizer), on UTF-8.
//
// Keras does:  text.lower() -> translate(every filter char -> split) -> split(split) ->
// drop empty strings.  WordSplitter yields the same tokens, as UTF-8 byte strings, in one
// pass over the input. It is immutable after construction and safe to share across threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRITIC_X86_SIMD 1
#include <immintrin.h>
#else
#define CRITIC_X86_SIMD 0
#endif

#include "string_table.hpp"
#include "unicode_case.hpp"
#include "utf8.hpp"

namespace critic {

struct SplitConfig {
  bool lower = true;
  bool char_level = false;
  std::u32string filters;  // code points replaced by `split`
  std::string split = " ";  // UTF-8 separator; must be non-empty unless char_level
  // keras.layers.TextVectorization's default "lower_and_strip_punctuation" + "whitespace"
  // instead: ASCII-only lower-casing, ASCII punctuation deleted (not replaced), split on
  // runs of ASCII whitespace. The fields above are then ignored.
  bool text_vectorization = false;
};

// A growable byte buffer for the token being built (no per-byte NUL writes). It always
// keeps kKeySlack readable bytes after the token, as StringTable lookups require.
class TokenBuf {
 public:
  TokenBuf() : buf_(64) {}
  void push(char c) {
    if (len_ + kKeySlack >= buf_.size()) buf_.resize(buf_.size() * 2);
    buf_[len_++] = c;
  }
  void push_cp(char32_t cp) {
    if (len_ + kKeySlack + 4 >= buf_.size()) buf_.resize(buf_.size() * 2);
    len_ += encode_utf8(cp, buf_.data() + len_);
  }
  const char* data() const { return buf_.data(); }
  size_t size() const { return len_; }
  void clear() { len_ = 0; }

  // Raw access for tight loops: bytes [0, raw_capacity()) may be written; kKeySlack bytes
  // beyond stay readable.
  char* raw() { return buf_.data(); }
  size_t raw_capacity() const { return buf_.size() - kKeySlack - 1; }
  void set_size(size_t n) { len_ = n; }
  void reserve_more() { buf_.resize(buf_.size() * 2); }

 private:
  std::vector<char> buf_;
  size_t len_ = 0;
};

// Per-thread working memory of a WordSplitter.
struct SplitScratch {
  TokenBuf tok;
  std::vector<uint8_t> lowered;   // ASCII path: the mapped bytes of one block
  std::vector<uint32_t> bounds;   // ASCII path: word start/end offsets in `lowered`
};

// Result of splitting one text.
struct SplitStatus {
  bool ok = true;
  size_t error_offset = 0;  // byte offset of the first ill-formed sequence (strict mode)
};

class WordSplitter {
 public:
  explicit WordSplitter(SplitConfig cfg) : cfg_(std::move(cfg)) {
    std::u32string split_cps;
    {
      const auto* p = reinterpret_cast<const uint8_t*>(cfg_.split.data());
      const auto* e = p + cfg_.split.size();
      while (p < e) split_cps.push_back(decode_one(p, e, Utf8Mode::kSurrogates));
    }
    fast_ = !cfg_.char_level && split_cps.size() == 1;
    std::u32string seps = cfg_.filters;
    if (fast_) seps.push_back(split_cps[0]);
    for (char32_t c : seps) {
      if (c < 0x80) {
        is_sep_ascii_[c] = true;
      } else {
        seps_non_ascii_.push_back(c);
      }
    }
    std::sort(seps_non_ascii_.begin(), seps_non_ascii_.end());
    for (char32_t c : cfg_.filters) {
      if (c < 0x80) {
        is_filter_ascii_[c] = true;
      } else {
        filters_non_ascii_.push_back(c);
      }
    }
    std::sort(filters_non_ascii_.begin(), filters_non_ascii_.end());
    for (int b = 0; b < 0x80; ++b) {
      const int low = (cfg_.lower && b >= 'A' && b <= 'Z') ? b + 32 : b;
      ascii_map_[b] = static_cast<uint16_t>(is_sep_ascii_[low] ? kSepFlag : low);
      ascii_ignorable_[b] = is_case_ignorable(static_cast<char32_t>(b));
      ascii_cased_[b] = is_cased(static_cast<char32_t>(b));
      if (is_sep_ascii_[b]) nib_lo_[b & 0x0F] = static_cast<uint8_t>(nib_lo_[b & 0x0F] | (1u << (b >> 4)));
    }
    for (int h = 0; h < 8; ++h) nib_hi_[h] = static_cast<uint8_t>(1u << h);
#if CRITIC_X86_SIMD
    has_ssse3_ = __builtin_cpu_supports("ssse3");
#endif
  }

  const SplitConfig& config() const { return cfg_; }

  // Calls on_token(const char* data, size_t len) for every token of text[0:n].
  // Tokens passed to on_token are followed by kKeySlack readable bytes.
  template <class OnToken>
  SplitStatus split(const uint8_t* text, size_t n, Utf8Mode mode, SplitScratch& scratch,
                    OnToken&& on_token) const {
    return split_words(text, n, mode, scratch, on_token,
                       [&](const char* base, const uint32_t* bounds, size_t k, bool) {
                         for (size_t j = 0; j + 1 < k; j += 2) {
                           on_token(base + bounds[j], bounds[j + 1] - bounds[j]);
                         }
                       });
  }

  // Like split(), but runs of plain ASCII words may instead come in batches:
  // on_words(base, bounds, k, whole) for the words base[bounds[2j] : bounds[2j + 1]],
  // j < k / 2, so a caller can hash and prefetch a whole batch before looking any word up;
  // `whole` says the batch holds every token of the text.
  template <class OnToken, class OnWords>
  SplitStatus split_words(const uint8_t* text, size_t n, Utf8Mode mode, SplitScratch& scratch,
                          OnToken&& on_token, OnWords&& on_words) const {
    TokenBuf& tok = scratch.tok;
    if (cfg_.text_vectorization) return split_text_vectorization(text, n, mode, tok, on_token);
    if (fast_) {
      if (n < UINT32_MAX && is_ascii(text, n)) {
        split_ascii(text, n, scratch, on_words);
        return {};
      }
      return split_fast(text, n, mode, tok, on_token);
    }
    if (cfg_.char_level) {
      return for_each_lowered(text, n, mode, [&](char32_t cp) {
        tok.clear();
        tok.push_cp(cp);
        on_token(tok.data(), tok.size());
      });
    }
    return split_general(text, n, mode, tok, on_token);
  }

 private:
  static constexpr uint16_t kSepFlag = 0x100;

  bool is_sep(char32_t cp) const {
    if (cp < 0x80) return is_sep_ascii_[cp];
    return std::binary_search(seps_non_ascii_.begin(), seps_non_ascii_.end(), cp);
  }
  bool is_filter(char32_t cp) const {
    if (cp < 0x80) return is_filter_ascii_[cp];
    return std::binary_search(filters_non_ascii_.begin(), filters_non_ascii_.end(), cp);
  }

  // Tracks, for the Final_Sigma rule, whether the last character that is not
  // case-ignorable before a position is cased. Bytes after `seg_start` are all ASCII.
  struct SigmaContext {
    const uint8_t* seg_start;
    bool seg_prev_cased = false;
  };

  bool prev_cased(const SigmaContext& ctx, const uint8_t* q) const {
    while (q > ctx.seg_start) {
      const uint8_t b = *--q;
      if (!ascii_ignorable_[b]) return ascii_cased_[b];
    }
    return ctx.seg_prev_cased;
  }

  void after_non_ascii(SigmaContext& ctx, char32_t cp, const uint8_t* start,
                       const uint8_t* end) const {
    ctx.seg_prev_cased = is_case_ignorable(cp) ? prev_cased(ctx, start) : is_cased(cp);
    ctx.seg_start = end;
  }

  // CPython's handle_capital_sigma: final iff a cased letter precedes (skipping
  // case-ignorables) and none follows (skipping case-ignorables).
  bool sigma_is_final(const SigmaContext& ctx, const uint8_t* start, const uint8_t* after,
                      const uint8_t* end, Utf8Mode mode) const {
    if (!prev_cased(ctx, start)) return false;
    const uint8_t* q = after;
    while (q < end) {
      const char32_t c = decode_one(q, end, mode);
      if (c == kInvalid) return true;  // the caller reports the error when it gets there
      if (!is_case_ignorable(c)) return !is_cased(c);
    }
    return true;
  }

  // Lower-cases (if configured) one non-ASCII code point cp spanning [start, after).
  int lower_non_ascii(SigmaContext& ctx, char32_t cp, const uint8_t* start, const uint8_t* after,
                      const uint8_t* end, Utf8Mode mode, char32_t out[3]) const {
    if (!cfg_.lower) {
      out[0] = cp;
      return 1;
    }
    int k;
    if (cp == kCapitalSigma) {
      out[0] = sigma_is_final(ctx, start, after, end, mode) ? kFinalSigma : kSmallSigma;
      k = 1;
    } else {
      k = lower_full(cp, out);
    }
    after_non_ascii(ctx, cp, start, after);
    return k;
  }

  static bool is_ascii(const uint8_t* p, size_t n) {
    size_t i = 0;
    uint64_t acc = 0;
    for (; i + 8 <= n; i += 8) acc |= load_u64(reinterpret_cast<const char*>(p + i));
    for (; i < n; ++i) acc |= p[i];
    return (acc & 0x8080808080808080ULL) == 0;
  }

  // ASCII text, single-character separator: a branch-free pass maps every byte and
  // records where words start and end, then words are handed out from the mapped bytes.
  // Text is processed in blocks that end on a separator, so memory stays bounded.
  template <class OnWords>
  void split_ascii(const uint8_t* text, size_t n, SplitScratch& scratch, OnWords& on_words) const {
    constexpr size_t kBlock = 1 << 16;
    const uint16_t* const map = ascii_map_;
    size_t start = 0;
    while (start < n) {
      size_t stop = n - start > kBlock ? start + kBlock : n;
      while (stop < n && !(map[text[stop]] & kSepFlag)) ++stop;  // end the block on a separator
      const size_t len = stop - start;
      if (scratch.lowered.size() < len + kKeySlack) scratch.lowered.resize(len + kKeySlack);
      if (scratch.bounds.size() < len + 18) scratch.bounds.resize(len + 18);
      uint8_t* low = scratch.lowered.data();
      uint32_t* bounds = scratch.bounds.data();
      const uint8_t* src = text + start;
      uint32_t prev = 1;  // "after a separator"
#if CRITIC_X86_SIMD
      size_t k = has_ssse3_ ? scan_ascii_ssse3(src, len, low, bounds, &prev)
                            : scan_ascii_scalar(src, len, 0, 0, low, bounds, &prev);
#else
      size_t k = scan_ascii_scalar(src, len, 0, 0, low, bounds, &prev);
#endif
      if (!prev) bounds[k++] = static_cast<uint32_t>(len);
      on_words(reinterpret_cast<const char*>(low), static_cast<const uint32_t*>(bounds), k,
               start == 0 && stop == n);
      start = stop;
    }
  }

  // Maps src[from:len] into low[] and appends word boundaries (offsets where the
  // separator/word state flips) to bounds[k:]; returns the new k.
  size_t scan_ascii_scalar(const uint8_t* src, size_t len, size_t from, size_t k, uint8_t* low,
                           uint32_t* bounds, uint32_t* prev_sep) const {
    const uint16_t* const map = ascii_map_;
    uint32_t prev = *prev_sep;
    for (size_t i = from; i < len; ++i) {
      const uint16_t m = map[src[i]];
      const uint32_t sep = m >> 8;
      low[i] = static_cast<uint8_t>(m);
      bounds[k] = static_cast<uint32_t>(i);
      k += sep ^ prev;
      prev = sep;
    }
    *prev_sep = prev;
    return k;
  }

#if CRITIC_X86_SIMD
  // The same, 16 bytes at a time: ASCII upper -> lower with compares, separator test with
  // the two-nibble pshufb set lookup, boundaries from the movemask's bit flips.
  __attribute__((target("ssse3"))) size_t scan_ascii_ssse3(const uint8_t* src, size_t len,
                                                          uint8_t* low, uint32_t* bounds,
                                                          uint32_t* prev_sep) const {
    const __m128i lut_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(nib_lo_));
    const __m128i lut_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(nib_hi_));
    const __m128i below_a = _mm_set1_epi8('A' - 1);
    const __m128i above_z = _mm_set1_epi8('Z' + 1);
    const __m128i case_bit = _mm_set1_epi8(cfg_.lower ? 0x20 : 0);
    const __m128i nibble = _mm_set1_epi8(0x0F);
    const __m128i zero = _mm_setzero_si128();
    uint32_t prev = *prev_sep;
    size_t k = 0;
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      const __m128i upper = _mm_and_si128(_mm_cmpgt_epi8(v, below_a), _mm_cmplt_epi8(v, above_z));
      v = _mm_add_epi8(v, _mm_and_si128(upper, case_bit));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(low + i), v);
      const __m128i lo = _mm_and_si128(v, nibble);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), nibble);
      const __m128i hit = _mm_and_si128(_mm_shuffle_epi8(lut_lo, lo), _mm_shuffle_epi8(lut_hi, hi));
      const uint32_t sep = ~static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(hit, zero))) &
                           0xFFFFu;
      uint32_t flips = (sep ^ ((sep << 1) | prev)) & 0xFFFFu;
      prev = sep >> 15;
      while (flips) {
        bounds[k++] = static_cast<uint32_t>(i) + static_cast<uint32_t>(__builtin_ctz(flips));
        flips &= flips - 1;
      }
    }
    *prev_sep = prev;
    return scan_ascii_scalar(src, len, i, k, low, bounds, prev_sep);
  }
#endif

  // TensorFlow's tf.strings.lower (ASCII only), regex_replace of ASCII punctuation with
  // "", then tf.strings.split (ASCII whitespace runs).
  template <class OnToken>
  SplitStatus split_text_vectorization(const uint8_t* text, size_t n, Utf8Mode mode,
                                       TokenBuf& tok, OnToken& on_token) const {
    const uint8_t* p = text;
    const uint8_t* const end = text + n;
    tok.clear();
    while (p < end) {
      const uint8_t b = *p;
      if (b < 0x80) {
        ++p;
        if (b == ' ' || (b >= '\t' && b <= '\r')) {
          if (tok.size()) {
            on_token(tok.data(), tok.size());
            tok.clear();
          }
        } else if (!is_ascii_punct(b)) {
          tok.push(static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
        }
        continue;
      }
      const uint8_t* start = p;
      const char32_t cp = decode_one(p, end, mode);
      if (cp == kInvalid) return {false, static_cast<size_t>(start - text)};
      tok.push_cp(cp);
    }
    if (tok.size()) on_token(tok.data(), tok.size());
    tok.clear();
    return {};
  }

  static bool is_ascii_punct(uint8_t b) {
    return (b >= '!' && b <= '/') || (b >= ':' && b <= '@') || (b >= '[' && b <= '`') ||
           (b >= '{' && b <= '~');
  }

  template <class OnToken>
  SplitStatus split_fast(const uint8_t* text, size_t n, Utf8Mode mode, TokenBuf& tok,
                         OnToken& on_token) const {
    const uint8_t* p = text;
    const uint8_t* const end = text + n;
    SigmaContext ctx{text};
    // The ASCII loop keeps the token buffer in locals: stores through char* may alias
    // anything, so going through TokenBuf would reload its fields on every byte.
    const uint16_t* const map = ascii_map_;
    tok.clear();
    char* buf = tok.raw();
    size_t cap = tok.raw_capacity();
    size_t len = 0;
    while (p < end) {
      const uint8_t b = *p;
      if (b < 0x80) {
        const uint16_t m = map[b];
        ++p;
        if (!(m & kSepFlag)) {
          if (len >= cap) {  // >=: the non-ASCII path may leave len past cap
            tok.set_size(len);
            tok.reserve_more();
            buf = tok.raw();
            cap = tok.raw_capacity();
          }
          buf[len++] = static_cast<char>(m);
        } else if (len) {
          on_token(static_cast<const char*>(buf), len);
          len = 0;
        }
        continue;
      }
      tok.set_size(len);
      const uint8_t* start = p;
      const char32_t cp = decode_one(p, end, mode);
      if (cp == kInvalid) return {false, static_cast<size_t>(start - text)};
      char32_t out[3];
      const int k = lower_non_ascii(ctx, cp, start, p, end, mode, out);
      for (int i = 0; i < k; ++i) {
        if (is_sep(out[i])) {
          if (tok.size()) {
            on_token(tok.data(), tok.size());
            tok.clear();
          }
        } else {
          tok.push_cp(out[i]);
        }
      }
      buf = tok.raw();
      cap = tok.raw_capacity();
      len = tok.size();
    }
    if (len) on_token(static_cast<const char*>(buf), len);
    tok.clear();
    return {};
  }

  // Calls f(cp) for every code point of text.lower() (or text, when lower is off).
  template <class F>
  SplitStatus for_each_lowered(const uint8_t* text, size_t n, Utf8Mode mode, F&& f) const {
    const uint8_t* p = text;
    const uint8_t* const end = text + n;
    SigmaContext ctx{text};
    while (p < end) {
      const uint8_t b = *p;
      if (b < 0x80) {
        f(static_cast<char32_t>((cfg_.lower && b >= 'A' && b <= 'Z') ? b + 32 : b));
        ++p;
        continue;
      }
      const uint8_t* start = p;
      const char32_t cp = decode_one(p, end, mode);
      if (cp == kInvalid) return {false, static_cast<size_t>(start - text)};
      char32_t out[3];
      const int k = lower_non_ascii(ctx, cp, start, p, end, mode, out);
      for (int i = 0; i < k; ++i) f(out[i]);
    }
    return {};
  }

  // Any separator string: build the translated text, then split on the separator.
  template <class OnToken>
  SplitStatus split_general(const uint8_t* text, size_t n, Utf8Mode mode, TokenBuf& tok,
                            OnToken& on_token) const {
    std::string translated;
    translated.reserve(n);
    const SplitStatus st = for_each_lowered(text, n, mode, [&](char32_t cp) {
      if (is_filter(cp)) {
        translated += cfg_.split;
      } else {
        append_utf8(translated, cp);
      }
    });
    if (!st.ok) return st;
    const std::string_view all(translated);
    const std::string_view sep(cfg_.split);
    size_t pos = 0;
    while (pos <= all.size()) {
      size_t hit = all.find(sep, pos);
      if (hit == std::string_view::npos) hit = all.size();
      if (hit > pos) {
        tok.clear();
        for (size_t i = pos; i < hit; ++i) tok.push(all[i]);
        on_token(tok.data(), tok.size());
      }
      pos = hit + sep.size();
    }
    return {};
  }

  SplitConfig cfg_;
  bool fast_ = false;
  bool is_sep_ascii_[0x80] = {};
  bool is_filter_ascii_[0x80] = {};
  bool ascii_ignorable_[0x80] = {};
  bool ascii_cased_[0x80] = {};
  uint16_t ascii_map_[0x80] = {};
  uint8_t nib_lo_[16] = {};  // separator set by low nibble: bit h set if (h << 4 | lo) is one
  uint8_t nib_hi_[16] = {};  // 1 << h for each high nibble h of an ASCII byte
  bool has_ssse3_ = false;
  std::vector<char32_t> seps_non_ascii_;
  std::vector<char32_t> filters_non_ascii_;
};

}  // namespace critic
