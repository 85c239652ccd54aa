"""reports.py: tables parsed back from Markdown/CSV/JSON, the average row, PNG plots."""

import csv
import json
import math

import matplotlib.figure
import numpy as np
from PIL import Image
import pytest
import sklearn.metrics

from mdmf_jax import reports

ROWS = [
    {"generator": "tconv", "auroc": 95.6549, "ap": np.float32(97.0), "num_real": 100,
     "oracle_threshold": 0.0042},
    {"generator": "a|b", "auroc": math.nan, "ap": 50.126, "num_real": np.int64(3),
     "oracle_threshold": 0.5},
]


def test_write_table_markdown_text(tmp_path):
  markdown = reports.write_table(ROWS, str(tmp_path / "main"), "Main table")
  assert markdown == (
      "### Main table\n"
      "\n"
      "| generator | auroc | ap | num_real | oracle_threshold |\n"
      "| --- | ---: | ---: | ---: | ---: |\n"
      "| tconv | 95.65 | 97.00 | 100 | 0.0042 |\n"
      "| a\\|b | nan | 50.13 | 3 | 0.50 |\n")
  assert (tmp_path / "main.md").read_text() == markdown


def test_write_table_csv_and_json_round_trip_at_full_precision(tmp_path):
  reports.write_table(ROWS, str(tmp_path / "sub" / "dir" / "main"), "Main table")
  with open(tmp_path / "sub" / "dir" / "main.csv", newline="") as f:
    parsed_csv = list(csv.DictReader(f))
  with open(tmp_path / "sub" / "dir" / "main.json") as f:
    parsed_json = json.load(f)  # strict JSON: NaN must have become null
  assert parsed_json["title"] == "Main table"
  assert parsed_json["columns"] == list(ROWS[0])
  assert [list(row) for row in parsed_csv] == [list(ROWS[0])] * 2
  for original, from_csv, from_json in zip(ROWS, parsed_csv, parsed_json["rows"]):
    assert list(from_json) == list(original)
    assert from_csv["generator"] == from_json["generator"] == original["generator"]
    for column in ("auroc", "ap", "num_real", "oracle_threshold"):
      expected = float(original[column])
      if math.isnan(expected):
        assert from_csv[column] == "nan" and from_json[column] is None
      else:
        assert float(from_csv[column]) == expected and from_json[column] == expected
  assert isinstance(parsed_json["rows"][1]["num_real"], int)


def test_write_table_rejects_ragged_or_empty_rows(tmp_path):
  with pytest.raises(ValueError, match="row 1"):
    reports.write_table([{"a": 1, "b": 2}, {"a": 1}], str(tmp_path / "t"), "t")
  with pytest.raises(ValueError):
    reports.write_table([], str(tmp_path / "t"), "t")


def test_average_row_is_the_mean_and_a_missing_value_makes_it_nan_and_named():
  rows = [
      {"generator": "g0", "auroc": 90.0, "ap": 70.0, "num_real": 10, "note": None},
      {"generator": "g1", "auroc": math.nan, "ap": 60.0, "num_real": 20, "note": 4.0},
      {"generator": "g2", "auroc": np.float64(80.0), "ap": 50.0, "num_real": 40,
       "note": 2.0},
  ]
  average = reports.average_row(rows)
  assert list(average) == list(rows[0])
  assert math.isnan(average["auroc"])  # g1 does not silently drop out
  assert math.isnan(average["note"])  # nor does g0's missing value
  assert average["ap"] == 60.0
  assert average["num_real"] == pytest.approx(70 / 3)
  assert average["generator"] == "average (NaN in: g0 [note]; g1 [auroc])"
  defined = [dict(row, note=1.0) for row in rows if row["generator"] != "g1"]
  mean = reports.average_row(defined, name="mean")
  assert mean["generator"] == "mean" and mean["auroc"] == 85.0 and mean["note"] == 1.0


def test_average_row_in_a_written_table(tmp_path):
  rows = [{"method": "mdmf", "auroc": 90.0}, {"method": "mdmf", "auroc": 91.0}]
  markdown = reports.write_table(rows + [reports.average_row(rows)], str(tmp_path / "t"), "t")
  assert markdown.splitlines()[-1] == "| average | 90.50 |"


# --------------------------------------------------------------------------
# Plots.
# --------------------------------------------------------------------------


def _png_size(path):
  assert path.stat().st_size > 0
  with Image.open(path) as image:
    assert image.format == "PNG"
    return image.size


def _assert_aspect(path, width_in, height_in):
  width, height = _png_size(path)
  assert width / height == pytest.approx(width_in / height_in, rel=0.02)


def _scores_and_labels(rng, n, shift):
  labels = rng.integers(0, 2, n)
  return rng.normal(labels * shift, 1.0), labels


@pytest.fixture
def saved_figures(monkeypatch):
  """The matplotlib figures the plots save, to read back what was drawn."""
  figures, savefig = [], matplotlib.figure.Figure.savefig

  def recording(figure, *args, **kwargs):
    figures.append(figure)
    return savefig(figure, *args, **kwargs)

  monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording)
  return figures


def _legend(figure):
  return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_plot_roc(tmp_path, saved_figures):
  rng = np.random.default_rng(0)
  curves = {"tconv": _scores_and_labels(rng, 200, 2.0), "ddpm": _scores_and_labels(rng, 200, 0.5),
            "only reals": (rng.normal(size=5), np.zeros(5, int))}
  reports.plot_roc(curves, str(tmp_path / "plots" / "roc.png"))
  _assert_aspect(tmp_path / "plots" / "roc.png", 6.5, 6.0)
  (figure,) = saved_figures
  aurocs = {name: 100 * sklearn.metrics.roc_auc_score(labels, scores)
            for name, (scores, labels) in curves.items() if name != "only reals"}
  assert _legend(figure) == ["chance", f"tconv (AUROC {aurocs['tconv']:.2f})",
                             f"ddpm (AUROC {aurocs['ddpm']:.2f})", "only reals (one class: no ROC)"]
  for line, name in zip(figure.axes[0].get_lines()[1:3], ("tconv", "ddpm")):
    fpr, tpr = line.get_xdata(), line.get_ydata()  # the drawn curve encloses the AUROC
    assert np.all(np.diff(fpr) >= 0) and (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert 100 * np.trapezoid(tpr, fpr) == pytest.approx(aurocs[name], abs=1e-9)
  with pytest.raises(ValueError):
    reports.plot_roc({}, str(tmp_path / "empty.png"))


@pytest.mark.parametrize("threshold", [None, 0.7, math.inf])
def test_plot_score_histograms(tmp_path, threshold, saved_figures):
  rng = np.random.default_rng(1)
  groups = {"real": rng.normal(size=300), "fake: tconv": rng.normal(2.0, 1.0, 150),
            "fake: none": np.zeros(0)}
  reports.plot_score_histograms(groups, str(tmp_path / "hist.png"), threshold=threshold)
  _assert_aspect(tmp_path / "hist.png", 7.5, 4.5)
  (figure,) = saved_figures
  legend = _legend(figure)
  assert legend[:3] == ["real (n=300)", "fake: tconv (n=150)", "fake: none (n=0)"]
  ax = figure.axes[0]
  for patch, name in zip(ax.patches, ("real", "fake: tconv")):  # densities: unit area
    vertices = patch.get_path().vertices
    assert abs(np.trapezoid(vertices[:, 1], vertices[:, 0])) == pytest.approx(1.0, rel=1e-6), name
  threshold_lines = [line for line in ax.get_lines() if list(line.get_xdata()) == [0.7, 0.7]]
  if threshold is None:
    assert len(legend) == 3
  elif math.isinf(threshold):
    assert legend[3] == "threshold +inf (nothing flagged)" and not threshold_lines
  else:
    assert legend[3] == "threshold 0.7" and len(threshold_lines) == 1


def test_plot_score_histograms_rejects_non_finite_scores(tmp_path):
  with pytest.raises(ValueError):
    reports.plot_score_histograms({"real": [0.1, math.nan]}, str(tmp_path / "hist.png"))


def test_plot_robustness(tmp_path, saved_figures):
  results = {"mdmf": {95: 96.1, 50: 90.2, 75: 93.0}, "univfd": {95: 85.0, 75: 80.1, 50: 70.3}}
  reports.plot_robustness(results, str(tmp_path / "jpeg.png"), "JPEG quality", "AUROC (%)")
  _assert_aspect(tmp_path / "jpeg.png", 6.5, 4.5)
  (figure,) = saved_figures
  assert _legend(figure) == ["mdmf", "univfd"]
  for line, name in zip(figure.axes[0].get_lines(), results):  # in strength order
    strengths = sorted(results[name])
    assert list(line.get_xdata()) == strengths
    assert list(line.get_ydata()) == [results[name][q] for q in strengths]


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_plot_heatmap_non_square_image(tmp_path, interpolation):
  rng = np.random.default_rng(2)
  image = rng.uniform(size=(48, 96, 3)).astype(np.float32)
  heat = rng.normal(size=(3, 6))
  heat[0, 0] = math.nan  # e.g. a masked patch: drawn transparent
  reports.plot_heatmap(image, heat, str(tmp_path / "heat.png"), title="fake: score 0.3",
                       interpolation=interpolation)
  _assert_aspect(tmp_path / "heat.png", *reports.heatmap_figure_size(48, 96))


def test_plot_heatmap_colours_follow_the_witness_sign(tmp_path):
  image = np.full((32, 32, 3), 0.5)
  redness = {}
  for sign in (1.0, -1.0):
    path = tmp_path / f"heat_{sign}.png"
    reports.plot_heatmap(image, np.full((4, 4), sign), str(path))
    with Image.open(path) as png:
      pixels = np.asarray(png.convert("RGB"), np.float64)
    redness[sign] = np.mean(pixels[..., 0] - pixels[..., 2])
  assert redness[1.0] > redness[-1.0] + 5  # positive = unlike real = red


def test_plot_heatmap_all_zero_heat(tmp_path):
  reports.plot_heatmap(np.zeros((28, 28, 3)), np.zeros((2, 2)), str(tmp_path / "zero.png"))
  _assert_aspect(tmp_path / "zero.png", *reports.heatmap_figure_size(28, 28))


@pytest.mark.parametrize("image, heat, interpolation", [
    (np.full((8, 8, 3), 255.0), np.zeros((2, 2)), "nearest"),  # a 0-255 image
    (np.zeros((8, 8)), np.zeros((2, 2)), "nearest"),
    (np.zeros((8, 8, 3)), np.zeros(4), "nearest"),
    (np.zeros((8, 8, 3)), np.zeros((2, 2)), "bicubic"),
])
def test_plot_heatmap_rejects_bad_input(tmp_path, image, heat, interpolation):
  with pytest.raises(ValueError):
    reports.plot_heatmap(image, heat, str(tmp_path / "bad.png"), interpolation=interpolation)


def test_plots_leave_no_open_pyplot_figures(tmp_path):
  plt = pytest.importorskip("matplotlib.pyplot")
  before = plt.get_fignums()
  reports.plot_robustness({"a": {1: 1.0}}, str(tmp_path / "r.png"), "x", "y")
  reports.plot_heatmap(np.zeros((8, 8, 3)), np.ones((2, 2)), str(tmp_path / "h.png"))
  assert plt.get_fignums() == before
