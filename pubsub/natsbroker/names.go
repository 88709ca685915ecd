package natsbroker

import (
	"fmt"
	"strings"
)

// escape maps s to a string of ASCII letters, digits, '-' and '_' only,
// one-to-one: '_' becomes "__" and any other byte outside the set becomes
// '_' and two upper-case hex digits ("chat:lobby" is "chat_3Alobby"). The
// result is a valid single token of a NATS subject, a KV key token and part
// of a stream name; '.', which separates subject tokens, never appears.
func escape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '_':
			b.WriteString("__")
		default:
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	return b.String()
}

// unescape reverses escape.
func unescape(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '_' {
			b.WriteByte('_')
			i++
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("natsbroker: bad escape in %q", s)
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("natsbroker: bad escape in %q", s)
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// nsToken is the subject token and stream-name suffix of a namespace: "_"
// for the default namespace (escape never yields a lone '_'), else the
// escaped name.
func nsToken(ns string) string {
	if ns == "" {
		return "_"
	}
	return escape(ns)
}
