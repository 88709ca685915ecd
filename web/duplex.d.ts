// Type declarations for duplex.js.
export {};
