"""The README.md of an imported suite: where the data came from, the command that imported it,
what the importer decided (format, instruction, task, split) and what it left out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.importing.write import SuiteSpec


@dataclass(frozen=True)
class ImportRecord:
    """What the README tells about one import."""

    spec: SuiteSpec
    command: str
    sources: tuple[str, ...]  # files or dataset[split]
    decisions: tuple[str, ...]  # the summary lines the command printed, in order
    sizes: dict[str, int]
    instruction_note: str  # where the instruction came from


def _md(text: str) -> str:
    """A value inside a Markdown list: one line, backticks and pipes cannot break the layout."""
    return " ".join(text.split()).replace("`", "'")


def _code(command: str) -> str:
    fence = "````" if "```" in command else "```"
    return f"{fence}bash\n{command}\n{fence}"


def render_readme(r: ImportRecord) -> str:
    s = r.spec
    lines = [f"# {_md(s.name)}", "", _md(s.description), "",
             "Imported by `sft-harness import` with:", "", _code(r.command), "",
             "## Source and licence", ""]
    lines += [f"- `{_md(src)}`" for src in r.sources]
    lines += ["- Licence: not recorded by the importer. Say here under which licence the data may be used, "
              "and credit its authors where the licence asks for it.", "",
              "## Task", "",
              f"- task = `{s.task}`, metrics = {', '.join(f'`{m}`' for m in s.metrics)} (first = primary), "
              f"max_new_tokens = {s.max_new_tokens}.",
              f"- Instruction: \"{_md(s.instruction)}\" ({_md(r.instruction_note)})."]
    if s.labels:
        lines.append(f"- Labels ({len(s.labels)}): " + ", ".join(f'"{_md(label)}"' for label in s.labels) + ".")
    if s.fields:
        lines.append(f"- Fields ({len(s.fields)}): " + ", ".join(f"`{_md(f)}`" for f in s.fields) + ".")
    sizes = ", ".join(f"`{split}.jsonl` {n}" for split, n in r.sizes.items() if n and split != "corpus")
    lines.append(f"- Sizes: {sizes}" + (f"; `corpus.jsonl` {r.sizes['corpus']} passages." if r.sizes.get("corpus") else "."))
    lines += ["", "## How it was imported", "",
              "What the importer read, decided and left out (the lines `sft-harness import` printed):", ""]
    lines += [f"- {_md(d)}" for d in r.decisions]
    lines += ["", "Check the suite with `sft-harness validate` and edit `suite.toml` (the instruction above all) "
              "before relying on it.", ""]
    return "\n".join(lines)


def sources_of(given: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(ref if split == "all" else f"{split}: {ref}" for split, ref in given)
