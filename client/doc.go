// Package client is the Go SDK of duplex serve's channel protocol
// (duplex.v1, described in docs/protocol.md): subscribe to channels with a
// handler, publish, ask for presence and history, over one WebSocket
// connection that the client keeps alive by itself.
//
//	c := client.New("wss://example.com/ws", &client.Options{User: "alice"})
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "news", func(m client.Message) {
//		fmt.Printf("%d: %s\n", m.Offset, m.Data)
//	}, nil)
//	...
//	pos, err := c.Publish(ctx, "news", map[string]string{"text": "hello"})
//
// # What it does for you
//
// New returns at once and connects in the background. When the connection
// drops, the client reconnects after a jittered exponential backoff
// (Options.MinBackoff, Options.MaxBackoff; longer when a server at its
// limits refused the handshake with Retry-After), sends connect again, and
// subscribes again to every channel with the position of the last message
// it received, so the server replays what was missed. Handlers see each
// channel's messages in offset order and never the same offset twice;
// SubscribeOptions.OnSubscribed tells, after each reconnection, whether the
// gap could be filled (Recovered) or the application must reload. It tells
// the same way (Recovered false, with SubscribedEvent.Lost) when the server
// reports that messages were lost while the client stayed connected (its
// node's link to the cluster's broker was down longer than the channel's
// history keeps, or the broker lost the channel's history and started a
// new epoch), so one reload path handles both. Options.
// OnState reports Connecting, Connected, Disconnected (with the cause) and
// Closed. Which endings are retried and which stop the client is listed on
// Client.
//
// # Several servers
//
// Options.URLs lists more addresses of the same service, typically the
// other nodes of a cluster (duplex serve --broker nats://…):
//
//	c := client.New("wss://a.example.com/ws", &client.Options{
//		URLs: []string{"wss://b.example.com/ws", "wss://c.example.com/ws"},
//	})
//
// Each reconnection, after the same jittered backoff, goes to the next
// address in turn (a, b, c, a, …), so a client whose node dies, or whose
// node cannot be reached, moves to another one. The nodes of a cluster share
// channels, offsets and history through the broker: the client subscribes
// again there with the position of the last message it received, the new
// node replays what was missed (SubscribedEvent.Recovered is true), and the
// handlers see every message once, in order. A publish whose answer was lost
// with the dead node fails with ErrDisconnected, as on any disconnection.
// Client.URL tells which address is in use.
//
// # When the server fails
//
// A node of a cluster stays up while its broker (NATS, Redis) is down, and
// answers what needs the broker with *Error 100 (CodeInternal,
// Error.Retryable): the server's failure, not a refusal. Calls return it
// like any error, and the application may try again later. The
// subscriptions the client restores after a reconnection have no caller
// to return it to, so the client retries them itself: when the server
// answers such a subscribe with 100, the subscription stays, with its
// position, and is subscribed again after a jittered backoff (between
// Options.MinBackoff and Options.MaxBackoff, longer after each failure),
// until the server accepts. OnSubscribed is told of each failure
// (SubscribedEvent.Err, with Retrying true and RetryIn), then, as after
// any reconnection, of the success: Recovered true when the broker still
// had the messages missed meanwhile, which follow, once each, in order.
// The connection stays up throughout (the server does not count its
// failures against the client's budget of bad commands). A refusal (103
// invalid channel, 104 unknown namespace, 105 permission denied, ...) still
// ends the subscription: OnSubscribed gets Err with Retrying false. A first
// Subscribe answered with 100 returns the error instead, as any call.
//
// # Calls
//
// Every call takes a context and waits, within it, for a connection.
// Answers are matched to commands by id. The server's refusals come back as
// *Error with a Code constant; a command whose answer is lost with the
// connection fails with ErrDisconnected and is never sent again, so a
// publish is at most once: when in doubt, the application decides.
//
// # Handlers and buffering
//
// Handlers and hooks run on one goroutine per client, one at a time, in
// the order things happened. The connection is read on another goroutine,
// which never waits for handlers: up to Options.QueueSize received messages
// wait in memory. When handlers fall further behind, the client drops the
// connection, lets them catch up, then reconnects and recovers the rest
// from the server's history (as the server itself does with a slow
// consumer), so a slow handler costs neither unbounded memory nor a
// stalled connection, and a handler may call the client (even Close)
// without deadlock.
package client
