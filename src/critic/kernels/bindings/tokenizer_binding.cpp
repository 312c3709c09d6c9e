// Bindings for WordSplitter, Vocabulary and the fit / encode / pad entry points.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <optional>
#include <stdexcept>

#include "../src/tokenize.hpp"
#include "../src/unicode_case.hpp"
#include "ngrams_binding.hpp"
#include "text_input.hpp"

namespace critic {
namespace {

// UTF-8 of a Python str; lone surrogates are kept (surrogatepass) so that every str has
// exactly one byte string, as it has in the kernel's own decoding.
std::string utf8_of(const py::handle& s) {
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s.ptr(), &n);
  if (p != nullptr) return std::string(p, static_cast<size_t>(n));
  PyErr_Clear();
  py::object b = py::reinterpret_steal<py::object>(
      PyUnicode_AsEncodedString(s.ptr(), "utf-8", "surrogatepass"));
  if (!b) throw py::error_already_set();
  return std::string(PyBytes_AS_STRING(b.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(b.ptr())));
}

py::str str_of(const char* p, size_t n) {
  PyObject* o = PyUnicode_DecodeUTF8(p, static_cast<Py_ssize_t>(n), "surrogatepass");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

std::u32string code_points(const py::str& s) {
  std::u32string out;
  for (py::handle ch : s) out.push_back(static_cast<char32_t>(PyUnicode_READ_CHAR(ch.ptr(), 0)));
  return out;
}

WordSplitter make_splitter(bool lower, bool char_level, const py::str& filters,
                           const py::str& split, const std::string& mode) {
  SplitConfig cfg;
  if (mode == "text_vectorization") {
    cfg.text_vectorization = true;
    return WordSplitter(std::move(cfg));
  }
  if (mode != "keras_tokenizer") {
    throw py::value_error("mode must be 'keras_tokenizer' or 'text_vectorization'");
  }
  cfg.lower = lower;
  cfg.char_level = char_level;
  cfg.filters = code_points(filters);
  cfg.split = utf8_of(split);
  if (!char_level && cfg.split.empty()) throw py::value_error("empty separator");
  return WordSplitter(std::move(cfg));
}

int32_t checked_id(const py::handle& v, const char* what) {
  if (!PyLong_Check(v.ptr())) {
    throw py::type_error(std::string(what) + " must be an int, got " +
                         py::str(py::type::handle_of(v).attr("__name__")).cast<std::string>());
  }
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (overflow != 0 || x < 0 || x > INT32_MAX) {
    throw py::value_error(std::string(what) + " must be between 0 and 2**31 - 1, got " +
                          py::repr(v).cast<std::string>());
  }
  return static_cast<int32_t>(x);
}

// Keras' texts_to_sequences rules, resolved once per word:
//   known word, index < num_words (or num_words falsy)  -> index
//   known word, index >= num_words                      -> oov index, or dropped
//   unknown word                                        -> oov index; dropped if no oov_token
Vocabulary make_vocabulary(const py::dict& word_index, const py::object& num_words,
                           const py::object& oov_token, const py::object& start) {
  long long limit = 0;  // Keras tests `if num_words and i >= num_words`
  if (!num_words.is_none()) {
    int overflow = 0;
    limit = PyLong_AsLongLongAndOverflow(num_words.ptr(), &overflow);
    if (limit == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow > 0) limit = LLONG_MAX;
    if (overflow < 0) limit = LLONG_MIN;
  }
  std::optional<int32_t> oov_index;
  if (!oov_token.is_none() && word_index.contains(oov_token)) {
    oov_index = checked_id(word_index[oov_token], "the oov_token's index");
  }
  const int32_t unknown = oov_token.is_none() ? kDrop : (oov_index ? *oov_index : kOovError);
  const int32_t beyond = oov_index ? *oov_index : kDrop;
  Vocabulary vocab(unknown);
  for (auto item : word_index) {
    if (!PyUnicode_Check(item.first.ptr())) continue;  // never equal to a token
    const int32_t id = checked_id(item.second, "word_index values");
    const int32_t value = (limit != 0 && id >= limit) ? beyond : id;
    const std::string key = utf8_of(item.first);
    vocab.add(key, value);
  }
  if (!start.is_none()) vocab.set_start(checked_id(start, "start"));
  return vocab;
}

PadSpec make_spec(long long maxlen, const std::string& padding, const std::string& truncating,
                  long long value) {
  if (padding != "pre" && padding != "post") {
    throw py::value_error("Padding type \"" + padding + "\" not understood");
  }
  if (truncating != "pre" && truncating != "post") {
    throw py::value_error("Truncating type \"" + truncating + "\" not understood");
  }
  if (maxlen < 0) throw py::value_error("maxlen must be >= 0");
  PadSpec s;
  s.maxlen = maxlen;
  s.pad_pre = padding == "pre";
  s.trunc_pre = truncating == "pre";
  s.value = value;
  return s;
}

py::tuple fit(const WordSplitter& splitter, const TextInput& texts, const py::object& threads) {
  const int t = resolve_threads(threads);
  FitCounts counts;
  RowError err;
  {
    py::gil_scoped_release nogil;
    fit_counts(splitter, texts.source(), t, &counts, &err);
  }
  if (err.has()) raise_row_error(err);
  py::list words(counts.words.size());
  for (size_t i = 0; i < counts.words.size(); ++i) {
    words[i] = str_of(counts.words[i].data(), counts.words[i].size());
  }
  py::list c = py::cast(counts.counts);
  py::list d = py::cast(counts.docs);
  return py::make_tuple(words, c, d, counts.documents);
}

py::list sequences(const WordSplitter& splitter, const Vocabulary& vocab, const TextInput& texts,
                   const py::object& threads, const py::object& ngrams) {
  const int t = resolve_threads(threads);
  const NgramTable* table = ngram_table(ngrams);
  Ragged<int32_t> out;
  RowError err;
  {
    py::gil_scoped_release nogil;
    encode_ragged(splitter, vocab, table, texts.source(), t, &out, &err);
  }
  if (err.has()) raise_row_error(err);
  const size_t n = out.rows();
  py::list result(n);
  for (size_t i = 0; i < n; ++i) {
    const auto a = static_cast<size_t>(out.offsets[i]);
    const auto b = static_cast<size_t>(out.offsets[i + 1]);
    PyObject* row = PyList_New(static_cast<Py_ssize_t>(b - a));
    if (row == nullptr) throw py::error_already_set();
    for (size_t k = a; k < b; ++k) {
      PyList_SET_ITEM(row, static_cast<Py_ssize_t>(k - a), PyLong_FromLong(out.values[k]));
    }
    PyList_SET_ITEM(result.ptr(), static_cast<Py_ssize_t>(i), row);
  }
  return result;
}

template <class T>
py::array_t<T> encode_as(const WordSplitter& splitter, const Vocabulary& vocab,
                         const NgramTable* table, const TextInput& texts, const PadSpec& spec,
                         int threads, const py::object& into) {
  const auto n = static_cast<py::ssize_t>(texts.size());
  const auto width = static_cast<py::ssize_t>(spec.maxlen);
  py::array_t<T> out;
  if (into.is_none()) {
    out = py::array_t<T>({n, width});
  } else {
    // A caller-owned buffer (reused across batches): checked, never reinterpreted.
    if (!py::isinstance<py::array_t<T>>(into)) {
      throw py::type_error("out must be a numpy array of the requested dtype");
    }
    out = into.cast<py::array_t<T>>();
    const bool ok = out.ndim() == 2 && out.shape(0) == n && out.shape(1) == width &&
                    (out.flags() & py::array::c_style) && out.writeable();
    if (!ok) {
      throw py::value_error("out must be a writeable C-contiguous array of shape (" +
                            std::to_string(n) + ", " + std::to_string(width) + ")");
    }
  }
  T* data = out.mutable_data();
  RowError err;
  {
    py::gil_scoped_release nogil;
    encode_padded<T>(splitter, vocab, table, texts.source(), spec, threads, data, &err);
  }
  if (err.has()) raise_row_error(err);
  return out;
}

py::array encode(const WordSplitter& splitter, const Vocabulary& vocab, const TextInput& texts,
                 py::object maxlen, const std::string& padding, const std::string& truncating,
                 long long value, const std::string& dtype, const py::object& threads,
                 const py::object& into, const py::object& ngrams) {
  const int t = resolve_threads(threads);
  const NgramTable* table = ngram_table(ngrams);
  if (!into.is_none() && maxlen.is_none()) throw py::value_error("out needs an explicit maxlen");
  if (dtype != "int32" && dtype != "int64") {
    throw py::value_error("dtype must be 'int32' or 'int64', got '" + dtype + "'");
  }
  if (maxlen.is_none()) {
    // Longest row: tokenize once into ragged storage, then pad.
    Ragged<int32_t> ragged;
    RowError err;
    {
      py::gil_scoped_release nogil;
      encode_ragged(splitter, vocab, table, texts.source(), t, &ragged, &err);
    }
    if (err.has()) raise_row_error(err);
    long long longest = 0;
    for (size_t i = 0; i < ragged.rows(); ++i) {
      longest = std::max<long long>(longest, ragged.offsets[i + 1] - ragged.offsets[i]);
    }
    Ragged<int64_t> wide;
    wide.values.assign(ragged.values.begin(), ragged.values.end());
    wide.offsets = std::move(ragged.offsets);
    const PadSpec spec = make_spec(longest, padding, truncating, value);
    const auto n = static_cast<py::ssize_t>(wide.rows());
    // The GIL is released for the padding only: returning the array is an incref.
    if (dtype == "int32") {
      py::array_t<int32_t> out({n, static_cast<py::ssize_t>(longest)});
      int32_t* d = out.mutable_data();
      {
        py::gil_scoped_release nogil;
        pad_ragged<int64_t, int32_t>(wide, spec, t, d);
      }
      return out;
    }
    py::array_t<int64_t> out({n, static_cast<py::ssize_t>(longest)});
    int64_t* d = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      pad_ragged<int64_t, int64_t>(wide, spec, t, d);
    }
    return out;
  }
  const PadSpec spec = make_spec(maxlen.cast<long long>(), padding, truncating, value);
  if (dtype == "int32") return encode_as<int32_t>(splitter, vocab, table, texts, spec, t, into);
  return encode_as<int64_t>(splitter, vocab, table, texts, spec, t, into);
}

// pad_sequences on a list of lists of Python ints. Returns None when the input is not of
// that plain shape, so the Python layer can take its general (numpy) path.
py::object pad(const py::handle& sequences, py::object maxlen, const std::string& padding,
               const std::string& truncating, long long value, const std::string& dtype,
               const py::object& threads) {
  const int t = resolve_threads(threads);
  const bool is32 = dtype == "int32";
  if (!is32 && dtype != "int64") return py::none();
  py::object seq = py::reinterpret_steal<py::object>(
      PySequence_Fast(sequences.ptr(), "sequences must be iterable"));
  if (!seq) {
    PyErr_Clear();
    return py::none();
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
  PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
  Ragged<int64_t> ragged;
  ragged.offsets.reserve(static_cast<size_t>(n) + 1);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* row = items[i];
    if (!PyList_Check(row) && !PyTuple_Check(row)) return py::none();
    const Py_ssize_t m = PySequence_Fast_GET_SIZE(row);
    PyObject** vals = PySequence_Fast_ITEMS(row);
    for (Py_ssize_t k = 0; k < m; ++k) {
      if (!PyLong_CheckExact(vals[k])) return py::none();
      int overflow = 0;
      const long long x = PyLong_AsLongLongAndOverflow(vals[k], &overflow);
      if (overflow != 0 || (is32 && (x < INT32_MIN || x > INT32_MAX))) {
        throw std::overflow_error("Python integer " + py::repr(vals[k]).cast<std::string>() +
                                  " out of bounds for " + dtype);
      }
      ragged.values.push_back(x);
    }
    ragged.offsets.push_back(static_cast<int64_t>(ragged.values.size()));
  }
  long long width;
  if (maxlen.is_none()) {
    if (n == 0) {
      throw py::value_error(
          "zero-size array to reduction operation maximum which has no identity");
    }
    width = 0;
    for (size_t i = 0; i < ragged.rows(); ++i) {
      width = std::max<long long>(width, ragged.offsets[i + 1] - ragged.offsets[i]);
    }
  } else {
    width = maxlen.cast<long long>();
  }
  const PadSpec spec = make_spec(width, padding, truncating, value);
  if (is32) {
    py::array_t<int32_t> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(width)});
    int32_t* d = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      pad_ragged<int64_t, int32_t>(ragged, spec, t, d);
    }
    return std::move(out);
  }
  py::array_t<int64_t> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(width)});
  int64_t* d = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    pad_ragged<int64_t, int64_t>(ragged, spec, t, d);
  }
  return std::move(out);
}

}  // namespace

void bind_tokenizer(py::module_& m) {
  py::class_<WordSplitter>(m, "WordSplitter",
                           "Keras text_to_word_sequence / char_level splitting, in C++.")
      .def(py::init(&make_splitter), py::arg("lower"), py::arg("char_level"), py::arg("filters"),
           py::arg("split"), py::arg("mode") = "keras_tokenizer")
      .def(
          "split",
          [](const WordSplitter& s, const TextInput& texts) {
            // Tokens of each text, as lists of str (for tests and debugging).
            py::list out;
            for (size_t i = 0; i < texts.size(); ++i) {
              std::vector<std::string> toks;
              std::string scratch;
              SplitScratch buf;
              const TextRow r = texts.source().row(i);
              if (r.kind == RowKind::kNull) raise_row_error({RowError::kNull, i, 0, {}});
              const uint8_t* data;
              size_t len;
              Utf8Mode mode;
              size_t bad = 0;
              if (!row_as_utf8(r, scratch, &data, &len, &mode, &bad)) {
                raise_row_error({RowError::kInvalidText, i, bad, {}});
              }
              const SplitStatus st = s.split(data, len, mode, buf, [&](const char* p, size_t k) {
                toks.emplace_back(p, k);
              });
              if (!st.ok) raise_row_error({RowError::kInvalidText, i, st.error_offset, {}});
              py::list row;
              for (const auto& tk : toks) row.append(str_of(tk.data(), tk.size()));
              out.append(row);
            }
            return out;
          },
          py::arg("texts"));

  py::class_<Vocabulary>(m, "Vocabulary", "A word -> id table with Keras' OOV rules applied.")
      .def(py::init(&make_vocabulary), py::arg("word_index"), py::arg("num_words"),
           py::arg("oov_token"), py::arg("start") = py::none())
      .def("__len__", &Vocabulary::size);

  m.def("fit", &fit, py::arg("splitter"), py::arg("texts"), py::arg("threads") = py::none(),
        "Count words: returns (words in first-occurrence order, counts, doc counts, n_docs).");
  m.def("sequences", &sequences, py::arg("splitter"), py::arg("vocab"), py::arg("texts"),
        py::arg("threads") = py::none(), py::arg("ngrams") = py::none(),
        "texts_to_sequences (n-gram ids appended with ngrams): a list of lists of ints.");
  m.def("encode", &encode, py::arg("splitter"), py::arg("vocab"), py::arg("texts"),
        py::arg("maxlen"), py::arg("padding"), py::arg("truncating"), py::arg("value"),
        py::arg("dtype"), py::arg("threads") = py::none(), py::arg("out") = py::none(),
        py::arg("ngrams") = py::none(),
        "Tokenize, look up, add n-grams and pad in one pass into a [n, maxlen] integer array.");
  m.def("pad", &pad, py::arg("sequences"), py::arg("maxlen"), py::arg("padding"),
        py::arg("truncating"), py::arg("value"), py::arg("dtype"),
        py::arg("threads") = py::none(),
        "pad_sequences for lists of ints; None if the input needs the general path.");
  m.def("unicode_version", &unicode_version,
        "Unicode version of the lower-casing tables (that of the building Python).");
  m.def("default_threads", &default_threads);
}

}  // namespace critic
