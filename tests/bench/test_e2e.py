"""bench-e2e's bookkeeping: ratios, the throughput metric, the table, the CLI flags (no compiles)."""

from __future__ import annotations

import os

import pytest

from tvm_sparse.bench import e2e as bench_e2e


def _row(engine, median, p90=None, model="bert-base", sparsity=0.9, threads=1, batch=1, **extra):
    return {"model": model, "sparsity": sparsity, "threads": threads, "batch": batch, "seq_len": 128,
            "engine": engine, "median_ms": median, "p90_ms": p90 or median * 1.1, **extra}


def test_ratios_are_other_over_ours():
    rows = [_row("tvm_int8", 10.0), _row("tvm_dense", 30.0), _row("ort_fp32", 140.0), _row("ort_int8", 50.0),
            _row("tvm_int8", 6.0, threads=2), {**_row("ort_int8", 0.0, threads=2), "error": "boom"}]
    by = {g["threads"]: g for g in bench_e2e.ratios(rows)}
    assert {k: by[1]["ratio"][k] for k in ("ort_fp32", "ort_int8", "tvm_dense")} == pytest.approx(
        {"ort_fp32": 14.0, "ort_int8": 5.0, "tvm_dense": 3.0})
    assert by[1]["p90_ms"]["tvm_int8"] == pytest.approx(11.0)
    assert set(by[2]["ratio"].values()) == {None}  # missing or failed
    assert by[1]["ratio"]["itrex"] is None  # an optional engine that did not run


def test_markdown_table():
    rows = [_row("tvm_int8", 10.0), _row("ort_int8", 50.0), _row("ort_fp32", 140.0)]
    point = {"engine": "tvm_int8", "cores": 16, "instances": 8, "threads": 2, "batch": 1, "seq_per_s": 900.0,
             "median_ms": 10.0, "p90_ms": 12.0}
    tput = {"bert-base|tvm_int8": {"model": "bert-base", "bound_ms": 50.0, **point},
            "bert-base|ort_int8": {"model": "bert-base", "bound_ms": 50.0, **point, "engine": "ort_int8",
                                   "seq_per_s": 300.0},
            "bert-mini|ort_int8": {"model": "bert-mini", "engine": "ort_int8", "bound_ms": 10.0}}
    md = bench_e2e.markdown(bench_e2e.ratios(rows), tput, note="a note")
    lines = md.splitlines()
    assert lines[0].startswith("| model | sparsity | threads | tvm int8 ms (p90)")
    assert "| bert-base | 90% | 1 | 10.00 (11.00) | - | 140.00 (154.00) | 50.00 (55.00) | 14.00x | 5.00x | - |" in lines
    assert "| bert-base | tvm_int8 | 50 | 16 | 900.0 | 8 x 2, 1 | 12.00 | - |" in lines
    assert "| bert-base | ort_int8 | 50 | 16 | 300.0 | 8 x 2, 1 | 12.00 | 3.00x |" in lines
    assert "| bert-mini | ort_int8 | 10 | - | none within the bound | - | - | - |" in lines
    assert lines[-1] == "a note"
    assert "itrex" not in md  # the optional engine's columns appear only when it ran
    with_itrex = bench_e2e.markdown(bench_e2e.ratios(rows + [_row("itrex", 12.5)]))
    assert "| itrex ms (p90) |" in with_itrex and "| 1.25x |" in with_itrex


def test_dense_path_reuses_the_unpruned_library(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench_e2e, "library", lambda cfg, m, sp, variant, b, log: calls.append((m, sp, variant)))
    cfg = bench_e2e.Config(out_dir=tmp_path)
    bench_e2e.artifact(cfg, "tvm_dense", "bert-mini", 0.9, 1)
    cfg.dense_per_sparsity = True
    bench_e2e.artifact(cfg, "tvm_dense", "bert-mini", 0.9, 1)
    assert calls == [("bert-mini", 0.0, "int8"), ("bert-mini", 0.9, "dense")]


def test_cli_runs_the_configured_subset(monkeypatch, tmp_path):
    from tvm_sparse.cli import main

    seen = {}
    monkeypatch.setattr(bench_e2e, "run", lambda cfg, log=print: seen.setdefault("cfg", cfg))
    main(["bench-e2e", "--out", str(tmp_path), "--models", "bert-mini,minilm", "--sparsities", "0.9",
          "--threads", "1", "--throughput", "bert-base", "--batches", "1,4"])
    cfg = seen["cfg"]
    assert cfg.models == ("bert-mini", "minilm") and cfg.sparsities == (0.9,) and cfg.threads == (1,)
    assert cfg.throughput_models == ("bert-base",) and cfg.throughput_batches == (1, 4)
    with pytest.raises(SystemExit):
        main(["bench-e2e", "--models", "gpt2"])
    with pytest.raises(SystemExit, match="itrex-python"):
        main(["bench-e2e", "--engines", "tvm_int8,itrex"])


def test_itrex_runs_batch_1_sequence_128_only(tmp_path):
    cfg = bench_e2e.Config(out_dir=tmp_path, itrex_python="python3", seq_len=64)
    with pytest.raises(RuntimeError, match="sequence 128"):
        bench_e2e.time_engine("itrex", tmp_path, 1, 64, 1, 5, cfg)


def test_everything_is_built_before_anything_is_timed(tmp_path, monkeypatch):
    events = []

    def artifact(cfg, engine, model, sp, batch, log):
        events.append(("build", engine, model, batch))
        if engine == "ort_int8" and batch == 1:
            raise RuntimeError("quantize failed")
        return tmp_path / f"{engine}_{model}_{batch}"

    def time_engine(engine, path, batch, seq_len, threads, runs, cfg):
        events.append(("time", engine, path.name, threads))
        return {"median_ms": 1.0, "p90_ms": 1.1}

    def search(engine, kind, paths, seq_len, cores, bound, seconds, log):
        events.append(("time", engine, tuple(sorted(paths)), len(cores)))
        return None, []

    from tvm_sparse.bench import throughput

    monkeypatch.setattr(bench_e2e, "artifact", artifact)
    monkeypatch.setattr(bench_e2e, "time_engine", time_engine)
    monkeypatch.setattr(throughput, "search", search)
    cfg = bench_e2e.Config(out_dir=tmp_path, models=("bert-mini", "minilm"), sparsities=(0.9,), threads=(1, 2),
                           engines=("tvm_int8", "ort_int8"), throughput_models=("bert-mini",),
                           throughput_batches=(1, 2))
    result = bench_e2e.run(cfg, log=lambda *_: None)
    kinds = [e[0] for e in events]
    assert kinds == sorted(kinds)  # every build, then every timing
    # the throughput rows' batch-1 artifacts are the matrix's own, built once
    assert events.count(("build", "tvm_int8", "bert-mini", 1)) == 1
    assert ("build", "tvm_int8", "bert-mini", 2) in events
    assert kinds.count("time") == 2 * 2 + 2  # 2 models x 2 threads, tvm only; one throughput search per engine
    assert ("time", "tvm_int8", (1, 2), len(os.sched_getaffinity(0))) in events
    assert ("time", "ort_int8", (2,), len(os.sched_getaffinity(0))) in events  # its batch-1 build failed
    errors = [r for r in result["rows"] if "error" in r]
    assert len(errors) == 2 * 2 and all(r["error"] == "quantize failed" for r in errors)
    cfg.build_only = True
    events.clear()
    bench_e2e.run(cfg, log=lambda *_: None)
    assert {e[0] for e in events} == {"build"}


def test_a_second_run_keeps_the_first_runs_results(tmp_path, monkeypatch):
    runs = iter([[_row("tvm_int8", 11.8), _row("ort_int8", 86.1)], [_row("tvm_int8", 12.1)]])
    monkeypatch.setattr(bench_e2e, "build_all", lambda cfg, log: {})
    monkeypatch.setattr(bench_e2e, "run_matrix", lambda cfg, built, log: next(runs))
    cfg = bench_e2e.Config(out_dir=tmp_path, throughput_models=())
    bench_e2e.run(cfg, log=lambda *_: None)
    first = (tmp_path / "results.md").read_text()
    bench_e2e.run(cfg, log=lambda *_: None)
    kept = sorted(tmp_path.glob("results-*"))
    assert [p.suffix for p in kept] == [".json", ".md"] and kept[1].read_text() == first
    assert "12.10" in (tmp_path / "results.md").read_text() and "86.10" not in (tmp_path / "results.md").read_text()
