// Bindings for CsvScan: the layout scan of a CSV or TSV file, fed in chunks.
#include <pybind11/pybind11.h>

#include <string>

#include "../src/csv_scan.hpp"
#include "csv_args.hpp"

namespace py = pybind11;

namespace critic {
namespace {

CsvScan make_scan(const std::string& delimiter, bool strict, int64_t batch_rows, int64_t phase) {
  const char d = csv_delimiter(delimiter);
  if (batch_rows < 1) throw py::value_error("batch_rows must be >= 1");
  if (phase < 0 || phase >= batch_rows) throw py::value_error("phase must be in [0, batch_rows)");
  return CsvScan(d, strict, batch_rows, phase);
}

void feed(CsvScan& scan, const py::buffer& data) {
  // A contiguous byte buffer (bytes, bytearray, memoryview), read with the GIL released:
  // the buffer view keeps the memory alive, and holds a bytearray's size while exported.
  py::buffer_info view = data.request();
  if (view.ndim != 1 || view.itemsize != 1 || view.strides[0] != 1) {
    throw py::type_error("feed() takes a contiguous buffer of bytes");
  }
  py::gil_scoped_release nogil;
  scan.feed(static_cast<const char*>(view.ptr), static_cast<size_t>(view.size));
}

py::list starts(const CsvScan& scan) {
  py::list out;
  for (const CsvStart& s : scan.starts()) out.append(py::make_tuple(s.row, s.offset, s.line));
  return out;
}

}  // namespace

void bind_csv_scan(py::module_& m) {
  py::class_<CsvScan>(m, "CsvScan")
      .def(py::init(&make_scan), py::arg("delimiter"), py::arg("strict"), py::arg("batch_rows"),
           py::arg("phase") = 0)
      .def("feed", &feed, py::arg("data"))
      .def("finish", &CsvScan::finish, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("rows", &CsvScan::rows)
      .def_property_readonly("starts", &starts);
}

}  // namespace critic
