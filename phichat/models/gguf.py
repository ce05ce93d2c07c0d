"""A local ``.gguf`` file through llama.cpp (llama-cpp-python, the ``phichat[gguf]`` extra).

Why: on a CPU, decoding reads every weight once per token, so a 4-bit file (about 2.2 GB
for Phi-3-mini) decodes several times faster than bf16 (7.6 GB) on the same memory bus.

llama.cpp runs in a worker process (``llama_worker``), as Ollama and LM Studio run it: a
native crash there becomes a one-line error here, and the next message starts a fresh
worker. The worker applies the AMX guard (llama.cpp#20824) when it loads the file.

The chat template comes from the file's own metadata (``tokenizer.chat_template``), and is
rendered here, in a sandbox, so that token counting and generation see the same prompt.
Stop tokens are Phi-3's (``stops.STOP_TOKENS``), as in every backend. This process never imports
llama_cpp: it is optional, and importing this module must stay cheap.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

from phichat.errors import ModelNotAvailable, PhichatError
from phichat.models.base import (
    BackendBase,
    ChatMessage,
    Generation,
    GenerationOptions,
    Held,
    ProgressCallback,
    Prompt,
)
from phichat.models.hub import GGUF_FILE, GGUF_REPO, resolve_gguf_file
from phichat.models.llama_process import LlamaProcess, WorkerDied
from phichat.models.stops import STOP_TOKENS
from phichat.threads import POLL_S

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


def llama_cpp_installed() -> bool:
    """Whether the worker could import llama_cpp (checked here without importing it)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


class GGUFModel(BackendBase):
    def __init__(
        self,
        gguf_file: str | None = None,
        threads: int | None = None,
        context_window: int | None = None,
        allow_amx: bool = False,
        kv_cache: str = "f16",
    ) -> None:
        super().__init__(gguf_file or f"{GGUF_REPO}/{GGUF_FILE}")
        self._file = gguf_file
        self._threads = threads or default_threads()
        self._window_request = context_window
        self._allow_amx = allow_amx
        self._kv_cache = kv_cache  # llama_worker.KV_CACHE_TYPES
        self._window = 0
        self._worker: LlamaProcess | None = None
        self._ever_loaded = False
        self._template: Any = None
        self._bos = ""
        self._eos = ""
        self._add_bos = False
        self._stop_ids: set[int] = set()
        self._file_type = "gguf"
        self.metadata: dict[str, str] = {}
        self.kernels: dict[str, Any] = {}  # what the worker reported about llama.cpp's build
        # One generation at a time (the base's lock): llama.cpp's context holds one
        # sequence's cache. That cache is the worker's, so this backend keeps no prefix
        # cache of its own: the worker reports how many prompt tokens it reused.

    # ---- loading -------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._worker is not None and self._worker.alive

    def _load(self, progress: ProgressCallback) -> None:
        self._discard_worker()
        path = resolve_gguf_file(self._file)
        if not llama_cpp_installed():
            raise ModelNotAvailable(
                "the gguf backend needs llama-cpp-python: pip install 'phichat[gguf]' "
                "(it compiles llama.cpp, which takes a few minutes)"
            )
        progress(f"loading {path.name} with llama.cpp ({self._threads} threads)", 0.1)
        window = self._window_request or DEFAULT_CONTEXT_WINDOW
        worker = LlamaProcess()
        try:
            answer = worker.call(
                "load",
                path=str(path),
                n_ctx=window,
                threads=self._threads,
                allow_amx=self._allow_amx,
                kv_cache=self._kv_cache,
                stop_texts=list(STOP_TOKENS),
            )
        except WorkerDied as exc:
            worker.close()
            raise ModelNotAvailable(f"cannot load {path}: {exc}") from None
        if "error" in answer:
            worker.close()
            raise ModelNotAvailable(f"cannot load {path}: {answer['error']}")
        try:
            self._configure(answer["ready"], window)
        except ModelNotAvailable as exc:
            worker.close()
            raise ModelNotAvailable(f"{path}: {exc}") from None
        self._worker = worker
        self._ever_loaded = True

    def _configure(self, ready: dict[str, Any], window: int) -> None:
        metadata: dict[str, str] = ready["metadata"]
        source = metadata.get("tokenizer.chat_template")
        if not source and metadata.get("general.architecture") == "phi3":
            source = PHI3_TEMPLATE
        if not source:
            raise ModelNotAvailable("the file has no chat template in its metadata")
        self._template = _compile_template(source)
        self._bos = str(ready["bos"])
        self._eos = str(ready["eos"])
        self._add_bos = metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self._stop_ids = {int(i) for i in ready["stop_ids"]}
        self._file_type = FILE_TYPES.get(int(metadata.get("general.file_type", -1)), "gguf")
        trained = int(metadata.get(f"{metadata.get('general.architecture')}.context_length", 0))
        self._window = min(window, trained) if trained > 0 else window
        self.metadata = metadata
        self.kernels = {
            key: ready[key]
            for key in ("amx_built", "extra_buffers", "weight_buffers", "use_mmap", "kv_cache")
        }

    def worker_peak_memory_bytes(self) -> int | None:
        """The llama.cpp worker's peak resident memory (for benchmarks), None where unknown."""
        worker = self._worker
        return worker.peak_memory_bytes() if worker is not None else None

    def _discard_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def close(self) -> None:
        """End the llama.cpp worker (``load`` starts a new one)."""
        with self._load_lock:
            self._discard_worker()

    def _require(self) -> None:
        self._live_worker()

    def _live_worker(self) -> LlamaProcess:
        worker = self._worker
        if worker is not None and worker.alive:
            return worker
        if not self._ever_loaded:
            raise PhichatError(self.not_loaded_message)
        # The worker died (and said so to whoever was waiting): start a fresh one.
        self.load()
        assert self._worker is not None
        return self._worker

    @property
    def context_window(self) -> int:
        if not self._ever_loaded:
            raise PhichatError(self.not_loaded_message)
        return self._window

    def describe(self) -> dict[str, str]:
        # Short values: the TUI's status bar shows about 20 characters of each.
        facts = {
            "model": self.name,
            "device": f"cpu, {self._threads} threads",
            "dtype": f"gguf {self._file_type}",
        }
        if self.kernels.get("amx_built"):
            facts["amx"] = "on" if self.kernels.get("extra_buffers") else "off (llama.cpp#20824)"
        return facts

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
        prompt = self.render(messages)
        # Templates that do not write the BOS themselves rely on the tokenizer to add it.
        add_bos = self._add_bos and not (self._bos and prompt.startswith(self._bos))
        return self._tokenize(prompt, add_bos=add_bos, special=True)

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        # Only tokenizes: nothing is evaluated, so llama.cpp's cached prefix survives.
        return len(self.encode(messages))

    def count_text_tokens(self, text: str) -> int:
        return len(self._tokenize(text, add_bos=False, special=False))

    def _tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        answer = self._ask("tokenize", text=text, add_bos=add_bos, special=special)
        return [int(t) for t in answer["tokens"]]

    def _ask(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            answer = self._live_worker().call(op, **fields)
        except WorkerDied as exc:
            raise PhichatError(f"{exc}; the model loads again on the next request") from None
        if "error" in answer:
            raise PhichatError(f"llama.cpp: {answer['error']}")
        return answer

    def _prompt(self, messages: list[ChatMessage]) -> Prompt:
        tokens = self.encode(messages)
        return Prompt(list(messages), len(tokens), tokens)

    # ---- generation ----------------------------------------------------------------
    def _generate(self, job: Generation) -> Iterator[str | Held]:
        """Yield text token by token; ``stop`` ends the stream within a poll interval.

        The prompt is evaluated before the first token (llama.cpp's prefill), reusing the
        cache of the previous turn's shared prefix, so a follow-up question only pays for
        its new tokens. That cache lives in the worker process, across turns, and the
        worker says how many tokens it reused. A stop returns at once, even during the
        prefill; the worker then cuts the prefill short through llama.cpp's abort
        callback, and the next generation waits for it there.

        The worker's replies already arrive on a queue of their own (``Reply``), so this
        polls that queue directly rather than through a thread bridge.
        """
        tokens, options, stop = job.prompt.tokens, job.options, job.stop
        assert tokens is not None
        budget = min(options.max_new_tokens, self._window - len(tokens))
        if budget <= 0:
            raise PhichatError(
                f"the prompt ({len(tokens)} tokens) fills the {self._window}-token window"
            )
        worker = self._live_worker()
        reply = worker.start(
            "generate",
            tokens=tokens,
            sampling=_sampling(options),
            seed=options.seed,
            budget=budget,
            stop_ids=sorted(self._stop_ids),
        )
        finished = False
        try:
            while not stop.is_set():
                message = reply.next(timeout=POLL_S)
                if message is None:
                    continue
                if "error" in message:
                    raise PhichatError(f"generation failed: {message['error']}")
                job.stats.reused_tokens = int(message.get("reused", 0))
                if message.get("end"):
                    finished = True
                    if message.get("rest"):
                        yield Held(str(message["rest"]))
                    break
                yield str(message["text"])
        except WorkerDied as exc:
            self._worker = None
            raise PhichatError(
                f"{exc} while answering; the model loads again for the next message"
            ) from None
        finally:
            if not finished:
                worker.stop(reply.ident)
            reply.close()


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
