#!/usr/bin/env bash
# One host, all its devices (CPU, GPUs or a single TPU VM). PYTHON picks the interpreter.
#   launch/local.sh configs/demo.py workdirs/demo [--config.field=value ...]
set -euo pipefail
config=${1:?usage: launch/local.sh CONFIG WORKDIR [overrides...]}
workdir=${2:?usage: launch/local.sh CONFIG WORKDIR [overrides...]}
shift 2
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m mdmf_jax.main --config="$config" --workdir="$workdir" "$@"
