// The arguments CsvScan and CsvRows share, checked once.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

namespace critic {

// ',' for CSV, '\t' for TSV: the only dialects critic reads.
inline char csv_delimiter(const std::string& delimiter) {
  if (delimiter != "," && delimiter != "\t") {
    throw pybind11::value_error("delimiter must be ',' or '\\t'");
  }
  return delimiter[0];
}

}  // namespace critic
