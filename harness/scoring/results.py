"""The scored parts of results.json (suite, strategies, comparisons, recommendation, economics)
from a run's prediction records, as typed records (harness.core.results); `harness.runner` adds
the run-level fields (model, device, versions, ...).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from harness.core.results import (
    Cost,
    ModelRecord,
    Retrieval,
    Scored,
    SeedRun,
    StrategyResult,
    SuiteInfo,
    Training,
    from_json,
)
from harness.core.runrecord import PredictionRecord
from harness.core.types import Example, Suite
from harness.scoring.answers import choice_stats, format_gaps
from harness.scoring.clean import Clean, clean_subset
from harness.scoring.compare import StrategyScores, compare_strategies, cost_summary, score_strategy
from harness.scoring.economics import economics
from harness.scoring.recommend import recommend
from harness.scoring.records import score_sum
from harness.scoring.seeds import SeededScores, clean_seeded, score_seeded, seed_advice, seeded_comparisons

# What a strategy's section (its details(), the runner's model record) may hold, and as what.
SECTION_PARTS: dict[str, Any] = {"retrieval": Retrieval, "training": Training, "model": ModelRecord,
                                 "seed_runs": list[SeedRun], "adapter": dict[str, Any]}


def strategy_result(section: Mapping[str, Any], scores: StrategyScores, cost: Cost, clean: Clean | None) -> StrategyResult:
    """One strategy's entry: what it reports of itself (`section`), its scores and its cost; the
    keys a plugin strategy adds to its details() are kept as they are."""
    info = {k: v for k, v in section.items() if k != "prepare_s"}
    name, kind, params = str(info.pop("name")), str(info.pop("kind")), dict(info.pop("params"))
    answer = str(info.pop("answer", "free"))
    parts = {k: from_json(hint, value, f"strategies.{name}.{k}") for k, hint in SECTION_PARTS.items()
             if (value := info.pop(k, None)) is not None}
    seeded = scores if isinstance(scores, SeededScores) else None
    return StrategyResult(
        name=name, kind=kind, params=params, n=scores.n, metrics=scores.metrics, invalid_rate=scores.invalid_rate,
        errors=scores.errors, cost=cost, answer=answer, slices=scores.slices,
        clean_metrics=clean[0] if clean else None, n_clean=clean[1] if clean else None,
        seeds=seeded.seeds if seeded else None, per_seed=seeded.per_seed if seeded else None,
        seed_sd=seeded.seed_sd if seeded else None, extra=info, **parts)


def suite_info(suite: Suite, scored: int) -> SuiteInfo:
    return SuiteInfo(suite.name, suite.task, suite.sha256, str(suite.path), {**suite.sizes(), "scored": scored},
                     list(suite.labels), list(suite.fields), list(suite.metrics), suite.primary_metric,
                     suite.instruction, [j.name for j in suite.judges if j.mode != "pairwise" and j.name in suite.metrics])


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
) -> Scored:
    """`sections[s]`: what strategy `s` reports besides its scores (name, kind, params, retrieval,
    training, model, ...), with the seconds its `prepare_s` took. `leaked_ids`: test examples that
    leak (harness.engine.leakage): each strategy also gets its metrics on the other examples
    (`clean_metrics`, `n_clean`) when some scored example is among them. `seed_records[s]`: a
    strategy trained once per seed (`sft:seeds=3`), training seed -> its records (the first seed's
    are `predictions[s]`): scored over seeds by harness.scoring.seeds; its cost is the first seed's."""
    seeded = seed_records or {}
    strategies: dict[str, StrategyResult] = {}
    for name, records in predictions.items():
        section = sections[name]
        scores: StrategyScores = (
            score_seeded(suite, examples, seeded[name], seed=seed, slice_by=slice_by, n_resamples=n_resamples)
            if name in seeded else
            score_strategy(suite, examples, records, seed=seed, slice_by=slice_by, n_resamples=n_resamples))
        cost = cost_summary(
            records, prepare_s=float(section["prepare_s"]), predict_s=sum(r.latency_s for r in records),
            training_tokens=int((section.get("training") or {}).get("train_tokens") or 0),
            usd_per_hour=usd_per_hour,
            token_prices=(token_prices or {}).get(name),  # API models: priced by their tokens
            recorded_usd=(section.get("outputs") or {}).get("usd"),  # given outputs with their own cost
            # Partial credit where answers can be partly right: exact matches of free text are rare.
            n_correct=score_sum(suite.task, examples, records),
        )
        clean = (clean_seeded(suite, examples, seeded[name], leaked_ids, seed=seed, n_resamples=n_resamples)
                 if name in seeded else clean_subset(suite, examples, records, leaked_ids, seed=seed, n_resamples=n_resamples))
        strategies[name] = replace(strategy_result(section, scores, cost, clean),
                                   choice=choice_stats(suite.labels, examples, records) if suite.labels else None)
    comparisons = compare_strategies(suite, examples, predictions, seed=seed, n_resamples=n_resamples)
    if seeded:  # pairs with a multi-seed strategy: tested again resampling seeds too
        runs = {name: seeded.get(name) or {0: records} for name, records in predictions.items()}
        comparisons = seeded_comparisons(suite, examples, comparisons, runs, strategies, seed=seed, n_resamples=n_resamples)
    advice = seed_advice(recommend(strategies, comparisons, suite.primary_metric, suite.metrics), comparisons)
    strategies, money = economics(strategies, monthly_requests=monthly_requests, usd_per_hour=usd_per_hour)
    return Scored(suite_info(suite, len(examples)), strategies, comparisons, advice, money,
                  format_gaps(strategies, suite.primary_metric))
