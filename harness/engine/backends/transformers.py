"""The default backend: local weights through transformers, LoRA adapters through PEFT.

Batched greedy decoding with left padding (prompts sorted by length, so a batch wastes little on
padding; on the CPU a finished row leaves the batch, harness.engine.greedy), stop strings, and
per-example cost figures; continuation scores with the prompt's
key/value cache shared by every continuation (harness.engine.likelihood). On the CPU the fp32 linear
layers run through oneDNN where it is faster than torch's MKL path (harness.engine.onednn).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.core.config import ModelSpec
from harness.core.errors import HarnessError
from harness.core.types import Chat, ContinuationScores, Generation, GenerationConfig, ScoreRequest
from harness.engine.adapter_checks import check_logits_move
from harness.engine.backends.base import ADAPTER, CONSTRAIN, SCORE, TRAIN, BuildContext, OnBatch, OnScored
from harness.engine.generate import EncodedPrompt, Engine, collect, truncate_at_stop
from harness.engine.greedy import greedy_compact
from harness.engine.likelihood import Encoded, continuation_logprobs
from harness.engine.merge import copy_fits, merged_copy
from harness.engine.onednn import fast_linears

SCORE_CHUNK = 16  # score requests per call of the model code: a killed run loses at most these


class TransformersBackend(Engine):
    """Greedy decoding and continuation scores on local weights; adapters through PEFT (on the CPU
    folded into a copy of the weights for decoding)."""

    name = "transformers"
    capabilities = frozenset({SCORE, CONSTRAIN, ADAPTER, TRAIN})

    @classmethod
    def share_key(cls, spec: ModelSpec) -> str:
        return f"{cls.name}\0{spec.id}"  # the same weights: one copy, whatever the [[models]] names

    @classmethod
    def build(cls, spec: ModelSpec, ctx: BuildContext) -> TransformersBackend:
        assert ctx.load_local is not None
        return cls(ctx.load_local(spec.id), batch_size=ctx.batch_size)

    # -- decoding ------------------------------------------------------------------------------
    def generate(self, chats: Sequence[Chat], config: GenerationConfig, *,
                 on_batch: OnBatch | None = None) -> list[Generation]:
        """Decode every chat; `on_batch(indices, generations)` fires after each batch (for flushing)."""
        import torch

        config = self.decoding_config(config)

        def decode(batch: list[EncodedPrompt]) -> list[Generation]:
            try:
                return self._decode_batch(batch, config)
            except torch.cuda.OutOfMemoryError:
                raise HarnessError(
                    f"out of GPU memory decoding a batch of {len(batch)} prompts of up to {len(batch[0].ids)} tokens: "
                    "pass a smaller --batch-size (decoded batches so far are cached)") from None

        encoded = self.encode_prompts(chats, config.max_new_tokens)
        if not encoded:
            return []  # no weights loaded for nothing
        # CPU: oneDNN's fp32 kernels where they beat MKL's here, each weight reordered once for the call
        with fast_linears(self.model):
            return collect(self.batches(encoded), decode, len(chats), on_batch)

    def _decode_batch(self, batch: Sequence[EncodedPrompt], config: GenerationConfig) -> list[Generation]:
        import torch

        pad_id = self.pad_id
        width = max(len(e.ids) for e in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(e.ids) :] = torch.tensor(e.ids)
            attention[row, width - len(e.ids) :] = 1
        device = next(self.model.parameters()).device
        start = time.perf_counter()
        if device.type == "cpu" and config.constraint is None:  # rows leave the batch as they finish
            rows = greedy_compact(self.model, input_ids, attention, max_new_tokens=config.max_new_tokens,
                                  stop_ids=self._stop_ids, stops=config.stop, tokenizer=self.tokenizer)
        else:  # a grammar keeps its state per row of the batch it started with; a GPU step costs the same
            rows = self._generate(input_ids.to(device), attention.to(device), config)
        elapsed = time.perf_counter() - start
        results = []
        for e, toks in zip(batch, rows, strict=True):
            n = len(toks)
            for i, t in enumerate(toks):  # count up to and including the first end token
                if t in self._stop_ids:
                    n = i + 1
                    break
            text = truncate_at_stop(self.tokenizer.decode(toks[:n], skip_special_tokens=True), config.stop).strip()
            # Each example is charged its share of the batch's wall time (see README: cost figures).
            results.append(Generation(text, elapsed / len(batch), len(e.ids), n))
        return results

    def _generate(self, input_ids: Any, attention: Any, config: GenerationConfig) -> list[list[int]]:
        """`model.generate`, greedy, with the suite's stop strings and the constraint's grammar."""
        import torch

        kwargs: dict[str, Any] = {}
        if config.stop:
            kwargs.update(stop_strings=list(config.stop), tokenizer=self.tokenizer)
        if config.constraint is not None:  # answer=constrained: a grammar masks every step's logits
            from harness.engine.constrain import logits_processor

            kwargs["logits_processor"] = logits_processor(config.constraint, self.tokenizer, self._stop_ids,
                                                          len(input_ids), max_new_tokens=config.max_new_tokens)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention, max_new_tokens=config.max_new_tokens, do_sample=False,
                num_beams=1, temperature=None, top_p=None, top_k=None, pad_token_id=self.pad_id,
                eos_token_id=self._stop_ids, **kwargs,
            )
        return out[:, input_ids.shape[1]:].tolist()

    # -- continuation scores ---------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest], *, on_batch: OnScored | None = None) -> list[ContinuationScores]:
        """Each request's continuations scored after its prompt; `on_batch` after each chunk."""
        encoded = self.encode_scored(requests)
        if not encoded:
            return []
        with fast_linears(self.model):  # as generate: once for the whole call
            return self._score_chunks(encoded, on_batch)

    def _score_chunks(self, encoded: list[Encoded], on_batch: OnScored | None) -> list[ContinuationScores]:
        out: list[ContinuationScores] = []
        for start in range(0, len(encoded), SCORE_CHUNK):
            chunk = encoded[start : start + SCORE_CHUNK]
            began = time.perf_counter()
            scored = continuation_logprobs(self.model, [e for e in chunk if e.prompt], pad_id=self.pad_id,
                                           batch_tokens=self.max_batch_tokens)
            share = (time.perf_counter() - began) / len(chunk)
            it = iter(scored)
            done = []
            for e in chunk:
                pairs = next(it) if e.prompt else []
                done.append(ContinuationScores(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs),
                                               len(e.prompt), share))
            out += done
            if on_batch:
                on_batch(list(range(start, start + len(chunk))), done)
        return out

    # -- adapters ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def adapter(self, path: Path | None) -> Iterator[None]:
        """Decode with a PEFT LoRA adapter on top of the base weights, then remove it again.

        The base weights are never merged into: merging and unmerging in float drifts them, and
        every later strategy must decode the exact same base model (a merged copy is another matter).
        """
        if path is None:
            yield
            return
        from peft import PeftModel

        base = self.loaded.model
        try:
            peft_model = PeftModel.from_pretrained(base, str(path), is_trainable=False)
        except Exception as e:  # a broken or foreign adapter folder: the user's input
            raise HarnessError(f"cannot apply adapter {path}: {type(e).__name__}: {str(e)[:200]}") from e
        peft_model.eval()
        try:  # an adapter that leaves the logits where they were would score exactly as the base model
            check_logits_move(peft_model, [self.tokenizer("The answer is", add_special_tokens=False)["input_ids"]],
                              f"adapter {path}")
        except HarnessError:
            peft_model.unload()
            raise
        # On the CPU, decode with the adapter folded into a copy of the weights where the copy fits
        # (harness.engine.merge.merged_copy): same outputs up to float rounding, none of the
        # adapter's per-layer overhead. On a GPU the copy would cost memory that batches use better.
        merged = merged_copy(peft_model) if self.loaded.device == "cpu" and copy_fits(base.parameters()) else None
        self._with_adapter = merged if merged is not None else peft_model
        try:
            yield
        finally:
            self._with_adapter = None
            del merged
            peft_model.unload().eval()  # removes the LoRA layers from `base` in place
