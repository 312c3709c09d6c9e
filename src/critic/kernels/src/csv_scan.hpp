// CsvScan: where the rows of a CSV or TSV file begin, from one read of its bytes in chunks
// (CsvParser's records). The first record is the header; every later record that is not
// blank is a row, one the csv module refuses included. For every row r with r == 0 or
// r % batch_rows == phase, the scan keeps where it starts: (row, byte offset, line number).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "csv_parser.hpp"

namespace critic {

struct CsvStart {
  int64_t row;
  int64_t offset;
  int64_t line;
};

class CsvScan {
 public:
  CsvScan(char delimiter, bool strict, int64_t batch_rows, int64_t phase);

  void feed(const char* data, size_t size);
  void finish();

  int64_t rows() const { return rows_; }
  const std::vector<CsvStart>& starts() const { return starts_; }

 private:
  void count(const std::vector<CsvRecord>& records);

  CsvParser parser_;
  const int64_t batch_rows_;
  const int64_t phase_;
  std::vector<CsvRecord> records_;  // reused
  int64_t begin_ = 0;               // where the next record starts
  bool seen_header_ = false;
  int64_t rows_ = 0;
  std::vector<CsvStart> starts_;
};

}  // namespace critic
