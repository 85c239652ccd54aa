"""metrics.py against scikit-learn, hand-computed values, brute-force loops and simulation."""

from fractions import Fraction
import json
import math

import numpy as np
import pytest
import scipy.stats
from sklearn import metrics as sk_metrics

from mdmf_jax import metrics


def _tied_scores(rng, n, num_values=12):
  """Scores on a coarse grid (many ties), labels 0/1, fakes shifted up."""
  labels = rng.integers(0, 2, n)
  scores = np.round(rng.normal(labels * 0.8, 1.0) * num_values / 4) / (num_values / 4)
  return scores, labels


# --------------------------------------------------------------------------
# Binary metrics.
# --------------------------------------------------------------------------


def test_binary_metrics_by_hand_with_ties():
  # Fakes 0.5 and 0.9, reals 0.2 and 0.5 (a real/fake tie at 0.5).
  m = metrics.binary_metrics([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1], threshold=0.5)
  # AUROC: fake/real pairs: 0.5>0.2 (1), 0.5=0.5 (1/2), 0.9>both (2): 3.5 / 4.
  assert m["auroc"] == pytest.approx(87.5)
  # AP: at 0.9 (R=1/2, P=1), at 0.5 (R=1, P=2/3): 1/2 * 1 + 1/2 * 2/3.
  assert m["ap"] == pytest.approx(100 * 5 / 6)
  # Only 0.9 is > 0.5: both reals right, the fake at 0.5 wrong.
  assert (m["acc"], m["real_acc"], m["fake_acc"]) == (75.0, 100.0, 50.0)
  # Thresholds below 0.2 / at 0.2 / 0.5 / 0.9 give 50 / 75 / 75 / 50 %: the first 75 wins.
  assert (m["oracle_acc"], m["oracle_threshold"]) == (75.0, 0.2)
  # ROC points (0,0), (0,1/2), (1/2,1), (1,1): at FPR 0 the TPR is 1/2.
  assert (m["tpr_at_fpr_1"], m["tpr_at_fpr_5"]) == (50.0, 50.0)
  assert (m["num_real"], m["num_fake"]) == (2, 2)


def test_binary_metrics_match_sklearn_on_tied_scores():
  rng = np.random.default_rng(0)
  scores, labels = _tied_scores(rng, 500)
  threshold = 0.5
  m = metrics.binary_metrics(scores, labels, threshold)
  assert m["auroc"] == pytest.approx(100 * sk_metrics.roc_auc_score(labels, scores), abs=1e-12)
  assert m["ap"] == pytest.approx(
      100 * sk_metrics.average_precision_score(labels, scores), abs=1e-12)
  predicted = (scores > threshold).astype(int)
  assert m["acc"] == pytest.approx(100 * sk_metrics.accuracy_score(labels, predicted))
  # recall_score of each class = that class's accuracy.
  assert m["real_acc"] == pytest.approx(100 * sk_metrics.recall_score(labels, predicted,
                                                                      pos_label=0))
  assert m["fake_acc"] == pytest.approx(100 * sk_metrics.recall_score(labels, predicted))
  assert (m["num_real"], m["num_fake"]) == (int((labels == 0).sum()), int(labels.sum()))


def _brute_force_oracle(scores, labels):
  """Accuracy of "fake iff score > t" for t below all scores and at every score."""
  candidates = [scores.min() - 1.0] + sorted(set(scores.tolist()))
  accuracies = [np.mean((scores > t) == (labels == 1)) for t in candidates]
  best = max(accuracies)
  return 100 * best, candidates[accuracies.index(best)]


@pytest.mark.parametrize("seed", range(5))
def test_oracle_accuracy_matches_brute_force(seed):
  rng = np.random.default_rng(seed)
  scores, labels = _tied_scores(rng, 80 + 40 * seed)
  m = metrics.binary_metrics(scores, labels, 0.0)
  best_acc, best_threshold = _brute_force_oracle(scores, labels)
  assert m["oracle_acc"] == pytest.approx(best_acc, abs=1e-12)
  if best_threshold >= scores.min():
    assert m["oracle_threshold"] == best_threshold
  # The reported threshold reaches the oracle accuracy itself.
  assert metrics.binary_metrics(scores, labels, m["oracle_threshold"])["acc"] == pytest.approx(
      m["oracle_acc"], abs=1e-12)


def test_oracle_threshold_below_all_scores_when_calling_everything_fake_is_best():
  scores, labels = np.array([0.1, 0.2, 0.3, 0.4]), np.array([1, 1, 1, 0])
  m = metrics.binary_metrics(scores, labels, 1.0)
  assert m["oracle_acc"] == 75.0
  assert m["oracle_threshold"] < 0.1
  assert metrics.binary_metrics(scores, labels, m["oracle_threshold"])["acc"] == 75.0


def _brute_force_tpr_at_fpr(scores, labels, max_fpr):
  """Every rule "fake iff score >= t" (t at each score and above all), best TPR allowed."""
  best = 0.0
  for t in list(np.unique(scores)) + [np.inf]:
    flagged = scores >= t
    fpr = flagged[labels == 0].mean()
    if fpr <= max_fpr:
      best = max(best, flagged[labels == 1].mean())
  return 100 * best


@pytest.mark.parametrize("seed", range(5))
def test_tpr_at_fpr_matches_brute_force(seed):
  rng = np.random.default_rng(100 + seed)
  scores, labels = _tied_scores(rng, 300, num_values=40)
  m = metrics.binary_metrics(scores, labels, 0.0)
  assert m["tpr_at_fpr_1"] == pytest.approx(_brute_force_tpr_at_fpr(scores, labels, 0.01))
  assert m["tpr_at_fpr_5"] == pytest.approx(_brute_force_tpr_at_fpr(scores, labels, 0.05))


def test_tpr_at_fpr_keeps_collinear_roc_points():
  # Each score value holds one real and one fake: the ROC points (k/200, k/200) lie on
  # the diagonal, and roc_curve's default drop_intermediate would drop (0.01, 0.01).
  scores = np.repeat(np.arange(200.0), 2)
  labels = np.tile([0, 1], 200)
  _, dropped_tpr, _ = sk_metrics.roc_curve(labels, scores)
  assert dropped_tpr.size < 50  # the trap is real
  m = metrics.binary_metrics(scores, labels, 0.0)
  assert m["tpr_at_fpr_1"] == pytest.approx(1.0)
  assert m["tpr_at_fpr_5"] == pytest.approx(5.0)


def test_perfect_separation():
  m = metrics.binary_metrics([0.0, 0.1, 0.9, 1.0], [0, 0, 1, 1], 0.5)
  for key in ("auroc", "ap", "acc", "real_acc", "fake_acc", "oracle_acc", "tpr_at_fpr_1",
              "tpr_at_fpr_5"):
    assert m[key] == 100.0, key
  assert m["oracle_threshold"] == 0.1


def test_only_reals():
  m = metrics.binary_metrics([0.1, 0.3, 0.7], [0, 0, 0], 0.5)
  for key in ("auroc", "ap", "fake_acc", "tpr_at_fpr_1", "tpr_at_fpr_5"):
    assert math.isnan(m[key]), key
  assert m["acc"] == m["real_acc"] == pytest.approx(200 / 3)
  assert (m["oracle_acc"], m["oracle_threshold"]) == (100.0, 0.7)
  assert (m["num_real"], m["num_fake"]) == (3, 0)


def test_only_fakes():
  m = metrics.binary_metrics([0.1, 0.3, 0.7], [1, 1, 1], 0.2)
  for key in ("auroc", "ap", "real_acc", "tpr_at_fpr_1", "tpr_at_fpr_5"):
    assert math.isnan(m[key]), key
  assert m["acc"] == m["fake_acc"] == pytest.approx(200 / 3)
  assert m["oracle_acc"] == 100.0 and m["oracle_threshold"] < 0.1


def test_infinite_threshold_flags_nothing():
  m = metrics.binary_metrics([0.1, 5.0, 9.0], [0, 1, 1], math.inf)
  assert (m["real_acc"], m["fake_acc"]) == (100.0, 0.0)


@pytest.mark.parametrize("scores, labels", [
    ([0.1, np.nan], [0, 1]),
    ([0.1, np.inf], [0, 1]),
    ([0.1, 0.2], [0, 2]),
    ([0.1, 0.2, 0.3], [0, 1]),
    ([], []),
])
def test_binary_metrics_rejects_bad_input(scores, labels):
  with pytest.raises(ValueError):
    metrics.binary_metrics(scores, labels, 0.0)


def test_binary_metrics_rejects_nan_threshold():
  with pytest.raises(ValueError, match="threshold"):
    metrics.binary_metrics([0.1, 0.2], [0, 1], math.nan)


# --------------------------------------------------------------------------
# Conformal calibration.
# --------------------------------------------------------------------------


def _binomial_slack(p, trials, num_sd=4.0):
  return num_sd * math.sqrt(p * (1 - p) / trials)


def test_conformal_false_positive_rate_on_exchangeable_reals():
  rng = np.random.default_rng(1)
  trials, n_cal, alpha = 2000, 200, 0.1
  draws = rng.gamma(2.0, 1.0, size=(trials, n_cal + 1))  # continuous: no ties
  flagged = np.array([
      metrics.p_values(metrics.calibrate(row[:n_cal], alpha), row[n_cal]) <= alpha
      for row in draws])
  # Without ties P(flag) = floor(alpha (n + 1)) / (n + 1) = 20 / 201, just below alpha.
  exact = math.floor(alpha * (n_cal + 1)) / (n_cal + 1)
  assert abs(flagged.mean() - exact) <= _binomial_slack(exact, trials)
  assert flagged.mean() <= alpha + _binomial_slack(alpha, trials)


@pytest.mark.parametrize("num_values", [None, 5])  # continuous, and heavily tied
def test_p_values_are_super_uniform(num_values):
  rng = np.random.default_rng(2)
  trials, n_cal = 2000, 50
  draws = rng.normal(size=(trials, n_cal + 1))
  if num_values:
    draws = rng.integers(0, num_values, size=(trials, n_cal + 1)).astype(float)
  p = np.array([metrics.p_values(metrics.calibrate(row[:n_cal], 0.1), row[n_cal])
                for row in draws])
  for level in (0.02, 0.05, 0.1, 0.25, 0.5, 0.9):
    assert np.mean(p <= level) <= level + _binomial_slack(level, trials), level
  if num_values is None:  # exactly uniform on {1, ..., n + 1} / (n + 1) without ties
    assert abs(np.mean(p <= 0.5) - 25 / 51) <= _binomial_slack(0.5, trials)


def test_p_values_match_definition_by_loop():
  rng = np.random.default_rng(3)
  cal_scores = np.round(rng.normal(size=60), 1)  # ties
  calibration = metrics.calibrate(cal_scores, 0.05)
  queries = np.concatenate([cal_scores, rng.normal(size=40), [-np.inf, np.inf]])
  expected = [(1 + np.sum(cal_scores >= s)) / (cal_scores.size + 1) for s in queries]
  np.testing.assert_array_equal(metrics.p_values(calibration, queries), expected)
  assert metrics.p_values(calibration, queries.reshape(2, -1)).shape == (2, 51)


def test_flagged_by_p_value_iff_above_threshold():
  rng = np.random.default_rng(4)
  for n in (1, 2, 3, 7, 19, 20, 99, 200):
    cal_scores = np.round(rng.normal(size=n), 1)
    # Alphas on the boundaries j / (n + 1), where rounding could split the two rules.
    alphas = [float(Fraction(j, n + 1)) for j in range(1, n + 1)]
    alphas += [0.001, 0.01, 0.05, 0.1, 1 / 3, 0.5, 0.999]
    queries = np.concatenate([cal_scores, cal_scores + 0.05, cal_scores - 0.05,
                              [cal_scores.min() - 1, cal_scores.max() + 1]])
    for alpha in alphas:
      calibration = metrics.calibrate(cal_scores, alpha)
      by_p = metrics.p_values(calibration, queries) <= alpha
      np.testing.assert_array_equal(by_p, queries > calibration.threshold,
                                    err_msg=f"n={n} alpha={alpha}")


def test_threshold_is_kth_smallest_with_exact_k():
  rng = np.random.default_rng(5)
  for n in range(1, 60):
    cal_scores = rng.normal(size=n)
    ordered = np.sort(cal_scores)
    # Boundary alphas j / (n + 1) given as the float nearest the intended fraction, and
    # alphas between boundaries (where the float's error cannot move the ceiling).
    fractions = [Fraction(j, n + 1) for j in range(1, n + 1)]
    fractions += [Fraction(2 * j + 1, 2 * (n + 1)) for j in range(n)]
    for alpha in fractions:
      k = math.ceil((1 - alpha) * (n + 1))
      expected = ordered[k - 1] if k <= n else math.inf
      assert metrics.calibrate(cal_scores, float(alpha)).threshold == expected, (n, alpha)


def test_alpha_too_small_flags_nothing():
  calibration = metrics.calibrate(np.arange(10.0), 0.05)  # 0.05 < 1 / 11
  assert calibration.threshold == math.inf
  huge = np.array([1e6, 1e300])
  assert not np.any(metrics.p_values(calibration, huge) <= 0.05)
  assert metrics.empirical_fpr(calibration, huge) == 0.0
  restored = metrics.Calibration.from_json(
      json.loads(json.dumps(calibration.to_json(), allow_nan=False)))
  assert restored == calibration and restored.threshold == math.inf


def test_empirical_fpr():
  calibration = metrics.calibrate(np.arange(1.0, 20.0), 0.05)  # k = 19: threshold 19
  assert calibration.threshold == 19.0
  assert metrics.empirical_fpr(calibration, [1.0, 19.0, 19.5, 30.0]) == 0.5
  with pytest.raises(ValueError):
    metrics.empirical_fpr(calibration, [])
  with pytest.raises(ValueError):
    metrics.empirical_fpr(calibration, [1.0, math.nan])


@pytest.mark.parametrize("n", [24, 99])
def test_fpr_band_holds_the_realised_fpr_of_simulated_calibration_sets(n):
  # Each trial calibrates on n fresh N(0, 1) reals; the threshold's true FPR is
  # 1 - Phi(t). The band must hold 95% of them, with 2.5% on either side.
  rng = np.random.default_rng(n)
  thresholds = [metrics.calibrate(rng.normal(size=n), 0.05).threshold for _ in range(4000)]
  realised = scipy.stats.norm.sf(thresholds)
  low, high = metrics.fpr_band(n, 0.05)
  assert 0.0 < low < 0.05 < high
  assert np.mean(realised < low) == pytest.approx(0.025, abs=0.008)
  assert np.mean(realised > high) == pytest.approx(0.025, abs=0.008)
  assert np.mean(realised) <= 0.05 + 0.003  # the marginal guarantee
  assert metrics.fpr_band(10, 0.05) == (0.0, 0.0)  # k > n: the threshold is +inf


def test_calibration_json_round_trip_is_exact():
  rng = np.random.default_rng(6)
  calibration = metrics.calibrate(rng.normal(size=101).astype(np.float32), 0.05)
  text = json.dumps(calibration.to_json(), allow_nan=False)
  restored = metrics.Calibration.from_json(json.loads(text))
  assert restored == calibration
  np.testing.assert_array_equal(restored.scores, calibration.scores)
  assert restored.threshold == calibration.threshold and restored.alpha == 0.05
  # evaluate.py stores extra keys beside the calibration; they are ignored.
  assert metrics.Calibration.from_json({**calibration.to_json(), "empirical_fpr": 0.04}) == (
      calibration)


def test_calibration_rejects_inconsistent_or_invalid_fields():
  calibration = metrics.calibrate([3.0, 1.0, 2.0], 0.3)
  assert calibration.scores.tolist() == [1.0, 2.0, 3.0]
  with pytest.raises(ValueError, match="not the conformal threshold"):
    metrics.Calibration.from_json({**calibration.to_json(), "threshold": 1.5})
  with pytest.raises(ValueError, match="sorted"):
    metrics.Calibration(alpha=0.3, threshold=3.0, scores=np.array([3.0, 1.0, 2.0]))
  for alpha in (0.0, 1.0, -0.1):
    with pytest.raises(ValueError, match="alpha"):
      metrics.calibrate([1.0, 2.0], alpha)
  with pytest.raises(ValueError):
    metrics.calibrate([1.0, np.nan], 0.1)
  with pytest.raises(ValueError):
    metrics.calibrate([], 0.1)
  with pytest.raises(ValueError):
    calibration.scores[0] = 5.0  # read-only, so the frozen dataclass stays frozen
  with pytest.raises(ValueError):
    metrics.p_values(calibration, [np.nan])
