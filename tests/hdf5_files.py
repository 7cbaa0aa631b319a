"""HDF5 files for the tests: every kind the conversion must keep, and the objects it must skip."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

try:
    import hdf5plugin
except ImportError:  # pragma: no cover
    hdf5plugin = None

#: Objects make_varied() writes that cannot be converted, with a word of the reason reported.
SKIPPED = {
    "/skip/vlen_str": "variable-length strings",
    "/skip/refs": "references",
    "/skip/soft": "soft link to the group",
    "/skip/dangling": "does not exist",
    "/skip/external": "external link",
    "/skip/vlen_ints": "variable-length sequences",
}


def make_varied(path: Path, small: bool = False) -> Path:
    """A file with every kind of dataset, layout, filter and attribute the conversion handles.

    *small* keeps it under a direct upload's 4.5 MB (compressible data, a smaller
    contiguous array); the 3-d array is still bigger than one chunk in every dimension.
    """
    rng = np.random.default_rng(42)
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "varied test file"
        f.attrs["version"] = np.int32(3)
        f.attrs["scale"] = np.float32(0.5)
        f.attrs["vector"] = np.arange(4, dtype=np.float64)
        f.attrs["flag"] = np.bool_(True)
        f.attrs["label"] = np.bytes_(b"fixed")
        f.attrs["names"] = np.array(["a", "bc"], dtype=h5py.string_dtype())
        f.attrs["z"] = np.complex128(1 - 2j)
        num = f.create_group("numbers")
        num.attrs["unit"] = "counts"
        for dt in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"):
            info = np.iinfo(dt)
            num.create_dataset(dt, data=rng.integers(info.min, info.max, size=(50, 7), dtype=dt, endpoint=True))
        for dt in ("f2", "f4", "f8"):
            num.create_dataset(f"float/{dt}", data=rng.standard_normal((33, 17)).astype(dt))
        num.create_dataset("complex/c8", data=(rng.random(40) + 1j * rng.random(40)).astype("c8"))
        num.create_dataset("complex/c16", data=rng.random((6, 6)) + 1j * rng.random((6, 6)))
        num.create_dataset("bool", data=rng.random((20, 3)) > 0.5)
        num.create_dataset("bigendian", data=np.arange(100, dtype=">f8"))
        num.create_dataset("enum", data=np.array([0, 1, 1, 0], dtype="u1"),
                           dtype=h5py.enum_dtype({"RED": 0, "GREEN": 1}, basetype="u1"))
        sub = num.create_dataset("subarray", shape=(30,), dtype=np.dtype(("<f4", (3,))), chunks=(10,),
                                 compression="gzip")
        sub[...] = rng.random((30, 3)).astype("f4")
        text = f.create_group("text")
        text.create_dataset("fixed", data=np.array([b"alpha", b"be", b"gamma!!"], dtype="S7"))
        rec = np.zeros(25, dtype=[("id", "<i4"), ("x", "<f8"), ("name", "S6"), ("v", "<f4", (3,))])
        rec["id"] = np.arange(25)
        rec["x"] = rng.random(25)
        rec["name"] = [f"n{i}".encode() for i in range(25)]
        rec["v"] = rng.random((25, 3))
        d = text.create_dataset("records", data=rec, chunks=(10,))
        d.attrs["description"] = "compound -> structured"
        shapes = f.create_group("shapes")
        s = shapes.create_dataset("scalar", data=np.float64(2.75))
        s.attrs["note"] = "0-d"
        shapes.create_dataset("empty", shape=(0, 5), dtype="i4")
        shapes.create_dataset("empty_chunked", shape=(0,), maxshape=(None,), dtype="f4", chunks=(100,))
        shapes.create_dataset("null", data=h5py.Empty("f8"))
        fill = shapes.create_dataset("filled", shape=(100, 80), dtype="i2", chunks=(10, 10), fillvalue=-7)
        fill[20:30, 10:50] = 5  # most chunks never written: they read as the fill value
        layout = f.create_group("layout")
        shape3 = (40, 130, 130) if small else (70, 300, 260)
        if small:  # compressible (gzip + shuffle), still distinct values throughout
            big = (np.arange(np.prod(shape3)) % 4093).astype("f4").reshape(shape3) / 7
        else:
            big = rng.standard_normal(shape3).astype("f4")
        b = layout.create_dataset("chunked3d", data=big, chunks=(16, 64, 64), compression="gzip", shuffle=True)
        b.attrs["units"] = np.bytes_(b"mV")
        b.attrs["calibration"] = np.array([1.5, 2.5], dtype=np.float32)
        rows, cols = (600, 500) if small else (1500, 1200)
        layout.create_dataset("contiguous2d", data=np.add.outer(np.arange(float(rows)), np.arange(float(cols))))
        layout.create_dataset("lzf", data=np.arange(30000, dtype="i4").reshape(300, 100), chunks=(7, 13),
                              compression="lzf")
        layout.create_dataset("tinychunks", data=np.arange(5000, dtype="u2"), chunks=(3,))
        layout.create_dataset("gzip9", data=np.tile(np.arange(64, dtype="u1"), 2000), compression="gzip",
                              compression_opts=9)
        if hdf5plugin is not None:
            layout.create_dataset("blosc2", data=np.arange(100000, dtype="f8").reshape(100, 1000),
                                  chunks=(50, 500), **hdf5plugin.Blosc2())
        deep = f.create_group("a/b/c")
        deep.attrs["depth"] = np.int64(3)
        deep.create_dataset("leaf", data=np.arange(12, dtype="i8").reshape(3, 4))
        f.create_group("a/empty_group").attrs["kept"] = "yes"
        skip = f.create_group("skip")
        skip.create_dataset("vlen_str", data=["x", "yy"], dtype=h5py.string_dtype())
        refs = skip.create_dataset("refs", shape=(2,), dtype=h5py.ref_dtype)
        refs[0] = f["numbers"].ref
        skip.create_dataset("vlen_ints", shape=(2,), dtype=h5py.vlen_dtype("i4"))
        skip["soft"] = h5py.SoftLink("/a")  # groups behind soft links are not followed
        skip["dangling"] = h5py.SoftLink("/nowhere")
        f["numbers/i4_again"] = h5py.SoftLink("/numbers/i4")  # a dataset behind one is
        skip["external"] = h5py.ExternalLink("other.h5", "/data")
        skip.create_dataset("ok", data=np.arange(3))
        skip.attrs["ref_attr"] = f["numbers"].ref
    return path


def datasets(path: Path) -> dict[str, np.ndarray]:
    """``{"numbers/i4.b2nd": values}`` of every convertible dataset, as h5py reads it."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and f"/{name}" not in SKIPPED:
            value = np.zeros((), obj.dtype) if obj.shape is None else obj[()]  # null: a 0-d zero
            out[f"{name}.b2nd"] = np.asarray(value)

    def soft(name, link):  # visititems sees objects once, by their hard names
        target = f.get(name)
        if isinstance(link, h5py.SoftLink) and isinstance(target, h5py.Dataset) and f"/{name}" not in SKIPPED:
            visit(name, target)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        f.visititems_links(soft)
    return out


def same(got: np.ndarray, want: np.ndarray) -> bool:
    """Element-for-element equality with equal shapes (NaN-free data), dtypes compared by value."""
    got = np.asarray(got)
    if got.shape != want.shape or got.dtype != want.dtype.newbyteorder("=") and got.dtype != want.dtype:
        if not (want.dtype.kind == got.dtype.kind and want.dtype.itemsize == got.dtype.itemsize):
            return False
    return bool(np.array_equal(got, want))


def make_undefined_fill(path: Path) -> Path:
    """A file whose datasets declare no fill value at all, as PyTables writes them.

    h5py can only set a defined fill value, so libhdf5's ``H5Pset_fill_value(dcpl, type,
    NULL)`` is called through ctypes on the library h5py bundles (or links).
    """
    import ctypes
    import ctypes.util
    import glob
    import os

    bundled = glob.glob(os.path.join(os.path.dirname(h5py.__file__), os.pardir, "h5py.libs", "libhdf5-*"))
    libhdf5 = ctypes.CDLL(bundled[0] if bundled else ctypes.util.find_library("hdf5"))
    with h5py.File(path, "w") as f:
        for name, dtype, values in (("ints", h5py.h5t.NATIVE_INT32, np.arange(10, dtype="i4")),
                                    ("table/t", None, np.zeros(6, dtype=[("a", "i2"), ("b", "f8")]))):
            tid = dtype if dtype is not None else h5py.h5t.py_create(values.dtype)
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((4,))
            assert libhdf5.H5Pset_fill_value(ctypes.c_int64(dcpl.id), ctypes.c_int64(tid.id), None) >= 0
            group = f.require_group(os.path.dirname(name)) if "/" in name else f
            space = h5py.h5s.create_simple(values.shape)
            dset = h5py.Dataset(h5py.h5d.create(group.id, os.path.basename(name).encode(), tid, space, dcpl=dcpl))
            dset[...] = values
    return path
