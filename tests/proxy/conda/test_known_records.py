"""Records decoded as `KnownRecord` (`gate.sources.conda_index`): the same values, the same facts and classes,
the same key counts as the dicts they stand for, and no byte of a record skipped unchecked."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gate.gather.conda import common_fields, common_record
from gate.sources.conda_index import KnownRecord, RawRecord, RepodataIndex, decode, key_counts
from tests.proxy.conda.test_redteam_repodata import OUT_OF_RANGE, _record, _served
from tests.support.conda_forge import forge_repodata
from tests.support.conda_policies import policy_document

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
AGE = policy_document("age", ecosystems=["conda"], minimumAge="7d")
FIELDS = tuple(KnownRecord.__struct_fields__)
PRESENCE = ("name", "version", "build")  # UNSET when not named: their keys are counted


def _raws(body: bytes) -> list[tuple[str, msgspec.Raw]]:
    index = RepodataIndex(body)
    return [(filename, raw) for _, filename, raw in index.every_slot()]


def _variants() -> list[bytes]:
    """Records of every shape a channel could send that a `KnownRecord` can hold: forge records, and ones with
    fields null, absent, given twice, escaped, nested, of other types, numbers at the edges."""
    rng = random.Random(7)
    base = json.loads(_record("pkg"))
    values: list[Any] = [None, True, 0, -1, 2**70, 1.5, 1e308, "", "x", "PKG", "caf\u00e9", [], {}, [1, {"a": [None]}],
                        "ab" * 32, "AB" * 32, "ab" * 31, 1_700_000_000_000, 10**14, 0.0]
    out = []
    for _ in range(600):
        record = dict(base)
        for field in rng.sample(FIELDS, rng.randint(0, 6)):
            if rng.random() < 0.25:
                record.pop(field, None)
            else:
                record[field] = rng.choice(values)
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.2:  # a key given twice: the last one counts, in a dict as in a KnownRecord
            field = rng.choice(FIELDS)
            text = text[:-1] + ("," if record else "") + json.dumps({field: rng.choice(values)})[1:]
        out.append(text.encode())
    return out


def test_forge_records_decode_as_known_records() -> None:
    """The usual record (what conda-forge lists) takes the fast path: otherwise nothing here tests it."""
    body = json.dumps(forge_repodata(3000, now=NOW), separators=(",", ":")).encode()
    raws = [raw for _, raw in _raws(body)]
    every = RawRecord.every(raws)
    assert every is not None and all(isinstance(record.view, KnownRecord) for record in every)


def test_a_known_record_holds_what_its_dict_holds() -> None:
    known = 0
    for text in _variants():
        known += _same(text)
    assert known > 500  # nearly every variant is a KnownRecord


def _same(text: bytes) -> bool:
    """Whether `text` decodes as a KnownRecord; asserts it holds what its dict holds."""
    as_dict = decode(text)
    every = RawRecord.every([msgspec.Raw(text)])
    assert every is not None
    (record,) = every
    if not isinstance(record.view, KnownRecord):
        assert set(as_dict) - set(FIELDS)  # only a field of another name makes it a dict
        return False
    for field in FIELDS:
        value = getattr(record.view, field)
        if field in PRESENCE and field not in as_dict:
            assert value is msgspec.UNSET
        else:
            assert value == as_dict.get(field) and type(value) is type(as_dict.get(field))
    assert record.mapping == as_dict
    assert key_counts([record]) == key_counts([RawRecord(text, as_dict)])
    view = record.view
    for filename in ("pkg-1.0-0.conda", "PKG-1.0-0.tar.bz2", "pkg-1.0-0.whl", f"{as_dict.get('name')}-1.0-0.conda"):
        fields = (view.name, view.version, view.build, view.sha256, view.size, view.indexed_timestamp, view.timestamp)
        assert common_fields(filename, fields) == common_record(filename, as_dict)
    return True


@pytest.mark.parametrize("field", [f for f in FIELDS if f not in PRESENCE])
@pytest.mark.parametrize("number", OUT_OF_RANGE[:2])
def test_a_number_no_decoder_reads_in_a_known_field_is_no_record(field: str, number: str) -> None:
    """A `KnownRecord` decodes every value whole: a number out of range in any of its fields fails the batch,
    as it fails a dict (a struct skipping it would take the record as readable)."""
    text = (_record("bad")[:-1] + f',"{field}":{number}}}').encode()
    assert RawRecord.every([msgspec.Raw(text)]) is None
    with pytest.raises(ValueError, match="out of range"):
        RawRecord.of(msgspec.Raw(text))


@pytest.mark.parametrize("number", OUT_OF_RANGE)
def test_a_record_with_a_known_field_out_of_range_is_denied_not_served(tmp_path: Path, number: str) -> None:
    good, bad = _record("good"), _record("bad")[:-1] + f',"build_number":{number}}}'
    body = (f'{{"info":{{"subdir":"noarch"}},"packages":{{}},"packages.conda":{{"good-1.0-0.conda":{good},'
            f'"bad-1.0-0.conda":{bad}}}}}').encode()
    status, document = _served(tmp_path, body, AGE)
    assert status == 200
    assert set(document["packages.conda"]) == {"good-1.0-0.conda"}
