"""Real photographs from Debian packages: pinned, fetched with apt-get, curated.

About 350 photographs (animals, monuments, fish, tools, landscapes, camera
originals) ship inside Debian data packages. This module pins those packages,
fetches them into the project's cache with `apt-get download` and `dpkg -x`
(never installing them), and lists the files kept as photographs:

    photos = fetch_photos()                # fetches what is missing
    train_pool = [p for p in photos if p.package in IN_SOURCE]
    pixels = photos[0].load()              # (H, W, 3) uint8, via decode.decode_rgb8

`fetch_photos(packages)` limits the fetch to some packages. Without apt-get (or
with a mirror that no longer serves a pinned version) fetching raises
DebianFetchError saying why and what to run; `apt_available()` tells beforehand,
so a caller can fall back to other photographs. Packages already in the cache
need no apt-get.

Pins: every package by Debian version and the sha256 of its .deb (a rebuilt or
changed package is refused, never used silently), every kept photograph by the
sha256 of its bytes as stored (checked on every read). The cache holds
`debian/<package>_<version>/tree` (the extracted package) and a `COMPLETE`
marker written last, so an interrupted fetch is redone, never trusted.

Roles: IN_SOURCE packages are for train/val/test splits by photograph;
CROSS_SOURCE packages (desktop wallpapers, camera originals) are never trained
on and test whether the detector transfers to other sources.

GCompris ships its images as lossy WebP inside Qt `.rcc` bundles (read with
`qt_rcc`); a Photo's `path` is then the bundle and `member` the file inside it.
How the list was curated, the licences and the measured sizes are in
docs/photographs.md.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from absl import logging
import numpy as np

from mdmf_jax import assets
from mdmf_jax.data import decode
from mdmf_jax.data import qt_rcc


class DebianFetchError(assets.AssetError):
  """A Debian package could not be fetched: apt-get missing or failing, or a pin mismatch."""


@dataclasses.dataclass(frozen=True)
class DebPackage:
  """A pinned Debian package.

  Attributes:
    name: the binary package name.
    version: the Debian version (with epoch) that `apt-get download` fetches.
    sha256: of the .deb file.
    source_prefixes: (installed prefix, prefix in the copyright file) pairs: the
      copyright file names files as in the source tree, the package installs
      them elsewhere.
    default_licence: the licence where the copyright file is not in Debian's
      machine-readable format (None where it is).
  """
  name: str
  version: str
  sha256: str
  source_prefixes: tuple[tuple[str, str], ...] = ()
  default_licence: str | None = None


PACKAGES: dict[str, DebPackage] = {p.name: p for p in (
    DebPackage("gcompris-qt-data", "3.1-2",
               "e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f",
               (("gcompris/", ""),)),
    DebPackage("tuxpaint-data", "1:0.9.28-sdl2-1",
               "f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5"),
    DebPackage("tuxtype-data", "1.8.3-5.1",
               "62f85e2c6d6820efbaf1d914039b50c070bf5899b1d1d14aea00cebca14f4c78",
               default_licence="GPL-2"),
    DebPackage("palapeli-data", "4:22.12.3-1",
               "69a15dce2ac25ed8708ac518cd0cee5f4eb0c70ed15da2fdb8899a19ac0ee058"),
    DebPackage("lomiri-wallpapers-16.04", "20.04.0-2",
               "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab",
               (("usr/share/backgrounds/", "16.04/"),)),
    DebPackage("plasma-workspace-wallpapers", "4:5.27.5-2",
               "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"),
    DebPackage("lxqt-themes", "1.2.0-1",
               "d518df36b515b09d36cb00b12645dd8ce170bb82bb0966297741905ce3edc8e1",
               (("usr/share/lxqt/", ""),)),
    DebPackage("forensics-samples-files", "1.1.4-5",
               "8710c751be1a71a88e343540ea1a5cab1fd349c2bcdf07626a27cfe68689e7c4",
               (("usr/share/forensics-samples/", ""),)),
)}

# Packages whose photographs are split by photograph into train/val/test.
IN_SOURCE = ("gcompris-qt-data", "tuxpaint-data", "tuxtype-data", "palapeli-data")
# Packages never used in training: other cameras, processing and compression.
CROSS_SOURCE = ("lomiri-wallpapers-16.04", "plasma-workspace-wallpapers", "lxqt-themes",
                "forensics-samples-files")


@dataclasses.dataclass(frozen=True)
class Photo:
  """One kept photograph.

  Attributes:
    name: unique and stable, "<collection>/<stem>", e.g. "lomiri/Dragonfly_by_Bolly".
    package: the Debian package that ships it.
    group: the source collection: the package, or "<package>/<activity>" for GCompris.
    path: the file inside the package (for GCompris the `.rcc` bundle).
    member: the file inside the `.rcc` bundle ("" for plain files).
    sha256: of the file's bytes as stored (the member's bytes for bundles).
    licence: from the package's copyright file (the stanza covering the file).
    root: the extracted package tree in the cache.
  """
  name: str
  package: str
  group: str
  path: str
  member: str
  sha256: str
  licence: str
  root: str

  def read_bytes(self) -> bytes:
    """The file's bytes; DebianFetchError if they no longer match the pinned sha256."""
    full = os.path.join(self.root, self.path)
    data = _bundle(full).read(self.member) if self.member else _read(full)
    actual = hashlib.sha256(data).hexdigest()
    if actual != self.sha256:
      where = f"{full}:{self.member}" if self.member else full
      raise DebianFetchError(f"{where}: sha256 {actual}, expected {self.sha256}; the cached package "
                             f"changed: delete {os.path.dirname(self.root)} and fetch again")
    return data

  def load(self) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels as stored (decode.decode_rgb8 conventions)."""
    return decode.decode_rgb8(self.read_bytes())


def _read(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _bundle(path: str) -> qt_rcc.RccBundle:
  stat = os.stat(path)  # in the cache key: a re-fetched bundle is read again
  return _bundle_version(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _bundle_version(path: str, mtime_ns: int, size: int) -> qt_rcc.RccBundle:
  del mtime_ns, size  # cache key only
  return qt_rcc.RccBundle.from_file(path)


# ----------------------------------------------------------------------------
# Licences from Debian copyright files.


def parse_copyright(text: str) -> list[tuple[tuple[str, ...], str]]:
  """The (file patterns, licence) of each `Files:` stanza of a machine-readable copyright file.

  Only the licence's short name (the first line of its `License:` field) is kept.
  Returns [] for a file that is not in Debian's machine-readable format.
  """
  stanzas = []
  for paragraph in re.split(r"\n\s*\n", text):
    fields: dict[str, str] = {}
    current = None
    for line in paragraph.splitlines():
      if line[:1] in (" ", "\t") and current is not None:
        fields[current] += "\n" + line.strip()
      elif ":" in line and not line.startswith("#"):
        current, _, value = line.partition(":")
        current = current.strip().lower()
        fields[current] = value.strip()
    if "files" in fields and "license" in fields:
      licence = fields["license"].split("\n", 1)[0].strip()
      stanzas.append((tuple(fields["files"].split()), licence))
  return stanzas


@functools.lru_cache(maxsize=None)
def _stanza_regex(patterns: tuple[str, ...]) -> re.Pattern:
  """One regex for a stanza's patterns, with Debian's rules (`*` spans "/").

  A pattern without wildcards matches its path with any extension: GCompris
  bundles re-encoded copies (the source `fish1.jpg` ships as `fish1.webp`).
  """
  parts = []
  for pattern in patterns:
    if "*" in pattern or "?" in pattern:
      parts.append(fnmatch.translate(pattern))
    else:
      parts.append(re.escape(os.path.splitext(pattern)[0]) + r"(?:\.[^/.]*)?\Z")
  return re.compile("|".join(f"(?:{p})" for p in parts))


def licence_for(stanzas: list[tuple[tuple[str, ...], str]], source_path: str) -> str | None:
  """The licence of the last stanza that matches `source_path` (Debian's rule), or None."""
  found = None
  for patterns, licence in stanzas:
    if _stanza_regex(patterns).match(source_path):
      found = licence
  return found


def _source_path(package: DebPackage, installed: str) -> str:
  for prefix, replacement in package.source_prefixes:
    if installed.startswith(prefix):
      return replacement + installed[len(prefix):]
  return installed


def package_stanzas(package: DebPackage, root: str) -> list[tuple[tuple[str, ...], str]]:
  """The parsed copyright file of `package` extracted under `root` (see `parse_copyright`)."""
  copyright_file = os.path.join(root, "usr", "share", "doc", package.name, "copyright")
  try:
    with open(copyright_file, encoding="utf-8") as f:
      stanzas = parse_copyright(f.read())
  except FileNotFoundError:
    raise DebianFetchError(f"{copyright_file} is missing; the package tree is incomplete") from None
  if not stanzas and package.default_licence is None:
    raise DebianFetchError(f"{copyright_file} is not machine-readable and {package.name} "
                           "has no default_licence")
  return stanzas


def photo_licence(package: DebPackage, stanzas: list[tuple[tuple[str, ...], str]],
                  path: str, member: str = "") -> str:
  """The licence of a file of `package`: its copyright stanza, else the package default."""
  if not stanzas:
    return package.default_licence
  licence = licence_for(stanzas, _source_path(package, member or path))
  if licence is None:
    raise DebianFetchError(f"{package.name}: no copyright stanza covers {member or path}")
  return licence


# ----------------------------------------------------------------------------
# Fetching.


def apt_available() -> bool:
  """Whether `apt-get` and `dpkg` are on PATH (needed to fetch packages not yet cached)."""
  return shutil.which("apt-get") is not None and shutil.which("dpkg") is not None


def _package_dir(package: DebPackage) -> str:
  return assets.cache_dir("debian", f"{package.name}_{package.version.replace(':', '%3a')}")


def is_cached(package: DebPackage) -> bool:
  """Whether `package` is fetched and extracted completely in the cache."""
  return os.path.exists(os.path.join(_package_dir(package), "COMPLETE"))


def _run(command: list[str], cwd: str, package: DebPackage) -> None:
  try:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
  except FileNotFoundError:
    raise DebianFetchError(f"{command[0]} is not installed; cannot fetch {package.name}") from None
  if result.returncode == 0:
    return
  error = result.stderr.strip()[-800:]
  hint = ""
  if "was not found" in error:
    hint = (f"\nThe mirror no longer serves the pinned version {package.version}; check the "
            f"package that it serves now (apt-cache policy {package.name}) and update the pin "
            "and the photograph list in debian_photos.PACKAGES")
  elif "Unable to locate package" in error:
    hint = "\nThe package lists may be empty: run apt-get update (as root) first"
  raise DebianFetchError(f"{' '.join(command)} failed (exit {result.returncode}): {error}{hint}")


def fetch_package(package: DebPackage) -> str:
  """The extracted tree of `package` in the cache; downloads and extracts it if absent.

  Idempotent. The .deb is checked against the pinned sha256, extracted into a
  temporary folder that is renamed into place, and the COMPLETE marker is
  written last; the .deb itself is deleted.
  """
  base = _package_dir(package)
  tree = os.path.join(base, "tree")
  marker = os.path.join(base, "COMPLETE")
  if os.path.exists(marker):
    return tree
  if not apt_available():
    raise DebianFetchError(f"apt-get/dpkg not found: cannot fetch {package.name}={package.version} "
                           "(a Debian or Ubuntu system is needed to fetch the photographs)")
  logging.info("fetching %s=%s with apt-get into %s", package.name, package.version, base)
  with tempfile.TemporaryDirectory(dir=base, prefix="fetch-") as work:
    _run(["apt-get", "download", "-q", f"{package.name}={package.version}"], work, package)
    debs = [f for f in os.listdir(work) if f.endswith(".deb")]
    if len(debs) != 1:
      raise DebianFetchError(f"apt-get download {package.name} left {debs} in {work}")
    deb = os.path.join(work, debs[0])
    actual = assets.sha256_file(deb)
    if actual != package.sha256:
      raise DebianFetchError(f"{package.name}={package.version}: .deb sha256 {actual}, pinned "
                             f"{package.sha256}; the package changed: review it and update the pin")
    extracted = os.path.join(work, "tree")
    _run(["dpkg", "-x", deb, extracted], work, package)
    shutil.rmtree(tree, ignore_errors=True)  # a tree without marker is from a killed fetch
    os.replace(extracted, tree)
  with open(marker + ".partial", "w", encoding="utf-8") as f:
    f.write(f"{package.name} {package.version} {package.sha256}\n")
  os.replace(marker + ".partial", marker)
  return tree


@dataclasses.dataclass(frozen=True)
class KeptFile:
  """A curated photograph before its package is fetched (see `_KEPT`)."""
  name: str
  package: str
  group: str
  path: str
  member: str
  sha256: str


def parse_kept(table: str) -> list[KeptFile]:
  """Parses the curated table: "@ package group base_path member_base" section lines
  ("-": no bundle), then one "stem relative_path sha256" line per photograph."""
  kept = []
  section = None
  for number, line in enumerate(table.strip().splitlines(), 1):
    fields = line.split()
    if fields[:1] == ["@"] and len(fields) == 5:
      section = fields[1:]
      continue
    if section is None or len(fields) != 3 or not re.fullmatch(r"[0-9a-f]{64}", fields[2]):
      raise ValueError(f"photograph table line {number} is malformed: {line!r}")
    package, group, base, member_base = section
    stem, relative, sha256 = fields
    collection = group.replace(package, _SHORT_NAMES.get(package, package), 1)
    if member_base == "-":
      path, member = base + relative, ""
    else:
      path, member = base, member_base + relative
    kept.append(KeptFile(f"{collection}/{stem}", package, group, path, member, sha256))
  names = [k.name for k in kept]
  if len(set(names)) != len(names):
    raise ValueError("photograph table: names are not unique")
  return kept


def kept_files(packages: list[str] | tuple[str, ...] | None = None) -> list[KeptFile]:
  """The curated photographs (of `packages`, default all), without fetching anything."""
  unknown = sorted(set(packages or ()) - set(PACKAGES))
  if unknown:
    raise ValueError(f"unknown packages {unknown}; known: {sorted(PACKAGES)}")
  return [k for k in parse_kept(_KEPT) if packages is None or k.package in packages]


def photos_in_tree(package: DebPackage, root: str, kept: list[KeptFile]) -> list[Photo]:
  """The Photos of `package` extracted under `root`; a listed file that is absent is an error."""
  stanzas = package_stanzas(package, root)
  photos = []
  for k in kept:
    if k.package != package.name:
      continue
    full = os.path.join(root, k.path)
    if not os.path.exists(full) or (k.member and k.member not in _bundle(full).entries):
      where = f"{k.path}:{k.member}" if k.member else k.path
      raise DebianFetchError(f"{package.name}: {where} is missing under {root}")
    photos.append(Photo(name=k.name, package=k.package, group=k.group, path=k.path,
                        member=k.member, sha256=k.sha256,
                        licence=photo_licence(package, stanzas, k.path, k.member), root=root))
  return photos


def fetch_photos(packages: list[str] | tuple[str, ...] | None = None) -> list[Photo]:
  """Fetches the packages not yet cached (default: all) and returns their photographs.

  Raises DebianFetchError when a package must be fetched and cannot be (apt-get
  missing or failing, pin mismatch); `apt_available()` tells beforehand.
  """
  kept = kept_files(packages)
  photos = []
  for name in (PACKAGES if packages is None else packages):
    package = PACKAGES[name]
    photos.extend(photos_in_tree(package, fetch_package(package), kept))
  return photos


_SHORT_NAMES = {
    "gcompris-qt-data": "gcompris", "tuxpaint-data": "tuxpaint", "tuxtype-data": "tuxtype",
    "palapeli-data": "palapeli", "lomiri-wallpapers-16.04": "lomiri",
    "plasma-workspace-wallpapers": "plasma", "lxqt-themes": "lxqt",
    "forensics-samples-files": "forensics",
}

# The curated photographs (docs/photographs.md says how they were chosen): one
# section per collection, one line per photograph with the sha256 of its bytes.
_KEPT = """
@ gcompris-qt-data gcompris-qt-data/categorization usr/share/gcompris-qt/rcc/categorization.rcc gcompris/src/activities/categorization/resource/
alphabets images/alphabets/alphabets.webp 76cdfd62ea1dde174d3483f87eff3f73b081c737374bba2df743e8d112423fa2
fish1 images/fishes/fish1.webp f8da0956fd2df8f98a61a4672a1123009cfdc28fc685de6a20bc495dbf1e7771
fish10 images/fishes/fish10.webp 9520fe60539db07e439e2bd2678c8fc96e372b659abcbc535e28eb573b7310af
fish11 images/fishes/fish11.webp 3f8e2005f1a635454cbe8ff89d8c94eb80cf419a6e11fc12226e1be177caf0c3
fish12 images/fishes/fish12.webp 31f7b0c655e5ee47e0a883c1933c829bc6b4bc2c7d83c78db42b7dbd399c33bc
fish13 images/fishes/fish13.webp 507971e48347a33d2d1d7cb0b79e58d92bafbbd07ecf96feb5047445bba80742
fish14 images/fishes/fish14.webp 87d5820ff028e03debdfd04d0527fdbec21472d0d5973b3dca295e21d1aba083
fish15 images/fishes/fish15.webp 6653b505f8d74ea330584048bf9c5408b134dfe608d26228464b8d0ac43c407e
fish16 images/fishes/fish16.webp 56ef0c2d10ecf4907351b6ecdf32bb149afd40962f4df550e654290bf0c06e0e
fish18 images/fishes/fish18.webp 5a0d476f9496fd8d6278d9b95b35058d504ced23d057dbe288433aa29a1daf9b
fish19 images/fishes/fish19.webp 4c5a59d1a08f9bf34de2d3862f6f0f032caa42e2fe6f4b746db8764e758be284
fish2 images/fishes/fish2.webp 16e55227d9074a94f6db962464d02317df9f1d9ff643f0b1447609cd453340f2
fish20 images/fishes/fish20.webp 33f1e4dbe922e040403606a2497abb2cf127326cb1c127b73e2e6afc9c83ecf7
fish21 images/fishes/fish21.webp 89bab44e95c35f4903aee36116e83d5522d40e7bc3127e192cd8df358acf7213
fish22 images/fishes/fish22.webp dd5f4d25fef5927dd74ac58757125bc592bd7728dec3a39981720e64a6dbd7af
fish23 images/fishes/fish23.webp 7dabcd7882e9bc7ca0b0f37bbe7003f50a768a75e28f44928d83b581da8d16cb
fish24 images/fishes/fish24.webp 604f140322c169d0e5bb20b5112bb940912dc06bbeb110d1b9d8026f10db37ab
fish25 images/fishes/fish25.webp a0d5498bf18d05d25b021ad4fbf9e5752d8fbdfde1f94ff58c0d6b4e6c9ae23f
fish26 images/fishes/fish26.webp 93f35bba996557d78c464b94ceead2bfafbd8f51e3ebc4f6e834977853ebe7a4
fish27 images/fishes/fish27.webp c6cf6e5d6a573744fd4dc0b073b91fdf8883116be98ff1ab1ccfbc76215c918e
fish28 images/fishes/fish28.webp 5cb9d4a067b98215cfbc00e7d0d797017a6cef4e1498e2a3422bbc6b1ef63ed6
fish3 images/fishes/fish3.webp dbfb8f788480cc8e60ed0aa49719142cecc7aa94373acbeceb08bd91ef45f00a
fish4 images/fishes/fish4.webp 9d48365d37ee9fa242aca7aed814b11ab13cec39960ec4d807b0643b3c87f703
fish5 images/fishes/fish5.webp f782d3ee205045e6b2612e86f07aeeca5c751128b5670a8f3b42713fe7933ccd
fish6 images/fishes/fish6.webp c372f0c9896c69cc1e892c03bc6dd923723d3ab66720ff2c935449188d6cc060
fish7 images/fishes/fish7.webp 90b86f92118a24d841833b20f17b0df896b2d267b1aafeac735cee8a17bb4e7c
fish9 images/fishes/fish9.webp c0612ddd79d51bd6ee9ce0f5b0e930b55e13bc78deb6c8a282be4d9cf89189a5
IndiaGate images/monuments/IndiaGate.webp e1baaec30c9bb850e6b6a738baf104112a433312475002bf06d9dfc11c217efb
arcDeTriomphe images/monuments/arcDeTriomphe.webp 74f0a4c82166bca68ead6b2d0e94eb8a575e7f31250230f75682d363f99a13ed
bayterek images/monuments/bayterek.webp e6e367c7cc47db3f0d281c7518ddccc4d9faa51c2fae7ffde0d10b522985a72d
burj images/monuments/burj.webp 281bbae10f981681f27c11ba523f8f489dffb1a61c1b2cc23d818ce25d48e1da
cathedral images/monuments/cathedral.webp 4b7cfd9b6affec5b1e77e40226b2f9362c98f18b1b6ae8b826dcaa1099a590e8
christTheRedeemer images/monuments/christTheRedeemer.webp 86985cdc8473d20695514ca211b210b09f5ab09ad490a723edfc2ba2ed682d15
eiffelTower images/monuments/eiffelTower.webp 159e79086eb976949bc616a542be0d331ce689275fbbc4c3cf34af3e0e6bca1d
empireState images/monuments/empireState.webp 47f7d88344ae2ee00c9689a6632287c2c649fed5d754efdc01b00c3c6e29a72a
greatWall images/monuments/greatWall.webp 20f068c58b07adde453a7576d1b771668805234ec261353ba2d09ee9a52a54cc
jucheTower images/monuments/jucheTower.webp eab64b3a3282273807c8071476ffeff66d0fb50e814a8eed023909c346bdacee
kutubMinar images/monuments/kutubMinar.webp 311ecea856288ccde558a852e1c9425945113c669de41cfa4dd9a87151695e2f
leMusee images/monuments/leMusee.webp dea8ecafefc9e596d1fbd03940c52150081a693bdc5fb3b3e4eed54234762161
leaningTowerOfPisa images/monuments/leaningTowerOfPisa.webp 7b12550a377ace9f9724e31c049b910eaac6c4e4cb00abef7e486ca5041a4f33
monument1 images/monuments/monument1.webp d59b1a3dfe791f447d33111bd01d5a40ddf02d7683d03082675d5b6da9c732e4
monument2 images/monuments/monument2.webp 7587bf65bdda88e4816f402de3f7d444caf6ac183d20852957ec30ff74bc4004
monument3 images/monuments/monument3.webp 2aeae153a07ab38fe7b8fc11d8adb70e423257bcc61214e86ee919d1621444e8
mountRushmore images/monuments/mountRushmore.webp b9da0038771fb5d0f99a4c258500d2c15ed2bd0aa02fbc4830722eb7f84c8376
operaHouse images/monuments/operaHouse.webp 56471309ddfa80c69acaa6c2fed954f4742b1299352e9c4ddb82a329983f7691
parthenon images/monuments/parthenon.webp 8be7349b09f901ff3b02309d12eacd6af86ee6094f592ab44bd2a5966557c47a
statueOfLiberty images/monuments/statueOfLiberty.webp 0f96367a893458a491feaa437e639b20b3e833981fa873123ccde98636d7abb0
tajMahal images/monuments/tajMahal.webp d38d14e765824d7a4cd0b6c200731b96ea7b33cf6ee933b2fe248d454f87d271
usCapitol images/monuments/usCapitol.webp eefead4c662541df45a7a3fa96482da792479b18b1c45b8136d9dbe4d5b88cfb
victoriaMemorial images/monuments/victoriaMemorial.webp acb47a53be1d913d83bdc1081f7769a1615fa8cf43c7d68b873fef45fcd4b8a6
zimniPalace images/monuments/zimniPalace.webp 52899efd8e7adc21d1405eb6332c76d6ee394154974a19833a95d4a682d079d4
numbers images/numbers/numbers.webp 9bee0d3330c34f97894fcab90559d13e68000133533a2df60bc56bfc8d8b1b66
baseball images/others/baseball.webp 374c9ed08f3aef66ad05698e575718d2f02e2cdc9629e6607c1223480d49ca89
blackslate images/others/blackslate.webp 3fb60599c65fd279803125c00461c51aa7129e207c98e47933831ff05bc694e1
bucket images/others/bucket.webp 671363d9d02c12768fa8374287c9a4c175dbf1549481586339274609d1219579
buffetset images/others/buffetset.webp 55918533efb31d9022a18cdce19f6d528fe51ceb950f86e9b24c016fc34731a0
bulb images/others/bulb.webp e83dc5d256f1daa7496f63bb493c14553b4fc300b6e6731bc257431a75dd2439
chair images/others/chair.webp 493bce8a8060d78828dbe607f68965edc68c1089f73203dd858a89001099c7ac
cup images/others/cup.webp 71544b12419fef334803ba47874648d898b8c04b0fc3d45946ea58db33cf0aff
erasers images/others/erasers.webp 6f00b3d61fdebfa27f7a12340d3897a0e92e07685718e8e298371b155015f81a
igloo images/others/igloo.webp c711e77a0e92ec82c804a6de73804cddcdae8b85556fb611f75c9bc4746deefb
knife images/others/knife.webp 24d548b65a1dde8f9c625a72fc755bc2edcbdb02ef89a89896a624198b0b2ce5
pan images/others/pan.webp 2cfd14f2e6366e131e0dcd92cc7b35ee66c0d03eba1132c9e5948e7bb78fcc68
pillow images/others/pillow.webp ee41fef3908ad653130c79cb40a2ca5e01ff2591e33327dbb4afbc0c921b0ae5
plate images/others/plate.webp 7121eb75416bc99aec0cf0091641cf10c3d1553ab808234af5a89efd5ac44575
spoons images/others/spoons.webp 496b5e1d19165dd4dcde740b64b21d09dd5fb2701b60b2596d6c35713345a165
dam1 images/renewable/dam1.webp 80fac341dc858de1d0edef955b5fae5215b4090611240cee05676b6852e4860b
dam2 images/renewable/dam2.webp 551713016f4371713dfdea2f7a30f293c8f7173be2952a3b89b5528dd7237e9c
dam3 images/renewable/dam3.webp f0e75c317c86f29e89a4d3977225f38c80e69a509f6b71f4b8e7c0d4f70561c9
dam4 images/renewable/dam4.webp e62de656200a81c4adae21f2131e54b0dd67ed2bd8710608e2332f73426ea906
dam5 images/renewable/dam5.webp b4ae23f5257dca05cce9082508fd8e312771853c8aa45f15b00a3095ecb48b19
geothermal images/renewable/geothermal.webp 4c0afacf39a422e67709a831eee7290a8212079c06932ed3ec5e702a7f8db44f
solar1 images/renewable/solar1.webp e356d9ea25f1e390b3e3c34742f817b7932129ea8abbcfbf69ecfe1982bc2fe4
solar2 images/renewable/solar2.webp a23a44657f6b5ef073b544218c65b5e53d0d55dcd31bf469ad97f169cc509ebe
solar3 images/renewable/solar3.webp 0556ddf649640b42ed32241ad30bc13068a1e18ba57727e6df2372073083ebdb
solar4 images/renewable/solar4.webp bd850c3e9227c5bb11aa5073686718b958cd23d8f66eb7ba23909252a16464a2
solar5 images/renewable/solar5.webp 32ab92f9339debc860c06876edf163b8463aa1268f139a7bfa2e8ff04a7c147d
solar6 images/renewable/solar6.webp 920ba181909040dda1d68da48db3198beedaa73fadef76d960c8db249482f3ec
solar7 images/renewable/solar7.webp 5118a3f9ea3fb8a38cf102fa895dd891d30b34783b7528f36435b419215bbbe3
solar8 images/renewable/solar8.webp 7e9351711374c1c67fd05b13cd16df8e472ad87465cc6dd9283e10857c43568e
windmill images/renewable/windmill.webp f88eafdf157464085b23887953257e36030dfd487e44256804cb2d408d5fee5d
windmill1 images/renewable/windmill1.webp b37b659aa07d8858505f9f8c51b24867690214a58c6dd683b96e6b7424a9b50d
windmill11 images/renewable/windmill11.webp 2587476c5392f61c7a3b8d7f8fe2218fef63385e26353cfa7ce77175533a6131
windmill12 images/renewable/windmill12.webp 6fcf82fd1da0dc01b205be21cd69c8883722d16b7dfe2e99ebc781995fb88420
windmill13 images/renewable/windmill13.webp c4f9425d5b98186aecab73e4ca0ff6010b4f138fd609e95f26af40a4974b6ec9
windmill14 images/renewable/windmill14.webp 1e3f061969035b14dae3ef3bac768f10ca3178651c2be6c8ad1d693270f73141
windmill15 images/renewable/windmill15.webp 670d8ac8507ea1ab70f720efe008f364f42727b6f18213c1efb8c6bc0a21847e
windmill2 images/renewable/windmill2.webp e624eec1215008b2f7eef2932ff63ff6521e1d02f5ccb65c98d14fe51ec40211
windmill3 images/renewable/windmill3.webp da254fb000c28e2cf4c9208b52849d1141895c25937e1abf4d37b8a725d25b1e
windmill4 images/renewable/windmill4.webp 71ec7ff549a872805d61b1fd9f6c9b997e4a41d097b6d8127e57d5a37c2f5c35
windmill5 images/renewable/windmill5.webp c6c35dbdbc5aee60e093d1f969c599151d2c557c6992fbbcf755dc7e6fae9abc
windmill6 images/renewable/windmill6.webp 0dc109b5dc42a98b52c52d125f16fa28ac0c471e0e3ae830e65997c0e8f33f46
windmill7 images/renewable/windmill7.webp 6f922d01319baea580a8a52469881bb82b880a02c4cba5b5a07925276d0c7045
windmill8 images/renewable/windmill8.webp c2b2e776f91049770123c9d620d66202bd3c55e64b50aa0db457a3f646af1f33
windmill9 images/renewable/windmill9.webp b182d59c8dc8aef188ca52c54cd3cf4bd03ae6b0e0bf8c0987f6b45a30913059
hammer1 images/tools/hammer1.webp 674fbce6f91b65e2da969107c4648e57dc35c859aeda7b13554c0a685cb8efa9
hammer3 images/tools/hammer3.webp e38ac01ccfc0af53a4bc920be2892f69ed1b4fcd4361c7b42a57232dfdf25e17
hammer4 images/tools/hammer4.webp c3b04b4d9d6264b83709a401d456ed41887dd00788ccfbbbf6d4d1bce990741f
hammer6 images/tools/hammer6.webp 6600743e33fd86cc20f2c9d4d1b705cdf75d0782cceb49836dab60d421c9ae46
hammer7 images/tools/hammer7.webp 28bcdfc64d2309e7f528d0209ff276ffc47761412d2b8de9971f9a0027ade9d5
measuringTape2 images/tools/measuringTape2.webp ca4e40a2206e5671cba5018e14eeb648244154cb9e8e1e3217828a0f54b5cd9b
measuringTape5 images/tools/measuringTape5.webp 581b6a7f840961747c0a70e0794d822b56a509b085cb5ff40e6f2baf841062f9
measuringTape6 images/tools/measuringTape6.webp f6627259ca5de20c21efe59d195447dc049567103613d1ad3ffe185f0fb48283
multimeter1 images/tools/multimeter1.webp 5c43683f2fc83fb8d161d6c5d18d26f92507f24e7656489c95a2527b2c1d331a
multimeter2 images/tools/multimeter2.webp 536f3a4e18f01f7c41b58e0368e66497254421b58068c75d3082ddb0ac8c1c3e
multimeter3 images/tools/multimeter3.webp 98fe7d81dc12f7a1f9a612ec297982dc93368573f5025c41a24006d2d2f0d1b0
nailCutter images/tools/nailCutter.webp ac327299a1796b6d1c02770ffceafd88a69642dbedd1ac980d8dbb9ca9a59ac3
plier4 images/tools/plier4.webp 8281a74f7f8136445e08087da6b2ea01a45fb0041ed7b7e9e9716f6d154a43cd
scissors2 images/tools/scissors2.webp ebea0e41fbab5b01f266818e64154a9c22d28df3dc97eb411a192acbdb2055a1
scissors3 images/tools/scissors3.webp 1367627b89e4c5aae73201761c0c140457f504d32ec2703b1d924e2b910d982b
screwDriver images/tools/screwDriver.webp b33b8e70eb9b21d2aaca14c75873ece33f7ead6d26a8ac2d61256f9c6e784840
screwDriver1 images/tools/screwDriver1.webp 8ca5030b12163c5cc924cc7d0883cd6d8e0f837b9141a0344777214e060020e3
screwDriver2 images/tools/screwDriver2.webp 06aa88a1bc191059c4b86854a3422b6073cd1e47940f4ac02af49678d5d23c88
sickle images/tools/sickle.webp c14aa994c6f9b486c3c2187ca27b096140d1d60768e9dd1173e6b0d420bca12d
sideCutter1 images/tools/sideCutter1.webp 234ce8d0b67e3f29eee31aab39cd95ea3109f3e6c0e00c274c756827191d5b6f
tweezer images/tools/tweezer.webp 7d67460c11f30bc71a0de1ccb1fc1db01a6b4967122f0554e59822d476c7c86e
wrench1 images/tools/wrench1.webp b1c6e3efdf2018fc2226789b52149dc3992f1c4596ba2f20054414e8ee209868
@ gcompris-qt-data gcompris-qt-data/clickgame usr/share/gcompris-qt/rcc/clickgame.rcc gcompris/src/activities/clickgame/resource/
sea1 sea1.webp a3a8c196d24f6c37fc2e9bebd421ffa339485cf511fc2c3258ba9e5a17076170
sea2 sea2.webp 533dcc0d871a390d5ee648ce1b4cfbccb41890cc1e514e5966f3cc02550d75a4
sea3 sea3.webp 9c8236a6ade2a59fb05dfe03802cd9aa5d5e672c85731b136847287c33265974
sea4 sea4.webp 21295e109d35b0f11a9c8dd17524be6212571cb28fad56613be1f8789a261f5e
sea5 sea5.webp 08c6d1ae0ea47c5136137148c817472da329ca1e67063b0fb3e60190e5c55b00
sea6 sea6.webp 42f7a4152c54f8bf065e8ad182472729a5374a6860c573a4de1ea0987e026cf3
@ gcompris-qt-data gcompris-qt-data/details usr/share/gcompris-qt/rcc/details.rcc gcompris/src/activities/details/resource/
Chenonceau_background image/Chenonceau_background.webp d8f4c352456d71487af05171b498ce4bd3f96d830a6c6e865e12f4608c5fd5a6
EgeskovSlotSpejling_background image/EgeskovSlotSpejling_background.webp 6ba38f91b6f6f53c4c105c57f647bd43d11b737293f23b1cef1806a81b872106
EilanDonanCastle_background image/EilanDonanCastle_background.webp cd94fbfc2ef05477d23688eb24401fb8b8dd550f6eb0aa2b8cbcb6f646c7a62f
FanoeWindmill_background image/FanoeWindmill_background.webp 3cea5251d1e93a9a2e03d3d6001a26098c9614e4b7922725924307a305148068
GizahPyramids_background image/GizahPyramids_background.webp 71946fdfe1a1dab7b081b97a53fe4d2beed6eaf8bf02e0df7ecf4a1974bbe7db
Louvre_2007_02_24_c_background image/Louvre_2007_02_24_c_background.webp cb88769524ed233f9926c75c97a8f1660c95e8284028ba142db55ea7c0fe66c2
NDP_background image/NDP_background.webp 0bbfd0f6edd1145aeee774587635d7738c73274271b4be83eec9b476a3c421ee
Nagoya_background image/Nagoya_background.webp 84b09f2cc12c464b1404e4fdb3c45ac7f7f51e9b4b3dfe450bf7cdf669946cd7
OperaSidney_background image/OperaSidney_background.webp 702de281dd3a2fa4c4c3bea385e2e12d5030fc8b46268e96dcfda5a3d0d3bb90
TajMahal_background image/TajMahal_background.webp 9c2796c2a415cfd3b2ba20f52d7da5935298d00f208028b6c6d25d5d680b0cfb
TourEiffel_background image/TourEiffel_background.webp 5e763c937dbae956fb6190c09f781c2c8051902701bf217f7db40207893b8dd4
TowerBridgeLondon_background image/TowerBridgeLondon_background.webp a811a6b2294807122fdde6295e2decb59e80ef6e248eddb4b228a6785a354e8c
@ gcompris-qt-data gcompris-qt-data/erase usr/share/gcompris-qt/rcc/erase.rcc gcompris/src/activities/erase/resource/
alpaca alpaca.webp ffd29864f09bf7439144e8da04d772fb455cfe9891d50e60ae70b99a16e42d5e
bee bee.webp 810de9fea0499e4d1a7584c8b62b509ef1c404d9bec3094d53aeb8a77abdc7b2
butterfly butterfly.webp e12b50bb4ee6bb36bd4e3ab428a2d1ea87d5390b5a6a4aa189b10950a1925860
calf calf.webp 5957d392349d9016e0b6a2ca900ebd12a6a6eed6b21a1fb69111d1fabbca3973
camels camels.webp df4da85790b8a403f5095e796d042f28f8386831a4970ab4b3035746ae038edc
caterpillar caterpillar.webp 1aca9fcc5a0e3e9f2b2bc7d0f231e509f935dd8207b064e7c1810e0466e9403a
chamaeleon chamaeleon.webp 8a338c7df32949c5a5e1fef4b901d554b1c1af71c6a5bd81882522c11e0c41e5
cheetah cheetah.webp b9d85c2e2899036e7b0caf458696586adf63d431e5034362bb48a0abd8d29149
crab crab.webp 822be2d08adc89a71e6eeff1500eea684c6f0961c98ddb1b23f0e66bbae4f987
dolphin dolphin.webp 2847f84c4c9698a9b55124145dd679868da1239b0f174db8f2c83e173cbb9d8c
flying_fox flying_fox.webp 076622230f0634c0ef952f8f197280262db2355205c22f0c8f7731a13557c54a
gibbon gibbon.webp a7b242c4b014e7e37f2f3fac95c841c49e2dea5d5aa886e2ab4758e0372af9f8
giraffe giraffe.webp c39106edc785a65bf0eee10bf039375b2fc3f72b405d76fec392a1a40b39d4f0
goat goat.webp acba63337c11582a5cc3fd97573e4fefd353da82e63a06f1947cdbb11f49b7bd
gorilla gorilla.webp 5ce6131ce966f585b263e2f04cbd504dd7366f99885ca3cbef12aa25d559b5d4
gosling gosling.webp dab7bc930f6fe4f7a32db0b8f1bd86d905db50d8aa2e646522c428c731a80853
heron heron.webp 63006dabe8b74b826eba8d8d80c4330ff38f57fd3e1010254f4644d830c48067
horse horse.webp 15b49393342bf7de3fef6c1bb083cc7b643fa90b5b46e1a344833eb1d515a795
kingfisher kingfisher.webp b637658d7e0f8f555b5683a8c912646d57ba37be6ba9684df893a1d07ee9e637
kitten kitten.webp c6f3a52585a3d6179c78e15375a9d9b11f37bfd0ac33b477f3b67cda06c59727
long_nosed_monkey long_nosed_monkey.webp 7dcb1048527339524e6decd296d4bf8c22d74415fe5d6fcaa3354ae17530bf86
macaque macaque.webp 3a97a3c854c6d93cc67cc608e569ed0e6157f22cd5dd7e118fb0a42641eeada8
meerkats meerkats.webp 459198d83393a1835c76861d901144d209a0bead29f4b9d2ef5b472eeab01fdd
northern_harrier northern_harrier.webp e2b2f388dc6f92ce2ea0f40f2d8d2d1ec6e8a135d05986cae67a7d0330c1ac26
nubian_ibex nubian_ibex.webp 5268033ecc366dbcf949a06e62361785a7be788dfa2b1ad343e7ded8104cfaf2
penguin penguin.webp 1c8be6df0a6ff161ad49a789b5699f842b18f5dc93bf6b66fd5f1342266643b2
pika pika.webp 1c8a4014d079380622c55d15afe6cad5bb53c42b09eb5b4e7bec8f127fdd063f
red_panda red_panda.webp ec755f7b9d8953037161a7cf4f01270fdc92382913b33d987ceb27c1dfa6ded1
rhinoceros rhinoceros.webp 250140eb6d3a0af11b87c084ce18a6c41a8ed679c97ef758b58ba54e04b11f9c
spoonbills spoonbills.webp f67d7d04bf3ba2270953db11be657fc3fc7292d4d070891f5164fef5b1665f96
squirrel squirrel.webp 56bdd761a41440bdd47eae4aa75b1703f9d24c5d09c8352f9b462deaa6b9b96f
swans swans.webp 5fe69699bf37d702c3ca9b2b76c727aff717494ba368272952e05ac233028eda
toucan toucan.webp 977b0ff4277075a4ef79e0c335276fd5a2ae68f8bf366503fd33203c49f82b04
@ gcompris-qt-data gcompris-qt-data/explore_farm_animals usr/share/gcompris-qt/rcc/explore_farm_animals.rcc gcompris/src/activities/explore_farm_animals/resource/
cat animals/cat.webp ab7c3e1b04e80bc567b00dba49946918b5a38be1f37618f0d2b4887ef5792770
chicken animals/chicken.webp 30a07d3c7dfc191ff4d160826ad14babb4cfb9cb47b15ec8a098857f135bfcd4
cow animals/cow.webp db359136be5ef7c435a2521e7f782a7f13ab48634f8a955864b1557ca21926db
dog animals/dog.webp 5e9d9544495740101e4cfff817d986b683731112b2cf17fde2e4c2a26c3c5314
duck animals/duck.webp fa4572f2022a3aded4b627b9234fb8abf1658d125b267dc8d28cb1a8213c3b60
horse animals/horse.webp 87879a9644b71713f52aadf22562f30cc3e6e25a36e07d602a90e0cf6ec888aa
owl animals/owl.webp e8b7d705a955799f02eb3e8ded6487991d2c5c8274fee828ac75c0b917b3e237
pig animals/pig.webp 4f3d27d1fd3d0b3c0482d72a7b62101c133329f95427dcb3fb1319e69d53b7c8
sheep animals/sheep.webp 3bac61d5dabb709cdea2511f63bab6bfcde9736536a39f1f7510f5258a75b088
@ gcompris-qt-data gcompris-qt-data/explore_monuments usr/share/gcompris-qt/rcc/explore_monuments.rcc gcompris/src/activities/explore_monuments/resource/
bentPyramid egypt/bentPyramid.webp ca717a088d790a901ffa1b03162c5cc438f99924d457f988263f158a7cc2cb38
greatPyramidOfGiza egypt/greatPyramidOfGiza.webp f8427c09579493e7918d00134423ed40140c2f3fa09fb13341d3c1a0640fc1e9
meidumPyramid egypt/meidumPyramid.webp 694a4eaebc52849aacf802383bc5c755c0fff97b8342a4ef733c7a36c6e6aa53
redPyramid egypt/redPyramid.webp 7df87dfe904e18fee2062e8dba2cbfc5c7b807e27c688b271a7380000865c2cf
arlesAmphitheater france/arlesAmphitheater.webp 62d80a80ca5e5040bdb87c6f2fb57fa333d9b190c9a41066e4017cd4268656d9
chateaudeChambord france/chateaudeChambord.webp a96693bfff66c9a747a066b8d798aaf876427de969603c4125bf881f8af0ac2d
chateaudeChenonceau france/chateaudeChenonceau.webp 4e414fc35ae9b4e18e3219d6278287fb720e89facd332fef9a1c4fe9c3c3adc3
citedeCarcassonne france/citedeCarcassonne.webp b9de4b334e76df53df948de034f4bcc744be682a904ad7c61a9f9f7ac8de326b
eiffelTower france/eiffelTower.webp cf115ede228937f0dfea0ffd7efa5fa24a948f388091ce1a123e7636b25c080b
montStMichel france/montStMichel.webp 1c097b958c4bc0e52384e572c3e3ed70abbb54e9b4936cd0852320e1ce12561e
palaisdesPapes france/palaisdesPapes.webp fded6367850d2fafaf5ecad961ba51efbdc0c3d3171f7cc058d2ccfd2e6897e6
pontduGard france/pontduGard.webp b9e560a9ae2fd919baec7f5ceb08877d57194e614481b25058693a88c232897f
reimsCathedral france/reimsCathedral.webp 720ddce0a3124d68e306008c152fb19ec2a2917b3609ba8a31607cffaf52c2d2
rocamadour france/rocamadour.webp e9642c03c23004248bcdf0a364d9828625ba5ef75f82e4a10bfdf2b16bd0a18c
aulaPalatina germany/aulaPalatina.webp 5b39680425fca3ff5f56b3bd79d11683a46a009d66ef23445e165ea72524b3cb
berlinCathedral germany/berlinCathedral.webp b552994f64727ceaa04218d6a5e7a86b08cb8b550c1eeae0b010f857286d308e
brandenburgGate germany/brandenburgGate.webp 2cb312c79a20e0cd8ed865c5b15a95af86d8d95a0ab96da8814c073857abf4bb
neuschwansteinCastle germany/neuschwansteinCastle.webp 15ec5fcb8758d54efa65581b9682e5cc766d700f3f329d700a06d0550d2c8e03
schwerinPalace germany/schwerinPalace.webp 91be8dd19821221b2b3c30a78cb43a17d8017751a1d36acd751b1e9417acbbae
trierImperialBaths germany/trierImperialBaths.webp dd1818360d153c095e227157d128e498fe9b29437594e8e5c663184cad4120fb
wormsCathedral germany/wormsCathedral.webp c90cdcbf981bcd5f118b553b059448db6fb0bfe801b40240e02ccd2975b92a59
ajantaCave india/ajantaCave.webp 7dbf980b3711f7557ed4d5748e494c48f72ac34ff601cf1a46f272ff9ab20543
charminar india/charminar.webp a657a2139787bded963966d92b4ff9825327572e5e73d4badc1ac52cc063db0f
gatewayofIndia india/gatewayofIndia.webp 8d1053776a85a9703f819ae6a82f981cbfa9a8961712404afee235afd87a0e48
goldenTemple india/goldenTemple.webp ec52355726f8c36c78f0db526dc0fd8c823f5572a5ced04e8914a82a7b496a8c
greatStupa india/greatStupa.webp 3b6741152471d00646271d3a413c08af0533766f09dc87af19abb9ff71801886
hawaMahal india/hawaMahal.webp 4edb7eed9db596bd7f3ad98eb34a82c04c32ff1d57aeec80a815c1248feb8e04
konarkSunTemple india/konarkSunTemple.webp c94ddb83bb2d878fecaf0677e8e6c1e73ede7dd39bd69f5e84d2f68e84515156
mysorePalace india/mysorePalace.webp a84a26be8d9447341e5235dd319acc71a49f2d91c8dd55a17a89867c64a580c0
qutubMinar india/qutubMinar.webp dea912cbd3950dacbba8cd810e39713525c27d54e58ce6ba7502a0f83cf24c95
rangGhar india/rangGhar.webp 41791947f8772c9bf483ddb13a4fa4dfbbd1eef44f29937a99eebc5361d981a2
victoriaMemorial india/victoriaMemorial.webp be7b3264cd3391e5b50714e0cec31f2e23e658498b5aba584a4b9aaf526dc51e
cabrillo usa/cabrillo.webp e109eb44fd12f853a4adfa0c30ca5a6bcc03205a58c9e6802b88886751d42277
canyondeChelly usa/canyondeChelly.webp 2148fe45a54186a6e8bc4a395bbbffa0e3530e65232ceda5b841397a0d031bfb
castillodeSanMarcos usa/castillodeSanMarcos.webp b1d3584272eb66d8211a9cb71a3647e88597986f8020eca9691c488282ea9a88
castleClinton usa/castleClinton.webp c36913b06cea891736c82132a9124d178c11a0b1e1f0d511e9f8158a8271ac62
fortSumter usa/fortSumter.webp 42c8376f99f770fa9daa92afb8cde44dc58dd3282b10c5ba8fabec02ea4b9643
georgeWashingtonBirthplace usa/georgeWashingtonBirthplace.webp 134f44b0e1c333202da337c73b6752db36fcbb5cb73e05cfcb4e5f4ff2fb4f43
lincolnMemorial usa/lincolnMemorial.webp 52eab4d110bd168e644c9152a60a911cdd8ba5e3d4b661e966f256a074f66fb8
mountRushmore usa/mountRushmore.webp d9fec7d6ac491a64c5dab74fed447054e9d188dc9732715bef12bd63909e87c8
navajo usa/navajo.webp fa8d36162b1380ac7998ab32d82f7b86b390cdce830acd807ef314291cc03ee5
statueofLiberty usa/statueofLiberty.webp 8eeda3c92c734520b4b7865eb04a900402a329890064058bcb4448d21669a3a8
chichenItza wonders/chichenItza.webp 9882593801be435822f1d948afb36b171ed7fc7a301dfa74b11df5ea9afaf681
christTheRedeemer wonders/christTheRedeemer.webp 3133f2872b3d791595296fd4bf4812654326e01f5c7cd2d870765bfd6772fa2b
colosseum wonders/colosseum.webp 0d38a0c2d4910f895c003825999345a86da080ff76d709bba923153cbd654945
greatWallofChina wonders/greatWallofChina.webp 546e2483d17c2b732ce375d946afba6fc612166abcd6d976217747a982b60777
machuPicchu wonders/machuPicchu.webp e04e163ccef6e59411dff15c3459768b2f442fe2ff5042369d9a480f1f272068
petra wonders/petra.webp cc782ccdd5b508299ad17402df2d0d375c26e1f9b18e4d2e6c3fd474fcaeb458
tajMahal wonders/tajMahal.webp fc0d45ec5a258568858c70d2d78eb23a5eb769255d74b384f70c20422d2eb351
@ gcompris-qt-data gcompris-qt-data/explore_world_animals usr/share/gcompris-qt/rcc/explore_world_animals.rcc gcompris/src/activities/explore_world_animals/resource/
bison animals/bison.webp 11f3b2c5b876ee083924ff3ffab233c3e1d161993605b67d4d2ab5a9f1d9cf25
chameleon animals/chameleon.webp f3ececf0133c1301227fdea62d74bce7bcc0d138b048714b116aa4a0744260d5
crocodile animals/crocodile.webp 840cf54b69bf4fb9a14a99fe502e237ad36e7230c146ca884b7b0e444ec12534
dragon animals/dragon.webp fc36683cc2069ac83ae84f2da61c2774149d1a1dcb99820380b724ca50d3532e
giraffe animals/giraffe.webp 68014ed783cf6a8b8c9c4202cf2c467a34819dab08bf566e93d5fcd872e41f5c
hedgehog animals/hedgehog.webp 780aceaa624415db1f6ff304ed13e804572686316e69d21ee0e13856ef173f7e
jaguar animals/jaguar.webp 22704727b6643480c62487ffb2d9fd618a3f499dde84b1eb789d4b0b11477e85
kangaroo animals/kangaroo.webp 683964b6f57fdced539b3da8983ef4f4c9d78a0be3e251363fc5a17d4fb4fe7e
koala animals/koala.webp 77b243c27d79f3f5706497af5c1e8e9134f87d634def2b81e2074b572b575d18
lemur animals/lemur.webp 4fccf91dd5e6a749d9eb621f982e6a0d7072830db91ba0daabcd86b1de7a9747
moose animals/moose.webp 2252a671c2e0ade9ce6ff6d41957348a81ebccfd952ba59bfddceff0b059ea48
narwhal animals/narwhal.webp 2a94d2fc7482ca806ce60210031f167782f7407ed47cd721371355e2ab575afc
panda animals/panda.webp 70ccf9a9db5008100eb6955ae25fabd4f7769427be784d627cf6315f6dfce692
polar_bear animals/polar_bear.webp 0544cef0a7d6940d3c143a04eecb7065bf9b90d7d367ad8bacbef6631b506070
scarlet_macaw animals/scarlet_macaw.webp 8b088ed71a87e7e929cf08b49a1e1c977c47544307d348e52a0f4a85128662a0
@ gcompris-qt-data gcompris-qt-data/explore_world_music usr/share/gcompris-qt/rcc/explore_world_music.rcc gcompris/src/activities/explore_world_music/resource/
africa music/africa.webp c4b27aebe08498a882efa57ebc1ac2798ae2173228656f107cd8bff6098b5acf
america music/america.webp 72af64588442d1e251ed33568629d35bf88b3fa348def66265320571bdda0927
australia music/australia.webp b7e0bc6da6f9fd8b2ae453f9a4a7021e5439bbd8944d4566b938134c0fa24951
ireland music/ireland.webp 20ef5a10a55b03632dc5fec2434c3a7814c15abbbe7489dedb4aa97ee6b111af
italy music/italy.webp b30a023e5d36bb053a4ee8e57bd0b4fa2042e3d0a5ab8e663a341ba6e35672ad
japan music/japan.webp 0f0aa2d3116e01acdc693b626b1b60699124145670e624121289a7ced5020679
mexico music/mexico.webp cd1286e5d7649bc446a47297f0127a38295e5a5f39a641b528e0c5063675c9d1
middleeast music/middleeast.webp bc847e52730f5920b6743b59c881cc16430a1d2438ceba9008a2880530f7aaf2
orchestra music/orchestra.webp b4a6d85a40cefbd33cc6801ffcbb3ad7026d8d79be134c753b4f12b0b862cedf
@ gcompris-qt-data gcompris-qt-data/louis-braille usr/share/gcompris-qt/rcc/louis-braille.rcc gcompris/src/activities/louis-braille/resource/
braille braille.webp 7cd2e9970c7914b18a700861d4678626d4fdf26cdd0d3736b8ac0e3127a5c679
fireplace fireplace.webp 2b1db48aba27400d130e5475a95e37bc9ab20b3be5c42c2e5135627d29e0c56b
rnib rnib.webp 3d6ad48e216c5940480b100ee86f7354332bf32ba46d58349782d325feb49e24
statue statue.webp 3bf4aaebd455ac8b576e815c23b0c79f12c3eaf9bd5313d454d4867f59711956
teach teach.webp e3b199997b75da041d014ae7054f65802a9de266d0912a5cd31199a35b39e685
workshop workshop.webp abc8a10faf77628af4d9e9d50bc9a5aef8e4ecb52ba8eb79644f0785541e0fd3
@ lomiri-wallpapers-16.04 lomiri-wallpapers-16.04 usr/share/backgrounds/ -
Bridge_by_Sander_Klootwijk Bridge_by_Sander_Klootwijk.jpg bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050
Dragonfly_by_Bolly Dragonfly_by_Bolly.jpg af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3
Picture_0B_by_freespace Picture_0B_by_freespace.jpg c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad
Picture_1A_by_freespace Picture_1A_by_freespace.jpg 89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b
Wine_by_Jakkub_Mede Wine_by_Jakkub_Mede.jpg d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74
aitzgorri_by_Aitzol_Berasategi aitzgorri_by_Aitzol_Berasategi.jpg 66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36
analogpattern_by_Peter_Nerlich analogpattern_by_Peter_Nerlich.jpg 15372488a192b2be2eafc67bd3ed31cbfca19abe3929e925607fcbc9cb4d4202
free_by_Peter_Nerlich free_by_Peter_Nerlich.jpg 85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373
friends_by_Aitzol_Berasategi friends_by_Aitzol_Berasategi.jpg cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d
greentock_by_Peter_Nerlich greentock_by_Peter_Nerlich.jpg e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889
life_by_Aitzol_Berasategi life_by_Aitzol_Berasategi.jpg 4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05
picosdeeuropa_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi.jpg 414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a
seeding_by_Clements_Engelhardt seeding_by_Clements_Engelhardt.jpg a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f
sunset_by_Aitzol_Berasategi sunset_by_Aitzol_Berasategi.jpg 474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18
@ plasma-workspace-wallpapers plasma-workspace-wallpapers usr/share/wallpapers/ -
BytheWater BytheWater/contents/images/2560x1600.jpg c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f
ColdRipple ColdRipple/contents/images/2560x1600.jpg 05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f
ColorfulCups ColorfulCups/contents/images/2560x1600.jpg 6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d
DarkestHour DarkestHour/contents/images/2560x1600.jpg 8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce
EveningGlow EveningGlow/contents/images/2560x1600.jpg 586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a
FallenLeaf FallenLeaf/contents/images/2560x1600.jpg 95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de
Grey Grey/contents/images/2560x1600.jpg 88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed
Kite Kite/contents/images/2560x1600.jpg bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8
OneStandsOut OneStandsOut/contents/images/2560x1600.jpg cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd
Path Path/contents/images/2560x1600.jpg 7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8
summer_1am summer_1am/contents/images/2560x1600.jpg c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8
@ lxqt-themes lxqt-themes usr/share/lxqt/wallpapers/ -
Butterfly-Kenneth-Wimer Butterfly-Kenneth-Wimer.jpg c237c26f6f0b18db3afa62a0eff13cb8208b79a1ef35aaadcb745d8f9faef146
Valendas Valendas.png f2d275c51d116942cea8e7d80d30c7d3c130349a0695caf2aa235f926ae15759
after-the-rain after-the-rain.jpg e6cb8b3e09b904cc493ff17fddcd564d4e46a1761d05adf972c285a1fd878234
appleflower appleflower.png bae8a8eb8274b29509f1cbbfe250081331c5704a1fea25d5052166a0451e67f3
beam beam.png 3d199194b048cb793c0ad558337cda3e16f14cd054168d1d813620e24a0a5659
butterfly butterfly.png 13175434d99075e075de7321942e66169e3c99ac9416024dcf4123bd3b38749c
cloud cloud.png 522dbf79dfaff751cf8ef2f337c9d196a231fa096bc38806a76ce048b8c7b5a2
drop drop.png 3b726aea9a6f8af36431c6f1974f982f7f4c5a4443499500bda31be27e4ffde8
flowers flowers.png 3a935d8be4d6c9784f9079ff2814acd2de2c8406e9fe584be03e90264f37c371
fog fog.jpg a8235344ee6b5ab1b6de3ccef731bcc0e6509cf33ce832db87eae1eb75987083
this-is-not-windows this-is-not-windows.jpg 2d885e0438c0ab244f818d33d8f745a1cc486558462faf9bf3948675c68ac227
@ forensics-samples-files forensics-samples-files usr/share/forensics-samples/original-files/ -
IMG-20191006-WA0002 pic1/IMG-20191006-WA0002.jpg 8f31fbc45826c8eaea2d60e61fb9810db38a66704adba3b7db05dd04b87eeb13
IMG_1054 pic1/IMG_1054.JPG 76204f90870d97c2d462c58e113f8a90f2edf4b6fbd95ac2f0f876bb4e61b311
IMG_20200827_231612 pic1/IMG_20200827_231612.jpg 29694a6e485e9bc523c08cc3333ffd17570ab61a94a41419fa9db81ff05e9ad0
IMG_20191224_234846 pic2/IMG_20191224_234846.jpg 653193b3238e0c056cc834c8144aa9801419516e751f8682daa425d7f3dacc5c
IMG_20200124_231153 pic2/IMG_20200124_231153.jpg 850048a1eb65a2147ea05927976aa927c03926c85f880c2f9d2196380bf10403
IMG_20200608_111614 pic2/IMG_20200608_111614.jpg 1f23a3bd64e685f9364046b1ff05b2953071c18e90b2bfb3f9a1e0d6ad234bf5
@ palapeli-data palapeli-data usr/share/palapeli/collection/ -
castle-maintenon castle-maintenon.jpg f4a6bf48b97d97715413f9ebd2d8744bd46df0e492bc8326e2513d51084f2612
cincinnati-bridge cincinnati-bridge.jpg 09772d09318b34a5c5edd58ee86ff462bcd2907006f31cc8e0704310f8e9ab60
citrus-fruits citrus-fruits.jpg 0cbd7154a14789803167c86705130d0358875198231269df168ea26224e70848
european-honey-bee european-honey-bee.jpg 9d54ae706bddd899c91b2b801d9ca4556a5a9a399b4043f9d539df62a8cb7f27
panther-chameleon-female panther-chameleon-female.jpg adb9e2834a8a3db40ca3817452b956ada527085e5aa2bd604c465651a3834ae4
@ tuxpaint-data tuxpaint-data usr/share/tuxpaint/ -
reef-back starters/reef-back.png 1f83017a5ef1c7381e3c550ed8a9f4b59835ce93fb4003be4b1196d6bed862f1
skyline-sf-dusk-back starters/skyline-sf-dusk-back.jpeg 579d9908616ddcb85b09d7762ddb04da5eb988002c985f22ef413caa0dc96607
burnt_bark templates/burnt_bark.jpg 14f3d6ad3fa5dd2cc0a2a996ed95d09e07f858269a0c90564d8f6f09d679f3b8
cliff templates/cliff.jpg ff8da5b7a4eb5f5558a9768764871330ba245dc54ff55d5766129f47a45e7392
corn_maze templates/corn_maze.jpg e3c5dfd777c38fbf79126795ba1165fee41e62402436196363a5e2d938a2d3be
jellyfish templates/jellyfish.jpg 340228d44027370689e43fe44e3a01a3793d79224a7fd20b3d52f824a65f787d
lighthouse templates/lighthouse.jpg bf92c1139da97690208a3948c9d1051649deb44bb51baa288820f5c64f9e6365
mossy_bark templates/mossy_bark.jpg 153b9d8eb33c6f0f6c4a8014039606ccbf1a89677209877de64ab3645324edbb
mossy_log templates/mossy_log.jpg 02ba4842fcf5f48f000d8325da89d85bedd8edc0d8cf551603dfdcfca12064e2
mudstone templates/mudstone.jpg ce1d13d3b66155bea3bc28db56694ade9ed27bd8814814672a0d58cd1b0d93f5
ocean_splash templates/ocean_splash.jpg a6c1697ed8dc06c72136041363b0808f5092625a466e8f9c5f7752375a398404
ocean_waves templates/ocean_waves.jpg b99c24c7148cb2935c7a9cfde12b81f368f8162e32349e554a8cb2dd44c5624e
redwoods_above templates/redwoods_above.jpg cda5f9d27e979e01e22bc16fce24e00b175f4cbfa99e12aa414f308c9aa00745
rocks templates/rocks.jpg f3ddf517f26bc77a3f6a98010fc0bfa0ccac431869388755e0032a4f7bb6d748
sheep templates/sheep.jpg cb408f8b3fc324798d012f71595a148f9fa360c17d1bde91371bd7c01e9cf881
spiders_web templates/spiders_web.jpg a105461c86ff3c61aa46a6bc75747da570cd836d5c5a465b8faefb564f55ed30
sun_behind_clouds templates/sun_behind_clouds.jpg a76583449fb6cf58ca3fd88deac57932f5e0623df8f6ca733258a2ceab3abf91
sun_behind_leaves templates/sun_behind_leaves.jpg a6373334dc5af701d9e5f0efa0e1e4671202897a8e49db4b97d7e826b4590ff8
trees_above templates/trees_above.jpg d75bcb1c0c9cd3f9d9568b09f008e469c1e07ecc0fb84fe2aa858717228310c1
trees_at_dusk templates/trees_at_dusk.jpg 9499116f8e8f494bd776b12b9cb4782a118662801ddff98c4127c866cf255720
wool_mill_machine templates/wool_mill_machine.jpg e66d36c482d32cc5bfd001923e584cf6398ef95039d92e9d2e65f64c33274a18
@ tuxtype-data tuxtype-data usr/share/tuxtype/ -
background_0 images/backgrounds/0.jpg fab7add4907b4296399f57b17375a7668f28dce9d80c85eefd2909289aad9939
background_2 images/backgrounds/2.jpg e32e6b490bebd3aa8ac6b9b610e5bb095a7d7bcb367ee8f041b719ac68aa2614
background_4 images/backgrounds/4.jpg d9e2018d383424dc11848faa3bec24d0b24c4b2db085502aad61f978e469d0e6
hidden images/hidden.jpg 1fd87461fe4eb8d23487bbd5017c73ceabfe897753f5bc871d69bec3b6a764f5
kcas0 images/kcas0.jpg 23cb83649d79f256c7b3b7ab50673a6a1376657252a0630aef786d9196268ebf
kcas1 images/kcas1.jpg 0e95897319c60813bb942fd240d73f5d669d792acf4083f77b8725ee32c43acc
kcas10 images/kcas10.jpg 08e85261ed3e0f054453404a7bca1c37ab3f17f765cdf695dcb1247556874890
kcas11 images/kcas11.jpg 60484eb87a953b6a9a71c87c9cfa9be567b2701ce4961aa5ed31c276653b4e79
kcas2 images/kcas2.jpg a25678e2edcbd94eb12a07658c0ebea46e1881e03a2e8885b8037d1a36147003
kcas3 images/kcas3.jpg 08e222d6a03d4e279ac233b92a95dd2eb201bc5a22fcfcee33f3d0ed50ae8e4b
kcas4 images/kcas4.jpg d997584fb3dda48bea2c833f2b0bd5972fdb100062dd57e0f952d2897d96ab1e
kcas5 images/kcas5.jpg 0ab44b5e0aabd9e4c6fbca5ce9d281a8071d075b57d8980d0107c2350f409940
kcas6 images/kcas6.jpg a4d18775adb69dbf9c227593142628c2830754cbad2b647a5609efa3e3b73ab5
kcas7 images/kcas7.jpg ef58ba44632a6414e7461e0969139876cac2f8ea19547ea32ef05c8745261ad8
kcas8 images/kcas8.jpg 57d99811fb19618fccd053e65aae7729077ffb113d9b5bd155d5a03c1c0d911d
kcas9 images/kcas9.jpg a7de628547e9e9b3513893bb6fd979605175f3c4056346fb30ce8b8b51f3c8f3
photo_asturian themes/asturian/images/photo.png bcf3a1430af9d92264d8fb58d1bf984c80736c4a97be8744eff4f3f77e7ce92e
photo_euskara themes/euskara/images/photo.png e4783a1cdca38135fa10a0afc286f4d251f0da04d423ec58a4bc2cbdbe38582e
photo_hungarian themes/hungarian/images/photo.png 57de090f5abafe778434897721e930c1d4199504c9c575ceead4b531d18af66d
photo_italian themes/italian/images/photo.png e46cf4c6cf428a3948cab982640db0425e11695103df937f4ce6b0b2734eec5a
photo_jamaican themes/jamaican/images/photo.png 6b80c9f815f98e21ad7147370a54f1e31bd4e0643359119ef224060ae2c8bc19
photo_korean themes/korean/images/photo.png 34a583251bc63262c48e042f10b12df36b5ac82918c2972777b8d7cbce75b365
"""
