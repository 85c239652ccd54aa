r"""Shortcut audit: how well trivial cues alone separate the real from the fake images.

    python -m mdmf_jax.audit --data_dir=DIR --name=NAME [--out_dir=OUT] \
        [--threshold=0.8] [--max_images=2000]
    python -m mdmf_jax.main --config=C --workdir=W --mode=audit   # -> W/audit/<name>/

A detector can score well by learning how a benchmark's reals and fakes were stored
rather than what generation leaves in them; the best known case is JPEG reals against
PNG fakes. The audit reads the stored, encoded bytes of a data set made by
`data.builder` (never re-encoded) and measures, per split and per generator (its reals
against its fakes) plus all generators pooled ("all"), these cues:

  format           Pillow's format name ("JPEG", "PNG", ...)           categorical
  jpeg_tables      the JPEG quantisation tables ("none" if not JPEG)     categorical
  jpeg_quality     quality estimated from the tables (IJG scaling of the
                   standard luminance table); 101 for every other format numeric
  width, height, pixels                                                  numeric
  bytes_per_pixel  stored bytes / pixels (the compression ratio)         numeric
  mean_red, mean_green, mean_blue, mean_grey (BT.601 luma), 0-255        numeric

Separability (%) = max(AUROC, 100 - AUROC), with fake as the positive class: 50 means
the cue carries no information, 100 that it alone separates the classes. A numeric
cue's AUROC is that of its value; a categorical cue is scored by each category's
fraction of fakes in the group, which is the best any rule on that cue alone can do on
these very images (an in-sample upper bound). A cue whose separability exceeds
`threshold` (a fraction, e.g. 0.8 -> 80 %) is flagged "WARN" and logged.

At most `max_images` images per split, generator and label are read, evenly spaced
over the stored order (0: all). Writes audit.md|csv|json (one row per split,
generator and cue) and audit.png (the separability matrix).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import os
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
from sklearn import metrics as sk_metrics

from mdmf_jax import reports
from mdmf_jax.data import builder
from mdmf_jax.data import decode
from mdmf_jax.data import pipeline

NUMERIC_CUES = ("jpeg_quality", "width", "height", "pixels", "bytes_per_pixel", "mean_red",
                "mean_green", "mean_blue", "mean_grey")
CATEGORICAL_CUES = ("format", "jpeg_tables")
CUES = CATEGORICAL_CUES + NUMERIC_CUES
NOT_JPEG_QUALITY = 101  # lossless and other formats rank above every JPEG quality
ALL_GENERATORS = "all"

# The IJG (libjpeg) standard luminance table at quality 50.
_IJG_LUMINANCE_SUM = sum((
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99))
_BT601 = np.array([0.299, 0.587, 0.114])


def estimate_jpeg_quality(tables: dict[int, Sequence[int]]) -> float:
  """IJG quality (1-100) whose scaled standard luminance table best matches table 0.

  libjpeg scales the table by S = 5000 / q (q < 50) or 200 - 2q (q >= 50) percent;
  S is estimated from the table sums (order-independent, so zigzag or natural order
  both work). Tables from other encoders get the nearest IJG-equivalent quality.
  """
  scale = 100.0 * sum(tables[0]) / _IJG_LUMINANCE_SUM
  quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
  return float(np.clip(np.round(quality), 1, 100))


def image_cues(data: bytes) -> dict[str, Any]:
  """Every cue of one stored file (module docstring)."""
  image = decode.open_image(data)
  pixels = decode.to_rgb8(image).astype(np.float64)
  height, width = pixels.shape[:2]
  tables = getattr(image, "quantization", None) if image.format == "JPEG" else None
  means = pixels.reshape(-1, 3).mean(axis=0)
  return {
      "format": image.format or "unknown",
      "jpeg_tables": (hashlib.sha256(repr(sorted((k, list(v)) for k, v in tables.items()))
                                     .encode()).hexdigest()[:12] if tables else "none"),
      "jpeg_quality": estimate_jpeg_quality(tables) if tables else NOT_JPEG_QUALITY,
      "width": width, "height": height, "pixels": width * height,
      "bytes_per_pixel": len(data) / (width * height),
      "mean_red": means[0], "mean_green": means[1], "mean_blue": means[2],
      "mean_grey": float(means @ _BT601),
  }


def read_split(data_dir: str, name: str, split: str, max_images: int = 0,
               num_threads: int = 4) -> list[dict[str, Any]]:
  """Cues, label and generator name of (a sample of) one split's stored images.

  Relies on the builder's order (real then fake, each sorted by generator), whose
  per-generator counts are in the metadata; every record's label and generator are
  checked against it.
  """
  source = pipeline.open_split(data_dir, name, split)
  names = pipeline.generator_names(source)
  counts = source.dataset_info.metadata["splits"][split]["generators"]
  wanted, start = [], 0
  for label, key in ((0, "real"), (1, "fake")):
    for generator in sorted(counts):
      stop = start + counts[generator][key]
      wanted += [(int(i), label, generator)
                 for i in builder.spread_indices(start, stop, max_images)]
      start = stop
  if start != len(source):
    raise ValueError(f"{name}/{split}: metadata counts {start} images, the split has "
                     f"{len(source)}; was it built by mdmf_jax.data.builder?")

  def read(item):
    index, label, generator = item
    record = source[index]
    if record["label"] != label or names[record["generator"]] != generator:
      raise ValueError(f"{name}/{split} record {index} is not stored in the builder's order")
    return {"label": label, "generator": generator, **image_cues(record["image"])}

  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    return list(pool.map(read, wanted))


def _category_fake_fraction(values: Sequence[str], labels: np.ndarray) -> np.ndarray:
  fakes, totals = collections.Counter(), collections.Counter(values)
  for value, label in zip(values, labels):
    fakes[value] += int(label)
  return np.array([fakes[v] / totals[v] for v in values])


def _top_category(values: Sequence[str], labels: np.ndarray, label: int) -> str:
  chosen = [v for v, l in zip(values, labels) if l == label]
  value, count = collections.Counter(chosen).most_common(1)[0]
  return f"{value} {100 * count / len(chosen):.0f}%"


def cue_row(cue: str, values: Sequence, labels: np.ndarray) -> dict[str, Any]:
  """{"separability" (%), "detail"} of one cue over one group's images."""
  labels = np.asarray(labels)
  if labels.min() == labels.max():
    return {"separability": float("nan"), "detail": "one class only"}
  if cue in CATEGORICAL_CUES:
    scores = _category_fake_fraction(values, labels)
    detail = (f"real: {_top_category(values, labels, 0)}; "
              f"fake: {_top_category(values, labels, 1)}")
  else:
    scores = np.asarray(values, np.float64)
    detail = (f"median real {np.median(scores[labels == 0]):.4g}, "
              f"fake {np.median(scores[labels == 1]):.4g}")
  auroc = 100.0 * sk_metrics.roc_auc_score(labels, scores)
  return {"separability": max(auroc, 100.0 - auroc), "detail": detail}


def audit_images(images: list[dict[str, Any]], split: str, threshold: float) -> list[dict]:
  """Table rows (split, generator, cue, counts, separability, warning, detail)."""
  by_generator = collections.defaultdict(list)
  for image in images:
    by_generator[image["generator"]].append(image)
  groups = dict(sorted(by_generator.items()))
  if len(groups) > 1:
    groups[ALL_GENERATORS] = images
  rows = []
  for generator, group in groups.items():
    labels = np.array([image["label"] for image in group])
    for cue in CUES:
      row = cue_row(cue, [image[cue] for image in group], labels)
      flagged = row["separability"] > 100.0 * threshold
      rows.append({"split": split, "generator": generator, "cue": cue,
                   "num_real": int(np.sum(labels == 0)), "num_fake": int(np.sum(labels == 1)),
                   "separability": row["separability"], "warning": "WARN" if flagged else "",
                   "detail": row["detail"]})
      if flagged:
        logging.warning("shortcut: %s/%s: %s separates real from fake at %.1f%% (%s)",
                        split, generator, cue, row["separability"], row["detail"])
  return rows


def audit(data_dir: str, name: str, out_dir: str, *, threshold: float = 0.8,
          max_images: int = 2000, num_threads: int = 4,
          splits: Sequence[str] | None = None) -> list[dict]:
  """Audits every split (or `splits`) of data set `name`; writes the table and plot."""
  rows = []
  for split in builder.split_names(data_dir, name) if splits is None else splits:
    images = read_split(data_dir, name, split, max_images, num_threads)
    rows += audit_images(images, split, threshold)
  title = (f"Shortcut audit of {name}: separability max(AUROC, 100 - AUROC) (%) of trivial "
           f"cues, WARN above {100 * threshold:.0f}")
  print(reports.write_table(rows, os.path.join(out_dir, "audit"), title))
  labels = list(dict.fromkeys(f"{r['split']}/{r['generator']}" for r in rows))
  matrix = np.full((len(labels), len(CUES)), np.nan)
  for r in rows:
    matrix[labels.index(f"{r['split']}/{r['generator']}"), CUES.index(r["cue"])] = \
        r["separability"]
  reports.plot_matrix(matrix, labels, list(CUES), os.path.join(out_dir, "audit.png"),
                      title=f"{name}: separability of trivial cues (%)", vmin=50, vmax=100,
                      mark_above=100 * threshold)
  flagged = sum(r["warning"] == "WARN" for r in rows)
  logging.info("audit of %s: %d of %d cue rows above %.0f%% -> %s", name, flagged, len(rows),
               100 * threshold, out_dir)
  return rows


def audit_with_config(config, workdir: str) -> dict[str, list[dict]]:
  """--mode=audit: data.name and, if set, eval.data_name, into W/audit/<name>/."""
  names = dict.fromkeys(n for n in (config.data.name, config.eval.data_name) if n)
  return {name: audit(config.data.data_dir, name, os.path.join(workdir, "audit", name),
                      threshold=config.audit.threshold, max_images=config.audit.max_images,
                      num_threads=config.data.num_threads) for name in names}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  if not args.data_dir or not args.name:
    raise app.UsageError("--data_dir and --name are required")
  if not 0.5 <= args.threshold <= 1.0:
    raise app.UsageError(f"--threshold must be in [0.5, 1], got {args.threshold}")
  out_dir = args.out_dir or os.path.join(args.data_dir, f"{args.name}_audit")
  audit(args.data_dir, args.name, out_dir, threshold=args.threshold,
        max_images=args.max_images, num_threads=os.cpu_count() or 1, splits=args.splits)


if __name__ == "__main__":
  # Defined here, not at import: main.py imports this module and has flags of its own.
  flags.DEFINE_string("data_dir", None, "TFDS data directory.")
  flags.DEFINE_string("name", None, "Data set name (built by mdmf_jax.data.build).")
  flags.DEFINE_string("out_dir", None, "Output folder (default DATA_DIR/NAME_audit).")
  flags.DEFINE_float("threshold", 0.8, "Warn above this separability (0.5-1).")
  flags.DEFINE_integer("max_images", 2000, "Images per split, generator and label (0: all).")
  flags.DEFINE_list("splits", None, "Splits to audit (default: all).")
  app.run(main)
