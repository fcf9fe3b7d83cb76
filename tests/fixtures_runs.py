"""Small but realistic run folders (results.json + predictions.jsonl) for the report, gate and
history tests.

They are written through the runner's own code: records are scored by the scoring pass's
`harness.scoring.records.make_records` and appended to predictions.jsonl by the run's
`PredictionWriter`, and results.json is scored by `harness.scoring.results.score_results` and
written by `harness.core.runrecord.write_results`; only the decoding and the answer extraction are
replaced by answers given here.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.results import SCHEMA, Decoding, ModelRecord, RunResults, Scored, StrategyResult, from_json
from harness.core.runrecord import Output, PredictionRecord, PredictionWriter, write_results
from harness.core.types import Example, GenerationConfig, Suite
from harness.scoring.records import make_records
from harness.scoring.results import score_results
from harness.scoring.rows import bind_metrics

PAYLOADS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</textarea>")
LABELS = ("billing", "bug", "account")


def make_suite(
    examples: Sequence[Example],
    *,
    name: str = "ticket-triage",
    task: str = "classification",
    labels: Sequence[str] = LABELS,
    metrics_: Sequence[str] = ("accuracy", "f1"),
    sha256: str = "a" * 64,
) -> Suite:
    return Suite(
        name=name, task=task, instruction="Route the ticket.", labels=tuple(labels), metrics=tuple(metrics_),
        generation=GenerationConfig(max_new_tokens=16), train=(), test=tuple(examples), sha256=sha256,
        path=Path("suites") / name,
    )


def _outputs(name: str, s_i: int, examples: Sequence[Example], answers: Sequence[Any], outputs: Sequence[str] | None,
             errors: dict[int, str], retrieved: bool) -> tuple[list[Output], list[Any]]:
    """Strategy number `s_i` answered `answers[i]` on `examples[i]`, with made-up cost figures."""
    outs, given = [], []
    for i, (example, answer) in enumerate(zip(examples, answers, strict=False)):  # short = interrupted
        text = outputs[i] if outputs is not None else None
        err = errors.get(i)
        outs.append(Output(
            strategy=name, example_id=example.id,
            output=text if text is not None else ("" if answer is None else json.dumps(answer) if isinstance(answer, dict) else str(answer)),
            latency_s=0.05 + 0.01 * s_i + 0.001 * (i % 7), prompt_tokens=40 + 20 * s_i + i % 5, output_tokens=3 + i % 3,
            retrieved=("doc-1", "doc-2") if retrieved else (), error=err,
        ))
        given.append(None if err else answer)
    return outs, given


@dataclass(frozen=True)
class Answered:
    """A decoded output whose answer the test gives (instead of the scoring pass extracting it)."""

    strategy: str
    example_id: str
    output: str
    answer: Any
    latency_s: float
    prompt_tokens: int
    output_tokens: int
    retrieved: tuple[str, ...] = ()
    error: str | None = None


def records_of(suite: Suite, examples: Sequence[Example], answered: Sequence[Answered]) -> list[PredictionRecord]:
    """The scored records of `answered` (each names its example), as the scoring pass makes them."""
    by_id = {e.id: e for e in examples}
    outs = [Output(a.strategy, a.example_id, a.output, a.latency_s, a.prompt_tokens, a.output_tokens, a.retrieved,
                   a.error) for a in answered]
    return make_records(suite.task, bind_metrics(suite), outs, [a.answer for a in answered],
                        [by_id[a.example_id] for a in answered])


def recorded(suite: Suite, name: str, answers: Sequence[Any], *, outputs: Sequence[str] | None = None,
             errors: dict[int, str] | None = None, examples: Sequence[Example] | None = None,
             s_i: int = 0) -> list[PredictionRecord]:
    """Scored records of strategy `name` answering `answers[i]` on `examples[i]` (the suite's test
    split by default): what the scoring pass makes of outputs whose answers these are."""
    examples = list(suite.test if examples is None else examples)
    outs, given = _outputs(name, s_i, examples, answers, outputs, errors or {}, False)
    return make_records(suite.task, bind_metrics(suite), outs, given, examples[: len(outs)])


def write_run(
    run_dir: Path,
    suite: Suite,
    answers: dict[str, Sequence[Any]],
    *,
    outputs: dict[str, Sequence[str]] | None = None,
    errors: dict[str, dict[int, str]] | None = None,
    run_id: str | None = None,
    created: str = "2026-11-22T10:15:00+00:00",
    model: str = "smollm2-135m-instruct",
    slice_by: Sequence[str] = (),
    extras: dict[str, dict[str, Any]] | None = None,
    usd_per_hour: float | None = None,
    n_resamples: int = 200,
) -> Path:
    """Write a run folder where strategy `s` answered `answers[s][i]` on `suite.test[i]`.

    `answers[s]` may be shorter than the test split: the remaining examples get no prediction
    (an interrupted strategy). `extras[s]` may set "training" / "retrieval" blocks.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    examples = list(suite.test)
    outputs, errors, extras = outputs or {}, errors or {}, extras or {}
    writer, bindings = PredictionWriter(run_dir), bind_metrics(suite)
    records: dict[str, list[PredictionRecord]] = {}
    sections: dict[str, dict[str, Any]] = {}
    for s_i, (name, ans) in enumerate(answers.items()):
        extra = extras.get(name, {})
        outs, given = _outputs(name, s_i, examples, ans, outputs.get(name), errors.get(name, {}), "retrieval" in extra)
        records[name] = make_records(suite.task, bindings, outs, given, examples[: len(outs)])
        writer.write(records[name])
        sections[name] = {"name": name, "kind": name.split(":")[0], "params": {"k": s_i}, "prepare_s": 12.0 * s_i,
                          "retrieval": extra.get("retrieval"), "training": extra.get("training")}
    scored = score_results(suite, examples, records, sections, seed=0, slice_by=slice_by, usd_per_hour=usd_per_hour,
                           n_resamples=n_resamples)
    results = run_results(
        scored, run_id=run_id or run_dir.name, created=created,
        model=ModelRecord(name=model, resolved="/models/x", sha256="b" * 64, embedder="all-minilm-l6-v2",
                          dtype="float32", device="cpu"),
        decoding=Decoding(16, [], "greedy", 8), seed=0, limit=None, versions={"sft-harness": "0.1.0", "python": "3.11.7"},
        device={"type": "cpu", "name": "test cpu", "threads": 2},
    )
    write_results(run_dir, results)
    return run_dir


# --------------------------------------------------------------------------- ready-made runs


def triage_examples(n: int = 60, labels: Sequence[str] = LABELS) -> list[Example]:
    channels = ("email", "chat", "phone")
    return [
        Example(id=f"t{i:03d}", input=f"Ticket {i}: customer writes about issue #{i}.", target=labels[i % len(labels)],
                meta={"channel": channels[i % 3]})
        for i in range(n)
    ]


def answers_with_accuracy(examples: Sequence[Example], accuracy: float, *, seed: int, labels: Sequence[str] = LABELS,
                          wrong_first: Sequence[int] = ()) -> list[str]:
    """Labels that are right on round(accuracy * n) examples chosen by `seed`, wrong elsewhere.

    `wrong_first`: examples forced wrong (so a test can control which examples two runs share)."""
    n = len(examples)
    order = [i for i in random.Random(seed).sample(range(n), n) if i not in set(wrong_first)]
    right = set(order[: round(accuracy * n)])
    out = []
    for i, e in enumerate(examples):
        gold = str(e.target)
        out.append(gold if i in right else labels[(labels.index(gold) + 1) % len(labels)])
    return out


def triage_run(run_dir: Path, accuracies: dict[str, float], *, n: int = 60, sha256: str = "a" * 64,
               run_id: str | None = None, created: str = "2026-11-22T10:15:00+00:00", seed: int = 0) -> Path:
    examples = triage_examples(n)
    suite = make_suite(examples, sha256=sha256)
    answers = {name: answers_with_accuracy(examples, acc, seed=seed + k) for k, (name, acc) in enumerate(accuracies.items())}
    return write_run(run_dir, suite, answers, run_id=run_id, created=created, slice_by=("channel",))


def qa_run(run_dir: Path) -> Path:
    """A qa run with f1/bleu/rouge_l, a retrieval strategy, a trained one and an error."""
    facts = [("When is the office open?", "From 9 to 5 on weekdays."),
             ("How do I reset my password?", "Use the reset link on the login page."),
             ("Where do I send invoices?", "Send them to the billing address."),
             ("Can I get a refund?", "Yes, within 30 days of purchase.")]
    examples = [Example(id=f"q{i}", input=facts[i % 4][0] + f" ({i})", target=(facts[i % 4][1], "See the FAQ."),
                        meta={"source": "faq" if i % 2 else "forum"}) for i in range(24)]
    suite = make_suite(examples, name="support-faq", task="qa", labels=(), metrics_=("f1", "bleu", "rouge_l"))
    gold = [e.target[0] for e in examples]
    answers = {
        "prompt": [g if i % 3 == 0 else "I am not sure, please contact support." for i, g in enumerate(gold)],
        "rag": [g if i % 4 else " ".join(g.split()[:3]) for i, g in enumerate(gold)],  # partly right
        "sft": [g if i % 2 == 0 else g.replace("the", "a") for i, g in enumerate(gold)],
    }
    extras = {
        "rag": {"retrieval": {"k": 3, "recall_at_k": 0.875, "index": "flat"}},
        "sft": {"training": {"loss_curve": [[s, 2.5 / (1 + 0.1 * s)] for s in range(0, 60, 5)],
                             "val_loss": [[1, 1.2], [2, 0.9]], "tokens_per_s": 812.0, "padding_share": 0.02,
                             "train_tokens": 21000, "adapter_path": "adapters/sft", "epochs": 2}},
    }
    return write_run(run_dir, suite, answers, errors={"prompt": {5: "CUDA out of memory"}}, slice_by=("source",),
                     extras=extras, usd_per_hour=2.5)


def payload_run(run_dir: Path) -> Path:
    """Every string a suite or a model controls carries an HTML/JS payload."""
    p0, p1, p2 = PAYLOADS
    labels = (p0, p1, p2)
    examples = [
        Example(id=f"x{i}{p1 if i == 0 else ''}", input=f"{PAYLOADS[i % 3]} input {i}", target=labels[i % 3],
                meta={f"src{p0}": PAYLOADS[(i + 1) % 3], "plain": "ok"})
        for i in range(12)
    ]
    suite = make_suite(examples, name=f"suite{p0}", labels=labels, sha256="c" * 64)
    gold = [str(e.target) for e in examples]
    answers = {
        f"sft{p1}": gold,
        f"prompt{p2}": [g if i % 2 else labels[(labels.index(g) + 1) % 3] for i, g in enumerate(gold)],
    }
    outputs = {f"prompt{p2}": [f"{PAYLOADS[i % 3]} says {gold[i]}" for i in range(len(gold))]}
    return write_run(run_dir, suite, answers, outputs=outputs, model=f"model{p1}", slice_by=(f"src{p0}",),
                     errors={f"prompt{p2}": {3: f"failed {p0}"}},
                     extras={f"sft{p1}": {"training": {"loss_curve": [[0, 2.0], [10, 1.0]], "epochs": 1}}})


def run_results(scored: Scored, **fields: Any) -> RunResults:
    """A RunResults around the scored parts (the run-level fields: neutral defaults unless given)."""
    return RunResults(**{"schema": SCHEMA, "run_id": "r", "created": "", "suite": scored.suite,
                         "strategies": scored.strategies, "comparisons": scored.comparisons,
                         "recommendation": scored.recommendation, "economics": scored.economics, **fields})


def strategy_results(entries: dict[str, dict[str, Any]]) -> dict[str, StrategyResult]:
    """StrategyResults from the parts of their JSON a test cares about (the rest: neutral defaults)."""
    base = {"kind": "prompt", "params": {}, "n": 0, "metrics": {}, "invalid_rate": 0.0, "errors": 0,
            "cost": {"prepare_s": 0.0, "predict_s": 0.0}}
    return {name: from_json(StrategyResult, {**base, "name": name, **d}) for name, d in entries.items()}
