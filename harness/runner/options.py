"""What a run is asked to do (RunOptions), and every option checked before any model loads."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.config import ModelSpec
from harness.core.errors import HarnessError
from harness.core.judges import JudgeSpec
from harness.core.text import did_you_mean
from harness.core.types import AnswerMode, Example, Suite
from harness.engine.leakage import DEFAULT_THRESHOLD
from harness.engine.models import DEFAULT_EMBEDDER, DEFAULT_MODEL


@dataclass
class RunOptions:
    suite: str
    strategies: str = "prompt"
    model: str = DEFAULT_MODEL
    embedder: str = DEFAULT_EMBEDDER
    out: Path = Path("reports")
    run_label: str | None = None  # e.g. "demo": part of the run folder's name
    limit: int | None = None
    seed: int = 0
    slice_by: tuple[str, ...] = ()
    batch_size: int | None = None  # None: default_batch_size(device)
    usd_per_hour: float | None = None
    monthly_requests: float | None = None  # expected traffic: monthly cost and break-even months
    device: str | None = None
    trust_remote_code: bool = False
    leakage_check: bool = True  # test vs train/validation/corpus before any model work (harness.engine.leakage)
    leakage_threshold: float = DEFAULT_THRESHOLD  # cosine of an embedding near-duplicate
    fail_on_leakage: bool = False  # any leak: exit 2 before any model work, no run folder
    control: tuple[str, ...] = ()  # --control: suites each adapter is also scored on (harness.runner.control)
    control_limit: int = 200  # control examples scored when --limit is not given
    strategy_params: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)  # from --config
    sources: dict[str, str] = field(default_factory=dict)  # option -> "run.toml:LINE" for values from --config
    models: dict[str, ModelSpec] = field(default_factory=dict)  # [[models]] by name: what `model=NAME` picks
    answer: AnswerMode = field(default_factory=AnswerMode)  # --answer: strategies that set none use it
    judges: tuple[JudgeSpec, ...] = ()  # run.toml's [[judges]], besides the suite's
    judge_model: str | None = None  # --judge-model: the model every judge grades with
    human: Path | None = None  # --human: people's grades (else the suite's human.jsonl)

    def flag(self, key: str) -> str:
        """How an error names an option: `run.toml:7: batch_size` when the file set it, else `--batch-size`."""
        where = self.sources.get(key)
        return f"{where}: {key}" if where else "--" + key.replace("_", "-")


def default_batch_size(device: str) -> int:
    """Decoding batch size when the user gives none.

    On a CPU a decoding step is bound by reading the weights, so 64 rows cost little more than 16
    (support-faq on 2 cores: 62 questions in 42 s at 64 against 73 s at 16). On a GPU the key/value
    cache of a large model is the limit, so stay at 16 there. Either way the engine also caps a
    batch at max_batch_tokens prompt tokens.
    """
    return 64 if device == "cpu" else 16


def check_options(opts: RunOptions, suite: Suite, examples: Sequence[Example]) -> None:
    """Every run option checked before any model loads or any folder is made."""
    from harness.engine.training.launched import channel as launched_channel

    world = os.environ.get("WORLD_SIZE", "1")
    if world.isdigit() and int(world) > 1 and launched_channel() is None:  # not `run`: every process would work
        raise HarnessError(f"this is one of {world} processes started by a distributed launcher (WORLD_SIZE): "
                           "only `sft-harness run` runs under one (rank 0 decodes, every rank trains); start "
                           "this as one process, with sft:processes=N or curve --executor ray (README, 'Scaling out')")
    if opts.limit is not None and opts.limit <= 0:
        raise HarnessError(f"{opts.flag('limit')} must be a positive number of test examples")
    if opts.control_limit < 1:
        raise HarnessError(f"{opts.flag('control_limit')} must be a positive number of control examples")
    if opts.batch_size is not None and opts.batch_size < 1:
        raise HarnessError(f"{opts.flag('batch_size')} must be at least 1, got {opts.batch_size}")
    if opts.monthly_requests is not None and not (math.isfinite(opts.monthly_requests) and opts.monthly_requests >= 0):
        raise HarnessError(f"{opts.flag('monthly_requests')} must be 0 or more, got {opts.monthly_requests}")
    if opts.usd_per_hour is not None and not (math.isfinite(opts.usd_per_hour) and opts.usd_per_hour >= 0):
        raise HarnessError(f"{opts.flag('gpu_hour_usd')} must be a price of 0 or more, got {opts.usd_per_hour}")
    if not (math.isfinite(opts.leakage_threshold) and 0 < opts.leakage_threshold <= 1):
        raise HarnessError(f"{opts.flag('leakage_threshold')} must be a cosine above 0 and at most 1, "
                           f"got {opts.leakage_threshold}")
    if not 0 <= opts.seed < 2**32:  # numpy and torch seeds
        raise HarnessError(f"{opts.flag('seed')} must be a whole number from 0 to {2**32 - 1}, got {opts.seed}")
    for field_name in opts.slice_by:
        if not any(field_name in ex.meta for ex in examples):
            known = sorted({k for ex in examples for k in ex.meta})
            raise HarnessError(
                f"{opts.flag('slice_by')} {field_name}: no scored example of suite '{suite.name}' has meta field "
                f"'{field_name}'{did_you_mean(field_name, known)}; fields: {', '.join(known) or 'none'}"
            )
