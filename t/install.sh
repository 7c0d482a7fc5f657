#!/usr/bin/env bash
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# System install tests, on this machine's own apache2 (/etc/apache2, the
# server on 127.0.0.1:80 started with apache2ctl), as root:
#
#   package   dpkg -i the .deb from make deb: event2 becomes the MPM, the
#             system server serves and restarts gracefully with it; dpkg -r
#             switches back to mpm_event (configtest passes, the server
#             starts with event); dpkg -P leaves no file or state of ours.
#   install   make install / make uninstall: the installed module is
#             stripped, uninstall switches an enabled event2 back to
#             mpm_event; the stock .load files' Conflicts pitfall (README).
#
# Usage: t/install.sh [DEB_DIR]      (make test-deb; DEB_DIR: build/deb)
#
# Before it changes anything it records which MPM is enabled (the whole of
# /etc/apache2/mods-enabled and /var/lib/apache2), whether the system
# apache2 runs, and moves aside files of ours from a hand install; on exit,
# also on failure or a signal, it puts all of that back, and starts apache2
# again if it ran.  Runs under a lock, so two copies never overlap.  Every
# wait is bounded.  Prints TAP and "N passed, N failed"; exits non-zero on
# any failure.
#
# The tests are eval strings evaluated by check(), so shellcheck cannot see
# their variables used or their functions called:
# shellcheck disable=SC2016,SC2034,SC2317
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
debdir=${1:-$top/build/deb}
debdir=$(cd "$debdir" 2>/dev/null && pwd) || { echo "t/install.sh: no directory ${1:-build/deb} (run make deb)" >&2; exit 2; }

pkg=libapache2-mod-mpm-event2
moddir=/usr/lib/apache2/modules
so=$moddir/mod_mpm_event2.so
avail=/etc/apache2/mods-available
enabled=/etc/apache2/mods-enabled
statedir=/var/lib/apache2
url=http://127.0.0.1/
lockfile=/run/lock/mod_mpm_event2-system-apache2.lock

if [ "$(id -u)" != 0 ]; then
    echo "t/install.sh: must run as root (it installs into the system's apache2)" >&2
    exit 2
fi
for tool in apache2ctl a2query a2enmod a2dismod dpkg dpkg-deb readelf curl flock; do
    command -v "$tool" >/dev/null || { echo "t/install.sh: $tool missing (make deb-deps)" >&2; exit 2; }
done

export DEBIAN_FRONTEND=noninteractive
exec < /dev/null

# One run at a time: the script runs again under flock, which holds the
# lock without passing it on (-o), so that no apache2 started here keeps it.
if [ -z "${EV2_INSTALL_LOCKED:-}" ]; then
    EV2_INSTALL_LOCKED=1 flock -o -E 75 -w 900 "$lockfile" "$0" "$@"
    rc=$?
    if [ $rc -eq 75 ]; then
        echo "t/install.sh: another run held $lockfile for more than 900 s" >&2
    fi
    exit $rc
fi

n=0
passed=0
failed=0
ok() {
    n=$((n + 1)); passed=$((passed + 1))
    echo "ok $n - $1"
}
notok() {
    n=$((n + 1)); failed=$((failed + 1))
    echo "not ok $n - $1"
    shift
    local line
    for line in "$@"; do
        printf '#   %s\n' "$line"
    done
}
# check DESCRIPTION COMMAND...: one test, passed when COMMAND succeeds.
check() {
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else notok "$desc" "failed: $*"; fi
}
note() { printf '# %s\n' "$*"; }

work=$(mktemp -d /tmp/ev2-install.XXXXXX)
log=$work/log

# --- the system server ------------------------------------------------------

pidfile=$(set +u; . /etc/apache2/envvars && echo "$APACHE_PID_FILE")
httpd=$(set +u; . /etc/apache2/envvars && echo "${APACHE_HTTPD:-/usr/sbin/apache2}")
if [ -z "$pidfile" ]; then
    echo "t/install.sh: no APACHE_PID_FILE in /etc/apache2/envvars" >&2
    exit 2
fi

# is_httpd PID: PID runs the system's apache2 binary.
is_httpd() {
    local exe
    exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
    [ "${exe% (deleted)}" = "$httpd" ]
}

# Pid of the running system apache2 (its pid file names a live apache2), or "".
sys_pid() {
    local pid
    pid=$(tr -dc '0-9' 2>/dev/null < "$pidfile" | head -c 10) || true
    if [ -n "$pid" ] && is_httpd "$pid"; then
        echo "$pid"
    fi
}

# wait_gone PID SECONDS
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while is_httpd "$pid"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
    return 0
}

http_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" 2>/dev/null || true
}

# wait_serving SECONDS: the server answers GET / with 200.
wait_serving() {
    local deadline=$((SECONDS + $1))
    until [ "$(http_code "$url")" = 200 ]; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
}

# status_field KEY: a line of /server-status?auto (Debian enables mod_status
# for local clients).
status_field() {
    curl -s --max-time 5 "${url}server-status?auto" 2>/dev/null \
        | sed -n "s/^$1: *//p" | tr -d '\r' | head -n 1
}

# start_server: apache2ctl start, then wait until it serves.
start_server() {
    timeout 60 apache2ctl start > "$log" 2>&1 || { cat "$log" >&2; return 1; }
    wait_serving 60 && [ -n "$(sys_pid)" ]
}

# stop_server [force]: apache2ctl stop and wait for the parent to exit; with
# "force" (only for servers this script started) TERM/KILL it after that.
stop_server() {
    local pid
    pid=$(sys_pid)
    [ -n "$pid" ] || return 0
    timeout 60 apache2ctl stop > "$log" 2>&1 || cat "$log" >&2
    wait_gone "$pid" 60 && return 0
    [ "${1:-}" = force ] || return 1
    kill -TERM "$pid" 2>/dev/null
    wait_gone "$pid" 20 && return 0
    kill -KILL "$pid" 2>/dev/null
    wait_gone "$pid" 10
}

configtest() {
    timeout 60 apache2ctl configtest > "$log" 2>&1
}

server_mpm() {
    timeout 60 apache2ctl -V 2>/dev/null | sed -n 's/^Server MPM: *//p'
}

pkg_status() {
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true
}

# dpkg ARGS, retried while another dpkg/apt holds the lock (at most 300 s).
dpkg_run() {
    local deadline=$((SECONDS + 300)) rc
    while :; do
        timeout 300 dpkg "$@" > "$log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            sed 's/^/#   dpkg: /' "$log"
            return 0
        fi
        if grep -q 'locked by another process' "$log" && [ $SECONDS -lt $deadline ]; then
            note "dpkg $*: the dpkg lock is held by another process, retrying"
            sleep 5
            continue
        fi
        sed 's/^/#   dpkg: /' "$log"
        return $rc
    done
}

# Files and a2enmod state of ours left on the system (one per line).
leftovers() {
    local f
    for f in "$so" "$avail/mpm_event2.load" "$avail/mpm_event2.conf" \
             "$enabled/mpm_event2.load" "$enabled/mpm_event2.conf"; do
        if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi
    done
    find "$statedir" -name mpm_event2 2>/dev/null
    if grep -qs "$pkg" "$statedir/deferred_actions"; then
        echo "$statedir/deferred_actions"
    fi
}

# --- record the machine state, and restore it on exit -------------------------

# run_desc PID [short]: "running (pid PID)" / "running" / "not running".
run_desc() {
    if [ -z "$1" ]; then
        echo "not running"
    elif [ "${2:-}" = short ]; then
        echo "running"
    else
        echo "running (pid $1)"
    fi
}

mpm_before=$(a2query -M 2>/dev/null) || mpm_before="(none or several)"
pid_before=$(sys_pid)
status_before=$(pkg_status)
stopped_original=0
interrupted=0
note "before: MPM $mpm_before, system apache2 $(run_desc "$pid_before"), $pkg: ${status_before:-not installed}"

case "$status_before" in
    ""|*not-installed)
        ;;
    *)
        echo "t/install.sh: $pkg is present ($status_before); purge it first (dpkg -P $pkg)" >&2
        rm -rf "$work"
        exit 2
        ;;
esac

cp -a "$enabled" "$work/mods-enabled"
cp -a "$statedir" "$work/var-lib-apache2"
mkdir -p "$work/aside"
for f in "$so" "$avail/mpm_event2.load" "$avail/mpm_event2.conf"; do
    if [ -e "$f" ]; then
        note "moving aside $f (a hand install; put back on exit)"
        mv "$f" "$work/aside/$(basename "$f")"
    fi
done

restore() {
    local rc=$? f pid
    trap - EXIT INT TERM HUP
    note "restoring the machine state"
    # A server running now is one this script started (the original one, if
    # it ran, was stopped before anything changed).
    pid=$(sys_pid)
    if [ -n "$pid" ] && { [ "$stopped_original" = 1 ] || [ "$pid" != "$pid_before" ]; }; then
        stop_server force || note "could not stop apache2 pid $pid"
    fi
    case "$(pkg_status)" in
        ""|*not-installed) ;;
        *) dpkg_run --purge "$pkg" || note "dpkg --purge $pkg failed" ;;
    esac
    rm -f "$so" "$avail/mpm_event2.load" "$avail/mpm_event2.conf"
    for f in "$work"/aside/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.so) mv "$f" "$so" ;;
            *) mv "$f" "$avail/" ;;
        esac
    done
    if [ -d "$work/mods-enabled" ] && [ -d "$work/var-lib-apache2" ]; then
        rm -rf "$enabled" "$statedir"
        cp -a "$work/mods-enabled" "$enabled"
        cp -a "$work/var-lib-apache2" "$statedir"
    fi
    if [ -n "$pid_before" ] && [ "$stopped_original" = 1 ]; then
        start_server || note "could not start apache2 again"
    fi
    local mpm_after running_after
    mpm_after=$(a2query -M 2>/dev/null) || mpm_after="(none or several)"
    running_after=$(sys_pid)
    note "after: MPM $mpm_after, system apache2 $(run_desc "$running_after")"
    if [ "$interrupted" = 1 ]; then
        notok "the run was interrupted by a signal"
    fi
    check "machine restored: MPM $mpm_before, apache2 $(run_desc "$pid_before" short) as before" \
        eval '[ "$mpm_after" = "$mpm_before" ] && [ "$(run_desc "$running_after" short)" = "$(run_desc "$pid_before" short)" ]'
    rm -rf "$work"
    echo "1..$n"
    echo "$passed passed, $failed failed"
    if [ $rc -eq 0 ] && [ $failed -ne 0 ]; then
        rc=1
    fi
    exit $rc
}
trap restore EXIT
trap 'interrupted=1; exit 130' INT TERM HUP

# Start from stock: apache2 stopped, mpm_event the one MPM enabled.
if [ -n "$pid_before" ]; then
    note "stopping the running system apache2 (pid $pid_before); started again on exit"
    stopped_original=1
    stop_server || { echo "t/install.sh: could not stop the system apache2" >&2; exit 1; }
fi
if [ "$mpm_before" != event ]; then
    note "enabling mpm_event as the only MPM for the test (put back on exit)"
    for f in "$enabled"/mpm_*.load; do
        [ -e "$f" ] || continue
        f=$(basename "$f" .load)
        [ "$f" = mpm_event ] || a2dismod -q -f "$f" > /dev/null
    done
    a2enmod -q mpm_event > /dev/null
fi
check "starting point: mpm_event enabled, configtest passes" \
    eval '[ "$(a2query -M 2>/dev/null)" = event ] && configtest'

# --- the package -------------------------------------------------------------

deb=$(ls "$debdir"/${pkg}_*.deb 2>/dev/null | head -n 1)
dbgsym=$(ls "$debdir"/${pkg}-dbgsym_*.deb "$debdir"/${pkg}-dbgsym_*.ddeb 2>/dev/null | head -n 1)
check "make deb built $pkg and its -dbgsym package" \
    eval '[ -f "$deb" ] && [ -f "$dbgsym" ]'
check "the -dbgsym package holds the module's debug file" \
    eval 'dpkg-deb -c "$dbgsym" | grep "usr/lib/debug/.build-id/.*\.debug$" > /dev/null'

depends=$(dpkg-deb -f "$deb" Depends 2>/dev/null)
api=apache2-api-$(a2query -a 2>/dev/null)
note "Depends: $depends"
check "Depends: names $api and apache2-bin (>= 2.4.71)" \
    eval '[[ ", $depends," == *", $api,"* ]] && [[ "$depends" == *"apache2-bin (>= 2.4.71)"* ]]'

mkdir -p "$work/x"
dpkg-deb -x "$deb" "$work/x" 2>/dev/null
sections=$(readelf -S -W "$work/x$so" 2>/dev/null)
check "the packaged module is stripped (no .symtab, no .debug_info)" \
    eval '[ -n "$sections" ] && ! grep -qE "\.symtab|\.debug_info" <<< "$sections"'

# Installation while the stock server runs: the postinst's restart goes
# through invoke-rc.d (which a policy-rc.d may deny); either way the server
# must keep serving, and serve with event2 once restarted.
check "apache2ctl start: the stock server serves $url" start_server
smpm=$(status_field ServerMPM)
check "server-status says ServerMPM: event (got '$smpm')" [ "$smpm" = event ]
check "dpkg -i succeeds with the server running" dpkg_run -i "$deb"
check "the server still serves after dpkg -i" wait_serving 30
check "the package is configured (install ok installed)" \
    eval '[ "$(pkg_status)" = "install ok installed" ]'
check "a2query -M says event2; mpm_event is disabled" \
    eval '[ "$(a2query -M 2>/dev/null)" = event2 ] && [ -e "$enabled/mpm_event2.load" ] && [ ! -e "$enabled/mpm_event.load" ]'
mpm=$(server_mpm)
check "apache2ctl -V: Server MPM: event2 (got '$mpm')" [ "$mpm" = event2 ]
check "apache2ctl configtest passes" configtest

out=$(make -s -C "$top" install 2>&1)
rc=$?
check "make install refuses to overwrite the package's files" \
    eval '[ $rc -ne 0 ] && [[ "$out" == *"belongs to a Debian package"* ]] && dpkg --verify "$pkg" > /dev/null 2>&1'

check "apache2ctl stop, then start: the system server serves $url" \
    eval 'stop_server force && start_server'
pid=$(sys_pid)
smpm=$(status_field ServerMPM)
check "server-status says ServerMPM: event2 (got '$smpm')" [ "$smpm" = event2 ]

gen=$(status_field ParentServerConfigGeneration)
gen_ok=0
if [[ "$gen" =~ ^[0-9]+$ ]] && timeout 60 apache2ctl graceful > "$log" 2>&1; then
    deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        g=$(status_field ParentServerConfigGeneration)
        if [[ "$g" =~ ^[0-9]+$ ]] && [ "$g" -gt "$gen" ]; then gen_ok=1; break; fi
        sleep 0.2
    done
fi
check "apache2ctl graceful: a new generation (was '$gen')" [ $gen_ok = 1 ]
check "after graceful: same parent pid ($pid), still serves" \
    eval '[ -n "$pid" ] && [ "$(sys_pid)" = "$pid" ] && [ "$(http_code "$url")" = 200 ]'

# The same version again is an upgrade (postinst configure with the old
# version): event2 stays, the server keeps serving.
check "dpkg -i again (upgrade) succeeds with event2 enabled" dpkg_run -i "$deb"
check "after the upgrade: configured, a2query -M says event2, still serves" \
    eval '[ "$(pkg_status)" = "install ok installed" ] && [ "$(a2query -M 2>/dev/null)" = event2 ] && wait_serving 30'

# Removal while the server runs: prerm switches back, the running server
# keeps its event2 until it is restarted.
check "dpkg -r succeeds with the server running" dpkg_run -r "$pkg"
check "the package is removed, its conffiles kept (deinstall ok config-files)" \
    eval '[ "$(pkg_status)" = "deinstall ok config-files" ]'
check "after dpkg -r: mpm_event enabled, mpm_event2 not, module file gone" \
    eval '[ "$(a2query -M 2>/dev/null)" = event ] && [ ! -e "$enabled/mpm_event2.load" ] && [ ! -e "$so" ]'
check "after dpkg -r: apache2ctl configtest passes" configtest
check "the running server stops (apache2ctl stop)" stop_server force
check "apache2ctl start after removal: serves with the stock MPM" start_server
smpm=$(status_field ServerMPM)
check "server-status says ServerMPM: event (got '$smpm')" [ "$smpm" = event ]
check "apache2ctl stop" stop_server force

check "dpkg -P succeeds" dpkg_run -P "$pkg"
check "the package is gone from dpkg's database" \
    eval 'case "$(pkg_status)" in ""|*not-installed) true ;; *) false ;; esac'
left=$(leftovers)
check "nothing of ours is left after purge" [ -z "$left" ]
[ -z "$left" ] || note "left: $left"
check "after purge: mpm_event enabled, configtest passes" \
    eval '[ "$(a2query -M 2>/dev/null)" = event ] && configtest'

# The switch back by hand (README), then an upgrade, then purge: the
# administrator's choice of MPM is kept throughout.
check "dpkg -i after purge: event2 enabled again" \
    eval 'dpkg_run -i "$deb" && [ "$(a2query -M 2>/dev/null)" = event2 ]'
check "by hand: a2dismod mpm_event2 && a2enmod mpm_event, configtest passes" \
    eval 'a2dismod -q mpm_event2 > /dev/null && a2enmod -q mpm_event > /dev/null && [ "$(a2query -M 2>/dev/null)" = event ] && configtest'
check "dpkg -i again (upgrade) keeps the administrator's mpm_event" \
    eval 'dpkg_run -i "$deb" && [ "$(pkg_status)" = "install ok installed" ] && [ "$(a2query -M 2>/dev/null)" = event ] && configtest'
check "dpkg -P with event2 disabled: succeeds, mpm_event stays, configtest passes" \
    eval 'dpkg_run -P "$pkg" && [ "$(a2query -M 2>/dev/null)" = event ] && configtest'
left=$(leftovers)
check "nothing of ours is left after that purge" [ -z "$left" ]
[ -z "$left" ] || note "left: $left"

# --- make install / make uninstall --------------------------------------------

check "make install succeeds" eval 'make -s -C "$top" install > "$log" 2>&1 || { cat "$log"; false; }'
sections=$(readelf -S -W "$so" 2>/dev/null)
check "the installed module is stripped" \
    eval '[ -n "$sections" ] && ! grep -qE "\.symtab|\.debug_info" <<< "$sections"'
check "make install puts mpm_event2.load and .conf into mods-available, enables nothing" \
    eval '[ -f "$avail/mpm_event2.load" ] && [ -f "$avail/mpm_event2.conf" ] && [ "$(a2query -M 2>/dev/null)" = event ]'
check "a2dismod mpm_event && a2enmod mpm_event2: Server MPM event2, configtest passes" \
    eval 'a2dismod -q mpm_event > /dev/null && a2enmod -q mpm_event2 > /dev/null && [ "$(server_mpm)" = event2 ] && configtest'

# The pitfall the README describes: the stock mpm_event.load does not name
# mpm_event2 in its Conflicts line.
check "pitfall: a2enmod mpm_event with event2 enabled succeeds" \
    eval 'a2enmod -q mpm_event > "$log" 2>&1'
configtest
rc=$?
check "pitfall: then configtest fails with AH00534 (more than one MPM)" \
    eval '[ $rc -ne 0 ] && grep -q "AH00534" "$log"'
check "pitfall: a2dismod mpm_event2 repairs it (configtest passes, MPM event)" \
    eval 'a2dismod -q mpm_event2 > /dev/null && configtest && [ "$(a2query -M 2>/dev/null)" = event ]'

check "back to event2 (a2dismod mpm_event && a2enmod mpm_event2)" \
    eval 'a2dismod -q mpm_event > /dev/null && a2enmod -q mpm_event2 > /dev/null && [ "$(a2query -M 2>/dev/null)" = event2 ]'
check "make uninstall succeeds" eval 'make -s -C "$top" uninstall > "$log" 2>&1 || { cat "$log"; false; }'
check "after make uninstall: mpm_event enabled, configtest passes" \
    eval '[ "$(a2query -M 2>/dev/null)" = event ] && configtest'
left=$(leftovers)
check "nothing of ours is left after make uninstall" [ -z "$left" ]
[ -z "$left" ] || note "left: $left"
check "make uninstall again (nothing installed) succeeds" \
    eval 'make -s -C "$top" uninstall > "$log" 2>&1 || { cat "$log"; false; }'

# restore (the EXIT trap) puts the machine back and prints the summary.
exit 0
