// Bindings for NgramTable, n-gram fitting and bags of ids (texts_to_matrix).
#include "ngrams_binding.hpp"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "../src/tokenize.hpp"
#include "text_input.hpp"

namespace critic {

const NgramTable* ngram_table(const py::object& ngrams) {
  if (ngrams.is_none()) return nullptr;
  if (!py::isinstance<NgramTable>(ngrams)) {
    throw py::type_error("ngrams must be an NgramTable or None");
  }
  return &ngrams.cast<const NgramTable&>();
}

namespace {

template <class T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

NgramTable make_table(int order, int32_t base,
                      const py::array_t<uint64_t, py::array::c_style | py::array::forcecast>& keys,
                      int64_t buckets, bool distinct) {
  if (keys.ndim() != 1) throw py::value_error("keys must be a 1-D array");
  std::vector<uint64_t> k(keys.data(), keys.data() + keys.size());
  try {
    return NgramTable(order, base, std::move(k), buckets, distinct);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

py::tuple fit_ngrams_py(const WordSplitter& splitter, const Vocabulary& vocab,
                        const TextInput& texts, int order, const py::object& threads) {
  if (order < 2 || order > kMaxNgramOrder) {
    throw py::value_error("order must be 2 or 3, got " + std::to_string(order));
  }
  const int t = resolve_threads(threads);
  NgramCounts counts;
  RowError err;
  {
    py::gil_scoped_release nogil;
    fit_ngrams(splitter, vocab, texts.source(), order, t, &counts, &err);
  }
  if (err.has()) raise_row_error(err);
  return py::make_tuple(to_array(counts.keys), to_array(counts.counts), to_array(counts.docs));
}

BagMode bag_mode(const std::string& mode) {
  if (mode == "binary") return BagMode::kBinary;
  if (mode == "count") return BagMode::kCount;
  if (mode == "freq") return BagMode::kFreq;
  if (mode == "tfidf") return BagMode::kTfidf;
  throw py::value_error("Unknown vectorization mode: " + mode);
}

template <class T>
py::object bags_as(const WordSplitter& splitter, const Vocabulary& vocab,
                   const NgramTable* table, const TextInput& texts, const BagSpec& spec,
                   bool sparse, int threads) {
  RowError err;
  if (sparse) {
    SparseRows<T> rows;
    {
      py::gil_scoped_release nogil;
      encode_bags_sparse<T>(splitter, vocab, table, texts.source(), spec, threads, &rows, &err);
    }
    if (err.has()) raise_row_error(err);
    return py::make_tuple(to_array(rows.indptr), to_array(rows.indices), to_array(rows.values));
  }
  const auto n = static_cast<py::ssize_t>(texts.size());
  py::array_t<T> out({n, static_cast<py::ssize_t>(spec.columns)});
  T* data = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    std::memset(data, 0, static_cast<size_t>(n) * static_cast<size_t>(spec.columns) * sizeof(T));
    encode_bags_dense<T>(splitter, vocab, table, texts.source(), spec, threads, data, &err);
  }
  if (err.has()) raise_row_error(err);
  return std::move(out);
}

py::object bags(const WordSplitter& splitter, const Vocabulary& vocab, const TextInput& texts,
                long long columns, const std::string& mode, const py::object& idf,
                const std::string& dtype, bool sparse, const py::object& threads,
                const py::object& ngrams) {
  const int t = resolve_threads(threads);
  const NgramTable* table = ngram_table(ngrams);
  if (columns < 1 || columns > INT32_MAX) {
    throw py::value_error("columns must be between 1 and 2**31 - 1");
  }
  if (dtype != "float32" && dtype != "float64") {
    throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
  }
  BagSpec spec;
  spec.mode = bag_mode(mode);
  spec.columns = columns;
  py::array_t<double, py::array::c_style | py::array::forcecast> weights;
  if (spec.mode == BagMode::kTfidf) {
    if (idf.is_none()) throw py::value_error("mode 'tfidf' needs idf weights");
    weights = idf.cast<py::array_t<double, py::array::c_style | py::array::forcecast>>();
    if (weights.ndim() != 1 || weights.shape(0) != columns) {
      throw py::value_error("idf must be a 1-D array of length columns");
    }
    spec.idf = weights.data();
  }
  if (dtype == "float32") return bags_as<float>(splitter, vocab, table, texts, spec, sparse, t);
  return bags_as<double>(splitter, vocab, table, texts, spec, sparse, t);
}

}  // namespace

void bind_ngrams(py::module_& m) {
  py::class_<NgramTable>(m, "NgramTable",
                         "n-gram ids appended to word ids: fitted keys or hashed buckets.")
      .def(py::init(&make_table), py::arg("order"), py::arg("base"), py::arg("keys"),
           py::arg("buckets") = 0, py::arg("distinct") = false)
      .def_property_readonly("order", &NgramTable::order)
      .def_property_readonly("base", &NgramTable::base)
      .def_property_readonly("distinct", &NgramTable::distinct)
      .def_property_readonly("hashed", &NgramTable::hashed)
      .def("__len__", [](const NgramTable& t) { return t.size(); });
  m.def("fit_ngrams", &fit_ngrams_py, py::arg("splitter"), py::arg("vocab"), py::arg("texts"),
        py::arg("order"), py::arg("threads") = py::none(),
        "n-gram keys in first-occurrence order with their counts and document counts.");
  m.def("bags", &bags, py::arg("splitter"), py::arg("vocab"), py::arg("texts"),
        py::arg("columns"), py::arg("mode"), py::arg("idf"), py::arg("dtype"),
        py::arg("sparse") = false, py::arg("threads") = py::none(),
        py::arg("ngrams") = py::none(),
        "texts_to_matrix: a dense [n, columns] array, or CSR (indptr, indices, values).");
}

}  // namespace critic
