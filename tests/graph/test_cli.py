"""The subcommands register and their help reads."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from tvm_sparse.cli.model import add_commands


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tvm-sparse")
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


@pytest.mark.parametrize("cmd", ["prune", "tune", "compile", "run", "bench"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args([cmd, "--help"])
    assert exc.value.code == 0
    assert "Example" in capsys.readouterr().out or cmd in ("run", "bench")


def test_compile_contract():
    args = _parser().parse_args(["compile", "m.onnx", "-o", "m.so", "--seq-len", "64", "--batch", "2",
                                 "--fp32", "--trials", "3"])
    assert (args.model, args.output, args.seq_len, args.batch, args.precision, args.trials) == (
        "m.onnx", "m.so", (64,), 2, "fp32", 3)
    args = _parser().parse_args(["compile", "m.onnx", "-o", "m.so", "--seq-len", "128,16,64,32", "--batch", "4"])
    assert args.seq_len == (16, 32, 64, 128) and args.batch == 4
    for bad in ("16,x", "0,16", ""):
        with pytest.raises(SystemExit):
            _parser().parse_args(["compile", "m.onnx", "-o", "m.so", "--seq-len", bad])
    assert _parser().parse_args(["compile", "m.onnx", "-o", "m.so"]).precision == "int8"
    assert _parser().parse_args(["compile", "m.onnx", "-o", "m.so"]).attention_scales == "static"
    args = _parser().parse_args(["compile", "m.onnx", "-o", "m.so", "--attention-scales", "dynamic"])
    assert args.attention_scales == "dynamic"


def test_prune_command(tiny_onnx, tmp_path, capsys):
    args = _parser().parse_args(["prune", str(tiny_onnx), "-o", str(tmp_path / "p.onnx"), "--sparsity", "0.5"])
    args.func(args)
    out = capsys.readouterr().out
    assert "encoder.layer.1.output.dense" in out and "12 layers" in out


def test_a_bad_target_is_one_clear_line_before_the_model_is_read(tmp_path, capsys):
    from tvm_sparse.cli import main

    rc = main(["compile", str(tmp_path / "absent.onnx"), "-o", str(tmp_path / "x.so"), "--target", "haswell"])
    err = capsys.readouterr().err
    assert rc == 2 and "lacks avx512f" in err and "Traceback" not in err and "absent.onnx" not in err


@pytest.mark.parametrize("argv, why", [
    (["compile", "{m}", "-o", "{m}"], "is the input model"),
    (["compile", "{m}", "-o", "{d}/lib.json"], "both be written"),
    (["compile", "{m}", "-o", "{d}/m.so", "--calib", "{d}/m.json"], "is the calibration file"),
    (["compile", "{m}", "-o", "{d}"], "is a directory"),
    (["prune", "{m}", "-o", "{m}", "--sparsity", "0.5"], "is the input model"),
    (["prune", "{m}", "-o", "{d}/p.onnx", "--sparsity", "0.5"], None),
])
def test_no_command_writes_over_its_input_or_its_own_outputs(argv, why, tiny_onnx, tmp_path, capsys):
    """Refused before any work: the input is intact afterwards."""
    from tvm_sparse.cli import main

    model = tmp_path / "m.onnx"
    model.write_bytes(Path(tiny_onnx).read_bytes())
    (tmp_path / "m.json").write_text("the user's own file")
    before = model.read_bytes()
    rc = main([a.format(m=model, d=tmp_path) for a in argv])
    assert model.read_bytes() == before and (tmp_path / "m.json").read_text() == "the user's own file"
    if why is None:
        assert rc == 0
    else:
        assert rc == 2 and why in capsys.readouterr().err


def test_unclear_errors_became_clear_ones(tiny_onnx, tmp_path, capsys):
    """A sequence longer than the position table (was onnxruntime's 'Incompatible dimensions' or a TVM
    broadcast dump), an int8 model with no Linear (was 'zip() argument 2 is longer'), --runs 0 (was an
    IndexError)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tvm_sparse.cli import main
    from tvm_sparse.graph.vocab import max_positions

    limit = max_positions(onnx.load(str(tiny_onnx)))
    assert limit
    rc = main(["compile", str(tiny_onnx), "-o", str(tmp_path / "x.so"), "--seq-len", str(limit + 1)])
    assert rc == 2 and f"longer than this model's {limit} position embeddings" in capsys.readouterr().err

    table = numpy_helper.from_array(np.zeros((10, 4), np.float32), "word_embeddings")
    graph = helper.make_graph([helper.make_node("Gather", ["word_embeddings", "input_ids"], ["h"])], "g",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
                              [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["b", "s", 4])], [table])
    no_linear = tmp_path / "no_linear.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(no_linear))
    rc = main(["compile", str(no_linear), "-o", str(tmp_path / "y.so"), "--seq-len", "8"])
    assert rc == 2 and "no Linear layer" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        main(["bench", str(tmp_path / "x.so"), "--runs", "0"])
    assert "must be at least 1" in capsys.readouterr().err

    # a missing --calib file was a FileNotFoundError traceback
    rc = main(["compile", str(tiny_onnx), "-o", str(tmp_path / "z.so"), "--calib", str(tmp_path / "absent.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "No such file or directory" in err and "absent.npz" in err and "Traceback" not in err


def test_a_hub_id_says_how_to_pass_a_local_directory(tmp_path, capsys):
    from tvm_sparse.cli import main
    from tvm_sparse.graph.errors import GraphError

    rc = main(["compile", "sentence-transformers/all-MiniLM-L6-v2", "-o", str(tmp_path / "x.so")])
    err = capsys.readouterr().err
    assert rc == 2 and "looks like a Hugging Face Hub id" in err and "--local-dir" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2  # the error, then the --debug hint
    with pytest.raises(GraphError, match="Hub id"):  # --debug: the exception itself, with its traceback
        main(["--debug", "compile", "sentence-transformers/all-MiniLM-L6-v2", "-o", str(tmp_path / "x.so")])


@pytest.fixture(scope="module")
def tiny_hf_dir(tmp_path_factory):
    """A tiny BERT saved as a Hugging Face directory (no tokenizer: prune needs none)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=256)
    d = tmp_path_factory.mktemp("hf") / "tiny-bert"
    transformers.BertModel(cfg, add_pooling_layer=False).save_pretrained(d)
    return d


def test_a_hugging_face_directory_is_never_written_to(tiny_hf_dir, tmp_path, monkeypatch, capsys):
    """prune DIR used to write DIR/model.onnx or DIR.onnx; now the export goes to the cache, once."""
    from tvm_sparse.cli import main

    monkeypatch.setenv("TVM_SPARSE_CACHE", str(tmp_path / "cache"))

    def listing():
        return sorted((p.name, p.stat().st_mtime_ns) for p in tiny_hf_dir.parent.rglob("*"))

    before = listing()
    assert main(["prune", str(tiny_hf_dir), "-o", str(tmp_path / "p.onnx"), "--sparsity", "0.5"]) == 0
    assert listing() == before and (tmp_path / "p.onnx").is_file()
    assert list((tmp_path / "cache").rglob("model.onnx"))
    assert main(["prune", str(tiny_hf_dir), "-o", str(tmp_path / "q.onnx"), "--sparsity", "0.5"]) == 0
    assert "cached at" in capsys.readouterr().out  # exported once
    rc = main(["prune", str(tiny_hf_dir), "-o", str(tiny_hf_dir / "pruned.onnx"), "--sparsity", "0.5"])
    assert rc == 2 and "never written to" in capsys.readouterr().err and listing() == before


def test_calibration_takes_min_max_for_a_sparsify_output(tmp_path):
    """A distilled model keeps a few outlier channels the 99.99th percentile clips (MiniLM at 80%: 0.854
    against 0.896 with min/max): compile's default picks min/max for a directory sparsify wrote."""
    from tvm_sparse.cli.model import calib_method

    model = tmp_path / "model"
    model.mkdir()
    assert calib_method("auto", model) == "percentile"
    assert calib_method("auto", tmp_path / "model.onnx") == "percentile"
    (model / "sparsify.json").write_text("{}")
    assert calib_method("auto", model) == "minmax"
    assert calib_method("percentile", model) == "percentile"  # what the user asks for wins
