package server

import (
	"strings"
	"testing"
)

func TestMatchChannel(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"news:*", "news:a", true},
		{"news:*", "news:", true},
		{"news:*", "news:a.b:c", true},
		{"news:*", "news", false},
		{"news:*", "newsx:a", false},
		{"*", "anything:at/all", true},
		{"news", "news", true},
		{"news", "news:a", false},
		{"user:*:inbox", "user:42:inbox", true},
		{"user:*:inbox", "user:42:inbox:x", false},
		{"user:*:inbox", "user::inbox", true},
		{"*:lobby", "chat:lobby", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"**", "", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, tc := range cases {
		if got := matchChannel(tc.pattern, tc.name); got != tc.want {
			t.Errorf("matchChannel(%q, %q) = %t, want %t", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestParseAPIKey(t *testing.T) {
	k, err := ParseAPIKey("name=feed,key=0123456789abcdef=x,ops=publish|history,channels=news:*|live:a")
	if err != nil || k.Name != "feed" || k.Key != "0123456789abcdef=x" || strings.Join(k.Ops, " ") != "publish history" || strings.Join(k.Channels, " ") != "news:* live:a" {
		t.Fatalf("ParseAPIKey = %+v, %v", k, err)
	}
	k, err = ParseAPIKey("key=0123456789abcdef,name=all")
	if err != nil || k.Name != "all" || k.Ops != nil || k.Channels != nil {
		t.Fatalf("ParseAPIKey = %+v, %v", k, err)
	}
	bad := map[string]string{
		"name=feed":            "no key=SECRET",
		"name=feed,key=short":  `API key "feed" is 5 bytes, at least 16 wanted`,
		"key=0123456789abcdef": "an API key has no name",
		"name=feed,key=0123456789abcdef,ops=delete":  `API key "feed": unknown operation "delete" (publish, channels, presence, history)`,
		"name=feed,key=0123456789abcdef,colour=blue": `unknown key "colour" (name, key, ops, channels)`,
		"name=feed,key=0123456789,abcdef":            "an item is not key=value (name, key, ops, channels)",
		"name=a,name=b,key=0123456789abcdef":         "name is given twice",
		"name=a|b,key=0123456789abcdef":              `API key name "a|b" has one of , ; |`,
	}
	for spec, want := range bad {
		if _, err := ParseAPIKey(spec); err == nil || err.Error() != want {
			t.Errorf("ParseAPIKey(%q) error = %v, want %q", spec, err, want)
		}
	}
}
