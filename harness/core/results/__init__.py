"""results.json as typed records: the dataclasses (model), their JSON codec (codec), the schema.

Written by the runner (harness.core.runrecord.write_results) and read by the report, the gate and
the history (harness.core.runrecord.load_run), always through these records.
"""

from __future__ import annotations

from typing import Any

from harness.core.results.answers import ChoiceStats, FormatGap, ReliabilityBin
from harness.core.results.codec import ResultsError, from_json, to_json
from harness.core.results.judges import JudgeAgreement, JudgedPair, JudgedStrategy, JudgeResult
from harness.core.results.model import (
    BreakEven,
    Comparison,
    ControlInfo,
    ControlMetric,
    ControlResult,
    Cost,
    Decoding,
    Economics,
    Forgetting,
    Interval,
    Leakage,
    LeakPair,
    MetricValue,
    ModelRecord,
    PerplexityChange,
    Power,
    Recommendation,
    Retrieval,
    RunResults,
    Scored,
    SeedRun,
    SliceCell,
    StrategyResult,
    SuiteInfo,
    Training,
    Work,
    number,
)

SCHEMA = "sft-harness/results/v3"
# v2 has the same layout (v3 made it typed and added fields with defaults): still read.
READABLE = ("sft-harness/results/v2", SCHEMA)
OLDER_SCHEMAS = ("sft-harness/results/v1",)  # no per-example statistics in predictions.jsonl: refused


def results_from_json(data: Any) -> RunResults:
    """A parsed results.json as RunResults (ResultsError naming the JSON path of a bad value)."""
    return from_json(RunResults, data)


__all__ = ["OLDER_SCHEMAS", "READABLE", "SCHEMA", "BreakEven", "Comparison", "ControlInfo", "ControlMetric",
           "ControlResult", "ChoiceStats", "Cost", "Decoding", "Economics", "Forgetting", "FormatGap", "Interval", "JudgeAgreement", "JudgeResult",
           "JudgedPair", "JudgedStrategy", "LeakPair", "Leakage",
           "MetricValue", "ModelRecord", "PerplexityChange", "Power", "Recommendation", "ReliabilityBin", "ResultsError", "Retrieval",
           "RunResults", "Scored", "SeedRun", "SliceCell", "StrategyResult", "SuiteInfo", "Training", "Work",
           "from_json", "number", "results_from_json", "to_json"]
