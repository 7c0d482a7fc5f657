#!/usr/bin/perl
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
#
# The benchmark driver behind bench/run (which installs the tools, raises the
# fd limit, compiles bench/benchcli.c and sets BENCH_WORK).  See
# bench/README.md for what is measured and how.

use strict;
use warnings;
use FindBin;
use Cwd qw(abs_path);
use File::Path qw(make_path);
use IO::Socket::INET;
use IO::Select;
use IPC::Open2;
use POSIX qw(:sys_wait_h strftime);
use Time::HiRes qw(time sleep);

$| = 1;

# ---------------------------------------------------------------------------
# settings

my $REPO = abs_path("$FindBin::Bin/..");
my $WORK = $ENV{BENCH_WORK} or die "BENCH_WORK not set: run bench/run\n";
my $CLI = "$WORK/benchcli";
my $RUNS = env_int('BENCH_RUNS', 3, 1);
my $DUR = env_int('BENCH_DURATION', 10, 1);
my $WARMUP = env_int('BENCH_WARMUP', 1, 0);
my @SCEN = grep { /^[1-8]$/ } split /[\s,]+/, ($ENV{BENCH_SCENARIOS} // '1,2,3,4,5,6,7,8');
my @SERVERS = split /[\s,]+/, ($ENV{BENCH_SERVERS} // 'event2,event,worker,prefork,nginx');
my @IDLE = grep { /^\d+$/ && $_ > 0 } split /[\s,]+/, ($ENV{BENCH_IDLE} // '1000,10000');
my $IDLE_TIMEOUT = env_int('BENCH_IDLE_TIMEOUT', 30, 1);
my $IDLE_MAXW = env_int('BENCH_IDLE_MAXWORKERS', 1000, 50);
my $ASYNC_FACTOR = env_int('BENCH_ASYNC_FACTOR', 200, 1);
my $SLOW_N = env_int('BENCH_SLOW_CLIENTS', 200, 1);
my $SLOW_INTERVAL = env_int('BENCH_SLOW_INTERVAL', 2, 1);
# What the slow clients of scenario 5 trickle: "header", "body", or over
# TLS "tls-header" (after the handshake) or "tls-hello" (the ClientHello).
my $SLOW_KIND = $ENV{BENCH_SLOW_KIND} // 'header';
die "BENCH_SLOW_KIND must be header, body, tls-header or tls-hello\n"
    unless $SLOW_KIND =~ /^(header|body|tls-header|tls-hello)$/;
my $RESTART_DUR = env_int('BENCH_RESTART_DURATION', 20, 4);
my $RESTART_EVERY = env_int('BENCH_RESTART_EVERY', 3, 1);
my $CG_REQ = env_int('BENCH_CALLGRIND_REQUESTS', 2000, 10);
my $NGINX_WORKERS = env_int('BENCH_NGINX_WORKERS', 1, 1);
my $OUT = $ENV{BENCH_OUT} // "$REPO/docs/BENCHMARKS.md";
my $NOTE = $ENV{BENCH_NOTE} // '';
my $SERVER_CPU = $ENV{BENCH_SERVER_CPU} // '0';
my $CLIENT_CPU = $ENV{BENCH_CLIENT_CPU} // '1';
my $KA_TIMEOUT = 120 + 3 * $DUR + $IDLE_TIMEOUT;
my $MODDIR = '/usr/lib/apache2/modules';
my $APACHE = '/usr/sbin/apache2';
my $SMALL = 1024;
my $BIG = 10 * 1024 * 1024;
my $HZ = `getconf CLK_TCK 2>/dev/null` + 0 || 100;

my %SRV = (
    event2  => { kind => 'httpd', mpm => 'event2', threaded => 1, async => 1,
                 so => "$REPO/.libs/mod_mpm_event2.so", sym => 'mpm_event2_module' },
    event   => { kind => 'httpd', mpm => 'event', threaded => 1, async => 1,
                 so => "$MODDIR/mod_mpm_event.so", sym => 'mpm_event_module' },
    worker  => { kind => 'httpd', mpm => 'worker', threaded => 1, async => 0,
                 so => "$MODDIR/mod_mpm_worker.so", sym => 'mpm_worker_module' },
    prefork => { kind => 'httpd', mpm => 'prefork', threaded => 0, async => 0,
                 so => "$MODDIR/mod_mpm_prefork.so", sym => 'mpm_prefork_module' },
    nginx   => { kind => 'nginx' },
);
# Another build of our MPM, for before/after comparisons in one interleaved
# run: BENCH_BASE_SO=/path/to/mod_mpm_event2.so and "base" in BENCH_SERVERS.
if (defined $ENV{BENCH_BASE_SO} && length $ENV{BENCH_BASE_SO}) {
    $SRV{base} = { kind => 'httpd', mpm => 'event2', threaded => 1, async => 1,
                   so => abs_path($ENV{BENCH_BASE_SO}) // $ENV{BENCH_BASE_SO},
                   sym => 'mpm_event2_module' };
}
@SERVERS = grep { exists $SRV{$_} } @SERVERS;
die "no known servers in BENCH_SERVERS\n" unless @SERVERS;

my %SKIP;   # server => reason it is not run at all
if (grep { $_ eq 'event2' } @SERVERS and !-f $SRV{event2}{so}) {
    $SKIP{event2} = "not built ($SRV{event2}{so} missing): skipped";
}
if (grep { $_ eq 'base' } @SERVERS and !-f $SRV{base}{so}) {
    $SKIP{base} = "BENCH_BASE_SO ($SRV{base}{so}) missing: skipped";
}
if (grep { $_ eq 'nginx' } @SERVERS and !-x '/usr/sbin/nginx') {
    $SKIP{nginx} = 'nginx not installed: skipped';
}
my @ACTIVE = grep { !$SKIP{$_} } @SERVERS;
# Scenario 5 over TLS: the servers get a second listener with TLS (mod_ssl,
# nginx "listen ... ssl") and a self-signed certificate made at the start.
my $SLOW_TLS = ($SLOW_KIND =~ /^tls-/ && grep { $_ == 5 } @SCEN) ? 1 : 0;
my $TLS_DIR = "$WORK/tls";

sub env_int {
    my ($name, $def, $min) = @_;
    my $v = $ENV{$name};
    return $def unless defined $v && $v =~ /^\d+$/;
    return $v < $min ? $min : $v + 0;
}

# ---------------------------------------------------------------------------
# process bookkeeping: everything we start is stopped on exit

my %LIVE;        # id => server handle
my %KIDS;        # pid => 1, client processes
my $seq = 0;

sub cleanup {
    for my $pid (keys %KIDS) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    %KIDS = ();
    for my $h (values %LIVE) {
        stop_server($h);
    }
}
$SIG{INT} = $SIG{TERM} = $SIG{HUP} = sub { print STDERR "bench: interrupted\n"; cleanup(); exit 130; };
END { cleanup(); }

sub logmsg { print STDERR strftime('[%H:%M:%S] ', localtime), @_, "\n"; }

# Runs a command with a timeout; returns (exit status, output).
sub run_cmd {
    my ($timeout, $env, @cmd) = @_;
    my $out = "$WORK/cmd." . (++$seq) . '.out';
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        setpgrp(0, 0);
        open(STDOUT, '>', $out);
        open(STDERR, '>&', \*STDOUT);
        open(STDIN, '<', '/dev/null');
        %ENV = (%ENV, %{ $env || {} });
        exec(@cmd) or POSIX::_exit(127);
    }
    $KIDS{$pid} = 1;
    my $rc = wait_pid($pid, $timeout);
    my $text = slurp($out);
    unlink $out;
    return ($rc, $text);
}

# Starts a command in the background (stdout+stderr to a file).
sub spawn {
    my ($outfile, $env, @cmd) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        setpgrp(0, 0);
        open(STDOUT, '>', $outfile);
        open(STDERR, '>&', \*STDOUT);
        open(STDIN, '<', '/dev/null');
        %ENV = (%ENV, %{ $env || {} });
        exec(@cmd) or POSIX::_exit(127);
    }
    $KIDS{$pid} = 1;
    return $pid;
}

# Waits for a child; kills it (and its process group) after $timeout s.
sub wait_pid {
    my ($pid, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) { delete $KIDS{$pid}; return $? >> 8; }
        if ($r < 0) { delete $KIDS{$pid}; return -1; }
        sleep 0.05;
    }
    kill 'TERM', -$pid;
    kill 'TERM', $pid;
    for (1 .. 40) {
        if (waitpid($pid, WNOHANG) == $pid) { delete $KIDS{$pid}; return -2; }
        sleep 0.05;
    }
    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    waitpid($pid, 0);
    delete $KIDS{$pid};
    return -2;
}

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or return '';
    local $/;
    my $t = <$fh>;
    close $fh;
    return $t // '';
}

sub spew {
    my ($f, $t) = @_;
    open(my $fh, '>', $f) or die "$f: $!";
    print $fh $t;
    close $fh;
}

sub free_port {
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or next;
        my $p = $s->sockport;
        close $s;
        return $p if $p >= 1024;
    }
    die "no free port\n";
}

# One HTTP/1.1 GET; returns (status, body length) or (0, 0).
sub http_get {
    my ($port, $path, $timeout) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => $timeout) or return (0, 0);
    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $end = time + $timeout;
    while (time < $end) {
        last unless $sel->can_read($end - time);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    return (0, 0) unless $buf =~ m{^HTTP/1\.\d (\d{3})};
    my $st = $1;
    my $i = index($buf, "\r\n\r\n");
    return ($st, $i < 0 ? 0 : length($buf) - $i - 4);
}

# ---------------------------------------------------------------------------
# docroot and configurations

my $DOCROOT = "$WORK/docroot";
sub make_docroot {
    make_path($DOCROOT);
    chmod 0755, $DOCROOT;
    my $line = ('0123456789abcdef' x 4) . "\n";   # 65 bytes
    my $small = substr($line x 16, 0, $SMALL - 1) . "\n";
    spew("$DOCROOT/index.html", $small);
    open(my $fh, '>', "$DOCROOT/big.bin") or die;
    my $chunk = join('', map { chr(($_ * 7) & 0xff) } 0 .. 65535);
    print $fh $chunk for 1 .. ($BIG / 65536);
    close $fh;
    chmod 0644, "$DOCROOT/index.html", "$DOCROOT/big.bin";
    die "docroot sizes wrong\n" unless -s "$DOCROOT/index.html" == $SMALL && -s "$DOCROOT/big.bin" == $BIG;
}

# $o: { idle => 1 (scenario 3 sizing), h2 => 1 (scenario 7) }
sub httpd_sizing {
    my ($name, $o) = @_;
    my $d = $SRV{$name};
    if (!$d->{threaded}) {
        my $max = $o->{idle} ? $IDLE_MAXW : 50;
        my $maxspare = $o->{idle} ? $IDLE_MAXW : 50;
        return <<"EOT";
# prefork: 50 processes started and kept (= 2 x 25 threads of the threaded MPMs)
StartServers 50
MinSpareServers 5
MaxSpareServers $maxspare
ServerLimit $max
MaxRequestWorkers $max
MaxConnectionsPerChild 0
EOT
    }
    my ($limit, $max) = (2, 50);
    if ($o->{idle} && !$d->{async}) {
        # worker can only hold idle keep-alive connections in threads
        $limit = int(($IDLE_MAXW + 24) / 25);
        $max = $limit * 25;
    }
    my $t = <<"EOT";
# threaded: 2 processes x 25 threads = 50 workers
StartServers 2
ServerLimit $limit
ThreadsPerChild 25
ThreadLimit 25
MinSpareThreads 25
MaxSpareThreads 75
MaxRequestWorkers $max
MaxConnectionsPerChild 0
EOT
    if ($o->{idle} && $d->{async}) {
        $t .= <<"EOT";
<IfDirective AsyncRequestWorkerFactor>
AsyncRequestWorkerFactor $ASYNC_FACTOR
</IfDirective>
EOT
    }
    return $t;
}

sub httpd_conf {
    my ($name, $dir, $port, $o, $tls_port) = @_;
    my $d = $SRV{$name};
    my $h2 = $o->{h2} ? <<"EOT" : '';
LoadModule http2_module $MODDIR/mod_http2.so
Protocols h2c http/1.1
EOT
    my $tls = $o->{tls} ? <<"EOT" : '';
LoadModule socache_shmcb_module $MODDIR/mod_socache_shmcb.so
LoadModule ssl_module $MODDIR/mod_ssl.so
Listen 127.0.0.1:$tls_port
SSLSessionCache shmcb:$dir/ssl_scache(512000)
SSLSessionCacheTimeout 300
<VirtualHost 127.0.0.1:$tls_port>
    SSLEngine on
    SSLCertificateFile $TLS_DIR/server.crt
    SSLCertificateKeyFile $TLS_DIR/server.key
</VirtualHost>
EOT
    my $sizing = httpd_sizing($name, $o);
    return <<"EOT";
# generated by bench/run ($name)
ServerRoot $dir
Listen 127.0.0.1:$port
ServerName 127.0.0.1
PidFile $dir/httpd.pid
DefaultRuntimeDir $dir
ErrorLog $dir/error.log
LogLevel warn
User www-data
Group www-data
LoadModule $d->{sym} $d->{so}
LoadModule authz_core_module $MODDIR/mod_authz_core.so
LoadModule mime_module $MODDIR/mod_mime.so
LoadModule status_module $MODDIR/mod_status.so
${h2}${tls}TypesConfig /etc/mime.types
# no access log (mod_log_config is built in, but no CustomLog is configured)
Timeout 60
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout $KA_TIMEOUT
EnableSendfile On
EnableMMAP On
$sizing
DocumentRoot $DOCROOT
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory $DOCROOT>
    Options None
    AllowOverride None
    Require all granted
</Directory>
<Location /server-status>
    SetHandler server-status
    Require all granted
</Location>
EOT
}

sub nginx_conf {
    my ($dir, $port, $o, $tls_port) = @_;
    my $listen = $o->{h2} ? "127.0.0.1:$port http2" : "127.0.0.1:$port";
    my $tls = $o->{tls} ? "\n        listen 127.0.0.1:$tls_port ssl;" .
        "\n        ssl_certificate $TLS_DIR/server.crt;" .
        "\n        ssl_certificate_key $TLS_DIR/server.key;" : '';
    my $wc = 1024 + 2 * (@IDLE ? (sort { $b <=> $a } @IDLE)[0] : 0);
    my $rl = 2 * $wc + 100;
    my $tmp = join("\n    ", map { "${_}_temp_path $dir/${_}_temp;" } qw(client_body proxy fastcgi uwsgi scgi));
    return <<"EOT";
# generated by bench/run (nginx)
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile $rl;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections $wc;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout ${KA_TIMEOUT}s;
    keepalive_requests 1000000;
    $tmp
    server {
        listen $listen;$tls
        server_name 127.0.0.1;
        root $DOCROOT;
        location /nginx_status { stub_status; allow 127.0.0.1; deny all; }
    }
}
EOT
}

# A self-signed certificate (P-256 key) for 127.0.0.1, made with openssl.
sub make_cert {
    make_path($TLS_DIR);
    chmod 0755, $TLS_DIR;
    my ($rc, $out) = run_cmd(60, undef, 'openssl', 'req', '-x509',
        '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', "$TLS_DIR/server.key", '-out', "$TLS_DIR/server.crt");
    die "openssl req failed (rc $rc): $out\n"
        if $rc != 0 || !-s "$TLS_DIR/server.crt" || !-s "$TLS_DIR/server.key";
}

my %CONF_SHOWN;   # key => text, printed into the report

# ---------------------------------------------------------------------------
# server control

sub server_pids {
    my ($h) = @_;
    my @pids = ($h->{pid});
    opendir(my $dh, '/proc') or return @pids;
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $st = slurp("/proc/$p/stat");
        next unless $st =~ /\)\s+\S+\s+(\d+)/;
        push @pids, $p if $1 == $h->{pid};
    }
    closedir $dh;
    $h->{seen}{$_} = 1 for @pids;
    return @pids;
}

# utime+stime of the parent and all children (+ reaped children of the parent)
sub server_ticks {
    my ($h) = @_;
    my $t = 0;
    for my $p (server_pids($h)) {
        my $st = slurp("/proc/$p/stat");
        next unless $st =~ /\)\s+(.*)$/s;
        my @f = split ' ', $1;      # f[0] = field 3 (state)
        $t += $f[11] + $f[12];      # utime, stime
        $t += $f[13] + $f[14] if $p == $h->{pid};   # cutime, cstime
    }
    return $t;
}

# utime+stime of one process, -1 if it is gone
sub proc_ticks {
    my ($pid) = @_;
    my $st = slurp("/proc/$pid/stat");
    return -1 unless $st =~ /\)\s+(.*)$/s;
    my @f = split ' ', $1;
    return $f[11] + $f[12];
}

sub server_mem {
    my ($h) = @_;
    my ($rss, $pss, $thr, $n) = (0, 0, 0, 0);
    for my $p (server_pids($h)) {
        my $r = slurp("/proc/$p/smaps_rollup");
        $rss += $1 if $r =~ /^Rss:\s+(\d+)/m;
        $pss += $1 if $r =~ /^Pss:\s+(\d+)/m;
        my $s = slurp("/proc/$p/status");
        $thr += $1 if $s =~ /^Threads:\s+(\d+)/m;
        $n++;
    }
    return { rss_kb => $rss, pss_kb => $pss, threads => $thr, procs => $n };
}

# a zombie (not yet reaped by init) counts as gone
sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    my $st = slurp("/proc/$pid/stat");
    return !($st =~ /\)\s+Z/);
}

sub error_tail {
    my ($h) = @_;
    # a foreground server (callgrind) has its output in start.out
    my $t = slurp("$h->{dir}/error.log")
          . ($h->{startout} // ($h->{fg} ? slurp("$h->{dir}/start.out") : ''));
    my @l = grep { /\S/ } split /\n/, $t;
    @l = @l[-3 .. -1] if @l > 3;
    my $s = join(' | ', @l);
    $s =~ s/\|/\\|/g;
    return substr($s, 0, 400);
}

# Starts a server; returns a handle with {failed} set when it did not come up.
# $o->{callgrind}: run in the foreground, single process, under callgrind.
sub start_server {
    my ($name, $tag, $o) = @_;
    my $d = $SRV{$name};
    my $dir = "$WORK/$name-$tag-" . (++$seq);
    make_path($dir);
    chmod 0755, $dir;
    my $port = free_port();
    my $h = { name => $name, dir => $dir, port => $port, seen => {} };
    if ($o->{tls}) {
        my $tp = free_port();
        $tp = free_port() while $tp == $port;
        $h->{tls_port} = $tp;
    }
    my ($conf, @cmd);
    if ($d->{kind} eq 'httpd') {
        $conf = "$dir/httpd.conf";
        spew($conf, httpd_conf($name, $dir, $port, $o, $h->{tls_port}));
        $h->{pidfile} = "$dir/httpd.pid";
        @cmd = ($APACHE, '-f', $conf);
        push @cmd, '-X' if $o->{callgrind};
    }
    else {
        $conf = "$dir/nginx.conf";
        spew($conf, nginx_conf($dir, $port, $o, $h->{tls_port}));
        $h->{pidfile} = "$dir/nginx.pid";
        @cmd = ('/usr/sbin/nginx', '-c', $conf, '-p', "$dir/");
        push @cmd, '-g', 'daemon off; master_process off;' if $o->{callgrind};
    }
    my $key = $name . ($o->{idle} ? ' (scenario 3)' : $o->{h2} ? ' (scenario 7)'
                       : $o->{tls} ? ' (scenario 5, TLS)' : '');
    unless ($CONF_SHOWN{$key}) {
        my $t = slurp($conf);
        $t =~ s/\Q$WORK\E/\$BENCH_WORK/g;
        $t =~ s/\Q$REPO\E/\$REPO/g;
        $t =~ s/127\.0\.0\.1:$port\b/127.0.0.1:\$PORT/g;
        $t =~ s/127\.0\.0\.1:$h->{tls_port}\b/127.0.0.1:\$TLS_PORT/g if $o->{tls};
        $t =~ s/\$BENCH_WORK\/$name-[^\/\s]*/\$BENCH_WORK\/$name/g;
        $CONF_SHOWN{$key} = $t;
    }
    my $deadline = time + ($o->{callgrind} ? 120 : 20);
    if ($o->{callgrind}) {
        make_path("$dir/cg");
        $h->{cgout} = "$dir/cg/callgrind.out";
        # httpd would switch to www-data after callgrind opened its output
        # file as root; run the whole thing as www-data instead (port > 1024)
        my @user;
        if ($d->{kind} eq 'httpd') {
            my (undef, undef, $uid, $gid) = getpwnam('www-data');
            if (defined $uid) {
                chown $uid, $gid, $dir, "$dir/cg";
                @user = ('setpriv', '--reuid=www-data', '--regid=www-data', '--clear-groups');
            }
        }
        # valgrind writes temporary files to $TMPDIR; as www-data it cannot
        # use the harness's own (root's) TMPDIR, so give it the cg directory
        $h->{pid} = spawn("$dir/start.out", { TMPDIR => "$dir/cg" },
                          'taskset', '-c', $SERVER_CPU, @user,
                          'valgrind', '--tool=callgrind', '--vgdb=no',
                          "--callgrind-out-file=$h->{cgout}", @cmd);
        $h->{fg} = 1;
    }
    else {
        my ($rc, $out) = run_cmd(20, undef, 'taskset', '-c', $SERVER_CPU, @cmd);
        $h->{startout} = $out;
        if ($rc != 0) {
            $h->{failed} = "failed to start (exit $rc): " . error_tail($h);
            kill_leftovers($h);
            return $h;
        }
        while (time < $deadline) {
            my $p = slurp($h->{pidfile});
            if ($p =~ /(\d+)/ && alive($1)) { $h->{pid} = $1; last; }
            sleep 0.1;
        }
        if (!$h->{pid}) {
            $h->{failed} = 'failed to start (no pid file): ' . error_tail($h);
            kill_leftovers($h);
            return $h;
        }
    }
    $LIVE{$h} = $h;
    # ready when it serves the small file correctly
    my $h2only = ($o->{h2} && $d->{kind} eq 'nginx');
    while (time < $deadline) {
        last unless alive($h->{pid});
        if ($h2only) {
            my ($rc, $out) = run_cmd(10, undef, 'h2load', '-n2', '-c1', "http://127.0.0.1:$port/index.html");
            if ($out =~ /2 succeeded/ && $out =~ /\((\d+)\) data/ && $1 == 2 * $SMALL) { $h->{ready} = 1; last; }
            sleep 0.2;
            next;
        }
        my ($st, $len) = http_get($port, '/index.html', 2);
        if ($st == 200 && $len == $SMALL) { $h->{ready} = 1; last; }
        sleep 0.2;
    }
    if (!$h->{ready}) {
        $h->{failed} = (alive($h->{pid}) ? 'started but does not serve /index.html correctly: '
                                         : 'failed to start (exited): ') . error_tail($h);
        stop_server($h);
        return $h;
    }
    # big file correct too?
    my ($st, $len) = $h2only ? (200, $BIG) : http_get($port, '/big.bin', 10);
    if ($st != 200 || $len != $BIG) {
        $h->{failed} = "serves /big.bin wrongly (status $st, $len bytes)";
        stop_server($h);
        return $h;
    }
    # and the small file over HTTPS on the TLS listener
    if ($o->{tls}) {
        my $ok;
        while (time < $deadline + 10) {
            my ($rc, $out) = run_cmd(10, undef, $CLI, 'normal', '127.0.0.1', $h->{tls_port},
                                     1, 0.2, 2, '/index.html', $SMALL, 'tls');
            my ($line) = $out =~ /^(NORMAL .*)$/m;
            my $r = $line ? parse_kv($line) : {};
            if (($r->{ok} // 0) > 0 && !$r->{bad}) { $ok = 1; last; }
            sleep 0.2;
        }
        if (!$ok) {
            $h->{failed} = 'does not serve /index.html over TLS: ' . error_tail($h);
            stop_server($h);
            return $h;
        }
    }
    server_pids($h);
    return $h;
}

sub kill_leftovers {
    my ($h) = @_;
    my $p = slurp($h->{pidfile} // '/nonexistent');
    if ($p =~ /(\d+)/ && alive($1)) {
        my $cmd = slurp("/proc/$1/cmdline");
        if ($cmd =~ /\Q$h->{dir}\E/) { $h->{pid} = $1; stop_server($h); }
    }
}

sub stop_server {
    my ($h) = @_;
    return unless $h->{pid};
    delete $LIVE{$h};
    my $pid = $h->{pid};
    server_pids($h) if alive($pid);
    if ($h->{fg}) {
        kill 'TERM', $pid;
        wait_pid($pid, 30);
    }
    else {
        kill 'TERM', $pid;
        my $end = time + 15;
        sleep 0.1 while alive($pid) && time < $end;
    }
    for my $p ($pid, keys %{ $h->{seen} }) {
        next unless alive($p);
        # only our own server processes (pids may have been reused)
        my $cmd = slurp("/proc/$p/cmdline");
        kill 'KILL', $p if $cmd =~ /apache2|nginx|valgrind/;
    }
    $h->{pid} = 0;
}

# ---------------------------------------------------------------------------
# clients

sub client { return ('taskset', '-c', $CLIENT_CPU, @_); }

sub parse_kv {
    my ($line) = @_;
    my %r;
    $r{$1} = $2 while $line =~ /(\w+)=(-?[\d.]+)/g;
    return \%r;
}

# wrk with bench/wrk_check.lua; returns a hash of figures or {error}
sub wrk {
    my ($h, %a) = @_;
    my $c = $a{conns} // 50;
    my $d = $a{dur} // $DUR;
    my $path = $a{path} // '/index.html';
    my $expect = $path eq '/big.bin' ? $BIG : $SMALL;
    my @cmd = client('wrk', '-t1', "-c$c", "-d${d}s", '--latency',
                     '--timeout', ($a{timeout} // 2) . 's',
                     '-s', "$FindBin::Bin/wrk_check.lua");
    push @cmd, '-H', 'Connection: close' if $a{close};
    push @cmd, "http://127.0.0.1:$h->{port}$path", '--', $expect;
    my %env = (WRK_CHECK_BODY => ($path eq '/big.bin' || ($ENV{BENCH_WRK_CHECK} // 1) eq '0') ? '0' : '1');
    my ($rc, $out) = run_cmd($d + 30, \%env, @cmd);
    my ($line) = $out =~ /^(RESULT .*)$/m;
    unless ($line) {
        return { error => 'wrk did not finish within ' . ($d + 30) . ' s and was killed' } if $rc == -2;
        return { error => "wrk failed (rc $rc): " . substr($out, 0, 200) };
    }
    my $r = parse_kv($line);
    my $secs = $r->{duration_us} / 1e6 || 1;
    $r->{rps} = $r->{requests} / $secs;
    $r->{mibs} = $r->{bytes} / $secs / 1048576;
    $r->{sockerr} = $r->{err_connect} + $r->{err_read} + $r->{err_write} + $r->{err_timeout};
    # wrk's status errors (>= 400) are already in non2xx when checked per response
    my $bad = $r->{non2xx} + $r->{badlen} + ($r->{checked} ? 0 : $r->{err_status});
    if ($path eq '/big.bin') {
        # no per-response callback: the byte count must match whole responses
        my $lo = $r->{requests} * $BIG;
        my $hi = ($r->{requests} + $c) * ($BIG + 2048);
        $bad++ if $r->{bytes} < $lo || $r->{bytes} > $hi;
    }
    if (!$r->{requests}) {
        # nothing answered at all: wrk does not count that as an error
        $bad++;
        $r->{note} = 'no response within the run';
    }
    $r->{bad} = $bad;
    return $r;
}

sub warmup {
    my ($h, %a) = @_;
    return unless $WARMUP;
    run_cmd($WARMUP + 15, undef, client('wrk', '-t1', '-c' . ($a{conns} // 50), "-d${WARMUP}s",
            "http://127.0.0.1:$h->{port}" . ($a{path} // '/index.html')));
}

# ---------------------------------------------------------------------------
# scenarios: each takes a started server handle and returns a result hash
# (figures) plus {errors} (a count of incorrect responses/errors) and {note}

sub cpu_wrap {
    my ($h, $code) = @_;
    my $t0 = server_ticks($h);
    my $r = $code->();
    my $t1 = server_ticks($h);
    if (!$r->{error} && $r->{requests}) {
        $r->{cpu_us} = ($t1 - $t0) * 1e6 / $HZ / $r->{requests};
    }
    return $r;
}

sub scen_1 {
    my ($h) = @_;
    warmup($h);
    my $r = cpu_wrap($h, sub { wrk($h) });
    return $r if $r->{error};
    $r->{errors} = $r->{bad} + $r->{sockerr};
    return $r;
}

sub scen_2 {
    my ($h) = @_;
    warmup($h);
    my $r = cpu_wrap($h, sub { wrk($h, close => 1) });
    return $r if $r->{error};
    $r->{errors} = $r->{bad} + $r->{sockerr};
    return $r;
}

sub scen_3 {
    my ($h, $n) = @_;
    warmup($h);
    my ($pid, $in, $out, $ready);
    if ($n > 0) {
        $pid = open2($out, $in, client($CLI, 'idle', '127.0.0.1', $h->{port}, $n, $IDLE_TIMEOUT, '/index.html'));
        $KIDS{$pid} = 1;
        my $sel = IO::Select->new($out);
        if ($sel->can_read($IDLE_TIMEOUT * 2 + 30)) {
            $ready = <$out>;
        }
        if (!$ready || $ready !~ /^READY/) {
            close $in;
            wait_pid($pid, 10);
            return { error => 'idle client did not report' };
        }
    }
    my $r = cpu_wrap($h, sub { wrk($h) });
    if ($r->{error}) {
        # typically a server whose workers are all held by the idle
        # connections: still report memory and what it kept
        $r = { rps => 0, requests => 0, errors => 1, note => $r->{error} };
    }
    else {
        $r->{errors} = $r->{bad} + $r->{sockerr};
    }
    sleep 0.5;
    my $m = server_mem($h);
    @$r{keys %$m} = values %$m;
    if ($n > 0) {
        my $rd = parse_kv($ready);
        $r->{idle_accepted} = $rd->{answered};
        print $in "PROBE\n";
        my $sel = IO::Select->new($out);
        my $line = $sel->can_read($IDLE_TIMEOUT + 30) ? <$out> : undef;
        if ($line && $line =~ /^PROBE/) {
            my $p = parse_kv($line);
            $r->{idle_kept} = $p->{answered};
            $r->{idle_alive} = $p->{alive};
        }
        else {
            $r->{idle_kept} = 0;
            $r->{note} = 'probe did not answer';
        }
        print $in "QUIT\n";
        close $in;
        wait_pid($pid, 15);
        close $out;
    }
    return $r;
}

sub scen_4 {
    my ($h) = @_;
    warmup($h, conns => 10, path => '/big.bin');
    my $r = cpu_wrap($h, sub { wrk($h, conns => 10, path => '/big.bin', timeout => 10) });
    return $r if $r->{error};
    $r->{errors} = $r->{bad} + $r->{sockerr};
    return $r;
}

sub scen_5 {
    my ($h) = @_;
    my $slow_out = "$WORK/slow." . (++$seq);
    my $total = 3 + $DUR + 10;
    # over TLS both the slow and the normal clients use the TLS listener
    my $port = $SLOW_TLS ? $h->{tls_port} : $h->{port};
    my $spid = spawn($slow_out, undef, client($CLI, 'slow', '127.0.0.1', $port,
                     $SLOW_N, $SLOW_INTERVAL, $total, $SLOW_KIND));
    sleep 3;
    # CPU while the normal clients run: the server's (all its processes),
    # the normal client's (reaped, so from times()) and the slow client's
    my ($s0, $sl0, @c0) = (server_ticks($h), proc_ticks($spid), (POSIX::times())[3, 4]);
    my $w0 = time;
    my ($rc, $out) = run_cmd($DUR + 30, undef,
        client($CLI, 'normal', '127.0.0.1', $port, 10, $DUR, 5, '/index.html', $SMALL,
               $SLOW_TLS ? ('tls') : ()));
    my ($s1, $sl1, @c1) = (server_ticks($h), proc_ticks($spid), (POSIX::times())[3, 4]);
    my $wall = time - $w0;
    kill 'TERM', $spid;
    wait_pid($spid, 5);
    my $slow = slurp($slow_out);
    unlink $slow_out;
    my ($line) = $out =~ /^(NORMAL .*)$/m;
    return { error => "normal client failed: " . substr($out, 0, 200) } unless $line;
    my $r = parse_kv($line);
    $r->{served_pct} = $r->{attempted} ? 100 * $r->{ok} / $r->{attempted} : 0;
    for my $k (qw(p50_ms p99_ms max_ms)) { delete $r->{$k} if $r->{$k} < 0; }
    $r->{errors} = $r->{bad};
    if ($wall > 0) {
        $r->{srv_cpu_pct} = 100 * ($s1 - $s0) / $HZ / $wall;
        $r->{normal_cpu_pct} = 100 * ($c1[0] + $c1[1] - $c0[0] - $c0[1]) / $HZ / $wall;
        $r->{slow_cpu_pct} = 100 * ($sl1 - $sl0) / $HZ / $wall if $sl0 >= 0 && $sl1 >= 0;
    }
    if ($slow =~ /^(SLOW .*)$/m) {
        my $s = parse_kv($1);
        $r->{slow_closed} = $s->{closed_by_server};
        $r->{slow_open} = $s->{still_open};
        $r->{slow_hs} = $s->{tls_handshakes};
    }
    else {
        # killed before its report: count what is still open from /proc is
        # not possible; leave blank
        $r->{slow_closed} = undef;
    }
    return $r;
}

sub scen_6 {
    my ($h) = @_;
    warmup($h);
    my $wout = "$WORK/wrk6." . (++$seq);
    my $d = $RESTART_DUR;
    my $wpid = spawn($wout, { WRK_CHECK_BODY => ($ENV{BENCH_WRK_CHECK} // 1) eq '0' ? '0' : '1' },
                     client('wrk', '-t1', '-c50', "-d${d}s", '--latency', '--timeout', '10s',
                            '-s', "$FindBin::Bin/wrk_check.lua",
                            "http://127.0.0.1:$h->{port}/index.html", '--', $SMALL));
    my $start = time;
    my $restarts = 0;
    my $sig = $SRV{$h->{name}}{kind} eq 'httpd' ? 'USR1' : 'HUP';
    while (time - $start < $d - 1) {
        sleep $RESTART_EVERY;
        last if time - $start >= $d - 1;
        last unless alive($h->{pid});
        kill $sig, $h->{pid};
        $restarts++;
    }
    wait_pid($wpid, $d + 30);
    my $out = slurp($wout);
    unlink $wout;
    my ($line) = $out =~ /^(RESULT .*)$/m;
    return { error => 'wrk failed: ' . substr($out, 0, 200) } unless $line;
    my $r = parse_kv($line);
    $r->{rps} = $r->{requests} / (($r->{duration_us} / 1e6) || 1);
    $r->{restarts} = $restarts;
    $r->{stall_ms} = $r->{max_us} / 1000;
    $r->{failed} = $r->{non2xx} + $r->{badlen} + ($r->{checked} ? 0 : $r->{err_status});
    $r->{errors} = $r->{failed} + $r->{err_connect} + $r->{err_read} + $r->{err_write} + $r->{err_timeout};
    sleep 1;
    my ($st, $len) = http_get($h->{port}, '/index.html', 5);
    if ($st != 200) {
        $r->{note} = 'server not serving after the restarts';
        $r->{errors}++;
    }
    server_pids($h);
    return $r;
}

sub scen_7 {
    my ($h) = @_;
    my ($rc, $out) = run_cmd($DUR + 60, undef,
        client('h2load', '-t1', '-c20', '-m10', '-D', $DUR,
               "http://127.0.0.1:$h->{port}/index.html"));
    my %r;
    if ($out =~ /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/) { $r{rps} = $3; }
    else { return { error => "h2load failed (rc $rc): " . substr($out, 0, 200) }; }
    if ($out =~ /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/) {
        @r{qw(total started done succeeded failed errored timeout)} = ($1, $2, $3, $4, $5, $6, $7);
    }
    if ($out =~ /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/) {
        $r{non2xx} = $2 + $3 + $4;
    }
    if ($out =~ /traffic: .*?, [\d.]+\w*B \((\d+)\) data/) {
        $r{data} = $1;
    }
    $r{succeeded} //= 0;
    # every succeeded stream must have carried exactly the 1 KiB body
    $r{badlen} = (defined $r{data} && $r{data} == ($r{succeeded}) * $SMALL) ? 0 : 1;
    $r{h2} = ($out =~ /Application protocol: h2c/) ? 1 : 0;
    $r{errors} = ($r{failed} // 0) + ($r{errored} // 0) + ($r{timeout} // 0) + ($r{non2xx} // 0) + $r{badlen};
    $r{note} = 'h2c not negotiated' unless $r{h2};
    $r{note} = ($r{note} ? "$r{note}; " : '') . "data $r{data} B for $r{succeeded} streams" if $r{badlen};
    return \%r;
}

my $PERF_OK;
sub perf_ok {
    return $PERF_OK if defined $PERF_OK;
    my ($rc, $out) = run_cmd(20, undef, 'perf', 'stat', '-x,', '-e', 'instructions', 'true');
    $PERF_OK = ($rc == 0 && $out =~ /^\d+,[^\n]*instructions/m) ? 1 : 0;
    return $PERF_OK;
}

sub scen_8_perf {
    my ($h) = @_;
    warmup($h);
    my @pids = server_pids($h);
    my $pout = "$WORK/perf." . (++$seq);
    my $ppid = spawn($pout, undef, 'perf', 'stat', '-x,', '-e', 'instructions', '-p', join(',', @pids));
    sleep 0.3;
    my $r = wrk($h);
    kill 'INT', $ppid;
    wait_pid($ppid, 15);
    my $o = slurp($pout);
    unlink $pout;
    return $r if $r->{error};
    return { error => 'perf gave no count: ' . substr($o, 0, 200) } unless $o =~ /^(\d+),[^\n]*instructions/m;
    $r->{instr} = $1 / ($r->{requests} || 1);
    $r->{method} = 'perf stat';
    $r->{errors} = $r->{bad} + $r->{sockerr};
    return $r;
}

sub dumpno { my ($f) = @_; return $f =~ /\.(\d+)$/ ? $1 : 0; }

sub callgrind_total {
    my ($file) = @_;
    my $t = slurp($file);
    return $1 if $t =~ /^totals:\s+(\d+)/m;
    return $1 if $t =~ /^summary:\s+(\d+)/m;
    return undef;
}

sub ab {
    my ($h, $n) = @_;
    my ($rc, $out) = run_cmd(300, undef, client('ab', '-k', '-q', '-c', 1, '-n', $n, '-s', 60,
                                                "http://127.0.0.1:$h->{port}/index.html"));
    my %r = (rc => $rc);
    $r{complete} = $1 if $out =~ /Complete requests:\s+(\d+)/;
    $r{failed} = $1 if $out =~ /Failed requests:\s+(\d+)/;
    $r{non2xx} = $out =~ /Non-2xx responses:\s+(\d+)/ ? $1 : 0;
    $r{doclen} = $1 if $out =~ /Document Length:\s+(\d+)/;
    $r{ok} = defined $r{complete} && $r{complete} == $n;
    return \%r;
}

# callgrind, single process (-X / master_process off).  Two servers are run
# under callgrind: one gets W warm-up requests + N measured requests, the other
# only the W warm-up requests; instructions/request = (Ir1 - Ir2) / N, so the
# start-up and shutdown cost cancels out.  (callgrind_control is not used: it
# needs vgdb, which breaks when httpd switches to the www-data user.)
sub callgrind_pass {
    my ($h, $n) = @_;
    my $w = ab($h, 200);
    return (undef, 'warm-up under callgrind failed: ' . ($w->{complete} // 0) . ' of 200') unless $w->{ok};
    my $abr;
    if ($n) {
        $abr = ab($h, $n);
        return (undef, 'measured requests under callgrind failed') unless $abr->{ok};
    }
    stop_server($h);
    my $ir = callgrind_total($h->{cgout});
    return (undef, 'no totals in callgrind output') unless defined $ir;
    return ($ir, undef, $abr);
}

sub scen_8_callgrind {
    my ($h, $o) = @_;
    my ($ir1, $err, $abr) = callgrind_pass($h, $CG_REQ);
    return { error => $err } if $err;
    my $h2 = start_server($h->{name}, 's8b', $o);
    return { error => "second callgrind server: $h2->{failed}" } if $h2->{failed};
    my ($ir2, $err2) = callgrind_pass($h2, 0);
    return { error => $err2 } if $err2;
    my %r = (instr => ($ir1 - $ir2) / $CG_REQ, method => "callgrind, $CG_REQ req");
    $r{errors} = ($abr->{failed} // 0) + ($abr->{non2xx} // 0)
               + (($abr->{doclen} // -1) == $SMALL ? 0 : 1);
    return \%r;
}

# ---------------------------------------------------------------------------
# driver

my %RES;   # "$scen/$sub" => { server => [ results ] }
my %FAIL;  # "$scen/$sub" => { server => [ messages ] }

sub run_one {
    my ($scen, $sub, $name, $run) = @_;
    my $o = {};
    $o->{idle} = 1 if $scen == 3;
    $o->{h2} = 1 if $scen == 7;
    $o->{tls} = 1 if $scen == 5 && $SLOW_TLS;
    my $cg = ($scen == 8 && !perf_ok());
    $o->{callgrind} = 1 if $cg;
    logmsg("scenario $scen" . ($sub ne '' ? " ($sub)" : '') . " run $run: $name");
    my $h = start_server($name, "s$scen", $o);
    my $key = "$scen/$sub";
    if ($h->{failed}) {
        logmsg("  $name: $h->{failed}");
        push @{ $FAIL{$key}{$name} }, $h->{failed};
        return;
    }
    my $r = eval {
        if ($scen == 3) { scen_3($h, $sub) }
        elsif ($scen == 8) { $cg ? scen_8_callgrind($h, $o) : scen_8_perf($h) }
        else { no strict 'refs'; &{"scen_$scen"}($h) }
    };
    $r = { error => "harness error: $@" } if $@;
    if ($h->{pid} && !alive($h->{pid})) {
        $r->{note} = ($r->{note} ? "$r->{note}; " : '') . 'server died during the run';
        $r->{errors} = ($r->{errors} // 0) + 1;
    }
    stop_server($h);
    if ($r->{error}) {
        logmsg("  $name: $r->{error}");
        push @{ $FAIL{$key}{$name} }, $r->{error};
        return;
    }
    push @{ $RES{$key}{$name} }, $r;
    logmsg('  ' . join(' ', map { "$_=" . fmt_num($r->{$_}) }
                       grep { defined $r->{$_} && $r->{$_} =~ /^-?[\d.]+$/ }
                       qw(rps p99_us cpu_us mibs served_pct srv_cpu_pct normal_cpu_pct slow_cpu_pct idle_kept pss_kb stall_ms instr errors)));
}

sub fmt_num {
    my ($v) = @_;
    return '' unless defined $v;
    return $v if $v =~ /^\d+$/;
    return sprintf('%.2f', $v) if abs($v) < 100;
    return sprintf('%.0f', $v);
}

my $t_start = time;
my $load_start = (split ' ', slurp('/proc/loadavg'))[0] // '?';
make_docroot();
make_cert() if $SLOW_TLS;
logmsg("bench: servers @ACTIVE, scenarios @SCEN, $RUNS run(s) of ${DUR}s, work dir $WORK");
logmsg("bench: $_: $SKIP{$_}") for sort keys %SKIP;

for my $scen (@SCEN) {
    my @subs = $scen == 3 ? (0, @IDLE) : ('');
    for my $sub (@subs) {
        for my $run (0 .. $RUNS - 1) {
            # interleaved: A B C D E, then B C D E A, ...
            my @order = map { $ACTIVE[($_ + $run) % @ACTIVE] } 0 .. $#ACTIVE;
            run_one($scen, $sub, $_, $run + 1) for @order;
        }
    }
}
my $elapsed = time - $t_start;

# ---------------------------------------------------------------------------
# report

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub stat_of {
    my ($key, $name, $field, $scale) = @_;
    my @v = map { defined $_->{$field} ? $_->{$field} * ($scale // 1) : undef } @{ $RES{$key}{$name} || [] };
    @v = grep { defined } @v;
    return undef unless @v;
    my @s = sort { $a <=> $b } @v;
    return { med => median(@v), min => $s[0], max => $s[-1], n => scalar @v };
}

sub cell {
    my ($st) = @_;
    return '–' unless $st;
    return fmt_num($st->{med}) if $st->{n} == 1 || $st->{min} == $st->{max};
    return fmt_num($st->{med}) . ' (' . fmt_num($st->{min}) . '–' . fmt_num($st->{max}) . ')';
}

sub ratio {
    my ($key, $name, $field) = @_;
    my $me = stat_of($key, $name, $field);
    my $ev = stat_of($key, 'event', $field);
    return '–' unless $me && $ev && $ev->{med};
    return sprintf('%.2f', $me->{med} / $ev->{med});
}

sub errors_cell {
    my ($key, $name) = @_;
    my $rs = $RES{$key}{$name} || [];
    my $e = 0;
    $e += ($_->{errors} // 0) for @$rs;
    my @notes = map { $_->{note} } grep { $_->{note} } @$rs;
    my $s = "$e";
    if ($e) {
        my %d;
        for my $r (@$rs) {
            for my $k (qw(non2xx badlen err_status err_connect err_read err_write err_timeout failed errored timeout)) {
                $d{$k} += $r->{$k} if $r->{$k} && $r->{$k} =~ /^\d+$/;
            }
        }
        my @d = map { my $n = $_; $n =~ s/^err_//; "$n $d{$_}" } grep { $d{$_} } sort keys %d;
        $s .= ': ' . join(', ', @d) if @d;
    }
    $s .= ' (' . join('; ', @notes) . ')' if @notes;
    return $s;
}

# rows: [ header, field, scale ] or [ header, 'ratio:field' ]
sub table {
    my ($key, @cols) = @_;
    my $t = '| server | runs | ' . join(' | ', map { $_->[0] } @cols) . " | errors |\n";
    $t .= '|' . ('---|' x (@cols + 3)) . "\n";
    for my $name (@SERVERS) {
        if ($SKIP{$name}) {
            $t .= "| $name | 0 | $SKIP{$name}" . (' |' x (@cols + 1)) . "\n";
            next;
        }
        my $ok = scalar @{ $RES{$key}{$name} || [] };
        my @f = @{ $FAIL{$key}{$name} || [] };
        if (!$ok) {
            my $msg = @f ? $f[0] : 'not run';
            $msg =~ s/\n/ /g;
            $t .= "| $name | 0/" . scalar(@f) . " | $msg" . (' |' x (@cols + 1)) . "\n";
            next;
        }
        my @c;
        for my $col (@cols) {
            my ($h, $f, $sc) = @$col;
            if ($f =~ /^ratio:(\w+)$/) { push @c, ratio($key, $name, $1); }
            elsif (ref $f eq 'CODE') { push @c, $f->($key, $name); }
            else { push @c, cell(stat_of($key, $name, $f, $sc)); }
        }
        my $runs = $ok . (@f ? '/' . ($ok + @f) : '');
        my $err = errors_cell($key, $name);
        $err .= '; failures: ' . join('; ', @f) if @f;
        $t .= "| $name | $runs | " . join(' | ', @c) . " | $err |\n";
    }
    return $t;
}

sub per_idle {
    my ($n) = @_;
    return sub {
        my ($key, $name) = @_;
        my $with = stat_of($key, $name, 'pss_kb');
        my $b = stat_of("3/0", $name, 'pss_kb');
        return '–' unless $with && $b;
        return sprintf('%.1f', ($with->{med} - $b->{med}) / $n);
    };
}

sub ver {
    my ($cmd, $re) = @_;
    my $o = `$cmd 2>&1`;
    return $o =~ $re ? $1 : '?';
}

my $cpu_model = (slurp('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m) ? $1 : '?';
my $nproc = `nproc` + 0;
my $kernel = `uname -r`; chomp $kernel;
my $mem = (slurp('/proc/meminfo') =~ /^MemTotal:\s+(\d+)/m) ? sprintf('%.1f GiB', $1 / 1048576) : '?';
my $commit = `git -C '$REPO' rev-parse --short HEAD 2>/dev/null`; chomp $commit;
my $dirty = `git -C '$REPO' status --porcelain 2>/dev/null` ne '' ? ' (work tree modified)' : '';
my $load_end = (split ' ', slurp('/proc/loadavg'))[0] // '?';
my $smoke = ($DUR < 10 || $RUNS < 3);

my $md = "# Benchmarks\n\n";
$md .= "Generated by `bench/run` on " . strftime('%Y-%m-%d %H:%M %Z', localtime) .
       sprintf(" in %.0f s. See `bench/README.md` for what each figure means.\n\n", $elapsed);
if ($smoke) {
    $md .= "> **Smoke run, not representative.** This report was made with short settings " .
           "(BENCH_RUNS=$RUNS, BENCH_DURATION=$DUR s) on a shared, noisy machine, to check " .
           "that the harness works end to end. Do not draw conclusions from the numbers; " .
           "run `bench/run` with the defaults (3 runs of 10 s) on a quiet machine for that.\n\n";
}
$md .= "> $NOTE\n\n" if $NOTE ne '';
$md .= "## Machine\n\n";
$md .= "| | |\n|---|---|\n";
$md .= "| CPUs (nproc) | $nproc |\n| CPU model | $cpu_model |\n| memory | $mem |\n| kernel | $kernel |\n";
$md .= "| load average (1 min) at start / end | $load_start / $load_end |\n";
$md .= "| repository commit | $commit$dirty |\n\n";
$md .= "## Versions\n\n| | |\n|---|---|\n";
$md .= '| httpd | ' . ver("$APACHE -v", qr/Server version:\s*(.*)/) . " |\n";
$md .= '| nginx | ' . ver('/usr/sbin/nginx -v', qr/nginx version:\s*(.*)/) . " |\n";
$md .= '| wrk | ' . ver('wrk -v', qr/^(wrk \S+)/m) . " |\n";
$md .= '| h2load | ' . ver('h2load --version', qr/(h2load \S+)/) . " |\n";
$md .= '| ab | ' . ver('ab -V', qr/(ApacheBench, Version \S+)/) . " |\n";
$md .= '| instructions counted with | ' . (grep({ $_ == 8 } @SCEN) ? (perf_ok() ? 'perf stat' :
        ver('valgrind --version', qr/(valgrind-\S+)/) . ' (callgrind; `perf stat -e instructions` is not supported here)') : 'not run') . " |\n\n";

$md .= "## Method\n\n";
$md .= "- Servers: " . join(', ', map { $SKIP{$_} ? "$_ ($SKIP{$_})" : $_ } @SERVERS) . ".\n";
$md .= "- Each httpd is Debian's stock `/usr/sbin/apache2 -f <generated conf>`, loading only the MPM, " .
       "authz_core, mime, status (and http2 in scenario 7" . ($SLOW_TLS ? ', socache_shmcb and ssl in scenario 5' : '') .
       "); one fresh server is started for every " .
       "measurement and stopped afterwards. No access log.\n";
$md .= "- Server pinned to CPU $SERVER_CPU, clients to CPU $CLIENT_CPU (taskset).\n";
$md .= "- Sizing: threaded MPMs StartServers 2 × ThreadsPerChild 25, MaxRequestWorkers 50; prefork " .
       "StartServers 50, MaxRequestWorkers 50; nginx worker_processes $NGINX_WORKERS (the server has one CPU), " .
       "sendfile on both sides, unlimited keep-alive requests, KeepAliveTimeout ${KA_TIMEOUT} s.\n";
$md .= "- Scenario 3 raises limits: event/event2 AsyncRequestWorkerFactor $ASYNC_FACTOR (if the MPM has the " .
       "directive); worker ServerLimit/MaxRequestWorkers for $IDLE_MAXW threads; prefork $IDLE_MAXW processes; " .
       "nginx worker_connections as shown.\n";
$md .= "- $RUNS run(s) per server and scenario, ${DUR} s each (scenario 6: ${RESTART_DUR} s), " .
       "interleaved (A B C D E, then B C D E A, ...), ${WARMUP} s warm-up before each wrk run. " .
       "Cells are `median (min–max)` over the runs; ratios are medians against stock event.\n";
$md .= "- Errors: non-2xx responses, wrong body lengths, and socket errors (connect/read/write/timeout), " .
       "summed over all runs; none of the scenarios asserts a speed.\n\n";

my %TITLE = (
    1 => 'Scenario 1: keep-alive, 1 KiB file, wrk -t1 -c50',
    2 => 'Scenario 2: no keep-alive (Connection: close), 1 KiB file, wrk -t1 -c50',
    3 => 'Scenario 3: idle keep-alive connections held while scenario 1 runs',
    4 => 'Scenario 4: 10 MiB file, wrk -t1 -c10',
    5 => "Scenario 5: $SLOW_N slow clients (one " . {
             'header' => 'header byte',
             'body' => 'byte of an 8 KiB POST body',
             'tls-header' => 'header byte in its own TLS record, after the handshake,',
             'tls-hello' => 'byte of a TLS ClientHello, over TCP,',
         }->{$SLOW_KIND} . " every $SLOW_INTERVAL s) while 10 normal " . ($SLOW_TLS ? 'HTTPS ' : '')
         . 'clients connect',
    6 => "Scenario 6: graceful restart every $RESTART_EVERY s under keep-alive load (wrk -c50, ${RESTART_DUR} s)",
    7 => 'Scenario 7: HTTP/2 h2c, h2load -t1 -c20 -m10',
    8 => 'Scenario 8: instructions per request',
);

for my $scen (@SCEN) {
    $md .= "## $TITLE{$scen}\n\n";
    if ($scen == 1 || $scen == 2) {
        $md .= table("$scen/",
            ['req/s', 'rps'], ['req/s vs event', 'ratio:rps'],
            ['p50 ms', 'p50_us', 0.001], ['p99 ms', 'p99_us', 0.001],
            ['server CPU µs/req', 'cpu_us'], ['CPU vs event', 'ratio:cpu_us']);
    }
    elsif ($scen == 3) {
        for my $n (0, @IDLE) {
            $md .= "### $n idle connections\n\n";
            my @cols = (['req/s', 'rps'], ['req/s vs event', 'ratio:rps'], ['p99 ms', 'p99_us', 0.001]);
            push @cols, ['idle answered at start', 'idle_accepted'], ['idle kept open at end', 'idle_kept'] if $n;
            push @cols, ['RSS MiB', 'rss_kb', 1 / 1024], ['PSS MiB', 'pss_kb', 1 / 1024],
                        ['processes', 'procs'], ['threads', 'threads'];
            push @cols, ['KiB PSS per idle conn', per_idle($n)] if $n;
            $md .= table("3/$n", @cols) . "\n";
        }
        $md .= "\"idle answered at start\": connections (of $IDLE[0]" . (@IDLE > 1 ? '/' . join('/', @IDLE[1..$#IDLE]) : '') .
               ") whose first request was answered within ${IDLE_TIMEOUT} s; \"kept open at end\": connections " .
               "that answered a second request after the wrk run. Memory is measured after the wrk run with the idle " .
               "connections still open; per idle connection = (PSS with N idle − PSS with 0 idle) / N.\n";
    }
    elsif ($scen == 4) {
        $md .= table("4/", ['MiB/s', 'mibs'], ['vs event', 'ratio:mibs'], ['p99 ms', 'p99_us', 0.001],
                     ['server CPU µs/response', 'cpu_us']);
    }
    elsif ($scen == 5) {
        my @hs = $SLOW_KIND eq 'tls-header' ? (['slow TLS handshakes done', 'slow_hs']) : ();
        $md .= table("5/", ['normal served %', 'served_pct'], ['served', 'ok'], ['timeouts (5 s)', 'timeout'],
                     ['conn. errors', 'errors'], ['p50 ms', 'p50_ms'], ['p99 ms', 'p99_ms'],
                     ['slow conns closed by server', 'slow_closed'], @hs,
                     ['server CPU %', 'srv_cpu_pct'], ['normal client CPU %', 'normal_cpu_pct'],
                     ['slow client CPU %', 'slow_cpu_pct']);
        $md .= "\nNormal clients: 10 concurrent, a new connection per request" .
               ($SLOW_TLS ? ' (HTTPS: a full TLS handshake each, no session resumption; latency counts from connect)' : '') .
               ", 5 s timeout. " .
               "\"errors\" counts wrong (non-2xx or wrong-length) answers only; timeouts and connection errors are listed apart " .
               "as they are the effect being measured. " .
               "CPU % (of one CPU) is utime+stime while the normal clients run, over that wall time: the server's (all " .
               "its processes, on CPU $SERVER_CPU), the normal client's and the slow client's (both on CPU $CLIENT_CPU; " .
               "together near 100 % means the run is client-bound).\n";
    }
    elsif ($scen == 6) {
        $md .= table("6/", ['req/s', 'rps'], ['restarts', 'restarts'], ['failed (non-2xx/len)', 'failed'],
                     ['connect err', 'err_connect'], ['read err', 'err_read'], ['write err', 'err_write'],
                     ['timeouts', 'err_timeout'], ['longest stall ms', 'stall_ms']);
        $md .= "\nLongest stall = wrk's maximum latency (a request waiting across a restart). Read errors are " .
               "keep-alive connections closed before a response.\n";
    }
    elsif ($scen == 7) {
        $md .= table("7/", ['req/s', 'rps'], ['vs event', 'ratio:rps'], ['succeeded', 'succeeded'],
                     ['failed', 'failed'], ['errored', 'errored'], ['non-2xx', 'non2xx']);
    }
    elsif ($scen == 8) {
        $md .= table("8/", ['instructions/request', 'instr'], ['vs event', 'ratio:instr'],
                     ['method', sub { my ($k, $n) = @_; my $r = $RES{$k}{$n}[0]; $r ? $r->{method} : '' }]);
        $md .= "\nWith callgrind the server runs as a single process (`-X`; nginx `master_process off`), " .
               "and instructions/request = (Ir of a server given 200 warm-up + $CG_REQ keep-alive requests − Ir of " .
               "a server given only the 200 warm-up requests) / $CG_REQ, requests sent with ab -k -c1, so start-up " .
               "and shutdown cancel out. With perf, the count covers all server processes during one wrk run.\n";
    }
    $md .= "\n";
}

$md .= "## Generated configurations\n\n";
$md .= "`\$BENCH_WORK` is the temporary work directory, `\$PORT` a free port chosen per start.\n\n";
for my $name (@SERVERS) {
    my $base = $CONF_SHOWN{$name};
    $md .= "### $name\n\n```\n$base```\n\n" if defined $base;
    for my $v (' (scenario 3)', ' (scenario 5, TLS)', ' (scenario 7)') {
        my $t = $CONF_SHOWN{"$name$v"};
        next unless defined $t;
        if (!defined $base) {
            $md .= "### $name$v\n\n```\n$t```\n\n";
            next;
        }
        my %in_base = map { $_ => 1 } split /\n/, $base;
        my %in_var = map { $_ => 1 } split /\n/, $t;
        my @d = ((map { "- $_" } grep { !$in_var{$_} } split /\n/, $base),
                 (map { "+ $_" } grep { !$in_base{$_} } split /\n/, $t));
        $md .= "### $name$v: differences from the $name configuration\n\n```diff\n" .
               (@d ? join("\n", @d) . "\n" : "(identical)\n") . "```\n\n";
    }
}

make_path("$REPO/docs") if $OUT eq "$REPO/docs/BENCHMARKS.md";
spew($OUT, $md);
logmsg("bench: report written to $OUT");
exit 0;
