"""`sft-harness export`: the prompt template renders exactly the run's chats, the artefacts load,
and a merged adapter decodes the run's outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.errors import HarnessError
from harness.core.types import Example, GenerationConfig, Suite
from harness.engine.prompt_template import chat_template, render_messages
from harness.engine.prompting import Passage, build_messages, target_text
from tests.test_suites import smaller_builtin

REPO = Path(__file__).resolve().parent.parent

HOSTILE = ['say "hi" \\ {{ x }} {% if %} %} {# c #}', "line\nbreak\ttab", "emoji 😀 and ünïcode", "</script>'"]


def _suite(task: str = "classification") -> Suite:
    return Suite(name="s", task=task, instruction=HOSTILE[0], labels=("a \"quoted\"", "b\\c") if task == "classification" else (),
                 metrics=("accuracy",), generation=GenerationConfig(), train=(), test=(), sha256="0" * 64)


@pytest.mark.parametrize("task", ["classification", "qa", "extraction"])
def test_the_template_renders_build_messages_for_hostile_text(task: str) -> None:
    suite = _suite(task)
    shots = [Example(id=f"s{i}", input=text, target=HOSTILE[-1 - i]) for i, text in enumerate(HOSTILE)]
    passages = [Passage("d1", HOSTILE[1], title=HOSTILE[2]), Passage("d2", HOSTILE[0]), Passage("d3", "x", title="")]
    from harness.engine.prompting import system_prompt

    pairs = [(s.input, target_text(s)) for s in shots]
    for text in HOSTILE:
        fixed = chat_template(system_prompt(suite), pairs, passages=True)
        given = [{"title": p.title, "text": p.text} for p in passages]
        assert render_messages(fixed, text, given) == build_messages(suite, text, shots=shots, passages=passages)
        assert render_messages(fixed, text, []) == build_messages(suite, text, shots=shots)  # nothing retrieved
        per_input = chat_template(system_prompt(suite), None, passages=False)
        knn = [{"input": s.input, "answer": target_text(s)} for s in shots[:2]]
        assert render_messages(per_input, text, (), knn) == build_messages(suite, text, shots=shots[:2])
        zero = chat_template(system_prompt(suite), [], passages=False)
        assert render_messages(zero, text) == build_messages(suite, text)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A run of every exportable kind on the tiny model (support-faq, 3 scored examples; 30 train
    examples, enough for shots and an adapter: these tests check what is exported, not what it learnt)."""
    from harness.runner import RunOptions, run

    root = tmp_path_factory.mktemp("export-run")
    suite = smaller_builtin("support-faq", root / "support-faq", train=30)
    opts = RunOptions(
        suite=str(suite), model=str(tiny_model_dir), out=root / "runs", limit=3, device="cpu",
        strategies="prompt:k=2,prompt:k=1:select=knn,rag:k=1:budget=120:shots=1,"
                   "sft:epochs=1:rank=2:lr=0.05:batch_size=8:max_len=256,sft+rag:k=1:budget=120:epochs=1:rank=2:max_len=512",
    )
    return run(opts)


@pytest.mark.parametrize("name", ["prompt:k=2", "prompt:k=1:select=knn", "rag:k=1:budget=120:shots=1",
                                  "sft+rag:k=1:budget=120:epochs=1:rank=2:max_len=512"])
def test_every_kind_exports_a_prompt_that_renders_the_run_chats(tiny_run: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "export"
    assert main(["export", str(tiny_run), name, "--out", str(out), "--openai-jsonl", "--examples", "3"]) == 0
    export = json.loads((out / "export.json").read_text())
    assert export["strategy"] == name and not export["warnings"], export
    template = (out / "prompt.jinja").read_text()
    spec = json.loads((out / "prompt.json").read_text())
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    preds = {(p["strategy"], p["example_id"]): p for p in map(json.loads, (tiny_run / "predictions.jsonl").read_text().splitlines())}
    assert len(rows) == 3
    for row in rows:
        shots = None if isinstance(spec["shots"], list) else [
            {"input": m["content"], "answer": a["content"]} for m, a in zip(row["messages"][1:-1:2], row["messages"][2:-1:2], strict=True)]
        assert render_messages(template, row["input"], row.get("passages", []), shots) == row["messages"]
        assert row["output"] == preds[(name, row["id"])]["output"]
        assert row["messages"][-1]["content"] in row["prompt"]  # rendered with the model's chat template
    decoding = json.loads((out / "decoding.json").read_text())
    assert decoding["generation"]["max_new_tokens"] == 96 and decoding["answer"]["mode"] == "free"
    train = (out / "train.openai.jsonl").read_text().splitlines()
    assert len(train) == 30 and json.loads(train[0])["messages"][-1]["role"] == "assistant"
    if "rag" in name:
        import faiss

        index = faiss.read_index(str(out / "retrieval" / "index.faiss"))
        chunks = (out / "retrieval" / "chunks.jsonl").read_text().splitlines()
        assert index.ntotal == len(chunks) > 0
        assert json.loads((out / "retrieval" / "index.json").read_text())["embedder"] == "all-minilm-l6-v2"
        assert "retrieval gives the run's passages on 3/3" in " ".join(export["checks"])
    if name.startswith("sft"):
        assert (out / "adapter" / "adapter_config.json").is_file()


def test_merged_adapter_reproduces_the_run_and_loads_in_plain_transformers(tiny_run: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = "sft:epochs=1:rank=2:lr=0.05:batch_size=8:max_len=256"
    out = tmp_path / "export"
    assert main(["export", str(tiny_run), name, "--out", str(out), "--merge", "--check", "3"]) == 0
    export = json.loads((out / "export.json").read_text())
    assert "the merged model gives the run's outputs on 3/3 test examples" in export["checks"], export
    assert list((out / "merged").glob("*.safetensors")) and not (out / "merged" / "adapter_config.json").exists()
    # A user's own code: plain transformers, no PEFT, no harness
    model = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(out / "merged")
    row = json.loads((out / "examples.jsonl").read_text().splitlines()[0])
    ids = tok(row["prompt"], add_special_tokens=False, return_tensors="pt")["input_ids"]
    decoding = json.loads((out / "decoding.json").read_text())
    with torch.inference_mode():
        gen = model.generate(ids, max_new_tokens=decoding["generation"]["max_new_tokens"], do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).strip()
    assert text == row["output"]
    # exporting again into the same folder replaces it
    assert main(["export", str(tiny_run), name, "--out", str(out)]) == 0
    assert not (out / "merged").exists()


def test_bad_exports_are_one_line_refusals(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    cases = [
        (["export", str(tiny_run), "sfft", "--out", str(tmp_path / "a")], "no strategy 'sfft'"),
        (["export", str(tiny_run), "prompt:k=2", "--out", str(tmp_path / "b"), "--merge"], "has no adapter to merge"),
        (["export", str(tiny_run), "prompt:k=2", "--out", str(foreign)], "is not an earlier export"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"
    # the suite changed since the run
    results = json.loads((tiny_run / "results.json").read_text())
    moved = tmp_path / "suite"
    shutil.copytree(results["suite"]["path"], moved)
    with (moved / "test.jsonl").open("a") as f:
        f.write(json.dumps({"id": "extra", "input": "new?", "target": "yes"}) + "\n")
    with pytest.raises(HarnessError, match="changed since the run"):
        from harness.runner.export import export

        export(tiny_run, "prompt:k=2", tmp_path / "c", suite_dir=str(moved))
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".c.*"))
