#!/usr/bin/env bash
# Spark resource discovery for NVIDIA GPUs (spark.worker.resource.gpu.discoveryScript or
# spark.executor.resource.gpu.discoveryScript): prints {"name": "gpu", "addresses": ["0", ...]}.
# Spark's own getGpusResources.sh does the same but ships only in Spark's distribution, not
# in the pyspark wheel. Fails (and Spark with it) where nvidia-smi finds no GPU.
set -euo pipefail
smi=$(command -v nvidia-smi || ls /usr/local/nvidia/bin/nvidia-smi 2>/dev/null || true)
[ -n "$smi" ] || { echo "nvidia-smi not found on PATH ($PATH) nor in /usr/local/nvidia/bin" >&2; exit 1; }
ids=$("$smi" --query-gpu=index --format=csv,noheader)
[ -n "$ids" ] || { echo "no NVIDIA GPU found by nvidia-smi" >&2; exit 1; }
echo "{\"name\": \"gpu\", \"addresses\": [$(echo "$ids" | sed 's/.*/"&"/' | paste -sd, -)]}"
