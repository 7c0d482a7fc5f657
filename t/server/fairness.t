# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# fairness.t: a client that always has its next request ready must not keep
# a worker to itself while another connection waits for one.  One worker;
# client A pipelines 8 slow responses (mod_ratelimit: about 0.25 s each);
# client B, an idle keep-alive connection, sends one request meanwhile.
# B's answer must come after at most a few of A's, not after all 8 (each
# of A's requests is already read when the previous one ends, so without
# requeueing the worker would serve A to the end first).  What is counted
# is the order of the answers, not their timing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $N = 8;
my $size = 64 * 1024;
my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(1),
    conf => <<'EOF2',
KeepAliveTimeout 30
MaxKeepAliveRequests 0
Timeout 30
<Location /slow>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit 256
</Location>
EOF2
    modules => [qw(ratelimit env)],
    files => { 'slow/f.bin' => 'z' x $size },
);
$s->start;

# B: one request now, then idle in keep-alive.
my $b = Ev2HTTP->connect(port => $s->port);
ok($b, 'B connected');
$b->send(Ev2HTTP::request_string('GET', '/index.html?b=1'));
my $r = $b->read_response(timeout => 10);
is($r && $r->{status}, 200, 'B: first request served');

# A: all 8 requests in one write.
my $a = Ev2HTTP->connect(port => $s->port);
ok($a, 'A connected');
$a->send(join '', map { Ev2HTTP::request_string('GET', "/slow/f.bin?a=$_") } 1 .. $N);

sub a_done { my $n = () = $a->{buf} =~ m{HTTP/1\.1 200 }g; return $n }
sub pump_a { $a->_fill(time + 1) while IO::Select->new($a->socket)->can_read(0) && !$a->{eof} }

ok($s->wait_for(sub { pump_a(); a_done() >= 1 }, 10, 0.02),
   "A's first response started (the worker is busy with A)");

# B's second request arrives while A's next requests are already read.
$b->send(Ev2HTTP::request_string('GET', '/index.html?b=2'));
my ($b_at, $b_status);
my $t0 = time;
while (time - $t0 < 30 && !defined $b_at) {
    pump_a();
    if (IO::Select->new($b->socket)->can_read(0.02)) {
        my $rb = $b->read_response(timeout => 5);
        $b_status = $rb && $rb->{status};
        $b_at = a_done();
    }
}
{
    # Stock event serves a pipelining client to the end first, and with
    # its only worker busy it may close B's idle connection outright.
    local $TODO = 'stock event: no requeueing' if Ev2Server::is_stock();
    is($b_status, 200, "B's second request served");
    ok(defined $b_at && $b_at <= 3,
       'B answered after ' . ($b_at // 'all') . " of A's $N responses had started (at most 3)");
}

# A still gets every response, complete and in order.
sub a_bodies {
    my ($buf, @ok) = ($a->{buf});
    while ($buf =~ /\A(HTTP\/1\.1 (\d+) [^\r\n]*\r\n(.*?)\r\n\r\n)/s) {
        my ($head, $status, $fields) = ($1, $2, $3);
        my ($len) = $fields =~ /^Content-Length:\s*(\d+)/mi;
        last unless defined $len && length($buf) >= length($head) + $len;
        my $body = substr($buf, length($head), $len);
        push @ok, ($status == 200 && $body eq 'z' x $size) ? 1 : 0;
        substr($buf, 0, length($head) + $len) = '';
    }
    return @ok;
}
ok($s->wait_for(sub { pump_a(); a_bodies() == $N || $a->{eof} }, 30, 0.05),
   "A: all $N pipelined responses arrived");
my @got = a_bodies();
is(scalar(grep { $_ } @got), $N, "A: $N complete 200 responses of $size bytes");

$a->close;
$b->close;
ok($s->stop, 'server stopped cleanly');
done_testing();
