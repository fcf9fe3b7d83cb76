"""The runner layer: the pre-flight (plan), one comparison run (loop), its options, its folders,
one strategy's decoding, the scoring pass."""

from harness.runner.decode import decode_strategy, prediction_identity, prepare_strategy
from harness.runner.folders import check_out_dir, link_latest, new_run_dir, remove_if_empty, run_id_base
from harness.runner.loop import run
from harness.runner.options import RunOptions, check_options, default_batch_size
from harness.runner.plan import RunPlan, plan_run

__all__ = ["RunOptions", "RunPlan", "check_options", "check_out_dir", "decode_strategy", "default_batch_size",
           "link_latest", "new_run_dir", "plan_run", "prediction_identity", "prepare_strategy", "remove_if_empty",
           "run", "run_id_base"]
