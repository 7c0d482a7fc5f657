# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# graceful_stop.t: a graceful stop (apache2 -k graceful-stop, SIGWINCH) lets
# a response that is in flight finish completely, then the server exits.
# The response is slowed by mod_ratelimit (100 KiB/s on a 300 KiB file).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use Ev2Server;
use Ev2HTTP;

my $size = 300 * 1024;
my $data = join '', map { sprintf "%07d\n", $_ } 0 .. int($size / 8) - 1;
$data .= 'x' x ($size - length $data);

my $s = Ev2Server->new(
    mpm     => "StartServers 2\nThreadsPerChild 5\nMinSpareThreads 5\nMaxSpareThreads 20\nServerLimit 8\nMaxRequestWorkers 20\n",
    modules => [qw(ratelimit env)],
    files   => { 'slow/big.bin' => $data },
    conf    => <<'EOF2',
<Location /slow>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit 100
</Location>
EOF2
);
$s->start;
my $parent = $s->pid;
my @kids = $s->child_pids;

my $c = Ev2HTTP->connect(port => $s->port) or BAIL_OUT("connect: $@");
$c->send(Ev2HTTP::request_string('GET', '/slow/big.bin', Connection => 'close'));
# Wait until the response has started arriving.
my $t0 = time;
ok($s->wait_for(sub { $c->_fill(time + 0.2); length $c->{buf} > 0 }, 10, 0),
    'slow download started');
my $got_at_signal = length $c->{buf};

ok($s->graceful_stop, 'apache2 -k graceful-stop accepted');
my $t_sig = time;

# New connections are refused once the listeners are closed.
my $refused = $s->wait_for(sub {
    my $p = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Timeout => 2);
    !$p;
}, 10, 0.1);
ok($refused, 'listener closed after graceful-stop');

my ($r, $partial) = $c->read_response(timeout => 60);
my $t_end = time;
ok($r, 'in-flight response completed') or diag "error: $c->{error}; got "
    . length($partial ? $partial->{body} : '') . " of $size bytes";
if ($r) {
    is($r->{status}, 200, 'status 200');
    is(length $r->{body}, $size, "full body ($size bytes)");
    ok($r->{body} eq $data, 'body intact');
}
cmp_ok($got_at_signal, '<', $size, 'the response was still in flight at the signal')
    or diag 'download finished before the signal: ratelimit not effective?';
diag sprintf('%d bytes before the signal, body complete %.2f s after it',
    $got_at_signal, $t_end - $t_sig);
$c->close;

my @left;
ok($s->wait_for(sub { @left = grep { Ev2Server::alive($_) } $parent, @kids; !@left }, 30, 0.1),
    'server gone after the in-flight response') or diag "alive: @left";
ok(!$s->group_pids, 'no process left in its process group');

$s->stop;
done_testing();
