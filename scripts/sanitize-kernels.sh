#!/usr/bin/env bash
# The C++ kernel as a Debug build with AddressSanitizer + UBSan, under the kernel tests.
#
# Debug (no NDEBUG) also turns on pybind11's check that the GIL is held for every reference
# count change, so a Python object touched without the GIL fails here instead of corrupting
# memory somewhere else. The build goes into its own venv (.venv-sanitize), which sees the
# main venv's packages (numpy, pytest, TensorFlow as the Keras reference) but its own critic.
#
#   bash scripts/sanitize-kernels.sh            # after the README's install (.venv)
#   bash scripts/sanitize-kernels.sh -k encode  # extra pytest arguments
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=.venv
SAN=.venv-sanitize
[ -x "$MAIN/bin/python" ] || { echo "sanitize: run the README's install first ($MAIN)" >&2; exit 2; }
[ -x "$SAN/bin/python" ] || python3 -m venv "$SAN"
site_of() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
# The main venv's packages after this venv's own (a plain path: its .pth files, such as an
# editable critic's import hook, are not run here).
site_of "$MAIN" > "$(site_of "$SAN")/main-venv.pth"
"$SAN/bin/python" -m pip install -q --no-deps --ignore-installed \
  -Ccmake.build-type=Debug -Ccmake.define.CRITIC_SANITIZE=ON -Cbuild-dir=build/sanitize .

ASAN_LIB="$(g++ -print-file-name=libasan.so)"
UBSAN_LIB="$(g++ -print-file-name=libubsan.so)"
export LD_PRELOAD="$ASAN_LIB $UBSAN_LIB"
# Python's own allocations are not ours to check for leaks; everything else aborts.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
cd tests  # import critic from the sanitized install, not the source tree
exec "../$SAN/bin/python" -m pytest -q -p no:cacheprovider --rootdir=.. -c ../pyproject.toml \
  test_encode_inputs.py test_pad_sequences.py test_fuzz.py test_imdb_index.py \
  test_tokenizer_parity.py test_text_vectorization.py test_ngrams.py test_csv_scan.py \
  --deselect tests/test_encode_inputs.py::test_out_of_memory_on_a_worker_thread_is_a_memory_error \
  "$@"  # (ASan reserves terabytes of address space: an RLIMIT_AS test cannot run under it)
