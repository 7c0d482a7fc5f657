# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Ev2Load: background request load for restart/stop scenarios.
#
#   my $load = Ev2Load->start(port => $port, clients => 3, path => '/index.html');
#   ... restart the server ...
#   my $r = $load->finish;   # {ok => N, fail => M, errors => [...]}
#
# Each client is a forked process that sends one request per connection
# ("Connection: close"), so that a connection closed by a stopping child
# between requests is never mistaken for a failure: every failure counted
# here is a request the server accepted and did not answer, or a refused
# connection.  Clients stop when finish() is called, or after max_time
# seconds on their own.
package Ev2Load;

use strict;
use warnings;

use IO::Select ();
use POSIX qw(_exit WNOHANG);
use Time::HiRes qw(time sleep);
use Ev2HTTP ();

sub start {
    my ($class, %a) = @_;
    my $self = bless {
        port     => $a{port},
        clients  => $a{clients} // 3,
        path     => $a{path} // '/index.html',
        max_time => $a{max_time} // 90,
        expect   => $a{expect_body},
        kids     => [],
    }, $class;
    for my $i (1 .. $self->{clients}) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if (!$pid) {
            close $r;
            eval { $self->_client($w) };
            _exit(0);
        }
        close $w;
        push @{ $self->{kids} }, { pid => $pid, fh => $r };
    }
    return $self;
}

sub _client {
    my ($self, $w) = @_;
    my $stop = 0;
    local $SIG{TERM} = sub { $stop = 1 };
    local $SIG{PIPE} = 'IGNORE';
    my ($ok, $fail) = (0, 0);
    my @err;
    my $deadline = time + $self->{max_time};
    while (!$stop && time < $deadline) {
        my $res = Ev2HTTP::get($self->{port}, $self->{path}, timeout => 30);
        if ($res && $res->{status} == 200
            && (!defined $self->{expect} || $res->{body} eq $self->{expect})) {
            $ok++;
        }
        else {
            $fail++;
            my $why = $res ? "status $res->{status}" : ($@ || 'no response');
            push @err, sprintf('%.3f %s', time, $why) if @err < 20;
        }
    }
    print $w "$ok $fail\n";
    print $w "$_\n" for @err;
    close $w;
}

# Number of requests so far is not tracked live; finish() stops the clients
# (bounded) and returns the totals.
sub finish {
    my $self = shift;
    my %r = (ok => 0, fail => 0, errors => []);
    kill 'TERM', map { $_->{pid} } @{ $self->{kids} };
    for my $k (@{ $self->{kids} }) {
        my $fh = $k->{fh};
        # Bounded read: a client is at most one request (30 s timeout) away.
        my $buf = '';
        my $deadline = time + 45;
        my $sel = IO::Select->new($fh);
        while (time < $deadline) {
            last unless $sel->can_read($deadline - time);
            my $n = sysread($fh, my $chunk, 4096);
            last unless $n;
            $buf .= $chunk;
        }
        close $fh;
        my ($line, @err) = split /\n/, $buf;
        if (defined $line && $line =~ /^(\d+) (\d+)$/) {
            $r{ok} += $1;
            $r{fail} += $2;
            push @{ $r{errors} }, @err;
        }
        else {
            $r{fail}++;
            push @{ $r{errors} }, "client $k->{pid} reported nothing";
        }
        # reap, bounded
        my $t = time + 5;
        while (waitpid($k->{pid}, WNOHANG) == 0 && time < $t) { sleep 0.05 }
        if (waitpid($k->{pid}, WNOHANG) == 0) {
            kill 'KILL', $k->{pid};
            waitpid($k->{pid}, 0);
        }
    }
    $self->{kids} = [];
    return \%r;
}

sub DESTROY {
    my $self = shift;
    local ($?, $@, $!);
    for my $k (@{ $self->{kids} || [] }) {
        kill 'KILL', $k->{pid};
        waitpid($k->{pid}, 0);
    }
}

1;
