"""How the openai backend retries: the policy (exponential backoff with jitter, Retry-After
honoured and capped), the two kinds of failed attempt, and a server's error in its own words."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["RetryPolicy", "retry_after_s"]


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 4  # attempts after the first
    backoff_s: float = 1.0  # the first wait; doubled each retry, with jitter
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0  # a longer Retry-After is cut to this

    def wait_s(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        base = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return base * (0.5 + random.random() / 2)  # "equal jitter": concurrent clients spread out


class _Transient(Exception):
    """A failed attempt worth retrying (429, 5xx, connection error, timeout)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Failed(Exception):
    """A request that will not succeed for this example (e.g. 400: prompt too long): its error."""


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header in seconds: a number of seconds or an HTTP date (None if neither)."""
    if not value:
        return None
    try:
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _detail(response: httpx.Response) -> str:
    """The server's own words on an error, short and on one line."""
    try:
        body = response.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        text = str(err.get("message", err) if isinstance(err, dict) else err)
    except ValueError:
        text = response.text
    return " ".join(text.split())[:200]
