#include "unicode_case.hpp"

#include <algorithm>
#include <iterator>

namespace critic {
namespace {
#include "unicode_tables.inc"

bool in_ranges(const CodeRange* begin, const CodeRange* end, char32_t cp) {
  const CodeRange* it =
      std::upper_bound(begin, end, cp, [](char32_t v, const CodeRange& r) { return v < r.lo; });
  return it != begin && cp <= std::prev(it)->hi;
}
}  // namespace

int lower_full(char32_t cp, char32_t out[3]) {
  const LowerEntry* begin = std::begin(kLowerTable);
  const LowerEntry* end = std::end(kLowerTable);
  const LowerEntry* it =
      std::lower_bound(begin, end, cp, [](const LowerEntry& e, char32_t v) { return e.cp < v; });
  if (it == end || it->cp != cp) {
    out[0] = cp;
    return 1;
  }
  for (int i = 0; i < it->n; ++i) out[i] = it->out[i];
  return it->n;
}

bool is_cased(char32_t cp) { return in_ranges(std::begin(kCased), std::end(kCased), cp); }

bool is_case_ignorable(char32_t cp) {
  return in_ranges(std::begin(kCaseIgnorable), std::end(kCaseIgnorable), cp);
}

const char* unicode_version() { return CRITIC_UNICODE_VERSION; }

}  // namespace critic
