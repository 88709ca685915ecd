package websocket

// frameParser is the incremental parser of the byte stream a peer sends:
// it consumes whatever bytes have arrived, keeps its state between calls,
// and never blocks or does I/O. The blocking Conn feeds it from its read
// buffer; an event loop can feed it from whatever epoll delivered. One
// parser, whatever drives it, so every driver enforces the same rules:
//
//   - the header rules of the codec (headerDecoder): masking, RSV bits,
//     opcodes, control frame size and fragmentation, 64-bit lengths;
//   - the rules of fragmentation (RFC 6455 §5.4): a continuation needs a
//     message in progress, a new data frame may not start inside one;
//   - the message size limit, checked from each header before its payload;
//   - unmasking, and UTF-8 validation of text as its bytes arrive (§8.1).
//
// Control frames are returned to the caller, who gathers their payload
// (at most 125 bytes) and unmasks it with unmaskControl.
type frameParser struct {
	dec       headerDecoder
	checkUTF8 bool

	frame      frameHeader // the data frame whose payload is being parsed
	frameLeft  int64       // payload bytes of frame not yet parsed
	inFrame    bool        // a data frame's header was parsed and its payload is not finished
	inMessage  bool        // a data message has started and its final frame is not finished
	msgType    MessageType // type of the current message
	msgLen     int64       // payload bytes of the current message so far (compressed, if it is)
	compressed bool        // the current message is compressed (RSV1 on its first frame)
	// deflateBits is the server's agreed compression window (8..15), 0
	// without permessage-deflate: kept here for ServerParser's users
	// (SetAgreement), where the field costs no room.
	deflateBits uint8
	maskPos     int // position in the masking key of the next payload byte
	utf8        utf8Validator
}

// betweenFrames reports whether the parser stands at a frame boundary: no
// header half parsed and no payload owed. Only there may a reader give up
// without losing its place in the stream.
func (p *frameParser) betweenFrames() bool { return !p.dec.inProgress() && !p.inFrame }

// parseHeader consumes header bytes from b. Once a header is complete it
// returns it with done set. A data frame's header is checked against the
// rules of fragmentation and against limit (the largest message), and its
// payload is then expected through parsePayload; a control frame is left to
// the caller. Bytes after the header are not consumed.
func (p *frameParser) parseHeader(b []byte, limit int64) (n int, h frameHeader, done bool, err error) {
	n, h, done, err = p.dec.decode(b)
	if err != nil || !done {
		return n, h, done, err
	}
	if h.rsv&rsv1Bit != 0 && (h.op.isControl() || h.op == opContinuation) {
		// RFC 7692 §6: only the first frame of a message says it is compressed.
		return n, h, false, protocolErrorf(StatusProtocolError, "RSV1 set on a %s frame", h.op)
	}
	if h.op.isControl() {
		return n, h, done, nil
	}
	if h.op == opContinuation {
		if !p.inMessage {
			return n, h, false, protocolErrorf(StatusProtocolError, "continuation frame without a message to continue")
		}
	} else {
		if p.inMessage {
			return n, h, false, protocolErrorf(StatusProtocolError, "%s frame inside a fragmented message", h.op)
		}
		p.inMessage = true
		p.msgType = MessageType(h.op)
		p.msgLen = 0
		p.compressed = h.rsv&rsv1Bit != 0
		p.utf8.reset()
	}
	if p.compressed {
		limit = compressedLimit(limit)
	}
	if h.length > limit-p.msgLen {
		return n, h, false, protocolErrorf(StatusMessageTooBig, "message of at least %d bytes exceeds the limit of %d",
			uint64(p.msgLen)+uint64(h.length), limit)
	}
	p.msgLen += h.length
	p.frame = h
	p.frameLeft = h.length
	p.inFrame = true
	p.maskPos = 0
	if h.length == 0 {
		return n, h, true, p.finishFrame()
	}
	return n, h, true, nil
}

// parsePayload takes the next payload bytes of the current data frame, in
// place: it unmasks and validates them. b must not be longer than what the
// frame still owes (payloadLeft).
func (p *frameParser) parsePayload(b []byte) error {
	if p.frame.masked {
		p.maskPos = maskBytes(p.frame.maskKey, p.maskPos, b)
	}
	if p.msgType == MessageText && p.checkUTF8 && !p.compressed && !p.utf8.write(b) {
		return protocolErrorf(StatusInvalidFramePayloadData, "text message is not valid UTF-8")
	}
	p.frameLeft -= int64(len(b))
	if p.frameLeft == 0 {
		return p.finishFrame()
	}
	return nil
}

// payloadLeft returns how many payload bytes the current data frame owes.
func (p *frameParser) payloadLeft() int64 {
	if !p.inFrame {
		return 0
	}
	return p.frameLeft
}

// finishFrame moves past a data frame whose payload is all parsed.
func (p *frameParser) finishFrame() error {
	p.inFrame = false
	if p.frame.fin {
		p.inMessage = false
		if p.msgType == MessageText && p.checkUTF8 && !p.compressed && !p.utf8.complete() {
			return protocolErrorf(StatusInvalidFramePayloadData, "text message ends inside a UTF-8 sequence")
		}
	}
	return nil
}

// dropMessage makes the rest of the current message be parsed without
// UTF-8 checks, for data that will be thrown away (after a close frame).
func (p *frameParser) dropMessage() {
	if p.inMessage {
		p.msgType = MessageBinary
	}
}

// compressedLimit bounds the compressed size of a message whose inflated
// size is bounded by limit: DEFLATE expands incompressible data by at most 5
// bytes per 64 KiB stored block, and the margin also allows for the sync
// flushes between fragments. The inflated bytes are checked against limit
// itself as they are produced.
func compressedLimit(limit int64) int64 {
	if limit > (1<<63-1)/2 {
		return 1<<63 - 1
	}
	return limit + limit/16 + 1024
}

// unmaskControl unmasks a control frame's payload in place.
func unmaskControl(h frameHeader, payload []byte) {
	if h.masked {
		maskBytes(h.maskKey, 0, payload)
	}
}
