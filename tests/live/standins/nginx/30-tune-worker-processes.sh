#!/bin/sh
# Stand-in for the official 30-tune-worker-processes.sh: with
# NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE set, replace "worker_processes"
# in /etc/nginx/nginx.conf by the number of CPUs the container may use
# (the smallest of: online CPUs, cgroup v1/v2 cpuset, cgroup v1/v2 CPU quota).

set -eu

LC_ALL=C
ME=$(basename "$0")
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

[ "${NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE:-}" ] || exit 0

touch /etc/nginx/nginx.conf 2>/dev/null || { echo >&2 "$ME: error: can not modify /etc/nginx/nginx.conf (read-only file system?)"; exit 0; }

ceildiv() {
    echo $(( ($1 + $2 - 1) / $2 ))
}

# number of CPUs in a cpuset list such as "0-3,6"
count_cpuset() {
    [ -r "$1" ] || return 1
    list=$(cat "$1")
    [ -n "$list" ] || return 1
    n=0
    for token in $(echo "$list" | tr ',' ' '); do
        case "$token" in
            *-*) n=$(( n + ${token#*-} - ${token%-*} + 1 )) ;;
            *) n=$(( n + 1 )) ;;
        esac
    done
    echo "$n"
}

quota_v1() {
    [ -r "$1/cpu.cfs_quota_us" ] && [ -r "$1/cpu.cfs_period_us" ] || return 1
    quota=$(cat "$1/cpu.cfs_quota_us")
    period=$(cat "$1/cpu.cfs_period_us")
    [ "$quota" != "-1" ] && [ "$period" != "0" ] || return 1
    n=$(ceildiv "$quota" "$period")
    [ "$n" -gt 0 ] || return 1
    echo "$n"
}

quota_v2() {
    [ -r "$1/cpu.max" ] || return 1
    read -r quota period < "$1/cpu.max"
    [ "$quota" != "max" ] && [ "$period" != "0" ] || return 1
    n=$(ceildiv "$quota" "$period")
    [ "$n" -gt 0 ] || return 1
    echo "$n"
}

# mount point of a cgroup v1 controller, or of the cgroup v2 hierarchy
mount_of() {
    awk -v want="$1" '{
        for (i = 1; i <= NF; i++) if ($i == "-") break
        fstype = $(i + 1); opts = $(i + 3)
        if (want == "cgroup2" && fstype == "cgroup2") { print $5; exit }
        if (want != "cgroup2" && fstype == "cgroup") {
            n = split(opts, o, ",")
            for (j = 1; j <= n; j++) if (o[j] == want) { print $5; exit }
        }
    }' /proc/self/mountinfo 2>/dev/null
}

ncpu=$(getconf _NPROCESSORS_ONLN)
candidates="$ncpu"

dir=$(mount_of cpuset)
if [ -n "$dir" ]; then
    n=$(count_cpuset "$dir/cpuset.effective_cpus") && candidates="$candidates $n"
fi
dir=$(mount_of cpu)
if [ -n "$dir" ]; then
    n=$(quota_v1 "$dir") && candidates="$candidates $n"
fi
dir=$(mount_of cgroup2)
if [ -n "$dir" ]; then
    n=$(count_cpuset "$dir/cpuset.cpus.effective") && candidates="$candidates $n"
    n=$(quota_v2 "$dir") && candidates="$candidates $n"
fi

ncpu=$(echo "$candidates" | tr ' ' '\n' | sort -n | head -n 1)

sed -i.bak -r 's/^(worker_processes)(.*)$/# Commented out by '"$ME"' on '"$(date)"'\n#\1\2\n\1 '"$ncpu"';/' /etc/nginx/nginx.conf
