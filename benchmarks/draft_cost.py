"""What a rejected draft costs per decoding step: the worst case of prompt-lookup decoding.

Prompt-lookup decoding (transformers' ``prompt_lookup_num_tokens``) guesses the next k
tokens by finding the last few generated tokens in the prompt, then checks the guess with
one forward pass over 1 + k tokens. When the guess is right, one pass yields several
tokens; when it is wrong, the step still yields one token but paid for 1 + k. Random
weights never accept a guess, so this script measures exactly that worst case: the time
of a forward pass over 1 + k new tokens against one token, after a prompt of realistic
length, on the random model folder that ``turn.py`` builds.

    python benchmarks/draft_cost.py --shape small --dtype float32
    python benchmarks/draft_cost.py --context 1200 --drafts 3 5 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def step_seconds(weights: object, cache: object, tokens: int, repeats: int) -> float:
    """Median time of a forward pass over ``tokens`` new tokens on top of ``cache``."""
    import torch

    length = cache.get_seq_length()  # type: ignore[attr-defined]
    times = []
    for _ in range(repeats):
        ids = torch.randint(100, 30000, (1, tokens))
        begun = time.perf_counter()
        weights(ids, cache=cache, logits_to_keep=tokens)  # type: ignore[operator]
        times.append(time.perf_counter() - begun)
        cache.crop(length - cache.get_seq_length())  # type: ignore[attr-defined]
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="small", choices=("mini", "small", "tiny"))
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--context", type=int, default=1200, help="prompt tokens already cached")
    parser.add_argument("--drafts", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch
    from transformers import DynamicCache

    from phichat.models.phi3 import Phi3Model

    folder = ROOT / ".bench" / "turn" / f"phi3-{args.shape}-random"
    if not (folder / "config.json").exists():
        raise SystemExit(f"no model in {folder}: run benchmarks/turn.py --shape {args.shape} first")
    model = Phi3Model(str(folder), device="cpu", dtype=args.dtype)
    model.load()
    weights = model._model
    cache = DynamicCache()
    with torch.inference_mode():
        weights(torch.randint(100, 30000, (1, args.context)), cache=cache, logits_to_keep=1)
        single = step_seconds(weights, cache, 1, args.repeats)
        print(
            f"random Phi-3 {args.shape} shape, {args.dtype}, {torch.get_num_threads()} threads, "
            f"{args.context} tokens cached\n"
        )
        print("| draft tokens | step time | against one token |")
        print("| ---: | ---: | ---: |")
        print(f"| 0 (plain decoding) | {single * 1000:.0f} ms | 1.00x |")
        for draft in args.drafts:
            seconds = step_seconds(weights, cache, 1 + draft, args.repeats)
            print(f"| {draft} | {seconds * 1000:.0f} ms | {seconds / single:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
