package websocket_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/duplex-ws/duplex/websocket"
)

// TestWriterFrameLayout checks the frames a streaming Writer puts on the
// wire: one per Flush-delimited fragment, large writes sent without an
// extra empty frame, and the final frame from Close.
func TestWriterFrameLayout(t *testing.T) {
	big := bytes.Repeat([]byte{0x5A}, 20000)
	type frame struct {
		fin bool
		op  byte
		n   int
	}
	cases := []struct {
		name  string
		write func(w io.WriteCloser)
		want  []frame
	}{
		{"small fragments", func(w io.WriteCloser) {
			w.Write([]byte("ab"))
			w.(interface{ Flush() error }).Flush()
			w.Write([]byte("cde"))
			w.(interface{ Flush() error }).Flush()
			w.Write([]byte("f"))
			w.Close()
		}, []frame{{false, 1, 2}, {false, 0, 3}, {true, 0, 1}}},
		{"empty fragments", func(w io.WriteCloser) {
			w.Write(nil)
			w.(interface{ Flush() error }).Flush()
			w.(interface{ Flush() error }).Flush()
			w.Close()
		}, []frame{{false, 1, 0}, {false, 0, 0}, {true, 0, 0}}},
		{"large writes", func(w io.WriteCloser) {
			w.Write(big)
			w.(interface{ Flush() error }).Flush()
			w.Write(big)
			w.(interface{ Flush() error }).Flush()
			w.Write([]byte("tail"))
			w.Close()
		}, []frame{{false, 1, 20000}, {false, 0, 20000}, {true, 0, 4}}},
		{"buffer fills", func(w io.WriteCloser) {
			for i := 0; i < 3000; i++ {
				w.Write([]byte("xy"))
			}
			w.Close()
		}, []frame{{false, 1, 4096 - 14}, {true, 0, 6000 - (4096 - 14)}}},
	}
	for _, tc := range cases {
		for _, role := range []websocket.Role{websocket.RoleServer, websocket.RoleClient} {
			t.Run(tc.name+"/"+ctRoleName(role), func(t *testing.T) {
				c, raw := ctRaw(t, role, nil)
				w, err := c.Writer(ctCtx(t), websocket.MessageText)
				if err != nil {
					t.Fatal(err)
				}
				go tc.write(w)
				for i, want := range tc.want {
					f := ctMustReadFrame(t, raw)
					if f.fin != want.fin || f.op != want.op || len(f.payload) != want.n || f.masked != (role == websocket.RoleClient) {
						t.Fatalf("frame %d: fin=%v op=%d len=%d masked=%v, want fin=%v op=%d len=%d",
							i, f.fin, f.op, len(f.payload), f.masked, want.fin, want.op, want.n)
					}
				}
			})
		}
	}
}
