package pubsub

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const allowedChannelBytes = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:@/="

func TestValidateChannelAllowedBytes(t *testing.T) {
	if err := ValidateChannel(allowedChannelBytes); err != nil {
		t.Fatalf("ValidateChannel(all allowed bytes) = %v", err)
	}
	for i := 0; i < len(allowedChannelBytes); i++ {
		name := allowedChannelBytes[i : i+1]
		if err := ValidateChannel(name); err != nil {
			t.Errorf("ValidateChannel(%q) = %v, want nil", name, err)
		}
	}
}

func TestValidateChannelForbiddenBytes(t *testing.T) {
	// Every byte outside the allowed set, which covers each class: controls,
	// space, punctuation and wildcards (* > # ? %), DEL, and non-ASCII.
	for c := 0; c < 256; c++ {
		if strings.IndexByte(allowedChannelBytes, byte(c)) >= 0 {
			continue
		}
		name := "ab" + string([]byte{byte(c)}) + "cd"
		err := ValidateChannel(name)
		if !errors.Is(err, ErrInvalidChannel) {
			t.Errorf("ValidateChannel(%q) = %v, want ErrInvalidChannel", name, err)
		}
	}
	for _, tc := range []struct{ name, msg string }{
		{"a b", `invalid channel name "a b": byte 1 (' ') is not a letter, digit or one of _-.:@/=`},
		{"news.*", `invalid channel name "news.*": byte 5 ('*') is not a letter, digit or one of _-.:@/=`},
		{">", `invalid channel name ">": byte 0 ('>') is not a letter, digit or one of _-.:@/=`},
		{"a#", `invalid channel name "a#": byte 1 ('#') is not a letter, digit or one of _-.:@/=`},
		{"x\x00", `invalid channel name "x\x00": byte 1 ('\x00') is not a letter, digit or one of _-.:@/=`},
		{"x\x7f", `invalid channel name "x\x7f": byte 1 ('\x7f') is not a letter, digit or one of _-.:@/=`},
		{"café", `invalid channel name "café": byte 3 ('Ã') is not a letter, digit or one of _-.:@/=`},
		{"a\nb", `invalid channel name "a\nb": byte 1 ('\n') is not a letter, digit or one of _-.:@/=`},
	} {
		err := ValidateChannel(tc.name)
		if !errors.Is(err, ErrInvalidChannel) || err.Error() != tc.msg {
			t.Errorf("ValidateChannel(%q) = %v, want %s", tc.name, err, tc.msg)
		}
	}
}

func TestValidateChannelLength(t *testing.T) {
	for _, tc := range []struct {
		n   int
		msg string // "" when valid
	}{
		{0, "invalid channel name: empty"},
		{1, ""},
		{254, ""},
		{255, ""},
		{256, "invalid channel name: 256 bytes, at most 255"},
		{1000, "invalid channel name: 1000 bytes, at most 255"},
	} {
		err := ValidateChannel(strings.Repeat("a", tc.n))
		if tc.msg == "" {
			if err != nil {
				t.Errorf("length %d: %v, want nil", tc.n, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidChannel) || err.Error() != tc.msg {
			t.Errorf("length %d: %v, want %s", tc.n, err, tc.msg)
		}
	}
	if MaxChannelLen != 255 {
		t.Errorf("MaxChannelLen = %d, want 255 (the protocol's limit)", MaxChannelLen)
	}
}

func TestNamespace(t *testing.T) {
	for _, tc := range []struct{ channel, ns string }{
		{"news", ""},
		{"chat:lobby", "chat"},
		{"a:b:c", "a"},
		{"x:", "x"},
		{":x", ""},
		{"", ""},
		{"user@host/path=1", ""},
	} {
		if got := Namespace(tc.channel); got != tc.ns {
			t.Errorf("Namespace(%q) = %q, want %q", tc.channel, got, tc.ns)
		}
	}
}

func TestHubOptions(t *testing.T) {
	chat := NamespaceOptions{HistorySize: 50, Presence: true, ClientPublish: true}
	feed := NamespaceOptions{HistorySize: 7, HistoryTTL: time.Second}
	h, _ := newTestHub(t, map[string]NamespaceOptions{"chat": chat, "feed": feed, "bare": {}}, nil)

	for _, tc := range []struct {
		channel string
		want    NamespaceOptions
	}{
		{"news", DefaultNamespace},
		{"chat:lobby", chat},
		{"chat:", chat},
		{"feed:a:b", feed},
		{"bare:x", NamespaceOptions{}},
	} {
		got, err := h.Options(tc.channel)
		if err != nil || got != tc.want {
			t.Errorf("Options(%q) = %+v, %v; want %+v", tc.channel, got, err, tc.want)
		}
	}
	if (DefaultNamespace != NamespaceOptions{HistorySize: 100, HistoryTTL: 5 * time.Minute, Presence: true, ClientPublish: true}) {
		t.Errorf("DefaultNamespace = %+v, not what docs/protocol.md documents", DefaultNamespace)
	}

	_, err := h.Options("nope:x")
	if !errors.Is(err, ErrUnknownNamespace) || err.Error() != `unknown namespace "nope" (channel "nope:x")` {
		t.Errorf("Options(nope:x) = %v", err)
	}
	if _, err := h.Options("Chat:x"); !errors.Is(err, ErrUnknownNamespace) {
		t.Errorf("Options(Chat:x) = %v, want ErrUnknownNamespace (names are case-sensitive)", err)
	}
	if _, err := h.Options("bad name"); !errors.Is(err, ErrInvalidChannel) {
		t.Errorf("Options(bad name) = %v, want ErrInvalidChannel", err)
	}

	// Every entry point refuses an unknown namespace.
	ctx := testCtx(t)
	r := &recorder{}
	if _, err := h.Subscribe(ctx, "nope:x", r, SubscribeOptions{}); !errors.Is(err, ErrUnknownNamespace) {
		t.Errorf("Subscribe = %v", err)
	}
	if _, err := h.Publish(ctx, "nope:x", data(1)); !errors.Is(err, ErrUnknownNamespace) {
		t.Errorf("Publish = %v", err)
	}
	if _, err := h.History(ctx, "nope:x", HistoryRequest{}); !errors.Is(err, ErrUnknownNamespace) {
		t.Errorf("History = %v", err)
	}
	if _, err := h.Presence(ctx, "nope:x"); !errors.Is(err, ErrUnknownNamespace) {
		t.Errorf("Presence = %v", err)
	}
	if err := h.CheckClientPublish("nope:x"); !errors.Is(err, ErrUnknownNamespace) {
		t.Errorf("CheckClientPublish = %v", err)
	}
	if list, _ := h.Channels(ctx); len(list) != 0 {
		t.Errorf("Channels after refused calls = %+v, want none", list)
	}
}

func TestHubOptionsDefaultOverride(t *testing.T) {
	own := NamespaceOptions{HistorySize: 3}
	h, _ := newTestHub(t, map[string]NamespaceOptions{"": own}, nil)
	if got, err := h.Options("news"); err != nil || got != own {
		t.Errorf("Options(news) = %+v, %v; want %+v", got, err, own)
	}
	if _, err := h.Options("chat:x"); !errors.Is(err, ErrUnknownNamespace) {
		t.Errorf("Options(chat:x) = %v, want ErrUnknownNamespace", err)
	}
}

func TestCheckClientPublish(t *testing.T) {
	h, _ := newTestHub(t, map[string]NamespaceOptions{"api": {HistorySize: 10}}, nil)
	if err := h.CheckClientPublish("news"); err != nil {
		t.Errorf("CheckClientPublish(news) = %v", err)
	}
	err := h.CheckClientPublish("api:x")
	if !errors.Is(err, ErrPermissionDenied) || err.Error() != `permission denied: clients may not publish in namespace "api"` {
		t.Errorf("CheckClientPublish(api:x) = %v", err)
	}
	// The trusted path publishes anyway.
	if p, err := h.Publish(testCtx(t), "api:x", data(1)); err != nil || p.Offset != 1 {
		t.Errorf("Publish(api:x) = %+v, %v", p, err)
	}
}

// The slow-consumer policies read back from their names; the zero value
// is close; an unknown name is refused with the list.
func TestSlowConsumerPolicyNames(t *testing.T) {
	for p, name := range map[SlowConsumerPolicy]string{SlowConsumerClose: "close", SlowConsumerDropOldest: "drop-oldest", SlowConsumerConflate: "conflate"} {
		got, err := ParseSlowConsumerPolicy(name)
		if p.String() != name || err != nil || got != p {
			t.Errorf("%d: String %q, Parse(%q) = %v, %v", int(p), p.String(), name, got, err)
		}
	}
	if (NamespaceOptions{}).SlowConsumer != SlowConsumerClose || DefaultNamespace.SlowConsumer != SlowConsumerClose {
		t.Error("the zero policy is not close")
	}
	if _, err := ParseSlowConsumerPolicy("drop"); err == nil || err.Error() != `slow-consumer policy "drop": want close, drop-oldest or conflate` {
		t.Errorf("Parse(drop) = %v", err)
	}
	if s := SlowConsumerPolicy(7).String(); s != "SlowConsumerPolicy(7)" {
		t.Errorf("String of 7 = %q", s)
	}
}
