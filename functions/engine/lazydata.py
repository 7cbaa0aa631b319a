"""Lazy expressions as datasets: stored definitions, evaluated on read through the compute function.

A definition is a manifest of kind ``lazyexpr`` with no chunks: the expression,
its operands (storage paths), and the derived shape, dtype, chunks and blocks.
Reading one flattens it (operands that are themselves expressions are inlined,
with cycle detection), re-authorises every operand for the reader, pins each to
its current manifest (an exact version), and asks the coordinator for the slice
— which serves a cached result when one exists for exactly those versions.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping

import blosc2
import numpy as np

from catclient import wire
from functions.engine import expr, lazy
from functions.engine.compute import Coordinator
from functions.engine.content import Loaded, load_object
from functions.engine.errors import BadRequest, DatasetNotFound, TooLarge, Unreadable
from functions.engine.model import Content, Kind, Manifest
from functions.engine.paths import split_path
from functions.engine.publish import Publisher, PublishResult
from functions.engine.region import Region

KIND = Kind.LAZY

#: Largest result a lazy expression computes in one request, bytes (uncompressed).
MAX_RESULT_BYTES = 1 << 30

#: Expression names as ``client.lazyexpr(name, ...)`` takes them (no paths).
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

#: ``may_read(storage_root) -> bool``: whether the reader may read a storage root
MayRead = Callable[[str], bool]


def everyone(root: str) -> bool:
    """A ``may_read`` that allows every root (publishers' tools, tests)."""
    return True


def dataset_name(name: str) -> str:
    """``name`` → ``name.b2nd``, refusing anything that is not a plain name."""
    if not isinstance(name, str) or not _NAME.match(name.removesuffix(".b2nd")):
        raise BadRequest(f"not a valid expression name: {name!r} (letters, digits, _ . -)")
    return name if name.endswith(".b2nd") else f"{name}.b2nd"


class LazyDatasets:
    """Create, describe and evaluate lazy-expression datasets.

    Parameters
    ----------
    region : Region
        Where definitions and operands are read from.
    publisher : Publisher
        Stores definitions (and materialised results).
    coordinator : Coordinator
        Evaluates flat expressions through the compute function.
    """

    def __init__(self, region: Region, publisher: Publisher, coordinator: Coordinator) -> None:
        self.region = region
        self.publisher = publisher
        self.coordinator = coordinator

    # ------------------------------------------------------------------ definitions

    def _definition_at(self, path: str) -> lazy.Definition | None:
        root, rel = split_path(path, allow_root_only=False)
        manifest = self.region.dataset(root, rel)
        if manifest.kind != KIND:
            return None
        return definition(manifest)

    def _guarded(self, may_read: MayRead, what: str) -> Callable[[str], lazy.Definition | None]:
        """A resolver for :func:`lazy.inline` that authorises every path it is asked about.

        Every dataset an expression reads, directly or through other expressions,
        passes through here: an expression can never lend access to what it reads.
        """

        def resolve(path: str) -> lazy.Definition | None:
            root, _ = split_path(path, allow_root_only=False)
            if not may_read(root):
                raise Unreadable(f"an operand of {what} is not readable by you")
            return self._definition_at(path)

        return resolve

    def flatten(self, manifest: Manifest, may_read: MayRead = everyone) -> tuple[str, dict[str, str]]:
        """The flat expression and its operands pinned to manifest keys, authorised for the reader."""
        where = f"{manifest.root}/{manifest.path}"
        try:
            text, operands = lazy.inline(
                definition(manifest), self._guarded(may_read, manifest.path), path=where
            )
        except expr.ExpressionError as exc:
            raise BadRequest(str(exc)) from None
        pinned = {}
        for alias, path in operands.items():
            root, rel = split_path(path, allow_root_only=False)
            try:
                pinned[alias] = self.region.head(root, rel).manifest
            except DatasetNotFound:
                raise DatasetNotFound(f"operand {path} of {manifest.path} no longer exists") from None
        return text, pinned

    def effective_mtime(self, manifest: Manifest) -> str:
        """The newest mtime of the definition and everything it reads, nested expressions included.

        ``blosc2.Proxy`` stamps its cache with ``mtime``: a computed dataset changes
        whenever an operand does, so its mtime must move with them.
        """
        visited: list[str] = []

        def recording(path: str) -> lazy.Definition | None:
            visited.append(path)
            return self._definition_at(path)

        try:
            _, operands = lazy.inline(
                definition(manifest), recording, path=f"{manifest.root}/{manifest.path}"
            )
        except (expr.ExpressionError, DatasetNotFound):
            return manifest.mtime  # reading it will say what is wrong
        mtimes = [manifest.mtime]
        for path in {*visited, *operands.values()}:
            try:
                mtimes.append(self.region.head(*split_path(path, allow_root_only=False)).mtime)
            except DatasetNotFound:
                continue
        return max(mtimes)

    def create(
        self,
        root: str,
        rel: str,
        expression: str,
        operands: Mapping[str, str],
        may_read: MayRead = everyone,
    ) -> PublishResult:
        """Store a definition at ``root/rel`` after checking it completely.

        *operands* maps aliases to storage paths.  The expression must pass the
        allow-list, every operand must exist and be readable, the chain of
        expressions must be acyclic, and shapes must broadcast.
        """
        if not isinstance(operands, Mapping):
            raise BadRequest("operands must map the expression's names to dataset paths")
        for alias in operands:
            if not isinstance(alias, str) or not alias.isidentifier() or alias.startswith("_"):
                raise BadRequest(f"operand name {alias!r} is not a plain identifier")
            if alias in expr.FUNCTIONS:
                raise BadRequest(f"operand name {alias!r} is the name of a function")
        try:
            checked = expr.check(expression, set(operands))
        except expr.ExpressionError as exc:
            raise BadRequest(f"expression rejected: {exc}") from None
        unused = set(operands) - checked.names
        if unused:
            raise BadRequest(f"operands not used by the expression: {', '.join(sorted(unused))}")
        for alias, path in operands.items():
            o_root, o_rel = split_path(str(path), allow_root_only=False)
            if not may_read(o_root):
                raise Unreadable(f"operand {alias} is not readable by you")
            kind = self.region.dataset(o_root, o_rel).kind
            if kind not in (Kind.NDARRAY, KIND):
                raise BadRequest(f"operand {alias} is a {kind}; expressions take n-d arrays")
        draft = lazy.Definition(checked.text, dict(operands))
        try:
            text, flat = lazy.inline(draft, self._guarded(may_read, rel), path=f"{root}/{rel}")
        except expr.ExpressionError as exc:
            raise BadRequest(str(exc)) from None
        pinned = {
            a: self.region.head(*split_path(p, allow_root_only=False)).manifest for a, p in flat.items()
        }
        try:
            shape, dtype = self.coordinator.infer(text, pinned)
        except expr.ExpressionError as exc:
            raise BadRequest(f"expression rejected: {exc}") from None
        layout = _operand_layout(shape, [self.region.manifest_at(k).geometry for k in pinned.values()])
        content = _content(checked.text, dict(operands), shape, dtype, layout)
        return self.publisher.publish(root, rel, Loaded(content, []))

    def materialise(self, root: str, rel: str, may_read: MayRead = everyone) -> PublishResult:
        """Replace the definition at ``root/rel`` by its computed result, a stored n-d array.

        Bounded like any read of it (the work budget, :data:`MAX_RESULT_BYTES`).
        """
        manifest = self.region.dataset(root, rel)
        value = np.asarray(self.evaluate(manifest, (), may_read))
        geo = manifest.geometry  # the definition's layout: its operands' chunks and blocks
        layout = value.ndim and value.size
        kwargs = {"chunks": tuple(geo.chunks), "blocks": tuple(geo.blocks)} if layout else {}
        return self.publisher.publish(root, rel, load_object(blosc2.asarray(value, **kwargs)))

    # ------------------------------------------------------------------ reads

    def evaluate(self, manifest: Manifest, key: tuple, may_read: MayRead = everyone) -> np.ndarray:
        """``expression[key]`` (ints, slices and index arrays), computed on demand."""
        return self._evaluate(manifest, key, may_read, frame=False)

    def frame(self, manifest: Manifest, key: tuple, may_read: MayRead = everyone) -> bytes:
        """``expression[key]`` as the Blosc2 frame a client receives.

        The compute function's own frame is passed through for boxes (no
        decompression and recompression of what may be a large result).
        """
        return self._evaluate(manifest, key, may_read, frame=True)

    def _evaluate(self, manifest: Manifest, key: tuple, may_read: MayRead, *, frame: bool):
        geo = manifest.geometry
        shape = tuple(geo.shape)
        fancy = any(isinstance(k, np.ndarray) for k in key)
        try:
            box, relative, _ = wire.key_plan(key, shape, geo.chunks) if fancy and shape else (key, (), None)
            selected = np.broadcast_to(np.empty((), bool), shape)[lazy.full_key(box, shape)].shape
        except (wire.SliceError, expr.ExpressionError, IndexError) as exc:
            raise BadRequest(str(exc)) from None
        nbytes = math.prod(selected) * wire.dtype_from_str(geo.dtype).itemsize
        if nbytes > MAX_RESULT_BYTES:
            raise TooLarge(f"the selection is {nbytes} bytes of computed data; ask for smaller slices")
        text, pinned = self.flatten(manifest, may_read)
        try:
            if frame and not (fancy and shape):
                return self.coordinator.evaluate_frame(text, pinned, box)
            value = self.coordinator.evaluate(text, pinned, box)
        except expr.ExpressionError as exc:
            raise BadRequest(str(exc)) from None
        value = value[relative] if fancy and shape else value
        return wire.to_cframe(value) if frame else value

    def chunk(self, manifest: Manifest, nchunk: int, may_read: MayRead = everyone) -> bytes:
        """Chunk *nchunk* of the result, compressed as the stored layout would hold it."""
        geo = manifest.geometry
        shape, chunks = tuple(geo.shape), tuple(geo.chunks)
        if not shape:
            scalar = blosc2.asarray(np.asarray(self.evaluate(manifest, (), may_read)))
            return scalar.schunk.get_chunk(0)  # the array kept alive: its schunk refers to it
        grid = wire.chunk_grid(shape, chunks)
        coords = np.unravel_index(nchunk, grid)
        box = tuple(
            slice(int(c) * n, min((int(c) + 1) * n, s)) for c, n, s in zip(coords, chunks, shape, strict=True)
        )
        value = self.evaluate(manifest, box, may_read)
        padded = np.zeros(chunks, dtype=value.dtype)  # edge chunks are padded, as Blosc2 stores them
        padded[tuple(slice(0, n) for n in value.shape)] = value
        cparams = wire.cparams_from_dict(geo.cparams)
        framed = blosc2.asarray(padded, chunks=chunks, blocks=tuple(geo.blocks), cparams=cparams)
        return framed.schunk.get_chunk(0)  # the array kept alive: its schunk refers to it


def computed_on_creation(expression: str) -> bool:
    """Whether an expression is stored computed, as Caterva2 stores it: joins (``concat``, ``stack``)
    and linear algebra (``matmul``).

    A join's every read needs every joined array whole; computed once, it is read
    like any stored array.
    """
    try:
        tree = expr.check(expression, _names_in(expression)).tree
    except expr.ExpressionError:
        return False  # creating it will say what is wrong
    return any(isinstance(n, ast.Call) and n.func.id in expr.WHOLE for n in ast.walk(tree))


def _names_in(expression: str) -> set[str]:
    try:
        return {n.id for n in ast.walk(ast.parse(expression.strip(), mode="eval")) if isinstance(n, ast.Name)}
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()


def definition(manifest: Manifest) -> lazy.Definition:
    """The stored expression and operands of a ``lazyexpr`` manifest."""
    g = manifest.content.geometry
    return lazy.Definition(str(g["expression"]), dict(g["operands"]))


def _operand_layout(shape: tuple[int, ...], geometries: list) -> tuple[tuple, tuple] | None:
    """Chunks and blocks of the first operand with the result's *shape*, as Blosc2 keeps them.

    A lazy array chunked like its operands serves ``/api/chunk`` answers of the
    size a client sizes its buffer from (the operand's chunks): one chunked
    otherwise would overrun that buffer (``blosc2.decompress2`` into ``out``).
    """
    for geo in geometries:
        if tuple(geo.shape) == tuple(shape) and geo.chunks and geo.blocks:
            return tuple(geo.chunks), tuple(geo.blocks)
    return None


def _content(
    expression: str,
    operands: dict[str, str],
    shape: tuple[int, ...],
    dtype: np.dtype,
    layout: tuple[tuple, tuple] | None = None,
) -> Content:
    if layout is not None:
        chunks, blocks = layout
    else:
        chunks, blocks = blosc2.compute_chunks_blocks(shape, dtype=dtype) if shape else ((), ())
    cparams = wire.cparams_to_dict(blosc2.CParams(typesize=dtype.itemsize))
    cparams["nthreads"] = 1
    itemsize = dtype.itemsize
    geometry = {
        "kind": KIND,
        "shape": list(shape),
        "chunks": list(chunks),
        "blocks": list(blocks),
        "dtype": wire.dtype_to_str(dtype),
        "cparams": cparams,
        "chunksize": math.prod(chunks) * itemsize if shape else itemsize,
        "typesize": itemsize,
        "nbytes": math.prod(shape) * itemsize,
        "nchunks": math.prod(wire.chunk_grid(shape, chunks)) if shape else 1,
        "expression": expression,
        "operands": operands,
    }
    return Content(kind=KIND, geometry=geometry, vlmeta={}, cbytes=0, refs=())
