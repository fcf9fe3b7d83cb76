"""`sft-harness export RUN STRATEGY --out DIR`: the winner of a run as what serving needs.

Every strategy: its prompt as a Jinja template (prompt.jinja, with prompt.json saying what is in
it), its decoding settings (decoding.json) and a few test examples with their chat messages and the
run's outputs (examples.jsonl). A trained strategy adds its LoRA adapter (adapter/) and, with
`--merge`, the adapter merged into the base model (merged/, safetensors), decoded again on a few
test examples to show it gives the run's outputs; a retrieval strategy adds its corpus chunks,
the embedder's name and the FAISS index (retrieval/). `--openai-jsonl` writes the train split in
OpenAI's chat fine-tuning format, rendered with the same prompt.

Nothing is rebuilt from memory of the run: the suite is read again (and refused if it changed),
the shots are drawn again with the run's seed, the index is the cached one (or built again and
checked against the run's fingerprint), so the prompt exported is the prompt that was scored.
The folder is written beside --out and moved into place at the end: a failed export leaves no
half folder, and a folder that is not an earlier export is never overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.core import jsonl
from harness.core.cache import cache_root
from harness.core.errors import HarnessError
from harness.core.results import StrategyResult
from harness.core.runrecord import PredictionRecord, RunRecord, load_run
from harness.core.suites import load_suite
from harness.core.text import did_you_mean
from harness.core.types import AnswerMode, Chat, Example, Suite
from harness.engine.aliases import DEFAULT_EMBEDDER
from harness.engine.backends.base import Backend
from harness.engine.context import StrategyContext
from harness.engine.prompt_template import TEMPLATE_FORMAT, chat_template, render_messages
from harness.engine.prompting import (
    Passage,
    build_messages,
    has_chat_template,
    render_chat,
    system_prompt,
    target_text,
)
from harness.runner.decode import constraint_for, decoding_config

EXPORT_FORMAT = "sft-harness/export/v1"
EXPORTABLE = ("prompt", "rag", "sft", "sft+rag", "adapter")


@dataclass
class Exported:
    """What `export` wrote, and what it checked (one line each, said to the user)."""

    out: Path
    files: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PromptParts:
    """How a strategy builds its prompt: shots from the train split, passages from the corpus."""

    shots: int = 0
    select: str = "random"
    passages: bool = False
    adapter: bool = False


def prompt_parts(result: StrategyResult) -> PromptParts:
    p = result.params
    if result.kind == "prompt":
        return PromptParts(int(p.get("k", 0)), str(p.get("select", "random")))
    if result.kind == "rag":
        return PromptParts(int(p.get("shots", 0)), str(p.get("select", "random")), passages=True)
    return PromptParts(passages=result.kind == "sft+rag", adapter=True)


class _Estimate(Backend):
    """A served model's token counts (the base estimate): all retrieval needs of its backend."""

    name = "estimate"

    def identity(self) -> str:
        return "estimate"


def _strategy(run: RunRecord, name: str) -> StrategyResult:
    strategies = run.results.strategies
    if name not in strategies:
        raise HarnessError(f"no strategy '{name}' in {run.dir}{did_you_mean(name, list(strategies))}; "
                           f"it has {', '.join(strategies)}")
    result = strategies[name]
    if result.kind == "outputs":
        raise HarnessError(f"strategy '{name}' scored outputs produced elsewhere ({result.params.get('path')}): "
                           "there is no prompt or model of this run to export")
    if result.kind not in EXPORTABLE:
        raise HarnessError(f"strategy '{name}' is a '{result.kind}' plugin: export knows the built-in strategies "
                           f"({', '.join(EXPORTABLE)}); a plugin's prompts are its own code")
    return result


def _suite(run: RunRecord, suite_dir: str | None) -> Suite:
    info = run.results.suite
    ref = suite_dir or info.path
    if not ref or not Path(ref).exists():
        raise HarnessError(f"the run's suite folder {ref} is not there: pass --suite DIR (the folder it was run on)")
    suite = load_suite(str(ref))
    if info.sha256 and suite.sha256 != info.sha256:
        raise HarnessError(f"suite {ref} changed since the run (sha256 {suite.sha256[:12]} != the run's "
                           f"{info.sha256[:12]}): export from the files the run scored, or run again")
    return suite


def _local_backend(model_id: str) -> Backend:
    """A model on local weights through the registry's default backend (tokenizer now, weights on
    first use), on the device a run would pick."""
    from harness.engine.models import pick_device
    from harness.engine.modelset import build_models, default_spec

    return build_models({"export": default_spec(model_id)}, device=pick_device(None), trust_remote_code=False,
                        batch_size=8).of("export")


def _backend(result: StrategyResult, run: RunRecord) -> Backend:
    """The strategy's model for counting and rendering (weights not loaded): local, or an estimate."""
    from harness.engine.backends import backend_class
    from harness.engine.backends.base import TRAIN

    model = result.model or run.results.model
    if not backend_class(model.backend).can(TRAIN):  # a served model: no local weights or tokenizer
        return _Estimate()
    backend = _local_backend(model.id or model.name or "")
    loaded = backend.local_weights()
    if model.sha256 and loaded is not None and loaded.sha256 and loaded.sha256 != model.sha256:
        raise HarnessError(f"model '{model.id}' is not the one the run used (weights sha256 {loaded.sha256[:12]} != "
                           f"{model.sha256[:12]}): export where the run's model is")
    return backend


def _answer_mode(result: StrategyResult) -> AnswerMode:
    label = result.answer or "free"
    mode = label.split()[0]
    return AnswerMode(mode, "mean" if "mean" in label else "sum", "calibrated" in label)


def _adapter_dir(run: RunRecord, result: StrategyResult) -> Path:
    if result.kind == "adapter":
        path = Path(str((result.adapter or {}).get("path", "")))
    else:
        rel = result.training.adapter_path if result.training else None
        if not rel:
            raise HarnessError(f"strategy '{result.name}' records no adapter in {run.dir / 'results.json'}")
        path = Path(rel) if Path(rel).is_absolute() else run.dir / rel
    if not (path / "adapter_config.json").is_file():
        raise HarnessError(f"strategy '{result.name}': its adapter folder {path} is not there (adapter_config.json "
                           "missing): the run folder is incomplete")
    return path


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "export.json").is_file())):
        raise HarnessError(f"--out {out}: exists and is not an earlier export (no export.json): choose a new folder")


class Exporter:
    """One export: the run's strategy, rebuilt from its files, written to a temp folder."""

    def __init__(self, run: RunRecord, result: StrategyResult, suite: Suite, tmp: Path, console: Console):
        self.run, self.result, self.suite, self.tmp, self.console = run, result, suite, tmp, console
        self.parts = prompt_parts(result)
        self.backend = _backend(result, run)
        self.done = Exported(tmp)
        model = run.results.model
        self.ctx = StrategyContext(seed=run.results.seed, cache_dir=cache_root(), run_dir=tmp, backend=self.backend,
                                   embedder_name=model.embedder or DEFAULT_EMBEDDER, console=console)
        self.shots: Any = None
        self.retriever: Any = None

    # -- the prompt ------------------------------------------------------------------------------
    def prepare(self) -> None:
        from strategies.prompt import Shots

        self.shots = Shots(self.parts.shots, self.parts.select)
        self.shots.prepare(self.suite, self.ctx)
        if self.parts.passages:
            from strategies.rag import retriever_from_options

            self.retriever, fp = retriever_from_options(self.suite, self.ctx, self.result.params)
            index = self.result.retrieval.index if self.result.retrieval else None
            recorded = index.get("fingerprint") if isinstance(index, dict) else None
            if recorded and recorded != fp:
                raise HarnessError(f"strategy '{self.result.name}': the index built now ({fp[:12]}) is not the run's "
                                   f"({recorded[:12]}): the embedder or the corpus changed since the run")

    def messages(self, examples: Sequence[Example]) -> tuple[list[Chat], list[list[Passage]], list[list[Example]]]:
        shots = self.shots.for_examples(examples)
        found = self.retriever.passages_for([ex.input for ex in examples]) if self.retriever else None
        passages = [list(p) for p, _ in found] if found else [[] for _ in examples]
        chats = [build_messages(self.suite, ex.input, shots=s, passages=p)
                 for ex, s, p in zip(examples, shots, passages, strict=True)]
        return chats, passages, shots

    def write_prompt(self) -> str:
        chosen = self.shots.fixed()
        fixed = chosen is not None
        shots = [(ex.input, target_text(ex)) for ex in chosen] if chosen is not None else None
        source = chat_template(system_prompt(self.suite), shots, passages=self.parts.passages)
        self._write("prompt.jinja", source)
        p = self.result.params
        spec: dict[str, Any] = {
            "format": TEMPLATE_FORMAT, "template": "prompt.jinja", "strategy": self.result.name,
            "system": system_prompt(self.suite),
            "shots": [{"input": i, "answer": a} for i, a in shots] if shots is not None else
            {"select": "knn", "k": self.parts.shots, "from": "the suite's train split",
             "embedder": self.ctx.embedder_name, "order": "the most similar last, right before the input",
             "note": "embed the input and every train input (normalised), take the k highest dot products"},
            "passages": None if not self.parts.passages else {
                "k": int(p["k"]), "budget_tokens": int(p["budget"]), "counted_with": self._token_counter(),
                "files": "retrieval/", "layout": "numbered from 1 as '[i] title\\ntext' before 'Question: <input>'",
            },
            "variables": ["input", *(["passages"] if self.parts.passages else []), *([] if fixed else ["shots"])],
        }
        self._json("prompt.json", spec)
        return source

    def _token_counter(self) -> str:
        weights = self.backend.local_weights()
        return f"the tokenizer of {weights.name}" if weights is not None else "about 4 characters a token"

    # -- decoding ----------------------------------------------------------------------------------
    def write_decoding(self, weights: str) -> None:
        mode = _answer_mode(self.result)
        from harness.engine.generate import Engine

        config = decoding_config(self.suite, AnswerMode(mode.mode))
        if isinstance(self.backend, Engine):  # a base model's plain format adds its stop strings
            config = self.backend.decoding_config(config)
        local = self.backend.local_weights()
        answer: dict[str, Any] = {"mode": mode.label()}
        if mode.mode == "constrained":
            answer["json_schema"] = constraint_for(self.suite).json_schema()
        if mode.mode == "choice":
            answer.update(labels=list(self.suite.labels), norm=mode.norm, calibrate=mode.calibrate,
                          how="score each label as the reply to the prompt (its token log-probabilities, "
                              f"{'averaged' if mode.norm == 'mean' else 'summed'}); the highest wins; a serving "
                              "stack without scoring can decode under the label set instead (answer=constrained)")
        model = (self.result.model or self.run.results.model)
        chat_format = ("the model's chat template (chat_template.jinja or tokenizer_config.json in its folder), with the generation prompt"
                       if local is None or has_chat_template(local.tokenizer) else
                       "plain text, no chat template: the system text, each shot as 'Input: ...\\nAnswer: ...', "
                       "then 'Input: <input>\\nAnswer:' (harness.engine.prompting.render_plain)")
        self._json("decoding.json", {
            "model": {k: v for k, v in asdict(model).items() if v not in (None, {}, "")}, "weights": weights,
            "generation": {"max_new_tokens": config.max_new_tokens, "stop": list(config.stop), "greedy": True,
                           "temperature": 0.0},
            "answer": answer, "chat_format": chat_format,
        })

    # -- examples ----------------------------------------------------------------------------------
    def write_examples(self, template: str, n: int) -> list[tuple[Example, Chat, PredictionRecord]]:
        by_id = {r.example_id: r for r in self.run.predictions_for(self.result.name) if r.error is None}
        examples = [ex for ex in self.suite.test if ex.id in by_id][:n]
        chats, passages, shots = self.messages(examples)
        local = self.backend.local_weights()
        rows, same_docs = [], 0
        for ex, chat, ps, ss in zip(examples, chats, passages, shots, strict=True):
            given = [{"title": p.title, "text": p.text} for p in ps]
            knn = None if self.shots.fixed() is not None else [{"input": s.input, "answer": target_text(s)} for s in ss]
            if render_messages(template, ex.input, given, knn) != chat:  # our own template must say what we decode
                raise RuntimeError(f"prompt.jinja renders another chat than the run's for example {ex.id}")
            record = by_id[ex.id]
            same_docs += tuple(p.doc_id for p in ps) == tuple(record.retrieved)
            row: dict[str, Any] = {"id": ex.id, "input": ex.input, "messages": chat, "output": record.output}
            if self.parts.passages:
                row["passages"] = given
            if local is not None:
                row["prompt"] = render_chat(local.tokenizer, chat)
            rows.append(row)
        self._write("examples.jsonl", "".join(jsonl.dumps(r) + "\n" for r in rows))
        self.done.checks.append(f"prompt.jinja renders the run's chat messages on {len(rows)}/{len(rows)} test examples")
        if self.parts.passages:
            line = f"retrieval gives the run's passages on {same_docs}/{len(rows)} test examples"
            (self.done.checks if same_docs == len(rows) else self.done.warnings).append(line)
        return [(ex, chat, by_id[ex.id]) for ex, chat in zip(examples, chats, strict=True)]

    # -- artefacts ---------------------------------------------------------------------------------
    def write_retrieval(self) -> None:
        import faiss

        index = self.retriever.index
        folder = self.tmp / "retrieval"
        folder.mkdir()
        faiss.write_index(index.index, str(folder / "index.faiss"))
        self._write("retrieval/chunks.jsonl", "".join(jsonl.dumps(asdict(c)) + "\n" for c in index.chunks))
        info = {k: v for k, v in index.info().items() if k != "cached"}
        p = self.result.params
        self._json("retrieval/index.json", {
            **info, "embedder": index.encoder.name, "k": int(p["k"]), "budget_tokens": int(p["budget"]),
            "rows": "chunks.jsonl line i is vector i of index.faiss",
            "search": "embed the input (normalised, sentence-transformers), search k x max_chunks_per_doc chunks "
                      "by inner product, keep each document's best chunk, the k best documents in order",
        })

    def write_openai_jsonl(self) -> None:
        for split, examples in (("train", self.suite.train), ("validation", self.suite.validation)):
            if not examples:
                continue
            chats, _, _ = self.messages(list(examples))
            lines = [jsonl.dumps({"messages": [*chat, {"role": "assistant", "content": target_text(ex)}]}) + "\n"
                     for ex, chat in zip(examples, chats, strict=True)]
            self._write(f"{split}.openai.jsonl", "".join(lines))

    def merge_and_check(self, adapter: Path, checked: list[tuple[Example, Chat, PredictionRecord]]) -> None:
        from harness.engine.merge import merge_adapter

        local = self.backend.local_weights()
        if local is None:
            raise HarnessError(f"--merge: strategy '{self.result.name}' decoded with a served model: no local weights to merge into")
        with self.console.status(f"merging the adapter into {escape(local.name)}"):
            merge_adapter(local.path, adapter, self.tmp / "merged")
        self.done.files.append("merged/")
        if not checked:
            return
        merged = _local_backend(str(self.tmp / "merged"))
        config = decoding_config(self.suite, AnswerMode())
        if _answer_mode(self.result).mode != "free":
            self.done.warnings.append("the merged model was not decoded again: the run's answers were not free decoding")
            return
        with self.console.status(f"decoding {len(checked)} test examples with the merged model"):
            gens = merged.generate([chat for _, chat, _ in checked], config)
        same = [ex.id for (ex, _, rec), g in zip(checked, gens, strict=True) if g.text == rec.output]
        line = f"the merged model gives the run's outputs on {len(same)}/{len(checked)} test examples"
        if len(same) < len(checked):
            line += " (others differ: " + ", ".join(ex.id for ex, _, _ in checked if ex.id not in same) + ")"
        (self.done.checks if len(same) == len(checked) else self.done.warnings).append(line)
        merged.free()

    # -- files -------------------------------------------------------------------------------------
    def _write(self, rel: str, text: str) -> None:
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.done.files.append(rel)

    def _json(self, rel: str, obj: Any) -> None:
        self._write(rel, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def export(run_dir: Path, strategy: str, out: Path, *, merge: bool = False, openai_jsonl: bool = False,
           check: int = 3, examples: int = 5, suite_dir: str | None = None, console: Console | None = None) -> Exported:
    """Export `strategy` of the run in `run_dir` to the folder `out` (see the module docstring)."""
    console = console or Console(stderr=True)
    run = load_run(run_dir)
    result = _strategy(run, strategy)
    parts = prompt_parts(result)
    if merge and not parts.adapter:
        raise HarnessError(f"--merge: strategy '{strategy}' ({result.kind}) has no adapter to merge")
    if check < 0 or examples < 0:
        raise HarnessError("--check and --examples must be 0 or more")
    _prepare_out(out)
    suite = _suite(run, suite_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        ex = Exporter(run, result, suite, tmp, console)
        ex.prepare()
        template = ex.write_prompt()
        checked = ex.write_examples(template, max(examples, check))
        adapter = _adapter_dir(run, result) if parts.adapter else None
        if adapter is not None:
            shutil.copytree(adapter, tmp / "adapter")
            ex.done.files.append("adapter/")
            if merge:
                ex.merge_and_check(adapter, checked[:check])
        ex.write_decoding("merged/" if merge else "the base model + adapter/" if adapter else "the base model")
        if parts.passages:
            ex.write_retrieval()
        if openai_jsonl:
            ex.write_openai_jsonl()
        ex._json("export.json", {
            "format": EXPORT_FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "run": {"id": run.results.run_id, "dir": str(run.dir.resolve())}, "strategy": result.name,
            "kind": result.kind, "params": result.params, "suite": {"name": suite.name, "sha256": suite.sha256},
            "metrics": {k: v.value for k, v in result.metrics.items()}, "files": sorted(ex.done.files),
            "checks": ex.done.checks, "warnings": ex.done.warnings,
        })
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ex.done.out = out
    return ex.done
