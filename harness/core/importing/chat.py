"""Chat and instruction layouts -> Drafts: OpenAI fine-tuning lines, ShareGPT, Alpaca.

The last assistant message is the target; the turns before it are the input (a lone user message
as it is, more turns as a transcript "User: ...\\nAssistant: ..."). A leading system message (an
Alpaca instruction) is the row's candidate for the suite's instruction: once every row is read,
the one most rows share becomes it, and a row with another keeps its own in its input.
"""

from __future__ import annotations

from typing import Any

from harness.core.importing.convert import Bad, Columns, cell_target, cell_text, meta_and_id
from harness.core.importing.rows import Draft, Record
from harness.core.suites.problems import _json_type, _show

ROLES = {"system": "system", "developer": "system", "user": "user", "human": "user", "assistant": "assistant",
         "gpt": "assistant", "model": "assistant", "bot": "assistant", "chatgpt": "assistant", "tool": "tool",
         "function": "tool", "ipython": "tool", "observation": "tool"}
SPEAKER = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def render(turns: list[tuple[str, str]]) -> str:
    """A lone user message as it is; anything more as a transcript, one speaker per line."""
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n".join(f"{SPEAKER[role]}: {text}" for role, text in turns)


def _content(value: Any, n: int) -> str | Bad:
    """A message's text: a string, or OpenAI's list of parts (text parts only)."""
    if value is None:  # an assistant turn that only calls tools
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        texts = []
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                return Bad(f"message {n} has a part that is not text ({_show(kind or _json_type(part))})")
            texts.append(part["text"])
        return "".join(texts).strip()
    return Bad(f"message {n}: content must be text, got {_json_type(value)}")


def _turns(messages: Any, key: str, role_key: str, text_key: str) -> list[tuple[str, str]] | Bad:
    if not isinstance(messages, list):
        return Bad(f"'{key}' must be a list of messages, got {_json_type(messages)}")
    turns = []
    for n, m in enumerate(messages, 1):
        if not isinstance(m, dict):
            return Bad(f"message {n} must be an object, got {_json_type(m)}")
        # Both spellings are common in both layouts (role/content, from/value).
        role = m.get(role_key, m.get("role" if role_key == "from" else "from"))
        if not isinstance(role, str) or role.casefold() not in ROLES:
            return Bad(f"message {n}: unknown role {_show(role)!r}; known: {', '.join(sorted(set(ROLES)))}")
        text = _content(m.get(text_key, m.get("content" if text_key == "value" else "value")), n)
        if isinstance(text, Bad):
            return text
        turns.append((ROLES[role.casefold()], text))
    return turns


def _from_turns(record: Record, columns: Columns, turns: list[tuple[str, str]], system: str | None) -> Draft | Bad:
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None:
        return Bad("no assistant message: the last one is the target")
    if not turns[last][1]:
        return Bad("the last assistant message is empty")
    before = [t for t in turns[:last] if t[1]]
    if before and before[0][0] == "system":
        system = before[0][1]
        before = before[1:]
    if not any(role == "user" for role, _ in before):
        return Bad("no user message before the last assistant message")
    rest = meta_and_id(record.value, columns)
    if isinstance(rest, Bad):
        return rest
    with_system = render([("system", system), *before]) if system else render(before)
    return Draft(record.where, record.number, render(before), turns[last][1], rest[0], rest[1],
                 instruction=system or None, with_instruction=with_system)


def from_openai(record: Record, columns: Columns) -> Draft | Bad:
    if "messages" not in record.value:
        return Bad("missing 'messages'")
    turns = _turns(record.value["messages"], "messages", "role", "content")
    return turns if isinstance(turns, Bad) else _from_turns(record, columns, turns, None)


def from_sharegpt(record: Record, columns: Columns) -> Draft | Bad:
    obj = record.value
    if "conversations" not in obj:
        return Bad("missing 'conversations'")
    turns = _turns(obj["conversations"], "conversations", "from", "value")
    system = obj.get("system") if isinstance(obj.get("system"), str) else None  # a top-level system prompt
    return turns if isinstance(turns, Bad) else _from_turns(record, columns, turns, (system or "").strip() or None)


def from_alpaca(record: Record, columns: Columns) -> Draft | Bad:
    """instruction + input -> output. A row without `input` is its instruction alone: that is then
    its input, and it is no candidate for the suite's instruction."""
    obj = record.value
    missing = [k for k in ("instruction", "output") if k not in obj]
    if missing:
        return Bad(f"missing {' and '.join(repr(k) for k in missing)}")
    instruction = cell_text(obj["instruction"], "'instruction'")
    body = cell_text(obj.get("input"), "'input'")
    for value in (instruction, body):
        if isinstance(value, Bad):
            return value
    assert not isinstance(instruction, Bad) and not isinstance(body, Bad)
    if not instruction and not body:
        return Bad("empty input: 'instruction' and 'input' are both empty")
    target = cell_target(obj["output"])
    if isinstance(target, Bad):
        return target
    rest = meta_and_id(obj, columns)
    if isinstance(rest, Bad):
        return rest
    if not body:
        return Draft(record.where, record.number, str(instruction), target, rest[0], rest[1])
    joined = f"{instruction}\n\n{body}" if instruction else body
    return Draft(record.where, record.number, body, target, rest[0], rest[1],
                 instruction=instruction, with_instruction=joined)


CONVERTERS = {"openai": from_openai, "sharegpt": from_sharegpt, "alpaca": from_alpaca}
