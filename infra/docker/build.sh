#!/usr/bin/env bash
# Builds the sidecar image from the repo root and prints its name: registry.example.com/embedded-cache:<version of
# package.json>, the image infra/k8s/deployment.yaml runs. IMAGE=<name> overrides it; extra arguments go to docker.
set -euo pipefail
cd "$(dirname "$0")/../.."
version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)"
image="${IMAGE:-registry.example.com/embedded-cache:${version}}"
docker build -f infra/docker/Dockerfile -t "$image" "$@" .
echo "$image"
