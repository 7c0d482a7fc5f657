# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# slow_paths.t: a slow client parks in the listener (EV2_STATE_READ_HEADER)
# on every path, not only the plain request header of slow_header.t: what
# only httpd's input filters can show is read ahead by a worker without
# blocking (hold.c), and the worker is free again.  One child of 4
# workers, each of four kinds of slow client 200 at once (TLS: see $N_TLS),
# trickling a few bytes every half second:
#   1. TLS, handshake done, the request header trickled in TLS records;
#   2. TLS, the ClientHello itself trickled over raw TCP;
#   3. plain HTTP, a full request and the start of the next in one write,
#      the rest of the next trickled (pipelined: the core input filter
#      holds the start);
#   4. plain HTTP POST, Content-Length 8192, the body trickled.
# Meanwhile a new plain HTTP client (and an HTTPS one beside the TLS
# kinds) is served in under a second, again and again, and mod_status
# shows no worker held for them; each slow client is answered once its
# request is whole.  With AsyncHeaderTimeout 2-4,MinRate=500 a trickled
# body and a trickled TLS header run out of time (408, logged EV2085),
# and a body sent faster than MinRate is not cut off at the base 2 s.
# (Every httpd MPM, stock event included, gives each of these clients a
# worker while it waits.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use IO::Socket::INET ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;
use Ev2HTTPS;
use Ev2TLS;

plan skip_all => 'IO::Socket::SSL not installed (make deps installs libio-socket-ssl-perl)'
    unless Ev2HTTPS::available();

my $N = 200;
# TLS slow clients: 100, not 200.  Each needs a full handshake, done one
# after the other by this single-threaded client (ECDHE + ECDSA on both
# ends); 100 took 2-6 s to set up on the shared 2-core machine, 200 would
# double that, and 100 are still 25 per worker.
my $N_TLS = 100;
my $PHASE = 5;          # seconds of trickling per kind
my $TICK = 0.5;         # between trickled bytes
local $TODO = Ev2Server::is_stock() ? 'stock gives a worker to every slow client' : undef;

# One TLS ClientHello as a real client sends it: IO::Socket::SSL starts a
# handshake, without waiting, towards a listener of ours, and the first
# record it wrote is read there.
sub client_hello {
    my $l = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp') or return undef;
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $l->sockport,
                                  Proto => 'tcp', Timeout => 5) or return undef;
    IO::Socket::SSL->start_SSL($c, SSL_startHandshake => 0,
        SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
        SSL_alpn_protocols => ['http/1.1']) or return undef;
    $c->blocking(0);
    $c->connect_SSL;    # writes the ClientHello, then would wait
    my $sel = IO::Select->new($l);
    return undef unless $sel->can_read(5);
    my $a = $l->accept or return undef;
    my $buf = '';
    $sel = IO::Select->new($a);
    my $until = time + 5;
    while (time < $until && $sel->can_read($until - time)) {
        last unless sysread($a, $buf, 16384, length $buf);
        last if length $buf >= 5 && length $buf >= 5 + unpack('n', substr($buf, 3, 2));
    }
    close $a;
    close $c;
    return undef unless length $buf >= 5 && ord($buf) == 0x16
        && length $buf == 5 + unpack('n', substr($buf, 3, 2));
    return $buf;
}

# An HTTPS connection whose reads never block inside TLS: a blocking
# SSL_read that meets only the server's session tickets would wait on
# the socket for the server's own Timeout, past every bound of ours.
sub tls_connect {
    my $c = Ev2HTTPS->connect(@_) or return undef;
    $c->{sock}->blocking(0);
    return $c;
}

# Open $n TLS connections (handshake done), each having sent $first.
# Stops at the first that fails (the MPM under test may not take more).
sub tls_clients {
    my ($port, $n, $first) = @_;
    my @c;
    my $until = time + 30;
    for my $i (1 .. $n) {
        last if time > $until;
        my $c = tls_connect(port => $port, timeout => 5);
        unless ($c) { diag "TLS connect $i: $@"; last }
        $c->send($first->($i), 5) or do { diag "TLS send $i failed"; last };
        push @c, $c;
    }
    return @c;
}

sub plain_clients {
    my ($port, $n, $first) = @_;
    my @c;
    for my $i (1 .. $n) {
        my $c = Ev2HTTP->connect(port => $port, timeout => 5) or do { diag "connect $i: $@"; last };
        $c->send($first->($i), 5) or do { diag "send $i failed"; last };
        push @c, $c;
    }
    return @c;
}

# A normal client: a GET, served with 200?  Returns the seconds it took,
# 99 if not served (within 5 s).
sub probe {
    my ($port, $tls, $tag) = @_;
    my $t0 = time;
    my $c = $tls ? tls_connect(port => $port, timeout => 5)
                 : Ev2HTTP->connect(port => $port, timeout => 5);
    return 99 unless $c;
    my $left = 5 - (time - $t0);
    my $r = $left > 0
        && $c->send(Ev2HTTP::request_string('GET', "/index.html?probe=$tag",
                                            Connection => 'close'), $left)
        ? $c->read_response(timeout => 5 - (time - $t0)) : undef;
    $c->close;
    return $r && $r->{status} == 200 ? time - $t0 : 99;
}

# $PHASE seconds of: every slow client trickles ($trickle->($c, $tick)),
# then the normal clients (plain on $port, HTTPS on $tls_port if given)
# are timed.  Every probe is bounded, so a phase is too (on an MPM that
# holds a worker per slow client it lasts a probe timeout or two more).
sub trickle_phase {
    my ($s, $name, $slow, $trickle, $tls_port) = @_;
    my (@lat, @tls_lat);
    my $t_end = time + $PHASE;
    my $tick = 0;
    while (time < $t_end) {
        $tick++;
        local $SIG{PIPE} = 'IGNORE';
        $trickle->($_, $tick) for @$slow;
        (my $tag = "$name$tick") =~ s/\W/_/g;
        push @lat, probe($s->port, 0, $tag);
        push @tls_lat, probe($tls_port, 1, $tag) if $tls_port;
        sleep $TICK;
    }
    my @worst = map { (sort { $b <=> $a } @$_)[0] // 99 } \@lat, \@tls_lat;
    ok(@lat >= 5 && $worst[0] < 1,
       sprintf('%s: a normal client is served in under a second, %d times (worst %.3f s)',
               $name, scalar @lat, $worst[0]))
        or diag "$name: " . join ' ', map { sprintf '%.3f', $_ } @lat;
    if ($tls_port) {
        ok(@tls_lat >= 5 && $worst[1] < 1,
           sprintf('%s: a normal HTTPS client is served in under a second, %d times (worst %.3f s)',
                   $name, scalar @tls_lat, $worst[1]))
            or diag "$name HTTPS: " . join ' ', map { sprintf '%.3f', $_ } @tls_lat;
    }
    SKIP: {
        skip 'event2 status section', 2 if Ev2Server::is_stock();
        my $st = $s->status_auto;
        note "$name: " . join ' ', map { "$_=" . ($st ? $st->{$_} // 'undef' : '?') }
            qw(BusyWorkers IdleWorkers Event2ConnsReadingHeader ConnsTotal);
        # The status request itself, and perhaps a worker still reading
        # ahead the last trickled bytes.
        cmp_ok($st ? $st->{BusyWorkers} // 99 : 99, '<=', 2,
               "$name: mod_status: no worker is held by the slow clients");
        cmp_ok($st ? $st->{Event2ConnsReadingHeader} // 0 : 0, '>=', scalar @$slow,
               "$name: mod_status: the slow clients wait as reading their request");
    }
}

# Read one response on each connection, all within $secs; returns how
# many were 200 and how many were any HTTP response.
sub answers {
    my ($conns, $secs) = @_;
    my $until = time + $secs;
    my ($ok, $any) = (0, 0);
    for my $c (@$conns) {
        my $r = $c->read_response(timeout => $until - time > 0.05 ? $until - time : 0.05);
        $any++ if $r;
        $ok++ if $r && $r->{status} == 200;
    }
    return ($ok, $any);
}

# ---- 200 slow clients of each kind, one child of 4 workers -------------
my $t_begin = time;
{
    my $tls_port = Ev2Server::free_port();
    my $s = Ev2Server->new(
        mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => 100),
        modules => [qw(socache_shmcb ssl)],
        nofile => 4096);
    my ($crt, $key) = Ev2TLS::self_signed_cert($s->dir);
    my $d = $s->dir;
    $s->{conf} = <<"EOF2" . Ev2TLS::vhost_conf($tls_port, $crt, $key);
<IfDirective AsyncHeaderTimeout>
    AsyncHeaderTimeout 30-60,MinRate=500
</IfDirective>
Timeout 60
KeepAliveTimeout 30
SSLSessionCache "shmcb:$d/run/ssl_scache(512000)"
Listen 127.0.0.1:$tls_port
EOF2
    $s->write_config;
    $s->start;

    # 1. TLS: the handshake is done, the header comes a byte at a time.
    {
        my $t0 = time;
        my @slow = tls_clients($tls_port, $N_TLS,
            sub { "GET /index.html?tls=$_[0] HTTP/1.1\r\nHost: 127.0.0.1\r\n" });
        is(scalar @slow, $N_TLS, sprintf('TLS header: %d slow TLS clients connected (%.1f s)',
                                         $N_TLS, time - $t0));
        trickle_phase($s, 'TLS header', \@slow, sub { $_[0]->send('X', 1) }, $tls_port);
        $_->send(": y\r\n\r\n", 2) for @slow;
        my ($ok) = answers(\@slow, 15);
        is($ok, scalar @slow, 'TLS header: every slow client is answered 200 once its header is whole');
        $_->close for @slow;
    }

    # 2. TLS: the ClientHello comes three bytes at a time.
    {
        my $hello = client_hello();
        ok(defined $hello, 'a ClientHello captured') or diag 'no ClientHello';
        $hello //= "\x16\x03\x01\x00\x05hello";
        my @slow = plain_clients($tls_port, $N, sub { substr($hello, 0, 5) });
        is(scalar @slow, $N, "ClientHello: $N slow TLS clients connected");
        my %off = map { ($_ => 5) } @slow;
        trickle_phase($s, 'ClientHello', \@slow, sub {
            my $c = shift;
            return if $off{$c} >= length($hello) - 3;    # never whole
            $c->send(substr($hello, $off{$c}, 3), 1);
            $off{$c} += 3;
        }, $tls_port);
        # The rest of the ClientHello: each is answered with a ServerHello
        # (a handshake record), so each was still being waited for.
        my $sent = grep { $_->send(substr($hello, $off{$_}), 2) } @slow;
        is($sent, scalar @slow, 'ClientHello: the rest sent on every connection');
        my $until = time + 15;
        my $hellos = 0;
        for my $c (@slow) {
            while (length $c->{buf} < 5) {
                last unless $c->_fill($until > time ? $until : time + 0.05);
            }
            $hellos++ if $c->{buf} =~ /^\x16\x03/;
            $c->close;
        }
        is($hellos, scalar @slow, 'ClientHello: every slow client gets its ServerHello once it is whole');
    }

    # 3. Pipelined: a whole request and the start of the next, then the
    # rest of the next a byte at a time.
    {
        my $t0 = time;
        my @slow = plain_clients($s->port, $N, sub {
            "GET /index.html?first=$_[0] HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            . "GET /index.html?next=$_[0] HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow"
        });
        is(scalar @slow, $N, "pipelined: $N slow clients connected");
        my ($ok) = answers(\@slow, 10);
        my $took = time - $t0;
        is($ok, $N, sprintf('pipelined: every client gets its first response at once (%.2f s)', $took));
        trickle_phase($s, 'pipelined', \@slow, sub { $_[0]->send('X', 1) });
        $_->send(": y\r\n\r\n", 2) for @slow;
        ($ok) = answers(\@slow, 15);
        is($ok, $N, 'pipelined: every slow client is answered 200 once its next request is whole');
        $_->close for @slow;
    }

    # 4. A POST whose body of 8192 bytes comes three bytes at a time.
    {
        my $len = 8192;
        my @slow = plain_clients($s->port, $N, sub {
            "POST /index.html?post=$_[0] HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            . "Content-Type: application/octet-stream\r\nContent-Length: $len\r\n\r\nbbb"
        });
        is(scalar @slow, $N, "POST body: $N slow clients connected");
        my %sent = map { ($_ => 3) } @slow;
        trickle_phase($s, 'POST body', \@slow, sub {
            $_[0]->send('bbb', 1);
            $sent{$_[0]} += 3;
        });
        $_->send('b' x ($len - $sent{$_}), 2) for @slow;
        my $until = time + 15;
        my %status;
        for my $c (@slow) {
            my $r = $c->read_response(timeout => $until - time > 0.05 ? $until - time : 0.05);
            $status{$r ? $r->{status} : 'none'}++;
        }
        note 'POST body: final statuses ' . join ' ', map { "$_ x $status{$_}" } sort keys %status;
        # httpd reads (and discards) the body of a POST to a static file,
        # then serves the file.
        is($status{200} // 0, $N, 'POST body: every slow POST is answered 200 once its body is whole');
        $_->close for @slow;
    }
    ok($s->stop, 'server stopped cleanly');
}

# ---- out of time: a trickled body, a trickled TLS header; MinRate -------
{
    my $tls_port = Ev2Server::free_port();
    my $s = Ev2Server->new(
        mpm => Ev2Server::one_child(4),
        modules => [qw(socache_shmcb ssl)]);
    my ($crt, $key) = Ev2TLS::self_signed_cert($s->dir);
    my $d = $s->dir;
    $s->{conf} = <<"EOF2" . Ev2TLS::vhost_conf($tls_port, $crt, $key);
<IfDirective AsyncHeaderTimeout>
    AsyncHeaderTimeout 2-4,MinRate=500
</IfDirective>
LogLevel info
SSLSessionCache "shmcb:$d/run/ssl_scache(512000)"
Listen 127.0.0.1:$tls_port
EOF2
    $s->write_config;
    $s->start;

    # Send $more->() every $iv seconds until the server answers or
    # closes (7 s at most: the cap of 4 s and a tick are well within);
    # returns (what came, seconds taken).
    my $until_answer = sub {
        my ($c, $more, $iv) = @_;
        my $t0 = time;
        local $SIG{PIPE} = 'IGNORE';
        while (time - $t0 < 7) {
            $c->send($more->(), 1);
            my $n = $c->_fill(time + $iv);
            last if defined $n && ($n == 0 || $c->{buf} =~ /\r\n\r\n/);
        }
        return ($c->{buf}, time - $t0);
    };

    # Each kind of slow client, a byte every half second (and two of them
    # a byte every 2 s): answered as httpd answers a timed-out read once
    # its time (2 s plus its bytes at MinRate) is out, and logged.
    # HTTP/1.1 408 for all of these here; a TLS client could also see a
    # plain close.
    my $body = "POST /index.html?late=body HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               . "Content-Length: 8192\r\n\r\nb";
    my $tls_header = "GET /index.html?late=tls HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow";
    my @late = (
        ['a POST body trickled a byte every 2 s', 0, $body, 'b', 2],
        ['a TLS header trickled a byte every 2 s', 1, $tls_header, 'X', 2],
        ['a trickled POST body', 0, $body, 'b', $TICK],
        ['the rest of a pipelined request', 0,
         "GET /index.html?first HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
         . "GET /index.html?late=pipelined HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow", 'X', $TICK],
        ['a trickled TLS header', 1, $tls_header, 'X', $TICK],
        ['a trickled TLS POST body', 1,
         "POST /index.html?late=tlsbody HTTP/1.1\r\nHost: 127.0.0.1\r\n"
         . "Content-Length: 8192\r\n\r\nb", 'b', $TICK],
    );
    for my $case (@late) {
        my ($what, $tls, $first, $more, $iv) = @$case;
        my $mark = length($s->log_text // '');
        my $c = $tls ? tls_connect(port => $tls_port, timeout => 5)
                     : Ev2HTTP->connect(port => $s->port, timeout => 5);
        unless ($c) { fail("$what: connected"); diag $@; next }
        $c->send($first, 2);
        if ($first =~ /\?first /) {
            my $r = $c->read_response(timeout => 5);
            ok($r && $r->{status} == 200, "$what: the first request is answered");
        }
        # A connection that a worker reads ahead for (hold.c: TLS, a body,
        # the rest of a pipelined request) is parked anew after each read;
        # one that got a byte more often than the queue's one-second tick
        # was never cut off until header.c checked its time on every
        # wake-up (these cases, a byte every half second).  A TLS client
        # must not block in SSL_read here: the server's session tickets
        # make the socket readable with nothing to give (tls_connect).
        my ($buf, $took) = $until_answer->($c, sub { $more }, $iv);
        ok($buf =~ m{^HTTP/1\.1 408 } || ($tls && $buf eq '' && $c->{eof}),
           sprintf('%s out of time is answered 408 Request Timeout%s (%.2f s)', $what,
                   $tls ? ' or closed' : '', $took))
            or diag 'got: ' . (substr($buf, 0, 40) // '') . ($c->{eof} ? ' (closed)' : ' (open)');
        ok($took >= 1.8 && $took < 6, sprintf('%s: after the timeout of 2 s (%.2f s)', $what, $took));
        $c->close;
        like(substr($s->log_text // '', $mark), qr/EV2085: Request header read timeout/,
             "$what: the timeout is logged (EV2085)");
    }

    # A body of 2000 bytes at 600 bytes a second, above MinRate 500: it
    # takes 3.3 s, past the base of 2 s (and within the cap of 4).
    my $len = 2000;
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 5);
    $c->send("POST /index.html?steady HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             . "Content-Length: $len\r\n\r\n");
    my $t0 = time;
    my $sent = 0;
    while ($sent < $len && time - $t0 < 10) {
        my $due = int(600 * (time - $t0));
        $due = $len if $due > $len;
        if ($due > $sent) {
            last unless $c->send('b' x ($due - $sent), 2);
            $sent = $due;
        }
        sleep 0.1;
    }
    my $sent_in = time - $t0;
    my $r = $c->read_response(timeout => 5);
    ok($r && $r->{status} == 200,
       sprintf('a body at 600 bytes/s is not cut off at the base timeout (%d bytes in %.2f s)',
               $sent, $sent_in))
        or diag 'got: ' . ($r ? $r->{status} : $c->{error} // 'nothing');
    $c->close;
    ok($s->stop, 'server stopped cleanly');
}
note sprintf('run time %.1f s', time - $t_begin);

done_testing();
