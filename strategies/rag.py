"""`rag`: the base model with passages retrieved from the suite's corpus, optionally with worked
examples too (`rag:k=2:shots=4:select=knn`: passages plus shots, the approaches used together).

The retrieval part is a reusable `Retriever`, so `sft+rag` gets exactly the same passages.
`passages_for` searches all texts in one batch and fits the top-k passages into `budget` tokens
of the GENERATOR's tokenizer (`ctx.count_tokens`); `doc_ids` are the documents actually put in
the prompt. `recall_at_k` is measured on the scored examples (`measure_recall`) that carry gold
`doc_ids` (None when none do), over the top-k retrieved before the budget cut, so it rates the
retriever. Index and query vectors are cached: a rerun loads no embedder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from harness.core.errors import HarnessError
from harness.core.types import Example, Prompt, Suite
from harness.engine.context import Prepared, StrategyContext
from harness.engine.prompting import Passage, build_messages
from harness.engine.retrieval import Hit, RetrievalIndex, build_index, fit_passages, recall_at_k

from .base import Strategy
from .prompt import Shots


class Retriever:
    """Index a suite's corpus once; then turn inputs into budgeted passages."""

    def __init__(self) -> None:
        self.index: RetrievalIndex | None = None
        self.k = 0
        self.budget_tokens = 0
        self.recall: float | None = None
        self._count_tokens: Any = None
        self._hits: dict[str, list[Hit]] = {}  # query text -> hits: prepare's recall search is reused

    def prepare(
        self,
        suite: Suite,
        ctx: StrategyContext,
        *,
        k: int,
        chunk_tokens: int,
        overlap: int,
        budget_tokens: int,
        hnsw_threshold: int,
    ) -> str:
        """Build (or load) the index; returns its fingerprint."""
        if not suite.corpus:
            raise HarnessError(f"suite {suite.name} has no corpus: rag needs [corpus] in suite.toml")
        if k < 1:
            raise HarnessError(f"rag: k must be at least 1, got {k}")
        if budget_tokens < 1:
            raise HarnessError(f"rag: budget must be at least 1 token, got {budget_tokens}")
        self.k, self.budget_tokens = k, budget_tokens
        self._count_tokens = ctx.count_tokens
        with ctx.progress() as progress:
            self.index = build_index(
                suite.corpus,
                ctx.encoder,
                chunk_tokens=chunk_tokens,
                overlap=overlap,
                hnsw_threshold=hnsw_threshold,
                cache_dir=ctx.cache_dir / "indexes",
                progress=progress,
            )
        return self.index.fingerprint

    def measure_recall(self, examples: Sequence[Example]) -> None:
        """recall@k over the examples being scored that name gold documents (None when none do).
        Only these are searched: `--limit 2` must not embed the whole test split."""
        gold = [ex for ex in examples if ex.doc_ids]
        if gold:
            hits = self.search([ex.input for ex in gold])
            self.recall = recall_at_k(hits, [ex.doc_ids for ex in gold], self.k)

    def search(self, texts: Sequence[str]) -> list[list[Hit]]:
        """Top-k distinct documents per text; texts already searched are not embedded again."""
        if self.index is None:
            raise RuntimeError("Retriever.prepare() must run before search()")
        new = list(dict.fromkeys(t for t in texts if t not in self._hits))
        if new:
            self._hits.update(zip(new, self.index.search(new, self.k), strict=True))
        return [self._hits[t] for t in texts]

    def passages_for(self, texts: Sequence[str]) -> list[tuple[list[Passage], tuple[str, ...]]]:
        out = []
        for hits in self.search(texts):
            passages = fit_passages(hits, self._count_tokens, self.budget_tokens)
            out.append((passages, tuple(p.doc_id for p in passages)))
        return out

    def details(self) -> dict[str, Any]:
        info = self.index.info() if self.index is not None else {}
        return {"retrieval": {"k": self.k, "recall_at_k": self.recall, "index": info}}


# -- shared by `rag` and `sft+rag`, so both retrieve and prompt in exactly the same way ---------
def require_corpus(suite: Suite, kind: str) -> None:
    if not suite.corpus:
        raise HarnessError(f"suite {suite.name} has no corpus: {kind} needs [corpus] in suite.toml")


def check_retrieval_params(name: str, p: dict[str, Any]) -> None:
    """The retrieval options of rag and sft+rag, refused before any model work."""
    problems = [f"{key} must be at least 1, got {p[key]}" for key in ("k", "chunk_tokens", "budget", "hnsw_threshold")
                if int(p[key]) < 1]
    if int(p["overlap"]) < 0:
        problems.append(f"overlap must be 0 or more, got {p['overlap']}")
    elif int(p["overlap"]) >= int(p["chunk_tokens"]) >= 1:
        problems.append(f"overlap ({p['overlap']}) must be smaller than chunk_tokens ({p['chunk_tokens']})")
    if problems:
        raise HarnessError(f"strategy '{name}': " + "; ".join(problems))


def retriever_from_options(suite: Suite, ctx: StrategyContext, options: dict[str, Any]) -> tuple[Retriever, str]:
    """A prepared Retriever from a strategy's k / chunk_tokens / overlap / budget / hnsw_threshold."""
    retriever = Retriever()
    fingerprint = retriever.prepare(
        suite,
        ctx,
        k=int(options["k"]),
        chunk_tokens=int(options["chunk_tokens"]),
        overlap=int(options["overlap"]),
        budget_tokens=int(options["budget"]),
        hnsw_threshold=int(options["hnsw_threshold"]),
    )
    return retriever, fingerprint


def prompts_with_passages(
    suite: Suite, retriever: Retriever, examples: Sequence[Example], shots: Sequence[Sequence[Example]] | None = None
) -> list[Prompt]:
    found = retriever.passages_for([ex.input for ex in examples])
    shots = shots if shots is not None else [()] * len(examples)
    return [
        Prompt(build_messages(suite, ex.input, passages=passages, shots=ex_shots), retrieved=doc_ids)
        for ex, (passages, doc_ids), ex_shots in zip(examples, found, shots, strict=True)
    ]


RETRIEVAL_OPTIONS: dict[str, Any] = {"k": 2, "chunk_tokens": 128, "overlap": 32, "budget": 400, "hnsw_threshold": 20000}


class RagStrategy(Strategy):
    kind = "rag"
    # k=2 in 400 generator tokens: on support-faq the 135M default read two passages as well as
    # three, and decoding is twice as fast with the shorter prompts. shots: worked examples from
    # the train split before the passages (0: none), drawn as `prompt` draws them.
    options: ClassVar[dict[str, Any]] = {**RETRIEVAL_OPTIONS, "shots": 0, "select": "random"}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"select": ("random", "knn")}

    def check_params(self) -> None:
        check_retrieval_params(self.name, self.params)
        if int(self.params["shots"]) < 0:
            raise HarnessError(f"strategy '{self.name}': shots must be 0 or more, got {self.params['shots']}")

    def needs_embedder(self) -> bool:
        return True

    def uses_train(self) -> bool:
        return int(self.params["shots"]) > 0  # the corpus is not the train split; shots are

    def check(self, suite: Suite) -> None:
        require_corpus(suite, self.kind)
        Shots.check(self.name, int(self.params["shots"]), suite)

    def prepare(self, suite: Suite, ctx: StrategyContext) -> Prepared:
        self.suite = suite
        self.retriever, fp = retriever_from_options(suite, ctx, self.params)
        self.shots = Shots(int(self.params["shots"]), str(self.params["select"]))
        return Prepared(artifacts={"index": fp, **self.shots.prepare(suite, ctx)})

    def prompts(self, examples: Sequence[Example]) -> list[Prompt]:
        self.retriever.measure_recall(examples)
        return prompts_with_passages(self.suite, self.retriever, examples, self.shots.for_examples(examples))

    def details(self) -> dict[str, Any]:
        retriever = getattr(self, "retriever", None)  # None before prepare()
        return retriever.details() if retriever is not None else {}
