# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# mixed_load.t: a short mixed load for a sanitizer build of the MPM (run by
# t/sanitize/run.sh through "make sanitize-server", which points
# EV2_APACHE2 at a wrapper that preloads the sanitizer runtime).  Not part
# of make test.  Keep-alive and Connection: close, pipelining, large
# responses, clients that reset mid-response or send junk, a graceful
# restart under load and a hard restart; every response is checked.  The
# sanitizer reports themselves are collected by run.sh from their log
# files; this test also fails on a crash or a sanitizer line in the
# error_log.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(sleep);
use Ev2Server;
use Ev2HTTP;
use Ev2Load;

my $small = join('', map { chr(33 + $_ % 90) } 0 .. 999);
my $big = join('', map { pack('N', $_ * 2654435761 % 4294967296) }
               0 .. 262143);                   # 1 MiB
my $s = Ev2Server->new(
    mpm => <<'EOF2',
StartServers 2
ServerLimit 4
ThreadLimit 8
ThreadsPerChild 8
MaxRequestWorkers 32
MinSpareThreads 8
MaxSpareThreads 24
AsyncRequestWorkerFactor 2
EOF2
    conf => "KeepAliveTimeout 3\nMaxKeepAliveRequests 50\nTimeout 20\n",
    files => { 'small.txt' => $small, 'big.bin' => $big },
    start_timeout => 60,
);
$s->start;
my $index = $s->get('/index.html');
ok($index && $index->{status} == 200, 'server answers');
my $index_body = $index ? $index->{body} : '';

sub ab_ok {
    my ($name, $path, @opts) = @_;
    my $r = Ev2Server::run_ab($s->url($path), @opts);
    my ($n) = grep { $opts[$_ - 1] eq '-n' } 1 .. $#opts;
    my $want = $opts[$n];
    ok($r->{rc} == 0 && ($r->{complete} // 0) == $want
       && ($r->{failed} // -1) == 0 && !($r->{non2xx} // 0),
       "$name: $want requests, none failed")
        or diag $r->{output};
}

# Keep-alive (MaxKeepAliveRequests 50 makes connections end too), then
# one request per connection (ab without -k speaks HTTP/1.0).
ab_ok('ab keep-alive', '/index.html', '-n', 400, '-c', 8, '-k');
ab_ok('ab new connection each', '/small.txt', '-n', 400, '-c', 8);

# HTTP/1.1 with Connection: close, checked byte for byte, and the server
# closing the connection after it.
{
    my ($good, $closed) = (0, 0);
    for my $i (1 .. 150) {
        my $c = Ev2HTTP->connect(port => $s->port) or next;
        $c->send(Ev2HTTP::request_string('GET', '/small.txt',
                                         Connection => 'close'));
        my $r = $c->read_response(timeout => 20);
        $good++ if $r && $r->{status} == 200 && $r->{body} eq $small;
        $closed++ if defined $c->wait_eof(20);
        $c->close;
    }
    is($good, 150, 'Connection: close: 150 complete responses');
    is($closed, 150, 'Connection: close: the server closed each connection');
}

# Pipelining: 30 requests written at once per connection, the last one
# closing; every response complete and in order.
{
    my ($good, $conns) = (0, 0);
    for my $k (1 .. 10) {
        my $c = Ev2HTTP->connect(port => $s->port) or next;
        my $req = '';
        for my $i (1 .. 30) {
            my $path = $i % 3 ? '/small.txt' : '/index.html';
            $req .= Ev2HTTP::request_string('GET', $path,
                $i == 30 ? (Connection => 'close') : ());
        }
        $c->send($req);
        my $n = 0;
        for my $i (1 .. 30) {
            my $r = $c->read_response(timeout => 20) or last;
            my $want = $i % 3 ? $small : $index_body;
            $n++ if $r->{status} == 200 && $r->{body} eq $want;
        }
        $good += $n;
        $conns++ if $n == 30 && defined $c->wait_eof(20);
        $c->close;
    }
    is($good, 300, 'pipelining: 300 responses in order');
    is($conns, 10, 'pipelining: each connection closed after its last');
}

# Large responses over keep-alive (write completion), then clients that
# reset mid-response and clients that send junk or half a request.
ab_ok('ab 1 MiB keep-alive', '/big.bin', '-n', 40, '-c', 4, '-k');
{
    my $resets = 0;
    for my $i (1 .. 20) {
        my $c = Ev2HTTP->connect(port => $s->port) or next;
        $c->send(Ev2HTTP::request_string('GET', '/big.bin'));
        $c->_fill(Time::HiRes::time() + 10);
        # SO_LINGER 0: close sends a reset, with the response half sent.
        setsockopt($c->socket, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
        $c->close;
        $resets++;
    }
    is($resets, 20, '20 clients reset mid-response');
    my $bad = 0;
    for my $i (1 .. 20) {
        my $c = Ev2HTTP->connect(port => $s->port) or next;
        $c->send("GARBAGE \x01\x02 nonsense\r\n\r\n");
        my $r = $c->read_response(timeout => 20);
        $bad++ if $r && $r->{status} == 400;
        $c->close;
    }
    is($bad, 20, 'junk requests: 400 each');
    for my $i (1 .. 20) {
        my $c = Ev2HTTP->connect(port => $s->port) or next;
        $c->send("GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        $c->close;
    }
    my $r = $s->get('/index.html', timeout => 20);
    ok($r && $r->{status} == 200, 'still serving after half requests');
}

# A graceful restart under load: no request lost.
{
    my $st0 = $s->status_auto;
    my $gen0 = $st0 ? $st0->{ParentServerMPMGeneration} : undef;
    my $load = Ev2Load->start(port => $s->port, clients => 4,
                              expect_body => $index_body);
    sleep 1;
    ok($s->graceful, 'graceful restart');
    my $st;
    ok(defined $gen0 && $s->wait_for(sub {
        $st = $s->status_auto or return 0;
        ($st->{ParentServerMPMGeneration} // -1) > $gen0
    }, 60, 0.2), 'new generation running');
    sleep 1;
    my $r = $load->finish;
    cmp_ok($r->{ok}, '>', 0, "load across the graceful restart: $r->{ok} ok");
    is($r->{fail}, 0, 'load across the graceful restart: none failed')
        or diag explain $r->{errors};
}
ab_ok('ab keep-alive after graceful', '/index.html', '-n', 300, '-c', 8, '-k');

# A hard restart, then keep-alive and close again.
ok($s->restart, 'hard restart');
ok($s->wait_for(sub { my $r = $s->get('/index.html', timeout => 5);
                      $r && $r->{status} == 200 }, 60, 0.2),
   'serving after the hard restart');
ab_ok('ab keep-alive after restart', '/small.txt', '-n', 300, '-c', 8, '-k');

ok($s->stop(timeout => 60), 'server stopped cleanly');
my $log = $s->log_text;
unlike($log, qr/AddressSanitizer|ThreadSanitizer|LeakSanitizer|runtime error:/,
       'no sanitizer line in the error_log');
unlike($log, qr/exit signal/, 'no child crashed');
done_testing();
