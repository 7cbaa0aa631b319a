"""On-demand compute for lazy expressions: what the compute function runs, and how the API drives it.

The API process is the *coordinator*: it flattens the expression (see
:mod:`functions.engine.lazy`), pins every operand to an exact manifest (so all
invocations read the same versions), looks the result up in the region's cache
bucket by a key made of expression + operand versions + slice, and otherwise
invokes the compute function through an :class:`Invoker` — once for an
elementwise slice, or once per group of chunk boxes for a reduction (fan-out).

Compute events (JSON, all keys required unless marked)::

    {"op": "slice",    "expression": str, "operands": {alias: manifest_key},
     "virtual": {name: npy_b64} (optional), "key": encoded_key}
    {"op": "partials", "expression": str, "operands": ..., "virtual": ...,
     "reduction": str, "axis": int | null, "boxes": [encoded_box, ...]}

Answers are ``{"status": 200, ...}`` or ``{"status": 4xx/5xx, "error": str}``.  A
slice's result is a Blosc2 cframe: ``{"cframe": bytes}`` (base64 text once it crosses
a Lambda boundary), or ``{"ref": key}`` in the cache bucket when it is larger than
the event's ``inline_limit`` (the invoker's payload limit; none in process).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import blosc2
import numpy as np

from catclient import wire
from catclient.wire.sink import ArraySink
from functions.engine import errors, expr, lazy, reductions, sliced
from functions.engine.errors import BadRequest, NotFound
from functions.engine.model import Kind, Manifest
from functions.engine.ports import Invoker
from functions.engine.region import CacheStats, Region

#: Largest answer carried inline in an invocation's response (Lambda allows 6 MB
#: of JSON; base64 costs a third).  Larger results go through the cache bucket.
INLINE_RESULT_BYTES = 4 << 20
#: Parallel compute invocations for one reduction.
DEFAULT_FANOUT = 8


# --------------------------------------------------------------------------- encoding


def encode_array(value: np.ndarray) -> str:
    """A numpy array as base64 ``.npy`` (loaded with ``allow_pickle=False``: data, never code)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(value), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_array(text: str) -> np.ndarray:
    """Inverse of :func:`encode_array`."""
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def encode_key(key: tuple) -> list:
    """A full key (ints and normalised slices) as JSON."""
    return [e if isinstance(e, int) else [e.start, e.stop, e.step] for e in key]


def decode_key(data: list) -> tuple:
    """Inverse of :func:`encode_key`."""
    out = []
    for e in data:
        if isinstance(e, list):
            out.append(slice(*e))
        elif isinstance(e, int) and not isinstance(e, bool):
            out.append(e)
        else:
            raise BadRequest(f"bad key entry {e!r}")
    return tuple(out)


# --------------------------------------------------------------------------- sources


class DatasetSource:
    """A stored n-d dataset at one exact version, read chunk by chunk through the region."""

    def __init__(self, region: Region, manifest: Manifest, stats: CacheStats) -> None:
        if manifest.kind != Kind.NDARRAY:
            raise BadRequest(f"{manifest.root}/{manifest.path} is a {manifest.kind}, not an n-d array")
        self._region = region
        self._manifest = manifest
        self._geo = manifest.geometry
        self._stats = stats
        self.shape = tuple(self._geo.shape)
        self.chunks = tuple(self._geo.chunks)
        self.dtype = wire.dtype_from_str(self._geo.dtype)

    def read(self, key: tuple) -> np.ndarray:
        """``dataset[key]``, reading only the chunks the key touches."""
        if not self.shape:
            chunks = self._region.chunks(self._manifest, [0], self._stats)
            return wire.select_ndarray(self._geo, chunks, ())
        touched = wire.touched_chunks(self.shape, self.chunks, key)
        chunks = self._region.chunks(self._manifest, touched, self._stats)
        # Straight into the answer (no NDArray of the chunks, no second copy): most boxes
        # of a lazy expression are runs of whole chunks
        sink = ArraySink.of(self._geo, key, serial=True)
        if sink is None:
            return wire.select_ndarray(self._geo, chunks, key)
        for nchunk in touched:
            sink.put(nchunk, chunks[nchunk])
        return sink.result()


def _sources(region: Region, event: Mapping, stats: CacheStats) -> dict[str, lazy.ArraySource]:
    sources: dict[str, lazy.ArraySource] = {}
    for alias, mkey in (event.get("operands") or {}).items():
        sources[alias] = DatasetSource(region, region.manifest_at(str(mkey)), stats)
    for name, text in (event.get("virtual") or {}).items():
        sources[name] = lazy.InMemory(decode_array(text))
    return sources


# --------------------------------------------------------------------------- compute side


def run(region: Region, event: Mapping, stats: CacheStats) -> dict:
    """Execute one compute event (the compute function's domain entry point)."""
    op = event.get("op")
    sources = _sources(region, event, stats)
    names = set(sources)
    try:
        checked = expr.check(str(event.get("expression", "")), names)
    except expr.ExpressionError as exc:
        raise BadRequest(str(exc)) from None
    if op == "slice":
        key = decode_key(event.get("key") or [])
        value = None
        if not checked.has_reduction:  # what the coordinator sends: reductions already extracted
            value = sliced.evaluate_chunkwise(checked, sources, key, wire.transport_cparams)
        if value is None:
            value = lazy.evaluate(checked, sources, key)
        return _answer(region, value, event.get("inline_limit"))
    if op == "partials":
        name, axis = str(event["reduction"]), event.get("axis")
        if name not in expr.REDUCTIONS:
            raise BadRequest(f"unknown reduction {name!r}")
        shape, _ = lazy.infer(checked, sources)
        boxes = [decode_key(b) for b in event.get("boxes") or []]
        # The argument is reduction-free (the coordinator extracted those), but
        # may slice operands: as views, so this invocation reads only its boxes of them
        tree, views = sliced.as_views(checked.tree.body, sources)
        parts = reductions.reduction_parts(name, axis, tree, {**sources, **views}, shape, boxes)
        return {
            "status": 200,
            "parts": [[encode_key(b), {k: encode_array(v) for k, v in p.items()}] for b, p in parts],
        }
    raise BadRequest(f"unknown compute op {op!r}")


def _answer(region: Region, value, inline_limit: int | None) -> dict:
    # A compressed frame: what clients get anyway, and far fewer bytes to move than raw
    body = value.to_cframe() if isinstance(value, blosc2.NDArray) else to_cframe(value)
    if inline_limit is None or len(body) <= inline_limit or region.cache is None:
        return {"status": 200, "cframe": body}
    key = "x/spill/" + hashlib.blake2b(body, digest_size=16).hexdigest()
    region.cache.put(key, body)
    return {"status": 200, "ref": key}


def jsonable(answer: dict) -> dict:
    """An answer as JSON can carry it across a Lambda boundary (bytes as base64 text)."""
    if isinstance(answer.get("cframe"), bytes | bytearray):
        return {**answer, "cframe": base64.b64encode(answer["cframe"]).decode("ascii")}
    return answer


def handle(region: Region, event: Mapping) -> dict:
    """Run *event*, turning domain errors into answers (a handler must never crash on input)."""
    stats = CacheStats()
    try:
        answer = run(region, event, stats)
    except (KeyError, TypeError, ValueError, wire.SliceError) as exc:
        if errors.rule_for(exc) is not None:  # a domain error that is also a ValueError (BadRequest, ...)
            return errors.encode(exc)
        # A malformed event or operand geometry: the caller's request, not a crash
        return {"status": 400, "error": str(exc), "error_type": BadRequest.__name__}
    except Exception as exc:  # noqa: BLE001 - every answer is JSON; 5xx keeps its class on the way back
        if errors.rule_for(exc) is None:
            raise
        return errors.encode(exc)
    answer["cache"] = stats.header()
    return answer


# --------------------------------------------------------------------------- invokers


# --------------------------------------------------------------------------- coordinator


class Coordinator:
    """Evaluates flat lazy expressions for the API: cache by version, invoke, fan out.

    Parameters
    ----------
    region : Region
        For manifests (inference, planning) and the cache bucket (results).
    invoker : Invoker
        Reaches the compute function.
    fanout : int
        Parallel invocations for one reduction (1 = a single invocation).
    max_work : int
        Elements × operands one read may evaluate, reductions included (0 = unbounded).
    max_nbytes : int
        Bytes of operands and result the elementwise part may hold at once (0 = unbounded).
    """

    def __init__(
        self,
        region: Region,
        invoker: Invoker,
        *,
        fanout: int = DEFAULT_FANOUT,
        max_work: int = 1 << 28,
        max_nbytes: int = 256 << 20,
    ) -> None:
        self.region = region
        self.invoker = invoker
        self.fanout = max(1, fanout)
        self.max_work = max_work
        self.max_nbytes = max_nbytes
        self._pool = ThreadPoolExecutor(max_workers=max(2, self.fanout), thread_name_prefix="fanout")

    def _metadata(self, operands: Mapping[str, str]) -> dict[str, lazy.ArraySource]:
        return {a: _Meta(self.region.manifest_at(k)) for a, k in operands.items()}

    def infer(self, text: str, operands: Mapping[str, str]) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of a flat expression over pinned operands (manifest keys)."""
        return lazy.infer(expr.check(text, set(operands)), self._metadata(operands))

    def evaluate(self, text: str, operands: Mapping[str, str], key: tuple) -> np.ndarray:
        """``expression[key]``; *operands* maps aliases to manifest keys (exact versions)."""
        return frame_to_array(self.evaluate_frame(text, operands, key))

    def evaluate_frame(self, text: str, operands: Mapping[str, str], key: tuple) -> bytes:
        """``expression[key]`` as the Blosc2 frame clients receive (no decompress/recompress)."""
        checked = expr.check(text, set(operands))
        meta = self._metadata(operands)
        shape, _ = lazy.infer(checked, meta)
        key = lazy.full_key(key, shape)
        # From shapes alone, before a chunk is read or a compute function invoked
        work = reductions.estimate_work(checked.tree.body, meta, key, shape)
        reductions.check_work(work, max_elements=self.max_work, max_nbytes=self.max_nbytes)
        cache_key = self._cache_key("slice", text, operands, encode_key(key))
        cached = self._cached(cache_key)
        if cached is not None:
            return cached
        extracted = lazy.extract(checked.tree.body, meta, self._reduce_with(operands), pull_subscripts=False)
        event = {
            "op": "slice",
            "expression": ast.unparse(extracted.tree),
            "operands": dict(operands),
            "virtual": {k: encode_array(v) for k, v in extracted.virtual.items()},
            "key": encode_key(key),
            "inline_limit": getattr(self.invoker, "payload_limit", INLINE_RESULT_BYTES),
        }
        frame = self._frame(self._call(event))
        self._store(cache_key, frame)
        return frame

    def _reduce_with(self, operands: Mapping[str, str]):
        def reduce(name: str, axis: int | None, argument: ast.AST, sources: Mapping[str, lazy.ArraySource]):
            shape, _ = lazy.infer_tree(argument, sources)
            # Boxes follow an operand's chunks, a sliced one's too when the slice keeps them whole
            _, views = sliced.as_views(argument, sources)
            box_list = reductions.boxes(shape, reductions.chunking_for(shape, {**sources, **views}))
            virtual = {k: encode_array(s.value) for k, s in sources.items() if isinstance(s, lazy.InMemory)}
            groups = _split(box_list, self.fanout)
            events = [
                {
                    "op": "partials",
                    "expression": ast.unparse(argument),
                    "operands": dict(operands),
                    "virtual": virtual,
                    "reduction": name,
                    "axis": axis,
                    "boxes": [encode_key(b) for b in group],
                }
                for group in groups
            ]
            call = self._partials
            answers = list(self._pool.map(call, events)) if len(events) > 1 else [call(events[0])]
            parts = [
                (decode_key(box), {k: decode_array(v) for k, v in partial.items()})
                for answer in answers
                for box, partial in answer["parts"]
            ]
            return reductions.place(name, axis, shape, parts)

        return reduce

    def _partials(self, event: dict) -> dict:
        """One partials invocation, or its answer cached by operand versions (manifest keys)."""
        virtual = hashlib.blake2b(json.dumps(event["virtual"], sort_keys=True).encode(), digest_size=16)
        detail = [event["reduction"], event["axis"], event["boxes"], virtual.hexdigest()]
        cache_key = self._cache_key("partials", event["expression"], event["operands"], detail)
        cached = self._cached(cache_key)
        if cached is not None:
            return {"status": 200, "parts": json.loads(cached)}
        answer = self._call(event)
        self._store(cache_key, json.dumps(answer["parts"]).encode())
        return answer

    def _call(self, event: dict) -> dict:
        answer = self.invoker.invoke(event)
        status = answer.get("status", 500)
        if status == 200:
            return answer
        raise errors.decode(answer)

    def _frame(self, answer: dict) -> bytes:
        if "ref" in answer:
            return self.region.cache.get(answer["ref"]).data
        data = answer["cframe"]
        return base64.b64decode(data) if isinstance(data, str) else data  # str: it crossed a Lambda

    # ------------------------------------------------------------------ result cache

    @staticmethod
    def _cache_key(op: str, text: str, operands: Mapping[str, str], key) -> str:
        # Operands are manifest keys, i.e. exact versions: a re-published operand
        # gives a new key, so a cached result can never be served stale
        body = json.dumps([op, text, sorted(operands.items()), key], sort_keys=True)
        digest = hashlib.blake2b(body.encode(), digest_size=32).hexdigest()
        return f"x/{digest[:2]}/{digest}"

    def _cached(self, cache_key: str) -> bytes | None:
        if self.region.cache is None:
            return None
        try:
            return self.region.cache.get(cache_key).data
        except NotFound:
            return None

    def _store(self, cache_key: str, frame: bytes) -> None:
        if self.region.cache is not None:
            self.region.cache.put(cache_key, frame)


class _Meta:
    """Shape/dtype/chunks of a pinned dataset, for inference and planning (no data)."""

    def __init__(self, manifest: Manifest) -> None:
        if manifest.kind != Kind.NDARRAY:
            raise BadRequest(f"{manifest.root}/{manifest.path} is a {manifest.kind}, not an n-d array")
        geo = manifest.geometry
        self.shape = tuple(geo.shape)
        self.chunks = tuple(geo.chunks)
        self.dtype = wire.dtype_from_str(geo.dtype)

    def read(self, key: tuple) -> np.ndarray:  # pragma: no cover - the coordinator never reads data
        raise RuntimeError("metadata-only source")


def _split(items: list, groups: int) -> list[list]:
    size = math.ceil(len(items) / max(1, min(groups, len(items)))) if items else 1
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


to_cframe = wire.to_cframe  # results travel as clients receive them


def frame_to_array(frame: bytes) -> np.ndarray:
    """A result frame as numpy."""
    return np.asarray(blosc2.ndarray_from_cframe(frame)[()])
