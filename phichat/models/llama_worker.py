"""The child process in which the gguf backend runs llama.cpp (``python -m`` this module).

Why a process of its own: a native crash in llama.cpp (a segfault in a kernel, an abort on
a damaged file) ends only this process. The app sees the pipe close, says so in one line
and starts a fresh worker for the next message; the terminal is never left in raw mode.
The worker also keeps llama.cpp's cache of the last prompt across turns, so follow-ups
reuse their shared prefix.

Protocol (see ``llama_process``): one JSON object per line, requests on stdin, replies on
the real stdout. Every request carries an ``id`` that its replies echo.

- ``load`` {path, n_ctx, threads, allow_amx, kv_cache, stop_texts} -> {ready: {...}} or {error}
- ``tokenize`` {text, add_bos, special} -> {tokens}; answered at once, even mid-answer
- ``generate`` {tokens, sampling, seed, budget, stop_ids} -> {text, reused} per token,
  then {end, rest, reused}, or {error}; generations run one after another
- ``stop`` {target}: end the generation with that id after its current token

This module imports llama_cpp, and nothing in the app imports this module.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import json
import os
import queue
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from phichat.models.base import first_line

Reply = Callable[[dict[str, Any]], None]

# llama.cpp#20824: with its AMX int8 kernels (built in by a native build on Sapphire Rapids
# and newer), the first batch of more than one token through a Q4_K matrix segfaults in
# ggml_backend_amx_mul_mat. Those kernels are reached only through llama.cpp's "extra"
# weight buffer types, so a model loaded with use_extra_bufts = False never runs them.
_AMX_BUILT = re.compile(r"\bAMX_INT8 = 1\b")
# llama.cpp logs one "<buffer type> model buffer size = ..." line per weight buffer.
_MODEL_BUFFER = re.compile(r"\b(\S+) model buffer size\b")


def amx_kernels_built(system_info: str) -> bool:
    """Whether this llama.cpp was compiled with its AMX int8 kernels (llama_print_system_info)."""
    return _AMX_BUILT.search(system_info) is not None


def keep_extra_buffers(system_info: str, allow_amx: bool) -> bool:
    """The AMX guard: extra weight buffers stay on unless they would bring the AMX kernels.

    Elsewhere they stay on, because they carry llama.cpp's fast repacked kernels (the
    AVX2 and AVX-512 Q4_0/Q4_K layouts, for instance).
    """
    return allow_amx or not amx_kernels_built(system_info)


_INSTALLED_LOG_CALLBACKS: list[Any] = []


class LlamaLog:
    """llama.cpp's log, kept out of the terminal: weight buffer names and the last errors."""

    def __init__(self) -> None:
        self.weight_buffers: list[str] = []
        self.errors: list[str] = []
        self.callback: Any = None  # the ctypes callback; llama.cpp holds a pointer to it

    def install(self, llama_cpp: Any) -> None:
        def on_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
            line = text.decode("utf-8", errors="replace")
            found = _MODEL_BUFFER.search(line)
            if found and found.group(1) not in self.weight_buffers:
                self.weight_buffers.append(found.group(1))
            if level == 3:  # GGML_LOG_LEVEL_ERROR
                self.errors = [*self.errors[-4:], line.strip()]
                print(line, end="", file=sys.stderr, flush=True)

        self.callback = llama_cpp.llama_log_callback(on_log)
        llama_cpp.llama_log_set(self.callback, ctypes.c_void_p(0))
        # llama.cpp keeps calling the last callback set, for as long as the process lives:
        # it must outlive this object (a worker freed in a test, say), or the next log line
        # from any later llama.cpp call jumps into freed memory.
        _INSTALLED_LOG_CALLBACKS.append(self.callback)


@contextlib.contextmanager
def model_params_without_extra_buffers(bindings: Any) -> Iterator[None]:
    """Make ``Llama()`` load with use_extra_bufts = False, which its constructor does not expose.

    ``Llama.__init__`` starts from ``llama_model_default_params()`` of the ctypes bindings
    and loads the model before returning, so the default is adjusted for that one call.
    The worker is single-threaded while it loads.
    """
    original = bindings.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffers
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


# The CPU "extra" weight buffer types a build may carry (repacked layouts, AMX tiles,
# KleidiAI): a weight placed in one of them is copied out of the file into a buffer of
# its own, in another layout.
_EXTRA_BUFFER_BUILT = re.compile(r"\b(?:REPACK|AMX_INT8|KLEIDIAI) = 1\b")

# KV cache element types (ggml_type values) by the names the worker accepts.
KV_CACHE_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}


def weights_copied_out_of_file(system_info: str, extra_buffers: bool) -> bool:
    """Whether llama.cpp will copy (most) weights into buffers of its own at load.

    With extra buffers on, a build with REPACK (or AMX, or KleidiAI) repacks every matrix
    whose type it has a layout for (the Q4_K ones of a Q4_K_M file on AVX2, for instance)
    into a new buffer. With the file mapped, the repack reads the mapped pages, and they
    stay mapped and resident beside the copy: llama.cpp unmaps only the stretches before
    the first and after the last tensor it still uses in place, and in a Phi-3 file those
    (the token embeddings, the output matrix) sit at both ends.
    """
    return extra_buffers and _EXTRA_BUFFER_BUILT.search(system_info) is not None


def use_mmap_for(system_info: str, extra_buffers: bool) -> bool:
    """Map the file only where llama.cpp uses the weights in place.

    Where they get copied out, reading the file instead keeps one copy in memory, not
    two (the page cache still holds the file, but reclaimable and outside the process).
    """
    return not weights_copied_out_of_file(system_info, extra_buffers)


def open_llama(
    path: str,
    *,
    n_ctx: int,
    threads: int,
    allow_amx: bool = False,
    kv_cache: str = "f16",
    use_mmap: bool | None = None,
    flash_attn: bool | None = None,
    extra_buffers: bool | None = None,
) -> Any:
    """``llama_cpp.Llama`` for ``path`` as phichat runs it: the AMX guard applied, and the
    file mapped only where its weights are used in place (``use_mmap`` None decides).

    ``kv_cache`` names the attention cache's element type (``KV_CACHE_TYPES``); a
    quantized V cache needs flash attention in llama.cpp, so it turns that on.
    ``flash_attn`` and ``extra_buffers`` override those choices (benchmarks/memory.py
    compares them). The benchmarks call this too, so that llama.cpp's raw speed is measured with the
    kernels phichat uses.
    """
    import llama_cpp

    if kv_cache not in KV_CACHE_TYPES:
        raise ValueError(f"unknown KV cache type {kv_cache!r}; one of {', '.join(KV_CACHE_TYPES)}")
    system_info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
    if extra_buffers is None:
        extra_buffers = keep_extra_buffers(system_info, allow_amx)
    guard = (
        contextlib.nullcontext()
        if extra_buffers
        else model_params_without_extra_buffers(llama_cpp.llama_cpp)
    )
    if use_mmap is None:
        use_mmap = use_mmap_for(system_info, extra_buffers)
    cache_type = KV_CACHE_TYPES[kv_cache]
    with guard:
        return llama_cpp.Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_batch=512,
            n_threads=threads,
            n_threads_batch=threads,
            use_mmap=use_mmap,
            type_k=cache_type,
            type_v=cache_type,
            flash_attn=kv_cache != "f16" if flash_attn is None else flash_attn,
            verbose=False,
        )


class Worker:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._write_lock = threading.Lock()
        self._llm: Any = None
        self._strip_first_space = False
        self._log = LlamaLog()
        self._stopped: set[int] = set()
        self._reused: int | None = None
        self._closing = False
        self._current: int | None = None  # the generation running now
        self._abort_callback: Any = None
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, ensure_ascii=True)
        with self._write_lock:
            self._out.write(line + "\n")
            self._out.flush()

    # ---- requests --------------------------------------------------------------------
    def read_requests(self, source: IO[str]) -> None:
        """Reader thread: answer quick requests at once, queue the slow ones in order."""
        for line in source:
            request = json.loads(line)
            op = request.get("op")
            if op == "stop":
                self._stopped.add(int(request["target"]))
            elif op == "tokenize":
                # Tokenizing reads only the vocabulary, so it may run beside a generation.
                self._answer(request, self._tokenize)
            else:
                self.jobs.put(request)
        # The parent closed the pipe (it exited or gave up on us): stop and leave.
        self._closing = True
        self.jobs.put(None)

    def run(self) -> None:
        while (request := self.jobs.get()) is not None:
            if self._closing:
                break
            op = request.get("op")
            if op == "load":
                self._answer(request, self._load)
            elif op == "generate":
                self._generate(request)
            else:
                self.send({"id": request.get("id"), "error": f"unknown request {op!r}"})

    def _answer(self, request: dict[str, Any], handler: Callable[[dict[str, Any]], Any]) -> None:
        try:
            reply = handler(request)
        except Exception as exc:  # every failure goes back as one line
            reply = {"error": first_line(exc)}
        self.send({"id": request.get("id"), **reply})

    def _tokenize(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._llm is None:
            return {"error": "the model is not loaded"}
        tokens = self._llm.tokenize(
            str(request["text"]).encode(),
            add_bos=bool(request.get("add_bos")),
            special=bool(request.get("special")),
        )
        return {"tokens": list(tokens)}

    # ---- loading ---------------------------------------------------------------------
    def _load(self, request: dict[str, Any]) -> dict[str, Any]:
        import llama_cpp

        self._log.install(llama_cpp)
        system_info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
        kv_cache = str(request.get("kv_cache", "f16"))
        try:
            llm = open_llama(
                str(request["path"]),
                n_ctx=int(request["n_ctx"]),
                threads=int(request["threads"]),
                allow_amx=bool(request.get("allow_amx")),
                kv_cache=kv_cache,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            detail = self._log.errors[-1] if self._log.errors else first_line(exc)
            if kv_cache != "f16" and "context" in detail:
                # A quantized cache needs head sizes that fit its blocks (of 32 values).
                detail += f" (kv_cache = {kv_cache} may not suit this model; f16 always does)"
            return {"error": detail}
        self._watch_prefill(llm, llama_cpp)
        metadata = {str(k): str(v) for k, v in dict(llm.metadata).items()}
        self._strip_first_space = metadata.get("tokenizer.ggml.model") == "llama"
        self._llm = llm
        return {
            "ready": {
                "metadata": metadata,
                "bos": _token_text(llm, llm.token_bos()),
                "eos": _token_text(llm, llm.token_eos()),
                "stop_ids": _stop_ids(llm, list(request.get("stop_texts", []))),
                "system_info": system_info,
                "amx_built": amx_kernels_built(system_info),
                "extra_buffers": bool(llm.model_params.use_extra_bufts),
                "use_mmap": file_mapped(llm, llama_cpp),
                "kv_cache": kv_cache_name(int(llm.context_params.type_k)),
                "weight_buffers": list(self._log.weight_buffers),
            }
        }

    def _watch_prefill(self, llm: Any, llama_cpp: Any) -> None:
        """Note how many prompt tokens ``generate`` kept from the cache, and let a stop cut
        the prefill short.

        ``Llama.generate`` trims its cache to the longest common prefix of the new prompt
        and the tokens it evaluated last, then evaluates the rest: when that first
        evaluation starts, ``n_tokens`` is exactly the number of reused tokens.

        During that evaluation llama.cpp asks an abort callback between graph nodes, so a
        stop ends a long prefill within a fraction of a second. A cut batch is not counted
        in ``n_tokens``, and every evaluation first drops the cache past ``n_tokens``, so
        the next prompt still reuses exactly what was evaluated. The callback is only set
        for the prefill: per token it would cost a Python call per graph node.
        """
        evaluate = llm.eval
        context = llm._ctx.ctx

        def stopped(_data: ctypes.c_void_p) -> bool:
            return self._current in self._stopped or self._closing

        should_abort = llama_cpp.ggml_abort_callback(stopped)
        self._abort_callback = should_abort  # llama.cpp holds a pointer to it

        def eval_noting_the_prefix(tokens: Any) -> None:
            if self._reused is not None:
                evaluate(tokens)
                return
            self._reused = int(llm.n_tokens)
            llama_cpp.llama_set_abort_callback(context, should_abort, None)
            try:
                evaluate(tokens)
            finally:
                llama_cpp.llama_set_abort_callback(context, ggml_no_abort(llama_cpp), None)

        llm.eval = eval_noting_the_prefix

    # ---- generation ------------------------------------------------------------------
    def _generate(self, request: dict[str, Any]) -> None:
        ident = int(request["id"])
        llm = self._llm
        if llm is None:
            self.send({"id": ident, "error": "the model is not loaded"})
            return
        stop_ids = set(request.get("stop_ids", []))
        budget = int(request["budget"])
        if request.get("seed") is not None:
            llm.set_seed(int(request["seed"]))
        # UTF-8 characters can span tokens: the decoder holds a partial one back.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._reused = None
        self._current = ident
        count = 0
        rest = ""
        generator = llm.generate(list(request["tokens"]), reset=True, **request["sampling"])
        try:
            for token in generator:
                if token in stop_ids or ident in self._stopped or self._closing:
                    break
                count += 1
                piece = decoder.decode(llm.detokenize([token]))
                if count == 1 and self._strip_first_space:
                    # SentencePiece vocabularies (Phi-3's) mark a word start with a space, so
                    # an answer's first piece starts with one; transformers drops it too.
                    piece = piece.removeprefix(" ")
                self.send({"id": ident, "text": piece, "reused": self._reused or 0})
                if count >= budget:
                    break
            if ident not in self._stopped:
                rest = decoder.decode(b"", final=True)
        except (RuntimeError, ValueError) as exc:
            if ident not in self._stopped:  # else: the prefill was cut short on purpose
                self.send({"id": ident, "error": first_line(exc)})
                return
        finally:
            generator.close()
            self._stopped.discard(ident)
            self._current = None
        self.send({"id": ident, "end": True, "rest": rest, "reused": self._reused or 0})


def kv_cache_name(ggml_type: int) -> str:
    """The ``KV_CACHE_TYPES`` name of a ggml type id (the id itself if it has none)."""
    names = {value: name for name, value in KV_CACHE_TYPES.items()}
    return names.get(ggml_type, str(ggml_type))


def file_mapped(llm: Any, llama_cpp: Any) -> bool:
    """Whether ``llm`` was loaded with its file mapped (llama.cpp's load_mode)."""
    modes = (llama_cpp.LLAMA_LOAD_MODE_MMAP, llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK)
    return int(llm.model_params.load_mode) in modes


def ggml_no_abort(llama_cpp: Any) -> Any:
    """A null abort callback (llama.cpp then never asks)."""
    return llama_cpp.ggml_abort_callback()


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return bytes(llm.detokenize([token], special=True)).decode("utf-8", errors="replace")


def _stop_ids(llm: Any, stop_texts: list[str]) -> list[int]:
    ids = {llm.token_eos()}
    for text in stop_texts:
        found = llm.tokenize(text.encode(), add_bos=False, special=True)
        if len(found) == 1:
            ids.add(found[0])
    return sorted(i for i in ids if i >= 0)


def main() -> int:
    # Ctrl+C in the terminal is the app's to handle (it stops the answer); the worker
    # also runs in a session of its own, so the signal does not reach it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Replies go to the real stdout; anything native code prints goes to stderr instead,
    # where it cannot corrupt the protocol.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker(protocol)
    reader = threading.Thread(
        target=worker.read_requests, args=(sys.stdin,), name="llama-requests", daemon=True
    )
    reader.start()
    worker.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
