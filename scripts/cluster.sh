#!/bin/bash
# Many hosts through NATS JetStream, in network namespaces this script
# creates and always removes (docs/ARCHITECTURE.md, "Many hosts"):
#
#   3 nats-server (a JetStream cluster, file storage, stream replicas 3)
#   2 edge ringflowd: TCP line protocol in, a nats sink (disk buffer) out
#   2 aggregator ringflowd: nats_source (hosts: 2, each its own shards),
#     storage on
#
# one namespace per host on a bridge (its own namespace), addresses from
# 198.18.0.0/15 only, ports of its own. Under load it kills, in turn and
# starts again, a NATS node (SIGKILL), an aggregator and an edge (SIGTERM
# by default, SIGKILL with --hard), then checks the loss equation across
# hosts: the events the edges accepted (their listener counters, summed
# over restarts) are in the aggregators' stores, each exactly once after
# duplicates are counted and removed, and nothing else is there.
#
#   scripts/cluster.sh            the short form (the suite's nats_cluster)
#   scripts/cluster.sh --demo     longer phases, more load, and a table of
#                                 where every event went
#   scripts/cluster.sh --hard     ringflowd hosts killed with SIGKILL: what
#                                 was in a killed process's memory is then
#                                 reported as lost (docs/RELIABILITY.md)
#   scripts/cluster.sh --keep     keep the work directory (logs, configs)
#
# Needs root (ip netns), nats-server and a built tree (BUILD, default
# ./build). Exit 0: the equation balances; 1: it does not; 77: cannot run
# here (not root, no nats-server, no netns). Every wait is bounded.
set -u

BUILD=${BUILD:-build}
RINGFLOWD=${RINGFLOWD:-$BUILD/daemon/ringflowd}
RINGFLOW=${RINGFLOW:-$BUILD/tools/ringflow}
NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
PY=${PYTHON:-/usr/bin/python3} # Debian's: a version manager's shim costs seconds a call
TOOL="$(cd "$(dirname "$0")" && pwd)/cluster_tool.py"
DEMO=0 HARD=0 KEEP=0
for a in "$@"; do
    case $a in
    --demo) DEMO=1 ;;
    --hard) HARD=1 ;;
    --keep) KEEP=1 ;;
    *) echo "usage: $0 [--demo] [--hard] [--keep]" >&2; exit 2 ;;
    esac
done
if [ "$DEMO" = 1 ]; then
    RATE=${RATE:-20000} STEADY=${STEADY:-8} DOWN=${DOWN:-6}
else
    RATE=${RATE:-2000} STEADY=${STEADY:-1} DOWN=${DOWN:-1}
fi
RF_SIG=TERM
[ "$HARD" = 1 ] && RF_SIG=KILL

skip() { echo "cluster: SKIP: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
[ -x "$NATS_SERVER" ] || skip "no $NATS_SERVER (apt-get install nats-server)"
command -v ip >/dev/null || skip "no ip (iproute2)"
[ -x "$RINGFLOWD" ] && [ -x "$RINGFLOW" ] || { echo "cluster: build first ($RINGFLOWD)" >&2; exit 1; }
RINGFLOWD=$(realpath "$RINGFLOWD") RINGFLOW=$(realpath "$RINGFLOW")

# Names unique to this run (two runs at once do not collide); interface
# names stay under 15 characters.
TAG=$(printf '%04x' $(($$ % 65536)))
PFX="rfc$TAG"
SW="$PFX-sw"
W=$(mktemp -d /tmp/rf-cluster.XXXXXX)
HOSTS="n1 n2 n3 e1 e2 a1 a2"
declare -A ADDR=([n1]=198.18.0.11 [n2]=198.18.0.12 [n3]=198.18.0.13
    [e1]=198.18.0.21 [e2]=198.18.0.22 [a1]=198.18.0.31 [a2]=198.18.0.32)
declare -A PID=()
NATS_PORT=14222 ROUTE_PORT=16222 MON_PORT=18222 LP_PORT=17100 PROM_PORT=19273
SHARDS=8
# The generators' first time: a minute ago (inside the edges' timestamp
# window), a microsecond apart, so (edge, seq) gives one time.
T0=$((($(date +%s) - 60) * 1000000000))
FAIL=0

log() { printf '%s cluster: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "FAIL: $*"; FAIL=1; exit 1; }

cleanup() {
    local h p
    for h in "${!PID[@]}"; do
        kill -KILL "${PID[$h]}" 2>/dev/null
    done
    for h in "${!PID[@]}"; do
        wait "${PID[$h]}" 2>/dev/null
    done
    # Whatever still runs in the namespaces (this run's alone) goes too.
    for h in $HOSTS; do
        for p in $(ip netns pids "$PFX-$h" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    done
    for h in $HOSTS sw; do echo "netns del $PFX-$h"; done | ip -force -batch - 2>/dev/null
    if [ "$KEEP" = 1 ] || [ "$FAIL" = 1 ]; then
        log "work directory kept: $W"
    else
        rm -rf "$W"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local h=$1; shift; ip netns exec "$PFX-$h" "$@"; }

# ---- the network: a bridge in its own namespace, a veth to each host ----
setup_net() {
    local h
    # ip -batch: one process per namespace instead of one per change
    { echo "netns add $SW"; for h in $HOSTS; do echo "netns add $PFX-$h"; done; } |
        ip -batch - || skip "cannot create network namespaces"
    {
        echo "link set lo up"
        echo "link add br0 type bridge"
        echo "link set br0 up"
        for h in $HOSTS; do
            echo "link add v$TAG$h type veth peer name eth0 netns $PFX-$h"
            echo "link set v$TAG$h master br0 up"
        done
    } | ip -n "$SW" -batch - || skip "no bridge or veth support"
    for h in $HOSTS; do
        printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n' "${ADDR[$h]}" |
            ip -n "$PFX-$h" -batch - || die "addresses of $h"
    done
}

# Runs "$@" every 0.2 s until it succeeds, for at most $1 seconds.
wait_for() {
    local end=$((SECONDS + $1)) i
    shift
    for ((i = 0; i < 10000 && SECONDS < end; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

# ---- NATS ----
NATS_URLS="nats://${ADDR[n1]}:$NATS_PORT, nats://${ADDR[n2]}:$NATS_PORT, nats://${ADDR[n3]}:$NATS_PORT"
nats_conf() {
    local h=$1 routes="" o
    for o in n1 n2 n3; do
        [ "$o" = "$h" ] || routes="$routes nats-route://${ADDR[$o]}:$ROUTE_PORT"
    done
    mkdir -p "$W/$h/js"
    cat >"$W/$h.conf" <<EOF
server_name: $h
listen: ${ADDR[$h]}:$NATS_PORT
http: ${ADDR[$h]}:$MON_PORT
jetstream { store_dir: "$W/$h/js" }
cluster {
  name: rfc
  listen: ${ADDR[$h]}:$ROUTE_PORT
  routes: [$(echo $routes | sed 's/ /, /g')]
}
EOF
}
start_nats() {
    local h=$1
    ip netns exec "$PFX-$h" "$NATS_SERVER" -c "$W/$h.conf" >>"$W/$h.log" 2>&1 &
    PID[$h]=$!
}
nats_healthy() { in_ns "$1" curl -fsS -m 1 "http://${ADDR[$1]}:$MON_PORT/healthz" >/dev/null 2>&1; }
jsz() {
    in_ns a1 "$PY" "$TOOL" jsz ${1:+--detail} "n1=http://${ADDR[n1]}:$MON_PORT" \
        "n2=http://${ADDR[n2]}:$MON_PORT" "n3=http://${ADDR[n3]}:$MON_PORT"
}

# ---- ringflowd ----
edge_conf() {
    local h=$1
    mkdir -p "$W/$h"
    cat >"$W/$h.yaml" <<EOF
engine: {workers: 1, idle: {sleep: 2ms}, run_dir: $W/$h/run, data_dir: $W/$h/data}
listeners:
  - {name: lp, transport: tcp, protocol: influx_line, port: $LP_PORT, address: ${ADDR[$h]}}
stats: {prometheus: {enabled: false}}
storage: {enabled: false}
pipeline:
  max_series: 4096 # small tables: a restart takes a second, not four
  batch: {max_events: 1000, interval: 20ms}
  sinks:
    - {name: bus, type: nats, servers: [$NATS_URLS], subject: "rf.{measurement}.{shard}",
       shards: $SHARDS, timeout: 2s, backoff: {base: 100ms, max: 1s},
       stream: {name: RFC, replicas: 3}, buffer: {type: disk, path: $W/$h/fbuf}}
  routes:
    - {subject: "telemetry.>", sinks: [bus]}
EOF
}
agg_conf() {
    local h=$1 idx=$2
    mkdir -p "$W/$h"
    cat >"$W/$h.yaml" <<EOF
engine: {workers: 2, idle: {sleep: 2ms}, run_dir: $W/$h/run, data_dir: $W/$h/data}
listeners:
  - {name: lp, transport: tcp, protocol: influx_line, port: $LP_PORT, address: ${ADDR[$h]}}
stats: {prometheus: {enabled: true, listen: "${ADDR[$h]}:$PROM_PORT"}}
storage: {enabled: true}
nats_source: {enabled: true, servers: [$NATS_URLS], stream: RFC,
              subject: "rf.{measurement}.{shard}", shards: $SHARDS, durable: agg,
              hosts: 2, host: $idx, ack_wait: 5s, max_ack_pending: 256}
pipeline:
  max_series: 4096 # small tables: a restart takes a second, not four
  batch: {max_events: 1000, interval: 20ms}
  sinks:
    - {name: store, type: store}
  routes:
    - {subject: "telemetry.>", sinks: [store]}
EOF
}
start_rf() {
    local h=$1
    ip netns exec "$PFX-$h" "$RINGFLOWD" --config "$W/$h.yaml" >>"$W/$h.out" 2>>"$W/$h.err" &
    PID[$h]=$!
}
rf_stat() { "$RINGFLOW" stat --socket "$W/$1/run/ringflow.sock" --json >"$W/$1.stat" 2>/dev/null; }
rf_up() {
    kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited: $(tail -3 "$W/$1.err")"
    rf_stat "$1"
}
# stat_of HOST SECTION FIELD [KEY=VALUE...]: from the last rf_stat of HOST.
stat_of() { local h=$1; shift; "$PY" "$TOOL" stat "$W/$h.stat" "$@"; }
# Signals every host named, then waits for each (bounded; KILL after 30 s).
stop_rf() {
    local sig=$1 h i
    shift
    for h in "$@"; do kill -"$sig" "${PID[$h]}" 2>/dev/null; done
    for h in "$@"; do
        for ((i = 0; i < 150; i++)); do
            kill -0 "${PID[$h]}" 2>/dev/null || break
            # a zombie answers kill -0 until waited for: reap it if it exited
            [ -e "/proc/${PID[$h]}" ] && grep -q '^State:.*Z' "/proc/${PID[$h]}/status" 2>/dev/null &&
                break
            sleep 0.2
        done
        kill -KILL "${PID[$h]}" 2>/dev/null
        wait "${PID[$h]}" 2>/dev/null
        unset "PID[$h]"
    done
}

# ---- load ----
start_gen() {
    local h=$1 e=${1#e}
    mkdir -p "$W/gen-$h"
    ip netns exec "$PFX-$h" "$PY" "$TOOL" gen "${ADDR[$h]}" "$LP_PORT" "$e" "$RATE" "$W/gen-$h" \
        "$T0" &
    PID[gen-$h]=$!
}

# ---- accounting across restarts (counters restart at 0 with a process) ----
# What an edge accepted: the sum of its listener's "final: ... events=N"
# lines (one per stopped run), plus, for a run ended by SIGKILL (no final
# line), what stat said once its paused load no longer moved the count.
declare -A KILLED_ACCEPTED=([e1]=0 [e2]=0) EDGE_RETRIES=([e1]=0 [e2]=0) EDGE_DUPS=([e1]=0 [e2]=0)
declare -A AGG_MSGS=([a1]=0 [a2]=0) AGG_REDELIVERED=([a1]=0 [a2]=0)
final_events() {
    grep -o 'listener lp final: .* events=[0-9]*' "$W/$1.err" | sed 's/.* events=//' |
        awk '{ s += $1 } END { print s + 0 }'
}
settled_events() {
    local h=$1 last=-1 now i
    for ((i = 0; i < 40; i++)); do
        rf_stat "$h" || return 1
        now=$(stat_of "$h" listeners events)
        [ "$now" = "$last" ] && { echo "$now"; return 0; }
        last=$now
        sleep 1.1 # stat counters are published about once a second
    done
    echo "$last"
}
# Before a run of a host ends: its NATS counters, added to the totals.
bank_edge() {
    local h=$1
    rf_stat "$h" || return 0
    EDGE_RETRIES[$h]=$((EDGE_RETRIES[$h] + $(stat_of "$h" forwarders retries)))
    EDGE_DUPS[$h]=$((EDGE_DUPS[$h] + $(stat_of "$h" forwarders nats_duplicates)))
}
bank_agg() {
    local h=$1 m
    m=$(in_ns "$h" curl -fsS -m 2 "http://${ADDR[$h]}:$PROM_PORT/metrics" 2>/dev/null) || return 0
    AGG_MSGS[$h]=$((AGG_MSGS[$h] + $(awk '/^ringflow_nats_source_messages/ { s += $2 } END { print s + 0 }' <<<"$m")))
    AGG_REDELIVERED[$h]=$((AGG_REDELIVERED[$h] + $(awk '/^ringflow_nats_source_redelivered/ { s += $2 } END { print s + 0 }' <<<"$m")))
}
# Kills a ringflowd host under load: SIGTERM (it drains and writes its
# final counters) or, with --hard, SIGKILL (an edge's load pauses first so
# that stat can say what it accepted).
kill_rf() {
    local h=$1
    if [ "$RF_SIG" = KILL ] && [ "${h:0:1}" = e ]; then
        touch "$W/gen-$h/pause"
        wait_for 10 test -e "$W/gen-$h/paused" || die "$h's client did not pause"
        KILLED_ACCEPTED[$h]=$((KILLED_ACCEPTED[$h] + $(settled_events "$h")))
    fi
    case $h in e*) bank_edge "$h" ;; a*) bank_agg "$h" ;; esac
    stop_rf "$RF_SIG" "$h"
}

# ---- the run ----
log "work directory $W; namespaces $PFX-*; rate $RATE/s per edge"
setup_net
for h in n1 n2 n3; do nats_conf "$h"; done
for h in n1 n2 n3; do start_nats "$h"; done
for h in n1 n2 n3; do wait_for 20 nats_healthy "$h" || die "nats $h not healthy (see $W/$h.log)"; done
log "NATS cluster up (3 nodes, JetStream)"

edge_conf e1; edge_conf e2; agg_conf a1 0; agg_conf a2 1
start_rf e1; start_rf e2
wait_for 30 rf_up e1 && wait_for 30 rf_up e2 || die "edges did not start (see $W/e1.err)"
# The stream exists once an edge's first batch is acked (its sink creates
# it); an aggregator's consumers need it (ringflowd refuses to start
# without), so they start then.
start_gen e1; start_gen e2
stream_ready() { local m; m=$(jsz | cut -d' ' -f4); [ "${m:--1}" -gt 0 ]; }
wait_for 30 stream_ready || die "stream RFC not created (see $W/e1.err)"
log "stream RFC created (replicas 3)"
start_rf a1; start_rf a2
wait_for 30 rf_up a1 && wait_for 30 rf_up a2 || die "aggregators did not start (see $W/a1.err)"
log "edges and aggregators up; load running"
sleep "$STEADY"

log "kill -KILL NATS node n1 under load"
kill -KILL "${PID[n1]}"
wait "${PID[n1]}" 2>/dev/null
unset "PID[n1]"
sleep "$DOWN"
start_nats n1
wait_for 30 nats_healthy n1 || die "n1 not healthy after restart"
log "n1 back"
sleep "$STEADY"

log "kill -$RF_SIG aggregator a1 under load"
kill_rf a1
sleep "$DOWN"
start_rf a1
wait_for 30 rf_up a1 || die "a1 did not restart (see $W/a1.err)"
log "a1 back"
sleep "$STEADY"

log "kill -$RF_SIG edge e1 under load (e2 keeps going)"
kill_rf e1
sleep "$DOWN"
start_rf e1
wait_for 30 rf_up e1 || die "e1 did not restart (see $W/e1.err)"
rm -f "$W/gen-e1/pause" "$W/gen-e1/paused"
log "e1 back"
sleep "$STEADY"

log "load stops; draining"
touch "$W/gen-e1/stop" "$W/gen-e2/stop"
wait "${PID[gen-e1]}" "${PID[gen-e2]}"
unset "PID[gen-e1]" "PID[gen-e2]"
# Drained: nothing queued or in flight at either edge, twice a stat period
# apart (the listener may still have been parsing the last bytes).
edge_idle() {
    local h
    for h in e1 e2; do
        rf_stat "$h" || return 1
        [ "$(stat_of "$h" forwarders queued_events)" = 0 ] || return 1
        [ "$(stat_of "$h" forwarders in_flight)" = 0 ] || return 1
    done
}
edge_drained() { edge_idle && sleep 1.1 && edge_idle; }
wait_for 60 edge_drained || die "edges did not empty their buffers into NATS"
consumers_drained() { local j; j=$(jsz); set -- $j; [ "$1" = 0 ] && [ "$2" = 0 ]; }
wait_for 60 consumers_drained || die "consumers still pending: $(jsz detail)"
read -r _ _ _ STREAM_MSGS <<<"$(jsz)"
for h in e1 e2; do bank_edge "$h"; done
for h in a1 a2; do bank_agg "$h"; done
stop_rf TERM e1 e2 a1 a2
declare -A ACCEPTED=()
for h in e1 e2; do ACCEPTED[$h]=$(($(final_events "$h") + KILLED_ACCEPTED[$h])); done

for h in a1 a2; do
    "$RINGFLOW" query cl --dir "$W/$h/data/store" --format line >"$W/$h.points" 2>"$W/$h.qerr" ||
        die "query of $h's store failed: $(cat "$W/$h.qerr")"
done
"$PY" "$TOOL" store "$T0" "$W/a1.points" "$W/a2.points" >"$W/stored"
read -r ROWS UNIQUE DUPS FOREIGN <"$W/stored"
declare -A STORED_BY=()
while read -r e n; do STORED_BY[$e]=$n; done < <(tail -n +2 "$W/stored")
A1_ROWS=$(wc -l <"$W/a1.points") A2_ROWS=$(wc -l <"$W/a2.points")
TOTAL=$((ACCEPTED[e1] + ACCEPTED[e2]))

echo
echo "where every event went ($SECONDS s)"
row() { printf '  %-46s %10s %10s\n' "$@"; }
row "" e1 e2
row "accepted at the edge (listener, every run)" "${ACCEPTED[e1]}" "${ACCEPTED[e2]}"
row "  NATS publish retries (whole batches)" "${EDGE_RETRIES[e1]}" "${EDGE_RETRIES[e2]}"
row "  messages the stream found duplicate" "${EDGE_DUPS[e1]}" "${EDGE_DUPS[e2]}"
row "stored once (both aggregators)" "${STORED_BY[e1]:-0}" "${STORED_BY[e2]:-0}"
row "" a1 a2
row "NATS messages taken (each run, read before its stop)" "${AGG_MSGS[a1]}" "${AGG_MSGS[a2]}"
row "  of which redeliveries" "${AGG_REDELIVERED[a1]}" "${AGG_REDELIVERED[a2]}"
row "store rows" "$A1_ROWS" "$A2_ROWS"
printf '  stream RFC: %s messages\n' "$STREAM_MSGS"
printf '  store: %d rows = %d unique + %d duplicates (removed) + %d foreign\n' "$ROWS" "$UNIQUE" \
    "$DUPS" "$FOREIGN"
printf '  loss equation: accepted %d = stored unique %d + lost %d\n' "$TOTAL" "$UNIQUE" \
    $((TOTAL - UNIQUE))
echo

[ "$FOREIGN" = 0 ] || die "$FOREIGN stored rows were never sent"
[ "$ROWS" = $((UNIQUE + DUPS)) ] || die "rows do not add up"
if [ "${STORED_BY[e1]:-0}" != "${ACCEPTED[e1]}" ] || [ "${STORED_BY[e2]:-0}" != "${ACCEPTED[e2]}" ]; then
    [ "$HARD" = 1 ] && [ "$UNIQUE" -le "$TOTAL" ] && {
        log "--hard: $((TOTAL - UNIQUE)) accepted events were lost with killed processes' memory"
        exit 0
    }
    die "the loss equation does not balance"
fi
log "OK: $TOTAL events accepted at 2 edges, each stored exactly once across 2 aggregators ($DUPS duplicates removed)"
