# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# Ev2HTTPS: the raw HTTP/1.1 client of Ev2HTTP over TLS (IO::Socket::SSL).
#
#   my $c = Ev2HTTPS->connect(port => $tls_port);   # handshake, ALPN http/1.1
#   $c->send(Ev2HTTP::request_string('GET', '/'));
#   my $r = $c->read_response(timeout => 10);
#
# The connection object is an Ev2HTTP, so send/read_response/wait_eof/
# is_open work as for plain HTTP; only the read path knows that TLS may hold
# decrypted bytes that select() does not see.  The certificate is not
# verified (it is the test's own, see Ev2TLS.pm).  Every wait is bounded.
package Ev2HTTPS;

use strict;
use warnings;

use IO::Select ();
use Time::HiRes qw(time);
use Errno qw(EINTR EAGAIN EWOULDBLOCK);
use Ev2HTTP ();

our @ISA = ('Ev2HTTP');

# IO::Socket::SSL is not needed by the rest of the suite: a test asks.
sub available {
    return eval { require IO::Socket::SSL; 1 } ? 1 : 0;
}

# Ev2HTTPS->connect(port => $port [, host => '127.0.0.1', timeout => 10])
# Returns undef with $@ set on failure.
sub connect {
    my ($class, %a) = @_;
    require IO::Socket::SSL;
    my $host = $a{host} // '127.0.0.1';
    my $sock = IO::Socket::SSL->new(
        PeerAddr           => $host,
        PeerPort           => $a{port},
        Proto              => 'tcp',
        Timeout            => $a{timeout} // $Ev2HTTP::DEFAULT_TIMEOUT,
        SSL_verify_mode    => IO::Socket::SSL::SSL_VERIFY_NONE(),
        SSL_alpn_protocols => ['http/1.1'],
    );
    unless ($sock) {
        $@ = "TLS connect to $host:$a{port}: "
            . ($IO::Socket::SSL::SSL_ERROR || $!);
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

# The negotiated ALPN protocol ('' if none).
sub alpn {
    my $self = shift;
    return $self->{sock} ? ($self->{sock}->alpn_selected // '') : '';
}

# As Ev2HTTP::_fill, but bytes TLS has already decrypted (pending) are
# read without waiting for the socket to become readable.
sub _fill {
    my ($self, $deadline) = @_;
    return 0 if $self->{eof};
    my $sock = $self->{sock};
    my $sel = IO::Select->new($sock);
    while (1) {
        if (!$sock->pending) {
            my $left = $deadline - time;
            if ($left <= 0) {
                $self->{error} = 'timeout';
                return undef;
            }
            next unless $sel->can_read($left);
        }
        my $n = sysread($sock, my $chunk, 65536);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            $self->{error} = 'read: ' . ($IO::Socket::SSL::SSL_ERROR || $!);
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

sub is_open {
    my ($self, $wait) = @_;
    return 0 if $self->{eof} || !$self->{sock};
    return $self->SUPER::is_open($wait) unless $self->{sock}->pending;
    my $n = $self->_fill(time + 1);
    return defined $n && $n > 0 ? 1 : 0;
}

1;
