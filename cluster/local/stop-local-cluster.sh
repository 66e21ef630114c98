#!/usr/bin/env bash
# Stop a cluster started by start-local-cluster.sh, and only that cluster:
#
#   cluster/local/stop-local-cluster.sh /tmp/pvz-local-XXXXXX [--keep-logs]
#
# It signals the `ray start --block` processes listed in the folder's pid file (each stops the
# Ray processes it started), then any process still running from that folder — matched by the
# folder's path in its command line, never by a program name — and removes the folder.
set -euo pipefail
dir="${1:?usage: stop-local-cluster.sh /tmp/pvz-local-XXXXXX [--keep-logs]}"
keep_logs="${2:-}"
dir="${dir%/}"
case "$dir" in
  /tmp/pvz-local-*) ;;
  *) echo "stop-local-cluster: $dir is not a folder start-local-cluster.sh made" >&2; exit 2 ;;
esac
[[ -f "$dir/pids" ]] || { echo "stop-local-cluster: no pid file in $dir — nothing to stop" >&2
                          exit 1; }

command_line() {  # without spawning a process that would itself carry our folder's name
  local text
  { text="$(tr '\0' ' ' < "/proc/$1/cmdline")"; } 2>/dev/null || return 1
  printf '%s' "$text"
}
is_ours() {  # a Ray process started from our folder (a recycled pid or an editor is not)
  local text
  text="$(command_line "$1")" || return 1
  [[ "$text" == *"$dir"* && "$text" == *ray* && "$text" != *stop-local-cluster* ]]
}
ours() {
  local pid
  for pid in "$@"; do is_ours "$pid" && echo "$pid"; done
  return 0
}
from_folder() {  # every live Ray process started from our folder
  local proc
  for proc in /proc/[0-9]*; do is_ours "${proc#/proc/}" && echo "${proc#/proc/}"; done
  return 0
}

# 1. The `ray start --block` processes: SIGTERM makes each stop the Ray processes it started.
mapfile -t starters < <(ours $(cat "$dir/pids"))
[[ ${#starters[@]} -gt 0 ]] && kill -TERM "${starters[@]}" 2>/dev/null || true
for _ in $(seq 1 60); do
  mapfile -t left < <(from_folder)
  [[ ${#left[@]} -eq 0 ]] && break
  sleep 0.5
done
# 2. Anything from our folder still running after 30 s.
mapfile -t left < <(from_folder)
if [[ ${#left[@]} -gt 0 ]]; then
  kill -KILL "${left[@]}" 2>/dev/null || true
fi
echo "stopped the local cluster in $dir"
if [[ "$keep_logs" == "--keep-logs" ]]; then
  echo "logs kept in $dir"
else
  rm -rf "$dir"
fi
