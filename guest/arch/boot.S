/* Boot entries.
 *
 * pvh_entry:  QEMU -kernel (PVH). 32-bit protected mode, paging off, ebx = hvm_start_info.
 *             Turn on long mode with the static page tables and join _start64 as CPU 0.
 * _start64:   ELF e_entry, what cvmm uses for every vCPU: long mode, CPL0, paging on,
 *             rbx = rsi = hvm_start_info, rdi = vCPU index.
 *
 * Ring 0 is emulated on this host (~1.2 us per instruction, HOST.md), so this path is short and
 * loop-free apart from the APs' wait; everything else runs in ring 3. */
#include "arch/arch.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define CR0_PE (1 << 0)
#define CR0_ET (1 << 4)
#define CR0_NE (1 << 5)
#define CR0_WP (1 << 16)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)

/* PVH note. The descriptor is 8 bytes (entry, 0), as Linux emits it: QEMU reads a full
 * 64-bit word for ELF64 images, a reader taking 32 bits gets the same address. 4-byte
 * alignment keeps PT_NOTE's p_align at 4, which QEMU uses to step over the name. */
	.section .note.Xen, "a"
	.balign 4
	.long 4, 8, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_entry, 0

	.section .text.boot, "ax"
	.code32
	.globl pvh_entry
pvh_entry:
	cli
	cld
	mov %ebx, %esi
	lgdt gdt_ptr			/* low 32 bits of the base: the GDT is below 4 GiB */
	mov $CR4_PAE, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	mov $(CR0_PG | CR0_WP | CR0_NE | CR0_ET | CR0_PE), %eax
	mov %eax, %cr0
	ljmp $SEL_KCODE, $1f
	.code64
1:	mov $SEL_KDATA, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov %esi, %ebx			/* zero-extends: rbx = rsi = start_info */
	xor %edi, %edi			/* CPU 0 */
	/* fall through */

	.globl _start64
_start64:
	cli
	cld
	cmp $MAX_CPUS, %rdi
	jae park
	mov %rdi, %r12			/* callee-saved across the C calls below */
	mov %rbx, %r13
	lea 1(%rdi), %rax
	imul $KSTACK_SIZE, %rax, %rax
	lea kstack(%rax), %rsp
	test %rdi, %rdi
	jnz 2f
	rdtsc				/* BSP: boot time is reported from here */
	mov %eax, boot_tsc
	mov %edx, boot_tsc + 4
	call idt_init			/* BSP: the IDT is shared; build it once */
	movl $1, aps_go			/* then release the APs */
	jmp 3f
2:	pause				/* APs: wait for the shared tables */
	cmpl $0, aps_go
	je 2b
3:	mov %r12, %rdi
	call cpu_setup			/* CR3, GDT, IDT, own TSS, CR4, GS base */

	/* Drop to ring 3. IF stays 0 (RFLAGS = 0x2): the guest polls, it takes no interrupts. */
	lea 1(%r12), %rax
	imul $USTACK_SIZE, %rax, %rax
	lea ustack(%rax), %rax
	pushq $SEL_UDATA
	pushq %rax
	pushq $0x2
	pushq $SEL_UCODE
	pushq $user_start
	mov %r12, %rdi
	mov %r13, %rsi
	iretq

park:	hlt				/* a vCPU index beyond MAX_CPUS: nothing for it to do */
	jmp park

/* Ring 3 from here: call the C runtime with a properly aligned stack. */
	.text
user_start:
	xor %ebp, %ebp
	call rt_start
	ud2

	.section .bss
	.balign 16
	.globl kstack, istack
kstack:	.skip KSTACK_SIZE * MAX_CPUS
istack:	.skip ISTACK_SIZE * MAX_CPUS
ustack:	.skip USTACK_SIZE * MAX_CPUS

	.data
	.balign 4
	.globl aps_go, boot_tsc
aps_go:	.long 0
	.balign 8
boot_tsc: .quad 0
