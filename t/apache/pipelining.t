# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# pipelining.t: 20 GETs written in a single write on one connection get 20
# responses, in order, each with the body of the file it asked for; the
# connection stays usable afterwards.
use strict;
use warnings FATAL => 'all';
use FindBin;
use lib "$FindBin::Bin/../lib";
use Apache::Test;
use Apache::TestUtil;
use Apache::TestRequest ();
use File::Path qw(make_path);
use Ev2HTTP ();

my $N = 20;
plan tests => 2 * $N + 4;

# Distinct files of distinct sizes, so a response can't be mistaken for
# another one.
my $docroot = Apache::Test::vars('documentroot');
make_path("$docroot/pipe");
my @bodies;
for my $i (1 .. $N) {
    my $body = "pipelined response $i\n" . ("$i" x ($i * 37)) . "\n";
    push @bodies, $body;
    open my $fh, '>', "$docroot/pipe/$i.txt" or die "$docroot/pipe/$i.txt: $!";
    print $fh $body;
    close $fh;
}

my ($port) = Apache::TestRequest::hostport() =~ /:(\d+)$/;
my $c = Ev2HTTP->connect(port => $port) or die "connect: $@";

my $all = join '', map { Ev2HTTP::request_string('GET', "/pipe/$_.txt?n=$_") } 1 .. $N;
ok $c->send($all);

for my $i (1 .. $N) {
    my $r = $c->read_response(timeout => 15);
    ok t_cmp($r ? $r->{status} : ($c->{error} // 'no response'), 200, "response $i status");
    ok t_cmp($r ? $r->{body} : '', $bodies[$i - 1], "response $i is the body of /pipe/$i.txt");
}

# Nothing extra arrived, and the connection still works.
ok t_cmp(length $c->{buf}, 0, 'no bytes beyond the 20 responses');
ok $c->send(Ev2HTTP::request_string('GET', '/pipe/1.txt', Connection => 'close'));
my $r = $c->read_response(timeout => 15);
ok t_cmp($r ? $r->{body} : '', $bodies[0], 'request 21 on the same connection');
$c->close;
