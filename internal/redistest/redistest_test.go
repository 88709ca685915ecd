package redistest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/duplex-ws/duplex/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// roundTrip writes key=value on s, or, with value "", reads key; it
// returns what Redis answered, "(nil)" for a missing key.
func roundTrip(t *testing.T, s *redistest.Server, key, value string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DisableIdentity: true})
	defer rdb.Close()
	if value != "" {
		if err := rdb.Set(ctx, key, value, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		return value
	}
	v, err := rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "(nil)"
	}
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return v
}

// A default server comes back empty from a restart; a Persistent one
// keeps every acknowledged write, after a clean Stop and after a Kill.
func TestRestart(t *testing.T) {
	plain := redistest.Start(t)
	roundTrip(t, plain, "k", "v1")
	plain.Stop()
	plain.Restart()
	if got := roundTrip(t, plain, "k", ""); got != "(nil)" {
		t.Errorf("default server after Restart: k = %q, want (nil)", got)
	}

	durable := redistest.Start(t, redistest.Persistent())
	roundTrip(t, durable, "k", "v1")
	durable.Stop()
	durable.Restart()
	if got := roundTrip(t, durable, "k", ""); got != "v1" {
		t.Errorf("persistent server after Stop and Restart: k = %q, want v1", got)
	}
	roundTrip(t, durable, "k", "v2")
	durable.Kill()
	durable.Kill() // killing a stopped server does nothing
	durable.Restart()
	if got := roundTrip(t, durable, "k", ""); got != "v2" {
		t.Errorf("persistent server after Kill and Restart: k = %q, want v2", got)
	}
	if got := plain.URL(); got != "redis://"+plain.Addr() {
		t.Errorf("URL() = %q", got)
	}
}

// A paused server accepts connections and commands but answers nothing
// until Resume; Stop works on a paused server.
func TestPause(t *testing.T) {
	s := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DisableIdentity: true, ReadTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s.Pause()
	if err := rdb.Ping(ctx).Err(); err == nil || !strings.HasSuffix(err.Error(), "i/o timeout") {
		t.Fatalf("PING to a paused server: %v, want an i/o timeout", err)
	}
	s.Resume()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
	s.Pause()
	s.Stop()
	s.Restart()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after a Stop while paused and a Restart: %v", err)
	}
}

// A Persistent server restored from a copy of its data comes back with
// the data of the copy: what was written after it is gone.
func TestCopyAndRestoreData(t *testing.T) {
	s := redistest.Start(t, redistest.Persistent())
	roundTrip(t, s, "k", "v1")
	saved := s.CopyData()
	roundTrip(t, s, "k", "v2")
	roundTrip(t, s, "other", "x")
	s.Stop()
	s.RestoreData(saved)
	s.Restart()
	if got := roundTrip(t, s, "k", ""); got != "v1" {
		t.Errorf("after RestoreData: k = %q, want v1", got)
	}
	if got := roundTrip(t, s, "other", ""); got != "(nil)" {
		t.Errorf("after RestoreData: other = %q, want (nil)", got)
	}
}
