"""The whole chat turn as a user waits for it: query, retrieval, prefill and decoding.

A conversation of several turns runs through ``Session.respond`` with search on, over
loopback pages (a SearxNG-compatible ``/search`` and article pages, served by the
retrieval benchmark's server), on a random model of Phi-3-mini's exact shape. Speed does
not depend on the weight values, but prompt lengths depend on the tokenizer, so the model
gets a realistic one: a 32k byte-level BPE trained on English prose that the benchmark
takes from the comments and docstrings of Python's own standard library (about 3 MB, on
every machine that runs this); the pages are made of other files' prose than the
tokenizer was trained on. It learns fewer tokens than the model has ids, so it is padded
with made-up words (``pad_vocabulary``) that never occur in the prompts: every id the
random model emits decodes to text, in transformers and in the GGUF file alike.

Printed for each turn: the first-token time split into the search query, retrieval and
prefill; prompt tokens, prefilled and reused from the cached prefix; decode tokens/s and
the whole turn. Then, for reference, the backend's raw speed on the same prompt tokens
(one transformers forward, or llama.cpp's ``Llama.eval``), peak memory against the weight
bytes, and (``--sweep``) a first turn's time at several source budgets.

    python benchmarks/turn.py                          # transformers, Phi-3-mini shape
    python benchmarks/turn.py --backend gguf           # Q4_K_M of the same random model
    python benchmarks/turn.py --sweep 1000 2000 4000   # first-turn time per budget
    python benchmarks/turn.py --query pure             # no model call for the query
    python benchmarks/turn.py --shape small --dtype float32   # 4 layers, for slow CPUs
    python benchmarks/turn.py --tiny                   # a smoke run

The Phi-3-mini shape needs about 8 GB of memory and 7.6 GB of disk under .bench/turn/
(plus 10 GB for the GGUF files); on a shared machine run it under
``flock /tmp/phichat-heavy.lock nice -n 10 ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the tokenizer builder and the GGUF writer
sys.path.insert(0, str(HERE))

from generation import build_folder, peak_rss_gb  # noqa: E402

QUESTIONS = [
    "How does the module decide which file paths to read first?",
    "What happens when one of them is missing?",
    "And how are the errors reported back to the caller?",
    "Is any of it cached between calls?",
    "What would you change to make it faster?",
    "Summarise the whole thing in three points.",
]


# ---- realistic text -------------------------------------------------------------------
@functools.cache
def stdlib_prose() -> tuple[list[str], list[str]]:
    """English prose lines from the standard library's comments and docstrings.

    Returned as two disjoint halves (alternate files): one to train the tokenizer on, one
    to make the web pages from, so pages are not tokenized by a vocabulary fitted to them.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py")) + sorted(root.glob("*/*.py"))
    halves: tuple[list[str], list[str]] = ([], [])
    allowed = set(" ,.;:'()-")
    for index, path in enumerate(files):
        for line in path.read_text(errors="ignore").splitlines():
            text = line.strip().lstrip("#").strip()
            if len(text.split()) >= 6 and all(ch.isalpha() or ch in allowed for ch in text):
                halves[index % 2].append(text)
    return halves


def page_html(index: int, lines: list[str], words: int) -> bytes:
    """An article of about ``words`` words of prose, in headed paragraphs and some chrome."""
    rng = random.Random(index)
    start = rng.randrange(max(len(lines) - 4 * words // 8, 1))
    parts = [f"<h1>Notes on the library, part {index}</h1>"]
    count, paragraph = 0, []
    for line in lines[start:]:
        paragraph.append(line)
        count += len(line.split())
        if len(paragraph) == 5:
            parts.append("<p>" + " ".join(paragraph) + "</p>")
            paragraph = []
            if rng.random() < 0.2:
                parts.append(f"<h2>{' '.join(line.split()[:4]).rstrip('.,;:')}</h2>")
        if count >= words:
            break
    nav = "".join(f'<li><a href="/x{i}">Section {i}</a></li>' for i in range(60))
    return (
        f"<!doctype html><html><head><title>Library notes {index}</title></head><body>"
        f"<nav><ul>{nav}</ul></nav><main><article>{''.join(parts)}</article></main>"
        f"<footer>Notes.</footer></body></html>"
    ).encode()


# ---- the model folder ---------------------------------------------------------------------
CONSONANTS, VOWELS = "bdfgklmnprstvz", "aeiou"


def padding_pieces(count: int, avoid: str) -> list[str]:
    """``count`` made-up words, each with its leading space, none of them found in ``avoid``.

    They fill the vocabulary up to the model's size (see ``pad_vocabulary``). All have
    the same length (a space and three consonant-vowel syllables), so none is the start of
    another and a run of them splits back into the same pieces.
    """
    import itertools

    taken = set(re.findall(r" ([a-z]{6})", avoid))
    syllables = [c + v for c in CONSONANTS for v in VOWELS]
    pieces: list[str] = []
    for parts in itertools.product(syllables, repeat=3):
        word = "".join(parts)
        if word not in taken:
            pieces.append(" " + word)
            if len(pieces) == count:
                return pieces
    raise ValueError(f"only {len(pieces)} padding words are free of the prompts' text")


def prompt_text() -> str:
    """Everything the benchmark's prompts are made of: prose, questions, system prompts."""
    from phichat import prompts

    train, pages = stdlib_prose()
    prompt_files = Path(prompts.__file__).parent.rglob("*.md")
    return "\n".join([*train, *pages, *QUESTIONS, *(p.read_text() for p in prompt_files)])


def pad_vocabulary(tokenizer: Any, size: int) -> int:
    """Give ``tokenizer`` added tokens up to ``size`` ids; return how many were added.

    The random model emits any of its ``size`` ids, and a BPE trained on a few MB of prose
    learns fewer tokens than Phi-3-mini has (19,672 of 32,064), so without this most ids
    decode to nothing (transformers: past the tokenizer; GGUF: UNUSED pieces) and answers
    come out empty. Each added token is a word with a leading space, found nowhere in the
    prompts' text (so prompts tokenize exactly as before) and decoding to itself, so that an
    answer has text and tokenizes back to the same ids when it returns in the history.
    """
    from tokenizers import AddedToken

    missing = size - len(tokenizer)
    if missing <= 0:
        return 0
    words = padding_pieces(missing, prompt_text())
    added = [AddedToken(word, special=False, normalized=False) for word in words]
    tokenizer.add_tokens(added)
    return missing


def tokenizer_note(learned: int, padded: int) -> str:
    return f"byte-level BPE, {learned} tokens learned, padded to {padded} with added words"


def prepare_folder(folder: Path, shape: str, vocab_size: int) -> None:
    """The random model of ``shape`` with a BPE of ``vocab_size`` trained on stdlib prose.

    The tokenizer is padded to the model's vocabulary (``pad_vocabulary``). A folder made
    before that keeps its weights and gets the padded tokenizer.
    """
    note = folder / "bench-tokenizer.txt"
    if (folder / "config.json").exists() and note.exists() and "padded" in note.read_text():
        return
    from tiny_phi3 import build_tokenizer

    if not (folder / "config.json").exists():
        print(f"building a random {shape}-shaped model in {folder} …", file=sys.stderr)
        build_folder(folder, shape)
    size = json.loads((folder / "config.json").read_text())["vocab_size"]
    train, _ = stdlib_prose()
    tokenizer = build_tokenizer(train, vocab_size=vocab_size)
    learned = len(tokenizer)
    pad_vocabulary(tokenizer, size)
    tokenizer.save_pretrained(folder)
    note.write_text(tokenizer_note(learned, len(tokenizer)) + "\n")


def gguf_file(folder: Path, shape: str) -> Path:
    """The Q4_K_M GGUF of ``folder``, beside it (built once), with ``folder``'s vocabulary."""
    from generation_gguf import quantized_gguf

    path = Path(quantized_gguf(folder, "Q4_K_M"))
    if not gguf_vocabulary_matches(path, folder):
        # Made with an older tokenizer: the weights are right, so only the tokenizer's
        # metadata is written anew (2.4 GB copied, instead of a 7.6 GB reconversion).
        print(f"writing {folder.name}'s vocabulary into {path} …", file=sys.stderr)
        retokenized_gguf(path, folder)
    return path


def gguf_vocabulary_matches(path: Path, folder: Path) -> bool:
    import gguf
    from phi3_gguf import gguf_vocabulary

    reader = gguf.GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    return (list(tokens), list(types)) == gguf_vocabulary(folder, len(tokens))


def retokenized_gguf(path: Path, folder: Path) -> Path:
    """Replace ``path`` by a copy of it whose tokenizer metadata is ``folder``'s.

    Every other key and every tensor is copied as it is (the quantized data unchanged).
    The copy replaces ``path`` only once complete (a link at ``path`` is replaced, not
    written through).
    """
    import gguf
    from phi3_gguf import _add_tokenizer

    reader = gguf.GGUFReader(str(path))
    arch = reader.fields["general.architecture"].contents()
    vocab_size = len(reader.fields["tokenizer.ggml.tokens"].contents())
    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(partial, arch)
    for key in reader.fields.values():
        if key.name.startswith(("GGUF.", "tokenizer.")) or key.name == "general.architecture":
            continue  # written by GGUFWriter itself, or anew below
        kind = key.types[0]
        sub_type = key.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key.name, key.contents(), kind, sub_type=sub_type)
    _add_tokenizer(writer, folder, vocab_size, chat_template=True)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name,
            tensor.data.shape,
            tensor.data.dtype,
            tensor.data.nbytes,
            tensor.tensor_type,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data)
    writer.close()
    partial.replace(path)
    return path


# ---- one run --------------------------------------------------------------------------------
@dataclass
class TurnFigures:
    query_s: float = 0.0
    retrieval_s: float = 0.0
    prefill_s: float = 0.0  # prompt assembly + prefill + the first decoding step
    ttft_s: float = 0.0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    new_tokens: int = 0
    decode_tps: float = 0.0
    total_s: float = 0.0
    context_chars: int = 0
    shared_tokens: int = 0  # prompt tokens in common with the previous turn's prompt
    answer_chars: int = 0  # the answer's length: past answers are part of later prompts
    stages: list[str] = field(default_factory=list)


def pure_query(history: list[Any], question: str) -> str:
    """A follow-up query with no model call: the first question's words, then this one."""
    asked = [m.text for m in history if m.role == "user"]
    return " ".join([*asked[:1], question])[:200]


def run_turn(session: Any, conversation: Any, question: str, query: str) -> TurnFigures:
    from phichat.chat.events import Done, Failed, SourcesReady, Status, Token

    figures = TurnFigures()
    original = session.retrieval_query

    def timed_query(history: list[Any], text: str, stop: threading.Event) -> str:
        begun = time.perf_counter()
        result = pure_query(history, text) if query == "pure" else original(history, text, stop)
        figures.query_s = time.perf_counter() - begun
        return result

    session.retrieval_query = timed_query
    started = time.perf_counter()
    sources_at = thinking_at = first_at = 0.0
    message = None
    for event in session.respond(conversation, question, True, threading.Event()):
        now = time.perf_counter()
        if isinstance(event, Status) and event.stage not in figures.stages:
            figures.stages.append(event.stage)
        if isinstance(event, SourcesReady):
            sources_at = now
            figures.context_chars = event.context_chars
        elif isinstance(event, Status) and event.stage == "thinking":
            thinking_at = now
        elif isinstance(event, Token) and not first_at:
            first_at = now
        elif isinstance(event, Done):
            message = event.message
        elif isinstance(event, Failed):
            raise SystemExit(f"the turn failed: {event.error}")
    figures.total_s = time.perf_counter() - started
    session.retrieval_query = original
    assert message is not None
    timings = message.timings
    if not first_at:
        # An answer can still start with tokens that decode to nothing (a partial UTF-8
        # character, or a tokenizer from before the padding), so no Token event comes. The
        # backend still timed its first generated token from the start of generation.
        first_at = thinking_at + float(timings.get("ttft_s", 0.0) or 0.0)
    figures.retrieval_s = (sources_at - started) - figures.query_s
    figures.prefill_s = first_at - thinking_at
    figures.ttft_s = first_at - started
    figures.prompt_tokens = int(timings.get("prompt_tokens", 0))
    figures.reused_tokens = int(timings.get("reused_tokens", 0))
    figures.new_tokens = int(timings.get("new_tokens", 0))
    figures.decode_tps = timings.get("tokens_per_s", 0.0)
    figures.answer_chars = len(message.text)
    return figures


def raw_transformers(model: Any, prompt_ids: list[int], decode_tokens: int) -> dict[str, float]:
    """One cold forward over the prompt, then single-token steps: the framework's own speed."""
    import torch
    from transformers import DynamicCache

    weights = model._model  # the loaded transformers model
    ids = torch.tensor([prompt_ids], device=weights.device)
    with torch.inference_mode():
        weights(ids[:, :8], logits_to_keep=1)  # warm the kernels up
        cache = DynamicCache()
        begun = time.perf_counter()
        logits = weights(ids, cache=cache, logits_to_keep=1).logits
        prefill_s = time.perf_counter() - begun
        token = logits[:, -1:].argmax(-1)
        begun = time.perf_counter()
        for _ in range(decode_tokens):
            token = weights(token, cache=cache, logits_to_keep=1).logits[:, -1:].argmax(-1)
        decode_s = time.perf_counter() - begun
    return {"prefill_tps": len(prompt_ids) / prefill_s, "decode_tps": decode_tokens / decode_s}


def raw_llama(
    path: Path, window: int, prompt_ids: list[int], decode_tokens: int
) -> dict[str, float]:
    """llama.cpp's own speed on the same tokens: ``Llama.eval`` of the prompt, then steps."""
    from phichat.models.llama_worker import open_llama

    # phichat's loader, so the reference runs the kernels phichat runs (the AMX guard too:
    # a plain Llama() dies on the first prompt batch on CPUs with AMX).
    llm = open_llama(str(path), n_ctx=window, threads=os.cpu_count() or 1)
    llm.eval(prompt_ids[:8])  # warm up
    llm.reset()
    begun = time.perf_counter()
    llm.eval(prompt_ids)
    prefill_s = time.perf_counter() - begun
    begun = time.perf_counter()
    for index in range(decode_tokens):
        llm.eval([prompt_ids[index % len(prompt_ids)]])
    decode_s = time.perf_counter() - begun
    llm.close()
    return {"prefill_tps": len(prompt_ids) / prefill_s, "decode_tps": decode_tokens / decode_s}


def sources_policies() -> dict[str, Any]:
    from phichat.chat.prompt import DEFAULT_POLICY, LIMIT_ONLY_POLICY

    return {"default": DEFAULT_POLICY, "limit-only": LIMIT_ONLY_POLICY}


SOURCES_POLICY_NAMES = ("default", "limit-only")


@contextlib.contextmanager
def sources_policy(policy: Any) -> Iterator[None]:
    """The session's prompts built with ``policy`` (phichat.chat.prompt.SourcesPolicy)."""
    from phichat.chat import prompt

    original = prompt.build_messages
    prompt.build_messages = functools.partial(original, policy=policy)  # type: ignore[assignment]
    try:
        yield
    finally:
        prompt.build_messages = original  # type: ignore[assignment]


def record(model: Any, sent: list[list[Any]]) -> None:
    """Keep every prompt ``model`` is given in ``sent``."""
    stream = model.stream

    def recording_stream(messages: list[Any], *rest: Any, **kwargs: Any) -> Any:
        sent.append(list(messages))
        return stream(messages, *rest, **kwargs)

    model.stream = recording_stream


def policy_system(sessions: list[Any], name: str) -> Any:
    """The system message of the conversation run with policy ``name``."""
    from phichat.chat.prompt import system_message

    session = next(session for each, session, _ in sessions if each == name)
    return system_message(session.options.preset)


def first_system(sessions: list[Any]) -> Any:
    return policy_system(sessions, sessions[0][0])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the conversation (and the sweep) in this process; return every figure."""
    os.environ["PHICHAT_CACHE_DIR"] = tempfile.mkdtemp(prefix="phichat-turn-")
    from retrieval import default_embedder, start_server
    from transformers import AutoTokenizer

    from phichat import prompts
    from phichat.chat.presets import Preset
    from phichat.chat.session import Session, TurnOptions
    from phichat.config import load_settings
    from phichat.domain import Conversation
    from phichat.models import create_model
    from phichat.models.base import GenerationOptions
    from phichat.retrieval.embedder import shared_embedder
    from phichat.retrieval.pipeline import WebRetriever
    from phichat.retrieval.search import SearxngSearch

    folder = args.folder
    _, page_lines = stdlib_prose()
    pages = tempfile.mkdtemp(prefix="phichat-turn-pages-")
    for index in range(args.pages):
        (Path(pages) / f"page{index}.html").write_bytes(page_html(index, page_lines, 1500))
    server, base = start_server(args.pages, args.page_delay, Path(pages))

    flags: dict[str, Any] = {
        "engine": "searxng",
        "searxng_url": base,
        "allow_private_urls": True,
        "embedder": default_embedder(),
        "max_results": args.pages,
        "backend": args.backend,
        "model": str(folder),
        "dtype": args.dtype,
        "device": args.device,
    }
    path = folder
    if args.backend == "gguf":
        path = gguf_file(folder, args.shape)
        flags["gguf_file"] = str(path)
    settings = load_settings(flags, environ={})
    model = create_model(settings)
    begun = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - begun
    # One model per sources policy (llama.cpp: one worker each, mapping the same file), so
    # that each conversation keeps its own cached prefix while their turns alternate.
    models = [model]
    for _ in args.sources_policy[1:]:
        models.append(create_model(settings))
        models[-1].load()
    if args.backend == "gguf":
        weight_bytes = path.stat().st_size
    else:
        weight_bytes = sum(p.numel() * p.element_size() for p in model._model.parameters())
    embedder = shared_embedder(settings.embedder)
    embedder.encode(["warm up"])  # its one-time load is not part of any turn
    retriever = WebRetriever(settings, engine=SearxngSearch(base), embedder=embedder)

    sent: list[list[Any]] = []
    for each in models:
        record(each, sent)

    def options(chars: int, preset: Preset | None = None) -> TurnOptions:
        generation = GenerationOptions(max_new_tokens=args.answer_tokens, temperature=0.0)
        return TurnOptions(generation, context_chars=chars, preset=preset)

    sessions = []
    for name, each in zip(args.sources_policy, models, strict=True):
        # With several policies, each its own system prompt: no prefix shared between them.
        preset = None
        if len(models) > 1:
            preset = Preset(name, "", f"Policy {name}. " + prompts.load("system"), "")
        session = Session(each, options(args.context_chars, preset), retriever=retriever)
        sessions.append((name, session, Conversation()))
    by_policy: dict[str, list[TurnFigures]] = {name: [] for name in args.sources_policy}
    policies = sources_policies()
    for index in range(args.turns):
        # Turn by turn, alternating policies, so that a change in the machine's load
        # falls on both alike.
        for name, session, conversation in sessions:
            with sources_policy(policies[name]):
                figures = run_turn(
                    session, conversation, QUESTIONS[index % len(QUESTIONS)], args.query
                )
            by_policy[name].append(figures)
            # As it goes, so that a run that fails late still leaves its figures.
            print(json.dumps({"policy": name, "turn": figures.__dict__}), file=sys.stderr)
    turns = by_policy[args.sources_policy[0]]
    answer_prompts = [
        m for m in sent if m and m[0]["role"] == "system" and m[0] == first_system(sessions)
    ]
    conversation_peak = peak_rss_gb()
    worker_peaks = [getattr(each, "worker_peak_memory_bytes", lambda: None)() for each in models]
    for extra in models[1:]:
        close_extra = getattr(extra, "close", None)
        if close_extra is not None:
            close_extra()

    sweep = {}
    for chars in args.sweep:
        # Its own system prompt, so that no cached prefix from another run is reused.
        system = f"Run {chars}. " + prompts.load("system")
        preset = Preset("sweep", "", system, "")
        single = Session(model, options(chars, preset), retriever=retriever)
        sweep[chars] = run_turn(single, Conversation(), QUESTIONS[0], "pure").__dict__
        print(json.dumps({"sweep": chars, "turn": sweep[chars]}), file=sys.stderr)
    if not answer_prompts:  # --turns 0: the raw probe runs on the sweep's prompts
        answer_prompts = [m for m in sent if m and m[0]["role"] == "system"]

    tokenizer = AutoTokenizer.from_pretrained(folder)

    def token_ids(messages: list[Any]) -> list[int]:
        encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)

    from phichat.models.prefix_cache import common_prefix_length

    for name, _, _ in sessions:
        system = policy_system(sessions, name)
        own = [m for m in sent if m and m[0] == system][: args.turns]
        prompt_ids = [token_ids(messages) for messages in own]
        for turn, earlier, later in zip(
            by_policy[name][1:], prompt_ids, prompt_ids[1:], strict=False
        ):
            # What any prefix cache could reuse (llama.cpp's own included, which phichat's
            # gguf backend may not report): the previous prompt's share of this one.
            turn.shared_tokens = common_prefix_length(earlier, later)
    first_ids, last_ids = token_ids(answer_prompts[0]), token_ids(answer_prompts[-1])
    peak = peak_rss_gb()
    # llama.cpp runs in a worker process of its own: its peak is the one to hold against
    # the GGUF file (the app's process holds the tokenizer, the embedder and torch).
    worker_peak = getattr(model, "worker_peak_memory_bytes", lambda: None)()
    if worker_peaks[0] and worker_peak:
        worker_peak = max(worker_peak, *[w for w in worker_peaks if w])
    raw: dict[str, dict[str, float]] = {}
    if args.backend == "gguf":
        close = getattr(model, "close", None)
        if close is not None:
            close()
        del model
    if args.raw_decode <= 0:
        pass  # no raw-speed probe asked for
    elif args.backend == "gguf":
        window = settings.context_window or 4096
        raw["first"] = raw_llama(path, window, first_ids, args.raw_decode)
        raw["last"] = raw_llama(path, window, last_ids, args.raw_decode)
    else:
        raw["first"] = raw_transformers(model, first_ids, args.raw_decode)
        raw["last"] = raw_transformers(model, last_ids, args.raw_decode)
    server.shutdown()
    chars = sum(len(m["content"]) for m in answer_prompts[0])
    return {
        "backend": args.backend,
        "describe": model.describe() if args.backend != "gguf" else {"dtype": "Q4_K_M"},
        "shape": args.shape,
        "tokenizer": (folder / "bench-tokenizer.txt").read_text().strip(),
        "chars_per_token": chars / len(first_ids),
        "query": args.query,
        "load_s": load_s,
        "weights_gb": weight_bytes / 1e9,
        "conversation_peak_gb": conversation_peak,
        "peak_gb": peak,
        "worker_peak_gb": worker_peak / 1e9 if worker_peak else None,
        "turns": [turn.__dict__ for turn in turns],
        "policies": {
            name: [turn.__dict__ for turn in figures] for name, figures in by_policy.items()
        },
        "context_chars": args.context_chars,
        "models": len(models),
        "sweep": sweep,
        "raw": raw,
        "raw_tokens": {"first": len(first_ids), "last": len(last_ids)},
        "threads": os.cpu_count(),
    }


# ---- printing -------------------------------------------------------------------------------
def print_result(result: dict[str, Any], machine: str) -> None:
    print(
        f"\n## {result['backend']} ({result['describe'].get('dtype', '')}), random Phi-3 "
        f"{result['shape']} shape, {machine}"
    )
    print(
        f"tokenizer: {result['tokenizer']}, {result['chars_per_token']:.1f} characters per "
        f"token in turn 1's prompt; query: {result['query']}; load {result['load_s']:.1f} s"
    )
    for name, turns in result.get("policies", {"default": result["turns"]}).items():
        if len(result.get("policies", {})) > 1:
            print(f"\nsources policy: {name}, {result['context_chars']} characters of sources")
        print_turns(turns)
    turns = result["turns"]
    weights = result["weights_gb"]
    worker = result.get("worker_peak_gb")
    if worker:
        print(
            f"peak memory: llama.cpp worker {worker:.2f} GB ({worker / weights:.2f}x the "
            f"{weights:.2f} GB GGUF file); app process {result['conversation_peak_gb']:.2f} GB "
            f"after the conversation, {result['peak_gb']:.2f} GB after the sweep"
        )
    else:
        # With several policies the process holds one model each.
        weights *= result.get("models", 1)
        print(
            f"peak memory: {result['conversation_peak_gb']:.2f} GB after the conversation "
            f"({result['conversation_peak_gb'] / weights:.2f}x the {weights:.2f} GB of "
            f"weights), {result['peak_gb']:.2f} GB after the sweep"
        )
    kind = "Llama.eval" if result["backend"] == "gguf" else "transformers forward"
    for name, figures in result["raw"].items():
        tokens = result["raw_tokens"][name]
        print(
            f"raw {kind}, {name} turn's {tokens} prompt tokens: prefill "
            f"{figures['prefill_tps']:.1f} tokens/s, decode {figures['decode_tps']:.2f} tokens/s"
        )
    first = turns[0] if turns else {"prefill_s": 0.0}
    if first["prefill_s"] > 0:
        print(
            f"phichat turn 1: prefill {first['prompt_tokens'] / first['prefill_s']:.1f} tokens/s "
            f"(incl. prompt assembly and the first step), decode {first['decode_tps']:.2f} tokens/s"
        )
    if result["sweep"]:
        print("\n| source budget | first token | retrieval | prefill | prompt tokens |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for chars, turn in result["sweep"].items():
            print(
                f"| {chars} chars | {turn['ttft_s']:.2f} s | {turn['retrieval_s']:.2f} s "
                f"| {turn['prefill_s']:.2f} s | {turn['prompt_tokens']} |"
            )


def print_turns(turns: list[dict[str, Any]]) -> None:
    print(
        "\n| turn | first token | query | retrieval | prefill | prompt tokens | prefilled "
        "| reused | shared | decode | total |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for number, turn in enumerate(turns, 1):
        prefilled = turn["prompt_tokens"] - turn["reused_tokens"]
        print(
            f"| {number} | {turn['ttft_s']:.2f} s | {turn['query_s']:.2f} s "
            f"| {turn['retrieval_s']:.2f} s | {turn['prefill_s']:.2f} s "
            f"| {turn['prompt_tokens']} | {prefilled} | {turn['reused_tokens']} "
            f"| {turn.get('shared_tokens', 0)} "
            f"| {turn['decode_tps']:.2f} tokens/s | {turn['total_s']:.1f} s |"
        )
    print(
        "(reused: reported by the backend; shared: tokens in common with the previous "
        "turn's prompt, what a prefix cache can reuse at least)"
    )
    if len(turns) > 1:
        ratios = ", ".join(f"{turn['ttft_s'] / turns[0]['ttft_s']:.2f}x" for turn in turns[1:])
        print(f"follow-ups' first token against turn 1's: {ratios}")


def machine_name() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    extras = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if name in flags]
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cores, {' '.join(extras) or 'no AVX2'}"


def shared_flags(args: argparse.Namespace) -> list[str]:
    """The options a child process needs, as command-line flags."""
    flags = [
        f"--turns={args.turns}",
        f"--answer-tokens={args.answer_tokens}",
        f"--context-chars={args.context_chars}",
        f"--query={args.query}",
        f"--dtype={args.dtype}",
        f"--device={args.device}",
        f"--pages={args.pages}",
        f"--page-delay={args.page_delay}",
        f"--raw-decode={args.raw_decode}",
        "--sources-policy",
        *args.sources_policy,
        "--sweep",
        *[str(chars) for chars in args.sweep],
    ]
    return [*flags, f"--shape={args.shape}"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=("transformers", "gguf", "both"), default="transformers"
    )
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--answer-tokens", type=int, default=48)
    parser.add_argument("--context-chars", type=int, default=4000)
    parser.add_argument("--sweep", type=int, nargs="*", default=[], help="first-turn budgets")
    parser.add_argument(
        "--query",
        choices=("session", "pure"),
        default="session",
        help="session: Session.retrieval_query as it is; pure: no model call (simulated)",
    )
    parser.add_argument("--dtype", default="bfloat16", help="transformers dtype (auto, bfloat16…)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--page-delay", type=float, default=0.3, help="seconds each page waits")
    parser.add_argument(
        "--raw-decode",
        type=int,
        default=8,
        help="steps of the raw decode probe (0: no raw-speed probe at all)",
    )
    parser.add_argument(
        "--shape",
        choices=("mini", "small", "tiny"),
        default="mini",
        help="mini: Phi-3-mini; small: its first 4 layers' worth; tiny: 64 wide (smoke runs)",
    )
    parser.add_argument("--tiny", action="store_true", help="--shape tiny, a 2k vocabulary")
    parser.add_argument(
        "--sources-policy",
        nargs="+",
        choices=SOURCES_POLICY_NAMES,
        default=["default"],
        help="when past turns lose their sources (phichat.chat.prompt): default, or "
        "limit-only (the policy before: at the prompt limit, once); several run turn by turn",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.shape = "tiny"
    args.vocab = 2000 if args.shape == "tiny" else 32000
    args.folder = ROOT / ".bench" / "turn" / f"phi3-{args.shape}-random"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    if args.prepare_only:
        prepare_folder(args.folder, args.shape, args.vocab)
        if args.backend != "transformers":
            gguf_file(args.folder, args.shape)
        return 0
    if args.measure_only:
        print(json.dumps(measure(args)))
        return 0
    # Build in a process of its own, and measure in fresh ones: a process inherits its
    # parent's peak memory, and the build's peak must not count as a turn's.
    prepare = [sys.executable, __file__, "--prepare-only", f"--backend={args.backend}"]
    subprocess.run([*prepare, *shared_flags(args)], check=True)
    backends = ["transformers", "gguf"] if args.backend == "both" else [args.backend]
    machine = machine_name()
    results = []
    for backend in backends:
        command = [sys.executable, __file__, "--measure-only", "--backend", backend]
        # Its stderr passes through: each turn's figures show as they come.
        child = subprocess.run(
            [*command, *shared_flags(args)], stdout=subprocess.PIPE, text=True, check=False
        )
        if child.returncode != 0:
            return child.returncode
        result = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(result)
        print_result(result, machine)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
