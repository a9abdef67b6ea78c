/* Pins against a layout break over TWO pages, checked with SPIN (tests/model/run.sh): the
 * termination half of DESIGN.md "no self-deadlock". mm/pcache.c pcache_pin_ranges and
 * devices/blk.c do_dwz are what is modelled; pcache.pml covers the data half on one page.
 *
 * Processes:
 *   Breaker   a DISCARD from elsewhere (or a truncate): BREAKING on page 0 then page 1
 *             (ascending, without page locks, as pcache_break_punch does), drain both, punch,
 *             clear BREAKING.
 *   Device    a blk request whose buffer covers both pages: pin page 0 then page 1 (a pin is one
 *             CAS refused while BREAKING, seed 001), do the I/O, unpin. Meeting BREAKING, it
 *             drops every pin it holds and waits, then starts over (Kara in seed 001: "bail").
 *   SelfDwz   a DISCARD whose own status byte lies in page 1, the page it discards: the device
 *             pins the request's buffers, copies the segments out, DROPS ITS PINS, breaks
 *             (BREAKING + drain on page 1), then pins the status byte alone to complete it.
 * Checked: no invalid end state (every process terminates: no deadlock), and no pin is held
 * while the page it covers is punched.
 * Broken variants the checker must reject:
 *   BUG_PIN_HOLD       the device waits for BREAKING to clear while keeping its earlier pins
 *                      (what pcache_pin did before: the breaker then drains forever);
 *   BUG_DWZ_KEEP_PIN   the DISCARD keeps its pins across its own break (waits on itself). */

byte pins[2];
bool breaking[2];
byte punched = 0;        /* ghost: pages being punched right now */
byte done = 0;

inline pin_try(p, ok) {
	atomic {
		if
		:: !breaking[p] -> pins[p]++; ok = 1
		:: else -> ok = 0
		fi
	}
}

inline brk(p) {
	/* the break_lock of pcache.c: one break at a time */
	atomic { (breaklock == 0) -> breaklock = 1 };
	breaking[p] = 1;
	(pins[p] == 0);                             /* drain, no page lock held */
	atomic { assert(pins[p] == 0); punched++ };
	punched--;
	breaking[p] = 0;
	breaklock = 0
}

bool breaklock = 0;

proctype Breaker() {
	atomic { (breaklock == 0) -> breaklock = 1 };
	breaking[0] = 1;
	breaking[1] = 1;
	(pins[0] == 0);
	(pins[1] == 0);
	atomic { assert(pins[0] == 0 && pins[1] == 0); punched++ };
	punched--;
	breaking[0] = 0;
	breaking[1] = 0;
	breaklock = 0;
	done++
}

proctype Device() {
	bool ok;
again:
	pin_try(0, ok);
	if
	:: !ok -> (!breaking[0]); goto again
	:: else -> skip
	fi;
	pin_try(1, ok);
	if
	:: !ok ->
#ifdef BUG_PIN_HOLD
		(!breaking[1]);                     /* waits holding pin 0 */
		atomic { pins[1]++ }
#else
		pins[0]--;                          /* all or nothing: drop, wait, start over */
		(!breaking[1]);
		goto again
#endif
	:: else -> skip
	fi;
	/* the DMA: both pages pinned, no punch can be running over them */
	atomic { assert(punched == 0 || (!breaking[0] && !breaking[1])) };
	pins[0]--;
	pins[1]--;
	done++
}

proctype SelfDwz() {
	bool ok;
	/* pin the request's buffers: the segment table and the status byte, in page 1 */
again:
	pin_try(1, ok);
	if
	:: !ok -> (!breaking[1]); goto again
	:: else -> skip
	fi;
	/* segments copied out */
#ifndef BUG_DWZ_KEEP_PIN
	pins[1]--;                                  /* dropped before the break */
#endif
	brk(1);
#ifdef BUG_DWZ_KEEP_PIN
	pins[1]--;
#else
	/* the status byte, pinned on its own to write it */
again2:
	pin_try(1, ok);
	if
	:: !ok -> (!breaking[1]); goto again2
	:: else -> skip
	fi;
	pins[1]--;
#endif
	done++
}

init {
	atomic { run Breaker(); run Device(); run SelfDwz() };
	(done == 3);
	assert(pins[0] == 0 && pins[1] == 0 && !breaking[0] && !breaking[1])
}
