"""Which ids each model family reads: tokenizer settings resolved per family, once each."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_sweep_config

from critic.orchestrator.config import ConfigError, SweepConfig, resolve_setting
from critic.orchestrator.prepare import setting_key, tokenizer_settings, trial_setting


def test_auto_features_follow_the_family():
    base = {"num_words": 100, "maxlen": 50}
    assert resolve_setting(base, "lstm") == {
        "num_words": 100,
        "maxlen": 50,
        "oov_token": "<OOV>",
        "padding": "pre",
        "ngrams": 1,
        "distinct": False,
    }
    nbsvm = resolve_setting(base, "nbsvm")
    assert (nbsvm["ngrams"], nbsvm["distinct"], nbsvm["maxlen"]) == (3, True, 150)
    assert nbsvm["max_ngrams"] == 200000 and nbsvm["hash_buckets"] == 0
    fasttext = resolve_setting(base, "fasttext")
    assert (fasttext["ngrams"], fasttext["distinct"], fasttext["maxlen"]) == (2, False, 100)
    bow = resolve_setting(base, "bow")
    assert (bow["ngrams"], bow["distinct"], bow["maxlen"]) == (1, True, 50)
    # The config's own values win over the family's.
    forced = resolve_setting({**base, "ngrams": 2, "distinct": False}, "nbsvm")
    assert (forced["ngrams"], forced["distinct"]) == (2, False)


def test_one_array_set_per_distinct_setting(tmp_path):
    cfg = SweepConfig.from_dict(
        tiny_sweep_config(
            tmp_path,
            tokenizer={"num_words": {"choice": [100, 200]}, "maxlen": 40},
            model={"family": {"choice": ["lstm", "conv1d", "nbsvm", "fasttext"]}},
        )
    )
    settings = tokenizer_settings(cfg)
    # lstm and conv1d share their word ids: 2 vocabularies x (words, nbsvm, fasttext)
    assert len(settings) == 6
    assert len({setting_key(s) for s in settings}) == 6
    config = {"tokenizer": cfg.tokenizer_space | {"num_words": 200}, "model": {"family": "nbsvm"}}
    assert trial_setting(config) in settings
    assert trial_setting(config)["ngrams"] == 3


def test_npz_ranks_cannot_feed_a_bag_family(tmp_path):
    npz, index = tmp_path / "imdb.npz", tmp_path / "index.json"
    np.savez(
        npz,
        x_train=np.array([[1, 2]]),
        y_train=np.array([1]),
        x_test=np.array([[1]]),
        y_test=np.array([0]),
    )
    index.write_text('{"a": 1}')
    with pytest.raises(ConfigError, match="need review texts"):
        SweepConfig.from_dict(
            tiny_sweep_config(
                tmp_path,
                dataset={"kind": "imdb_npz", "path": str(npz), "word_index": str(index)},
                model={"family": {"choice": ["lstm", "nbsvm"]}},
            )
        )


def test_nb_ratio_is_the_log_count_ratio_of_documents():
    from critic.orchestrator.zoo import nb_ratio

    x = np.array([[0, 1, 2, 2], [0, 0, 1, 3], [0, 0, 0, 2], [0, 3, 3, 3]], dtype=np.int32)
    y = np.array([1, 1, 0, 0], dtype=np.float32)
    r = nb_ratio(x, y, 5)
    # documents containing each id: positive [_, 2, 1, 1, 0], negative [_, 0, 1, 1, 0]; +1 each
    p = np.array([2, 1, 1, 0], dtype=np.float64) + 1
    q = np.array([0, 1, 1, 0], dtype=np.float64) + 1
    expected = np.concatenate([[0.0], np.log((p / p.sum()) / (q / q.sum()))])
    np.testing.assert_allclose(r[:, 0], expected, rtol=1e-6)
    assert r.shape == (5, 1) and r.dtype == np.float32


def test_nb_ratios_of_k_classes_are_one_vs_rest():
    from critic.orchestrator.zoo import nb_ratio

    x = np.array([[0, 1, 2], [0, 1, 1], [0, 0, 3], [3, 2, 2], [0, 0, 4]], dtype=np.int32)
    y = np.array([0, 0, 1, 2, 2])
    r = nb_ratio(x, y, 5, classes=3)
    assert r.shape == (5, 3) and r.dtype == np.float32
    assert (r[0] == 0).all()  # padding
    present = np.array([[1 if i in row else 0 for i in range(1, 5)] for row in x], np.float64)
    for k in range(3):
        p = present[y == k].sum(axis=0) + 1
        q = present[y != k].sum(axis=0) + 1
        np.testing.assert_allclose(r[1:, k], np.log((p / p.sum()) / (q / q.sum())), rtol=1e-6)
    # Two classes stay the binary ratio: one column, class 1 against class 0.
    np.testing.assert_allclose(
        nb_ratio(x, y.clip(0, 1), 5), nb_ratio(x, y.clip(0, 1), 5, classes=2)
    )
    assert nb_ratio(x, y.clip(0, 1), 5).shape == (5, 1)


def test_the_printed_leaderboard_shows_what_differs(tmp_path, capsys):
    from critic.orchestrator.leaderboard import short_trial_name, write_leaderboard

    name = "train_trial_78145_00003_3_embedding_dim=16,family=nbsvm,units=27_2026-12-02_23-31-16"
    assert short_trial_name(name) == "78145_00003"
    assert short_trial_name("flaky_trial_0a1b2_00000_0_x=1") == "0a1b2_00000"
    assert short_trial_name("odd") == "odd"
    shared = {"maxlen": 300, "oov_token": "<OOV>"}
    rows = [
        {
            "trial": name,
            "val_accuracy": 0.89,
            "test_accuracy": 0.857,
            "best_epoch": 2,
            "epochs": 4,
            "params": {**shared, "family": "nbsvm", "learning_rate": 0.0032},
        },
        {
            "trial": "train_trial_78145_00001_1",
            "val_accuracy": 0.8,
            "best_epoch": 1,
            "epochs": 1,
            "params": {**shared, "family": "lstm", "learning_rate": 0.005},
        },
    ]
    write_leaderboard(tmp_path, rows, planned_epochs=4)
    md = (tmp_path / "leaderboard.md").read_text().splitlines()
    assert md[0] == (
        "| rank | trial | family | val acc | test acc | best epoch (trained) | learning_rate |"
    )
    assert md[2] == "| 1 | 78145_00003 | nbsvm | 89.00 % | 85.70 % | 2 (4 of 4) | 0.0032 |"
    # Stopped early by the scheduler after its first epoch of 4.
    assert md[3] == "| 2 | 78145_00001 | lstm | 80.00 % |  | 1 (1 of 4) | 0.005 |"
    assert capsys.readouterr().out.strip() == "\n".join(md)
    csv_header = (tmp_path / "leaderboard.csv").read_text().splitlines()[0]
    assert csv_header.startswith("rank,trial,val_accuracy,test_accuracy,best_epoch,epochs,")
    assert "maxlen" in csv_header and name in (tmp_path / "leaderboard.csv").read_text()
