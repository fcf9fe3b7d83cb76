#!/usr/bin/env python3
"""Build the built-in suites in suites/ from the raw public data in shared/datasets/.

Standard library only, and deterministic: fixed seeds, sorted keys, `\\n` newlines, so running it
twice gives byte-identical files (tests/test_build_suites.py checks that the committed suites/
match this script's output).

    python scripts/build_suites.py                    # -> suites/
    python scripts/build_suites.py --scale 4          # bigger train/test -> suites-x4/
    python scripts/build_suites.py --src DIR --out DIR
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SRC = REPO_ROOT / ".." / "shared" / "datasets"
SEED = 20240917

Row = dict[str, Any]

# Upstream of each raw folder (from shared/datasets/README.md).
SOURCES: dict[str, dict[str, str]] = {
    "covid-faq": {
        "repo": "deepset-ai/COVID-QA",
        "commit": "fb2eb5e",
        "paths": "`data/faqs/faq_covidbert.csv`, `data/eval_question_similarity_en.csv`",
        "licence": "Apache-2.0",
        "attribution": (
            "COVID-QA by deepset (https://github.com/deepset-ai/COVID-QA), Apache License 2.0. "
            "The FAQ answers quote the public FAQ pages of the CDC, WHO, ECDC, the German Federal "
            "Ministry of Health (Bundesministerium für Gesundheit), the California Department of "
            "Public Health and the Washington State Department of Health, as collected by deepset."
        ),
    },
    "banking77": {
        "repo": "PolyAI-LDN/task-specific-datasets",
        "commit": "57ec275",
        "paths": "`banking_data/train.csv`, `banking_data/test.csv`, `banking_data/categories.json`",
        "licence": "CC BY 4.0",
        "attribution": (
            'BANKING77 by PolyAI: Casanueva, Temčinas, Gerz, Henderson and Vulić, "Efficient Intent '
            'Detection with Dual Sentence Encoders" (2020), https://github.com/PolyAI-LDN/'
            "task-specific-datasets, licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). "
            "Changes: a subset of intents and examples, intent names rewritten as readable phrases, "
            "whitespace normalised, converted to JSON lines."
        ),
    },
    "poem-sentiment": {
        "repo": "google-research-datasets/poem-sentiment",
        "commit": "612e9a1",
        "paths": "`data/train.tsv`, `data/dev.tsv`, `data/test.tsv`",
        "licence": "CC BY 4.0",
        "attribution": (
            'Poem Sentiment by Google Research: Sheng and Uthus, "Investigating Societal Biases in a '
            'Poetry Composition System" (2020), https://arxiv.org/abs/2011.02686, '
            "https://github.com/google-research-datasets/poem-sentiment, licensed CC BY 4.0 "
            '(https://creativecommons.org/licenses/by/4.0/). Changes: the "mixed" label dropped, '
            "training rows sampled, numeric labels rewritten as words, converted to JSON lines."
        ),
    },
    "snips": {
        "repo": "sonos/nlu-benchmark",
        "commit": "b86ac7f",
        "paths": "`2017-06-custom-intent-engines/<Intent>/{train,validate}_<Intent>.json`",
        "licence": "CC0 1.0",
        "attribution": (
            "Snips NLU benchmark by Snips/Sonos (https://github.com/sonos/nlu-benchmark), dedicated to "
            "the public domain under CC0 1.0; credited here as a courtesy."
        ),
    },
    "e2e": {
        "repo": "tuetschek/e2e-dataset",
        "commit": "ab0d967",
        "paths": "`devset.csv`, `testset_w_refs.csv`",
        "licence": "CC BY-SA 4.0",
        "attribution": (
            'The E2E dataset by Jekaterina Novikova, Ondřej Dušek and Verena Rieser: "The E2E Dataset: '
            'New Challenges for End-to-End Generation" (SIGDIAL 2017), '
            "https://github.com/tuetschek/e2e-dataset, licensed CC BY-SA 4.0 "
            "(https://creativecommons.org/licenses/by-sa/4.0/). Changes: a sample of meaning "
            "representations, references grouped per MR, duplicate references and extra whitespace "
            "removed, converted to JSON lines. **ShareAlike: the files of this suite are a derived "
            "work and are distributed under CC BY-SA 4.0, not under the repository's licence.**"
        ),
    },
}


@dataclass
class BuiltSuite:
    """Everything one suite folder holds, before it is written."""

    name: str
    toml: dict[str, Any]
    splits: dict[str, list[Row]]  # split name -> examples, in file order
    corpus: list[Row] = field(default_factory=list)
    source: str = ""
    notes: list[str] = field(default_factory=list)  # "how it was built", with the counts
    measures: str = ""
    expect: str = ""
    expect_short: str = ""
    files: dict[str, str] = field(default_factory=dict)  # other files of the folder: name -> text


# ---------------------------------------------------------------- helpers


def rng_for(name: str, scale: int) -> random.Random:
    # One generator per suite, so adding a suite never changes another's sample.
    digest = hashlib.sha256(f"{SEED}:{name}:{scale}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def clean(text: str) -> str:
    """One line, single spaces (also folds no-break spaces)."""
    return " ".join(text.split())


def norm_key(text: str) -> str:
    return clean(text).lower()


def n_words(parts: list[str]) -> int:
    return sum(len(p.split()) for p in parts)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # A JSON string is a valid TOML basic string (same escapes).
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def _is_tables(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def toml_dump(doc: dict[str, Any], comments: dict[str, list[str]] | None = None) -> str:
    """Keys, then [tables], then [[arrays of tables]]; `comments` go above a table's first header."""
    comments = comments or {}
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict) and not _is_tables(v)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", *comments.get(k, []), f"[{k}]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
    for k, v in doc.items():
        if _is_tables(v):
            lines += ["", *comments.get(k, [])]
            for i, table in enumerate(v):
                lines += ([""] if i else []) + [f"[[{k}]]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in table.items()]
    return "\n".join(lines) + "\n"


# Written above the [[judges]] of a suite that declares them.
JUDGES_COMMENT = [
    '# Judged metrics (README, "Judged metrics"): graded by a model given with --judge-model NAME (or a',
    '# [[models]] table named "judge" in --config); without one they are left out.',
]
# People's grades are not derived from the data: they are kept beside this script and copied in.
GRADES_DIR = Path(__file__).resolve().parent / "grades"


def base_toml(
    name: str,
    task: str,
    description: str,
    instruction: str,
    metrics: list[str],
    max_new_tokens: int,
    splits: dict[str, list[Row]],
    *,
    labels: list[str] | None = None,
    fields: list[str] | None = None,
    corpus: bool = False,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "task": task,
        "description": description,
        "instruction": instruction,
        "labels": labels or [],
        "fields": fields or [],
        "metrics": metrics,
        "splits": {s: f"{s}.jsonl" for s in ("train", "test", "validation") if splits.get(s)},
    }
    if corpus:
        doc["corpus"] = {"path": "corpus.jsonl"}
    doc["generation"] = {"max_new_tokens": max_new_tokens, "stop": []}
    return doc


# ---------------------------------------------------------------- support-faq (covid-faq)

# Full source names -> the short names used in meta.
SHORT_SOURCE = {
    "Bundesministerium für Gesundheit": "BMG",
    "California Department of Public Health": "CDPH",
    "Washington State Department of Health": "WA DOH",
}
# Tokens that end in a full stop but do not end a sentence in these answers.
ABBREVIATIONS = {"U.S.", "U.", "e.g.", "(e.g.", "i.e.", "(i.e.", "Dr.", "St.", "Mr.", "Ms.", "Mrs."}
SENT_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"“‘(\[]?[A-Z0-9])")
LEAD_WORDS = 50


def short_source(name: str) -> str:
    m = re.search(r"\(([A-Z]+)\)\s*$", name)
    return m.group(1) if m else SHORT_SOURCE.get(name.strip(), clean(name))


def sentences(line: str) -> list[str]:
    out: list[str] = []
    start = 0
    for m in SENT_BREAK.finditer(line):
        piece = line[start : m.start()]
        if piece.split()[-1] in ABBREVIATIONS:
            continue
        out.append(piece)
        start = m.end()
    out.append(line[start:])
    return [s for s in out if s]


def answer_lines(answer: str) -> list[str]:
    return [clean(line) for line in answer.splitlines() if line.strip()]


def answer_lead(lines: list[str], max_words: int = LEAD_WORDS) -> str:
    """The first sentence(s) of an answer, up to max_words, cut at a sentence boundary.

    A list introduced by a colon keeps its first items, joined with "; ", so the lead is
    still a sentence; a leading heading without punctuation is skipped.
    """
    if len(lines) > 1 and not lines[0].endswith((".", "!", "?", ":", ")", "]", '"', "”")):
        lines = lines[1:]
    sents = sentences(lines[0])
    lead = [sents[0]]
    for s in sents[1:]:
        if n_words(lead + [s]) > max_words:
            break
        lead.append(s)
    if not lead[-1].endswith(":"):
        return " ".join(lead)
    items: list[str] = []
    if len(lead) == len(sents):  # the colon introduces the lines below
        for item in lines[1:]:
            if item.endswith(":") or (
                (items or len(lead) > 1) and n_words(lead + items + [item]) > max_words
            ):
                break
            items.append(item.rstrip(".;,"))
    if items:
        return " ".join(lead) + " " + "; ".join(items) + "."
    return " ".join(lead[:-1]) if len(lead) > 1 else lead[0]


def build_support_faq(src: Path, scale: int) -> BuiltSuite:
    name = "support-faq"
    rng = rng_for(name, scale)
    raw = read_csv(src / "covid-faq" / "faq_covidbert.csv")
    english = [(i, r) for i, r in enumerate(raw) if r["lang"].strip() == "en"]

    corpus: list[Row] = []
    faq_by_question: dict[str, Row] = {}
    dropped_dupes: list[str] = []
    for i, r in english:
        key = norm_key(r["question"])
        if key in faq_by_question:  # keep the first entry of a repeated question
            dropped_dupes.append(f"faq-{i:04d}")
            continue
        lines = answer_lines(r["answer"])
        entry = {
            "id": f"faq-{i:04d}",
            "title": clean(r["question"]),
            "text": "\n".join(lines),
            "lead": answer_lead(lines),
            "source": short_source(r["source"]),
            "category": clean(r["category"]),
        }
        faq_by_question[key] = entry
        corpus.append(entry)

    pairs = read_csv(src / "covid-faq" / "eval_question_similarity_en.csv")
    similar = [p for p in pairs if p["similar"].strip() == "1"]
    seen_pairs: set[tuple[str, str]] = set()
    by_faq: dict[str, list[str]] = defaultdict(list)
    unmatched = duplicate_pairs = 0
    for p in similar:
        q1, q2 = norm_key(p["question_1"]), norm_key(p["question_2"])
        if q1 not in faq_by_question:
            unmatched += 1
            continue
        if (q1, q2) in seen_pairs:  # the file lists a pair twice when its FAQ question is repeated
            duplicate_pairs += 1
            continue
        seen_pairs.add((q1, q2))
        by_faq[faq_by_question[q1]["id"]].append(clean(p["question_2"]))
    matched = sum(len(v) for v in by_faq.values())

    # Split by FAQ entry: test entries are never seen, in any wording, in training.
    faq_ids = sorted(by_faq)
    rng.shuffle(faq_ids)
    test_target = min(60 * scale, matched // 2)
    test_ids: set[str] = set()
    n_test = 0
    for fid in faq_ids:
        if n_test >= test_target:
            break
        test_ids.add(fid)
        n_test += len(by_faq[fid])

    entries = {e["id"]: e for e in corpus}

    def example(ex_id: str, question: str, fid: str, kind: str) -> Row:
        e = entries[fid]
        meta = {"source": e["source"], "question_type": kind}
        if e["category"]:
            meta["category"] = e["category"]
        return {"id": ex_id, "input": question, "target": e["lead"], "doc_ids": [fid], "meta": meta}

    train: list[Row] = []
    test: list[Row] = []
    for fid in sorted(by_faq):
        for k, q in enumerate(by_faq[fid]):
            row = example(f"{fid}-p{k}", q, fid, "paraphrase")
            (test if fid in test_ids else train).append(row)
    n_train_para = len(train)
    # Too few paraphrases for the train target: add the FAQ's own questions of non-test entries.
    train_target = 150 * scale
    originals = [e["id"] for e in corpus if e["id"] not in test_ids]
    rng.shuffle(originals)
    for fid in originals[: max(0, train_target - len(train))]:
        train.append(example(f"{fid}-q", entries[fid]["title"], fid, "original"))
    train.sort(key=lambda r: r["id"])
    n_orig = len(train) - n_train_para

    splits = {"train": train, "test": test}
    corpus_rows = [{"id": e["id"], "title": e["title"], "text": e["text"]} for e in corpus]
    lead_words = sorted(len(e["lead"].split()) for e in corpus)
    toml = base_toml(
        name,
        "qa",
        "COVID-19 questions from the public answered in the words of a public-health FAQ "
        "(CDC, WHO, ECDC, ...); test questions are about FAQ entries never seen in training.",
        "Answer the question about COVID-19 in one or two sentences, in the words of the public-health FAQ.",
        ["f1", "bleu", "rouge_l"],
        96,
        splits,
        corpus=True,
    )
    toml["judges"] = [{"name": "correct", "mode": "reference"}, {"name": "preferred", "mode": "pairwise"}]
    human = (GRADES_DIR / "support-faq-human.jsonl").read_text(encoding="utf-8")
    n_sources = Counter(entries[r["doc_ids"][0]]["source"] for r in test)
    return BuiltSuite(
        name=name,
        toml=toml,
        splits=splits,
        corpus=corpus_rows,
        source="covid-faq",
        files={"human.jsonl": human},
        notes=[
            f"Corpus: the {len(english)} English FAQ entries of `faq_covidbert.csv` (every row has "
            f"`lang` = en), less {len(dropped_dupes)} whose question repeats an earlier one "
            f"(case and whitespace ignored; the first is kept, dropped: {', '.join(dropped_dupes)}): "
            f"{len(corpus_rows)} documents. `id` = `faq-` + the row's index in the CSV, `title` = the "
            "question, `text` = the full answer, one paragraph or list item a line, whitespace folded.",
            f"Examples: the {len(similar)} pairs with `similar` = 1 in `eval_question_similarity_en.csv`; "
            f"question_1 matched an English FAQ question (case and whitespace ignored) for "
            f"{len(similar) - unmatched} of them ({unmatched} unmatched); {duplicate_pairs} exact "
            f"repeats were dropped, leaving {matched} paraphrases of {len(by_faq)} FAQ entries. "
            "input = the paraphrase (question_2), as written (typos included).",
            f"Target: the *lead* of the FAQ answer, its first sentences up to {LEAD_WORDS} words cut at a "
            'sentence boundary (a list introduced by a colon keeps its first items, joined with "; "; '
            "a heading line is skipped); the full answer stays in the corpus. Lead length in words: "
            f"min {lead_words[0]}, median {lead_words[len(lead_words) // 2]}, max {lead_words[-1]} "
            "(a first sentence longer than the limit is kept whole). doc_ids = [the FAQ entry]; "
            "meta = source, category (when the FAQ has one), question_type.",
            f"Split by FAQ entry with a seeded shuffle: test = the paraphrases of {len(test_ids)} entries "
            f"({len(test)} questions; sources {dict(sorted(n_sources.items()))}), train = the paraphrases "
            f"of the other {len(by_faq) - len(test_ids)} entries ({n_train_para})"
            + (
                f" plus the original FAQ question of {n_orig} non-test entries (question_type = "
                '"original") to reach the train size'
                if n_orig
                else ""
            )
            + ". No FAQ entry has questions in both train and test.",
            f"Judges: `correct` (a reference judge) and `preferred` (pairwise). `human.jsonl` holds "
            f"{len(human.splitlines())} people's grades of test outputs (graded by a developer reading "
            "each one against the reference; README, \"Judged metrics\"), copied from "
            "`scripts/grades/support-faq-human.jsonl`.",
            f"The paraphrases cover only {', '.join(sorted({entries[f]['source'] for f in by_faq}))} "
            "entries (the first rows of the FAQ), so every example asks about those; the other sources' "
            "entries are in the corpus as distractors for retrieval.",
            'Kept as they are in the data: typos in paraphrases ("COVID-10", "illnes"), loose '
            'pairings ("How can I disinfect my hands from corona?" is paired with the FAQ on cleaning '
            'products for surfaces), and categories such as "Preparing your Home for COVID-20" ... '
            '"COVID-25" (a spreadsheet fill-down of "COVID-19") and "Sympotms & Testing".',
        ],
        measures=(
            "Knowledge-base question answering: given a user's wording of a question, produce the "
            "answer the FAQ gives, scored by token F1 (primary), BLEU and ROUGE-L against the answer's "
            "lead. Every test question is about an FAQ entry whose answer never appears in training."
        ),
        expect=(
            "**Retrieval (RAG) should win.** The test asks about knowledge the model never saw in "
            "training, so fine-tuning can only teach the answer style, not the facts; retrieval can "
            "put the right FAQ entry (its title is a close paraphrase of the question) into the "
            "prompt, and the target is that entry's opening words. RAG + fine-tuning may add a "
            "little by teaching the model to copy the lead of the retrieved passage."
        ),
        expect_short="rag (test knowledge is never in training)",
    )


# ---------------------------------------------------------------- banking-intents (banking77)

BANKING_INTENTS = [
    "age_limit",
    "apple_pay_or_google_pay",
    "atm_support",
    "card_arrival",
    "change_pin",
    "country_support",
    "edit_personal_details",
    "exchange_rate",
    "lost_or_stolen_card",
    "request_refund",
    "terminate_account",
    "transaction_charged_twice",
]


def readable(intent: str) -> str:
    return intent.replace("_", " ").lower()


def build_banking(src: Path, scale: int) -> BuiltSuite:
    name = "banking-intents"
    rng = rng_for(name, scale)
    n_train, n_val, n_test = 12 * scale, 4 * scale, 5 * scale
    known = set(json.loads((src / "banking77" / "categories.json").read_text(encoding="utf-8")))
    missing = set(BANKING_INTENTS) - known
    if missing:
        raise SystemExit(f"banking77: intents not in categories.json: {sorted(missing)}")
    train_rows = read_csv(src / "banking77" / "train.csv")
    test_rows = read_csv(src / "banking77" / "test.csv")
    test_texts = {norm_key(r["text"]) for r in test_rows}

    # Train rows that repeat another train row or a test row are left out (no leakage).
    pools: dict[str, list[tuple[int, str]]] = defaultdict(list)
    seen: set[str] = set()
    skipped_dup = skipped_leak = 0
    for i, r in enumerate(train_rows):
        if r["category"] not in BANKING_INTENTS:
            continue
        key = norm_key(r["text"])
        if key in test_texts:
            skipped_leak += 1
        elif key in seen:
            skipped_dup += 1
        else:
            pools[r["category"]].append((i, clean(r["text"])))
        seen.add(key)
    test_pools: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for i, r in enumerate(test_rows):
        if r["category"] in BANKING_INTENTS:
            test_pools[r["category"]].append((i, clean(r["text"])))

    # Validation is taken first so that a large --scale cannot leave it empty.
    splits: dict[str, list[Row]] = {"train": [], "validation": [], "test": []}
    for intent in BANKING_INTENTS:
        pool = pools[intent][:]
        rng.shuffle(pool)
        tpool = test_pools[intent][:]
        rng.shuffle(tpool)
        picks = {
            "validation": [("train", p) for p in pool[:n_val]],
            "train": [("train", p) for p in pool[n_val : n_val + n_train]],
            "test": [("test", p) for p in tpool[:n_test]],
        }
        for split, picked in picks.items():
            for file, (i, text) in picked:
                splits[split].append(
                    {
                        "id": f"{file}-{i:05d}",
                        "input": text,
                        "target": readable(intent),
                        "meta": {"intent": intent},
                    }
                )
    for rows in splits.values():
        rows.sort(key=lambda r: r["id"])
    labels = sorted(readable(i) for i in BANKING_INTENTS)
    toml = base_toml(
        name,
        "classification",
        f"Intent of online-banking customer messages (BANKING77), {len(labels)} distinct intents.",
        "Classify what the bank customer's message is asking about.",
        ["accuracy", "f1"],
        10,
        splits,
        labels=labels,
    )
    return BuiltSuite(
        name=name,
        toml=toml,
        splits=splits,
        source="banking77",
        notes=[
            f"{len(labels)} of the 77 intents, chosen by hand to be clearly distinct from each other: "
            + ", ".join(f"`{i}`" for i in BANKING_INTENTS)
            + ". Labels are the intent names with `_` replaced by spaces, lower case (meta.intent keeps "
            "the original name).",
            f"Per intent, seeded sample: {n_val} validation and up to {n_train} train from `train.csv`, "
            f"up to {n_test} test from `test.csv`. Train rows that repeat a test row ({skipped_leak}) or an "
            f"earlier train row ({skipped_dup}) of these intents were left out (case and whitespace "
            "ignored). Whitespace is folded; the text is otherwise as written (typos included). "
            "ids = source file + row index.",
        ],
        measures=(
            "Intent classification of short, informal customer messages into a fixed label set; "
            "accuracy (primary) and macro F1 over the labels."
        ),
        expect=(
            "**Fine-tuning (LoRA) should win.** The label names are only a hint of where each intent's "
            'boundary lies (the data labels "Has there been any activity on my card today?" *lost or stolen card*); a few labelled examples '
            "per intent teach the boundary and the exact label strings. Few-shot prompting helps a "
            "little; retrieval has no corpus to add."
        ),
        expect_short="sft (label boundaries are learnt from examples)",
    )


# ---------------------------------------------------------------- poem-sentiment

POEM_LABELS = {"-1": "negative", "0": "no impact", "1": "positive"}  # "2" (mixed) is dropped


def read_poems(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            pid, verse, label = line.split("\t")
            rows.append((pid.strip(), clean(verse), label.strip()))
    return rows


def build_poem(src: Path, scale: int) -> BuiltSuite:
    name = "poem-sentiment"
    rng = rng_for(name, scale)
    data = {s: read_poems(src / "poem-sentiment" / f"{s}.tsv") for s in ("train", "dev", "test")}
    counts = {s: Counter(r[2] for r in rows) for s, rows in data.items()}
    # Train leans towards balance (the raw train set is 62% "no impact") so the rare labels are learnt.
    train_per_label = {"no impact": 80 * scale, "negative": 50 * scale, "positive": 50 * scale}
    val_per_label = 15 * scale

    def row(split: str, r: tuple[str, str, str]) -> Row:
        return {"id": f"{split}-{int(r[0]):04d}", "input": r[1], "target": POEM_LABELS[r[2]]}

    def stratified(rows: list[tuple[str, str, str]], per_label: dict[str, int]) -> list[tuple[str, str, str]]:
        out = []
        for code, label in POEM_LABELS.items():
            pool = [r for r in rows if r[2] == code]
            rng.shuffle(pool)
            out += pool[: per_label[label]]
        return out

    splits = {
        "train": [row("train", r) for r in stratified(data["train"], train_per_label)],
        "validation": [
            row("dev", r) for r in stratified(data["dev"], dict.fromkeys(POEM_LABELS.values(), val_per_label))
        ],
        "test": [row("test", r) for r in data["test"] if r[2] in POEM_LABELS],
    }
    for rows in splits.values():
        rows.sort(key=lambda r: r["id"])
    dist = {s: dict(sorted(Counter(r["target"] for r in rows).items())) for s, rows in splits.items()}
    toml = base_toml(
        name,
        "classification",
        "Sentiment of single verses of poetry from Project Gutenberg.",
        "Classify the sentiment that this line of poetry expresses.",
        ["accuracy", "f1"],
        8,
        splits,
        labels=sorted(POEM_LABELS.values()),
    )
    return BuiltSuite(
        name=name,
        toml=toml,
        splits=splits,
        source="poem-sentiment",
        notes=[
            'Labels: -1 -> "negative", 0 -> "no impact", 1 -> "positive". Label 2 ("mixed") '
            f"occurs only in `train.tsv` ({counts['train'].get('2', 0)} rows) and is dropped.",
            f"Raw label counts (-1/0/1/2): train {dict(sorted(counts['train'].items()))}, dev "
            f"{dict(sorted(counts['dev'].items()))}, test {dict(sorted(counts['test'].items()))}.",
            f"train: a seeded sample of `train.tsv`, up to {train_per_label} per label (more balanced "
            f"than the raw data) -> {dist['train']}. validation: up to {val_per_label} per label from "
            f"`dev.tsv` -> {dist['validation']}. test: every row of `test.tsv` -> {dist['test']}. "
            "ids = split + the row id of the TSV; whitespace folded.",
        ],
        measures=(
            "Sentiment of a single verse, often archaic and out of context; accuracy (primary) and "
            'macro F1. The test set is dominated by "no impact" (66%), so accuracy alone flatters a '
            "model that always answers it: read macro F1 too."
        ),
        expect=(
            '**Fine-tuning should win, modestly.** A small model\'s idea of "sentiment" does not match '
            'the annotators\' (most verses are "no impact"); examples calibrate that. Few-shot '
            "prompting is the cheap alternative; retrieval has no corpus to add."
        ),
        expect_short="sft (calibrates what counts as sentiment)",
    )


# ---------------------------------------------------------------- snips-slots

SNIPS_INTENTS = ["BookRestaurant", "GetWeather"]


def read_snips(path: Path, intent: str) -> list[list[dict[str, str]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [ex["data"] for ex in data[intent]]


def build_snips(src: Path, scale: int) -> BuiltSuite:
    name = "snips-slots"
    rng = rng_for(name, scale)
    n_train, n_val, n_test = 75 * scale, 20 * scale, 30 * scale
    splits: dict[str, list[Row]] = {"train": [], "validation": [], "test": []}
    fields: set[str] = set()
    skipped: Counter[str] = Counter()
    for intent in SNIPS_INTENTS:
        usable: dict[str, list[Row]] = {}
        for file in ("train", "validate"):
            rows: list[Row] = []
            for i, pieces in enumerate(read_snips(src / "snips" / intent / f"{file}_{intent}.json", intent)):
                names = [p["entity"] for p in pieces if "entity" in p]
                fields.update(names)
                if not names:
                    skipped["no slot"] += 1
                    continue
                if len(set(names)) < len(names):  # repeated entity: its value would not be one string
                    skipped["repeated entity"] += 1
                    continue
                target = {p["entity"]: clean(p["text"]) for p in pieces if "entity" in p}
                rows.append(
                    {
                        "id": f"{intent}-{file}-{i:03d}",
                        "input": clean("".join(p["text"] for p in pieces)),
                        "target": target,
                        "meta": {"intent": intent},
                    }
                )
            usable[file] = rows
        train_texts = {norm_key(r["input"]) for r in usable["train"]}
        test_pool = [r for r in usable["validate"] if norm_key(r["input"]) not in train_texts]
        skipped["test query also in train"] += len(usable["validate"]) - len(test_pool)
        pool = usable["train"][:]
        rng.shuffle(pool)
        rng.shuffle(test_pool)
        # Validation is taken first so that a large --scale cannot leave it empty.
        splits["validation"] += pool[:n_val]
        splits["train"] += pool[n_val : n_val + n_train]
        splits["test"] += test_pool[:n_test]
    for rows in splits.values():
        rows.sort(key=lambda r: r["id"])
    field_list = sorted(fields)
    not_substring = sum(
        v not in r["input"] for rows in splits.values() for r in rows for v in r["target"].values()
    )
    toml = base_toml(
        name,
        "extraction",
        "Slots of voice-assistant requests (weather forecasts, restaurant bookings) as JSON.",
        "Extract the details of this voice-assistant request. Copy each value exactly as it is "
        "written in the request.",
        ["f1", "exact_match"],
        64,
        splits,
        fields=field_list,
    )
    return BuiltSuite(
        name=name,
        toml=toml,
        splits=splits,
        source="snips",
        notes=[
            f"Intents: {', '.join(SNIPS_INTENTS)}. The files are UTF-8 JSON; each query is a list of "
            "text pieces, some tagged with an `entity`. input = the pieces joined, whitespace folded; "
            "target = {entity: value} with each value's whitespace folded (values are substrings of "
            f"the input: {not_substring} exceptions); meta.intent = the intent.",
            f"Skipped queries, over both intents and both files: {skipped['no slot']} with no slot, "
            f"{skipped['repeated entity']} where an entity type occurs twice (so every value stays one "
            f"string), {skipped['test query also in train']} `validate` queries whose text also occurs "
            "in `train`.",
            f"Per intent, seeded sample: {n_val} validation and up to {n_train} train from "
            f"`train_<Intent>.json`, up to {n_test} test from `validate_<Intent>.json`. `fields` = every entity name in the two "
            f"intents' files ({len(field_list)}).",
        ],
        measures=(
            "Structured extraction: the model must answer with a JSON object of the slots it finds, "
            "with the dataset's field names and values copied from the request. F1 over (field, value) "
            "pairs (primary) and exact match of the whole object."
        ),
        expect=(
            "**Fine-tuning should win clearly.** The field names (`timeRange`, `party_size_number`, "
            "`spatial_relation`, ...) and where one slot ends are annotation conventions a model cannot "
            "guess from the instruction; examples teach them, and the JSON format. Few-shot prompting "
            "gets part of the way; retrieval has no corpus."
        ),
        expect_short="sft (annotation conventions and JSON format)",
    )


# ---------------------------------------------------------------- e2e-nlg


def group_refs(path: Path) -> tuple[list[tuple[str, list[str]]], int]:
    """MRs in order of first appearance with their distinct references; and the repeats dropped."""
    groups: dict[str, list[str]] = {}
    repeats = 0
    for r in read_csv(path):
        refs = groups.setdefault(clean(r["mr"]), [])
        ref = clean(r["ref"])
        if ref in refs:
            repeats += 1
        elif ref:
            refs.append(ref)
    return list(groups.items()), repeats


def build_e2e(src: Path, scale: int) -> BuiltSuite:
    name = "e2e-nlg"
    rng = rng_for(name, scale)
    n_train, n_val, n_test = 150 * scale, 40 * scale, 48 * scale
    dev, dev_repeats = group_refs(src / "e2e" / "devset.csv")
    test, test_repeats = group_refs(src / "e2e" / "testset_w_refs.csv")
    dev_idx = list(range(len(dev)))
    rng.shuffle(dev_idx)
    test_idx = list(range(len(test)))
    rng.shuffle(test_idx)

    def row(prefix: str, k: int, groups: list[tuple[str, list[str]]], all_refs: bool) -> Row:
        mr, refs = groups[k]
        return {
            "id": f"{prefix}-mr{k:03d}",
            "input": mr,
            "target": refs if all_refs else refs[0],
            "meta": {"n_refs": len(refs)},
        }

    splits = {
        "train": [row("dev", k, dev, False) for k in dev_idx[n_val : n_val + n_train]],
        "validation": [row("dev", k, dev, True) for k in dev_idx[:n_val]],
        "test": [row("test", k, test, True) for k in test_idx[:n_test]],
    }
    for rows in splits.values():
        rows.sort(key=lambda r: r["id"])
    refs_per_test = sorted(len(r["target"]) for r in splits["test"])
    overlap = {mr for mr, _ in dev} & {mr for mr, _ in test}
    toml = base_toml(
        name,
        "generation",
        "Restaurant descriptions written from meaning representations (E2E NLG challenge).",
        "Write a short description of the restaurant in fluent English (one or two sentences), "
        "using every attribute given and nothing else.",
        ["bleu", "rouge_l", "chrf"],
        64,
        splits,
    )
    return BuiltSuite(
        name=name,
        toml=toml,
        splits=splits,
        source="e2e",
        notes=[
            f"`devset.csv` has {len(dev)} distinct MRs, `testset_w_refs.csv` {len(test)} "
            f"({len(overlap)} MRs in both). References of one MR are grouped, whitespace folded, and "
            f"exact repeats within an MR dropped ({dev_repeats} in dev, {test_repeats} in test).",
            f"Seeded samples. validation: {len(splits['validation'])} MRs of `devset.csv`, target = all "
            f"their references. train: {len(splits['train'])} other dev MRs, target = the first reference "
            f"listed for the MR. test: {len(splits['test'])} MRs of `testset_w_refs.csv`, target = all their references "
            f"({refs_per_test[0]} to {refs_per_test[-1]} per MR, median {refs_per_test[len(refs_per_test) // 2]}). "
            "input = the MR string as written (`name[...], eatType[...], ...`); ids = file + the MR's "
            "index in order of first appearance; meta.n_refs = the number of references.",
        ],
        measures=(
            "Data-to-text generation: verbalise every attribute of a meaning representation as fluent "
            "text, scored with BLEU (primary), ROUGE-L and chrF against all human references."
        ),
        expect=(
            "**Fine-tuning should win.** The task is a fixed style and mapping (attribute names such as "
            "`eatType[coffee shop]` or `familyFriendly[no]` to natural phrases), which a few hundred "
            "examples teach well; a prompted small model tends to add or drop facts. Retrieval has no "
            "corpus to add."
        ),
        expect_short="sft (a fixed mapping and style)",
    )


BUILDERS = [build_support_faq, build_banking, build_poem, build_snips, build_e2e]


# ---------------------------------------------------------------- checks and writing


def check(suite: BuiltSuite) -> None:
    """The format rules of DESIGN.md, and this script's own promises; raise on the first breach."""
    toml = suite.toml
    corpus_ids = [d["id"] for d in suite.corpus]
    problems: list[str] = []
    if len(set(corpus_ids)) != len(corpus_ids):
        problems.append("corpus ids not unique")
    for d in suite.corpus:
        if not (d["title"] and d["text"]):
            problems.append(f"corpus {d['id']}: empty title or text")
    ids = [r["id"] for rows in suite.splits.values() for r in rows]
    if len(set(ids)) != len(ids):
        problems.append("example ids not unique across splits")
    for split, rows in suite.splits.items():
        if not rows and split in ("train", "test"):
            problems.append(f"{split}: empty")
        for r in rows:
            where = f"{split} {r['id']}"
            t = r["target"]
            if not r["input"].strip():
                problems.append(f"{where}: empty input")
            if not t or (isinstance(t, list) and not all(isinstance(x, str) and x.strip() for x in t)):
                problems.append(f"{where}: empty target")
            if toml["task"] == "classification" and t not in toml["labels"]:
                problems.append(f"{where}: target {t!r} not in labels")
            if toml["task"] == "extraction":
                if not isinstance(t, dict) or set(t) - set(toml["fields"]):
                    problems.append(f"{where}: target keys outside fields")
                elif not all(isinstance(v, str) and v for v in t.values()):
                    problems.append(f"{where}: extraction values must be non-empty strings")
            for d in r.get("doc_ids", []):
                if d not in corpus_ids:
                    problems.append(f"{where}: doc_id {d} not in corpus")
    for label in toml["labels"]:
        if ";" in label or label != label.strip():
            problems.append(f"label {label!r}: no ';' or outer spaces (prompts list labels with '; ')")
    if suite.name.startswith("support-faq"):
        train_docs = {d for r in suite.splits["train"] for d in r["doc_ids"]}
        test_docs = {d for r in suite.splits["test"] for d in r["doc_ids"]}
        if train_docs & test_docs:
            problems.append(f"FAQ entries in both train and test: {sorted(train_docs & test_docs)}")
    if problems:
        raise SystemExit(f"{suite.name}: " + "; ".join(problems[:10]))


def jsonl(rows: list[Row]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def sizes(suite: BuiltSuite) -> dict[str, int]:
    return {**{s: len(rows) for s, rows in suite.splits.items()}, "corpus": len(suite.corpus)}


def suite_readme(suite: BuiltSuite, scale: int) -> str:
    src = SOURCES[suite.source]
    t = suite.toml
    n = sizes(suite)
    files = ", ".join(f"`{s}.jsonl` {n[s]}" for s in ("train", "validation", "test", "corpus") if n.get(s))
    lines = [
        f"# {suite.name}",
        "",
        f"{t['description']}",
        "",
        "Generated by `scripts/build_suites.py`"
        + (f" with `--scale {scale}`" if scale > 1 else "")
        + ": do not edit by hand, change the script and run it again.",
        "",
        "## Source and licence",
        "",
        f"- Upstream: `{src['repo']}` @ `{src['commit']}`, {src['paths']} (copied unchanged into "
        f"`shared/datasets/{suite.source}/`).",
        f"- Licence: {src['licence']}.",
        f"- Attribution: {src['attribution']}",
        "",
        "## Task",
        "",
        f"- task = `{t['task']}`, metrics = {', '.join(f'`{m}`' for m in t['metrics'])} (first = primary), "
        f"max_new_tokens = {t['generation']['max_new_tokens']}.",
        f'- Instruction: "{t["instruction"]}"',
    ]
    if t["labels"]:
        lines.append(f"- Labels ({len(t['labels'])}): " + ", ".join(f'"{x}"' for x in t["labels"]) + ".")
    if t["fields"]:
        lines.append(f"- Fields ({len(t['fields'])}): " + ", ".join(f"`{x}`" for x in t["fields"]) + ".")
    lines += [
        f"- Sizes: {files}.",
        "",
        "## What it measures",
        "",
        suite.measures,
        "",
        "## How it was built",
        "",
        *[f"- {note}" for note in suite.notes],
        "",
        "## Which strategy should help",
        "",
        suite.expect,
        "",
    ]
    return "\n".join(lines)


def index_readme(suites: list[BuiltSuite], scale: int) -> str:
    lines = [
        "# Built-in suites",
        "",
        "Built from real, public, human-written data in `shared/datasets/` by "
        f"`scripts/build_suites.py`{f' --scale {scale}' if scale > 1 else ''} (deterministic; do not "
        "edit by hand). Each folder's README gives the source, licence and attribution, how it was "
        "built, and what it measures.",
        "",
        "| suite | task | source (licence) | train | validation | test | corpus | primary metric | expected to help |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for s in suites:
        n = sizes(s)
        src = SOURCES[s.source]
        lines.append(
            f"| [{s.name}]({s.name}/README.md) | {s.toml['task']} | {src['repo']} ({src['licence']}) | "
            f"{n['train']} | {n.get('validation', 0) or '-'} | {n['test']} | {n['corpus'] or '-'} | "
            f"{s.toml['metrics'][0]} | {s.expect_short} |"
        )
    lines += [
        "",
        "`e2e-nlg` is CC BY-SA 4.0 (ShareAlike): its files are distributed under that licence, not the "
        "repository's.",
        "",
    ]
    return "\n".join(lines)


def build(src: Path, out: Path, scale: int = 1) -> list[BuiltSuite]:
    suites = [b(src, scale) for b in BUILDERS]
    for s in suites:
        if scale > 1:
            s.name = s.toml["name"] = f"{s.name}-x{scale}"
        check(s)
    for s in suites:
        d = out / s.name
        write(d / "suite.toml", toml_dump(s.toml, {"judges": JUDGES_COMMENT}))
        for name, text in s.files.items():
            write(d / name, text)
        for split, rows in s.splits.items():
            if rows:
                write(d / f"{split}.jsonl", jsonl(rows))
        if s.corpus:
            write(d / "corpus.jsonl", jsonl(s.corpus))
        write(d / "README.md", suite_readme(s, scale))
    write(out / "README.md", index_readme(suites, scale))
    return suites


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--src", type=Path, default=DEFAULT_SRC, help="the raw datasets (default: ../shared/datasets)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the suites go (default: suites/, or suites-xN/ with --scale N)",
    )
    ap.add_argument(
        "--scale", type=int, default=1, help="multiply train/validation/test sizes (capped by the data)"
    )
    ap.add_argument("--large", action="store_const", const=4, dest="scale", help="same as --scale 4")
    args = ap.parse_args(argv)
    if args.scale < 1:
        ap.error("--scale must be at least 1")
    src = args.src.resolve()
    if not src.is_dir():
        ap.error(f"no datasets at {src} (pass --src)")
    out = args.out or REPO_ROOT / ("suites" if args.scale == 1 else f"suites-x{args.scale}")
    for s in build(src, out, args.scale):
        print(f"{out / s.name}: " + ", ".join(f"{k} {v}" for k, v in sizes(s).items() if v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
