#!/usr/bin/env bash
# Measures fleetwire's cluster on this machine, each scenario twice:
#   1. ingest -> client latency on one node with the in-process bus (the
#      default), on one node with JetStream as its bus, and across two nodes
#      (clients on one node, devices on the other);
#   2. bus bytes per fix;
#   3. with three nodes and users on disjoint nodes, the share of the bus
#      traffic each node receives;
#   4. ingest throughput of one node and of three.
# Needs nats-server, PostgreSQL ($FLEETWIRE_TEST_POSTGRES, default the local
# server's database test), psql and jq. Writes bench/results/cluster-<time>.md.
# Not part of CI: a run takes about ten minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${FLEETWIRE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
NATS_BIN="${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
RUNS="${RUNS:-2}"
DURATION="${DURATION:-15s}"
for tool in jq psql "$NATS_BIN"; do
	command -v "$tool" >/dev/null || { echo "bench/cluster.sh needs $tool" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	psql -q "$PG" -c "SELECT 'DROP SCHEMA ' || nspname || ' CASCADE' FROM pg_namespace WHERE nspname LIKE 'fw_bench_%'" -t |
		psql -q "$PG" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/fleetwire" ./cmd/fleetwire
go build -o "$work/fwload" ./bench/fwload

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

nats_port=$(free_port)
"$NATS_BIN" -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
NATS="nats://127.0.0.1:$nats_port"
sleep 1

KEY=bench-admin-key
declare -A NODE_PID NODE_API NODE_OSMAND

# start NAME PREFIX SCHEMA|"" : a node of installation PREFIX ("" for a
# single node on the in-process bus and SQLite).
start() {
	local name=$1 prefix=$2 schema=$3 api osmand args
	api=$(free_port)
	osmand=$(free_port)
	args=(serve --listen "127.0.0.1:$api" --osmand-listen "127.0.0.1:$osmand" --ngp-listen "" --mqtt-listen ""
		--teltonika-listen "" --gt06-listen "" --unauth-conns-per-addr 0 --sessions-per-addr -1 --data "$work/data-$name" --admin-key "$KEY" --log-level warn)
	if [ -n "$prefix" ]; then
		args+=(--store "$PG${sep}search_path=$schema" --bus "$NATS" --cluster "$prefix" --node "$name")
	fi
	"$work/fleetwire" "${args[@]}" >"$work/$name.log" 2>&1 &
	NODE_PID[$name]=$!
	pids+=($!)
	NODE_API[$name]="http://127.0.0.1:$api"
	NODE_OSMAND[$name]="http://127.0.0.1:$osmand"
	for _ in $(seq 1 100); do
		curl -fs "${NODE_API[$name]}/readyz" >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "node $name did not start:" >&2
	cat "$work/$name.log" >&2
	exit 1
}

stop() {
	for n in "$@"; do kill "${NODE_PID[$n]}" 2>/dev/null || true; wait "${NODE_PID[$n]}" 2>/dev/null || true; done
}

schema() {
	local s="fw_bench_$RANDOM$RANDOM"
	psql -q "$PG" -c "CREATE SCHEMA $s" >/dev/null
	echo "$s"
}
sep='?'
case "$PG" in *\?*) sep='&' ;; esac

metric() { # metric NODE NAME LABELMATCH: sum of the matching series
	curl -fs "${NODE_API[$1]}/metrics" | grep "^$2" | grep -- "$3" | awk '{s+=$NF} END {printf "%.0f", s}'
}

load() { # load OUT URL OSMAND PID ARGS...: one fwload run
	local out=$1 url=$2 osmand=$3 pid=$4
	shift 4
	"$work/fwload" -url "$url" -osmand "$osmand" -admin-key "$KEY" -pid "$pid" -duration "$DURATION" \
		-settle 1s -drain 3s -json "$out" "$@" >/dev/null
}

latency_args=(-conns 200 -trackers 200 -fleet-size 20 -rate 1000 -mode state -format compact)
report="bench/results/cluster-$(date -u +%Y-%m-%dT%H%M%SZ).md"
{
	echo "# fleetwire cluster benchmarks"
	echo
	echo "Commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d), $(nproc) cores, nats-server $("$NATS_BIN" --version | awk '{print $2}'),"
	echo "load from one fwload per scenario on the same machine; each scenario run $RUNS times."
	echo
	echo "## Ingest to client latency (fwload ${latency_args[*]} -duration $DURATION)"
	echo
	echo "| setup | run | updates/s | delivered/s | p50 ms | p99 ms | missing |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$report"

row() { # row LABEL RUN FILE
	jq -r --arg l "$1" --arg r "$2" '"| \($l) | \($r) | \(.updates_per_sec|floor) | \(.entries_per_sec|floor) | \(.latency_p50_ms) | \(.latency_p99_ms) | \(.missing_deliveries) |"' "$3" >>"$report"
}

for run in $(seq 1 "$RUNS"); do
	start single "" ""
	load "$work/single-$run.json" "${NODE_API[single]}" "${NODE_OSMAND[single]}" "${NODE_PID[single]}" "${latency_args[@]}"
	row "one node, in-process bus (default)" "$run" "$work/single-$run.json"
	stop single

	p="b$RANDOM"
	start js1 "$p" "$(schema)"
	load "$work/js1-$run.json" "${NODE_API[js1]}" "${NODE_OSMAND[js1]}" "${NODE_PID[js1]}" "${latency_args[@]}"
	row "one node, JetStream bus" "$run" "$work/js1-$run.json"
	stop js1

	p="b$RANDOM"
	s=$(schema)
	start a "$p" "$s"
	start b "$p" "$s"
	out0=$(metric a fleetwire_bus_bytes_total 'direction="out"')
	load "$work/cross-$run.json" "${NODE_API[b]}" "${NODE_OSMAND[a]}" "${NODE_PID[b]}" "${latency_args[@]}"
	row "two nodes: clients on B, devices on A" "$run" "$work/cross-$run.json"
	out1=$(metric a fleetwire_bus_bytes_total 'direction="out"')
	fixes=$(jq '.updates_sent' "$work/cross-$run.json")
	echo "$run $(( (out1 - out0) / (fixes > 0 ? fixes : 1) ))" >>"$work/bytes"
	stop a b
done

{
	echo
	echo "## Bus bytes per fix (published by the ingesting node, two-node runs)"
	echo
	while read -r run b; do echo "- run $run: $b bytes per fix (state message with its device record)"; done <"$work/bytes"
	echo
	echo "## Bus traffic share with users on disjoint nodes"
	echo
	echo "Three nodes; three fwload runs at once, each with its own users, clients and devices on one node"
	echo "(-conns 60 -trackers 60 -fleet-size 20 -rate 200). Share = bytes a node received from the bus /"
	echo "bytes all nodes published. Goal: at most 40 %."
	echo
	echo "| run | node | received | published by all | share |"
	echo "| ---: | --- | ---: | ---: | ---: |"
} >>"$report"

for run in $(seq 1 "$RUNS"); do
	p="b$RANDOM"
	s=$(schema)
	for n in n1 n2 n3; do start "$n" "$p" "$s"; done
	declare -A in0
	out0=0
	for n in n1 n2 n3; do
		in0[$n]=$(metric "$n" fleetwire_bus_bytes_total 'direction="in"')
		out0=$((out0 + $(metric "$n" fleetwire_bus_bytes_total 'direction="out"')))
	done
	loads=()
	for n in n1 n2 n3; do
		load "$work/share-$run-$n.json" "${NODE_API[$n]}" "${NODE_OSMAND[$n]}" "${NODE_PID[$n]}" \
			-conns 60 -trackers 60 -fleet-size 20 -rate 200 -mode state &
		loads+=($!)
	done
	wait "${loads[@]}"
	sleep 1
	out1=0
	for n in n1 n2 n3; do out1=$((out1 + $(metric "$n" fleetwire_bus_bytes_total 'direction="out"'))); done
	total=$((out1 - out0))
	for n in n1 n2 n3; do
		got=$(($(metric "$n" fleetwire_bus_bytes_total 'direction="in"') - in0[$n]))
		echo "| $run | $n | $got | $total | $(awk -v a="$got" -v b="$total" 'BEGIN { printf "%.1f %%", b ? 100*a/b : 0 }') |" >>"$report"
	done
	stop n1 n2 n3
done

{
	echo
	echo "## Ingest throughput (fwload -conns 10 -trackers 3000 -fleet-size 100 -rate 20000 -ingest-workers 96)"
	echo
	echo "| setup | run | updates taken/s | ingest errors |"
	echo "| --- | ---: | ---: | ---: |"
} >>"$report"

tput_args=(-conns 10 -trackers 3000 -fleet-size 100 -rate 20000 -ingest-workers 96 -mode state_batch -rate-limit 1s)
for run in $(seq 1 "$RUNS"); do
	start single "" ""
	load "$work/t-single-$run.json" "${NODE_API[single]}" "${NODE_OSMAND[single]}" "${NODE_PID[single]}" "${tput_args[@]}"
	jq -r --arg r "$run" '"| one node, in-process bus | \($r) | \(.updates_per_sec|floor) | \(.ingest_errors) |"' "$work/t-single-$run.json" >>"$report"
	stop single
	p="b$RANDOM"
	s=$(schema)
	start n1 "$p" "$s"
	load "$work/t-one-$run.json" "${NODE_API[n1]}" "${NODE_OSMAND[n1]}" "${NODE_PID[n1]}" "${tput_args[@]}"
	jq -r --arg r "$run" '"| one cluster node | \($r) | \(.updates_per_sec|floor) | \(.ingest_errors) |"' "$work/t-one-$run.json" >>"$report"
	start n2 "$p" "$s"
	start n3 "$p" "$s"
	load "$work/t-three-$run.json" "${NODE_API[n1]}" "${NODE_OSMAND[n1]},${NODE_OSMAND[n2]},${NODE_OSMAND[n3]}" "${NODE_PID[n1]}" "${tput_args[@]}"
	jq -r --arg r "$run" '"| three cluster nodes | \($r) | \(.updates_per_sec|floor) | \(.ingest_errors) |"' "$work/t-three-$run.json" >>"$report"
	stop n1 n2 n3
done

echo "wrote $report"
cat "$report"
