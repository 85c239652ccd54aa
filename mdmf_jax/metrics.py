"""Detection metrics and conformal calibration (NumPy + scikit-learn, no JAX).

Conventions: label 0 = real, 1 = fake (the positive class); a higher score means "more
likely fake"; an image is predicted fake iff `score > threshold`.

Accuracies, AUROC, AP and TPR@FPR are percentages (0-100), as in paper tables.
"""

from __future__ import annotations

import dataclasses
import math

from absl import logging
import numpy as np
import scipy.stats
from sklearn import metrics as sk_metrics


# --------------------------------------------------------------------------
# Binary detection metrics.
# --------------------------------------------------------------------------


def roc(scores, labels) -> tuple[np.ndarray, np.ndarray, float]:
  """`(fpr, tpr, auroc)`: every ROC operating point and the AUROC in %.

  The points are scikit-learn's `roc_curve(labels, scores, drop_intermediate=False)`
  (fractions in [0, 1], from (0, 0) to (1, 1)); keeping every point matters for
  TPR@FPR, where a dropped collinear point can be the answer. Needs both classes.
  """
  scores, labels = _scores_and_labels(scores, labels)
  if labels.min() == labels.max():
    raise ValueError("an ROC curve needs both real (0) and fake (1) labels")
  fpr, tpr, _ = sk_metrics.roc_curve(labels, scores, drop_intermediate=False)
  return fpr, tpr, 100.0 * float(sk_metrics.roc_auc_score(labels, scores))


def binary_metrics(scores, labels, threshold: float) -> dict:
  """Metrics of one set of images (e.g. one generator's fakes and their reals).

  Percentages (0-100):
    auroc         area under the ROC curve (`sklearn.metrics.roc_auc_score`; ties count 1/2)
    ap            average precision with fake as positive (`average_precision_score`:
                  sum_n (R_n - R_{n-1}) P_n over the score thresholds, no interpolation)
    acc           accuracy over all images at `threshold` (fake iff score > threshold)
    real_acc      fraction of reals with score <= threshold
    fake_acc      fraction of fakes with score > threshold
    oracle_acc    the best `acc` over all thresholds, chosen on these very labels (as
                  UnivFD reports it): an upper bound, not a deployable accuracy
    tpr_at_fpr_1  the largest TPR over ROC points whose FPR <= 1%
    tpr_at_fpr_5  the same at FPR <= 5%
  Other keys:
    oracle_threshold  a threshold reaching oracle_acc: the smallest score value that
                      does (every score above it is called fake), or the float just
                      below the smallest score when calling everything fake is best
    num_real, num_fake  (int) image counts

  A single-class group gives NaN for auroc, ap and both TPR@FPR (undefined), NaN for
  the accuracy of the absent class, and well-defined acc / oracle_acc.
  """
  scores, labels = _scores_and_labels(scores, labels)
  if math.isnan(threshold):
    raise ValueError("threshold must not be NaN")
  is_fake = labels == 1
  predicted_fake = scores > threshold
  num_fake = int(is_fake.sum())
  num_real = scores.size - num_fake
  oracle_acc, oracle_threshold = _oracle_accuracy(scores, labels)
  result = {
      "auroc": math.nan,
      "ap": math.nan,
      "acc": 100.0 * float(np.mean(predicted_fake == is_fake)),
      "real_acc": _percent(~predicted_fake[~is_fake]),
      "fake_acc": _percent(predicted_fake[is_fake]),
      "oracle_acc": oracle_acc,
      "oracle_threshold": oracle_threshold,
      "tpr_at_fpr_1": math.nan,
      "tpr_at_fpr_5": math.nan,
      "num_real": num_real,
      "num_fake": num_fake,
  }
  if num_real and num_fake:
    fpr, tpr, result["auroc"] = roc(scores, labels)
    result["ap"] = 100.0 * float(sk_metrics.average_precision_score(labels, scores))
    result["tpr_at_fpr_1"] = tpr_at_fpr(fpr, tpr, 0.01)
    result["tpr_at_fpr_5"] = tpr_at_fpr(fpr, tpr, 0.05)
  return result


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
  """The largest TPR (in %) among ROC points with FPR <= `max_fpr` (a fraction).

  The ROC curve always contains (0, 0), so the answer exists (possibly 0).
  """
  return 100.0 * float(np.max(tpr[fpr <= max_fpr]))


def _oracle_accuracy(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
  """Best accuracy over every threshold, and the smallest threshold reaching it.

  Rules "fake iff score > t" differ only when t crosses a score value, so the candidates
  are t = each distinct score u_j plus one t below all scores (everything fake). With
  t = u_j, the correct reals are those <= u_j and the correct fakes those > u_j.
  """
  values, inverse = np.unique(scores, return_inverse=True)
  reals_per_value = np.bincount(inverse, weights=labels == 0, minlength=values.size)
  fakes_per_value = np.bincount(inverse, weights=labels == 1, minlength=values.size)
  correct_at_value = np.cumsum(reals_per_value) + (labels.sum() - np.cumsum(fakes_per_value))
  correct = np.concatenate([[labels.sum()], correct_at_value])
  best = int(np.argmax(correct))  # first maximum = smallest threshold
  threshold = np.nextafter(values[0], -np.inf) if best == 0 else values[best - 1]
  return 100.0 * float(correct[best]) / scores.size, float(threshold)


def _percent(hits: np.ndarray) -> float:
  return 100.0 * float(hits.mean()) if hits.size else math.nan


def _scores_and_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels)
  if scores.ndim != 1 or scores.shape != labels.shape or scores.size == 0:
    raise ValueError(f"need non-empty 1-D scores and labels of one shape, got "
                     f"{scores.shape} and {labels.shape}")
  if not np.all(np.isfinite(scores)):
    raise ValueError("scores must be finite")
  if not np.all((labels == 0) | (labels == 1)):
    raise ValueError("labels must be 0 (real) or 1 (fake)")
  return scores, labels.astype(np.int64)


# --------------------------------------------------------------------------
# Conformal calibration on held-out real images.
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Calibration:
  """A conformal threshold at target false-positive rate `alpha`.

  `scores` are the n held-out real calibration scores, sorted ascending (read-only).
  `threshold` = the k-th smallest of them with k = ceil((1 - alpha)(n + 1)), or +inf
  when k > n (then nothing is ever flagged). The constructor checks this, so a
  hand-edited JSON file cannot carry a threshold its scores do not give.
  """
  alpha: float
  threshold: float
  scores: np.ndarray

  def __post_init__(self):
    if not 0.0 < self.alpha < 1.0:
      raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
    scores = np.array(self.scores, np.float64)
    if scores.ndim != 1 or scores.size == 0 or not np.all(np.isfinite(scores)):
      raise ValueError("calibration scores must be a non-empty 1-D array of finite values")
    if np.any(np.diff(scores) < 0):
      raise ValueError("calibration scores must be sorted ascending")
    scores.setflags(write=False)
    object.__setattr__(self, "alpha", float(self.alpha))
    object.__setattr__(self, "threshold", float(self.threshold))
    object.__setattr__(self, "scores", scores)
    expected = _conformal_threshold(scores, self.alpha)
    if self.threshold != expected:
      raise ValueError(f"threshold {self.threshold} is not the conformal threshold "
                       f"{expected} of these scores at alpha={self.alpha}")

  def __eq__(self, other):
    if not isinstance(other, Calibration):
      return NotImplemented
    return (self.alpha == other.alpha and self.threshold == other.threshold
            and np.array_equal(self.scores, other.scores))

  __hash__ = None  # holds an array

  def to_json(self) -> dict:
    """A strict-JSON dict; an infinite threshold is written as the string "inf"."""
    threshold = self.threshold if math.isfinite(self.threshold) else "inf"
    return {"alpha": self.alpha, "threshold": threshold, "scores": self.scores.tolist()}

  @classmethod
  def from_json(cls, d: dict) -> Calibration:
    """Inverse of `to_json` (exact: floats round-trip through JSON); other keys ignored."""
    return cls(alpha=d["alpha"], threshold=float(d["threshold"]), scores=d["scores"])


def calibrate(real_scores, alpha: float) -> Calibration:
  """The conformal threshold at false-positive rate `alpha` from real scores.

  With n calibration scores s_(1) <= ... <= s_(n), the threshold is s_(k),
  k = ceil((1 - alpha)(n + 1)), or +inf if k > n (alpha < 1 / (n + 1)). It is the
  smallest order statistic t such that, for any distribution, a new real score S
  exchangeable with the calibration scores satisfies P(S > t) <= alpha (probability
  over calibration set and S together); "S > t" is exactly "p_value(S) <= alpha" (see
  `p_values`). Without ties P(S > t) = floor(alpha (n + 1)) / (n + 1), which is within
  1 / (n + 1) of alpha.

  k is computed through the p-values' own floating-point division, so that the
  identity with `p_values` holds bit for bit (e.g. alpha = 1/3, n = 2).
  """
  scores = np.sort(np.asarray(real_scores, np.float64).ravel())  # any shape, flattened
  return Calibration(alpha=alpha, threshold=_conformal_threshold(scores, alpha),
                     scores=scores)


def p_values(calibration: Calibration, scores) -> np.ndarray:
  """Conformal p-values p = (1 + #{calibration scores >= score}) / (n + 1).

  For a real score exchangeable with the calibration scores, P(p <= a) <= a for every
  a in [0, 1] (super-uniform), and p <= alpha iff score > calibration.threshold.
  Vectorised: one searchsorted over the sorted calibration scores. Same shape as
  `scores`; NaN scores are rejected.
  """
  scores = _without_nan(scores)
  n = calibration.scores.size
  at_least = n - np.searchsorted(calibration.scores, scores, side="left")
  return _conformal_p(at_least, n)


def empirical_fpr(calibration: Calibration, real_scores) -> float:
  """Fraction (0-1, not %) of a second held-out set of reals with score > threshold."""
  real_scores = _without_nan(real_scores)
  if real_scores.size == 0:
    raise ValueError("empirical_fpr needs at least one real score")
  return float(np.mean(real_scores > calibration.threshold))


def fpr_band(num_calibration: int, alpha: float, level: float = 0.95) -> tuple[float, float]:
  """Where the FPR of one calibrated threshold falls, with probability `level`.

  The guarantee P(S > t) <= alpha averages over calibration sets. One fixed
  set's threshold t = s_(k) has a realised false-positive rate 1 - F(s_(k)),
  which for continuous real scores is Beta(n + 1 - k, k) distributed
  (k = ceil((1 - alpha)(n + 1))): with n = 24 and alpha = 0.05 its central 95%
  is about [0.001, 0.14]; n = 200 narrows it to about [0.024, 0.084]. Empirical
  FPRs outside the band point to reals that are not exchangeable with the
  calibration reals (another source). (0, 0) when k > n (infinite threshold).
  """
  k = math.ceil((1.0 - alpha) * (num_calibration + 1))
  if k > num_calibration:
    return 0.0, 0.0
  tail = (1.0 - level) / 2.0
  beta = scipy.stats.beta(num_calibration + 1 - k, k)
  return float(beta.ppf(tail)), float(beta.ppf(1.0 - tail))


def calibrate_and_check(calibration_scores, check_scores, alpha: float, what: str
                        ) -> tuple[Calibration, dict]:
  """The threshold from one set of reals and its empirical FPR on a second, logged.

  Returns (calibration, report): report is the calibration's JSON plus
  "empirical_fpr" and "num_fpr_check"; `what` names the scores in the log line.
  """
  cal = calibrate(calibration_scores, alpha)
  band = fpr_band(cal.scores.size, alpha)
  report = {**cal.to_json(), "empirical_fpr": empirical_fpr(cal, check_scores),
            "num_fpr_check": int(np.size(check_scores)), "fpr_band_95": list(band)}
  logging.info("%s: threshold %.4g at alpha %.3f; empirical FPR on %d held-out reals: %.3f "
               "(95%% of calibration sets of %d give %.3f-%.3f)", what, cal.threshold, alpha,
               report["num_fpr_check"], report["empirical_fpr"], cal.scores.size, *band)
  return cal, report


def _without_nan(scores) -> np.ndarray:
  """float64 scores; NaN is an error (it would silently never be flagged)."""
  scores = np.asarray(scores, np.float64)
  if np.any(np.isnan(scores)):
    raise ValueError("scores must not be NaN")
  return scores


def _conformal_p(at_least: np.ndarray, n: int) -> np.ndarray:
  """(1 + at_least) / (n + 1) in float64: the one division both p-values and k use."""
  return (1.0 + np.asarray(at_least, np.float64)) / (n + 1.0)


def _conformal_threshold(sorted_scores: np.ndarray, alpha: float) -> float:
  """s_(k) with k = ceil((1 - alpha)(n + 1)), +inf if k > n (see `calibrate`).

  A score is flagged iff at most g_max calibration scores are >= it, g_max being the
  largest count g with (1 + g) / (n + 1) <= alpha; that is iff the score exceeds the
  (g_max + 1)-th largest calibration score, s_(n - g_max). Mathematically
  n - g_max = n - floor(alpha (n + 1)) + 1 = ceil((1 - alpha)(n + 1)).
  """
  n = sorted_scores.size
  num_flaggable_counts = int(np.count_nonzero(_conformal_p(np.arange(n + 1), n) <= alpha))
  if num_flaggable_counts == 0:
    return math.inf
  g_max = num_flaggable_counts - 1
  return float(sorted_scores[n - g_max - 1])
