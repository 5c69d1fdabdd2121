"""A PEP 517 build backend (with PEP 660 editable installs) for this one package, standard library only.

It builds `progress_advantage` from src/ into a pure-Python wheel, or an sdist of this folder.
The metadata comes from pyproject.toml's [project] table (name, version, description,
requires-python, license, readme); the package declares no dependencies.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "progress_advantage"
SDIST_FILES = ["pyproject.toml", "README.md", "build_backend/pa_build.py"]


def _project() -> dict:
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    try:
        import tomllib  # Python 3.11+

        return tomllib.loads(text)["project"]
    except ImportError:
        # Python 3.9/3.10: the [project] table holds only `key = "string"` and `key = []` lines.
        table = text.split("[project]", 1)[1].split("\n[", 1)[0]
        return {k: v for k, v in re.findall(r'^([A-Za-z-]+)\s*=\s*"([^"]*)"\s*$', table, re.M)}


def _names() -> tuple[str, str, str]:
    project = _project()
    name, version = project["name"], project["version"]
    return name, version, f"{re.sub(r'[-_.]+', '_', name)}-{version}"


def _metadata() -> str:
    project = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3.9')}",
        f"License: {project.get('license', '')}",
    ]
    readme = project.get("readme")
    body = ""
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        body = "\n" + open(os.path.join(ROOT, readme), encoding="utf-8").read()
    return "\n".join(lines) + "\n" + body


WHEEL = "Wheel-Version: 1.0\nGenerator: pa_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _package_files() -> list[tuple[str, str]]:
    src = os.path.join(ROOT, "src", PACKAGE)
    out = []
    for base, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith((".py", ".typed")):
                full = os.path.join(base, f)
                out.append((full, os.path.relpath(full, os.path.join(ROOT, "src")).replace(os.sep, "/")))
    return out


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory: str, entries: list[tuple[str, bytes]]) -> str:
    _, _, stem = _names()
    dist_info = f"{stem}.dist-info"
    entries = entries + [(f"{dist_info}/METADATA", _metadata().encode()), (f"{dist_info}/WHEEL", WHEEL.encode())]
    record = [_record_line(a, d) for a, d in entries] + [f"{dist_info}/RECORD,,"]
    filename = f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in entries:
            zf.writestr(zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0)), data)
        zf.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _, _, stem = _names()
    dist_info = os.path.join(metadata_directory, f"{stem}.dist-info")
    os.makedirs(dist_info, exist_ok=True)
    with open(os.path.join(dist_info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    with open(os.path.join(dist_info, "WHEEL"), "w", encoding="utf-8") as f:
        f.write(WHEEL)
    return os.path.basename(dist_info)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [(arc, open(full, "rb").read()) for full, arc in _package_files()])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file that puts src/ on sys.path: edits to the sources take effect without reinstalling.
    return _write_wheel(wheel_directory, [(f"{PACKAGE}.pth", (os.path.join(ROOT, "src") + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    _, _, stem = _names()
    filename = f"{stem}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tf:
        for rel in SDIST_FILES:
            tf.add(os.path.join(ROOT, rel), arcname=f"{stem}/{rel}")
        for full, arc in _package_files():
            tf.add(full, arcname=f"{stem}/src/{arc}")
        info = tarfile.TarInfo(f"{stem}/PKG-INFO")
        data = _metadata().encode()
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return filename
