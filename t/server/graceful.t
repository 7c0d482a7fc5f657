# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# graceful.t: a graceful restart (apache2 -k graceful, SIGUSR1) bumps the
# generation shown by mod_status, replaces every child process, and a load
# running across the restart sees no failed request.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use Ev2Server;
use Ev2Load;

my $s = Ev2Server->new(mpm => <<'EOF2');
StartServers 2
ServerLimit 8
ThreadLimit 10
ThreadsPerChild 10
MaxRequestWorkers 40
MinSpareThreads 10
MaxSpareThreads 40
EOF2
$s->start;

my $st0 = $s->status_auto or BAIL_OUT('no /server-status?auto');
my $mpmgen0 = $st0->{ParentServerMPMGeneration};
my $cfggen0 = $st0->{ParentServerConfigGeneration};
ok(defined $mpmgen0 && defined $cfggen0, 'generations reported')
    or diag explain $st0;
my @kids0 = $s->child_pids;
ok(@kids0 >= 1, 'children running: ' . join(',', @kids0));

my $body = do { my $r = $s->get('/index.html'); $r ? $r->{body} : undef };
my $load = Ev2Load->start(port => $s->port, clients => 3, expect_body => $body);
sleep 1;

ok($s->graceful, 'apache2 -k graceful accepted');

my $st;
ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{ParentServerMPMGeneration} // -1) > $mpmgen0
}, 20, 0.2), 'ParentServerMPMGeneration increased')
    or diag 'now: ' . ($st ? $st->{ParentServerMPMGeneration} // 'undef' : 'no status');
cmp_ok($st->{ParentServerConfigGeneration} // -1, '>', $cfggen0,
    'ParentServerConfigGeneration increased');

my %old = map { $_ => 1 } @kids0;
my @now;
ok($s->wait_for(sub {
    @now = $s->child_pids;
    @now && !grep { $old{$_} } @now
}, 30, 0.2), 'every old child replaced by a new one')
    or diag 'old: @kids0, now: @now';
ok(Ev2Server::alive($s->pid), 'parent survived the graceful restart');

sleep 1;    # keep the load running on the new generation for a moment
my $r = $load->finish;
cmp_ok($r->{ok}, '>', 0, "load completed $r->{ok} requests across the restart");
is($r->{fail}, 0, 'no failed request across the graceful restart')
    or diag join("\n", @{ $r->{errors} });

my $after = $s->get('/index.html');
ok($after && $after->{status} == 200, 'serves after the graceful restart');

ok($s->stop, 'server stopped cleanly');
done_testing();
