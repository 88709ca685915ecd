package server

import (
	"net/http"
	"time"

	"github.com/duplex-ws/duplex/pubsub"
)

// closeReasonChatPublish is the reason of the 1008 that closes a chat
// member whose token does not allow it to publish in the room, when it
// sends a text.
const closeReasonChatPublish = "publish not allowed"

// chatGrant is what a chat member's token allows.
type chatGrant struct {
	expires time.Time   // when the token expires; zero: never
	publish *protoError // why the member may not publish, nil if it may
}

// admitChat checks the token of a chat member's upgrade request: a token
// that is refused, or no token in a namespace closed to anonymous
// connections, gets 401; a token that does not allow subscribing to the
// room gets 403. Otherwise it returns what the member may do and true.
func (a *Authenticator) admitChat(w http.ResponseWriter, r *http.Request, hub *pubsub.Hub, channel string) (chatGrant, bool) {
	if a == nil {
		return chatGrant{}, true
	}
	id, ok := a.handshake(w, r)
	if !ok {
		return chatGrant{}, false
	}
	if perr := a.authorize(hub, id, opSubscribe, channel); perr != nil {
		if id == nil {
			refuseToken(w, http.StatusUnauthorized, perr.Message, false)
		} else {
			refuseToken(w, http.StatusForbidden, perr.Message, false)
		}
		return chatGrant{}, false
	}
	g := chatGrant{publish: a.authorize(hub, id, opPublish, channel)}
	if id != nil {
		g.expires = id.expires
	}
	return g, true
}

// watchExpiry closes the member with CloseTokenExpired when its token
// expires; the function it returns stops watching.
func (m *chatMember) watchExpiry() (stop func()) {
	if m.grant.expires.IsZero() {
		return func() {}
	}
	t := time.AfterFunc(time.Until(m.grant.expires), func() {
		m.rec.sent(CloseTokenExpired, closeReasonTokenExpired)
		m.closeWith(CloseTokenExpired, closeReasonTokenExpired)
	})
	return func() { t.Stop() }
}
