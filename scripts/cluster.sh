#!/usr/bin/env bash
# Starts a fleetwire cluster on this machine to try: NATS with JetStream, a
# PostgreSQL database, three nodes and, when nginx is installed, a
# round-robin nginx in front (deploy/nginx.conf). Ctrl+C stops everything.
#
#   ./scripts/cluster.sh            # fleet page at http://127.0.0.1:8088/ (demo / demo-password)
#
# Environment: FLEETWIRE_PG (a postgres:// URL whose database the script may
# create a schema in; default the local server's database test), NATS_SERVER
# (the nats-server binary), BASE_PORT (default 8088: nginx; nodes on the
# next ports).
set -euo pipefail
cd "$(dirname "$0")/.."

PG="${FLEETWIRE_PG:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
NATS_BIN="${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
BASE="${BASE_PORT:-8088}"
KEY="${FLEETWIRE_ADMIN_KEY:-cluster-admin-key}"
[ -x "$NATS_BIN" ] || { echo "needs nats-server (apt-get install nats-server, or set NATS_SERVER)" >&2; exit 1; }
command -v psql >/dev/null || { echo "needs psql and a PostgreSQL server (set FLEETWIRE_PG)" >&2; exit 1; }

dir=$(mktemp -d /tmp/fleetwire-cluster.XXXX)
pids=()
stop() {
	echo "stopping"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop EXIT INT TERM

go build -o "$dir/fleetwire" ./cmd/fleetwire

nats_port=$((BASE + 10))
"$NATS_BIN" -a 127.0.0.1 -p "$nats_port" -js -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
pids+=($!)
NATS="nats://127.0.0.1:$nats_port"

schema="fleetwire_cluster_$(date +%s)"
psql -q "$PG" -c "CREATE SCHEMA $schema"
case "$PG" in *\?*) STORE="$PG&search_path=$schema" ;; *) STORE="$PG?search_path=$schema" ;; esac

for i in 1 2 3; do
	"$dir/fleetwire" serve --listen "127.0.0.1:$((BASE + i))" --osmand-listen "127.0.0.1:$((BASE + 20 + i))" \
		--ngp-listen "" --mqtt-listen "" --teltonika-listen "" --gt06-listen "" \
		--store "$STORE" --bus "$NATS" --cluster demo --node "node$i" --data "$dir/node$i" \
		--admin-key "$KEY" --trust-proxy >"$dir/node$i.log" 2>&1 &
	pids+=($!)
done
for i in 1 2 3; do
	for _ in $(seq 1 100); do
		curl -fs "http://127.0.0.1:$((BASE + i))/readyz" >/dev/null 2>&1 && break
		sleep 0.2
	done
done

entry="http://127.0.0.1:$((BASE + 1))"
osmand="http://127.0.0.1:$((BASE + 21))"
if command -v nginx >/dev/null; then
	sed -e "s|__DIR__|$dir|g" -e "s|__LISTEN__|$BASE|" -e "s|__OSMAND__|$((BASE + 20))|" \
		-e "s|__PORT1__|$((BASE + 1))|" -e "s|__PORT2__|$((BASE + 2))|" -e "s|__PORT3__|$((BASE + 3))|" \
		-e "s|__OSMAND1__|$((BASE + 21))|" -e "s|__OSMAND2__|$((BASE + 22))|" -e "s|__OSMAND3__|$((BASE + 23))|" \
		deploy/nginx.conf >"$dir/nginx.conf"
	nginx -c "$dir/nginx.conf" -g 'daemon off;' &
	pids+=($!)
	entry="http://127.0.0.1:$BASE"
	osmand="http://127.0.0.1:$((BASE + 20))"
else
	echo "nginx is not installed: the nodes are reached directly (apt-get install nginx for the round-robin front)"
fi

curl -fs -H "X-Admin-Key: $KEY" -d '{"login":"demo","password":"demo-password","time_zone":"UTC"}' \
	"http://127.0.0.1:$((BASE + 1))/admin/users" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2 >"$dir/uid"
uid=$(cat "$dir/uid")
for t in 1 2 3; do
	curl -fs -H "X-Admin-Key: $KEY" -d "{\"user_id\":$uid,\"label\":\"Van $t\",\"device_id\":\"van-$t\"}" \
		"http://127.0.0.1:$((BASE + 1))/admin/trackers" >/dev/null
done

cat <<EOF
fleetwire cluster is running (files in $dir)
  fleet page    $entry/   (sign in as demo / demo-password)
  nodes         http://127.0.0.1:$((BASE + 1)), :$((BASE + 2)), :$((BASE + 3))   (--cluster demo, PostgreSQL schema $schema)
  NATS          $NATS (JetStream in $dir/nats)
  OsmAnd ingest $osmand/?id=van-1&lat=52.52&lon=13.40
  admin key     $KEY
Try: kill one node (kill -9 \$(pgrep -f 'node node2')); the page carries on through the others.
Press Ctrl+C to stop.
EOF
wait
