"""`sft-harness import`: a user's data -> a suite folder that `sft-harness validate` accepts.

Pure data work, no model. The modules, in the order an import runs through them:
detect (which reader, which row layout), readers / hf (rows with their `file:line`), convert /
chat (rows -> Drafts: input, target, meta, id, instruction candidate), sources (the parts of an
import and their rows), dedup (duplicate inputs out), task (task, labels or fields, metrics,
answer length), split (seeded, stratified), corpus (a knowledge base), write / readme (the folder,
atomically) and pipeline (the steps in order). Progress is reported through a callback: the bar
itself is drawn by the CLI (a layer above).
"""

from __future__ import annotations

from harness.core.importing.convert import Columns
from harness.core.importing.detect import FORMATS
from harness.core.importing.pipeline import ImportOptions, import_suite
from harness.core.importing.rows import BadRowsError, ProgressFn
from harness.core.importing.split import Size, parse_size
from harness.core.types import TASKS

__all__ = ["FORMATS", "TASKS", "BadRowsError", "Columns", "ImportOptions", "ProgressFn", "Size", "import_suite",
           "parse_size"]
