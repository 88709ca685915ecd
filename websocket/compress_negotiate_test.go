package websocket

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// extHeader returns a header with one Sec-WebSocket-Extensions line per
// argument.
func extHeader(lines ...string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		h.Add("Sec-WebSocket-Extensions", l)
	}
	return h
}

func mkExt(name string, params ...extensionParam) extension {
	return extension{name: name, params: params}
}

func mkFlag(name string) extensionParam { return extensionParam{name: name} }

func mkVal(name, value string) extensionParam {
	return extensionParam{name: name, value: value, hasValue: true}
}

func TestParseExtensions(t *testing.T) {
	const mal = `malformed Sec-WebSocket-Extensions `
	tests := []struct {
		lines []string
		want  []extension
		err   string
	}{
		{lines: nil, want: nil},
		{lines: []string{"permessage-deflate"}, want: []extension{mkExt("permessage-deflate")}},
		{lines: []string{"permessage-deflate; client_max_window_bits"},
			want: []extension{mkExt("permessage-deflate", mkFlag("client_max_window_bits"))}},
		{lines: []string{"permessage-deflate;client_max_window_bits=10;server_no_context_takeover"},
			want: []extension{mkExt("permessage-deflate", mkVal("client_max_window_bits", "10"), mkFlag("server_no_context_takeover"))}},
		{lines: []string{" \ta ;\tb = 1 ;c=\"x\" , d\t "},
			want: []extension{mkExt("a", mkVal("b", "1"), mkVal("c", "x")), mkExt("d")}},
		{lines: []string{`a; b="10"; c="1\0"; d="\x"`},
			want: []extension{mkExt("a", mkVal("b", "10"), mkVal("c", "10"), mkVal("d", "x"))}},
		{lines: []string{"a,,b,", ", c"}, want: []extension{mkExt("a"), mkExt("b"), mkExt("c")}},
		{lines: []string{"a; x=1", "b", "a"}, want: []extension{mkExt("a", mkVal("x", "1")), mkExt("b"), mkExt("a")}},
		{lines: []string{"x-webkit-deflate-frame, permessage-deflate"},
			want: []extension{mkExt("x-webkit-deflate-frame"), mkExt("permessage-deflate")}},
		{lines: []string{"a!#$%&'*+-.^_`|~0; Z9=v.1"},
			want: []extension{mkExt("a!#$%&'*+-.^_`|~0", mkVal("Z9", "v.1"))}},
		{lines: []string{"Permessage-Deflate; Server_Max_Window_Bits=10"},
			want: []extension{mkExt("Permessage-Deflate", mkVal("Server_Max_Window_Bits", "10"))}},

		{lines: []string{""}, err: mal + `"": no extension in the list`},
		{lines: []string{" , ,"}, err: mal + `" , ,": no extension in the list`},
		{lines: []string{"a", ""}, err: mal + `"": no extension in the list`},
		{lines: []string{";a"}, err: mal + `";a": want an extension name at byte 0`},
		{lines: []string{"a;"}, err: mal + `"a;": want a parameter name at byte 2`},
		{lines: []string{"a;, b"}, err: mal + `"a;, b": want a parameter name at byte 2`},
		{lines: []string{"a;; b"}, err: mal + `"a;; b": want a parameter name at byte 2`},
		{lines: []string{"a; =1"}, err: mal + `"a; =1": want a parameter name at byte 3`},
		{lines: []string{"a; b="}, err: mal + `"a; b=": want a parameter value at byte 5`},
		{lines: []string{"a; b= ; c"}, err: mal + `"a; b= ; c": want a parameter value at byte 6`},
		{lines: []string{"a b"}, err: mal + `"a b": want ';' or ',' at byte 2`},
		{lines: []string{"a=1"}, err: mal + `"a=1": want ';' or ',' at byte 1`},
		{lines: []string{"a; b c"}, err: mal + `"a; b c": want ';' or ',' at byte 5`},
		{lines: []string{"a; b=1=2"}, err: mal + `"a; b=1=2": want ';' or ',' at byte 6`},
		{lines: []string{`a; b="1 0"`}, err: mal + `"a; b=\"1 0\"": quoted value "1 0" is not a token at byte 5`},
		{lines: []string{`a; b=""`}, err: mal + `"a; b=\"\"": quoted value "" is not a token at byte 5`},
		{lines: []string{`a; b="1,0"`}, err: mal + `"a; b=\"1,0\"": quoted value "1,0" is not a token at byte 5`},
		{lines: []string{`a; b="10`}, err: mal + `"a; b=\"10": unterminated quoted string at byte 5`},
		{lines: []string{`a; b="10\`}, err: mal + `"a; b=\"10\\": unterminated quoted string at byte 5`},
		{lines: []string{`a; b="x"y`}, err: mal + `"a; b=\"x\"y": want ';' or ',' at byte 8`},
		{lines: []string{`"a"`}, err: mal + `"\"a\"": want an extension name at byte 0`},
		{lines: []string{"pérmessage-deflate"}, err: mal + `"pérmessage-deflate": want ';' or ',' at byte 1`},
		{lines: []string{"a; b=\x7f"}, err: mal + `"a; b=\x7f": want a parameter value at byte 5`},
		{lines: []string{"permessage-deflate", "b;"}, err: mal + `"b;": want a parameter name at byte 2`},
		{lines: []string{"a; b=" + strings.Repeat("x", 200) + " c"},
			err: mal + `"a; b=` + strings.Repeat("x", 115) + `": want ';' or ',' at byte 206`},
	}
	for _, tt := range tests {
		got, err := parseExtensions(extHeader(tt.lines...))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("parseExtensions(%q) = %v, %v\nwant error %s", tt.lines, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseExtensions(%q) = %#v, %v\nwant %#v", tt.lines, got, err, tt.want)
		}
	}
}

func TestParseExtensionsOtherHeaders(t *testing.T) {
	h := http.Header{"Sec-Websocket-Protocol": {"a; b"}}
	h.Set("sec-websocket-extensions", "permessage-deflate") // canonicalized
	got, err := parseExtensions(h)
	if err != nil || !reflect.DeepEqual(got, []extension{mkExt("permessage-deflate")}) {
		t.Fatalf("parseExtensions = %v, %v", got, err)
	}
}

func TestExtensionString(t *testing.T) {
	e := mkExt("permessage-deflate", mkFlag("client_max_window_bits"), mkVal("server_max_window_bits", "10"))
	if got, want := e.String(), "permessage-deflate; client_max_window_bits; server_max_window_bits=10"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// mkParams builds a deflateParams: no-context-takeover for server and client,
// then the server's and the client's window bits.
func mkParams(snct, cnct bool, sbits, cbits int) deflateParams {
	return deflateParams{serverNoContextTakeover: snct, clientNoContextTakeover: cnct,
		serverMaxWindowBits: sbits, clientMaxWindowBits: cbits}
}

func TestAcceptDeflate(t *testing.T) {
	on := CompressionOptions{Enabled: true}
	full := mkParams(false, false, 15, 15)
	tests := []struct {
		name   string
		lines  []string
		opts   CompressionOptions
		want   string // "" when declined
		params deflateParams
	}{
		// Single offers, default server.
		{"plain", []string{"permessage-deflate"}, on, "permessage-deflate", full},
		{"browser", []string{"permessage-deflate; client_max_window_bits"}, on, "permessage-deflate", full},
		{"snct", []string{"permessage-deflate; server_no_context_takeover"}, on,
			"permessage-deflate; server_no_context_takeover", mkParams(true, false, 15, 15)},
		{"cnct echoed", []string{"permessage-deflate; client_no_context_takeover"}, on,
			"permessage-deflate; client_no_context_takeover", mkParams(false, true, 15, 15)},
		{"smwb 10", []string{"permessage-deflate; server_max_window_bits=10"}, on,
			"permessage-deflate; server_max_window_bits=10", mkParams(false, false, 10, 15)},
		{"smwb 8", []string{"permessage-deflate; server_max_window_bits=8"}, on,
			"permessage-deflate; server_max_window_bits=8", mkParams(false, false, 8, 15)},
		{"smwb 15 answered", []string{"permessage-deflate; server_max_window_bits=15"}, on,
			"permessage-deflate; server_max_window_bits=15", full},
		{"smwb quoted", []string{`permessage-deflate; server_max_window_bits="10"`}, on,
			"permessage-deflate; server_max_window_bits=10", mkParams(false, false, 10, 15)},
		{"smwb quoted escaped", []string{`permessage-deflate; server_max_window_bits="1\1"`}, on,
			"permessage-deflate; server_max_window_bits=11", mkParams(false, false, 11, 15)},
		{"cmwb 9", []string{"permessage-deflate; client_max_window_bits=9"}, on,
			"permessage-deflate; client_max_window_bits=9", mkParams(false, false, 15, 9)},
		{"cmwb 8", []string{"permessage-deflate; client_max_window_bits=8"}, on,
			"permessage-deflate; client_max_window_bits=8", mkParams(false, false, 15, 8)},
		{"cmwb 15", []string{"permessage-deflate; client_max_window_bits=15"}, on, "permessage-deflate", full},
		{"cmwb quoted", []string{`permessage-deflate; client_max_window_bits="9"`}, on,
			"permessage-deflate; client_max_window_bits=9", mkParams(false, false, 15, 9)},
		{"all four", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11"}, on,
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11",
			mkParams(true, true, 12, 11)},
		{"all four reordered, spaced", []string{"permessage-deflate ;client_max_window_bits = 11;server_max_window_bits=\t12 ; client_no_context_takeover;server_no_context_takeover"}, on,
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11",
			mkParams(true, true, 12, 11)},

		// Invalid single offers are declined.
		{"smwb no value", []string{"permessage-deflate; server_max_window_bits"}, on, "", deflateParams{}},
		{"smwb 7", []string{"permessage-deflate; server_max_window_bits=7"}, on, "", deflateParams{}},
		{"smwb 16", []string{"permessage-deflate; server_max_window_bits=16"}, on, "", deflateParams{}},
		{"smwb 0", []string{"permessage-deflate; server_max_window_bits=0"}, on, "", deflateParams{}},
		{"smwb 09", []string{"permessage-deflate; server_max_window_bits=09"}, on, "", deflateParams{}},
		{"smwb 010", []string{"permessage-deflate; server_max_window_bits=010"}, on, "", deflateParams{}},
		{"smwb 100", []string{"permessage-deflate; server_max_window_bits=100"}, on, "", deflateParams{}},
		{"smwb +9", []string{"permessage-deflate; server_max_window_bits=+9"}, on, "", deflateParams{}},
		{"smwb -9", []string{"permessage-deflate; server_max_window_bits=-9"}, on, "", deflateParams{}},
		{"smwb a", []string{"permessage-deflate; server_max_window_bits=a"}, on, "", deflateParams{}},
		{"smwb 1a", []string{"permessage-deflate; server_max_window_bits=1a"}, on, "", deflateParams{}},
		{"smwb 9.0", []string{"permessage-deflate; server_max_window_bits=9.0"}, on, "", deflateParams{}},
		{"smwb quoted 16", []string{`permessage-deflate; server_max_window_bits="16"`}, on, "", deflateParams{}},
		{"smwb quoted 09", []string{`permessage-deflate; server_max_window_bits="09"`}, on, "", deflateParams{}},
		{"smwb duplicate", []string{"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"}, on, "", deflateParams{}},
		{"smwb duplicate differing", []string{"permessage-deflate; server_max_window_bits=10; server_max_window_bits=11"}, on, "", deflateParams{}},
		{"cmwb 7", []string{"permessage-deflate; client_max_window_bits=7"}, on, "", deflateParams{}},
		{"cmwb 16", []string{"permessage-deflate; client_max_window_bits=16"}, on, "", deflateParams{}},
		{"cmwb 08", []string{"permessage-deflate; client_max_window_bits=08"}, on, "", deflateParams{}},
		{"cmwb x", []string{"permessage-deflate; client_max_window_bits=x"}, on, "", deflateParams{}},
		{"cmwb quoted 7", []string{`permessage-deflate; client_max_window_bits="7"`}, on, "", deflateParams{}},
		{"cmwb duplicate", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits"}, on, "", deflateParams{}},
		{"cmwb duplicate with value", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}, on, "", deflateParams{}},
		{"snct value", []string{"permessage-deflate; server_no_context_takeover=1"}, on, "", deflateParams{}},
		{"snct quoted value", []string{`permessage-deflate; server_no_context_takeover="true"`}, on, "", deflateParams{}},
		{"snct duplicate", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, on, "", deflateParams{}},
		{"cnct value", []string{"permessage-deflate; client_no_context_takeover=1"}, on, "", deflateParams{}},
		{"cnct duplicate", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, on, "", deflateParams{}},
		{"unknown param", []string{"permessage-deflate; foo"}, on, "", deflateParams{}},
		{"unknown param with value", []string{"permessage-deflate; client_max_window_bits; x=1"}, on, "", deflateParams{}},
		{"param name case", []string{"permessage-deflate; Server_No_Context_Takeover"}, on, "", deflateParams{}},
		{"extension name case", []string{"Permessage-Deflate"}, on, "", deflateParams{}},
		{"other extensions only", []string{"x-webkit-deflate-frame, foo; bar=1"}, on, "", deflateParams{}},
		{"no header", nil, on, "", deflateParams{}},

		// Several offers: the first acceptable one wins.
		{"first invalid, second valid", []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"}, on,
			"permessage-deflate", full},
		{"first invalid, second valid, across lines", []string{"permessage-deflate; server_max_window_bits=7", "permessage-deflate; client_no_context_takeover"}, on,
			"permessage-deflate; client_no_context_takeover", mkParams(false, true, 15, 15)},
		{"first of two valid", []string{"permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate; client_max_window_bits"}, on,
			"permessage-deflate; server_max_window_bits=10", mkParams(false, false, 10, 15)},
		{"first of two valid, across lines", []string{"permessage-deflate; server_no_context_takeover", "permessage-deflate"}, on,
			"permessage-deflate; server_no_context_takeover", mkParams(true, false, 15, 15)},
		{"unknown extensions mixed in", []string{"x-webkit-deflate-frame, permessage-deflate; bogus", "foo; bar=\"baz\", permessage-deflate; server_max_window_bits=9, permessage-deflate"}, on,
			"permessage-deflate; server_max_window_bits=9", mkParams(false, false, 9, 15)},
		{"all invalid", []string{"permessage-deflate; server_max_window_bits", "permessage-deflate; client_max_window_bits=16, permessage-deflate; x"}, on, "", deflateParams{}},

		// Server preferences.
		{"server wants snct", []string{"permessage-deflate"}, CompressionOptions{Enabled: true, ServerNoContextTakeover: true},
			"permessage-deflate; server_no_context_takeover", mkParams(true, false, 15, 15)},
		{"server wants cnct", []string{"permessage-deflate; client_max_window_bits"}, CompressionOptions{Enabled: true, ClientNoContextTakeover: true},
			"permessage-deflate; client_no_context_takeover", mkParams(false, true, 15, 15)},
		{"server wants snct, offered too", []string{"permessage-deflate; server_no_context_takeover"}, CompressionOptions{Enabled: true, ServerNoContextTakeover: true},
			"permessage-deflate; server_no_context_takeover", mkParams(true, false, 15, 15)},
		{"server window, not offered", []string{"permessage-deflate"}, CompressionOptions{Enabled: true, ServerMaxWindowBits: 10},
			"permessage-deflate; server_max_window_bits=10", mkParams(false, false, 10, 15)},
		{"server window below offered", []string{"permessage-deflate; server_max_window_bits=12"}, CompressionOptions{Enabled: true, ServerMaxWindowBits: 10},
			"permessage-deflate; server_max_window_bits=10", mkParams(false, false, 10, 15)},
		{"server window above offered", []string{"permessage-deflate; server_max_window_bits=9"}, CompressionOptions{Enabled: true, ServerMaxWindowBits: 10},
			"permessage-deflate; server_max_window_bits=9", mkParams(false, false, 9, 15)},
		{"server window 15", []string{"permessage-deflate"}, CompressionOptions{Enabled: true, ServerMaxWindowBits: 15}, "permessage-deflate", full},
		{"server window out of range means 15", []string{"permessage-deflate"}, CompressionOptions{Enabled: true, ServerMaxWindowBits: 20, ClientMaxWindowBits: 3},
			"permessage-deflate", full},
		{"client window, offered without value", []string{"permessage-deflate; client_max_window_bits"}, CompressionOptions{Enabled: true, ClientMaxWindowBits: 10},
			"permessage-deflate; client_max_window_bits=10", mkParams(false, false, 15, 10)},
		{"client window below offered", []string{"permessage-deflate; client_max_window_bits=12"}, CompressionOptions{Enabled: true, ClientMaxWindowBits: 10},
			"permessage-deflate; client_max_window_bits=10", mkParams(false, false, 15, 10)},
		{"client window above offered", []string{"permessage-deflate; client_max_window_bits=9"}, CompressionOptions{Enabled: true, ClientMaxWindowBits: 10},
			"permessage-deflate; client_max_window_bits=9", mkParams(false, false, 15, 9)},
		{"client window not offered: accepted unbounded", []string{"permessage-deflate"}, CompressionOptions{Enabled: true, ClientMaxWindowBits: 10},
			"permessage-deflate", full},
		{"everything", []string{"permessage-deflate; client_max_window_bits"},
			CompressionOptions{Enabled: true, ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 9, ClientMaxWindowBits: 8},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8",
			mkParams(true, true, 9, 8)},
		{"disabled", []string{"permessage-deflate"}, CompressionOptions{ServerNoContextTakeover: true}, "", deflateParams{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offers, err := parseExtensions(extHeader(tt.lines...))
			if err != nil {
				t.Fatalf("parseExtensions: %v", err)
			}
			params, resp, ok := acceptDeflate(offers, &tt.opts)
			if ok != (tt.want != "") || resp != tt.want || params != tt.params {
				t.Fatalf("acceptDeflate(%q) = %+v, %q, %v\nwant %+v, %q", tt.lines, params, resp, ok, tt.params, tt.want)
			}
		})
	}
	if _, resp, ok := acceptDeflate([]extension{mkExt("permessage-deflate")}, nil); ok || resp != "" {
		t.Errorf("acceptDeflate with nil options = %q, %v", resp, ok)
	}
}

func TestDeflateOffer(t *testing.T) {
	tests := []struct {
		opts *CompressionOptions
		want string
	}{
		{nil, ""},
		{&CompressionOptions{ServerNoContextTakeover: true, ServerMaxWindowBits: 10}, ""},
		{&CompressionOptions{Enabled: true}, "permessage-deflate; client_max_window_bits"},
		{&CompressionOptions{Enabled: true, ServerNoContextTakeover: true},
			"permessage-deflate; server_no_context_takeover; client_max_window_bits"},
		{&CompressionOptions{Enabled: true, ClientNoContextTakeover: true},
			"permessage-deflate; client_no_context_takeover; client_max_window_bits"},
		{&CompressionOptions{Enabled: true, ServerMaxWindowBits: 10},
			"permessage-deflate; server_max_window_bits=10; client_max_window_bits"},
		{&CompressionOptions{Enabled: true, ClientMaxWindowBits: 9},
			"permessage-deflate; client_max_window_bits=9"},
		{&CompressionOptions{Enabled: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15},
			"permessage-deflate; client_max_window_bits"},
		{&CompressionOptions{Enabled: true, ServerMaxWindowBits: 7, ClientMaxWindowBits: 16},
			"permessage-deflate; client_max_window_bits"},
		{&CompressionOptions{Enabled: true, ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 8, ClientMaxWindowBits: 12},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=12"},
	}
	for _, tt := range tests {
		got := deflateOffer(tt.opts)
		if got != tt.want {
			t.Errorf("deflateOffer(%+v) = %q, want %q", tt.opts, got, tt.want)
		}
		if got == "" {
			continue
		}
		// Our own offer is always acceptable to a default server.
		exts, err := parseExtensions(extHeader(got))
		if err != nil {
			t.Fatalf("offer %q does not parse: %v", got, err)
		}
		if _, err := readDeflateParams(exts[0], false); err != nil || len(exts) != 1 {
			t.Errorf("offer %q is not a valid offer: %v", got, err)
		}
	}
}

func TestCheckDeflateResponse(t *testing.T) {
	on := CompressionOptions{Enabled: true}
	full := mkParams(false, false, 15, 15)
	const (
		offer    = `"permessage-deflate; client_max_window_bits"`
		notFit   = `server's answer %s does not fit the offer ` + offer + `: `
		answer   = `server's answer `
		invalid  = ` is invalid: `
		notOffer = ` that was not offered`
	)
	tests := []struct {
		name   string
		opts   *CompressionOptions
		lines  []string
		params deflateParams
		ok     bool
		err    string
	}{
		{"declined", &on, nil, deflateParams{}, false, ""},
		{"plain", &on, []string{"permessage-deflate"}, full, true, ""},
		{"spaced", &on, []string{" permessage-deflate ;server_max_window_bits = 12 "}, mkParams(false, false, 12, 15), true, ""},
		{"server adds snct", &on, []string{"permessage-deflate; server_no_context_takeover"}, mkParams(true, false, 15, 15), true, ""},
		{"server adds cnct", &on, []string{"permessage-deflate; client_no_context_takeover"}, mkParams(false, true, 15, 15), true, ""},
		{"server adds smwb", &on, []string{"permessage-deflate; server_max_window_bits=9"}, mkParams(false, false, 9, 15), true, ""},
		{"server bounds client window", &on, []string{"permessage-deflate; client_max_window_bits=10"}, mkParams(false, false, 15, 10), true, ""},
		{"quoted value", &on, []string{`permessage-deflate; client_max_window_bits="10"`}, mkParams(false, false, 15, 10), true, ""},
		{"all four", &on, []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8"},
			mkParams(true, true, 8, 8), true, ""},
		{"smwb offered, equal", &CompressionOptions{Enabled: true, ServerMaxWindowBits: 10},
			[]string{"permessage-deflate; server_max_window_bits=10"}, mkParams(false, false, 10, 15), true, ""},
		{"smwb offered, smaller", &CompressionOptions{Enabled: true, ServerMaxWindowBits: 10},
			[]string{"permessage-deflate; server_max_window_bits=8"}, mkParams(false, false, 8, 15), true, ""},
		{"cmwb offered, absent from answer", &CompressionOptions{Enabled: true, ClientMaxWindowBits: 10},
			[]string{"permessage-deflate"}, mkParams(false, false, 15, 10), true, ""},
		{"cmwb offered, smaller", &CompressionOptions{Enabled: true, ClientMaxWindowBits: 10},
			[]string{"permessage-deflate; client_max_window_bits=9"}, mkParams(false, false, 15, 9), true, ""},
		{"cnct offered, not answered", &CompressionOptions{Enabled: true, ClientNoContextTakeover: true},
			[]string{"permessage-deflate"}, mkParams(false, true, 15, 15), true, ""},
		{"snct offered, answered", &CompressionOptions{Enabled: true, ServerNoContextTakeover: true},
			[]string{"permessage-deflate; server_no_context_takeover"}, mkParams(true, false, 15, 15), true, ""},
		{"disabled, declined", &CompressionOptions{}, nil, deflateParams{}, false, ""},
		{"nil, declined", nil, nil, deflateParams{}, false, ""},

		// Errors.
		{"malformed", &on, []string{"permessage-deflate;"}, deflateParams{}, false,
			`malformed Sec-WebSocket-Extensions "permessage-deflate;": want a parameter name at byte 19`},
		{"empty", &on, []string{""}, deflateParams{}, false,
			`malformed Sec-WebSocket-Extensions "": no extension in the list`},
		{"other extension", &on, []string{"x-webkit-deflate-frame"}, deflateParams{}, false,
			`server accepted extension "x-webkit-deflate-frame"` + notOffer},
		{"name case", &on, []string{"Permessage-Deflate"}, deflateParams{}, false,
			`server accepted extension "Permessage-Deflate"` + notOffer},
		{"twice", &on, []string{"permessage-deflate, permessage-deflate"}, deflateParams{}, false,
			`server accepted 2 extensions (permessage-deflate, permessage-deflate), but only one, permessage-deflate, was offered`},
		{"twice across lines", &on, []string{"permessage-deflate", "permessage-deflate; server_no_context_takeover"}, deflateParams{}, false,
			`server accepted 2 extensions (permessage-deflate, permessage-deflate), but only one, permessage-deflate, was offered`},
		{"extra extension", &on, []string{"permessage-deflate, foo"}, deflateParams{}, false,
			`server accepted 2 extensions (permessage-deflate, foo), but only one, permessage-deflate, was offered`},
		{"duplicate", &on, []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, deflateParams{}, false,
			answer + `"permessage-deflate; server_no_context_takeover; server_no_context_takeover"` + invalid + `duplicate parameter server_no_context_takeover`},
		{"duplicate window", &on, []string{"permessage-deflate; client_max_window_bits=9; client_max_window_bits=9"}, deflateParams{}, false,
			answer + `"permessage-deflate; client_max_window_bits=9; client_max_window_bits=9"` + invalid + `duplicate parameter client_max_window_bits`},
		{"unknown param", &on, []string{"permessage-deflate; foo=1"}, deflateParams{}, false,
			answer + `"permessage-deflate; foo=1"` + invalid + `unknown parameter "foo"`},
		{"snct value", &on, []string{"permessage-deflate; server_no_context_takeover=yes"}, deflateParams{}, false,
			answer + `"permessage-deflate; server_no_context_takeover=yes"` + invalid + `parameter server_no_context_takeover takes no value, got "yes"`},
		{"cnct value", &on, []string{`permessage-deflate; client_no_context_takeover="x"`}, deflateParams{}, false,
			answer + `"permessage-deflate; client_no_context_takeover=x"` + invalid + `parameter client_no_context_takeover takes no value, got "x"`},
		{"smwb no value", &on, []string{"permessage-deflate; server_max_window_bits"}, deflateParams{}, false,
			answer + `"permessage-deflate; server_max_window_bits"` + invalid + `parameter server_max_window_bits needs a value 8..15`},
		{"smwb 16", &on, []string{"permessage-deflate; server_max_window_bits=16"}, deflateParams{}, false,
			answer + `"permessage-deflate; server_max_window_bits=16"` + invalid + `parameter server_max_window_bits=16: want 8..15 without leading zeros`},
		{"smwb 7", &on, []string{"permessage-deflate; server_max_window_bits=7"}, deflateParams{}, false,
			answer + `"permessage-deflate; server_max_window_bits=7"` + invalid + `parameter server_max_window_bits=7: want 8..15 without leading zeros`},
		{"smwb 09", &on, []string{"permessage-deflate; server_max_window_bits=09"}, deflateParams{}, false,
			answer + `"permessage-deflate; server_max_window_bits=09"` + invalid + `parameter server_max_window_bits=09: want 8..15 without leading zeros`},
		{"smwb quoted 16", &on, []string{`permessage-deflate; server_max_window_bits="16"`}, deflateParams{}, false,
			answer + `"permessage-deflate; server_max_window_bits=16"` + invalid + `parameter server_max_window_bits=16: want 8..15 without leading zeros`},
		{"cmwb no value", &on, []string{"permessage-deflate; client_max_window_bits"}, deflateParams{}, false,
			answer + `"permessage-deflate; client_max_window_bits"` + invalid + `parameter client_max_window_bits needs a value 8..15`},
		{"cmwb x", &on, []string{"permessage-deflate; client_max_window_bits=x"}, deflateParams{}, false,
			answer + `"permessage-deflate; client_max_window_bits=x"` + invalid + `parameter client_max_window_bits=x: want 8..15 without leading zeros`},
		{"smwb larger than offered", &CompressionOptions{Enabled: true, ServerMaxWindowBits: 10},
			[]string{"permessage-deflate; server_max_window_bits=11"}, deflateParams{}, false,
			`server's answer "permessage-deflate; server_max_window_bits=11" does not fit the offer "permessage-deflate; server_max_window_bits=10; client_max_window_bits": server_max_window_bits=11 is more than the 10 offered`},
		{"smwb offered, missing", &CompressionOptions{Enabled: true, ServerMaxWindowBits: 10},
			[]string{"permessage-deflate"}, deflateParams{}, false,
			`server's answer "permessage-deflate" does not fit the offer "permessage-deflate; server_max_window_bits=10; client_max_window_bits": server_max_window_bits is missing`},
		{"snct offered, missing", &CompressionOptions{Enabled: true, ServerNoContextTakeover: true},
			[]string{"permessage-deflate; client_no_context_takeover"}, deflateParams{}, false,
			`server's answer "permessage-deflate; client_no_context_takeover" does not fit the offer "permessage-deflate; server_no_context_takeover; client_max_window_bits": server_no_context_takeover is missing`},
		{"cmwb larger than offered", &CompressionOptions{Enabled: true, ClientMaxWindowBits: 10},
			[]string{"permessage-deflate; client_max_window_bits=11"}, deflateParams{}, false,
			`server's answer "permessage-deflate; client_max_window_bits=11" does not fit the offer "permessage-deflate; client_max_window_bits=10": client_max_window_bits=11 is more than the 10 offered`},
		{"disabled, answered", &CompressionOptions{}, []string{"permessage-deflate"}, deflateParams{}, false,
			`server accepted extension "permessage-deflate"` + notOffer},
		{"nil, answered twice", nil, []string{"permessage-deflate, foo"}, deflateParams{}, false,
			`server accepted extension "permessage-deflate, foo"` + notOffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params, ok, err := checkDeflateResponse(extHeader(tt.lines...), tt.opts)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || ok || params != (deflateParams{}) {
					t.Fatalf("checkDeflateResponse(%q) = %+v, %v, %v\nwant error %s", tt.lines, params, ok, err, tt.err)
				}
				return
			}
			if err != nil || ok != tt.ok || params != tt.params {
				t.Fatalf("checkDeflateResponse(%q) = %+v, %v, %v\nwant %+v, %v", tt.lines, params, ok, err, tt.params, tt.ok)
			}
		})
	}
}

// An answer may name client_max_window_bits only when the offer did
// (RFC 7692 §7.1.2.2). deflateOffer always names it, so this is checked on
// checkDeflateAnswer with a hand-made offer.
func TestCheckDeflateAnswerClientWindowNotOffered(t *testing.T) {
	offer := deflateParamSet{serverNoContextTakeover: true}
	answer := []extension{mkExt("permessage-deflate", mkFlag("server_no_context_takeover"), mkVal("client_max_window_bits", "10"))}
	_, err := checkDeflateAnswer(answer, offer, false)
	want := `server's answer "permessage-deflate; server_no_context_takeover; client_max_window_bits=10" does not fit the offer "permessage-deflate; server_no_context_takeover": client_max_window_bits was not offered`
	if err == nil || err.Error() != want {
		t.Fatalf("checkDeflateAnswer = %v\nwant %s", err, want)
	}
	answer = []extension{mkExt("permessage-deflate", mkFlag("server_no_context_takeover"))}
	p, err := checkDeflateAnswer(answer, offer, true)
	if err != nil || p != mkParams(true, true, 15, 15) {
		t.Fatalf("checkDeflateAnswer = %+v, %v", p, err)
	}
}

func TestDeflateParamsRoles(t *testing.T) {
	p := mkParams(true, false, 9, 12)
	if got := p.sendWindowBits(RoleServer); got != 9 {
		t.Errorf("server sendWindowBits = %d, want 9", got)
	}
	if got := p.recvWindowBits(RoleServer); got != 12 {
		t.Errorf("server recvWindowBits = %d, want 12", got)
	}
	if got := p.sendWindowBits(RoleClient); got != 12 {
		t.Errorf("client sendWindowBits = %d, want 12", got)
	}
	if got := p.recvWindowBits(RoleClient); got != 9 {
		t.Errorf("client recvWindowBits = %d, want 9", got)
	}
	if p.sendTakeover(RoleServer) || !p.recvTakeover(RoleServer) {
		t.Errorf("server takeover send %v recv %v, want false true", p.sendTakeover(RoleServer), p.recvTakeover(RoleServer))
	}
	if !p.sendTakeover(RoleClient) || p.recvTakeover(RoleClient) {
		t.Errorf("client takeover send %v recv %v, want true false", p.sendTakeover(RoleClient), p.recvTakeover(RoleClient))
	}
}

// Every client configuration against every server configuration: the
// server accepts our own offer, the client accepts the server's answer,
// and both end up with the same parameters, within both configurations.
func TestDeflateNegotiationRoundTrip(t *testing.T) {
	var configs []CompressionOptions
	for _, snct := range []bool{false, true} {
		for _, cnct := range []bool{false, true} {
			for _, sb := range []int{0, 8, 10, 15} {
				for _, cb := range []int{0, 9, 12, 15} {
					configs = append(configs, CompressionOptions{Enabled: true,
						ServerNoContextTakeover: snct, ClientNoContextTakeover: cnct,
						ServerMaxWindowBits: sb, ClientMaxWindowBits: cb})
				}
			}
		}
	}
	for _, c := range configs {
		offer := deflateOffer(&c)
		offers, err := parseExtensions(extHeader(offer))
		if err != nil {
			t.Fatalf("offer %q: %v", offer, err)
		}
		for _, s := range configs {
			sp, resp, ok := acceptDeflate(offers, &s)
			if !ok {
				t.Fatalf("server %+v declined %q", s, offer)
			}
			cp, ok, err := checkDeflateResponse(extHeader(resp), &c)
			if err != nil || !ok {
				t.Fatalf("client %+v refused %q (to %q): %v", c, resp, offer, err)
			}
			if cp != sp {
				t.Fatalf("offer %q, answer %q: client agreed %+v, server %+v", offer, resp, cp, sp)
			}
			if want := c.ServerNoContextTakeover || s.ServerNoContextTakeover; sp.serverNoContextTakeover != want {
				t.Fatalf("offer %q, answer %q: server_no_context_takeover %v", offer, resp, sp.serverNoContextTakeover)
			}
			if want := c.ClientNoContextTakeover || s.ClientNoContextTakeover; sp.clientNoContextTakeover != want {
				t.Fatalf("offer %q, answer %q: client_no_context_takeover %v", offer, resp, sp.clientNoContextTakeover)
			}
			if want := min(c.serverMaxWindowBits(), s.serverMaxWindowBits()); sp.serverMaxWindowBits != want {
				t.Fatalf("offer %q, answer %q: server window %d, want %d", offer, resp, sp.serverMaxWindowBits, want)
			}
			if want := min(c.clientMaxWindowBits(), s.clientMaxWindowBits()); sp.clientMaxWindowBits != want {
				t.Fatalf("offer %q, answer %q: client window %d, want %d", offer, resp, sp.clientMaxWindowBits, want)
			}
		}
	}
}

func TestDeflateCompressionOptions(t *testing.T) {
	valid := []CompressionOptions{
		{}, {Enabled: true, ServerMaxWindowBits: 8, ClientMaxWindowBits: 15, Level: 9, Threshold: -1},
		{ServerMaxWindowBits: 15, ClientMaxWindowBits: 8, Level: 1, Threshold: 1 << 20},
	}
	for _, o := range valid {
		if err := o.Validate(); err != nil {
			t.Errorf("validate(%+v) = %v", o, err)
		}
	}
	if err := (*CompressionOptions)(nil).Validate(); err != nil {
		t.Errorf("nil validate = %v", err)
	}
	invalid := []struct {
		o   CompressionOptions
		err string
	}{
		{CompressionOptions{ServerMaxWindowBits: 7}, "websocket: CompressionOptions.ServerMaxWindowBits is 7, want 0 or 8..15"},
		{CompressionOptions{ServerMaxWindowBits: -1}, "websocket: CompressionOptions.ServerMaxWindowBits is -1, want 0 or 8..15"},
		{CompressionOptions{ClientMaxWindowBits: 16}, "websocket: CompressionOptions.ClientMaxWindowBits is 16, want 0 or 8..15"},
		{CompressionOptions{Level: 10}, "websocket: CompressionOptions.Level is 10, want 0..9"},
		{CompressionOptions{Level: -1}, "websocket: CompressionOptions.Level is -1, want 0..9"},
	}
	for _, tt := range invalid {
		if err := tt.o.Validate(); err == nil || err.Error() != tt.err {
			t.Errorf("validate(%+v) = %v, want %s", tt.o, err, tt.err)
		}
	}

	defaults := CompressionOptions{}
	if defaults.level() != DefaultCompressionLevel || defaults.threshold(false) != DefaultCompressionThreshold ||
		defaults.threshold(true) != DefaultCompressionThresholdTakeover ||
		defaults.serverMaxWindowBits() != 15 || defaults.clientMaxWindowBits() != 15 {
		t.Errorf("defaults: level %d threshold %d windows %d %d", defaults.level(), defaults.threshold(false),
			defaults.serverMaxWindowBits(), defaults.clientMaxWindowBits())
	}
	o := CompressionOptions{Level: 6, Threshold: 512, ServerMaxWindowBits: 9, ClientMaxWindowBits: 10}
	if o.level() != 6 || o.threshold(false) != 512 || o.threshold(true) != 512 || o.serverMaxWindowBits() != 9 || o.clientMaxWindowBits() != 10 {
		t.Errorf("set: level %d threshold %d windows %d %d", o.level(), o.threshold(false), o.serverMaxWindowBits(), o.clientMaxWindowBits())
	}
	o = CompressionOptions{Level: 12, Threshold: -5, ServerMaxWindowBits: 3, ClientMaxWindowBits: 99}
	if o.level() != DefaultCompressionLevel || o.threshold(true) != 0 || o.serverMaxWindowBits() != 15 || o.clientMaxWindowBits() != 15 {
		t.Errorf("out of range: level %d threshold %d windows %d %d", o.level(), o.threshold(true), o.serverMaxWindowBits(), o.clientMaxWindowBits())
	}
}

// FuzzParseExtensions feeds arbitrary Sec-WebSocket-Extensions lines
// (separated by '\n') to the parser and to both sides of the negotiation.
// Nothing may panic; a parsed list must format and parse back to itself; an
// accepted offer's answer must be accepted by a client that made that offer,
// with the same parameters on both sides; and a client must never accept an
// answer outside 8..15.
func FuzzParseExtensions(f *testing.F) {
	seeds := []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11",
		`permessage-deflate; server_max_window_bits="10"; client_max_window_bits="1\1"`,
		"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=09\npermessage-deflate; client_no_context_takeover",
		"x-webkit-deflate-frame, foo; bar=\"baz\", permessage-deflate; bogus\npermessage-deflate; server_max_window_bits=9",
		"permessage-deflate; client_max_window_bits=16",
		"permessage-deflate; server_no_context_takeover=1",
		"permessage-deflate; client_max_window_bits; client_max_window_bits",
		"permessage-deflate, permessage-deflate",
		"a,,b,\n, c",
		`a; b="1 0"`,
		`a; b="10`,
		"",
		"permessage-deflate;",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	servers := []*CompressionOptions{
		{Enabled: true},
		{Enabled: true, ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 9, ClientMaxWindowBits: 8},
		{Enabled: true, ServerMaxWindowBits: 12, ClientMaxWindowBits: 14},
	}
	clients := []*CompressionOptions{
		nil,
		{Enabled: true},
		{Enabled: true, ServerNoContextTakeover: true, ServerMaxWindowBits: 10, ClientMaxWindowBits: 10},
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := extHeader(strings.Split(s, "\n")...)
		exts, perr := parseExtensions(h)

		// Client side on the same bytes, as if they were an answer.
		for _, c := range clients {
			p, ok, err := checkDeflateResponse(h, c)
			if perr != nil && err == nil {
				t.Fatalf("client accepted %q, which does not parse: %v", s, perr)
			}
			if ok {
				if err != nil || !c.enabled() {
					t.Fatalf("ok with error %v or compression off", err)
				}
				for _, b := range []int{p.serverMaxWindowBits, p.clientMaxWindowBits} {
					if b < minWindowBits || b > maxWindowBits {
						t.Fatalf("client agreed %+v to %q", p, s)
					}
				}
			} else if err == nil && len(exts) != 0 {
				t.Fatalf("client ignored answer %q", s)
			}
		}
		if perr != nil {
			return
		}

		// What parses formats back to the same list.
		var lines []string
		for _, e := range exts {
			lines = append(lines, e.String())
		}
		again, err := parseExtensions(extHeader(strings.Join(lines, ", ")))
		if len(exts) > 0 && (err != nil || !reflect.DeepEqual(again, exts)) {
			t.Fatalf("%q parsed to %v; formatted %q parsed to %v, %v", s, exts, lines, again, err)
		}

		for _, srv := range servers {
			sp, resp, ok := acceptDeflate(exts, srv)
			if !ok {
				continue
			}
			// The accepted offer is the first valid permessage-deflate one.
			var offer deflateParamSet
			found := false
			for _, e := range exts {
				if e.name != deflateExtension {
					continue
				}
				if o, err := readDeflateParams(e, false); err == nil {
					offer, found = o, true
					break
				}
			}
			if !found {
				t.Fatalf("server accepted %q with no valid offer", s)
			}
			answer, err := parseExtensions(extHeader(resp))
			if err != nil {
				t.Fatalf("answer %q to %q does not parse: %v", resp, s, err)
			}
			cp, err := checkDeflateAnswer(answer, offer, offer.clientNoContextTakeover)
			if err != nil {
				t.Fatalf("answer %q to offer %q refused: %v", resp, offer, err)
			}
			if cp != sp {
				t.Fatalf("answer %q to offer %q: client agreed %+v, server %+v", resp, offer, cp, sp)
			}
			if offer.hasClientMaxWindowBits {
				// The offer is one deflateOffer makes for some configuration.
				c := &CompressionOptions{Enabled: true,
					ServerNoContextTakeover: offer.serverNoContextTakeover,
					ClientNoContextTakeover: offer.clientNoContextTakeover,
					ServerMaxWindowBits:     offer.serverMaxWindowBits,
					ClientMaxWindowBits:     offer.clientMaxWindowBits}
				cp, ok, err := checkDeflateResponse(extHeader(resp), c)
				if err != nil || !ok || cp != sp {
					t.Fatalf("answer %q to %q: client %+v agreed %+v, %v, %v; server %+v", resp, s, c, cp, ok, err, sp)
				}
			}
		}
	})
}
