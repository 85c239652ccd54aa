"""The training log writes whatever metrics it is given, under their own names."""

import json

import numpy as np

from mdmf_jax import metric_log


def test_any_keys_are_logged_and_arrays_by_element(tmp_path):
  log = metric_log.MetricLog(str(tmp_path), total_steps=4, images_per_step=8, start_step=0)
  log.write(2, {"loss": np.float32(-1.5), "welch_t": 1.5, "score_gap": np.float32(0.25),
                "kernel/weights": np.array([[0.125, 0.375], [0.25, 0.25]], np.float32)})
  log.close()
  [line] = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert {k: line[k] for k in ("step", "loss", "welch_t", "score_gap")} == {
      "step": 2, "loss": -1.5, "welch_t": 1.5, "score_gap": 0.25}
  assert [line[f"kernel/weights/{i}"] for i in range(4)] == [0.125, 0.375, 0.25, 0.25]
  assert "kernel/weights" not in line and line["images_per_s"] > 0
