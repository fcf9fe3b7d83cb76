"""How a suite becomes chat messages. One function, shared by every strategy.

`sft` trains on exactly `build_messages(suite, input)` (the zero-shot prompt), so the only
difference between `prompt` and `sft` is the weights; `rag` adds passages, few-shot adds turns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.types import Chat, Example, Suite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Passage:
    doc_id: str
    text: str
    title: str = ""


def target_text(example: Example) -> str:
    """The one string a model should produce for an example (first reference; JSON for fields)."""
    t = example.target
    if isinstance(t, str):
        return t
    if isinstance(t, tuple):
        return t[0]
    return json.dumps(t, ensure_ascii=False)


def system_prompt(suite: Suite) -> str:
    parts = [suite.instruction.strip()]
    if suite.task == "classification" and suite.labels:
        parts.append("Answer with exactly one label from this list: " + "; ".join(suite.labels) + ".")
    elif suite.task == "extraction":
        if suite.fields:
            parts.append("Possible fields: " + ", ".join(suite.fields) + ".")
        parts.append(
            "Answer with a JSON object only, mapping each field found in the text to its value; "
            "leave out fields that are absent."
        )
    return " ".join(p for p in parts if p)


def user_message(text: str, passages: Sequence[Passage] = ()) -> str:
    if not passages:
        return text
    context = "\n\n".join(
        f"[{i}] {p.title}\n{p.text}" if p.title else f"[{i}] {p.text}" for i, p in enumerate(passages, 1)
    )
    # Passages first, the question last and an explicit "use their words": a small model
    # (SmolLM2-135M) ignored passages placed after a vague "use these if they help" and wandered
    # off; with this layout token F1 on support-faq rose from 0.15 to 0.20 (README, demo section).
    return f"Passages:\n{context}\n\nQuestion: {text}\nAnswer the question using the passages' own words."


def build_messages(
    suite: Suite,
    text: str,
    *,
    shots: Sequence[Example] = (),
    passages: Sequence[Passage] = (),
    answer: str | None = None,
) -> Chat:
    """System instruction, optional worked examples as turns, then the input (with passages).

    `answer` appends the assistant turn: that is the training sequence for `sft`.
    """
    chat: Chat = [{"role": "system", "content": system_prompt(suite)}]
    for shot in shots:
        chat.append({"role": "user", "content": shot.input})
        chat.append({"role": "assistant", "content": target_text(shot)})
    chat.append({"role": "user", "content": user_message(text, passages)})
    if answer is not None:
        chat.append({"role": "assistant", "content": answer})
    return chat


# A base model (no chat template) reads the chat as plain text: the instruction, each shot as an
# "Input:"/"Answer:" pair, the input (with its passages), then "Answer:". Left alone it goes on to
# invent the next "Input:", so decoding stops there (PLAIN_STOPS); training appends the end token.
PLAIN_INPUT, PLAIN_ANSWER = "Input:", "Answer:"
PLAIN_STOPS = ("\n" + PLAIN_INPUT, "\n\n" + PLAIN_ANSWER)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_plain(tokenizer: Any, chat: Chat) -> str:
    """The plain-text prompt of a base model; begins with its BOS token where the model expects one
    (Gemma's output degrades badly without it) since prompts are tokenised without special tokens."""
    blocks: list[str] = []
    for message in chat:
        content = message["content"].strip()
        if message["role"] == "system":
            blocks.append(content)
        elif message["role"] == "user":
            blocks.append(f"{PLAIN_INPUT} {content}")
        elif blocks:  # an assistant turn (a shot's answer) follows its input
            blocks[-1] += f"\n{PLAIN_ANSWER} {content}"
    bos = tokenizer.bos_token if adds_bos(tokenizer) else ""
    return bos + "\n\n".join(b for b in blocks if b) + f"\n{PLAIN_ANSWER}"


def adds_bos(tokenizer: Any) -> bool:
    """Whether the model expects a BOS token first: its tokenizer says so (`add_bos_token`) or
    puts one there when it encodes text (transformers 5's Gemma tokenizer does the second while
    its `add_bos_token` reads False)."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if not getattr(tokenizer, "bos_token", None) or bos_id is None:
        return False
    if getattr(tokenizer, "add_bos_token", False):
        return True
    return list(tokenizer("a")["input_ids"][:1]) == [bos_id]


def render_chat(tokenizer: Any, chat: Chat) -> str:
    """The prompt text the model sees: its chat template with the generation prompt.

    Decoding and training both call this, so an adapter is trained on exactly the prompt it is
    later evaluated on. A base model without a template gets the plain-text format above.
    """
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return render_plain(tokenizer, chat)


_warned_prefix = False


def completion_text(tokenizer: Any, chat: Chat, answer: str, prompt_text: str) -> str:
    """What follows the prompt in the full chat: the answer, the end-of-turn marker, maybe more."""
    global _warned_prefix
    eos = tokenizer.eos_token or ""
    if not has_chat_template(tokenizer):  # the plain format's prompt ends with "Answer:"
        return " " + answer + eos
    full = tokenizer.apply_chat_template(
        [*chat, {"role": "assistant", "content": answer}], add_generation_prompt=False, tokenize=False
    )
    if full.startswith(prompt_text):
        return full[len(prompt_text) :]
    # Some templates rewrite earlier turns once an answer follows (e.g. drop reasoning blocks);
    # the decoder sees `prompt_text`, so train on that plus the answer and the end token.
    if not _warned_prefix:
        log.warning("chat template: the prompt is not a prefix of the full chat; training on prompt + answer + eos")
        _warned_prefix = True
    return answer + eos


def answer_ids(tokenizer: Any, chat: Chat, answer: str, end_ids: Sequence[int], prompt_text: str | None = None) -> list[int]:
    """The tokens of `answer` as the model's reply to `chat`, ending with one end token: what sft
    trains on after the prompt, and what answer=choice scores after it. Tokenised apart from the
    prompt, so the prompt's tokens are exactly the decoder's and the boundary is exact; cut after
    the first end token (trailing newlines after `<|im_end|>` are never generated)."""
    prompt_text = render_chat(tokenizer, chat) if prompt_text is None else prompt_text
    ids = list(tokenizer(completion_text(tokenizer, chat, answer, prompt_text), add_special_tokens=False)["input_ids"])
    ends = set(end_ids)
    cut = next((i for i, t in enumerate(ids) if t in ends), None)
    if cut is not None:
        return ids[: cut + 1]
    return [*ids, end_ids[0]] if end_ids else ids
