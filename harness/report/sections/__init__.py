"""Features with a section of their own in every report format: training seeds, leakage, forgetting,
the cost trade-off, the history across runs, learning curves."""
