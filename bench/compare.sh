#!/usr/bin/env bash
# compare.sh runs the same workloads against fleetwire and Centrifugo on this
# machine, one server at a time, each scenario RUNS times side by side
# (fleetwire, Centrifugo, fleetwire, Centrifugo, ...), and writes
# bench/results/<date>.md and .json with the fleetwire/Centrifugo ratio of
# every run, their spread, the commit and every command line.
#
#   CENTRIFUGO=/path/to/centrifugo bench/compare.sh
#
# Centrifugo is not built here: pass a binary you built or installed
# yourself. Every knob below can be set in the environment; the defaults keep
# a full run (two runs of each scenario) under twenty minutes on two cores.
set -euo pipefail

: "${CENTRIFUGO:?set CENTRIFUGO to the path of a centrifugo binary}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FLEETWIRE=${FLEETWIRE:-}
SYSTEMS=${SYSTEMS:-"fleetwire centrifugo"} # "centrifugo" alone measures it without a fleetwire build
SCENARIOS=${SCENARIOS:-"idle fanout fanout-deflate fleet"} # fanout-deflate: clients offer permessage-deflate, as browsers do
RUNS=${RUNS:-2}
DURATION=${DURATION:-15s}
IDLE_CONNS=${IDLE_CONNS:-5000}
FANOUT_CONNS=${FANOUT_CONNS:-5000}
FANOUT_RATE=${FANOUT_RATE:-20}          # updates/s of the one tracker everybody follows
FANOUT_MODE=${FANOUT_MODE:-state}
FLEET_TRACKERS=${FLEET_TRACKERS:-2000}
FLEET_SIZE=${FLEET_SIZE:-100}
FLEET_CONNS=${FLEET_CONNS:-2000}
FLEET_RATE=${FLEET_RATE:-2000}          # updates/s over all trackers
FLEET_MODE=${FLEET_MODE:-state_batch}
FLEET_TARGET=${FLEET_TARGET:-mixed}
FLEET_CONTIGUOUS=${FLEET_CONTIGUOUS:-} # 1: each fleet's updates come in one burst a round (fwload -contiguous-fleets), as before 2026-12-03
RATE_LIMIT=${RATE_LIMIT:-50ms}
FW_PORT=${FW_PORT:-18080}
FW_OSMAND_PORT=${FW_OSMAND_PORT:-15055}
CF_PORT=${CF_PORT:-18000}
OUT_DIR=${OUT_DIR:-$ROOT/bench/results}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d /tmp/fwcompare.XXXXXX)
SERVER_PID=""
cleanup() {
	if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "compare: $*" >&2; }

cd "$ROOT"
go build -o "$WORK/fwload" ./bench/fwload
if [[ -z "$FLEETWIRE" && " $SYSTEMS " == *" fleetwire "* ]]; then
	go build -o "$WORK/fleetwire" ./cmd/fleetwire
	FLEETWIRE=$WORK/fleetwire
fi
ADMIN_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
API_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

wait_http() { # url
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "compare: $1 did not come up" >&2
	return 1
}

stop_server() {
	if [[ -n "$SERVER_PID" ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
	sleep 1
}

start_fleetwire() {
	rm -rf "$WORK/fwdata"
	# Every load connection comes from 127.0.0.1: lift the per-address cap.
	echo "server: fleetwire serve --listen 127.0.0.1:$FW_PORT --osmand-listen 127.0.0.1:$FW_OSMAND_PORT --mqtt-listen '' --ngp-listen '' --data DIR --admin-key KEY --log-level warn --unauth-conns-per-addr 0 --sessions-per-addr -1" >>"$WORK/commands.txt"
	"$FLEETWIRE" serve --listen "127.0.0.1:$FW_PORT" --osmand-listen "127.0.0.1:$FW_OSMAND_PORT" \
		--mqtt-listen "" --ngp-listen "" --data "$WORK/fwdata" --admin-key "$ADMIN_KEY" --log-level warn \
		--unauth-conns-per-addr 0 --sessions-per-addr -1 >"$WORK/fleetwire.log" 2>&1 &
	SERVER_PID=$!
	wait_http "http://127.0.0.1:$FW_PORT/healthz"
}

start_centrifugo() { # [compression]
	local compression=${1:-false}
	cat >"$WORK/centrifugo.json" <<JSON
{
  "http_server": {"address": "127.0.0.1", "port": $CF_PORT},
  "log": {"level": "warn"},
  "client": {"insecure": true, "allowed_origins": ["*"]},
  "http_api": {"key": "$API_KEY"},
  "prometheus": {"enabled": true},
  "usage_stats": {"disabled": true},
  "health": {"enabled": true},
  "websocket": {"use_write_buffer_pool": true, "compression": $compression}
}
JSON
	echo "server: centrifugo -c CONFIG (websocket.use_write_buffer_pool true, compression $compression; insecure client, warn log)" >>"$WORK/commands.txt"
	"$CENTRIFUGO" -c "$WORK/centrifugo.json" >"$WORK/centrifugo.log" 2>&1 &
	SERVER_PID=$!
	wait_http "http://127.0.0.1:$CF_PORT/health"
}

# scenario_args NAME prints the fwload flags shared by both systems.
scenario_args() {
	case "$1" in
	idle) echo "-conns $IDLE_CONNS -trackers 100 -fleet-size 1 -rate 0 -mode $FLEET_MODE -target all -rate-limit $RATE_LIMIT" ;;
	fanout-deflate) echo "-compress $(scenario_args fanout)" ;;
	fanout) echo "-conns $FANOUT_CONNS -trackers 1 -fleet-size 1 -rate $FANOUT_RATE -duration $DURATION -mode $FANOUT_MODE -target all -rate-limit $RATE_LIMIT" ;;
	fleet) echo "-conns $FLEET_CONNS -trackers $FLEET_TRACKERS -fleet-size $FLEET_SIZE -rate $FLEET_RATE -duration $DURATION -mode $FLEET_MODE -target $FLEET_TARGET -rate-limit $RATE_LIMIT${FLEET_CONTIGUOUS:+ -contiguous-fleets}" ;;
	*) echo "compare: unknown scenario $1" >&2; return 1 ;;
	esac
}

DATE=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$OUT_DIR"
MD=$OUT_DIR/$DATE.md
JSON=$OUT_DIR/$DATE.json
{
	echo "# fleetwire vs Centrifugo, $DATE"
	echo
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)."
	echo "fleetwire: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown); Centrifugo: ${CENTRIFUGO_LABEL:-$("$CENTRIFUGO" version 2>/dev/null | head -1)}."
	echo "Same load client (bench/fwload) for both; one server at a time; each scenario $RUNS times side by side; ratios are fleetwire/Centrifugo per run, with their spread."
	echo
} >"$MD"
echo "[" >"$JSON"
first=1
for sc in $SCENARIOS; do
	args=$(scenario_args "$sc")
	pairs=""
	for run in $(seq 1 "$RUNS"); do
		for sys in $SYSTEMS; do
			log "$sc run $run: $sys"
			out=$WORK/$sc.$sys.$run.json
			if [[ $sys == fleetwire ]]; then
				start_fleetwire
				cmd=("$WORK/fwload" -system fleetwire -url "http://127.0.0.1:$FW_PORT" -osmand "http://127.0.0.1:$FW_OSMAND_PORT" -admin-key KEY -pid PID -label "$sc")
			else
				compression=false
				[[ $sc == *deflate* ]] && compression=true
				start_centrifugo "$compression"
				cmd=("$WORK/fwload" -system centrifugo -url "http://127.0.0.1:$CF_PORT" -api-key KEY -pid PID -label "$sc")
			fi
			# shellcheck disable=SC2206
			cmd+=($args -json "$out")
			echo "fwload ${cmd[*]:1}" | sed "s|$WORK/||g" >>"$WORK/commands.txt"
			real=("${cmd[@]}")
			for i in "${!real[@]}"; do
				case ${real[$i]} in
				KEY) [[ $sys == fleetwire ]] && real[$i]=$ADMIN_KEY || real[$i]=$API_KEY ;;
				PID) real[$i]=$SERVER_PID ;;
				esac
			done
			"${real[@]}" | tee -a "$WORK/runs.txt" || true
			stop_server
			echo >>"$WORK/runs.txt"
			if [[ -f "$out" ]]; then
				[[ $first == 1 ]] || echo "," >>"$JSON"
				first=0
				cat "$out" >>"$JSON"
			fi
		done
		a=$WORK/$sc.fleetwire.$run.json b=$WORK/$sc.centrifugo.$run.json
		if [[ -f "$a" && -f "$b" ]]; then
			pairs+="${pairs:+;}$a,$b"
		fi
	done
	if [[ -n "$pairs" ]]; then
		"$WORK/fwload" -compare "$pairs" >>"$MD"
	else
		echo "### $sc: no run of both systems finished; see the runs below" >>"$MD"
		echo >>"$MD"
	fi
done
echo "]" >>"$JSON"
{
	echo "## Command lines"
	echo
	echo '```'
	cat "$WORK/commands.txt" 2>/dev/null || true
	echo '```'
	echo
	echo "## Runs"
	echo
	echo '```'
	cat "$WORK/runs.txt" 2>/dev/null || true
	echo '```'
} >>"$MD"
log "wrote $MD and $JSON"
cat "$MD"
