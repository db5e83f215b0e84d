#!/usr/bin/env bash
# What `npm start` promises an operator (README, docs/operations.md), checked from the outside:
# it builds, then runs the service as the process that receives the signal, so SIGTERM to npm
# leaves no process of the tree behind and frees the port; a busy port and a Node outside the
# engines range are one line on stderr naming the fix. CI runs it (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
npm_pid=
cleanup() {
  [[ -n "$npm_pid" ]] && kill "$npm_pid" 2>/dev/null || true
  [[ -n "${holder:-}" ]] && kill "$holder" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check-npm-start: $*" >&2; exit 1; }

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
descendants() { # pid: the pid and every process under it
  local pid=$1
  echo "$pid"
  for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do descendants "$child"; done
}

port=$(free_port)
export PAI_PORT=$port PAI_HTTP_PORT=0 PAI_DATA_DIR="$work/data"

echo "npm start on port $port, then SIGTERM to npm"
npm start >"$work/start.log" 2>&1 &
npm_pid=$!
for _ in $(seq 1 180); do
  grep -q 'listening on' "$work/start.log" && break
  kill -0 "$npm_pid" 2>/dev/null || { cat "$work/start.log"; fail "npm start exited before listening"; }
  sleep 1
done
grep -q 'listening on' "$work/start.log" || fail "the service did not listen within 180 s"
tree=$(descendants "$npm_pid" | tr '\n' ' ')
echo "process tree: $tree"
kill -TERM "$npm_pid"
status=0
wait "$npm_pid" || status=$?
npm_pid=
echo "npm exited with status $status"
# The service drains and exits on its own; bounded, not slept on.
for _ in $(seq 1 100); do
  alive=()
  for pid in $tree; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
  ((${#alive[@]} == 0)) && break
  sleep 0.1
done
((${#alive[@]} == 0)) || fail "still running after SIGTERM: ${alive[*]}"
port_open "$port" && fail "port $port still accepts connections"
[[ $status -eq 0 ]] || fail "npm start exited with $status after SIGTERM (expected 0: a graceful stop)"
echo "ok: no process of the tree survives, port $port is free"

echo "a busy port: one line naming the fix"
node -e 'require("net").createServer().listen(Number(process.argv[1]),"127.0.0.1")' "$port" &
holder=$!
for _ in $(seq 1 50); do port_open "$port" && break; sleep 0.1; done
status=0
node scripts/start.cjs >/dev/null 2>"$work/busy.err" || status=$?
kill "$holder"; holder=
[[ $status -eq 1 ]] || fail "busy port: exit status $status, expected 1"
[[ $(wc -l <"$work/busy.err") -eq 1 ]] || { cat "$work/busy.err"; fail "busy port: not one line"; }
grep -q "127.0.0.1:$port is in use.*PAI_PORT" "$work/busy.err" || { cat "$work/busy.err"; fail "busy port: the line does not name the fix"; }
cat "$work/busy.err"

# The machine's own Node (20 on the developers' machines) is outside the engines range.
system_node=/usr/bin/node
if [[ -x $system_node ]] && ! "$system_node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 24 ? 0 : 1)'; then
  echo "Node $("$system_node" --version): one line before any native addon loads"
  status=0
  "$system_node" scripts/start.cjs >/dev/null 2>"$work/node.err" || status=$?
  [[ $status -eq 1 && $(wc -l <"$work/node.err") -eq 1 ]] || { cat "$work/node.err"; fail "wrong Node: exit $status"; }
  grep -q 'needs Node' "$work/node.err" || fail "wrong Node: the line does not say which Node"
  cat "$work/node.err"
else
  echo "no Node outside the engines range on this machine: the wrong-Node check is not run"
fi
echo "check-npm-start: passed"
