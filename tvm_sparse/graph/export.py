"""Hugging Face encoder -> ONNX (needs the optional ``export`` extra: torch, transformers).

Exports with ``torch.onnx.export(dynamo=True)`` and dynamic batch/sequence axes. Only the last hidden
state is exported, or a sequence classifier's logits (``...ForSequenceClassification``: the head is kept).
"""

from __future__ import annotations

import inspect
from pathlib import Path

from .errors import GraphError, require
from .importer import HIDDEN_OUTPUT, INPUT_NAMES, LOGITS_OUTPUT

# name -> (layers, hidden, heads, intermediate): the benchmark shapes of the issue
BERT_CONFIGS: dict[str, tuple[int, int, int, int]] = {
    "bert-tiny": (2, 64, 2, 256),  # tests only
    "bert-mini": (4, 256, 4, 1024),
    "minilm": (6, 384, 12, 1536),
    "bert-base": (12, 768, 12, 3072),
}


def _encoder_wrapper(model, output: str = HIDDEN_OUTPUT):
    torch = require("torch", "export", "exporting a Hugging Face model")

    class LastHiddenState(torch.nn.Module):
        """Keeps the three standard inputs and returns only ``output`` (the hidden state or the logits)."""

        def __init__(self, hf) -> None:
            super().__init__()
            self.hf = hf
            params = inspect.signature(hf.forward).parameters
            self.inputs = [n for n in INPUT_NAMES if n in params]

        def forward(self, input_ids, attention_mask, token_type_ids):
            given = {"input_ids": input_ids, "attention_mask": attention_mask,
                     "token_type_ids": token_type_ids}
            return getattr(self.hf(**{n: given[n] for n in self.inputs}), output)

    return LastHiddenState(model).eval()


def export_module(model, out_path: str | Path, seq_len: int = 128, opset: int = 20,
                  output: str = HIDDEN_OUTPUT) -> Path:
    """Export a loaded transformers encoder (``BertModel``-like) to ONNX with dynamic batch and sequence;
    ``output``: ``last_hidden_state`` or, for a ``...ForSequenceClassification``, ``logits``."""
    torch = require("torch", "export", "exporting a Hugging Face model")
    wrapper = _encoder_wrapper(model, output)
    names = [n for n in INPUT_NAMES if n in wrapper.inputs]
    ids = torch.ones(2, seq_len, dtype=torch.long)
    example = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    batch = torch.export.Dim("batch", max=1024)
    seq = torch.export.Dim("seq", max=model.config.max_position_embeddings)
    dyn = {n: {0: batch, 1: seq} for n in INPUT_NAMES}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper, example, input_names=list(INPUT_NAMES), output_names=[output],
            dynamic_shapes=dyn, dynamo=True, opset_version=opset, verbose=False,
        )
    program.save(str(out_path), external_data=False)
    if len(names) < len(INPUT_NAMES):
        _drop_unused_inputs(out_path)
    return out_path


def _drop_unused_inputs(path: Path) -> None:
    """DistilBERT-style models ignore token_type_ids: remove graph inputs no node reads."""
    import onnx

    model = onnx.load(str(path))
    used = {i for n in model.graph.node for i in n.input}
    kept = [i for i in model.graph.input if i.name in used]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    onnx.save(model, str(path))


def export_hf(model_dir: str | Path, out_path: str | Path, seq_len: int = 128) -> Path:
    """Export a Hugging Face model directory (config + weights) to ONNX, offline."""
    transformers = require("transformers", "export", "exporting a Hugging Face model")
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise GraphError(f"{model_dir} is not a Hugging Face model directory (no config.json)")
    if is_classifier(model_dir):  # keep the head: AutoModel would drop it
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), local_files_only=True).eval()
        return export_module(model, out_path, seq_len=seq_len, output=LOGITS_OUTPUT)
    model = transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    return export_module(model, out_path, seq_len=seq_len)


def is_classifier(model_dir: str | Path) -> bool:
    """Whether a Hugging Face directory holds a ``...ForSequenceClassification`` (its head is exported)."""
    import json

    config = Path(model_dir) / "config.json"
    try:
        archs = json.loads(config.read_text()).get("architectures") or [] if config.is_file() else []
    except (OSError, ValueError) as err:
        raise GraphError(f"cannot read {config}: {err}") from err
    return any(str(a).endswith("ForSequenceClassification") for a in archs)


def build_bert(config: str, out_path: str | Path, seed: int = 0, seq_len: int = 128,
               vocab_size: int = 30522, init_std: float = 0.02) -> Path:
    """A BERT of a named shape (``BERT_CONFIGS``) with random weights, exported to ONNX.

    Biases and LayerNorm parameters are randomized too (the transformers init sets them to 0 and 1,
    which would hide bias and scale bugs in tests). ``init_std`` is the weights' standard deviation:
    at BERT's 0.02 attention is near uniform and adds little to the residual stream, so ignoring the
    attention mask changes almost nothing (cosine 0.9999); at 0.5 attention decides the output.
    """
    if config not in BERT_CONFIGS:
        raise GraphError(f"unknown BERT config {config!r}; choose one of {sorted(BERT_CONFIGS)}")
    torch = require("torch", "export", "building a random BERT")
    transformers = require("transformers", "export", "building a random BERT")
    layers, hidden, heads, inter = BERT_CONFIGS[config]
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=inter, max_position_embeddings=max(512, seq_len), initializer_range=init_std,
    )
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
            elif "LayerNorm.weight" in name:
                p.uniform_(0.8, 1.2)
    return export_module(model, out_path, seq_len=seq_len)
