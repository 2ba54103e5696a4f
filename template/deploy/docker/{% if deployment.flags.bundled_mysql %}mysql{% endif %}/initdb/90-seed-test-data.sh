#!/bin/bash
# Loads test data on staging: compose.staging.yaml mounts docker/mysql/seed/ at /petory-seed.
# Other environments have no such mount, so this does nothing there. Runs once, at initialisation.
set -Eeuo pipefail

seed_dir=/petory-seed
if [[ ! -d "${seed_dir}" ]]; then
    echo "initdb: no ${seed_dir}, no test data loaded"
    exit 0
fi
for file in "${seed_dir}"/*.sql; do
    [[ -e "${file}" ]] || continue
    echo "initdb: loading test data ${file}"
    MYSQL_PWD="${MYSQL_ROOT_PASSWORD}" mysql --protocol=socket -uroot "${MYSQL_DATABASE}" < "${file}"
done
