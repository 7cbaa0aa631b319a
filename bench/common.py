"""What the benchmark cases share: the run's :class:`Context`, dataset names, rows, ratios, clients."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import numpy as np
from botocore.config import Config

from bench import data as bdata
from bench.measure import Timing
from bench.servers import Cat2Server, OurStack

ROOT = "bench"
BIG = "big.b2nd"
TOMO = "tomo.b2nd"
#: The small slice of issue 8 (``ds[5, 10:12, 3]``) on the tomography stack.
SMALL_KEY = (5, slice(10, 12), 3)
MB = 1e6


class WrongAnswer(AssertionError):
    """A client returned data that differs from the ground truth."""


@dataclass
class Context:
    """Everything the cases share in one run."""

    sizes: bdata.Sizes
    reps: int
    quick: bool
    files: dict[str, Path]
    truth: dict[str, np.ndarray]
    stack: OurStack
    cat2: Cat2Server | None
    log: Callable[[str], None] = print

    @property
    def pids(self) -> dict[str, int]:
        out = {"client": os.getpid(), **self.stack.pids}
        if self.cat2 is not None:
            out.update(self.cat2.pids)
        return out

    def s3(self, pool: int = 32):
        """A boto3 S3 client on our S3 endpoint (moto) for the harness itself."""
        return boto3.client(
            "s3",
            endpoint_url=self.stack.endpoint_url,
            region_name="us-east-1",
            config=Config(max_pool_connections=pool, s3={"addressing_style": "path"}),
        )


# --------------------------------------------------------------------------- helpers


#: The API function's environment as the template sets it (no AWS is called at import)
API_ENV = {
    "CAT_ORIGIN_BUCKET": "bench-origin",
    "CAT_CACHE_BUCKET": "bench-cache",
    "CAT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:bench",
    "CAT_USER_POOL_ID": "us-east-1_benchpool",
    "CAT_USER_POOL_CLIENT_ID": "benchclient",
}


def _row(timing: Timing, nbytes: int | None = None, **extra) -> dict:
    out = {
        "median_s": timing.median,
        "seconds": [round(s, 6) for s in timing.seconds],
        "cpu_s": timing.cpu,
        **extra,
    }
    if nbytes:
        out["mb_per_s"] = nbytes / MB / timing.median
    return out


def _checked(fn: Callable[[], object], truth: np.ndarray, what: str) -> Callable[[], object]:
    """*fn*, whose first answer is compared with *truth* (the rest are trusted)."""
    state = {"checked": False}

    def run():
        result = fn()
        if not state["checked"]:
            got = np.asarray(result)
            if got.shape != truth.shape or not np.array_equal(got, truth):
                raise WrongAnswer(f"{what}: answer differs from the ground truth")
            state["checked"] = True
        return result

    return run


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def _catclient(url: str, **kw):
    import catclient

    return catclient.Client(url, **kw)


def _cat2client(url: str):
    import caterva2

    # caterva2.Client's default timeout is 5 s: too short for a 200 MB answer
    return caterva2.Client(url, timeout=600)
