#include "text_input.hpp"

#include <cstring>
#include <new>

namespace critic {

Utf8Mode parse_errors(const std::string& errors) {
  if (errors == "strict") return Utf8Mode::kStrict;
  if (errors == "replace") return Utf8Mode::kReplace;
  throw py::value_error("errors must be 'strict' or 'replace', got '" + errors + "'");
}

namespace {

std::string type_name(const py::handle& o) {
  return py::str(py::type::handle_of(o).attr("__name__")).cast<std::string>();
}

TextRow row_of_str(PyObject* s) {
#if PY_VERSION_HEX < 0x030C0000
  if (PyUnicode_READY(s) != 0) throw py::error_already_set();
#endif
  const size_t len = static_cast<size_t>(PyUnicode_GET_LENGTH(s));
  const void* data = PyUnicode_DATA(s);
  if (PyUnicode_IS_ASCII(s)) return {data, len, RowKind::kUtf8, Utf8Mode::kSurrogates};
  switch (PyUnicode_KIND(s)) {
    case PyUnicode_1BYTE_KIND:
      return {data, len, RowKind::kLatin1, Utf8Mode::kSurrogates};
    case PyUnicode_2BYTE_KIND:
      return {data, len, RowKind::kUcs2, Utf8Mode::kSurrogates};
    default:
      return {data, len, RowKind::kUcs4, Utf8Mode::kSurrogates};
  }
}

}  // namespace

TextInput TextInput::from_sequence(const py::handle& texts, const std::string& errors) {
  const Utf8Mode mode = parse_errors(errors);
  if (PyUnicode_Check(texts.ptr()) || PyBytes_Check(texts.ptr())) {
    throw py::type_error("texts must be a sequence of strings, not a single " +
                         type_name(texts));
  }
  // A tuple snapshot holds a reference to every row, so rows stay alive and unchanged
  // even if the caller's list is mutated by another thread while the GIL is released.
  py::tuple snapshot = py::reinterpret_steal<py::tuple>(PySequence_Tuple(texts.ptr()));
  if (!snapshot) throw py::error_already_set();
  const size_t n = snapshot.size();
  std::vector<TextRow> rows;
  rows.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    PyObject* o = PyTuple_GET_ITEM(snapshot.ptr(), static_cast<Py_ssize_t>(i));
    if (PyUnicode_Check(o)) {
      rows.push_back(row_of_str(o));
    } else if (PyBytes_Check(o)) {
      rows.push_back({PyBytes_AS_STRING(o), static_cast<size_t>(PyBytes_GET_SIZE(o)),
                      RowKind::kUtf8, mode});
    } else if (o == Py_None) {
      throw py::type_error("row " + std::to_string(i) + " is None; expected a string");
    } else {
      throw py::type_error("row " + std::to_string(i) + " has type " +
                           type_name(py::handle(o)) + "; expected str or bytes");
    }
  }
  TextInput in;
  in.source_ = std::make_shared<RowVectorSource>(std::move(rows));
  in.keep_alive_.push_back(std::move(snapshot));
  return in;
}

TextInput TextInput::from_numpy(const py::array& arr, const std::string& errors) {
  const Utf8Mode mode = parse_errors(errors);
  if (arr.ndim() != 1) {
    throw py::value_error("texts must be a 1-D array, got " + std::to_string(arr.ndim()) +
                          " dimensions");
  }
  const char kind = arr.dtype().kind();
  if (kind == 'O') return from_sequence(arr, errors);
  if (kind != 'U' && kind != 'S') {
    throw py::type_error(std::string("texts array must hold strings (dtype str_, bytes_ or "
                                     "object), got dtype kind '") + kind + "'");
  }
  const size_t n = static_cast<size_t>(arr.shape(0));
  const size_t item = static_cast<size_t>(arr.itemsize());
  const py::ssize_t stride = arr.strides(0);
  const auto* base = static_cast<const char*>(arr.data());
  std::vector<TextRow> rows;
  rows.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const char* p = base + static_cast<py::ssize_t>(i) * stride;
    if (kind == 'U') {
      size_t units = item / 4;
      uint32_t last = 0;
      while (units > 0) {  // numpy strips trailing NULs from str_ items
        std::memcpy(&last, p + (units - 1) * 4, 4);
        if (last != 0) break;
        --units;
      }
      // UCS-4 rows are read unit by unit with memcpy-free aligned access only when
      // aligned; numpy str_ arrays are 4-byte aligned unless built from raw buffers.
      if (reinterpret_cast<uintptr_t>(p) % alignof(uint32_t) != 0) {
        throw py::value_error("texts array is not aligned; pass np.ascontiguousarray(texts)");
      }
      rows.push_back({p, units, RowKind::kUcs4, mode});
    } else {
      size_t len = item;
      while (len > 0 && p[len - 1] == '\0') --len;
      rows.push_back({p, len, RowKind::kUtf8, mode});
    }
  }
  TextInput in;
  in.source_ = std::make_shared<RowVectorSource>(std::move(rows));
  in.keep_alive_.push_back(arr);
  return in;
}

TextInput TextInput::from_arrow(const py::iterable& chunks, const std::string& errors) {
  const Utf8Mode mode = parse_errors(errors);
  TextInput in;
  auto concat = std::make_shared<ConcatSource>();
  for (py::handle chunk : chunks) {
    auto t = chunk.cast<py::tuple>();
    if (t.size() != 6) throw py::value_error("arrow chunk must be a 6-tuple");
    auto offsets = std::make_shared<py::buffer_info>(t[0].cast<py::buffer>().request());
    // An empty array may come with no data buffer at all.
    std::shared_ptr<py::buffer_info> data;
    if (!t[1].is_none()) data = std::make_shared<py::buffer_info>(t[1].cast<py::buffer>().request());
    std::shared_ptr<py::buffer_info> validity;
    if (!t[2].is_none()) {
      validity = std::make_shared<py::buffer_info>(t[2].cast<py::buffer>().request());
    }
    const auto offset = t[3].cast<size_t>();
    const auto length = t[4].cast<size_t>();
    const bool large = t[5].cast<bool>();
    const size_t width = large ? 8 : 4;
    const auto off_bytes = static_cast<size_t>(offsets->size * offsets->itemsize);
    if (reinterpret_cast<uintptr_t>(offsets->ptr) % width != 0) {
      throw py::value_error("Arrow offsets buffer is not aligned");
    }
    const auto* dptr = data ? static_cast<const uint8_t*>(data->ptr) : nullptr;
    const size_t dlen = data ? static_cast<size_t>(data->size * data->itemsize) : 0;
    const auto* vptr = validity ? static_cast<const uint8_t*>(validity->ptr) : nullptr;
    const size_t vlen = validity ? static_cast<size_t>(validity->size * validity->itemsize) : 0;
    if (large) {
      concat->add(std::make_unique<ArrowStringSource<int64_t>>(
          static_cast<const int64_t*>(offsets->ptr), off_bytes / 8, dptr, dlen, vptr, vlen,
          offset, length, mode));
    } else {
      concat->add(std::make_unique<ArrowStringSource<int32_t>>(
          static_cast<const int32_t*>(offsets->ptr), off_bytes / 4, dptr, dlen, vptr, vlen,
          offset, length, mode));
    }
    in.views_.push_back(offsets);
    if (data) in.views_.push_back(data);
    if (validity) in.views_.push_back(validity);
  }
  in.source_ = concat;
  return in;
}

void raise_row_error(const RowError& err) {
  const std::string row = "row " + std::to_string(err.row);
  switch (err.kind) {
    case RowError::kNull:
      throw py::type_error(row + " is null; expected a string");
    case RowError::kInvalidText:
      throw py::value_error(row + " is not valid UTF-8 (offset " + std::to_string(err.offset) +
                            "); pass errors='replace' to substitute U+FFFD");
    case RowError::kMissingOov:
      throw py::value_error(row + " has a word outside the vocabulary, but the oov_token is "
                                  "missing from word_index (fit the tokenizer first)");
    case RowError::kOutOfMemory:
      throw std::bad_alloc();  // pybind11 raises MemoryError
    default:
      throw py::value_error(row + ": " + err.message);
  }
}

int resolve_threads(const py::object& threads) {
  if (threads.is_none()) return default_threads();
  const int t = threads.cast<int>();
  if (t < 1) throw py::value_error("threads must be >= 1");
  return t;
}

void bind_text_input(py::module_& m) {
  py::class_<TextInput>(m, "TextInput",
                        "Texts snapshotted for the kernel (list, numpy array or Arrow).")
      .def_static("from_sequence", &TextInput::from_sequence, py::arg("texts"),
                  py::arg("errors") = "strict")
      .def_static("from_numpy", &TextInput::from_numpy, py::arg("texts"),
                  py::arg("errors") = "strict")
      .def_static("from_arrow", &TextInput::from_arrow, py::arg("chunks"),
                  py::arg("errors") = "strict")
      .def("__len__", &TextInput::size);
}

}  // namespace critic
