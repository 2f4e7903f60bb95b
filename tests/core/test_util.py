import pytest

from neurodeploy.util import atomic_path, write_text_atomic


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "report.json"
    write_text_atomic(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["report.json"]
