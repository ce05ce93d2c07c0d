"""transformers (bf16, fp32) against llama.cpp GGUF (Q4_K_M, Q8_0) on a random Phi-3-mini.

Speed does not depend on the weight values, so the random Phi-3-mini-shaped model that
``generation.py`` builds stands in for the real one. Here it is also converted to a GGUF
file (f16, with tests/phi3_gguf.py) and quantized by llama.cpp itself to Q4_K_M and Q8_0.
Each variant is measured in a fresh process, through phichat's own backends, and one
table is printed: prefill and decode tokens/s, and the decode ceiling that the measured
memory bandwidth allows (each decoded token reads every weight once).

Run it on a quiet machine: anything else using the cores or the memory bus skews the
figures badly.

    python benchmarks/generation_gguf.py --compare              # all four, Phi-3-mini shape
    python benchmarks/generation_gguf.py --compare --shape small  # a quick 4-layer check
    python benchmarks/generation_gguf.py --quant Q4_K_M         # one GGUF variant
    python benchmarks/generation_gguf.py --quant Q4_0 --allow-amx  # AMX kernels (AMX CPUs)

Other benchmarks get their random GGUF files from ``quantized_gguf`` and llama.cpp's raw
speed from ``llama_eval_tps`` here.

Disk: the mini shape needs about 7.6 GB (bf16 folder) + 7.6 GB (f16 GGUF) + 4.1 GB (Q8_0)
+ 2.4 GB (Q4_K_M) under .bench/. Needs llama-cpp-python (``pip install 'phichat[gguf]'``)
and the ``gguf`` package (test extra).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the GGUF writer and the test tokenizer
sys.path.insert(0, str(HERE))

from generation import bandwidth_figures, build_folder, peak_rss_gb  # noqa: E402
from phi3_gguf import QUANT_TYPES, quantize_gguf, write_phi3_gguf  # noqa: E402

QUANTS = ("Q4_K_M", "Q8_0")  # the variants --compare measures


def ensure_folder(shape: str, bench: Path) -> Path:
    """The random transformers model (the same folder generation.py uses by default)."""
    folder = bench / f"phi3-{shape}-random"
    if not (folder / "config.json").exists():
        print(f"building a random {shape}-shaped model in {folder} …", file=sys.stderr)
        build_folder(folder, shape)
    return folder


def quantized_gguf(folder: Path, quant: str) -> Path:
    """``folder`` (a random transformers Phi-3) as a ``quant`` GGUF file beside it.

    The shared way to get a random-weight GGUF for benchmarks: the f16 conversion
    (``<folder>-f16.gguf``, streamed one matrix at a time) and the quantized file
    (``<folder>-<quant>.gguf``) are kept and reused. For the Phi-3-mini shape that is
    7.6 GB + 2.4 GB (Q4_K_M) of disk and a few minutes: run it under
    ``flock /tmp/phichat-heavy.lock`` on a shared machine.
    """
    if quant not in QUANT_TYPES:
        raise SystemExit(f"unknown quantization {quant}; one of {', '.join(QUANT_TYPES)}")
    f16 = folder.with_name(f"{folder.name}-f16.gguf")
    if not f16.exists():
        print(f"converting to {f16} …", file=sys.stderr)
        partial = f16.with_name(f16.name + ".partial")
        write_phi3_gguf(folder, partial, half=True)
        partial.rename(f16)
    target = folder.with_name(f"{folder.name}-{quant}.gguf")
    if not target.exists():
        print(f"quantizing to {target} …", file=sys.stderr)
        quantize_gguf(f16, target, quant)
    return target


def ensure_gguf(shape: str, quant: str, bench: Path) -> Path:
    """The random model as a quantized GGUF, building what is missing along the way."""
    return quantized_gguf(ensure_folder(shape, bench), quant)


def llama_eval_tps(llm: Any, tokens: list[int], *, warmup: int = 16) -> float:
    """Raw llama.cpp speed on ``tokens``: one cold ``Llama.eval`` of them, in tokens/s.

    ``llm`` comes from ``phichat.models.llama_worker.open_llama`` (phichat's kernels, the
    AMX guard included). Its cache is reset before and after; a short eval warms it up.
    """
    llm.reset()
    llm.eval(tokens[:warmup])
    llm.reset()
    begun = time.perf_counter()
    llm.eval(tokens)
    elapsed = time.perf_counter() - begun
    llm.reset()
    return len(tokens) / elapsed


def tensor_bytes(path: Path) -> int:
    import gguf

    return sum(int(t.n_bytes) for t in gguf.GGUFReader(str(path)).tensors)


def measure(path: Path, args: argparse.Namespace) -> dict[str, object]:
    from phichat.models.base import GenerationOptions, GenerationStats
    from phichat.models.gguf import GGUFModel

    weight_bytes = tensor_bytes(path)
    started = time.perf_counter()
    model = GGUFModel(
        str(path), threads=args.threads, context_window=args.window, allow_amx=args.allow_amx
    )
    model.load()
    load_s = time.perf_counter() - started
    # llama.cpp runs in phichat's worker process: count its peak with this process's.
    load_peak = peak_rss_gb() + (model.worker_peak_memory_bytes() or 0) / 1e9
    # Random weights pick stop tokens as readily as any other; ignore them here so that
    # every run decodes the same number of tokens.
    model._stop_ids = set()

    messages = [{"role": "user", "content": "Belize"}]
    while model.count_tokens(messages) < args.decode_context:  # type: ignore[arg-type]
        messages[0]["content"] += " City trip day morning market"
    stats = GenerationStats()
    options = GenerationOptions(max_new_tokens=args.decode_tokens)
    for _ in model.stream(messages, options, threading.Event(), stats):  # type: ignore[arg-type]
        pass
    generation_peak = peak_rss_gb() + (model.worker_peak_memory_bytes() or 0) / 1e9

    model.close()  # the worker's copy of the weights goes before the raw measurement
    from phichat.models.llama_worker import open_llama

    llm = open_llama(str(path), n_ctx=args.window, threads=args.threads, allow_amx=args.allow_amx)
    prefill = {}
    for length in args.prefill:
        ids = [100 + (i * 7919) % 300 for i in range(length)]
        prefill[length] = llama_eval_tps(llm, ids)
    llm.close()

    peak = max(generation_peak, peak_rss_gb())
    return {
        "variant": model.describe()["dtype"] + (" AMX" if args.allow_amx else ""),
        "threads": args.threads,
        "weights_gb": weight_bytes / 1e9,
        "load_s": load_s,
        "load_peak_rss_gb": load_peak,
        "generation_peak_rss_gb": generation_peak,
        "peak_rss_gb": peak,
        "prefill_tps": prefill,
        "decode_prompt_tokens": stats.prompt_tokens,
        "decode_tokens": stats.new_tokens,
        "decode_tps": stats.tokens_per_s,
        **bandwidth_figures(weight_bytes, stats.tokens_per_s),
    }


def run_child(command: list[str]) -> dict[str, object]:
    """Run a measurement in a fresh process and read the JSON on its last line."""
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        raise SystemExit(child.returncode)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["prefill_tps"] = {int(k): v for k, v in result["prefill_tps"].items()}
    return result


def prepare(what: str, args: argparse.Namespace) -> None:
    """Build files in a process of their own.

    On Linux a process started by another inherits its peak memory (ru_maxrss survives
    exec), so a measurement started by a process that has just built a 3.8B-parameter
    model would report the build's peak instead of its own.
    """
    command = [sys.executable, __file__, "--prepare", what, "--shape", args.shape]
    subprocess.run([*command, "--bench", str(args.bench)], check=True)


def transformers_result(dtype: str, args: argparse.Namespace) -> dict[str, object]:
    prepare("folder", args)
    command = [
        sys.executable,
        str(HERE / "generation.py"),
        "--folder",
        str(args.bench / f"phi3-{args.shape}-random"),
        "--shape",
        args.shape,
        "--dtype",
        dtype,
        "--decode-tokens",
        str(args.decode_tokens),
        "--decode-context",
        str(args.decode_context),
        "--prefill",
        *map(str, args.prefill),
        "--json",
    ]
    result = run_child(command)
    result["variant"] = f"transformers {result['dtype']}"
    return result


def gguf_result(quant: str, args: argparse.Namespace) -> dict[str, object]:
    prepare(quant, args)
    path = ensure_gguf(args.shape, quant, args.bench)  # now only names the finished file
    command = [sys.executable, __file__, "--measure-only", str(path), *child_flags(args)]
    return run_child(command)


def child_flags(args: argparse.Namespace) -> list[str]:
    return [
        "--shape",
        args.shape,
        "--threads",
        str(args.threads),
        "--window",
        str(args.window),
        "--decode-tokens",
        str(args.decode_tokens),
        "--decode-context",
        str(args.decode_context),
        "--prefill",
        *map(str, args.prefill),
        *(["--allow-amx"] if args.allow_amx else []),
    ]


def print_table(results: list[dict[str, object]], prefill: list[int]) -> None:
    heads = [
        "variant",
        "weights",
        *(f"prefill {n}" for n in prefill),
        "decode",
        "ceiling",
        "reached",
        "peak memory",
    ]
    rows = []
    for r in results:
        tps = r["prefill_tps"]
        assert isinstance(tps, dict)
        rows.append(
            [
                str(r["variant"]),
                f"{r['weights_gb']:.2f} GB",
                *(f"{tps[n]:.1f} t/s" for n in prefill),
                f"{r['decode_tps']:.2f} t/s",
                f"{r['decode_ceiling_tps']:.2f} t/s",
                f"{100 * float(r['fraction_of_ceiling']):.0f}%",  # type: ignore[arg-type]
                f"{r['generation_peak_rss_gb']:.2f} GB",
            ]
        )
    print("| " + " | ".join(heads) + " |")
    print("|" + " --- |" * len(heads))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    read = ", ".join(f"{float(r['read_bandwidth_gbs']):.1f}" for r in results)  # type: ignore[arg-type]
    copy = ", ".join(f"{float(r['copy_bandwidth_gbs']):.1f}" for r in results)  # type: ignore[arg-type]
    print(
        f"\nshape {results[0].get('shape', '')}; decode after a "
        f"{results[0]['decode_prompt_tokens']}-token prompt; ceiling = read bandwidth / weight "
        f"bytes, read bandwidth {read} GB/s (one figure per run; copy bandwidth {copy} GB/s)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("mini", "small"), default="mini")
    parser.add_argument("--compare", action="store_true", help="bf16, fp32, Q4_K_M and Q8_0")
    parser.add_argument("--quant", choices=sorted(QUANT_TYPES), action="append", default=None)
    parser.add_argument("--threads", type=int, default=None, help="default: every usable core")
    parser.add_argument("--window", type=int, default=4096)
    parser.add_argument("--prefill", type=int, nargs="+", default=[256, 1024, 3000])
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--decode-context", type=int, default=256)
    parser.add_argument("--bench", type=Path, default=ROOT / ".bench", help="work folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--allow-amx",
        action="store_true",
        help="let llama.cpp use its AMX kernels (off in phichat: they crash on Q4_K, "
        "llama.cpp#20824); to measure Q4_0 or Q8_0 with them on an AMX CPU",
    )
    parser.add_argument("--measure-only", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--prepare", choices=["folder", *sorted(QUANT_TYPES)], default=None, help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads is None:
        from phichat.models.gguf import default_threads

        args.threads = default_threads()

    if args.prepare == "folder":
        ensure_folder(args.shape, args.bench)
        return 0
    if args.prepare is not None:
        ensure_gguf(args.shape, args.prepare, args.bench)
        return 0
    if args.measure_only is not None:
        result = measure(args.measure_only, args)
        result["shape"] = args.shape
        print(json.dumps(result))
        return 0
    results = []
    if args.compare:
        results += [transformers_result(d, args) for d in ("bfloat16", "float32")]
    for quant in args.quant or (sorted(QUANTS) if args.compare else ["Q4_K_M"]):
        results.append(gguf_result(quant, args))
    for result in results:
        result.setdefault("shape", args.shape)
    print_table(results, args.prefill)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
