"""The gguf backend's worker process: the AMX guard, crash containment, prefix reuse.

The crash test (``test_a_q4_k_m_model_wide_enough_for_the_fast_kernels_answers``) runs a
Q4_K_M model with 512-wide rows, which reaches llama.cpp's optimised CPU kernels (the
repacked AVX2/AVX-512 ones, or the AMX ones on Sapphire Rapids and newer, which crash on
Q4_K: llama.cpp#20824), through `phichat ask` in a subprocess, so a crash fails the test
rather than the run. The 64-wide tiny model never reaches those kernels.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

from phichat.chat.events import Done, Failed, Token
from phichat.chat.session import Session, TurnOptions
from phichat.domain import Conversation
from phichat.errors import ModelNotAvailable, PhichatError
from phichat.models.base import ChatMessage, GenerationOptions, GenerationStats
from phichat.models.gguf import GGUFModel
from phichat.models.llama_process import describe_exit
from phichat.models.llama_worker import (
    Worker,
    amx_kernels_built,
    keep_extra_buffers,
    model_params_without_extra_buffers,
    use_mmap_for,
)

NEEDS_LLAMA = "llama-cpp-python is not installed (pip install 'phichat[gguf]')"
MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Plan a day in Belize City, with the harbour and the trains."},
]
# llama_print_system_info() of a native build on an AMX Xeon, and of this kind of AMD host.
AMX_BUILD = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | "
    "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | REPACK = 1 | "
)
AVX2_BUILD = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | REPACK = 1 | "
# A build without any CPU extra buffer type (GGML_CPU_REPACK off): weights stay in the file.
PLAIN_BUILD = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "


@pytest.fixture(scope="module")
def tiny_gguf(tiny_phi3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gguf", reason="the gguf package (test extra) writes the test file")
    from phi3_gguf import write_phi3_gguf

    return write_phi3_gguf(tiny_phi3_path, tmp_path_factory.mktemp("gguf") / "tiny-phi3.gguf")


@pytest.fixture(scope="module")
def wide_q4_k_m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Phi-3 with rows of 512 (2 layers), quantized by llama.cpp to Q4_K_M: 3.5 MB."""
    pytest.importorskip("gguf", reason="the gguf package (test extra) writes the test file")
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    from phi3_gguf import write_quantized_phi3_gguf
    from tiny_phi3 import build_tiny_phi3

    work = tmp_path_factory.mktemp("wide")
    folder = build_tiny_phi3(work / "folder", hidden=512, intermediate=1024, heads=8)
    return write_quantized_phi3_gguf(folder, work / "wide-Q4_K_M.gguf", "Q4_K_M")


def loaded(path: Path, **kwargs: object) -> GGUFModel:
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    model = GGUFModel(str(path), threads=1, **kwargs)  # type: ignore[arg-type]
    model.load()
    return model


# ---- the AMX guard -----------------------------------------------------------------------
def test_the_guard_turns_extra_buffers_off_only_where_amx_kernels_are_built() -> None:
    assert amx_kernels_built(AMX_BUILD) and not amx_kernels_built(AVX2_BUILD)
    assert not keep_extra_buffers(AMX_BUILD, allow_amx=False)
    # Elsewhere the extra buffers carry the fast repacked kernels: they stay on.
    assert keep_extra_buffers(AVX2_BUILD, allow_amx=False)
    assert keep_extra_buffers(AMX_BUILD, allow_amx=True)


def test_the_guard_changes_the_default_params_for_one_load_only() -> None:
    bindings = types.SimpleNamespace(
        llama_model_default_params=lambda: types.SimpleNamespace(use_extra_bufts=True)
    )
    with model_params_without_extra_buffers(bindings):
        assert bindings.llama_model_default_params().use_extra_bufts is False
    assert bindings.llama_model_default_params().use_extra_bufts is True


def test_on_an_amx_build_the_worker_loads_without_extra_buffers(
    wide_q4_k_m: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading runs no matrix product, so it is safe in this process on any machine.
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: AMX_BUILD.encode())
    worker = Worker(io.StringIO())
    ready = worker._load({"path": str(wide_q4_k_m), "n_ctx": 256, "threads": 1})["ready"]
    assert ready["amx_built"] is True
    assert ready["extra_buffers"] is False
    assert worker._llm.model_params.use_extra_bufts is False
    assert not {"AMX", "CPU_REPACK"} & set(ready["weight_buffers"])
    worker._llm.close()


def test_llama_cpp_may_log_after_the_worker_that_set_its_log_is_gone(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    # In a child process, so that a crash fails this test instead of ending the run.
    script = f"""
import gc, llama_cpp
from pathlib import Path
from phichat.models.llama_worker import Worker
from phi3_gguf import quantize_gguf
worker = Worker(open("/dev/null", "w"))
worker._log.install(llama_cpp)
del worker
gc.collect()
quantize_gguf(Path({str(tiny_gguf)!r}), Path({str(tmp_path / "q.gguf")!r}), "Q8_0")  # logs a lot
"""
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(tests).parent), tests])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=False)
    assert done.returncode == 0, describe_exit(done.returncode, done.stderr.decode()[-300:])


# ---- memory: the file is mapped only where its weights are used in place -----------------
def test_the_file_is_read_rather_than_mapped_only_where_weights_get_copied_out() -> None:
    # Repacked (or AMX) weights are copies: a mapping would keep the file's pages beside them.
    assert use_mmap_for(AVX2_BUILD, extra_buffers=True) is False
    assert use_mmap_for(AMX_BUILD, extra_buffers=True) is False
    # Without extra buffers, or without a build that has any, llama.cpp uses the mapped
    # pages in place: mapping costs no second copy and shares the page cache.
    assert use_mmap_for(AMX_BUILD, extra_buffers=False) is True
    assert use_mmap_for(AVX2_BUILD, extra_buffers=False) is True
    assert use_mmap_for(PLAIN_BUILD, extra_buffers=True) is True


def mapped_paths() -> set[str]:
    """The files mapped into this process (Linux's /proc/self/maps)."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return {parts[5] for parts in (line.split(maxsplit=5) for line in lines) if len(parts) == 6}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
@pytest.mark.parametrize(
    ("system_info", "mapped"), [(AVX2_BUILD, False), (AMX_BUILD, True)], ids=["repack", "amx"]
)
def test_the_worker_keeps_the_file_mapped_only_where_weights_are_used_in_place(
    wide_q4_k_m: Path, monkeypatch: pytest.MonkeyPatch, system_info: str, mapped: bool
) -> None:
    # The build's report is set, so both cases run on any CPU; loading runs no matrix product.
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: system_info.encode())
    worker = Worker(io.StringIO())
    ready = worker._load({"path": str(wide_q4_k_m), "n_ctx": 256, "threads": 1})["ready"]
    try:
        assert ready["use_mmap"] is mapped
        # What llama.cpp did, not only what was asked: after loading, is the file mapped?
        assert (str(wide_q4_k_m.resolve()) in mapped_paths()) is mapped
    finally:
        worker._llm.close()


@pytest.mark.parametrize("kv_cache", ["q8_0", "q4_0"])
def test_a_quantized_kv_cache_answers_as_asked(wide_q4_k_m: Path, kv_cache: str) -> None:
    model = loaded(wide_q4_k_m, kv_cache=kv_cache)
    try:
        assert model.kernels["kv_cache"] == kv_cache  # what llama.cpp's context holds
        stats = GenerationStats()
        options = GenerationOptions(max_new_tokens=6)
        list(model.stream(MESSAGES, options, threading.Event(), stats))
        assert stats.new_tokens > 0
    finally:
        model.close()


def test_a_quantized_cache_that_does_not_fit_the_model_says_so(tiny_gguf: Path) -> None:
    # The tiny model's attention heads are 16 wide: less than one q8_0 block.
    with pytest.raises(ModelNotAvailable, match="kv_cache = q8_0 may not suit this model"):
        loaded(tiny_gguf, kv_cache="q8_0")


def test_the_kv_cache_stays_f16_unless_asked(wide_q4_k_m: Path) -> None:
    model = loaded(wide_q4_k_m)
    try:
        assert model.kernels["kv_cache"] == "f16"
    finally:
        model.close()


def test_a_q4_k_m_model_wide_enough_for_the_fast_kernels_answers(wide_q4_k_m: Path) -> None:
    model = loaded(wide_q4_k_m)
    kernels = model.kernels
    model.close()
    if kernels["amx_built"]:
        # This llama.cpp has the AMX kernels that crash on Q4_K: the guard must be on.
        assert kernels["extra_buffers"] is False
    elif platform.machine() in ("x86_64", "AMD64"):
        # Elsewhere the test must reach the optimised path: weights repacked for AVX2/AVX-512.
        assert "CPU_REPACK" in kernels["weight_buffers"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "phichat",
            "ask",
            "--backend",
            "gguf",
            "--gguf-file",
            str(wide_q4_k_m),
            "--no-search",
            "--max-new-tokens",
            "12",
            "--json",
            # A prompt of many tokens: the crash needs a batch of more than one.
            "Plan a day in Belize City: the swing bridge, the museum, the market, a water "
            "taxi to Caye Caulker and dinner by the sea.",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert data["timings"]["prompt_tokens"] > 30
    assert data["timings"]["new_tokens"] == 12
    assert data["answer"]


# ---- a crash is one line, and the next message works -------------------------------------
def test_a_crash_mid_answer_is_one_line_and_the_next_turn_loads_again(tiny_gguf: Path) -> None:
    model = loaded(tiny_gguf)
    session = Session(model, TurnOptions(GenerationOptions(max_new_tokens=200)))
    conversation = Conversation()
    events = []
    for event in session.respond(
        conversation, "Plan a day in Belize City.", False, threading.Event()
    ):
        events.append(event)
        if isinstance(event, Token) and len([e for e in events if isinstance(e, Token)]) == 2:
            os.kill(model._worker.pid, signal.SIGSEGV)  # type: ignore[union-attr]
    failed = [e for e in events if isinstance(e, Failed)]
    assert len(failed) == 1
    assert failed[0].error.startswith("llama.cpp crashed (SIGSEGV) while answering")
    assert "\n" not in failed[0].error
    # What had arrived is kept, marked with the error.
    assert conversation.messages[-1].role == "assistant" and conversation.messages[-1].text
    assert not model.loaded
    again = list(session.respond(conversation, "And the next day?", False, threading.Event()))
    assert isinstance(again[-1], Done) and again[-1].message.text
    model.close()


def test_a_crash_while_idle_is_survived_by_the_next_count(tiny_gguf: Path) -> None:
    model = loaded(tiny_gguf)
    before = model.count_tokens(MESSAGES)
    worker = model._worker
    assert worker is not None
    os.kill(worker.pid, signal.SIGKILL)
    worker._popen.wait()
    assert not model.loaded
    assert model.count_tokens(MESSAGES) == before  # a fresh worker, loaded on demand
    assert model.loaded
    model.close()


def test_a_crash_while_loading_is_a_model_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(PhichatError, match=r"cannot load .*damaged\.gguf"):
        GGUFModel(str(damaged), threads=1).load()


def test_exit_descriptions() -> None:
    assert describe_exit(-signal.SIGSEGV) == "llama.cpp crashed (SIGSEGV)"
    assert describe_exit(-signal.SIGABRT) == "llama.cpp crashed (SIGABRT)"
    assert "out of memory" in describe_exit(-signal.SIGKILL)
    assert (
        describe_exit(1, "ImportError: x")
        == "llama.cpp's worker exited with status 1: ImportError: x"
    )


# ---- stop ---------------------------------------------------------------------------------
def test_a_stop_before_the_first_token_returns_and_the_model_stays_usable(
    tiny_gguf: Path,
) -> None:
    model = loaded(tiny_gguf)
    stop = threading.Event()
    stop.set()
    stats = GenerationStats()
    assert list(model.stream(MESSAGES, GenerationOptions(max_new_tokens=50), stop, stats)) == []
    assert stats.new_tokens == 0
    again = GenerationStats()
    list(model.stream(MESSAGES, GenerationOptions(max_new_tokens=5), threading.Event(), again))
    assert again.new_tokens == 5
    model.close()


# ---- prefix reuse ---------------------------------------------------------------------------
def test_a_follow_up_reuses_the_shared_prefix_and_answers_as_a_cold_prefill(
    tiny_gguf: Path,
) -> None:
    options = GenerationOptions(max_new_tokens=8)
    warm = loaded(tiny_gguf)
    first = GenerationStats()
    answer = "".join(warm.stream(MESSAGES, options, threading.Event(), first))
    assert first.reused_tokens == 0 and first.prompt_tokens > 0
    follow_up: list[ChatMessage] = [
        *MESSAGES,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And the next day?"},
    ]
    # Counting only tokenizes: it never evicts the cached prefix.
    warm.count_tokens(follow_up)
    warm.count_text_tokens("Skagway harbour")
    stats = GenerationStats()
    reused_answer = "".join(warm.stream(follow_up, options, threading.Event(), stats))
    shared = warm.encode(MESSAGES)
    assert stats.prompt_tokens == len(warm.encode(follow_up))
    # At least the whole first prompt is served from the cache (llama.cpp's longest
    # common prefix, token-exact), and something new is prefilled.
    assert len(shared) <= stats.reused_tokens < stats.prompt_tokens

    cold = loaded(tiny_gguf)
    cold_stats = GenerationStats()
    cold_answer = "".join(cold.stream(follow_up, options, threading.Event(), cold_stats))
    assert cold_stats.reused_tokens == 0
    assert reused_answer == cold_answer
    warm.close()
    cold.close()


def test_the_same_prompt_again_is_served_from_the_cache(tiny_gguf: Path) -> None:
    model = loaded(tiny_gguf)
    options = GenerationOptions(max_new_tokens=4)
    first = "".join(model.stream(MESSAGES, options, threading.Event()))
    stats = GenerationStats()
    again = "".join(model.stream(MESSAGES, options, threading.Event(), stats))
    assert again == first
    # All but the last prompt token: llama.cpp evaluates that one again for fresh logits.
    assert stats.reused_tokens == stats.prompt_tokens - 1
    model.close()


# ---- --gguf-file ------------------------------------------------------------------------------
def test_gguf_file_is_a_flag(tmp_path: Path) -> None:
    from phichat.cli import build_parser
    from phichat.cli.common import settings_from_args

    path = str(tmp_path / "model.gguf")
    args = build_parser().parse_args(["ask", "--backend", "gguf", "--gguf-file", path, "hi"])
    settings = settings_from_args(args)
    assert settings.backend == "gguf" and settings.gguf_file == path


def test_a_stop_cuts_the_prefill_short_and_the_cache_stays_exact(tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    out = io.StringIO()
    worker = Worker(out)
    worker._load({"path": str(tiny_gguf), "n_ctx": 512, "threads": 1})
    llm = worker._llm
    tokens = list(llm.tokenize(b"Belize City harbour trains " * 20, add_bos=False))
    greedy = {"temp": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}
    worker._stopped.add(7)  # the stop arrived before the prefill began
    worker._generate({"id": 7, "tokens": tokens, "sampling": greedy, "budget": 5})
    # llama.cpp's abort callback ended the evaluation before its first batch finished.
    assert llm.n_tokens == 0
    worker._generate({"id": 8, "tokens": tokens, "sampling": greedy, "budget": 5})
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r for r in replies if r["id"] == 7] == [{"id": 7, "end": True, "rest": "", "reused": 0}]
    answer = "".join(r.get("text", "") + r.get("rest", "") for r in replies if r["id"] == 8)
    llm.reset()
    cold = bytes(llm.detokenize(list(itertools.islice(llm.generate(tokens, **greedy), 5))))
    assert answer == cold.decode("utf-8", errors="replace")
    llm.close()


class CrashingOnce(GGUFModel):
    """The tiny GGUF model, whose llama.cpp worker segfaults after its first answer piece."""

    crashed = False

    def stream(self, messages, options, stop, stats=None):  # type: ignore[no-untyped-def]
        for piece in super().stream(messages, options, stop, stats):
            yield piece
            if not self.crashed:
                self.crashed = True
                os.kill(self._worker.pid, signal.SIGSEGV)  # type: ignore[union-attr]


async def test_the_app_says_llama_cpp_crashed_and_carries_on(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    from ui_support import make_app, send

    model = CrashingOnce(str(tiny_gguf), threads=1)
    # A long answer: the tiny model writes 40 tokens in a few milliseconds, so on a busy
    # machine the worker could finish it before the kill lands and no crash would be seen.
    app = make_app(tmp_path, model=model, max_new_tokens=400)
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, app, "Plan a day in Belize City.")
        crashed = app.conversation.messages[-1]
        assert crashed.role == "assistant" and crashed.text
        assert crashed.error is not None
        assert crashed.error.startswith("llama.cpp crashed (SIGSEGV) while answering")
        assert app.is_running
        await send(pilot, app, "And the next day?")
        answer = app.conversation.messages[-1]
        assert answer.role == "assistant" and answer.error is None and answer.text
    model.close()
