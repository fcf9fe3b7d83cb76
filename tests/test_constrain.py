"""answer=constrained on the transformers backend (harness.engine.constrain): a random model under
the constraint still only answers a label, or a JSON object of the suite's fields, on a left-padded
batch of prompts of different lengths; the grammar is compiled once; the schema servers get."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.core.suites import load_suite
from harness.core.types import Suite
from harness.engine.constrain import Constraint, compile_constraint, logits_processor
from harness.engine.prompting import build_messages, render_chat

SUITES = Path(__file__).resolve().parent.parent / "suites"


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM

    from harness.engine.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.eval()
    return load_tokenizer(str(tiny_model_dir)), model


def _decode(tok: Any, model: Any, suite: Suite, constraint: Constraint, max_new_tokens: int,
            n: int = 6) -> list[tuple[str, bool]]:
    """Greedy decoding of n test prompts in one left-padded batch: (text, ended with the end token)."""
    import torch

    prompts = [tok(render_chat(tok, build_messages(suite, ex.input)), add_special_tokens=False)["input_ids"]
               for ex in suite.test[:n]]
    assert len({len(p) for p in prompts}) > 1, "the batch must mix prompt lengths"
    end = tok.convert_tokens_to_ids("<|im_end|>")
    width = max(len(p) for p in prompts)
    ids = torch.full((n, width), tok.pad_token_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        attention[row, width - len(p):] = 1
    processors = logits_processor(constraint, tok, [end], n, max_new_tokens=max_new_tokens)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=[end], logits_processor=processors)
    results = []
    for row in out[:, width:].tolist():
        cut = row.index(end) if end in row else len(row)
        results.append((tok.decode(row[:cut], skip_special_tokens=True), end in row))
    return results


def test_a_random_model_only_answers_labels(tiny: tuple[Any, Any]) -> None:
    suite = load_suite(SUITES / "banking-intents")
    results = _decode(*tiny, suite, Constraint.choice(suite.labels), suite.generation.max_new_tokens)
    for text, ended in results:
        assert ended, f"{text!r} did not end with <|im_end|>"
        assert text.strip() in suite.labels


@pytest.mark.parametrize("max_new_tokens", [40, 14])
def test_a_random_model_only_answers_json_of_the_fields(tiny: tuple[Any, Any], max_new_tokens: int) -> None:
    """At 14 new tokens the random model's rambling values must be closed in time, not cut."""
    suite = load_suite(SUITES / "snips-slots")
    constraint = Constraint.json_object(suite.fields)
    for text, ended in _decode(*tiny, suite, constraint, max_new_tokens):
        assert ended, f"{text!r} did not end with <|im_end|>"
        answer = json.loads(text)
        assert isinstance(answer, dict) and set(answer) <= set(suite.fields)
        assert list(answer) == [f for f in suite.fields if f in answer]  # the fields' order, each once
        for value in answer.values():
            assert isinstance(value, str) and len(value) <= constraint.max_value_chars and "\n" not in value


def test_an_extraction_suite_without_fields_gets_any_keys_with_string_values(tiny: tuple[Any, Any]) -> None:
    suite = load_suite(SUITES / "snips-slots")
    constraint = Constraint.json_object([], max_value_chars=20)
    assert constraint.to_json_schema() == {"type": "object",
                                           "additionalProperties": {"type": "string", "maxLength": 20}}
    for text, ended in _decode(*tiny, suite, constraint, 16, n=4):
        answer = json.loads(text)
        assert ended and isinstance(answer, dict) and all(isinstance(v, str) for v in answer.values())


def test_the_grammar_is_compiled_once_per_constraint_and_tokenizer(tiny: tuple[Any, Any]) -> None:
    tok, _ = tiny
    first = compile_constraint(Constraint.choice(["yes", "no"]), tok, [2])
    assert compile_constraint(Constraint.choice(["yes", "no"]), tok, [2]) is first  # an equal constraint
    processors = [logits_processor(Constraint.choice(["yes", "no"]), tok, [2], 4)[0] for _ in range(2)]
    assert processors[0] is not processors[1] and all(p.compiled is first for p in processors)
    assert compile_constraint(Constraint.choice(["no", "yes"]), tok, [2]) is not first
    assert compile_constraint(Constraint.choice(["yes", "no"]), tok, [2, 0]) is not first


def test_the_json_schema_servers_get() -> None:
    assert Constraint.json_object(["city", "party_size_number"], max_value_chars=40).to_json_schema() == {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40},
                       "party_size_number": {"type": "string", "maxLength": 40}},
        "additionalProperties": False,
    }
    assert Constraint.choice(["age limit", "change pin"]).to_json_schema() == {
        "type": "string", "enum": ["age limit", "change pin"]}


def test_fingerprints_tell_constraints_apart() -> None:
    prints = [Constraint.choice(["a", "b"]).fingerprint(), Constraint.choice(["b", "a"]).fingerprint(),
              Constraint.json_object(["a", "b"]).fingerprint(),
              Constraint.json_object(["a", "b"], max_value_chars=10).fingerprint()]
    assert len({json.dumps(p, sort_keys=True) for p in prints}) == 4
    assert Constraint.choice(["a"]).fingerprint() == Constraint.choice(("a",)).fingerprint()


@pytest.mark.parametrize("make", [
    lambda: Constraint.choice([]),
    lambda: Constraint.json_object(["city", "city"]),
    lambda: Constraint.choice(["a", "a"]),
    lambda: Constraint.choice([" a"]),
    lambda: Constraint.choice([""]),
    lambda: Constraint(kind="regex", labels=("a",)),
])
def test_a_constraint_no_answer_can_meet_is_refused(make: Any) -> None:
    with pytest.raises(HarnessError, match="answer=constrained|constraint kind"):
        make()


def test_max_new_tokens_that_cannot_hold_a_label_is_refused(tiny: tuple[Any, Any]) -> None:
    with pytest.raises(HarnessError, match="max_new_tokens=2"):
        logits_processor(Constraint.choice(["transaction charged twice"]), tiny[0], [2], 1, max_new_tokens=2)
