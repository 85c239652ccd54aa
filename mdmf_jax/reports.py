"""Result tables (Markdown, CSV, JSON) and PNG plots of an evaluation.

Plots are drawn on `matplotlib.figure.Figure` objects and saved through the Agg
renderer. Such figures are never registered with pyplot: nothing needs closing, no
display is needed, and importing this module leaves the user's pyplot backend (e.g. a
notebook's inline backend) untouched, which a global `matplotlib.use("Agg")` would not.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers

from etils import epath
from matplotlib import colors
from matplotlib import patches
from matplotlib.figure import Figure
import numpy as np

from mdmf_jax import metrics

DPI = 100  # PNG pixels = figure inches * DPI
_HEATMAP_HEIGHT_IN = 4.5
_HEATMAP_COLORBAR_IN = 1.5  # extra width for the colour bar and its label


# --------------------------------------------------------------------------
# Tables.
# --------------------------------------------------------------------------


def write_table(rows: list[dict], path_stem: str, title: str) -> str:
  """Writes `path_stem`.md, .csv and .json; returns the Markdown text.

  Columns are the keys of the first row, in order; every row must have exactly these
  keys. Markdown (for reading and pasting): a `### title` heading, numbers right-aligned
  with 2 decimals (a nonzero value that would read 0.00 keeps 2 significant digits
  instead, e.g. 0.0042), integers as integers, NaN as "nan". CSV: full precision
  (floats as Python's shortest round-trip repr; NaN as "nan", empty for None). JSON:
  `{"title", "columns", "rows"}`, full precision, strict JSON (non-finite numbers and
  None become null).
  """
  columns = _columns(rows)
  rows = [{c: _plain(row[c]) for c in columns} for row in rows]
  numeric = {c: _is_numeric_column([row[c] for row in rows]) for c in columns}
  lines = [f"### {title}", "",
           "| " + " | ".join(_escape(c) for c in columns) + " |",
           "| " + " | ".join("---:" if numeric[c] else "---" for c in columns) + " |"]
  lines += ["| " + " | ".join(_markdown_cell(row[c]) for c in columns) + " |" for row in rows]
  markdown = "\n".join(lines) + "\n"

  _make_parent_directory(path_stem)
  with epath.Path(f"{path_stem}.md").open("w") as f:
    f.write(markdown)
  table = io.StringIO(newline="")  # csv wants newline="", which cloud paths' open() lacks
  writer = csv.writer(table)
  writer.writerow(columns)
  writer.writerows([["" if row[c] is None else row[c] for c in columns] for row in rows])
  epath.Path(f"{path_stem}.csv").write_text(table.getvalue())
  with epath.Path(f"{path_stem}.json").open("w") as f:
    json.dump({"title": title, "columns": columns,
               "rows": [{c: _json_value(row[c]) for c in columns} for row in rows]},
              f, indent=2, allow_nan=False)
    f.write("\n")
  return markdown


def average_row(rows: list[dict], name: str = "average") -> dict:
  """One row with the mean of every numeric column over `rows`; a missing value shows.

  A column is numeric when all its values are real numbers (not bools) or None. A
  NaN or None in a numeric column makes that column's average NaN: a generator whose
  AUROC is undefined (e.g. no reals) must never silently drop out of the mean. The
  other columns get `name`, followed by the rows with a missing value, named by their
  first column, e.g. "average (NaN in: g1 [auroc])".
  """
  columns = _columns(rows)
  average, missing = {}, {}
  for column in columns:
    values = [_plain(row[column]) for row in rows]
    if not _is_numeric_column(values):
      continue
    array = np.array([math.nan if v is None else v for v in values], np.float64)
    average[column] = float(np.mean(array))
    for i in np.flatnonzero(np.isnan(array)):
      missing.setdefault(int(i), []).append(column)
  label = name
  if missing:
    label += " (NaN in: " + "; ".join(f"{_plain(rows[i][columns[0]])} [{', '.join(cols)}]"
                                     for i, cols in sorted(missing.items())) + ")"
  return {c: average.get(c, label) for c in columns}


def _columns(rows: list[dict]) -> list[str]:
  if not rows:
    raise ValueError("a table needs at least one row")
  columns = list(rows[0])
  for i, row in enumerate(rows):
    if set(row) != set(columns):
      raise ValueError(f"row {i} has columns {sorted(row)}, the first row {sorted(columns)}")
  return columns


def _plain(value):
  """NumPy scalars -> Python scalars (so that JSON, CSV and type checks see one kind)."""
  return value.item() if isinstance(value, np.generic) else value


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_numeric_column(values) -> bool:
  return all(v is None or _is_number(v) for v in values)


def _format_number(value) -> str:
  if isinstance(value, numbers.Integral):
    return str(value)
  text = f"{value:.2f}"
  if value != 0 and math.isfinite(value) and float(text) == 0:
    return f"{value:.2g}"
  return text


def _markdown_cell(value) -> str:
  if value is None:
    return ""
  return _format_number(value) if _is_number(value) else _escape(str(value))


def _escape(text: str) -> str:
  return str(text).replace("|", "\\|")


def _json_value(value):
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


# --------------------------------------------------------------------------
# Plots.
# --------------------------------------------------------------------------


def plot_roc(curves: dict, path: str, title: str = "ROC curves") -> None:
  """ROC curve per entry `name: (scores, labels)` (label 1 = fake), AUROC (%) in the legend.

  A single-class entry has no ROC curve; it gets a legend entry saying so.
  """
  if not curves:
    raise ValueError("plot_roc needs at least one curve")
  fig = _figure(6.5, 6.0)
  ax = fig.subplots()
  ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
  for name, (scores, labels) in curves.items():
    labels = np.asarray(labels)
    if labels.size and labels.min() != labels.max():
      fpr, tpr, auroc = metrics.roc(scores, labels)
      ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUROC {auroc:.2f})")
    else:
      ax.plot([], [], label=f"{name} (one class: no ROC)")
  ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal", title=title,
         xlabel="false positive rate (reals flagged)", ylabel="true positive rate (fakes flagged)")
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right", fontsize="small")
  _save(fig, path)


def plot_score_histograms(groups: dict, path: str, threshold: float | None = None,
                          title: str = "Score distributions") -> None:
  """Overlaid density histograms of score groups on shared bins, plus the threshold line.

  An infinite threshold (alpha below 1 / (n_cal + 1): nothing flagged) is named in the
  legend instead of drawn.
  """
  values = {name: np.asarray(scores, np.float64).ravel() for name, scores in groups.items()}
  pooled = np.concatenate(list(values.values())) if values else np.zeros(0)
  if pooled.size == 0:
    raise ValueError("plot_score_histograms needs at least one score")
  if not np.all(np.isfinite(pooled)):
    raise ValueError("scores must be finite")
  bins = np.histogram_bin_edges(pooled, bins="auto")
  if bins.size > 101:  # "auto" gives thousands of bins for large, tight groups
    bins = np.linspace(pooled.min(), pooled.max(), 101)
  fig = _figure(7.5, 4.5)
  ax = fig.subplots()
  for name, scores in values.items():
    label = f"{name} (n={scores.size})"
    if scores.size:
      ax.hist(scores, bins=bins, density=True, histtype="stepfilled", alpha=0.35,
              edgecolor="black", linewidth=0.4, label=label)
    else:
      ax.plot([], [], label=label)
  if threshold is not None:
    if math.isfinite(threshold):
      ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    else:
      ax.plot([], [], color="black", linestyle="--", label="threshold +inf (nothing flagged)")
  ax.set(title=title, xlabel="score (higher = more likely generated)", ylabel="density")
  ax.legend(fontsize="small")
  _save(fig, path)


def plot_robustness(results: dict, path: str, xlabel: str, ylabel: str,
                    title: str | None = None) -> None:
  """One line per entry `name: {strength: value}` over the perturbation strength."""
  if not results:
    raise ValueError("plot_robustness needs at least one line")
  fig = _figure(6.5, 4.5)
  ax = fig.subplots()
  for name, curve in results.items():
    strengths = sorted(curve)
    ax.plot(strengths, [curve[s] for s in strengths], marker="o", label=name)
  ax.set(title=title or f"{ylabel} vs {xlabel}", xlabel=xlabel, ylabel=ylabel)
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small")
  _save(fig, path)


def plot_heatmap(image, heat, path: str, title: str = "",
                 interpolation: str = "nearest") -> None:
  """`image` (H, W, 3) in [0, 1] under the (h, w) patch heat map, upsampled to H x W.

  `heat` holds MMD witness values (> 0: the patch looks unlike real patches). The
  colour scale is symmetric about 0 (blue < 0 < red) so the sign reads directly.
  `interpolation` is "nearest" (one flat block per patch) or "bilinear" (smooth); both
  stretch the patch grid exactly over the image. NaN heat values are left transparent.
  """
  if interpolation not in ("nearest", "bilinear"):
    raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
  image = np.asarray(image, np.float64)
  heat = np.asarray(heat, np.float64)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"image must be (H, W, 3), got {image.shape}")
  if heat.ndim != 2:
    raise ValueError(f"heat must be (h, w), got {heat.shape}")
  if not np.all((image >= -1e-6) & (image <= 1 + 1e-6)):  # rejects NaN, and 0-255 images
    raise ValueError("image values must be in [0, 1]")
  height, width = image.shape[:2]
  limit = np.nanmax(np.abs(heat)) if np.any(np.isfinite(heat)) else 0.0
  limit = limit if limit > 0 and math.isfinite(limit) else 1.0
  extent = (-0.5, width - 0.5, height - 0.5, -0.5)  # pixel centres, as imshow(image) has

  fig = _figure(*heatmap_figure_size(height, width))
  ax = fig.subplots()
  ax.imshow(np.clip(image, 0, 1), extent=extent)
  overlay = ax.imshow(heat, cmap="RdBu_r", norm=colors.Normalize(-limit, limit), alpha=0.5,
                      interpolation=interpolation, extent=extent)
  fig.colorbar(overlay, ax=ax, label="MMD witness (> 0: unlike real patches)")
  ax.set(title=title or "patch witness heat map", xlabel="x (pixels)", ylabel="y (pixels)")
  _save(fig, path)


def plot_matrix(values, row_labels: list[str], column_labels: list[str], path: str,
                title: str = "", vmin: float | None = None, vmax: float | None = None,
                mark_above: float | None = None) -> None:
  """A (rows, columns) matrix as coloured cells, each annotated with its value.

  Values above `mark_above` get a "!" and a black frame; NaN cells are blank ("n/a").
  """
  values = np.asarray(values, np.float64)
  if values.shape != (len(row_labels), len(column_labels)):
    raise ValueError(f"values {values.shape} vs {len(row_labels)} row and "
                     f"{len(column_labels)} column labels")
  fig = _figure(1.0 + 0.75 * len(column_labels), 1.6 + 0.4 * len(row_labels))
  ax = fig.subplots()
  image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=vmin, vmax=vmax,
                    aspect="auto")
  for (i, j), value in np.ndenumerate(values):
    marked = mark_above is not None and value > mark_above
    text = "n/a" if math.isnan(value) else f"{value:.0f}" + ("!" if marked else "")
    ax.text(j, i, text, ha="center", va="center", fontsize="small",
            color="black" if marked else "white")
    if marked:
      ax.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, linewidth=2))
  ax.set_xticks(range(len(column_labels)), column_labels, rotation=45, ha="right")
  ax.set_yticks(range(len(row_labels)), row_labels)
  ax.set_title(title)
  fig.colorbar(image, ax=ax)
  _save(fig, path)


def heatmap_figure_size(height: int, width: int) -> tuple[float, float]:
  """(width, height) in inches of `plot_heatmap`'s figure: the image's aspect plus a bar."""
  return (_HEATMAP_HEIGHT_IN * width / height + _HEATMAP_COLORBAR_IN, _HEATMAP_HEIGHT_IN)


def _figure(width_in: float, height_in: float) -> Figure:
  return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: str) -> None:
  _make_parent_directory(path)
  with epath.Path(path).open("wb") as f:  # local or a cloud URI (gs://...)
    fig.savefig(f, dpi=DPI, format="png")


def _make_parent_directory(path) -> None:
  epath.Path(path).parent.mkdir(parents=True, exist_ok=True)
