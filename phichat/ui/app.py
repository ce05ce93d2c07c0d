"""The phichat Textual app: it wires widgets to the chat session and keeps nothing else.

Turn logic lives in ``chat.Session``; the app only starts turns in a worker (``TurnRunner``)
and hands each event to the widget that shows it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.markup import escape as escape_markup
from textual.screen import Screen
from textual.widgets import Footer, Static

from phichat.chat.events import Event
from phichat.chat.session import Session
from phichat.config import Settings
from phichat.domain import Conversation, Message, Side
from phichat.errors import PhichatError
from phichat.features.compare import CompareEvent, run_compare
from phichat.features.pinning import last_pinnable, pinned_retrieval
from phichat.models.base import ChatModel
from phichat.retrieval.types import Retrieval
from phichat.storage.conversations import ConversationStore
from phichat.textsafe import one_line
from phichat.ui.keys import KEYS, bindings, key_label, keymap_problems
from phichat.ui.pastesafe import install_paste_guard
from phichat.ui.screens.confirm_screen import ConfirmScreen
from phichat.ui.screens.context_screen import ContextScreen
from phichat.ui.screens.export_screen import ExportScreen
from phichat.ui.screens.help_screen import HelpScreen
from phichat.ui.screens.open_link_screen import OpenLinkScreen
from phichat.ui.screens.preset_screen import NO_PRESET, PresetScreen
from phichat.ui.screens.rename_screen import RenameScreen
from phichat.ui.untrusted import display_title, safe_url
from phichat.ui.widgets import cpu_notice
from phichat.ui.widgets.answer import Answer
from phichat.ui.widgets.compare_view import CompareView
from phichat.ui.widgets.composer import Composer
from phichat.ui.widgets.conversation_list import ConversationList
from phichat.ui.widgets.conversation_view import ConversationView
from phichat.ui.widgets.cpu_notice import CpuNotice
from phichat.ui.widgets.model_loader import ModelLoader
from phichat.ui.widgets.model_problem import ModelProblem
from phichat.ui.widgets.search_toggle import SearchToggle
from phichat.ui.widgets.source_list import SourceList
from phichat.ui.widgets.status_bar import StatusBar
from phichat.ui.widgets.turn_runner import TurnRunner
from phichat.ui.widgets.user_message import UserMessage

THEME_PREFERENCE = "theme"


class PhichatApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "phichat"
    BINDINGS = bindings("app")

    def __init__(
        self,
        settings: Settings,
        *,
        session: Session | None = None,
        model: ChatModel | None = None,
        store: ConversationStore | None = None,
        conversation: Conversation | None = None,
    ) -> None:
        super().__init__()
        install_paste_guard()  # before the driver starts reading the terminal
        self.settings = settings
        self.store = store if store is not None else ConversationStore()
        if session is None:
            from phichat.chat.factory import create_session

            session = create_session(settings, model=model, store=self.store)
        self.session = session
        # `phichat --cid ID` opens on a saved conversation; otherwise a fresh one.
        self.conversation = conversation if conversation is not None else Conversation()
        self._turn: ActiveTurn | None = None  # the running turn, as the app shows it
        self._pinned: Retrieval | None = None  # sources the next messages reuse (Ctrl+L)

    # ---- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Static("Conversations", id="sidebar-title", markup=False)
                yield ConversationList(id="conversation-list")
            with Vertical(id="main"):
                yield ConversationView(id="conversation")
                with Horizontal(id="composer-row"):
                    yield Composer(id="composer")
                    yield SearchToggle(self.settings.search, id="search-toggle")
        yield StatusBar(id="status-bar")
        yield Footer()
        yield ModelLoader(self.session.handle)
        yield TurnRunner()

    @property
    def view(self) -> ConversationView:
        return self.query_one(ConversationView)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    @property
    def runner(self) -> TurnRunner:
        return self.query_one(TurnRunner)

    @property
    def loader(self) -> ModelLoader:
        return self.query_one(ModelLoader)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one(StatusBar)

    async def on_mount(self) -> None:
        self._apply_keymap()
        self._apply_theme()
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.query_one("#sidebar").display = False
        await self.view.show_conversation(self.conversation)
        self._refresh_sidebar()
        self.status_bar.show_loading(self.session.model.name, "starting", None)
        # Start loading after the first frame is painted: importing torch in a thread
        # still competes for the interpreter, and the window should appear first.
        self.call_after_refresh(self.loader.start)
        self._show_mode()
        self.composer.focus()

    def _apply_keymap(self) -> None:
        usable, problems = keymap_problems(self.settings.keys)
        if problems:
            self.notify(
                "Ignoring in [keys]: " + "; ".join(problems),
                severity="warning",
                markup=False,
                timeout=10,
            )
        self.set_keymap(usable)

    def _apply_theme(self) -> None:
        wanted = self._read_preference(THEME_PREFERENCE) or self.settings.theme
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.notify(f"Unknown theme {wanted!r}; using the default.", markup=False)

    def _remember_theme(self, theme: object) -> None:
        self._write_preference(THEME_PREFERENCE, self.theme)

    # ---- the model ---------------------------------------------------------------------------
    def on_model_loader_progressed(self, event: ModelLoader.Progressed) -> None:
        self.status_bar.show_loading(self.session.model.name, event.description, event.fraction)

    async def on_model_loader_loaded(self, event: ModelLoader.Loaded) -> None:
        self.status_bar.show_ready(event.facts)
        await self._maybe_show_cpu_notice(event.facts)

    async def _maybe_show_cpu_notice(self, facts: Mapping[str, str]) -> None:
        """Once per start, until dismissed: what an answer costs on this CPU (cpu_notice)."""
        if not cpu_notice.applies(self.settings.backend, facts) or self.query(CpuNotice):
            return
        if self._read_preference(cpu_notice.DISMISSED_PREFERENCE):
            return
        try:
            measured = float(self._read_preference(cpu_notice.SPEED_PREFERENCE) or "")
        except ValueError:
            measured = None
        text = cpu_notice.notice_text(
            facts.get("dtype", "float32"), measured, self.settings.max_new_tokens
        )
        remember = partial(self._write_preference, cpu_notice.DISMISSED_PREFERENCE, "1")
        await self.mount(CpuNotice(text, remember), before=self.status_bar)

    async def on_model_loader_failed(self, event: ModelLoader.Failed) -> None:
        self.status_bar.show_failed()
        main = self.query_one("#main")
        await self.query("#model-problem").remove()
        await main.mount(
            ModelProblem(
                self.settings.model,
                event.error,
                backend=self.settings.backend,
                id="model-problem",
            ),
            before=0,
        )

    # ---- sending and answering -------------------------------------------------------------
    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        if self.runner.running:
            self.composer.give_back(event.text)
            self.composer.hold()
            self.notify("Still answering: Esc stops it.", severity="warning")
            return
        if self.loader.error is not None:
            self.composer.give_back(event.text)
            self.notify(
                f"Cannot answer: {self.loader.error}", severity="error", markup=False, timeout=8
            )
            return
        search = self.query_one(SearchToggle).enabled
        conversation = self.conversation
        pinned = self._pinned
        await self.view.add_user(Message(role="user", text=event.text))
        turn = ActiveTurn(asked=event.text)
        await self._start_turn(
            turn,
            search or pinned is not None,
            lambda stop: self.session.respond(
                conversation, event.text, search, stop, pinned_sources=pinned
            ),
        )

    async def _start_turn(
        self,
        turn: ActiveTurn,
        search: bool,
        events: Callable[[threading.Event], Iterator[Event]],
    ) -> None:
        turn.answer = await self.view.start_answer(search)
        self._begin(turn, events, "working… Esc stops")

    def _begin(
        self,
        turn: ActiveTurn,
        events: Callable[[threading.Event], Iterator[Event | CompareEvent]],
        status: str,
    ) -> None:
        turn.messages_before = len(self.conversation.messages)
        self._turn = turn
        self.composer.hold()
        self.status_bar.show_turn(status)
        turn.turn_id = self.runner.start(events, self.session.handle)

    def _active(self, turn_id: int) -> ActiveTurn | None:
        """The running turn, or None for a turn the app has moved on from."""
        if self._turn is None or turn_id != self.runner.turn_id:
            return None
        return self._turn

    def _current(self, turn_id: int, side: Side | None = None) -> Answer | None:
        """The answer widget for ``turn_id`` (and compare ``side``), or None for a turn the
        app has moved on from."""
        turn = self._active(turn_id)
        return turn.widget(side) if turn is not None else None

    def on_turn_runner_step_changed(self, event: TurnRunner.StepChanged) -> None:
        answer = self._current(event.turn_id, event.side)
        if answer is None:
            return
        if event.stage not in ("thinking", "writing"):
            answer.show_step(event.stage, event.detail)
        self.status_bar.show_stage(event.stage)

    def on_turn_runner_sources_found(self, event: TurnRunner.SourcesFound) -> None:
        answer = self._current(event.turn_id, event.side)
        if answer is not None:
            answer.show_sources(event.sources, event.query)

    async def on_turn_runner_token_arrived(self, event: TurnRunner.TokenArrived) -> None:
        answer = self._current(event.turn_id, event.side)
        if answer is not None:
            await answer.append(event.text)

    async def on_turn_runner_finished(self, event: TurnRunner.Finished) -> None:
        answer = self._current(event.turn_id, event.side)
        if answer is None:
            return
        if event.side:  # one side of a compare: the other may still be running
            await answer.finish(event.message)
            return
        self.runner.ended(event.turn_id)
        await answer.finish(event.message)
        speed = cpu_notice.measured_speed(event.message.timings)
        if speed is not None and self.session.model.describe().get("device") == "cpu":
            self._write_preference(cpu_notice.SPEED_PREFERENCE, f"{speed:.2f}")
        self.status_bar.show_turn("stopped" if event.message.stopped else "")
        self._turn_over()

    async def on_turn_runner_failed(self, event: TurnRunner.Failed) -> None:
        if event.side:
            side_answer = self._current(event.turn_id, event.side)
            if side_answer is not None:
                await side_answer.fail(event.error)
            return
        turn = self._active(event.turn_id)
        if turn is None:
            return
        self.runner.ended(event.turn_id)
        self.status_bar.show_turn("")
        recorded = len(self.conversation.messages) > turn.messages_before
        # Nothing was sent or saved: take the question back so it can be sent later.
        take_back = turn.asked is not None and (event.never_started or not recorded)
        if turn.compare is not None:
            await turn.compare.remove()  # a compare that could not start shows nothing
        shown_again = await self._show_replaced_again(turn)
        if take_back and turn.answer is not None:
            await turn.answer.remove()
        if take_back and turn.asked is not None:
            user_messages = self.view.query(UserMessage)
            if user_messages:
                await user_messages.last().remove()
            self.composer.give_back(turn.asked)
        if turn.answer is not None and not take_back and not shown_again:
            await turn.answer.fail(event.error)
        else:
            self.notify(event.error, severity="error", markup=False, timeout=8)
        self._turn_over()

    async def on_turn_runner_compare_finished(self, event: TurnRunner.CompareFinished) -> None:
        turn = self._active(event.turn_id)
        compare = turn.compare if turn is not None else None
        if turn is None or compare is None:
            return
        self.runner.ended(event.turn_id)
        self.status_bar.show_turn("")
        if await self._show_replaced_again(turn):
            self.notify(
                "Neither answer of the compare began; the previous answer is kept.",
                severity="error",
                timeout=8,
            )
        else:
            compare.show_summary_of(event.done.without, event.done.with_search, event.done.question)
        self._turn_over()

    async def _show_replaced_again(self, turn: ActiveTurn) -> bool:
        """If the session kept the answers the turn was to replace, show them again."""
        kept = turn.replaced
        tail = self.conversation.messages[-len(kept) :] if kept else []
        if not kept or len(tail) != len(kept):
            return False
        if any(shown is not saved for shown, saved in zip(tail, kept, strict=True)):
            return False
        await self.view.remove_trailing_answers()
        await self.view.show_answers(kept)
        return True

    def _turn_over(self) -> None:
        self._turn = None
        self.composer.release()
        self.composer.remember([m.text for m in self.conversation.messages if m.role == "user"])
        self._refresh_sidebar()

    # ---- actions ---------------------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.runner.cancel():
            self.status_bar.show_turn("stopping…")
        elif not self.composer.has_focus:
            self.composer.focus()

    def action_toggle_search(self) -> None:
        self.query_one(SearchToggle).toggle()

    def on_search_toggle_toggled(self, event: SearchToggle.Toggled) -> None:
        state = "on" if event.enabled else "off"
        self.notify(f"Web search {state} for the next message.", timeout=2)

    async def action_regenerate(self) -> None:
        await self._regenerate(flip=False)

    async def action_regenerate_flipped(self) -> None:
        await self._regenerate(flip=True)

    async def _regenerate(self, flip: bool) -> None:
        if self.runner.running:
            self.notify("Still answering: Esc stops it.", severity="warning")
            return
        messages = self.conversation.messages
        if not any(m.role == "user" for m in messages):
            self.notify("There is no message to answer again yet.")
            return
        if self.loader.error is not None:
            self.notify(f"Cannot answer: {self.loader.error}", severity="error", markup=False)
            return
        last = messages[-1]
        search = (
            last.search_used if last.role == "assistant" else self.query_one(SearchToggle).enabled
        )
        if flip:
            search = not search
        conversation = self.conversation
        turn = ActiveTurn(replaced=trailing_answers(messages))
        await self.view.remove_trailing_answers()
        await self._start_turn(
            turn, search, lambda stop: self.session.regenerate(conversation, search, stop)
        )

    async def action_compare(self) -> None:
        """Answer the typed question (or else the last one) without and with search."""
        if self.runner.running:
            self.notify("Still answering: Esc stops it.", severity="warning")
            return
        if self.loader.error is not None:
            self.notify(f"Cannot answer: {self.loader.error}", severity="error", markup=False)
            return
        conversation = self.conversation
        typed = self.composer.text.strip()
        question: str | None
        if typed:
            question = typed
            self.composer.clear()
            await self.view.add_user(Message(role="user", text=typed))
            turn = ActiveTurn(asked=typed)
        elif any(m.role == "user" for m in conversation.messages):
            question = None  # the last question, answered again both ways
            turn = ActiveTurn(replaced=trailing_answers(conversation.messages))
            await self.view.remove_trailing_answers()
        else:
            self.notify("Type a question, then F5 compares answers without and with search.")
            return
        turn.compare = await self.view.start_compare()
        pinned = self._pinned

        def events(stop: threading.Event) -> Iterator[CompareEvent]:
            return run_compare(self.session, conversation, question, stop, pinned=pinned)

        self._begin(turn, events, "comparing… Esc stops")

    def action_pin_sources(self) -> None:
        if self._pinned is not None:
            self._pinned = None
            self.notify("Sources unpinned: the search toggle decides again.", timeout=3)
            self._show_mode()
            return
        message = last_pinnable(self.conversation.messages)
        pinned = pinned_retrieval(message) if message is not None else None
        if pinned is None:
            self.notify("No answer in this conversation has sources to pin yet.")
            return
        self._pinned = pinned
        count = len(pinned.sources)
        self.notify(
            f"Pinned {count} source{'s' * (count != 1)}: the next questions use them "
            "without searching again. Ctrl+L unpins.",
            timeout=5,
        )
        self._show_mode()

    def action_pick_preset(self) -> None:
        from phichat.chat.presets import load_presets

        presets, problems = load_presets()
        current = self.session.options.preset

        def chosen(name: str | None) -> None:
            if name is None:
                return
            preset = next((p for p in presets if p.name == name), None)
            if name != NO_PRESET and preset is None:
                return
            self.session.options = dataclasses.replace(self.session.options, preset=preset)
            shown = preset.name if preset is not None else "none (plain answers)"
            self.notify(f"Preset for the next messages: {shown}", markup=False, timeout=3)
            self._show_mode()

        self.push_screen(PresetScreen(presets, current.name if current else None, problems), chosen)

    def _show_mode(self) -> None:
        preset = self.session.options.preset
        pinned = len(self._pinned.sources) if self._pinned is not None else None
        self.status_bar.show_mode(preset.name if preset else None, pinned)

    def action_focus_sources(self) -> None:
        answer = self.view.last_answer()
        lists = answer.query(SourceList) if answer is not None else None
        if not lists:
            self.notify("The last answer has no sources.")
            return
        lists.first().focus()

    def action_show_context(self) -> None:
        answer = self.view.last_answer()
        if answer is None or not answer.sources:
            self.notify("The last answer used no web passages.")
            return
        self.push_screen(ContextScreen(answer.sources, answer.search_query))

    def on_source_list_open_requested(self, event: SourceList.OpenRequested) -> None:
        url = safe_url(event.url.strip("<>"))
        if url is None:
            self.notify("Not opening a link that is not http(s).", severity="warning")
            return
        try:
            self.open_url(url)
        except Exception as exc:  # the browser hook is outside our control
            self.notify(f"Could not open {url}: {exc}", severity="error", markup=False)
            return
        self.notify(f"Opening {url}", markup=False, timeout=3)

    def on_answer_unverified_link_clicked(self, event: Answer.UnverifiedLinkClicked) -> None:
        def chosen(confirmed: bool | None) -> None:
            if confirmed:
                self.on_source_list_open_requested(SourceList.OpenRequested(event.url))

        self.push_screen(OpenLinkScreen(event.url), chosen)

    def on_source_list_copy_requested(self, event: SourceList.CopyRequested) -> None:
        self.copy_to_clipboard(event.url)
        self.notify(f"Copied {one_line(event.url, 200)}", markup=False, timeout=3)

    def on_source_list_context_requested(self, event: SourceList.ContextRequested) -> None:
        answer = next((a for a in self.view.query(Answer) if a.sources == event.sources), None)
        query = answer.search_query if answer is not None else None
        self.push_screen(ContextScreen(event.sources, query, event.number))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.settings.keys))

    # ---- conversations ---------------------------------------------------------------------
    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display
        if sidebar.display:
            self._refresh_sidebar()
            self.query_one(ConversationList).focus()
        else:
            self.composer.focus()

    def _refresh_sidebar(self) -> None:
        try:
            summaries = self.store.list_conversations()
        except PhichatError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.query_one(ConversationList).show(summaries, self.conversation.id)

    async def action_new_conversation(self) -> None:
        await self._switch_to(Conversation())

    async def on_conversation_list_opened(self, event: ConversationList.Opened) -> None:
        if event.conversation_id == self.conversation.id:
            self.composer.focus()
            return
        try:
            conversation = self.store.load(event.conversation_id)
        except PhichatError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        await self._switch_to(conversation)

    async def _switch_to(self, conversation: Conversation) -> None:
        if self.runner.running:
            # The stopped answer is still saved to its own conversation by the session.
            self.runner.abandon()
            self.status_bar.show_turn("")
        self._turn = None
        self._pinned = None
        self._show_mode()
        self.composer.release()
        self.conversation = conversation
        await self.view.show_conversation(conversation)
        self.composer.remember([m.text for m in conversation.messages if m.role == "user"])
        self._refresh_sidebar()
        self.composer.focus()

    def _saved(self) -> bool:
        if not self.conversation.messages:
            self.notify("This conversation is empty: send a message first.")
            return False
        return True

    def action_rename_conversation(self) -> None:
        if not self._saved():
            return

        def rename(title: str | None) -> None:
            if not title:
                return
            try:
                self.store.rename(self.conversation.id, title)
            except PhichatError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.conversation.title = title
            self._refresh_sidebar()

        self.push_screen(RenameScreen(self.conversation.title), rename)

    def action_delete_conversation(self) -> None:
        if not self._saved():
            return
        doomed = self.conversation

        async def delete(confirmed: bool | None) -> None:
            if not confirmed:
                return
            if self.runner.running:
                self.runner.abandon()
            try:
                self.store.delete(doomed.id)
            except PhichatError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.notify(f"Deleted “{one_line(doomed.title, 60)}”.", markup=False)
            await self._switch_to(Conversation())

        question = f"Delete “{one_line(doomed.title or 'untitled', 60)}” for good?"
        self.push_screen(ConfirmScreen(question), delete)

    def action_export_conversation(self) -> None:
        if not self._saved():
            return
        conversation = self.conversation

        def export(path: Path | None) -> None:
            if path is not None:
                self.export_to(conversation, path)

        self.push_screen(ExportScreen(default_export_path(conversation)), export)

    def action_export_calendar(self) -> None:
        from phichat.features.export.calendar import latest_plan

        if not self._saved():
            return
        conversation = self.conversation
        if latest_plan(conversation) is None:
            self.notify(
                "No answer here reads as a day-by-day plan: ask with the itinerary preset (F12)."
            )
            return

        def export(path: Path | None) -> None:
            if path is not None:
                self.export_to(conversation, path)

        default = default_export_path(conversation).with_suffix(".ics")
        self.push_screen(ExportScreen(default, "Export the trip plan to a calendar (.ics)"), export)

    def export_to(self, conversation: Conversation, path: Path) -> Path | None:
        """Write Markdown, or the trip plan as iCalendar when the file name ends in .ics."""
        from phichat.features.export import render

        try:
            if path.is_dir():
                path = path / default_export_path(conversation).name
        except OSError as exc:
            self.notify(
                f"Could not use {path}: {exc.strerror or exc}", severity="error", markup=False
            )
            return None
        try:
            text = render(conversation, "ics" if path.suffix.lower() == ".ics" else "md")
        except PhichatError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return None
        try:
            path.write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            self.notify(
                f"Could not write {path}: {exc.strerror or exc}", severity="error", markup=False
            )
            return None
        self.notify(f"Exported to {path}", markup=False)
        return path

    # ---- command palette and quitting ------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for spec in KEYS:
            if spec.scope != "app" or spec.action in ("quit", "change_theme"):
                continue  # Textual's own palette already offers Quit and Theme
            yield SystemCommand(
                spec.description,
                f"Key: {key_label(self.settings.keys.get(spec.id, spec.key))}",
                lambda action=spec.action: self.run_action(action),
            )
        # The palette passes the screen it was opened over; only the chat screen has sources.
        answer = self.view.last_answer() if screen is self.screen_stack[0] else None
        for source in answer.sources if answer is not None else []:
            # The palette renders titles and help as markup: escape the page's own text.
            title = escape_markup(display_title(source))
            url = escape_markup(one_line(source.url, 200))
            yield SystemCommand(
                f"Open source {source.n}: {title}",
                url,
                lambda url=source.url: self.post_message(SourceList.OpenRequested(url)),
            )
            yield SystemCommand(
                f"Copy the URL of source {source.n}",
                url,
                lambda url=source.url: self.post_message(SourceList.CopyRequested(url)),
            )

    async def action_quit(self) -> None:
        # Ask a running turn to stop and give it a moment to save its partial answer;
        # the daemon threads never keep the process alive past that.
        self.runner.abandon()
        await asyncio.to_thread(self.runner.wait_for_saves, 1.0)
        self.exit(0)

    def on_unmount(self) -> None:
        self.store.close()

    # ---- preferences -----------------------------------------------------------------------
    def _read_preference(self, key: str) -> str | None:
        try:
            return self.store.get_preference(key)
        except PhichatError:
            return None

    def _write_preference(self, key: str, value: str) -> None:
        try:
            self.store.set_preference(key, value)
        except PhichatError as exc:
            self.notify(str(exc), severity="warning", markup=False)


@dataclass
class ActiveTurn:
    """What the app shows of the running turn (one answer, or a compare's two)."""

    turn_id: int = 0
    answer: Answer | None = None  # the answer a plain turn writes into
    compare: CompareView | None = None  # the compare a compare turn writes into
    asked: str | None = None  # the typed question, taken back if it was never recorded
    messages_before: int = 0  # conversation length when the turn started
    # The answers a regenerate or compare replaces; shown again if it fails.
    replaced: list[Message] = field(default_factory=list)

    def widget(self, side: Side | None) -> Answer | None:
        if side is None:
            return self.answer
        return self.compare.answer(side) if self.compare is not None else None


def trailing_answers(messages: list[Message]) -> list[Message]:
    """The answers after the last user message: what answering it again replaces."""
    asked = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    return messages[asked + 1 :]


def default_export_path(conversation: Conversation) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", conversation.title.lower()).strip("-")[:40] or "conversation"
    return Path.cwd() / f"phichat-{slug}-{conversation.id[:6]}.md"


def run_app(settings: Settings, conversation: Conversation | None = None) -> int:
    """Open the TUI (on ``conversation``, when given); returns the process exit status."""
    app = PhichatApp(settings, conversation=conversation)
    result = app.run()
    return int(result or 0)
