"""The subcommands register and their help reads."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tvm_sparse.graph.cli import add_commands


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
        "m.onnx", "m.so", 64, 2, "fp32", 3)
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
