"""The regression gate (`sft-harness gate BASELINE CANDIDATE`): a statistical verdict with exit codes
for CI, the examples that flipped, and its files (JUnit XML, JSON, an HTML page of the flips).

compare: the checks and the rule; model: what it decides; flips: what broke and what was fixed;
forgetting: --max-forgetting; output: the console; files: JUnit, JSON and HTML.
"""

from harness.gate.compare import CORRECTIONS, gate, parse_max_drops, parse_max_forgetting, parse_run_ref
from harness.gate.files import flips_html_path, write_flips_html, write_json, write_junit
from harness.gate.model import GATE_SCHEMA, IMPROVED, OK, REGRESSION, Check, GateReport, Pairing, judge
from harness.gate.output import render_gate

__all__ = ["CORRECTIONS", "GATE_SCHEMA", "IMPROVED", "OK", "REGRESSION", "Check", "GateReport", "Pairing",
           "flips_html_path", "gate", "judge", "parse_max_drops", "parse_max_forgetting", "parse_run_ref",
           "render_gate", "write_flips_html", "write_json", "write_junit"]
