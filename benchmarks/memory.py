"""Peak memory of the gguf backend's llama.cpp process, for each way of loading the file.

Each variant loads the random Phi-3-mini-shaped Q4_K_M file (the one ``turn.py`` and
``generation_gguf.py`` build under .bench/turn) in a fresh process through
``phichat.models.llama_worker.open_llama``, as the worker does, then prefills a short
prompt of random token ids and decodes a few tokens. One table is printed: load time,
prefill and decode tokens/s, and the process's resident memory after loading (anonymous
and file-backed) and at its peak (Linux's VmHWM), against the file's size.

    flock /tmp/phichat-heavy.lock nice -n 10 python benchmarks/memory.py
    python benchmarks/memory.py --shape tiny        # a seconds-long smoke run
    python benchmarks/memory.py --variants default before

Linux only (it reads /proc/self/status). Nothing here touches the network.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

# name -> open_llama keyword arguments (None: phichat decides, as the worker does)
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "before": {"use_mmap": True, "kv_cache": "f16", "flash_attn": False},
    "mmap+fa": {"use_mmap": True, "kv_cache": "f16", "flash_attn": True},
    "read+fa": {"use_mmap": False, "kv_cache": "f16", "flash_attn": True},
    "read": {"use_mmap": False, "kv_cache": "f16", "flash_attn": False},
    "read+q8kv": {"use_mmap": False, "kv_cache": "q8_0"},
    "read+q4kv": {"use_mmap": False, "kv_cache": "q4_0"},
    "in-place": {"extra_buffers": False, "use_mmap": True, "kv_cache": "f16", "flash_attn": False},
}


def memory_status() -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon and RssFile of this process, in bytes."""
    wanted = {"VmHWM", "VmRSS", "RssAnon", "RssFile"}
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            found[key] = int(value.split()[0]) * 1024
    return found


class PeakSampler:
    """Samples this process's memory while it loads, keeping the split at the highest total.

    VmHWM says how high resident memory went, not what it was made of; the sample nearest
    the peak says how much of it was file pages (the mapped checkpoint) and how much was
    anonymous (tensors). Above ``limit`` bytes the process ends at once (exit status 3),
    so that a loader holding two copies of a big checkpoint cannot take a shared machine's
    memory.
    """

    def __init__(self, limit: int, every_s: float = 0.05) -> None:
        self.limit = limit
        self.every_s = every_s
        self.peak: dict[str, int] = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            now = memory_status()
            if now["VmRSS"] > self.peak["VmRSS"]:
                self.peak = now
            if now["VmRSS"] > self.limit:
                print(json.dumps({"over_limit": now}), flush=True)
                os._exit(3)


def measure_transformers(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Load ``folder`` through phichat's transformers backend and answer a short prompt."""
    from phichat.models.base import GenerationOptions, GenerationStats
    from phichat.models.phi3 import Phi3Model

    before = memory_status()  # python and its imports, not yet torch
    with PeakSampler(int(args.max_rss_gb * 1e9)) as sampler:
        started = time.perf_counter()
        model = Phi3Model(str(folder), device="cpu", dtype=args.dtype)
        model.load()
        load_s = time.perf_counter() - started
    after_load = memory_status()
    weights = model._model
    weight_bytes = sum(p.numel() * p.element_size() for p in weights.parameters())
    stats = GenerationStats()
    messages = [{"role": "user", "content": "Belize City trip"}]
    options = GenerationOptions(max_new_tokens=args.decode_tokens)
    for _ in model.stream(messages, options, threading.Event(), stats):
        pass
    return {
        "dtype": model.describe()["dtype"],
        "weight_bytes": weight_bytes,
        "load_s": load_s,
        "before": before,
        "load_peak_split": sampler.peak,
        "after_load": after_load,
        "end": memory_status(),
        "prompt_tokens": stats.prompt_tokens,
        "new_tokens": stats.new_tokens,
    }


# llama.cpp's log lines such as "llama_kv_cache:        CPU KV buffer size =  1536.00 MiB"
_BUFFER_LINE = re.compile(r"(\S+) (model|KV|compute) buffer size = +([\d.]+) MiB")


def log_buffer_sizes(llama_cpp: Any) -> dict[str, float]:
    """Collect the buffer sizes llama.cpp logs while loading, in MiB per kind and name."""
    sizes: dict[str, float] = {}

    def on_log(_level: int, text: bytes, _user_data: Any) -> None:
        found = _BUFFER_LINE.search(text.decode("utf-8", errors="replace"))
        if found:
            key = f"{found.group(2)} {found.group(1)}"
            sizes[key] = sizes.get(key, 0.0) + float(found.group(3))

    callback = llama_cpp.llama_log_callback(on_log)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _KEEP.append(callback)  # llama.cpp holds a pointer to it
    return sizes


_KEEP: list[Any] = []


def measure(path: Path, options: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import llama_cpp

    from phichat.models.llama_worker import open_llama

    buffers = log_buffer_sizes(llama_cpp)
    started = time.perf_counter()
    llm = open_llama(str(path), n_ctx=args.window, threads=args.threads, **options)
    load_s = time.perf_counter() - started
    after_load = memory_status()
    described = {
        # llama.cpp's load_mode: 1 and 3 map the file (with and without mlock).
        "use_mmap": int(llm.model_params.load_mode) in (1, 3),
        "extra_buffers": bool(llm.model_params.use_extra_bufts),
        "kv_cache": {1: "f16", 8: "q8_0", 2: "q4_0"}.get(int(llm.context_params.type_k), "?"),
        "flash_attn": int(llm.context_params.flash_attn_type) == 1,
    }
    pick = random.Random(0)
    tokens = [pick.randrange(100, llm.n_vocab()) for _ in range(args.prompt_tokens)]
    llm.reset()
    begun = time.perf_counter()
    llm.eval(tokens)
    prefill_tps = len(tokens) / (time.perf_counter() - begun)
    begun = time.perf_counter()
    for _ in range(args.decode_tokens):
        llm.eval([pick.randrange(100, llm.n_vocab())])
    decode_tps = args.decode_tokens / (time.perf_counter() - begun)
    return {
        **described,
        "load_s": load_s,
        "prefill_tps": prefill_tps,
        "decode_tps": decode_tps,
        "after_load": after_load,
        "end": memory_status(),
        "file_bytes": path.stat().st_size,
        "buffers_mib": buffers,
    }


def run_variant(name: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--gguf",
        str(path),
        "--window",
        str(args.window),
        "--threads",
        str(args.threads),
        "--prompt-tokens",
        str(args.prompt_tokens),
        "--decode-tokens",
        str(args.decode_tokens),
    ]
    child = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
    if child.returncode != 0:
        tail = (child.stderr.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        return {"variant": name, "error": tail}
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    result["variant"] = name
    return result


def child_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}


def transformers_table(args: argparse.Namespace) -> int:
    command = [
        sys.executable, __file__, "--child-transformers", "--transformers", str(args.transformers),
        "--dtype", args.dtype, "--decode-tokens", str(args.decode_tokens),
        "--max-rss-gb", str(args.max_rss_gb),
    ]  # fmt: skip
    child = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
    lines = child.stdout.strip().splitlines()
    if not lines:
        print(child.stderr, file=sys.stderr)
        return child.returncode or 1
    r = json.loads(lines[-1])
    if "over_limit" in r:
        now = r["over_limit"]
        print(
            f"stopped at {gb(now['VmRSS'])} GB resident (over --max-rss-gb): "
            f"{gb(now['RssAnon'])} GB anonymous, {gb(now['RssFile'])} GB file pages"
        )
        return 3
    weights = r["weight_bytes"]
    split = r["load_peak_split"]
    print(f"{args.transformers.name}, {r['dtype']}: {gb(weights)} GB of weights, "
          f"loaded in {r['load_s']:.1f} s, {r['new_tokens']} tokens answered")  # fmt: skip
    print("| when | resident | anonymous | file pages | × weights |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = [
        ("before loading", r["before"]),
        ("highest sample while loading", split),
        ("after loading", r["after_load"]),
        ("after the answer", r["end"]),
    ]
    for label, status in rows:
        print(
            f"| {label} | {gb(status['VmRSS'])} GB | {gb(status['RssAnon'])} GB | "
            f"{gb(status['RssFile'])} GB | {status['VmRSS'] / weights:.2f}× |"
        )
    print(f"| peak (VmHWM) | {gb(r['end']['VmHWM'])} GB | | | {r['end']['VmHWM'] / weights:.2f}× |")
    return 0


def gb(value: int) -> str:
    return f"{value / 1e9:.2f}"


def print_table(results: list[dict[str, Any]]) -> None:
    heads = [
        "variant", "mmap", "extra bufs", "KV", "flash attn", "load", "prefill", "decode",
        "anon after load", "file after load", "peak (VmHWM)", "× file",
    ]  # fmt: skip
    print("| " + " | ".join(heads) + " |")
    print("| --- | " + " | ".join("---:" for _ in heads[1:]) + " |")
    for r in results:
        if "error" in r:
            print(f"| {r['variant']} | failed: {r['error']} |")
            continue
        peak = r["end"]["VmHWM"]
        cells = [
            r["variant"],
            "yes" if r["use_mmap"] else "no",
            "on" if r["extra_buffers"] else "off",
            r["kv_cache"],
            "on" if r["flash_attn"] else "off",
            f"{r['load_s']:.1f} s",
            f"{r['prefill_tps']:.1f} t/s",
            f"{r['decode_tps']:.2f} t/s",
            f"{gb(r['after_load']['RssAnon'])} GB",
            f"{gb(r['after_load']['RssFile'])} GB",
            f"{gb(peak)} GB",
            f"{peak / r['file_bytes']:.2f}×",
        ]
        print("| " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=("mini", "small", "tiny"), default="mini")
    parser.add_argument("--quant", default="Q4_K_M")
    parser.add_argument("--gguf", type=Path, help="measure this file instead of building one")
    parser.add_argument("--bench", type=Path, default=ROOT / ".bench" / "turn")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--window", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="0: phichat's default")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--decode-tokens", type=int, default=16)
    parser.add_argument(
        "--transformers",
        type=Path,
        metavar="FOLDER",
        help="measure the transformers backend loading this random model folder instead",
    )
    parser.add_argument("--dtype", default="bfloat16", help="with --transformers")
    parser.add_argument(
        "--max-rss-gb",
        type=float,
        default=12.0,
        help="with --transformers: end the load when resident memory passes this",
    )
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--child-transformers", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.threads:
        from phichat.models.gguf import default_threads

        args.threads = default_threads()

    if args.child:
        print(json.dumps(measure(args.gguf, VARIANTS[args.child], args)))
        return 0
    if args.child_transformers:
        print(json.dumps(measure_transformers(args.transformers, args)))
        return 0
    if args.transformers:
        return transformers_table(args)

    path = args.gguf
    if path is None:
        from generation_gguf import ensure_gguf

        path = ensure_gguf(args.shape, args.quant, args.bench)
    print(
        f"{path.name}: {gb(path.stat().st_size)} GB; window {args.window} tokens, "
        f"{args.threads} threads, {args.prompt_tokens}-token prefill, "
        f"{args.decode_tokens} decoded tokens; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = []
    for name in args.variants:
        results.append(run_variant(name, path, args))
        print(f"  {name}: done", file=sys.stderr, flush=True)
    print_table(results)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print("llama.cpp's buffers (MiB):")
    for r in results:
        if "buffers_mib" in r:
            sizes = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["buffers_mib"].items()))
            print(f"  {r['variant']}: {sizes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
