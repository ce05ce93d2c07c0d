"""A local ``.gguf`` file through llama.cpp (llama-cpp-python, the ``phichat[gguf]`` extra).

Why: on a CPU, decoding reads every weight once per token, so a 4-bit file (about 2.2 GB
for Phi-3-mini) decodes several times faster than bf16 (7.6 GB) on the same memory bus.

The chat template comes from the file's own metadata (``tokenizer.chat_template``), and is
rendered here, in a sandbox, so that token counting and generation see the same prompt.
Stop tokens are Phi-3's, as in the transformers backend. llama_cpp is imported in
``load()``: it is optional, and importing this module must stay cheap.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from phichat.errors import ModelNotAvailable, PhichatError
from phichat.models.base import ChatMessage, GenerationOptions, GenerationStats, ProgressCallback
from phichat.models.hub import GGUF_FILE, GGUF_REPO, resolve_gguf_file
from phichat.models.phi3 import STOP_TOKENS

# llama.cpp allocates the whole attention cache up front, so the window is not simply the
# file's training length (131,072 for the 128k model would take many GB): it is the
# context_window setting, else this, never more than the file was trained for.
DEFAULT_CONTEXT_WINDOW = 4096

# Phi-3's chat format, for a phi3 file converted without its template: every turn is
# "<|role|>\n{content}<|end|>\n", and the answer starts after "<|assistant|>\n".
PHI3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# general.file_type values (llama.cpp's llama_ftype) for the quantizations people use.
FILE_TYPES = {
    0: "f32",
    1: "f16",
    2: "Q4_0",
    7: "Q8_0",
    10: "Q2_K",
    12: "Q3_K_M",
    14: "Q4_K_S",
    15: "Q4_K_M",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "bf16",
}


def default_threads() -> int:
    """Every core this process may run on (cgroups and taskset included)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


class GGUFModel:
    def __init__(
        self,
        gguf_file: str | None = None,
        threads: int | None = None,
        context_window: int | None = None,
    ) -> None:
        self._file = gguf_file
        self.name = gguf_file or f"{GGUF_REPO}/{GGUF_FILE}"
        self._threads = threads or default_threads()
        self._window_request = context_window
        self._window = 0
        self._llm: Any = None
        self._template: Any = None
        self._bos = ""
        self._eos = ""
        self._add_bos = False
        self._strip_first_space = False
        self._stop_ids: set[int] = set()
        self._file_type = "gguf"
        self._load_lock = threading.Lock()
        # One generation at a time: llama.cpp's context holds one sequence's cache.
        self._generate_lock = threading.Lock()
        self.load_s = 0.0

    # ---- loading -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def load(self, progress: ProgressCallback | None = None) -> None:
        with self._load_lock:
            if self._llm is not None:
                return
            started = time.perf_counter()
            path = resolve_gguf_file(self._file)
            try:
                import llama_cpp
            except ImportError:
                raise ModelNotAvailable(
                    "the gguf backend needs llama-cpp-python: pip install 'phichat[gguf]' "
                    "(it compiles llama.cpp, which takes a few minutes)"
                ) from None
            if progress:
                progress(f"loading {path.name} with llama.cpp ({self._threads} threads)", 0.1)
            window = self._window_request or DEFAULT_CONTEXT_WINDOW
            try:
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=window,
                    n_batch=512,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise ModelNotAvailable(f"cannot load {path}: {_first_line(exc)}") from exc
            metadata = dict(llm.metadata)
            source = metadata.get("tokenizer.chat_template")
            if not source and metadata.get("general.architecture") == "phi3":
                source = PHI3_TEMPLATE
            if not source:
                raise ModelNotAvailable(f"{path} has no chat template in its metadata")
            self._template = _compile_template(source)
            self._bos = _token_text(llm, llm.token_bos())
            self._eos = _token_text(llm, llm.token_eos())
            self._add_bos = metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
            # SentencePiece vocabularies (Phi-3's) mark a word start with a space, so an answer's
            # first piece starts with one; transformers' decoder drops it, and so do we.
            self._strip_first_space = metadata.get("tokenizer.ggml.model") == "llama"
            self._stop_ids = _stop_ids(llm)
            self._file_type = FILE_TYPES.get(int(metadata.get("general.file_type", -1)), "gguf")
            trained = int(metadata.get(f"{metadata.get('general.architecture')}.context_length", 0))
            self._window = min(window, trained) if trained > 0 else window
            self._llm = llm
            self.load_s = time.perf_counter() - started
            if progress:
                progress("ready", 1.0)

    def _require(self) -> Any:
        if self._llm is None:
            raise PhichatError("the model is not loaded yet")
        return self._llm

    @property
    def context_window(self) -> int:
        self._require()
        return self._window

    def describe(self) -> dict[str, str]:
        # Short values: the TUI's status bar shows about 20 characters of each.
        return {
            "model": self.name,
            "device": f"cpu, {self._threads} threads",
            "dtype": f"gguf {self._file_type}",
        }

    # ---- tokens --------------------------------------------------------------------
    def render(self, messages: list[ChatMessage]) -> str:
        """The prompt text the file's chat template makes of ``messages``."""
        self._require()
        return str(
            self._template.render(
                messages=list(messages),
                add_generation_prompt=True,
                bos_token=self._bos,
                eos_token=self._eos,
            )
        )

    def encode(self, messages: list[ChatMessage]) -> list[int]:
        llm = self._require()
        prompt = self.render(messages)
        # Templates that do not write the BOS themselves rely on the tokenizer to add it.
        add_bos = self._add_bos and not (self._bos and prompt.startswith(self._bos))
        return list(llm.tokenize(prompt.encode(), add_bos=add_bos, special=True))

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return len(self.encode(messages))

    def count_text_tokens(self, text: str) -> int:
        llm = self._require()
        return len(llm.tokenize(text.encode(), add_bos=False, special=False))

    # ---- generation ----------------------------------------------------------------
    def stream(
        self,
        messages: list[ChatMessage],
        options: GenerationOptions,
        stop: threading.Event,
        stats: GenerationStats | None = None,
    ) -> Iterator[str]:
        """Yield text token by token; ``stop`` is checked after every token.

        The prompt is evaluated before the first token (llama.cpp's prefill), and that
        step cannot be interrupted; it reuses the cache of the previous turn's shared
        prefix, so a follow-up question only pays for its new tokens.
        """
        llm = self._require()
        stats = stats if stats is not None else GenerationStats()
        tokens = self.encode(messages)
        stats.prompt_tokens = len(tokens)
        budget = min(options.max_new_tokens, self._window - len(tokens))
        if budget <= 0:
            raise PhichatError(
                f"the prompt ({len(tokens)} tokens) fills the {self._window}-token window"
            )
        with self._generate_lock:
            if options.seed is not None:
                llm.set_seed(options.seed)
            started = time.perf_counter()
            # UTF-8 characters can span tokens: the decoder holds a partial one back.
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            generator = llm.generate(tokens, reset=True, **_sampling(options))
            try:
                for token in generator:
                    if token in self._stop_ids or stop.is_set():
                        break
                    if not stats.new_tokens:
                        stats.ttft_s = time.perf_counter() - started
                    stats.new_tokens += 1
                    piece = decoder.decode(llm.detokenize([token]))
                    if stats.new_tokens == 1 and self._strip_first_space:
                        piece = piece.removeprefix(" ")
                    if piece:
                        yield piece
                    if stats.new_tokens >= budget:
                        break
                rest = decoder.decode(b"", final=True)
                if rest and not stop.is_set():
                    yield rest
            except (RuntimeError, ValueError) as exc:
                raise PhichatError(f"generation failed: {_first_line(exc)}") from exc
            finally:
                generator.close()
                stats.total_s = time.perf_counter() - started


def _sampling(options: GenerationOptions) -> dict[str, Any]:
    """llama.cpp sampler settings that match transformers': no min-p, no repeat penalty."""
    if options.temperature <= 0:
        # temp 0 selects llama.cpp's greedy sampler: the most likely token, always.
        return {"temp": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}
    return {
        "temp": options.temperature,
        "top_k": 0,
        "top_p": options.top_p,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
    }


def _compile_template(source: str) -> Any:
    """A file's template is untrusted input: render it in Jinja's immutable sandbox."""
    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    # The same environment options as transformers' apply_chat_template, so both backends
    # render a template identically.
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    environment.globals["raise_exception"] = raise_exception
    try:
        return environment.from_string(source)
    except TemplateError as exc:
        raise ModelNotAvailable(f"the file's chat template is broken: {exc}") from None


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return bytes(llm.detokenize([token], special=True)).decode("utf-8", errors="replace")


def _stop_ids(llm: Any) -> set[int]:
    ids = {llm.token_eos()}
    for text in STOP_TOKENS:
        found = llm.tokenize(text.encode(), add_bos=False, special=True)
        if len(found) == 1:
            ids.add(found[0])
    return {i for i in ids if i >= 0}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
