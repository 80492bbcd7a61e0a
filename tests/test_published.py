"""The published master key filter file: parsing and malformed input."""

import numpy as np
import pytest

from masterkey.errors import UserError
from masterkey.published import load_master_key_filters, parse_master_key_filters


def test_shared_copy_parses(published_filters):
    assert published_filters.shape == (8, 7, 7)
    np.testing.assert_allclose(published_filters.sum(axis=(1, 2)), 0, atol=1e-4)  # zero mean
    np.testing.assert_allclose(np.sqrt((published_filters**2).sum(axis=(1, 2))), 1, atol=1e-4)  # unit norm


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
    with pytest.raises(UserError, match=message):
        parse_master_key_filters(text, source="f.txt")


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="published_filters"):
        load_master_key_filters(tmp_path / "none.txt")
