# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# admission.t: the admission rule.  A child takes new connections while it
# has fewer than ThreadsPerChild + AsyncRequestWorkerFactor x idle workers.
# With 4 threads, all idle, that admits 12 idle keep-alive connections at
# factor 2, 16 at factor 3 and 10 at factor 1.5.  A connection over the
# limit waits (in the listen backlog) and is served once capacity frees.
# And when every worker is busy and new clients wait, idle keep-alive
# connections are closed early to make room.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $MPM = Ev2Server::one_child(4);

my $CONF = <<'EOF2';
KeepAliveTimeout 30
MaxKeepAliveRequests 0
Timeout 30
EOF2

# Open idle keep-alive connections one by one (one GET each, 200 read)
# until one gets no response within 1 s ("not admitted") or $max are open.
# Returns (admitted connections, the waiting connection or undef).
sub open_until_refused {
    my ($s, $max) = @_;
    my @ok;
    for my $i (1 .. $max) {
        my $c = Ev2HTTP->connect(port => $s->port, timeout => 5);
        unless ($c) { diag "connect $i: $@"; return (\@ok, undef) }
        $c->send(Ev2HTTP::request_string('GET', "/index.html?i=$i"));
        my $r = $c->read_response(timeout => 1);
        return (\@ok, $c) unless $r;
        unless ($r->{status} == 200 && ($r->{headers}{connection} // '') !~ /close/i) {
            diag "connection $i: status $r->{status}, connection: "
                . ($r->{headers}{connection} // '');
            return (\@ok, undef);
        }
        push @ok, $c;
        sleep 0.02;    # the worker is back waiting before the next one
    }
    return (\@ok, undef);
}

# ---- the limit for three factors ------------------------------------------

for my $case ([2, 12], [3, 16], [1.5, 10]) {
    my ($factor, $want) = @$case;
    my $s = Ev2Server->new(mpm => $MPM . "AsyncRequestWorkerFactor $factor\n",
                           conf => $CONF);
    $s->start;
    my ($ok, $pending) = open_until_refused($s, $want + 4);
    my $n = scalar @$ok;
    ok($n >= $want - 1 && $n <= $want + 1,
        "factor $factor: $n idle keep-alive connections admitted (4 + $factor x 4 = $want, +-1)")
        or diag "admitted $n, expected $want";
    ok($pending, "factor $factor: the next connection waits");
    if ($pending && $n < $want) {
        # Below the limit with every worker idle: the waiting connection
        # must be taken as soon as the last worker is back.
        my $r = $pending->read_response(timeout => 3);
        ok($r && $r->{status} == 200,
            "factor $factor: below the limit ($n < $want), the waiting connection is served")
            or diag 'not served within 1 + 3 s with all 4 workers idle: admission '
                . 'was not reopened when the worker became idle';
        $pending->close;
        $pending = undef;
    }

    if ($factor == 2 && $pending) {
        # Capacity frees: the waiting connection is served.
        $_->close for splice(@$ok, 0, 3);
        my $t0 = time;
        my $r = $pending->read_response(timeout => 5);
        ok($r && $r->{status} == 200,
            'the waiting connection is served once idle connections close')
            or diag 'error: ' . ($pending->{error} // 'none');
        note sprintf('served %.2f s after 3 idle connections closed', time - $t0);
    }
    $pending->close if $pending;
    $_->close for @$ok;
    ok($s->stop, "factor $factor: server stopped cleanly");
}

# ---- all workers busy: idle keep-alive connections make room ---------------

# Factor 10 so that the 4 slow downloads are still admitted next to the idle
# connections (with 1 idle worker the limit is 4 + 10 = 14); once all four
# workers are busy the limit is 4 and the child is over it.
my $K = 6;
my $size = 2 * 1024 * 1024;    # 32 s at 64 KiB/s: busy for the whole test
my $s = Ev2Server->new(
    mpm => $MPM . "AsyncRequestWorkerFactor 10\n",
    conf => $CONF . <<'EOF2',
<Location /slow>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit 64
</Location>
EOF2
    modules => [qw(ratelimit env)],
    files => { 'slow/big.bin' => 'z' x $size },
);
$s->start;

my @idle;
for my $i (1 .. $K) {
    my $c = Ev2HTTP->connect(port => $s->port) or next;
    $c->send(Ev2HTTP::request_string('GET', "/index.html?idle=$i"));
    my $r = $c->read_response(timeout => 5);
    push @idle, $c if $r && $r->{status} == 200;
}
is(scalar @idle, $K, "$K idle keep-alive connections open");

# Four slow downloads, one per worker; their data is read as it comes.
my @dl;
sub pump { for my $d (@dl) { $d->_fill(time + 1) while IO::Select->new($d->socket)->can_read(0) && !$d->{eof} } }
for my $i (1 .. 4) {
    my $d = Ev2HTTP->connect(port => $s->port) or next;
    $d->send(Ev2HTTP::request_string('GET', "/slow/big.bin?d=$i"));
    push @dl, $d;
    my $started = $s->wait_for(sub { pump(); $d->{buf} =~ m{^HTTP/1\.1 200 } }, 10, 0.05);
    ok($started, "slow download $i started (a worker is busy with it)")
        or diag 'got: ' . substr($d->{buf}, 0, 40) . ' ' . ($d->{error} // '');
}

# Idle for longer than the 100 ms the MPM requires before closing early.
my $t = time + 0.5;
while (time < $t) { pump(); sleep 0.05 }
my $still = grep { $_->is_open(0) } @idle;
note "$still of $K idle connections open with all workers busy, before a new client";

# A new client arrives and waits.
my $new = Ev2HTTP->connect(port => $s->port, timeout => 5);
ok($new, 'new client connected (to the listen backlog)');
$new->send(Ev2HTTP::request_string('GET', '/index.html?new=1')) if $new;

my %closed;
my $t0 = time;
while (time - $t0 < 5 && keys(%closed) < @idle) {
    pump();
    for my $i (0 .. $#idle) {
        next if $closed{$i};
        $closed{$i} = time - $t0 unless $idle[$i]->is_open(0);
    }
    sleep 0.05;
}
my $nclosed = keys %closed;
cmp_ok($nclosed, '>=', $K - 2,
    "idle keep-alive connections closed early for the waiting client ($nclosed of $K within 5 s)");
note 'closed after: ' . join(' ', map { sprintf '%.2f', $_ } sort { $a <=> $b } values %closed);
my $dl_ok = grep { !$_->{eof} } @dl;
is($dl_ok, 4, 'the slow downloads are untouched');

$_->close for @idle, @dl;
$new->close if $new;
ok($s->stop, 'server stopped cleanly');
done_testing();
