package resolve

// oLargefile is the kernel's O_LARGEFILE on arm64 (0400000).
const oLargefile = 0x20000
