// duplex.js: the browser SDK for the duplex.v1 channel protocol (docs/protocol.md).
export {};
