"""critic score: every input format, bad rows kept, exactly once across kill -9, refusals."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import process_tree, ray_temp_dir

import critic

pa = pytest.importorskip("pyarrow")
pytest.importorskip("onnxruntime")
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def critic_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "critic", *args], capture_output=True, text=True, timeout=timeout
    )


def read_output(folder: Path, fmt: str = "parquet"):
    files = sorted(str(p) for p in folder.glob("part-*"))
    if fmt == "jsonl":
        texts = [Path(f).read_text(encoding="utf-8") for f in files]
        rows = [json.loads(line) for text in texts for line in text.splitlines()]
        return pa.Table.from_pylist(rows)
    return ds.dataset(files, format=fmt).to_table()


@pytest.fixture(scope="module")
def bundle(sample_bundle):
    return sample_bundle[0]


@pytest.fixture(scope="module")
def runtime(bundle):
    return critic.Runtime.load(bundle)


def test_parquet_in_parquet_out_with_ids_and_kept_columns(tmp_path, bundle, runtime, imdb_test):
    texts = imdb_test[:700]
    table = pa.table({"review": texts, "rid": np.arange(1000, 1700), "stars": np.arange(700) % 10})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=128)
    out = tmp_path / "out"
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(tmp_path / "in.parquet"),
        "--output", str(out), "--text-column", "review", "--id-column", "rid",
        "--keep-columns", "stars", "--shard-rows", "300",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "700 rows (0 with errors) in 3 shards" in result.stdout
    got = read_output(out)
    assert got.column_names == ["id", "probability", "label", "error", "stars"]
    assert got.column("id").to_pylist() == [str(i) for i in range(1000, 1700)]
    assert got.column("stars").to_pylist() == table.column("stars").to_pylist()
    np.testing.assert_allclose(got.column("probability").to_numpy(), runtime.predict(texts))
    assert got.column("label").to_pylist() == list(runtime.predict_labels(texts))
    assert got.column("error").null_count == 700
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["rows"] == 700 and summary["errors"] == 0


def test_kept_columns_are_renamed_and_never_mixed_with_the_text(
    tmp_path, bundle, runtime, imdb_test
):
    """--keep-columns NAME:NEW_NAME keeps columns named like the output's own; a kept column
    named `text` stays apart from the column scored (it used to replace it)."""
    texts = imdb_test[:50]
    table = pa.table(
        {
            "review": texts,
            "id": np.arange(50) * 7,
            "label": ["pos", "neg"] * 25,
            "text": ["Dull."] * 50,
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out"
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(tmp_path / "in.parquet"),
        "--output", str(out), "--text-column", "review",
        "--keep-columns", "id:source_id", "label:gold", "text",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = read_output(out)
    assert got.column_names == ["id", "probability", "label", "error", "source_id", "gold", "text"]
    assert got.column("id").type == pa.string()
    assert got.column("id").to_pylist() == [str(i) for i in range(50)]
    assert got.column("source_id").to_pylist() == table.column("id").to_pylist()
    assert got.column("gold").to_pylist() == table.column("label").to_pylist()
    assert got.column("text").to_pylist() == ["Dull."] * 50
    np.testing.assert_allclose(got.column("probability").to_numpy(), runtime.predict(texts))


def test_a_job_that_wrote_no_shard_does_not_block_the_corrected_one(tmp_path, bundle, imdb_test):
    corpus = tmp_path / "corpus.csv"
    table = pa.table({"id": [f"r{i}" for i in range(30)], "text": imdb_test[:30]})
    pacsv.write_csv(table, corpus)
    out = tmp_path / "out"
    base = ["score", "--model", str(bundle), "--input", str(corpus), "--output", str(out)]
    typo = critic_cli(*base, "--text-column", "review")  # a CSV has no column of that name
    assert typo.returncode == 2 and "review" in typo.stderr
    assert not out.exists()  # the columns are checked before the output is made
    fixed = critic_cli(*base)
    assert fixed.returncode == 0, fixed.stderr
    assert read_output(out).num_rows == 30
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["options"]["text_column"] == "text"


def test_an_empty_input_among_others_adds_no_rows(tmp_path, bundle):
    """An empty file in a folder of inputs is an input of no rows (it was a crash: the plan
    gave it a segment of nothing); ids by position run on across it."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "Great."}\n{"text": "Dull."}\n')
    (folder / "b.jsonl").write_text("")
    (folder / "c.jsonl").write_text('{"text": "Fine."}\n')
    out = tmp_path / "out"
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(folder), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert read_output(out).column("id").to_pylist() == ["0", "1", "2"]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [entry["rows"] for entry in manifest["inputs"]] == [2, 0, 1]


@pytest.mark.parametrize("out_fmt", ["csv", "jsonl"])
def test_text_csv_tsv_and_glob_inputs(tmp_path, bundle, runtime, imdb_test, out_fmt):
    texts = [t.replace("\n", " ") for t in imdb_test[:90]]
    (tmp_path / "a.txt").write_text("\n".join(texts[:30]) + "\n", encoding="utf-8")
    pacsv.write_csv(pa.table({"text": texts[30:60]}), tmp_path / "b.csv")
    (tmp_path / "c.tsv").write_text(
        "text\tx\n" + "".join(f"{t.replace(chr(9), ' ')}\t{i}\n" for i, t in enumerate(texts[60:])),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(tmp_path / "*.*"),
        "--output", str(out), "--format", out_fmt,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = read_output(out, out_fmt)
    # Without an id column, the id is the row's position across the inputs, in order, as
    # text (a CSV has no types: its reader takes the digits for numbers).
    positions = list(range(90)) if out_fmt == "csv" else [str(i) for i in range(90)]
    assert got.column("id").to_pylist() == positions
    expected = runtime.predict(
        [t.replace("\t", " ") if i >= 60 else t for i, t in enumerate(texts)]
    )
    np.testing.assert_allclose(got.column("probability").to_numpy(), expected, atol=1e-6)


def test_predict_scores_texts_from_arguments_or_stdin(bundle, runtime):
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    table = critic_cli("predict", "--model", str(bundle), *texts)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    expected = runtime.predict(texts)
    labels = runtime.to_labels(expected)
    for line, text, p, label in zip(lines, texts, expected, labels, strict=True):
        assert line.split()[:2] == [label, f"{p:.3f}"] and line.endswith(text)
    piped = subprocess.run(
        [sys.executable, "-m", "critic", "predict", "--model", str(bundle), "--json"],
        input="\n".join(texts) + "\n\n", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    rows = [json.loads(line) for line in piped.stdout.splitlines()]
    assert [r["text"] for r in rows] == texts  # the blank line is not a text
    np.testing.assert_allclose([r["probability"] for r in rows], expected, atol=1e-6)
    empty = subprocess.run(
        [sys.executable, "-m", "critic", "predict", "--model", str(bundle)],
        input="", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert empty.returncode == 2 and "no text to score" in empty.stderr


def test_a_folder_of_files_is_read_file_by_file(tmp_path, bundle, runtime, imdb_test):
    """Not aclImdb-shaped: the folder stands for its readable files (sorted, nested ones too);
    hidden and _-prefixed files are skipped."""
    folder = tmp_path / "reviews"
    (folder / "more").mkdir(parents=True)
    pq.write_table(pa.table({"text": imdb_test[:10]}), folder / "a.parquet")
    (folder / "more" / "b.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in imdb_test[10:15]), encoding="utf-8"
    )
    (folder / "_SUCCESS").write_text("")
    (folder / ".a.parquet.crc").write_bytes(b"\x00")
    (folder / "notes.md").write_text("not a corpus")
    out = tmp_path / "out"
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(folder), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    got = read_output(out)
    expected = runtime.predict(imdb_test[:15])
    np.testing.assert_allclose(got.column("probability").to_numpy(), expected, atol=1e-6)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.md").write_text("x")
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(empty), "--output", str(out)
    )
    assert result.returncode == 2 and "no files of a known format" in result.stderr


def test_acl_imdb_folder(tmp_path, bundle, runtime, imdb_test):
    for split, label, rows in (("test", "pos", range(0, 4)), ("test", "neg", range(4, 7))):
        folder = tmp_path / "aclImdb" / split / label
        folder.mkdir(parents=True)
        for i in rows:
            (folder / f"{i}_7.txt").write_text(imdb_test[i], encoding="utf-8")
    (tmp_path / "aclImdb" / "test" / "neg" / "9_1.txt").write_bytes(b"bad \xff byte")
    out = tmp_path / "out"
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(tmp_path / "aclImdb"),
        "--output", str(out), "--id-column", "path",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    got = read_output(out).to_pylist()
    by_id = {r["id"]: r for r in got}
    assert len(got) == 8 and by_id["test/pos/0_7.txt"]["probability"] == pytest.approx(
        float(runtime.predict([imdb_test[0]])[0]), abs=1e-6
    )
    assert "not valid UTF-8" in by_id["test/neg/9_1.txt"]["error"]


def test_bad_rows_are_kept_with_an_error_and_set_the_exit_code(tmp_path, bundle):
    lines = [
        '{"id": "a", "text": "A wonderful film."}',
        '{"id": "b", "text": null}',
        '{"id": "c", "text": 42}',
        "not json",
        '{"id": "e"}',
        '{"id": "f", "text": "Dull."}',
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes("\n".join(lines).encode() + b'\n{"id": "g", "text": "caf\xe9"}\n')
    out = tmp_path / "out"
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(path), "--output", str(out),
        "--id-column", "id", "--format", "jsonl",
    )  # fmt: skip
    assert result.returncode == 3
    assert (
        "7 rows (5 with errors)" in result.stdout and "5 rows could not be scored" in result.stderr
    )
    rows = read_output(out, "jsonl").to_pylist()
    assert [r["id"] for r in rows] == ["a", "b", "c", None, "e", "f", "g"]
    errors = [r["error"] for r in rows]
    assert errors[0] is None and errors[5] is None
    assert "null" in errors[1] and "int" in errors[2] and "not valid JSON" in errors[3]
    assert "no field 'text'" in errors[4] and "UTF-8" in errors[6]
    assert all(r["probability"] is None and r["label"] is None for r in rows if r["error"])
    assert all(0 <= r["probability"] <= 1 for r in rows if not r["error"])


def _corpus(tmp_path: Path, texts: list[str], n: int) -> Path:
    path = tmp_path / "corpus.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"r{i}", "text": texts[i % len(texts)]}) + "\n")
    return path


def test_a_full_disk_names_the_file_and_leaves_no_partial_file(tmp_path, bundle, imdb_test):
    """The output on a real 128 KiB tmpfs (in a private mount namespace) that fills up: the
    error names the shard it could not write, exit 2, and no partial .tmp-part file stays on
    the full disk. A re-run with room finishes the output."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a private tmpfs needs root and unshare")
    corpus = _corpus(tmp_path, imdb_test, 3_000)
    out = tmp_path / "out"
    out.mkdir()
    command = " ".join(
        [sys.executable, "-m", "critic", "score", "--model", str(bundle), "--input",
         str(corpus), "--output", str(out), "--shard-rows", "500", "--format", "jsonl"]
    )  # fmt: skip
    script = (
        f"mount -t tmpfs -o size=128k tmpfs {out} && {command}; echo exit=$?; "
        f"ls -a {out}; df -k {out} | tail -1"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "exit=2" in result.stdout, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.search(rf"No space left on device .*: '{re.escape(str(out))}/part-\S+'", last), last
    assert ".tmp-" not in result.stdout  # the partial shard was removed at once
    rerun = critic_cli(*command.split()[3:])  # the real folder beside it, with room
    assert rerun.returncode == 0, rerun.stderr
    assert len(read_output(out, "jsonl")) == 3_000


def test_a_second_job_on_a_held_output_is_refused_and_harms_nothing(tmp_path, bundle, imdb_test):
    """Two jobs on one output collided on shard names and poisoned it for good. The first
    holds the output's lease; the second (other options, even) is refused at once, naming
    the owner, and writes nothing; the first ends with exactly its rows; the lease goes."""
    corpus = _corpus(tmp_path, imdb_test, 30_000)
    out = tmp_path / "out"
    first = subprocess.Popen(
        [sys.executable, "-m", "critic", "score", "--model", str(bundle), "--input",
         str(corpus), "--output", str(out), "--shard-rows", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "_lease.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = critic_cli(
        "score", "--model", str(bundle), "--input", str(corpus), "--output", str(out),
        "--shard-rows", "1500",
    )  # fmt: skip
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 2, second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert "is being written by another critic score" in last
    assert f"pid {first.pid}" in last and "Traceback" not in second.stderr
    got = read_output(out)
    assert got.num_rows == 30_000 and len(set(got.column("id").to_pylist())) == 30_000
    assert not (out / "_lease.json").exists()


def test_a_dead_owners_lease_is_taken_over(tmp_path, bundle, imdb_test):
    """A lease whose process is gone (this host) or that was not renewed for a minute (any
    host) is taken over; a fresh one from another host is respected."""
    import socket

    corpus = _corpus(tmp_path, imdb_test, 200)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    leases = {
        "dead-here": {"host": socket.gethostname(), "pid": int(gone.stdout), "started": "x"},
        "quiet-elsewhere": {"host": "elsewhere", "pid": 1, "started": "x"},
        "live-elsewhere": {"host": "elsewhere", "pid": 1, "started": "x"},
    }
    for name, owner in leases.items():
        out = tmp_path / name
        out.mkdir()
        (out / "_lease.json").write_text(json.dumps(owner))
        if name == "quiet-elsewhere":
            old = time.time() - 120
            os.utime(out / "_lease.json", (old, old))
        result = critic_cli(
            "score", "--model", str(bundle), "--input", str(corpus), "--output", str(out)
        )
        if name == "live-elsewhere":
            assert result.returncode == 2 and "host elsewhere, pid 1" in result.stderr
            assert not list(out.glob("part-*"))
        else:
            assert result.returncode == 0, result.stderr
            assert read_output(out).num_rows == 200 and not (out / "_lease.json").exists()


def test_one_owner_per_output_on_s3(tmp_path, bundle, imdb_test, s3_bucket):
    """The lease on an object store, by conditional writes on a real S3-compatible server: of
    racing creators exactly one wins; a live job's output refuses a second job, naming it; a
    foreign live lease is respected; a dead owner's is taken over; the lease goes at the end."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from critic.serve.lease import _ObjectLease
    from critic.storage import location

    out = location(f"{s3_bucket}/out")
    racers = [_ObjectLease(out) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        won = list(pool.map(lambda r: r.create({"racer": id(r)}), racers))
    assert won.count(True) == 1
    racers[won.index(True)].release()
    assert not (out / "_lease.json").exists()

    corpus = _corpus(tmp_path, imdb_test, 6_000)
    score = ["score", "--model", str(bundle), "--input", str(corpus), "--output", out.uri]
    first = subprocess.Popen(
        [sys.executable, "-m", "critic", *score, "--shard-rows", "300", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "_lease.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = critic_cli(*score, "--shard-rows", "500")
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 2 and f"pid {first.pid}" in second.stderr, second.stderr
    assert _s3_output(out.uri).num_rows == 6_000 and not (out / "_lease.json").exists()

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    small = _corpus(tmp_path, imdb_test, 200)
    for name, owner, code in (
        ("live-elsewhere", {"host": "elsewhere", "pid": 1, "started": "x"}, 2),
        ("dead-here", {"host": socket.gethostname(), "pid": int(gone.stdout), "started": "x"}, 0),
    ):
        held = out.parent / name
        (held / "_lease.json").write_atomic(json.dumps(owner).encode())
        result = critic_cli("score", "--model", str(bundle), "--input", str(small),
                            "--output", held.uri)  # fmt: skip
        assert result.returncode == code, result.stderr
        if code == 2:
            assert "host elsewhere, pid 1" in result.stderr and (held / "_lease.json").exists()
            assert not [f for f in held.files() if f.name.startswith("part-")]
        else:
            assert _s3_output(held.uri).num_rows == 200 and not (held / "_lease.json").exists()


def test_a_lease_write_whose_answer_was_lost_is_still_this_jobs(s3_bucket):
    """On a flaky store a conditional write can land while its answer is lost; the client's
    retry is then refused (the ETag moved). The lease reads the object back: its own bytes
    mean its own write (the job goes on), anything else a real loss."""
    from critic.serve.lease import _ObjectLease
    from critic.storage import location, s3_object

    out = location(f"{s3_bucket}/lost")
    lease = _ObjectLease(out)
    assert lease.create({"job": "a"})
    stale = lease._etag
    client, bucket, key = s3_object(out / "_lease.json")
    mine = {"job": "a", "renewed": "now"}
    # The first try of the take-over landed; its answer never came back.
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(mine).encode(), IfMatch=stale)
    assert lease.take_over(stale, mine)  # the retry, refused by the store: still this job's
    assert lease._etag != stale
    assert json.loads((out / "_lease.json").read_text()) == mine
    other = {"job": "b"}
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(other).encode())
    assert not lease.take_over(lease._etag, mine)  # another job's bytes: lost for real
    # The probe for stores that ignore conditions is not fooled by the read-back.
    probe = _ObjectLease(location(f"{s3_bucket}/probe"))
    assert probe.create({"job": "c"}) and not probe._put({"job": "c"}, False, IfNoneMatch="*")


def _small_files(folder: Path, texts: list[str], files: int, rows: int) -> Path:
    """``files`` JSON Lines files of ``rows`` reviews each (ids f{file}-{row})."""
    folder.mkdir()
    for f in range(files):
        lines = (
            json.dumps({"id": f"f{f}-{r}", "text": texts[(f * rows + r) % len(texts)]})
            for r in range(rows)
        )
        (folder / f"part-{f:04d}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_many_small_files_give_few_full_shards(tmp_path, bundle, imdb_test):
    """300 files of 10 rows: shards of --shard-rows rows across the files (not one per file),
    the same rows as the same reviews in one file, and the manifest says which rows of which
    files each shard holds."""
    folder = _small_files(tmp_path / "many", imdb_test, 300, 10)
    one = tmp_path / "one.jsonl"
    one.write_text("".join(p.read_text() for p in sorted(folder.glob("*.jsonl"))))
    args = ["score", "--model", str(bundle), "--id-column", "id", "--shard-rows", "400"]
    many = critic_cli(*args, "--input", str(folder), "--output", str(tmp_path / "o-many"))
    single = critic_cli(*args, "--input", str(one), "--output", str(tmp_path / "o-one"))
    assert many.returncode == single.returncode == 0, many.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "o-many").glob("part-*"))
    assert names == [f"part-{k:06d}.parquet" for k in range(8)]  # 3,000 rows: 7 x 400 + 200
    assert read_output(tmp_path / "o-many").equals(read_output(tmp_path / "o-one"))
    manifest = json.loads((tmp_path / "o-many" / "_manifest.json").read_text())
    first, last = manifest["shards"][0], manifest["shards"][-1]
    assert first["name"] == names[0] and first["rows"] == 400 and len(first["inputs"]) == 40
    assert first["inputs"][1] == [str(folder / "part-0001.jsonl"), 0, 10]
    assert last["rows"] == 200 and last["inputs"][-1] == [str(folder / "part-0299.jsonl"), 0, 10]
    assert [i["rows"] for i in manifest["inputs"]] == [10] * 300
    for entry in manifest["inputs"][::37]:  # hashed by the layout scan: each file's sha256
        content = Path(entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()


def test_shards_spanning_many_files_are_exactly_once_after_kill_9(tmp_path, bundle, imdb_test):
    """kill -9 while shards that span many input files are scored and committed, twice; the
    same command then ends with exactly a clean run's output."""
    folder = _small_files(tmp_path / "many", imdb_test, 150, 20)
    args = [
        "score", "--model", str(bundle), "--input", str(folder), "--id-column", "id",
        "--shard-rows", "250", "--batch-size", "16", "--threads", "1",
    ]  # fmt: skip
    out = tmp_path / "out"
    for kill_after in (2, 6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "critic", *args, "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 240
        while len(list(out.glob("part-*"))) < kill_after:
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(list(out.glob("part-*"))) < 12 and not (out / "_summary.json").exists()
    resumed = critic_cli(*args, "--output", str(out))
    assert resumed.returncode == 0, resumed.stderr
    clean = critic_cli(*args, "--output", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["shards"] == 12 and summary["skipped_shards"] >= 6
    assert not list(out.glob(".tmp-*"))
    got = read_output(out)
    assert got.num_rows == 3_000 and len(set(got.column("id").to_pylist())) == 3_000
    assert got.equals(read_output(tmp_path / "clean"))


def test_exactly_once_after_kill_9(tmp_path, bundle, imdb_test):
    corpus = _corpus(tmp_path, imdb_test, 24_000)
    args = [
        "score", "--model", str(bundle), "--input", str(corpus), "--id-column", "id",
        "--shard-rows", "400", "--batch-size", "32", "--threads", "1",
    ]  # fmt: skip
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "critic", *args, "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while len(list(out.glob("part-*"))) < 3:
        assert proc.poll() is None, "the job ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = len(list(out.glob("part-*")))
    assert 3 <= committed < 60 and not (out / "_summary.json").exists()

    resumed = critic_cli(*args, "--output", str(out))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["skipped_shards"] >= committed and summary["shards"] == 60
    assert not list(out.glob(".tmp-*"))

    clean = critic_cli(*args, "--output", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    got, expected = read_output(out), read_output(tmp_path / "clean")
    ids = got.column("id").to_pylist()
    assert len(ids) == 24_000 and len(set(ids)) == 24_000  # none lost, none duplicated
    assert got.equals(expected)


def test_a_changed_model_input_or_option_is_refused(tmp_path, bundle, sample_bundle, imdb_test):
    import shutil

    corpus = _corpus(tmp_path, imdb_test, 50)
    out = tmp_path / "out"
    base = ["score", "--model", str(bundle), "--input", str(corpus), "--output", str(out)]
    assert critic_cli(*base).returncode == 0

    again = critic_cli(*base)  # the same job again: nothing to do, same answer
    assert again.returncode == 0 and "1 shard was already done" in again.stdout
    assert "50 rows (0 with errors) in 1 shard ->" in again.stdout

    changed = critic_cli(*base, "--id-column", "id")
    assert changed.returncode == 2 and "options changed: id_column" in changed.stderr

    int8 = critic_cli(*base[:-2], "--output", str(out), "--variant", "int8")
    assert int8.returncode == 2 and "refusing to mix" in int8.stderr

    other = tmp_path / "other-bundle"
    shutil.copytree(bundle, other)
    meta = json.loads((other / "bundle.json").read_text())
    meta["threshold"] = 0.6
    from critic.bundle import seal_manifest

    (other / "bundle.json").write_bytes(seal_manifest(meta))
    swapped = critic_cli("score", "--model", str(other), *base[3:])
    assert swapped.returncode == 2 and "the model changed" in swapped.stderr

    with open(corpus, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "new", "text": "One more review."}) + "\n")
    grown = critic_cli(*base)
    assert grown.returncode == 2 and "input content changed" in grown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "nope/*.jsonl"], "matches no file"),
        (["--input", "missing.parquet"], "no such file"),
        (["--input", "{corpus}", "--text-column", "body"], "no field 'body'"),
        (["--input", "{corpus}", "--keep-columns", "label"], "--keep-columns NAME:NEW_NAME"),
        (["--input", "{corpus}", "--keep-columns", "text:x", "id:x"], "['x'] twice"),
        (["--input", "{corpus}", "--keep-columns", "text:"], "no empty name"),
        (["--input", "{corpus}", "--shard-rows", "0"], "--shard-rows must be >= 1"),
    ],
)
def test_usage_errors_are_clear(tmp_path, bundle, imdb_test, args, message):
    corpus = _corpus(tmp_path, imdb_test, 5)
    args = [a.replace("{corpus}", str(corpus)) for a in args]
    result = critic_cli("score", "--model", str(bundle), "--output", str(tmp_path / "o"), *args)
    if "no field" in message:  # a missing text field is a per-row error, not a usage error
        assert result.returncode == 3 and "5 rows could not be scored" in result.stderr
        return
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_progress_bar_when_asked(tmp_path, bundle, imdb_test):
    corpus = _corpus(tmp_path, imdb_test, 300)
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(corpus), "--output",
        str(tmp_path / "o"), "--progress",
    )  # fmt: skip
    assert result.returncode == 0 and "300/300" in result.stderr and "rows/s" in result.stderr


def test_ray_engine_writes_the_local_engines_output_exactly_once(tmp_path, bundle, imdb_test):
    pytest.importorskip("ray")
    corpus = _corpus(tmp_path, imdb_test, 2_500)
    extra = tmp_path / "more.txt"
    extra.write_bytes(b"A fine film.\nbad \xff line\n\nDull.\n")
    common = ["score", "--model", str(bundle), "--input", str(corpus), str(extra),
              "--shard-rows", "400"]  # fmt: skip
    local = critic_cli(*common, "--output", str(tmp_path / "local"))
    assert local.returncode == 3, local.stderr  # the invalid UTF-8 line
    ray_args = [*common, "--output", str(tmp_path / "ray"), "--engine", "ray", "--num-cpus", "2"]
    first = critic_cli(*ray_args)
    assert first.returncode == 3, first.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "local").glob("part-*"))
    assert len(names) == 7  # 2,503 rows in shards of 400; the last spans both inputs
    for name in names:  # the same shards, byte for byte
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()

    # Lose two shards and leave a half-written one behind: the re-run redoes exactly those.
    (tmp_path / "ray" / names[1]).unlink()
    (tmp_path / "ray" / names[6]).unlink()
    (tmp_path / "ray" / f".tmp-{names[1]}-123").write_bytes(b"partial")
    again = critic_cli(*ray_args)
    assert again.returncode == 3, again.stderr[-3000:]
    summary = json.loads((tmp_path / "ray" / "_summary.json").read_text())
    assert (
        summary["skipped_shards"] == 5 and summary["scored_rows"] == 400 + 103
    )  # 100 JSONL rows and the text file's 3 (the blank line is not a row)
    assert summary["rows"] == 2_503 and summary["errors"] == 1
    assert sorted(p.name for p in (tmp_path / "ray").iterdir() if p.name.startswith(".")) == []
    assert read_output(tmp_path / "ray").equals(read_output(tmp_path / "local"))


def test_ray_engine_failure_names_the_cause_and_exits_2(tmp_path, bundle, imdb_test):
    """The scoring actors cannot load the model (checksums pass, onnxruntime refuses it):
    exit 2 with the actors' own error in one line, not Ray's traceback."""
    from helpers import unloadable_bundle

    broken = unloadable_bundle(bundle, tmp_path / "broken")
    corpus = _corpus(tmp_path, imdb_test, 50)
    result = critic_cli(
        "score", "--model", str(broken), "--input", str(corpus), "--output",
        str(tmp_path / "out"), "--engine", "ray", "--num-cpus", "2",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("critic score: error: the Ray job failed: "), last
    assert "INVALID_PROTOBUF" in last or "Protobuf parsing failed" in last, last
    assert "run the same command again" in last
    # No traceback of the driver: the command ended on its own error (Ray's raylet may still
    # echo the actors' failures above it).
    assert "critic/cli/main.py" not in result.stderr


def test_ray_engine_starts_its_own_ray_whatever_another_left_on_record(
    tmp_path, bundle, imdb_test, monkeypatch
):
    """A `ray start` on the machine leaves its address in Ray's temp folder, and leaves it
    there if it dies. Ray's default would join that cluster (and failed with Ray's own
    ValueError, since the command asks for CPUs); the engine starts its own Ray."""
    pytest.importorskip("ray")
    with ray_temp_dir() as short:
        (short / "ray").mkdir()
        (short / "ray" / "ray_current_cluster").write_text("127.0.0.1:9\n")  # nobody there
        monkeypatch.setenv("RAY_TMPDIR", str(short))
        corpus = _corpus(tmp_path, imdb_test, 50)
        result = critic_cli(
            "score", "--model", str(bundle), "--input", str(corpus), "--output",
            str(tmp_path / "out"), "--engine", "ray", "--num-cpus", "1",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads((tmp_path / "out" / "_summary.json").read_text())["rows"] == 50


def _actor_pids(root: int, title: str) -> list[int]:
    """Processes under ``root`` whose title (Ray names an actor's process after its class)
    starts with ``title``."""
    found = []
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(title.encode()):
                found.append(pid)
    return found


def test_ray_engine_survives_a_scoring_actor_killed_mid_job(tmp_path, bundle, imdb_test):
    """kill -9 of a scoring actor while the job runs: Ray starts the actor again, its shard
    is scored again, and the one run ends with exactly the local engine's output."""
    pytest.importorskip("ray")
    corpus = _corpus(tmp_path, imdb_test, 16_000)
    common = ["score", "--model", str(bundle), "--input", str(corpus), "--shard-rows", "250"]
    local = critic_cli(*common, "--output", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    out = tmp_path / "ray"
    job = subprocess.Popen(
        [sys.executable, "-m", "critic", *common, "--output", str(out), "--engine", "ray",
         "--num-cpus", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("part-*")) and job.poll() is None:
            assert time.monotonic() < deadline, "no shard committed in time"
            time.sleep(0.02)
        actors = _actor_pids(job.pid, "ray::ShardScorer")
        committed = len(list(out.glob("part-*")))
        assert actors and job.poll() is None, job.stderr.read()[-3000:] if job.stderr else ""
        os.kill(actors[0], signal.SIGKILL)
        assert committed < 64  # the kill came mid-job (64 shards in all)
        stdout, stderr = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 0, stderr[-3000:]
    assert "16000 rows (0 with errors) in 64 shards" in stdout
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert read_output(out).equals(read_output(tmp_path / "local"))


def _s3_output(uri: str):
    """The committed shards of an s3:// output folder, as one table (ordered by shard)."""
    from critic.storage import location

    out = location(uri)
    shards = [f for f in out.files(recursive=False) if f.name.startswith("part-")]
    paths = [f.path for f in sorted(shards, key=lambda f: f.name)]
    return ds.dataset(paths, format="parquet", filesystem=out.fs).to_table()


def test_s3_inputs_and_output_give_the_local_output(tmp_path, bundle, imdb_test, s3_bucket):
    """critic score reading s3:// inputs (a glob) and writing an s3:// output, on a real
    S3-compatible server over HTTP: the same rows as local files in, local folder out."""
    from critic.storage import location

    corpus = _corpus(tmp_path, imdb_test, 900)
    extra = tmp_path / "more.txt"
    extra.write_bytes(b"A fine film.\nbad \xff line\nDull.\n")
    for path in (corpus, extra):
        location(f"{s3_bucket}/in/{path.name}").write_atomic(path.read_bytes())
    common = ["score", "--model", str(bundle), "--shard-rows", "400"]
    local = critic_cli(*common, "--input", str(corpus), str(extra), "--output", str(tmp_path / "o"))
    remote = critic_cli(
        *common,
        "--input", f"{s3_bucket}/in/*.jsonl", f"{s3_bucket}/in/more.txt",
        "--output", f"{s3_bucket}/out",
    )  # fmt: skip
    assert local.returncode == remote.returncode == 3, remote.stderr[-3000:]  # the \xff line
    assert f"-> {s3_bucket}/out" in remote.stdout
    got, want = _s3_output(f"{s3_bucket}/out"), read_output(tmp_path / "o")
    assert got.num_rows == 903 and got.equals(want)
    summary = json.loads(location(f"{s3_bucket}/out/_summary.json").read_text())
    assert summary["rows"] == 903 and summary["errors"] == 1 and summary["shards"] == 3
    manifest = json.loads(location(f"{s3_bucket}/out/_manifest.json").read_text())
    assert manifest["inputs"][0]["path"] == f"{s3_bucket}/in/corpus.jsonl"


def test_a_job_on_a_flaky_store_ends_with_the_clean_output(
    tmp_path, bundle, imdb_test, s3_bucket, s3_server, monkeypatch
):
    """Behind a proxy failing 25 % of the requests (503, 500, reset, truncated body), a job
    reading and writing s3:// ends exit 0 with exactly a clean run's output."""
    from flaky_proxy import FlakyProxy

    from critic.storage import location

    corpus = _corpus(tmp_path, imdb_test, 3_000)
    pq.write_table(
        pa.table({"id": [f"p{i}" for i in range(2_000)], "text": (imdb_test * 2)[:2_000]}),
        tmp_path / "more.parquet",
        row_group_size=500,
    )
    for path in (corpus, tmp_path / "more.parquet"):
        location(f"{s3_bucket}/in/{path.name}").write_atomic(path.read_bytes())
    args = [
        "score", "--model", str(bundle), "--id-column", "id", "--shard-rows", "200",
        "--input", f"{s3_bucket}/in/corpus.jsonl", f"{s3_bucket}/in/more.parquet",
    ]  # fmt: skip
    clean = critic_cli(*args, "--output", f"{s3_bucket}/clean")
    assert clean.returncode == 0, clean.stderr[-2000:]
    with FlakyProxy(s3_server, rate=0.25, seed=3) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        flaky = critic_cli(*args, "--output", f"{s3_bucket}/flaky")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    assert flaky.returncode == 0, flaky.stderr[-2000:]
    assert sum(proxy.faults.values()) >= 10, (proxy.faults, proxy.requests)
    assert _s3_output(f"{s3_bucket}/flaky").equals(_s3_output(f"{s3_bucket}/clean"))
    summary = json.loads(location(f"{s3_bucket}/flaky/_summary.json").read_text())
    assert summary["rows"] == 5_000 and summary["errors"] == 0


def test_s3_inputs_are_known_by_their_etag_not_read_twice(tmp_path, bundle, imdb_test, s3_bucket):
    """An S3 input's identity in the manifest is the ETag its store keeps (no read of the
    object); new content is still refused, and an output begun when S3 inputs were hashed
    (sha256 in its manifest) is still resumed."""

    from critic.storage import location

    corpus = _corpus(tmp_path, imdb_test, 1_200)
    source = location(f"{s3_bucket}/in/corpus.jsonl")
    source.write_atomic(corpus.read_bytes())
    out = tmp_path / "out"
    args = ["score", "--model", str(bundle), "--input", source.uri, "--output", str(out),
            "--shard-rows", "400"]  # fmt: skip
    assert critic_cli(*args).returncode == 0
    manifest = json.loads((out / "_manifest.json").read_text())
    (entry,) = manifest["inputs"]
    assert "sha256" not in entry and entry["etag"] == source.etag()
    # Uploaded in one PutObject request: the ETag is the MD5 of the content
    assert entry["etag"] == hashlib.md5(corpus.read_bytes()).hexdigest()
    first = read_output(out)
    # An output from before: its manifest knows the input by sha256. It resumes.
    entry.pop("etag")
    entry["sha256"] = hashlib.sha256(corpus.read_bytes()).hexdigest()
    (out / "_manifest.json").write_text(json.dumps(manifest))
    (out / "_summary.json").unlink()
    (out / "part-000002.parquet").unlink()
    resumed = critic_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "scored 400 rows" in resumed.stdout and read_output(out).equals(first)
    # New content under the same name is refused, whichever identity the manifest holds.
    source.write_atomic(corpus.read_bytes().replace(b'"r0"', b'"x0"'))
    (out / "_summary.json").unlink()
    changed = critic_cli(*args)
    assert changed.returncode == 2 and "input content changed" in changed.stderr


def test_exactly_once_on_s3_after_kill_9(tmp_path, bundle, imdb_test, s3_bucket):
    """kill -9 at several points of a job writing to s3://, then the same command: the
    output equals a clean run's (nothing lost, nothing doubled, no partial object)."""
    from critic.storage import location

    folder = _small_files(tmp_path / "many", imdb_test, 40, 200)  # a shard spans 2 files
    args = [
        "score", "--model", str(bundle), "--input", str(folder), "--id-column", "id",
        "--shard-rows", "400", "--batch-size", "32", "--threads", "1",
        "--output", f"{s3_bucket}/out",
    ]  # fmt: skip
    out = location(f"{s3_bucket}/out")

    def committed() -> int:
        return len([f for f in out.files(recursive=False) if f.name.startswith("part-")])

    for kill_after in (2, 7, 12):  # shards committed when the job is killed
        proc = subprocess.Popen(
            [sys.executable, "-m", "critic", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 240
        while committed() < kill_after:
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert committed() < 20 and not (out / "_summary.json").exists()

    resumed = critic_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "_summary.json").read_text())
    assert summary["shards"] == 20 and summary["skipped_shards"] >= 12
    clean = critic_cli(*args[:-1], str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    got = _s3_output(out.uri)
    ids = got.column("id").to_pylist()
    assert len(ids) == 8_000 and len(set(ids)) == 8_000  # none lost, none duplicated
    assert got.equals(read_output(tmp_path / "clean"))
    # An input changed since: refused, the output left as it was.
    changed = folder / "part-0007.jsonl"
    changed.write_text(changed.read_text().replace('"text": "', '"text": "Not ', 1))
    refused = critic_cli(*args)
    assert refused.returncode == 2 and f"input content changed: {changed}" in refused.stderr
    assert _s3_output(out.uri).equals(got)


def test_a_finished_output_answers_from_metadata_alone(tmp_path, bundle, imdb_test):
    """A re-run of a finished job compares sizes and modification times, not contents: it
    answers at once (the Ray engine without joining a cluster: here there is none to join).
    A touched input is hashed again; a missing shard is scored again."""
    import os

    corpus = _corpus(tmp_path, imdb_test, 1_200)
    out = tmp_path / "out"
    base = ["score", "--model", str(bundle), "--input", str(corpus), "--output", str(out),
            "--shard-rows", "400"]  # fmt: skip
    assert critic_cli(*base).returncode == 0
    first = read_output(out)
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    summary = json.loads((out / "_summary.json").read_text())
    assert len(summary["inputs_stamp"]) == 64
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9"}  # a cluster that is not there
    command = [sys.executable, "-m", "critic", *base, "--engine", "ray"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0, again.stderr
    assert "scored 0 rows" in again.stdout and "3 shards were already done" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")} == written
    # Touched (same bytes, new time): the slow path hashes it, finds the job done.
    os.utime(corpus, ns=(corpus.stat().st_atime_ns, corpus.stat().st_mtime_ns + 10**9))
    touched = critic_cli(*base)
    assert touched.returncode == 0 and "3 shards were already done" in touched.stdout
    new_stamp = json.loads((out / "_summary.json").read_text())["inputs_stamp"]
    assert new_stamp != summary["inputs_stamp"]
    # A shard that lost rows after the job finished: the full run counts them, and fails.
    shard = out / "part-000002.parquet"
    whole = shard.read_bytes()
    pq.write_table(pq.read_table(shard).slice(0, 10), shard)
    short = critic_cli(*base)
    assert short.returncode == 2 and "holds 810 rows but the inputs hold 1200" in short.stderr
    shard.write_bytes(whole)
    # A shard gone after the job finished is written again, the same.
    (out / "part-000001.parquet").unlink()
    healed = critic_cli(*base)
    assert healed.returncode == 0 and "scored 400 rows" in healed.stdout
    assert read_output(out).equals(first)


def test_an_output_missing_rows_is_an_error_not_a_success(tmp_path, bundle, imdb_test):
    """At the end the rows committed are compared with the rows the inputs hold: an output
    short of rows (here a committed shard that lost rows behind the job's back) fails the
    job with a clear message and no _summary.json."""
    corpus = _corpus(tmp_path, imdb_test, 1_200)
    out = tmp_path / "out"
    args = ["score", "--model", str(bundle), "--input", str(corpus), "--shard-rows", "400"]
    assert critic_cli(*args, "--output", str(out)).returncode == 0
    (out / "_summary.json").unlink()
    last = out / "part-000002.parquet"
    pq.write_table(pq.read_table(last).slice(0, 10), last)  # 390 rows gone
    again = critic_cli(*args, "--output", str(out))
    assert again.returncode == 2, again.stderr
    assert "holds 810 rows but the inputs hold 1200" in again.stderr
    assert "Traceback" not in again.stderr
    assert not (out / "_summary.json").exists()


@pytest.mark.parametrize("store", ["local", "s3", "s3-folder"])
def test_an_input_rewritten_during_the_job_fails_it(
    tmp_path, runtime, imdb_test, monkeypatch, store, request
):
    """The input is overwritten after the first shard with as many rows and bytes, other
    texts: the row count matches, the output mixes two files; the job fails instead of
    succeeding. On S3 the job's first stamps come from the lookup or the listing that found
    the input, its last ones from a HEAD or that listing made again."""
    from critic.serve.score import local
    from critic.serve.score.job import expand_inputs
    from critic.serve.score.local import score_corpus
    from critic.serve.score.options import MissingRows, ScoreOptions
    from critic.storage import location

    corpus = _corpus(tmp_path, imdb_test, 900)
    source = location(corpus)
    named = source
    if store != "local":
        named = location(f"{request.getfixturevalue('s3_bucket')}/in")
        source = named / "corpus.jsonl"
        source.write_atomic(corpus.read_bytes())
        named = source if store == "s3" else named
    write_shard = local.write_shard

    def rewrite_after_the_first_shard(table, path, fmt):
        written = write_shard(table, path, fmt)
        if path.name.endswith("-000000.parquet"):
            lines = corpus.read_text(encoding="utf-8").splitlines()
            source.write_atomic(("\n".join(reversed(lines)) + "\n").encode())
        return written

    monkeypatch.setattr(local, "write_shard", rewrite_after_the_first_shard)
    out = tmp_path / "out"
    with pytest.raises(MissingRows, match=r"corpus\.jsonl changed while the job read it"):
        inputs = expand_inputs([named.uri])
        score_corpus(runtime, inputs, out, ScoreOptions(shard_rows=300, id_column="id"))
    assert not (out / "_summary.json").exists()
    assert source.size() == corpus.stat().st_size  # the same size: the stamps told it


def test_a_job_over_s3_objects_stamps_them_by_listing_not_one_by_one(
    tmp_path, runtime, s3_bucket, s3_server, monkeypatch
):
    """A job over a folder of S3 objects takes its first stamps (size and ETag) from the
    listing that found them, and its last ones from that listing made again: one request
    per 1,000 objects, not a HEAD each. A re-run of the finished job asks nothing of each."""
    from flaky_proxy import FlakyProxy

    from critic.serve.score.job import expand_inputs
    from critic.serve.score.local import score_corpus
    from critic.serve.score.manifest import input_stamps, shard_stamps
    from critic.serve.score.options import ScoreOptions
    from critic.storage import location

    for i in range(30):
        location(f"{s3_bucket}/many/r{i:02d}.jsonl").write_atomic(b'{"text": "fine film"}\n')
    inputs = expand_inputs([f"{s3_bucket}/many"])
    with FlakyProxy(s3_server, rate=0.0) as proxy:  # counts the requests, fails none
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        first = input_stamps(inputs, known=True)
        assert proxy.requests == 0
        assert input_stamps(inputs) == first and proxy.requests == 1  # one listing page
        inputs[3].write_atomic(b'{"text": "fine film!"}\n')
        inputs[4].write_atomic(b'{"text": "fine fiLm"}\n')  # the same size
        location(f"{s3_bucket}/many/r05.jsonl").fs.delete_file(inputs[5].path)
        now = input_stamps(inputs)
        assert [k for k in range(30) if now[k] != first[k]] == [3, 4, 5]
        assert now[5] == (0, 0) and now[4][0] == first[4][0]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    out, options = f"{s3_bucket}/out", ScoreOptions(shard_rows=1000)
    done = score_corpus(runtime, expand_inputs([f"{s3_bucket}/many"]), out, options)
    assert done.rows == 29 and done.scored_rows == 29
    with FlakyProxy(s3_server, rate=0.0) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        again = score_corpus(runtime, expand_inputs([f"{s3_bucket}/many"]), out, options)
    assert again.rows == 29 and again.scored_rows == 0 and again.skipped_shards == 1
    assert proxy.methods_seen["HEAD"] < 10, proxy.methods_seen  # 29 inputs: none asked
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    # The shards' stamps come from one listing of the output too; a rewrite changes them.
    shard = location(out) / "part-000000.parquet"
    stamps = shard_stamps(location(out), [shard.name, "part-000009.parquet"])
    assert stamps[0] == shard.stamp() and stamps[1] == (0, 0)
    table = pq.read_table(pa.BufferReader(shard.read_bytes()))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="gzip")
    shard.write_atomic(sink.getvalue().to_pybytes())
    assert shard_stamps(location(out), [shard.name])[0] == shard.stamp() != stamps[0]


@pytest.mark.parametrize("manifest", ["[]", "{not json", '{"inputs": 5}'])
def test_a_damaged_job_manifest_is_a_clear_error(tmp_path, bundle, imdb_test, manifest):
    corpus = _corpus(tmp_path, imdb_test, 10)
    out = tmp_path / "out"
    out.mkdir()
    (out / "_manifest.json").write_text(manifest, encoding="utf-8")
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(corpus), "--output", str(out)
    )
    assert result.returncode == 2, result.stderr
    assert "_manifest.json" in result.stderr and "use a new --output" in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_parquet_is_refused_before_the_output_exists(tmp_path, bundle):
    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"id": [[1, 2], [3]], "text": ["Fine.", "Dull."]}), nested)
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(nested.read_bytes()[:-20])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 40)
    for path, message in (
        (nested, "id column 'id' is list<element: int64>; an id must be text or a number"),
        (damaged, "damaged.parquet: not a readable Parquet file"),
        (binary, "binary.csv: no column 'text'"),
    ):
        out = tmp_path / f"out-{path.stem}"
        result = critic_cli(
            "score", "--model", str(bundle), "--input", str(path), "--output", str(out),
            "--id-column", "id",
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr) < 600
        assert not out.exists()


def test_an_unclosed_quote_is_a_row_error_and_exit_3(tmp_path, bundle):
    corpus = tmp_path / "in.csv"
    corpus.write_text(
        'id,text\n1,a great movie\n2,"this quote never closes\n3,another review\n'
        "4,yet another\n5,fifth\n6,sixth\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = critic_cli(
        "score", "--model", str(bundle), "--input", str(corpus), "--output", str(out),
        "--id-column", "id",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "2 rows (1 with errors)" in result.stdout
    rows = read_output(out).to_pylist()
    assert [r["id"] for r in rows] == ["1", None]
    assert "a quoted field never closes" in rows[1]["error"]


def test_ray_engine_with_bundle_inputs_and_output_on_s3(tmp_path, bundle, imdb_test, s3_bucket):
    """Nothing on a local path: the bundle, the inputs and the output are s3:// URIs; the
    actors fetch the bundle themselves. The output equals the local engine's on local files."""
    from critic.bundle import load_bundle
    from critic.storage import location

    for f in bundle.iterdir():
        location(f"{s3_bucket}/bundle/{f.name}").write_atomic(f.read_bytes())
    remote_bundle = load_bundle(f"{s3_bucket}/bundle", cache=tmp_path / "cache")
    assert remote_bundle.meta == load_bundle(bundle).meta
    corpus = _corpus(tmp_path, imdb_test, 1_000)
    location(f"{s3_bucket}/in/corpus.jsonl").write_atomic(corpus.read_bytes())
    local = critic_cli(
        "score", "--model", str(bundle), "--input", str(corpus), "--shard-rows", "300",
        "--output", str(tmp_path / "local"),
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    remote = critic_cli(
        "score", "--model", f"{s3_bucket}/bundle", "--input", f"{s3_bucket}/in/corpus.jsonl",
        "--shard-rows", "300", "--output", f"{s3_bucket}/out", "--engine", "ray",
        "--num-cpus", "2",
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert _s3_output(f"{s3_bucket}/out").equals(read_output(tmp_path / "local"))


def test_shards_read_on_from_cursors_are_the_shards_read_afresh(tmp_path, monkeypatch):
    """A job reading its shards in order reads each input on from where the last shard
    ended (one reader per input and shard size, not one per segment: a Parquet file of one
    row group was decoded again from its first row for every shard); out of order it starts
    afresh. Either way each shard holds exactly its rows."""
    from critic.serve.score import shards
    from critic.serve.score.layout import plan_layout
    from critic.serve.score.options import ScoreOptions
    from critic.serve.score.shards import Cursors, read_shard_input
    from critic.storage import location

    def rows(prefix, n):
        return {
            "id": [f"{prefix}{i}" for i in range(n)],
            "text": [f"t {prefix} {i}" for i in range(n)],
        }

    one_group, small_groups = tmp_path / "a.parquet", tmp_path / "c.parquet"
    pq.write_table(pa.table(rows("a", 57)), one_group)  # one row group
    lines = tmp_path / "b.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in pa.table(rows("b", 23)).to_pylist()))
    pq.write_table(pa.table(rows("c", 31)), small_groups, row_group_size=4)
    inputs = [one_group, lines, small_groups]
    options = ScoreOptions(id_column="id", shard_rows=10)
    layout = plan_layout([location(p) for p in inputs], options.shard_rows)
    sources, offsets = dict(enumerate(inputs)), dict(enumerate(layout.offsets))
    afresh = [read_shard_input(sources, offsets, s, options) for s in layout.shards]
    assert sum(t.num_rows for t in afresh) == 111
    assert [i for t in afresh for i in t.column("id").to_pylist()] == [
        *rows("a", 57)["id"],
        *rows("b", 23)["id"],
        *rows("c", 31)["id"],
    ]

    opened = []
    real = shards.iter_batches
    monkeypatch.setattr(
        shards, "iter_batches", lambda path, *a, **k: opened.append(path) or real(path, *a, **k)
    )
    cursors = Cursors(size=2)
    in_order = [read_shard_input(sources, offsets, s, options, cursors) for s in layout.shards]
    assert all(a.equals(b) for a, b in zip(in_order, afresh, strict=True))
    # One reader per input, and one more for b.jsonl's first 3 rows (they finish the shard
    # a.parquet began); the short last segments are read on too.
    assert len(opened) == 4 < sum(len(s.segments) for s in layout.shards) == 13
    order = [4, 0, 5, 1, 2, 11, 3, 6, 8, 7, 10, 9]
    shuffled = {
        k: read_shard_input(sources, offsets, layout.shards[k], options, cursors) for k in order
    }
    assert all(shuffled[k].equals(afresh[k]) for k in range(12))
    cursors.close()


def test_actor_runs_hand_out_every_shard_once_in_consecutive_runs():
    """The Ray engine's dispatch: each actor takes its own run of consecutive shards; one
    done early takes over the second half of the longest run left."""
    from critic.serve.score.layout import Shard
    from critic.serve.score.ray_engine import Runs

    shards = [Shard(k, (), 1) for k in range(10)]
    runs = Runs(shards, 3)  # 4 + 4 + 2
    taken = {0: [], 1: [], 2: []}
    for actor in (0, 1, 2, 0, 1, 2, 2):  # actor 2 finishes its run, then takes over
        taken[actor].append(runs.next(actor).number)
    assert taken == {0: [0, 1], 1: [4, 5], 2: [8, 9, 3]}  # runs left: [2], [6, 7]
    assert runs.next(1) == shards[6] and runs.next(0) == shards[2]
    assert [runs.next(a) for a in (0, 0, 0)] == [shards[7], None, None]
    assert Runs([], 2).next(1) is None


@pytest.mark.parametrize("where", ["local", "s3"])
def test_an_outputs_rows_and_errors_are_counted_from_the_shard_footers(tmp_path, where, request):
    """The job's last check counts every committed shard: from Parquet footers (rows, and
    the error column's null counts), 16 shards at a time on a store; a footer without
    statistics is read whole. Either way the counts are those of the rows."""
    from critic.serve.score.options import shard_name
    from critic.serve.score.shards import count_output
    from critic.storage import location

    root = request.getfixturevalue("s3_bucket") if where == "s3" else str(tmp_path)
    output = location(f"{root}/out")
    output.make_dirs()
    expected_rows = expected_errors = 0
    for number in range(7):
        n = 5 + 3 * number
        error = [None if (i + number) % 3 else f"row {i} failed" for i in range(n)]
        table = pa.table(
            {
                "id": [f"{number}-{i}" for i in range(n)],
                "probabilities": [[0.25, 0.75]] * n,  # a nested column before "error"
                "error": error,
            }
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=4, write_statistics=number != 3)
        (output / shard_name(number, "parquet")).write_atomic(sink.getvalue().to_pybytes())
        expected_rows += n
        expected_errors += sum(e is not None for e in error)
    names = [shard_name(number, "parquet") for number in range(7)]
    assert count_output(output, "parquet", names) == (expected_rows, expected_errors)
    assert count_output(output, "parquet", names[:1]) == (5, 2)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_last_count_reads_only_shards_this_run_did_not_write_as_listed(
    tmp_path, runtime, imdb_test, monkeypatch, where, request
):
    """The job's last count takes a shard it wrote itself from what its writer knew when
    the listing shows it with the size it was written with: a fresh job reads no shard
    back. A shard replaced since (another size) is read, and its missing rows fail the job;
    a resumed job reads the shards of the earlier run."""
    from critic.serve.score import local, shards
    from critic.serve.score.job import expand_inputs
    from critic.serve.score.local import score_corpus
    from critic.serve.score.options import MissingRows, ScoreOptions
    from critic.storage import location

    root = request.getfixturevalue("s3_bucket") if where == "s3" else str(tmp_path)
    corpus = tmp_path / "corpus.jsonl"
    texts = [None if i % 7 == 3 else imdb_test[i % len(imdb_test)] for i in range(900)]
    corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    inputs = expand_inputs([str(corpus)])
    options = ScoreOptions(shard_rows=300, id_column="id")
    read_back: list[str] = []
    footers = shards._parquet_counts
    monkeypatch.setattr(
        shards, "_parquet_counts", lambda shard: read_back.append(shard.name) or footers(shard)
    )

    summary = score_corpus(runtime, inputs, f"{root}/fresh", options)
    assert (summary.rows, summary.errors, summary.shards) == (900, texts.count(None), 3)
    assert read_back == []

    fresh = location(f"{root}/fresh")
    for name in ("_summary.json", "part-000001.parquet"):
        fresh.fs.delete_file((fresh / name).path)
    resumed = score_corpus(runtime, inputs, fresh, options)
    assert (resumed.rows, resumed.errors, resumed.skipped_shards) == (900, texts.count(None), 2)
    assert sorted(read_back) == ["part-000000.parquet", "part-000002.parquet"]

    read_back.clear()
    write_shard = local.write_shard

    def replace_the_first_shard_when_the_last_is_written(table, path, fmt):
        written = write_shard(table, path, fmt)
        if path.name == "part-000002.parquet":
            write_shard(table.slice(0, 100), path.parent / "part-000000.parquet", fmt)
        return written

    monkeypatch.setattr(local, "write_shard", replace_the_first_shard_when_the_last_is_written)
    with pytest.raises(MissingRows, match=r"holds 700 rows but the inputs hold 900"):
        score_corpus(runtime, inputs, f"{root}/replaced", options)
    assert read_back == ["part-000000.parquet"]


def test_small_objects_on_a_store_are_planned_and_read_as_local_files_are(tmp_path, s3_bucket):
    """Many small objects are scanned and read 16 at a time, each scan as if the object
    began a shard: the layout and every shard's rows are those of the same files read one
    by one from a local disk, whichever objects a shard boundary falls inside."""
    from critic.serve.score.job import expand_inputs
    from critic.serve.score.layout import plan_layout
    from critic.serve.score.options import ScoreOptions
    from critic.serve.score.shards import read_shard_input
    from critic.storage import location

    folder = tmp_path / "many"
    folder.mkdir()
    for k, rows in enumerate([3, 1, 9, 0, 4, 2, 12, 5, 1, 1, 6, 2, 8, 3]):
        lines = [json.dumps({"id": f"{k}-{i}", "text": f"review {k} {i}"}) for i in range(rows)]
        body = ("\n".join(lines) + ("\n" if k % 2 else "")).encode()
        (folder / f"part-{k:02d}.jsonl").write_bytes(body)
        location(f"{s3_bucket}/many/part-{k:02d}.jsonl").write_atomic(body)
    options = ScoreOptions(id_column="id", shard_rows=5)
    local = expand_inputs([str(folder)])
    remote = expand_inputs([f"{s3_bucket}/many"])
    assert all(path.listed is not None for path in remote)  # planned from the listing
    mine, theirs = plan_layout(local, 5), plan_layout(remote, 5)
    assert (theirs.offsets, theirs.rows) == (mine.offsets, mine.rows) == (theirs.offsets, 57)
    assert theirs.shards == mine.shards
    assert max(len(shard.segments) for shard in mine.shards) >= 4  # whole objects between
    for shard in mine.shards:
        here = read_shard_input(
            dict(enumerate(local)), dict(enumerate(mine.offsets)), shard, options
        )
        there = read_shard_input(
            dict(enumerate(remote)), dict(enumerate(theirs.offsets)), shard, options
        )
        assert there.equals(here) and len(here) == shard.rows
