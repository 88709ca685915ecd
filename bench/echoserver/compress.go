package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"net"
	"net/http"

	coder "github.com/coder/websocket"
	"github.com/duplex-ws/duplex/websocket"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"
)

// The echo servers with permessage-deflate (RFC 7692) on, for -compress.
// To compare like with like, every one of them agrees to no context
// takeover both ways (each message compressed on its own, as the load
// generator offers), compresses every message it sends whatever its size
// (where the library has a size threshold, it is set to 1 byte) at level 1
// (every library's default but gobwas, which has none: set here), and
// otherwise serves exactly as its uncompressed server in servers.go.

// compressServers maps each -lib name that supports permessage-deflate to
// its echo server with compression on.
var compressServers = map[string]serveFunc{
	"duplex":           serveDuplexDeflate,
	"duplex-eventloop": serveDuplexEventLoopDeflate,
	"gorilla":          serveGorillaDeflate,
	"coder":            serveCoderDeflate,
	"gobwas":           serveGobwasDeflate,
	"gws":              serveGWSDeflate,
	"nbio":             serveNbioDeflate,
}

// serveDuplexDeflate: serveDuplex with Options.Compression: no context
// takeover either way, Threshold -1 (compress every message), the default
// level 1. Text messages are checked for UTF-8, as RFC 6455 requires and
// Duplex does by default.
func serveDuplexDeflate(ln net.Listener) (func(), error) {
	opts := &websocket.AcceptOptions{Options: websocket.Options{Compression: websocket.CompressionOptions{
		Enabled:                 true,
		ServerNoContextTakeover: true,
		ClientNoContextTakeover: true,
		Threshold:               -1,
	}}}
	return serveHTTP(ln, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		duplexEcho(c)
	})
}

// serveDuplexEventLoopDeflate: serveDuplexEventLoop with
// Options.Compression, Threshold -1 and the default level 1; the event
// loop always answers no context takeover both ways.
func serveDuplexEventLoopDeflate(ln net.Listener) (func(), error) {
	return serveEventLoopWith(ln, websocket.Options{Compression: websocket.CompressionOptions{
		Enabled:   true,
		Threshold: -1,
	}})
}

// serveGorillaDeflate: serveGorilla with Upgrader.EnableCompression, which
// always answers no context takeover both ways and then compresses every
// message WriteMessage sends (through NextWriter) at level 1.
func serveGorillaDeflate(ln net.Listener) (func(), error) {
	up := gorilla.Upgrader{EnableCompression: true, CheckOrigin: func(*http.Request) bool { return true }}
	return serveHTTP(ln, func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		gorillaEcho(c)
	})
}

// serveCoderDeflate: serveCoder with CompressionNoContextTakeover and
// CompressionThreshold 1 (its default would leave messages under 512 bytes
// uncompressed); Write compresses a message into one frame at level 1.
func serveCoderDeflate(ln net.Listener) (func(), error) {
	opts := &coder.AcceptOptions{CompressionMode: coder.CompressionNoContextTakeover, CompressionThreshold: 1}
	return serveHTTP(ln, func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, opts)
		if err != nil {
			return
		}
		coderEcho(c)
	})
}

// serveGobwasDeflate: gobwas/ws's wsflate extension (its
// DefaultParameters: no context takeover both ways) negotiated by
// ws.Upgrader, then per connection one wsflate.Reader and one
// wsflate.Writer over compress/flate (level 1), each reset for every
// message, as the wsflate documentation shows. Compression works on whole
// messages, so frames are gathered into a message, inflated when the first
// frame has RSV1, and the echo goes back deflated as one frame with RSV1.
func serveGobwasDeflate(ln net.Listener) (func(), error) {
	return acceptEach(ln, gobwasDeflateConn)
}

// resettableInflater gives compress/flate's decompressor the
// Reset(io.Reader) method wsflate.Reader looks for, so that one
// decompressor (about 40 KiB) serves every message of a connection
// instead of a new one per message.
type resettableInflater struct{ io.ReadCloser }

// Reset makes the decompressor read a new message from r, keeping its
// window allocation.
func (f resettableInflater) Reset(r io.Reader) { _ = f.ReadCloser.(flate.Resetter).Reset(r, nil) }

func gobwasDeflateConn(conn net.Conn) {
	defer conn.Close()
	ext := wsflate.Extension{Parameters: wsflate.DefaultParameters}
	u := ws.Upgrader{Negotiate: ext.Negotiate}
	if _, err := u.Upgrade(conn); err != nil {
		return
	}
	_, deflate := ext.Accepted()
	br := bufio.NewReaderSize(conn, 4096)
	wr := newGobwasWriter(conn)
	fr := wsflate.NewReader(nil, func(r io.Reader) wsflate.Decompressor {
		return resettableInflater{flate.NewReader(r)}
	})
	fw := wsflate.NewWriter(nil, func(w io.Writer) wsflate.Compressor {
		f, _ := flate.NewWriter(w, flate.BestSpeed)
		return f
	})
	var (
		buf        []byte       // one frame's payload
		msg        []byte       // the message so far, as received
		op         ws.OpCode    // the message's opcode
		compressed bool         // the message's first frame had RSV1
		src        bytes.Reader // msg, for the inflater
		plain      bytes.Buffer // the inflated message
		out        bytes.Buffer // the deflated echo
	)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil || h.Length > 64<<20 {
			return
		}
		n := int(h.Length)
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
			h.Masked = false
		}
		if h.OpCode.IsControl() {
			switch h.OpCode {
			case ws.OpPong:
				continue
			case ws.OpPing:
				h.OpCode = ws.OpPong
			}
			if wr.writeFrame(h, p) != nil || h.OpCode == ws.OpClose {
				return
			}
			continue
		}
		if h.OpCode != ws.OpContinuation {
			op, compressed, msg = h.OpCode, h.Rsv1(), msg[:0]
		} else if h.Rsv1() {
			return // RSV1 belongs on the first frame only (RFC 7692 §6)
		}
		if compressed && !deflate {
			return // RSV1 without the extension
		}
		msg = append(msg, p...)
		if len(msg) > 64<<20 {
			return
		}
		if !h.Fin {
			continue
		}
		payload := msg
		if compressed {
			src.Reset(msg)
			fr.Reset(&src)
			plain.Reset()
			if _, err := plain.ReadFrom(fr); err != nil {
				return
			}
			payload = plain.Bytes()
		}
		rsv := byte(0)
		if deflate {
			out.Reset()
			fw.Reset(&out)
			if _, err := fw.Write(payload); err != nil {
				return
			}
			if err := fw.Flush(); err != nil {
				return
			}
			payload, rsv = out.Bytes(), ws.Rsv(true, false, false)
		}
		if wr.writeFrame(ws.Header{Fin: true, Rsv: rsv, OpCode: op, Length: int64(len(payload))}, payload) != nil {
			return
		}
		if cap(msg) > 1<<20 { // do not keep a large message's buffers
			msg, buf = nil, nil
			plain, out = bytes.Buffer{}, bytes.Buffer{}
		}
	}
}

// serveGWSDeflate: serveGWS with PermessageDeflate on, no context
// takeover either way (the zero values of ServerContextTakeover and
// ClientContextTakeover), Threshold 1 (its default leaves messages under
// 512 bytes uncompressed), level 1 (its default).
func serveGWSDeflate(ln net.Listener) (func(), error) {
	return runGWS(ln, gwsEcho{}, &gws.ServerOption{PermessageDeflate: gws.PermessageDeflate{
		Enabled:   true,
		Threshold: 1,
	}})
}

// serveNbioDeflate: serveNbio with Upgrader.EnableCompression, which, as
// gorilla's, answers no context takeover both ways and compresses every
// message at level 1.
func serveNbioDeflate(ln net.Listener) (func(), error) {
	up := newNbioEchoUpgrader()
	up.EnableCompression(true)
	return runNbio(ln, func(w http.ResponseWriter, r *http.Request) {
		_, _ = up.Upgrade(w, r, nil)
	})
}
