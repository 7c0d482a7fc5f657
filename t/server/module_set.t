# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# module_set.t: the MPM with the modules people run.  Debian's default module
# set (mods-enabled, minus its MPM) plus ssl, socache_shmcb, http2, proxy,
# proxy_http, proxy_wstunnel, cgid, status, info, deflate, include, rewrite
# and headers, configured with Debian's own mods-available/*.conf:
# "apache2 -t" is clean, mod_info lists the MPM's directives, and the server
# keeps serving through 5 graceful restarts under concurrent HTTP/1.1, HTTP/2
# (cleartext and TLS) and WebSocket load, with no crashed child in the log.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Basename qw(basename);
use File::Path qw(make_path);
use IO::Select ();
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;
use Ev2Load;
use Ev2TLS;
use Ev2WS;

my $AVAIL = '/etc/apache2/mods-available';
my $RESTARTS = 5;

# ---- the module set --------------------------------------------------------

my %mods;
for my $f (glob('/etc/apache2/mods-enabled/*.load')) {
    my $n = basename($f, '.load');
    $mods{$n} = 1 unless $n =~ /^mpm_/;
}
$mods{$_} = 1 for qw(ssl socache_shmcb http2 proxy proxy_http proxy_wstunnel
    cgid status info deflate include rewrite headers);

# Debian's .load files, alphabetically as Debian includes them; the harness
# names modules NAME_module in mod_NAME.so, which every one of these follows
# (checked; anything else is loaded with its own line).
my (@names, $raw_load);
$raw_load = '';
for my $n (sort keys %mods) {
    open my $fh, '<', "$AVAIL/$n.load" or die "no $AVAIL/$n.load";
    for my $line (<$fh>) {
        next unless $line =~ /^\s*LoadModule\s+(\S+)\s+(\S+)/;
        my ($sym, $so) = ($1, $2);
        if ($sym eq "${n}_module" && $so eq "/usr/lib/apache2/modules/mod_$n.so") {
            push @names, $n;
        }
        else {
            $raw_load .= $line;
        }
    }
}
note 'modules: ' . join(' ', @names);

my $be = Ev2WS::Backend->start(max_time => 300);
my $bport = $be->port;
my $tls_port = Ev2Server::free_port();

my $s = Ev2Server->new(
    mpm => <<'EOF2',
StartServers 2
ServerLimit 8
ThreadLimit 25
ThreadsPerChild 25
MaxRequestWorkers 100
MinSpareThreads 25
MaxSpareThreads 75
EOF2
    modules => \@names,
);
my $d = $s->dir;
# Debian's .conf files refer to ${APACHE_RUN_DIR} etc.: point them into the
# server's directory (the environment reaches apache2 through Ev2Server).
$ENV{APACHE_RUN_DIR}  = "$d/run";
$ENV{APACHE_LOCK_DIR} = "$d/run";
$ENV{APACHE_LOG_DIR}  = "$d/logs";
make_path("$d/run/socks", "$d/cgi-bin");
chmod 0755, "$d/run/socks", "$d/cgi-bin";

my $includes = join '', map { "Include $AVAIL/$_.conf\n" }
    grep { -e "$AVAIL/$_.conf" } @names;

my ($crt, $key) = Ev2TLS::self_signed_cert($d);
open my $cgi, '>', "$d/cgi-bin/qs.sh" or die "write qs.sh: $!";
print $cgi "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nqs=%s\\n' \"\$QUERY_STRING\"\n";
close $cgi;
chmod 0755, "$d/cgi-bin/qs.sh";

$s->{conf} = <<"EOF2";
$raw_load
# Debian's configuration of these modules
$includes
ServerSignature On
Listen 127.0.0.1:$tls_port
<VirtualHost 127.0.0.1:$tls_port>
    ServerName 127.0.0.1
    SSLEngine on
    SSLCertificateFile "$crt"
    SSLCertificateKeyFile "$key"
</VirtualHost>
ProxyPass /ws ws://127.0.0.1:$bport/
ScriptAlias /cgi/ "$d/cgi-bin/"
<Directory "$d/cgi-bin">
    Require all granted
</Directory>
RewriteEngine On
RewriteRule ^/rewritten\$ /index.html [PT]
Header set X-Ev2-Test module-set
<Location /server-info>
    SetHandler server-info
</Location>
EOF2
$s->write_config;

# ---- apache2 -t ------------------------------------------------------------

my ($rc, $out) = $s->config_test;
is($rc, 0, 'apache2 -t exits 0') or diag $out;
like($out, qr/^Syntax OK$/m, 'Syntax OK');
my @noise = grep { /\S/ && !/^Syntax OK$/ } split /\n/, $out;
is(scalar @noise, 0, 'apache2 -t prints nothing else (no warnings)')
    or diag join("\n", @noise);

$s->start;

# ---- every module answers ----------------------------------------------------

my $r = $s->get('/rewritten', timeout => 10);
ok($r && $r->{status} == 200 && ($r->{headers}{'x-ev2-test'} // '') eq 'module-set',
    'mod_rewrite and mod_headers on a request') or diag($r ? "status $r->{status}" : $@);
$r = $s->get('/cgi/qs.sh?x=1', timeout => 15);
ok($r && $r->{status} == 200 && $r->{body} eq "qs=x=1\n", 'mod_cgid CGI')
    or diag($r ? "status $r->{status}: $r->{body}" : $@);
my ($crc, $cout) = Ev2Server::run_cmd(['curl', '-sS', '-k', '-m', '10', '-o', '/dev/null',
    '-w', '%{http_version} %{http_code}', '--http2', "https://127.0.0.1:$tls_port/index.html"]);
is($cout, '2 200', 'h2 over TLS (mod_ssl + mod_http2)');
my $ws = Ev2WS::Client->connect(port => $s->port, path => '/ws', timeout => 10);
ok($ws && $ws->echo('ping', 10), 'WebSocket echo through mod_proxy_wstunnel')
    or diag($ws ? $ws->{error} : $@);
$ws->close if $ws;

# ---- mod_info lists the MPM's directives -----------------------------------

my $modname = Ev2Server::mpm_name() eq 'event2' ? 'mod_mpm_event2.c' : Ev2Server::mpm_name() . '.c';
my $info = $s->get('/server-info', timeout => 20);
ok($info && $info->{status} == 200, '/server-info answers 200')
    or diag($info ? "status $info->{status}" : $@);
my $body = $info ? $info->{body} : '';
my $sect = '';
if ($body =~ /<a name="\Q$modname\E">(.*?)(?=<a name="|\z)/s) {
    $sect = $1;
}
ok(length $sect, "/server-info has a section for $modname");
like($sect, qr/AsyncRequestWorkerFactor/, "it lists AsyncRequestWorkerFactor");
like($sect, qr/ThreadsPerChild/, 'and ThreadsPerChild');

# ---- 5 graceful restarts under load ------------------------------------------

# A forked loop that calls $iter->() until told to stop (or max_time).  Each
# call returns a hash of counters (summed) and optionally err => text (up to
# 10 kept); the totals come back through a pipe.
sub start_loop {
    my ($iter, $max_time) = @_;
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        close $rd;
        my $stop = 0;
        $SIG{TERM} = sub { $stop = 1 };
        $SIG{$_} = 'DEFAULT' for qw(HUP INT);
        $SIG{PIPE} = 'IGNORE';
        my (%sum, @err);
        my $deadline = time + $max_time;
        while (!$stop && time < $deadline) {
            my $r = eval { $iter->() } || { broken => 1, err => "died: $@" };
            for my $k (keys %$r) {
                if ($k eq 'err') { push @err, sprintf('%.3f %s', time, $r->{err}) if @err < 10 }
                else { $sum{$k} += $r->{$k} }
            }
        }
        print $wr join(' ', map { "$_=$sum{$_}" } sort keys %sum), "\n", map { "$_\n" } @err;
        close $wr;
        _exit(0);
    }
    close $wr;
    return { pid => $pid, fh => $rd };
}

sub finish_loop {
    my $l = shift;
    kill 'TERM', $l->{pid};
    my $buf = '';
    my $deadline = time + 45;
    my $sel = IO::Select->new($l->{fh});
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($l->{fh}, my $chunk, 4096);
        last unless $n;
        $buf .= $chunk;
    }
    close $l->{fh};
    my $t = time + 5;
    sleep 0.05 while waitpid($l->{pid}, WNOHANG) == 0 && time < $t;
    if (waitpid($l->{pid}, WNOHANG) == 0) { kill 'KILL', $l->{pid}; waitpid($l->{pid}, 0) }
    $l->{pid} = undef;
    my ($line, @err) = split /\n/, $buf;
    my %r = (errors => \@err);
    $r{$1} = $2 while defined $line && $line =~ /(\w+)=(\d+)/g;
    $r{$_} //= 0 for qw(ok fail runs cut non2xx broken);
    $r{broken}++ unless defined $line;
    return \%r;
}

my @loops;
END { for my $l (@loops) { next unless $l->{pid}; kill 'KILL', $l->{pid}; waitpid($l->{pid}, 0) } }

my $port = $s->port;
my $n_h2 = 0;
# h2load runs of 200 requests, alternately h2c and h2 over TLS.  A graceful
# restart sends GOAWAY and h2load does not retry the requests it had not
# started, so a run that overlaps a restart may count some as failed ("cut").
# Every completed response must still be a 2xx, and a restart can cut at
# most the run in flight.
my $h2_iter = sub {
    my $url = $n_h2++ % 2 ? "https://127.0.0.1:$tls_port/index.html" : "http://127.0.0.1:$port/index.html";
    my ($rc, $out) = Ev2Server::run_cmd(['timeout', '-k', '5', '30',
        'h2load', '-n', '200', '-c', '2', '-m', '4', $url]);
    my ($ok, $failed) = $out =~ /(\d+) succeeded, (\d+) failed/;
    my ($s2, $s3, $s4, $s5) = $out =~ /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/;
    return { broken => 1, err => "h2load exit $rc: $out" } unless defined $s5;
    my %r = (runs => 1, ok => $ok, non2xx => $s3 + $s4 + $s5);
    if ($failed || $r{non2xx}) {
        $r{cut} = 1;
        my @l = grep { /^(requests|status codes):/ } split /\n/, $out;
        $r{err} = "$url: @l";
    }
    return \%r;
};
my $ws_iter = sub {
    my $c = Ev2WS::Client->connect(port => $port, path => '/ws', timeout => 10)
        or return { fail => 1, err => "handshake: $@" };
    my %r = (ok => 0);
    for my $i (1 .. 5) {
        if ($c->echo("loop $i", 10)) { $r{ok}++ }
        else { $r{fail} = 1; $r{err} = "echo $i: $c->{error}"; last }
    }
    $c->close;
    return \%r;
};

my $st0 = $s->status_auto or BAIL_OUT('no /server-status?auto');
my $gen = $st0->{ParentServerConfigGeneration};
my $http = Ev2Load->start(port => $port, clients => 2, max_time => 90);
push @loops, start_loop($h2_iter, 90), start_loop($ws_iter, 90);
sleep 1;

my ($gen_ok, $serve_ok) = (0, 0);
for my $i (1 .. $RESTARTS) {
    $s->graceful;
    my $st;
    if ($s->wait_for(sub {
            $st = $s->status_auto or return 0;
            ($st->{ParentServerConfigGeneration} // -1) > $gen }, 20, 0.1)) {
        $gen_ok++;
        $gen = $st->{ParentServerConfigGeneration};
    }
    else {
        diag "restart $i: generation did not increase";
    }
    my $g = $s->get('/index.html', timeout => 10);
    if ($g && $g->{status} == 200) { $serve_ok++ }
    else { diag "restart $i: " . ($g ? "status $g->{status}" : "error $@") }
    sleep 1.5;
}
is($gen_ok, $RESTARTS, "$RESTARTS graceful restarts, each a new generation");
is($serve_ok, $RESTARTS, 'the server served a request after each one');
ok(Ev2Server::alive($s->pid), 'parent alive');

my $hr = $http->finish;
my $h2r = finish_loop($loops[0]);
my $wsr = finish_loop($loops[1]);
note "HTTP/1.1: $hr->{ok} ok, $hr->{fail} failed; h2: $h2r->{ok} ok in $h2r->{runs} runs, $h2r->{cut} cut; "
    . "WebSocket: $wsr->{ok} echoes ok, $wsr->{fail} failed";
cmp_ok($hr->{ok}, '>', 0, "HTTP/1.1 load: $hr->{ok} requests");
is($hr->{fail}, 0, 'HTTP/1.1 load: no failed request')
    or diag join("\n", @{ $hr->{errors} });
cmp_ok($h2r->{ok}, '>', 0, "h2 load: $h2r->{ok} requests succeeded in $h2r->{runs} h2load runs");
is($h2r->{broken}, 0, 'h2 load: every h2load run completed and reported')
    or diag join("\n", @{ $h2r->{errors} });
is($h2r->{non2xx}, 0, 'h2 load: every completed response was a 2xx')
    or diag join("\n", @{ $h2r->{errors} });
cmp_ok($h2r->{cut}, '<=', $RESTARTS, "h2 load: at most one run per restart cut by GOAWAY ($h2r->{cut})")
    or diag join("\n", @{ $h2r->{errors} });
note "h2 runs cut by a restart: $_" for @{ $h2r->{errors} };
cmp_ok($wsr->{ok}, '>', 0, "WebSocket load: $wsr->{ok} echoes");
is($wsr->{fail}, 0, 'WebSocket load: no failure') or diag join("\n", @{ $wsr->{errors} });

# Everything still works in the last generation.
my ($frc, $fout) = Ev2Server::run_cmd(['timeout', '-k', '5', '60',
    'h2load', '-n', '1000', '-c', '4', '-m', '10', "http://127.0.0.1:$port/index.html"]);
like($fout, qr/1000 succeeded, 0 failed/, 'h2load after the restarts: 1000 succeeded, 0 failed')
    or diag $fout;
$ws = Ev2WS::Client->connect(port => $port, path => '/ws', timeout => 10);
ok($ws && $ws->echo('last', 10), 'WebSocket echo after the restarts')
    or diag($ws ? $ws->{error} : $@);
$ws->close if $ws;

my $log = $s->log_text;
my @bad = grep { /Segmentation fault|exit signal|AH00052|AH00060/ } split /\n/, $log;
is(scalar @bad, 0, 'error log: no segfault, no child exit signal (AH00052), no AH00060')
    or diag join("\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);

ok($s->stop, 'server stopped cleanly');
$be->stop;
done_testing();
