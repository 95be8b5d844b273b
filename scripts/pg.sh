# Sourced by scripts/run and scripts/test: a throwaway PostgreSQL cluster on a private port.
#   pg_start DIR   initdb (once) + pg_ctl start in DIR, on $PG_PORT or a free port (a
#                  cluster already running there is reused); sets PG_PORT and PG_URL
#                  (database "postgres")
#   pg_stop        stops it (safe to call twice)
# As root the server runs as the "postgres" user (initdb refuses root).

pg_bin() {
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    return 1
}

pg_as() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_free_port() {
    p=${1:-55432}
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}

pg_start() {
    PG_DIR=$1
    PG_BIN=$(pg_bin) || return 1
    mkdir -p "$PG_DIR"
    chmod 755 "$PG_DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DIR"
    if [ -f "$PG_DIR/data/postmaster.pid" ] &&
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
        PG_PORT=$(sed -n 4p "$PG_DIR/data/postmaster.pid") # already running: use it
        PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
        export PG_DIR PG_PORT PG_URL
        return 0
    fi
    local fixed=${PG_PORT:-} tries=0
    PG_PORT=${PG_PORT:-$(pg_free_port "${PG_PORT_START:-55432}")}
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
            { cat "$PG_DIR/initdb.log" >&2; return 1; }
    fi
    # a port nothing listens on may still be bound (the local end of some connection): then
    # the server cannot bind it, and the next free one is tried
    until pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ -n "$fixed" ] || [ $tries -ge 5 ] || ! grep -q "could not bind" "$PG_DIR/server.log"; then
            cat "$PG_DIR/server.log" >&2
            return 1
        fi
        PG_PORT=$(pg_free_port $((PG_PORT + 1)))
    done
    PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
    export PG_DIR PG_PORT PG_URL
}

pg_stop() {
    [ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}
