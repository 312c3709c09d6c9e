// CsvParser: the records of a CSV or TSV file, read from its bytes in chunks, exactly as the
// Python reader critic parses such files with finds them (Python 3.11+'s csv module, default
// dialect, fed the file's lines split at LF, CR or CRLF and decoded as UTF-8 with
// surrogateescape; see critic/data/readers.py, _csv_records): where each record ends, the
// lines it takes, whether it is blank (an empty line, or one field that is all whitespace by
// Python's str.isspace), whether the csv module refuses it and why, its field count, and the
// bytes of the fields asked for (quotes removed, doubled quotes undone).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace critic {

// Why the csv module (or critic's reader) refuses a record.
enum class CsvBroken : uint8_t {
  kNone,
  kQuoteNotClosedWell,  // csv.Error "',' expected after '\"'" (strict)
  kEndOfData,           // csv.Error "unexpected end of data" (strict, inside a quoted field)
  kNeverCloses,         // critic: a quote opened on an earlier line closes nowhere
};

struct CsvRecord {
  int64_t end;    // byte offset just past the record
  int64_t line;   // the line it starts on
  int64_t lines;  // lines it takes
  bool blank;
  CsvBroken broken;
  int64_t fields;     // fields read
  size_t kept_begin;  // its entries in CsvParser::kept(): one (offset, size) per kept field
  size_t bytes_end;   // where its kept bytes end in CsvParser::bytes()
};

class CsvParser {
 public:
  static constexpr size_t kAbsent = static_cast<size_t>(-1);

  // delimiter: ',' (strict: a closing quote must be followed by the delimiter or the end of
  // the line) or '\t' (tolerant, as Python's csv is by default). file_start: the bytes begin
  // the file (a byte-order mark is dropped); else they begin a record on line first_line.
  // keep: the field indices whose bytes each record keeps (none for a layout scan).
  CsvParser(char delimiter, bool strict, bool file_start, int64_t first_line,
            std::vector<int64_t> keep);

  // The next bytes, in order; the chunks may cut anywhere (inside a line, a CRLF or a UTF-8
  // sequence). Appends the records they complete to out.
  void feed(const char* data, size_t size, std::vector<CsvRecord>* out);
  // The end of the file (the last line needs no line end): appends the last record, if any.
  void finish(std::vector<CsvRecord>* out);

  // Kept fields of the records returned so far: (offset in bytes(), size), kAbsent offset
  // for a field the record does not have.
  const std::vector<std::pair<size_t, size_t>>& kept() const { return kept_; }
  const std::string& bytes() const { return bytes_; }
  // Where a kept field's span lies among each record's entries of kept(); -1 for a field
  // not kept.
  int slot(int64_t field) const;
  // Drop the first `bytes` kept bytes and `spans` entries of kept() (those of the records the
  // caller has read); the offsets of the rest move down by `bytes`.
  void drop_kept(size_t bytes, size_t spans);

 private:
  enum class State { kStartRecord, kStartField, kInField, kInQuotedField, kQuoteInQuoted, kEatCrnl };

  void byte(unsigned char c);      // one byte of a line (its line end included)
  void end_of_line(int64_t end, std::vector<CsvRecord>* out);
  void add_char(unsigned char c);  // a byte the csv module adds to the current field
  void save_field();
  void end_record(int64_t end, CsvBroken broken, std::vector<CsvRecord>* out);
  void release_bom();
  bool plain_bytes_skip() const;

  const unsigned char delimiter_;
  const bool strict_;
  std::vector<int> keep_slot_;      // field index -> its slot among the kept fields, or -1
  bool special_[256] = {};          // the delimiter, the quote and the line ends
  bool quoted_special_[256] = {};   // the quote and the line ends

  State state_ = State::kStartRecord;
  CsvBroken broken_ = CsvBroken::kNone;  // refused: the rest of its line is skipped
  bool pending_cr_ = false;    // a CR ended the last chunk: a CRLF, or a line of its own
  bool line_open_ = false;     // bytes of a line not ended yet
  int bom_held_ = 3;           // bytes of a byte-order mark held back at the file's start
  int64_t offset_ = 0;         // bytes fed so far
  int64_t record_line_;        // the line the current record starts on
  int64_t lines_ = 0;          // lines read since it started
  int64_t quotes_ = 0;         // quote bytes in them

  // Blankness: the fields saved so far, whether the first of them was all whitespace, and
  // the current field's (a multi-byte whitespace character is matched byte by byte).
  int64_t fields_ = 0;
  bool first_blank_ = false;
  bool field_blank_ = true;
  unsigned char pending_[3] = {0, 0, 0};
  int pending_size_ = 0;

  // Kept fields: the current record's spans, and where the current field began in bytes_.
  std::string bytes_;
  std::vector<std::pair<size_t, size_t>> kept_;
  std::vector<std::pair<size_t, size_t>> record_kept_;
  size_t record_begin_ = 0;  // where the current record's kept bytes begin in bytes_
  size_t field_begin_ = 0;   // ... and the current field's
  bool keeping_ = false;  // the current field is kept
};

}  // namespace critic
