#!/usr/bin/env bash
# previz-sync-weights S3_URI [DIR]: copy model weights from S3 into DIR (default /mnt/models),
# fetching only what is missing or changed, so a restarted worker is ready in seconds.
# Credentials come from the instance or pod role (or AWS_* variables); none are stored here.
set -euo pipefail
source_uri="${1:?usage: previz-sync-weights s3://bucket/prefix [DIR]}"
target="${2:-/mnt/models}"
case "$source_uri" in
  s3://*) ;;
  *) echo "previz-sync-weights: $source_uri is not an s3:// URI — pass s3://bucket/prefix" >&2
     exit 2 ;;
esac
mkdir -p "$target"
echo "previz-sync-weights: $source_uri -> $target"
aws s3 sync --only-show-errors --no-progress "$source_uri" "$target"
echo "previz-sync-weights: done ($(du -sh "$target" | cut -f1))"
