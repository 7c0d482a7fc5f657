# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Ev2Arrivals: many clients arriving at a steady rate, each sending one
# request and keeping its connection, all driven from one process with
# poll(2) (no FD_SETSIZE limit), plus an optional "normal" client that
# makes one fresh request every so often meanwhile.  Every wait is
# bounded.
#
#   my $res = Ev2Arrivals::run(port => $p, clients => 1000, rate => 500,
#                              normal_every => 0.05, timeout => 10,
#                              path => '/index.html');
#   $res->{answered}      clients whose response was a complete 200
#   $res->{latency}       [seconds from connect() to the whole response]
#   $res->{normal}        [latencies of the normal client's requests]
#   $res->{normal_failed} normal requests without a complete 200
#   $res->{socks}         the client sockets, still open (close them)
#   Ev2Arrivals::p99(\@latencies)
package Ev2Arrivals;

use strict;
use warnings;

use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use IO::Select ();
use POSIX ();
use IO::Socket::INET ();
use Socket qw(SOL_SOCKET SO_ERROR);
use Errno qw(EINPROGRESS EAGAIN EWOULDBLOCK);
use Time::HiRes qw(time sleep);

sub p99 {
    my $l = shift;
    return undef unless @$l;
    my @s = sort { $a <=> $b } @$l;
    my $i = int(0.99 * @s + 0.999999) - 1;
    $i = 0 if $i < 0;
    return $s[$i];
}

sub _connect {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Blocking => 0);
    return $s;
}

# A complete response in $buf: status and whether the body is all there.
sub _complete {
    my ($buf) = @_;
    my $end = index($buf, "\r\n\r\n");
    return undef if $end < 0;
    my $head = substr($buf, 0, $end);
    my ($status) = $head =~ m{^HTTP/1\.\d (\d{3})};
    my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
    return undef unless defined $len;
    return undef if length($buf) < $end + 4 + $len;
    return $status // 0;
}

# The normal client, in a process of its own so that the arrivals loop
# does not delay it: a fresh connection and one request every $every s
# until $until; returns (pid, read end of a pipe for its results).
sub _normal_client {
    my ($port, $req, $every, $until) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid) {
        close $w;
        return [$pid, $r];
    }
    close $r;
    my ($failed, @lat) = (0);
    my $next = time + $every;
    while (time < $until) {
        sleep($next - time) if $next > time;
        $next += $every;
        my $t = time;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp', Timeout => 5);
        unless ($s) { $failed++; next }
        syswrite($s, $req);
        my $buf = '';
        my $sel = IO::Select->new($s);
        my $st;
        while (time - $t < 5 && $sel->can_read(5 - (time - $t))) {
            my $got = sysread($s, my $chunk, 65536);
            last unless $got;
            $buf .= $chunk;
            last if defined($st = _complete($buf));
        }
        close $s;
        if (defined $st && $st == 200) { push @lat, time - $t } else { $failed++ }
    }
    print $w join(' ', $failed, @lat), "\n";
    close $w;
    POSIX::_exit(0);
}

sub _normal_results {
    my ($normal, $deadline) = @_;
    my ($pid, $r) = @$normal;
    my $line = '';
    my $sel = IO::Select->new($r);
    $line = <$r> // '' if $sel->can_read($deadline - time > 0 ? $deadline - time : 0);
    close $r;
    kill 'KILL', $pid unless waitpid($pid, POSIX::WNOHANG()) == $pid;
    waitpid($pid, 0);
    my ($failed, @lat) = split ' ', $line;
    return (defined $failed ? $failed : 1, @lat);
}

sub run {
    my %a = @_;
    my $port = $a{port};
    my $n = $a{clients};
    my $gap = 1 / $a{rate};
    my $timeout = $a{timeout} // 10;
    my $path = $a{path} // '/index.html';
    my $normal_every = $a{normal_every};
    my $req = "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    my $nreq = "GET $path?normal HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             . "Connection: close\r\n\r\n";
    my $poll = IO::Poll->new;
    my (%c, @lat, @normal);
    my ($started, $answered, $normal_failed) = (0, 0, 0);

    my $t0 = time;
    my $arrivals_end = $t0 + $n * $gap;
    my $hard_end = $arrivals_end + $timeout;
    my $normal = $normal_every
        ? _normal_client($port, $nreq, $normal_every, $arrivals_end + 0.5)
        : undef;

    my $start = sub {
        my $s = _connect($port) or return;
        $c{fileno $s} = { s => $s, req => $req, sent => 0, buf => '',
                          t => time };
        $poll->mask($s => POLLOUT);
    };
    while (time < $hard_end) {
        my $now = time;
        while ($started < $n && $t0 + $started * $gap <= $now) {
            $start->();
            $started++;
        }
        last if $started >= $n && $now >= $arrivals_end
            && !grep { !$_->{done} } values %c;
        $poll->poll(0.002);
        for my $h ($poll->handles(POLLIN | POLLOUT | POLLERR | POLLHUP)) {
            my $fd = fileno $h;
            my $e = $c{$fd};
            next if !$e || $e->{done};
            if (!$e->{sent}) {
                my $err = getsockopt($e->{s}, SOL_SOCKET, SO_ERROR);
                if ($err && unpack('i', $err)) {
                    $e->{done} = 1;
                    $poll->remove($e->{s});
                    next;
                }
                my $w = syswrite($e->{s}, $e->{req});
                next unless defined $w && $w == length $e->{req};
                $e->{sent} = 1;
                $poll->mask($e->{s} => POLLIN);
                next;
            }
            my $got = sysread($e->{s}, my $chunk, 65536);
            next if !defined $got && ($! == EAGAIN || $! == EWOULDBLOCK);
            $e->{buf} .= $chunk if $got;
            my $st = _complete($e->{buf});
            if (defined $st || !$got) {
                $e->{done} = 1;
                $poll->remove($e->{s});
                if (defined $st && $st == 200) {
                    $answered++;
                    push @lat, time - $e->{t};
                }
            }
        }
    }
    if ($normal) {
        ($normal_failed, @normal) = _normal_results($normal, $hard_end + 10);
    }
    return { answered => $answered, latency => \@lat, normal => \@normal,
             normal_failed => $normal_failed,
             socks => [map { $_->{s} } values %c], started => $started };
}

1;
