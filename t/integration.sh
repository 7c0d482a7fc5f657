#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Run the integration tests of mod_mpm_event2 against the real
# /usr/sbin/apache2:
#   t/apache/*.t  Apache::Test suite on one default server (t/TEST.PL)
#   t/server/*.t  scenarios with their own global MPM settings (t/lib/Ev2Server.pm)
#
# Usage: t/integration.sh [apache | server | apache/NAME.t | server/NAME.t ...]
#   (no argument: everything; sanitize/NAME.t only when named, for
#   t/sanitize/run.sh)
#
# Environment:
#   EV2_MPM_SO    MPM module to test   (default: <repo>/.libs/mod_mpm_event2.so)
#   EV2_MPM_SYM   its module symbol    (default: mpm_event2_module)
#   EV2_MPM_NAME  expected ServerMPM   (default: event2; derived from the symbol)
#   EV2_APACHE2   httpd binary         (default: /usr/sbin/apache2)
#   EV2_TEST_USER user to run as when started as root (default: ev2test)
#   EV2_VERBOSE=1 verbose test output
#
# Apache::Test refuses to run as root, so as root the tests run as an
# unprivileged user (created if missing) on a copy of t/ in a temporary
# directory.  Every server started is stopped on exit, also on failure.
set -euo pipefail

tdir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$tdir")

mpm_so=${EV2_MPM_SO:-$top/.libs/mod_mpm_event2.so}
mpm_sym=${EV2_MPM_SYM:-mpm_event2_module}
apache2=${EV2_APACHE2:-/usr/sbin/apache2}
test_user=${EV2_TEST_USER:-ev2test}
nofile=4096
moddir=/usr/lib/apache2/modules

if [ ! -r "$mpm_so" ]; then
    echo "integration.sh: no MPM module at $mpm_so (run make first)" >&2
    exit 2
fi
mpm_so=$(cd "$(dirname "$mpm_so")" && pwd)/$(basename "$mpm_so")

# Which parts to run.
apache_tests=()
server_tests=()
run_apache=0
run_server=0
if [ $# -eq 0 ]; then
    run_apache=1
    run_server=1
fi
for a in "$@"; do
    a=${a#t/}
    case "$a" in
        apache|apache/) run_apache=1 ;;
        server|server/) run_server=1 ;;
        apache/*.t) run_apache=1; apache_tests+=("$a") ;;
        server/*.t) run_server=1; server_tests+=("$a") ;;
        sanitize/*.t) run_server=1; server_tests+=("$a") ;;
        *) echo "integration.sh: unknown test selector '$a'" >&2; exit 2 ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ev2-itest.XXXXXX")

# Stop whatever a test left running: every apache2 whose pid file lies under
# $work (Apache::Test's t/logs/httpd.pid, Ev2Server's run/httpd.pid).
stop_leftovers() {
    local pf pid pids=()
    while IFS= read -r pf; do
        pid=$(tr -dc '0-9' < "$pf" 2>/dev/null | head -c 10 || true)
        [ -n "$pid" ] || continue
        [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = apache2 ] || continue
        echo "integration.sh: stopping leftover apache2 pid $pid ($pf)" >&2
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    done < <(find "$work" -name '*.pid' -type f 2>/dev/null)
    # apache2 processes started on a config under $work whose pid file is
    # missing or wrong: found by that unique path in their command line.
    local d
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ "$(cat "$d/comm" 2>/dev/null || true)" = apache2 ] || continue
        if tr '\0' '\n' < "$d/cmdline" 2>/dev/null | grep -q "^$work/"; then
            case " ${pids[*]:-} " in *" $pid "*) continue ;; esac
            echo "integration.sh: stopping leftover apache2 pid $pid (no pid file)" >&2
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    local i
    for i in $(seq 1 50); do
        local any=0
        for pid in "${pids[@]}"; do
            if [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
                any=1
            fi
        done
        [ $any -eq 1 ] || return 0
        sleep 0.2
    done
    for pid in "${pids[@]}"; do
        # The daemon leads its own process group; kill the group.
        kill -KILL -- "-$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_leftovers || true
    if [ -n "${EV2_KEEP_TMP:-}" ]; then
        echo "integration.sh: kept $work" >&2
    else
        rm -rf "$work"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$work/t" "$work/lib" "$work/tmp" "$work/home"
tar -C "$tdir" --exclude=./unit --exclude=./logs --exclude=./conf/httpd.conf \
    --exclude=./conf/apache_test_config.pm --exclude=./conf/extra.conf \
    -cf - . | tar -C "$work/t" -xf -
cp "$mpm_so" "$work/lib/"
# The soak harness, for server/soak_short.t (it finds t/lib as ../t/lib).
if [ -d "$top/soak" ]; then
    tar -C "$top" -cf - soak | tar -C "$work" -xf -
fi
so="$work/lib/$(basename "$mpm_so")"
# The shipped MPM settings, for tests that run with them.
cp "$top/mpm_event2.conf" "$work/"

# The configuration Apache::Test inherits LoadModule lines from: exactly one
# MPM (ours) and the modules the default-server tests use.
cat > "$work/base.conf" <<EOF
LoadModule $mpm_sym "$so"
LoadModule authz_core_module "$moddir/mod_authz_core.so"
LoadModule mime_module "$moddir/mod_mime.so"
LoadModule dir_module "$moddir/mod_dir.so"
LoadModule alias_module "$moddir/mod_alias.so"
LoadModule status_module "$moddir/mod_status.so"
TypesConfig /etc/mime.types
EOF

as_user=()
if [ "$(id -u)" = 0 ]; then
    if ! id -u "$test_user" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$test_user"
    fi
    chown -R "$test_user:" "$work"
    chmod 755 "$work"
    as_user=(runuser -u "$test_user" --)
fi

run_env=(env HOME="$work/home" TMPDIR="$work/tmp"
    EV2_MPM_SO="$so" EV2_MPM_SYM="$mpm_sym" EV2_APACHE2="$apache2")
[ -n "${EV2_MPM_NAME:-}" ] && run_env+=(EV2_MPM_NAME="$EV2_MPM_NAME")
[ -n "${EV2_KEEP_TMP:-}" ] && run_env+=(EV2_KEEP_TMP=1)

verbose=()
[ -n "${EV2_VERBOSE:-}" ] && verbose=(-verbose)

status=0

if [ $run_apache -eq 1 ]; then
    echo "=== Apache::Test suite (t/apache) ==="
    [ ${#apache_tests[@]} -gt 0 ] || apache_tests=(apache)
    if ! "${as_user[@]}" "${run_env[@]}" bash -c '
            ulimit -n "$1" 2>/dev/null || true
            cd "$2/t" || exit 1
            shift 3
            exec timeout -k 10 600 perl TEST.PL "$@"
        ' _ "$nofile" "$work" _ -httpd "$apache2" -httpd_conf "$work/base.conf" \
            -port select -servername 127.0.0.1 "${verbose[@]}" "${apache_tests[@]}" \
            < /dev/null; then
        status=1
        echo "=== Apache::Test suite FAILED; error_log tail: ===" >&2
        tail -n 40 "$work/t/logs/error_log" 2>/dev/null >&2 || true
    fi
    stop_leftovers || true
fi

if [ $run_server -eq 1 ]; then
    echo "=== Server scenarios (t/server) ==="
    [ ${#server_tests[@]} -gt 0 ] || server_tests=(server)
    pv=()
    [ -n "${EV2_VERBOSE:-}" ] && pv=(-v)
    if ! "${as_user[@]}" "${run_env[@]}" bash -c '
            ulimit -n "$1" 2>/dev/null || true
            cd "$2/t" || exit 1
            shift 3
            exec timeout -k 10 900 prove -I lib "$@"
        ' _ "$nofile" "$work" _ "${pv[@]}" "${server_tests[@]}" < /dev/null; then
        status=1
    fi
fi

exit $status
