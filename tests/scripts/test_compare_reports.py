"""scripts/compare_reports.py: equal reports agree, one changed number is found and named."""
import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "compare_reports.py"
_spec = importlib.util.spec_from_file_location("compare_reports", _PATH)
compare_reports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_reports)

REPORT = {"seed": 0, "source": {"clean_accuracy": 0.95, "ann_clean_accuracy": None,
                                "layers": [{"name": "sn1", "sa": 0.25}, {"name": "sn2", "sa": 0.125}]},
          "targets": {"lava": {"accuracy": 0.9, "seconds": 12.5, "info": {"build_s": 3.0, "pgid": 77}}}}


def _write(tmp_path, name, report):
    p = tmp_path / name / "report.json"
    p.parent.mkdir()
    p.write_text(json.dumps(report))
    return str(p)


def test_equal_reports_agree_ignoring_wall_clock(tmp_path, capsys):
    b = json.loads(json.dumps(REPORT))
    b["targets"]["lava"]["seconds"] = 99.0  # wall-clock keys are not compared
    b["targets"]["lava"]["info"].update(build_s=1.0, pgid=5)
    assert compare_reports.main([_write(tmp_path, "a", REPORT), _write(tmp_path, "b", b)]) == 0
    assert "agree" in capsys.readouterr().out


def test_one_differing_number_is_named(tmp_path, capsys):
    b = json.loads(json.dumps(REPORT))
    b["source"]["layers"][1]["sa"] = 0.126
    assert compare_reports.main([_write(tmp_path, "a", REPORT), _write(tmp_path, "b", b)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "source.layers[1].sa: 0.125 != 0.126"
    assert out[-1].startswith("1 difference(s)")


@pytest.mark.parametrize("change, expected", [
    (lambda r: r["targets"]["lava"].pop("accuracy"), "targets.lava.accuracy: only in A"),
    (lambda r: r["source"]["layers"].pop(), "source.layers: length 2 != 1"),
    (lambda r: r["source"].__setitem__("ann_clean_accuracy", 0.0), "source.ann_clean_accuracy: null != 0.0"),
])
def test_missing_keys_lengths_and_none_are_differences(change, expected):
    b = json.loads(json.dumps(REPORT))
    change(b)
    assert list(compare_reports.differences(REPORT, b)) == [expected]
