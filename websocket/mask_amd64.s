//go:build amd64 && !purego

#include "textflag.h"

// func maskAVX2(p *byte, n int, key uint32)
// n is a positive multiple of 32. Unaligned loads and stores: on current CPUs they
// cost the same as aligned ones unless they cross a cache line.
TEXT ·maskAVX2(SB), NOSPLIT, $0-20
	MOVQ p+0(FP), DI
	MOVQ n+8(FP), CX
	MOVL key+16(FP), AX
	MOVQ AX, X0
	VPBROADCASTD X0, Y0
	CMPQ CX, $128
	JB   avx2tail

avx2loop128:
	VMOVDQU (DI), Y1
	VMOVDQU 32(DI), Y2
	VMOVDQU 64(DI), Y3
	VMOVDQU 96(DI), Y4
	VPXOR   Y0, Y1, Y1
	VPXOR   Y0, Y2, Y2
	VPXOR   Y0, Y3, Y3
	VPXOR   Y0, Y4, Y4
	VMOVDQU Y1, (DI)
	VMOVDQU Y2, 32(DI)
	VMOVDQU Y3, 64(DI)
	VMOVDQU Y4, 96(DI)
	ADDQ    $128, DI
	SUBQ    $128, CX
	CMPQ    CX, $128
	JAE     avx2loop128

avx2tail:
	TESTQ CX, CX
	JZ    avx2done

avx2loop32:
	VMOVDQU (DI), Y1
	VPXOR   Y0, Y1, Y1
	VMOVDQU Y1, (DI)
	ADDQ    $32, DI
	SUBQ    $32, CX
	JNZ     avx2loop32

avx2done:
	VZEROUPPER
	RET

// func maskSSE2(p *byte, n int, key uint32)
// n is a positive multiple of 16.
TEXT ·maskSSE2(SB), NOSPLIT, $0-20
	MOVQ   p+0(FP), DI
	MOVQ   n+8(FP), CX
	MOVL   key+16(FP), AX
	MOVQ   AX, X0
	PSHUFD $0, X0, X0
	CMPQ   CX, $64
	JB     sse2tail

sse2loop64:
	MOVOU (DI), X1
	MOVOU 16(DI), X2
	MOVOU 32(DI), X3
	MOVOU 48(DI), X4
	PXOR  X0, X1
	PXOR  X0, X2
	PXOR  X0, X3
	PXOR  X0, X4
	MOVOU X1, (DI)
	MOVOU X2, 16(DI)
	MOVOU X3, 32(DI)
	MOVOU X4, 48(DI)
	ADDQ  $64, DI
	SUBQ  $64, CX
	CMPQ  CX, $64
	JAE   sse2loop64

sse2tail:
	TESTQ CX, CX
	JZ    sse2done

sse2loop16:
	MOVOU (DI), X1
	PXOR  X0, X1
	MOVOU X1, (DI)
	ADDQ  $16, DI
	SUBQ  $16, CX
	JNZ   sse2loop16

sse2done:
	RET
