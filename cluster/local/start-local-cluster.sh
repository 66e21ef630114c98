#!/usr/bin/env bash
# Start a Ray cluster on this one machine: a CPU head plus worker nodes with logical GPUs, to try
# previz's multi-node behaviour (warm workers per node, a node lost mid-render, resume) without a
# cloud. Logical GPUs are bookkeeping only: render with the `synthetic` or `draft` models.
#
#   cluster/local/start-local-cluster.sh [--workers 2] [--gpus-per-worker 2] [--cpus-per-worker 2]
#
# Everything it starts lives under its own folder (a fresh /tmp/pvz-local-XXXXXX): Ray's temp
# dir and logs, the auth token, free ports chosen for this cluster only, and a pid file. It never
# touches another Ray on this host. Stop it with the command it prints:
#
#   cluster/local/stop-local-cluster.sh /tmp/pvz-local-XXXXXX
#
# (Never `ray stop`: it stops every Ray cluster on the machine, other people's included.)
set -euo pipefail

workers=2
gpus_per_worker=2
cpus_per_worker=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) workers="$2"; shift 2 ;;
    --gpus-per-worker) gpus_per_worker="$2"; shift 2 ;;
    --cpus-per-worker) cpus_per_worker="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "start-local-cluster: unknown option $1 — see --help" >&2; exit 2 ;;
  esac
done
for value in "$workers" "$gpus_per_worker" "$cpus_per_worker"; do
  [[ "$value" =~ ^[0-9]+$ ]] || { echo "start-local-cluster: '$value' is not a count" >&2; exit 2; }
done
command -v ray >/dev/null || { echo "start-local-cluster: no 'ray' on PATH — activate the" \
  "environment previz is installed in (pip install -e .)" >&2; exit 2; }
PYTHON="$(dirname "$(command -v ray)")/python"
[[ -x "$PYTHON" ]] || PYTHON=python3

# A short path: Ray's socket paths must stay under ~100 characters.
dir="$(mktemp -d /tmp/pvz-local-XXXXXX)"
chmod 700 "$dir"
pids="$dir/pids"
: > "$pids"

# Token authentication, as on a real cluster: every node and every client needs this token.
"$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' > "$dir/auth_token"
chmod 600 "$dir/auth_token"
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$dir/auth_token"

# Free ports for this cluster only (the defaults would collide with any other Ray here).
free_ports() {
  "$PYTHON" - "$1" <<'PY'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
for s in sockets:
    s.close()
PY
}
read -r gcs_port dashboard_port client_port agent_port metrics_port <<< "$(free_ports 5)"

cleanup_on_error() {
  echo "start-local-cluster: failed — stopping what was started (logs in $dir)" >&2
  "$(dirname "$0")/stop-local-cluster.sh" "$dir" --keep-logs >&2 || true
}
trap cleanup_on_error ERR

# The head: coordinates only (no GPUs); its dashboard (the Jobs API) listens on loopback only.
nohup ray start --head --block \
  --temp-dir "$dir" --node-ip-address 127.0.0.1 \
  --port "$gcs_port" --ray-client-server-port "$client_port" \
  --dashboard-host 127.0.0.1 --dashboard-port "$dashboard_port" \
  --dashboard-agent-listen-port "$agent_port" --metrics-export-port "$metrics_port" \
  --num-cpus 1 --num-gpus 0 > "$dir/head.log" 2>&1 &
echo "$!" >> "$pids"

wait_for_port() {
  "$PYTHON" - "$1" "$2" <<'PY'
import socket, sys, time
port, limit = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < limit:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
PY
}
wait_for_port "$gcs_port" 120 || { echo "start-local-cluster: the head did not start — see" \
  "$dir/head.log" >&2; false; }

# One worker at a time, each up before the next: raylets starting together on a small machine
# can time out registering ("The current node timed out during startup"), and a cluster short of
# a node would quietly have fewer GPUs than asked for.
start_worker() {
  read -r worker_agent worker_metrics <<< "$(free_ports 2)"
  nohup ray start --block --address "127.0.0.1:$gcs_port" --temp-dir "$dir" \
    --node-ip-address 127.0.0.1 \
    --dashboard-agent-listen-port "$worker_agent" --metrics-export-port "$worker_metrics" \
    --num-cpus "$cpus_per_worker" --num-gpus "$gpus_per_worker" \
    > "$dir/worker-$1.log" 2>&1 &
  worker_pid=$!
  echo "$worker_pid" >> "$pids"
  for ((waited = 0; waited < 240; waited++)); do
    grep -qs "Ray runtime started" "$dir/worker-$1.log" && return 0
    kill -0 "$worker_pid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}
for ((i = 1; i <= workers; i++)); do
  if ! start_worker "$i"; then
    echo "start-local-cluster: worker node $i did not start (see $dir/worker-$i.log); trying" \
      "once more" >&2
    kill "$worker_pid" 2>/dev/null || true
    sed -i "/^$worker_pid\$/d" "$pids"  # the stop script must never signal a reused pid
    mv "$dir/worker-$i.log" "$dir/worker-$i.failed.log"
    start_worker "$i" || { echo "start-local-cluster: worker node $i did not start — see" \
      "$dir/worker-$i.log" >&2; false; }
  fi
done

wait_for_port "$dashboard_port" 120 || { echo "start-local-cluster: the dashboard did not" \
  "start — see $dir/head.log" >&2; false; }
trap - ERR

# For clients: `source $dir/env`. (No RAY_ADDRESS: ray.init reads it as a GCS address and the
# Jobs API as a dashboard URL; the commands below pass each address explicitly.)
cat > "$dir/env" <<EOF
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$dir/auth_token
export RAY_AUTH_TOKEN="\$(cat $dir/auth_token)"
EOF
echo "http://127.0.0.1:$dashboard_port" > "$dir/address"

cat <<EOF
previz local cluster: 1 head + $workers worker node(s) x $gpus_per_worker logical GPU(s)
  folder:     $dir   (Ray temp dir, logs, token, pid file)
  dashboard:  http://127.0.0.1:$dashboard_port   (the Jobs API; loopback only)
  GCS:        127.0.0.1:$gcs_port

Use it (token auth is on; source the env file for the token):
  source $dir/env
  previz submit storyboards/demo.yaml --address http://127.0.0.1:$dashboard_port --store /tmp/previz-renders
  previz render storyboards/demo.yaml --address 127.0.0.1:$gcs_port --store /tmp/previz-renders

Stop only what this started (the pids in $pids):
  $(cd "$(dirname "$0")" && pwd)/stop-local-cluster.sh $dir
EOF
