"""Metrics from outside harness.scoring.metrics: entry-point plugins (a real dist-info on sys.path), Hugging
Face evaluate modules (a real local module, end to end through scoring), and the errors of both."""

from __future__ import annotations

import importlib
import json
import math
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import HarnessError, MissingPackageError
from harness.core.results import Cost, to_json
from harness.core.runrecord import PredictionRecord
from harness.core.suites import load_suite, validate
from harness.core.types import Example, GenerationConfig, Suite
from harness.gate import Check, judge
from harness.report.views import best_of
from harness.scoring.compare import compare_strategies, score_strategy
from harness.scoring.fmt import fmt_metric
from harness.scoring.recommend import recommend
from harness.scoring.registry import REGISTRY, Metric, Registry, check_metric, get_metric, metric_names
from harness.scoring.results import strategy_result
from tests.fixtures_runs import Answered, records_of

PLUGIN = '''
import numpy as np
from harness.scoring.registry import Metric


def _short(answers, examples, ctx):
    return np.array([[float(a is not None and len(a.split()) <= 3)] for a in answers]).reshape(-1, 1)


def _length(answers, examples, ctx):
    return np.array([[len(a.split()) if a else 0.0] for a in answers], dtype=float).reshape(-1, 1)


def _median(rows, ctx):
    return float(np.median(rows[:, 0]))


SHORT = Metric("short_answer", _short, tasks=("qa", "generation"), description="answers of 3 words or fewer")


def make_length():  # a zero-argument factory; lower is better, no vectorised aggregate
    return Metric("answer_words", _length, _median, higher_is_better=False, format_spec=".1f")


NOT_A_METRIC = 42
MISNAMED = Metric("something_else", _short)


def bad_scale():
    return Metric("bad_metric", _short, scale=7.0)
'''


def _install(site: Path, dist: str, module: str, source: str, entry_points: dict[str, str]) -> None:
    """A real installed distribution: a module and a .dist-info with entry_points.txt."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[sft_harness.metrics]\n{lines}")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    REGISTRY.refresh()
    yield folder
    for name in [m for m in sys.modules if m.startswith("sfth_")]:
        del sys.modules[name]
    monkeypatch.undo()
    importlib.invalidate_caches()
    REGISTRY.refresh()


def _suite(task: str, metrics: tuple[str, ...], path: Path | None = None) -> Suite:
    return Suite(name="s", task=task, instruction="", labels=(), metrics=metrics,  # type: ignore[arg-type]
                 generation=GenerationConfig(), train=(), test=(), path=path)


def _preds(suite: Suite, strategy: str, answers: list[str | None], examples: list[Example]) -> list[PredictionRecord]:
    return records_of(suite, examples, [Answered(strategy, e.id, a or "", a, 0.1, 1, 1)
                                        for a, e in zip(answers, examples, strict=True)])


# --------------------------------------------------------------------------- entry points


def test_a_plugin_metric_from_an_installed_distribution(site: Path) -> None:
    _install(site, "sfth-plugin", "sfth_plugin", PLUGIN,
             {"short_answer": "sfth_plugin:SHORT", "answer_words": "sfth_plugin:make_length"})
    short, words = get_metric("short_answer"), get_metric("answer_words")
    assert short.description == "answers of 3 words or fewer" and not words.higher_is_better
    assert words.aggregate_many is None  # a custom aggregate gets no mean fast path by accident
    assert {"short_answer", "answer_words"} <= set(metric_names())
    assert "did you mean 'short_answer'" in (check_metric("short_answr", "qa") or "")
    assert check_metric("short_answer", "qa") is None
    assert "does not apply to classification suites" in (check_metric("short_answer", "classification") or "")

    examples = [Example(id=str(i), input="", target="the answer") for i in range(12)]
    answers: list[str | None] = ["yes", "a much longer answer than that", None, "two words"] * 3
    suite = _suite("qa", ("f1", "short_answer", "answer_words"))
    scores = score_strategy(suite, examples, _preds(suite, "p", answers, examples), seed=0, n_resamples=200)
    res = to_json(scores)
    assert res["metrics"]["short_answer"]["value"] == pytest.approx(6 / 12)
    assert res["metrics"]["answer_words"]["value"] == np.median([1, 6, 0, 2] * 3)
    lo, hi = res["metrics"]["short_answer"]["ci"]
    assert lo <= 0.5 <= hi and lo < hi
    rows = compare_strategies(suite, examples, {"p": _preds(suite, "p", answers, examples),
                                                "q": _preds(suite, "q", ["yes"] * 12, examples)}, seed=0)
    assert {r.metric for r in rows} == {"f1", "short_answer", "answer_words"}
    # lower is better: q's one-word answers win on answer_words
    cost = Cost(0.0, 0.0)
    q = score_strategy(suite, examples, _preds(suite, "q", ["yes"] * 12, examples), seed=0)
    strategies = {n: strategy_result({"name": n, "kind": "prompt", "params": {}}, s, cost, None)
                  for n, s in (("p", scores), ("q", q))}
    assert recommend(strategies, rows, "answer_words").winner == "q"
    assert best_of({n: s.value("answer_words") for n, s in strategies.items()}, "answer_words") == ["q"]
    assert fmt_metric("answer_words", 2.25) == "2.2"


def test_plugin_metric_in_a_suite_is_checked_at_its_line(site: Path, tmp_path: Path) -> None:
    _install(site, "sfth-plugin", "sfth_plugin", PLUGIN, {"short_answer": "sfth_plugin:SHORT"})
    folder = _write_suite(tmp_path / "suite", task="classification", metrics='["accuracy", "short_answer"]')
    suite, problems = validate(str(folder), known_metrics=check_metric)
    assert suite is None
    assert problems == [f"{folder / 'suite.toml'}:5: metric 'short_answer' does not apply to classification "
                        "suites (only to qa, generation)"]


def test_a_plugin_may_not_take_a_builtin_name(site: Path) -> None:
    _install(site, "sfth-clash", "sfth_clash", PLUGIN, {"exact_match": "sfth_clash:SHORT"})
    with pytest.raises(HarnessError, match="metric plugin 'exact_match' .*from sfth-clash 0.1.*has the name of a "
                                           "built-in metric"):
        get_metric("accuracy")  # not silently shadowed, and not silently ignored either


@pytest.mark.parametrize(("target", "why"), [
    ("sfth_broken:SHORT", "failed to load: ModuleNotFoundError: No module named 'sfth_missing_dependency'"),
    ("sfth_plugin:NOT_A_METRIC", "must resolve to a harness.scoring.registry.Metric .* got int"),
    ("sfth_plugin:MISNAMED", "gives a metric named 'something_else'"),
    ("sfth_plugin:bad_scale", "metric 'bad_metric': scale must be 1 or 100"),
])
def test_a_broken_plugin_says_why(site: Path, target: str, why: str) -> None:
    (site / "sfth_broken.py").write_text("import sfth_missing_dependency\n")
    _install(site, "sfth-plugin", "sfth_plugin", PLUGIN, {"bad_metric": target})
    with pytest.raises(HarnessError, match=f"metric plugin 'bad_metric' \\(sfth_.*\\):? {why}"):
        get_metric("bad_metric")
    assert "metric plugin 'bad_metric'" in (check_metric("bad_metric", "qa") or "")  # what validate shows


def test_builtins_that_fail_to_import_say_why(site: Path) -> None:
    (site / "sfth_builtins.py").write_text("import sfth_missing_dependency\n")
    def broken(registry: Registry) -> None:
        import sfth_builtins  # noqa: F401  # what a built-in with a missing dependency does

    registry = Registry(builtins=broken)
    with pytest.raises(HarnessError, match="built-in metrics \\(.*\\) could not be loaded: "
                                           "ModuleNotFoundError: No module named 'sfth_missing_dependency'"):
        registry.get("accuracy")
    assert "unknown metric" not in (registry.problem("accuracy", "qa") or "unknown metric")


def test_a_metric_checks_its_own_definition() -> None:
    def stats(answers, examples, ctx):  # type: ignore[no-untyped-def]
        return np.zeros((len(answers), 1))

    with pytest.raises(HarnessError, match="scale must be 1 or 100"):
        Metric("x", stats, scale=10.0)
    with pytest.raises(HarnessError, match="tasks must be some of"):
        Metric("x", stats, tasks=("summarise",))
    with pytest.raises(HarnessError, match="paired_test"):
        Metric("x", stats, paired_test="t-test")
    assert Metric("x", stats).aggregate_many is not None  # the default mean has its fast path
    assert math.isnan(Metric("x", stats).bind("qa")(np.zeros((0, 1))))  # undefined on zero examples


def test_direction_reaches_the_gate() -> None:
    check = Check("s", "s", "evaluate:wer", 50, 0.20, 0.30, 0.10, (0.05, 0.15), 0.001, "paired_bootstrap", "ok", 0.0)
    assert judge(check, 0.05) == "REGRESSION"  # a word error rate that rises is the regression
    check = Check("s", "s", "f1", 50, 0.20, 0.30, 0.10, (0.05, 0.15), 0.001, "paired_bootstrap", "ok", 0.0)
    assert judge(check, 0.05) == "improved"


# --------------------------------------------------------------------------- Hugging Face evaluate

MY_METRIC = '''
import datasets
import evaluate


class MyMetric(evaluate.Metric):
    """Share of predictions with as many words as their first reference."""

    def _info(self):
        return evaluate.MetricInfo(
            description="same word count", citation="", inputs_description="",
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references):
        lists = [isinstance(r, list) for r in references]
        firsts = [r[0] if isinstance(r, list) else r for r in references]
        same = [len(p.split()) == len(r.split()) for p, r in zip(predictions, firsts)]
        return {"my_metric": sum(same) / len(same), "lists": float(all(lists)), "n": len(same)}
'''


def _write_suite(folder: Path, task: str = "qa", metrics: str = '["f1"]', test: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True)
    labels = 'labels = ["yes", "no"]\n' if task == "classification" else ""
    (folder / "suite.toml").write_text(f'name = "ev"\ntask = "{task}"\ninstruction = "Answer."\n{labels}'
                                       f'metrics = {metrics}\n[splits]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n')
    rows = test or [{"id": "t1", "input": "q", "target": "yes"}]
    (folder / "train.jsonl").write_text(json.dumps({"id": "tr", "input": "q", "target": "yes"}) + "\n")
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _evaluate_suite(tmp_path: Path, metric: str, several_refs: bool = False) -> Path:
    test = [{"id": f"e{i}", "input": "q", "target": (["one two", "x"] if several_refs else "one two") if i % 2
             else "a b c"} for i in range(16)]
    folder = _write_suite(tmp_path / "suite", metrics=f'["f1", "{metric}"]', test=test)
    script = folder / "metrics" / "my_metric"
    script.mkdir(parents=True)
    (script / "my_metric.py").write_text(textwrap.dedent(MY_METRIC))
    return folder


def test_an_evaluate_module_end_to_end(tmp_path: Path) -> None:
    name = "evaluate:./metrics/my_metric"
    folder = _evaluate_suite(tmp_path, name)
    suite = load_suite(str(folder), known_metrics=check_metric)
    examples = list(suite.test)
    good: list[str | None] = ["one two" if i % 2 else "d e f" for i in range(16)]
    bad: list[str | None] = [g if i < 4 else None for i, g in enumerate(good)]
    res = to_json(score_strategy(suite, examples, _preds(suite, "good", good, examples), seed=0, slice_by=("absent",)))
    entry = res["metrics"][name]
    assert entry["value"] == 1.0 and entry["ci"] == [1.0, 1.0]
    assert entry["resamples"] == 200 and "200 resamples instead of 1000" in entry["note"]
    assert res["slices"]["absent"]["(missing)"]["metrics"][name] == 1.0
    assert "resamples" not in res["metrics"]["f1"]  # built-ins are not capped
    worse = to_json(score_strategy(suite, examples, _preds(suite, "bad", bad, examples), seed=0))["metrics"][name]
    assert worse["value"] == 4 / 16 and worse["ci"][0] < 4 / 16 < worse["ci"][1]  # invalid answers are ''
    rows = to_json(compare_strategies(suite, examples, {"good": _preds(suite, "good", good, examples),
                                                        "bad": _preds(suite, "bad", bad, examples)}, seed=0))
    row = next(r for r in rows if r["metric"] == name)
    assert row["diff"] == 12 / 16 and row["test"] == "paired_bootstrap" and row["resamples"] == 200
    assert row["p_value"] == pytest.approx(2 / 201) and "note" in row
    assert fmt_metric(name, 0.123456) == "0.1235"


def test_an_evaluate_module_gets_every_reference_and_a_chosen_key(tmp_path: Path) -> None:
    folder = _evaluate_suite(tmp_path, "evaluate:./metrics/my_metric#lists", several_refs=True)
    suite = load_suite(str(folder), known_metrics=check_metric)
    answers: list[str | None] = ["one two"] * 16
    res = score_strategy(suite, list(suite.test), _preds(suite, "s", answers, list(suite.test)), seed=0)
    assert res.metrics["evaluate:./metrics/my_metric#lists"].value == 1.0  # a list per example
    with pytest.raises(HarnessError, match="returned my_metric, lists, n: no 'nope' among them"):
        get_metric("evaluate:./metrics/my_metric#nope", folder).bind("qa")(np.array([["a", "a"]], dtype=object))


def test_evaluate_metric_forms_are_checked_at_the_metrics_line(tmp_path: Path) -> None:
    folder = _write_suite(tmp_path / "s", metrics='["evaluate:./missing", "evaluate:../outside", "evaluate:"]')
    _, problems = validate(str(folder))  # the form is the core's business: no registry needed
    toml = folder / "suite.toml"
    assert problems == [
        f"{toml}:4: metric 'evaluate:./missing': no metric script missing.py in ./missing (an evaluate module "
        "folder holds a script named like the folder)",
        f"{toml}:4: metric 'evaluate:../outside': the folder lies outside the suite folder",
        f"{toml}:4: metric 'evaluate:': write evaluate: followed by a module name or a folder of the suite, like "
        "evaluate:meteor or evaluate:./metrics/my_metric",
    ]


def test_an_uncached_hub_module_offline_is_one_line_that_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)
    with pytest.raises(HarnessError) as e:
        get_metric("evaluate:sfth_no_such_metric")
    text = str(e.value)
    assert "\n" not in text and "not in the local cache and HF_HUB_OFFLINE is set" in text
    assert "run once with a network" in text and "evaluate:./FOLDER" in text


def test_evaluate_not_installed_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "evaluate", None)
    with pytest.raises(MissingPackageError, match="pip install 'evaluate>=0.4'"):
        get_metric("evaluate:sfth_needs_the_package")
    assert "pip install" in (check_metric("evaluate:meteor", "qa") or "")


def test_an_evaluate_module_through_the_run_folder_report_and_gate(tmp_path: Path) -> None:
    """A run folder scored with an evaluate metric renders, and the gate recomputes the module
    from predictions.jsonl, finding the suite's metric folder through results.json."""
    from harness import gate
    from harness.report import render_all
    from tests.fixtures_runs import write_run

    name = "evaluate:./metrics/my_metric"
    folder = _evaluate_suite(tmp_path, name)
    suite = load_suite(str(folder), known_metrics=check_metric)
    good = ["one two" if i % 2 else "d e f" for i in range(16)]
    runs = {}
    for label, answers in (("base", good), ("cand", [a if i < 6 else "x" for i, a in enumerate(good)])):
        run = write_run(tmp_path / label, suite, {"s": answers}, n_resamples=200)
        results = json.loads((run / "results.json").read_text())
        results["suite"]["path"] = str(folder)  # the fixture writes suites/<name>
        (run / "results.json").write_text(json.dumps(results))
        runs[label] = run
    render_all(runs["base"])
    assert name in (runs["base"] / "report.md").read_text()
    with pytest.raises(HarnessError, match="runs the Python code of an evaluate module: pass --trust-remote-code"):
        gate.gate(runs["base"], runs["cand"])  # a results.json names the folder: its code runs only when allowed
    checks = {c.metric: c for c in gate.gate(runs["base"], runs["cand"], trust_remote_code=True).checks}
    ev = checks[name]
    assert (ev.baseline, ev.candidate, ev.test) == (1.0, 6 / 16, "paired_bootstrap")
    assert ev.verdict == "REGRESSION" and ev.p_value == pytest.approx(2 / 201)  # 200 resamples at most
