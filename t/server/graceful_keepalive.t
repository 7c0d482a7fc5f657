# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# graceful_keepalive.t: a graceful restart (SIGUSR1 to the parent) closes
# idle keep-alive connections at once instead of waiting for their
# KeepAliveTimeout: 30 idle connections see EOF within 3 s, the old child
# exits within 3 s, and a new request is answered by a child of the new
# generation.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $N = 30;

my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(4, ServerLimit => 2, AsyncRequestWorkerFactor => 10),
    conf => <<'EOF2',
KeepAliveTimeout 30
MaxKeepAliveRequests 0
EOF2
);
$s->start;

my $st0 = $s->status_auto or BAIL_OUT('no /server-status?auto');
my $gen0 = $st0->{ParentServerMPMGeneration};
my @old = $s->child_pids;
is(scalar @old, 1, 'one child') or diag "children: @old";

my @conns;
for my $i (1 .. $N) {
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 10) or next;
    $c->send(Ev2HTTP::request_string('GET', "/index.html?c=$i"));
    my $r = $c->read_response(timeout => 10);
    push @conns, $c if $r && $r->{status} == 200;
}
is(scalar @conns, $N, "$N idle keep-alive connections open");
sleep 0.3;

ok($s->signal('USR1'), 'SIGUSR1 sent to the parent');
my $t0 = time;

# Wait for EOF on all of them at once (bounded).
my %eof;
my $sel = IO::Select->new(map { $_->socket } @conns);
my %by_fh = map { fileno($_->socket) => $_ } @conns;
while (keys(%eof) < @conns && time - $t0 < 3) {
    for my $fh ($sel->can_read(0.1)) {
        my $c = $by_fh{fileno $fh};
        my $n = $c->_fill(time + 1);
        if (!$n) {
            $eof{fileno $fh} = time - $t0;
            $sel->remove($fh);
        }
    }
}
my $closed = keys %eof;
is($closed, $N, "all $N idle connections saw EOF within 3 s of the graceful restart");
note sprintf('last EOF after %.2f s', (sort { $b <=> $a } values %eof)[0] // -1);

my @left;
ok($s->wait_for(sub { @left = grep { Ev2Server::alive($_) } @old; !@left }, 3 - (time - $t0), 0.05),
    'the old child exited within 3 s') or diag "still alive: @left";

my $st;
ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{ParentServerMPMGeneration} // -1) > $gen0;
}, 10, 0.1), 'ParentServerMPMGeneration increased')
    or diag 'generation: ' . ($st ? $st->{ParentServerMPMGeneration} // 'undef' : 'no status');

my $r = $s->get('/index.html?after=1');
ok($r && $r->{status} == 200, 'a new request gets 200 after the restart');
# Which process served it: the access log line (%{pid}P), written just
# after the response.
my $pid;
$s->wait_for(sub {
    open my $fh, '<', $s->dir . '/logs/access_log' or return 0;
    local $/;
    my $al = <$fh> // '';
    close $fh;
    ($pid) = $al =~ m{"GET /index\.html\?after=1 HTTP/1\.1" 200 \S+ (\d+) };
    $pid;
}, 5, 0.05);
ok($pid && !grep({ $_ == $pid } @old) && grep({ $_ == $pid } $s->child_pids),
    'it was served by a new child') or diag 'served by pid ' . ($pid // 'unknown')
        . "; old child @old; children now: " . join(' ', $s->child_pids);

$_->close for @conns;
ok($s->stop, 'server stopped cleanly');
done_testing();
