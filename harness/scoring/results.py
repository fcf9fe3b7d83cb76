"""The scored parts of results.json (suite, strategies, comparisons, recommendation) from a run's
prediction records; `harness.runner` adds the run-level fields (model, device, versions, ...).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from harness.core.runrecord import PredictionRecord
from harness.core.types import Example, Suite
from harness.scoring.clean import clean_subset
from harness.scoring.compare import compare_strategies, cost_summary, recommend, score_strategy
from harness.scoring.economics import economics
from harness.scoring.records import score_sum
from harness.scoring.seeds import clean_seeded, score_seeded, seed_advice, seeded_comparisons


def score_results(
    suite: Suite,
    examples: Sequence[Example],
    predictions: Mapping[str, Sequence[PredictionRecord]],
    sections: Mapping[str, Mapping[str, Any]],
    *,
    seed: int,
    slice_by: Sequence[str] = (),
    usd_per_hour: float | None = None,
    monthly_requests: float | None = None,
    n_resamples: int = 1000,
    leaked_ids: Collection[str] = (),
    token_prices: Mapping[str, tuple[float, float]] | None = None,
    seed_records: Mapping[str, Mapping[int, Sequence[PredictionRecord]]] | None = None,
) -> dict[str, Any]:
    """`sections[s]`: what strategy `s` reports besides its scores (name, kind, params, retrieval,
    training, ...), with the seconds its `prepare_s` took; they land in its results entry.
    `leaked_ids`: test examples that leak (harness.engine.leakage): each strategy also gets its
    metrics on the other examples (`clean_metrics`, `n_clean`) when some scored example is among them.
    `seed_records[s]`: a strategy trained once per seed (`sft:seeds=3`), training seed -> its records
    (the first seed's are `predictions[s]`): scored over seeds by harness.scoring.seeds; its cost
    figures are the first seed's."""
    seeded = seed_records or {}
    strategies: dict[str, Any] = {}
    for name, records in predictions.items():
        info = dict(sections[name])
        prepare_s = float(info.pop("prepare_s"))
        scored = (score_seeded(suite, examples, seeded[name], seed=seed, slice_by=slice_by, n_resamples=n_resamples)
                  if name in seeded else
                  score_strategy(suite, examples, records, seed=seed, slice_by=slice_by, n_resamples=n_resamples))
        cost = cost_summary(
            records,
            prepare_s=prepare_s,
            predict_s=sum(r.latency_s for r in records),
            training_tokens=int((info.get("training") or {}).get("train_tokens") or 0),
            usd_per_hour=usd_per_hour,
            token_prices=(token_prices or {}).get(name),  # API models: priced by their tokens
            # Partial credit where answers can be partly right: exact matches of free text are rare.
            n_correct=score_sum(suite.task, examples, records),
        )
        clean = (clean_seeded(suite, examples, seeded[name], leaked_ids, seed=seed, n_resamples=n_resamples)
                 if name in seeded else clean_subset(suite, examples, records, leaked_ids, seed=seed, n_resamples=n_resamples))
        strategies[name] = {**info, **scored, **clean, "cost": cost}
    comparisons = compare_strategies(suite, examples, predictions, seed=seed, n_resamples=n_resamples)
    if seeded:  # pairs with a multi-seed strategy: tested again resampling seeds too
        runs = {name: seeded.get(name) or {0: records} for name, records in predictions.items()}
        comparisons = seeded_comparisons(suite, examples, comparisons, runs, strategies, seed=seed, n_resamples=n_resamples)
    advice = seed_advice(recommend(strategies, comparisons, suite.primary_metric, suite.metrics), comparisons)
    money = economics(strategies, monthly_requests=monthly_requests, usd_per_hour=usd_per_hour)
    return {
        "suite": {"name": suite.name, "task": suite.task, "sha256": suite.sha256, "path": str(suite.path),
                  "sizes": {**suite.sizes(), "scored": len(examples)}, "labels": list(suite.labels),
                  "fields": list(suite.fields), "metrics": list(suite.metrics),
                  "primary_metric": suite.primary_metric, "instruction": suite.instruction},
        "strategies": strategies,
        "comparisons": comparisons,
        "recommendation": advice,
        "economics": money,
    }
