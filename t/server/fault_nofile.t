# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fault_nofile.t: real descriptor exhaustion (ulimit -n 48 for the server,
# about 37 left for connections in the child) with 80 keep-alive clients,
# each of which sent a request.  The child serves the connections it holds,
# does not spin while accept() fails with EMFILE (CPU over 3 s), logs a
# bounded number of lines, makes room by closing idle keep-alive
# connections (after their response: clients see an ordinary keep-alive
# close) so that the clients waiting in the backlog are served too, keeps
# serving the connections still open, and serves new clients once the
# others went away.  The requests are for /server-status?auto, which needs
# no descriptor.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;
use Ev2Fault;

my $s = Ev2Server->new(nofile => 48, mpm => Ev2Server::one_child(8, AsyncRequestWorkerFactor => 20), conf => "KeepAliveTimeout 30\n");
$s->start;
my ($kid) = $s->child_pids;
ok($kid, "one child: $kid");
my $mark = length $s->log_text;

my @held;
for my $i (1 .. 80) {
    my $c = Ev2HTTP->connect(port => $s->port, timeout => 2) or last;
    $c->send(Ev2HTTP::request_string('GET', "/server-status?auto&c=$i")) or last;
    push @held, $c;
}
is(scalar @held, 80, '80 clients connected (the kernel backlog holds the rest)');
my $t0 = time;
my $cpu = Ev2Fault::cpu_share($kid, 3);
ok(defined $cpu && $cpu < 0.5, sprintf('out of descriptors: the child does not spin (%.0f%% of a core)', 100 * ($cpu // 1)));
my $tail = substr($s->log_text, $mark);
my $emfile = () = $tail =~ /Too many open files/g;
my $window = time - $t0 + 1;
ok($emfile >= 1, "accept failed with EMFILE ($emfile lines)");
# A line per failed accept, every EV2_ACCEPT_BACKOFF (200 ms) at most.
ok($emfile <= 10 * ($window + 2), "bounded logging: $emfile lines in about ${\ int $window} s");

my $answered = 0;
for my $c (@held) {
    my $r = $c->read_response(timeout => 10);
    $answered++ if $r && $r->{status} == 200;
}
ok($answered >= 70, "$answered of 80 clients answered");
# Those still open make a second request on their connection.
my ($open, $again) = (0, 0);
for my $c (@held) {
    next unless $c->is_open(0);
    $open++;
    $c->send(Ev2HTTP::request_string('GET', '/server-status?auto&again=1')) or next;
    my $r = $c->read_response(timeout => 10);
    $again++ if $r && $r->{status} == 200;
}
ok($open >= 1, "$open connections still open");
is($again, $open, 'each open connection is served again');
$_->close for @held;
@held = ();

ok($s->wait_for(sub { !grep { !$_ } map { my $r = $s->get("/index.html?r=$_", timeout => 5); $r && $r->{status} == 200 } 1 .. 10 }, 15),
   'recovers: 10 of 10 new requests succeed once the clients are gone');
is_deeply([$s->child_pids], [$kid], 'the same child serves throughout');
is(() = substr($s->log_text, $mark) =~ /exit signal|Segmentation fault|EV2090/g, 0, 'no crash');
ok($s->stop, 'server stopped cleanly');
done_testing();
