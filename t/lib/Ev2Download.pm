# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Ev2Download: a slow download running in the background (curl with
# --limit-rate), for scenarios that need a response in flight while
# something else happens (graceful restart, worker starvation).
#
#   my $d = Ev2Download->start(url => $s->url('/big.bin'), rate => '4m');
#   ... restart the server ...
#   my $r = $d->wait(60);   # {rc, code, size} or undef on timeout
#
# curl is killed if it outlives its max_time (default 90 s), on timeout in
# wait(), in DESTROY and in END, so a test never leaves it behind.
package Ev2Download;

use strict;
use warnings;

use File::Temp qw(tempfile);
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);

our %LIVE;    # pid => 1

sub start {
    my ($class, %a) = @_;
    my ($fh, $out) = tempfile('ev2dl-XXXXXX', TMPDIR => 1, UNLINK => 1);
    close $fh;
    my @cmd = ('curl', '-s', '-o', '/dev/null',
        '-w', '%{http_code} %{size_download}\n',
        '--max-time', $a{max_time} // 90);
    push @cmd, '--limit-rate', $a{rate} if $a{rate};
    push @cmd, @{ $a{args} } if $a{args};
    push @cmd, $a{url};
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or _exit(126);
        open STDERR, '>', '/dev/null';
        exec @cmd or _exit(127);
    }
    $LIVE{$pid} = 1;
    return bless { pid => $pid, out => $out, t0 => time }, $class;
}

sub pid { $_[0]{pid} }

# True once curl has exited (non-blocking).
sub done {
    my $self = shift;
    return 1 if defined $self->{rc};
    my $w = waitpid($self->{pid}, WNOHANG);
    if ($w == $self->{pid} || $w == -1) {
        $self->{rc} = $w == -1 ? -1 : $? >> 8;
        $self->{t_end} = time;
        delete $LIVE{$self->{pid}};
        return 1;
    }
    return 0;
}

# Wait (bounded) for curl to exit.  Returns {rc, code, size, secs}, or
# undef if it did not finish within $timeout (curl is killed then).
sub wait {
    my ($self, $timeout) = @_;
    my $deadline = time + $timeout;
    until ($self->done) {
        if (time >= $deadline) {
            $self->kill;
            return undef;
        }
        sleep 0.05;
    }
    my ($code, $size) = (0, -1);
    if (open my $fh, '<', $self->{out}) {
        my $l = <$fh> // '';
        close $fh;
        ($code, $size) = ($1, $2) if $l =~ /^(\d+) (\d+)/;
    }
    return { rc => $self->{rc}, code => $code, size => $size,
             secs => $self->{t_end} - $self->{t0} };
}

sub kill {
    my $self = shift;
    return if defined $self->{rc};
    CORE::kill('KILL', $self->{pid});
    waitpid($self->{pid}, 0);
    $self->{rc} = -1;
    delete $LIVE{$self->{pid}};
}

sub DESTROY {
    my $self = shift;
    local ($?, $@, $!);
    $self->kill;
}

END {
    local ($?, $@, $!);
    for my $pid (keys %LIVE) {
        CORE::kill('KILL', $pid);
        waitpid($pid, 0);
    }
}

1;
