"""debian_photos: manifest, licences and fetching on a fake package (no downloads)."""

import hashlib
import io
import os
import shutil
import stat

import numpy as np
from PIL import Image
import pytest

from mdmf_jax.data import debian_photos as dp
from tests.test_qt_rcc import write_rcc

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake

Files: *
Copyright: 2020 Someone
License: GPL-3+

Files: src/activities/zoo/resource/*
       src/activities/other/x.svg
Copyright: 2021 Photographer
License: CC-BY-SA-4.0
 Long licence text, continued
 over several lines. License: not-a-field

Files: src/activities/zoo/resource/lion.jpg
Copyright: 2022 Another
License: public-domain

Files: wallpapers/lake.jpg
Copyright: 2023 Third
License: CC0-1.0

License: GPL-3+
 A stand-alone licence paragraph (no Files field): ignored.
"""


def _png(pixels: np.ndarray) -> bytes:
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="PNG")
  return out.getvalue()


def _pixels(seed: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_tree(tmp_path):
  """A folder shaped like an extracted .deb: copyright file, a plain image, an .rcc bundle."""
  root = tmp_path / "tree"
  (root / "usr/share/doc/fake-data").mkdir(parents=True)
  (root / "usr/share/doc/fake-data/copyright").write_text(COPYRIGHT)
  lake = _png(_pixels(0))
  (root / "usr/share/fake/wallpapers").mkdir(parents=True)
  (root / "usr/share/fake/wallpapers/lake.png").write_bytes(lake)
  lion, cat = _png(_pixels(1)), _png(_pixels(2))
  bundle = write_rcc({"fake/src/activities/zoo/resource/lion.webp": (lion, "zlib"),
                      "fake/src/activities/zoo/resource/cat.webp": (cat, "none")})
  (root / "usr/share/fake/rcc").mkdir(parents=True)
  (root / "usr/share/fake/rcc/zoo.rcc").write_bytes(bundle)
  table = f"""
@ fake-data fake-data/zoo usr/share/fake/rcc/zoo.rcc fake/src/activities/zoo/resource/
lion lion.webp {_sha(lion)}
cat cat.webp {_sha(cat)}
@ fake-data fake-data usr/share/fake/ -
lake wallpapers/lake.png {_sha(lake)}
"""
  package = dp.DebPackage("fake-data", "1:1.0-1", "0" * 64,
                          (("fake/", ""), ("usr/share/fake/", "")))
  return package, str(root), table


def test_parse_copyright():
  stanzas = dp.parse_copyright(COPYRIGHT)
  assert stanzas == [
      (("*",), "GPL-3+"),
      (("src/activities/zoo/resource/*", "src/activities/other/x.svg"), "CC-BY-SA-4.0"),
      (("src/activities/zoo/resource/lion.jpg",), "public-domain"),
      (("wallpapers/lake.jpg",), "CC0-1.0"),
  ]
  # The last matching stanza wins; a .webp matches its source .jpg; "*" is the default.
  assert dp.licence_for(stanzas, "src/activities/zoo/resource/lion.webp") == "public-domain"
  assert dp.licence_for(stanzas, "src/activities/zoo/resource/cat.webp") == "CC-BY-SA-4.0"
  assert dp.licence_for(stanzas, "src/activities/zoo/resource/sub/cat.png") == "CC-BY-SA-4.0"
  assert dp.licence_for(stanzas, "src/other.png") == "GPL-3+"
  assert dp.licence_for(stanzas[1:], "src/other.png") is None
  # Not machine-readable: no stanzas.
  assert dp.parse_copyright("This package was debianized by someone.\n\nGPL-2.\n") == []


def test_photos_in_fake_tree(fake_tree):
  package, root, table = fake_tree
  photos = dp.photos_in_tree(package, root, dp.parse_kept(table))
  by_name = {p.name: p for p in photos}
  assert sorted(by_name) == ["fake-data/lake", "fake-data/zoo/cat", "fake-data/zoo/lion"]
  lion = by_name["fake-data/zoo/lion"]
  assert (lion.group, lion.path, lion.member) == (
      "fake-data/zoo", "usr/share/fake/rcc/zoo.rcc",
      "fake/src/activities/zoo/resource/lion.webp")
  assert lion.licence == "public-domain"
  assert by_name["fake-data/zoo/cat"].licence == "CC-BY-SA-4.0"
  assert by_name["fake-data/lake"].licence == "CC0-1.0"
  for name, seed in [("fake-data/lake", 0), ("fake-data/zoo/lion", 1), ("fake-data/zoo/cat", 2)]:
    np.testing.assert_array_equal(by_name[name].load(), _pixels(seed))


def test_changed_file_is_noticed(fake_tree):
  package, root, table = fake_tree
  photos = {p.name: p for p in dp.photos_in_tree(package, root, dp.parse_kept(table))}
  with open(os.path.join(root, "usr/share/fake/wallpapers/lake.png"), "ab") as f:
    f.write(b"\0")
  with pytest.raises(dp.DebianFetchError, match="lake.png: sha256 .* expected"):
    photos["fake-data/lake"].load()
  bundle = os.path.join(root, "usr/share/fake/rcc/zoo.rcc")
  with open(bundle, "wb") as f:  # the bundle without the lion
    f.write(write_rcc({"fake/src/activities/zoo/resource/cat.webp": (b"x", "none")}))
  with pytest.raises(dp.DebianFetchError, match="zoo.rcc:fake/.*/lion.webp is missing"):
    dp.photos_in_tree(package, root, dp.parse_kept(table))
  os.remove(bundle)
  with pytest.raises(dp.DebianFetchError, match="zoo.rcc:fake/.*/lion.webp is missing"):
    dp.photos_in_tree(package, root, dp.parse_kept(table))


def test_licence_default_and_missing_copyright(fake_tree):
  package, root, table = fake_tree
  path = os.path.join(root, "usr/share/doc/fake-data/copyright")
  with open(path, "w") as f:
    f.write("Not machine-readable.\n")
  with pytest.raises(dp.DebianFetchError, match="not machine-readable and fake-data"):
    dp.photos_in_tree(package, root, dp.parse_kept(table))
  with_default = dp.DebPackage("fake-data", "1", "0" * 64, default_licence="GPL-2")
  assert {p.licence for p in dp.photos_in_tree(with_default, root, dp.parse_kept(table))} == {
      "GPL-2"}
  os.remove(path)
  with pytest.raises(dp.DebianFetchError, match="copyright is missing"):
    dp.photos_in_tree(with_default, root, dp.parse_kept(table))


def test_parse_kept_rejects_bad_tables():
  row = "a a.png " + "0" * 64
  with pytest.raises(ValueError, match="line 1 is malformed"):
    dp.parse_kept(row)  # no section line
  with pytest.raises(ValueError, match="line 2 is malformed"):
    dp.parse_kept("@ p p d/ -\na a.png 123")
  with pytest.raises(ValueError, match="not unique"):
    dp.parse_kept(f"@ p p d/ -\n{row}\n{row}")


def test_curated_manifest():
  kept = dp.kept_files()
  assert len(kept) == 346
  assert len({k.name for k in kept}) == len(kept)
  assert len({(k.package, k.path, k.member) for k in kept}) == len(kept)
  assert {k.package for k in kept} == set(dp.PACKAGES)
  assert set(dp.IN_SOURCE) | set(dp.CROSS_SOURCE) == set(dp.PACKAGES)
  assert not set(dp.IN_SOURCE) & set(dp.CROSS_SOURCE)
  assert all(k.group.split("/")[0] == k.package for k in kept)
  assert len(dp.kept_files(["lxqt-themes"])) == 11
  with pytest.raises(ValueError, match="unknown packages"):
    dp.kept_files(["no-such-package"])


# ---------------------------------------------------------------------------
# Fetching with fake apt-get and dpkg on PATH.


def _script(folder, name: str, body: str) -> None:
  path = folder / name
  path.write_text("#!/bin/sh\n" + body)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_apt(tmp_path, monkeypatch, fake_tree):
  """apt-get and dpkg stand-ins serving the fake package, alone on PATH; calls are logged."""
  package, root, table = fake_tree
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  log = tmp_path / "calls.log"
  deb_content = b"fake deb"
  # apt-get download NAME=VERSION: serves version 1:1.0-1 only, as apt-get does.
  _script(bin_dir, "apt-get", f"""echo "apt-get $*" >> {log}
if [ "$3" != "fake-data=1:1.0-1" ]; then
  echo "E: Version '${{3#*=}}' for 'fake-data' was not found" >&2; exit 100
fi
printf 'fake deb' > fake-data_1%3a1.0-1_all.deb
""")
  _script(bin_dir, "dpkg", f"""echo "dpkg $*" >> {log}
{shutil.which("mkdir")} -p "$3" && {shutil.which("cp")} -r {root}/. "$3"/
""")
  monkeypatch.setenv("PATH", str(bin_dir))
  monkeypatch.setenv("MDMF_JAX_CACHE", str(tmp_path / "cache"))
  pinned = dp.DebPackage(package.name, package.version, _sha(deb_content),
                         package.source_prefixes)
  return pinned, table, log


def test_fetch_is_idempotent_and_atomic(fake_apt, monkeypatch):
  package, table, log = fake_apt
  assert dp.apt_available()
  assert not dp.is_cached(package)
  tree = dp.fetch_package(package)
  assert dp.is_cached(package)
  assert os.path.exists(os.path.join(tree, "usr/share/fake/rcc/zoo.rcc"))
  assert dp.fetch_package(package) == tree
  assert log.read_text().count("apt-get download") == 1  # the second call used the cache
  assert sorted(os.listdir(os.path.dirname(tree))) == ["COMPLETE", "tree"]  # .deb deleted
  # A tree without the COMPLETE marker (a killed fetch) is fetched again.
  os.remove(os.path.join(os.path.dirname(tree), "COMPLETE"))
  os.remove(os.path.join(tree, "usr/share/fake/rcc/zoo.rcc"))
  dp.fetch_package(package)
  assert os.path.exists(os.path.join(tree, "usr/share/fake/rcc/zoo.rcc"))
  assert log.read_text().count("apt-get download") == 2
  # fetch_photos end to end, on the fake package.
  monkeypatch.setattr(dp, "PACKAGES", {package.name: package})
  monkeypatch.setattr(dp, "_KEPT", table)
  photos = dp.fetch_photos()
  assert sorted(p.name for p in photos) == [
      "fake-data/lake", "fake-data/zoo/cat", "fake-data/zoo/lion"]
  np.testing.assert_array_equal(photos[0].load(), _pixels(1))


def test_fetch_refuses_a_changed_deb(fake_apt):
  package, _, _ = fake_apt
  changed = dp.DebPackage(package.name, package.version, "f" * 64)
  with pytest.raises(dp.DebianFetchError, match="sha256 .* pinned f{64}; the package changed"):
    dp.fetch_package(changed)
  assert not dp.is_cached(changed)


def test_fetch_names_a_version_the_mirror_no_longer_serves(fake_apt):
  package, _, _ = fake_apt
  gone = dp.DebPackage(package.name, "1:0.9-1", package.sha256)
  with pytest.raises(dp.DebianFetchError,
                     match=r"(?s)was not found.*no longer serves the pinned version 1:0.9-1"):
    dp.fetch_package(gone)


def test_apt_get_missing(tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no apt-get, no dpkg
  monkeypatch.setenv("MDMF_JAX_CACHE", str(tmp_path / "cache"))
  assert not dp.apt_available()
  package = dp.PACKAGES["palapeli-data"]
  with pytest.raises(dp.DebianFetchError, match="apt-get/dpkg not found: cannot fetch palapeli"):
    dp.fetch_package(package)
  with pytest.raises(dp.DebianFetchError, match="apt-get/dpkg not found"):
    dp.fetch_photos(["palapeli-data"])
  assert issubclass(dp.DebianFetchError, dp.assets.AssetError)
