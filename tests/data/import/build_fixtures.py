"""Rebuild the import test inputs in this folder from the raw public data in ../shared/datasets.

    .venv/bin/python tests/data/import/build_fixtures.py [--src ../shared/datasets]

Deterministic (seeded samples); see README.md here for sources and licences.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = HERE.parents[3] / "shared" / "datasets"

# BANKING77 intents that the built-in banking-intents suite does not use: a different label set.
BANKING_INTENTS = (
    "activate_my_card", "beneficiary_not_allowed", "cash_withdrawal_charge", "declined_card_payment",
    "disposable_card_limits", "pending_top_up", "top_up_failed", "verify_my_identity",
    "virtual_card_not_working", "wrong_exchange_rate_for_cash_withdrawal",
)
BANKING_PER_INTENT = 16
SNIPS_PER_INTENT = 20
SNIPS_SYSTEM = ("Which intent does this voice-assistant request express? Answer with one of: AddToPlaylist, "
                "BookRestaurant, GetWeather, PlayMusic, RateBook, SearchCreativeWork, SearchScreeningEvent.")
FAQ_ENTRIES = 20
E2E_MRS = 24


def banking(src: Path, rng: random.Random) -> None:
    with open(src / "banking77" / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    picked: list[int] = []
    for intent in BANKING_INTENTS:
        picked += rng.sample([i for i, r in enumerate(rows) if r["category"] == intent], BANKING_PER_INTENT)
    out = [rows[i] for i in sorted(picked)]  # upstream order (grouped by intent, as train.csv is)
    with open(HERE / "banking77-other-intents.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "category"])
        w.writerows([r["text"], r["category"]] for r in out)


def snips(src: Path, rng: random.Random) -> None:
    lines = []
    for folder in sorted(p for p in (src / "snips").iterdir() if p.is_dir()):
        intent = folder.name
        data = json.loads((folder / f"train_{intent}.json").read_text(encoding="utf-8"))[intent]
        texts = ["".join(part["text"] for part in q["data"]).strip() for q in data]
        for text in rng.sample(texts, SNIPS_PER_INTENT):
            lines.append({"messages": [{"role": "system", "content": SNIPS_SYSTEM},
                                       {"role": "user", "content": " ".join(text.split())},
                                       {"role": "assistant", "content": intent}]})
    rng.shuffle(lines)  # a fine-tuning file is not grouped by answer
    with open(HERE / "snips-intents-chat.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def faq(src: Path, rng: random.Random) -> None:
    with open(src / "covid-faq" / "faq_covidbert.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["lang"].strip() == "en" and r["answer"].strip()]
    picked = sorted(rng.sample(range(len(rows)), FAQ_ENTRIES))
    with open(HERE / "covid-faq-20.jsonl", "w", encoding="utf-8") as f:
        for i in picked:
            r = rows[i]
            f.write(json.dumps({"id": f"faq-{i:04d}", "title": " ".join(r["question"].split()),
                                "text": r["answer"].strip(), "source": r["source"]}, ensure_ascii=False) + "\n")


def e2e(src: Path, rng: random.Random) -> None:
    """Every reference of a few meaning representations: one row per (mr, ref), as upstream."""
    with open(src / "e2e" / "devset.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    mrs = sorted(rng.sample(sorted({r["mr"] for r in rows}), E2E_MRS))
    with open(HERE / "e2e-dev-24mr.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["mr", "ref"])
        w.writerows([r["mr"], r["ref"]] for r in rows if r["mr"] in mrs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    args = ap.parse_args()
    banking(args.src, random.Random(0))
    snips(args.src, random.Random(1))
    faq(args.src, random.Random(2))
    e2e(args.src, random.Random(3))


if __name__ == "__main__":
    main()
