# Shared helpers for bench/proxy and bench/switch. Sourced, not run.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
RESULTS_DIR="$BENCH_DIR/results"

# Cores: load generator and upstream(s) on LOAD_CORE, the proxy under test on PROXY_CORE.
LOAD_CORE=${LOAD_CORE:-0}
PROXY_CORE=${PROXY_CORE:-1}

LOADAVG_START=$(cut -d" " -f1-3 /proc/loadavg)

die() { echo "${0##*/}: $*" >&2; exit 1; }
log() { echo "${0##*/}: $*" >&2; }

# Non-zero exit with the install hint if a peer tool is missing.
need() {
    local missing=() t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if ((${#missing[@]})); then
        echo "${0##*/}: missing: ${missing[*]}" >&2
        echo "  install with: apt-get install nginx haproxy wrk   (Debian/Ubuntu; taskset is in util-linux, python3 in python3)" >&2
        exit 2
    fi
}

check_cores() {
    local n
    n=$(nproc)
    ((LOAD_CORE < n && PROXY_CORE < n)) ||
        die "needs cores $LOAD_CORE and $PROXY_CORE but this machine has $n (set LOAD_CORE / PROXY_CORE)"
    ((LOAD_CORE != PROXY_CORE)) || log "warning: LOAD_CORE = PROXY_CORE = $LOAD_CORE; load and proxy share a core"
}

# "10s" or "10" -> 10
secs() {
    local d=${1%s}
    [[ $d =~ ^[0-9]+$ ]] || die "not a whole number of seconds: $1"
    echo "$d"
}

# Temp dir and child processes, cleaned up on any exit.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cutover-bench.XXXXXX")
CHILD_PIDS=()
cleanup() {
    local pid i
    for pid in "${CHILD_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${CHILD_PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    CHILD_PIDS=()
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD... : run CMD in the background, output to $TMP/NAME.log; sets LAST_PID.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    LAST_PID=$!
    CHILD_PIDS+=("$LAST_PID")
}

# fg CMD...: run CMD as a tracked child and wait for it, so that SIGINT/SIGTERM to the
# script interrupts the wait and cleanup stops CMD too. Returns CMD's status.
fg() {
    "$@" &
    local pid=$! rc=0
    CHILD_PIDS+=("$pid")
    wait "$pid" || rc=$?
    return "$rc"
}

# stop PID: SIGTERM, wait up to 10 s, then SIGKILL. Sets STOP_RC to the exit status.
stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    STOP_RC=0
    wait "$pid" 2>/dev/null || STOP_RC=$?
}

# free_ports N: N distinct free loopback TCP ports, space separated.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# wait_http NAME PID PORT EXPECT_REGEX: wait (up to 15 s) until GET / on the port
# answers 200 with a body matching the regex; fail early if PID died.
wait_http() {
    local name=$1 pid=$2 port=$3 expect=$4 i body
    for ((i = 0; i < 150; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$TMP/$name.log" >&2 2>/dev/null || true
            die "$name exited before listening on 127.0.0.1:$port"
        fi
        if body=$(curl -fsS --noproxy '*' --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null) && [[ $body =~ $expect ]]; then
            return 0
        fi
        sleep 0.1
    done
    cat "$TMP/$name.log" >&2 2>/dev/null || true
    die "$name did not answer /$expect/ on 127.0.0.1:$port within 15 s (last body: ${body:-none})"
}

# Target directory, honouring CARGO_TARGET_DIR and cargo config.
target_dir() {
    (cd "$REPO_DIR" && cargo metadata --format-version 1 --no-deps 2>/dev/null) |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
        echo "${CARGO_TARGET_DIR:-$REPO_DIR/target}"
}

# build PKG...: cargo build --release for the given packages; sets BIN_DIR.
build() {
    local args=() p
    for p in "$@"; do args+=(-p "$p"); done
    log "building: cargo build --release ${args[*]}"
    (cd "$REPO_DIR" && cargo build --release "${args[@]}") ||
        die "build failed (is \"bench\" in the root Cargo.toml workspace members?)"
    BIN_DIR="$(target_dir)/release"
}

# wrk_parse FILE: "rps p50_ms p99_ms requests socket_errors non2xx" from `wrk --latency` output.
wrk_parse() {
    python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
def lat(p):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % p, text, re.M)
    return "%.3f" % (float(m.group(1)) * unit[m.group(2)]) if m else "nan"
m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
rps = m.group(1) if m else "nan"
m = re.search(r"^\s*(\d+) requests in", text, re.M)
reqs = m.group(1) if m else "0"
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
sock = sum(int(x) for x in m.groups()) if m else 0
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
non2xx = int(m.group(1)) if m else 0
if rps == "nan" or reqs == "0":
    sys.exit("cannot parse wrk output in " + sys.argv[1])
print(rps, lat(50), lat(99), reqs, sock, non2xx)
EOF
}

# dir_pids DIR: the pids of the processes whose working directory is DIR. The daemon of a
# scratch app and its instances run in the app's directory, which is how exit traps find
# them whatever the daemon did.
dir_pids() {
    local want d
    want=$(realpath "$1" 2>/dev/null) || return 0
    for d in /proc/[0-9]*; do
        [[ $(readlink "$d/cwd" 2>/dev/null) == "$want" ]] && echo "${d#/proc/}"
    done
    return 0
}

# kill_dir DIR: SIGKILL every process that runs in DIR (see dir_pids).
kill_dir() {
    local pid
    for pid in $(dir_pids "$1"); do kill -KILL "$pid" 2>/dev/null || true; done
}

# cpu_secs PID [self]: CPU seconds (user + system) used so far by PID and its direct
# children (nginx's worker is a child of its master); with "self", by PID alone (the
# cutover daemon, whose children are the app's instances).
cpu_secs() {
    python3 - "$1" "${2:-}" <<'EOF'
import os, sys
root = sys.argv[1]
alone = sys.argv[2] == "self"
tck = os.sysconf("SC_CLK_TCK")
total = 0
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        stat = open("/proc/%s/stat" % d).read()
    except OSError:
        continue
    f = stat[stat.rindex(")") + 2:].split()
    if d == root or (f[1] == root and not alone):  # f[1] is the ppid
        total += int(f[11]) + int(f[12])  # utime, stime
print("%.2f" % (total / tck))
EOF
}

# cpu_snapshot: "BUSY OURS": CPU seconds the whole machine has been busy (from /proc/stat,
# so it includes processes that have exited), and CPU seconds used by this script and
# everything it started (its live descendants plus reaped children, like wrk). The
# difference between two snapshots, minus ours, is what other work on the machine used.
cpu_snapshot() {
    python3 - "$$" <<'EOF'
import os, sys
tck = os.sysconf("SC_CLK_TCK")
f = open("/proc/stat").readline().split()
user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f[1:9])
busy = user + nice + system + irq + softirq + steal
procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            stat = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        x = stat[stat.rindex(")") + 2:].split()
        procs[d] = (x[1], int(x[11]) + int(x[12]), int(x[13]) + int(x[14]))
root = sys.argv[1]
me = os.getpid()
ours = procs[root][1] + procs[root][2] if root in procs else 0
kids = {}
for pid, (ppid, _, _) in procs.items():
    kids.setdefault(ppid, []).append(pid)
stack = list(kids.get(root, []))
while stack:
    pid = stack.pop()
    if int(pid) == me:
        continue
    ours += procs[pid][1]
    stack.extend(kids.get(pid, []))
print("%.2f %.2f" % (busy / tck, ours / tck))
EOF
}

# other_pct SNAP_BEFORE SNAP_AFTER SECONDS: % of one core used by other work in between.
other_pct() {
    python3 -c "import sys; b0,o0,b1,o1,t=map(float,sys.argv[1:]); print('%.0f' % max(0, 100*((b1-b0)-(o1-o0))/t))" $1 $2 "$3"
}

# Markdown lines describing this machine and checkout.
machine_md() {
    local cpu commit dirty=""
    cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
    commit=$(git -C "$REPO_DIR" rev-parse --short=12 HEAD 2>/dev/null || echo "none (no commits yet)")
    if [[ -n $(git -C "$REPO_DIR" status --porcelain 2>/dev/null | head -1) ]]; then dirty=" (working tree has uncommitted changes)"; fi
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- git commit: $commit$dirty"
    echo "- machine: $(nproc) cores, ${cpu:-unknown CPU}, kernel $(uname -sr)"
    echo "- wrk: $( (wrk -v 2>&1 || true) | head -1 | awk '{print $2}')"
    if command -v nginx >/dev/null; then echo "- nginx: $(nginx -v 2>&1 | sed 's/.*nginx\///')"; fi
    if command -v haproxy >/dev/null; then echo "- haproxy: $( (haproxy -v || true) | head -1 | awk '{print $3}')"; fi
    echo "- load average at start: $LOADAVG_START (other work on the machine skews results)"
    echo "- rustc: $(rustc --version 2>/dev/null || echo unknown)"
}
