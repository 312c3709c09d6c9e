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

#include "unicode_case.hpp"
#include "utf8.hpp"

namespace critic {

struct SplitConfig {
  bool lower = true;
  bool char_level = false;
  std::u32string filters;  // code points replaced by `split`
  std::string split = " ";  // UTF-8 separator; must be non-empty unless char_level
};

// A growable byte buffer for the token being built (no per-byte NUL writes).
class TokenBuf {
 public:
  TokenBuf() : buf_(64) {}
  void push(char c) {
    if (len_ == buf_.size()) buf_.resize(buf_.size() * 2);
    buf_[len_++] = c;
  }
  void push_cp(char32_t cp) {
    if (cp < 0x80) {
      push(static_cast<char>(cp));
      return;
    }
    tmp_.clear();
    append_utf8(tmp_, cp);
    for (char c : tmp_) push(c);
  }
  const char* data() const { return buf_.data(); }
  size_t size() const { return len_; }
  void clear() { len_ = 0; }

 private:
  std::vector<char> buf_;
  size_t len_ = 0;
  std::string tmp_;
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
    }
  }

  const SplitConfig& config() const { return cfg_; }

  // Calls on_token(const char* data, size_t len) for every token of text[0:n].
  template <class OnToken>
  SplitStatus split(const uint8_t* text, size_t n, Utf8Mode mode, TokenBuf& tok,
                    OnToken&& on_token) const {
    if (fast_) return split_fast(text, n, mode, tok, on_token);
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

  template <class OnToken>
  SplitStatus split_fast(const uint8_t* text, size_t n, Utf8Mode mode, TokenBuf& tok,
                         OnToken& on_token) const {
    const uint8_t* p = text;
    const uint8_t* const end = text + n;
    SigmaContext ctx{text};
    tok.clear();
    while (p < end) {
      const uint8_t b = *p;
      if (b < 0x80) {
        const uint16_t m = ascii_map_[b];
        if (m & kSepFlag) {
          if (tok.size()) {
            on_token(tok.data(), tok.size());
            tok.clear();
          }
        } else {
          tok.push(static_cast<char>(m));
        }
        ++p;
        continue;
      }
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
    }
    if (tok.size()) {
      on_token(tok.data(), tok.size());
      tok.clear();
    }
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
  std::vector<char32_t> seps_non_ascii_;
  std::vector<char32_t> filters_non_ascii_;
};

}  // namespace critic
