package resolve

// oLargefile is the kernel's O_LARGEFILE on this architecture (x/sys/unix
// defines it as 0 on 64-bit targets, but callers such as musl pass it).
const oLargefile = 0x8000
