package websocket

import "time"

// Defaults used when an Options field is zero.
const (
	// DefaultReadLimit is the largest message accepted when Options.ReadLimit
	// is zero: 32 MiB. A larger message fails the connection with 1009.
	DefaultReadLimit = 32 << 20
	// DefaultCloseTimeout bounds the closing handshake when
	// Options.CloseTimeout is zero.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultPingTimeout is how long keepalive waits for a pong when
	// Options.PingTimeout is zero.
	DefaultPingTimeout = 15 * time.Second
	// DefaultHandshakeTimeout bounds writing Accept's 101 response when
	// AcceptOptions.HandshakeTimeout is zero, and is what duplex serve
	// allows a client to send its request headers.
	DefaultHandshakeTimeout = 10 * time.Second
)

// Options are the settings of a connection that both Accept and Dial take.
// The zero value is safe: a 32 MiB message limit, UTF-8 checking on, a 5 s
// bound on closing, no keepalive.
type Options struct {
	// ReadLimit is the largest message, in bytes, the connection accepts.
	// Zero means DefaultReadLimit; a negative value means no limit. A longer
	// message fails the connection with StatusMessageTooBig (1009) as soon
	// as a frame header announces it, before its payload is read. For a
	// compressed message the limit applies to the inflated bytes as they
	// are produced, and its compressed size may not pass the limit plus
	// 1/16 plus 1 KiB either.
	ReadLimit int64

	// CloseTimeout bounds the closing handshake (sending our close frame and
	// waiting for the peer's). Zero means DefaultCloseTimeout.
	CloseTimeout time.Duration

	// PingInterval, when positive, turns keepalive on: a ping is sent after
	// every PingInterval, and if no pong arrives within PingTimeout (zero
	// means DefaultPingTimeout) the connection fails with ErrKeepaliveTimeout.
	// Pongs are seen by the reader, so keepalive needs a goroutine reading.
	PingInterval time.Duration
	// PingTimeout is how long keepalive waits for a pong (see PingInterval).
	PingTimeout time.Duration

	// OnPing and OnPong, when set, are called by the reading goroutine with
	// the payload of each ping or pong received (valid only during the call).
	// Pings are answered automatically either way (RFC 6455 §5.5.2).
	OnPing func(payload []byte)
	// OnPong, like OnPing, observes each pong received.
	OnPong func(payload []byte)

	// Compression configures permessage-deflate (RFC 7692). The zero value
	// leaves it off.
	Compression CompressionOptions

	// DisableUTF8Check turns off the validation of text messages. Only for
	// peers known to be trusted: RFC 6455 §8.1 requires the check.
	DisableUTF8Check bool
}

func (o *Options) readLimit() int64 {
	switch {
	case o.ReadLimit == 0:
		return DefaultReadLimit
	case o.ReadLimit < 0:
		return 1<<63 - 1
	}
	return o.ReadLimit
}

func (o *Options) closeTimeout() time.Duration {
	if o.CloseTimeout <= 0 {
		return DefaultCloseTimeout
	}
	return o.CloseTimeout
}

func (o *Options) pingTimeout() time.Duration {
	if o.PingTimeout <= 0 {
		return DefaultPingTimeout
	}
	return o.PingTimeout
}
