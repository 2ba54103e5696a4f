#!/usr/bin/env bash
# The statements that rotate the application's MySQL password with MySQL's dual passwords, shared
# by scripts/rotate-secret.sh and scripts/ci/check-mysql.sh (which proves them on the MySQL
# versions in use in the generated CI). Source it; it defines functions only.

sql_string() { printf "'%s'" "${1//\'/\'\'}"; } # an SQL string literal

# app_account USER: the application's account, 'USER'@'%'.
app_account() { printf "%s@'%%'" "$(sql_string "$1")"; }

# has_dual_passwords VERSION: the server (SELECT VERSION()) keeps a second password per account:
# MySQL 8.0.14 and later; MariaDB has no such feature.
has_dual_passwords() {
    [[ "$1" != *MariaDB* ]] && printf '%s\n8.0.14\n' "${1%%-*}" | sort -V -C -r
}

# add_password_sql ACCOUNT PASSWORD: PASSWORD becomes the account's password; the one before it
# keeps working until discard_old_password_sql.
add_password_sql() { printf 'ALTER USER %s IDENTIFIED BY %s RETAIN CURRENT PASSWORD;\n' "$1" "$(sql_string "$2")"; }

discard_old_password_sql() { printf 'ALTER USER %s DISCARD OLD PASSWORD;\n' "$1"; }
