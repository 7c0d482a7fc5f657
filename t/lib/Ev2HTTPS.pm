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

# Bytes TLS has already decrypted are read without waiting for the socket
# to become readable (Ev2HTTP::_fill and is_open ask).
sub _buffered {
    my $self = shift;
    return $self->{sock} ? $self->{sock}->pending : 0;
}

sub _read_error_text {
    return $IO::Socket::SSL::SSL_ERROR || "$!";
}

1;
