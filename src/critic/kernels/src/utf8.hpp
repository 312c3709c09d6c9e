// UTF-8 decoding and encoding with the exact error semantics of CPython's codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace critic {

// How a byte sequence that is not well-formed UTF-8 is treated.
enum class Utf8Mode : uint8_t {
  kStrict,      // an ill-formed sequence is an error (bytes.decode("utf-8"))
  kReplace,     // each maximal ill-formed subpart becomes U+FFFD (errors="replace")
  kSurrogates,  // also accept encoded surrogates (errors="surrogatepass"), used for
                // Python str, which may hold lone surrogates
};

constexpr char32_t kReplacementChar = 0xFFFD;
constexpr char32_t kInvalid = 0xFFFFFFFF;  // returned by decode_one on a strict error

// Decodes one code point starting at p (p < end). Advances p past what was consumed.
// On an ill-formed sequence: kStrict returns kInvalid (p is left at the bad byte);
// kReplace / kSurrogates return U+FFFD and skip the maximal ill-formed subpart, exactly
// as CPython's "replace" handler does.
inline char32_t decode_one(const uint8_t*& p, const uint8_t* end, Utf8Mode mode) {
  const uint8_t b0 = *p;
  if (b0 < 0x80) {
    ++p;
    return b0;
  }
  int need;
  char32_t cp;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED && mode != Utf8Mode::kSurrogates) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    if (mode == Utf8Mode::kStrict) return kInvalid;
    ++p;
    return kReplacementChar;
  }
  const uint8_t* q = p + 1;
  for (int i = 0; i < need; ++i, ++q) {
    const bool ok = q < end && *q >= (i == 0 ? lo : 0x80) && *q <= (i == 0 ? hi : 0xBF);
    if (!ok) {
      if (mode == Utf8Mode::kStrict) return kInvalid;
      p = q;  // the maximal subpart: lead byte plus the valid continuation bytes so far
      return kReplacementChar;
    }
    cp = (cp << 6) | (*q & 0x3F);
  }
  p = q;
  return cp;
}

// Writes the UTF-8 encoding of cp (<= 0x10FFFF; surrogates as three bytes, like
// surrogatepass) to out[0..4) and returns its length.
inline size_t encode_utf8(char32_t cp, char* out) {
  if (cp < 0x80) {
    out[0] = static_cast<char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<char>(0xC0 | (cp >> 6));
    out[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<char>(0xE0 | (cp >> 12));
    out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<char>(0xF0 | (cp >> 18));
  out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return 4;
}

// Appends the UTF-8 encoding of cp to out (see encode_utf8).
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace critic
