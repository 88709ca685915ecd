package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/duplex-ws/duplex/websocket"
)

// command is one client command as it goes on the wire.
type command struct {
	ID      uint64          `json:"id"`
	Op      string          `json:"op"`
	Channel string          `json:"channel,omitempty"`
	Since   *Position       `json:"since,omitempty"`
	Limit   int             `json:"limit,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	User    string          `json:"user,omitempty"`
	Info    json.RawMessage `json:"info,omitempty"`
	Token   string          `json:"token,omitempty"`
}

// incoming is any message from the server: an answer (ID set) or a push.
type incoming struct {
	ID      *uint64         `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	From    uint64          `json:"from"` // of a lost push
	Old     *Position       `json:"old"`  // of a lost push for a new epoch
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
	Client  *ClientInfo     `json:"client"`
}

// answer is the outcome of one command.
type answer struct {
	result json.RawMessage
	err    error // *Error, or ErrDisconnected wrapped
}

// pending is a command waiting for its answer. onAnswer, when set, runs on
// the reading goroutine before anything else is read, so that it can update
// the client's state in order with the pushes that follow the answer. It is
// not called when the connection drops.
type pending struct {
	ch       chan answer // capacity 1
	onAnswer func(answer)
}

// errNotSent says that a command never reached the connection because the
// connection had already failed: it is safe to send it on the next one.
var errNotSent = errors.New("duplex: connection gone before the command was sent")

// conn is one WebSocket connection of a Client and the commands in flight on
// it. Writes of commands are ordered by wmu, a lock that also orders the
// client's decisions about subscriptions with what goes on the wire.
type conn struct {
	c   *Client
	ws  *websocket.Conn
	wmu chan struct{} // capacity 1: the write lock

	mu      sync.Mutex
	pending map[uint64]*pending
	err     error         // why the connection ended, once done is closed
	done    chan struct{} // closed when the reader has stopped
}

func newConn(c *Client, ws *websocket.Conn) *conn {
	return &conn{c: c, ws: ws, wmu: make(chan struct{}, 1), pending: map[uint64]*pending{}, done: make(chan struct{})}
}

// lockWrite takes the write lock. It fails with errNotSent when the
// connection is gone, or with ctx's error.
func (cn *conn) lockWrite(ctx context.Context) error {
	select {
	case cn.wmu <- struct{}{}:
		select {
		case <-cn.done:
			<-cn.wmu
			return errNotSent
		default:
			return nil
		}
	case <-cn.done:
		return errNotSent
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (cn *conn) unlockWrite() { <-cn.wmu }

// send registers cmd (giving it an id) and writes it. The caller holds the
// write lock. On error nothing reached the server: errNotSent, or ctx's
// error if ctx ended first.
func (cn *conn) send(ctx context.Context, cmd *command, onAnswer func(answer)) (*pending, error) {
	cmd.ID = cn.c.ids.Add(1)
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	p := &pending{ch: make(chan answer, 1), onAnswer: onAnswer}
	cn.mu.Lock()
	if cn.pending == nil {
		cn.mu.Unlock()
		return nil, errNotSent
	}
	cn.pending[cmd.ID] = p
	cn.mu.Unlock()
	// A failed Write never delivered a whole message: either nothing was
	// written, or a partial frame that fails the connection and that the
	// server never acts on.
	if err := cn.ws.Write(ctx, websocket.MessageText, b); err != nil {
		cn.forget(cmd.ID)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errNotSent
	}
	return p, nil
}

func (cn *conn) forget(id uint64) {
	cn.mu.Lock()
	delete(cn.pending, id)
	cn.mu.Unlock()
}

// call sends cmd and waits for its answer.
func (cn *conn) call(ctx context.Context, cmd *command) (json.RawMessage, error) {
	if err := cn.lockWrite(ctx); err != nil {
		return nil, err
	}
	p, err := cn.send(ctx, cmd, nil)
	cn.unlockWrite()
	if err != nil {
		return nil, err
	}
	return cn.wait(ctx, cmd.ID, p)
}

// wait waits for the answer of the command id. If ctx ends first, the answer
// is dropped when it comes.
func (cn *conn) wait(ctx context.Context, id uint64, p *pending) (json.RawMessage, error) {
	select {
	case a := <-p.ch:
		return a.result, a.err
	case <-ctx.Done():
		cn.forget(id)
		return nil, ctx.Err()
	case <-cn.c.stopCh:
		cn.forget(id)
		return nil, cn.c.stopError()
	}
}

// read runs on its own goroutine for the life of the connection: it reads
// every message, settles answers and hands pushes to the client.
func (cn *conn) read() {
	var err error
	for {
		var typ websocket.MessageType
		var b []byte
		typ, b, err = cn.ws.Read(context.Background())
		if err != nil {
			break
		}
		if typ != websocket.MessageText {
			cn.c.log.Warn("duplex: binary message from the server ignored", "bytes", len(b))
			continue
		}
		var in incoming
		if err2 := json.Unmarshal(b, &in); err2 != nil {
			cn.c.log.Warn("duplex: malformed message from the server ignored", "err", err2)
			continue
		}
		if in.ID != nil {
			cn.settle(&in)
			continue
		}
		if err = cn.c.push(cn, &in); err != nil {
			cn.ws.CloseNow()
			break
		}
	}
	cn.fail(err)
}

// settle hands an answer to its command.
func (cn *conn) settle(in *incoming) {
	id := *in.ID
	cn.mu.Lock()
	p := cn.pending[id]
	delete(cn.pending, id)
	cn.mu.Unlock()
	if p == nil {
		if id == 0 && in.Error != nil {
			cn.c.log.Warn("duplex: the server could not attribute a command", "code", in.Error.Code, "message", in.Error.Message)
		}
		return // a command whose caller gave up
	}
	a := answer{result: in.Result}
	if in.Error != nil {
		a.err = in.Error
	} else if a.result == nil {
		a.err = &Error{Code: CodeBadRequest, Message: fmt.Sprintf("answer %d has neither result nor error", id)}
	}
	if p.onAnswer != nil {
		p.onAnswer(a)
	}
	p.ch <- a
}

// fail ends the connection: commands in flight fail with ErrDisconnected,
// and the client stops using it.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	cn.err = err
	pend := cn.pending
	cn.pending = nil
	cn.mu.Unlock()
	cn.c.dropped(cn)
	for _, p := range pend {
		p.ch <- answer{err: fmt.Errorf("%w: %w", ErrDisconnected, err)}
	}
	close(cn.done)
}

// dead reports whether the connection has failed (its reader stopped).
func (cn *conn) dead() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.pending == nil
}
