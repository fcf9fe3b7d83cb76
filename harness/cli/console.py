"""The CLI's two consoles, its argument parser class, and quieting library chatter."""

from __future__ import annotations

import argparse
import os
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

err = Console(stderr=True)
out = Console()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors: one line, exit 2
        err.print(f"[red]error:[/] {escape(message)} (see `{self.prog} --help`)", highlight=False)
        raise SystemExit(2)


def _quiet_libraries() -> None:
    """Our progress bars are the only ones: library bars and warnings would bury them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Raw tqdm bars inside libraries (transformers' one-time GGUF conversion) ignore the switches
    # below; tqdm reads this when it is first imported, which is after this point.
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
