"""critic export: real tf2onnx conversion, real onnxruntime, verified and sealed bundles."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from critic.bundle import BundleError, load_bundle, seal_manifest
from critic.data.datasets import read_labeled
from critic.data.sample import sample_path
from critic.serve.runtime import bundle_tokenizer

pytestmark = pytest.mark.tf

pytest.importorskip("tf2onnx")
pytest.importorskip("keras")

TINY = {"num_words": 300, "maxlen": 24, "embedding_dim": 4, "units": 4, "filters": 4, "hidden": 8}


@pytest.fixture(scope="module")
def sample():
    train = read_labeled(sample_path("train"))
    return train.texts[:600], train.labels[:600].astype(np.float32)


@pytest.fixture(scope="module")
def keras_bundle(tmp_path_factory, sample, keras_text, keras_pad):
    """A model trained on sequences from Keras' own Tokenizer, exported from its checkpoint
    with that tokenizer's JSON (so the bundle carries a Keras-fitted tokenizer)."""
    from critic.export import export_bundle, from_checkpoint
    from critic.orchestrator.zoo import ModelSpec, build_model

    texts, labels = sample
    tmp = tmp_path_factory.mktemp("keras-bundle")
    tok = keras_text.Tokenizer(num_words=2000, oov_token="<OOV>")
    tok.fit_on_texts(texts)
    x = keras_pad(tok.texts_to_sequences(texts), maxlen=64)
    spec = {**TINY, "family": "lstm", "num_words": 2000, "maxlen": 64, "units": 8}
    model = build_model(ModelSpec.from_dict(spec))
    model.fit(x, labels, epochs=1, batch_size=64, verbose=0)
    model.save(tmp / "model.keras")
    (tmp / "tokenizer.json").write_text(tok.to_json(), encoding="utf-8")
    source = from_checkpoint(tmp / "model.keras", tokenizer=tmp / "tokenizer.json")
    report = export_bundle(source, tmp / "bundle", quantize="int8", log=lambda _: None)
    return report, model, tok


def test_bundle_round_trip_equals_keras(keras_bundle, keras_pad, imdb_test):
    from critic.export.verify import onnx_predict, session

    report, model, keras_tok = keras_bundle
    bundle = load_bundle(report.path)
    texts = imdb_test[:300]
    # The Keras-fitted tokenizer, carried through the bundle, gives Keras' ids exactly.
    ids = bundle_tokenizer(bundle).encode(texts, maxlen=bundle.maxlen)
    expected_ids = keras_pad(keras_tok.texts_to_sequences(texts), maxlen=64)
    np.testing.assert_array_equal(ids, expected_ids)
    # And the ONNX model gives Keras' probabilities on them.
    p_onnx = onnx_predict(session(bundle.model_file().read_bytes()), ids)
    p_keras = model.predict(expected_ids, verbose=0)[:, 0]
    assert np.abs(p_onnx - p_keras).max() <= 1e-5
    assert ((p_onnx >= 0.5) == (p_keras >= 0.5)).all()


def test_bundle_tokenizer_json_still_loads_in_keras(keras_bundle, keras_text, imdb_test):
    report, _, keras_tok = keras_bundle
    reloaded = keras_text.tokenizer_from_json((report.path / "tokenizer.json").read_text())
    texts = imdb_test[:50]
    assert reloaded.texts_to_sequences(texts) == keras_tok.texts_to_sequences(texts)


def test_bundle_metadata(keras_bundle):
    meta = load_bundle(keras_bundle[0].path).meta
    assert meta["parity"]["rows"] == 1000 and meta["parity"]["label_flips"] == 0
    assert meta["parity"]["max_abs_diff"] <= 1e-5
    assert meta["model"]["recurrent"] == "fused" and "LSTM" in meta["model"]["op_types"]
    assert meta["model"]["opset"] == 17 and meta["model"]["maxlen"] == 64
    assert {"tensorflow", "tf2onnx", "onnx", "critic"} <= set(meta["versions"])
    assert set(meta["files"]) == {
        "model.onnx",
        "model.window.onnx",
        "model.int8.onnx",
        "tokenizer.json",
        "README.md",
    }
    int8 = meta["models"]["int8"]
    assert 0 < int8["bytes"] < meta["models"]["fp32"]["bytes"]
    assert 0 < int8["max_abs_diff_vs_fp32"] < 0.1
    card = (keras_bundle[0].path / "README.md").read_text()
    assert "# critic review model: lstm" in card and "Intended use" in card
    # Keras truncates 'pre': a long review's last 64 tokens are read, not its first.
    assert "Only the last 64 tokens of a longer review are read (truncating 'pre')" in card


def _copy(report, tmp_path: Path) -> Path:
    return Path(shutil.copytree(report.path, tmp_path / "copy"))


BUNDLE_FILES = [
    "model.onnx",
    "model.window.onnx",
    "model.int8.onnx",
    "tokenizer.json",
    "README.md",
    "bundle.json",
]


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_a_flipped_byte_in_any_file_is_refused(keras_bundle, tmp_path, name):
    folder = _copy(keras_bundle[0], tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=re.escape(name)):
        load_bundle(folder)


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_a_missing_file_is_refused(keras_bundle, tmp_path, name):
    folder = _copy(keras_bundle[0], tmp_path)
    (folder / name).unlink()
    with pytest.raises(BundleError, match=f"incomplete bundle, {re.escape(name)} is missing"):
        load_bundle(folder)


def test_a_truncated_model_is_refused(keras_bundle, tmp_path):
    folder = _copy(keras_bundle[0], tmp_path)
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[:-100])
    with pytest.raises(BundleError, match=rf"expected {len(data)} bytes, found {len(data) - 100}"):
        load_bundle(folder)


def test_an_unknown_format_version_is_refused(keras_bundle, tmp_path):
    folder = _copy(keras_bundle[0], tmp_path)
    meta = json.loads((folder / "bundle.json").read_text())
    meta["format_version"] = 2
    (folder / "bundle.json").write_bytes(seal_manifest(meta))  # consistently re-sealed
    with pytest.raises(BundleError, match=r"unsupported bundle format version 2 .*upgrade critic"):
        load_bundle(folder)


def _resealed(folder: Path, edit) -> None:
    meta = json.loads((folder / "bundle.json").read_text())
    edit(meta)
    (folder / "bundle.json").write_bytes(seal_manifest(meta))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["models"]["fp32"].update(file="/abs/evil.onnx"), "models.fp32.file must"),
        (
            lambda m: m["models"]["fp32"].update(file="../../outside/evil.onnx"),
            "models.fp32.file must name a checked .onnx entry",
        ),
        (lambda m: m["window"].update(file="../../../../../etc/passwd"), "window.file must"),
        (lambda m: m["models"]["fp32"].update(file="extra.onnx"), "models.fp32.file must"),
        (lambda m: m["models"]["int8"].update(file="README.md"), "models.int8.file must"),
        (lambda m: m["files"].update({"README.md": "abc"}), "files.README.md must be"),
        (lambda m: m["files"].update({"../x.onnx": m["files"]["README.md"]}), "invalid file"),
        (lambda m: m.update(labels=["only"]), "labels must list at least two label names"),
        (lambda m: m.update(labels=None), "labels must be a list"),
        (lambda m: m.update(labels=["a", "b", "a"]), "labels must be different names"),
        (lambda m: m.update(threshold="abc"), "threshold must be a number in [0, 1], got 'abc'"),
        (lambda m: m.pop("models"), "models must be a table of variants"),
        (lambda m: m["model"].pop("maxlen"), "model.maxlen must be an integer"),
        (lambda m: m.update(files=[]), "'files' must be a table"),
    ],
)
def test_a_resealed_bundle_with_bad_fields_is_refused(keras_bundle, tmp_path, edit, message):
    """A re-sealed bundle.json can name any file or hold any value: the loader opens only
    checked entries of its own folder and names the bad field."""
    folder = _copy(keras_bundle[0], tmp_path)
    (folder / "extra.onnx").write_bytes((folder / "model.onnx").read_bytes())  # not in files
    _resealed(folder, edit)
    with pytest.raises(BundleError, match=re.escape(message)):
        load_bundle(folder)


def test_a_linked_file_is_refused(keras_bundle, tmp_path):
    folder = _copy(keras_bundle[0], tmp_path)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((folder / "model.onnx").read_bytes())  # the same bytes, elsewhere
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match=r"model\.onnx: is a link"):
        load_bundle(folder)


def test_the_runtime_runs_the_bytes_that_were_checked(keras_bundle, tmp_path):
    """The model is read once, hashed and loaded from those bytes: replacing the file after
    the check changes nothing the runtime runs."""
    import critic

    folder = _copy(keras_bundle[0], tmp_path)
    bundle = load_bundle(folder)
    (folder / "model.onnx").write_bytes(b"replaced after the check")
    runtime = critic.Runtime(bundle)
    texts = ["A fine film.", "Dull and far too long.", "not bad at all"]
    # The checked model's own probabilities (the file's new bytes are not ONNX at all).
    expected = critic.Runtime.load(keras_bundle[0].path).predict(texts)
    np.testing.assert_array_equal(runtime.predict(texts), expected)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a bundle directory"):
        load_bundle(tmp_path / "nothing")
    with pytest.raises(BundleError, match=r"bundle\.json is missing"):
        load_bundle(tmp_path)


def _data_folder(tmp_path: Path, texts, labels, maxlen: int):
    """Real sequences of the sample, laid out like a sweep's data folder."""
    from critic.kernels import Tokenizer

    tok = Tokenizer(num_words=TINY["num_words"], oov_token="<OOV>")
    tok.fit_on_texts(texts)
    x = tok.encode(texts, maxlen=maxlen)
    np.save(tmp_path / "x_val.npy", x[:300])
    np.save(tmp_path / "y_val.npy", labels[:300])
    np.save(tmp_path / "x_test.npy", x[300:])
    np.save(tmp_path / "y_test.npy", labels[300:])
    return tok.to_json()


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory, sample):
    folder = tmp_path_factory.mktemp("data")
    return folder, _data_folder(folder, *sample, maxlen=TINY["maxlen"])


FAMILIES_TO_EXPORT = [
    ("lstm", {}),
    ("lstm", {"reverse": True}),
    ("lstm_dropout", {}),
    ("lstm_recurrent_dropout", {}),
    ("cnn_lstm", {}),
    ("stacked_lstm", {}),
    ("bilstm", {}),
    ("gru", {}),
    ("bigru", {}),
    ("simple_rnn", {}),
    ("conv1d", {}),
    ("conv1d", {"embedding_dropout": 0.3}),
    ("lstm", {"embedding_dropout": 0.3}),
    ("flatten", {}),
]


@pytest.mark.parametrize(("family", "options"), FAMILIES_TO_EXPORT)
def test_every_family_exports_and_verifies(tmp_path, data_folder, family, options):
    from critic.export import ExportSource, export_bundle
    from critic.orchestrator.zoo import ModelSpec, build_model

    folder, tokenizer_json = data_folder
    model = build_model(ModelSpec.from_dict({**TINY, "family": family, **options}))
    model.save(tmp_path / "model.keras")
    source = ExportSource(tmp_path / "model.keras", tokenizer_json, data=folder)
    messages = []
    report = export_bundle(source, tmp_path / "b", quantize="int8", log=messages.append)
    meta = load_bundle(report.path).meta
    # 600 real sequences, topped up with random ones to the 1000 verified by default
    assert meta["parity"]["rows"] == 1000 and meta["parity"]["source"] == "val+test+random ids"
    assert meta["parity"]["max_abs_diff"] <= 1e-5 and meta["parity"]["label_flips"] == 0
    assert meta["metrics"]["val_accuracy"] is not None
    # The padding-skipping window model exists exactly for the single forward LSTM families.
    single_lstm = family in ("lstm", "lstm_dropout", "lstm_recurrent_dropout")
    assert ("window" in meta) == (single_lstm and not options.get("reverse"))
    if "window" in meta:
        assert meta["window"]["parity"]["max_abs_diff"] <= 1e-5
        assert meta["window"]["parity"]["label_flips"] == 0
    if meta["model"]["recurrent"] != "loop":
        assert "int8" in meta["models"]
    if "int8" not in meta["models"]:  # a Loop graph onnxruntime cannot quantize: said, not fatal
        assert meta["notes"][0].startswith("int8 skipped: onnxruntime cannot quantize")
        assert messages == [f"critic export: {meta['notes'][0]}"]


def test_describe_graph_reads_the_recurrence_from_the_ops():
    """What a bundle records about its graph comes from the graph's ops, whichever converter
    version made them: fused LSTM/GRU ops, a Loop run step by step, or no recurrence."""
    from onnx import TensorProto, helper

    from critic.export.convert import describe_graph

    def graph(*ops: str):
        nodes = [helper.make_node(op, ["x"], [f"y{i}"]) for i, op in enumerate(ops)]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        outs = [
            helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1]) for i in range(len(ops))
        ]
        return helper.make_model(
            helper.make_graph(nodes, "g", [x], outs), opset_imports=[helper.make_opsetid("", 15)]
        )

    fused = describe_graph(graph("Gather", "LSTM", "Sigmoid"))
    assert (fused["recurrent"], fused["recurrent_ops"], fused["opset"]) == ("fused", ["LSTM"], 15)
    assert fused["op_types"] == {"Gather": 1, "LSTM": 1, "Sigmoid": 1}
    # A Loop anywhere makes the graph step-by-step, fused ops or not.
    loop = describe_graph(graph("GRU", "Loop"))
    assert (loop["recurrent"], loop["recurrent_ops"]) == ("loop", ["GRU", "Loop"])
    assert describe_graph(graph("Conv", "MatMul"))["recurrent"] == "none"


def test_families_record_how_their_recurrence_converted(tmp_path, data_folder):
    """Each family's converted graph is described by its own ops: recurrent families hold a
    recurrent op (fused or a loop), conv1d none (which one tf2onnx picks is its business)."""
    from critic.export.convert import describe_graph, to_onnx
    from critic.orchestrator.zoo import ModelSpec, build_model

    for family in ("lstm", "bilstm", "gru", "lstm_recurrent_dropout", "conv1d"):
        proto = to_onnx(build_model(ModelSpec.from_dict({**TINY, "family": family})))
        kind = describe_graph(proto)
        ops = {node.op_type for node in proto.graph.node}
        assert set(kind["recurrent_ops"]) == ops & {"LSTM", "GRU", "RNN", "Loop", "Scan"}
        if family == "conv1d":
            assert kind["recurrent"] == "none"
        else:
            assert kind["recurrent"] in ("fused", "loop"), (family, kind)
            assert (kind["recurrent"] == "loop") == bool(ops & {"Loop", "Scan"})


def test_a_parity_failure_fails_the_export_and_leaves_nothing(tmp_path, data_folder):
    from critic.export import ExportSource, ParityError, export_bundle
    from critic.orchestrator.zoo import ModelSpec, build_model

    folder, tokenizer_json = data_folder
    model = build_model(ModelSpec.from_dict({**TINY, "family": "lstm"}))
    model.save(tmp_path / "model.keras")
    source = ExportSource(tmp_path / "model.keras", tokenizer_json, data=folder)
    # A tolerance no float32 conversion meets: the real differences make it fail.
    with pytest.raises(ParityError, match=r"max \|diff\| .* \(allowed 1e-15\)"):
        export_bundle(source, tmp_path / "b", tolerance=1e-15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_export_refuses_to_overwrite(tmp_path, keras_bundle):
    from critic.export import export_bundle, from_checkpoint

    src = keras_bundle[0].path.parent
    source = from_checkpoint(src / "model.keras", tokenizer=src / "tokenizer.json")
    (tmp_path / "b").mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_bundle(source, tmp_path / "b")
    report = export_bundle(source, tmp_path / "b", overwrite=True)
    assert load_bundle(report.path).meta["parity"]["source"] == "random ids"


def test_a_checkpoint_outside_a_run_needs_its_tokenizer(tmp_path, keras_bundle):
    from critic.export import SourceError, from_checkpoint

    shutil.copy(keras_bundle[0].path.parent / "model.keras", tmp_path / "model.keras")
    with pytest.raises(SourceError, match="--tokenizer"):
        from_checkpoint(tmp_path)
    with pytest.raises(SourceError, match=r"no model\.keras"):
        from_checkpoint(tmp_path / "elsewhere")


def test_load_bundle_needs_no_tensorflow(keras_bundle, imdb_test):
    """The runtime side (load, check, tokenize, run onnxruntime) on a box without TF/Ray."""
    import subprocess
    import sys

    from helpers import BLOCKER

    code = BLOCKER + (
        "import sys, json, numpy as np, onnxruntime as ort\n"
        "from critic.bundle import load_bundle\n"
        "from critic.serve.runtime import bundle_tokenizer\n"
        "b = load_bundle(sys.argv[1])\n"
        "x = bundle_tokenizer(b).encode(json.loads(sys.argv[2]), maxlen=b.maxlen)\n"
        "s = ort.InferenceSession(str(b.model_file()), providers=['CPUExecutionProvider'])\n"
        "print(json.dumps(s.run(None, {'tokens': x})[0][:, 0].tolist()))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'ray', 'tf2onnx'}))\n"
    )
    report, model, keras_tok = keras_bundle
    texts = imdb_test[:5]
    args = [sys.executable, "-c", code, str(report.path), json.dumps(texts)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    probabilities, imported = result.stdout.splitlines()
    assert imported == "[]"
    from critic.kernels import Tokenizer

    ids = Tokenizer.from_json(keras_tok.to_json()).encode(texts, maxlen=64)
    expected = model.predict(ids, verbose=0)[:, 0]
    np.testing.assert_allclose(json.loads(probabilities), expected, atol=1e-5)


BAG_FEATURES = {
    "fasttext": {"order": 2, "distinct": False},
    "nbsvm": {"order": 3, "distinct": True},
    "bow": {"order": 1, "distinct": True},
}


@pytest.mark.parametrize("family", sorted(BAG_FEATURES))
@pytest.mark.parametrize("hashed", [False, True])
def test_bag_families_train_export_and_score_raw_text_like_keras(tmp_path, sample, family, hashed):
    """n-gram features from the kernel, a bag model trained on them, exported, and the
    bundle's Runtime (C++ n-grams, onnxruntime) on raw text == Keras on the same text."""
    from critic.export import ExportSource, export_bundle
    from critic.kernels import Ngrams, Tokenizer
    from critic.orchestrator.zoo import ModelSpec, build_model, nb_ratio
    from critic.serve.runtime import Runtime

    texts, labels = sample
    f = BAG_FEATURES[family]
    tok = Tokenizer(num_words=500, oov_token="<OOV>")
    tok.fit_on_texts(texts[:300])
    if hashed and f["order"] > 1:
        tok.ngrams = Ngrams.hashed(tok, f["order"], 700, distinct=f["distinct"])
    else:
        tok.ngrams = Ngrams.fit(
            tok, texts[:300], f["order"], max_ngrams=900, distinct=f["distinct"]
        )
    maxlen = 60 * f["order"]
    padding = "post" if hashed else "pre"  # the runtime trims either side's padding
    x = tok.encode(texts, maxlen=maxlen, padding=padding)
    assert x.max() >= 500 or f["order"] == 1  # n-gram ids reach the model
    size = tok.ngrams.size
    spec = ModelSpec.from_dict({**TINY, "family": family, "num_words": size, "maxlen": maxlen})
    ratios = nb_ratio(x[:300], labels[:300], size) if family == "nbsvm" else None
    model = build_model(spec, ratios=ratios)
    model.fit(x[:300], labels[:300], epochs=2, batch_size=32, verbose=0)
    model.save(tmp_path / "model.keras")
    doc = json.loads(tok.to_json())
    doc["encode"] = {"padding": padding, "truncating": "pre"}
    source = ExportSource(tmp_path / "model.keras", json.dumps(doc))
    report = export_bundle(source, tmp_path / "b", log=lambda *_: None)
    meta = load_bundle(report.path).meta
    assert meta["parity"]["max_abs_diff"] <= 1e-5 and meta["parity"]["label_flips"] == 0
    assert meta["model"]["any_length"]  # the runtime cuts each batch to its longest row
    runtime = Runtime.load(report.path)
    got = runtime.predict([*texts[300:], "", "zzz unseen words only"])
    want = model.predict(
        tok.encode([*texts[300:], "", "zzz unseen words only"], maxlen=maxlen, padding=padding),
        verbose=0,
    )[:, 0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.isfinite(got).all()  # an empty review averages no ids: no division by zero
    # Each batch is cut to its longest review, so other batches (other --shard-rows or
    # --batch-size) sum in another order: float noise (docs/score.md), never a label.
    rows = [*texts[300:], "", "zzz unseen words only"]
    cut = np.concatenate([runtime.predict(rows[i : i + 7]) for i in range(0, len(rows), 7)])
    assert np.abs(cut - got).max() <= 1e-6
    assert (runtime.to_labels(cut) == runtime.to_labels(got)).all()


def test_an_ensemble_bundle_is_the_mean_of_its_members(tmp_path, sample):
    from critic.export import ExportSource, SourceError, export_bundle
    from critic.export.ensemble import ensemble_source
    from critic.kernels import Ngrams, Tokenizer
    from critic.orchestrator.zoo import ModelSpec, build_model, nb_ratio
    from critic.serve.runtime import Runtime

    texts, labels = sample
    tok = Tokenizer(num_words=500, oov_token="<OOV>")
    tok.fit_on_texts(texts[:300])
    tok.ngrams = Ngrams.fit(tok, texts[:300], 2, max_ngrams=900, distinct=True)
    x = tok.encode(texts, maxlen=120)
    doc = json.loads(tok.to_json())
    doc["encode"] = {"padding": "pre", "truncating": "pre"}
    members, models = [], []
    for i, (family, lr) in enumerate([("nbsvm", 0.01), ("nbsvm", 0.002), ("bow", 0.003)]):
        spec = ModelSpec.from_dict(
            {
                **TINY,
                "family": family,
                "num_words": tok.ngrams.size,
                "maxlen": 120,
                "learning_rate": lr,
            }
        )
        ratios = nb_ratio(x[:300], labels[:300], spec.num_words) if family == "nbsvm" else None
        model = build_model(spec, ratios=ratios)
        model.fit(x[:300], labels[:300], epochs=1, batch_size=32, verbose=0)
        model.save(tmp_path / f"m{i}.keras")
        models.append(model)
        trial = {"trial": f"t{i}", "model": {"family": family}}
        members.append(ExportSource(tmp_path / f"m{i}.keras", json.dumps(doc), trial=trial))
    source = ensemble_source(members, tmp_path / "work")
    report = export_bundle(source, tmp_path / "ens", log=lambda *_: None)
    meta = load_bundle(report.path).meta
    assert meta["parity"]["max_abs_diff"] <= 1e-5 and meta["parity"]["label_flips"] == 0
    assert (
        meta["model"]["any_length"] and meta["model"]["family"] == "ensemble of nbsvm, nbsvm, bow"
    )
    assert [m["trial"] for m in meta["trial"]["ensemble"]] == ["t0", "t1", "t2"]
    got = Runtime.load(report.path).predict(texts[300:])
    want = np.mean([m.predict(x[300:], verbose=0)[:, 0] for m in models], axis=0)
    np.testing.assert_allclose(got, want, atol=1e-5)

    other = json.loads(json.dumps(doc))
    other["config"]["num_words"] = 400
    members[2] = ExportSource(members[2].checkpoint, json.dumps(other), trial={"trial": "t2"})
    with pytest.raises(SourceError, match="t2 reads other ids than t0"):
        ensemble_source(members, tmp_path / "work2")
    with pytest.raises(SourceError, match="at least 2 members"):
        ensemble_source(members[:1], tmp_path / "work3")
