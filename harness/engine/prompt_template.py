"""A strategy's prompt as a Jinja template a serving stack can render: the chat messages that
`harness.engine.prompting.build_messages` makes, written out so that nothing of ours is needed
to rebuild them.

The template renders a JSON list of messages from `input` (the user's text) and `passages` (a
list of {"title", "text"}, already retrieved and cut to the budget); the system text and fixed
shots are written into it, shots chosen per input (`select=knn`) are passed as `shots` (a list of
{"input", "answer"}). `render_messages` is what a caller does with it, and what the tests check
against build_messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harness.core.types import Chat

TEMPLATE_FORMAT = "sft-harness/prompt/v1"


def _literal(value: Any) -> str:
    """A value as a Jinja literal. JSON without ASCII escapes is one: Jinja reads its string escapes
    (\\n, \\", \\\\, \\uXXXX of control characters) as Python does, and a character outside ASCII
    stays itself (an ASCII escape would split one outside the BMP into two surrogates)."""
    return json.dumps(value, ensure_ascii=False)


def chat_template(system: str, shots: Sequence[tuple[str, str]] | None, *, passages: bool) -> str:
    """The Jinja source. `shots`: the fixed (input, answer) pairs, or None when the caller passes
    them per input; `passages`: whether the strategy puts retrieved passages before the question."""
    fixed = [{"input": i, "answer": a} for i, a in shots] if shots is not None else None
    lines = [
        "{#- " + TEMPLATE_FORMAT + ": renders the chat messages as a JSON list (json.loads the result).",
        "    input: the user's text" + ("; passages: [{title, text}, ...] retrieved for it and cut to the budget"
                                        if passages else "")
        + ("; shots: [{input, answer}, ...] chosen for it" if fixed is None else "") + ". -#}",
        "{%- set system = " + _literal(system) + " -%}",
    ]
    if fixed is not None:
        lines.append("{%- set shots = " + _literal(fixed) + " -%}")
    lines += [
        "{%- set user = input -%}",
    ]
    if passages:
        # harness.engine.prompting.user_message: passages numbered from 1, the question last.
        lines += [
            "{%- if passages -%}",
            "{%- set ns = namespace(context='') -%}",
            "{%- for p in passages -%}",
            "{%- set block = '[' ~ loop.index ~ '] ' ~ ((p.title ~ '\\n') if p.get('title') else '') ~ p.text -%}",
            "{%- set ns.context = ns.context ~ ('\\n\\n' if not loop.first else '') ~ block -%}",
            "{%- endfor -%}",
            "{%- set user = 'Passages:\\n' ~ ns.context ~ '\\n\\nQuestion: ' ~ input"
            " ~ \"\\nAnswer the question using the passages' own words.\" -%}",
            "{%- endif -%}",
        ]
    lines += [
        '[{"role": "system", "content": {{ system | tojson }}}',
        "{%- for shot in (shots if shots is defined else []) -%}",
        ', {"role": "user", "content": {{ shot.input | tojson }}}, '
        '{"role": "assistant", "content": {{ shot.answer | tojson }}}',
        "{%- endfor -%}",
        ', {"role": "user", "content": {{ user | tojson }}}]',
    ]
    return "\n".join(lines) + "\n"


def render_messages(source: str, text: str, passages: Sequence[dict[str, str]] = (),
                    shots: Sequence[dict[str, str]] | None = None) -> Chat:
    """The chat messages `source` renders for one input (what a serving stack would do)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
    variables: dict[str, Any] = {"input": text, "passages": list(passages)}
    if shots is not None:
        variables["shots"] = list(shots)
    rendered = env.from_string(source).render(**variables)
    messages: Chat = json.loads(rendered)
    return messages
