"""Installed as a user installs it, the project is one import name: `mimo` (with `mimo.pipeline`, `mimo.models`)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install .` (not editable) of a copy of the checkout into its own folder."""
    root = tmp_path_factory.mktemp("package")
    source = root / "source"
    everywhere = shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__")
    at_the_root = {"cache", "runs", "build", ".gpu", "figures"}  # pipeline/cache/ is source: only the root's

    def ignore(folder, names):
        return set(everywhere(folder, names)) | (at_the_root & set(names) if Path(folder) == REPO else set())

    shutil.copytree(REPO, source, ignore=ignore)
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(source)], check=True, capture_output=True)
    return target


def python(site: Path, cwd: Path, code: str) -> subprocess.CompletedProcess:
    """Python with the installed copy first on its path (its dependencies from this environment; an editable
    install of the checkout, if any, maps only ``mimo`` names, and comes after it)."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env={"PYTHONPATH": str(site)}, capture_output=True,
                          text=True)


@pytest.mark.slow
def test_one_import_name(installed, tmp_path):
    assert sorted(p.name for p in installed.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin") == ["mimo"]
    ok = python(installed, tmp_path, "import mimo, mimo.models, mimo.pipeline, mimo.pipeline.featurizers, mimo.cli; "
                                     "print(mimo.__version__, mimo.__file__)")
    assert ok.returncode == 0, ok.stderr
    version, where = ok.stdout.split()
    assert version == __import__("mimo").__version__ and Path(where).is_relative_to(installed)
    for name in ("models", "pipeline"):
        gone = python(installed, tmp_path, f"import {name}")
        assert gone.returncode != 0 and "ModuleNotFoundError" in gone.stderr


@pytest.mark.slow
def test_a_users_models_py_does_not_break_mimo(installed, tmp_path):
    (tmp_path / "models.py").write_text("raise SystemExit('the user models.py was imported')\n")
    (tmp_path / "pipeline.py").write_text("raise SystemExit('the user pipeline.py was imported')\n")
    ok = python(installed, tmp_path, "import mimo.models.estimators.base, mimo.pipeline.errors; print('fine')")
    assert ok.returncode == 0 and ok.stdout.strip() == "fine", ok.stderr


def test_the_licence_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    assert 'license = "MIT"' in text and (REPO / "LICENSE").read_text().startswith("MIT License")
