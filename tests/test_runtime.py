"""critic.Runtime: a real bundle, real onnxruntime, checked against Keras on real reviews."""

from __future__ import annotations

import logging
import os
import threading

import numpy as np
import pytest

import critic

pytestmark = pytest.mark.tf

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained(sample_bundle):
    return sample_bundle


def test_predict_equals_keras_on_raw_reviews(trained, imdb_test):
    bundle, model, tok = trained
    rt = critic.Runtime.load(bundle, batch_size=64)
    texts = imdb_test[:500]
    expected = model.predict(tok.encode(texts, maxlen=80), verbose=0)[:, 0]
    p = rt.predict(texts)
    assert p.dtype == np.float32 and p.shape == (500,)
    np.testing.assert_allclose(p, expected, atol=1e-5)
    labels = rt.predict_labels(texts)
    assert list(labels) == ["positive" if v >= 0.5 else "negative" for v in p]


def test_inputs_list_numpy_and_arrow_agree(trained, imdb_test):
    pa = pytest.importorskip("pyarrow")
    rt = critic.Runtime.load(trained[0], batch_size=33)
    texts = imdb_test[:100]
    p = rt.predict(texts)
    np.testing.assert_array_equal(rt.predict(np.array(texts)), p)
    np.testing.assert_array_equal(rt.predict(np.array(texts, dtype=object)), p)
    np.testing.assert_array_equal(rt.predict(pa.array(texts)), p)
    np.testing.assert_array_equal(rt.predict(pa.chunked_array([texts[:40], texts[40:]])), p)
    # Batch size changes nothing but the batching.
    np.testing.assert_allclose(rt.predict(texts, batch_size=1), p, atol=1e-6)
    np.testing.assert_allclose(rt.predict(texts, batch_size=1000), p, atol=1e-6)


def test_empty_and_edge_inputs(trained):
    rt = critic.Runtime.load(trained[0])
    assert rt.predict([]).shape == (0,)
    p = rt.predict(["", " ", "!!!", "x" * 200_000])
    assert np.isfinite(p).all()
    with pytest.raises(TypeError, match="single text"):
        rt.predict("A wonderful film.")


def test_a_bad_row_is_named_by_predict_and_kept_by_score(trained, imdb_test):
    rt = critic.Runtime.load(trained[0], batch_size=4)
    texts = [*imdb_test[:9], None, 5, imdb_test[9], b"caf\xe9 ok", b"fine bytes"]
    with pytest.raises(TypeError, match=r"^row 9 is None"):
        rt.predict(texts)
    p, errors = rt.score(texts)
    assert len(p) == len(errors) == len(texts)
    bad = [i for i, e in enumerate(errors) if e is not None]
    assert bad == [9, 10, 12]
    assert "None" in errors[9] and "int" in errors[10] and "UTF-8" in errors[12]
    assert np.isnan(p[bad]).all() and np.isfinite(np.delete(p, bad)).all()
    # Good rows score exactly as they do alone.
    good = [t for i, t in enumerate(texts) if i not in bad]
    np.testing.assert_allclose(np.delete(p, bad), rt.predict(good), atol=1e-6)
    # Bad rows in two lanes: the first one in reading order is named, whichever lane ends first.
    two = critic.Runtime.load(trained[0], batch_size=4, threads=2)
    with pytest.raises(TypeError, match=r"^row 1 is None"):
        two.predict([imdb_test[0], None, *imdb_test[1:8], 5])


def test_one_runtime_shared_by_threads(trained, imdb_test):
    rt = critic.Runtime.load(trained[0], batch_size=16)
    expected = rt.predict(imdb_test[:200])
    results, failures = {}, []

    def work(k: int) -> None:
        try:
            for _ in range(3):
                lo = 10 * k
                results[k] = rt.predict(imdb_test[lo : lo + 100])
        except Exception as e:
            failures.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    for k, p in results.items():
        np.testing.assert_allclose(p, expected[10 * k : 10 * k + 100], atol=1e-6)


def test_int8_variant(trained, imdb_test):
    fp32 = critic.Runtime.load(trained[0])
    int8 = critic.Runtime.load(trained[0], variant="int8")
    texts = imdb_test[:200]
    assert np.abs(int8.predict(texts) - fp32.predict(texts)).max() < 0.1
    with pytest.raises(ValueError, match="no 'fp16' model"):
        critic.Runtime.load(trained[0], variant="fp16")


def test_cuda_request_falls_back_to_cpu_and_says_so_once(trained, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA; the fallback is what is tested here")
    from critic.serve import providers

    providers._said.clear()
    with caplog.at_level(logging.WARNING, logger="critic.runtime"):
        a = critic.Runtime.load(trained[0], device="cuda")
        b = critic.Runtime.load(trained[0], device="cuda")
    assert a.device == b.device == "cpu"
    assert a.session.get_providers() == ["CPUExecutionProvider"]
    said = [r.message for r in caplog.records if "CUDA" in r.message]
    assert len(said) == 1 and "running on CPU" in said[0]
    with pytest.raises(ValueError, match="device must be one of"):
        critic.Runtime.load(trained[0], device="tpu")


def test_the_gpu_build_without_cuda_says_one_line(trained, tmp_path):
    """With the `gpu` extra (onnxruntime-gpu) on a machine without CUDA's libraries,
    onnxruntime printed a red ERROR block about libcublasLt and a warning before critic's own
    notice: only critic's line shows now. The GPU build comes from the package registry into
    a folder of its own, ahead of the CPU build on the path."""
    import subprocess
    import sys

    target = tmp_path / "onnxruntime-gpu"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         "onnxruntime-gpu"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import sys, onnxruntime as ort, critic\n"
        "assert 'CUDAExecutionProvider' in ort.get_available_providers(), 'not the GPU build'\n"
        "rt = critic.Runtime.load(sys.argv[1], device='cuda')\n"
        "print(rt.device, round(float(rt.predict(['A fine film.'])[0]), 6))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(trained[0])],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    want = round(float(critic.Runtime.load(trained[0]).predict(["A fine film."])[0]), 6)
    assert run.stdout.split() == ["cpu", str(want)]
    assert run.stderr.splitlines() == ["critic: onnxruntime could not start CUDA; running on CPU"]


def test_cpu_sessions_are_tuned_for_throughput(trained):
    """Parallel lanes, each running a single-threaded session call: no thread waits on
    another's onnxruntime thread pool, and none spins between calls."""
    rt = critic.Runtime.load(trained[0], threads=2)
    opts = rt.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and rt._pool._max_workers == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_runtime_runs_without_tensorflow_or_ray(trained, imdb_test):
    import json
    import subprocess
    import sys

    from helpers import BLOCKER

    code = BLOCKER + (
        "import json, sys, critic\n"
        "rt = critic.Runtime.load(sys.argv[1])\n"
        "print(json.dumps(rt.predict(json.loads(sys.argv[2])).tolist()))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'ray', 'tf2onnx'}))\n"
    )
    texts = imdb_test[:20]
    args = [sys.executable, "-c", code, str(trained[0]), json.dumps(texts)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    probabilities, imported = result.stdout.splitlines()
    assert imported == "[]"
    expected = critic.Runtime.load(trained[0]).predict(texts)
    np.testing.assert_allclose(json.loads(probabilities), expected, atol=1e-6)


def test_the_padding_skipping_window_gives_the_full_models_answers(trained, imdb_test):
    _, model, tok = trained
    windowed = critic.Runtime.load(trained[0], batch_size=32)
    full = critic.Runtime.load(trained[0], batch_size=32, window=False)
    assert windowed.window is not None and full.window is None
    # Short, empty, exactly-maxlen and truncated reviews, in one mixed batch.
    texts = [*imdb_test[:300], "", "Dull.", " ".join(["good"] * 80), " ".join(["bad"] * 500)]
    p = windowed.predict(texts)
    np.testing.assert_allclose(p, full.predict(texts), atol=1e-5)
    expected = model.predict(tok.encode(texts, maxlen=80), verbose=0)[:, 0]
    np.testing.assert_allclose(p, expected, atol=1e-5)
    assert ((p >= 0.5) == (expected >= 0.5)).all()
