"""The shared decoding engine on a tiny random model: batching must not change greedy output."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.types import GenerationConfig
from harness.engine.backends.transformers import TransformersBackend
from harness.engine.generate import Engine, truncate_at_stop
from harness.engine.greedy import _length_groups, shared_prefix
from harness.engine.models import load_generator

CHATS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}]
    for q in [
        "hi",
        "What is the capital of France and why is it famous?",
        "Name three colours.",
        "A much longer question that goes on and on about many different things, to force padding in the batch.",
        "ok",
    ]
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_generator(str(tiny_model_dir), device="cpu")


def test_batched_equals_one_at_a_time(tiny) -> None:
    config = GenerationConfig(max_new_tokens=12)
    batched = TransformersBackend(tiny, batch_size=4).generate(CHATS, config)
    single = TransformersBackend(tiny, batch_size=1).generate(CHATS, config)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.output_tokens for g in batched] == [g.output_tokens for g in single]
    assert all(g.output_tokens > 0 for g in batched)


def test_results_keep_caller_order_and_count_prompt_tokens(tiny) -> None:
    engine = TransformersBackend(tiny, batch_size=2)
    gens = engine.generate(CHATS, GenerationConfig(max_new_tokens=4))
    assert [g.prompt_tokens for g in gens] == [len(engine.encode(c)) for c in CHATS]
    assert all(g.output_tokens <= 4 and g.latency_s > 0 for g in gens)


def test_batches_sorted_by_length_and_capped() -> None:
    from harness.engine.generate import EncodedPrompt

    class Fake:  # only the batching arithmetic is under test here
        pass

    engine = Engine.__new__(Engine)
    engine.batch_size, engine.max_batch_tokens = 3, 10
    items = [EncodedPrompt(i, [0] * n) for i, n in enumerate([1, 5, 2, 4, 3, 1])]
    batches = engine.batches(items)
    lengths = [[len(e.ids) for e in b] for b in batches]
    assert lengths == [[5, 4], [3, 2, 1], [1]]  # 5*3 > 10 tokens, so the first batch stops at two


def test_on_batch_reports_every_example_once(tiny) -> None:
    seen: list[int] = []
    TransformersBackend(tiny, batch_size=2).generate(CHATS, GenerationConfig(max_new_tokens=3), on_batch=lambda idx, gens: seen.extend(idx))
    assert sorted(seen) == list(range(len(CHATS)))


def test_stop_strings() -> None:
    assert truncate_at_stop("an answer\nQuestion: next", ["\nQuestion:"]) == "an answer"
    assert truncate_at_stop("abc", ["x", ""]) == "abc"
    assert truncate_at_stop("a.b.c", [".", "b"]) == "a"


def test_engine_stops_at_stop_string(tiny) -> None:
    engine = TransformersBackend(tiny, batch_size=2)
    free = engine.generate(CHATS[:2], GenerationConfig(max_new_tokens=12))
    # Stop at the second character of each free output: the text must end before it.
    stops = tuple(g.text[1:3] for g in free if len(g.text) > 3)
    stopped = engine.generate(CHATS[:2], GenerationConfig(max_new_tokens=12, stop=stops))
    for f, s in zip(free, stopped, strict=True):
        assert len(s.text) <= len(f.text)
        assert not any(stop in s.text for stop in stops if stop)


def test_a_prompt_longer_than_the_context_is_cut_from_the_left(tiny) -> None:
    engine = TransformersBackend(tiny, batch_size=2)
    context = engine.context_tokens()
    assert context == 1024  # the tiny model's max_position_embeddings
    question = "QUESTION-END what is the answer?"
    huge = "filler words here " * 3_000_000 + question  # ~54 MB: must not be tokenised whole
    chat = [{"role": "system", "content": "INSTRUCTION stays."}, {"role": "user", "content": huge}]
    ids, cut = engine.encode_fitting(chat, max_new_tokens=24)
    assert cut and len(ids) <= context - 24
    text = engine.tokenizer.decode(ids)
    assert "INSTRUCTION stays." in text and question in text
    [gen] = engine.generate([chat, CHATS[0]], GenerationConfig(max_new_tokens=4))[:1]
    assert gen.prompt_tokens <= context - 4 and engine.truncated == 1
    short, cut_short = engine.encode_fitting(CHATS[0], max_new_tokens=24)
    assert not cut_short and short == engine.encode(CHATS[0])


def test_a_frame_that_cannot_fit_is_refused(tiny) -> None:
    from harness.core.errors import HarnessError

    engine = TransformersBackend(tiny, batch_size=2)
    chat = [{"role": "system", "content": "long instruction " * 2000}, {"role": "user", "content": "q"}]
    with pytest.raises(HarnessError, match="use fewer shots or passages"):
        engine.encode_fitting(chat, max_new_tokens=8)
    with pytest.raises(HarnessError, match="leaves no room for a prompt"):
        engine.encode_fitting(CHATS[0], max_new_tokens=5000)


def test_the_engine_is_the_default_backend(tiny) -> None:
    from harness.engine.backends import backend_class
    from harness.engine.backends.base import Backend

    backend = TransformersBackend(tiny, batch_size=2)
    assert isinstance(backend, Backend) and isinstance(backend, Engine)
    assert backend_class("transformers") is TransformersBackend
    described = backend.record()
    assert described["backend"] == "transformers" and described["sha256"] == tiny.sha256
    assert backend.identity() == tiny.sha256 and backend.local_weights() is tiny
    gens = backend.generate(CHATS[:2], GenerationConfig(max_new_tokens=3))
    assert all(g.error is None and g.request_latency_s is None for g in gens)


def test_out_of_gpu_memory_while_decoding_is_one_line_naming_the_option(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: the model's forward raises the error CUDA raises, and the engine says what to do."""
    import torch

    from harness.core.errors import HarnessError

    backend = TransformersBackend(tiny, batch_size=2)

    def oom(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(tiny.model, "forward", oom)
    with pytest.raises(HarnessError, match=r"out of GPU memory decoding a batch of 2 prompts of up to \d+ tokens: "
                                           r"pass a smaller --batch-size \(decoded batches so far are cached\)"):
        backend.generate(CHATS[:2], GenerationConfig(max_new_tokens=3))


def _left_padded(tiny, chats):
    import torch

    backend = TransformersBackend(tiny)
    ids = [backend.encode(c) for c in chats]
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), backend.pad_id)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for row, e in enumerate(ids):
        input_ids[row, width - len(e):] = torch.tensor(e)
        attention[row, width - len(e):] = 1
    return input_ids, attention


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("group_tokens", [512, 1, 40])
def test_rows_leaving_the_batch_decode_what_generate_decodes(tiny, group_tokens: int, share_prefix: bool) -> None:
    """harness.engine.greedy: a finished row leaves the batch; the others go on exactly as in generate.
    Also when the prompts are prefilled in groups (one row each, or a few) with their own padding, and
    with or without their shared start run once (the chat template's system turn here)."""
    import torch

    from harness.engine.greedy import greedy_compact

    input_ids, attention = _left_padded(tiny, CHATS)
    with torch.inference_mode():
        free = tiny.model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=24, do_sample=False,
                                   pad_token_id=tiny.tokenizer.pad_token_id)[:, input_ids.shape[1]:].tolist()
    # end tokens that each row meets at another step: the rows finish one by one
    stop_ids = sorted({row[3 + 4 * i] for i, row in enumerate(free)})
    with torch.inference_mode():
        ref = tiny.model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=24, do_sample=False,
                                  pad_token_id=tiny.tokenizer.pad_token_id, eos_token_id=stop_ids)[:, input_ids.shape[1]:]
    expected = []
    for row in ref.tolist():
        cut = next((i for i, t in enumerate(row) if t in stop_ids), None)
        expected.append(row if cut is None else row[: cut + 1])
    got = greedy_compact(tiny.model, input_ids, attention, max_new_tokens=24, stop_ids=stop_ids,
                         prefill_group_tokens=group_tokens, share_prefix=share_prefix)
    assert got == expected
    assert shared_prefix(input_ids, attention.sum(-1).tolist()) >= 8  # the system turn: shared when asked
    groups = _length_groups(attention.sum(-1).tolist(), group_tokens)
    assert len(groups) == {512: 1, 1: len(CHATS), 40: 2}[group_tokens]
    assert len({len(r) for r in got}) >= 3  # rows left at different steps


def test_a_shared_start_is_what_every_row_begins_with_and_leaves_each_row_a_token(tiny) -> None:
    import torch

    from harness.engine.greedy import greedy_compact

    pad = tiny.tokenizer.pad_token_id
    base = [11, 12, 13, 14, 15, 16]
    rows = [base + [20, 21, 22], base + [30], base[:5] + [40, 41], base]  # the last: all of it shared but one
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    lengths = [len(r) for r in rows]
    assert shared_prefix(ids, lengths) == 5  # row 2 differs at the sixth token
    assert shared_prefix(ids[[0, 1, 3]], [lengths[i] for i in (0, 1, 3)]) == 5  # row 3 keeps its last token
    assert shared_prefix(ids[[0, 1]], lengths[:2]) == 6
    assert shared_prefix(ids[:1], lengths[:1]) == 0 and shared_prefix(ids, lengths, least=6) == 0
    attention = (torch.arange(width)[None] >= torch.tensor([width - n for n in lengths])[:, None]).long()
    shared = greedy_compact(tiny.model, ids, attention, max_new_tokens=12, stop_ids=[])
    assert shared == greedy_compact(tiny.model, ids, attention, max_new_tokens=12, stop_ids=[], share_prefix=False)
    with torch.inference_mode():
        ref = tiny.model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=12, do_sample=False,
                                  pad_token_id=pad, eos_token_id=None)[:, width:].tolist()
    assert shared == ref


def test_a_sliding_window_keeps_each_prompt_whole_so_greedy_stays_what_generate_decodes() -> None:
    """A window counts cache slots: a shared start's gap before a short row's rest would move its
    first tokens out of the window (this test fails with the prefix shared)."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from harness.engine.greedy import greedy_compact
    from harness.engine.kv_cache import window_shorter_than

    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, sliding_window=6, initializer_range=0.2,
        pad_token_id=0, eos_token_id=1, bos_token_id=2)).eval()
    base = [11, 12, 13, 14, 15, 16]
    rows = [base + [20, 21, 22, 23, 24], base + [30], base[:5] + [40, 41], base]
    width = max(map(len, rows))
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    attention = (ids != 0).long()
    assert window_shorter_than(model, width + 10) and not window_shorter_than(model, 6)
    with torch.inference_mode():
        ref = model.generate(input_ids=ids, attention_mask=attention, max_new_tokens=10, do_sample=False,
                             pad_token_id=0, eos_token_id=None)[:, width:].tolist()
    assert greedy_compact(model, ids, attention, max_new_tokens=10, stop_ids=[]) == ref


def test_length_groups_cover_the_rows_in_order_with_enough_tokens_each() -> None:
    lengths = [57, 56, 56, 50, 44, 44, 43, 12]
    groups = _length_groups(lengths, 100)
    assert [r for g in groups for r in g] == list(range(len(lengths)))  # every row once, in order
    assert groups == [range(0, 2), range(2, 4), range(4, 8)]  # the 12-token tail joined the 44s
    assert _length_groups(lengths, 10**6) == [range(0, 8)]
    assert _length_groups([5], 1) == [range(0, 1)]


def test_the_in_place_cache_holds_what_the_growing_one_holds() -> None:
    """harness.engine.kv_cache: the same keys and values as transformers' DynamicLayer after a prefill,
    steps past the spare room, dropped rows and a crop; and groups placed right-aligned."""
    import torch
    from transformers.cache_utils import DynamicLayer

    from harness.engine.kv_cache import InPlaceLayer, in_place_cache, right_aligned_cache

    gen = torch.Generator().manual_seed(0)
    ours, theirs = InPlaceLayer(room=2), DynamicLayer()
    def step(rows: int, n: int) -> None:
        k, v = torch.randn(rows, 3, n, 4, generator=gen), torch.randn(rows, 3, n, 4, generator=gen)
        got, want = ours.update(k, v), theirs.update(k, v)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    step(5, 7)
    for _ in range(4):  # two steps fill the room, the third grows the buffer
        step(5, 1)
    keep = torch.tensor([0, 2, 4])
    ours.batch_select_indices(keep)
    theirs.batch_select_indices(keep)
    step(3, 1)
    ours.crop(-2)
    theirs.crop(-2)
    assert torch.equal(ours.keys, theirs.keys) and ours.get_seq_length() == theirs.get_seq_length() == 10

    parts = []
    for rows, width in ((slice(0, 2), 6), (slice(2, 5), 4)):
        part = in_place_cache(room=0)
        part.update(torch.ones(rows.stop - rows.start, 3, width, 4), torch.ones(rows.stop - rows.start, 3, width, 4), 0)
        parts.append((rows, part))
    whole = right_aligned_cache(parts, width=6, room=3)
    keys = whole.layers[0].keys
    assert keys.shape == (5, 3, 6, 4) and whole.get_seq_length() == 6
    assert keys[:2].eq(1).all() and keys[2:, :, 2:].eq(1).all() and keys[2:, :, :2].eq(0).all()


def test_a_stop_string_ends_a_row_in_the_compact_loop(tiny) -> None:
    from harness.engine.greedy import greedy_compact

    input_ids, attention = _left_padded(tiny, CHATS)
    free = greedy_compact(tiny.model, input_ids, attention, max_new_tokens=16, stop_ids=[])
    texts = [tiny.tokenizer.decode(r, skip_special_tokens=True) for r in free]
    stop = texts[1][len(texts[1]) // 2:][:3]  # a piece of row 1's answer
    got = greedy_compact(tiny.model, input_ids, attention, max_new_tokens=16, stop_ids=[], stops=[stop],
                         tokenizer=tiny.tokenizer)
    assert len(got[1]) < len(free[1]) and got[1] == free[1][: len(got[1])]
    assert stop in tiny.tokenizer.decode(got[1], skip_special_tokens=True)
    assert all(g == f[: len(g)] for g, f in zip(got, free, strict=True))
