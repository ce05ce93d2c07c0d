"""Phi-3 through Hugging Face transformers: loading, token counting and streamed generation.

torch and transformers are imported inside ``load()`` so that importing this module (and
so the CLI and the TUI) stays fast; the first real cost is paid in a background worker.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phichat.errors import ModelNotAvailable, PhichatError
from phichat.models.base import ChatMessage, GenerationOptions, GenerationStats, ProgressCallback
from phichat.models.hub import resolve_model_path
from phichat.models.prefix_cache import PrefixCache

# Phi-3 ends an answer with <|end|>; <|endoftext|> ends a document, and a model that
# starts a new <|assistant|> turn has finished its own. Ids are looked up in each
# tokenizer (32007, 32000 and 32001 in the real one) rather than hard-coded.
STOP_TOKENS = ("<|end|>", "<|endoftext|>", "<|assistant|>")

# How often the consumer wakes up to notice a stop request while the model is busy.
_POLL_S = 0.05


def _noop_progress(description: str, fraction: float | None) -> None:
    return None


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matrix instructions (AMX or AVX-512 BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_device(preference: str) -> str:
    import torch

    if preference != "auto":
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": torch.backends.mps.is_available(),
        }
        if not available.get(preference, False):
            raise ModelNotAvailable(f"device '{preference}' is not available on this machine")
        return preference
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(preference: str, device: str) -> str:
    """Resolve ``auto``: bf16 where the hardware runs it natively, fp16 on Apple, else fp32."""
    if preference != "auto":
        return preference
    if device == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "bfloat16" if cpu_has_fast_bf16() else "float32"


class Phi3Model:
    """A Phi-3 (or any causal LM with a chat template) loaded with transformers."""

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        context_window: int | None = None,
    ) -> None:
        self.name = model
        self._device_pref = device
        self._dtype_pref = dtype
        self._window_override = context_window
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = ""
        self._dtype = ""
        self._stop_ids: list[int] = []
        self._load_lock = threading.Lock()
        # One generation at a time: a second request waits instead of sharing the weights.
        self._generate_lock = threading.Lock()
        # The KV states of the last prompts and answers; only used under _generate_lock.
        self._prefix: PrefixCache | None = None
        self.load_s = 0.0

    # ---- loading -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self, progress: ProgressCallback | None = None) -> None:
        report = progress or _noop_progress
        with self._load_lock:
            if self._model is not None:
                return
            started = time.perf_counter()
            path = resolve_model_path(self.name)
            report("starting torch", None)
            import torch
            from safetensors import SafetensorError
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            # transformers' own tqdm bars would scribble over the TUI; we report stages instead.
            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
            device = pick_device(self._device_pref)
            dtype = pick_dtype(self._dtype_pref, device)
            report("reading the tokenizer", 0.05)
            try:
                tokenizer = AutoTokenizer.from_pretrained(path)
                report(f"loading weights ({dtype} on {device})", 0.1)
                # Loading with dtype= reads the checkpoint straight into that precision, so a
                # bf16 model never exists as an fp32 copy in memory.
                model = AutoModelForCausalLM.from_pretrained(
                    path, dtype=getattr(torch, dtype), low_cpu_mem_usage=True
                )
            except (OSError, ValueError) as exc:
                raise ModelNotAvailable(
                    f"cannot load model from {path}: {_first_line(exc)}"
                ) from exc
            except SafetensorError as exc:  # a truncated or corrupted model.safetensors
                raise ModelNotAvailable(
                    f"cannot load model from {path}: a weights file is damaged or incomplete "
                    f"({_first_line(exc)}); download the model again"
                ) from exc
            if device != "cpu":
                report(f"moving weights to {device}", 0.9)
                # transformers types .to() through a wrapper mypy reads as taking the model.
                model = model.to(device)  # type: ignore[arg-type]
            model.eval()
            if tokenizer.chat_template is None:
                raise ModelNotAvailable(f"the tokenizer in {path} has no chat template")
            self._stop_ids = _stop_token_ids(tokenizer)
            self._tokenizer = tokenizer
            self._device = device
            self._dtype = dtype
            self._model = model
            # Fresh weights: states computed by any earlier weights must never be reused.
            self._prefix = PrefixCache(self.context_window, fork=_copy_prefix)
            self.load_s = time.perf_counter() - started
            report("ready", 1.0)

    def _require(self) -> tuple[Any, Any]:
        if self._model is None:
            raise PhichatError("the model is not loaded yet")
        return self._model, self._tokenizer

    @property
    def context_window(self) -> int:
        if self._window_override:
            return self._window_override
        model, _ = self._require()
        return int(model.config.max_position_embeddings)

    def reset_cache(self) -> None:
        """Forget the cached prompt states: they cost memory, and correctness never needs them."""
        with self._generate_lock:
            if self._prefix is not None:
                self._prefix.clear()

    def describe(self) -> dict[str, str]:
        return {"model": self.name, "device": self._device, "dtype": self._dtype}

    # ---- tokens --------------------------------------------------------------------
    def _encode(self, messages: list[ChatMessage]) -> Any:
        _, tokenizer = self._require()
        return tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return int(self._encode(messages)["input_ids"].shape[-1])

    def count_text_tokens(self, text: str) -> int:
        _, tokenizer = self._require()
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    # ---- generation ----------------------------------------------------------------
    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        stop: threading.Event,
        stats: GenerationStats | None = None,
    ) -> Iterator[str]:
        """Generate in a worker thread and yield text as each token arrives.

        Leaving the loop early (or setting ``stop``) halts ``generate()`` at its next step,
        and the worker thread is always joined, so no thread outlives its turn.
        """
        model, tokenizer = self._require()
        stats = stats if stats is not None else GenerationStats()
        encoded = self._encode(messages).to(model.device)
        stats.prompt_tokens = int(encoded["input_ids"].shape[-1])
        token_queue: queue.Queue[int | None] = queue.Queue()
        halt = threading.Event()
        failure: list[BaseException] = []
        kwargs = _generate_kwargs(options, self._stop_ids, tokenizer)

        def run() -> None:
            import torch
            from transformers import DynamicCache, StoppingCriteriaList

            try:
                with self._generate_lock, torch.inference_mode():
                    if options.seed is not None:
                        torch.manual_seed(options.seed)
                    prompt_ids = encoded["input_ids"][0].tolist()
                    prefix = self._prefix
                    taken, stats.reused_tokens = (
                        prefix.take(prompt_ids) if prefix is not None else (None, 0)
                    )
                    # Without a config every layer keeps all its states, so any prefix can be
                    # cropped back to; a sliding-window model still sees only its window,
                    # because the attention mask (built from the config) enforces it.
                    cache = taken if taken is not None else DynamicCache()
                    output = model.generate(
                        **encoded,
                        **kwargs,
                        cache=cache,
                        return_dict_in_generate=True,
                        streamer=_QueueStreamer(token_queue),
                        stopping_criteria=StoppingCriteriaList([_EventStop(stop, halt)]),
                    )
                    # The cache now holds the prompt and the answer but the answer's last
                    # token, which was never fed back; a stopped answer is just shorter.
                    if prefix is not None:
                        held = cache.get_seq_length()
                        prefix.put(output.sequences[0, :held].tolist(), cache)
            except BaseException as exc:  # re-raised in the consumer
                # A cache taken out for this generation is not put back: after a failure
                # its contents are unknown.
                failure.append(exc)
            finally:
                token_queue.put(None)

        started = time.perf_counter()
        worker = threading.Thread(target=run, name="phichat-generate", daemon=True)
        worker.start()
        ids: list[int] = []
        emitted = ""
        try:
            while True:
                try:
                    token = token_queue.get(timeout=_POLL_S)
                except queue.Empty:
                    if stop.is_set():
                        halt.set()
                    continue
                if token is None:
                    break
                if token in self._stop_ids:
                    continue
                if not ids:
                    stats.ttft_s = time.perf_counter() - started
                ids.append(token)
                stats.new_tokens = len(ids)
                text = tokenizer.decode(ids, skip_special_tokens=True)
                # A token can end inside a multi-byte character; wait for the rest of it.
                if text.endswith("\ufffd") or not text.startswith(emitted):
                    continue
                piece, emitted = text[len(emitted) :], text
                if piece:
                    yield piece
        finally:
            halt.set()
            worker.join()
            stats.total_s = time.perf_counter() - started
        if failure:
            raise PhichatError(f"generation failed: {_first_line(failure[0])}") from failure[0]


def _generate_kwargs(
    options: GenerationOptions, stop_ids: list[int], tokenizer: Any
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": options.max_new_tokens,
        "eos_token_id": stop_ids,
        "pad_token_id": tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else stop_ids[0],
    }
    if options.temperature > 0:
        kwargs.update(do_sample=True, temperature=options.temperature, top_p=options.top_p)
    else:
        # Greedy: clear the sampling knobs a checkpoint's generation_config may carry.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def _copy_prefix(cache: Any, length: int) -> Any:
    """A new DynamicCache holding copies of the first ``length`` positions of ``cache``."""
    from transformers import DynamicCache

    copy = DynamicCache()
    for index, layer in enumerate(cache.layers):
        keys = layer.keys[..., :length, :].clone()
        copy.update(keys, layer.values[..., :length, :].clone(), index)
    return copy


def _stop_token_ids(tokenizer: Any) -> list[int]:
    ids = []
    for token in STOP_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.append(token_id)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ModelNotAvailable("the tokenizer defines none of Phi-3's stop tokens")
    return ids


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class _QueueStreamer:
    """Receives token ids from ``generate()``; the first call carries the prompt and is skipped."""

    def __init__(self, sink: queue.Queue[int | None]) -> None:
        self._sink = sink
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token_id in value.reshape(-1).tolist():
            self._sink.put(int(token_id))

    def end(self) -> None:
        """The worker thread signals the end itself, after generate() returns or fails."""


class _EventStop:
    """A stopping criterion that ends generation once the user (or the consumer) says stop."""

    def __init__(self, *events: threading.Event) -> None:
        self._events = events

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stopped = any(event.is_set() for event in self._events)
        # transformers 5 expects one bool per sequence in the batch.
        return torch.full((input_ids.shape[0],), stopped, dtype=torch.bool, device=input_ids.device)
