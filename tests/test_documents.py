"""The results files as types (mpqlib.study.documents): every committed file matches its schema,
and a file that does not is refused with the path to the value and the command that rewrites it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpqlib.book.results import Results
from mpqlib.errors import ConfigError
from mpqlib.study import documents as D

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(D.DOCS))
def test_every_committed_results_file_matches_its_schema(name):
    D.read_doc(ROOT / "results" / name)


def test_a_chapter_reads_typed_results(tmp_path):
    """What Results hands a chapter is checked: a pilot.json that lost a ratio is refused when read,
    naming the value and the study command, not met later as a KeyError in a figure."""
    doc = json.loads((ROOT / "results" / "pilot.json").read_text())
    model, budgets = next(iter(doc["budgets"].items()))
    del budgets[next(iter(budgets))]["ratio"]
    (tmp_path / "pilot.json").write_text(json.dumps(doc))
    r = Results("full", {"results_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=rf"pilot\['budgets'\]\['{model}'\]\['w\w+'\] lacks 'ratio'.*"
                                          r"mpq study run --profile full --parts pilot"):
        r.pilot()
    assert r.power() is None  # an optional file not written yet: None, as before


@pytest.mark.parametrize("value, schema, message", [
    ({"seconds": "1"}, D.Timed, r"t\['seconds'\] must be a number, not str"),
    ({"seconds": float("nan")}, D.Timed, r"must be a number"),
    ({"seconds": 1, "repeats": True}, D.Timed, r"t\['repeats'\] must be an integer, not bool"),
    ({"value": None, "low": "x"}, D.Ratio, r"t\['low'\] must be a number"),
    ([], D.PilotDoc, r"t must be an object, not list"),
    ({"m": {"model": "m"}}, D.CorrelationDoc, r"t\['m'\] lacks 'budget'"),
])
def test_a_value_of_another_type_is_refused_where_it_is(value, schema, message):
    with pytest.raises(ConfigError, match=message):
        D.check(value, schema, "t")


def test_optional_and_extra_keys_are_allowed():
    D.check({"seconds": 2.0, "host": None, "anything": [1]}, D.Timed, "t")
    D.check({"value": None}, D.Ratio, "t")


def test_a_required_file_read_first_as_optional_still_names_the_command(tmp_path):
    """Results remembers a file once read: a missing efficiency.json read as optional (None) must
    not turn the required read into a silent None."""
    from mpqlib.errors import ReadOnlyError

    r = Results("full", {"results_dir": str(tmp_path)})
    assert r.efficiency_or_none() is None
    with pytest.raises(ReadOnlyError, match="mpq study run --profile full --parts efficiency"):
        r.efficiency()
