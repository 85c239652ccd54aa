#!/usr/bin/env bash
# Every worker of a Cloud TPU VM pod runs the same command; JAX finds the pod's
# coordinator itself (jax.distributed.initialize() with no arguments).
#   TPU_NAME=my-pod ZONE=us-central2-b launch/tpu_pod.sh configs/progan_4class.py gs://bucket/progan4
# The repository must be at ~/mdmf_jax on every worker (e.g. git clone in a
# first `--worker=all` command), installed with requirements-tpu.txt; data and
# the workdir must be visible to all workers (GCS or a shared disk).
set -euo pipefail
config=${1:?usage: launch/tpu_pod.sh CONFIG WORKDIR [overrides...]}
workdir=${2:?usage: launch/tpu_pod.sh CONFIG WORKDIR [overrides...]}
shift 2
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
  cd ~/mdmf_jax && python3 -m mdmf_jax.main --config=$config --workdir=$workdir \
    --config.distributed.enabled=True $*"
