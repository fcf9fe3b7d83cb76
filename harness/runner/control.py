"""Forgetting (`run --control SUITE[,SUITE]`): what each adapter costs on suites it was not trained for.

After the main comparison, every strategy whose Prepared has an adapter (sft, sft+rag, adapter)
is scored on each control suite with that suite's own zero-shot prompt (build_messages(suite,
input): no shots, no passages), paired against the same model without the adapter on the same
control examples. Both go through the run's decoding path (the strategy's backend, the adapter
applied with `Backend.adapter`), the prediction cache (a rerun decodes nothing) and the scoring
pass; the records land in the run folder's control_predictions.jsonl. Each adapter's perplexity on
held-out text of the control suite (test targets or inputs, corpus passages) is measured against
the base's through `Backend.score`, so it is the adapter's on every backend, and cached the same way. The scores go to results.json's `forgetting` (docs/results-schema.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core.cache import cache_root, fingerprint, sha256_file, write_json_atomic
from harness.core.predcache import PredictionCache
from harness.core.results import ControlInfo, ControlResult, Forgetting
from harness.core.runrecord import PredictionRecord, PredictionWriter
from harness.core.types import Example, Prompt, Suite
from harness.engine.backends.base import Backend
from harness.engine.modelset import ModelSet, share_key
from harness.engine.perplexity import MAX_TEXTS, MAX_TOKENS, Perplexity, perplexity
from harness.engine.prompting import build_messages, target_text
from harness.runner.decode import decode_strategy
from harness.runner.options import RunOptions
from harness.runner.plan import RunPlan
from harness.runner.scoring_pass import score_pass

CONTROL_FILE = "control_predictions.jsonl"
BASE = "base"  # the strategy name of the model without an adapter, in control_predictions.jsonl


@dataclass(frozen=True)
class Adapted:
    """A strategy of the run that decodes with an adapter: what the forgetting check scores."""

    strategy: str
    adapter: Path


def control_examples(opts: RunOptions, control: Suite) -> list[Example]:
    """The control examples scored: the run's --limit, else control_limit."""
    return list(control.test[: opts.limit or opts.control_limit])


def held_out_texts(control: Suite) -> list[str]:
    """Text the adapter never trained on: test targets where they are text (qa, generation), the
    test inputs where targets are labels or fields, and corpus passages; at most MAX_TEXTS, half
    of them passages when there are enough."""
    tests = [target_text(e) if control.task in ("qa", "generation") else e.input for e in control.test]
    passages = [d.text for d in control.corpus][: MAX_TEXTS // 2]
    return [t for t in tests[: MAX_TEXTS - len(passages)] + passages if t.strip()]


class ZeroShot:
    """What decode_strategy decodes on a control suite: its own zero-shot prompt, nothing added."""

    def __init__(self, name: str, suite: Suite) -> None:
        self.name = name
        self.suite = suite

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        return [Prompt(build_messages(self.suite, e.input)) for e in examples]


def adapter_identity(adapter: Path | None) -> Any:
    """The adapter's weights (sha256 of its safetensors), as decode.prediction_identity keys them."""
    if adapter is None:
        return None
    return [sha256_file(w) for w in sorted(Path(adapter).glob("*.safetensors"))] or str(adapter)


class ControlRun:
    """One run's forgetting check: decodes and measures each (model, adapter or none, control)
    once, through the prediction cache and a perplexity cache."""

    def __init__(self, run_dir: Path, console: Console) -> None:
        self.run_dir, self.console = run_dir, console
        (Path(run_dir) / CONTROL_FILE).write_bytes(b"")  # a run folder is never shared: it starts empty

    def predictions(self, backend: Backend, adapter: Path | None, name: str, control: Suite,
                    examples: list[Example]) -> list[PredictionRecord]:
        identity = {"control": "zero-shot", "adapter": adapter_identity(adapter),
                    "model": backend.identity(), "decoding": control.generation.fingerprint()}
        cache = PredictionCache(cache_root(), identity)
        writer = PredictionWriter(self.run_dir, CONTROL_FILE, extra={"control": control.name,
                                                                     "model": backend.record().get("id")}, fresh=False)
        decoded = decode_strategy(ZeroShot(name, control), control, examples, backend, cache,
                                  None, self.console, adapter)  # cached; the records keep them
        return score_pass(control, examples, decoded, writer)

    def perplexity(self, backend: Backend, adapter: Path | None, texts: list[str]) -> Perplexity:
        if not texts:  # nothing held out: no weights to load for it
            return Perplexity(0.0, 0, 0)
        identity = {"perplexity": 1, "adapter": adapter_identity(adapter), "model": backend.identity(),
                    "texts": fingerprint(texts), "max_tokens": MAX_TOKENS}
        path = cache_root() / "perplexity" / f"{fingerprint(identity)}.json"
        if path.is_file():
            try:
                d = json.loads(path.read_text())
                return Perplexity(float(d["nll_sum"]), int(d["tokens"]), int(d["texts"]))
            except (ValueError, KeyError, TypeError):
                pass  # a damaged entry: measure again
        with backend.adapter(adapter):
            measured = perplexity(backend, texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"nll_sum": measured.nll_sum, "tokens": measured.tokens, "texts": measured.texts})
        return measured


def run_controls(plan: RunPlan, adapted: Sequence[Adapted], models: ModelSet, run_dir: Path,
                 console: Console) -> Forgetting:
    """results.json's `forgetting`: every adapter strategy on every control suite, against its base."""
    from harness.scoring.forgetting import ALPHA, control_metrics, perplexity_change

    opts = plan.opts
    runner = ControlRun(run_dir, console)
    per_strategy: dict[str, dict[str, ControlResult]] = {a.strategy: {} for a in adapted}
    controls = []
    bases = {share_key(models.specs[a.strategy]): a.strategy for a in adapted}  # one base per model
    for control in plan.controls:
        examples, texts = control_examples(opts, control), held_out_texts(control)
        controls.append(ControlInfo(control.name, control.task, control.sha256, str(control.path),
                                    list(control.metrics), control.primary_metric, len(examples)))
        for key, first in bases.items():
            backend = models.of(first)
            base = runner.predictions(backend, None, BASE, control, examples)
            base_ppl = runner.perplexity(backend, None, texts)
            for a in (a for a in adapted if share_key(models.specs[a.strategy]) == key):
                preds = runner.predictions(backend, a.adapter, a.strategy, control, examples)
                ppl = runner.perplexity(backend, a.adapter, texts)
                entry = ControlResult(len(examples), str(backend.record().get("id")),
                                      control_metrics(control, examples, base, preds, seed=opts.seed),
                                      perplexity_change(base_ppl.nll_sum, base_ppl.tokens, ppl.nll_sum, ppl.tokens,
                                                        ppl.texts))
                per_strategy[a.strategy][control.name] = entry
                _say(console, a.strategy, control, entry)
    if not adapted:
        console.print("[yellow]forgetting:[/] no strategy of this run decodes with an adapter: nothing to control")
    return Forgetting(controls, opts.limit or opts.control_limit, ALPHA, per_strategy)


def _say(console: Console, strategy: str, control: Suite, entry: ControlResult) -> None:
    from harness.scoring.fmt import fmt_metric, fmt_num, fmt_signed

    m = control.primary_metric
    row, ppl = entry.metrics.get(m), entry.perplexity
    console.print(f"forgetting: {escape(strategy)} on {escape(control.name)}: {m} "
                  f"{fmt_metric(m, row.base if row else None)} -> {fmt_metric(m, row.adapter if row else None)} "
                  f"({fmt_signed(m, row.diff if row else None)}), perplexity {fmt_num(ppl.base)} -> "
                  f"{fmt_num(ppl.adapter)}", highlight=False)
