# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# clogging.t: connections whose input filters cannot run asynchronously
# (c->clogging_input_filters, set here by the test module mod_ev2_clog on
# one vhost) are served worker-style: they work (200, keep-alive, an ab -k
# run without failures), and an idle one keeps its worker thread, which
# mod_status counts as busy.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Copy qw(copy);
use Time::HiRes qw(time sleep);
use Ev2Server;
use Ev2HTTP;

my $src = "$FindBin::Bin/../modules/mod_ev2_clog.c";
-r $src or BAIL_OUT("missing $src");

my $port2 = Ev2Server::free_port();
my $s = Ev2Server->new(
    mpm => Ev2Server::one_child(4),
);

# Build the fixture with apxs in the server's directory.
my $bdir = $s->dir . '/clog';
mkdir $bdir or die "mkdir $bdir: $!";
copy($src, "$bdir/mod_ev2_clog.c") or die "copy: $!";
my ($rc, $out) = Ev2Server::run_cmd(['sh', '-c',
    'cd "$0" && exec timeout -k 5 120 apxs -c mod_ev2_clog.c', $bdir]);
my $so = "$bdir/.libs/mod_ev2_clog.so";
unless (ok($rc == 0 && -r $so, 'mod_ev2_clog built with apxs')) {
    diag "apxs -c (exit $rc): $out";
    done_testing();
    exit 1;
}

$s->{conf} = <<"EOF2";
LoadModule ev2_clog_module "$so"
KeepAliveTimeout 10
Timeout 30
Listen 127.0.0.1:$port2
<VirtualHost 127.0.0.1:$port2>
    Ev2Clog On
</VirtualHost>
EOF2
$s->write_config;
$s->start;

my $r = Ev2HTTP::get($port2, '/index.html');
ok($r && $r->{status} == 200, 'clogged vhost: 200') or diag($r ? "status $r->{status}" : $@);
is($r && $r->{headers}{'x-ev2-clogged'}, '1', 'clogged vhost: X-Ev2-Clogged: 1 (the fixture ran)');
my $plain = $s->get('/index.html');
ok($plain && $plain->{status} == 200 && !defined $plain->{headers}{'x-ev2-clogged'},
    'main server: 200, not clogged');

# Keep-alive on a clogged connection: 3 requests, 1 s apart.
my $c = Ev2HTTP->connect(port => $port2) or BAIL_OUT("connect: $@");
my $ka = 0;
for my $i (1 .. 3) {
    sleep 1 if $i > 1;
    $c->send(Ev2HTTP::request_string('GET', "/index.html?ka=$i")) or last;
    my $ri = $c->read_response(timeout => 10);
    $ka++ if $ri && $ri->{status} == 200 && ($ri->{headers}{'x-ev2-clogged'} // '') eq '1';
}
is($ka, 3, '3 requests on one clogged keep-alive connection, 1 s apart');

# While it sits idle it holds a worker: BusyWorkers counts it besides the
# status request itself.
my $st;
ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{BusyWorkers} // 0) >= 2;
}, 5, 0.2), 'an idle clogged connection holds a worker (BusyWorkers >= 2)')
    or diag 'BusyWorkers=' . ($st ? $st->{BusyWorkers} // 'undef' : 'no status');
$c->close;
ok($s->wait_for(sub {
    $st = $s->status_auto or return 0;
    ($st->{BusyWorkers} // 0) == 1;
}, 10, 0.2), 'and frees it when the client closes (BusyWorkers back to 1)')
    or diag 'BusyWorkers=' . ($st ? $st->{BusyWorkers} // 'undef' : 'no status');

my $ab = Ev2Server::run_ab("http://127.0.0.1:$port2/index.html", '-n', 1000, '-c', 3, '-k');
is($ab->{complete} // -1, 1000, 'ab -k on the clogged vhost: 1000 requests complete')
    or diag $ab->{output};
is($ab->{failed} // -1, 0, 'ab -k on the clogged vhost: 0 failed');
ok(!$ab->{non2xx}, 'ab -k on the clogged vhost: no non-2xx response');

ok($s->stop, 'server stopped cleanly');
done_testing();
