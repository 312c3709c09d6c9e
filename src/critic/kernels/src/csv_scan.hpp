// CsvScan: where the records of a CSV or TSV file begin, read from its bytes in chunks, with
// exactly the record boundaries of the Python reader critic parses such files with (Python
// 3.11+'s csv module, default dialect, fed the file's lines split at LF, CR or CRLF and
// decoded as UTF-8 with surrogateescape; see critic/data/readers.py, _csv_records).
//
// The first record is the header. Every later record that is not blank is a row: a blank
// record is an empty line, or one field that is all whitespace (Python's str.isspace). For
// every row r with r == 0 or r % batch_rows == phase, the scan keeps where it starts: (row,
// byte offset, line number). A record the csv module refuses is a row too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace critic {

struct CsvStart {
  int64_t row;
  int64_t offset;
  int64_t line;
};

class CsvScan {
 public:
  // delimiter: ',' (strict: a closing quote must be followed by the delimiter or the end of
  // the line) or '\t' (tolerant, as Python's csv is by default).
  CsvScan(char delimiter, bool strict, int64_t batch_rows, int64_t phase);

  // The next bytes of the file, in order; the chunks may cut anywhere (inside a line, a
  // CRLF or a UTF-8 sequence).
  void feed(const char* data, size_t size);
  // The end of the file: the last line needs no line end.
  void finish();

  int64_t rows() const { return rows_; }
  const std::vector<CsvStart>& starts() const { return starts_; }

 private:
  enum class State { kStartRecord, kStartField, kInField, kInQuotedField, kQuoteInQuoted, kEatCrnl };

  void byte(unsigned char c);      // one byte of a line (its line end included)
  void end_of_line(int64_t end);   // after a line's last byte, which ends at offset end
  void add_char(unsigned char c);  // a byte the csv module adds to the current field
  void save_field();
  void end_record(int64_t end, bool broken);
  void release_bom();
  bool plain_bytes_skip() const;

  const char delimiter_;
  const bool strict_;
  const int64_t batch_rows_;
  const int64_t phase_;
  bool special_[256] = {};  // the delimiter, the quote and the line ends

  State state_ = State::kStartRecord;
  bool broken_ = false;        // the csv module refused this record; the rest of its line is skipped
  bool pending_cr_ = false;    // a CR ended the last chunk: a CRLF, or a line of its own
  bool line_open_ = false;     // bytes of a line not ended yet
  int64_t offset_ = 0;         // bytes fed so far
  int64_t record_begin_ = 0;   // where the current record starts
  int64_t record_line_ = 1;    // the line it starts on
  int64_t lines_ = 0;          // lines read since it started
  int64_t quotes_ = 0;         // quote bytes in them
  bool seen_header_ = false;
  int bom_held_ = 0;           // bytes of a byte-order mark held back at the file's start

  // Blankness: the fields saved so far, whether the first of them was all whitespace, and
  // the current field's (a multi-byte whitespace character is matched byte by byte).
  int64_t fields_ = 0;
  bool first_blank_ = false;
  bool field_blank_ = true;
  unsigned char pending_[3] = {0, 0, 0};
  int pending_size_ = 0;

  int64_t rows_ = 0;
  std::vector<CsvStart> starts_;
};

}  // namespace critic
