#!/bin/sh
# The image's entrypoint: secrets from files, then facer itself (exec: facer is PID 1 and gets SIGTERM).
#
# FACER_API_KEY_FILE=/run/secrets/api_key   -> FACER_API_KEY, the api_key setting
# PGPASSWORD_FILE=/run/secrets/db_password  -> PGPASSWORD, which libpq reads for a postgresql:// store
#
# A trailing newline in the file is dropped. Giving both the variable and its _FILE twin is an error.
set -eu
for name in FACER_API_KEY PGPASSWORD; do
    eval "file=\${${name}_FILE:-}"
    [ -n "$file" ] || continue
    eval "both=\${${name}:+yes}"
    if [ -n "$both" ]; then
        echo "facer-entrypoint: both $name and ${name}_FILE are set: give one" >&2
        exit 2
    fi
    if [ ! -r "$file" ]; then
        echo "facer-entrypoint: ${name}_FILE names $file, which cannot be read" >&2
        exit 2
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done
exec facer "$@"
