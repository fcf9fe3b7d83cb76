"""`run --config run.toml`: every mistake is named with its file:line, before any model work."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.core.config import load_config

GOOD = """# a comment
suite = "banking-intents"
seed = 1
limit = 4
slice_by = ["intent"]

[[strategies]]
kind = "prompt"

[[strategies]]
kind = "prompt"
name = "knn"
k = 2
select = "knn"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_a_good_config_loads_and_locates_its_keys(tmp_path: Path) -> None:
    conf = load_config(write(tmp_path, GOOD))
    assert conf.data["limit"] == 4 and len(conf.strategy_tables()) == 2
    assert conf.where("limit") == f"{conf.path}:4"
    assert conf.where(entry=1) == f"{conf.path}:10"
    assert conf.where("select", entry=1) == f"{conf.path}:14"
    assert conf.where("k", entry=0) == f"{conf.path}:7"  # not in entry 0: its header
    assert conf.where("nothing") == str(conf.path)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ('suite = "x"\nlimt = 3\n', 2, "unknown key 'limt' (did you mean 'limit'?)"),
        ('suite = "x"\nseed = "one"\n', 2, "'seed' should be a whole number, got 'one'"),
        ('suite = "x"\nlimit = true\n', 2, "'limit' should be a whole number, got True"),
        ('suite = "x"\n\nslice_by = 3\n', 3, "'slice_by' should be a meta field name or a list of them"),
        ('suite = "x"\n[[strategies]\nkind = "prompt"\n', 2, "bad TOML: Expected ']]'"),
        ('suite = "x"\n[[strategies]]\nk = 3\n', 2, "[[strategies]] entry 1 needs a 'kind'"),
        (GOOD.replace('select = "knn"', 'select = "nn"'), 14, "select='nn' is not one of random, knn"),
        (GOOD.replace("k = 2", "kk = 2"), 13, "has no option 'kk' (did you mean 'k'?)"),
        (GOOD.replace("k = 2", 'k = "two"'), 13, "option k='two' should be a whole number"),
        (GOOD.replace('kind = "prompt"\nname', 'kind = "promt"\nname'), 11, "unknown strategy 'promt'"),
        ('suite = "x"\n[[strategies]]\nkind = "sft"\nepochs = 0\n', 4, "epochs must be at least 1"),
    ],
)
def test_mistakes_are_named_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:{line}: ") and message in err, err
    assert not (tmp_path / "runs").exists()  # refused before any run folder or model


def test_a_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: config file not found" in capsys.readouterr().err
