"""The built distributions work outside the source tree.

The rest of the suite runs on the editable install, which finds every module in the checkout
whatever pyproject.toml declares. Here the sdist and the wheel are built from the tracked files
(what a fresh clone has, via PyPA's ``build``: the wheel is built from the sdist, so both must be
complete), the wheel is installed non-editable into a new virtualenv, and the installed
``vecmon`` runs ``--version``, ``collect`` against real PostgreSQL 18 and ``generate``.

The new venv gets the test venv's dependencies through a ``.pth`` line listing its
site-packages directories (as ``--system-site-packages`` would, but for this venv's packages):
a plain path line, so the editable install's own ``.pth`` hook there is not run and only the
installed wheel provides vecmon (checked by its ``__file__``). That keeps the test offline and
quick; CI also installs the wheel with its dependencies into a clean venv (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from collectors.self_metrics import UP
from tests.conftest import new_database

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("monitor", "collectors", "alerts", "dashboards")
BUILD_TIMEOUT = 180


def _tracked_files() -> list[str]:
    """The files a fresh clone has (git ls-files), or the tree minus local artefacts."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
        return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]
    skip = {".venv", ".git", "build", "dist", ".vecmon-demo", "__pycache__", ".pytest_cache"}
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts) and not p.name.endswith(".egg-info")]


def _source_packages() -> set[str]:
    """Every importable package under the four top-level packages of the source tree."""
    found = set()
    for top in PACKAGES:
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def _source_data_files() -> set[str]:
    return {str(p.relative_to(ROOT)) for top in PACKAGES for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix in (".yaml", ".yml", ".json", ".typed") and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("packaging")
    clone = work / "clone"
    for name in _tracked_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    out = work / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(clone)],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels, sdists = list(out.glob("vecmon-*.whl")), list(out.glob("vecmon-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0], "work": work}


@pytest.fixture(scope="module")
def venv(dists) -> Path:
    """A fresh venv with the wheel installed (not editable) and the test venv's dependencies."""
    path = dists["work"] / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    python = path / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                           "--no-deps", "--no-index", str(dists["wheel"])],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    outer = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "zz_test_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(outer)))
    return path


def _run(venv: Path, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VECMON_CONFIG")}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def test_wheel_and_sdist_hold_every_package_and_data_file(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
    packages_in_wheel = {name.rsplit("/", 1)[0].replace("/", ".") for name in names if name.endswith("/__init__.py")}
    assert packages_in_wheel == _source_packages()
    data = _source_data_files()
    assert {"collectors/data/prices.yaml", "monitor/py.typed"} <= data
    assert data <= names, sorted(data - names)
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        metadata = wheel.read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata

    with tarfile.open(dists["sdist"]) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert {"LICENSE", "pyproject.toml", "README.md"} <= members
    assert data <= members, sorted(data - members)
    assert {f"{p.replace('.', '/')}/__init__.py" for p in _source_packages()} <= members


def test_installed_wheel_runs_version_collect_and_generate(venv, pg18, tmp_path):
    where = _run(venv, "python", "-c", "import monitor, collectors.providers; print(monitor.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel, not the checkout

    version = _run(venv, "vecmon", "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"vecmon {_source_version()}"

    # The shipped price table is read from the installed package.
    shipped = yaml.safe_load((ROOT / "collectors" / "data" / "prices.yaml").read_text())["prices"]
    table = _run(venv, "python", "-c", "from collectors.provider_costs import PriceTable; "
                 "print(len(PriceTable.load().entries))", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert int(table.stdout.strip()) == len(shipped) > 0

    db = new_database(pg18, ("pg_stat_statements", "vector"))
    config = tmp_path / "vecmon.yaml"
    config.write_text(f"alerting: {{runbook_base_url: 'https://docs.example.org/vecmon/README.md'}}\n"
                      f"databases:\n  - name: packaged\n    dsn: \"{db.monitor_dsn}\"\n")
    collect = _run(venv, "vecmon", "collect", "-c", str(config), cwd=tmp_path)
    assert collect.returncode == 0, collect.stderr[-3000:]
    assert f'{UP.name}{{target="packaged"}} 1.0' in collect.stdout, collect.stdout[:2000]
    assert "price table" not in collect.stderr

    generate = _run(venv, "vecmon", "generate", "-c", str(config), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert generate.returncode == 0, generate.stderr[-3000:]
    written = [Path(line) for line in generate.stdout.split()]
    assert written and all(p.is_file() for p in written)
    names = {p.name for p in written}
    assert any(n.endswith(".json") for n in names) and any(n.endswith((".yml", ".yaml")) for n in names), names


def _source_version() -> str:
    namespace: dict = {}
    exec((ROOT / "monitor" / "__init__.py").read_text(), namespace)
    return namespace["__version__"]
