"""Reports rendered from run folders: markdown, HTML (escaping, no network, real browser), CSV."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from harness.core.errors import HarnessError
from harness.core.runrecord import load_run
from harness.report import render_all
from harness.report.formats.console import print_summary
from harness.report.formats.csv import render_csv
from harness.report.formats.html import render_html
from tests.fixtures_runs import PAYLOADS, payload_run, qa_run, triage_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {
        "triage": triage_run(root / "triage", {"prompt": 0.5, "rag": 0.7, "sft": 0.9}),
        "qa": qa_run(root / "qa"),
        "payload": payload_run(root / "payload"),
    }
    for d in out.values():
        render_all(d)
    return out


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def fmt(metric: str, v: float) -> str:
    return f"{v:.1f}" if metric in ("bleu", "chrf") else f"{v:.3f}"


def md_table(text: str, heading: str) -> list[list[str]]:
    """Rows (cells stripped) of the first table after `heading`, header row included."""
    lines = text[text.index(heading):].splitlines()[1:]
    rows, started = [], False
    for line in lines:
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(set(c) <= set("-:") for c in cells):
                rows.append(cells)
        elif started:
            break
    return rows


# --------------------------------------------------------------------------- files and markdown


def test_render_all_writes_the_three_files(runs: dict[str, Path]) -> None:
    paths = render_all(runs["triage"])
    assert [p.name for p in paths] == ["report.md", "report.html", "summary.csv"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert not list(runs["triage"].glob(".*.tmp"))  # atomic writes leave no temp files


@pytest.mark.parametrize("name", ["triage", "qa"])
def test_markdown_comparison_equals_results(runs: dict[str, Path], name: str) -> None:
    results = results_of(runs[name])
    text = (runs[name] / "report.md").read_text()
    rows = md_table(text, "## Comparison")
    metrics = results["suite"]["metrics"]
    assert rows[0][: 1 + len(metrics)] == ["Strategy", *metrics]
    assert [r[0] for r in rows[1:]] == list(results["strategies"])
    for row in rows[1:]:
        s = results["strategies"][row[0]]
        for m, cell in zip(metrics, row[1:], strict=False):
            v = s["metrics"][m]
            expected = f"{fmt(m, v['value'])} [{fmt(m, v['ci'][0])}, {fmt(m, v['ci'][1])}]"
            best = max(x["metrics"][m]["value"] for x in results["strategies"].values())
            assert cell.rstrip("†‡") == (f"**{expected}**" if v["value"] == best else expected)


def test_markdown_marks_strategies_significantly_below_the_best(runs: dict[str, Path]) -> None:
    results = results_of(runs["triage"])
    rows = {r[0]: r for r in md_table((runs["triage"] / "report.md").read_text(), "## Comparison")[1:]}
    for i, m in enumerate(results["suite"]["metrics"], 1):
        best = max(results["strategies"], key=lambda n: results["strategies"][n]["metrics"][m]["value"])
        for name in results["strategies"]:
            cell = rows[name][i]
            if name == best:
                assert not cell.endswith(("†", "‡"))
                continue
            c = next(c for c in results["comparisons"] if c["metric"] == m and {c["a"], c["b"]} == {name, best})
            expected = "‡" if c["p_holm"] < 0.01 else "†" if c["p_holm"] < 0.05 else ""
            assert cell.endswith(expected) if expected else not cell.endswith(("†", "‡"))
    assert "† significantly below the best" in (runs["triage"] / "report.md").read_text()


def test_markdown_sections(runs: dict[str, Path]) -> None:
    text = (runs["qa"] / "report.md").read_text()
    results = results_of(runs["qa"])
    head = text.splitlines()[:4]
    assert any(line.startswith("> **Recommendation:**") and results["recommendation"]["text"][:30] in line for line in head)
    for heading in ("## Cost", "## Retrieval", "## Training", "## Slices (f1)", "### by source", "## Pairwise comparisons"):
        assert heading in text
    assert "recall@3 = 0.875" in text
    assert "final loss" in text and "812 tokens/s" in text and "padding 2.0%" in text
    assert "USD / 1k requests" in text  # a price was given for this run
    assert "USD" not in (runs["triage"] / "report.md").read_text()  # and none here
    pairwise = md_table(text, "## Pairwise comparisons")
    assert len(pairwise) - 1 == len(results["comparisons"])
    slices = md_table(text, "### by source")
    assert [r[0] for r in slices[1:]] == ["faq", "forum"]
    sft_faq = results["strategies"]["sft"]["slices"]["source"]["faq"]["metrics"]["f1"]
    assert slices[1][4].strip("*") == f"{sft_faq:.3f}"


def test_summary_csv(runs: dict[str, Path]) -> None:
    results = results_of(runs["qa"])
    rows = list(csv.DictReader(io.StringIO((runs["qa"] / "summary.csv").read_text())))
    metrics = results["suite"]["metrics"]
    assert len(rows) == len(results["strategies"]) * len(metrics)
    for row in rows:
        s = results["strategies"][row["strategy"]]
        m = s["metrics"][row["metric"]]
        assert float(row["value"]) == pytest.approx(m["value"])
        assert float(row["ci_low"]) == pytest.approx(m["ci"][0]) and float(row["ci_high"]) == pytest.approx(m["ci"][1])
        assert int(row["n"]) == s["n"]
        assert float(row["predict_s"]) == pytest.approx(s["cost"]["predict_s"])
        assert float(row["usd_per_1k_requests"]) == pytest.approx(s["cost"]["usd_per_1k_requests"])
    assert {"prepare_s", "examples_per_s", "batch_share_p95_s", "training_tokens"} <= set(rows[0])
    assert "latency_p95_s" not in rows[0]  # no backend measured requests: the column is left out


def test_summary_csv_defuses_formulas(tmp_path: Path, runs: dict[str, Path]) -> None:
    run = load_run(runs["triage"])
    text = render_csv(replace(run.results, strategies={"=cmd()": run.results.strategies["sft"]}))
    assert {r["strategy"] for r in csv.DictReader(io.StringIO(text))} == {"'=cmd()"}


# --------------------------------------------------------------------------- html


def test_html_escapes_every_payload(runs: dict[str, Path]) -> None:
    html = (runs["payload"] / "report.html").read_text()
    for payload in PAYLOADS:
        assert payload not in html
    assert "<img" not in html
    assert html.count("<script") == 1 and html.count("</script>") == 1  # only the page's own script
    assert "</textarea" not in html
    # the data is still shown, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;/textarea&gt;" in html
    md = (runs["payload"] / "report.md").read_text()
    assert not any(p in md for p in PAYLOADS) and "<img" not in md


class Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_references_nothing_outside_the_file(runs: dict[str, Path]) -> None:
    for run_dir in runs.values():
        html = (run_dir / "report.html").read_text()
        assert not re.search(r"https?:|ftp:|//", html)
        assert "@import" not in html and "url(" not in html and "@font-face" not in html
        parser = Tags()
        parser.feed(html)
        names = [t for t, _ in parser.tags]
        assert not {"img", "link", "iframe", "object", "embed", "audio", "video", "source", "base"} & set(names)
        assert names.count("script") == 1
        for tag, attrs in parser.tags:
            assert "src" not in attrs, tag
            assert (attrs.get("href") or "#").startswith("#"), tag  # in-page anchors only
            assert not any(k.startswith("on") for k in attrs), tag  # no inline event handlers


def test_html_contents(runs: dict[str, Path]) -> None:
    results = results_of(runs["qa"])
    html = (runs["qa"] / "report.html").read_text()
    assert html.index('id="recommendation"') < html.index('id="comparison"')
    assert html.count('<rect class="bar"') == len(results["strategies"])
    assert 'data-series="sft"' in html  # the training loss curve
    assert html.count('<tr data-disagree=') == results["suite"]["sizes"]["test"]
    for section in ("comparison", "training", "winloss", "cost", "slices", "pairwise", "examples"):
        assert f'<section id="{section}">' in html
    assert 'id="history"' not in html  # no earlier runs given
    assert "data-series" not in (runs["triage"] / "report.html").read_text()  # no training, no curve


def test_html_win_loss_matrix_counts_from_predictions(runs: dict[str, Path]) -> None:
    html = (runs["triage"] / "report.html").read_text()
    lines = [json.loads(x) for x in (runs["triage"] / "predictions.jsonl").read_text().splitlines()]
    right: dict[str, dict[str, bool]] = {}
    for ln in lines:
        right.setdefault(ln["strategy"], {})[ln["example_id"]] = ln["answer"] == ln["target"]
    for a in right:
        for b in right:
            if a != b:
                wins = sum(right[a][i] and not right[b][i] for i in right[a])
                assert f'title="{a} right, {b} wrong on {wins} of 60 shared examples">{wins}</td>' in html
    disagree = sum(len({right[s][i] for s in right}) > 1 for i in right["sft"])
    assert html.count('data-disagree="1"') == disagree


def test_html_qa_views_are_graded_by_token_f1(runs: dict[str, Path]) -> None:
    """Free-text answers are rarely exact: the qa views compare per-example token F1 instead."""
    from harness.scoring.metrics import squad_f1

    html = (runs["qa"] / "report.html").read_text()
    lines = [json.loads(x) for x in (runs["qa"] / "predictions.jsonl").read_text().splitlines()]
    f1: dict[str, dict[str, float]] = {}
    for ln in lines:
        refs = ln["target"] if isinstance(ln["target"], list) else [ln["target"]]
        score = 0.0 if ln["answer"] is None else max(squad_f1(ln["answer"], r) for r in refs)
        f1.setdefault(ln["strategy"], {})[ln["example_id"]] = score
    for a in f1:
        for b in f1:
            if a != b:
                wins = sum(f1[a][i] > f1[b][i] for i in f1[a])
                title = f"{a} scored higher than {b} on {wins} of 24 shared examples"
                assert f'title="{title}">{wins}</td>' in html
    disagree = sum(max(f1[s][i] for s in f1) - min(f1[s][i] for s in f1) >= 0.5 for i in f1["sft"])
    assert 0 < disagree < 24 and html.count('data-disagree="1"') == disagree
    partial = sum(0 < f1[s][i] < 1 for s in f1 for i in f1[s])
    assert partial > 0 and html.count('<td class="partial">') == partial
    assert "token F1 1.00</span>" in html and "✓ right" not in html


def test_html_history_chart(runs: dict[str, Path]) -> None:
    run = load_run(runs["triage"])
    history = [
        {"run_id": f"old{k}", "created": f"2026-11-0{k + 1}T10:00:00+00:00", "suite": "ticket-triage",
         "suite_sha256": "a" * 64, "strategy": s, "metrics": {"accuracy": 0.4 + 0.1 * k + 0.05 * j}}
        for k in range(3) for j, s in enumerate(["prompt", "sft"])
    ] + [{"run_id": "other", "created": "2026-11-01T00:00:00+00:00", "suite": "another-suite", "strategy": "prompt",
          "metrics": {"accuracy": 0.1}}]
    html = render_html(run, history)
    section = html[html.index('<section id="history">'):]
    section = section[: section.index("</section>")]
    assert "4 runs" in section  # three earlier ones of this suite and the current run; not the other suite
    assert {"prompt", "rag", "sft"} == set(re.findall(r'data-series="([^"]+)"', section))


def test_load_run_errors_name_the_file_and_line(tmp_path: Path, runs: dict[str, Path]) -> None:
    with pytest.raises(HarnessError, match="no such run folder"):
        load_run(tmp_path / "nope")
    run_dir = tmp_path / "run"
    shutil.copytree(runs["triage"], run_dir)
    line = '{"strategy": "a", "example_id": "1", "scores": {}, "score": 1.0}'
    (run_dir / "predictions.jsonl").write_text(line + '\n{"strategy": oops\n')
    with pytest.raises(HarnessError, match=r"predictions\.jsonl:2: not valid JSON"):
        load_run(run_dir)
    (run_dir / "predictions.jsonl").write_text(line + '\n\n[1, 2]\n')
    with pytest.raises(HarnessError, match=r"predictions\.jsonl:3: expected an object"):
        load_run(run_dir)
    (run_dir / "predictions.jsonl").write_text(line + '\n{"strategy": "a", "example_id": "2", "score": 0.5}\n')
    with pytest.raises(HarnessError, match=r"predictions\.jsonl:2: no per-example 'scores'.*older version"):
        load_run(run_dir)
    (run_dir / "results.json").write_text('{\n  "schema": "sft-harness/results/v2",\n  "suite": {,\n}')
    with pytest.raises(HarnessError, match=r"results\.json:3: not valid JSON"):
        render_all(run_dir)
    (run_dir / "results.json").write_text('{"schema": "something-else/v9"}')
    with pytest.raises(HarnessError, match="schema"):
        load_run(run_dir)
    (run_dir / "results.json").unlink()
    with pytest.raises(HarnessError, match=r"results\.json: not found"):
        load_run(run_dir)


def test_a_run_folder_of_an_older_version_is_one_line_that_says_re_run(tmp_path: Path, runs: dict[str, Path]) -> None:
    from harness.cli import main

    run_dir = tmp_path / "old"
    shutil.copytree(runs["triage"], run_dir)
    results = results_of(run_dir)
    (run_dir / "results.json").write_text(json.dumps({**results, "schema": "sft-harness/results/v1"}))
    with pytest.raises(HarnessError, match=r"results\.json: written by an older version of sft-harness "
                                           r"\(schema sft-harness/results/v1\); re-run"):
        load_run(run_dir)
    assert main(["report", str(run_dir)]) == 2
    assert main(["gate", str(run_dir), str(runs["triage"])]) == 2


def test_print_summary(runs: dict[str, Path]) -> None:
    console = Console(record=True, width=200)
    results = results_of(runs["triage"])
    typed = load_run(runs["triage"]).results
    print_summary(typed, console)
    out = console.export_text()
    sft = results["strategies"]["sft"]["metrics"]["accuracy"]
    assert f"{sft['value']:.3f} [{sft['ci'][0]:.3f}, {sft['ci'][1]:.3f}]" in out
    assert "Recommendation: " + results["recommendation"]["text"][:40] in out
    for name in ("prompt", "rag", "sft"):
        assert name in out
    # strategy names are shown as text, never read as rich markup
    console = Console(record=True, width=200)
    print_summary(replace(typed, strategies={"[bold]x[/bold]": typed.strategies["sft"]}), console)
    assert "[bold]x[/bold]" in console.export_text()


# --------------------------------------------------------------------------- a real browser


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("chromium is needed to check report.html in a real browser: apt-get install -y chromium")


def browser(tmp_path: Path, *args: str) -> str:
    proc = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_html_in_headless_chromium(tmp_path: Path, runs: dict[str, Path]) -> None:
    results = results_of(runs["triage"])
    # #disagree makes the page's script tick the filter: the DOM after JS shows whether it ran.
    dom = browser(tmp_path, "--dump-dom", (runs["triage"] / "report.html").as_uri() + "#disagree")
    assert 'data-js="ok"' in dom
    assert len(re.findall(r'<rect class="bar"', dom)) == len(results["strategies"])
    assert 'id="only-disagree"' in dom and "examples shown" in dom
    rows = re.findall(r'<tr data-disagree="(\d)"( hidden="")?>', dom)
    assert len(rows) == 60
    assert all(bool(hidden) == (flag == "0") for flag, hidden in rows)  # agreeing rows are hidden
    shown = sum(flag == "1" for flag, _ in rows)
    assert f"{shown} of 60 examples shown" in dom
    comparison = dom[dom.index('<table class="comparison'):]
    assert comparison[: comparison.index("</table>")].count("<tr>") == 1 + len(results["strategies"])

    # The payloads stay text after the browser parsed the page: no element was injected.
    dom = browser(tmp_path, "--dump-dom", (runs["payload"] / "report.html").as_uri())
    assert 'data-js="ok"' in dom
    assert "<img" not in dom and dom.count("<script") == 1 and "<textarea" not in dom

    shot = tmp_path / "report.png"
    browser(tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", (runs["qa"] / "report.html").as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
