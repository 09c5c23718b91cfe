#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs them all:
# Node packages for the real-client interop tests, Debian's Chromium for the
# browser test, mosquitto-clients for the MQTT bridge tests, nginx for the
# cluster test behind a round-robin proxy, then go mod tidy -diff, go vet,
# staticcheck, the race-enabled test suite and a short run of every fuzz target.
# "./scripts/test.sh fuzz [pattern]" instead runs only the fuzz targets, each
# for $FUZZTIME (default 10m).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# fuzz runs every fuzz target (those whose "package target" matches the
# optional pattern $1) for $FUZZTIME each. A crasher fails the run, and the
# fuzzing engine has written the input to the package's testdata/fuzz,
# where it stays as a regression case once committed.
fuzz() {
	local filter=${1:-}
	log "fuzz (${FUZZTIME:=5s} per target${filter:+, matching $filter})"
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
			if [ -n "$filter" ] && ! grep -qE -- "$filter" <<<"$pkg $target"; then
				continue
			fi
			echo "fuzz $pkg $target ($(date +%T))"
			out=$(mktemp)
			if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >"$out" 2>&1; then
				cat "$out"
				# A found crasher fails the run; a fuzzing engine hiccup on a
				# loaded machine (no input written) gets one more try.
				if grep -q 'Failing input written to' "$out" || ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >"$out" 2>&1; then
					cat "$out"
					rm -f "$out"
					exit 1
				fi
			fi
			grep -h '^fuzz: elapsed' "$out" | tail -1 || true
			rm -f "$out"
		done
	done
}

# "./scripts/test.sh fuzz [pattern]" runs only the fuzz targets, each for
# $FUZZTIME (default 10m here), e.g. FUZZTIME=3m ./scripts/test.sh fuzz ngp.
if [ "${1:-}" = fuzz ]; then
	FUZZTIME=${FUZZTIME:-10m}
	fuzz "${2:-}"
	log "fuzzing found nothing"
	exit 0
fi

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# nginx for the cluster test behind deploy/nginx.conf.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
if [ ${#need_apt[@]} -gt 0 ]; then
	log "installing ${need_apt[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

for dir in test/interop test/browser; do
	if [ -f "$dir/package.json" ]; then
		log "npm ci in $dir"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
done

export FLEETWIRE_REQUIRE_NODE=1
export FLEETWIRE_ARTIFACTS="${FLEETWIRE_ARTIFACTS:-$PWD/test/artifacts}"
mkdir -p "$FLEETWIRE_ARTIFACTS"

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted"
	exit 1
fi

log "go mod tidy -diff"
go mod tidy -diff

log "go vet"
go vet ./...

log "staticcheck"
if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
	go install honnef.co/go/tools/cmd/staticcheck@latest
fi
PATH="$PATH:$(go env GOPATH)/bin" staticcheck ./...

log "go test -race"
go test -race -count=1 -timeout 15m ./...

fuzz
log "all tests passed"
