"""Property test: a broken run config is refused in one line naming the file (and line), exit 2,
no traceback, and no run folder, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

BASE = """suite = "banking-intents"
seed = 1
limit = 4
slice_by = ["category"]
batch_size = 8
gpu_hour_usd = 2.5

[[strategies]]
kind = "prompt"

[[strategies]]
kind = "rag"
name = "retrieval"
k = 2
"""

KEYS = ["suite", "seed", "limit", "slice_by", "batch_size", "gpu_hour_usd", "device", "model", "embedder",
        "out", "trust_remote_code", "strategies"]
BAD_VALUES = ['"abc"', "-1", "0", "1.9", "true", "[1, 2]", "{a = 1}", "nan", "inf", '""', "99999999999999999",
              '"/definitely/not/here"', '"cuda:x"', "[]"]
STRATEGY_EDITS = ['kind = "promt"', "kind = 3", 'kk = 2', 'k = -2', 'k = "two"', 'k = 1.5', 'k = true',
                  'select = "nn"', 'chunk_tokens = 0', 'overlap = 500', 'budget = 0', 'name = 7', 'epochs = 0']
BROKEN_SYNTAX = ["suite = ", "[[strategies]\nkind = 'prompt'", "seed = 1\nseed = 2", 'suite = "unterminated',
                 "= 3", "\xff\xfe = 1"]


def mutations() -> st.SearchStrategy[tuple[str, bytes]]:
    top = st.tuples(st.sampled_from(KEYS), st.sampled_from(BAD_VALUES)).map(
        lambda kv: ("top", (f"{kv[0]} = {kv[1]}\n" + "\n".join(
            line for line in BASE.split("\n") if not line.startswith(kv[0] + " "))).encode()))
    table = st.tuples(st.sampled_from([0, 1]), st.sampled_from(STRATEGY_EDITS)).map(
        lambda te: ("table", _edit_table(te[0], te[1]).encode()))
    syntax = st.sampled_from(BROKEN_SYNTAX).map(lambda text: ("syntax", (BASE + "\n" + text + "\n").encode("utf-8", "surrogateescape")))
    raw = st.sampled_from([BASE.encode() + b"\nsuite = \"\xff\"\n", b"\xef\xbb\xbf" + b"\x00" * 3,
                           BASE.encode() + b"\n[[strategies]]\nname = \"no-kind\"\n"]).map(lambda b: ("raw", b))
    return st.one_of(top, table, syntax, raw)


def _edit_table(entry: int, edit: str) -> str:
    parts = BASE.split("[[strategies]]")
    key = edit.split("=")[0].strip()
    body = "\n".join(line for line in parts[entry + 1].split("\n") if not line.startswith(key + " "))
    parts[entry + 1] = f"\n{edit}{body}"
    return "[[strategies]]".join(parts)


def test_the_base_config_is_accepted_up_to_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import _run_options, build_parser

    path = tmp_path / "run.toml"
    path.write_text(BASE)
    opts = _run_options(build_parser().parse_args(["run", "--config", str(path)]))
    assert opts.suite == "banking-intents" and len(opts.strategy_params) == 2


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations())
def test_a_broken_config_is_one_line_exit_2_and_no_folder(
    mutation: tuple[str, bytes], tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, content = mutation
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "run.toml"
    path.write_bytes(content)
    out = folder / "runs"
    code = main(["run", "--config", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    lines = err.strip().split("\n")
    assert code == 2, (kind, content, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0] or "--out" in lines[0], (kind, content, err)
    assert not out.exists() or not any(out.iterdir())
