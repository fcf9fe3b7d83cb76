"""sft-harness: fine-tune, prompt or retrieve? Decide with evidence."""

__version__ = "0.1.0"
