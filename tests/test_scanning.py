"""The scans of raw bytes agree with a plain character-by-character reading, whatever
the size of the blocks they read (so what a block leaves open is carried right)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from miqa_nb.exchange.scanning import json_too_deep, long_csv_values

BLOCKS = st.sampled_from([1, 2, 3, 5, 7, 64, 1 << 20])


def _depth_reference(text: str, limit: int) -> int | None:
    """The offset of the first bracket beyond ``limit`` levels (ASCII text)."""
    depth, in_string, escaped = 0, False, False
    for offset, char in enumerate(text):
        if in_string:
            escaped, in_string = (False, in_string) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return offset
        elif char in "]}":
            depth -= 1
    return None


STRINGS = st.sampled_from(['"a\\"[b"', '"\\\\"', '"x[{"', '"\\\\\\"{"', '"' + "\\\\" * 9 + '"'])
JSON = st.recursive(
    st.one_of(STRINGS, st.just("1"), st.just("null")),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(STRINGS, inner), max_size=3).map(
            lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(text=JSON, limit=st.integers(1, 6), block=BLOCKS)
def test_json_depth_matches_a_plain_reading(text, limit, block):
    json.loads(text)  # the strategy writes JSON
    found = json_too_deep(text.encode(), limit, block=block)
    assert (None if found is None else found.offset) == _depth_reference(text, limit)


def _long_reference(text: str, longest_value: int, longest_row: int) -> list[tuple]:
    found: list[tuple] = []
    row, column, field_start, row_start, quoted, row_long = 1, 0, 0, 0, False, False
    i = 0
    while True:
        char = text[i] if i < len(text) else None
        if char == '"':
            quoted = not quoted
        elif char is None or (not quoted and char in ",\r\n"):
            width = 2 if text[i : i + 2] == "\r\n" else 1
            if i - field_start > longest_value:
                found.append((row, column, i - field_start))
                row_long = True
            if char != ",":
                if not row_long and i - row_start > longest_row:
                    found.append((row, None, i - row_start))
                row, column = row + (i > row_start), 0
                row_start, row_long = i + width, False
            else:
                column += 1
            if char is None:
                return found
            field_start = i + width
            i += width
            continue
        i += 1


PIECES = st.sampled_from(["a", "bb", "cccc", ",", "\n", "\r\n", "\r", '"x,\n"', '""', '"q""q"'])


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(PIECES, max_size=40),
    longest_value=st.integers(1, 6),
    longest_row=st.integers(3, 12),
    block=BLOCKS,
)
def test_long_csv_values_match_a_plain_reading(
    tmp_path_factory, pieces, longest_value, longest_row, block
):
    text = "".join(pieces)
    path = tmp_path_factory.mktemp("scan") / "f.csv"
    path.write_bytes(text.encode())
    found = long_csv_values(path, longest_value, longest_row, listed=1000, block=block)
    got = sorted(((v.row, v.column, v.size) for v in found), key=str)
    assert got == sorted(_long_reference(text, longest_value, longest_row), key=str)
