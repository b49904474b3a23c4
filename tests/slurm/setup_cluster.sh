#!/usr/bin/env bash
# Install (if needed) and start a real one-node Slurm cluster on localhost, so
# that tests can submit jobs with sbatch/srun/scontrol.
#
# Usage: tests/slurm/setup_cluster.sh
#
# Safe to run many times: when the cluster is already up (the node answers as
# idle/mixed/allocated in sinfo, and slurm.conf is what this script would
# write) it prints one line and exits 0 at once (~0.2 s). When slurm.conf
# differs (script changed, new hostname) the daemons are restarted with the
# new file; queued and running jobs survive that.
#
# Exit status:
#   0  cluster up; the last line on stdout is a one-line summary
#   3  Slurm cannot be installed/run here (not root, no apt-get, no network...);
#      one plain line on stderr says why, so callers can skip the Slurm tests
#   1  anything else went wrong; stderr has the reason and a daemon-log tail
#
# What it does (no systemd needed; daemons are started in the background):
#   * apt-get installs Debian's slurm-wlm and munge when a command is missing
#   * creates /etc/munge/munge.key if missing and starts munged as user munge
#   * writes /etc/slurm/slurm.conf for one node (NodeName=$(hostname -s),
#     NodeAddr=127.0.0.1, CPUs=$(nproc)) with a partition "cpu"
#   * starts slurmctld and slurmd, waits until the node is idle (resuming it if
#     it comes up down/drained) and prints a summary line.
# Stop it with tests/slurm/stop_cluster.sh.
#
# Environment overrides (all optional):
#   IMGCLS_SLURM_CLUSTER    cluster name               (default imgcls)
#   IMGCLS_SLURM_PARTITION  partition name             (default cpu)
#   IMGCLS_SLURMCTLD_PORT   slurmctld port, 127.0.0.1  (default 6817, or the
#                           next free pair 6819/6820, ... if taken)
#   IMGCLS_SLURMD_PORT      slurmd port                (default ctld port + 1)
#   IMGCLS_SLURM_TIMEOUT    seconds to wait for the node (default 90)

set -uo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export LC_ALL=C

CLUSTER_NAME=${IMGCLS_SLURM_CLUSTER:-imgcls}
PARTITION=${IMGCLS_SLURM_PARTITION:-cpu}
WAIT_S=${IMGCLS_SLURM_TIMEOUT:-90}

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
CTLD_LOG=$LOG_DIR/slurmctld.log
SLURMD_LOG=$LOG_DIR/slurmd.log
CTLD_PIDFILE=/run/slurmctld.pid
SLURMD_PIDFILE=/run/slurmd.pid
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
MUNGE_KEY=/etc/munge/munge.key
MUNGE_LOG=/var/log/munge/munged.log
MARKER="# Managed by imgcls tests/slurm/setup_cluster.sh -- rewritten on every run."

NODE=$(hostname -s 2>/dev/null || hostname)

say() { echo "setup_cluster: $*" >&2; }

# Cannot install/run Slurm here at all: one plain line, exit 3.
skip() {
    echo "Slurm not available: $*" >&2
    exit 3
}

# Anything else: message, optional log tails, exit 1.
die() {
    local msg=$1
    shift
    echo "setup_cluster: ERROR: $msg" >&2
    local f
    for f in "$@"; do
        if [ -s "$f" ]; then
            echo "---- last lines of $f ----" >&2
            tail -n 25 "$f" >&2
        fi
    done
    exit 1
}

pid_alive() { # pidfile
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Node state as sinfo prints it (idle, mixed, allocated, down*, drained, ...).
node_state() {
    timeout 10 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1
}

state_usable() {
    case "$1" in
        idle | mixed | allocated | alloc | completing) return 0 ;;
        *) return 1 ;;
    esac
}

summary() {
    local line
    line=$(timeout 10 sinfo -h -N -n "$NODE" -o '%N %c %m %P %T' 2>/dev/null | head -n 1)
    # e.g. "vm 2 23000 cpu* idle"
    [ -n "$line" ] || line="$NODE ? ? $PARTITION ?"
    # shellcheck disable=SC2086 # split the fields on purpose
    set -- $line
    echo "Slurm cluster '$CLUSTER_NAME' up: node $1 ($2 CPUs, $3 MB), partition ${4%\*}$( [ "${4: -1}" = '*' ] && echo ' (default)'), state $5${CTLD_PORT:+, slurmctld 127.0.0.1:$CTLD_PORT}"
}

munge_ok() {
    command -v munge >/dev/null && command -v unmunge >/dev/null &&
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1
}

port_in_use() { # port
    # Something accepts connections on 127.0.0.1:port (works without ss/netstat).
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

conf_value() { # key -> value from the current slurm.conf
    [ -r "$CONF" ] && sed -n "s/^$1=\([^ ]*\).*/\1/p" "$CONF" | head -n 1
}

# ---------------------------------------------------------------------------
# The slurm.conf this run wants (ports of a previous run are kept).
# ---------------------------------------------------------------------------
CPUS=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MEM=$((mem_mb * 95 / 100))
[ "$REAL_MEM" -ge 100 ] || REAL_MEM=100

write_conf() { # ctld_port slurmd_port -> config text on stdout
    cat <<EOF
$MARKER
# One-node test cluster on localhost for the imgcls Slurm tests.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
# No cgroups: plain /proc process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Schedule CPUs only (memory is not a consumable), so 1-CPU jobs share the node.
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=$CTLD_SPOOL
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$CTLD_PIDFILE
SlurmdPidFile=$SLURMD_PIDFILE
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info
ReturnToService=2
JobRequeue=1
MinJobAge=300
KillWait=10
InactiveLimit=0
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
MessageTimeout=10
MailProg=/bin/true
# Resource limits of the submitting shell are not forced onto jobs.
PropagateResourceLimits=NONE
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

stop_daemon() { # pidfile name
    local pid
    if pid_alive "$1"; then
        pid=$(cat "$1")
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
        sleep 0.2
    fi
    rm -f "$1"
}

# Ports: keep those of a previous run (stable across reruns) unless overridden.
CTLD_PORT=${IMGCLS_SLURMCTLD_PORT:-}
SLURMD_PORT=${IMGCLS_SLURMD_PORT:-}
prev_ctld_port=$(conf_value SlurmctldPort)
prev_slurmd_port=$(conf_value SlurmdPort)
managed=0
[ -r "$CONF" ] && head -n 1 "$CONF" | grep -qF "$MARKER" && managed=1
if [ -z "$CTLD_PORT" ] && [ "$managed" = 1 ] && [ -n "$prev_ctld_port" ]; then
    CTLD_PORT=$prev_ctld_port
    SLURMD_PORT=${SLURMD_PORT:-$prev_slurmd_port}
fi
CTLD_PORT=${CTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-$((CTLD_PORT + 1))}

new_conf=$(write_conf "$CTLD_PORT" "$SLURMD_PORT")

# ---------------------------------------------------------------------------
# 1. Fast path: already up, answering, and running the wanted slurm.conf.
#    (A slurm.conf not written by this script is accepted as it is.)
# ---------------------------------------------------------------------------
if command -v sinfo >/dev/null && [ -r "$CONF" ] &&
    { [ "$managed" = 0 ] || [ "$new_conf" = "$(cat "$CONF")" ]; } &&
    { pid_alive "$CTLD_PIDFILE" || pgrep -x slurmctld >/dev/null 2>&1; } &&
    { pid_alive "$SLURMD_PIDFILE" || pgrep -x slurmd >/dev/null 2>&1; }; then
    state=$(node_state)
    if state_usable "$state"; then
        [ "$managed" = 1 ] || CTLD_PORT=$(conf_value SlurmctldPort)
        summary
        exit 0
    fi
fi

# ---------------------------------------------------------------------------
# 2. Install slurm-wlm and munge when anything is missing.
# ---------------------------------------------------------------------------
missing=()
for cmd in sbatch srun sinfo squeue scontrol scancel slurmctld slurmd munged munge unmunge; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done

if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || skip "not root, cannot install slurm-wlm/munge (missing: ${missing[*]})"
    command -v apt-get >/dev/null 2>&1 || skip "no apt-get to install slurm-wlm/munge (missing: ${missing[*]})"
    say "installing slurm-wlm and munge with apt-get (missing: ${missing[*]})"
    apt_log=$(mktemp /tmp/imgcls-slurm-apt.XXXXXX.log)
    # Keep package scripts from trying to start services (there is no init).
    added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && added_policy=1
    fi
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=300 slurm-wlm munge >>"$apt_log" 2>&1
    }
    if ! apt_install; then
        say "apt-get install failed; running apt-get update and retrying"
        DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 >>"$apt_log" 2>&1
        apt_install
    fi
    apt_rc=$?
    [ "$added_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ $apt_rc -ne 0 ]; then
        reason=$(grep -E '^(E:|W:|Err:)' "$apt_log" | tail -n 1)
        skip "apt-get install slurm-wlm munge failed: ${reason:-unknown error} (log: $apt_log)"
    fi
    hash -r
    for cmd in "${missing[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || skip "installed slurm-wlm and munge but '$cmd' is still missing"
    done
    rm -f "$apt_log"
fi

[ "$(id -u)" = 0 ] || skip "not root, cannot start slurmctld/slurmd/munged"

# ---------------------------------------------------------------------------
# 3. Munge: key and daemon.
# ---------------------------------------------------------------------------
munge_user=munge
id munge >/dev/null 2>&1 || munge_user=root
install -d -m 0700 -o "$munge_user" -g "$(id -gn "$munge_user")" /etc/munge /var/log/munge
install -d -m 0711 -o "$munge_user" -g "$(id -gn "$munge_user")" /var/lib/munge
install -d -m 0755 -o "$munge_user" -g "$(id -gn "$munge_user")" /run/munge
if [ ! -s "$MUNGE_KEY" ]; then
    say "creating $MUNGE_KEY"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile="$MUNGE_KEY" --force >/dev/null 2>&1 ||
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
fi
chown "$munge_user:$(id -gn "$munge_user")" "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"

if ! munge_ok; then
    if pid_alive /run/munge/munged.pid; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null
        sleep 1
    fi
    rm -f /run/munge/munged.pid
    if [ "$munge_user" = root ]; then
        munged --force >/dev/null 2>&1
    else
        runuser -u munge -- munged >/dev/null 2>&1 || munged --force >/dev/null 2>&1
    fi
    for _ in $(seq 1 50); do
        munge_ok && break
        sleep 0.2
    done
    munge_ok || die "munged did not start (munge -n | unmunge fails)" "$MUNGE_LOG"
fi

# ---------------------------------------------------------------------------
# 4. slurm.conf and daemons
# ---------------------------------------------------------------------------
restart=0
if [ ! -r "$CONF" ] || [ "$new_conf" != "$(cat "$CONF")" ]; then
    restart=1
fi
pid_alive "$CTLD_PIDFILE" || restart=1
pid_alive "$SLURMD_PIDFILE" || restart=1

if [ "$restart" = 1 ]; then
    # Stop whatever part of the cluster is running, then pick free ports.
    stop_daemon "$SLURMD_PIDFILE"
    stop_daemon "$CTLD_PIDFILE"
    if pgrep -x slurmctld >/dev/null 2>&1 || pgrep -x slurmd >/dev/null 2>&1; then
        die "a slurmctld/slurmd not started by this script is running (pids: $(pgrep -x 'slurmctld|slurmd' | tr '\n' ' ')); stop it first"
    fi
    if port_in_use "$CTLD_PORT" || port_in_use "$SLURMD_PORT"; then
        if [ -n "${IMGCLS_SLURMCTLD_PORT:-}${IMGCLS_SLURMD_PORT:-}" ]; then
            die "port $CTLD_PORT or $SLURMD_PORT on 127.0.0.1 is already in use"
        fi
        found=0
        for p in $(seq 6817 2 6897); do
            if ! port_in_use "$p" && ! port_in_use "$((p + 1))"; then
                CTLD_PORT=$p
                SLURMD_PORT=$((p + 1))
                found=1
                break
            fi
        done
        [ "$found" = 1 ] || die "no free pair of ports in 6817-6898 on 127.0.0.1"
        new_conf=$(write_conf "$CTLD_PORT" "$SLURMD_PORT")
    fi

    install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$CTLD_SPOOL" "$SLURMD_SPOOL"
    if [ -e "$CONF" ] && [ "$managed" = 0 ]; then
        cp -p "$CONF" "$CONF.bak.$(date +%Y%m%d%H%M%S)"
        say "kept the previous $CONF as $CONF.bak.*"
    fi
    if ! { printf '%s\n' "$new_conf" >"$CONF.tmp" && mv -f "$CONF.tmp" "$CONF" && chmod 0644 "$CONF"; }; then
        die "cannot write $CONF"
    fi
    # Slurm 22.05 reads cgroup.conf only for cgroup plugins; none are used here.
    # (CgroupPlugin=disabled only exists from 23.02 on, so no cgroup.conf is written.)

    # -----------------------------------------------------------------------
    # 5. Start the daemons (they daemonize themselves).
    # -----------------------------------------------------------------------
    say "starting slurmctld on 127.0.0.1:$CTLD_PORT and slurmd on 127.0.0.1:$SLURMD_PORT"
    slurmctld -i >>"$CTLD_LOG" 2>&1 || die "slurmctld failed to start" "$CTLD_LOG"
    for _ in $(seq 1 50); do
        pid_alive "$CTLD_PIDFILE" && timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP' && break
        sleep 0.2
    done
    pid_alive "$CTLD_PIDFILE" || die "slurmctld exited right after start" "$CTLD_LOG"
    slurmd >>"$SLURMD_LOG" 2>&1 || die "slurmd failed to start" "$SLURMD_LOG"
fi

# ---------------------------------------------------------------------------
# 6. Wait for the node to be usable; resume it if it is down/drained.
# ---------------------------------------------------------------------------
deadline=$((SECONDS + WAIT_S))
last_resume=-100
state=
while :; do
    pid_alive "$CTLD_PIDFILE" || die "slurmctld died" "$CTLD_LOG"
    pid_alive "$SLURMD_PIDFILE" || { sleep 0.5; pid_alive "$SLURMD_PIDFILE" || die "slurmd died" "$SLURMD_LOG" "$CTLD_LOG"; }
    state=$(node_state)
    state_usable "$state" && break
    case "$state" in
        *down* | *drain* | *fail*)
            if [ $((SECONDS - last_resume)) -ge 5 ]; then
                say "node $NODE is '$state'; resuming it"
                scontrol update nodename="$NODE" state=resume >/dev/null 2>&1
                last_resume=$SECONDS
            fi
            ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] ||
        die "node $NODE not usable after ${WAIT_S}s (state '${state:-unknown}'; reason: $(timeout 5 sinfo -h -N -n "$NODE" -o '%E' 2>/dev/null))" "$SLURMD_LOG" "$CTLD_LOG"
    sleep 0.5
done

summary
