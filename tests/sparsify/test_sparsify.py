"""sparsify on a tiny random BERT: exact 4x1 sparsity, distillation beats one-shot pruning, resume, refusals."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tvm_sparse.format import bsr4x1  # noqa: E402
from tvm_sparse.sparsify import cli, distill, masks  # noqa: E402
from tvm_sparse.sparsify.deps import SparsifyError  # noqa: E402

SPARSITY = 0.75


def config(model_dir, **kw) -> distill.Config:
    # frozen embeddings, no attention KL: the tiny random model's run is about pruning and distillation;
    # the defaults' two extras have their own test (test_attention_distillation_and_trained_embeddings_run)
    base = dict(teacher=str(model_dir), sparsity=SPARSITY, steps=40, batch=8, lr=3e-3, mask_every=2,
                max_len=16, checkpoint_every=10, threads=1, bf16=False, train_embeddings=False,
                attention_weight=0.0)
    return distill.Config(**{**base, **kw})


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def finished(tiny_model, texts, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    summary = distill.sparsify(config(tiny_model), texts["train"], out, eval_text=texts["eval"], log=quiet)
    return out, summary


def encoder_weights(model_dir) -> dict[str, np.ndarray]:
    model = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    return {n: lin.weight.detach().numpy().copy() for n, lin in masks.encoder_linears(model).items()}


def test_exact_4x1_sparsity_at_the_level(finished):
    out, summary = finished
    weights = encoder_weights(out)
    assert len(weights) == 2 * 6  # Q, K, V, attention output, FFN up, FFN down per layer
    for name, w in weights.items():
        blocks = bsr4x1.block_mask(w)
        assert blocks.size - blocks.sum() == round(SPARSITY * blocks.size), name
        # zeros come in whole 4x1 blocks: no kept block lost a single weight to the mask
        assert (w == 0).sum() == 4 * (blocks.size - blocks.sum()), name
    assert summary["sparsity"] == SPARSITY
    assert all(abs(r["block_sparsity"] - SPARSITY) < 1e-9 for r in summary["layers"])
    saved = json.loads((out / "sparsify.json").read_text())
    assert saved["fidelity_to_dense"]["sentences"] == 24
    assert not (out / "checkpoint").exists()  # removed once the output is complete
    assert (out / "tokenizer_config.json").is_file()


def test_distillation_lowers_the_loss(finished, tiny_model, texts):
    """After sparsify, the distillation loss on held-out sentences is far below one-shot magnitude pruning's
    at the same sparsity (with the optimizer off, gradual pruning *is* one-shot pruning: this fails)."""
    out, _ = finished
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_model))
    enc = {k: torch.from_numpy(v) for k, v in
           __import__("tvm_sparse.sparsify.fidelity", fromlist=["x"]).tokenize(tok, texts["eval"], 16).items()}
    teacher = transformers.AutoModel.from_pretrained(str(tiny_model)).eval()
    one_shot = transformers.AutoModel.from_pretrained(str(tiny_model)).eval()
    masks.Pruner(masks.encoder_linears(one_shot)).update(SPARSITY)
    student = transformers.AutoModel.from_pretrained(str(out)).eval()

    def loss(model):
        with torch.no_grad():
            t, s = teacher(**enc, output_hidden_states=True), model(**enc, output_hidden_states=True)
            return float(distill.distill_loss(s, t, enc["attention_mask"], 1.0, 1.0)[0])

    assert loss(student) < 0.5 * loss(one_shot)


def test_loss_goes_down_during_the_run(finished):
    """Pruning raises the distillation loss; training brings it back down: the last steps end far below the
    run's worst (without the optimizer the loss only climbs with sparsity and ends at its worst)."""
    out, _ = finished
    losses = [r[2] for r in json.loads((out / "sparsify.history.json").read_text())["rows"]]
    assert np.mean(losses[-5:]) < 0.5 * max(losses)


def test_resume_continues_to_the_same_model(finished, tiny_model, texts, tmp_path):
    out_full, _ = finished
    out = tmp_path / "out"
    cfg = config(tiny_model)
    assert distill.sparsify(cfg, texts["train"], out, log=quiet, stop_after=13) == {"stopped_at": 13}
    assert (out / "checkpoint" / "state.pt").is_file()
    with pytest.raises(SparsifyError, match="--resume"):  # a checkpoint is never restarted by accident
        distill.sparsify(cfg, texts["train"], out, log=quiet)
    distill.sparsify(cfg, texts["train"], out, eval_text=texts["eval"], resume=True, log=quiet)
    a, b = encoder_weights(out_full), encoder_weights(out)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-5, err_msg=name)


def test_resume_before_the_first_checkpoint_starts_over(tiny_model, texts, tmp_path):
    out = tmp_path / "out"
    distill.sparsify(config(tiny_model), texts["train"], out, log=quiet, stop_after=2)
    (out / "checkpoint" / "state.pt").unlink()  # killed before any state was saved: run.json only
    with pytest.raises(SparsifyError, match="--resume"):
        distill.sparsify(config(tiny_model), texts["train"], out, log=quiet)
    distill.sparsify(config(tiny_model), texts["train"], out, resume=True, log=quiet)
    assert (out / "sparsify.json").is_file()


def test_refuses_a_checkpoint_of_another_run(tiny_model, texts, tmp_path):
    out = tmp_path / "out"
    distill.sparsify(config(tiny_model), texts["train"], out, log=quiet, stop_after=2)
    with pytest.raises(SparsifyError, match="different run.*sparsity"):
        distill.sparsify(config(tiny_model, sparsity=0.5), texts["train"], out, resume=True, log=quiet)


def _args(model, output, **kw) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    argv = [str(model), "-o", str(output), "--steps", "2", "--batch", "8", "--fp32"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return p.parse_args(argv)


def test_refuses_bad_input(tiny_model, texts, tmp_path, capsys):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(texts["train"]))
    nonempty = tmp_path / "full"
    nonempty.mkdir()
    (nonempty / "keep.txt").write_text("someone's file")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    cases = [
        (_args(tmp_path / "nowhere", tmp_path / "o1", text=text), "not a Hugging Face model directory"),
        (_args(tiny_model, tiny_model / "sub", text=text), "must not be the input directory"),
        (_args(tiny_model, tiny_model, text=text), "must not be the input directory"),
        (_args(tiny_model, nonempty, text=text), "not empty"),
        (_args(tiny_model, tmp_path / "o2", text=text, sparsity=1.0), "sparsity"),
        (_args(tiny_model, tmp_path / "o3", text=empty), "no sentences"),
        (_args(tiny_model, tmp_path / "o4", text=tmp_path / "missing.txt"), "does not exist"),
    ]
    for args, message in cases:
        assert cli.run(args) == 2, message
        assert message in capsys.readouterr().err
    assert (nonempty / "keep.txt").read_text() == "someone's file"
    assert not (tiny_model / "sub").exists() and not (tiny_model / "sparsify.json").exists()


def test_cli_end_to_end(tiny_model, texts, tmp_path, capsys):
    text, held = tmp_path / "train.txt", tmp_path / "held.txt"
    text.write_text("\n".join(texts["train"]))
    held.write_text("\n".join(texts["eval"]))
    assert cli.run(_args(tiny_model, tmp_path / "out", text=text, eval_text=held, sparsity=0.5)) == 0
    assert "mean cosine" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_attention_sparsity_splits_the_level_and_keeps_the_total(tiny_model, texts, tmp_path):
    """--attention-sparsity: attention Linears at their own level, the FFN's at what keeps the encoder's total;
    both exact. (Uniform pruning fails the level check: every layer would be at 0.75.)"""
    out = tmp_path / "split"
    summary = distill.sparsify(config(tiny_model, attention_sparsity=0.6, steps=12), texts["train"], out,
                               log=quiet)
    weights = encoder_weights(out)
    zeros = total = 0
    for name, w in weights.items():
        blocks = bsr4x1.block_mask(w)
        # 4 attention Linears of 32 x 32, 2 FFN Linears of 32 x 64: (0.75 * 8192 - 0.6 * 4096) / 4096
        want = 0.6 if masks.is_attention(name) else 0.9
        assert blocks.size - blocks.sum() == round(want * blocks.size), name
        zeros += (w == 0).sum()
        total += w.size
    assert abs(zeros / total - SPARSITY) < 1e-3
    assert {round(r["block_sparsity"], 2) for r in summary["layers"]} == {0.6, 0.9}


def test_attention_sparsity_that_cannot_reach_the_total_is_refused(tiny_model, texts, tmp_path):
    with pytest.raises(SparsifyError, match="leave the FFN at"):
        distill.sparsify(config(tiny_model, attention_sparsity=0.0, sparsity=0.9), texts["train"],
                         tmp_path / "o", log=quiet)
    with pytest.raises(SparsifyError, match="attention-sparsity"):
        distill.sparsify(config(tiny_model, attention_sparsity=1.0), texts["train"], tmp_path / "p", log=quiet)


def test_attention_distillation_term(tiny_model):
    """The attention KL is 0 against itself, positive against another model's, and joins the total."""
    tok = transformers.AutoTokenizer.from_pretrained(str(tiny_model))
    enc = tok(["the quick brown fox", "a cat"], padding=True, return_tensors="pt")
    teacher = transformers.AutoModel.from_pretrained(str(tiny_model), attn_implementation="eager").eval()
    other = transformers.AutoModel.from_pretrained(str(tiny_model), attn_implementation="eager").eval()
    masks.Pruner(masks.encoder_linears(other)).update(0.9)
    with torch.no_grad():
        t = teacher(**enc, output_hidden_states=True, output_attentions=True)
        s = other(**enc, output_hidden_states=True, output_attentions=True)
        assert float(distill.attention_kl(t, t, enc["attention_mask"])) == pytest.approx(0.0, abs=1e-6)
        kl = float(distill.attention_kl(s, t, enc["attention_mask"]))
        assert kl > 1e-6  # small: a random tiny model attends almost uniformly
        with_attn = float(distill.distill_loss(s, t, enc["attention_mask"], 1.0, 1.0, 2.0)[0])
        without = float(distill.distill_loss(s, t, enc["attention_mask"], 1.0, 1.0)[0])
    assert with_attn == pytest.approx(without + 2.0 * kl, rel=1e-5)


def test_attention_distillation_and_trained_embeddings_run(tiny_model, texts, tmp_path):
    out = tmp_path / "attn"
    summary = distill.sparsify(config(tiny_model, attention_weight=1.0, train_embeddings=True, steps=6),
                               texts["train"], out, log=quiet)
    assert summary["config"]["attention_weight"] == 1.0
    teacher = transformers.AutoModel.from_pretrained(str(tiny_model))
    student = transformers.AutoModel.from_pretrained(str(out))
    # the embeddings moved (trained), and stayed dense
    moved = student.embeddings.word_embeddings.weight - teacher.embeddings.word_embeddings.weight
    assert float(moved.detach().abs().max()) > 0


def test_sparsify_runs_where_tvm_is_not_installed(tiny_model, texts, tmp_path):
    """Training needs torch, not TVM: a GPU box without the TVM wheel runs ``tvm-sparse sparsify`` (a TVM
    import anywhere on its path fails this, run in a process where ``import tvm`` raises)."""
    import subprocess
    import sys

    (tmp_path / "train.txt").write_text("\n".join(texts["train"]))
    out = tmp_path / "out"
    code = ("import sys; sys.modules['tvm'] = sys.modules['tvm_ffi'] = None\n"
            "from tvm_sparse.cli import main\n"
            f"sys.argv = ['tvm-sparse', 'sparsify', {str(tiny_model)!r}, '-o', {str(out)!r}, '--steps', '2',"
            f" '--batch', '8', '--fp32', '--text', {str(tmp_path / 'train.txt')!r}, '--threads', '1']\n"
            "main()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (out / "sparsify.json").is_file()
    assert "tvm" not in json.loads((out / "sparsify.json").read_text()).get("error", "")
