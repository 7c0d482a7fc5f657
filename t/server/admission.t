# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# admission.t: admission by worker demand.  A child accepts while a worker
# can start on a new connection soon and it holds fewer connections than
# its cap, (AsyncRequestWorkerFactor + 1) x ThreadsPerChild: with 4
# threads that is 12 connections at factor 2, 16 at factor 3 and 10 at
# factor 1.5 (stock's documented maximum).  At the cap, a client that
# waits gets room: the oldest idle keep-alive connection is closed, and
# only as many as the waiting clients need.  Below the cap, busy workers
# close nothing: the waiting client is served when a worker frees up.
# mod_status says why a child does not accept.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $CONF = <<'EOF2';
KeepAliveTimeout 30
MaxKeepAliveRequests 0
Timeout 30
EOF2

my $SLOW_CONF = $CONF . <<'EOF2';
<Location /slow>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit 64
</Location>
EOF2

# One idle keep-alive connection: one GET, 200 read, kept open.
sub open_idle {
    my ($s, $tag) = @_;
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 5) or return undef;
    $c->send(Ev2HTTP::request_string('GET', "/index.html?$tag"));
    my $r = $c->read_response(timeout => 5);
    return undef unless $r && $r->{status} == 200
        && ($r->{headers}{connection} // '') !~ /close/i;
    return $c;
}

# Indexes of the connections in @$conns that the server closed, looking
# for up to $wait seconds.
sub closed_ones {
    my ($conns, $wait) = @_;
    my %closed;
    my $until = time + $wait;
    do {
        for my $i (0 .. $#$conns) {
            $closed{$i} = 1 if !$closed{$i} && !$conns->[$i]->is_open(0);
        }
        sleep 0.05;
    } while (time < $until);
    return sort { $a <=> $b } keys %closed;
}

# ---- at the cap, room for exactly the waiting client -------------------

for my $case ([2, 12], [3, 16], [1.5, 10]) {
    my ($factor, $cap) = @$case;
    my $s = Ev2Server->new(
        mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => $factor),
        conf => $CONF);
    $s->start;
    my @idle;
    for my $i (1 .. $cap) {
        my $c = open_idle($s, "i=$i") or last;
        push @idle, $c;
        sleep 0.02;
    }
    is(scalar @idle, $cap, "factor $factor: $cap idle keep-alive connections admitted (cap 4 + $factor x 4)");
    sleep 0.3;    # all idle longer than the 100 ms that makes them closable
    my @closed = closed_ones(\@idle, 0.2);
    is("@closed", '', "factor $factor: all $cap still open at the cap");

    my $t0 = time;
    my $new = Ev2HTTP->connect(port => $s->port, timeout => 5);
    $new->send(Ev2HTTP::request_string('GET', '/index.html?new=1')) if $new;
    my $r = $new ? $new->read_response(timeout => 5) : undef;
    ok($r && $r->{status} == 200, "factor $factor: a client arriving at the cap is served")
        or diag 'error: ' . ($new ? $new->{error} // 'none' : $@);
    note sprintf('served after %.3f s', time - $t0);
    @closed = closed_ones(\@idle, 1);
    is("@closed", '0', "factor $factor: exactly one idle connection, the oldest, made room");
    $_->close for @idle;
    $new->close if $new;
    ok($s->stop, "factor $factor: server stopped cleanly");
}

# ---- every worker busy below the cap: nothing closed, the client waits ---

# Factor 10: the cap is 44, far above the 6 idle connections and 4 slow
# downloads here.
my $K = 6;
my $size = 2 * 1024 * 1024;    # 32 s at 64 KiB/s: busy for the whole test

sub start_downloads {
    my ($s, $n, $dl) = @_;
    for my $i (1 .. $n) {
        my $d = Ev2HTTP->connect(port => $s->port) or next;
        $d->send(Ev2HTTP::request_string('GET', "/slow/big.bin?d=$i"));
        push @$dl, $d;
        my $started = $s->wait_for(sub { pump($dl); $d->{buf} =~ m{^HTTP/1\.1 200 } }, 10, 0.05);
        ok($started, "slow download $i started (a worker is busy with it)")
            or diag 'got: ' . substr($d->{buf}, 0, 40) . ' ' . ($d->{error} // '');
    }
}

sub pump {
    my $dl = shift;
    for my $d (@$dl) {
        $d->_fill(time + 1) while !$d->{eof} && IO::Select->new($d->socket)->can_read(0);
    }
}

# End one slow download (its worker frees up) and read the response of the
# waiting client $new meanwhile, for up to 10 s.
sub free_a_worker {
    my ($dl, $new) = @_;
    my $r;
    my $t = time + 10;
    (shift @$dl)->close;
    while (!$r && $new && time < $t) {
        pump($dl);
        $r = $new->read_response(timeout => 0.2);
    }
    return $r;
}

sub pump_for {
    my ($dl, $secs) = @_;
    my $t = time + $secs;
    while (time < $t) { pump($dl); sleep 0.05 }
}

{
    my $s = Ev2Server->new(
        mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => 10),
        conf => $SLOW_CONF, modules => [qw(ratelimit env)],
        files => { 'slow/big.bin' => 'z' x $size });
    $s->start;
    my @idle = grep { defined } map { open_idle($s, "idle=$_") } 1 .. $K;
    is(scalar @idle, $K, "$K idle keep-alive connections open");
    my @dl;
    start_downloads($s, 4, \@dl);
    pump_for(\@dl, 0.5);

    my $new = Ev2HTTP->connect(port => $s->port, timeout => 5);
    ok($new, 'a new client connects while every worker is busy');
    $new->send(Ev2HTTP::request_string('GET', '/index.html?new=2')) if $new;
    pump_for(\@dl, 1.5);
    my @closed = closed_ones(\@idle, 0.1);
    is("@closed", '', 'below the cap, busy workers close no idle connection');

    # A worker frees up: the waiting client is served.
    my $r = free_a_worker(\@dl, $new);
    ok($r && $r->{status} == 200, 'the waiting client is served once a worker is free');
    is(scalar(grep { !$_->{eof} } @dl), 3, 'the other slow downloads are untouched');
    $_->close for @idle, @dl;
    $new->close if $new;
    ok($s->stop, 'server stopped cleanly');
}

# ---- at the cap with every worker busy: room for the waiting client ------

# Factor 0.5: the cap is 4 + 2 = 6, reached by 2 idle connections and the
# 4 slow downloads.
{
    my $s = Ev2Server->new(
        mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => 0.5),
        conf => $SLOW_CONF, modules => [qw(ratelimit env)],
        files => { 'slow/big.bin' => 'z' x $size });
    $s->start;
    my @idle = grep { defined } map { open_idle($s, "idle=$_") } 1 .. 2;
    is(scalar @idle, 2, '2 idle keep-alive connections open');
    my @dl;
    start_downloads($s, 4, \@dl);
    pump_for(\@dl, 0.5);

    my $new = Ev2HTTP->connect(port => $s->port, timeout => 5);
    $new->send(Ev2HTTP::request_string('GET', '/index.html?new=3')) if $new;
    pump_for(\@dl, 1.5);
    my @closed = closed_ones(\@idle, 0.1);
    is("@closed", '0', 'at the cap, the oldest idle connection (only) made room');
    my $r = free_a_worker(\@dl, $new);
    ok($r && $r->{status} == 200, 'the waiting client is served');
    is(scalar(grep { !$_->{eof} } @dl), 3, 'the slow downloads are untouched');
    $_->close for @idle, @dl;
    $new->close if $new;
    ok($s->stop, 'server stopped cleanly');
}

# ---- mod_status says which child is at its cap ---------------------------

# Two children of 2 workers at factor 1: a cap of 4 each.  Idle connections
# fill one child to its cap; the status request then goes to the other,
# which reports the first as not accepting, at its cap.
SKIP: {
    skip 'event2 status section', 3 if Ev2Server::is_stock();
    my $s = Ev2Server->new(
        mpm => Ev2Server::one_child(2, StartServers => 2, ServerLimit => 2,
                                    MaxRequestWorkers => 4,
                                    MaxSpareThreads => 4,
                                    AsyncRequestWorkerFactor => 1),
        conf => $CONF);
    $s->start;
    ok($s->wait_for(sub { my $st = $s->status_auto; $st && ($st->{Processes} // 0) == 2 }, 15),
        'two children running');
    my (@idle, $st);
    for my $i (1 .. 7) {
        my $c = open_idle($s, "fill=$i") or last;
        push @idle, $c;
        sleep 0.05;
        $st = $s->status_auto;
        last if $st && ($st->{Event2NotAcceptingAtCap} // 0) >= 1;
    }
    ok($st && ($st->{Event2NotAcceptingAtCap} // 0) >= 1,
        'mod_status: a child not accepting because it is at its cap')
        or diag explain $st;
    ok($st && grep({ /cap 4 accepting at its cap/ } map { $st->{$_} } grep { /^Event2Slot/ } keys %$st),
        'mod_status: its slot line says "at its cap" with the cap of 4')
        or diag explain $st;
    $_->close for @idle;
    $s->stop;
}

done_testing();
