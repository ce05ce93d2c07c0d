"""One assistant answer: live retrieval steps, streamed Markdown, badges and sources.

Tokens are appended through a ``MarkdownStream`` (which batches them when they come
faster than the widget can render), then the finished text is rendered once more with
its citations linked. The whole answer is never re-parsed per token. A finished answer
that reads as a trip plan gets the plan as a table beside the prose; one that does not
stays plain text.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message as TextualMessage
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from phichat.domain import Message, Source, TurnStats
from phichat.features.itinerary import Itinerary, parse_itinerary
from phichat.links import is_source
from phichat.textsafe import one_line, strip_control
from phichat.ui.untrusted import link_citations, mark_unverified_links
from phichat.ui.widgets.itinerary_view import ItineraryView
from phichat.ui.widgets.retrieval_steps import RetrievalSteps
from phichat.ui.widgets.source_list import SourceList


class Answer(Vertical):
    class UnverifiedLinkClicked(TextualMessage):
        """A link in the answer that is not one of its sources was clicked: ask first."""

        def __init__(self, url: str) -> None:
            super().__init__()
            self.url = url

    def __init__(self, *, search: bool, message: Message | None = None) -> None:
        super().__init__(classes="answer")
        self.search = search
        self.message = message
        self.sources: list[Source] = list(message.sources) if message else []
        self.search_query: str | None = message.query if message else None
        self._stream: MarkdownStream | None = None
        self._streamed: list[str] = []

    @property
    def text(self) -> str:
        """What the answer says so far (the finished text once it is done)."""
        if self.message is not None and self._stream is None:
            return self.message.text
        return "".join(self._streamed)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="answer-header"):
            yield Static("Assistant", classes="role", markup=False)
            yield Static(
                "web search" if self.search else "no search",
                classes="badge " + ("badge-search" if self.search else "badge-offline"),
                markup=False,
            )
            yield Static("", classes="badge badge-stopped", markup=False)
        steps = RetrievalSteps()
        steps.display = False
        yield steps
        initial = self._final_markdown() if self.message is not None else ""
        plan = self._plan()
        if plan is not None:
            with Horizontal(classes="answer-row"):
                yield Markdown(initial, open_links=False, classes="body")
                yield ItineraryView(plan, self.sources)
        else:
            yield Markdown(initial, open_links=False, classes="body")
        yield Static("", classes="footer", markup=False)

    def on_mount(self) -> None:
        if self.message is not None:
            self._show_outcome(self.message)
            if self.message.query:
                self.show_step("searching", self.message.query)
                self.query_one(RetrievalSteps).finish()
            if self.sources:
                self.mount(SourceList(self.sources), before=self.query_one(".footer"))

    # ---- while the turn runs --------------------------------------------------------------
    def show_step(self, stage: str, detail: str) -> None:
        self.query_one(RetrievalSteps).add_step(stage, detail or stage)

    def show_sources(self, sources: list[Source], query: str) -> None:
        self.sources = list(sources)
        self.search_query = query
        steps = self.query_one(RetrievalSteps)
        found = f"{len(sources)} source{'s' if len(sources) != 1 else ''}" if sources else "none"
        steps.add_step("ranking", f"{found} packed into the prompt")
        steps.finish()
        if sources and not self.query(SourceList):
            self.mount(SourceList(sources), before=self.query_one(".footer"))

    async def append(self, delta: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self.query_one(Markdown))
        piece = strip_control(delta)
        self._streamed.append(piece)
        await self._stream.write(piece)

    async def finish(self, message: Message) -> None:
        """The turn ended (done or stopped): one final render with citations linked."""
        await self._stop_stream()
        self.message = message
        self.sources = list(message.sources)
        self.query_one(RetrievalSteps).finish()
        plan = self._plan()
        if plan is None:
            await self.query_one(Markdown).update(self._final_markdown())
        else:
            await self._show_beside(plan)
        if self.sources and not self.query(SourceList):
            await self.mount(SourceList(self.sources), before=self.query_one(".footer"))
        self._show_outcome(message)

    async def fail(self, error: str) -> None:
        """The turn failed: keep whatever was streamed and say why underneath."""
        await self._stop_stream()
        self.query_one(RetrievalSteps).finish()
        footer = self.query_one(".footer", Static)
        footer.update(Text("✖ " + one_line(error, 500), style="bold red"))
        self.add_class("failed")

    async def _stop_stream(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None

    async def _show_beside(self, plan: Itinerary) -> None:
        """Swap the streamed text for a row of the final text and the plan table."""
        streamed = self.query_one(Markdown)
        row = Horizontal(classes="answer-row")
        await self.mount(row, after=streamed)
        await row.mount_all(
            [
                Markdown(self._final_markdown(), open_links=False, classes="body"),
                ItineraryView(plan, self.sources),
            ]
        )
        await streamed.remove()

    # ---- rendering ------------------------------------------------------------------------
    def _plan(self) -> Itinerary | None:
        if self.message is None or self.message.error:
            return None
        return parse_itinerary(self.message.text)

    def _final_markdown(self) -> str:
        text = mark_unverified_links(
            strip_control(self.message.text if self.message else self.text), self.sources
        )
        return link_citations(text, self.sources) if self.sources else text

    def _show_outcome(self, message: Message) -> None:
        stopped = self.query_one(".badge-stopped", Static)
        stopped.update("stopped" if message.stopped else "")
        stopped.display = message.stopped
        self.set_class(message.stopped, "stopped")
        footer = self.query_one(".footer", Static)
        if message.error:
            footer.update(Text("✖ " + one_line(message.error, 500), style="bold red"))
        elif message.stopped:
            footer.update(Text("Stopped by you; the partial answer is kept.", style="italic"))
        elif message.search_used and not message.grounded:
            footer.update(Text("Answered without sources: none were found.", style="italic"))
        else:
            footer.update(self._timing_line(message))

    @staticmethod
    def _timing_line(message: Message) -> Text:
        return Text(timing_summary(message.timings), style="dim")

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        """A citation link: highlight its source in the list, then open it."""
        event.stop()
        if not is_source(event.href.strip("<>"), self.sources):
            self.post_message(self.UnverifiedLinkClicked(event.href.strip("<>")))
            return
        lists = self.query(SourceList)
        for source in self.sources:
            if event.href.strip("<>") == source.url and lists:
                lists.first().select_number(source.n)
        self.post_message(SourceList.OpenRequested(event.href))


def timing_summary(timings: TurnStats | Mapping[str, float]) -> str:
    """Where the answer's time went: the first token's wait and its parts, then decoding.

    For example "first token 2.4 s (query 0.0 s · sources 1.1 s · prefill 1.3 s) ·
    980 prompt tokens, 620 reused · 48 tokens · 5.1 tok/s · 11.6 s". Figures missing
    from older answers are left out.
    """
    stats = timings if isinstance(timings, TurnStats) else TurnStats.from_mapping(timings)
    parts = []
    if stats.first_token_s:
        split = [
            f"{name} {seconds:.1f} s"
            for name, seconds in (
                ("query", stats.query_s),
                ("sources", stats.sources_s),
                ("prefill", stats.prefill_s),
            )
            if seconds is not None
        ]
        wait = f"first token {stats.first_token_s:.1f} s"
        parts.append(f"{wait} ({' · '.join(split)})" if split else wait)
    if stats.prompt_tokens:
        prompt = f"{stats.prompt_tokens} prompt tokens"
        if stats.reused_tokens:
            prompt += f", {stats.reused_tokens} reused"
        parts.append(prompt)
    if stats.new_tokens:
        parts.append(f"{stats.new_tokens} tokens")
    if stats.tokens_per_s:
        parts.append(f"{stats.tokens_per_s:.1f} tok/s")
    if stats.total_s:
        parts.append(f"{stats.total_s:.1f} s")
    return " · ".join(parts)
