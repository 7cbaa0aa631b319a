"""Evaluating an expression over a slice of its operands (what the compute function runs).

The request names operands by dataset path and carries the slice wanted; only
the chunks that slice touches are read.  Operands must share the dataset's shape
(elementwise expressions); reductions apply to the selected slice.  Lazy
expressions as datasets (creation, broadcasting, fan-out) build on this.
"""

from __future__ import annotations

from collections.abc import Mapping

import blosc2
import numpy as np

from catclient import wire
from functions.engine import expr
from functions.engine.errors import BadRequest
from functions.engine.paths import split_path
from functions.engine.reader import CacheStats, Region


def evaluate_request(region: Region, request: Mapping, stats: CacheStats) -> np.ndarray:
    """Evaluate ``request = {"expression", "operands": {alias: "root/path"}, "slice_"}``.

    Raises
    ------
    BadRequest
        For expressions outside the language, unknown operands, or shape mismatches.

    """
    operands = request.get("operands") or {}
    if not isinstance(operands, Mapping) or not operands:
        raise BadRequest("operands must map names to dataset paths")
    try:
        checked = expr.check(str(request.get("expression", "")), set(operands))
    except expr.ExpressionError as exc:
        raise BadRequest(str(exc)) from None
    env = {}
    shape = None
    for alias in sorted(checked.names):
        root, rel = split_path(str(operands[alias]), allow_root_only=False)
        manifest = region.dataset(root, rel)
        geo = manifest.geometry
        if manifest.kind != "ndarray":
            raise BadRequest(f"operand {alias} ({root}/{rel}) is not an n-d array")
        if shape is not None and geo.shape != shape:
            raise BadRequest(f"operand {alias} has shape {geo.shape}, others {shape}")
        shape = geo.shape
        try:
            key = wire.parse_slice(request.get("slice_"), len(geo.shape))
            touched = wire.touched_chunks(geo.shape, geo.chunks, key)
            env[alias] = wire.select_ndarray(geo, region.chunks(manifest, touched, stats), key)
        except wire.SliceError as exc:
            raise BadRequest(str(exc)) from None
    return np.asarray(expr.evaluate(checked, env))


def to_cframe(result: np.ndarray) -> bytes:
    """The result as a Blosc2 cframe (what clients decode)."""
    return blosc2.asarray(np.asarray(result)).to_cframe()
