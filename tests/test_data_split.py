"""The split procedure itself, on made-up names (the real split is checked in test_data_real.py)."""

from __future__ import annotations

import pytest

from omniglot_data.split import SIZES, make_split, render

NAMES = [f"{alphabet}/character{number:02d}" for alphabet in ("Zeta", "alpha", "Beta_(x)") for number in range(1, 11)]
SMALL = {"train": 20, "val": 4, "test": 6}


def test_split_has_the_requested_sizes_and_covers_every_name_once():
    split = make_split(NAMES, SMALL)
    assert {name: len(names) for name, names in split.items()} == SMALL
    assert sorted(sum(split.values(), [])) == sorted(NAMES)


def test_split_does_not_depend_on_the_order_names_are_listed_in():
    assert make_split(NAMES, SMALL) == make_split(list(reversed(NAMES)), SMALL)


def test_names_are_sorted_bytewise_like_the_c_locale():
    split = make_split(NAMES, SMALL)
    for names in split.values():
        assert names == sorted(names, key=str.encode)
    # Uppercase before lowercase in C order: a locale-aware sort would interleave them.
    assert "Zeta" < "alpha" and all(name.startswith(("Beta", "Zeta")) for name in split["train"][:1])


def test_seed_changes_the_split():
    assert make_split(NAMES, SMALL, seed=0) != make_split(NAMES, SMALL, seed=1)


def test_sizes_must_add_up_and_names_be_unique():
    with pytest.raises(ValueError, match="add up to 30, not to the 29 names"):
        make_split(NAMES[:-1], SMALL)
    with pytest.raises(ValueError, match="unique"):
        make_split(NAMES[:-1] + NAMES[:1], SMALL)


def test_document_records_the_procedure_and_counts():
    document = render(make_split(NAMES, SMALL))
    assert '"procedure": "all 1623 character names' in document and '"seed": 0' in document
    assert SIZES == {"train": 1100, "val": 100, "test": 423}
