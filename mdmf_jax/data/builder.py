"""TFDS builder: a forensic image folder -> array_record, original bytes kept.

Every example holds the file's original bytes (never re-encoded: re-encoding adds
or removes exactly the traces a forensic detector looks at) plus

  label      ClassLabel ["real", "fake"] (0 real, 1 fake)
  generator  ClassLabel, names sorted, shared by all splits
  class      str, "" for layouts without a class folder
  path       str, path relative to the split's root ("/"-separated)
  format     str, Pillow's format name ("JPEG", "PNG", ...)
  height, width  int32, of the stored image

Examples are stored in a fixed order (TFDS shuffling disabled): all real examples
first, then all fake, each sorted by (generator, class, path). The input pipelines
rely on it to sample real and fake separately without reading labels; the counts
are in the data set's metadata (`metadata["splits"][split]["real"]`).

Every file is decoded once at build time. Files that cannot be used are skipped,
never fatal, and listed by path with a reason code in `build_report.json` next to
the data (codes: the decode module's, plus outside_layout, unreadable_file,
too_small, duplicate). Within one group of a split (one generator and class; the
same image under "real" and "fake" of one group is one group too), a file whose
bytes equal an earlier file's is a `duplicate` and kept once. The same bytes in
two groups count in each: benchmarks often give every generator folder the same
real images, and each generator's rows need its reals (`shared_across_groups` in
the report counts such extra copies). Equal bytes in two splits are kept in both
and listed under `cross_split_duplicates` (a train/test leak to look at).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import tempfile
import time
from typing import Any, Iterable, Iterator, Mapping, Sequence

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from mdmf_jax.data import decode
from mdmf_jax.data import layouts

VERSION = "1.0.0"
REPORT_FILENAME = "build_report.json"
UNREADABLE_FILE = "unreadable_file"
TOO_SMALL = "too_small"
DUPLICATE = "duplicate"
_PROGRESS_EVERY_S = 10.0


@dataclasses.dataclass(frozen=True)
class _Checked:
  """A file that decoded to RGB."""

  data: bytes
  digest: str
  height: int
  width: int
  format: str
  mode: str


def _check_file(path: str, max_pixels: int) -> _Checked | layouts.Skipped:
  """Reads and fully decodes one file; any failure becomes a Skipped."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    return layouts.Skipped(path, UNREADABLE_FILE, f"{type(e).__name__}: {e}")
  try:
    image = decode.open_image(data, max_pixels=max_pixels)
    height, width, _ = decode.to_rgb8(image).shape
  except decode.UnreadableImageError as e:
    return layouts.Skipped(path, e.code, e.reason)
  return _Checked(data, hashlib.sha256(data).hexdigest(), height, width,
                  image.format or "", image.mode)


def _check_all(paths: Sequence[str], max_pixels: int,
               num_threads: int) -> Iterator[_Checked | layouts.Skipped]:
  """`_check_file` over `paths` on a thread pool, in order, bounded memory."""
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    pending = collections.deque()
    for path in paths:
      pending.append(pool.submit(_check_file, path, max_pixels))
      if len(pending) >= 4 * num_threads:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


class _Progress:
  """Logs 'done/total files, files/s, ETA' at most every few seconds."""

  def __init__(self, what: str, total: int):
    self._what, self._total = what, total
    self._start = self._last = time.monotonic()

  def update(self, done: int):
    now = time.monotonic()
    if now - self._last < _PROGRESS_EVERY_S and done < self._total:
      return
    self._last = now
    rate = done / max(now - self._start, 1e-9)
    eta = (self._total - done) / max(rate, 1e-9)
    logging.info("%s: %d/%d files, %.0f files/s, ETA %.0f s",
                 self._what, done, self._total, rate, eta)


def _check_name(name: str):
  if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
    raise ValueError(f"name {name!r}: use lower_snake_case (TFDS data set names)")
  if name in tfds.list_builders(with_community_datasets=False):
    raise ValueError(
        f"name {name!r} is a data set of the TFDS catalogue; pick another name "
        "so that reading it back cannot load the catalogue's builder"
    )


@dataclasses.dataclass(frozen=True)
class FolderSpec:
  """What to build from which folders.

  Attributes:
    layout: a key of `layouts.LAYOUTS`.
    roots: split name -> folder in that layout, e.g. {"train": ".../progan_train"}.
    generator: generator name for the `cnnspot` layout (e.g. "progan").
    classes: class folders to read (e.g. ["car", "cat", "chair", "horse"]);
      None reads all.
    generators: generator folders to read; None reads all.
    min_size: skip (and report) images whose shorter side is below this. None
      keeps every size; the pipelines then pad or upsample small images.
    max_pixels: larger images are refused as decompression bombs.
    num_threads: decoding threads for validation (default: all cores).
    metadata: extra JSON-able entries for the data set's metadata.
  """

  layout: str
  roots: Mapping[str, str]
  generator: str | None = None
  classes: Sequence[str] | None = None
  generators: Sequence[str] | None = None
  min_size: int | None = None
  max_pixels: int = decode.DEFAULT_MAX_PIXELS
  num_threads: int | None = None
  metadata: Mapping[str, Any] | None = None


class ImageFolderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Builds one data set (one or more splits) from image folders of one layout."""

  VERSION = tfds.core.Version(VERSION)
  RELEASE_NOTES = {str(VERSION): "Original file bytes + label, generator, class, path."}
  # No checksums file ships with this builder. Also sidesteps tfds 4.9.10's lookup
  # of `importlib_resources` (a Python < 3.9 backport it does not install).
  code_path = None

  def __init__(self, *, name: str, data_dir: str, spec: FolderSpec):
    _check_name(name)
    self.name = name
    self._spec = spec
    self._num_threads = spec.num_threads or os.cpu_count() or 1
    self._scans = {
        split: layouts.scan(root, spec.layout, generator=spec.generator,
                            classes=spec.classes, generators=spec.generators)
        for split, root in spec.roots.items()
    }
    for split, (entries, _) in self._scans.items():
      if not entries:
        raise ValueError(
            f"split {split!r}: no file under {spec.roots[split]!r} fits layout "
            f"{spec.layout!r} ({layouts.get_layout(spec.layout).pattern})")
    self._generator_names = sorted(
        {e.generator for entries, _ in self._scans.values() for e in entries})
    self._metadata = {
        "layout": spec.layout,
        "splits": {},
        "min_size": spec.min_size,
        "max_pixels": spec.max_pixels,
        **(spec.metadata or {}),
    }
    self.skipped: list[dict[str, str]] = []
    self.cross_split_duplicates: list[dict[str, str]] = []
    self.converted_modes: collections.Counter[str] = collections.Counter()
    self.shared_across_groups: collections.Counter[str] = collections.Counter()
    self._first_seen: dict[str, tuple[str, str]] = {}  # digest -> (split, path)
    super().__init__(data_dir=data_dir, file_format="array_record")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"Image folder(s) in the {self._spec.layout!r} layout; "
        "original file bytes, never re-encoded.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(
                shape=(), dtype=np.object_,
                doc="original file bytes, never re-encoded"),
            "label": tfds.features.ClassLabel(names=["real", "fake"]),
            "generator": tfds.features.ClassLabel(names=self._generator_names),
            "class": tfds.features.Text(),
            "path": tfds.features.Text(doc="relative to the split's root"),
            "format": tfds.features.Text(),
            "height": tfds.features.Scalar(dtype=np.int32),
            "width": tfds.features.Scalar(dtype=np.int32),
        }),
        disable_shuffling=True,  # keeps the real-then-fake order (module doc)
        metadata=tfds.core.MetadataDict(self._metadata),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is local
    return {split: self._generate_examples(split) for split in self._scans}

  def _skip(self, split: str, skipped: Iterable[layouts.Skipped]):
    self.skipped.extend(dict(split=split, **dataclasses.asdict(s)) for s in skipped)

  def _generate_examples(self, split: str):
    entries, outside = self._scans[split]
    self._skip(split, outside)
    digests_in_groups: dict[tuple[str, str, str], str] = {}  # (generator, class, digest)
    counts = collections.defaultdict(lambda: {"real": 0, "fake": 0})
    progress = _Progress(f"{self.name}/{split}", len(entries))
    results = _check_all([e.path for e in entries], self._spec.max_pixels,
                         self._num_threads)
    key = 0
    for done, (entry, result) in enumerate(zip(entries, results), start=1):
      progress.update(done)
      if isinstance(result, layouts.Skipped):
        self._skip(split, [result])
        continue
      min_size = self._spec.min_size
      if min_size and min(result.height, result.width) < min_size:
        self._skip(split, [layouts.Skipped(
            entry.path, TOO_SMALL, f"{result.width}x{result.height} has a side "
            f"below min_size={min_size}")])
        continue
      group_key = (entry.generator, entry.class_name, result.digest)
      if group_key in digests_in_groups:
        self._skip(split, [layouts.Skipped(
            entry.path, DUPLICATE,
            f"same bytes as {digests_in_groups[group_key]}")])
        continue
      digests_in_groups[group_key] = entry.path
      first_split, first_path = self._first_seen.setdefault(
          result.digest, (split, entry.path))
      if first_split == split and first_path != entry.path:
        self.shared_across_groups[split] += 1
      elif first_split != split:
        self.cross_split_duplicates.append(dict(
            split=split, path=entry.path, duplicate_of_split=first_split,
            duplicate_of=first_path))
      if result.mode != "RGB":
        self.converted_modes[result.mode] += 1
      counts[entry.generator]["fake" if entry.label else "real"] += 1
      yield key, {
          "image": result.data,
          "label": entry.label,
          "generator": entry.generator,
          "class": entry.class_name,
          "path": entry.relpath,
          "format": result.format,
          "height": result.height,
          "width": result.width,
      }
      key += 1
    if not key:
      raise ValueError(
          f"split {split!r}: none of the {len(entries)} files under "
          f"{self._spec.roots[split]!r} is usable: {self.skipped[:3]} ...")
    self.info.metadata["splits"][split] = {
        "root": os.path.abspath(self._spec.roots[split]),
        "real": sum(c["real"] for c in counts.values()),
        "fake": sum(c["fake"] for c in counts.values()),
        "generators": dict(sorted(counts.items())),
    }

  def report(self, seconds: float) -> dict[str, Any]:
    """The build report (written as JSON next to the data)."""
    return {
        "name": self.name,
        "version": VERSION,
        "layout": self._spec.layout,
        "data_dir": os.fspath(self.data_dir),
        "splits": dict(self.info.metadata["splits"]),
        "skipped_by_code": dict(sorted(collections.Counter(
            s["code"] for s in self.skipped).items())),
        "skipped": self.skipped,
        "cross_split_duplicates": self.cross_split_duplicates,
        "shared_across_groups": dict(sorted(self.shared_across_groups.items())),
        "converted_modes": dict(sorted(self.converted_modes.items())),
        "seconds": round(seconds, 2),
    }


def dataset_dir(data_dir: str, name: str) -> str:
  """Where `build_image_folder` writes data set `name` (TFDS's layout)."""
  return os.path.join(data_dir, name, VERSION)


def spread_indices(start: int, stop: int, count: int) -> np.ndarray:
  """`count` record indices spread evenly over [start, stop), all of them if fewer or 0.

  Over the stored order (sorted by generator, class and path) an evenly spread sample
  takes from every folder, unlike a prefix.
  """
  if not count or stop - start <= count:
    return np.arange(start, stop)
  return start + np.linspace(0, stop - start - 1, count).round().astype(int)


def split_names(data_dir: str, name: str) -> list[str]:
  """The splits of data set `name` in `data_dir`."""
  return list(tfds.builder_from_directory(dataset_dir(data_dir, name)).info.splits)


def check_split(data_dir: str, name: str, split: str, field: str | None = None) -> None:
  """Raises ValueError (naming config field `field`) when data set `name` lacks `split`."""
  splits = split_names(data_dir, name)
  if split not in splits:
    where = f"config.{field}: " if field else ""
    raise ValueError(f"{where}data set {name!r} in {data_dir} has no split {split!r}; "
                     f"it has {splits}")


def load_report(data_dir: str, name: str) -> dict[str, Any]:
  with open(os.path.join(dataset_dir(data_dir, name), REPORT_FILENAME)) as f:
    return json.load(f)


def summary_line(report: Mapping[str, Any]) -> str:
  """One line: examples per split, skipped files by reason, report path."""
  splits = ", ".join(f"{s}: {c['real']} real + {c['fake']} fake"
                     for s, c in report["splits"].items())
  skipped = sum(report["skipped_by_code"].values())
  shared = sum(report.get("shared_across_groups", {}).values())  # older reports lack it
  return (f"{report['name']}: {splits}; skipped {skipped} files "
          f"{report['skipped_by_code']}; {len(report['cross_split_duplicates'])} "
          f"cross-split duplicates; {shared} copies shared across generator/class "
          f"groups; report: "
          f"{os.path.join(report['data_dir'], REPORT_FILENAME)}")


def build_image_folder(*, name: str, data_dir: str, **spec) -> dict[str, Any]:
  """Builds `data_dir/name/1.0.0` (array_record) unless it exists; returns the report.

  Args:
    name: data set name (lower_snake_case, not a TFDS catalogue name).
    data_dir: TFDS data directory.
    **spec: the fields of `FolderSpec` (layout, roots, generator, classes, ...).

  Returns:
    The build report (see module docstring); also at
    `dataset_dir(data_dir, name)/build_report.json`.
  """
  if os.path.exists(os.path.join(dataset_dir(data_dir, name), REPORT_FILENAME)):
    logging.info("%s already built in %s; reusing it", name, data_dir)
    return load_report(data_dir, name)
  start = time.monotonic()
  builder = ImageFolderBuilder(name=name, data_dir=data_dir,
                               spec=FolderSpec(**spec))
  # TFDS's tqdm bars ("Generating splits", "Shuffling ...") print hundreds of
  # lines into logs; _Progress already logs one line per split.
  tfds.disable_progress_bar()
  with tempfile.TemporaryDirectory() as download_dir:  # nothing to download
    builder.download_and_prepare(download_dir=download_dir)
  report = builder.report(time.monotonic() - start)
  with open(os.path.join(builder.data_dir, REPORT_FILENAME), "w") as f:
    json.dump(report, f, indent=1)
  logging.info("%s", summary_line(report))
  return report
