"""Print the settings reference as a Markdown table (pasted into README.md; a test checks it)."""

from __future__ import annotations

from phichat.config import ENV_PREFIX, setting_docs


def settings_table() -> str:
    lines = [
        "| setting | environment variable | default | allowed | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, default, allowed, doc in setting_docs():
        variable = "—" if name == "keys" else f"`{ENV_PREFIX}{name.upper()}`"
        lines.append(f"| `{name}` | {variable} | `{default}` | {allowed} | {doc} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
