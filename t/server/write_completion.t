# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# write_completion.t: responses the client does not read wait in write
# completion in the MPM, not in worker threads.  One child with 2 workers;
# 8 clients with a small receive buffer ask for a 20 MB file (sendfile) and
# never read.  A new client is still served within 1 s, mod_status counts
# the 8 as ConnsAsyncWriting, and afterwards every one of the 8 connections
# is still open (a read returns data).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use IO::Socket::INET ();
use Socket qw(SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $N    = 8;
my $SIZE = 20_000_000;

# Admission: a child takes new connections while it has fewer than
# ThreadsPerChild + AsyncRequestWorkerFactor x idle workers.  With the
# default factor 2 that is 2 + 2 x 2 = 6 here, so only 6 of the 8 stalled
# clients would be admitted (correct behaviour, not what this test is
# about); factor 10 admits 2 + 10 x 2 = 22, enough for the 8 + 1 + status.
my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(2, AsyncRequestWorkerFactor => 10),
    conf => <<'EOF2',
EnableSendfile On
Timeout 30
KeepAliveTimeout 30
EOF2
    files => { 'big.bin' => 'x' x $SIZE },
);
$s->start;
is(scalar(my @kids = $s->child_pids), 1, 'one child process');

# A client socket with a small receive buffer (set before connect, so the
# advertised window stays small), wrapped as an Ev2HTTP connection.
sub small_rcvbuf_conn {
    my $sock = IO::Socket::INET->new(Proto => 'tcp') or return undef;
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, pack('i', 4096)) or return undef;
    $sock->timeout(10);
    $sock->connect(pack_sockaddr_in($s->port, inet_aton('127.0.0.1'))) or return undef;
    return bless { sock => $sock, buf => '', eof => 0, host => '127.0.0.1',
                   port => $s->port }, 'Ev2HTTP';
}

my @stalled;
for my $i (1 .. $N) {
    my $c = small_rcvbuf_conn();
    unless ($c) { diag "connect $i: $!"; next }
    $c->send(Ev2HTTP::request_string('GET', "/big.bin?c=$i")) or diag "send $i failed";
    push @stalled, $c;
}
is(scalar @stalled, $N, "$N clients asked for the 20 MB file and do not read");

sleep 1.5;

my $t0 = time;
my $r = $s->get('/index.html', timeout => 10);
my $dt = time - $t0;
ok($r && $r->{status} == 200, 'a new client gets 200 while the 8 responses are stalled')
    or diag($r ? "status $r->{status}" : "error: $@");
cmp_ok($dt, '<', 1.0, 'and is served in under 1 s') or diag sprintf('took %.3f s', $dt);

my $st;
my $seen = $s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{ConnsAsyncWriting} // 0) >= 6;
}, 10, 0.25);
my $what = $st ? join(' ', map { "$_=" . ($st->{$_} // 'undef') }
    qw(ConnsAsyncWriting BusyWorkers IdleWorkers ConnsTotal)) : 'no status';
ok($seen, 'mod_status: ConnsAsyncWriting >= 6') or diag $what;
note $what;

# Each stalled connection is still open: its response is waiting for it.
my $open = 0;
for my $i (0 .. $#stalled) {
    my $c = $stalled[$i];
    my $n = $c->_fill(time + 5);
    if ($n && $c->{buf} =~ m{^HTTP/1\.1 200 }) {
        $open++;
    }
    else {
        diag "stalled connection $i: " . ($n ? 'unexpected data: '
            . substr($c->{buf}, 0, 40) : ($c->{error} // 'eof'));
    }
}
is($open, scalar @stalled, 'every stalled connection is still open and has its 200 to read');

$_->close for @stalled;
ok($s->stop, 'server stopped cleanly');
done_testing();
