/* Deterministic data patterns: the value of every 8-byte word is a function of (seed, its
 * position), so a checker on the host can recompute any byte. mix64 is splitmix64's finaliser.
 *
 *   pattern_word(seed, w) = mix64(w ^ (seed * 0x9E3779B97F4A7C15))   (w: word index)
 *   byte at offset o      = bits 8*(o%8) .. 8*(o%8)+7 of pattern_word(seed, o/8)  (little endian)
 */
#ifndef GUEST_PATTERN_H
#define GUEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint64_t pattern_word(uint64_t seed, uint64_t w)
{
	return mix64(w ^ (seed * 0x9E3779B97F4A7C15ull));
}

static inline uint8_t pattern_byte(uint64_t seed, uint64_t off)
{
	return pattern_word(seed, off >> 3) >> (8 * (off & 7));
}

/* Fill len bytes (a multiple of 8) at p with the pattern for byte offset `off` onwards
 * (off a multiple of 8). */
static inline void pattern_fill(void *p, uint64_t off, size_t len, uint64_t seed)
{
	uint64_t *q = p;

	for (size_t i = 0; i < len / 8; i++)
		q[i] = pattern_word(seed, off / 8 + i);
}

/* Index of the first byte differing from the pattern, or len if none. */
static inline size_t pattern_check(const void *p, uint64_t off, size_t len, uint64_t seed)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != pattern_byte(seed, off + i))
			return i;
	return len;
}

#endif
