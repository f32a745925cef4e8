"""Gradual 4x1 pruning with distillation from the dense model: the training loop.

The student starts as a copy of the teacher (the dense model). Every step it sees a batch of the user's
sentences; the loss pulls its hidden states (every layer, padding masked, relative to the teacher's own
magnitude) and its pooled sentence embedding (cosine) towards the teacher's. Every ``mask_every`` steps
the 4x1 masks are recomputed at the sparsity the cubic schedule gives; after every optimizer step the
mask is applied again, so the model is exactly as sparse as its masks at all times. The last part of
the run (``1 - prune_fraction`` of the steps) fine-tunes at the final sparsity with the mask fixed.

Memory stays bounded: the teacher, the student, AdamW's two moments (the encoder's, and the embeddings'
unless ``train_embeddings`` is off), and one batch of short sentences. For all-MiniLM-L6-v2 that is well
under 2 GiB. The recipe's defaults, and the measurements that chose them, are in ``config.py``.

Checkpoints (every ``checkpoint_every`` steps, atomically) hold the student, the optimizer, the masks,
the step and every RNG; ``resume=True`` continues one, after checking it is the same run.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import fidelity, masks, output, schedule
from .config import Config, validate
from .deps import SparsifyError, require

CHECKPOINT = "checkpoint"
STATE = "state.pt"


class Batches:
    """Batch ``i`` of the run, computed from ``i`` alone (so a resume needs no sampler state).

    Each epoch shuffles the sentences with ``seed + epoch``, sorts chunks of 32 batches by length and
    shuffles the batches again: batches of similar lengths waste less work on padding.
    """

    def __init__(self, ids: list[list[int]], batch: int, seed: int) -> None:
        if len(ids) < batch:
            raise SparsifyError(f"the text has {len(ids)} sentences, fewer than one batch ({batch})")
        self.ids, self.batch, self.seed = ids, batch, seed
        self.per_epoch = len(ids) // batch
        self._epoch, self._plan = -1, []

    def _make_plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + 1000003 * epoch)
        order = rng.permutation(len(self.ids))[: self.per_epoch * self.batch]
        chunk = 32 * self.batch
        plan = []
        for c in range(0, len(order), chunk):
            part = order[c:c + chunk]
            part = part[np.argsort([len(self.ids[i]) for i in part], kind="stable")]
            plan += [part[b:b + self.batch] for b in range(0, len(part), self.batch)]
        return [plan[i] for i in rng.permutation(len(plan))]

    def __call__(self, step: int, pad_id: int) -> dict:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._plan = epoch, self._make_plan(epoch)
        rows = [self.ids[i] for i in self._plan[index]]
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), pad_id, np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def attention_kl(student_out, teacher_out, mask):
    """Mean KL(teacher || student) of the attention distributions, over layers, heads and real query tokens."""
    m = mask[:, None, :, None].float()  # [B, 1, Lq, 1]: padded queries count for nothing
    total = 0.0
    for s, t in zip(student_out.attentions, teacher_out.attentions, strict=True):
        s, t = s.float(), t.float()
        kl = (t * (t.clamp(min=1e-12).log() - s.clamp(min=1e-12).log())).sum(-1, keepdim=True)
        total = total + (kl * m).sum() / (m.sum() * s.shape[1])
    return total / len(student_out.attentions)


def distill_loss(student_out, teacher_out, mask, hidden_weight: float, embedding_weight: float,
                 attention_weight: float = 0.0):
    """``(total, hidden, embedding)``: relative masked MSE of every layer's hidden state, and 1 - cosine of
    the mean-pooled sentence embeddings; ``total`` adds the attention distributions' KL when weighted.
    Computed in fp32 whatever the forward ran in."""
    torch = require("torch")
    m = mask.unsqueeze(-1).float()
    n = m.sum() * student_out.hidden_states[-1].shape[-1]
    hidden = 0.0
    layers = list(zip(student_out.hidden_states[1:], teacher_out.hidden_states[1:], strict=True))
    for s, t in ((s.float(), t.float()) for s, t in layers):
        # relative to the teacher's own energy in that layer: deep layers are larger, each counts the same
        hidden = hidden + (((s - t) ** 2) * m).sum() / n / ((t**2 * m).sum() / n + 1e-6)
    hidden = hidden / len(layers)

    def pool(h):
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    emb = 1.0 - torch.nn.functional.cosine_similarity(pool(student_out.last_hidden_state.float()),
                                                      pool(teacher_out.last_hidden_state.float()), dim=-1).mean()
    total = hidden_weight * hidden + embedding_weight * emb
    if attention_weight:
        total = total + attention_weight * attention_kl(student_out, teacher_out, mask)
    return total, hidden, emb


def _rng_state() -> dict:
    torch = require("torch")
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    torch = require("torch")
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def read_checkpoint_config(out_dir: Path) -> dict | None:
    """The identity of the run whose checkpoint ``out_dir`` holds, or None (read without torch)."""
    p = out_dir / CHECKPOINT / "run.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _save_checkpoint(out_dir: Path, cfg: Config, step: int, student, optimizer, pruner, history: list) -> None:
    torch = require("torch")
    ck = out_dir / CHECKPOINT
    ck.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "student": student.state_dict(), "optimizer": optimizer.state_dict(),
             "pruner": pruner.state_dict(), "rng": _rng_state(), "history": history}
    tmp = ck / (STATE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, ck / STATE)  # a run killed mid-save keeps the previous checkpoint
    (ck / "run.json").write_text(json.dumps(cfg.identity(), indent=1))


def _eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def sparsify(cfg: Config, train_text: list[str], out_dir: str | Path, eval_text: list[str] | None = None,
             resume: bool = False, log: Callable[[str], None] | None = None,
             stop_after: int | None = None) -> dict:
    """Run (or resume) sparsification and write the Hugging Face directory ``out_dir``.

    Returns the summary written to ``out_dir/sparsify.json``. ``stop_after`` stops after that many
    steps of this call with a checkpoint and no output model (tests, and a crash by another name).
    """
    torch = require("torch")
    transformers = require("transformers")
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    validate(cfg)
    out_dir = Path(out_dir)
    resuming = output.prepare(Path(cfg.teacher), out_dir, cfg.identity(), resume,
                              read_checkpoint_config(out_dir))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    dev = torch.device(cfg.device)
    # attention probabilities are only returned by the eager implementation
    attn_impl = {"attn_implementation": "eager"} if cfg.attention_weight else {}

    def load():
        return transformers.AutoModel.from_pretrained(cfg.teacher, local_files_only=True, dtype=torch.float32,
                                                      **attn_impl)

    teacher, student = load().eval().to(dev), load().eval().to(dev)
    tokenizer = transformers.AutoTokenizer.from_pretrained(cfg.teacher, local_files_only=True)
    for p in teacher.parameters():
        p.requires_grad_(False)
    if not cfg.train_embeddings:
        for p in student.embeddings.parameters():
            p.requires_grad_(False)  # not pruned; training them costs most of the optimizer's memory and time
    linears = masks.encoder_linears(student)
    pruner = masks.Pruner(linears, activation_aware=cfg.activation_aware, final_sparsity=cfg.sparsity,
                          attention_sparsity=cfg.attention_sparsity)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)

    ids = tokenizer(train_text, truncation=True, max_length=cfg.max_len)["input_ids"]
    batches = Batches(ids, cfg.batch, cfg.seed)
    pad_id = tokenizer.pad_token_id or 0

    step, history = 0, []
    if resuming and not (out_dir / CHECKPOINT / STATE).is_file():
        log(f"{out_dir}: this run stopped before its first checkpoint; starting it over")
        resuming = False
    if resuming:
        state = torch.load(out_dir / CHECKPOINT / STATE, weights_only=False, map_location=dev)
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        pruner.load_state_dict(state["pruner"])
        _set_rng_state(state["rng"])
        step, history = state["step"], state["history"]
        pruner.apply()
        log(f"resumed {out_dir} at step {step}/{cfg.steps} (sparsity {pruner.sparsity:.3f})")
    else:
        (out_dir / CHECKPOINT).mkdir(parents=True, exist_ok=True)
        (out_dir / CHECKPOINT / "run.json").write_text(json.dumps(cfg.identity(), indent=1))

    log(f"sparsify: {len(linears)} Linears to {cfg.sparsity:.0%} 4x1 blocks over {cfg.steps} steps "
        f"(pruning until step {cfg.prune_end}), batch {cfg.batch}, {len(train_text)} training sentences, "
        f"{torch.get_num_threads()} threads")
    t_start, step0, done_here = time.time(), step, 0
    times: list[float] = []
    student.train(False)  # no dropout: the teacher has none either, and the steps are few
    while step < cfg.steps:
        target = schedule.cubic_sparsity(step, cfg.sparsity, cfg.prune_end)
        if step % cfg.mask_every == 0 or (step >= cfg.prune_end and pruner.sparsity != cfg.sparsity):
            if target != pruner.sparsity:
                pruner.update(target)
        lr = schedule.learning_rate(step, cfg.steps, cfg.lr, cfg.warmup, cfg.prune_end)
        for g in optimizer.param_groups:
            g["lr"] = lr
        feeds = {k: torch.from_numpy(v).to(dev) for k, v in batches(step, pad_id).items()}
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            with torch.no_grad():
                t_out = teacher(**feeds, output_hidden_states=True, output_attentions=bool(cfg.attention_weight))
            s_out = student(**feeds, output_hidden_states=True, output_attentions=bool(cfg.attention_weight))
        loss, hidden, emb = distill_loss(s_out, t_out, feeds["attention_mask"], cfg.hidden_weight,
                                         cfg.embedding_weight, cfg.attention_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        pruner.apply()
        step += 1
        done_here += 1
        lv, hv, ev = loss.item(), hidden.item(), emb.item()
        history.append([step, round(pruner.sparsity, 5), lv, hv, ev])
        times.append(time.time())
        if step % 10 == 0 or step == cfg.steps or step == step0 + 1:
            # the recent rate: the first steps are slow (oneDNN builds kernels per new sentence length)
            recent = times[-51:]
            rate = (recent[-1] - recent[0]) / (len(recent) - 1) if len(recent) > 1 else times[0] - t_start
            log(f"step {step}/{cfg.steps}  sparsity {pruner.sparsity:.3f}  loss {lv:.4f} "
                f"(hidden {hv:.4f}, 1-cos {ev:.4f})  lr {lr:.2e}  {rate:.2f} s/step  "
                f"ETA {_eta(rate * (cfg.steps - step))}")
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            _save_checkpoint(out_dir, cfg, step, student, optimizer, pruner, history)
        if stop_after is not None and done_here >= stop_after and step < cfg.steps:
            _save_checkpoint(out_dir, cfg, step, student, optimizer, pruner, history)
            return {"stopped_at": step}

    if pruner.sparsity != cfg.sparsity:  # steps < mask_every edge cases: end exactly at the target
        pruner.update(cfg.sparsity)
    pruner.remove_hooks()
    masks.check_exact(linears, cfg.sparsity, cfg.attention_sparsity)
    summary = {"sparsity": cfg.sparsity, "pattern": "4x1 (4 consecutive output channels x 1 input channel)",
               "steps": cfg.steps, "teacher": str(Path(cfg.teacher).resolve()), "config": cfg.identity(),
               "seconds_this_call": round(time.time() - t_start, 1),
               "first_loss": history[0][2] if history else None, "last_loss": history[-1][2] if history else None,
               "layers": masks.sparsity_report(linears)}
    if eval_text:
        log(f"measuring fidelity to the dense model on {len(eval_text)} held-out sentences")
        teacher, student = teacher.cpu(), student.cpu()  # the measurement is fp32 on CPU, as compile sees it
        dense = fidelity.embed_torch(teacher, tokenizer, eval_text)
        sparse = fidelity.embed_torch(student, tokenizer, eval_text)
        summary["fidelity_to_dense"] = fidelity.compare(sparse, dense)
        log(fidelity.describe("sparse fp32 vs dense", summary["fidelity_to_dense"]))
    output.write(student.cpu(), tokenizer, Path(cfg.teacher), out_dir, summary, history)
    return summary
