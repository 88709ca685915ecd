// Package pubsub is the channel engine of duplex serve: subscribe, publish,
// fan-out, presence, history and recovery by offset. It knows nothing of
// transports: the WebSocket endpoint, the HTTP publish API and any future
// transport all drive the same Hub.
//
// # Pieces
//
// A Broker assigns each published message its channel offset, keeps the
// channel's history and presence, and delivers messages and presence
// changes to every node that has subscribers for the channel. MemoryBroker
// is the broker of a single node; brokers on NATS or Redis (in their own
// packages) let several nodes share channels, because offsets, epochs and
// presence come from the broker, not from the Hub.
//
// A Hub is one node's view: it owns the set of local subscribers of each
// channel, applies the namespace options (history, presence, who may
// publish), and fans each message out to its local subscribers. Fan-out
// calls Subscriber.Deliver, which must not block: a transport queues the
// event and handles a full queue by its own policy, so one slow subscriber
// never stalls the publisher or the others.
//
// # Ordering and recovery
//
// Offsets of a channel rise by one per message, from 1. Every subscription
// receives a channel's messages in offset order, each at most once: the Hub
// drops any delivery whose offset is not above the last one delivered. A
// subscription that asks to resume from a Position gets exactly the missed
// messages, in order, before any new one, or Recovered=false when history
// cannot supply them (another epoch, or messages evicted); the epoch of a
// channel changes whenever its history is lost. A live subscription never
// misses a message silently either: when the broker skips offsets it no
// longer holds (a node's link to it was down longer than the history
// keeps), or loses the channel's history and delivers a new epoch, the
// subscription receives an EventLost naming the loss before the message
// after it.
//
// # Encoding once
//
// An Event is shared by all the subscribers it is delivered to. Event.Encoded
// with an Encoding lets a transport turn it into bytes (a JSON push, a
// prepared WebSocket frame) once for all of them.
package pubsub
