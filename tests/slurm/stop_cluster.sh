#!/usr/bin/env bash
# Stop the one-node test cluster started by tests/slurm/setup_cluster.sh.
#
# Usage: tests/slurm/stop_cluster.sh [--keep-jobs] [--keep-munge] [--purge]
#   --keep-jobs   do not cancel queued/running jobs first (they are kept in the
#                 slurmctld state and resume when the cluster is started again;
#                 running job scripts go on running without slurmd)
#   --keep-munge  leave munged running
#   --purge       also delete the job/node state (spool dirs) and the logs, so
#                 the next start begins with an empty queue and job ids from 1
#
# Only daemons recorded in the pid files that setup_cluster.sh configures are
# stopped. Exits 0 when nothing is running.

set -uo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

keep_jobs=0
keep_munge=0
purge=0
for arg in "$@"; do
    case "$arg" in
        --keep-jobs) keep_jobs=1 ;;
        --keep-munge) keep_munge=1 ;;
        --purge) purge=1 ;;
        -h | --help)
            sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "stop_cluster: unknown argument '$arg'" >&2
            exit 2
            ;;
    esac
done

CTLD_PIDFILE=/run/slurmctld.pid
SLURMD_PIDFILE=/run/slurmd.pid
MUNGE_PIDFILE=/run/munge/munged.pid

say() { echo "stop_cluster: $*" >&2; }

pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

stop_daemon() { # pidfile name
    local pid
    if pid_alive "$1"; then
        pid=$(cat "$1")
        say "stopping $2 (pid $pid)"
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 75); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$2 (pid $pid) still running after 15s; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null
        fi
    fi
    rm -f "$1"
}

if [ "$keep_jobs" = 0 ] && pid_alive "$CTLD_PIDFILE" && command -v squeue >/dev/null 2>&1; then
    jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null
        # Give the job scripts KillWait to exit before slurmd goes away.
        for _ in $(seq 1 60); do
            [ -z "$(timeout 5 squeue -h -t R,CG -o '%A' 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

stop_daemon "$SLURMD_PIDFILE" slurmd
stop_daemon "$CTLD_PIDFILE" slurmctld
if [ "$keep_munge" = 0 ]; then
    stop_daemon "$MUNGE_PIDFILE" munged
fi

if [ "$purge" = 1 ]; then
    say "purging /var/spool/slurmctld, /var/spool/slurmd and /var/log/slurm"
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*.log
fi
exit 0
