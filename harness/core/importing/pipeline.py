"""The import, step by step: open and read -> shared instruction -> duplicates out -> task ->
splits -> suite files, checked by the suite validator, then put in place of --out."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.importing.convert import Columns
from harness.core.importing.corpus import Corpus, read_corpus
from harness.core.importing.dedup import deduplicate, with_references
from harness.core.importing.readme import ImportRecord, render_readme, sources_of
from harness.core.importing.rows import BadRows, Draft, ProgressFn, no_progress
from harness.core.importing.sources import draft_rows, open_sources
from harness.core.importing.split import DEFAULT_TEST, DEFAULT_VALIDATION, Size, split_rows
from harness.core.importing.task import METRICS, TaskChoice, final_target, infer_task, max_new_tokens
from harness.core.importing.write import SuiteSpec, check_out, jsonl_bytes, suite_toml, write_suite
from harness.core.suites import MetricCheck, validate

DEFAULT_INSTRUCTIONS = {
    "classification": "Classify the input: answer with one of the labels.",
    "extraction": "Extract the fields of the input as a JSON object.",
    "qa": "Answer the question.",
    "generation": "Write the response to the input.",
}
SPLIT_ORDER = ("train", "test", "validation")


@dataclass(frozen=True)
class ImportOptions:
    out: Path
    given: tuple[tuple[str, str], ...]  # (split, file or dataset): ("all", SOURCE) or --train/--test/--validation
    format: str | None = None
    columns: Columns = field(default_factory=Columns)
    header: tuple[str, ...] = ()  # --columns: the names of a table without a header line
    task: str | None = None
    instruction: str | None = None
    name: str | None = None
    description: str | None = None
    hf_split: str | None = None
    hf_config: str | None = None
    seed: int = 0
    test_size: Size | None = None  # None: the default for one source; not carved from given splits
    validation_size: Size | None = None
    corpus: Path | None = None
    corpus_text: str | None = None
    skip_bad: bool = False
    force: bool = False
    max_new_tokens: int | None = None
    command: str = ""  # as typed, for the README


def import_suite(opts: ImportOptions, say: Callable[[str], None], progress: ProgressFn = no_progress,
                 known_metrics: MetricCheck | None = None) -> Path:
    """Write the suite folder `opts.out`; `say` gets the one-line decisions as they are made."""
    check_out(opts.out, opts.force)
    notes: list[str] = []

    def note(line: str) -> None:
        notes.append(line)
        say(line)

    bad = BadRows(opts.skip_bad)
    opened = open_sources(list(opts.given), opts.format, opts.columns, opts.header, opts.hf_split,
                          opts.hf_config, progress)
    for line in opened.notes:
        note(line)
    drafts = draft_rows(opened, bad)
    corpus = read_corpus(opts.corpus, opts.corpus_text, bad, progress) if opts.corpus else None
    bad.check()
    total = sum(len(rows) for rows in drafts.values())
    note(f"read {total:,} row(s)" + (f"; skipped {bad.count:,} bad row(s) (--skip-bad), the first: {bad.listed[0]}"
                                     if bad.count else ""))
    if not total:
        raise HarnessError(f"no rows to import in {', '.join(ref for _, ref in opts.given)}")
    shared, how = _shared_instruction(drafts, opened.shape)
    drafts = {split: [_with_instruction(d, shared) for d in rows] for split, rows in drafts.items()}
    deduped, removed = deduplicate(drafts)
    note(f"duplicates: {removed.describe()}")
    choice = infer_task([d for rows in deduped.values() for d in rows], opts.task)
    note(f"task: {choice.task} ({choice.reason})")
    if choice.task in ("qa", "generation") and removed.other_targets:
        deduped, added = with_references(deduped, removed)
        note(f"references: {added:,} other target(s) of duplicate inputs kept as extra references of the row kept")
    if opts.instruction:
        how = "--instruction" + (f" (it replaces {how})" if shared else "")
    elif not shared:
        how = f"{how + '; ' if how else ''}none in the data, so the default for {choice.task}: edit suite.toml or pass --instruction"
    note(f"instruction: {how}")
    splits = _splits(deduped, choice, opts, note)
    examples = {split: [_example(d, choice) for d in rows] for split, rows in splits.items()}
    spec = _spec(opts, choice, examples, shared, corpus, note)
    files = _files(spec, examples, corpus, ImportRecord(
        spec, opts.command, sources_of(opts.given) + ((f"corpus: {corpus.source}",) if corpus else ()),
        tuple(notes), {s: len(rows) for s, rows in examples.items()} | {"corpus": len(corpus.rows) if corpus else 0},
        how))
    write_suite(opts.out, files, opts.force, lambda folder: _check(folder, known_metrics))
    say(f"wrote {opts.out} ({', '.join(files)})")
    return opts.out


def _shared_instruction(drafts: dict[str, list[Draft]], shape: str) -> tuple[str | None, str]:
    """The system message / instruction that at least half the rows carry: the suite's instruction."""
    rows = [d for part in drafts.values() for d in part]
    counts = Counter(d.instruction for d in rows if d.instruction)
    if not counts:
        return None, ""
    text, k = counts.most_common(1)[0]
    what = "system message" if shape in ("openai", "sharegpt") else "instruction"
    if 2 * k < len(rows):
        return None, (f"no {what} shared by half the rows (the most common is on {k:,} of {len(rows):,}): "
                      "each row keeps its own in its input")
    rest = "" if k == len(rows) else "; rows with another keep theirs in their input"
    return text, f"the {what} of {k:,} of {len(rows):,} rows{rest}"


def _with_instruction(d: Draft, shared: str | None) -> Draft:
    if d.instruction is None or d.instruction == shared:
        return d
    return dataclasses.replace(d, input=d.with_instruction)


def _splits(deduped: dict[str, list[Draft]], choice: TaskChoice, opts: ImportOptions,
            note: Callable[[str], None]) -> dict[str, list[Draft]]:
    """train / test / validation: kept as given, or made by a seeded (stratified) split."""
    label_of = choice.label_of

    def label(d: Draft) -> str:
        assert label_of is not None
        return label_of[str(d.target)]

    out = {s: rows for s, rows in deduped.items() if s != "all"}
    source = deduped.get("all") or out.get("train", [])
    test = None if out.get("test") else opts.test_size or DEFAULT_TEST
    validation: Size | None
    if "all" in deduped:
        validation = opts.validation_size or DEFAULT_VALIDATION
    else:
        validation = None if out.get("validation") else opts.validation_size
    if test is None and validation is None:
        kept = ", ".join(f"{s} {len(out[s]):,}" for s in SPLIT_ORDER if s in out)
        note(f"splits: kept as given ({kept})")
        return _nonempty(out)
    made = split_rows(source, test, validation, opts.seed, label if label_of is not None else None)
    out["train"] = [source[i] for i in made.train]
    if test is not None:
        out["test"] = [source[i] for i in made.test]
    if validation is not None and made.validation:
        out["validation"] = [source[i] for i in made.validation]
    sizes = ", ".join(f"{s} {len(out[s]):,}" for s in SPLIT_ORDER if s in out)
    asked = ", ".join(f"{s} {size.describe()}" for s, size in (("test", test), ("validation", validation)) if size)
    note(f"splits: {sizes} ({made.note}; {asked})")
    return _nonempty(out)


def _nonempty(out: dict[str, list[Draft]]) -> dict[str, list[Draft]]:
    for split in ("train", "test"):
        if not out.get(split):
            raise HarnessError(f"the {split} split is empty once bad rows and duplicates are left out; "
                               "give it rows that no other split repeats")
    return out


def _example(d: Draft, choice: TaskChoice) -> dict[str, Any]:
    row: dict[str, Any] = {"id": d.id, "input": d.input, "target": final_target(d.target, choice)}
    if d.meta:
        row["meta"] = d.meta
    return row


def _spec(opts: ImportOptions, choice: TaskChoice, examples: dict[str, list[dict[str, Any]]],
          shared: str | None, corpus: Corpus | None, note: Callable[[str], None]) -> SuiteSpec:
    targets = [row["target"] for rows in examples.values() for row in rows]
    tokens, how = max_new_tokens(targets, choice)
    if opts.max_new_tokens is not None:
        tokens, how = opts.max_new_tokens, "--max-new-tokens"
    metrics = METRICS[choice.task]
    note(f"metrics: {', '.join(metrics)}; max_new_tokens {tokens} ({how})")
    if corpus is not None:
        note(f"corpus: {corpus.note}")
    name = opts.name or opts.out.resolve().name
    if not name.strip():
        raise HarnessError("--name: the suite needs a name")
    description = opts.description or f"Imported from {', '.join(ref for _, ref in opts.given)} by sft-harness import."
    instruction = opts.instruction or shared or DEFAULT_INSTRUCTIONS[choice.task]
    return SuiteSpec(name, choice.task, description, instruction, choice.labels, choice.fields, metrics,
                     tuple(s for s in SPLIT_ORDER if examples.get(s)), corpus is not None, tokens)


def _files(spec: SuiteSpec, examples: dict[str, list[dict[str, Any]]], corpus: Corpus | None,
           record: ImportRecord) -> dict[str, bytes]:
    files = {"suite.toml": suite_toml(spec).encode("utf-8")}
    files |= {f"{split}.jsonl": jsonl_bytes(examples[split]) for split in spec.splits}
    if corpus is not None:
        files["corpus.jsonl"] = jsonl_bytes(corpus.rows)
    files["README.md"] = render_readme(record).encode("utf-8")
    return files


def _check(folder: Path, known_metrics: MetricCheck | None) -> None:
    """The written suite must pass the validator; a problem here is the importer's bug, not the user's."""
    _, problems = validate(str(folder), known_metrics)
    if problems:
        raise HarnessError(f"the imported suite does not validate ({len(problems)} problem(s); a bug of the "
                           f"importer, please report it): {problems[0]}")
