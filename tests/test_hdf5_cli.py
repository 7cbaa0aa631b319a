"""cat-import / cat-export: h5 → root directory → h5 keeps data, dtypes, shapes, layout and attributes."""

from __future__ import annotations

import subprocess
import sys

import blosc2
import h5py
import numpy as np

from infra.hdf5_cli import export_main, import_main
from tests.hdf5_files import SKIPPED, datasets, make_varied, same


def _same_attr(a, b) -> bool:
    if isinstance(a, h5py.Empty) or isinstance(b, h5py.Empty):
        return isinstance(a, h5py.Empty) and isinstance(b, h5py.Empty) and a.dtype == b.dtype
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return type(a) is type(b) and np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)


def assert_same_h5(original, copy) -> None:
    """Every convertible dataset and attribute of *original* is in *copy*, equal, with its dtype."""
    with h5py.File(original) as a, h5py.File(copy) as b:
        def visit(name, obj):
            if f"/{name}" in SKIPPED:
                assert name not in b, name
                return
            assert name in b, name
            other = b[name]
            if isinstance(obj, h5py.Dataset):
                assert other.dtype == obj.dtype and other.shape == obj.shape, name
                assert other.chunks == obj.chunks and other.compression == obj.compression, name
                assert np.array_equal(other.fillvalue, obj.fillvalue) or obj.dtype.fields, name
                if obj.shape is not None:
                    assert np.array_equal(other[()], obj[()]), name
            for key, value in obj.attrs.items():
                if name == "skip" and key == "ref_attr":
                    continue
                assert key in other.attrs and _same_attr(other.attrs[key], value), (name, key)

        a.visititems(visit)
        for key, value in a.attrs.items():
            assert _same_attr(b.attrs[key], value), key


def test_import_writes_a_root_directory(tmp_path, capsys):
    h5 = make_varied(tmp_path / "v.h5")
    assert import_main([str(h5), str(tmp_path / "root")]) == 0
    err = capsys.readouterr().err
    for path in SKIPPED:
        assert f"skipped {path}:" in err
    for rel, values in datasets(h5).items():
        arr = blosc2.open(str(tmp_path / "root" / rel))
        assert same(arr[()], values), rel
    arr = blosc2.open(str(tmp_path / "root" / "layout/chunked3d.b2nd"))
    assert arr.chunks == (16, 64, 64) and arr.schunk.vlmeta["units"] == "mV"
    assert (tmp_path / "root" / "numbers" / "!_attrs_.json").is_file()


def test_round_trip_h5_import_export_h5(tmp_path):
    h5 = make_varied(tmp_path / "v.h5")
    assert import_main([str(h5), str(tmp_path / "root")]) == 0
    assert export_main([str(tmp_path / "root"), str(tmp_path / "back.h5")]) == 0
    assert_same_h5(h5, tmp_path / "back.h5")


def test_export_of_arrays_not_born_in_hdf5(tmp_path):
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    values = np.arange(10_000, dtype="i4").reshape(100, 100)
    arr = blosc2.asarray(values, chunks=(32, 50), urlpath=str(root / "d" / "a.b2nd"), mode="w")
    arr.schunk.vlmeta["meta"] = {"k": [1, 2]}
    (root / "notes.txt").write_bytes(b"plain bytes")
    assert export_main([str(root), str(tmp_path / "out.h5")]) == 0
    with h5py.File(tmp_path / "out.h5") as f:
        assert np.array_equal(f["d/a"][()], values) and f["d/a"].chunks == (32, 50)
        assert f["notes.txt"][()].tobytes() == b"plain bytes"
    assert export_main([str(root), str(tmp_path / "skip.h5"), "--skip-files"]) == 0
    with h5py.File(tmp_path / "skip.h5") as f:
        assert "notes.txt" not in f and "d/a" in f


def test_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "junk.h5").write_bytes(b"nope")
    assert import_main([str(tmp_path / "junk.h5"), str(tmp_path / "out")]) == 1
    assert export_main([str(tmp_path / "missing"), str(tmp_path / "x.h5")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(": error:" in line for line in err)


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "infra.hdf5_cli", "export", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--url" in out and "cat-export" in out
