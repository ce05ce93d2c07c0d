"""First run on a CPU: the app says once what an answer costs and how to go faster."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Static
from ui_support import make_app, send, settle

from phichat.models.scripted import ScriptedModel
from phichat.storage.conversations import ConversationStore
from phichat.ui.widgets.cpu_notice import SPEED_PREFERENCE, CpuNotice

SIZE = (120, 40)


class CpuModel(ScriptedModel):
    """The scripted model, reporting itself as Phi-3 on a CPU in bfloat16."""

    def describe(self) -> dict[str, str]:
        return {"model": "phi-3", "device": "cpu", "dtype": "bfloat16"}


def notice_text(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.query_one("#cpu-notice-text", Static).render())


async def test_the_cpu_notice_shows_until_dismissed_and_then_never(tmp_path: Path) -> None:
    app = make_app(tmp_path, model=CpuModel(["hi"]), max_new_tokens=512)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        text = " ".join(notice_text(app).split())
        assert (
            "about 2.0 tokens/s in bfloat16 on the 2-core CPU of the README's benchmark, so a "
            "512-token answer can take 4 min"
        ) in text
        assert "phichat download --gguf && phichat --backend gguf" in text
        await pilot.click("#cpu-notice-dismiss")
        await settle(pilot, app)
        assert not app.query(CpuNotice)

    again = make_app(tmp_path, model=CpuModel(["hi"]))
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot, again)
        assert not again.query(CpuNotice)


async def test_the_notice_uses_the_speed_measured_on_this_machine(tmp_path: Path) -> None:
    app = make_app(tmp_path, model=CpuModel(["one two three four five six seven eight nine ten"]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.query(CpuNotice)  # not dismissed: it stays for this run
        await send(pilot, app, "count to ten")
        measured = app.conversation.messages[-1].timings["tokens_per_s"]
        assert measured > 0
    with ConversationStore(tmp_path / "phichat.db") as store:
        assert store.get_preference(SPEED_PREFERENCE) == f"{measured:.2f}"

    again = make_app(tmp_path, model=CpuModel(["hi"]))
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot, again)
        text = " ".join(notice_text(again).split())
        assert (
            f"about {float(f'{measured:.2f}'):.1f} tokens/s on this CPU (measured on your" in text
        )


async def test_no_notice_off_the_cpu(tmp_path: Path) -> None:
    app = make_app(tmp_path, model=ScriptedModel(["hi"]))  # device "none"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert not app.query(CpuNotice)
        assert not app.query(Button).filter("#cpu-notice-dismiss")
