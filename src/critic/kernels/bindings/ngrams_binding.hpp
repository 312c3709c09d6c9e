// Bindings for NgramTable, n-gram fitting and bags of ids (texts_to_matrix).
#pragma once

#include <pybind11/pybind11.h>

#include "../src/ngrams.hpp"

namespace py = pybind11;

namespace critic {

// The NgramTable behind an `ngrams` argument, or null for None.
const NgramTable* ngram_table(const py::object& ngrams);

void bind_ngrams(py::module_& m);

}  // namespace critic
