"""Record selection, flattening and typing of JSON pages."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from dataproc_dagster.core.errors import SourceError
from dataproc_dagster.sources.http.flatten import flatten_record
from dataproc_dagster.sources.http.record_path import select_records
from dataproc_dagster.sources.http.records import RecordConverter

PAGE = "http://api.test/items?page=2"


def test_record_path_selects_nested_list() -> None:
    payload = {"data": {"items": [{"id": 1}], "count": 1}}
    assert select_records(payload, "data.items", where=PAGE) == [{"id": 1}]


def test_missing_record_path_names_the_path_and_the_keys() -> None:
    with pytest.raises(SourceError) as info:
        select_records({"data": {"rows": []}}, "data.items", where=PAGE)
    message = str(info.value)
    assert "'data.items'" in message and "keys there: rows" in message and PAGE in message


def test_without_path_a_top_level_list_or_the_only_list_is_used() -> None:
    assert select_records([{"id": 1}], None, where=PAGE) == [{"id": 1}]
    assert select_records({"total": 3, "results": [{"id": 2}]}, None, where=PAGE) == [{"id": 2}]


def test_ambiguous_lists_are_an_error_listing_the_candidates() -> None:
    with pytest.raises(SourceError, match=r"candidate keys: items, errors"):
        select_records({"items": [], "errors": []}, None, where=PAGE)


def test_record_path_to_a_non_list_is_an_error() -> None:
    with pytest.raises(SourceError, match="holds a object, not a list"):
        select_records({"data": {"a": 1}}, "data", where=PAGE)


def test_flatten_to_depth_keeps_deeper_objects_whole() -> None:
    record = {"id": 1, "owner": {"id": 7, "address": {"city": "Oslo"}}}
    assert flatten_record(record, 2) == {"id": 1, "owner_id": 7, "owner_address_city": "Oslo"}
    assert flatten_record(record, 1) == {
        "id": 1,
        "owner_id": 7,
        "owner_address": {"city": "Oslo"},
    }


def test_converter_types_columns_and_stores_lists() -> None:
    converter = RecordConverter(max_depth=1)
    table = converter.convert(
        [
            {
                "id": 1,
                "tags": ["a", "b"],
                "scores": [1, 2.5],
                "mixed": [1, "x"],
                "o": {"p": {"q": 1}},
            },
            {"id": 2, "tags": None, "scores": [3], "mixed": [], "extra": True},
        ],
        where=PAGE,
    )
    assert table.schema.field("tags").type == pa.list_(pa.string())
    assert table.schema.field("scores").type == pa.list_(pa.float64())
    assert table.column("mixed").to_pylist() == ['[1,"x"]', "[]"]
    assert table.column("o_p").to_pylist() == ['{"q":1}', None]
    assert table.column("extra").to_pylist() == [None, True]
    assert table.column("id").to_pylist() == [1, 2]


def test_int_then_float_across_pages_widens_to_float() -> None:
    converter = RecordConverter()
    converter.convert([{"v": 1}], where=PAGE)
    table = converter.convert([{"v": 1.5}], where=PAGE)
    assert table.schema.field("v").type == pa.float64()


def test_mixed_types_across_pages_name_the_field_and_both_pages() -> None:
    converter = RecordConverter()
    converter.convert([{"id": 1, "amount": 10}], where="http://api.test/items?page=1")
    with pytest.raises(SourceError) as info:
        converter.convert([{"id": 2, "amount": "ten"}], where=PAGE)
    message = str(info.value)
    assert "field 'amount' changes type" in message
    assert "page=1" in message and PAGE in message


def test_mixed_types_in_one_page_name_the_field() -> None:
    with pytest.raises(SourceError, match="field 'amount' mixes int and string"):
        RecordConverter().convert([{"amount": 1}, {"amount": "x"}], where=PAGE)


def test_records_that_are_not_objects_are_an_error() -> None:
    with pytest.raises(SourceError, match="record 1 is a JSON number, not an object"):
        RecordConverter().convert([{"id": 1}, 5], where=PAGE)


def test_flattening_collision_is_an_error() -> None:
    with pytest.raises(
        SourceError, match=r"record 0: fields 'a_b' and 'a\.b' both become column 'a_b'"
    ):
        RecordConverter().convert([{"a_b": 1, "a": {"b": 2}}], where=PAGE)


PAGES = [
    [
        {"id": 1, "price": 2, "tags": ["a"], "o": {"p": 1, "q": {"r": "x"}}, "n": None},
        {"id": 2, "price": 2.5, "tags": [], "o": {"p": None, "q": {"r": "y"}}, "extra": True},
    ],
    [
        {"id": 3, "price": 4, "tags": None, "o": {"p": None}, "n": None, "scores": [1, 2.5]},
        {"id": 4, "price": None, "tags": ["b", "c"], "o": {"q": {"r": "z"}}, "scores": []},
    ],
]


def test_arrow_and_python_paths_give_the_same_tables() -> None:
    fast, slow = RecordConverter(max_depth=2), RecordConverter(max_depth=2)
    for index, page in enumerate(PAGES):
        where = f"{PAGE}&n={index}"
        from_arrow = fast._convert_in_arrow(page, where)
        assert from_arrow is not None  # the common case takes the fast path
        from_python = slow._convert_in_python(page, where)
        # Column order may differ (each path lists fields as it meets them); chunks are
        # conformed by name, so only names, types and values matter.
        names = sorted(from_python.column_names)
        assert sorted(from_arrow.column_names) == names
        assert from_arrow.select(names).schema == from_python.select(names).schema
        assert from_arrow.select(names).to_pylist() == from_python.select(names).to_pylist()
    assert fast.kinds == slow.kinds


def test_a_null_object_gives_null_children_on_both_paths() -> None:
    page = [{"o": {"p": 1}}, {"o": None}]
    assert RecordConverter().convert(page, where=PAGE).to_pylist() == [{"o_p": 1}, {"o_p": None}]
    slow = RecordConverter()._convert_in_python(page, PAGE)
    assert slow.to_pylist() == [{"o_p": 1}, {"o_p": None}]


def test_unusual_pages_fall_back_to_the_python_path() -> None:
    converter = RecordConverter(max_depth=1)
    assert converter._convert_in_arrow([{"a": {"b": {"c": 1}}}], PAGE) is None  # too deep
    assert converter._convert_in_arrow([{"a": 1}, {"a": "x"}], PAGE) is None  # mixed
    assert converter._convert_in_arrow([{"a": [1, "x"]}], PAGE) is None  # mixed list
    assert converter._convert_in_arrow([{"a": {}}], PAGE) is None  # empty object
    assert converter._convert_in_arrow([{"a.b": 1}], PAGE) is None  # dotted key
    assert converter._convert_in_arrow([{"a": 1}, None], PAGE) is None  # not an object
    assert converter.convert([{"a": {"b": {"c": 1}}}], where=PAGE).to_pylist() == [
        {"a_b": '{"c":1}'}
    ]


def test_flattening_collision_across_records_names_both_source_paths() -> None:
    with pytest.raises(SourceError) as info:
        RecordConverter().convert([{"id": 1, "a": {"b": 1}}, {"id": 2, "a_b": 7}], where=PAGE)
    message = str(info.value)
    assert "'a.b'" in message and "'a_b'" in message and "column 'a_b'" in message
    assert "record 1" in message


@pytest.mark.parametrize("order", [0, 1])
def test_flattening_collision_across_pages_names_both_source_paths(order: int) -> None:
    pages = [[{"id": 1, "a": {"b": 1}}], [{"id": 2, "a_b": 7}]]
    if order:
        pages.reverse()
    converter = RecordConverter()
    converter.convert(pages[0], where=f"{PAGE}&page=1")
    with pytest.raises(SourceError) as info:
        converter.convert(pages[1], where=f"{PAGE}&page=2")
    message = str(info.value)
    assert "'a.b'" in message and "'a_b'" in message and "column 'a_b'" in message
    assert "page=1" in message and "page=2" in message


def test_deeper_collisions_and_dotted_keys_name_the_paths() -> None:
    with pytest.raises(SourceError, match=r"'a\.b_c'.*'a_b\.c'|'a_b\.c'.*'a\.b_c'"):
        RecordConverter().convert([{"a": {"b_c": 1}}, {"a_b": {"c": 2}}], where=PAGE)
    with pytest.raises(SourceError) as info:
        RecordConverter().convert([{"x.y": {"z": 1}}, {"x.y_z": 2}], where=PAGE)
    assert """'["x.y"].z'""" in str(info.value) and """'["x.y_z"]'""" in str(info.value)
    # The same field on every record is no collision, nor a null where others hold an object.
    table = RecordConverter().convert([{"a": {"b": 1}}, {"a": None}, {"a": {"b": 3}}], where=PAGE)
    assert table.to_pylist() == [{"a_b": 1}, {"a_b": None}, {"a_b": 3}]


@pytest.mark.parametrize(
    ("record", "path"),
    [({"id": 1, "": 5}, """'[""]'"""), ({"id": 1, "o": {"": 5}}, """'o[""]'""")],
)
def test_an_empty_json_key_is_named(record: dict[str, Any], path: str) -> None:
    with pytest.raises(SourceError) as info:
        RecordConverter().convert([{"id": 0}, record], where=PAGE)
    message = str(info.value)
    assert "empty key" in message and path in message and "record 1" in message
