# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# slow_header.t: a request header that trickles in waits in the listener,
# not in a worker (AsyncHeaderTimeout).  With one child of 4 workers and
# 200 clients sending their header a byte a second (slowloris), a normal
# client is served in well under a second, again and again, and
# mod_status counts the 200 as reading their header, with no worker busy
# for them.  When the header's time runs out (here 2-4 s, MinRate 500)
# the client is answered as httpd answers a timed-out read and the
# condition is logged; a client that keeps sending at the minimum rate is
# not cut off at the base timeout.  (Every httpd MPM, stock event
# included, gives each trickling client a worker: 0 % of normal clients
# served.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Select ();
use IO::Socket::INET ();
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;
use Ev2Fault ();
use POSIX ();

my $N = 200;
local $TODO = Ev2Server::is_stock() ? 'stock gives a worker to every slow client' : undef;

sub slow_client {
    my ($port, $i) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 5) or return undef;
    syswrite($s, "GET /index.html?slow=$i HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    return $s;
}

# ---- 200 slowloris clients, one child of 4 workers ------------------------
{
    my $s = Ev2Server->new(
        mpm => Ev2Server::one_child(4, AsyncRequestWorkerFactor => 100),
        conf => "AsyncHeaderTimeout 30-60,MinRate=500\nTimeout 60\n",
        nofile => 4096);
    $s->start;
    my @slow = grep { defined } map { slow_client($s->port, $_) } 1 .. $N;
    is(scalar @slow, $N, "$N slow clients connected");
    my ($kid) = $s->child_pids;
    my $ticks0 = Ev2Fault::cpu_ticks($kid) // 0;
    my $t_start = time;
    my $t_end = time + 6;
    my $byte = 0;
    my @lat;
    while (time < $t_end) {
        # Every slow client sends one more byte of a header field.
        syswrite($_, 'X') for @slow;
        $byte++;
        my $t0 = time;
        my $r = Ev2HTTP::get($s->port, '/index.html', timeout => 5);
        push @lat, $r && $r->{status} == 200 ? time - $t0 : 99;
        sleep 0.5;
    }
    my $cpu = ((Ev2Fault::cpu_ticks($kid) // 0) - $ticks0)
              / POSIX::sysconf(POSIX::_SC_CLK_TCK()) / (time - $t_start);
    ok($cpu < 0.5, sprintf('waiting headers do not make the child spin (%.0f %% of a core)', 100 * $cpu));
    my $worst = (sort { $b <=> $a } @lat)[0];
    ok(@lat >= 5 && $worst < 1,
       sprintf('a normal client is served in under a second, %d times (worst %.3f s)',
               scalar @lat, $worst));
    SKIP: {
        skip 'event2 status section', 2 if Ev2Server::is_stock();
        my $st = $s->status_auto;
        cmp_ok($st ? $st->{Event2ConnsReadingHeader} // 0 : 0, '>=', $N,
               'mod_status: the slow clients are counted as reading their header');
        cmp_ok($st ? $st->{BusyWorkers} // 99 : 99, '<=', 1,
               'mod_status: no worker is busy with them (only the status request)');
    }
    # The slow clients finish their header: each is answered.
    syswrite($_, ": y\r\n\r\n") for @slow;
    my $answered = 0;
    for my $c (@slow) {
        my $sel = IO::Select->new($c);
        my $buf = '';
        my $until = time + 10;
        while (time < $until && $sel->can_read($until - time)) {
            last unless sysread($c, $buf, 4096, length $buf);
            last if $buf =~ m{^HTTP/1\.1 200 .*?\r\n\r\n}s;
        }
        $answered++ if $buf =~ m{^HTTP/1\.1 200 };
        close $c;
    }
    is($answered, $N, 'every slow client is answered once its header is complete');
    ok($s->stop, 'server stopped cleanly');
}

# ---- the header's time runs out; the minimum rate extends it -------------
{
    my $s = Ev2Server->new(
        mpm => Ev2Server::one_child(4),
        conf => "AsyncHeaderTimeout 2-4,MinRate=500\nLogLevel info\n");
    $s->start;
    my $mark = length($s->log_text // '');

    # A byte a second: late after 2 s (plus the bytes' 2 ms each).
    my $c = slow_client($s->port, 'late');
    my $t0 = time;
    my $sel = IO::Select->new($c);
    my $buf = '';
    while (time - $t0 < 10) {
        syswrite($c, 'X');
        if ($sel->can_read(1)) {
            my $got = sysread($c, $buf, 4096, length $buf);
            last unless $got;
        }
    }
    my $took = time - $t0;
    like($buf, qr{^HTTP/1\.1 408 }, 'a client out of time is answered 408 Request Timeout')
        or diag "got: " . substr($buf, 0, 60);
    ok($took >= 1.8 && $took < 5, sprintf('after the header timeout of 2 s (%.2f s)', $took));
    close $c;
    my $log = substr($s->log_text // '', $mark);
    like($log, qr/EV2085: Request header read timeout/, 'the timeout is logged');

    # 600 bytes a second, above MinRate 500, for 3.5 s: past the base of 2 s.
    my $h = Ev2HTTP->connect(port => $s->port);
    $h->send("GET /index.html?steady HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    $t0 = time;
    while (time - $t0 < 3.5) {
        $h->send("X-Fill: " . ('f' x 50) . "\r\n");
        sleep 0.1;
    }
    $h->send("\r\n");
    my $r = $h->read_response(timeout => 5);
    ok($r && $r->{status} == 200, 'a client at the minimum rate is not cut off at the base timeout')
        or diag 'got: ' . ($r ? $r->{status} : 'nothing') . ' after ' . (time - $t0);
    $h->close;
    ok($s->stop, 'server stopped cleanly');
}

done_testing();
