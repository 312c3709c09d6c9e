#include "csv_parser.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace critic {

namespace {

constexpr unsigned char kBom[3] = {0xEF, 0xBB, 0xBF};

// Python's str.isspace for a code point below 0x80.
bool ascii_space(unsigned char c) { return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20); }

// The UTF-8 encodings of the code points above 0x7F that str.isspace calls whitespace
// (Unicode's White_Space, stable since Unicode 6.3; tests/test_csv_scan.py checks every
// code point against the running Python).
struct Encoded {
  unsigned char bytes[3];
  int size;
};
constexpr Encoded kWideSpaces[] = {
    {{0xC2, 0x85, 0}, 2},    {{0xC2, 0xA0, 0}, 2},    {{0xE1, 0x9A, 0x80}, 3},
    {{0xE2, 0x80, 0x80}, 3}, {{0xE2, 0x80, 0x81}, 3}, {{0xE2, 0x80, 0x82}, 3},
    {{0xE2, 0x80, 0x83}, 3}, {{0xE2, 0x80, 0x84}, 3}, {{0xE2, 0x80, 0x85}, 3},
    {{0xE2, 0x80, 0x86}, 3}, {{0xE2, 0x80, 0x87}, 3}, {{0xE2, 0x80, 0x88}, 3},
    {{0xE2, 0x80, 0x89}, 3}, {{0xE2, 0x80, 0x8A}, 3}, {{0xE2, 0x80, 0xA8}, 3},
    {{0xE2, 0x80, 0xA9}, 3}, {{0xE2, 0x80, 0xAF}, 3}, {{0xE2, 0x81, 0x9F}, 3},
    {{0xE3, 0x80, 0x80}, 3},
};

// -1: no whitespace character starts with these bytes; 0: some do, none is complete; 1: they
// are one whitespace character.
int wide_space(const unsigned char* bytes, int size) {
  int found = -1;
  for (const Encoded& e : kWideSpaces) {
    if (size <= e.size && std::memcmp(bytes, e.bytes, static_cast<size_t>(size)) == 0) {
      if (size == e.size) return 1;
      found = 0;
    }
  }
  return found;
}

}  // namespace

CsvParser::CsvParser(char delimiter, bool strict, bool file_start, int64_t first_line,
                     std::vector<int64_t> keep)
    : delimiter_(static_cast<unsigned char>(delimiter)),
      strict_(strict),
      bom_held_(file_start ? 0 : 3),
      record_line_(first_line) {
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  if (!keep.empty()) {
    if (keep.front() < 0) throw std::invalid_argument("field indices must be >= 0");
    if (keep.back() > (1 << 20)) throw std::invalid_argument("field index too large");
    keep_slot_.assign(static_cast<size_t>(keep.back()) + 1, -1);
    for (size_t k = 0; k < keep.size(); ++k) keep_slot_[static_cast<size_t>(keep[k])] = static_cast<int>(k);
  }
  record_kept_.assign(keep.size(), {kAbsent, 0});
  keeping_ = slot(0) >= 0;
  for (const unsigned char c : {delimiter_, static_cast<unsigned char>('"'),
                                static_cast<unsigned char>('\n'), static_cast<unsigned char>('\r')}) {
    special_[c] = true;
    quoted_special_[c] = c != delimiter_;
  }
}

bool CsvParser::plain_bytes_skip() const {
  // A byte that is no delimiter, quote or line end changes nothing but the offset and the
  // field's bytes: inside a field whose blankness no longer matters, or on the rest of a
  // refused record's line.
  if (pending_cr_ || bom_held_ < 3) return false;
  if (broken_ != CsvBroken::kNone) return true;
  return (state_ == State::kInField || state_ == State::kInQuotedField) &&
         (fields_ > 0 || !field_blank_);
}

void CsvParser::feed(const char* data, size_t size, std::vector<CsvRecord>* out) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  while (i < size) {
    if (plain_bytes_skip()) {  // most bytes of a review: text inside a field
      // Inside quotes the delimiter is text too (reviews are full of commas).
      const bool* special = state_ == State::kInQuotedField && broken_ == CsvBroken::kNone
                                ? quoted_special_
                                : special_;
      size_t j = i;
      while (j < size && !special[bytes[j]]) ++j;
      if (j > i) {
        if (keeping_ && broken_ == CsvBroken::kNone) bytes_.append(data + i, j - i);
        offset_ += static_cast<int64_t>(j - i);
        line_open_ = true;
        i = j;
      }
      if (i == size) break;
    }
    const unsigned char c = bytes[i++];
    const int64_t at = offset_++;  // this byte's offset
    if (bom_held_ < 3 && bom_held_ == at) {  // the file's first bytes: a byte-order mark is dropped
      if (c == kBom[at]) {
        ++bom_held_;
        line_open_ = true;
        continue;
      }
      release_bom();
    }
    if (pending_cr_) {  // the byte after a CR: a CRLF's LF, or the first of the next line
      pending_cr_ = false;
      if (c == '\n') {
        byte(c);
        end_of_line(at + 1, out);
        continue;
      }
      end_of_line(at, out);
    }
    byte(c);
    if (c == '\n') {
      end_of_line(at + 1, out);
    } else if (c == '\r') {
      pending_cr_ = true;
    }
  }
}

void CsvParser::release_bom() {
  // A file that begins with part of a byte-order mark only: those bytes are text.
  const int held = bom_held_;
  bom_held_ = 3;
  for (int k = 0; k < held; ++k) byte(kBom[k]);
}

void CsvParser::finish(std::vector<CsvRecord>* out) {
  if (bom_held_ < 3) release_bom();  // a file shorter than a byte-order mark
  if (pending_cr_) {
    pending_cr_ = false;
    end_of_line(offset_, out);
  } else if (line_open_) {
    end_of_line(offset_, out);
  }
  if (state_ == State::kStartRecord) return;
  // The data ended inside a quoted field: the csv module refuses the record when strict,
  // else saves the field and returns it; critic's reader calls it broken when the quote
  // opened on an earlier line and an odd count of quotes says it never closed.
  if (!strict_) save_field();
  CsvBroken why = strict_ ? CsvBroken::kEndOfData : CsvBroken::kNone;
  if (lines_ > 1 && quotes_ % 2 == 1) why = CsvBroken::kNeverCloses;
  end_record(offset_, why, out);
}

void CsvParser::byte(unsigned char c) {
  line_open_ = true;
  if (c == '"') ++quotes_;
  if (broken_ != CsvBroken::kNone) return;
  const bool line_end = c == '\n' || c == '\r';
  switch (state_) {
    case State::kStartRecord:
      if (line_end) {
        state_ = State::kEatCrnl;
        return;
      }
      state_ = State::kStartField;
      [[fallthrough]];
    case State::kStartField:
      if (line_end) {
        save_field();
        state_ = State::kEatCrnl;
      } else if (c == '"') {
        state_ = State::kInQuotedField;
      } else if (c == delimiter_) {
        save_field();
      } else {
        add_char(c);
        state_ = State::kInField;
      }
      return;
    case State::kInField:
      if (line_end) {
        save_field();
        state_ = State::kEatCrnl;
      } else if (c == delimiter_) {
        save_field();
        state_ = State::kStartField;
      } else {
        add_char(c);
      }
      return;
    case State::kInQuotedField:
      if (c == '"') {
        state_ = State::kQuoteInQuoted;
      } else {
        add_char(c);
      }
      return;
    case State::kQuoteInQuoted:
      if (c == '"') {
        add_char(c);
        state_ = State::kInQuotedField;
      } else if (c == delimiter_) {
        save_field();
        state_ = State::kStartField;
      } else if (line_end) {
        save_field();
        state_ = State::kEatCrnl;
      } else if (!strict_) {
        add_char(c);
        state_ = State::kInField;
      } else {
        broken_ = CsvBroken::kQuoteNotClosedWell;  // the rest of the line is dropped
      }
      return;
    case State::kEatCrnl:
      // Cannot happen: a line ends at its first CR or LF.
      if (!line_end) broken_ = CsvBroken::kQuoteNotClosedWell;
      return;
  }
}

void CsvParser::end_of_line(int64_t end, std::vector<CsvRecord>* out) {
  line_open_ = false;
  ++lines_;
  if (broken_ != CsvBroken::kNone) {
    end_record(end, broken_, out);
    return;
  }
  switch (state_) {  // the csv module's end-of-line step
    case State::kStartRecord:  // an empty line: the record []
    case State::kEatCrnl:
      break;
    case State::kStartField:
    case State::kInField:
    case State::kQuoteInQuoted:
      save_field();
      break;
    case State::kInQuotedField:  // the field goes on on the next line
      return;
  }
  end_record(end, CsvBroken::kNone, out);
}

void CsvParser::add_char(unsigned char c) {
  if (keeping_) bytes_.push_back(static_cast<char>(c));
  if (fields_ > 0 || !field_blank_) return;  // only the first field's blankness matters
  if (c < 0x80) {
    field_blank_ = pending_size_ == 0 && ascii_space(c);
    return;
  }
  pending_[pending_size_++] = c;
  const int match = wide_space(pending_, pending_size_);
  if (match == 1) {
    pending_size_ = 0;
  } else if (match < 0) {
    field_blank_ = false;
  }
}

void CsvParser::save_field() {
  if (keeping_) {
    record_kept_[static_cast<size_t>(slot(fields_))] = {field_begin_, bytes_.size() - field_begin_};
  }
  if (fields_ == 0) first_blank_ = field_blank_ && pending_size_ == 0;
  ++fields_;
  field_blank_ = true;
  pending_size_ = 0;
  field_begin_ = bytes_.size();
  keeping_ = slot(fields_) >= 0;
}

void CsvParser::end_record(int64_t end, CsvBroken broken, std::vector<CsvRecord>* out) {
  const bool blank =
      broken == CsvBroken::kNone && (fields_ == 0 || (fields_ == 1 && first_blank_));
  out->push_back({end, record_line_, lines_, blank, broken, fields_, kept_.size(), bytes_.size()});
  kept_.insert(kept_.end(), record_kept_.begin(), record_kept_.end());
  std::fill(record_kept_.begin(), record_kept_.end(), std::pair<size_t, size_t>{kAbsent, 0});
  record_line_ += lines_;
  lines_ = 0;
  quotes_ = 0;
  state_ = State::kStartRecord;
  broken_ = CsvBroken::kNone;
  fields_ = 0;
  first_blank_ = false;
  field_blank_ = true;
  pending_size_ = 0;
  record_begin_ = field_begin_ = bytes_.size();
  keeping_ = slot(0) >= 0;
}

int CsvParser::slot(int64_t field) const {
  return field >= 0 && static_cast<size_t>(field) < keep_slot_.size()
             ? keep_slot_[static_cast<size_t>(field)]
             : -1;
}

void CsvParser::drop_kept(size_t bytes, size_t spans) {
  bytes = std::min(bytes, record_begin_);  // never the current record's bytes
  spans = std::min(spans, kept_.size());
  bytes_.erase(0, bytes);
  kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(spans));
  for (auto& span : kept_) {
    if (span.first != kAbsent) span.first -= bytes;
  }
  for (auto& span : record_kept_) {
    if (span.first != kAbsent) span.first -= bytes;
  }
  record_begin_ -= bytes;
  field_begin_ -= bytes;
}

}  // namespace critic
