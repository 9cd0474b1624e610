"""How ./dev finds the Python 3.13 the local BigQuery-API server needs: fake interpreters and a fake uv on
an otherwise empty PATH, so every branch runs here whatever Pythons this machine has."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from devtools import localbq


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No python3.13, pyenv or uv anywhere the look-up searches."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.delenv(localbq.PYTHON_ENV, raising=False)
    monkeypatch.setattr("sys.executable", str(tmp_path / "venv" / "bin" / "python"))
    return bin_dir


def _fake_python(path: Path, is_313: bool) -> Path:
    return _script(path, f"echo {is_313}")


def test_an_interpreter_on_path_is_used(bare: Path) -> None:
    python = _fake_python(bare / "python3.13", True)
    assert localbq.find_python313() == str(python)


def test_a_pyenv_shim_without_the_version_is_skipped_for_pyenvs_own(bare: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _script(bare / "python3.13", "echo 'pyenv: python3.13: command not found' >&2; exit 127")
    versions = tmp_path / "pyenv" / "versions" / "3.13.1" / "bin"
    versions.mkdir(parents=True)
    real = _fake_python(versions / "python3.13", True)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    assert localbq.find_python313() == str(real)


def test_the_environment_variable_wins_and_is_checked(bare: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = _fake_python(tmp_path / "chosen", True)
    _fake_python(bare / "python3.13", True)
    monkeypatch.setenv(localbq.PYTHON_ENV, str(chosen))
    assert localbq.find_python313() == str(chosen)
    monkeypatch.setenv(localbq.PYTHON_ENV, str(_fake_python(tmp_path / "old", False)))
    with pytest.raises(localbq.LocalBigQueryError, match=f"{localbq.PYTHON_ENV}=.*is not a Python 3.13"):
        localbq.find_python313()


def test_without_any_python_or_uv_the_error_says_what_to_install(bare: Path) -> None:
    with pytest.raises(localbq.LocalBigQueryError, match=r"pyenv install 3\.13, or uv python install 3\.13"):
        localbq.find_python313()


def test_uv_installs_one_when_none_is_found_and_says_so(bare: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    managed = tmp_path / "uv-python" / "python3.13"
    managed.parent.mkdir()
    log = tmp_path / "uv.log"
    # `uv python find` answers only once `uv python install` has run.
    _script(bare / "uv", f"""echo "$*" >> {log}
case "$2" in
  install) /bin/cp {_fake_python(tmp_path / "template", True)} {managed} ;;
  find) [ -x {managed} ] && echo {managed} || exit 2 ;;
esac""")
    assert localbq.find_python313() == str(managed)
    assert log.read_text().splitlines() == ["python find --managed-python 3.13", "python install 3.13",
                                            "python find --managed-python 3.13"]
    assert "installing one with `uv python install 3.13`" in capsys.readouterr().err
    # The next look-up finds uv's Python without installing again.
    log.write_text("")
    assert localbq.find_python313() == str(managed)
    assert log.read_text().splitlines() == ["python find --managed-python 3.13"]


def test_a_failed_uv_install_is_reported_with_uvs_reason(bare: Path) -> None:
    _script(bare / "uv", 'case "$2" in install) echo "error: dns error" >&2; exit 1 ;; *) exit 2 ;; esac')
    with pytest.raises(localbq.LocalBigQueryError, match=r"(?s)uv python install 3\.13` failed \(exit 1\).*dns error"):
        localbq.find_python313()
