// The private extension module critic.kernels._core.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace critic {
void bind_text_input(py::module_& m);
void bind_tokenizer(py::module_& m);
void bind_ngrams(py::module_& m);
void bind_csv_scan(py::module_& m);
void bind_csv_rows(py::module_& m);
}  // namespace critic

PYBIND11_MODULE(_core, m) {
  m.doc() = "critic's C++ text kernels: Keras-exact tokenization and padding, the CSV layout scan and reader.";
  m.attr("__version__") = CRITIC_VERSION;  // the project's version, from pyproject.toml
  critic::bind_text_input(m);
  critic::bind_tokenizer(m);
  critic::bind_ngrams(m);
  critic::bind_csv_scan(m);
  critic::bind_csv_rows(m);
}
