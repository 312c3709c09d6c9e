#include "csv_scan.hpp"

#include <cstring>

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

CsvScan::CsvScan(char delimiter, bool strict, int64_t batch_rows, int64_t phase)
    : delimiter_(delimiter), strict_(strict), batch_rows_(batch_rows), phase_(phase) {
  for (const unsigned char c : {static_cast<unsigned char>(delimiter), static_cast<unsigned char>('"'),
                                static_cast<unsigned char>('\n'), static_cast<unsigned char>('\r')}) {
    special_[c] = true;
  }
}

bool CsvScan::plain_bytes_skip() const {
  // A byte that is no delimiter, quote or line end changes nothing but the offset: inside a
  // field whose blankness no longer matters, or on the rest of a refused record's line.
  if (pending_cr_ || bom_held_ < 3) return false;
  if (broken_) return true;
  return (state_ == State::kInField || state_ == State::kInQuotedField) &&
         (fields_ > 0 || !field_blank_);
}

void CsvScan::feed(const char* data, size_t size) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  while (i < size) {
    if (plain_bytes_skip()) {  // most bytes of a review: text inside a field
      size_t j = i;
      while (j < size && !special_[bytes[j]]) ++j;
      offset_ += static_cast<int64_t>(j - i);
      line_open_ = line_open_ || j > i;
      i = j;
      if (i == size) break;
    }
    const unsigned char c = bytes[i++];
    const int64_t at = offset_++;  // this byte's offset in the file
    if (at < 3 && bom_held_ == at) {  // the file's first bytes: a byte-order mark is dropped
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
        end_of_line(at + 1);
        continue;
      }
      end_of_line(at);
    }
    byte(c);
    if (c == '\n') {
      end_of_line(at + 1);
    } else if (c == '\r') {
      pending_cr_ = true;
    }
  }
}

void CsvScan::release_bom() {
  // A file that begins with part of a byte-order mark only: those bytes are text.
  const int held = bom_held_;
  bom_held_ = 3;
  for (int k = 0; k < held; ++k) byte(kBom[k]);
}

void CsvScan::finish() {
  if (bom_held_ < 3) release_bom();  // a file shorter than a byte-order mark
  if (pending_cr_) {
    pending_cr_ = false;
    end_of_line(offset_);
  } else if (line_open_) {
    end_of_line(offset_);
  }
  if (state_ == State::kStartRecord) return;
  // The data ended inside a quoted field: the csv module refuses the record when strict,
  // else saves the field and returns it; critic's reader calls it broken when the quote
  // opened on an earlier line and an odd count of quotes says it never closed.
  if (!strict_) save_field();
  end_record(offset_, strict_ || (lines_ > 1 && quotes_ % 2 == 1));
}

void CsvScan::byte(unsigned char c) {
  line_open_ = true;
  if (c == '"') ++quotes_;
  if (broken_) return;
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
      } else if (c == static_cast<unsigned char>(delimiter_)) {
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
      } else if (c == static_cast<unsigned char>(delimiter_)) {
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
      } else if (c == static_cast<unsigned char>(delimiter_)) {
        save_field();
        state_ = State::kStartField;
      } else if (line_end) {
        save_field();
        state_ = State::kEatCrnl;
      } else if (!strict_) {
        add_char(c);
        state_ = State::kInField;
      } else {
        broken_ = true;  // "',' expected after '\"'": the rest of the line is dropped
      }
      return;
    case State::kEatCrnl:
      if (!line_end) broken_ = true;  // cannot happen: a line ends at its first CR or LF
      return;
  }
}

void CsvScan::end_of_line(int64_t end) {
  line_open_ = false;
  ++lines_;
  if (broken_) {
    end_record(end, true);
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
  state_ = State::kStartRecord;
  end_record(end, false);
}

void CsvScan::add_char(unsigned char c) {
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

void CsvScan::save_field() {
  if (fields_ == 0) first_blank_ = field_blank_ && pending_size_ == 0;
  ++fields_;
  field_blank_ = true;
  pending_size_ = 0;
}

void CsvScan::end_record(int64_t end, bool broken) {
  const bool blank = !broken && (fields_ == 0 || (fields_ == 1 && first_blank_));
  if (!seen_header_) {
    seen_header_ = true;
  } else if (!blank) {
    if (rows_ == 0 || rows_ % batch_rows_ == phase_) {
      starts_.push_back({rows_, record_begin_, record_line_});
    }
    ++rows_;
  }
  record_begin_ = end;
  record_line_ += lines_;
  lines_ = 0;
  quotes_ = 0;
  state_ = State::kStartRecord;
  broken_ = false;
  fields_ = 0;
  first_blank_ = false;
  field_blank_ = true;
  pending_size_ = 0;
}

}  // namespace critic
