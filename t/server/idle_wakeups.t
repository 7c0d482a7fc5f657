# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# idle_wakeups.t: an idle child sleeps.  After one request and 2 s of
# quiet, strace watches the child's threads for 8 s: at most 3 poll calls
# (epoll_wait/epoll_pwait) return in that time, i.e. no periodic polling.
# Needs strace and permission to ptrace our own processes (skipped, with
# the reason, where that is not allowed).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;

my $WATCH = 8;
my $MAX   = 3;

my ($src) = grep { -x "$_/strace" } split /:/, ($ENV{PATH} // '/usr/bin:/bin');
plan skip_all => 'strace is not installed (make deps installs it)' unless $src;

my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(4),
    conf => "KeepAliveTimeout 5\n",
);
$s->start;

my @kids = $s->child_pids;
is(scalar @kids, 1, 'one child') or diag "children: @kids";
my $kid = $kids[0];

my $r = $s->get('/index.html');
ok($r && $r->{status} == 200, 'one request served');
sleep 2;

my $out = $s->dir . '/strace.out';
my ($rc, $msg) = Ev2Server::run_cmd(['timeout', '-s', 'INT', '-k', '5', $WATCH,
    'strace', '-f', '-p', $kid, '-e', 'trace=epoll_wait,epoll_pwait', '-o', $out]);
if ($msg =~ /Operation not permitted|ptrace_scope|attach: ptrace/i) {
    $s->stop;
    plan skip_all => "ptrace of the server child not permitted here: $msg";
}
my @lines = -r $out ? do { open my $fh, '<', $out; <$fh> } : ();
ok(@lines, 'strace attached and wrote its trace') or diag "strace (exit $rc): $msg";

# A completed call is a line with a result ("... = N"); "<unfinished ...>"
# starts are not, and "<... resumed>" lines carry the result.
my @done = grep { /epoll_(?:p?wait)/ && /\)\s+=\s+(?:-?\d|\?)/ && !/unfinished \.\.\.>\s*$/ } @lines;
cmp_ok(scalar @done, '<=', $MAX, "an idle child returns from poll at most $MAX times in $WATCH s")
    or diag join '', @lines[0 .. ($#lines < 20 ? $#lines : 20)];
note scalar(@done) . " completed poll calls in $WATCH s";
ok(Ev2Server::alive($kid), 'the child is still alive after strace detached');

$r = $s->get('/index.html');
ok($r && $r->{status} == 200, 'and still serves');
ok($s->stop, 'server stopped cleanly');
done_testing();
