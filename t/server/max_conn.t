# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# max_conn.t: with MaxConnectionsPerChild 50 children retire after their
# quota and are replaced, and a load of 1000 requests (ab -c 4, no
# keep-alive) sees no failure.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Ev2Server;

my $s = Ev2Server->new(mpm => <<'EOF2');
StartServers 2
ServerLimit 8
ThreadLimit 5
ThreadsPerChild 5
MaxRequestWorkers 20
MinSpareThreads 5
MaxSpareThreads 20
MaxConnectionsPerChild 50
EOF2
$s->start;

my @kids0 = $s->child_pids;
ok(@kids0, 'children before: ' . join(',', @kids0));

my $ab = Ev2Server::run_ab($s->url('/index.html'), '-n', 1000, '-c', 4);
is($ab->{rc}, 0, 'ab exited 0') or diag $ab->{output};
is($ab->{complete}, 1000, 'Complete requests: 1000');
is($ab->{failed}, 0, 'Failed requests: 0') or diag $ab->{output};
ok(!defined $ab->{non2xx}, 'no Non-2xx responses') or diag "Non-2xx: $ab->{non2xx}";

my %old = map { $_ => 1 } @kids0;
my @now;
ok($s->wait_for(sub { @now = $s->child_pids; @now && !grep { $old{$_} } @now }, 20, 0.2),
    'every original child retired and was replaced') or diag "before @kids0 now @now";
ok(Ev2Server::alive($s->pid), 'parent alive');
my $r = $s->get('/index.html');
ok($r && $r->{status} == 200, 'serves afterwards');

ok($s->stop, 'server stopped cleanly');
done_testing();
