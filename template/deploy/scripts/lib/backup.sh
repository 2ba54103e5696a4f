#!/usr/bin/env bash
# What scripts/backup-db.sh and scripts/restore-drill.sh share to prove a dump complete: the
# consistent snapshot that yields the dump together with the source's per-table row counts and
# checksums, a throwaway MySQL container to restore into (the production image, no network,
# removed afterwards), and the per-table comparison. Source it after lib/common.sh; it defines
# functions only.

SCRATCH_LABEL=org.petory.scratch-mysql # every throwaway container carries it: backup-<project>, drill-<project>
# What a dump records at its end, as SQL comments that a restore ignores, fields split by tabs:
# "-- petory-backup snapshot" and the snapshot's epoch seconds, "... binlog" and the binary log's
# file and position at that snapshot, one "... stats" line per row count or CHECKSUM TABLE result
# (table_stats_sql's output), then "... end".
MANIFEST_PREFIX="-- petory-backup"

# --- run inside the mysql container (sent with `declare -f`: bash, coreutils and the MySQL clients only)

# table_stats_sql MODE TABLE...: the statements that print each table's row count ("rows<TAB>name<TAB>n")
# and, with MODE full, its CHECKSUM TABLE ("<db>.name<TAB>checksum"). Nothing for no table.
table_stats_sql() {
    local mode="$1" table quoted list="" counts=""
    shift
    (($#)) || return 0
    for table in "$@"; do
        quoted="\`${table//\`/\`\`}\`"
        list+="${list:+, }${quoted}"
        counts+="${counts:+ UNION ALL }SELECT 'rows', '${table//\'/\'\'}', COUNT(*) FROM ${quoted}"
    done
    printf '%s;\n' "${counts}"
    if [[ "${mode}" == full ]]; then printf 'CHECKSUM TABLE %s;\n' "${list}"; fi
}

# wait_for_line FILE PID [AFTER]: wait until FILE has the line "ok" (AFTER given: any line after the
# line AFTER), while PID runs, for at most 15 seconds.
wait_for_line() {
    local file="$1" pid="$2" after="${3:-}" line seen tries
    for ((tries = 0; tries < 1500; tries++)); do
        seen=0
        while IFS= read -r line; do
            if [[ -z "${after}" && "${line}" == ok ]] || ((seen)); then return 0; fi
            [[ -z "${after}" || "${line}" != "${after}" ]] || seen=1
        done <"${file}"
        kill -0 "${pid}" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# snapshot_dump: the dump of $MYSQL_DATABASE on stdout, each table's rows and CHECKSUM TABLE in the
# dump's own snapshot on stderr ("petory-stats<TAB>..." lines, also appended to the dump), and how
# long writers waited ("petory-lock-us<TAB>n"). Runs inside the mysql container.
#
# Why these counts are the dump's: mysqldump --single-transaction reads one InnoDB snapshot in a
# session nothing else can join, and counting in another session a moment later would race the
# application's writes. Two sessions see the same data when both start their snapshot while no
# change to the tables can commit. So a third session holds LOCK TABLES ... READ on the database's
# tables (writers wait, readers do not) while the counting session and mysqldump start their
# snapshots, and unlocks as soon as mysqldump's -v progress shows its transaction has begun: a few
# tens of milliseconds, the kind of window mysqldump --source-data opens for its binlog position
# (with FLUSH TABLES WITH READ LOCK, which also waits for long reads; a table lock does not). The
# counting and the dump then run in their snapshots with nothing locked. Comparing the restored
# copy with itself, or with counts taken without the lock, would prove nothing under load.
snapshot_dump() {
    set -Eeuo pipefail
    export MYSQL_PWD="${MYSQL_ROOT_PASSWORD}"
    local db="${MYSQL_DATABASE}" work list table locks="" binlog="" status_sql="SHOW BINARY LOG STATUS" line
    local locked_at=0 dump_status=0 lock_pid="" count_pid=""
    local snapshot_at="${EPOCHSECONDS}"
    local -a tables=() client=(mysql -uroot -N -B --unbuffered --default-character-set=utf8mb4)
    work="$(mktemp -d)"
    # shellcheck disable=SC2064 # expanded now: the trap outlives this function's locals
    trap "exec 3>&- 4>&- 2>/dev/null; kill \$(jobs -p) 2>/dev/null || true; rm -rf '${work}'" EXIT
    fail() {
        printf 'error: %s\n' "$*" >&2
        exit 1
    }
    list="$("${client[@]}" -e "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME" "${db}")" ||
        fail "cannot list the tables of ${db}"
    [[ -z "${list}" ]] || mapfile -t tables <<<"${list}"
    if ((${#tables[@]})); then
        for table in "${tables[@]}"; do locks+="${locks:+, }\`${table//\`/\`\`}\` READ"; done
        # Where the binary log stands while locked, recorded for point-in-time recovery (MySQL 8.2
        # renamed the statement; MariaDB keeps the old name).
        [[ "$("${client[@]}" -e 'SELECT VERSION()')" =~ MariaDB|^(5|8\.[01])\. ]] && status_sql="SHOW MASTER STATUS"
        mkfifo "${work}/lock" "${work}/count"
        : >"${work}/lock.out"
        : >"${work}/count.out"
        : >"${work}/lock.err"
        : >"${work}/count.err"
        : >"${work}/dump.err"
        # Both sessions connect before the lock, so the window holds no client start-up; each reads
        # its statements from a pipe only this shell writes to (3>&-, 4>&- in every other process).
        "${client[@]}" "${db}" <"${work}/lock" >"${work}/lock.out" 2>"${work}/lock.err" &
        lock_pid=$!
        exec 3>"${work}/lock"
        "${client[@]}" "${db}" <"${work}/count" >"${work}/count.out" 2>"${work}/count.err" 3>&- &
        count_pid=$!
        exec 4>"${work}/count"
        # A writer holding a table for longer than this fails the backup rather than stall the others.
        printf "SET SESSION lock_wait_timeout = 5;\nLOCK TABLES %s;\n%s;\nSELECT 'ok';\n" "${locks}" "${status_sql}" >&3
        wait_for_line "${work}/lock.out" "${lock_pid}" || fail "cannot lock the tables of ${db} for the snapshot: $(<"${work}/lock.err")"
        locked_at="${EPOCHREALTIME/./}"
        snapshot_at="${EPOCHSECONDS}"
        binlog="$(head -n 1 "${work}/lock.out")" # empty set without a binary log: "ok" comes first
        [[ "${binlog}" != ok ]] || binlog=""
        printf "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\nSTART TRANSACTION WITH CONSISTENT SNAPSHOT;\nSELECT 'ok';\n%sCOMMIT;\n" \
            "$(table_stats_sql full "${tables[@]}")" >&4
        exec 4>&-
    fi
    mysqldump -uroot -v --single-transaction --quick --routines --triggers --events --hex-blob \
        --default-character-set=utf8mb4 --databases "${db}" 2>"${work}/dump.err" 3>&- &
    local dump_pid=$!
    if [[ -n "${lock_pid}" ]]; then
        wait_for_line "${work}/count.out" "${count_pid}" || fail "cannot start the counting snapshot: $(<"${work}/count.err")"
        # mysqldump prints "Starting transaction" before it sends START TRANSACTION WITH CONSISTENT
        # SNAPSHOT, and "Setting savepoint" once that snapshot exists: only then may writes go on.
        wait_for_line "${work}/dump.err" "${dump_pid}" "-- Setting savepoint..." ||
            fail "mysqldump did not start its transaction: $(<"${work}/dump.err")"
        printf "UNLOCK TABLES;\nSELECT 'unlocked';\n" >&3
        wait_for_line "${work}/lock.out" "${lock_pid}" ok || fail "the lock session failed: $(<"${work}/lock.err")"
        printf 'petory-lock-us\t%s\n' "$((${EPOCHREALTIME/./} - locked_at))" >&2
        exec 3>&-
        wait "${lock_pid}" || fail "the lock session failed: $(<"${work}/lock.err")"
    fi
    wait "${dump_pid}" || dump_status=$?
    if ((dump_status)); then
        while IFS= read -r line; do [[ "${line}" == "-- "* ]] || printf '%s\n' "${line}" >&2; done <"${work}/dump.err"
        fail "mysqldump exited with status ${dump_status}"
    fi
    if [[ -n "${count_pid}" ]]; then wait "${count_pid}" || fail "counting the rows failed: $(<"${work}/count.err")"; fi
    printf '\n%s snapshot\t%s\n' "${MANIFEST_PREFIX}" "${snapshot_at}"
    if [[ -n "${binlog}" ]]; then printf '%s binlog\t%s\n' "${MANIFEST_PREFIX}" "$(cut -f1,2 <<<"${binlog%%$'\n'*}")"; fi
    if [[ -n "${count_pid}" ]]; then
        while IFS= read -r line; do
            [[ "${line}" == ok ]] && continue
            printf '%s stats\t%s\n' "${MANIFEST_PREFIX}" "${line}"
            printf 'petory-stats\t%s\n' "${line}" >&2
        done <"${work}/count.out"
    fi
    printf '%s end\n' "${MANIFEST_PREFIX}"
}

# --- on the host

# stats_parse: "table<TAB>rows<TAB>checksum" lines, sorted, from table_stats_sql's output.
stats_parse() {
    awk -F'\t' -v OFS='\t' '
        $1 == "rows" && NF == 3 { rows[$2] = $3; next }
        NF == 2 { name = $1; sub(/^[^.]*\./, "", name); sum[name] = $2 }
        END { for (name in rows) print name, rows[name], (name in sum ? sum[name] : "-") }' | LC_ALL=C sort
}

# stats_compare EXPECTED ACTUAL [NOW]: the per-table report (snapshot rows, restored rows, rows in
# production now when NOW is given, and the verdict) as aligned text; fails when any table's rows
# or checksum differ, or a table is missing on either side. Files of stats_parse lines.
stats_compare() {
    LC_ALL=C join -t $'\t' -a 1 -a 2 -e - -o 0,1.2,1.3,2.2,2.3 "$1" "$2" | awk -F'\t' -v with_now="${3:+1}" '
        FILENAME != "-" { now[$1] = $2; next }
        FNR == 1 && !header++ { row("table", "snapshot rows", "restored rows", "production now", "result") }
        {
            if ($4 == "-") verdict = "MISSING after the restore"
            else if ($2 == "-") verdict = "NOT in the snapshot"
            else if ($2 != $4) verdict = "ROWS DIFFER"
            else if ($3 != $5) verdict = "CHECKSUM DIFFERS"
            else verdict = "ok"
            tables++; bad += verdict != "ok"; total += $4
            row($1, $2, $4, $1 in now ? now[$1] : "-", verdict)
        }
        END {
            if (!header) row("table", "snapshot rows", "restored rows", "production now", "result")
            printf "%d tables, %d rows restored; %s\n", tables, total,
                bad ? bad " differ from the snapshot" : "every table matches the snapshot (rows and CHECKSUM TABLE)"
            exit bad ? 1 : 0
        }
        function row(table, want, got, current, verdict) {
            if (with_now) printf "%-32s %15s %15s %15s  %s\n", table, want, got, current, verdict
            else printf "%-32s %15s %15s  %s\n", table, want, got, verdict
        }' ${3:+"$3"} -
}

# stats_total FILE: the rows of a stats_parse file.
stats_total() { awk -F'\t' '{ total += $2 } END { print total + 0 }' "$1"; }

# seconds_since START: seconds since START (microseconds since the epoch), one decimal.
seconds_since() {
    local us=$((${EPOCHREALTIME/./} - $1))
    printf '%d.%d' "$((us / 1000000))" "$((us / 100000 % 10))"
}

# free_bytes DIR: the bytes an unprivileged write can still use on DIR's filesystem.
free_bytes() {
    local blocks size
    read -r blocks size < <(stat -f -c '%a %S' "$1")
    printf '%s' "$((blocks * size))"
}

# newest_dump DIR: the most recent dump in DIR (plain or encrypted), or nothing.
newest_dump() {
    find "$1" -maxdepth 1 -type f \( -name '*.sql.gz' -o -name '*.sql.gz.age' \) -printf '%T@ %p\n' 2>/dev/null |
        sort -n | tail -n 1 | cut -d' ' -f2-
}

# scratch_start NAME IMAGE OWNER: a throwaway MySQL server from IMAGE, labelled OWNER: no network
# (only `docker exec` reaches it, hence the empty root password), no binary log, no event scheduler
# (restored events must not change what is compared), its data in an anonymous volume that
# scratch_remove removes with it.
scratch_start() {
    docker run --detach --name "$1" --label "${SCRATCH_LABEL}=$3" --network none \
        --security-opt no-new-privileges:true \
        --env MYSQL_ALLOW_EMPTY_PASSWORD=yes --env MYSQL_INITDB_SKIP_TZINFO=1 \
        "$2" --skip-log-bin --event-scheduler=OFF >/dev/null
}

# scratch_wait NAME: until the real server answers on TCP inside the container (the entrypoint's
# temporary server during initialisation listens on the socket only), at most 180 seconds.
scratch_wait() {
    local tries
    for ((tries = 0; tries < 360; tries++)); do
        docker exec "$1" mysqladmin -uroot -h127.0.0.1 --protocol=tcp ping --silent >/dev/null 2>&1 && return 0
        if [[ "$(docker inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" != true ]]; then
            die "the throwaway MySQL container stopped while starting: $(docker logs --tail 5 "$1" 2>&1 | tr '\n' ' ')"
        fi
        sleep 0.5
    done
    die "the throwaway MySQL container did not start within 180 s: $(docker logs --tail 5 "$1" 2>&1 | tr '\n' ' ')"
}

# scratch_mysql NAME ARGS...: the mysql client of the throwaway container (stdin passed on).
scratch_mysql() { docker exec -i "$1" mysql -uroot -N -B --default-character-set=utf8mb4 "${@:2}"; }

scratch_remove() { docker rm --force --volumes "$1" >/dev/null 2>&1 || true; }

# scratch_remove_stale OWNER: the throwaway containers OWNER left behind when it was killed.
scratch_remove_stale() {
    local name
    for name in $(docker ps --all --quiet --filter "label=${SCRATCH_LABEL}=$1"); do
        log "removing the throwaway container ${name} of an interrupted run"
        scratch_remove "${name}"
    done
}

# scratch_stats NAME DATABASE: stats_parse lines of every table restored into DATABASE.
scratch_stats() {
    local list
    local -a tables=()
    list="$(scratch_mysql "$1" -e "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$2' AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME")"
    [[ -z "${list}" ]] || mapfile -t tables <<<"${list}"
    ((${#tables[@]})) || return 0
    table_stats_sql full "${tables[@]}" | scratch_mysql "$1" "$2" | stats_parse
}

# service_mysql ENV ARGS...: the mysql client of ENV's running mysql service, on its database.
service_mysql() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    compose "$1" exec -T mysql sh -c 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot -N -B --default-character-set=utf8mb4 "$@" "$MYSQL_DATABASE"' sh "${@:2}"
}

# production_rows ENV: stats_parse lines (rows only) of ENV's running mysql service, now.
production_rows() {
    local list
    local -a tables=()
    list="$(service_mysql "$1" -e "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME" | tr -d '\r')"
    [[ -z "${list}" ]] || mapfile -t tables <<<"${list}"
    ((${#tables[@]})) || return 0
    table_stats_sql rows "${tables[@]}" | service_mysql "$1" | tr -d '\r' | stats_parse
}

# snapshot_stream ENV SCRATCH WORK OUT SINK...: snapshot_dump of ENV's database, gzip -9, written
# through SINK (a command from stdin to stdout: cat, or age to the recipients) to OUT, the same
# bytes restored into SCRATCH on their way (no plaintext file). Afterwards STREAM_FAILED names what
# failed first (write, dump, restore; empty: nothing) and STREAM_REASON says how; the source's
# stats are in WORK/source.stats, the restore's log in WORK/restore.log, and LOCK_MICROSECONDS says
# how long the tables were locked for writes.
# shellcheck disable=SC2034 # STREAM_REASON and LOCK_MICROSECONDS are read by the caller
snapshot_stream() {
    local env="$1" scratch="$2" work="$3" out="$4" restore_status=0
    local -a statuses=(0 0 0 0)
    shift 4
    STREAM_FAILED="" STREAM_REASON="" LOCK_MICROSECONDS=""
    mkfifo "${work}/restore.fifo"
    restore_from_fifo "${scratch}" <"${work}/restore.fifo" >"${work}/restore.log" 2>&1 &
    local restore_pid=$!
    compose "${env}" exec -T mysql bash -c "MANIFEST_PREFIX='${MANIFEST_PREFIX}'; $(declare -f table_stats_sql wait_for_line snapshot_dump); snapshot_dump" \
        2>"${work}/snapshot.log" | gzip -9 | tee "${work}/restore.fifo" | "$@" 2>"${work}/write.log" >"${out}" ||
        statuses=("${PIPESTATUS[@]}")
    wait "${restore_pid}" || restore_status=$?
    # Who failed first: a sink that cannot write (the disk), else a tee that could not feed the
    # restore (it died), else the dump itself; a dump cut short also fails the restore after it.
    if ((statuses[3])); then
        STREAM_FAILED="write"
        STREAM_REASON="$(head -n 1 "${work}/write.log")"
    elif ((statuses[2])) || { ((restore_status)) && ! ((statuses[0] || statuses[1])); }; then
        STREAM_FAILED="restore"
        STREAM_REASON="$(tail -n 3 "${work}/restore.log" | tr '\n' ' ')"
    elif ((statuses[0] || statuses[1])); then
        STREAM_FAILED="dump"
        STREAM_REASON="$(grep -v '^petory-' "${work}/snapshot.log" | tr '\n' ' ')"
    fi
    LOCK_MICROSECONDS="$(sed -n 's/^petory-lock-us\t//p' "${work}/snapshot.log" | tail -n 1)"
    LOCK_MICROSECONDS="${LOCK_MICROSECONDS:-0}" # no table, no lock
    sed -n 's/^petory-stats\t//p' "${work}/snapshot.log" | stats_parse >"${work}/source.stats"
    [[ -z "${STREAM_FAILED}" ]]
}

# restore_from_fifo SCRATCH: a compressed dump from stdin into the throwaway container.
restore_from_fifo() { gzip -dc | scratch_mysql "$1"; }
