"""The benchmark script runs end to end in its quick mode (tiny sizes, one repetition), so it cannot rot.
Timings are not judged here: they are ratios printed by the script on a quiet machine."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "benchmark" / "benchmark.py"


def test_benchmark_quick_mode_writes_every_measurement_and_its_report(tmp_path):
    output, report = tmp_path / "benchmark.json", tmp_path / "performance.md"
    report.write_text("# Performance\n\nkept text\n")
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--output", str(output), "--report", str(report)],
                   check=True, capture_output=True, text=True)
    results = json.loads(output.read_text())
    models = results["sizes"]["quick"]["models"]
    kernels = ["ours+kernels", "ours+dropout", "ours+attention"]
    assert set(models) == {"ours", *kernels, "marian", "bart"}
    for name in ["ours", "marian", "bart"]:
        assert models[name]["greedy_ms_per_token"] > 0 and models[name]["beam4_ms_per_token"] > 0
        assert models[name]["train_peak_bytes_float32"] > 0  # a training step allocates (activations, Adam states)
    for name, row in models.items():
        assert row["train_tokens_per_second_float32"] > 0 and row["train_tokens_per_second_bf16"] > 0
        assert 0 < row["mfu_float32"] < 1
    ratios = results["sizes"]["quick"]["ratios (>1: ours better)"]
    assert {"train_tokens_per_second_bf16: ours+kernels vs marian", "train_tokens_per_second_bf16: ours vs marian",
            "train_tokens_per_second_bf16: ours+attention vs ours", "greedy_ms_per_token: ours vs marian"} <= set(ratios)
    # same size: Marian differs only by its attention biases (ours has none, as in the paper)
    assert models["ours"]["parameters"] <= models["marian"]["parameters"] <= 1.02 * models["ours"]["parameters"]
    assert models["ours+kernels"]["parameters"] == models["ours"]["parameters"]
    assert {row["attention"] for row in results["sweep"]} == {"global (sdpa)", "global (eager)", "local w=4"}
    assert all(row["peak_bytes"] > 0 for row in results["sweep"])
    assert set(results["sweep_ratios_at_longest"]) == {"global (sdpa)", "global (eager)"}
    assert output.with_suffix(".png").stat().st_size > 0
    text = report.read_text()
    assert "kept text" in text and results["device"] in text and "| training tokens/s, bf16 autocast |" in text
    again = tmp_path / "again.md"  # the section is a function of the JSON alone
    again.write_text("# Performance\n\nkept text\n")
    subprocess.run([sys.executable, str(SCRIPT), "--report", str(again), "--report-from", str(output)], check=True)
    assert again.read_text() == text
    # a second machine's table goes into its own named section; the first stays as it was
    subprocess.run([sys.executable, str(SCRIPT), "--report", str(again), "--report-from", str(output),
                    "--section", "benchmark-gpu"], check=True)
    both = again.read_text()
    assert both.startswith(text.rstrip("\n")) and both.count("| training tokens/s, bf16 autocast |") == 2
    assert "<!-- benchmark-gpu: end -->" in both


def test_interleaved_timings_take_turns_and_report_each_steps_own_median(monkeypatch):
    import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)
    from benchmark import benchmark

    calls, clock = [], iter(range(1000))
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: next(clock))  # each call advances 1 s
    steps = {"a": lambda: calls.append("a"), "b": lambda: (calls.append("b"), next(clock))}  # b: 1 s slower
    medians = benchmark.interleaved_median_times(steps, repeats=3, warmup=1, device="cpu")
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]  # warm-up, then one timing of each per round
    assert medians == {"a": 1, "b": 2}


def test_a_gpu_also_measures_the_base_size_on_batches_like_the_paper_s():
    import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)
    from benchmark import benchmark

    assert list(benchmark.sizes_to_measure("cpu", quick=False, size_name=None)) == ["small"]
    on_gpu = benchmark.sizes_to_measure("cuda", quick=False, size_name=None)
    assert [on_gpu["small"][k] for k in ("d_model", "batch", "source", "target")] == [256, 32, 32, 32]  # the issue's
    base = on_gpu["base"]
    assert [base[k] for k in ("d_model", "heads", "ffn", "layers")] == [512, 8, 2048, 6]  # the paper's base model
    assert 20_000 <= base["batch"] * base["source"] == base["batch"] * base["target"] <= 30_000  # ~25k + 25k tokens
    assert benchmark.sizes_to_measure("cpu", quick=False, size_name="base")["base"]["batch"] == 32
    assert list(benchmark.sizes_to_measure("cuda", quick=True, size_name=None)) == ["quick"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")
def test_keep_freed_memory_lets_a_freed_tensor_s_pages_be_reused():
    """A 40 MB tensor allocated again and again: with glibc's defaults each is fresh pages from the kernel (it
    is above malloc's largest mmap threshold, 32 MiB), one minor page fault per 4 KiB page; once the benchmark
    keeps freed memory, none. In a fresh process, since the setting lasts for the process."""
    code = f"""
import resource, sys, torch
sys.path.insert(0, {str(SCRIPT.parent)!r})
import benchmark

def faults_per_allocation():
    for _ in range(2):
        torch.ones(10_000_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(10_000_000)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5

default = faults_per_allocation()
assert benchmark.keep_freed_memory()
print(default, faults_per_allocation())
"""
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    default, kept = map(float, result.stdout.split()[-2:])
    assert default > 0.9 * 40e6 / 4096  # every page of every allocation
    assert kept < 50


def test_ratios_of_a_size_measured_in_bf16_only():
    """The GPU base size trains in bf16 only: its ratios leave out the bf16 / float32 comparison."""
    import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)
    from benchmark import benchmark

    models = {name: {"train_tokens_per_second_bf16": tokens, "greedy_ms_per_token": ms}
              for name, tokens, ms in [("ours", 900.0, 7.5), ("marian", 600.0, 7.8), ("bart", 800.0, 10.0)]}
    ratios = benchmark.ratios_for(models)
    assert ratios["train_tokens_per_second_bf16: ours vs marian"] == pytest.approx(1.5)
    assert ratios["greedy_ms_per_token: ours vs marian"] == pytest.approx(7.8 / 7.5)
    assert not any("vs ours float32" in key for key in ratios)


def test_attention_shapes_quick_mode_times_every_backend_or_says_why_not(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "benchmark" / "attention_shapes.py"
    output = tmp_path / "attention.json"
    subprocess.run([sys.executable, str(script), "--quick", "--output", str(output)], check=True, timeout=300)
    results = json.loads(output.read_text(encoding="utf-8"))
    assert any("attention" in name for name in results["default_kernels"])
    for case in ("padding mask", "causal"):
        rows = results["cases"][case]
        assert set(rows) == {"default", "flash", "efficient", "cudnn", "math"}
        for backend in ("default", "math"):  # every device runs these two
            assert rows[backend]["new_shapes_ms"] > 0 and rows[backend]["repeated_shape_ms"] > 0
        assert all("error" in row or row["new_over_repeated"] > 0 for row in rows.values())


def test_attention_shapes_gives_each_backend_shapes_no_other_has_seen():
    import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)
    from benchmark import attention_shapes

    pool = attention_shapes.distinct_shapes(5 * 200, tokens=4096, shortest=8, longest=64)
    assert len(set(pool)) == len(pool) == 1000
    assert all(batch * length <= 4096 for batch, length in pool)
