"""How batch transform cuts input into requests, on its own (the service-level tests in
test_sagemaker_api.py check the same through a real job)."""

from __future__ import annotations

import pytest

from emulation.sagemaker.transform import TransformFailure, pack, split_records


def test_line_split_drops_blank_lines_and_keeps_order():
    assert split_records(b"1,2\n\n3,4\n  \n5,6", "Line") == [b"1,2", b"3,4", b"5,6"]
    assert split_records(b"1,2\n3,4\n", "Line") == [b"1,2", b"3,4"]


def test_no_split_is_one_record_and_nothing_is_no_record():
    assert split_records(b"1,2\n3,4\n", "None") == [b"1,2\n3,4\n"]
    assert split_records(b"", "None") == []
    assert split_records(b"", "Line") == []


def test_single_record_is_one_request_per_record():
    assert pack([b"a", b"bb", b"c"], "SingleRecord", 10) == [b"a", b"bb", b"c"]


def test_multi_record_fills_each_request_up_to_the_limit_with_whole_records():
    records = [b"aaa", b"bbb", b"ccc", b"ddd", b"e"]
    # each record counts its length plus one newline: 8 bytes hold two 3-byte records, 7 only one
    assert pack(records, "MultiRecord", 8) == [b"aaa\nbbb", b"ccc\nddd", b"e"]
    assert pack(records, "MultiRecord", 7) == [b"aaa", b"bbb", b"ccc", b"ddd\ne"]
    assert pack(records, "MultiRecord", 100) == [b"aaa\nbbb\nccc\nddd\ne"]
    assert pack([], "MultiRecord", 100) == []


def test_a_record_exactly_at_the_limit_fits_and_one_byte_more_does_not():
    assert pack([b"x" * 4, b"y"], "MultiRecord", 4) == [b"xxxx", b"y"]
    with pytest.raises(TransformFailure, match=r"^A record is larger than MaxPayloadInMB \(2 MB\)\.$"):
        pack([b"x" * (2 * 1024 * 1024 + 1)], "SingleRecord", 2 * 1024 * 1024)
