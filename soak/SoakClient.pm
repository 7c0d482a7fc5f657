# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# SoakClient: the checked and the odd traffic of the soak harness
# (soak/soak.pl).  Each kind is one loop, run in a forked process, until a
# deadline; every request and every wait in it is bounded.
#
#   SoakClient::run($kind, $ctx);   # never returns; writes $ctx->{out}
#
# $ctx: port, tls_port, deadline, out (file), files ({path => {len, md5,
# data}}), seed.  The out file gets one JSON object per line:
#   {"f":1, kind, t, req_t0, conn_t0, lport, reused, phase, err}  a failure
#   {"c":1, kind, ok, retries, ...}                               final counts
# phase: connect (no connection), nobyte (closed or reset before a byte of
# the response), partial (closed or reset inside the response), timeout,
# bad (a complete response that is wrong: status, length, checksum),
# not_closed (a half-open or junk connection the server never closed).
package SoakClient;

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use IO::Handle ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use Socket qw(SOL_SOCKET SO_LINGER SO_RCVBUF);
use Time::HiRes qw(time sleep);
use Errno qw(EINTR EAGAIN EWOULDBLOCK);
use POSIX ();

use Ev2HTTP ();
use Ev2HTTPS ();
use Ev2WS ();

my $JSON = JSON::PP->new->canonical;

# Seconds a client waits after a failure before it tries again, so that a
# window where the server is down costs a bounded number of attempts.
our $BACKOFF = 0.25;
our $TIMEOUT = 30;    # any single read of a checked client

my ($CTX, $OUT, %COUNT, $KIND, $STOP);

sub _emit {
    my $h = shift;
    print {$OUT} $JSON->encode($h), "\n";
    $OUT->flush;
}

sub fail {
    my (%f) = @_;
    $COUNT{fail}++;
    _emit({ f => 1, kind => $KIND, t => time, %f });
    sleep $BACKOFF;
}

sub ok { $COUNT{ok} += ($_[0] // 1) }

sub done { return $STOP || time >= $CTX->{deadline} }

sub run {
    my ($kind, $ctx) = @_;
    ($KIND, $CTX) = ($kind, $ctx);
    %COUNT = (ok => 0, fail => 0, retries => 0);
    srand($ctx->{seed} // $$);
    $SIG{PIPE} = 'IGNORE';
    $SIG{TERM} = sub { $STOP = 1 };
    $SIG{INT} = 'IGNORE';
    open $OUT, '>>', $ctx->{out} or POSIX::_exit(2);
    my $code = __PACKAGE__->can("k_$kind") or POSIX::_exit(3);
    my $rc = 0;
    eval { $code->(); 1 } or do {
        _emit({ f => 1, kind => $kind, t => time, phase => 'bad',
            err => "client died: $@" });
        $COUNT{fail}++;
        $rc = 1;
    };
    _emit({ c => 1, kind => $kind, %COUNT });
    close $OUT;
    POSIX::_exit($rc);
}

# ---- HTTP/1.1 plumbing ------------------------------------------------------

sub _connect {
    my ($tls) = @_;
    my $c = $tls
        ? Ev2HTTPS->connect(port => $CTX->{tls_port}, timeout => 10)
        : Ev2HTTP->connect(port => $CTX->{port}, timeout => 10);
    return undef unless $c;
    $c->{conn_t0} = time;
    $c->{lport} = $c->{sock}->sockport;
    $c->{nreq} = 0;
    return $c;
}

# Check a response against the expected file (whole or a byte range).
# Returns an error text or undef.
sub check_file {
    my ($res, $path, $range) = @_;
    my $f = $CTX->{files}{$path} or return "unknown file $path";
    my ($want_status, $want_body_len, $want_md5) = (200, $f->{len}, $f->{md5});
    if ($range) {
        my ($a, $b) = @$range;
        $want_status = 206;
        $want_body_len = $b - $a + 1;
        $want_md5 = md5_hex(substr($f->{data}, $a, $want_body_len));
        my $cr = $res->{headers}{'content-range'} // '';
        return "Content-Range '$cr'" if $res->{status} == 206
            && $cr ne "bytes $a-$b/$f->{len}";
    }
    return "status $res->{status}" if $res->{status} != $want_status;
    my $cl = $res->{headers}{'content-length'};
    return "Content-Length $cl, want $want_body_len"
        if defined $cl && $cl != $want_body_len;
    return 'body length ' . length($res->{body}) . ", want $want_body_len"
        if length($res->{body}) != $want_body_len;
    return 'body checksum' if md5_hex($res->{body}) ne $want_md5;
    return undef;
}

# Why a read_response failed, as a phase.
sub _phase {
    my ($c, $got_any) = @_;
    my $err = $c->{error} // '';
    return 'timeout' if $err eq 'timeout';
    return $got_any ? 'partial' : 'nobyte';
}

# One request on a keep-alive connection held in $$cref, with the retry a
# client makes when a reused connection is closed before the first byte of
# the answer (RFC 9112 9.3.1: idempotent requests may be retried).
# $check->($res) returns an error text or undef.  Returns 1 on success.
sub ka_request {
    my ($cref, $tls, $req, $check, %o) = @_;
    for my $try (0, 1) {
        my $fresh = 0;
        unless ($$cref) {
            my $t0 = time;
            $$cref = _connect($tls);
            unless ($$cref) {
                fail(req_t0 => $t0, phase => 'connect', err => $@);
                return 0;
            }
            $fresh = 1;
        }
        my $c = $$cref;
        my $t0 = time;
        my $reused = $c->{nreq} > 0 ? 1 : 0;
        my $sent = $c->send($req, 10);
        my ($res, $partial) = $sent ? $c->read_response(timeout => $o{timeout} // $TIMEOUT) : ();
        $c->{nreq}++;
        if (!$res) {
            my $got_any = $partial || length($c->{buf}) ? 1 : 0;
            my $phase = $sent ? _phase($c, $got_any) : 'nobyte';
            my %f = (req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport},
                reused => $reused, phase => $phase,
                err => ($sent ? ($c->{error} // '?') : "send: $!"));
            $c->close;
            $$cref = undef;
            if ($phase eq 'nobyte' && $reused && $try == 0) {
                $COUNT{retries}++;
                next;
            }
            fail(%f);
            return 0;
        }
        if (my $e = $check->($res)) {
            fail(req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport},
                reused => $reused, phase => 'bad', err => $e);
            $c->close;
            $$cref = undef;
            return 0;
        }
        if (($res->{headers}{connection} // '') =~ /close/i || $o{close}) {
            $c->close;
            $$cref = undef;
        }
        return 1;
    }
    return 0;
}

sub pick_file {
    my $r = rand;
    return '/s1k.txt' if $r < 0.5;
    return '/m64k.bin' if $r < 0.85;
    return '/l1m.bin' if $r < 0.97;
    return '/big8m.bin';
}

sub _get { Ev2HTTP::request_string('GET', $_[0], %{ $_[1] // {} }) }

# ---- the kinds --------------------------------------------------------------

# Keep-alive HTTP/1.1, files of four sizes.
sub k_ka {
    my $c;
    until (done()) {
        my $p = pick_file();
        ka_request(\$c, 0, _get($p), sub { check_file($_[0], $p) }) and ok();
        sleep 0.01;
    }
    $c->close if $c;
}

# A fresh connection per request (Connection: close).
sub k_close {
    until (done()) {
        my $c;
        my $p = pick_file();
        ka_request(\$c, 0, _get($p, { Connection => 'close' }),
            sub { check_file($_[0], $p) }, close => 1) and ok();
        sleep 0.01;
    }
}

# HTTPS keep-alive (mod_ssl, HTTP/1.1).
sub k_https {
    my $c;
    until (done()) {
        my $p = pick_file();
        $p = '/m64k.bin' if $p eq '/big8m.bin';
        ka_request(\$c, 1, _get($p), sub { check_file($_[0], $p) }) and ok();
        sleep 0.01;
    }
    $c->close if $c;
}

# Pipelining: 6 requests written at once, 6 answers read in order.
sub k_pipe {
    my $c;
    until (done()) {
        my @p = map { rand() < 0.7 ? '/s1k.txt' : '/m64k.bin' } 1 .. 6;
        for my $try (0, 1) {
            unless ($c) {
                my $t0 = time;
                $c = _connect(0) or do {
                    fail(req_t0 => $t0, phase => 'connect', err => $@); last };
            }
            my $t0 = time;
            my $reused = $c->{nreq} > 0 ? 1 : 0;
            my $sent = $c->send(join('', map { _get($_) } @p), 10);
            my ($n, $err, $phase) = (0);
            my $want = @p;
            for my $p (@p) {
                last unless $sent;
                my ($res, $partial) = $c->read_response(timeout => $TIMEOUT);
                if (!$res) {
                    $phase = _phase($c, $partial || length $c->{buf});
                    $err = $c->{error} // '?';
                    last;
                }
                if (my $e = check_file($res, $p)) {
                    ($phase, $err) = ('bad', "response " . ($n + 1) . " of $want: $e");
                    last;
                }
                $n++;
            }
            $c->{nreq} += $want;
            ok($n);
            last if $n == $want && !$phase && $sent;
            $phase //= 'nobyte';
            $err //= "send: $!";
            my %f = (req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport},
                reused => $reused, phase => $phase, err => "$err (after $n of $want)");
            $c->close;
            $c = undef;
            # RFC 9112 9.3.2: a client retries the pipelined requests that
            # were not answered when the connection closes between answers.
            if ($phase eq 'nobyte' && ($n > 0 || $reused) && $try == 0) {
                $COUNT{retries}++;
                @p = @p[$n .. $#p];
                next;
            }
            fail(%f);
            last;
        }
        if ($c && $c->{nreq} >= 90) { $c->close; $c = undef }
        sleep 0.02;
    }
    $c->close if $c;
}

# 8 MiB over sendfile (EnableSendfile On), keep-alive.
sub k_big_sendfile {
    my $c;
    until (done()) {
        ka_request(\$c, 0, _get('/big8m.bin'), sub { check_file($_[0], '/big8m.bin') })
            and ok();
        sleep 0.1;
    }
    $c->close if $c;
}

# 8 MiB from a <Location> with EnableSendfile Off (mmap / read path).
sub k_big_mmap {
    my $c;
    until (done()) {
        ka_request(\$c, 0, _get('/nosf/big8m.bin'),
            sub { check_file($_[0], '/big8m.bin') }) and ok();
        sleep 0.1;
    }
    $c->close if $c;
}

# Single byte ranges of the large files, over both paths.
sub k_range {
    my $c;
    until (done()) {
        my $f = rand() < 0.5 ? '/big8m.bin' : '/l1m.bin';
        my $len = $CTX->{files}{$f}{len};
        my ($a, $b, $hdr);
        if (rand() < 0.2) {
            my $n = 1 + int rand 5000;
            ($a, $b, $hdr) = ($len - $n, $len - 1, "bytes=-$n");
        }
        else {
            $a = int rand($len - 1);
            $b = $a + int rand(300_000);
            $b = $len - 1 if $b >= $len;
            $hdr = "bytes=$a-$b";
        }
        my $path = (rand() < 0.5 ? '/nosf' : '') . $f;
        ka_request(\$c, 0, _get($path, { Range => $hdr }),
            sub { check_file($_[0], $f, [$a, $b]) }) and ok();
        sleep 0.02;
    }
    $c->close if $c;
}

# CGI through mod_cgid: the body depends on the query string.
sub k_cgi {
    my $c;
    until (done()) {
        my $n = 1 + int rand 3000;
        my $want = "qs=n=$n\n" . join('', map { "$_\n" } 1 .. $n);
        ka_request(\$c, 0, _get("/cgi/seq.sh?n=$n"), sub {
            my $r = shift;
            return "status $r->{status}" if $r->{status} != 200;
            return 'body length ' . length($r->{body}) . ', want ' . length($want)
                if length($r->{body}) != length($want);
            return 'body differs' if $r->{body} ne $want;
            return undef;
        }) and ok();
        sleep 0.05;
    }
    $c->close if $c;
}

# WebSocket sessions through mod_proxy_wstunnel: handshake, 20 checked
# echoes of random sizes, close handshake.
sub k_ws {
    until (done()) {
        my $t0 = time;
        my $c = _connect(0) or do { fail(req_t0 => $t0, phase => 'connect', err => $@); next };
        my %f = (req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport}, reused => 0);
        my $key = join '', map { chr(65 + int rand 26) } 1 .. 22;
        $key .= '==';
        my $req = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            . "Connection: Upgrade\r\nSec-WebSocket-Key: $key\r\n"
            . "Sec-WebSocket-Version: 13\r\n\r\n";
        my $res = $c->send($req, 10) ? $c->read_response(timeout => $TIMEOUT) : undef;
        if (!$res) {
            fail(%f, phase => _phase($c, length $c->{buf}), err => 'handshake: ' . ($c->{error} // "send: $!"));
            $c->close;
            next;
        }
        if ($res->{status} != 101
            || ($res->{headers}{'sec-websocket-accept'} // '') ne Ev2WS::accept_key($key)) {
            fail(%f, phase => 'bad', err => "handshake status $res->{status}");
            $c->close;
            next;
        }
        my $ws = bless { c => $c, timeout => $TIMEOUT }, 'Ev2WS::Client';
        my $bad;
        for my $i (1 .. 20) {
            my $msg = join '', map { chr(32 + int rand 90) } 1 .. (1 + int rand 3000);
            $ws->send_text($msg) or do { $bad = ['nobyte', 'send failed']; last };
            my ($op, $p) = $ws->recv_frame($TIMEOUT);
            if (!defined $op) { $bad = [$ws->{error} eq 'timeout' ? 'timeout' : 'partial', "echo $i: $ws->{error}"]; last }
            if ($op != 1 || $p ne $msg) { $bad = ['bad', "echo $i: op $op, " . length($p) . ' bytes']; last }
        }
        if ($bad) {
            fail(%f, phase => $bad->[0], err => $bad->[1]);
            $c->close;
            next;
        }
        $ws->close;
        ok();
        sleep 0.1;
    }
}

# Clients that reset mid-response: read 64 KiB of a large file, then close
# with SO_LINGER 0 (RST).  The status line must have been 200.
sub k_reset {
    until (done()) {
        my $t0 = time;
        my $c = _connect(0) or do { fail(req_t0 => $t0, phase => 'connect', err => $@); next };
        my $path = rand() < 0.5 ? '/big8m.bin' : '/nosf/big8m.bin';
        my $want = 16384 + int rand 200_000;
        my $ok = $c->send(_get($path), 10);
        my $deadline = time + $TIMEOUT;
        while ($ok && length($c->{buf}) < $want) {
            my $n = $c->_fill($deadline);
            last unless $n;
        }
        if (length($c->{buf}) >= $want && $c->{buf} =~ m{^HTTP/1\.1 200 }) {
            ok();
        }
        else {
            fail(req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport}, reused => 0,
                phase => ($c->{buf} =~ m{^HTTP/1\.1 \d\d\d } && $c->{buf} !~ m{^HTTP/1\.1 200 })
                    ? 'bad' : _phase($c, length $c->{buf}),
                err => 'got ' . length($c->{buf}) . ' bytes: ' . ($c->{error} // ''));
        }
        setsockopt($c->{sock}, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
        $c->close;
        sleep 0.05;
    }
}

# Slow readers: a small receive buffer and 32 KiB every 50 ms (about
# 640 KB/s), whole body checked.
sub k_slowread {
    until (done()) {
        my $t0 = time;
        my $sock = IO::Socket::INET->new(Proto => 'tcp', Timeout => 10);
        my $c;
        if ($sock) {
            setsockopt($sock, SOL_SOCKET, SO_RCVBUF, pack('i', 16384));
            if ($sock->connect(Socket::pack_sockaddr_in($CTX->{port}, Socket::inet_aton('127.0.0.1')))) {
                $c = bless { sock => $sock, buf => '', eof => 0, conn_t0 => time,
                    lport => $sock->sockport, nreq => 0 }, 'Ev2HTTP';
            }
        }
        $c or do { fail(req_t0 => $t0, phase => 'connect', err => "connect: $!"); next };
        my %f = (req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport}, reused => 0);
        unless ($c->send(_get('/big8m.bin', { Connection => 'close' }), 10)) {
            fail(%f, phase => 'nobyte', err => "send: $!");
            $c->close;
            next;
        }
        my $deadline = time + 120;
        my $sel = IO::Select->new($sock);
        my ($eof, $err) = (0);
        my $abandoned;
        while (time < $deadline) {
            if ($STOP) { $abandoned = 1; last }
            last unless $sel->can_read(20);
            my $n = sysread($sock, my $chunk, 32768);
            if (!defined $n) {
                next if $! == EINTR || $! == EAGAIN;
                $err = "read: $!";
                last;
            }
            if ($n == 0) { $eof = 1; last }
            $c->{buf} .= $chunk;
            sleep 0.05;
        }
        my $hend = index($c->{buf}, "\r\n\r\n");
        my $head = $hend >= 0 ? substr($c->{buf}, 0, $hend + 4) : '';
        my $body = $hend >= 0 ? substr($c->{buf}, $hend + 4) : '';
        my ($st) = $head =~ m{^HTTP/1\.1 (\d{3})};
        my $f = $CTX->{files}{'/big8m.bin'};
        if ($abandoned) {
            $COUNT{abandoned}++;
        }
        elsif (defined $st && $st == 200 && length($body) == $f->{len} && md5_hex($body) eq $f->{md5}) {
            ok();
        }
        elsif (defined $st && $st == 200 && length($body) > $f->{len}) {
            fail(%f, phase => 'bad', err => 'body longer than the file');
        }
        elsif (defined $st && $st != 200) {
            fail(%f, phase => 'bad', err => "status $st");
        }
        elsif (defined $st && length($body) == $f->{len}) {
            fail(%f, phase => 'bad', err => 'body checksum');
        }
        else {
            fail(%f, phase => ($eof || $err) ? (length $c->{buf} ? 'partial' : 'nobyte') : 'timeout',
                err => ($err // ($eof ? 'eof' : 'timeout')) . ' after ' . length($body) . ' body bytes');
        }
        $c->close;
    }
}

# Half-open clients: up to 4 connections that send nothing or half a
# request header.  The server must close each within 90 s: a silent
# connection lasts about 42 s with either MPM when idle (about 31.6 s in
# the kernel before it is accepted, TCP_DEFER_ACCEPT, then mod_reqtimeout's
# header limit of 10 s), half a header about 10 s (408); 90 s leaves room
# for a child that is stopping meanwhile.  A silent connection still in
# the kernel when graceful-stop closes the listeners is dropped without a
# reset and never closed (soak.pl's gstop_deferred).  The client closes
# them itself at the deadline.
sub k_halfopen {
    my @held;
    my $limit = 90;
    until (done()) {
        while (@held < 4) {
            my $t0 = time;
            my $c = _connect(0) or do { fail(req_t0 => $t0, phase => 'connect', err => $@); last };
            if (rand() < 0.5) {
                $c->send("GET /s1k.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ", 5);
                $c->{half} = 1;
            }
            push @held, $c;
        }
        my @keep;
        for my $c (@held) {
            if (!$c->is_open(0)) {
                my $b = $c->{buf};
                if ($b ne '' && $b !~ m{^HTTP/1\.1 (400|408) }) {
                    fail(req_t0 => $c->{conn_t0}, conn_t0 => $c->{conn_t0}, lport => $c->{lport},
                        phase => 'bad', err => 'answer to a half request: ' . substr($b, 0, 40));
                }
                else {
                    ok();
                }
                $c->close;
            }
            elsif (time - $c->{conn_t0} > $limit) {
                fail(req_t0 => $c->{conn_t0}, conn_t0 => $c->{conn_t0}, lport => $c->{lport},
                    phase => 'not_closed', err => ($c->{half} ? 'half header' : 'nothing sent')
                        . ": server kept the connection ${limit}s");
                $c->close;
            }
            else {
                push @keep, $c;
            }
        }
        @held = @keep;
        sleep 0.5;
    }
    $_->close for @held;
}

# Junk clients: random bytes (sometimes after a valid request line); the
# server answers 4xx/501 or nothing and closes within 90 s.
sub k_junk {
    until (done()) {
        my $t0 = time;
        my $c = _connect(0) or do { fail(req_t0 => $t0, phase => 'connect', err => $@); next };
        my $junk = join '', map { chr int rand 256 } 1 .. (1 + int rand 3000);
        $junk = "GET / HTTP/1.1\r\n$junk" if rand() < 0.3;
        $c->send($junk, 10);
        my $w = $c->wait_eof(90);
        my $b = $c->{buf};
        if (!defined $w) {
            fail(req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport},
                phase => 'not_closed', err => 'junk connection not closed in 90 s');
        }
        elsif ($b ne '' && $b !~ m{^HTTP/1\.[01] (4\d\d|501) }) {
            fail(req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport},
                phase => 'bad', err => 'answer to junk: ' . substr($b, 0, 40));
        }
        else {
            ok();
        }
        $c->close;
        sleep 0.1;
    }
}

# Slow writers: a request trickled in small writes, so that the server sees
# it arrive over seconds (ours parks such a connection in the listener
# until it is whole, see docs/DESIGN.md "Waiting for a request header" and
# "Reading ahead through the filters"; stock gives it a worker that
# blocks).  A fresh connection per request, in turn: a GET header of about
# 300 bytes, 20-40 bytes every 0.3-0.5 s (about 4 s, within
# RequestReadTimeout header=10-20,MinRate=500), and a POST of 8192 bytes
# to a CGI that echoes its body, the header at once and the body 1 KiB
# every 0.2-0.3 s (about 2 s, within body=20,MinRate=500); each over plain
# HTTP and over TLS (the handshake at full speed, the request in one TLS
# record per write).  Checked: status 200 and the whole body (the file's
# MD5; for the POST, "len=8192\n" then the very bytes sent).
# Whether the server has closed the connection (or, in clear text, begun
# to answer) while the request is still being written: a peek at the
# socket, which never waits and never reads.  Over TLS pending bytes may
# be a session ticket (TLS 1.3 sends them after the handshake), which
# IO::Socket::SSL's read would consume and then wait for application
# data, so only the end of the stream counts there.
sub _early {
    my ($c, $tls) = @_;
    my $r = CORE::recv($c->{sock}, my $b, 1, Socket::MSG_PEEK() | Socket::MSG_DONTWAIT());
    if (!defined $r) {
        return undef if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        return "peek: $!";
    }
    return 'closed by the server' if $b eq '';
    return $tls ? undef : 'answered before the request was whole';
}

sub k_slowwrite {
    my $round = 0;
    until (done()) {
        my $v = $round++ % 4;
        my $tls = $v >= 2 ? 1 : 0;
        my $post = $v % 2;
        my $what = ($tls ? 'tls ' : '') . ($post ? 'body' : 'header');
        my ($req, @chunks, $check);
        if ($post) {
            my $body = join '', map { chr(32 + int rand 95) } 1 .. 8192;
            my $want = "len=8192\n$body";
            $req = "POST /cgi/echo.sh?slow=$round HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                . "Content-Type: application/octet-stream\r\nContent-Length: 8192\r\n\r\n";
            @chunks = ([$req, 0]);
            for (my $o = 0; $o < 8192; $o += 1024) {
                push @chunks, [substr($body, $o, 1024), 0.2 + rand 0.1];
            }
            $check = sub {
                my $r = shift;
                return "status $r->{status}" if $r->{status} != 200;
                return 'body length ' . length($r->{body}) . ', want ' . length($want)
                    if length($r->{body}) != length($want);
                return 'body differs from what was sent' if $r->{body} ne $want;
                return undef;
            };
        }
        else {
            my $p = rand() < 0.5 ? '/s1k.txt' : '/m64k.bin';
            $req = "GET $p?slow=$round HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                . "User-Agent: soak-slowwrite\r\nAccept: */*\r\n";
            my $i = 0;
            $req .= sprintf("X-Slow-%d: %s\r\n", $i++, 'x' x (20 + int rand 40))
                while length($req) < 280;
            $req .= "\r\n";
            for (my $o = 0; $o < length $req;) {
                my $n = 20 + int rand 21;
                push @chunks, [substr($req, $o, $n), $o ? 0.3 + rand 0.2 : 0];
                $o += $n;
            }
            $check = sub { check_file($_[0], $p) };
        }
        my $t0 = time;
        my $c = _connect($tls) or do { fail(req_t0 => $t0, phase => 'connect', err => "$what: $@"); next };
        my %f = (req_t0 => $t0, conn_t0 => $c->{conn_t0}, lport => $c->{lport}, reused => 0,
            ($post ? (cgi => 1) : ()));
        my ($sent, $total, $serr) = (0, 0, undef);
        $total += length $_->[0] for @chunks;
        $f{req_t0} = time;
        for my $ch (@chunks) {
            if ($ch->[1]) {
                sleep $ch->[1];
                # the server closed or answered before the request was whole
                if (my $why = _early($c, $tls)) { $serr = $why; last }
            }
            if (!$c->send($ch->[0], 10)) { $serr = "send: $!"; last }
            $sent += length $ch->[0];
            last if $STOP;
        }
        if ($STOP && $sent < $total) { $COUNT{abandoned}++; $c->close; last }
        my ($res, $partial) = $c->read_response(timeout => $TIMEOUT);
        if (!$res) {
            my $got_any = $partial || length($c->{buf}) ? 1 : 0;
            fail(%f, phase => _phase($c, $got_any),
                err => sprintf('%s: %s after %d of %d bytes sent%s', $what, $c->{error} // 'eof',
                    $sent, $total, $serr ? " ($serr)" : ''));
        }
        elsif (my $e = $check->($res)) {
            fail(%f, phase => 'bad', err => "$what: $e"
                . ($sent < $total ? " (answered after $sent of $total bytes)" : ''));
        }
        else {
            $COUNT{$what}++;
            ok();
        }
        $c->close;
        sleep 0.05;
    }
}

# HTTP/2 checked by curl: h2c (prior knowledge) and h2 over TLS (ALPN),
# every body checksummed.  curl runs with -v --trace-time (info lines,
# headers, times; not the data), into a file per run: kept in
# $CTX->{traces} when a transfer of the run failed other than by a refused
# connection (at most $KEEP_TRACES, named in the failure record), deleted
# otherwise.
our $KEEP_TRACES = 100;
sub k_h2curl {
    my $dir = $CTX->{tmp};
    my $round = 0;
    my $kept = 0;
    until (done()) {
        my $tls = $round++ % 2;
        my $base = $tls ? "https://127.0.0.1:$CTX->{tls_port}" : "http://127.0.0.1:$CTX->{port}";
        # curl 7.88.1 fails the second request of an h2c prior-knowledge
        # connection ("Error in the HTTP2 framing layer", with either MPM):
        # h2c runs one request per curl, TLS eight on one connection.
        my @p = map { my $p = pick_file(); $p eq '/big8m.bin' ? '/l1m.bin' : $p } 1 .. ($tls ? 8 : 1);
        my $retried = 0;
        my $kind = $tls ? 'h2' : 'h2c';
        my $trace = "$dir/h2c.err";
      RUN: {
        my @args = ('timeout', '-k', '5', '60', 'curl', '-sS', '--max-time', '50',
            ($tls ? ('-k', '--http2') : ('--http2-prior-knowledge')),
            '-v', '--trace-time',
            '-w', '%{http_code} %{size_download} %{http_version} %{local_port} %{exitcode} %{errormsg}\n');
        unlink glob("$dir/h2c.*");
        for my $i (0 .. $#p) { push @args, '-o', "$dir/h2c.$i", "$base$p[$i]" }
        my $t0 = time;
        my $pid = open(my $fh, '-|');
        if (!defined $pid) { sleep 1; last RUN }
        if (!$pid) {
            open STDERR, '>', "$dir/h2c.err";
            open STDIN, '<', '/dev/null';
            exec @args or POSIX::_exit(127);
        }
        my @lines = <$fh>;
        close $fh;
        my $rc = $? >> 8;
        # From the trace, per transfer (curl runs them one after another,
        # each from its "Using Stream ID" line to the next): its stream,
        # whether a response head came, and the last-stream id of a GOAWAY
        # received meanwhile.  Every transfer before the first failed one
        # got a stream, so the n-th stream line is the n-th transfer's.
        my (@sid, @head, @goaway);
        if (open my $tf, '<', $trace) {
            while (my $l = <$tf>) {
                if ($l =~ /Using Stream ID: (\d+)/) { push @sid, $1 }
                elsif (!@sid) { next }
                elsif ($l =~ /^\S+ < HTTP\/2 \d/) { $head[$#sid] = 1 }
                elsif ($l =~ /GOAWAY, error=-?\d+, last_stream=(\d+)/) {
                    $goaway[$#sid] = $1 if !defined $goaway[$#sid] || $1 < $goaway[$#sid];
                }
            }
            close $tf;
        }
        my $keep = sub {
            return 'trace not kept (connect failed)' if $_[0];
            return 'trace not kept (limit)' if $kept >= $KEEP_TRACES || !$CTX->{traces};
            my $to = sprintf('%s/h2curl-%.3f-%s.txt', $CTX->{traces}, $t0, $kind);
            return "trace not kept: $!" unless rename $trace, $to;
            $kept++;
            return $to;
        };
        my $failed = 0;
        for my $i (0 .. $#p) {
            my ($code, $size, $ver, $lport, $xrc, $emsg) = split ' ', ($lines[$i] // '0 0 0 0 0'), 6;
            chomp $emsg if defined $emsg;
            my $body = '';
            if (open my $bf, '<', "$dir/h2c.$i") { local $/; binmode $bf; $body = <$bf> // ''; close $bf }
            my $f = $CTX->{files}{$p[$i]};
            my $e;
            # A transfer that ended with an error is a transport failure,
            # even with a status (a response cut after its head).
            if ($code eq '000' || !defined $lines[$i] || ($xrc // 0) != 0) {
                my $got_any = $head[$i] ? 1 : 0;
                # RFC 9113 6.8: a stream above the last stream id of a
                # GOAWAY was not processed and may be sent again on a new
                # connection.  curl 7.88.1 fails the transfer instead
                # ("Error in the HTTP2 framing layer"), so the harness
                # retries it, once, as it retries a keep-alive request
                # whose reused connection was closed before the answer.
                if (!$retried && !$got_any && defined $goaway[$i]
                        && $sid[$i] > $goaway[$i]) {
                    $COUNT{h2_retries}++;
                    $retried = 1;
                    @p = @p[$i .. $#p];
                    unlink $trace;
                    redo RUN;
                }
                my ($errtxt, %seen) = ('');
                if (open my $ef, '<', $trace) {
                    $errtxt = join ' ', grep { !$seen{$_}++ } map { s/\s+$//r } grep { /^curl: \(\d+\)/ } <$ef>;
                    close $ef;
                }
                my $x = ($xrc // 0) || $rc;
                my $phase = $x == 7 ? 'connect' : $x == 28 ? 'timeout' : $got_any ? 'partial' : 'nobyte';
                fail(req_t0 => $t0, lport => $lport + 0, conn_t0 => $t0, reused => $i ? 1 : 0,
                    phase => $phase, trace => $failed ? 'see the previous failure' : $keep->($x == 7),
                    err => "$kind transfer " . ($i + 1) . ' of ' . scalar(@p)
                        . ": curl exit $rc, transfer exit " . ($xrc // '?')
                        . ': ' . ($emsg // '') . ($errtxt ne '' ? " [$errtxt]" : ''));
                $failed = 1;
                last;
            }
            $e = "status $code" if $code != 200;
            $e //= "http version $ver" if $ver ne '2';
            $e //= "body length " . length($body) if length($body) != $f->{len};
            $e //= 'body checksum' if md5_hex($body) ne $f->{md5};
            if ($e) {
                fail(req_t0 => $t0, lport => $lport + 0, conn_t0 => $t0, reused => $i ? 1 : 0,
                    phase => 'bad', err => "$kind $p[$i]: $e",
                    trace => $failed ? 'see the previous failure' : $keep->());
                $failed = 1;
            }
            else {
                $COUNT{$kind}++;
                ok();
            }
        }
      }
        unlink $trace;
        sleep 0.2;
    }
}

1;
