"""The pieces: schedule, masks against the format's own pruning, fidelity numbers, the corpus split."""

from __future__ import annotations

import numpy as np
import pytest

from tvm_sparse.format import bsr4x1
from tvm_sparse.sparsify import corpus, fidelity, schedule


def test_cubic_schedule():
    s = [schedule.cubic_sparsity(t, 0.8, 100) for t in range(0, 130)]
    assert s[0] == 0.0 and s[100] == 0.8 and s[129] == 0.8
    assert all(b >= a for a, b in zip(s, s[1:], strict=False))
    assert s[50] > 0.4 * 1.5  # cubic: most of the pruning early (0.7 at half-way)


def test_learning_rate_schedule():
    lr = [schedule.learning_rate(t, 100, 1.0, 10, 70) for t in range(100)]
    assert lr[0] == pytest.approx(0.1) and lr[9] == 1.0 and lr[69] == 1.0
    assert lr[99] < 0.05 and all(b <= a for a, b in zip(lr[70:], lr[71:], strict=False))


def test_block_mask_matches_the_format():
    torch = pytest.importorskip("torch")
    from tvm_sparse.sparsify import masks

    w = np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32)
    for sparsity in (0.0, 0.5, 0.8, 0.9):
        keep = masks.expand(masks.block_mask(torch.from_numpy(w), sparsity)).numpy()
        np.testing.assert_array_equal(np.where(keep, w, 0), bsr4x1.prune(w, sparsity))


def test_missing_extra_names_it(monkeypatch):
    import importlib

    from tvm_sparse.sparsify import deps

    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "torch":
            raise ImportError("no torch here")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(deps.MissingExtraError, match=r"\.\[export\]"):
        deps.require("torch")


def test_fidelity_numbers():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((20, 8))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    same = fidelity.compare(e, e)
    assert same["mean_cosine"] == pytest.approx(1.0) and same["spearman"] == pytest.approx(1.0)
    noisy = e + 0.3 * rng.standard_normal(e.shape)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    f = fidelity.compare(noisy, e)
    assert 0.5 < f["mean_cosine"] < 0.99 and 0.2 < f["spearman"] < 0.99
    assert fidelity.spearman(np.arange(10.0), -np.arange(10.0)) == pytest.approx(-1.0)
    h = rng.standard_normal((2, 5, 8))
    m = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = fidelity.mean_pool(h, m)
    want = h[0, :3].mean(0)
    np.testing.assert_allclose(pooled[0], want / np.linalg.norm(want))


def test_builtin_text_splits_are_disjoint():
    train, held = corpus.builtin("train"), corpus.builtin("heldout")
    assert len(train) > 10_000 and len(held) > 1_000  # both sources installed by the export extra
    assert not set(train) & set(held)
    assert all(corpus.MIN_WORDS <= len(s.split()) <= corpus.MAX_WORDS for s in train[:2000])


def test_sentence_splitting():
    text = "The cat sat on the mat. Then it slept all day! Short one. \"Why not try it again?\" he said."
    got = corpus.sentences(text)
    assert got == ["The cat sat on the mat.", "Then it slept all day!", "\"Why not try it again?\" he said."]


def test_report_never_fails_the_command(tmp_path, capsys):
    """prune/compile print why fidelity was not measured instead of failing after the real work is done."""
    import argparse

    from tvm_sparse.sparsify import report

    args = argparse.Namespace(model=str(tmp_path / "model.onnx"), output=str(tmp_path / "pruned.onnx"),
                              tokenizer=None, fidelity_text=None)
    report.after_prune(args, tmp_path / "model.onnx")
    assert "not measured: pass --tokenizer" in capsys.readouterr().out


def test_activation_aware_keeps_the_outlier_channel():
    """An input channel with huge activations and small weights matters most to the output: activation-aware
    ranking keeps its blocks where plain magnitude drops them first."""
    torch = pytest.importorskip("torch")
    from tvm_sparse.sparsify import masks

    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 16, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(16, 8).abs() + 1.0)
        lin.weight[:, 3] = 0.05  # small weights on channel 3
    x = torch.randn(64, 8)
    x[:, 3] *= 1000.0  # ... which carries an outlier feature
    for aware, kept in ((True, True), (False, False)):
        layer = torch.nn.Linear(8, 16, bias=False)
        layer.load_state_dict(lin.state_dict())
        pruner = masks.Pruner({"l": layer}, activation_aware=aware)
        layer(x)
        pruner.update(0.5)
        assert bool(pruner.masks["l"][:, 3].all()) is kept
        assert int((~pruner.masks["l"]).sum()) == 16  # exactly half of the 4 x 8 blocks either way


def test_sparsify_is_a_tvm_sparse_subcommand(capsys):
    from tvm_sparse.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["sparsify", "--help"])
    assert exc.value.code == 0 and "Example" in capsys.readouterr().out
    args = build_parser().parse_args(["sparsify", "m", "-o", "o", "--sparsity", "0.9", "--text", "t.txt"])
    assert (args.model, args.output, args.sparsity, args.text) == ("m", "o", 0.9, "t.txt")
    for cmd in ("prune", "compile"):
        assert build_parser().parse_args([cmd, "m", "-o", "o", "--fidelity-text", "f"]).fidelity_text == "f"


def test_the_command_line_runs_the_recipe_in_config():
    """Every setting left out on the command line is Config's default (one home for the recipe)."""
    from tvm_sparse.cli import build_parser
    from tvm_sparse.sparsify import cli as sparsify_cli
    from tvm_sparse.sparsify.config import Config

    args = build_parser().parse_args(["sparsify", "m", "-o", "o"])
    built = sparsify_cli.config_from_args(args, ["a sentence"], "src")
    expected = Config(teacher="m", text_digest=built.text_digest, text_source="src")
    assert built.identity() == expected.identity()
    assert built.train_embeddings and built.attention_weight > 0 and built.lr == 1e-3
    off = build_parser().parse_args(["sparsify", "m", "-o", "o", "--no-train-embeddings", "--attention-weight", "0"])
    off_cfg = sparsify_cli.config_from_args(off, ["a sentence"], "src")
    assert not off_cfg.train_embeddings and off_cfg.attention_weight == 0.0
