"""critic tune with its storage_path on S3 (a real S3-compatible server over HTTP): Tune's
state and checkpoints and critic's own files land in the bucket; the leaderboard, export and
resume read them from there, with no local copy left."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import tiny_sweep_config

from critic.orchestrator.config import SweepConfig

pytestmark = [pytest.mark.tf, pytest.mark.ray]


def test_a_sweep_stored_in_s3_exports_and_resumes_from_there(tmp_path, s3_bucket, monkeypatch):
    import ray

    from critic.bundle import load_bundle
    from critic.export import export_run
    from critic.orchestrator.sweep import resume_sweep, run_sweep
    from critic.storage import location

    monkeypatch.setenv("CRITIC_CACHE", str(tmp_path / "cache"))
    ray.shutdown()
    # Started after the AWS variables are set: its workers upload the checkpoints.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = SweepConfig.from_dict(
            tiny_sweep_config(
                tmp_path,
                storage_path=f"{s3_bucket}/runs",
                model={"family": "conv1d", "embedding_dim": 4, "filters": {"grid": [2, 4]}},
                search={"num_samples": 1, "scheduler": "fifo", "max_concurrent_trials": 2},
                training={"epochs": 2, "batch_size": 64},
                top_k=1,
            )
        )
        run = run_sweep(cfg)
        assert run.uri == f"{s3_bucket}/runs/tiny"
        board = json.loads((run / "leaderboard.json").read_text())
        best = board["trials"][0]
        assert len(board["trials"]) == 2 and 0.0 <= best["test_accuracy"] <= 1.0
        for name in ("sweep.json", "leaderboard.md", "overview.png", "curves_1.png"):
            assert (run / name).is_file(), name
        assert (run / best["checkpoint"] / "model.keras").is_file()  # the checkpoint is in S3
        assert (run / best["data"] / "x_val.npy").is_file()

        # Nothing local is needed afterwards: without the working copy, export from the URI.
        shutil.rmtree(tmp_path / "cache")
        assert export_run(run.uri, 1, tmp_path / "bundles")
        bundle = load_bundle(tmp_path / "bundles" / "rank1")
        assert bundle.meta["trial"]["trial"] == best["trial"]

        # Resuming the finished sweep from its URI re-runs no trial.
        results = [f for f in location(run.uri).files() if f.name == "result.json"]
        assert len(results) == 2  # one per trial
        before = {f.uri: f.read_text() for f in results}
        resume_sweep(run.uri)
        assert {f.uri: f.read_text() for f in results} == before
    finally:
        ray.shutdown()
