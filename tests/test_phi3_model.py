"""The transformers backend, exercised on a tiny random-weight Phi-3 saved to disk."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tiny_phi3 import STOP_TOKENS, build_tiny_phi3

from phichat.errors import ModelNotAvailable
from phichat.models.base import GenerationOptions, GenerationStats
from phichat.models.phi3 import Phi3Model, pick_dtype

MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Plan me a one-day trip to Belize City"},
]


def test_loads_from_folder_with_window_from_config(tiny_phi3: Phi3Model) -> None:
    assert tiny_phi3.loaded
    assert tiny_phi3.context_window == 4096
    facts = tiny_phi3.describe()
    assert facts["device"] == "cpu"
    assert facts["dtype"] in ("bfloat16", "float32")


def test_long_rope_variant_loads_and_generates(tiny_phi3_long_path: Path) -> None:
    model = Phi3Model(str(tiny_phi3_long_path), dtype="float32")
    model.load()
    assert model.context_window == 131072
    pieces = list(model.stream(MESSAGES, GenerationOptions(max_new_tokens=8), threading.Event()))
    assert "".join(pieces)


def test_streaming_yields_tokens_as_they_come(tiny_phi3: Phi3Model) -> None:
    stats = GenerationStats()
    pieces = list(
        tiny_phi3.stream(MESSAGES, GenerationOptions(max_new_tokens=24), threading.Event(), stats)
    )
    assert len(pieces) > 5  # many pieces, not one blob at the end
    assert stats.new_tokens == 24
    assert stats.prompt_tokens == tiny_phi3.count_tokens(MESSAGES)
    assert all("<|" not in piece for piece in pieces)


def test_stop_event_halts_generation_within_a_step(tiny_phi3: Phi3Model) -> None:
    stop = threading.Event()
    stats = GenerationStats()
    received = 0
    for _ in tiny_phi3.stream(MESSAGES, GenerationOptions(max_new_tokens=2000), stop, stats):
        received += 1
        if received == 3:
            stop.set()
    # generate() checks the event once per step; a token already in flight may still land.
    assert stats.new_tokens <= 5
    assert received <= 5


def test_leaving_the_stream_early_joins_the_worker(tiny_phi3: Phi3Model) -> None:
    before = {t.name for t in threading.enumerate()}
    stream = tiny_phi3.stream(MESSAGES, GenerationOptions(max_new_tokens=2000), threading.Event())
    next(stream)
    stream.close()
    assert "phichat-generate" not in {t.name for t in threading.enumerate()} - before


@pytest.mark.parametrize("stop_token", STOP_TOKENS)
def test_each_stop_token_ends_the_answer(tmp_path: Path, stop_token: str) -> None:
    folder = build_tiny_phi3(tmp_path / "eager", eager_stop=stop_token)
    model = Phi3Model(str(folder))
    model.load()
    stats = GenerationStats()
    pieces = list(
        model.stream(MESSAGES, GenerationOptions(max_new_tokens=50), threading.Event(), stats)
    )
    assert pieces == []
    assert stats.new_tokens == 0


def test_seed_makes_sampling_repeatable(tiny_phi3: Phi3Model) -> None:
    options = GenerationOptions(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
    first = "".join(tiny_phi3.stream(MESSAGES, options, threading.Event()))
    second = "".join(tiny_phi3.stream(MESSAGES, options, threading.Event()))
    other = "".join(
        tiny_phi3.stream(
            MESSAGES,
            GenerationOptions(max_new_tokens=16, temperature=1.0, seed=8),
            threading.Event(),
        )
    )
    assert first == second
    assert first != other


def test_count_tokens_grows_with_the_conversation(tiny_phi3: Phi3Model) -> None:
    longer = [
        *MESSAGES,
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "More"},
    ]
    assert tiny_phi3.count_tokens(longer) > tiny_phi3.count_tokens(MESSAGES)
    assert tiny_phi3.count_text_tokens("Belize City") > 0


def test_uncached_hub_id_fails_at_once_with_the_way_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    model = Phi3Model("microsoft/Phi-3-mini-4k-instruct")
    with pytest.raises(ModelNotAvailable) as caught:
        model.load()
    message = str(caught.value)
    assert "phichat download microsoft/Phi-3-mini-4k-instruct" in message
    assert "--model PATH" in message
    assert "\n" not in message


def test_folder_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match=r"no config\.json"):
        Phi3Model(str(tmp_path)).load()
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        Phi3Model(str(tmp_path / "missing")).load()


def test_dtype_choice_respects_an_explicit_setting() -> None:
    assert pick_dtype("float32", "cpu") == "float32"
    assert pick_dtype("auto", "mps") == "float16"
    assert pick_dtype("auto", "cpu") in ("bfloat16", "float32")


# ---- memory: a cast load never holds the checkpoint beside the cast weights ----------------
def mapping_rss_bytes(path: Path) -> int:
    """Resident bytes of this process's mappings of ``path`` (Linux's /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) == 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps (Linux)")
def test_casting_hands_back_each_weights_file_pages_once_it_is_cast(tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from phichat.models.casting import cast_in_place

    checkpoint = tmp_path / "model.safetensors"
    save_file(
        {"big": torch.randn(2048, 1024).to(torch.bfloat16), "small": torch.ones(8)}, checkpoint
    )
    with safe_open(str(checkpoint), framework="pt", device="cpu") as f:
        big, keeper = f.get_tensor("big"), f.get_tensor("small")  # views of the mapped file
    module = torch.nn.Module()
    module.weight = torch.nn.Parameter(big, requires_grad=False)
    expected = big.float()  # reads every page: all 4 MB of the mapping are resident
    del big
    assert mapping_rss_bytes(checkpoint.resolve()) >= 4 * 1024 * 1024

    cast_in_place(module, torch.float32)

    # ``keeper`` still holds the mapping open; the cast weight's pages are gone from it.
    assert mapping_rss_bytes(checkpoint.resolve()) <= 64 * 1024
    assert module.weight.dtype == torch.float32 and torch.equal(module.weight, expected)
    assert keeper.sum().item() == 8  # and what still reads the file reads it correctly


def test_casting_never_releases_memory_that_maps_no_file() -> None:
    import torch

    from phichat.models.casting import cast_in_place

    # Two weights sharing one anonymous buffer: releasing the first's pages would zero the
    # second's before its turn.
    base = torch.arange(1 << 21, dtype=torch.float32) + 1
    module = torch.nn.Module()
    module.first = torch.nn.Parameter(base[: 1 << 20], requires_grad=False)
    module.second = torch.nn.Parameter(base[1 << 20 :], requires_grad=False)
    cast_in_place(module, torch.float64)
    assert torch.equal(module.first, base[: 1 << 20].double())
    assert torch.equal(module.second, base[1 << 20 :].double())


def test_a_cast_load_has_the_weights_of_loading_in_that_dtype(tiny_phi3_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = Phi3Model(str(tiny_phi3_path), device="cpu", dtype="bfloat16")  # an fp32 checkpoint
    model.load()
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_phi3_path), dtype=torch.bfloat16)
    loaded = model._model
    assert loaded.dtype == torch.bfloat16 and loaded.config.dtype == torch.bfloat16
    ours = dict(loaded.state_dict())
    theirs = dict(reference.state_dict())
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        assert ours[name].dtype == tensor.dtype, name
        assert torch.equal(ours[name], tensor), name
