# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# canary.t: the control run of t/sanitize/run.sh.  Loads mod_ev2_canary
# (EV2_SAN_CANARY_SO, built with the MPM's sanitizer) beside the MPM and
# requests its broken handlers (EV2_SAN_CANARY_PATHS, comma-separated),
# so that run.sh can check that the reports they cause arrive.  What the
# client sees does not matter (ASan ends the child on its first report);
# the server must only have run the handlers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Ev2Server;

my $so = $ENV{EV2_SAN_CANARY_SO};
plan skip_all => 'EV2_SAN_CANARY_SO not set (run by t/sanitize/run.sh)'
    unless $so && -r $so;
my @paths = split /,/, ($ENV{EV2_SAN_CANARY_PATHS} // '');

my $s = Ev2Server->new(
    mpm => "StartServers 1\nThreadsPerChild 4\nMaxRequestWorkers 4\n",
    conf => "LoadModule ev2_canary_module \"$so\"\n",
    start_timeout => 60,
);
$s->start;
my $r = $s->get('/index.html', timeout => 20);
ok($r && $r->{status} == 200, 'server answers');
for my $p (@paths) {
    $s->get("/canary/$p", timeout => 20);
    pass("requested /canary/$p");
}
# The parent replaces a child that ASan ended: wait until it answers
# again, so the report is written before the server stops.
ok($s->wait_for(sub { my $x = $s->get('/index.html', timeout => 5);
                      $x && $x->{status} == 200 }, 60, 0.2),
   'serving again');
ok($s->stop(timeout => 60), 'server stopped');
done_testing();
