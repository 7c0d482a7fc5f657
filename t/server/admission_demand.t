# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# admission_demand.t: with the shipped MPM settings (mpm_event2.conf: 2
# children of 25 workers, AsyncRequestWorkerFactor 2, so a cap of 75
# connections a child) and KeepAliveTimeout 30, 1,000 clients arrive at
# about 500 a second, each makes one request and keeps its connection.
# Every one is answered promptly, and a normal client meanwhile too: the
# children make room at their caps by closing the oldest idle keep-alive
# connections, about one for each client beyond the 150 the caps hold, and
# no more.  (Stock's rule, and ours before, stopped each child at 75
# connections with every worker idle: 850 clients got no answer.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2Arrivals;

my $N = 1000;

open my $fh, '<', "$FindBin::Bin/../../mpm_event2.conf"
    or BAIL_OUT("mpm_event2.conf: $!");
my $shipped = join '', grep { !/^\s*#/ } <$fh>;
close $fh;

my $s = Ev2Server->new(
    mpm => $shipped,
    conf => "KeepAliveTimeout 30\nMaxKeepAliveRequests 0\n",
    nofile => 4096,
);
$s->start;
ok($s->wait_for(sub { my $st = $s->status_auto; $st && ($st->{Processes} // 0) == 2 }, 15),
    'two children running');

my $res = Ev2Arrivals::run(port => $s->port, clients => $N, rate => 500,
                           normal_every => 0.05, timeout => 10);
my $p99 = Ev2Arrivals::p99($res->{latency});
my $np99 = Ev2Arrivals::p99($res->{normal});
# One line for bench/arrivals, which runs this test against both MPMs.
diag sprintf('arrivals: answered=%d clients=%d p99_ms=%.1f normal=%d normal_failed=%d normal_p99_ms=%.1f',
             $res->{answered}, $N, 1000 * ($p99 // 0), scalar @{$res->{normal}},
             $res->{normal_failed}, 1000 * ($np99 // 0));
is($res->{answered}, $N, "all $N arriving clients answered");
# Timings with generous bounds (the figures against the issue's targets are
# the benchmark's business): before, 550 of them got no answer at all.
ok(defined $p99 && $p99 < 1, sprintf('their p99 is under a second (%.1f ms)', 1000 * ($p99 // 99)));
is($res->{normal_failed}, 0, 'every request of the normal client answered');
cmp_ok(scalar @{$res->{normal}}, '>=', 20, 'the normal client made its requests');
ok(defined $np99 && $np99 < 1, sprintf('the normal client\'s p99 is under a second (%.1f ms)', 1000 * ($np99 // 99)));

# Which of the clients' connections the server has closed: EOF on a
# non-blocking read.
sleep 0.5;
my $open = 0;
for my $c (@{$res->{socks}}) {
    $c->blocking(0);
    my $got = sysread($c, my $buf, 4096);
    $open++ if !defined $got;
}
SKIP: {
    skip 'event2 status section', 3 if Ev2Server::is_stock();
    my $st = $s->status_auto;
    my $closed = $st ? $st->{Event2ClosedToMakeRoom} // -1 : -1;
    my $procs = $st ? $st->{Processes} // 0 : 0;
    diag "closed to make room: $closed; still open: $open of $N; children: $procs";
    diag "arrivals-closed: closed=$closed open=$open";
    cmp_ok($open, '>=', 150, 'the children hold at least their caps (2 x 75) of idle connections');
    cmp_ok($closed, '>=', $N - $open - 5, 'each closed connection was closed to make room');
    cmp_ok($closed, '<=', $N - $open, 'only as many closed as the clients beyond the caps needed');
}
close $_ for @{$res->{socks}};
ok($s->stop, 'server stopped cleanly');
done_testing();
