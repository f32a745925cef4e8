"""Accurate 4x1 sparsification: gradual block pruning with distillation from the dense model.

One idea per module:

- ``deps``: torch / transformers are an optional extra; a clear error names it.
- ``schedule``: the cubic sparsity schedule (how sparse at step t).
- ``masks``: 4x1 block masks of every encoder Linear (L2 of each block of 4 output channels), exact counts.
- ``corpus``: the built-in offline text (train / held-out split, disjoint) and user text files.
- ``fidelity``: sentence embeddings and how close they stay to the dense model's.
- ``distill``: the training loop (teacher -> student), progress with ETA, checkpoint and resume.
- ``output``: the Hugging Face directory it writes, and the refusal to overwrite what is not ours.
- ``cli``: ``tvm-sparse sparsify``.
"""
