"""Phi-3 through Hugging Face transformers: loading, token counting and streamed generation.

torch and transformers are imported inside ``load()`` so that importing this module (and
so the CLI and the TUI) stays fast; the first real cost is paid in a background worker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phichat.errors import ModelNotAvailable
from phichat.models.base import (
    BackendBase,
    ChatMessage,
    Generation,
    GenerationOptions,
    ProgressCallback,
    Prompt,
    first_line,
)
from phichat.models.casting import cast_in_place
from phichat.models.hub import resolve_model_path
from phichat.models.prefix_cache import PrefixCache
from phichat.models.stops import STOP_TOKENS
from phichat.threads import Sink, Stream


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


class Phi3Model(BackendBase):
    """A Phi-3 (or any causal LM with a chat template) loaded with transformers."""

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        context_window: int | None = None,
    ) -> None:
        super().__init__(model)
        self._device_pref = device
        self._dtype_pref = dtype
        self._window_override = context_window
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = ""
        self._dtype = ""
        self._stop_ids: list[int] = []

    # ---- loading -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self, progress: ProgressCallback) -> None:
        path = resolve_model_path(self.name)
        progress("starting torch", None)
        import torch
        from safetensors import SafetensorError
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # transformers' own tqdm bars would scribble over the TUI; we report stages instead.
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        device = pick_device(self._device_pref)
        dtype = pick_dtype(self._dtype_pref, device)
        progress("reading the tokenizer", 0.05)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            progress(f"loading weights ({dtype} on {device})", 0.1)
            # On the CPU the checkpoint loads in its own dtype, which leaves every weight
            # in the mapped file (no copy), and a cast then replaces one weight at a time,
            # releasing the file's pages as it goes (see casting.py). Elsewhere dtype=
            # reads it straight into that precision before the move to the device.
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype="auto" if device == "cpu" else getattr(torch, dtype)
            )
            if device == "cpu":
                cast_in_place(model, getattr(torch, dtype))
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(f"cannot load model from {path}: {first_line(exc)}") from exc
        except SafetensorError as exc:  # a truncated or corrupted model.safetensors
            raise ModelNotAvailable(
                f"cannot load model from {path}: a weights file is damaged or incomplete "
                f"({first_line(exc)}); download the model again"
            ) from exc
        if device != "cpu":
            progress(f"moving weights to {device}", 0.9)
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

    def _new_prefix_cache(self) -> PrefixCache:
        return PrefixCache(self.context_window, fork=_copy_prefix)

    @property
    def context_window(self) -> int:
        if self._window_override:
            return self._window_override
        self._require()
        return int(self._model.config.max_position_embeddings)

    def describe(self) -> dict[str, str]:
        return {"model": self.name, "device": self._device, "dtype": self._dtype}

    # ---- tokens --------------------------------------------------------------------
    def _encode(self, messages: list[ChatMessage]) -> Any:
        self._require()
        return self._tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return int(self._encode(messages)["input_ids"].shape[-1])

    def count_text_tokens(self, text: str) -> int:
        self._require()
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt(self, messages: list[ChatMessage]) -> Prompt:
        encoded = self._encode(messages).to(self._model.device)
        tokens = encoded["input_ids"][0].tolist()
        return Prompt(list(messages), len(tokens), tokens, encoded)

    # ---- generation ----------------------------------------------------------------
    def _generate(self, job: Generation) -> Iterator[str]:
        """Generate in a daemon thread and yield text as each token id arrives.

        A stop (or closing the stream) halts ``generate()`` at its next step, and the
        thread is always joined, so no generation outlives its stream.
        """
        model, tokenizer = self._model, self._tokenizer
        prompt, options = job.prompt, job.options
        kwargs = _generate_kwargs(options, self._stop_ids, tokenizer)

        def run(sink: Sink[int]) -> None:
            import torch
            from transformers import DynamicCache, StoppingCriteriaList

            with torch.inference_mode():
                if options.seed is not None:
                    torch.manual_seed(options.seed)
                assert prompt.tokens is not None
                # A cache taken out for this generation is put back only if it succeeds:
                # after a failure its contents are unknown.
                taken = self._reuse_prefix(prompt.tokens, job.stats)
                # Without a config every layer keeps all its states, so any prefix can be
                # cropped back to; a sliding-window model still sees only its window,
                # because the attention mask (built from the config) enforces it.
                cache = taken if taken is not None else DynamicCache()
                output = model.generate(
                    **prompt.encoded,
                    **kwargs,
                    cache=cache,
                    return_dict_in_generate=True,
                    streamer=_SinkStreamer(sink),
                    stopping_criteria=StoppingCriteriaList([_EventStop(job.stop, sink.stopping)]),
                )
                # The cache now holds the prompt and the answer but the answer's last
                # token, which was never fed back; a stopped answer is just shorter.
                held = cache.get_seq_length()
                self._keep_prefix(output.sequences[0, :held].tolist(), cache)

        ids: list[int] = []
        emitted = ""
        with Stream(run, name="phichat-generate", stop=job.stop, join_s=None) as tokens:
            for token in tokens:
                if token in self._stop_ids:
                    continue
                ids.append(token)
                text = tokenizer.decode(ids, skip_special_tokens=True)
                # A token can end inside a multi-byte character; wait for the rest of it.
                if text.endswith("\ufffd") or not text.startswith(emitted):
                    yield ""
                    continue
                piece, emitted = text[len(emitted) :], text
                yield piece


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


class _SinkStreamer:
    """Receives token ids from ``generate()``; the first call carries the prompt and is skipped."""

    def __init__(self, sink: Sink[int]) -> None:
        self._sink = sink
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token_id in value.reshape(-1).tolist():
            self._sink.put(int(token_id))

    def end(self) -> None:
        """The thread bridge sees the end itself, when generate() returns or fails."""


class _EventStop:
    """A stopping criterion that ends generation once the user (or the consumer) says stop."""

    def __init__(self, *events: threading.Event) -> None:
        self._events = events

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stopped = any(event.is_set() for event in self._events)
        # transformers 5 expects one bool per sequence in the batch.
        return torch.full((input_ids.shape[0],), stopped, dtype=torch.bool, device=input_ids.device)
