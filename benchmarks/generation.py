"""Generation speed of phichat's own transformers path, on a random Phi-3-mini-shaped model.

Speed does not depend on the weight values, so a randomly initialised model of exactly
Phi-3-mini's shape stands in for the real checkpoint. It is saved once as a normal model
folder (under .bench/ by default) and then loaded through ``phichat.models.phi3`` in a
fresh process, so load time and peak memory are phichat's own.

Printed, in one run: load time and peak memory; prefill tokens/s at several prompt
lengths; decode tokens/s; the memory-bandwidth ceiling for decode measured in the same
run (each decoded token reads every weight once), and the fraction of it reached. Two
probes are printed: a read-only stream (the real bound) and a copy (which also writes, and
so understates it: llama.cpp's 4-bit decode runs faster than the copy-based "ceiling").

    python benchmarks/generation.py                  # Phi-3-mini shape, bf16
    python benchmarks/generation.py --dtype float32
    python benchmarks/generation.py --shape small    # a quick 4-layer check
    python benchmarks/generation.py --cache static   # try transformers' static KV cache
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # for the test tokenizer builder

SHAPES = {
    # Phi-3-mini-4k-instruct's published configuration.
    "mini": dict(
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32064,
    ),
    # For smoke tests of the benchmarks themselves (turn.py --tiny): seconds, not minutes.
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=32064,
    ),
    "small": dict(
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=4,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32064,
    ),
}


def build_folder(folder: Path, shape: str) -> None:
    """Save a random model of the given shape (bf16 on disk) with a Phi-3-style tokenizer."""
    import torch
    from tiny_phi3 import build_tokenizer
    from transformers import Phi3Config, Phi3ForCausalLM

    tokenizer = build_tokenizer()
    config = Phi3Config(
        **SHAPES[shape],
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=32000,
        pad_token_id=32000,
        tie_word_embeddings=False,
    )
    # Build on the meta device and materialise straight in bf16: no fp32 copy of 3.8B
    # parameters is ever made, which keeps this step inside a laptop's memory.
    with torch.device("meta"):
        model = Phi3ForCausalLM(config)
    # Cast while still on the meta device (free), so to_empty allocates bf16 directly.
    model = model.to(torch.bfloat16).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02, generator=generator)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "shape.txt").write_text(shape)


def _best_seconds(work: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


def copy_bandwidth_gbs(megabytes: int = 1024, repeats: int = 5) -> float:
    """Best of several large tensor copies: bytes read per second, in GB/s.

    A copy also writes as much as it reads, so this understates what a read-only stream
    (such as decoding, which reads every weight once) can reach.
    """
    import torch

    source = torch.empty(megabytes * 2**20, dtype=torch.uint8).random_()
    target = torch.empty_like(source)
    return source.numel() / _best_seconds(lambda: target.copy_(source), repeats) / 1e9


def read_bandwidth_gbs(megabytes: int = 1024, repeats: int = 5) -> float:
    """Best of several reductions over a large buffer: bytes read per second, in GB/s.

    Summing is too cheap to be compute-bound, so this is the rate at which all cores
    together can stream memory in: the true bound for a weight-reading decode step.
    """
    import torch

    buffer = torch.empty(megabytes * 2**20 // 4, dtype=torch.float32).normal_()
    return buffer.numel() * 4 / _best_seconds(buffer.sum, repeats) / 1e9


def bandwidth_figures(weight_bytes: int, decode_tps: float) -> dict[str, float]:
    """Decode ceilings from both bandwidth probes, and the fraction of each reached."""
    copy = copy_bandwidth_gbs()
    read = read_bandwidth_gbs()
    return {
        "copy_bandwidth_gbs": copy,
        "read_bandwidth_gbs": read,
        "copy_ceiling_tps": copy * 1e9 / weight_bytes,
        "decode_ceiling_tps": read * 1e9 / weight_bytes,
        "fraction_of_copy_ceiling": decode_tps * weight_bytes / (copy * 1e9),
        "fraction_of_ceiling": decode_tps * weight_bytes / (read * 1e9),
    }


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM), in GB.

    Unlike getrusage's ru_maxrss, VmHWM starts afresh at exec, so the build step's peak in
    the parent never leaks into the measurement.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def measure(folder: Path, args: argparse.Namespace) -> dict[str, object]:
    import torch

    from phichat.models.base import GenerationOptions, GenerationStats
    from phichat.models.phi3 import Phi3Model

    started = time.perf_counter()
    model = Phi3Model(str(folder), device="cpu", dtype=args.dtype)
    model.load()
    load_s = time.perf_counter() - started
    weights = model._model  # the loaded transformers model, for direct prefill timing
    weight_bytes = sum(p.numel() * p.element_size() for p in weights.parameters())
    load_peak = peak_rss_gb()
    if args.cache == "static":
        weights.generation_config.cache_implementation = "static"
    if args.compile:
        weights.forward = torch.compile(weights.forward, mode="reduce-overhead", dynamic=False)

    # Decode through phichat's own streaming path, after a prompt of args.decode_context tokens.
    messages = [{"role": "user", "content": "Belize"}]
    while model.count_tokens(messages) < args.decode_context:
        messages[0]["content"] += " City trip day morning market"
    stats = GenerationStats()
    options = GenerationOptions(max_new_tokens=args.decode_tokens)
    for _ in model.stream(messages, options, threading.Event(), stats):
        pass
    # Peak memory of a chat turn: load, a short prompt, decoding.
    generation_peak = peak_rss_gb()

    prefill = {}
    for length in args.prefill:
        ids = torch.randint(100, 400, (1, length))
        with torch.inference_mode():
            # logits_to_keep=1, as generate() does: only the last position needs logits.
            weights(
                ids[:, :16], logits_to_keep=1, use_cache=False
            )  # warm-up of kernels at a small size
            begun = time.perf_counter()
            # use_cache=False: the sweep measures speed; its KV cache would only add memory.
            weights(ids, logits_to_keep=1, use_cache=False)
            prefill[length] = length / (time.perf_counter() - begun)

    # Read before the bandwidth probe, whose own buffers would inflate it.
    peak = peak_rss_gb()
    return {
        "shape": (folder / "shape.txt").read_text(),
        "dtype": model.describe()["dtype"],
        "cache": args.cache,
        "compile": args.compile,
        "threads": torch.get_num_threads(),
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


def _memory(peak: object, weights: object) -> str:
    assert isinstance(peak, float) and isinstance(weights, float)
    return f"{peak:.2f} GB ({peak / weights:.2f} x weights)"


def print_table(result: dict[str, object]) -> None:
    prefill = result["prefill_tps"]
    assert isinstance(prefill, dict)
    rows = [
        (
            "model",
            f"random Phi-3 {result['shape']} shape, {result['dtype']}, "
            f"cache={result['cache']}, compile={result['compile']}, "
            f"{result['threads']} threads",
        ),
        ("weights", f"{result['weights_gb']:.2f} GB"),
        ("load time", f"{result['load_s']:.1f} s"),
        ("peak memory, load", _memory(result["load_peak_rss_gb"], result["weights_gb"])),
        ("peak memory, chat turn", _memory(result["generation_peak_rss_gb"], result["weights_gb"])),
        ("peak memory, with sweep", _memory(result["peak_rss_gb"], result["weights_gb"])),
        *[(f"prefill {n} tokens", f"{tps:.1f} tokens/s") for n, tps in prefill.items()],
        (
            "decode",
            f"{result['decode_tps']:.2f} tokens/s "
            f"({result['decode_tokens']} tokens after {result['decode_prompt_tokens']})",
        ),
        ("read bandwidth", f"{result['read_bandwidth_gbs']:.1f} GB/s (a sum over 1 GB)"),
        (
            "decode ceiling",
            f"{result['decode_ceiling_tps']:.2f} tokens/s (read bandwidth / weights)",
        ),
        ("reached", f"{100 * result['fraction_of_ceiling']:.0f}% of the ceiling"),
        ("copy bandwidth", f"{result['copy_bandwidth_gbs']:.1f} GB/s (bytes read by a copy)"),
        (
            "copy ceiling",
            f"{result['copy_ceiling_tps']:.2f} tokens/s, "
            f"{100 * result['fraction_of_copy_ceiling']:.0f}% reached",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="mini")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--cache", choices=("dynamic", "static"), default="dynamic")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    parser.add_argument("--prefill", type=int, nargs="+", default=[256, 1024, 3000])
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--decode-context", type=int, default=256)
    parser.add_argument("--folder", type=Path, default=None, help="where the random model is kept")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.folder or ROOT / ".bench" / f"phi3-{args.shape}-random"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.measure_only:
        result = measure(folder, args)
        print(json.dumps(result))
        return 0
    if not (folder / "config.json").exists():
        print(f"building a random {args.shape}-shaped model in {folder} …", file=sys.stderr)
        build_folder(folder, args.shape)
    # Measure in a fresh process so that peak memory is the load's own, not the build's.
    child = subprocess.run(
        [sys.executable, __file__, "--measure-only", *sys.argv[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return child.returncode
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["prefill_tps"] = {int(k): v for k, v in result["prefill_tps"].items()}
    print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
