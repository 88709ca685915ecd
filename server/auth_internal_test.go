package server

import "testing"

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
