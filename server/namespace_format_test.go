package server

import (
	"reflect"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

// FormatNamespace's output reads back as the same options.
func TestFormatNamespace(t *testing.T) {
	for _, opts := range []pubsub.NamespaceOptions{
		pubsub.DefaultNamespace,
		{},
		{HistorySize: 1, HistoryTTL: 90 * time.Second, Presence: false, ClientPublish: false},
		{HistorySize: 0, HistoryTTL: 0, Presence: true, ClientPublish: true},
		{HistorySize: 1, Anonymous: true},
		{HistorySize: 1, SlowConsumer: pubsub.SlowConsumerDropOldest},
		{SlowConsumer: pubsub.SlowConsumerConflate, ConflateKey: "symbol"},
	} {
		s := FormatNamespace(opts)
		_, got, err := ParseNamespace("x:" + s)
		if err != nil || got != opts {
			t.Errorf("FormatNamespace(%+v) = %q, read back as %+v, %v", opts, s, got, err)
		}
	}
	if got, want := FormatNamespace(pubsub.DefaultNamespace), "history=100,ttl=5m0s,presence=on,publish=clients,anonymous=off,slow=close"; got != want {
		t.Errorf("FormatNamespace(DefaultNamespace) = %q, want %q", got, want)
	}
}

// TestFormatNamespaceCoversEveryField: changing any field of
// NamespaceOptions changes FormatNamespace's output, so a field added
// without its key there cannot be lost by --print-config.
func TestFormatNamespaceCoversEveryField(t *testing.T) {
	base := FormatNamespace(pubsub.DefaultNamespace)
	typ := reflect.TypeOf(pubsub.NamespaceOptions{})
	for i := range typ.NumField() {
		opts := pubsub.DefaultNamespace
		f := reflect.ValueOf(&opts).Elem().Field(i)
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Int, reflect.Int64, reflect.Int32:
			f.SetInt(f.Int() + 1)
		case reflect.String:
			f.SetString(f.String() + "x")
		default:
			t.Fatalf("field %s: kind %s not handled by this test", typ.Field(i).Name, f.Kind())
		}
		if FormatNamespace(opts) == base {
			t.Errorf("FormatNamespace ignores NamespaceOptions.%s", typ.Field(i).Name)
		}
	}
}
