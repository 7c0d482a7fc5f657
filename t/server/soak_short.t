# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# soak_short.t: the soak harness (soak/soak.pl, make soak) for 60 seconds:
# every traffic kind at once (HTTP/1.1 keep-alive, close, pipelined, HTTPS,
# h2c, h2 over TLS, WebSockets, CGI, sendfile and mmap files, ranges,
# resets, slow readers, slow writers (a trickled header and a trickled POST
# body, plain and TLS), half-open and junk clients, wrk, h2load) while the
# server is gracefully restarted, restarted, gracefully stopped and started
# and has a child SIGKILLed.  The harness checks every response and
# classifies every failure; this test asserts its verdict: no unexplained
# failure, admin-caused failures within their bounds, no stuck slot, no
# connection left, descriptors back to a fresh child's, no crash line.
# (Memory slopes need the long run: make soak.)  About 80 s.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP ();
use Ev2Server;

my $harness = "$FindBin::Bin/../../soak/soak.pl";
plan skip_all => "soak/soak.pl not present next to t/ ($harness)" unless -f $harness;

my $out = Ev2Server::free_port();    # a unique name for this run's output
my $dir = ($ENV{TMPDIR} || '/tmp') . "/soak-short-$$-$out";
my ($rc, $txt);
{
    local $ENV{SOAK_S} = 60;
    local $ENV{SOAK_OUT} = $dir;
    ($rc, $txt) = Ev2Server::run_cmd(['timeout', '-k', '10', '170', $^X, $harness],
        nofile => 8192);
}
my $sum = do {
    open my $fh, '<', "$dir/summary.json";
    local $/;
    $fh ? eval { JSON::PP::decode_json(<$fh>) } : undef;
};
ok($sum, 'the harness wrote its summary') or diag "exit $rc\n$txt";
$sum ||= {};
is($rc, 0, 'the harness exits 0') or diag $txt;
is($sum->{verdict}, 'PASS', 'verdict PASS');
for my $c (@{ $sum->{criteria} // [] }) {
    ok($c->{ok}, "criterion: $c->{name}") or diag $c->{detail};
}
my %req = %{ $sum->{requests} // {} };
for my $k ('ka', 'close', 'pipe', 'https', 'big_sendfile', 'big_mmap', 'range', 'cgi',
           'ws', 'reset', 'junk', 'halfopen', 'h2c (curl, checked)', 'h2 TLS (curl, checked)',
           'slowwrite: header', 'slowwrite: body', 'slowwrite: tls header', 'slowwrite: tls body') {
    ok(($req{$k} // 0) > 0, "traffic kind $k was served") or diag "$k: " . ($req{$k} // 'none');
}
my %ev = %{ $sum->{events} // {} };
ok(($ev{$_} // 0) >= 1, "admin event $_ happened") for qw(graceful restart kill gstop);
is($sum->{failures}{by_class}{unexplained} // 0, 0, 'no unexplained failure of a checked client')
    or diag explain $sum->{unexplained_failures};
diag "report: $dir/report.md" unless Test::More->builder->is_passing;
system('rm', '-rf', $dir) if Test::More->builder->is_passing && !$ENV{EV2_KEEP_TMP};
done_testing;
