"""The published master key filter file: the bundled copy, its attribution, parsing and fetching."""

import re

import numpy as np
import pytest

from masterkey.core.errors import ConfigError, StaleFileError
from masterkey.data.published import (
    BUNDLED_FILTERS,
    PUBLISHED_FILTERS_URL,
    fetch_published_filters,
    load_master_key_filters,
    parse_master_key_filters,
)


def test_bundled_copy_follows_the_format(published_filters_path, published_filters):
    assert published_filters_path == BUNDLED_FILTERS and BUNDLED_FILTERS.is_file()
    text = BUNDLED_FILTERS.read_text()
    assert re.findall(r"^Filter (\d+):$", text, flags=re.MULTILINE) == [str(i) for i in range(1, 9)]
    assert published_filters.shape == (8, 7, 7)
    # The file gives 6 decimals; the filters' means are below 1.1e-7 and their norms within 5.2e-7 of 1.
    np.testing.assert_array_less(np.abs(published_filters.mean(axis=(1, 2))), 1e-6)  # zero mean
    np.testing.assert_allclose(np.sqrt((published_filters**2).sum(axis=(1, 2))), 1, rtol=0, atol=1e-6)
    assert (published_filters_path.parent / "ATTRIBUTION.md").is_file()


def test_attribution_names_source_licence_and_papers():
    text = (BUNDLED_FILTERS.parent / "ATTRIBUTION.md").read_text()
    assert "https://github.com/tonylindeberg/masterfiltmodel" in text
    assert "model-fitting/8Filters.txt" in text
    assert re.search(r"commit: e170f53[0-9a-f]{33}\b", text)
    assert "CC BY 4.0" in text and "creativecommons.org/licenses/by/4.0" in text
    assert (
        "[Q] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. The Quest for Universal Master Key Filters" in text
    )
    assert "[B] T. Lindeberg, Z. Babaiee, P. M. Kiasari. Modelling and analysis of the 8 filters" in text
    assert PUBLISHED_FILTERS_URL in text


def test_rows_are_stored_top_row_first(published_filters_path, published_filters):
    lines = published_filters_path.read_text().splitlines()
    first_row = [float(v) for v in lines[1].split()]
    np.testing.assert_array_equal(published_filters[0, 0], first_row)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no 'Filter i:' blocks"),
        ("1 2 3\n", "precedes the first"),
        ("Filter 1:\n1 2 3\n4 5 6\n7 8 9\nFilter 3:\n1 2 3\n4 5 6\n7 8 9\n", r"numbered \[1, 3\]"),
        ("Filter 1:\n1 2 3\n4 5\n7 8 9\n", "not 3x3"),
        ("Filter 1:\n1 2\n3 4\n", "odd"),
        ("Filter 1:\n1 2 x\n4 5 6\n7 8 9\n", "not a row of numbers"),
        ("Filter 1:\n1 2 nan\n4 5 6\n7 8 9\n", "non-finite"),
    ],
)
def test_malformed_text_rejected(text, message):
    with pytest.raises(ValueError, match=message) as info:
        parse_master_key_filters(text, source="f.txt")
    assert str(info.value).startswith("f.txt: ")


def test_missing_file(tmp_path):
    with pytest.raises(StaleFileError) as info:
        load_master_key_filters(tmp_path / "none.txt")
    assert info.value.path == tmp_path / "none.txt"
    assert str(info.value) == f"{tmp_path / 'none.txt'} does not exist"


def test_fetch_copies_the_bundled_file_byte_identically(tmp_path):
    destination = tmp_path / "resources" / "8Filters.txt"
    assert fetch_published_filters(None, destination) == destination
    assert destination.read_bytes() == BUNDLED_FILTERS.read_bytes()
    local = tmp_path / "mine.txt"
    local.write_bytes(BUNDLED_FILTERS.read_bytes())
    fetch_published_filters(str(local), tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_bytes() == local.read_bytes()
    assert sorted(p.name for p in (tmp_path / "resources").iterdir()) == ["8Filters.txt"]


def test_malformed_or_missing_source_names_the_config_key(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("Filter 1:\n1 2\n3 4\n")
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as info:
        fetch_published_filters(bad, out / "8Filters.txt")
    assert info.value.key == "published_filters"
    assert str(info.value).startswith(f"config key published_filters: {bad}: ")
    assert list(out.iterdir()) == []  # no destination, no temporary file
    with pytest.raises(ConfigError) as info:
        fetch_published_filters(tmp_path / "none.txt", out / "8Filters.txt")
    assert info.value.key == "published_filters" and "does not exist" in str(info.value)
    assert list(out.iterdir()) == []


def test_unreachable_url_names_the_config_key(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConfigError) as info:
        fetch_published_filters(PUBLISHED_FILTERS_URL, tmp_path / "8Filters.txt")
    assert info.value.key == "published_filters" and PUBLISHED_FILTERS_URL in str(info.value)
    assert "leave it unset for the copy bundled with the package" in str(info.value)
    assert list(tmp_path.iterdir()) == []
