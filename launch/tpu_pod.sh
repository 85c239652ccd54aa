#!/usr/bin/env bash
# Cloud TPU VM pods: every worker runs the same command; JAX finds the pod's
# coordinator itself (jax.distributed.initialize() with no arguments).
#   export TPU_NAME=my-pod ZONE=us-central2-b
#   launch/tpu_pod.sh setup      # this checkout's HEAD and a venv on every worker
#   launch/tpu_pod.sh run configs/progan_4class.py gs://bucket/progan4 [--config.field=value ...]
# `setup` copies `git archive HEAD` to ~/mdmf_jax on every worker and installs
# requirements.txt and requirements-tpu.txt into ~/mdmf_jax/.venv (rerun it
# after each commit you want to run). Overrides reach the workers exactly as
# typed (spaces, quotes, tuples). Data and the workdir must be visible to all
# workers: use gs:// paths. GCLOUD picks the gcloud binary.
set -euo pipefail
usage="usage: launch/tpu_pod.sh setup | run CONFIG WORKDIR [overrides...]"
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
gcloud=${GCLOUD:-gcloud}

on_all_workers() {  # $1: one shell command line, run on every worker
  "$gcloud" compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="$1"
}

case "${1:-}" in
  setup)
    archive=$(mktemp --suffix=.tar.gz)
    trap 'rm -f "$archive"' EXIT
    git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$archive" HEAD
    "$gcloud" compute tpus tpu-vm scp "$archive" "$TPU_NAME:mdmf_jax.tar.gz" --zone="$ZONE" \
      --worker=all
    on_all_workers "mkdir -p ~/mdmf_jax && tar -xzf ~/mdmf_jax.tar.gz -C ~/mdmf_jax \
&& cd ~/mdmf_jax && python3 -m venv .venv && .venv/bin/pip install -q \
-r requirements.txt -r requirements-tpu.txt"
    ;;
  run)
    config=${2:?$usage}
    workdir=${3:?$usage}
    shift 3
    # %q quotes each argument for the workers' shell, so it arrives as one word.
    printf -v args ' %q' --config="$config" --workdir="$workdir" \
      --config.distributed.enabled=True "$@"
    on_all_workers "cd ~/mdmf_jax && .venv/bin/python -m mdmf_jax.main$args"
    ;;
  *)
    echo "$usage" >&2
    exit 2
    ;;
esac
