/*
 * Counts what a CUDA program asks of the driver and cuBLAS, for moe_bench's launches-per-pass
 * table: kernel launches, GEMM calls, device-to-host copies and synchronisations.
 *
 * candle links libcuda and libcublas dynamically (cudarc's `dynamic-linking`), so preloading
 * this library interposes the functions below; each counts, then calls the real one found with
 * dlsym(RTLD_NEXT). Every forwarded function takes only integer and pointer arguments, so on
 * x86-64 System V a wrapper that passes 20 64-bit words through is exact.
 *
 * Build:  cc -O2 -shared -fPIC -o liblaunch_count.so launch_count.c -ldl
 * Use:    LD_PRELOAD=$PWD/liblaunch_count.so moe_bench --count-launches ...
 * The program reads the counters through launch_count_snapshot() (looked up with dlsym).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stddef.h>

enum { KERNELS, GEMMS, DTOH, SYNCS, N_COUNTERS };
static _Atomic uint64_t counters[N_COUNTERS];

/* Copies the counters (kernel launches, GEMM calls, device-to-host copies, synchronisations). */
size_t launch_count_snapshot(uint64_t *out, size_t n) {
    size_t i;
    for (i = 0; i < n && i < N_COUNTERS; i++) out[i] = atomic_load(&counters[i]);
    return N_COUNTERS;
}

typedef uint64_t w;
typedef int (*fn20)(w, w, w, w, w, w, w, w, w, w, w, w, w, w, w, w, w, w, w, w);

#define FORWARD(name, counter)                                                           \
    int name(w a0, w a1, w a2, w a3, w a4, w a5, w a6, w a7, w a8, w a9, w a10, w a11,   \
             w a12, w a13, w a14, w a15, w a16, w a17, w a18, w a19) {                   \
        static fn20 real;                                                                \
        if (!real) real = (fn20)dlsym(RTLD_NEXT, #name);                                 \
        atomic_fetch_add(&counters[counter], 1);                                         \
        return real(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14,     \
                    a15, a16, a17, a18, a19);                                            \
    }

FORWARD(cuLaunchKernel, KERNELS)
FORWARD(cuLaunchKernelEx, KERNELS)
FORWARD(cuMemcpyDtoH_v2, DTOH)
FORWARD(cuMemcpyDtoHAsync_v2, DTOH)
FORWARD(cuStreamSynchronize, SYNCS)
FORWARD(cuCtxSynchronize, SYNCS)
FORWARD(cuEventSynchronize, SYNCS)
FORWARD(cublasGemmEx, GEMMS)
FORWARD(cublasGemmStridedBatchedEx, GEMMS)
FORWARD(cublasSgemm_v2, GEMMS)
FORWARD(cublasSgemmStridedBatched, GEMMS)
FORWARD(cublasDgemm_v2, GEMMS)
FORWARD(cublasDgemmStridedBatched, GEMMS)
FORWARD(cublasHgemm, GEMMS)
FORWARD(cublasHgemmStridedBatched, GEMMS)
FORWARD(cublasLtMatmul, GEMMS)
