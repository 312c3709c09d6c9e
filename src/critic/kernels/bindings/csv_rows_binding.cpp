// Bindings for CsvRows: the rows of a CSV or TSV file as Python cells, parsed in C++ with the
// GIL released (CsvParser), turned into Python objects batch by batch with it held.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "../src/csv_parser.hpp"
#include "csv_args.hpp"

namespace py = pybind11;

namespace critic {
namespace {

// A field's bytes as Python's csv reader gives them to critic: decoded with surrogateescape
// (every byte string has one str, invalid bytes kept as lone surrogates).
py::object cell(const std::string& bytes, const std::pair<size_t, size_t>& span) {
  if (span.first == CsvParser::kAbsent) return py::none();
  PyObject* o = PyUnicode_DecodeUTF8(bytes.data() + span.first,
                                     static_cast<Py_ssize_t>(span.second), "surrogateescape");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(o);
}

// The text, or None when it is not well-formed UTF-8 (Python's own strict decoder decides).
py::object text_of(const std::string& bytes, const std::pair<size_t, size_t>& span) {
  if (span.first == CsvParser::kAbsent) return py::none();
  PyObject* o = PyUnicode_DecodeUTF8(bytes.data() + span.first,
                                     static_cast<Py_ssize_t>(span.second), "strict");
  if (o == nullptr) {
    PyErr_Clear();
    return py::none();
  }
  return py::reinterpret_steal<py::object>(o);
}

std::string why(CsvBroken broken, char delimiter, int64_t lines) {
  switch (broken) {
    case CsvBroken::kQuoteNotClosedWell:
      return std::string("'") + delimiter + "' expected after '\"'";
    case CsvBroken::kEndOfData:
      return "unexpected end of data";
    case CsvBroken::kNeverCloses:
      return "a quoted field never closes: the " + std::to_string(lines) +
             " lines to the end of the file are inside it";
    case CsvBroken::kNone:
      break;
  }
  return "";
}

const std::vector<int64_t>& checked(const std::vector<int64_t>& where) {
  if (where.empty()) throw py::value_error("where must name the text's field");
  return where;
}

class CsvRows {
 public:
  // file_start: the bytes fed begin the file, whose first record (the header) is no row;
  // else they begin a record on line first_line. where: the field indices of the text, then
  // of the other cells asked for. text_error: why a text that is not UTF-8 cannot be read.
  CsvRows(const std::string& delimiter, bool strict, bool file_start, int64_t first_line,
          int64_t header_fields, const std::vector<int64_t>& where, std::string text_error)
      : delimiter_(csv_delimiter(delimiter)),
        parser_(delimiter_, strict, file_start, first_line, checked(where)),
        header_fields_(header_fields),
        where_(where),
        text_error_(std::move(text_error)),
        header_(file_start) {
    for (int64_t field : where_) slots_.push_back(static_cast<size_t>(parser_.slot(field)));
  }

  void feed(const py::buffer& data) {
    py::buffer_info view = data.request();
    if (view.ndim != 1 || view.itemsize != 1 || view.strides[0] != 1) {
      throw py::type_error("feed() takes a contiguous buffer of bytes");
    }
    py::gil_scoped_release nogil;
    const size_t before = records_.size();
    parser_.feed(static_cast<const char*>(view.ptr), static_cast<size_t>(view.size), &records_);
    counted(before);
  }

  void finish() {
    py::gil_scoped_release nogil;
    const size_t before = records_.size();
    parser_.finish(&records_);
    counted(before);
  }

  int64_t pending() const { return pending_; }

  // Up to max_rows rows: (texts, cells per entry of where[1:], {row: error}).
  py::tuple take(int64_t max_rows) {
    py::list texts;
    std::vector<py::list> cells(where_.size() - 1);
    py::dict errors;
    const std::string& bytes = parser_.bytes();
    const auto& kept = parser_.kept();
    int64_t row = 0;
    while (row < max_rows && next_ < records_.size()) {
      const CsvRecord& r = records_[next_++];
      if (r.blank) continue;
      const auto span = [&](size_t k) { return kept[r.kept_begin + slots_[k]]; };
      if (r.broken != CsvBroken::kNone) {
        const std::string lines = r.lines == 1 ? "line " + std::to_string(r.line)
                                               : "lines " + std::to_string(r.line) + "-" +
                                                     std::to_string(r.line + r.lines - 1);
        errors[py::int_(row)] = lines + ": not one valid CSV record (" +
                                why(r.broken, delimiter_, r.lines) + ")";
        texts.append(py::none());
        for (auto& column : cells) column.append(py::none());
      } else if (r.fields != header_fields_) {
        errors[py::int_(row)] = "line " + std::to_string(r.line) + ": " +
                                std::to_string(r.fields) + " fields, the header has " +
                                std::to_string(header_fields_);
        texts.append(py::none());
        for (auto& column : cells) column.append(py::none());
      } else {
        py::object text = text_of(bytes, span(0));
        if (text.is_none()) {
          errors[py::int_(row)] = "line " + std::to_string(r.line) + ": " + text_error_;
        }
        texts.append(text);
        for (size_t k = 1; k < where_.size(); ++k) cells[k - 1].append(cell(bytes, span(k)));
      }
      ++row;
    }
    pending_ -= row;
    forget_read();
    py::list columns;
    for (auto& column : cells) columns.append(column);
    return py::make_tuple(texts, columns, errors);
  }

 private:
  // Drop the records take() has read, and their bytes: the reader holds at most what one
  // chunk adds beyond a batch.
  void forget_read() {
    if (next_ == 0) return;
    const size_t bytes = records_[next_ - 1].bytes_end;
    const size_t spans =
        next_ < records_.size() ? records_[next_].kept_begin : parser_.kept().size();
    parser_.drop_kept(bytes, spans);
    records_.erase(records_.begin(), records_.begin() + static_cast<std::ptrdiff_t>(next_));
    next_ = 0;
    for (CsvRecord& r : records_) {
      r.kept_begin -= spans;
      r.bytes_end -= bytes;
    }
  }

  void counted(size_t before) {
    for (size_t k = before; k < records_.size(); ++k) {
      if (header_) {  // the first record is the header, blank or not: no row, as a blank one
        header_ = false;
        records_[k].blank = true;
      }
      if (!records_[k].blank) ++pending_;
    }
  }

  const char delimiter_;
  CsvParser parser_;
  const int64_t header_fields_;
  const std::vector<int64_t> where_;
  const std::string text_error_;
  std::vector<size_t> slots_;  // each entry of where: its slot among the parser's kept fields
  bool header_;                // the next record parsed is the header
  std::vector<CsvRecord> records_;
  size_t next_ = 0;
  int64_t pending_ = 0;
};

}  // namespace

void bind_csv_rows(py::module_& m) {
  py::class_<CsvRows>(m, "CsvRows")
      .def(py::init<const std::string&, bool, bool, int64_t, int64_t, const std::vector<int64_t>&,
                    std::string>(),
           py::arg("delimiter"), py::arg("strict"), py::arg("file_start"), py::arg("first_line"),
           py::arg("header_fields"), py::arg("where"), py::arg("text_error"))
      .def("feed", &CsvRows::feed, py::arg("data"))
      .def("finish", &CsvRows::finish)
      .def_property_readonly("pending", &CsvRows::pending)
      .def("take", &CsvRows::take, py::arg("max_rows"));
}

}  // namespace critic
