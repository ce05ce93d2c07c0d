"""benchmarks/memory.py on tiny models, so that it keeps running as the code changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "memory.py"


def run_script(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def table_rows(printed: str) -> dict[str, list[str]]:
    lines = [line for line in printed.splitlines() if line.startswith("| ") and "---" not in line]
    rows = [line.strip("|").split("|") for line in lines[1:]]  # after the heading
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def test_the_gguf_variants_print_one_row_each(tiny_phi3_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="the gguf package (test extra) writes the test file")
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from phi3_gguf import write_quantized_phi3_gguf

    path = write_quantized_phi3_gguf(tiny_phi3_path, tmp_path / "tiny-Q4_K_M.gguf", "Q4_K_M")
    printed = run_script(
        *("--gguf", str(path), "--variants", "default", "before", "in-place"),
        *("--window", "256", "--prompt-tokens", "8", "--decode-tokens", "2"),
    )
    rows = table_rows(printed)
    assert set(rows) == {"default", "before", "in-place"}
    # columns: mmap, extra bufs, KV, flash attn, load, prefill, decode, anon, file, peak, × file
    assert rows["before"][:2] == ["yes", "on"]  # the old way: mapped, extra buffers on
    assert rows["in-place"][:2] == ["yes", "off"]
    assert all(cells[-1].endswith("×") and cells[-2].endswith("GB") for cells in rows.values())
    assert "llama.cpp's buffers (MiB):" in printed


def test_the_transformers_load_prints_its_memory(tiny_phi3_path: Path) -> None:
    printed = run_script(
        "--transformers", str(tiny_phi3_path), "--dtype", "bfloat16", "--decode-tokens", "2"
    )
    rows = table_rows(printed)
    assert {"before loading", "after loading", "after the answer", "peak (VmHWM)"} <= set(rows)
    assert "2 tokens answered" in printed  # the tiny model never stops early
