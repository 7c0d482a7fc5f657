# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# haproxy_drain.t: HAProxy (Debian's haproxy) in front of two apache2
# instances running the MPM under test, configured from
# t/conf/haproxy.cfg.tmpl (the example of the README section "Behind a load
# balancer"), with the PROXY protocol v2 between them (send-proxy-v2,
# mod_remoteip's RemoteIPProxyProtocol).
#
#   1. Clients connect from 127.0.0.2 and 127.0.0.3 (the whole 127/8 is
#      loopback on Linux): each backend's access log (%a) shows those
#      addresses, not HAProxy's, and the responses are the backend's page.
#   2. Four keep-alive clients (each from its own address) send requests
#      through HAProxy (two of them for a 1 s download) while web1 is
#      drained with "apache2 -k graceful-stop" during a download from it:
#      every response is a 200 with the full page of one backend, web1
#      exits, requests go on being served by web2, HAProxy marks web1 DOWN.
#      Every answered request is in the access log of the backend whose page
#      came back, with the client's address, and in no other backend's log
#      (a retry by HAProxy never hides a request a backend took and did not
#      answer).  No crash in either error log.
#
# EV2_HAPROXY_RETRY_ON=WORDS replaces the template's retry-on keywords (for
# diagnosis, e.g. "conn-failure" to see what the drain costs without
# retrying requests on closed keep-alive connections).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use IO::Select ();
use Socket qw(inet_aton);
use POSIX qw(WNOHANG _exit);
use File::Temp qw(tempdir);
use Ev2Server;
use Ev2HTTP;

my $HAPROXY = '/usr/sbin/haproxy';
plan skip_all => "$HAPROXY not installed (make deps installs it)" unless -x $HAPROXY;

# It takes about 5 s; whatever hangs, give up after 55 s (END stops HAProxy,
# the clients and the backends).
$SIG{ALRM} = sub { print STDERR "# haproxy_drain.t: still running after 55 s, giving up\n"; exit 124 };
alarm 55;

my $TEMPLATE = "$FindBin::Bin/../conf/haproxy.cfg.tmpl";
my @CLIENTS  = (1 .. 4);                        # load clients
my %CLIENT_IP = map { $_ => '127.0.0.' . (10 + $_) } @CLIENTS;
my $PER_CONN = 20;                              # requests per client connection
my %BIG_CLIENT = (3 => 1, 4 => 1);              # those that ask for /big.bin

my $dir = tempdir('ev2hap-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{EV2_KEEP_TMP});
chmod 0755, $dir;

# The pages each backend serves, both with its name: /who.html (8 KB that a
# short read would cut off) and /big.bin (256 KB sent at 256 KB/s by
# mod_ratelimit, so that one is in flight when web1 is told to stop).
my (%BODY, %BIG);
for my $n (qw(web1 web2)) {
    $BODY{$n} = "served by $n\n" . join('', map { sprintf "%s line %04d\n", $n, $_ } 1 .. 550);
    $BIG{$n} = "served by $n\n" . join('', map { sprintf "%s big line %06d\n", $n, $_ } 1 .. 12_000);
    $BIG{$n} .= 'x' x (262_144 - length $BIG{$n});
}

sub owner_of {
    my ($path, $body) = @_;
    my $pages = $path =~ /^\/big\.bin/ ? \%BIG : \%BODY;
    for my $n (sort keys %$pages) {
        return $n if $body eq $pages->{$n};
    }
    return undef;
}

# ---- the backends -------------------------------------------------------

# A PROXY protocol v2 header (PROXY command, TCP over IPv4).
sub proxy_v2 {
    my ($src, $sport, $dst, $dport) = @_;
    return "\r\n\r\n\0\r\nQUIT\n" . pack('CCn', 0x21, 0x11, 12)
        . inet_aton($src) . inet_aton($dst) . pack('nn', $sport, $dport);
}

# A request straight to a backend (not through HAProxy), as HAProxy sends
# it: a PROXY v2 header first.  The response, or undef.
sub proxied_get {
    my ($s, $path, $timeout) = @_;
    $timeout //= 5;
    my $c = Ev2HTTP->connect(port => $s->port, timeout => $timeout) or return undef;
    my $ok = $c->send(proxy_v2('127.0.0.1', 40000, '127.0.0.1', $s->port)
        . Ev2HTTP::request_string('GET', $path, Connection => 'close'), $timeout);
    my $r = $ok ? $c->read_response(timeout => $timeout) : undef;
    $c->close;
    return $r;
}

# Ev2Server's readiness probe: the backends want a PROXY header first.
sub proxied_probe {
    my $r = proxied_get($_[0], '/lb-check.html', 2);
    return $r && $r->{status} == 200;
}

sub backend {
    my $name = shift;
    return Ev2Server->new(
        mpm => <<'EOF',
StartServers 2
ServerLimit 8
ThreadsPerChild 16
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 64
EOF
        modules => [qw(remoteip ratelimit env)],
        files   => { 'who.html' => $BODY{$name}, 'big.bin' => $BIG{$name},
                     'lb-check.html' => "ok\n" },
        ready   => \&proxied_probe,
        conf    => <<'EOF',
RemoteIPProxyProtocol On
LogFormat "%a \"%r\" %>s %B %{pid}P" proxied
CustomLog logs/proxied_log proxied
# Longer than HAProxy keeps an idle server connection, so that in normal
# operation HAProxy, not apache2, closes idle connections.
KeepAliveTimeout 15
GracefulShutdownTimeout 20
<Location /big.bin>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit 256
</Location>
EOF
    );
}

my %web = (web1 => backend('web1'), web2 => backend('web2'));
$_->start for @web{qw(web1 web2)};

# ---- HAProxy --------------------------------------------------------------

my $hap_pid;
my $hap_cfg  = "$dir/haproxy.cfg";
my $hap_log  = "$dir/haproxy.log";
my $hap_sock = "$dir/haproxy.sock";
my $hap_port;

sub write_haproxy_cfg {
    open my $in, '<', $TEMPLATE or die "$TEMPLATE: $!";
    local $/;
    my $t = <$in>;
    close $in;
    my %v = (
        FRONTEND     => "127.0.0.1:$hap_port",
        WEB1         => '127.0.0.1:' . $web{web1}->port,
        WEB2         => '127.0.0.1:' . $web{web2}->port,
        STATS_SOCKET => $hap_sock,
    );
    $t =~ s/\@(\w+)\@/exists $v{$1} ? $v{$1} : die "unknown placeholder \@$1\@\n"/ge;
    if (my $ro = $ENV{EV2_HAPROXY_RETRY_ON}) {
        $t =~ s/^(\s*retry-on)\s.*$/$1 $ro/m or die "no retry-on line in $TEMPLATE\n";
    }
    open my $out, '>', $hap_cfg or die "$hap_cfg: $!";
    print $out $t;
    close $out or die "$hap_cfg: $!";
}

sub hap_log_tail {
    open my $fh, '<', $hap_log or return '';
    my @l = <$fh>;
    close $fh;
    @l = @l[-20 .. -1] if @l > 20;
    return join '', map { "# haproxy: $_" } @l;
}

# One command on HAProxy's stats socket; its answer, or undef.
sub hap_cmd {
    my $cmd = shift;
    my $s = IO::Socket::UNIX->new(Peer => $hap_sock, Timeout => 5) or return undef;
    print $s "$cmd\n";
    my $out = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + 5;
    while (time < $deadline && $sel->can_read($deadline - time)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $out .= $buf;
    }
    close $s;
    return $out;
}

# "show stat" for the servers of backend apache: name => {status, wretr, ...}.
sub hap_servers {
    my $csv = hap_cmd('show stat') // return {};
    my @lines = split /\n/, $csv;
    my $head = shift @lines // return {};
    $head =~ s/^#\s*//;
    my @cols = split /,/, $head;
    my %srv;
    for my $l (@lines) {
        my %row;
        @row{@cols} = split /,/, $l, -1;
        next unless ($row{pxname} // '') eq 'apache' && ($row{svname} // '') =~ /^web\d$/;
        $srv{ $row{svname} } = \%row;
    }
    return \%srv;
}

sub stop_haproxy {
    return unless $hap_pid;
    kill 'TERM', $hap_pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        last if waitpid($hap_pid, WNOHANG) == $hap_pid;
        sleep 0.05;
    }
    if (kill 0, $hap_pid) {
        kill 'KILL', $hap_pid;
        waitpid($hap_pid, 0);
    }
    undef $hap_pid;
}

my @client_pids;
END {
    local ($?, $!);
    kill 'KILL', @client_pids if @client_pids;
    stop_haproxy();
}

sub start_haproxy {
    for my $attempt (1 .. 3) {
        $hap_port = Ev2Server::free_port();
        write_haproxy_cfg();
        my ($rc, $out) = Ev2Server::run_cmd(['timeout', '20', $HAPROXY, '-c', '-f', $hap_cfg]);
        die "haproxy -c rejects the configuration (exit $rc):\n$out" if $rc != 0;
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>>', $hap_log;
            open STDERR, '>&', \*STDOUT;
            { exec $HAPROXY, '-db', '-f', $hap_cfg }
            _exit(127);
        }
        $hap_pid = $pid;
        my $up = Ev2Server->wait_for(sub {
            return 0 if waitpid($hap_pid, WNOHANG) == $hap_pid;
            my $srv = hap_servers();
            return 0 if grep { ($srv->{$_}{status} // '') ne 'UP' } qw(web1 web2);
            return 1;
        }, 20, 0.1);
        return 1 if $up && kill(0, $hap_pid) && waitpid($hap_pid, WNOHANG) == 0;
        my $log = hap_log_tail();
        stop_haproxy();
        next if $log =~ /cannot bind|Address already in use/ && $attempt < 3;
        die "haproxy did not come up with both servers UP within 20 s\n$log";
    }
    die "haproxy could not bind a port";
}

start_haproxy();
pass("haproxy listens on 127.0.0.1:$hap_port, web1 and web2 UP");

# ---- access logs ----------------------------------------------------------

# {backend => {"c/n" => client address}} from the backends' proxied_log,
# plus every address that asked for /who.html.
sub served_by {
    my (%seen, %addr);
    for my $n (sort keys %web) {
        open my $fh, '<', $web{$n}->dir . '/logs/proxied_log' or next;
        while (my $l = <$fh>) {
            next unless $l =~ m{^(\S+) "GET /(?:who\.html|big\.bin)\?c=(\w+)&n=(\d+) HTTP/1\.1" (\d+) (\d+)};
            my ($ip, $c, $i, $st, $bytes) = ($1, $2, $3, $4, $5);
            $addr{$ip}++;
            $seen{$n}{"$c/$i"} = "$ip $st $bytes";
        }
        close $fh;
    }
    return (\%seen, \%addr);
}

# ---- 1. PROXY v2: the client's address reaches the backends ---------------

my %phase1;    # "c/n" => [address, backend]
for my $i (1 .. 4) {
    my $ip = $i % 2 ? '127.0.0.2' : '127.0.0.3';
    my $c = Ev2HTTP->connect(port => $hap_port, local => $ip, timeout => 10)
        or BAIL_OUT("cannot connect to haproxy from $ip: $@");
    is($c->socket->sockhost, $ip, "request $i sent from $ip");
    $c->send(Ev2HTTP::request_string('GET', "/who.html?c=p&n=$i", Connection => 'close'), 10);
    my $r = $c->read_response(timeout => 15);
    $c->close;
    my $who = $r && $r->{status} == 200 ? owner_of('/who.html', $r->{body}) : undef;
    ok($who, "request $i: 200 with a backend's full page" . ($who ? " ($who)" : ''))
        or diag $r ? "status $r->{status}, " . length($r->{body}) . ' bytes' : "no response: $c->{error}";
    $phase1{"p/$i"} = [$ip, $who // ''];
}
my %owners = map { $_->[1] => 1 } values %phase1;
ok($owners{web1} && $owners{web2}, 'round robin: both backends answered');
{
    # apache2 writes the log line just after the response: wait for it.
    my $seen;
    Ev2Server->wait_for(sub {
        ($seen) = served_by();
        !grep { !$seen->{ $phase1{$_}[1] }{$_} } keys %phase1;
    }, 10, 0.05);
    for my $id (sort keys %phase1) {
        my ($ip, $who) = @{ $phase1{$id} };
        my ($logged) = split / /, $seen->{$who}{$id} // '';
        is($logged // '', $ip, "$who access log: request $id came from $ip (not HAProxy's 127.0.0.1)");
    }
}

# ---- 2. drain web1 under load ---------------------------------------------

# A client: keep-alive requests through HAProxy from its own address (for
# /who.html, or /big.bin for one of them), one line per response into its
# file; stops between two requests on SIGTERM.
sub client {
    my ($k, $file) = @_;
    open my $out, '>', $file or _exit(1);
    $out->autoflush(1);
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    $SIG{PIPE} = 'IGNORE';
    # Not Ev2Server's handlers: the parent stops the servers, not a client.
    $SIG{$_} = sub { _exit(1) } for qw(INT HUP);
    my $deadline = time + 45;
    my ($c, $on_conn, $n) = (undef, 0, 0);
    while (!$stop && time < $deadline && $n < 20_000) {
        if (!$c) {
            $c = Ev2HTTP->connect(port => $hap_port, local => $CLIENT_IP{$k}, timeout => 10);
            if (!$c) {
                printf $out "FAIL %.3f %d connect: %s\n", time, $n + 1, $@;
                sleep 0.1;
                next;
            }
            $on_conn = 0;
        }
        $n++;
        $on_conn++;
        my $last = $on_conn >= $PER_CONN;
        my $path = ($BIG_CLIENT{$k} ? '/big.bin' : '/who.html') . "?c=$k&n=$n";
        my $req = Ev2HTTP::request_string('GET', $path, $last ? (Connection => 'close') : ());
        my $res;
        $res = $c->read_response(timeout => 20) if $c->send($req, 10);
        my $who = $res && $res->{status} == 200 ? owner_of($path, $res->{body}) : undef;
        if ($who) {
            printf $out "OK %.3f %s %d %d\n", time, $who, $n, $on_conn;
        }
        else {
            printf $out "FAIL %.3f %d %s (request %d on its connection)\n", time, $n,
                $res ? "status $res->{status}, " . length($res->{body}) . ' bytes'
                     : 'no response: ' . ($c->{error} // 'send failed'), $on_conn;
        }
        if (!$res || $last || ($res->{headers}{connection} // '') =~ /close/i) {
            $c->close;
            undef $c;
        }
    }
    close $out;
}

for my $k (@CLIENTS) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        @client_pids = ();
        undef $hap_pid;    # the parent's, not ours to stop
        eval { client($k, "$dir/client$k.out") };
        _exit(0);
    }
    push @client_pids, $pid;
}

# What the clients have recorded so far.
sub tally {
    my %t = (ok => 0, fail => 0, web1 => 0, web2 => 0, after => {}, records => [], fails => []);
    my $since = shift;
    for my $k (@CLIENTS) {
        open my $fh, '<', "$dir/client$k.out" or next;
        while (my $l = <$fh>) {
            if ($l =~ /^OK (\S+) (\w+) (\d+)/) {
                $t{ok}++;
                $t{$2}++;
                $t{after}{$2}++ if defined $since && $1 > $since;
                push @{ $t{records} }, [$k, $3, $2, $1];
            }
            elsif ($l =~ /^FAIL/) {
                $t{fail}++;
                push @{ $t{fails} }, "client $k: $l";
            }
        }
        close $fh;
    }
    return \%t;
}

my $t;
ok(Ev2Server->wait_for(sub { $t = tally(); $t->{web1} >= 100 && $t->{web2} >= 100 }, 15, 0.1),
    'under load, both backends serve (100 responses each)')
    or diag "web1 $t->{web1}, web2 $t->{web2}, failed $t->{fail}";

# The /big.bin responses web1 is sending right now, as "client/request"
# (its /server-status: workers in state W and their request line).
sub big_in_flight {
    my $r = proxied_get($web{web1}, '/server-status', 5) or return ();
    return () unless $r->{status} == 200;
    my @n;
    for my $row (split /<tr>/, $r->{body}) {
        next unless $row =~ m{<td><b>W</b>};
        push @n, "$1/$2" if $row =~ m{GET /big\.bin\?c=(\d+)&(?:amp;)?n=(\d+) };
    }
    return @n;
}

# Drain web1 while it sends a /big.bin response (about 1 s long; two
# clients ask for them, each request to either backend): that one must
# still arrive complete.
my @inflight;
ok(Ev2Server->wait_for(sub { @inflight = big_in_flight(); scalar @inflight }, 15, 0.05),
    'a /big.bin response is in flight on web1: ' . (@inflight ? "@inflight" : 'none'));
my $t_drain = time;
ok($web{web1}->graceful_stop, 'web1: apache2 -k graceful-stop');
my $gone = $web{web1}->wait_gone(25);
my $t_gone = time;
ok($gone, sprintf 'web1 exited, %.1f s after graceful-stop', $t_gone - $t_drain);
# Its last response done, it exits by itself, not because
# GracefulShutdownTimeout (20 s) ran out.
ok($t_gone - $t_drain < 19, 'web1 exited before GracefulShutdownTimeout');

# Load goes on while HAProxy's health checks notice that web1 is gone (2
# failed checks at most 1 s apart), and after.
my $srv;
ok(Ev2Server->wait_for(sub { $srv = hap_servers(); ($srv->{web1}{status} // '') eq 'DOWN' }, 10, 0.1),
    sprintf 'HAProxy marks web1 DOWN, %.1f s after it exited', time - $t_gone)
    or diag 'web1 is ' . ($srv->{web1}{status} // 'not in show stat');
my $t_down = time;
ok(Ev2Server->wait_for(sub { $t = tally($t_down); ($t->{after}{web2} // 0) >= 200 }, 10, 0.1),
    'after that, web2 serves the load (200 responses)')
    or diag 'web2 served ' . ($t->{after}{web2} // 0) . ' after web1 was marked DOWN';
$srv = hap_servers();
is($srv->{web2}{status} // '', 'UP', 'HAProxy keeps web2 UP');

kill 'TERM', @client_pids;
my $deadline = time + 25;
my %left = map { $_ => 1 } @client_pids;
while (%left && time < $deadline) {
    for my $p (keys %left) {
        delete $left{$p} if waitpid($p, WNOHANG) == $p;
    }
    sleep 0.05 if %left;
}
ok(!%left, 'load clients finished their last request and exited') or kill 'KILL', keys %left;
@client_pids = ();

$t = tally($t_gone);
for my $id (@inflight) {
    my ($k, $n) = split m{/}, $id;
    my ($r) = grep { $_->[0] == $k && $_->[1] == $n } @{ $t->{records} };
    ok($r && $r->[2] eq 'web1' && $r->[3] > $t_drain,
        "the /big.bin response in flight at graceful-stop ($id) arrived complete from web1"
        . ($r ? sprintf(', %.2f s after graceful-stop', $r->[3] - $t_drain) : ''));
}
my $late_web1 = grep { $_->[2] eq 'web1' && $_->[3] > $t_gone + 1 } @{ $t->{records} };
is($late_web1, 0, 'no response from web1 later than 1 s after it exited');
is($t->{fail}, 0, "zero failed requests of $t->{ok} + $t->{fail}")
    or diag join '', @{ $t->{fails} }[0 .. ($#{ $t->{fails} } < 19 ? $#{ $t->{fails} } : 19)];
my $during = grep { $_->[3] > $t_drain && $_->[3] <= $t_gone } @{ $t->{records} };
my $until_down = grep { $_->[3] > $t_gone && $_->[3] <= $t_down } @{ $t->{records} };
note sprintf '%d requests: web1 %d, web2 %d; %d answered while web1 drained (%.1f s), '
    . '%d until HAProxy marked it DOWN (%.1f s); '
    . 'HAProxy retries: web1 %s, web2 %s, redispatches: web1 %s, web2 %s',
    $t->{ok}, $t->{web1}, $t->{web2}, $during, $t_gone - $t_drain,
    $until_down, $t_down - $t_gone,
    map { $srv->{$_->[0]}{$_->[1]} // '?' } [web1 => 'wretr'], [web2 => 'wretr'],
        [web1 => 'wredis'], [web2 => 'wredis'];

ok($web{web2}->stop, 'web2 stopped');
$web{web1}->stop;

# Every answered request is in the log of the backend that answered it,
# from the client's own address, and in no other backend's log.
my ($seen, $addr) = served_by();
my (@missing, @twice);
for my $r (@{ $t->{records} }) {
    my ($k, $n, $who) = @$r;
    my $logged = $seen->{$who}{"$k/$n"} // '';
    push @missing, "$who: $k/$n ($logged)" unless $logged =~ /^\Q$CLIENT_IP{$k}\E 200 /;
    my $other = $who eq 'web1' ? 'web2' : 'web1';
    push @twice, "$k/$n answered by $who, also in $other\'s log: $seen->{$other}{\"$k/$n\"}"
        if $seen->{$other}{"$k/$n"};
}
is(scalar @missing, 0, "all $t->{ok} answered requests in their backend's access log with the client's address")
    or diag join "\n", @missing[0 .. ($#missing < 9 ? $#missing : 9)];
is(scalar @twice, 0, 'no answered request also reached the other backend (nothing lost and retried)')
    or diag join "\n", @twice[0 .. ($#twice < 9 ? $#twice : 9)];
my @haproxy_addr = grep { !/^127\.0\.0\.(?:2|3|1[1-4])$/ } sort keys %$addr;
is("@haproxy_addr", '', 'no /who.html request logged with another address than a client\'s');

for my $n (sort keys %web) {
    my $log = $web{$n}->log_text;
    unlike($log, qr/exit signal|Segmentation|AH00052/, "$n: no crash in the error log")
        or diag $web{$n}->log_tail(20);
}

stop_haproxy();
done_testing();
