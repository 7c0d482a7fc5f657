# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Ev2HTTP: a deliberately small raw HTTP/1.1 client for the mod_mpm_event2
# integration tests.  It speaks over one plain socket so that a test can see
# exactly what a client sees: whether a connection stays open, how many
# responses come back on it, in which order, and when the server closes it.
#
# Every read is bounded by a timeout; nothing here can hang a test.
package Ev2HTTP;

use strict;
use warnings;

use IO::Socket::INET ();
use IO::Select ();
use Time::HiRes qw(time);
use Errno qw(EINTR EAGAIN EWOULDBLOCK);

our $DEFAULT_TIMEOUT = 10;

# Ev2HTTP->connect(port => $port [, host => '127.0.0.1', timeout => 10,
#                  local => '127.0.0.2'])
# local: the source address to connect from (any of 127/8 is loopback).
# Returns a connection object, or undef (with $@ set) on failure.
sub connect {
    my ($class, %a) = @_;
    my $host = $a{host} // '127.0.0.1';
    my $sock = IO::Socket::INET->new(
        PeerAddr => $host,
        PeerPort => $a{port},
        Proto    => 'tcp',
        Timeout  => $a{timeout} // $DEFAULT_TIMEOUT,
        (defined $a{local} ? (LocalAddr => $a{local}) : ()),
    );
    unless ($sock) {
        $@ = "connect to $host:$a{port}: $!";
        return undef;
    }
    $sock->autoflush(1);
    return bless {
        sock => $sock,
        buf  => '',
        eof  => 0,
        host => $host,
        port => $a{port},
    }, $class;
}

sub socket { $_[0]{sock} }

sub close {
    my $self = shift;
    CORE::close($self->{sock}) if $self->{sock};
    $self->{sock} = undef;
}

# Write all of $data (bounded).  Returns 1 on success, 0 on error.
sub send {
    my ($self, $data, $timeout) = @_;
    $timeout //= $DEFAULT_TIMEOUT;
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($self->{sock});
    my $off = 0;
    local $SIG{PIPE} = 'IGNORE';
    while ($off < length $data) {
        my $left = $deadline - time;
        return 0 if $left <= 0;
        next unless $sel->can_write($left);
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            return 0;
        }
        $off += $n;
    }
    return 1;
}

# Build a request string.  %h: extra headers; 'Connection' defaults to
# keep-alive for HTTP/1.1.
sub request_string {
    my ($method, $path, %h) = @_;
    my $s = "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    $h{'User-Agent'} //= 'ev2-test';
    for my $k (sort keys %h) {
        $s .= "$k: $h{$k}\r\n";
    }
    return "$s\r\n";
}

# Bytes already read from the socket by a lower layer that select() does
# not see (TLS, in Ev2HTTPS); none for plain TCP.
sub _buffered { return 0 }

# Why the last read failed.
sub _read_error_text { return "$!" }

# Read more bytes into the buffer.  Returns number of bytes read, 0 on EOF,
# undef on timeout or error (with $self->{error}).
sub _fill {
    my ($self, $deadline) = @_;
    return 0 if $self->{eof};
    my $sel = IO::Select->new($self->{sock});
    while (1) {
        if (!$self->_buffered) {
            my $left = $deadline - time;
            if ($left <= 0) {
                $self->{error} = 'timeout';
                return undef;
            }
            next unless $sel->can_read($left);
        }
        my $n = sysread($self->{sock}, my $chunk, 65536);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            $self->{error} = 'read: ' . $self->_read_error_text;
            # A reset counts as the connection being closed.
            $self->{eof} = 1;
            return 0;
        }
        if ($n == 0) {
            $self->{eof} = 1;
            return 0;
        }
        $self->{buf} .= $chunk;
        return $n;
    }
}

# Read one full response from the connection.
#   $c->read_response(timeout => 10, head => 0)
# head => 1: the request was HEAD (no body expected).
# Returns a hashref {status, reason, proto, headers => {lc name => value},
# body, raw_head} or undef on timeout/EOF (reason in $c->{error}).
sub read_response {
    my ($self, %a) = @_;
    my $deadline = time + ($a{timeout} // $DEFAULT_TIMEOUT);
    my $hend;
    while (($hend = index($self->{buf}, "\r\n\r\n")) < 0) {
        my $n = $self->_fill($deadline);
        if (!$n) {
            $self->{error} //= 'eof before response head';
            $self->{error} = 'eof before response head' if defined $n;
            return undef;
        }
    }
    my $head = substr($self->{buf}, 0, $hend + 4, '');
    my @lines = split /\r\n/, $head;
    my $sl = shift @lines;
    my ($proto, $status, $reason) = $sl =~ m{^(HTTP/\d\.\d)\s+(\d{3})\s*(.*)$}
        or do { $self->{error} = "bad status line: $sl"; return undef };
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $h{$k} = exists $h{$k} ? "$h{$k}, $v" : $v;
    }
    my $res = {
        proto    => $proto,
        status   => $status,
        reason   => $reason,
        headers  => \%h,
        raw_head => $head,
        body     => '',
    };
    my $no_body = $a{head} || $status =~ /^(1\d\d|204|304)$/;
    return $res if $no_body;

    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $body = '';
        while (1) {
            my $le;
            while (($le = index($self->{buf}, "\r\n")) < 0) {
                my $n = $self->_fill($deadline);
                unless ($n) { $self->{error} //= 'eof in chunk size'; return undef }
            }
            my $line = substr($self->{buf}, 0, $le + 2, '');
            my ($hex) = $line =~ /^([0-9a-fA-F]+)/;
            my $size = hex($hex // 0);
            if ($size == 0) {
                # trailers until empty line
                while (1) {
                    while (($le = index($self->{buf}, "\r\n")) < 0) {
                        my $n = $self->_fill($deadline);
                        unless ($n) { $self->{error} //= 'eof in trailer'; return undef }
                    }
                    my $t = substr($self->{buf}, 0, $le + 2, '');
                    last if $t eq "\r\n";
                }
                last;
            }
            while (length($self->{buf}) < $size + 2) {
                my $n = $self->_fill($deadline);
                unless ($n) { $self->{error} //= 'eof in chunk'; return undef }
            }
            $body .= substr($self->{buf}, 0, $size, '');
            substr($self->{buf}, 0, 2, '');
        }
        $res->{body} = $body;
    }
    elsif (defined $h{'content-length'}) {
        my $len = $h{'content-length'} + 0;
        while (length($self->{buf}) < $len) {
            my $n = $self->_fill($deadline);
            unless ($n) {
                $self->{error} //= 'eof in body ('
                    . length($self->{buf}) . " of $len bytes)";
                $res->{partial} = 1;
                $res->{body} = $self->{buf};
                return wantarray ? (undef, $res) : undef;
            }
        }
        $res->{body} = substr($self->{buf}, 0, $len, '');
    }
    else {
        # Body delimited by connection close.
        while (1) {
            my $n = $self->_fill($deadline);
            return undef unless defined $n;
            last if $n == 0;
        }
        $res->{body} = $self->{buf};
        $self->{buf} = '';
    }
    return $res;
}

# Wait until the peer closes the connection.  Returns the number of seconds
# waited, or undef if it did not close within $timeout.  Any data received
# meanwhile is kept in the buffer.
sub wait_eof {
    my ($self, $timeout) = @_;
    my $t0 = time;
    my $deadline = $t0 + $timeout;
    while (1) {
        return time - $t0 if $self->{eof};
        my $n = $self->_fill($deadline);
        if (!defined $n) {
            delete $self->{error};
            return undef;
        }
        return time - $t0 if $n == 0;
    }
}

# Is the connection still open right now (no EOF pending)?  Peeks without
# blocking longer than $wait seconds.
sub is_open {
    my ($self, $wait) = @_;
    return 0 if $self->{eof} || !$self->{sock};
    my $sel = IO::Select->new($self->{sock});
    return 1 unless $self->_buffered || $sel->can_read($wait // 0);
    my $n = $self->_fill(time + 1);
    return defined $n && $n > 0 ? 1 : 0;
}

# One-shot helper: open a connection, send one request with
# "Connection: close", read the response.  Returns the response hashref or
# undef (error in $@).
#   Ev2HTTP::get($port, '/path', method => 'GET', timeout => 10, headers => {})
sub get {
    my ($port, $path, %a) = @_;
    my $method = $a{method} // 'GET';
    my $c = Ev2HTTP->connect(port => $port, timeout => $a{timeout}) or return undef;
    my %h = (Connection => 'close', %{ $a{headers} // {} });
    unless ($c->send(request_string($method, $path, %h), $a{timeout})) {
        $@ = "send failed: $!";
        return undef;
    }
    my $res = $c->read_response(timeout => $a{timeout}, head => $method eq 'HEAD');
    $@ = $c->{error} unless $res;
    $c->close;
    return $res;
}

1;
