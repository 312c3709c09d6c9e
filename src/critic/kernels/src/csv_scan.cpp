#include "csv_scan.hpp"

namespace critic {

CsvScan::CsvScan(char delimiter, bool strict, int64_t batch_rows, int64_t phase)
    : parser_(delimiter, strict, /*file_start=*/true, /*first_line=*/1, {}),
      batch_rows_(batch_rows),
      phase_(phase) {}

void CsvScan::feed(const char* data, size_t size) {
  records_.clear();
  parser_.feed(data, size, &records_);
  count(records_);
}

void CsvScan::finish() {
  records_.clear();
  parser_.finish(&records_);
  count(records_);
}

void CsvScan::count(const std::vector<CsvRecord>& records) {
  for (const CsvRecord& r : records) {
    if (!seen_header_) {
      seen_header_ = true;
    } else if (!r.blank) {
      if (rows_ == 0 || rows_ % batch_rows_ == phase_) starts_.push_back({rows_, begin_, r.line});
      ++rows_;
    }
    begin_ = r.end;
  }
}

}  // namespace critic
