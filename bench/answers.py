"""Benchmark: answer=choice (every label scored after the prompt, its key/value cache shared by the
labels) against free decoding of the same prompts, on the default model.

Prints examples/s and labels/s of both modes and the accuracy each gives, ending with
`choice/free: N.NNx` (examples/s of choice over free decoding's).

    .venv/bin/python bench/answers.py [--suite banking-intents] [--n 60] [--model M]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.cli import _quiet_libraries  # noqa: E402
from harness.core.suites import load_suite  # noqa: E402
from harness.core.types import ScoreRequest  # noqa: E402
from harness.engine.backends.transformers import TransformersBackend  # noqa: E402
from harness.engine.models import load_generator  # noqa: E402
from harness.engine.prompting import build_messages  # noqa: E402
from harness.runner import default_batch_size  # noqa: E402
from harness.runner.choice import generation  # noqa: E402
from harness.scoring.extract import extract_answer  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--suite", default="banking-intents")
    p.add_argument("--n", type=int, default=60)
    args = p.parse_args()
    _quiet_libraries()
    suite = load_suite(args.suite)
    examples = list(suite.test[: args.n])
    chats = [build_messages(suite, e.input) for e in examples]
    loaded = load_generator(args.model)
    backend = TransformersBackend(loaded, batch_size=default_batch_size(loaded.device))
    backend.generate(chats[:2], suite.generation)  # warm-up
    backend.score([ScoreRequest(chats[0], suite.labels)])

    start = time.perf_counter()
    gens = backend.generate(chats, suite.generation)
    free_s = time.perf_counter() - start
    free = [extract_answer(g.text, suite.task, suite.labels) for g in gens]
    start = time.perf_counter()
    scored = backend.score([ScoreRequest(c, suite.labels) for c in chats])
    choice_s = time.perf_counter() - start
    chosen = [generation(s, suite.labels, "sum").text for s in scored]

    n, k = len(examples), len(suite.labels)
    acc = {name: sum(a == e.target for a, e in zip(answers, examples, strict=True)) / n
           for name, answers in (("free", free), ("choice", chosen))}
    print(f"model {loaded.name} on {loaded.device}, {n} prompts of {suite.name}, {k} labels")
    print(f"free   : {n / free_s:6.2f} examples/s  ({free_s:.1f} s, max_new_tokens {suite.generation.max_new_tokens}); "
          f"accuracy {acc['free']:.3f}, unusable {sum(a is None for a in free)}/{n}")
    print(f"choice : {n / choice_s:6.2f} examples/s  {n * k / choice_s:7.1f} labels/s  ({choice_s:.1f} s); "
          f"accuracy {acc['choice']:.3f}")
    print(f"choice/free: {free_s / choice_s:.2f}x")


if __name__ == "__main__":
    main()
