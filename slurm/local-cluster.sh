#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the SLURM tests and the submit benchmark.
#
#   slurm/local-cluster.sh start    install (Debian/Ubuntu, apt) if missing, configure, start
#                                   munged, slurmctld and slurmd, wait until the node is idle
#   slurm/local-cluster.sh stop     stop the three daemons
#   slurm/local-cluster.sh status   say what runs and show sinfo
#
# Run as root. Works without systemd (containers): the daemons are started directly and
# tracked by their pid files. Idempotent: `start` on a running cluster with an unchanged
# configuration only checks that the node is idle; a changed configuration restarts it.
# No accounting (no slurmdbd): `bench status` reads squeue and the records, never sacct.
#
# Environment: SLURM_LOCAL_MEM_MARGIN_MB (default 1024) is kept free of RealMemory so slurmd
# never finds less memory than configured (that would drain the node);
# SLURM_LOCAL_WAIT_S (default 60) bounds the wait for the idle node.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
LOG_DIR=/var/log/slurm
RUN_DIR=/run/slurm
CTLD_PID="$RUN_DIR/slurmctld.pid"
SLURMD_PID="$RUN_DIR/slurmd.pid"
MUNGE_PID=/run/munge/munged.pid
MUNGE_LOG=/var/log/munge/munged.log
MARGIN_MB="${SLURM_LOCAL_MEM_MARGIN_MB:-1024}"
WAIT_S="${SLURM_LOCAL_WAIT_S:-60}"
NODE="$(hostname -s)"

die() {
    echo "local-cluster: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
}

alive() {  # alive PIDFILE: the process named in the pid file runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sinfo >/dev/null || missing+=(slurm-client)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    echo "local-cluster: installing ${missing[*]}"
    # The packages' postinst tries to start services through invoke-rc.d; without an init
    # system that is refused harmlessly and we start the daemons ourselves below.
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends "${missing[@]}"; }
}

write_config() {  # writes slurm.conf; returns 0 if it changed
    local hw mem real cpus tmp
    # slurmd's own view of the hardware, so the node's topology matches what slurmd reports.
    hw="$(slurmd -C | head -n 1)"
    cpus="$(nproc)"
    mem="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
    real=$((mem - MARGIN_MB))
    [ "$real" -gt 256 ] || real=$((mem / 2))
    hw="$(echo "$hw" | sed -E 's/ RealMemory=[0-9]+//; s/^NodeName=[^ ]+ //')"
    [ -n "$hw" ] || hw="CPUs=$cpus"
    mkdir -p "$CONF_DIR"
    tmp="$(mktemp "$CONF_DIR/.slurm.conf.XXXXXX")"
    cat >"$tmp" <<EOF
# Written by vit-plasticity-bench slurm/local-cluster.sh: a one-node cluster for tests.
ClusterName=benchlocal
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Arrays start fast: the main scheduler looks at the whole queue, without batching delays.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=10000,bf_interval=5,bf_continue
MaxArraySize=10001
MaxJobCount=100000
# Finished jobs leave squeue quickly; the records are what say how a job ended.
MinJobAge=10
JobRequeue=1
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
# A requeued or preempted job gets SIGTERM, then SIGKILL KillWait seconds later. submitit
# ignores SIGTERM (it checkpoints on USR2), so a long KillWait lets a requeued job run on.
KillWait=2
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 $hw RealMemory=$real State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=UNLIMITED State=UP
EOF
    chmod 644 "$tmp"
    if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return 1
    fi
    mv "$tmp" "$CONF"
    return 0
}

start_munge() {
    alive "$MUNGE_PID" && return 0
    mkdir -p /etc/munge /var/log/munge /var/lib/munge /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    chown -R munge:munge /etc/munge /var/log/munge /var/lib/munge /run/munge
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    # munged refuses to run as root; it daemonizes and writes its own pid file.
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" --log-file="$MUNGE_LOG" \
        || die "munged did not start; $(tail -n 20 "$MUNGE_LOG" 2>/dev/null)"
    for _ in $(seq 50); do
        munge -n </dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munge does not answer; $(tail -n 20 "$MUNGE_LOG" 2>/dev/null)"
}

start_slurm() {
    mkdir -p "$LOG_DIR" "$RUN_DIR" /var/spool/slurmd /var/spool/slurmctld
    if ! alive "$CTLD_PID"; then
        slurmctld || die "slurmctld did not start; $(tail -n 30 "$LOG_DIR/slurmctld.log")"
    fi
    if ! alive "$SLURMD_PID"; then
        slurmd || die "slurmd did not start; $(tail -n 30 "$LOG_DIR/slurmd.log")"
    fi
}

stop_pid() {  # stop_pid NAME PIDFILE
    local pid
    alive "$2" || { rm -f "$2"; return 0; }
    pid="$(cat "$2")"
    kill "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$2"; echo "local-cluster: stopped $1"; return 0; }
        sleep 0.1
    done
    echo "local-cluster: $1 (pid $pid) ignores SIGTERM, sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$2"
}

stop_all() {
    stop_pid slurmd "$SLURMD_PID"
    stop_pid slurmctld "$CTLD_PID"
    stop_pid munged "$MUNGE_PID"
}

node_state() {
    sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1
}

show_logs() {
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" "$MUNGE_LOG"; do
        echo "--- last lines of $f" >&2
        tail -n 25 "$f" >&2 2>/dev/null || echo "(no log)" >&2
    done
}

wait_idle() {
    local state="" deadline=$((SECONDS + WAIT_S)) resumed=0
    while [ $SECONDS -lt $deadline ]; do
        state="$(node_state)"
        case "$state" in
            idle|mixed|allocated|completing)
                echo "local-cluster: node $NODE is $state (partition debug)"
                return 0 ;;
            down*|drain*|drained*)
                # A node left down or drained by an earlier run: bring it back once.
                if [ $resumed = 0 ]; then
                    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
                    resumed=1
                fi ;;
        esac
        sleep 0.5
    done
    echo "local-cluster: node $NODE is not idle after ${WAIT_S}s (state: '${state:-unknown}')" >&2
    sinfo -N -l >&2 2>/dev/null || true
    scontrol show node "$NODE" 2>/dev/null | grep -E 'State|Reason' >&2 || true
    show_logs
    exit 1
}

cmd_start() {
    need_root
    install_packages
    if write_config && { alive "$CTLD_PID" || alive "$SLURMD_PID"; }; then
        echo "local-cluster: configuration changed, restarting slurmctld and slurmd"
        stop_pid slurmd "$SLURMD_PID"
        stop_pid slurmctld "$CTLD_PID"
    fi
    start_munge
    start_slurm
    wait_idle
}

cmd_status() {
    local name pidfile
    for name in munged slurmctld slurmd; do
        case $name in
            munged) pidfile=$MUNGE_PID ;;
            slurmctld) pidfile=$CTLD_PID ;;
            slurmd) pidfile=$SLURMD_PID ;;
        esac
        if alive "$pidfile"; then
            echo "$name: running (pid $(cat "$pidfile"))"
        else
            echo "$name: stopped"
        fi
    done
    if alive "$CTLD_PID"; then
        sinfo
    else
        return 3
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) need_root; stop_all ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
