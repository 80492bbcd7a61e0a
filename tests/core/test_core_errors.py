"""Errors a user can fix, and the checked reading/writing of workflow files that raises them."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from masterkey.core.errors import ConfigError, StaleFileError, UserError
from masterkey.core.io import (
    atomic_paths,
    fetch_text_resource,
    read_json,
    read_npy,
    read_parquet,
    sha256_file,
    write_json,
    write_npy,
    write_parquet,
)
from masterkey.core.rules import user_message


def test_error_messages_name_the_key_or_the_file():
    config = ConfigError("clustering.k", "needs at least 2 clusters")
    assert isinstance(config, UserError) and config.key == "clustering.k"
    assert str(config) == "config key clustering.k: needs at least 2 clusters"
    assert str(ConfigError("models", "as is", verbatim=True)) == "as is"
    stale = StaleFileError("results/kernels/demo.npz", "is unreadable")
    assert isinstance(stale, UserError) and stale.path == Path("results/kernels/demo.npz")
    assert stale.reason == "is unreadable"
    assert str(stale) == "results/kernels/demo.npz is unreadable"
    assert user_message(stale) == (
        "results/kernels/demo.npz is unreadable; rebuild it: `snakemake --forcerun results/kernels/demo.npz` "
        "(or delete it and run snakemake again)"
    )
    assert user_message(config) == str(config)  # only stale files get the rebuild hint


def test_writers_round_trip_and_leave_no_temporary_files(tmp_path):
    table = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    write_parquet(table, tmp_path / "sub" / "t.parquet")
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "sub" / "t.parquet"), table)
    write_npy(np.arange(5.0), tmp_path / "a.npy")
    np.testing.assert_array_equal(read_npy(tmp_path / "a.npy"), np.arange(5.0))
    write_json({"b": 1, "a": [1, 2]}, tmp_path / "m.json")
    assert read_json(tmp_path / "m.json") == {"a": [1, 2], "b": 1}
    assert (tmp_path / "m.json").read_text().index('"a"') < (tmp_path / "m.json").read_text().index('"b"')
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.npy", "m.json", "sub", "t.parquet"]
    import hashlib

    assert sha256_file(tmp_path / "a.npy") == hashlib.sha256((tmp_path / "a.npy").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "read, name", [(read_parquet, "t.parquet"), (read_npy, "a.npy"), (read_json, "m.json")]
)
def test_missing_and_corrupt_files_are_stale(tmp_path, read, name):
    path = tmp_path / name
    with pytest.raises(StaleFileError) as info:
        read(path)
    assert info.value.path == path and str(info.value) == f"{path} does not exist"
    path.write_bytes(b"\x00garbage{")
    with pytest.raises(StaleFileError) as info:
        read(path)
    assert info.value.path == path and str(info.value).startswith(f"{path} is unreadable (")


def test_atomic_paths_all_or_nothing(tmp_path):
    with atomic_paths(tmp_path / "a.txt", tmp_path / "d" / "b.txt") as (a, b):
        assert a.parent == tmp_path and a.name != "a.txt"
        a.write_text("A")
        b.write_text("B")
    assert (tmp_path / "a.txt").read_text() == "A" and (tmp_path / "d" / "b.txt").read_text() == "B"
    with pytest.raises(RuntimeError), atomic_paths(tmp_path / "a.txt", tmp_path / "c.txt") as (a, c):
        a.write_text("new")
        c.write_text("C")
        raise RuntimeError("interrupted")
    assert (tmp_path / "a.txt").read_text() == "A"  # untouched
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.txt", "d"]


def test_fetch_text_resource_copies_validates_and_names_the_key(tmp_path, monkeypatch):
    source = tmp_path / "src.txt"
    source.write_text("hello\n")
    out = fetch_text_resource(source, tmp_path / "out" / "copy.txt", "some_key")
    assert out.read_bytes() == source.read_bytes()
    with pytest.raises(ConfigError) as info:
        fetch_text_resource(tmp_path / "missing.txt", tmp_path / "out" / "x.txt", "some_key")
    assert info.value.key == "some_key" and "does not exist" in str(info.value)

    def reject(path):
        raise UserError(f"{path.name}: bad content")

    with pytest.raises(UserError, match="bad content"):
        fetch_text_resource(source, tmp_path / "out" / "y.txt", "some_key", validate=reject)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.txt"]

    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConfigError) as info:
        fetch_text_resource("https://example.org/f.txt", tmp_path / "out" / "z.txt", "some_key")
    assert info.value.key == "some_key"
    assert "cannot download https://example.org/f.txt (no network)" in str(info.value)
    assert "--config some_key=" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.txt"]
