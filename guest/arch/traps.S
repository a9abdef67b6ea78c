/* Exception stubs (vectors 0-31), the common trap path, and the ring-3 syscall gate.
 * Every ring-0 instruction is emulated here (HOST.md), so the syscall paths are a handful of
 * instructions and save nothing the ABI lets them clobber (see arch.h). */
#include "arch/arch.h"

	.text
/* Vectors that push an error code: 8 10 11 12 13 14 17 21 29 30. Others get a dummy 0. */
.macro ISR vec
	.balign 16
isr\vec:
	.if !(\vec == 8 || (\vec >= 10 && \vec <= 14) || \vec == 17 || \vec == 21 || \vec == 29 || \vec == 30)
	pushq $0
	.endif
	pushq $\vec
	jmp trap_common
.endm

	.irp v, 0,1,2,3,4,5,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ISR \v
	.endr

/* #UD: the syscall gate if it is the ud2 at sys_trap (see arch.h), else a crash like the rest.
 * Checked before anything is saved: every ring-0 instruction costs ~1.2 us here. */
	.balign 16
isr6:
	cmpq $sys_trap, (%rsp)		/* the faulting RIP */
	jne 1f
	addq $2, (%rsp)			/* resume after the ud2 */
	cmp $NR_SYSCALLS, %rax
	jae sys_bad
	jmp *sys_table(, %rax, 8)
1:	pushq $0
	pushq $6
	jmp trap_common

/* Layout must match struct trap_frame. The CPU aligned RSP to 16 and pushed 5 words; with
 * error, vector and 15 registers the call below sees an ABI-aligned stack. */
trap_common:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, %rdi
	call trap_dispatch		/* returns only if a hook handled the trap */
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	add $16, %rsp
	iretq

	.section .rodata
	.balign 8
	.globl isr_table
isr_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad isr\v
	.endr

/* Ring 3 calls this; the ud2 traps into isr6, which returns to the ret. */
	.text
	.globl sys_trap
sys_trap:
	ud2
	ret

/* Syscall handlers: entered from isr6 on the ring-0 stack, return with iretq. */
sys_bad:
	mov $-1, %rax
	iretq

/* One string outs per line: one trip into ring 0 (~20 us here) per line, not per byte. KVM's
 * emulator still exits to the VMM once per byte of an outs (measured: ~16 us a byte under
 * QEMU), so the console is slow: keep output short. */
sys_write:				/* rdi = buf, rsi = len */
	mov %rsi, %rcx
	mov %rdi, %rsi
	mov $COM1_PORT, %edx
	rep outsb
	xor %eax, %eax
	iretq

sys_exit:				/* rdi = status */
	mov %edi, %eax
	mov $DEBUG_EXIT_PORT, %edx
	outl %eax, %dx
	jmp exit_failed			/* no debug-exit device: see below */

sys_pio_in:				/* rdi = port, rsi = size */
	mov %edi, %edx
	xor %eax, %eax
	cmp $1, %rsi
	je 1f
	cmp $2, %rsi
	je 2f
	inl %dx, %eax
	iretq
1:	inb %dx, %al
	iretq
2:	inw %dx, %ax
	iretq

sys_pio_out:				/* rdi = port, rsi = size, rdx = value */
	mov %rdx, %rax
	mov %edi, %edx
	cmp $1, %rsi
	je 1f
	cmp $2, %rsi
	je 2f
	outl %eax, %dx
	jmp 3f
1:	outb %al, %dx
	jmp 3f
2:	outw %ax, %dx
3:	xor %eax, %eax
	iretq

sys_rdmsr:				/* rdi = msr */
	mov %edi, %ecx
	rdmsr
	shl $32, %rdx
	or %rdx, %rax
	iretq

sys_wrmsr:				/* rdi = msr, rsi = value */
	mov %edi, %ecx
	mov %esi, %eax
	mov %rsi, %rdx
	shr $32, %rdx
	wrmsr
	xor %eax, %eax
	iretq

/* CPUID at CPL3 is not intercepted on this host: it returns the host's own values (its APIC
 * IDs, its features), not the VMM's table. In (emulated) ring 0 it is. */
sys_cpuid:				/* rdi = leaf, rsi = subleaf */
	push %rbx
	mov %edi, %eax
	mov %esi, %ecx
	cpuid
	shl $32, %rbx
	or %rbx, %rax
	shl $32, %rdx
	or %rcx, %rdx
	pop %rbx
	iretq

/* The write to the debug-exit port returned: there is no such device. Say so, then force a
 * triple fault (empty IDT + a #UD) so the VMM sees a shutdown instead of a guest that hangs.
 * Not int3: KVM's emulator stops with an internal error on it in (emulated) ring 0. */
	.globl exit_failed
exit_failed:
	lea exit_msg(%rip), %rsi
	mov $exit_msg_len, %ecx
	mov $COM1_PORT, %edx
	rep outsb
	lidt null_idt(%rip)
	ud2
1:	cli
	hlt
	jmp 1b

/* The CPU pushed 5 words on a 16-byte aligned RSP0: RSP is 8 mod 16 here; the C ABI wants
 * it 0 mod 16 at the call. Arguments are already in rdi/rsi/rdx. */
sys_map:				/* rdi = phys, rsi = size, rdx = attr */
	sub $8, %rsp
	call sys_map_range
	add $8, %rsp
	iretq

	.section .rodata
	.balign 8
sys_table:
	.quad sys_bad, sys_write, sys_exit, sys_pio_in, sys_pio_out, sys_rdmsr, sys_wrmsr, sys_cpuid
	.quad sys_map
	.if (. - sys_table) != NR_SYSCALLS * 8
	.error "sys_table does not match NR_SYSCALLS"
	.endif
null_idt:
	.word 0
	.quad 0
exit_msg:
	.ascii "guest: debug-exit port 0xf4 did not end the VM; forcing a shutdown\n"
	.set exit_msg_len, . - exit_msg
