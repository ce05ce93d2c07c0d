"""Time to the TUI's first frame, with the model loading in the background.

Each run is a fresh ``python`` process that imports phichat's UI, builds the real app
(the real Phi-3 backend, the real conversation store in a throw-away data folder) and
runs it headless. The time is taken when Textual hands control to the auto-pilot, which
happens once the first screen has been composed and painted. The model load (torch,
transformers, the weights) starts after that frame, in a worker; the script then waits
for the load to finish or fail, and reports that too.

    python benchmarks/startup.py                      # the configured model
    python benchmarks/startup.py --model /path/to/folder --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import time
started = time.perf_counter()
import asyncio, json, sys
from phichat.config import load_settings
from phichat.ui.app import PhichatApp

imported = time.perf_counter()
flags = {"model": sys.argv[1]} if sys.argv[1] else {}
app = PhichatApp(load_settings(flags))
report = {"import_s": imported - started}

async def auto_pilot(pilot):
    report["first_frame_s"] = time.perf_counter() - started
    report["first_frame_wall"] = time.time()
    report["torch_imported_at_first_frame"] = "torch" in sys.modules
    report["model_loaded_at_first_frame"] = app.session.model.loaded
    for _ in range(int(float(sys.argv[2]) / 0.05)):
        if app.loader.ready.is_set() or app.loader.error is not None:
            break
        await pilot.pause(0.05)
    report["model_settled_s"] = time.perf_counter() - started
    loaded = app.loader.ready.is_set()
    report["model_outcome"] = "loaded" if loaded else (app.loader.error or "timed out")
    app.exit(0)

app.run(headless=True, auto_pilot=auto_pilot, size=(100, 32))
print("REPORT " + json.dumps(report))
"""


def run_once(model: str, settle_limit_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="phichat-startup-") as scratch:
        env = dict(os.environ)
        env.update(
            PHICHAT_DATA_DIR=str(Path(scratch) / "data"),
            PHICHAT_CACHE_DIR=str(Path(scratch) / "cache"),
            HF_HUB_OFFLINE=env.get("HF_HUB_OFFLINE", "1"),
            HF_HUB_DISABLE_PROGRESS_BARS="1",
        )
        launched = time.time()
        result = subprocess.run(
            [sys.executable, "-c", CHILD, model, str(settle_limit_s)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=settle_limit_s + 120,
        )
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    if not lines:
        raise SystemExit(f"the app did not report:\n{result.stdout}\n{result.stderr}")
    report = json.loads(lines[-1].removeprefix("REPORT "))
    report["process_to_first_frame_s"] = float(report.pop("first_frame_wall")) - launched
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="model id or folder (default: configured)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to wait for the load")
    args = parser.parse_args()

    reports = [run_once(args.model, args.settle) for _ in range(args.runs)]
    first = [float(r["first_frame_s"]) for r in reports]
    process = [float(r["process_to_first_frame_s"]) for r in reports]
    imports = [float(r["import_s"]) for r in reports]
    settled = [float(r["model_settled_s"]) for r in reports]
    print(f"runs: {args.runs}, model: {args.model or '(configured default)'}")
    print(f"import phichat.ui.app:          median {statistics.median(imports) * 1000:6.0f} ms")
    print(f"first frame (in-process):       median {statistics.median(first) * 1000:6.0f} ms")
    print(
        f"first frame (from process start): median {statistics.median(process) * 1000:4.0f} ms"
        f"  (min {min(process) * 1000:.0f}, max {max(process) * 1000:.0f})"
    )
    print(
        "torch imported before the first frame: "
        f"{any(r['torch_imported_at_first_frame'] for r in reports)}; "
        f"model loaded before it: {any(r['model_loaded_at_first_frame'] for r in reports)}"
    )
    print(
        f"model load settled after:        median {statistics.median(settled):6.1f} s "
        f"({reports[-1]['model_outcome']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
