#!/usr/bin/perl
# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# soak.pl: the soak harness (make soak).  One apache2 with the MPM under
# test and Debian's usual modules, mixed checked traffic from many clients
# at once, admin events on a schedule, and per-process samples every 5 s.
# See soak/README.md for what it drives, how failures are classified and
# which criteria make it fail.
#
#   SOAK_S=600 perl soak/soak.pl            # ours
#   SOAK_MPM=stock SOAK_S=600 perl soak/soak.pl
#
# Exit status: 0 all criteria met, 1 a criterion failed or an unexplained
# failure, 2 the harness could not run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin", "$FindBin::Bin/../t/lib";
use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use File::Path qw(make_path);
use JSON::PP ();
use POSIX qw(WNOHANG floor);
use Time::HiRes qw(time sleep);
use List::Util qw(sum max min shuffle);

use Ev2Server;
use Ev2TLS;
use Ev2WS;
use Ev2HTTP;
use SoakClient;

my $TOP = abs_path("$FindBin::Bin/..");
my $DUR = $ENV{SOAK_S} // 600;
$DUR =~ /^\d+$/ && $DUR >= 20 or die "SOAK_S must be a whole number of seconds >= 20\n";
my $MPM = $ENV{SOAK_MPM} // 'ours';
if ($MPM eq 'stock') {
    $ENV{EV2_MPM_SO}  = '/usr/lib/apache2/modules/mod_mpm_event.so';
    $ENV{EV2_MPM_SYM} = 'mpm_event_module';
}
elsif ($MPM eq 'ours') {
    $ENV{EV2_MPM_SO} //= "$TOP/.libs/mod_mpm_event2.so";
    $ENV{EV2_MPM_SYM} //= 'mpm_event2_module';
}
else {
    die "SOAK_MPM must be 'ours' or 'stock'\n";
}
-r $ENV{EV2_MPM_SO} or die "no MPM module at $ENV{EV2_MPM_SO} (run make)\n";
my $OUTDIR = $ENV{SOAK_OUT} // "$TOP/build/soak/$MPM";
make_path($OUTDIR);
my $SAMPLE_EVERY = 5;
my $WARM_FRAC = 0.2;
my $QUIET = 10;           # seconds without load before the final checks
my $GST = 10;             # GracefulShutdownTimeout
my $MAXCONN = $ENV{SOAK_MAXCONN} // 1000;    # MaxConnectionsPerChild
my $PERIOD = $ENV{SOAK_EVERY} // ($DUR >= 300 ? 20 : 8);    # s between admin events
my @SCHEDULE = qw(graceful kill graceful restart kill gstop);
my $JSON = JSON::PP->new->canonical->pretty;

# Criteria bounds (see soak/README.md for the reasons).
my %BOUND = (
    parent_fd_growth     => 2,      # descriptors over the post-warm-up window
    child_idle_fd_extra  => 2,      # a child's idle descriptors at the end vs at start
    parent_rss_kib_min   => 64,     # KiB/min (RSS: the parent's PSS moves with
                                    # the number of children sharing its pages)
    child_pss_kib_min    => 256,    # KiB/min, mean PSS of the worker children
    total_pss_kib_min    => 1024,   # KiB/min, all processes of the server
    stuck_busy           => 0,      # R/W/K slots at the end beyond our own request
);

sub logmsg { printf STDERR "[soak %6.1fs] %s\n", time - ($main::T0 // time), "@_" }

# ---- files -----------------------------------------------------------------

# Deterministic pseudo-random bytes (fast: repeated MD5 blocks).
sub pr_bytes {
    my ($n, $seed) = @_;
    my $b = '';
    my $blk = md5_hex($seed);
    my $piece = '';
    $piece .= pack('H*', md5_hex($blk . $_)) for 1 .. 4096;    # 64 KiB
    while (length($b) < $n) {
        $b .= $piece;
        $piece = substr($piece, 7) . substr($piece, 0, 7);
    }
    return substr($b, 0, $n);
}

my %FILES;
for my $f (['/s1k.txt', 1024], ['/m64k.bin', 65536 + 17], ['/l1m.bin', 1048576 + 3],
           ['/big8m.bin', 8 * 1048576 + 5]) {
    my $d = $f->[0] eq '/s1k.txt'
        ? substr(("soak harness text line\n" x 50), 0, 1024) : pr_bytes($f->[1], $f->[0]);
    $FILES{$f->[0]} = { len => length $d, md5 => md5_hex($d), data => $d };
}

# ---- server ----------------------------------------------------------------

our $T0 = time;
my $be = Ev2WS::Backend->start(max_time => $DUR + 600);
my $bport = $be->port;
my $tls_port = Ev2Server::free_port();
my $s = Ev2Server->new(
    mpm => <<"EOF",
StartServers 2
ServerLimit 8
ThreadLimit 32
ThreadsPerChild 16
MaxRequestWorkers 64
MinSpareThreads 16
MaxSpareThreads 48
MaxConnectionsPerChild $MAXCONN
EOF
    modules => [qw(alias socache_shmcb ssl http2 proxy proxy_http proxy_wstunnel
                   cgid reqtimeout remoteip)],
    files => { map { substr($_, 1) => $FILES{$_}{data} } keys %FILES },
    nofile => 8192,
);
my $D = $s->dir;
my ($crt, $key) = Ev2TLS::self_signed_cert($D);
make_path("$D/cgi-bin");
chmod 0755, "$D/cgi-bin";
{
    open my $fh, '>', "$D/cgi-bin/seq.sh" or die "write seq.sh: $!";
    print $fh <<'EOF';
#!/bin/sh
# soak CGI: the body is a function of the query string
printf 'Content-Type: text/plain\r\n\r\n'
printf 'qs=%s\n' "$QUERY_STRING"
n=${QUERY_STRING#n=}
case "$n" in ''|*[!0-9]*) n=0 ;; esac
[ "$n" -gt 0 ] && seq 1 "$n"
exit 0
EOF
    close $fh;
    chmod 0755, "$D/cgi-bin/seq.sh";
    # the slow writers' POST target: the body it was given, after its length
    open $fh, '>', "$D/cgi-bin/echo.sh" or die "write echo.sh: $!";
    print $fh <<'EOF';
#!/bin/sh
# soak CGI: echoes the request body
printf 'Content-Type: application/octet-stream\r\n\r\n'
printf 'len=%s\n' "$CONTENT_LENGTH"
n=${CONTENT_LENGTH:-0}
case "$n" in ''|*[!0-9]*) n=0 ;; esac
[ "$n" -gt 0 ] && head -c "$n"
exit 0
EOF
    close $fh;
    chmod 0755, "$D/cgi-bin/echo.sh";
}
$s->{conf} = <<"EOF";
Protocols h2 h2c http/1.1
Timeout 20
KeepAliveTimeout 3
GracefulShutdownTimeout $GST
RequestReadTimeout header=10-20,MinRate=500 body=20,MinRate=500
EnableSendfile On
EnableMMAP On
Alias /nosf/ "$D/htdocs/"
<Location /nosf/>
    EnableSendfile Off
</Location>
ScriptAlias /cgi/ "$D/cgi-bin/"
ScriptSock "$D/run/cgid.sock"
<Directory "$D/cgi-bin">
    Require all granted
</Directory>
ProxyPass /ws ws://127.0.0.1:$bport/
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
SSLSessionCache "shmcb:$D/run/ssl_scache(512000)"
Listen 127.0.0.1:$tls_port
<VirtualHost 127.0.0.1:$tls_port>
    ServerName 127.0.0.1
    SSLEngine on
    SSLCertificateFile "$crt"
    SSLCertificateKeyFile "$key"
</VirtualHost>
EOF
$s->write_config;
my ($trc, $tout) = $s->config_test;
die "configuration test failed: $tout\n" if $trc != 0;
$s->start;
my $PORT = $s->port;
logmsg("server $MPM pid $s->{pid} on $PORT (TLS $tls_port), dir $D, $DUR s");

# ---- /proc helpers ---------------------------------------------------------

sub slurp { my $f = shift; open my $fh, '<', $f or return undef; local $/; my $t = <$fh>; close $fh; $t }

sub children_of {
    my $pid = shift or return ();
    my $t = slurp("/proc/$pid/task/$pid/children");
    return $s->child_pids($pid) unless defined $t;
    my @k = grep { Ev2Server::alive($_) } split ' ', $t;
    return sort { $a <=> $b } @k;
}

sub proc_sample {
    my $pid = shift;
    opendir my $dh, "/proc/$pid/fd" or return undef;
    my $fds = grep { /^\d+$/ } readdir $dh;
    closedir $dh;
    my $st = slurp("/proc/$pid/status") // '';
    my ($thr) = $st =~ /^Threads:\s+(\d+)/m;
    my $sr = slurp("/proc/$pid/smaps_rollup") // '';
    my ($rss) = $sr =~ /^Rss:\s+(\d+) kB/m;
    my ($pss) = $sr =~ /^Pss:\s+(\d+) kB/m;
    my ($anon) = $sr =~ /^Anonymous:\s+(\d+) kB/m;
    ($rss) = $st =~ /^VmRSS:\s+(\d+) kB/m unless defined $rss;
    return { pid => $pid, fds => $fds, threads => $thr // 0, rss => $rss // 0, pss => $pss // 0,
        anon => $anon // 0 };
}

# Socket inodes of a process.
sub sock_inodes {
    my $pid = shift;
    my %i;
    opendir my $dh, "/proc/$pid/fd" or return {};
    for my $fd (readdir $dh) {
        my $l = readlink("/proc/$pid/fd/$fd") // next;
        $i{$1} = 1 if $l =~ /^socket:\[(\d+)\]/;
    }
    closedir $dh;
    return \%i;
}

# TCP sockets: inode => {lport, rport, state} (IPv4 and IPv6 tables).
sub tcp_table {
    my %t;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        <$fh>;
        while (<$fh>) {
            my @c = split;
            next unless @c >= 10;
            my ($lp) = $c[1] =~ /:([0-9A-F]+)$/;
            my ($rp) = $c[2] =~ /:([0-9A-F]+)$/;
            $t{$c[9]} = { lport => hex $lp, rport => hex $rp, state => $c[3] };
        }
        close $fh;
    }
    return \%t;
}

# The client ports of the connections a server process holds.
sub client_ports_of {
    my ($pid, $tcp) = @_;
    $tcp //= tcp_table();
    my $in = sock_inodes($pid);
    my @p;
    for my $i (keys %$in) {
        my $e = $tcp->{$i} or next;
        next if $e->{state} eq '0A';    # LISTEN
        push @p, $e->{rport} if $e->{lport} == $PORT || $e->{lport} == $tls_port;
    }
    return sort { $a <=> $b } @p;
}

# The client ports of connections the kernel holds for the listeners in
# SYN_RECV: httpd sets TCP_DEFER_ACCEPT (30 s) on Linux, so a connection
# that has sent nothing is not accepted yet, and no process has it.
sub syn_recv_ports {
    my @p;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        <$fh>;
        while (<$fh>) {
            my @c = split;
            next unless @c >= 4 && $c[3] eq '03';
            my ($lp) = $c[1] =~ /:([0-9A-F]+)$/;
            my ($rp) = $c[2] =~ /:([0-9A-F]+)$/;
            next unless defined $lp && defined $rp;
            push @p, hex $rp if hex($lp) == $PORT || hex($lp) == $tls_port;
        }
        close $fh;
    }
    return sort { $a <=> $b } @p;
}

# ---- status ----------------------------------------------------------------

sub status {
    my %r;
    my $a = Ev2HTTP::get($PORT, '/server-status?auto', timeout => 5);
    return undef unless $a && $a->{status} == 200;
    for my $line (split /\r?\n/, $a->{body}) {
        $r{auto}{$1} = $2 if $line =~ /^([^:]+):\s*(.*?)\s*$/;
    }
    my $sb = $r{auto}{Scoreboard} // '';
    $r{sb}{$_}++ for split //, $sb;
    my $h = Ev2HTTP::get($PORT, '/server-status', timeout => 5);
    if ($h && $h->{status} == 200) {
        # The per-process table: Slot PID Stopping Conns(total, accepting)
        # Threads(busy, idle) Async(...).
        for my $row ($h->{body} =~ m{<tr>(<td>.*?)</tr>}gs) {
            my @c = map { s/<[^>]*>//gr } $row =~ m{<td[^>]*>(.*?)</td>}gs;
            next unless @c >= 8 && $c[0] =~ /^\d+$/ && $c[1] =~ /^\d+$/;
            push @{ $r{procs} }, { slot => $c[0], pid => $c[1], stopping => $c[2],
                conns => $c[3], accepting => $c[4], busy => $c[5], idle => $c[6],
                async => [ @c[7 .. $#c] ] };
        }
    }
    return \%r;
}

# Baseline: the descriptors of a fresh, idle worker child (before any load).
sleep 1;
my $BASE_CHILD_FDS;
{
    my %sb = map { $_->{pid} => 1 } @{ (status() // {})->{procs} // [] };
    my @c = map { proc_sample($_) } grep { $sb{$_} } children_of($s->{pid});
    $BASE_CHILD_FDS = @c ? max(map { $_->{fds} } grep { $_ } @c) : undef;
}

# ---- load ------------------------------------------------------------------

my $LOAD_END = time + $DUR;
my $TMP = "$OUTDIR/tmp";
make_path($TMP);
unlink glob("$OUTDIR/clients/*");
make_path("$OUTDIR/clients");
unlink glob("$OUTDIR/traces/*");
make_path("$OUTDIR/traces");
my %KIDS;    # pid => name

# name => [kind, count]
my @CLIENTS = (
    [ka => 2], [close => 1], [pipe => 1], [https => 1], [big_sendfile => 1],
    [big_mmap => 1], [range => 1], [cgi => 1], [ws => 1], [reset => 1],
    [slowread => 1], [halfopen => 1], [junk => 1], [h2curl => 1], [slowwrite => 2],
);
my $seed = 1;
for my $c (@CLIENTS) {
    my ($kind, $n) = @$c;
    for my $i (1 .. $n) {
        my $name = "$kind.$i";
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            %Ev2Server::LIVE = ();
            %Ev2WS::Backend::LIVE = ();
            make_path("$TMP/$name");
            SoakClient::run($kind, { port => $PORT, tls_port => $tls_port,
                deadline => $LOAD_END, out => "$OUTDIR/clients/$name.jsonl",
                files => \%FILES, seed => $seed++, tmp => "$TMP/$name",
                traces => "$OUTDIR/traces" });
        }
        $seed++;
        $KIDS{$pid} = $name;
    }
}

# Aggregate tools in 10 s segments: wrk (HTTP/1.1 keep-alive, Lua-checked,
# paced) and h2load (h2c and h2 over TLS, rate-limited).
sub run_tool {
    my ($name, $mk) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid) { $KIDS{$pid} = $name; return }
    %Ev2Server::LIVE = ();
    %Ev2WS::Backend::LIVE = ();
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    $SIG{INT} = 'IGNORE';
    open my $out, '>>', "$OUTDIR/clients/$name.jsonl" or POSIX::_exit(2);
    my $round = 0;
    while (!$stop && time < $LOAD_END - 2) {
        # no new segment while the harness has the server stopped
        if (-e "$OUTDIR/pause") { sleep 0.2; next }
        my $len = min(10, int($LOAD_END - time));
        my ($tool, $conns, $streams, @cmd) = $mk->($len, $round++);
        my $t0 = time;
        my ($rc, $txt) = Ev2Server::run_cmd(['timeout', '-k', '5', $len + 30, @cmd]);
        my $seg = { seg => 1, tool => $tool, t0 => $t0, t1 => time, rc => $rc,
            conns => $conns, streams => $streams };
        if ($tool eq 'wrk') {
            if ($txt =~ /^RESULT (.*)$/m) {
                my %kv = map { split /=/, $_, 2 } split ' ', $1;
                $seg->{$_} = $kv{$_} + 0 for keys %kv;
            }
            else { $seg->{noresult} = substr($txt, -300) }
        }
        else {
            if ($txt =~ /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m) {
                @$seg{qw(total started done succeeded failed errored timeout)} = ($1, $2, $3, $4, $5, $6, $7);
            }
            else { $seg->{noresult} = substr($txt, -300) }
            if ($txt =~ /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m) {
                @$seg{qw(s2xx s3xx s4xx s5xx)} = ($1, $2, $3, $4);
            }
        }
        print {$out} JSON::PP->new->canonical->encode($seg), "\n";
        $out->flush;
        sleep 1 if $seg->{noresult};
    }
    close $out;
    POSIX::_exit(0);
}

my $have_wrk = -x '/usr/bin/wrk';
my $have_h2load = -x '/usr/bin/h2load';
if ($have_wrk) {
    run_tool('wrk', sub {
        my ($len, $r) = @_;
        return ('wrk', 4, 1, 'wrk', '-t1', '-c4', "-d${len}s", '--timeout', '10s',
            '-s', "$TOP/soak/wrk_check.lua", "http://127.0.0.1:$PORT/s1k.txt", '--', 1024, 4);
    });
}
if ($have_h2load) {
    run_tool('h2load', sub {
        my ($len, $r) = @_;
        my $url = $r % 2 ? "https://127.0.0.1:$tls_port/m64k.bin" : "http://127.0.0.1:$PORT/s1k.txt";
        return ($r % 2 ? 'h2load-tls' : 'h2load-h2c', 2, 4, 'h2load', '-D', $len,
            '-c', '2', '-m', '4', '--rps', '40', $url);
    });
}

# ---- admin events and samples ----------------------------------------------

my (@EVENTS, @SAMPLES, @STATUS, %SEEN_CHILD, @CHILD_EXITS, %KILLED, @NOTES);

sub answers {
    my $r = Ev2HTTP::get($PORT, '/s1k.txt', timeout => 3);
    return $r && $r->{status} == 200;
}

sub wait_answers {
    my $lim = shift;
    my $dl = time + $lim;
    while (time < $dl) { return 1 if answers(); sleep 0.1 }
    return 0;
}

sub worker_children {
    my $st = status();
    my %sb = map { $_->{pid} => 1 } @{ $st->{procs} // [] };
    return grep { $sb{$_} } children_of($s->{pid});
}

sub do_event {
    my $type = shift;
    my $e = { type => $type, t0 => time };
    if ($type eq 'graceful') {
        eval { $s->graceful; 1 } or $e->{error} = "$@";
    }
    elsif ($type eq 'restart') {
        eval { $s->restart; 1 } or $e->{error} = "$@";
        wait_answers(30) or $e->{error} //= 'server did not answer within 30 s';
    }
    elsif ($type eq 'kill') {
        my @k = grep { !$KILLED{$_} } worker_children();
        if (@k) {
            my $v = $k[int rand @k];
            $e->{pid} = $v;
            # Stopped first, so that the connections it holds cannot change
            # while /proc/net/tcp (slow to read) is matched to its sockets.
            kill 'STOP', $v;
            $e->{ports} = [ client_ports_of($v) ];
            $e->{t0} = time;
            kill 'KILL', $v;
            $KILLED{$v} = 1;
        }
        else { $e->{error} = 'no worker child to kill' }
    }
    elsif ($type eq 'gstop') {
        my $old = $s->{pid};
        open my $pf, '>', "$OUTDIR/pause";
        close $pf;
        # Closing the listeners drops these without a reset (see
        # syn_recv_ports): a silent client is never told.
        $e->{deferred} = [ syn_recv_ports() ];
        eval { $s->graceful_stop; 1 } or $e->{error} = "$@";
        $e->{gone} = $s->wait_gone($GST + 20) ? 1 : 0;
        $e->{t_gone} = time;
        delete $Ev2Server::LIVE{$old};
        unless ($e->{gone}) {
            $e->{error} //= 'old server still there after graceful-stop';
            $s->_kill_leftovers;
        }
        my $port0 = $s->port;
        eval { $s->start; 1 } or $e->{error} //= "start after graceful-stop: $@";
        $e->{error} //= 'port changed on start' if $s->port != $port0;
        $e->{newpid} = $s->{pid};
        unlink "$OUTDIR/pause";
    }
    $e->{t1} = time;
    push @EVENTS, $e;
    logmsg(sprintf "%s%s done in %.1fs%s", $type, $e->{pid} ? " (pid $e->{pid}, "
        . scalar(@{ $e->{ports} }) . ' conns)' : '', $e->{t1} - $e->{t0},
        $e->{error} ? " ERROR: $e->{error}" : '');
}

sub watch_children {
    my $now = time;
    my %now = map { $_ => 1 } children_of($s->{pid});
    for my $p (keys %now) { $SEEN_CHILD{$p} //= $now }
    for my $p (keys %SEEN_CHILD) {
        next if $now{$p} || !defined $SEEN_CHILD{$p};
        next if Ev2Server::alive($p) && (Ev2Server::proc_stat($p))[1] == $s->{pid};
        push @CHILD_EXITS, { pid => $p, t => $now, started => $SEEN_CHILD{$p},
            killed => $KILLED{$p} ? 1 : 0 };
        $SEEN_CHILD{$p} = undef;
    }
}

sub take_sample {
    my $t = time;
    my $st = status();
    my %sbpid = map { $_->{pid} => 1 } @{ $st->{procs} // [] };
    my @procs;
    if ($s->{pid} && Ev2Server::alive($s->{pid})) {
        my $p = proc_sample($s->{pid});
        if ($p) { $p->{role} = 'parent'; push @procs, $p }
        for my $k (children_of($s->{pid})) {
            my $q = proc_sample($k) or next;
            $q->{role} = $sbpid{$k} ? 'child' : 'other';
            push @procs, $q;
        }
    }
    push @SAMPLES, { t => $t - $T0, procs => \@procs };
    push @STATUS, { t => $t - $T0, ok => $st ? 1 : 0,
        sb => $st ? $st->{sb} : undef,
        procs => $st ? $st->{procs} : undef,
        auto => $st ? { map { $_ => $st->{auto}{$_} } grep { /^(BusyWorkers|IdleWorkers|ConnsTotal|ConnsAsync\w+|Total Accesses|Processes|Stopping\w*)$/ } keys %{ $st->{auto} } } : undef };
    return (\@procs, $st);
}


my $INT = 0;
$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { $INT = 1 };

my $next_sample = time + $SAMPLE_EVERY;
my $next_event = $T0 + $PERIOD;
my $evi = 0;
while (time < $LOAD_END && !$INT) {
    my $now = time;
    watch_children();
    if ($now >= $next_event && $now < $LOAD_END - 3) {
        do_event($SCHEDULE[$evi++ % @SCHEDULE]);
        $next_event += $PERIOD;
        $next_event = time + 2 if $next_event < time + 2;
    }
    if (time >= $next_sample) {
        take_sample();
        $next_sample += $SAMPLE_EVERY;
        $next_sample = time + 1 if $next_sample < time;
    }
    # reap clients that ended early
    while ((my $k = waitpid(-1, WNOHANG)) > 0) {
        push @NOTES, "client $KIDS{$k} ended before the deadline (status $?)"
            if $KIDS{$k} && time < $LOAD_END - 1;
        delete $KIDS{$k};
    }
    sleep 0.5;
}
logmsg('load ends' . ($INT ? ' (interrupted)' : ''));

# ---- stop the load ----------------------------------------------------------

sub stop_kids {
    my $lim = shift;
    kill 'TERM', keys %KIDS;
    my $dl = time + $lim;
    while (%KIDS && time < $dl) {
        while ((my $k = waitpid(-1, WNOHANG)) > 0) { delete $KIDS{$k} }
        watch_children();
        sleep 0.2;
    }
    my @left = sort values %KIDS;
    if (@left) {
        kill 'KILL', keys %KIDS;
        while ((my $k = waitpid(-1, WNOHANG)) > 0) { delete $KIDS{$k} }
        sleep 0.5;
        while ((my $k = waitpid(-1, WNOHANG)) > 0) { delete $KIDS{$k} }
    }
    return @left;
}
my @stuck_clients = stop_kids(90);
unlink "$OUTDIR/pause";
push @NOTES, "clients that did not stop within 90 s: @stuck_clients" if @stuck_clients;
END {
    if (%KIDS) { kill 'KILL', keys %KIDS }
    $be->stop if $be;
}
if ($INT) { $s->stop; die "interrupted\n" }

# Quiet period, then the end state (bounded: until clean or 30 s more).
my $t_quiet = time;
while (time < $t_quiet + $QUIET) { watch_children(); take_sample() if time >= $next_sample && ($next_sample += $SAMPLE_EVERY); sleep 0.5 }
my %END;
my $dl = time + 30;
while (1) {
    my ($procs, $st) = take_sample();
    my $tcp = tcp_table();
    my ($held, %held_by_state) = (0);
    for my $p (@$procs) {
        my $in = sock_inodes($p->{pid});
        for my $i (keys %$in) {
            my $e = $tcp->{$i} or next;
            next if $e->{state} eq '0A';
            $held++;
            $held_by_state{$e->{state}}++;
        }
    }
    my $sb = $st ? $st->{sb} : {};
    my $busy = ($sb->{R} // 0) + ($sb->{W} // 0) + ($sb->{K} // 0) - 1;    # our own request is W
    my @rows = @{ $st ? $st->{procs} // [] : [] };
    my $conns = max(0, sum(0, map { $_->{conns} =~ /^\d+$/ ? $_->{conns} : 0 } @rows) - 1);
    my $stopping = grep { $_->{stopping} =~ /yes/i } @rows;
    my @cfds = map { $_->{fds} } grep { $_->{role} eq 'child' } @$procs;
    %END = (t => time - $T0, status_ok => $st ? 1 : 0, busy_slots => $busy,
        scoreboard => $st ? $st->{auto}{Scoreboard} : undef,
        status_conns => $conns, stopping_procs => $stopping,
        tcp_held => $held, tcp_held_states => \%held_by_state,
        child_fds => \@cfds, base_child_fds => $BASE_CHILD_FDS,
        procs => scalar(@$procs));
    last if $st && $busy <= 0 && $conns <= 0 && !$stopping && !$held;
    last if time >= $dl;
    sleep 1;
}
logmsg("end state: busy $END{busy_slots}, conns $END{status_conns}, stopping $END{stopping_procs}, tcp held $END{tcp_held}");

my $clean_stop = $s->stop(timeout => 30);
logmsg('server stopped' . ($clean_stop ? '' : ' (had to be killed)'));
$be->stop;
undef $be;

# ---- analysis ---------------------------------------------------------------

my (@FAILS, %COUNTS, @SEGS);
for my $f (glob "$OUTDIR/clients/*.jsonl") {
    my ($name) = $f =~ m{/([^/]+)\.jsonl$};
    open my $fh, '<', $f or next;
    while (my $l = <$fh>) {
        my $r = eval { JSON::PP::decode_json($l) } or next;
        if ($r->{f}) { $r->{client} = $name; push @FAILS, $r }
        elsif ($r->{c}) { $COUNTS{$name} = $r }
        elsif ($r->{seg}) { push @SEGS, $r }
    }
    close $fh;
    push @NOTES, "client $name wrote no final counts" unless $COUNTS{$name} || $name =~ /^(wrk|h2load)$/;
}

sub in { my ($t, $a, $b) = @_; return $t >= $a && $t <= $b }

# mod_cgid's daemon is started again at every graceful or restart, and a
# CGI request that reaches it in between is answered 503 at once with one
# of these lines: the new socket is bound (owner root, mode 0700) before it
# is given to the User, and connect_to_daemon() does not retry EACCES
# (AH01257); or the old daemon is gone with its socket (it exits on the
# SIGHUP of a restart) and ENOENT is retried only within 60 s of the
# scoreboard's restart_time, which httpd sets only when it makes the
# scoreboard again, after the old children are dealt with (AH02833); or
# the request had reached the old daemon, which the parent tells to exit
# (SIGHUP) at the restart, before it answered with the script's pid
# (AH10246, connection reset).
my %CGID_EACCES;
for my $l (split /\n/, $s->log_text) {
    $CGID_EACCES{$1} = 1
        if $l =~ /\(13\)Permission denied: \[client [^\]]*:(\d+)\] AH01257: .*unable to connect to cgi daemon/
        || $l =~ /\(2\)No such file or directory: \[client [^\]]*:(\d+)\] AH02833: .*ScriptSock .* does not exist/
        || $l =~ /\(\d+\)[^:]*: \[client [^\]]*:(\d+)\] AH10246: .*failed reading PID from cgi daemon/;
}

# Classify one failure of a checked client.
sub classify {
    my $f = shift;
    if ((($f->{kind} // '') eq 'cgi' && ($f->{err} // '') eq 'status 503'
            || $f->{cgi} && ($f->{err} // '') =~ /: status 503$/) && $f->{phase} eq 'bad'
            && $f->{lport} && $CGID_EACCES{$f->{lport}}) {
        for my $e (@EVENTS) {
            return 'cgid_restart' if ($e->{type} eq 'graceful' || $e->{type} eq 'restart')
                && in($f->{t}, $e->{t0}, $e->{t1} + 2);
        }
    }
    if (($f->{kind} // '') eq 'halfopen' && $f->{phase} eq 'not_closed'
            && ($f->{err} // '') =~ /^nothing sent/ && $f->{lport}) {
        for my $e (@EVENTS) {
            return 'gstop_deferred' if $e->{type} eq 'gstop'
                && grep({ $_ == $f->{lport} } @{ $e->{deferred} // [] })
                && ($f->{conn_t0} // 1e12) <= $e->{t0};
        }
    }
    return 'unexplained' if $f->{phase} eq 'bad' || $f->{phase} eq 'not_closed';
    for my $e (@EVENTS) {
        if ($e->{type} eq 'kill' && $e->{pid}) {
            if ($f->{lport} && grep { $_ == $f->{lport} } @{ $e->{ports} }) {
                return 'kill' if $f->{t} >= $e->{t0} - 0.5 && ($f->{conn_t0} // 0) <= $e->{t0};
            }
            # curl reports no local port for some failed transfers
            return 'kill' if !$f->{lport} && $f->{phase} ne 'connect'
                && in($f->{t}, $e->{t0}, $e->{t0} + 3) && ($f->{conn_t0} // 1e12) <= $e->{t0};
        }
        elsif ($e->{type} eq 'restart') {
            # in flight at the signal: cut whenever the old generation is
            # made to exit (stock reclaims it before it starts the new one,
            # ours lets it finish for some seconds); Timeout bounds it
            return 'restart' if $f->{req_t0} <= $e->{t0} && in($f->{t}, $e->{t0}, $e->{t0} + 20);
            return 'restart' if in($f->{t}, $e->{t0}, $e->{t1} + 5) && $f->{req_t0} <= $e->{t1} + 1;
        }
        elsif ($e->{type} eq 'gstop') {
            next unless in($f->{t}, $e->{t0}, $e->{t1} + 2);
            return 'gstop_down' if $f->{phase} eq 'connect' || $f->{phase} eq 'nobyte';
            return 'gstop_timeout' if $f->{req_t0} < $e->{t0} + 0.5 && $f->{t} >= $e->{t0} + $GST - 1;
        }
    }
    return 'unexplained';
}

my %CLASS;
my %per_event;
for my $f (@FAILS) {
    $f->{class} = classify($f);
    $CLASS{$f->{class}}++;
}

# Bounds of admin-caused failures (see README): a SIGKILL costs at most one
# failure per connection the child held; a restart or graceful-stop window
# at most one failure per client connection plus one per back-off interval
# of the window.
my $NSLOTS = 4 + sum(map { $_->[1] } @CLIENTS);    # halfopen holds 4
my %ABOUND;
for my $e (@EVENTS) {
    if ($e->{type} eq 'kill') { $ABOUND{kill} += scalar @{ $e->{ports} // [] } }
    elsif ($e->{type} eq 'restart') {
        $ABOUND{restart} += $NSLOTS * (1 + POSIX::ceil(($e->{t1} - $e->{t0} + 5) / $SoakClient::BACKOFF));
    }
    elsif ($e->{type} eq 'gstop') {
        my $w = POSIX::ceil(($e->{t1} - $e->{t0} + 2) / $SoakClient::BACKOFF);
        $ABOUND{gstop_down} += $NSLOTS * (1 + $w);
        $ABOUND{gstop_timeout} += $NSLOTS;
        $ABOUND{gstop_deferred} += scalar @{ $e->{deferred} // [] };
    }
    if ($e->{type} eq 'graceful' || $e->{type} eq 'restart') {
        $ABOUND{cgid_restart} += sum(0, map { $_->[1] } grep { $_->[0] eq 'cgi' || $_->[0] eq 'slowwrite' } @CLIENTS);
    }
}

# Aggregate tools: wrong answers (non-2xx, bad length) are never explained;
# transport errors are explained only in a segment that overlaps a server
# event (admin event or a child exit within 60 s after it: keep-alive
# connections closed by a recycling or restarting child), at most one per
# connection and stream per such event; connect errors in a segment that
# overlaps a down window (restart, graceful-stop) are counted apart.
my %TOOL = ();
for my $g (@SEGS) {
    my $tool = $g->{tool};
    my $T = $TOOL{$tool} //= { segments => 0, requests => 0, ok => 0, wrong => 0,
        transport => 0, explained => 0, unexplained => 0, down => 0, noresult => 0 };
    $T->{segments}++;
    my @ev = grep { $_->{t0} <= $g->{t1} && $_->{t1} + 5 >= $g->{t0} } @EVENTS;
    my $down = grep { $_->{type} eq 'restart' || $_->{type} eq 'gstop' } @ev;
    if ($g->{noresult}) {
        $T->{noresult}++;
        push @NOTES, sprintf("%s segment at %.0f-%.0fs without a result: %s", $tool,
            $g->{t0} - $T0, $g->{t1} - $T0, $g->{noresult} =~ s/\s+/ /gr) unless $down;
        $T->{unexplained}++ unless $down;
        next;
    }
    my ($req, $ok, $wrong, $transport, $conn_err);
    if ($tool eq 'wrk') {
        $req = $g->{requests};
        $wrong = $g->{non2xx} + $g->{badlen};
        $conn_err = $g->{err_connect};
        $transport = $g->{err_read} + $g->{err_write} + $g->{err_timeout};
        $ok = $req - $wrong;
    }
    else {
        $req = $g->{done};
        $wrong = ($g->{s3xx} // 0) + ($g->{s4xx} // 0) + ($g->{s5xx} // 0);
        $ok = $g->{s2xx} // $g->{succeeded};
        $transport = $g->{failed} + $g->{errored} + $g->{timeout} - $wrong;
        $transport = 0 if $transport < 0;
        $transport += $g->{started} - $g->{done} if $g->{started} > $g->{done};
        $conn_err = 0;
    }
    my @ex = grep { $_->{t} >= $g->{t0} && $_->{t} <= $g->{t1} + 60 } @CHILD_EXITS;
    $T->{requests} += $req;
    $T->{ok} += $ok;
    $T->{wrong} += $wrong;
    $T->{unexplained} += $wrong;
    if ($down) {
        # a segment that overlaps a restart or graceful-stop window: its
        # transport and connect errors are that window's
        $T->{down} += $transport + $conn_err;
        push @NOTES, sprintf("%s segment at %.0f-%.0fs: %d wrong answers", $tool,
            $g->{t0} - $T0, $g->{t1} - $T0, $wrong) if $wrong;
        next;
    }
    my $bound = $g->{conns} * $g->{streams} * (@ev + @ex);
    # h2load counts requests not sent when a connection went away as
    # not-done; those belong to the same closes.
    my $ex_t = min($transport, $bound);
    my $un_t = $transport - $ex_t;
    $T->{transport} += $transport;
    $T->{explained} += $ex_t;
    $T->{unexplained} += $un_t + $conn_err;
    if ($un_t + $wrong + $conn_err) {
        push @NOTES, sprintf("%s segment at %.0f-%.0fs: %d wrong, %d transport errors (bound %d: %d events, %d child exits), %d connect errors",
            $tool, $g->{t0} - $T0, $g->{t1} - $T0, $wrong, $transport, $bound, scalar @ev, scalar @ex, $conn_err // 0);
    }
}

# Requests by kind.
my %REQ;
for my $n (sort keys %COUNTS) {
    my $c = $COUNTS{$n};
    my ($kind) = $n =~ /^([^.]+)/;
    if ($kind eq 'h2curl') {
        $REQ{'h2c (curl, checked)'} += $c->{h2c} // 0;
        $REQ{'h2 TLS (curl, checked)'} += $c->{h2} // 0;
    }
    elsif ($kind eq 'slowwrite') {
        $REQ{"slowwrite: $_"} += $c->{$_} // 0 for 'header', 'body', 'tls header', 'tls body';
    }
    else { $REQ{$kind} += $c->{ok} }
    $REQ{_retries} += $c->{retries} // 0;
    $REQ{_h2_retries} += $c->{h2_retries} // 0;
}
$REQ{"$_ (aggregate)"} = $TOOL{$_}{ok} for keys %TOOL;

# Slopes after warm-up.
sub fit {
    my @p = @_;    # [x, y]
    return (undef, undef) if @p < 3;
    my $n = @p;
    my $mx = sum(map { $_->[0] } @p) / $n;
    my $my = sum(map { $_->[1] } @p) / $n;
    my ($sxy, $sxx) = (0, 0);
    for (@p) { $sxy += ($_->[0] - $mx) * ($_->[1] - $my); $sxx += ($_->[0] - $mx) ** 2 }
    return (undef, $my) unless $sxx;
    return ($sxy / $sxx, $my);
}
my $warm = $DUR * $WARM_FRAC;
my @post = grep { $_->{t} >= $warm && $_->{t} <= $DUR } @SAMPLES;
my %SLOPE;
{
    my (@pfd, @ppss, @cpss, @tpss, @tfd, @cfd, @thr, @crss, @canon);
    # The parent is only comparable within one parent process (graceful-stop
    # starts a new one); fit per parent pid and keep the longest.
    # A parent's memory steps up once, at its first restart (the second
    # configuration pass), and is flat after: its fit starts 5 s after the
    # first graceful or restart of its life.
    my (%byparent, %pstart, %pcut);
    for my $smp (@SAMPLES) {
        my ($par) = grep { $_->{role} eq 'parent' } @{ $smp->{procs} };
        $pstart{$par->{pid}} //= $smp->{t} if $par;
    }
    for my $pp (keys %pstart) {
        my ($e) = grep { ($_->{type} eq 'graceful' || $_->{type} eq 'restart')
            && $_->{t0} - $T0 > $pstart{$pp} } @EVENTS;
        $pcut{$pp} = $e ? $e->{t1} - $T0 + 5 : 1e9;
    }
    for my $smp (@post) {
        my ($par) = grep { $_->{role} eq 'parent' } @{ $smp->{procs} };
        my @ch = grep { $_->{role} eq 'child' } @{ $smp->{procs} };
        next unless $par;
        push @{ $byparent{$par->{pid}} }, [$smp->{t} / 60, $par->{fds}, $par->{pss}, $par->{rss}, $par->{anon}]
            if $smp->{t} >= $pcut{$par->{pid}};
        push @tpss, [$smp->{t} / 60, sum(map { $_->{pss} } @{ $smp->{procs} })];
        push @tfd, [$smp->{t} / 60, sum(map { $_->{fds} } @{ $smp->{procs} })];
        if (@ch) {
            push @cpss, [$smp->{t} / 60, sum(map { $_->{pss} } @ch) / @ch];
            push @crss, [$smp->{t} / 60, sum(map { $_->{rss} } @ch) / @ch];
            push @canon, [$smp->{t} / 60, sum(map { $_->{anon} } @ch) / @ch];
            push @cfd, [$smp->{t} / 60, sum(map { $_->{fds} } @ch) / @ch];
            push @thr, [$smp->{t} / 60, sum(map { $_->{threads} } @ch) / @ch];
        }
    }
    my ($longest) = sort { @{ $byparent{$b} } <=> @{ $byparent{$a} } } keys %byparent;
    my @pp = $longest ? @{ $byparent{$longest} } : ();
    my ($s1, $m1) = fit(map { [$_->[0], $_->[1]] } @pp);
    my ($s2, $m2) = fit(map { [$_->[0], $_->[2]] } @pp);
    my ($s3, $m3) = fit(map { [$_->[0], $_->[3]] } @pp);
    my ($s4, $m4) = fit(map { [$_->[0], $_->[4]] } @pp);
    my $span = @pp ? $pp[-1][0] - $pp[0][0] : 0;
    $SLOPE{parent} = { pid => $longest, samples => scalar @pp, minutes => $span,
        fd_slope_per_min => $s1, fd_mean => $m1, fd_min => @pp ? min(map { $_->[1] } @pp) : undef,
        fd_max => @pp ? max(map { $_->[1] } @pp) : undef,
        pss_kib_per_min => $s2, pss_mean_kib => $m2,
        rss_kib_per_min => $s3, rss_mean_kib => $m3,
        anon_kib_per_min => $s4, anon_mean_kib => $m4,
        parents => scalar keys %byparent };
    my @f;
    @f = fit(@cpss); $SLOPE{child_mean_pss} = { kib_per_min => $f[0], mean_kib => $f[1] };
    @f = fit(@crss); $SLOPE{child_mean_rss} = { kib_per_min => $f[0], mean_kib => $f[1] };
    @f = fit(@canon); $SLOPE{child_mean_anon} = { kib_per_min => $f[0], mean_kib => $f[1] };
    @f = fit(@tpss); $SLOPE{total_pss} = { kib_per_min => $f[0], mean_kib => $f[1] };
    @f = fit(@tfd);  $SLOPE{total_fds} = { per_min => $f[0], mean => $f[1] };
    @f = fit(@cfd);  $SLOPE{child_mean_fds} = { per_min => $f[0], mean => $f[1] };
    @f = fit(@thr);  $SLOPE{child_mean_threads} = { per_min => $f[0], mean => $f[1] };
    # Per child process: PSS slope over its own life after warm-up (those
    # with at least 6 samples).
    my %life;
    for my $smp (@post) {
        for my $p (grep { $_->{role} eq 'child' } @{ $smp->{procs} }) {
            push @{ $life{$p->{pid}} }, [$smp->{t} / 60, $p->{pss}];
        }
    }
    my @cs = sort { $a <=> $b } grep { defined } map { (fit(@$_))[0] } grep { @$_ >= 6 } values %life;
    $SLOPE{per_child_pss} = { children => scalar @cs,
        median_kib_per_min => @cs ? $cs[int(@cs / 2)] : undef,
        max_kib_per_min => @cs ? $cs[-1] : undef };
}

# Crash lines in the error log, apart from our own SIGKILLs.
my @CRASH;
my %LOGCOUNT;
for my $l (split /\n/, $s->log_text) {
    if ($l =~ /exit signal|AH00052|Segmentation|double free|corrupted|stack smashing|assert/i) {
        my ($pid) = $l =~ /child pid (\d+) exit signal Killed/;
        if ($pid && $KILLED{$pid}) { $LOGCOUNT{'our SIGKILL (AH00052)'}++; next }
        push @CRASH, $l;
    }
    $LOGCOUNT{$1}++ while $l =~ /\b(AH\d{5})\b/g;
}

# ---- verdict ----------------------------------------------------------------

my @CRIT;
sub crit { my ($name, $ok, $detail) = @_; push @CRIT, { name => $name, ok => $ok ? 1 : 0, detail => $detail } }
my $unexpl = ($CLASS{unexplained} // 0) + sum(0, map { $_->{unexplained} } values %TOOL);
crit('no unexplained failure', !$unexpl, "$unexpl unexplained");
for my $k (sort keys %ABOUND) {
    crit("admin-caused failures ($k) within bound", ($CLASS{$k} // 0) <= $ABOUND{$k},
        sprintf('%d <= %d', $CLASS{$k} // 0, $ABOUND{$k}));
}
my @everr = grep { $_->{error} } @EVENTS;
crit('every admin event succeeded', !@everr, join('; ', map { "$_->{type}: $_->{error}" } @everr) || 'all');
my $P = $SLOPE{parent};
my $pgrowth = defined $P->{fd_slope_per_min} ? $P->{fd_slope_per_min} * $P->{minutes} : 0;
crit('parent descriptors flat', @post >= 3 && abs($pgrowth) <= $BOUND{parent_fd_growth}
        && ($P->{fd_max} // 0) - ($P->{fd_min} // 0) <= 2 * $BOUND{parent_fd_growth},
    sprintf('fit growth %.2f over %.1f min (bound %d), range %s-%s',
        $pgrowth, $P->{minutes}, $BOUND{parent_fd_growth}, $P->{fd_min} // '?', $P->{fd_max} // '?'));
my $cfmax = @{ $END{child_fds} // [] } ? max(@{ $END{child_fds} }) : undef;
crit('idle child descriptors back to a fresh child\'s',
    defined $cfmax && defined $BASE_CHILD_FDS && $cfmax <= $BASE_CHILD_FDS + $BOUND{child_idle_fd_extra},
    sprintf('end %s, fresh %s (+%d allowed)', join(',', @{ $END{child_fds} // [] }) || 'none',
        $BASE_CHILD_FDS // '?', $BOUND{child_idle_fd_extra}));
for my $m (['parent_rss_kib_min', $P->{rss_kib_per_min}, 'parent RSS'],
           ['child_pss_kib_min', $SLOPE{child_mean_pss}{kib_per_min}, 'mean worker-child PSS'],
           ['total_pss_kib_min', $SLOPE{total_pss}{kib_per_min}, 'total PSS']) {
    my $txt = sprintf('%s KiB/min (bound %d)', defined $m->[1] ? sprintf('%.1f', $m->[1]) : '?', $BOUND{$m->[0]});
    if ($DUR < 300) {
        crit("$m->[2] flat", 1, "$txt; not judged: runs under 300 s are mostly warm-up");
        next;
    }
    crit("$m->[2] flat", defined $m->[1] && $m->[1] <= $BOUND{$m->[0]}, $txt);
}
crit('no slot stuck busy at the end', $END{status_ok} && $END{busy_slots} <= $BOUND{stuck_busy},
    "busy (R/W/K) $END{busy_slots}, scoreboard '" . ($END{scoreboard} // '?') . "'");
crit('no connection left at the end', $END{status_ok} && $END{status_conns} <= 0 && !$END{tcp_held},
    "mod_status connections $END{status_conns}, TCP sockets held $END{tcp_held}");
crit('no process left stopping at the end', !$END{stopping_procs}, "$END{stopping_procs} stopping");
crit('no crash line in the error log', !@CRASH, @CRASH ? scalar(@CRASH) . " lines, first: $CRASH[0]" : 'none');
crit('server stopped cleanly', $clean_stop, $clean_stop ? 'yes' : 'had to be killed');
crit('every client stopped and reported', !@stuck_clients && !grep(/wrote no final counts/, @NOTES),
    @stuck_clients ? "stuck: @stuck_clients" : 'yes');
my $verdict = (grep { !$_->{ok} } @CRIT) ? 'FAIL' : 'PASS';

my %ev_count;
$ev_count{$_->{type}}++ for @EVENTS;
my $recycled = grep { !$_->{killed} } @CHILD_EXITS;
my $summary = {
    mpm => $MPM, module => $ENV{EV2_MPM_SO}, duration_s => $DUR, verdict => $verdict, t0_epoch => $T0,
    started => scalar(gmtime($T0)) . ' UTC', period_s => $PERIOD,
    max_connections_per_child => $MAXCONN, graceful_shutdown_timeout => $GST,
    requests => \%REQ, events => \%ev_count, child_exits => scalar @CHILD_EXITS,
    child_exits_not_killed => $recycled,
    failures => { total => scalar @FAILS, by_class => \%CLASS,
        by_kind_class => do { my %h; $h{"$_->{kind}/$_->{class}"}++ for @FAILS; \%h } },
    admin_bounds => \%ABOUND, tools => \%TOOL, slopes => \%SLOPE, bounds => \%BOUND,
    end_state => \%END, crash_lines => \@CRASH, log_codes => \%LOGCOUNT,
    criteria => \@CRIT, notes => \@NOTES,
    unexplained_failures => [ map { { %$_, t => sprintf('%.1f', $_->{t} - $T0) } } grep { $_->{class} eq 'unexplained' } @FAILS ],
    samples => scalar @SAMPLES, warmup_s => $warm,
    host => { cpus => scalar(() = (slurp('/proc/cpuinfo') // '') =~ /^processor/mg),
        loadavg => (split ' ', slurp('/proc/loadavg') // '')[0] },
};
open my $sj, '>', "$OUTDIR/summary.json" or die "write summary: $!";
print $sj $JSON->encode($summary);
close $sj;
open my $rj, '>', "$OUTDIR/samples.json" or die;
print $rj JSON::PP->new->canonical->encode({ samples => \@SAMPLES, status => \@STATUS,
    events => [ map { { %$_, t0 => $_->{t0} - $T0, t1 => $_->{t1} - $T0 } } @EVENTS ],
    child_exits => [ map { { %$_, t => $_->{t} - $T0, started => $_->{started} - $T0 } } @CHILD_EXITS ] });
close $rj;
system('cp', $s->error_log, "$OUTDIR/error_log");

# Markdown section.
my $md = '';
my $fmt = sub { my ($v, $p) = @_; defined $v ? sprintf("%.${\($p // 1)}f", $v) : '?' };
$md .= "### Soak run: $MPM MPM, $DUR s — **$verdict**\n\n";
$md .= "Started $summary->{started}; module `$ENV{EV2_MPM_SO}`; admin event every ${PERIOD} s; "
    . "MaxConnectionsPerChild $MAXCONN; samples every ${SAMPLE_EVERY} s, slopes over t >= ${warm} s; "
    . "load average at the end $summary->{host}{loadavg}.\n\n";
$md .= "| requests held (successful, checked) | count |\n|---|---:|\n";
$md .= "| $_ | $REQ{$_} |\n" for grep { !/^_/ } sort keys %REQ;
$md .= "| keep-alive retries (reused connection closed before the answer) | $REQ{_retries} |\n";
$md .= "| h2 retries (stream above the last stream id of a GOAWAY) | " . ($REQ{_h2_retries} // 0) . " |\n\n";
$md .= "| admin events | count |\n|---|---:|\n";
$md .= "| $_ | $ev_count{$_} |\n" for sort keys %ev_count;
$md .= "| child exits seen (all causes) | " . scalar(@CHILD_EXITS) . " |\n\n";
$md .= "| failures by class | count | bound |\n|---|---:|---:|\n";
$md .= "| $_ | $CLASS{$_} | " . ($ABOUND{$_} // ($_ eq 'unexplained' ? 0 : '')) . " |\n" for sort keys %CLASS;
$md .= "| (none) | 0 | |\n" unless %CLASS;
for my $t (sort keys %TOOL) {
    my $T = $TOOL{$t};
    $md .= "| $t: transport errors explained by a server event | $T->{explained} | |\n";
    $md .= "| $t: errors in a segment overlapping a restart/graceful-stop window | $T->{down} | |\n";
    $md .= "| $t: unexplained (wrong answers + unexplained errors) | $T->{unexplained} | 0 |\n";
}
$md .= "\n| resource (after warm-up) | value |\n|---|---|\n";
$md .= sprintf "| parent descriptors | %s-%s, slope %s/min |\n", $P->{fd_min} // '?', $P->{fd_max} // '?', $fmt->($P->{fd_slope_per_min}, 2);
$md .= sprintf "| parent PSS | mean %s KiB, slope %s KiB/min |\n", $fmt->($P->{pss_mean_kib}, 0), $fmt->($P->{pss_kib_per_min});
$md .= sprintf "| parent RSS / anonymous | mean %s / %s KiB, slope %s / %s KiB/min |\n", $fmt->($P->{rss_mean_kib}, 0), $fmt->($P->{anon_mean_kib}, 0), $fmt->($P->{rss_kib_per_min}), $fmt->($P->{anon_kib_per_min});
$md .= sprintf "| worker child anonymous memory (mean) | mean %s KiB, slope %s KiB/min |\n", $fmt->($SLOPE{child_mean_anon}{mean_kib}, 0), $fmt->($SLOPE{child_mean_anon}{kib_per_min});
$md .= sprintf "| worker child PSS (mean over children) | mean %s KiB, slope %s KiB/min |\n", $fmt->($SLOPE{child_mean_pss}{mean_kib}, 0), $fmt->($SLOPE{child_mean_pss}{kib_per_min});
$md .= sprintf "| worker child RSS (mean over children) | mean %s KiB, slope %s KiB/min |\n", $fmt->($SLOPE{child_mean_rss}{mean_kib}, 0), $fmt->($SLOPE{child_mean_rss}{kib_per_min});
$md .= sprintf "| per-child PSS slope over its own life (%d children) | median %s, max %s KiB/min |\n", $SLOPE{per_child_pss}{children}, $fmt->($SLOPE{per_child_pss}{median_kib_per_min}), $fmt->($SLOPE{per_child_pss}{max_kib_per_min});
$md .= sprintf "| total PSS (all server processes) | mean %s KiB, slope %s KiB/min |\n", $fmt->($SLOPE{total_pss}{mean_kib}, 0), $fmt->($SLOPE{total_pss}{kib_per_min});
$md .= sprintf "| total descriptors | mean %s, slope %s/min |\n", $fmt->($SLOPE{total_fds}{mean}, 0), $fmt->($SLOPE{total_fds}{per_min}, 2);
$md .= sprintf "| worker child threads (mean) | %s |\n", $fmt->($SLOPE{child_mean_threads}{mean});
$md .= sprintf "| end state after %d s quiet | scoreboard busy %d, connections %d, TCP held %d, stopping %d, child fds %s (fresh %s) |\n\n",
    $QUIET, $END{busy_slots}, $END{status_conns}, $END{tcp_held}, $END{stopping_procs},
    join(',', @{ $END{child_fds} // [] }), $BASE_CHILD_FDS // '?';
$md .= "| criterion | result | detail |\n|---|---|---|\n";
$md .= "| $_->{name} | " . ($_->{ok} ? 'ok' : '**FAILED**') . " | $_->{detail} |\n" for @CRIT;
if (my @u = grep { $_->{class} eq 'unexplained' } @FAILS) {
    $md .= "\nUnexplained failures (first 10):\n\n";
    $md .= sprintf("- t=%.1fs %s %s lport %s: %s%s\n", $_->{t} - $T0, $_->{client}, $_->{phase}, $_->{lport} // '-', $_->{err},
        $_->{trace} ? " (trace: $_->{trace})" : '') for @u[0 .. min(9, $#u)];
}
$md .= "\nNotes:\n\n" . join('', map { "- $_\n" } @NOTES) if @NOTES;
open my $mf, '>', "$OUTDIR/report.md" or die;
print $mf $md;
close $mf;
print $md;
print "\nsummary: $OUTDIR/summary.json\nverdict: $verdict\n";
exit($verdict eq 'PASS' ? 0 : 1);
