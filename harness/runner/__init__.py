"""The runner layer: one comparison run (loop), its options, its folders, one strategy's decoding."""

from harness.runner.decode import decode_strategy, prediction_identity, prepare_strategy
from harness.runner.folders import check_out_dir, link_latest, new_run_dir, remove_if_empty, run_id_base
from harness.runner.loop import run
from harness.runner.options import RunOptions, check_options, default_batch_size

__all__ = ["RunOptions", "check_options", "check_out_dir", "decode_strategy", "default_batch_size", "link_latest",
           "new_run_dir", "prediction_identity", "prepare_strategy", "remove_if_empty", "run", "run_id_base"]
