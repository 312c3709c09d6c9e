// TextInput: a Python-side snapshot of texts (list, numpy array, Arrow arrays) that the
// kernel reads in place, with the GIL released, while this object keeps the memory alive.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "../src/text_source.hpp"
#include "../src/tokenize.hpp"

namespace py = pybind11;

namespace critic {

Utf8Mode parse_errors(const std::string& errors);

class TextInput {
 public:
  static TextInput from_sequence(const py::handle& texts, const std::string& errors);
  static TextInput from_numpy(const py::array& arr, const std::string& errors);
  // chunks: iterable of (offsets_buffer, data_buffer, validity_buffer_or_None,
  //                      offset, length, is_large)
  static TextInput from_arrow(const py::iterable& chunks, const std::string& errors);

  const TextSource& source() const { return *source_; }
  size_t size() const { return source_->size(); }

 private:
  std::shared_ptr<TextSource> source_;
  std::vector<py::object> keep_alive_;
  std::vector<std::shared_ptr<py::buffer_info>> views_;
};

// Raises the Python exception that describes err (TypeError for null rows, ValueError
// otherwise).
[[noreturn]] void raise_row_error(const RowError& err);

void bind_text_input(py::module_& m);

// A `threads` argument: None = every core; otherwise >= 1.
int resolve_threads(const py::object& threads);

}  // namespace critic
