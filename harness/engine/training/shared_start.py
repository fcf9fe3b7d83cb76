"""A training batch's shared start run once: the tokens every row begins with (a chat template's
system turn, the suite's instruction; 32 of the default demo's ~98 tokens an example) are the same
computation in every row, so on the CPU, where each token's pass through the linears is the time,
they run once per micro-batch instead of once per example. Exact: tested against the plain forward
(loss and gradients)."""

from __future__ import annotations

from typing import Any

from harness.engine.training.config import TrainConfig
from harness.engine.training.distributed import Single


def logits_after_shared_start(model: Any, inputs: dict[str, Any], shared: int) -> Any:
    """The logits of a right-padded batch whose rows all begin with the same `shared` tokens: those
    run once, as one row, and their keys and values (with their autograd graph) are broadcast to
    every row, which then runs only the rest. The same attention, positions and loss (causal: the
    start does not see what follows it); the gradient through the broadcast sums over the rows, as
    the rows' own copies would. None where the cache is not one of keys and values per layer."""
    import torch

    from harness.engine.kv_cache import cache_keyword

    keyword = cache_keyword(model)
    ids = inputs["input_ids"]
    start = model(input_ids=ids[:1, :shared], use_cache=True, logits_to_keep=1)
    cache = getattr(start, keyword, None)
    layers = list(getattr(cache, "layers", None) or ())
    if not layers or not all(isinstance(getattr(layer, "keys", None), torch.Tensor) for layer in layers):
        return None
    for layer in layers:
        layer.keys = layer.keys.expand(len(ids), -1, -1, -1)
        layer.values = layer.values.expand(len(ids), -1, -1, -1)
    return model(input_ids=ids[:, shared:], attention_mask=inputs["attention_mask"], use_cache=True,
                 logits_to_keep=inputs["logits_to_keep"][:, shared:], **{keyword: cache}).logits


def shares_start(model: Any, config: TrainConfig, device: str, dist: Single) -> bool:
    """Whether batch_loss_sum may run a batch's shared start once: on the CPU, where the linears'
    work is the time (a GPU runs 8 rows in about the time of one, and a second call adds latency);
    one process (DDP counts one forward per backward); no dropout (one draw for every row would be
    another training) and no recomputed activations or quantised weights (their forwards keep no
    cache); no sliding window shorter than the longest example (its cache keeps only the window)."""
    from harness.engine.kv_cache import window_shorter_than

    return (device == "cpu" and dist.world == 1 and not config.packing and config.dropout == 0
            and not config.gradient_checkpointing and config.quantize == "none"
            and not window_shorter_than(model, config.max_len))
