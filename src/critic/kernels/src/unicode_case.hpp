// Python's str.lower(), code point by code point, with the Final_Sigma context rule.
#pragma once

#include <cstdint>

namespace critic {

struct LowerEntry {
  char32_t cp;
  char32_t out[3];
  uint8_t n;
};

struct CodeRange {
  char32_t lo, hi;
};

// Full lower-case mapping of a non-ASCII code point: writes 1..3 code points to out and
// returns how many. U+03A3 maps to U+03C3 here; the caller applies Final_Sigma.
int lower_full(char32_t cp, char32_t out[3]);

bool is_cased(char32_t cp);
bool is_case_ignorable(char32_t cp);

// The Unicode version of the tables (that of the Python that built the module).
const char* unicode_version();

constexpr char32_t kCapitalSigma = 0x3A3;
constexpr char32_t kSmallSigma = 0x3C3;
constexpr char32_t kFinalSigma = 0x3C2;

}  // namespace critic
