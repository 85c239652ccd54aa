"""Score image files and folders with a trained detector: CSV/JSON rows, heat maps.

`detect(detector, inputs, output)` scores every regular file under `inputs` (files
and folders; folders walked recursively in sorted order, hidden files and folders
skipped). The extension is not trusted: every file is decoded, and one that cannot
be used gets an error row instead of a score. Preprocessing is evaluation's
(`pipeline.ImageOptions`): decode -> [resize to S x S] -> fit small images -> centre
crop S x S -> float32 in [0, 1], so a file scores as it would in `evaluate`.
Decoding runs on a thread pool ahead of the detector, which only ever sees full
batches (the last one zero-padded), so its jitted shapes stay static.

`mode="whole"` skips the crop: each image is scored whole at native resolution
(whole_image.py; its tiles are the batches), with the whole-image calibration
(evaluate_whole.py). Progress logs images/s and patches/s in both modes.

Rows, one per file in input order (`ROW_FIELDS`):
  path      the file, as given or joined below the given folder
  score     the method's score (MMD for mdmf, the logit for linear_probe), higher =
            more likely generated
  p_value   conformal p-value against the calibration's real images
  decision  "fake" (p <= alpha) or "real"
  error     "code: reason" for a file that was not scored (decode.py's codes,
            plus unreadable_file and non_finite_score)
A missing value is "" in CSV and null in JSON; p_value and decision are missing
for every file when the detector was never calibrated. JSON output is
{"summary": {...}, "rows": [...]}. Outputs are written atomically.

Heat maps (`heatmap_dir`): one PNG per scored file of the per-patch witness over
the S x S crop the model saw (mode "whole": over the whole picture, block-averaged
to at most 1024 px a side for display). Its name is the file's path below the given
folder's parent (a file given directly: its own name), extension dropped, "/"
replaced by "__" (`photos/a/b.jpg` -> `photos__a__b.png`, as evaluate's heat
maps); a name taken twice, e.g. by b.jpg and b.png, gets "~2", "~3", ...
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from typing import Any, Iterator, Sequence

from absl import logging
import numpy as np

from mdmf_jax import metrics
from mdmf_jax import reports
from mdmf_jax import whole_image
from mdmf_jax.data import builder
from mdmf_jax.data import decode
from mdmf_jax.data import pipeline
from mdmf_jax.data import transforms

ROW_FIELDS = ("path", "score", "p_value", "decision", "error")
NON_FINITE_SCORE = "non_finite_score"
_PROGRESS_EVERY_S = 10.0
_MAX_HEATMAP_NAME = 200  # below the usual 255-byte file-name limit


@dataclasses.dataclass(frozen=True)
class _File:
  path: str  # as reported in the rows
  name: str  # "/"-separated path below the given folder's parent: heat map names


def list_files(inputs: Sequence[str]) -> list[_File]:
  """Files to score, in input order; each file once (first occurrence wins).

  A given path that is not a folder is listed as it is, so that a missing or
  odd file gets an error row rather than vanishing.
  """
  files, seen = [], set()
  for given in inputs:
    if os.path.isdir(given):
      top = os.path.basename(os.path.abspath(given))
      found = []
      for dirpath, dirnames, filenames in os.walk(given):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, given)
        parts = [top] + ([] if rel_dir == "." else rel_dir.split(os.sep))
        for filename in sorted(filenames):
          path = os.path.join(dirpath, filename)
          # Sockets, pipes and broken links are not images and could block a read.
          if not filename.startswith(".") and os.path.isfile(path):
            found.append(_File(path, "/".join(parts + [filename])))
    else:
      found = [_File(given, os.path.basename(given))]
    for file in found:
      key = os.path.abspath(file.path)
      if key not in seen:
        seen.add(key)
        files.append(file)
  return files


def heatmap_names(relpaths: Sequence[str]) -> list[str]:
  """Unique flat PNG names for "/"-separated relative paths (module docstring)."""
  names, taken = [], set()
  for relpath in relpaths:
    stem = os.path.splitext(relpath)[0].replace("/", "__")
    if len(stem) > _MAX_HEATMAP_NAME:  # keep the informative end, stay unique
      digest = hashlib.sha256(stem.encode()).hexdigest()[:8]
      stem = digest + stem[-_MAX_HEATMAP_NAME:]
    name, copy = stem, 1
    while name.lower() in taken:  # also unique on case-insensitive file systems
      copy += 1
      name = f"{stem}~{copy}"
    taken.add(name.lower())
    names.append(name + ".png")
  return names


def _load(path: str, options: pipeline.ImageOptions, crop: bool) -> np.ndarray | str:
  """One file -> its uint8 (S, S, 3) crop (or the whole fitted image), or "code: reason"."""
  try:
    if os.path.exists(path) and not os.path.isfile(path):
      return f"{builder.UNREADABLE_FILE}: not a regular file"
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    return f"{builder.UNREADABLE_FILE}: {type(e).__name__}: {e}"
  try:
    image = options.fit(options.load(data))
  except decode.UnreadableImageError as e:
    return str(e)
  return transforms.center_crop(image, options.image_size) if crop else image


def _load_all(paths: Sequence[str], options: pipeline.ImageOptions, crop: bool,
              num_threads: int, prefetch: int) -> Iterator[np.ndarray | str]:
  """`_load` on a thread pool (Pillow releases the GIL), in order, `prefetch` ahead."""
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    pending = collections.deque()
    for path in paths:
      pending.append(pool.submit(_load, path, options, crop))
      if len(pending) > prefetch:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def _empty_row(path: str) -> dict[str, Any]:
  return {field: None for field in ROW_FIELDS} | {"path": path}


class _Rows:
  """Fills the rows of scored files: score, p-value, decision, heat map; counts patches."""

  def __init__(self, rows: list[dict[str, Any]], calibration, heatmap_dir: str | None,
               files: Sequence[_File]):
    self._rows, self._calibration = rows, calibration
    self._heatmap_dir, self._files = heatmap_dir, files
    self._heatmap_names = heatmap_names([file.name for file in files])
    self.num_scored = self.num_patches = 0

  @property
  def heatmaps(self) -> bool:
    return self._heatmap_dir is not None

  def record(self, index: int, score: float, num_patches: int, plot):
    """`plot(path, title)` draws the file's heat map (called only when heat maps are on)."""
    row = self._rows[index]
    if not math.isfinite(score):  # p-values of NaN are undefined
      row["error"] = f"{NON_FINITE_SCORE}: the detector returned {score}"
      return
    row["score"] = float(score)
    self.num_scored += 1
    self.num_patches += num_patches
    if self._calibration is not None:
      row["p_value"] = float(metrics.p_values(self._calibration, score))
      row["decision"] = "fake" if row["p_value"] <= self._calibration.alpha else "real"
    if self.heatmaps:
      title = f"{self._files[index].name}\nscore {row['score']:.4g}"
      if row["decision"] is not None:
        title += f", p {row['p_value']:.3g}: {row['decision']}"
      plot(os.path.join(self._heatmap_dir, self._heatmap_names[index]), title)


class _CropScorer:
  """Scores centre crops in full, zero-padded batches (the detector's shapes stay static)."""

  def __init__(self, detector, rows: _Rows, batch_size: int):
    self._detector, self._rows, self._batch_size = detector, rows, batch_size
    self._patches = int(np.prod(detector.grid))
    self._indices, self._images = [], []

  def add(self, index: int, image: np.ndarray):
    self._indices.append(index)
    self._images.append(image)
    if len(self._images) == self._batch_size:
      self.flush()

  def flush(self):
    if not self._images:
      return
    count = len(self._images)
    padding = [np.zeros_like(self._images[0])] * (self._batch_size - count)
    batch = np.stack(self._images + padding).astype(np.float32)
    batch /= 255  # as evaluation's batches: float32 in [0, 1]
    scores = np.asarray(self._detector.score(batch), np.float64)[:count]
    heats = (np.asarray(self._detector.heatmaps(batch))[:count] if self._rows.heatmaps
             else [None] * count)
    for index, image, score, heat in zip(self._indices, batch, scores, heats):
      self._rows.record(index, score, self._patches,
                        lambda path, title: reports.plot_heatmap(image, heat, path, title))
    self._indices, self._images = [], []


class _WholeScorer:
  """Scores each image whole (whole_image.py): its tiles are the batches."""

  def __init__(self, detector, rows: _Rows):
    self._detector, self._rows = detector, rows

  def add(self, index: int, image: np.ndarray):
    scored = self._detector.score_image(image)

    def plot(path, title):
      heat = whole_image.heat_map(scored.layout, scored.witness)
      reports.plot_heatmap(*whole_image.for_display(image, heat), path, title)

    self._rows.record(index, scored.score, scored.layout.num_patches, plot)

  def flush(self):
    pass


def _write_atomically(path: str, write_fn):
  """Writes via a temporary file in the same folder, then renames over `path`."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=folder, prefix=".detect-", suffix=".tmp")
  try:
    with os.fdopen(handle, "w", newline="") as f:
      write_fn(f)
    os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the results from others
    os.replace(temporary, path)
  except BaseException:
    os.unlink(temporary)
    raise


def write_rows(path: str, rows: Sequence[dict[str, Any]], summary: dict[str, Any]):
  """CSV (rows only, missing values "") or JSON ({"summary", "rows"}) by extension."""
  if path.endswith(".csv"):
    def write_csv(f):
      writer = csv.DictWriter(f, fieldnames=ROW_FIELDS)
      writer.writeheader()
      writer.writerows({k: "" if v is None else v for k, v in row.items()}
                       for row in rows)
    _write_atomically(path, write_csv)
  elif path.endswith(".json"):
    _write_atomically(path, lambda f: json.dump(
        {"summary": summary, "rows": list(rows)}, f, indent=1, allow_nan=False))
  else:
    raise ValueError(f"output={path!r}: name a .csv or a .json file")


def _log_progress(done: int, total: int, rows: _Rows, start: float):
  elapsed = max(time.monotonic() - start, 1e-9)
  eta = (total - done) * elapsed / max(done, 1)
  logging.log_every_n_seconds(
      logging.INFO, "detect: %d/%d files, %d scored, %.1f images/s, %.0f patches/s, ETA %.0f s",
      _PROGRESS_EVERY_S, done, total, rows.num_scored, rows.num_scored / elapsed,
      rows.num_patches / elapsed, eta)


def detect(
    detector,
    inputs: Sequence[str],
    output: str,
    *,
    batch_size: int = 16,
    resize: bool = False,
    small_images: str = "pad",
    heatmap_dir: str | None = None,
    num_threads: int = min(8, os.cpu_count() or 1),
    mode: str = "crop",
) -> dict[str, Any]:
  """Scores every file under `inputs`, writes `output` (.csv/.json), returns a summary.

  Args:
    detector: has `image_size` and `calibration` (metrics.Calibration or None).
      mode "crop": also `grid` (h, w), `score(images) -> (N,)` and
      `heatmaps(images) -> (N, h, w)`, both called with float32
      (batch_size, S, S, 3) batches only. mode "whole": also
      `score_image(uint8 (H, W, 3)) -> whole_image.Scored`
      (evaluate_whole.WholeImageDetector).
    inputs: files and folders.
    output: the result file; its extension picks CSV or JSON.
    batch_size: images per detector call; the last batch is zero-padded.
    resize: resize every image to S x S instead of centre-cropping. p-values
      assume the calibration images were preprocessed the same way (evaluate
      centre-crops), so leave this off for calibrated decisions.
    small_images: how images smaller than S are fitted (transforms.fit_to_crop).
    heatmap_dir: if set, write one heat map PNG per scored file there.
    num_threads: decoding threads.
    mode: "crop" scores the centre S x S crop; "whole" every patch of the
      image at native resolution (whole_image.py), one image at a time.

  Returns:
    num_files, num_scored, num_errors, num_fake (None without calibration),
    errors_by_code, alpha, threshold, seconds, images_per_s, patches_per_s, mode.
  """
  if not output.endswith((".csv", ".json")):
    raise ValueError(f"output={output!r}: name a .csv or a .json file")
  if batch_size <= 0:
    raise ValueError(f"batch_size={batch_size} must be positive")
  if mode not in ("crop", "whole") or (mode == "whole" and resize):
    raise ValueError(f"mode={mode!r} (resize={resize}): 'crop', or 'whole' without resize")
  size = detector.image_size
  options = pipeline.ImageOptions(image_size=size, resize=size if resize else None,
                                  small_images=small_images)
  start = time.monotonic()
  files = list_files(inputs)
  logging.info("detect: %d files from %d inputs", len(files), len(inputs))
  rows = [_empty_row(file.path) for file in files]
  if heatmap_dir is not None:
    os.makedirs(heatmap_dir, exist_ok=True)
  filled = _Rows(rows, detector.calibration, heatmap_dir, files)
  if mode == "crop":
    scorer = _CropScorer(detector, filled, batch_size)
    prefetch = 2 * batch_size + num_threads  # two batches in flight keep the decoders busy
  else:
    scorer = _WholeScorer(detector, filled)
    prefetch = num_threads  # whole images can be large: few decoded ahead
  loaded = _load_all([f.path for f in files], options, mode == "crop", num_threads, prefetch)
  for index, image_or_error in enumerate(loaded):
    if isinstance(image_or_error, str):
      rows[index]["error"] = image_or_error
    else:
      scorer.add(index, image_or_error)
    _log_progress(index + 1, len(files), filled, start)
  scorer.flush()
  summary = _summarise(rows, detector.calibration, time.monotonic() - start,
                       filled.num_patches, mode)
  write_rows(output, rows, summary)
  logging.info("detect: %s -> %s", summary, output)
  return summary


def _summarise(rows, calibration, seconds: float, num_patches: int, mode: str
               ) -> dict[str, Any]:
  scored = sum(row["score"] is not None for row in rows)
  errors = collections.Counter(row["error"].split(":")[0] for row in rows
                               if row["error"] is not None)
  return {
      "num_files": len(rows),
      "num_scored": scored,
      "num_errors": sum(errors.values()),
      "num_fake": (None if calibration is None
                   else sum(row["decision"] == "fake" for row in rows)),
      "errors_by_code": dict(sorted(errors.items())),
      "alpha": None if calibration is None else float(calibration.alpha),
      "threshold": (None if calibration is None  # +inf as "inf": strict JSON
                    else calibration.to_json()["threshold"]),
      "seconds": round(seconds, 3),
      "images_per_s": round(scored / max(seconds, 1e-9), 2),
      "patches_per_s": round(num_patches / max(seconds, 1e-9), 1),
      "mode": mode,
  }


def exit_code(summary: dict[str, Any]) -> int:
  """0 when at least one file was scored (bad files alone never fail a run), else 1."""
  return 0 if summary["num_scored"] > 0 else 1


def heatmap_dir_for(output: str) -> str:
  """Where --mode=detect puts heat maps: beside `output` (scores.csv -> scores_heatmaps/)."""
  return os.path.splitext(output)[0] + "_heatmaps"


def detect_with_config(detector, config) -> dict[str, Any]:
  """`detect` as --mode=detect runs it: config.detect, and config.data's small images.

  config.detect.inputs is a comma-separated list of files and folders.
  """
  inputs = [path.strip() for path in config.detect.inputs.split(",") if path.strip()]
  if not inputs:
    raise ValueError("config.detect.inputs is empty; pass "
                     "--config.detect.inputs=PATH[,PATH...]")
  output = config.detect.output
  return detect(
      detector, inputs, output, batch_size=config.detect.batch_size,
      resize=config.detect.resize, small_images=config.data.small_images,
      heatmap_dir=heatmap_dir_for(output) if config.detect.heatmaps else None,
      num_threads=config.data.num_threads, mode=config.detect.mode)
