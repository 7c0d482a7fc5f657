# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# stop.t: SIGTERM to the parent stops the server: within a bounded time no
# process of it is left (parent and every child pid gone from the process
# table), the pid file is removed and the port refuses connections.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use Ev2Server;
use Ev2HTTP;

my $s = Ev2Server->new(mpm => "StartServers 3\nThreadsPerChild 5\nMinSpareThreads 5\nMaxSpareThreads 30\nServerLimit 8\nMaxRequestWorkers 30\n");
$s->start;

my $parent = $s->pid;
my @kids;
$s->wait_for(sub { @kids = $s->child_pids; @kids >= 3 }, 10);
ok(@kids >= 1, 'children: ' . join(',', @kids));

# An idle keep-alive connection must not hold the stop up.
my $c = Ev2HTTP->connect(port => $s->port);
$c->send(Ev2HTTP::request_string('GET', '/index.html'));
my $r = $c->read_response;
ok($r && $r->{status} == 200, 'keep-alive connection open before stop');

ok(kill('TERM', $parent), 'SIGTERM sent to the parent');
my @left;
my $gone = $s->wait_for(sub {
    @left = grep { Ev2Server::alive($_) } $parent, @kids;
    !@left
}, 15, 0.1);
ok($gone, 'parent and all children gone within 15 s') or diag "still alive: @left";
ok(!$s->group_pids, 'nothing left in the server process group');
ok(!-e $s->pid_file, 'pid file removed');
ok(defined $c->wait_eof(5), 'the idle connection was closed');
my $probe = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Timeout => 3);
ok(!$probe, 'port refuses connections after stop');
unlike($s->log_text, qr/\[(?:emerg|crit|alert)\]|AH00045|AH00046/,
    'no emergency/forced-kill messages in the error log')
    or diag $s->log_tail;

$s->stop;    # harmless; makes sure nothing is left if the test failed
done_testing();
