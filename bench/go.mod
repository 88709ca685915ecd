module github.com/duplex-ws/duplex/bench

go 1.26.0

require (
	github.com/duplex-ws/duplex v0.0.0
	github.com/klauspost/compress v1.20.3
)

replace github.com/duplex-ws/duplex => ../
