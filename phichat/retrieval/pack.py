"""Fill the context budget with the best passages, grouped and numbered by source.

Sources are numbered in the order their first passage was packed, so ``[1]`` is the
best source. Each source is one fenced block carrying its title and URL; its passages
appear in page order, with an ellipsis line between passages that were not adjacent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from phichat.domain import Source, SourcePassage
from phichat.retrieval.chunk import split_sentences
from phichat.retrieval.types import PackBudget, Passage
from phichat.textsafe import neutralize_special_tokens, one_line, strip_control

# Page text must not be able to close the fence, end the user turn or fake a chat role
# (special-token strings: textsafe.neutralize_special_tokens).
_FENCE_TAG = re.compile(r"<(/?\s*sources?)\b", re.I)
_GAP = "\n…\n"
# A cut passage shorter than this is not worth its source header.
_MIN_TRIMMED_CHARS = 120
# Below this much room even a short sentence no longer fits.
_MIN_SENTENCE_CHARS = 25


def clean_passage(text: str) -> str:
    text = neutralize_special_tokens(strip_control(text))
    return _FENCE_TAG.sub(r"‹\1", text)


def clean_title(title: str) -> str:
    title = neutralize_special_tokens(one_line(title, 150))
    return _FENCE_TAG.sub(r"‹\1", title).replace('"', "'")


def clean_url(url: str) -> str:
    return one_line(url, 500).replace('"', "%22").replace(" ", "%20")


@dataclass
class _SourceBlock:
    url: str
    title: str
    passages: list[Passage] = field(default_factory=list)

    def runs(self) -> list[Passage]:
        """The passages in page order, neighbouring sentences joined into one passage."""
        runs: list[Passage] = []
        for passage in sorted(self.passages, key=lambda p: p.chunk.position):
            last = runs[-1] if runs else None
            if (
                last is not None
                and last.chunk.sentences
                and passage.chunk.sentences
                and passage.chunk.position == last.chunk.position + len(last.chunk.sentences)
            ):
                chunk = replace(
                    last.chunk,
                    text=f"{last.chunk.text} {passage.chunk.text}",
                    sentences=last.chunk.sentences + passage.chunk.sentences,
                )
                runs[-1] = Passage(chunk, max(last.score, passage.score))
            else:
                runs.append(passage)
        return runs

    def render(self, n: int) -> str:
        ordered = self.runs()
        body = ""
        for index, passage in enumerate(ordered):
            if index:
                previous = ordered[index - 1].chunk
                adjacent = passage.chunk.position == previous.position + max(
                    1, len(previous.sentences)
                )
                body += "\n" if adjacent else _GAP
            body += passage.chunk.text
        return render_source(n, self.title, self.url, body)


def render_source(n: int, title: str, url: str, body: str) -> str:
    """One fenced source block: the only place a source reaches a prompt, so every caller
    (packing, and pinning an answer's stored sources) gets the same cleaning."""
    return (
        f'<source n="{n}" title="{clean_title(title)}" url="{clean_url(url)}">\n'
        f"{clean_passage(body)}\n</source>"
    )


def render_blocks(blocks: Sequence[_SourceBlock]) -> str:
    return "\n\n".join(block.render(n) for n, block in enumerate(blocks, start=1))


def _fits(text: str, budget: PackBudget) -> bool:
    if len(text) > budget.max_chars:
        return False
    if budget.max_tokens is not None and budget.count_tokens is not None:
        return budget.count_tokens(text) <= budget.max_tokens
    return True


def _shortened(passage: Passage) -> Iterator[Passage]:
    """The passage cut to fewer and fewer of its leading sentences, longest first."""
    sentences = split_sentences(passage.chunk.text)
    for keep in range(len(sentences) - 1, 0, -1):
        text = " ".join(sentences[:keep])
        if len(text) < _MIN_TRIMMED_CHARS:
            return
        yield Passage(replace(passage.chunk, text=text), passage.score)


class _Packer:
    """Source blocks being filled; a passage joins only if the whole text still fits."""

    def __init__(self, budget: PackBudget) -> None:
        self.budget = budget
        self.blocks: list[_SourceBlock] = []
        self.by_url: dict[str, _SourceBlock] = {}
        self.text = ""

    def room(self) -> int:
        return self.budget.max_chars - len(self.text)

    def try_add(self, passage: Passage) -> bool:
        """Add the passage if the whole text still fits."""
        if len(passage.chunk.text) > self.room():
            return False  # cannot fit: spare the render
        url = passage.chunk.source_url
        block = self.by_url.get(url)
        if block is None:
            trial = [*self.blocks, _SourceBlock(url, passage.chunk.title, [passage])]
        else:
            block.passages.append(passage)
            trial = self.blocks
        text = render_blocks(trial)
        if not _fits(text, self.budget):
            if block is not None:
                block.passages.pop()
            return False
        if block is None:
            self.blocks = trial
            self.by_url[url] = trial[-1]
        self.text = text
        return True


# A window's neighbour sentences are packed as if the window ranked this many places
# lower. The centre sentences of the next few windows come first, so a small budget holds
# more distinct facts, while the context around a strong hit still comes before weak
# hits (the README's figures: 0 packs each window whole, larger values starve the best
# hit of the sentence that completes it).
NEIGHBOUR_DELAY = 3


@dataclass(order=True)
class _Queued:
    """A sentence waiting to be packed, ordered by the rank it is packed at."""

    rank: float
    window_rank: int
    index: int
    passage: Passage = field(compare=False)


def _window_sentences(passage: Passage, rank: int, delay: float) -> Iterator[_Queued]:
    """Each sentence of a window as a one-sentence passage: the centre at the window's
    rank, its neighbours ``delay`` places lower."""
    chunk = passage.chunk
    for offset, text in enumerate(chunk.sentences):
        index = chunk.position + offset
        sentence = replace(chunk, text=text, position=index, sentences=(text,), centre=0)
        at = rank if offset == chunk.centre else rank + delay
        yield _Queued(at, rank, index, Passage(sentence, passage.score))


class _SentenceQueue:
    """Sentences of the windows seen so far, released once no later window can outrank them."""

    def __init__(self, packer: _Packer, delay: float) -> None:
        self.packer = packer
        self.delay = delay
        self.waiting: list[_Queued] = []
        self.packed: set[tuple[str, int]] = set()

    def add(self, passage: Passage, rank: int) -> None:
        self.waiting.extend(_window_sentences(passage, rank, self.delay))
        self.waiting.sort()
        self.release(rank)

    def release(self, up_to: float) -> None:
        """Pack, best first, the waiting sentences due at or before ``up_to``."""
        while self.waiting and self.waiting[0].rank <= up_to:
            if self.packer.room() < _MIN_SENTENCE_CHARS:
                return
            sentence = self.waiting.pop(0).passage
            key = (sentence.chunk.source_url, sentence.chunk.position)
            if key not in self.packed and self.packer.try_add(sentence):
                self.packed.add(key)


def pack(ranked: Sequence[Passage], budget: PackBudget) -> tuple[str, list[Source]]:
    """The context text and its numbered sources, filled greedily in rank order.

    A sentence window is packed sentence by sentence, never repeating one: its centre at
    its own rank, its neighbours NEIGHBOUR_DELAY places lower. A sentence or passage that
    would overflow the budget is skipped for the next one; a plain passage is first cut
    to the leading sentences that fit (when enough room is left for that to be worth it),
    so the end of the budget goes to the best remaining text rather than to nothing.
    """
    packer = _Packer(budget)
    queue = _SentenceQueue(packer, NEIGHBOUR_DELAY)
    for rank, passage in enumerate(ranked):
        if packer.room() < _MIN_SENTENCE_CHARS:
            break  # full: nothing useful fits any more
        if passage.chunk.sentences:
            queue.add(passage, rank)
            continue
        queue.release(rank)
        if packer.try_add(passage):
            continue
        if packer.room() >= _MIN_TRIMMED_CHARS:
            for shorter in _shortened(passage):
                if packer.try_add(shorter):
                    break
    queue.release(float("inf"))
    blocks = packer.blocks
    sources = [
        Source(
            n=n,
            title=one_line(block.title or block.url, 200),
            url=one_line(block.url, 2000),
            passages=tuple(
                SourcePassage(clean_passage(p.chunk.text), p.score, p.chunk.heading)
                for p in block.runs()
            ),
        )
        for n, block in enumerate(blocks, start=1)
    ]
    return packer.text, sources
