#include "lib/mark.h"

#include <stdint.h>

#include "lib/string.h"
#include "lib/sys.h"

/* Four bytes per OUT (each is a trap to ring 0, then a VM exit); the NUL that ends the text
 * goes in the last one, and the zero bytes after it are empty marks, which cvmm ignores. */
void guest_mark(const char *text)
{
	size_t n = strlen(text) + 1;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t w = 0;
		for (size_t k = 0; k < 4 && i + k < n; k++)
			w |= (uint32_t)(uint8_t)text[i + k] << (8 * k);
		pio_out(GUEST_MARK_PORT, 4, w);
	}
}
