"""Rating prediction: biased-mf and fusionrec's rating head learn planted explicit ratings under the mse loss, are
evaluated by RMSE / MAE (early stopping on rmse keeps the lowest), train ranking + rating jointly, and compare
shows them; a model or a dataset that cannot do it says why."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusionrec.cli import main


def write_rated(root, n_users: int = 60, n_items: int = 40, per_user: int = 15, seed: int = 0):
    """``root/rated.inter``: rating = 3 + the user's leniency (-1 / 0 / +1 by user index mod 3) + the item's quality
    (+-0.75 by item parity) + noise (sd 0.3), clipped to [1, 5]. Returns ``(root, mean-predictor test RMSE bound)``."""
    rng = np.random.default_rng(seed)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(n_users):
        for t, i in enumerate(rng.choice(n_items, per_user, replace=False)):
            r = np.clip(3 + (u % 3 - 1) + (0.75 if i % 2 == 0 else -0.75) + rng.normal(0, 0.3), 1, 5)
            lines.append(f"u{u}\ti{i}\t{r:.2f}\t{1000 + t}")
    (root / "rated.inter").write_text("\n".join(lines) + "\n")
    ratings = np.array([float(line.split("\t")[2]) for line in lines[1:]])
    return root, float(ratings.std())


@pytest.fixture(scope="module")
def rated(tmp_path_factory):
    return write_rated(tmp_path_factory.mktemp("rated"))


def config(tmp_path, data, model: str, params: str, training: str):
    path = tmp_path / f"{model}.yaml"
    path.write_text(f"""
seed: 3
dataset: {{name: rated, path: {data}}}
model: {{name: {model}, params: {params}}}
training: {{epochs: 60, batch_size: 64, patience: 5, progress: false, {training}}}
evaluation: {{ks: [5, 10]}}
""")
    return path


def test_biased_mf_learns_planted_ratings_and_stops_on_the_lowest_rmse(rated, tmp_path, one_thread):
    data, spread = rated
    cfg = config(tmp_path, data, "biased-mf", "{embedding_size: 8, reg_weight: 0.01}",
                 "loss: mse, lr: 0.02, valid_metric: rmse")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    test = results["metrics"]["test"]
    # measured: test RMSE ~.35-.45 against a spread of ~1.0 (the global mean's RMSE)
    assert test["rmse"] < 0.6 * spread and test["mae"] < test["rmse"]
    assert "ndcg@10" in test  # items ranked by predicted rating are evaluated too
    valid_rmse = [h["valid"]["rmse"] for h in results["history"]]
    assert results["best_epoch"] == 1 + int(np.argmin(valid_rmse))  # smaller is better for rmse
    assert results["metrics"]["valid"]["rmse"] == pytest.approx(min(valid_rmse), abs=1e-6)


def test_fusionrec_trains_ranking_and_rating_jointly(rated, tmp_path, one_thread):
    data, spread = rated
    cfg = config(tmp_path, data, "fusionrec", "{embedding_size: 8, use_text: false, use_kg: false, "
                 "rating_head: true}", "loss: full_softmax, lr: 0.02, temperature: 0.2, term_weights: {rating: 1.0}, "
                 "valid_metric: rmse")  # these random histories hold no ranking signal to stop on
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert all("rating" in h["losses"] and "rec" in h["losses"] for h in results["history"])
    assert results["history"][-1]["losses"]["rating"] < results["history"][0]["losses"]["rating"]
    test = results["metrics"]["test"]
    assert test["rmse"] < 0.8 * spread and "ndcg@10" in test


def test_compare_shows_rating_errors_beside_ranking(rated, tmp_path, one_thread):
    data, _ = rated
    cfg = config(tmp_path, data, "biased-mf", "{embedding_size: 8}", "loss: mse, lr: 0.02, valid_metric: rmse")
    assert main(["compare", "--config", str(cfg), "--models", "pop,biased-mf", "--out", str(tmp_path / "cmp"),
                 "--quiet"]) == 0
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    header, _, pop_row, mf_row = table.splitlines()[2:6]
    assert "rmse" in header and "mae" in header
    assert pop_row.startswith("| pop |") and " - |" in pop_row  # popularity predicts no ratings
    assert mf_row.startswith("| biased-mf |")


def test_mse_needs_a_rating_model_and_ratings(rated, tmp_path, capsys):
    data, _ = rated
    cfg = config(tmp_path, data, "bpr", "{embedding_size: 8}", "loss: mse")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "a")]) == 2
    assert "does not predict ratings" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "rated.inter").write_text("user_id:token\titem_id:token\nu1\ti1\nu2\ti2\nu1\ti2\n")
    cfg = config(tmp_path, tmp_path / "plain", "biased-mf", "{embedding_size: 8}", "loss: mse")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "b")]) == 2
    assert "needs explicit ratings" in capsys.readouterr().err
