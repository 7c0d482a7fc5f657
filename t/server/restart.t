# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# restart.t: a hard restart (apache2 -k restart, SIGHUP) keeps the parent,
# bumps the generation, replaces the children and serves afterwards.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Ev2Server;

my $s = Ev2Server->new(mpm => "StartServers 2\nThreadsPerChild 5\nMinSpareThreads 5\nMaxSpareThreads 20\nServerLimit 8\nMaxRequestWorkers 20\n");
$s->start;

my $st0 = $s->status_auto or BAIL_OUT('no /server-status?auto');
my $gen0 = $st0->{ParentServerMPMGeneration};
my @kids0 = $s->child_pids;
ok(@kids0, 'children before: ' . join(',', @kids0));

for my $round (1 .. 2) {
    ok($s->restart, "round $round: apache2 -k restart accepted");
    my $st;
    ok($s->wait_for(sub {
        $st = $s->status_auto or return 0;
        ($st->{ParentServerMPMGeneration} // -1) > $gen0
    }, 20, 0.2), "round $round: generation increased")
        or diag 'now: ' . ($st ? $st->{ParentServerMPMGeneration} // 'undef' : 'no status');
    $gen0 = $st->{ParentServerMPMGeneration} if $st;

    my %old = map { $_ => 1 } @kids0;
    my @now;
    ok($s->wait_for(sub { @now = $s->child_pids; @now && !grep { $old{$_} } @now }, 20, 0.2),
        "round $round: children replaced") or diag "old @kids0 now @now";
    @kids0 = @now;
    ok(Ev2Server::alive($s->pid), "round $round: parent kept its pid");

    my $ok = 0;
    for (1 .. 20) {
        my $r = $s->get("/index.html?r=$round");
        $ok++ if $r && $r->{status} == 200;
    }
    is($ok, 20, "round $round: 20 of 20 requests served after the restart");
}
ok($s->stop, 'server stopped cleanly');
done_testing();
