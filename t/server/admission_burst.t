# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# admission_burst.t: 1,000 idle keep-alive connections, then a load
# generator's opening burst (50 clients connecting at once, as wrk -c50
# does).  The burst makes every worker busy for a moment, but no child is
# at its cap (AsyncRequestWorkerFactor 200: 5,025 connections a child), so
# no idle connection is closed: a burst of load alone closes nothing.
# (Before, the early-close rule closed about half of them here.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2Arrivals;

my $IDLE = 1000;
my $BURST = 50;

my $s = Ev2Server->new(
    mpm => "StartServers 2\nServerLimit 2\nThreadLimit 25\nThreadsPerChild 25\n"
         . "MaxRequestWorkers 50\nMinSpareThreads 1\nMaxSpareThreads 50\n"
         . "AsyncRequestWorkerFactor 200\n",
    conf => "KeepAliveTimeout 60\nMaxKeepAliveRequests 0\n",
    nofile => 4096,
);
$s->start;

my $idle = Ev2Arrivals::run(port => $s->port, clients => $IDLE, rate => 2000,
                            timeout => 15);
is($idle->{answered}, $IDLE, "$IDLE idle keep-alive connections open");
sleep 0.5;    # all idle past the 100 ms that would make them closable

# The burst, three rounds of it, each client with one request.
my $answered = 0;
my @burst;
for my $round (1 .. 3) {
    my $b = Ev2Arrivals::run(port => $s->port, clients => $BURST, rate => 1e6,
                             timeout => 10);
    $answered += $b->{answered};
    push @burst, @{$b->{socks}};
}
is($answered, 3 * $BURST, 'every client of the bursts answered');

sleep 0.5;
my $closed = 0;
for my $c (@{$idle->{socks}}) {
    $c->blocking(0);
    my $got = sysread($c, my $buf, 4096);
    $closed++ if defined $got;
}
is($closed, 0, "none of the $IDLE idle connections was closed by the bursts");
SKIP: {
    skip 'event2 status section', 1 if Ev2Server::is_stock();
    my $st = $s->status_auto;
    is($st ? $st->{Event2ClosedToMakeRoom} : undef, 0, 'mod_status: none closed to make room');
}
close $_ for @{$idle->{socks}}, @burst;
ok($s->stop, 'server stopped cleanly');
done_testing();
