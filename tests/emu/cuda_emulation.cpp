// cuda_emulation.cpp -- the CPU emulation of cuda_emulation.hpp: fibers
// (own stacks, switched by a few instructions) for the CUDA threads of one cluster at a time, a round-robin
// scheduler with deadlock detection, the warp and warpgroup collectives,
// TMA, mbarriers, cluster memory, and the CUDA runtime calls of the kernel
// workbenches. Invariants: exactly one fiber runs at a time, and it changes
// only at the primitives (so shared memory is sequentially consistent);
// `epoch` counts every change of emulated state, and a scheduler round in
// which it stays the same while fibers remain is a deadlock.
#include "cuda_emulation.hpp"

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

// Switching between fibers: on x86-64 a few instructions saving the
// callee-saved registers, MXCSR and the x87 control word on the old stack
// (ucontext's swapcontext costs a system call a switch for the signal mask,
// which dominated the run); elsewhere ucontext.
#if defined(__x86_64__)
extern "C" void slay_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl slay_emu_switch
    .type slay_emu_switch, @function
slay_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size slay_emu_switch, .-slay_emu_switch
    .section .note.GNU-stack, "", @progbits
    .text
)");
struct Context {
    void* sp = nullptr;
};
// A context that starts in entry() on the given stack: the frame
// slay_emu_switch pops (control words, six registers), then entry as the
// return address, at a 16-byte boundary so that entry sees the call ABI's
// alignment.
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
    auto* top = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t{15});
    *--top = 0;  // entry never returns: a null return address above it
    *--top = reinterpret_cast<uint64_t>(entry);
    for (int i = 0; i < 6; ++i) *--top = 0;  // rbp, rbx, r12-r15
    *--top = 0x037Full << 32 | 0x1F80u;     // MXCSR, x87 control word: the defaults
    c.sp = top;
}
void switch_context(Context& from, Context& to) { slay_emu_switch(&from.sp, to.sp); }
#else
struct Context {
    ucontext_t uc;
};
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// ThreadSanitizer's fiber and annotation interface, present when the
// kernels' translation unit is built with -fsanitize=thread (weak: the
// emulation links without it). This file itself is never instrumented: the
// emulation's bookkeeping is not kernel memory; the kernel memory it
// touches (ldmatrix, wgmma operands and accumulators, TMA boxes, cluster
// stores) is reported by range, and each primitive's ordering (barrier
// arrivals before departures, mbarrier arrivals and landed bytes before the
// phase's waiters, a collective's operands before its results) by
// acquire/release, so that TSan reports the races of the kernels' own
// shared-memory protocols. Fiber switches do not synchronize.
extern "C" {
void* __tsan_get_current_fiber() __attribute__((weak));
void* __tsan_create_fiber(unsigned flags) __attribute__((weak));
void __tsan_destroy_fiber(void* fiber) __attribute__((weak));
void __tsan_switch_to_fiber(void* fiber, unsigned flags) __attribute__((weak));
void __tsan_set_fiber_name(void* fiber, const char* name) __attribute__((weak));
void __tsan_acquire(void* addr) __attribute__((weak));
void __tsan_release(void* addr) __attribute__((weak));
void __tsan_read_range(void* addr, unsigned long size) __attribute__((weak));
void __tsan_write_range(void* addr, unsigned long size) __attribute__((weak));
}

namespace slay_emu {
namespace {

bool tsan_on() { return __tsan_switch_to_fiber != nullptr; }
void hb_release(const void* key) {
    if (tsan_on()) __tsan_release(const_cast<void*>(key));
}
void hb_acquire(const void* key) {
    if (tsan_on()) __tsan_acquire(const_cast<void*>(key));
}
void reads(const void* p, size_t bytes) {
    if (tsan_on()) __tsan_read_range(const_cast<void*>(p), bytes);
}
void writes(void* p, size_t bytes) {
    if (tsan_on()) __tsan_write_range(p, bytes);
}
constexpr unsigned kTsanNoSync = 1;  // __tsan_switch_to_fiber_no_sync

constexpr size_t kStackBytes = 256 * 1024;
constexpr int kWarp = 32, kWarpgroup = 128;
constexpr size_t kMaxSharedBytes = 227 * 1024;

struct Cta;
struct Cluster;

struct Fiber {
    Context context;
    std::unique_ptr<char[]> stack;
    Cta* cta = nullptr;
    unsigned tid = 0;
    bool done = false;
    const char* waiting = nullptr;  // what it waits for (the deadlock report)
    uint64_t wgmma_issued = 0, wgmma_committed = 0;
    uint64_t issued_at_commit[64] = {};  // wgmma_issued at commit n (n % 64)
    uint64_t wgmma_acquired = 0;         // its wgmmas whose completion it acquired
    void* tsan = nullptr;                // its ThreadSanitizer fiber
    ~Fiber() {
        if (tsan) __tsan_destroy_fiber(tsan);
    }
};

// One lane's part of a warp collective: operands in, results out.
struct LaneRecord {
    uint32_t in[10];
    const void* address;
    uint32_t out[4];
};
// A warp's collectives, double-buffered by generation parity: a lane writes
// generation g + 2's slot only after every lane arrived at g + 1, that is
// after each took its result of g.
struct WarpSync {
    uint64_t generation = 0;
    int arrived = 0;
    int kind[2] = {0, 0};
    LaneRecord lanes[2][kWarp];
    char operands_in[2], results_out[2];  // happens-before keys by slot
};

// A wgmma as the warpgroup issued it; executed once all 128 threads issued
// it and a wait needs it.
struct WgmmaOp {
    int n = 0, trans_a = 0, trans_b = 0;
    bool ss = false, bf16 = true, accumulate = false, done = false;
    uint64_t a_desc = 0, b_desc = 0, group = 0;
    int issued = 0;
    float* d[kWarpgroup] = {};
    const unsigned* a[kWarpgroup] = {};
};
// A warpgroup's wgmmas in flight: numbers [first, end) in a ring (no
// allocation while the threads run, which ThreadSanitizer would see as
// theirs).
constexpr uint64_t kWgmmaRing = 64;
struct WarpgroupState {
    std::vector<WgmmaOp> ring = std::vector<WgmmaOp>(kWgmmaRing);
    uint64_t first = 0, end = 0;
    char done_key[kWgmmaRing];  // happens-before keys by wgmma number: its execution before the waits
    WgmmaOp* find(uint64_t number) { return number >= first && number < end ? &ring[number % kWgmmaRing] : nullptr; }
};

struct NamedBarrier {
    unsigned arrived = 0, expected = 0;
    uint64_t generation = 0;
    char key[2];  // by generation parity
};
struct MBarrier {
    unsigned expected = 0, pending = 0;
    int64_t tx = 0;
    uint64_t phase = 0;  // completions so far
    char key[2];         // by phase parity: arrivals and landed bytes release, waiters acquire
};

struct Cta {
    Cluster* cluster = nullptr;
    unsigned rank = 0;
    uint3 index{};
    unsigned char* smem = nullptr;
    size_t smem_bytes = 0;
    std::vector<std::unique_ptr<Fiber>> threads;
    std::vector<WarpSync> warps;
    std::vector<WarpgroupState> warpgroups;
    NamedBarrier named[16];
    std::unordered_map<uint32_t, MBarrier> mbarriers;  // by shared address
    unsigned alive = 0;
    ~Cta() { std::free(smem); }
};
struct Cluster {
    std::vector<std::unique_ptr<Cta>> ctas;
    unsigned arrived = 0, alive = 0;
    uint64_t generation = 0;
    char key[2];
    char tma_key[256];  // a TMA load's issue, by load number % 256
    uint64_t tma_loads = 0;
    char store_key[256];  // an st.async's issue, by store number % 256
    uint64_t async_stores = 0;
    char start_key, exit_key;  // the host's work before the threads; theirs before the host's
};

// The emulated tensor map (in a CUtensorMap's 128 bytes).
struct TensorMap {
    uint64_t magic;
    const unsigned char* base;
    uint32_t rank, elem_bytes;
    uint64_t dims[4], strides[4];  // strides in bytes; strides[0] = elem_bytes
    uint32_t box[4];
    uint32_t swizzle_bytes;  // 0 or 128
};
static_assert(sizeof(TensorMap) <= sizeof(CUtensorMap), "the emulated tensor map fits a CUtensorMap");
constexpr uint64_t kTensorMapMagic = 0x736c61792d746d61ull;

// A TMA box in flight.
struct Landing {
    Cta* target;
    TensorMap map;
    uint32_t to, bar_address;
    int coords[4];
    const char* issue_key;
};
constexpr size_t kMaxLandings = 4096;
// An st.async (up to four floats) landing in `target` after the round, then
// completing its bytes on the target's mbarrier at bar_address.
struct AsyncStore {
    Cta* target;
    uint32_t to, bar_address;
    float values[4];
    int n;
    const char* issue_key;
};
constexpr size_t kMaxAsyncStores = 1 << 16;

struct Launch {
    dim3 grid, block;
    unsigned threads_per_cta = 0, cluster_size = 1;
    size_t smem_bytes = 0;
    std::function<void()> body;
    Context scheduler;
    Fiber* current = nullptr;
    Cluster* cluster = nullptr;
    uint64_t epoch = 0;
    std::vector<Landing> landing;  // TMA boxes landing after this round (capacity reserved: see WarpgroupState)
    std::vector<AsyncStore> async_stores;  // st.async stores landing after this round (the same)
    bool failed = false;
    std::string failure;
    std::mt19937 rng;
    bool shuffle = false;
    bool wgmma_early = false;  // SLAY_EMU_WGMMA_EARLY: each wgmma runs at its last issue, not at the wait
    void* tsan_scheduler = nullptr;
};
Launch* g_launch = nullptr;
cudaError_t g_last_error = cudaSuccess;

Fiber& me() {
    if (!g_launch || !g_launch->current) {
        std::fprintf(stderr, "cuda emulation: a device primitive called outside a kernel\n");
        std::abort();
    }
    return *g_launch->current;
}
Cta& my_cta() { return *me().cta; }
void changed() { ++g_launch->epoch; }

// Lets the other fibers run; returns when the scheduler comes back here.
void to_scheduler(Fiber& f) {
    if (tsan_on()) __tsan_switch_to_fiber(g_launch->tsan_scheduler, kTsanNoSync);
    switch_context(f.context, g_launch->scheduler);
}
void block(const char* what) {
    Fiber& f = me();
    f.waiting = what;
    to_scheduler(f);
    f.waiting = nullptr;
}

uint32_t offset_in(const Cta& cta, const void* p, size_t bytes, const char* what) {
    const auto* b = static_cast<const unsigned char*>(p);
    if (b < cta.smem || b + bytes > cta.smem + cta.smem_bytes) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "%s: an address outside the CTA's %zu bytes of shared memory", what,
                      cta.smem_bytes);
        fail(msg);
    }
    return static_cast<uint32_t>(b - cta.smem);
}

// ------------------------------------------------------------ barriers
// A barrier's arrival (release) and, once it opened, the departure
// (acquire) of one of its generations.
template <typename Barrier>
void arrive_at(Barrier& b) {
    hb_release(&b.key[b.generation & 1]);
}
template <typename Barrier>
void depart_from(Barrier& b, uint64_t generation) {
    hb_acquire(&b.key[generation & 1]);
}
void release_if_complete(NamedBarrier& b, unsigned expected) {
    if (b.arrived > 0 && b.arrived >= expected) {
        b.arrived = 0;
        ++b.generation;
        changed();
    }
}
void cluster_release_if_complete(Cluster& c) {
    if (c.arrived > 0 && c.arrived >= c.alive) {
        c.arrived = 0;
        ++c.generation;
        changed();
    }
}

MBarrier& mbarrier_at(Cta& cta, uint32_t address) {
    auto it = cta.mbarriers.find(address);
    if (it == cta.mbarriers.end()) {
        char msg[120];
        std::snprintf(msg, sizeof msg, "the mbarrier at shared address %u is used before its init", address);
        fail(msg);
    }
    return it->second;
}
// An arrival or landed bytes on the current phase (release), before the
// count changes.
void mbarrier_release(MBarrier& b) { hb_release(&b.key[b.phase & 1]); }
void complete_if_done(MBarrier& b) {
    if (b.pending == 0 && b.tx == 0) {
        ++b.phase;
        b.pending = b.expected;
        changed();
    }
}
// Landed bytes of an asynchronous copy or store completing on b (complete-tx).
void complete_tx(MBarrier& b, int64_t bytes) {
    mbarrier_release(b);
    b.tx -= bytes;
    complete_if_done(b);
}
void arrive_on(MBarrier& b) {
    if (b.pending == 0) fail("an mbarrier arrival beyond its count");
    mbarrier_release(b);
    --b.pending;
    changed();
    complete_if_done(b);
}

// Cluster addresses: shared addresses below 2^24 name the own CTA's; mapa
// gives (rank + 1) << 24 | offset.
std::pair<Cta*, uint32_t> resolve(uint32_t address) {
    Cta& own = my_cta();
    const uint32_t tag = address >> 24, offset = address & 0xFFFFFFu;
    if (tag == 0) return {&own, offset};
    if (tag - 1 >= own.cluster->ctas.size()) fail("a shared::cluster address of a rank outside the cluster");
    return {own.cluster->ctas[tag - 1].get(), offset};
}

// ------------------------------------------------------------ warp collectives
// Only __syncwarp orders the lanes' memory accesses (for ThreadSanitizer):
// the other collectives exchange registers, and a lane's shared-memory
// access after an ldmatrix is not ordered after the other lanes' reads of
// it (compute-sanitizer's racecheck warns of such intra-warp hazards too).
template <typename Exec>
const LaneRecord& collective(int kind, const char* name, const LaneRecord& mine, Exec exec,
                             bool orders_memory = false) {
    Fiber& f = me();
    Cta& cta = *f.cta;
    WarpSync& w = cta.warps[f.tid / kWarp];
    const unsigned lane = f.tid % kWarp;
    const int slot = static_cast<int>(w.generation & 1);
    if (w.arrived == 0) {
        w.kind[slot] = kind;
    } else if (w.kind[slot] != kind) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "warp %u: lanes meet in different collectives (%s and kind %d)", f.tid / kWarp,
                      name, w.kind[slot]);
        fail(msg);
    }
    LaneRecord& rec = w.lanes[slot][lane];
    std::memcpy(rec.in, mine.in, sizeof rec.in);
    rec.address = mine.address;
    if (orders_memory) hb_release(&w.operands_in[slot]);
    ++w.arrived;
    changed();
    const uint64_t generation = w.generation;
    if (w.arrived == kWarp) {
        if (orders_memory) hb_acquire(&w.operands_in[slot]);
        exec(w.lanes[slot], cta);
        if (orders_memory) hb_release(&w.results_out[slot]);
        w.arrived = 0;
        ++w.generation;
    } else {
        while (w.generation == generation) block(name);
    }
    if (orders_memory) hb_acquire(&w.results_out[slot]);
    return w.lanes[slot][lane];
}

float to_float(uint16_t bits, bool bf16) {
    if (bf16) {
        const uint32_t x = static_cast<uint32_t>(bits) << 16;
        float f;
        std::memcpy(&f, &x, 4);
        return f;
    }
    __half_raw raw;
    raw.x = bits;
    return __half2float(__half(raw));
}
uint16_t half_of(uint32_t reg, int hi) { return static_cast<uint16_t>(hi ? reg >> 16 : reg & 0xFFFFu); }
uint32_t float_bits(float x) {
    uint32_t b;
    std::memcpy(&b, &x, 4);
    return b;
}
float bits_float(uint32_t b) {
    float x;
    std::memcpy(&x, &b, 4);
    return x;
}

// ------------------------------------------------------------ wgmma
uint32_t sw128(uint32_t address) { return address ^ (((address >> 7) & 7u) << 4); }

struct Descriptor {
    uint32_t start, lbo, sbo;
};
Descriptor decode(uint64_t d) {
    if ((d >> 62) != 1) fail("a wgmma descriptor without the 128-byte swizzle (layout field != 1)");
    if (((d >> 49) & 7) != 0) fail("a wgmma descriptor with a base offset");
    return {static_cast<uint32_t>(d & 0x3FFF) << 4, static_cast<uint32_t>((d >> 16) & 0x3FFF) << 4,
            static_cast<uint32_t>((d >> 32) & 0x3FFF) << 4};
}
// Element (mn, k) of an SW128 operand: K-major (trans 0: rows = mn, k
// contiguous) or MN-major (trans 1: rows = k, mn contiguous in 64-wide
// blocks LBO apart), 8-row groups SBO apart (wgmma_primitives.cuh).
float operand(const Cta& cta, const Descriptor& d, int trans, int mn, int k, bool bf16) {
    uint32_t address = trans == 0 ? d.start + (mn / 8) * d.sbo + (mn % 8) * 128 + 2 * k
                                  : d.start + (k / 8) * d.sbo + (k % 8) * 128 + (mn / 64) * d.lbo + 2 * (mn % 64);
    address = sw128(address);
    if (address + 2 > cta.smem_bytes) fail("a wgmma operand beyond the CTA's shared memory");
    reads(cta.smem + address, 2);
    uint16_t bits;
    std::memcpy(&bits, cta.smem + address, 2);
    return to_float(bits, bf16);
}

void execute(WgmmaOp& op, const Cta& cta) {
    static thread_local float A[64][16], B[16][256];
    if (op.ss) {
        const Descriptor da = decode(op.a_desc);
        for (int m = 0; m < 64; ++m)
            for (int k = 0; k < 16; ++k) A[m][k] = operand(cta, da, op.trans_a, m, k, op.bf16);
    } else {
        for (int lane = 0; lane < kWarpgroup; ++lane) {
            const int w = lane / kWarp, g = lane % kWarp / 4, t = lane % 4;
            const unsigned* r = op.a[lane];  // a register: not reported (see run_issued)
            for (int i = 0; i < 4; ++i) {
                const int row = 16 * w + g + 8 * (i & 1), col = 2 * t + 8 * (i >> 1);
                A[row][col] = to_float(half_of(r[i], 0), op.bf16);
                A[row][col + 1] = to_float(half_of(r[i], 1), op.bf16);
            }
        }
    }
    const Descriptor db = decode(op.b_desc);
    for (int k = 0; k < 16; ++k)
        for (int n = 0; n < op.n; ++n) B[k][n] = operand(cta, db, op.trans_b, n, k, op.bf16);
    for (int lane = 0; lane < kWarpgroup; ++lane) {
        const int w = lane / kWarp, g = lane % kWarp / 4, t = lane % 4;
        float* d = op.d[lane];  // registers: not reported (see run_issued)
        for (int j = 0; j < op.n / 8; ++j)
            for (int e = 0; e < 4; ++e) {
                const int row = 16 * w + g + 8 * (e >> 1), col = 8 * j + 2 * t + (e & 1);
                float sum = 0.f;
                for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
                d[4 * j + e] = (op.accumulate ? d[4 * j + e] : 0.f) + sum;
            }
    }
    op.done = true;
    changed();
}

// Executes wgmma `number` of warpgroup s in the fiber of the thread whose
// wait needs it first, its results (and its reads of shared memory) released
// to the waits that cover it. No happens-before edge runs from the other
// threads' issues to the execution: the PTX memory model orders a thread's
// wait after the wgmma's own accesses, not after the other threads'
// accesses before their issues, so a warp's generic read that another warp's
// rewrite after its wait is ordered by the wgmma alone is a race here too
// (compute-sanitizer's racecheck reports it on the device). The operands'
// shared memory is reported as read by the executing thread, whose history
// (its barriers before the issue) orders the tiles' writes; the A and D
// registers are the issuing threads' own and are not reported (the
// wgmma-early mode checks when they may change).
void run_issued(WarpgroupState& s, WgmmaOp& op, uint64_t number, const Cta& cta) {
    execute(op, cta);
    hb_release(&s.done_key[number % 64]);
}

void issue(const WgmmaOp& proto, float* d, const unsigned* a) {
    Fiber& f = me();
    Cta& cta = *f.cta;
    WarpgroupState& s = cta.warpgroups[f.tid / kWarpgroup];
    const uint64_t number = f.wgmma_issued++;
    if (number < s.first) fail("wgmma bookkeeping: an issue below the executed ones");
    while (number >= s.end) {
        if (s.end - s.first == kWgmmaRing) fail("more wgmmas in flight than the emulation holds (64)");
        WgmmaOp& fresh = s.ring[s.end++ % kWgmmaRing];
        fresh = proto;
        fresh.group = f.wgmma_committed;
    }
    WgmmaOp& op = *s.find(number);
    if (op.n != proto.n || op.ss != proto.ss || op.bf16 != proto.bf16 || op.accumulate != proto.accumulate ||
        op.trans_a != proto.trans_a || op.trans_b != proto.trans_b || op.b_desc != proto.b_desc ||
        (op.ss && op.a_desc != proto.a_desc) || op.group != f.wgmma_committed)
        fail("the threads of a warpgroup issue different wgmmas (shape, descriptors, scale-d or commit group)");
    const unsigned lane = f.tid % kWarpgroup;
    if (op.d[lane]) fail("a thread issues one wgmma twice");
    op.d[lane] = d;
    op.a[lane] = a;
    ++op.issued;
    // SLAY_EMU_WGMMA_EARLY: the hardware reads a wgmma's operands at any
    // time between its issue and the wait that covers it; by default the
    // emulation reads them as late as it may (at the wait), this mode as
    // early (when the warpgroup's last thread issues it). A kernel right in
    // one and wrong in the other writes an operand inside that window.
    if (g_launch->wgmma_early && op.issued == static_cast<int>(kWarpgroup)) run_issued(s, op, number, cta);
    changed();
}

// ------------------------------------------------------------ the scheduler
void fiber_entry() {
    Fiber& f = me();
    hb_acquire(&f.cta->cluster->start_key);
    g_launch->body();
    Cta& cta = *f.cta;
    const WarpgroupState& s = cta.warpgroups[f.tid / kWarpgroup];
    for (uint64_t number = s.first; number < s.end; ++number) {
        const WgmmaOp& op = s.ring[number % kWgmmaRing];
        if (!op.done && op.d[f.tid % kWarpgroup]) fail("a thread exits with wgmma operations in flight");
    }
    hb_release(&cta.cluster->exit_key);
    f.done = true;
    --cta.alive;
    --cta.cluster->alive;
    changed();
    release_if_complete(cta.named[0], cta.alive);
    cluster_release_if_complete(*cta.cluster);
    to_scheduler(f);  // never resumed
}

void report_deadlock(const Cluster& cluster) {
    std::string out = "deadlock: every remaining thread waits and nothing changes:\n";
    for (const auto& cta : cluster.ctas) {
        // runs of consecutive threads waiting for the same thing
        unsigned start = 0;
        const char* what = nullptr;
        bool open = false;
        auto flush = [&](unsigned end) {
            if (!open) return;
            char line[256];
            std::snprintf(line, sizeof line, "  CTA (%u, %u, %u) rank %u threads %u-%u: %s\n", cta->index.x,
                          cta->index.y, cta->index.z, cta->rank, start, end - 1, what ? what : "(running)");
            out += line;
            open = false;
        };
        for (unsigned t = 0; t < cta->threads.size(); ++t) {
            const Fiber& f = *cta->threads[t];
            if (f.done) {
                flush(t);
                continue;
            }
            if (open && f.waiting == what) continue;
            flush(t);
            start = t;
            what = f.waiting;
            open = true;
        }
        flush(static_cast<unsigned>(cta->threads.size()));
    }
    g_launch->failed = true;
    g_launch->failure = out;
}

// A TMA box lands (on the scheduler, after the round that issued it): its
// elements in the 128-byte swizzle (zero outside the tensor), then its
// bytes complete on the mbarrier.
void land(const Landing& box) {
    const TensorMap& m = box.map;
    Cta* target = box.target;
    const uint64_t total = static_cast<uint64_t>(m.box[0]) * m.elem_bytes * m.box[1] * m.box[2] * m.box[3];
    hb_acquire(box.issue_key);
    writes(target->smem + box.to, total);
    uint64_t position = 0;
    for (uint32_t i3 = 0; i3 < m.box[3]; ++i3)
        for (uint32_t i2 = 0; i2 < m.box[2]; ++i2)
            for (uint32_t i1 = 0; i1 < m.box[1]; ++i1)
                for (uint32_t i0 = 0; i0 < m.box[0]; ++i0, position += m.elem_bytes) {
                    const int64_t at[4] = {box.coords[0] + int64_t{i0}, box.coords[1] + int64_t{i1},
                                           box.coords[2] + int64_t{i2}, box.coords[3] + int64_t{i3}};
                    bool inside = true;
                    uint64_t source = 0;
                    for (int d = 0; d < 4; ++d) {
                        inside = inside && at[d] >= 0 && static_cast<uint64_t>(at[d]) < m.dims[d];
                        source += static_cast<uint64_t>(at[d]) * m.strides[d];
                    }
                    uint32_t address = box.to + static_cast<uint32_t>(position);
                    if (m.swizzle_bytes == 128) address = sw128(address);
                    if (inside)
                        std::memcpy(target->smem + address, m.base + source, m.elem_bytes);
                    else
                        std::memset(target->smem + address, 0, m.elem_bytes);
                }
    complete_tx(target->mbarriers.at(box.bar_address), static_cast<int64_t>(total));
}

void land(const AsyncStore& st) {
    hb_acquire(st.issue_key);
    writes(st.target->smem + st.to, 4 * st.n);
    std::memcpy(st.target->smem + st.to, st.values, 4 * st.n);
    complete_tx(st.target->mbarriers.at(st.bar_address), 4 * st.n);
}

// A fiber that starts in fiber_entry.
std::unique_ptr<Fiber> make_fiber(Cta* cta, unsigned tid) {
    auto f = std::make_unique<Fiber>();
    f->cta = cta;
    f->tid = tid;
    f->stack.reset(new char[kStackBytes]);
    make_context(f->context, f->stack.get(), kStackBytes, fiber_entry);
    if (tsan_on()) {
        f->tsan = __tsan_create_fiber(0);
        char name[64];
        std::snprintf(name, sizeof name, "CTA rank %u thread %u", cta->rank, tid);
        __tsan_set_fiber_name(f->tsan, name);
    }
    return f;
}

void run_cluster(Launch& L, unsigned first_block) {
    Cluster cluster;
    L.cluster = &cluster;
    for (unsigned r = 0; r < L.cluster_size; ++r) {
        auto cta = std::make_unique<Cta>();
        const unsigned b = first_block + r;
        cta->cluster = &cluster;
        cta->rank = r;
        cta->index = uint3{b % L.grid.x, b / L.grid.x % L.grid.y, b / (L.grid.x * L.grid.y)};
        cta->smem_bytes = L.smem_bytes;
        cta->smem = static_cast<unsigned char*>(std::aligned_alloc(1024, (L.smem_bytes + 1023) / 1024 * 1024 + 1024));
        std::memset(cta->smem, 0xFF, L.smem_bytes);  // uninitialised shared memory reads as NaN
        cta->warps.resize((L.threads_per_cta + kWarp - 1) / kWarp);
        cta->warpgroups.resize((L.threads_per_cta + kWarpgroup - 1) / kWarpgroup);
        cta->alive = L.threads_per_cta;
        for (unsigned t = 0; t < L.threads_per_cta; ++t) cta->threads.push_back(make_fiber(cta.get(), t));
        cluster.alive += L.threads_per_cta;
        cluster.ctas.push_back(std::move(cta));
    }
    std::vector<Fiber*> order;
    for (auto& cta : cluster.ctas)
        for (auto& f : cta->threads) order.push_back(f.get());
    hb_release(&cluster.start_key);  // the inputs and the poisoned shared memory
    while (!L.failed) {
        order.erase(std::remove_if(order.begin(), order.end(), [](Fiber* f) { return f->done; }), order.end());
        if (order.empty()) break;
        if (L.shuffle) std::shuffle(order.begin(), order.end(), L.rng);
        const uint64_t before = L.epoch;
        for (Fiber* f : order) {
            if (f->done) continue;
            L.current = f;
            if (tsan_on()) __tsan_switch_to_fiber(f->tsan, kTsanNoSync);
            switch_context(L.scheduler, f->context);
            L.current = nullptr;
            if (L.failed) break;
        }
        if (L.failed) break;
        if (!L.landing.empty() || !L.async_stores.empty()) {
            for (const Landing& box : L.landing) land(box);
            L.landing.clear();
            for (const AsyncStore& st : L.async_stores) land(st);
            L.async_stores.clear();
            changed();
        }
        if (L.epoch == before) report_deadlock(cluster);
    }
    hb_acquire(&cluster.exit_key);  // the outputs, and the shared memory freed below
    L.cluster = nullptr;
}

}  // namespace

// ------------------------------------------------------------ the device API
uint3 thread_index() {
    const unsigned t = me().tid;
    const dim3 b = g_launch->block;
    return uint3{t % b.x, t / b.x % b.y, t / (b.x * b.y)};
}
uint3 block_index() { return my_cta().index; }
dim3 block_dim() { return g_launch->block; }
dim3 grid_dim() { return g_launch->grid; }
unsigned cluster_rank() { return my_cta().rank; }
unsigned char* dynamic_shared_memory() { return my_cta().smem; }
uint32_t shared_address(const void* p) { return offset_in(my_cta(), p, 0, "__cvta_generic_to_shared"); }

void fail(const char* what) {
    if (!g_launch || !g_launch->current) {
        std::fprintf(stderr, "cuda emulation: %s\n", what);
        std::abort();
    }
    Fiber& f = me();
    char where[96];
    std::snprintf(where, sizeof where, " (CTA (%u, %u, %u) thread %u)", f.cta->index.x, f.cta->index.y,
                  f.cta->index.z, f.tid);
    g_launch->failed = true;
    g_launch->failure = std::string(what) + where;
    to_scheduler(f);  // never resumed
    std::abort();
}

void sync_threads() {
    Cta& cta = my_cta();
    NamedBarrier& b = cta.named[0];
    arrive_at(b);
    ++b.arrived;
    changed();
    const uint64_t generation = b.generation;
    release_if_complete(b, cta.alive);
    while (b.generation == generation) block("__syncthreads");
    depart_from(b, generation);
}
void named_barrier(unsigned id, unsigned threads, bool wait) {
    if (id == 0 || id >= 16) fail("a named barrier id outside 1..15");
    NamedBarrier& b = my_cta().named[id];
    if (b.arrived == 0) {
        b.expected = threads;
    } else if (b.expected != threads) {
        fail("a named barrier's threads count differs between its callers");
    }
    arrive_at(b);
    ++b.arrived;
    changed();
    const uint64_t generation = b.generation;
    release_if_complete(b, b.expected);
    static const char* names[16] = {"bar 0",  "bar.sync 1",  "bar.sync 2",  "bar.sync 3",  "bar.sync 4",  "bar.sync 5",
                                    "bar.sync 6",  "bar.sync 7",  "bar.sync 8",  "bar.sync 9",  "bar.sync 10",
                                    "bar.sync 11", "bar.sync 12", "bar.sync 13", "bar.sync 14", "bar.sync 15"};
    if (!wait) return;
    while (b.generation == generation) block(names[id]);
    depart_from(b, generation);
}
void cluster_sync() {
    Cluster& c = *my_cta().cluster;
    arrive_at(c);
    ++c.arrived;
    changed();
    const uint64_t generation = c.generation;
    cluster_release_if_complete(c);
    while (c.generation == generation) block("barrier.cluster");
    depart_from(c, generation);
}

void barrier_init(uint64_t* bar, unsigned count) {
    Cta& cta = my_cta();
    const uint32_t address = offset_in(cta, bar, 8, "mbarrier.init");
    if (address % 8) fail("an mbarrier not 8-byte aligned");
    if (count == 0) fail("an mbarrier of 0 arrivals");
    MBarrier& b = cta.mbarriers[address];
    b.expected = b.pending = count;
    b.tx = 0;
    b.phase = 0;
    changed();
}
void barrier_arrive(uint64_t* bar, unsigned expect_bytes) {
    Cta& cta = my_cta();
    MBarrier& b = mbarrier_at(cta, offset_in(cta, bar, 8, "mbarrier.arrive"));
    b.tx += expect_bytes;
    arrive_on(b);
}
bool barrier_try_wait(uint64_t* bar, unsigned parity) {
    Cta& cta = my_cta();
    const uint32_t address = offset_in(cta, bar, 8, "mbarrier.try_wait");
    auto passed = [&] {
        MBarrier& b = mbarrier_at(cta, address);
        if ((b.phase & 1) == (parity & 1)) return false;
        hb_acquire(&b.key[parity & 1]);  // the completed phase's arrivals and bytes
        return true;
    };
    if (passed()) return true;
    block("mbarrier.try_wait");
    return passed();
}
uint32_t cluster_address(const void* p, unsigned rank) {
    Cta& cta = my_cta();
    if (rank >= cta.cluster->ctas.size()) fail("mapa to a rank outside the cluster");
    return ((rank + 1) << 24) | offset_in(cta, p, 0, "mapa");
}
void cluster_store_async(uint32_t address, const float* values, int n, uint32_t bar_address) {
    auto [cta, offset] = resolve(address);
    auto [bar_cta, bar_offset] = resolve(bar_address);
    if (n < 1 || n > 4 || n == 3) fail("an st.async of other than 1, 2 or 4 floats");
    if (bar_cta != cta) fail("an st.async whose mbarrier is not in its destination's CTA");
    if (cta->cluster->ctas.size() < 2) fail("an st.async in a cluster of one CTA");
    if (offset % (4 * n) != 0) fail("a misaligned st.async");
    if (offset + 4u * n > cta->smem_bytes) fail("st.async beyond the target's shared memory");
    mbarrier_at(*cta, bar_offset);
    Cluster& cluster = *cta->cluster;
    const char* issue_key = &cluster.store_key[cluster.async_stores++ % 256];
    hb_release(issue_key);  // the storing thread's earlier accesses before the value lands
    if (g_launch->async_stores.size() == kMaxAsyncStores) fail("more st.async in flight than the emulation holds");
    AsyncStore st{cta, offset, bar_offset, {}, n, issue_key};
    std::memcpy(st.values, values, 4 * n);
    g_launch->async_stores.push_back(st);
    changed();
}

uint32_t shfl_xor(uint32_t value, int lane_mask) {
    LaneRecord mine{};
    mine.in[0] = value;
    mine.in[1] = static_cast<uint32_t>(lane_mask);
    return collective(1, "shfl.sync.bfly", mine, [](LaneRecord* lanes, const Cta&) {
               for (int l = 0; l < kWarp; ++l) lanes[l].out[0] = lanes[(l ^ lanes[l].in[1]) & 31].in[0];
           }).out[0];
}
uint32_t shfl_index(uint32_t value, int source_lane) {
    LaneRecord mine{};
    mine.in[0] = value;
    mine.in[1] = static_cast<uint32_t>(source_lane);
    return collective(2, "shfl.sync.idx", mine, [](LaneRecord* lanes, const Cta&) {
               for (int l = 0; l < kWarp; ++l) lanes[l].out[0] = lanes[lanes[l].in[1] & 31].in[0];
           }).out[0];
}
void ldmatrix_x4(unsigned r[4], const void* p, bool trans) {
    LaneRecord mine{};
    mine.address = p;
    const LaneRecord& got = collective(trans ? 4 : 3, trans ? "ldmatrix.x4.trans" : "ldmatrix.x4", mine,
                                       [trans](LaneRecord* lanes, const Cta& cta) {
        for (int l = 0; l < kWarp; ++l) {
            offset_in(cta, lanes[l].address, 16, "ldmatrix");
            reads(lanes[l].address, 16);
        }
        // the 16-bit element `col` of row `row` of matrix `matrix` (the row lane 8 matrix + row addresses)
        auto element = [&](int matrix, int row, int col) {
            uint16_t bits;
            std::memcpy(&bits, static_cast<const unsigned char*>(lanes[8 * matrix + row].address) + 2 * col, 2);
            return static_cast<uint32_t>(bits);
        };
        for (int l = 0; l < kWarp; ++l)
            for (int i = 0; i < 4; ++i)
                lanes[l].out[i] = trans ? element(i, 2 * (l % 4), l / 4) | element(i, 2 * (l % 4) + 1, l / 4) << 16
                                        : element(i, l / 4, 2 * (l % 4)) | element(i, l / 4, 2 * (l % 4) + 1) << 16;
    });
    for (int i = 0; i < 4; ++i) r[i] = got.out[i];
}
void mma_16816(float c[4], const unsigned a[4], unsigned b0, unsigned b1, bool bf16) {
    LaneRecord mine{};
    for (int i = 0; i < 4; ++i) mine.in[i] = a[i];
    mine.in[4] = b0;
    mine.in[5] = b1;
    for (int i = 0; i < 4; ++i) mine.in[6 + i] = float_bits(c[i]);
    const LaneRecord& got = collective(bf16 ? 5 : 6, "mma.sync.m16n8k16", mine, [bf16](LaneRecord* lanes, const Cta&) {
        float A[16][16], B[16][8];
        for (int row = 0; row < 16; ++row)
            for (int k = 0; k < 16; ++k)
                A[row][k] = to_float(half_of(lanes[(row % 8) * 4 + (k % 8) / 2].in[(row >= 8) + 2 * (k >= 8)], k % 2),
                                     bf16);
        for (int k = 0; k < 16; ++k)
            for (int n = 0; n < 8; ++n)
                B[k][n] = to_float(half_of(lanes[n * 4 + (k % 8) / 2].in[4 + (k >= 8)], k % 2), bf16);
        for (int l = 0; l < kWarp; ++l)
            for (int e = 0; e < 4; ++e) {
                const int row = l / 4 + 8 * (e >> 1), col = 2 * (l % 4) + (e & 1);
                float sum = 0.f;
                for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
                lanes[l].out[e] = float_bits(bits_float(lanes[l].in[6 + e]) + sum);
            }
    });
    for (int i = 0; i < 4; ++i) c[i] = bits_float(got.out[i]);
}
void syncwarp() {
    collective(8, "bar.warp.sync", LaneRecord{}, [](LaneRecord*, const Cta&) {}, true);
}
unsigned movmatrix_trans(unsigned x) {
    LaneRecord mine{};
    mine.in[0] = x;
    return collective(7, "movmatrix.trans", mine, [](LaneRecord* lanes, const Cta&) {
               auto element = [&](int row, int col) { return half_of(lanes[row * 4 + col / 2].in[0], col % 2); };
               for (int l = 0; l < kWarp; ++l)
                   lanes[l].out[0] = static_cast<uint32_t>(element(2 * (l % 4), l / 4)) |
                                     static_cast<uint32_t>(element(2 * (l % 4) + 1, l / 4)) << 16;
           }).out[0];
}

void cp_async(void* dst, const void* src, int bytes, bool valid) {
    if ((bytes != 4 && bytes != 8 && bytes != 16) || reinterpret_cast<uintptr_t>(dst) % bytes != 0 ||
        (valid && reinterpret_cast<uintptr_t>(src) % bytes != 0))
        fail("a cp.async of a size other than 4, 8 or 16 bytes, or not aligned to it");
    offset_in(my_cta(), dst, bytes, "cp.async");
    writes(dst, bytes);
    if (valid) reads(src, bytes);
    if (valid)
        std::memcpy(dst, src, bytes);
    else
        std::memset(dst, 0, bytes);
    changed();
}

void tma_load_4d(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3, uint64_t* bar) {
    Cta& cta = my_cta();
    TensorMap m;
    std::memcpy(&m, map, sizeof m);
    if (m.magic != kTensorMapMagic) fail("a TMA load with a tensor map the emulation did not encode");
    if (m.rank != 4) fail("a 4-D TMA load with a map of another rank");
    const uint32_t to = offset_in(cta, dst, 0, "cp.async.bulk.tensor");
    const uint32_t bar_address = offset_in(cta, bar, 8, "cp.async.bulk.tensor's mbarrier");
    mbarrier_at(cta, bar_address);
    if (m.swizzle_bytes == 128 && to % 1024 != 0)
        fail("a 128-byte-swizzled TMA load to a shared address not 1024-aligned");
    if (to % 128 != 0) fail("a TMA load to a shared address not 128-byte aligned");
    const uint64_t row_bytes = static_cast<uint64_t>(m.box[0]) * m.elem_bytes;
    const uint64_t total = row_bytes * m.box[1] * m.box[2] * m.box[3];
    if (to + total > cta.smem_bytes) fail("a TMA box beyond the CTA's shared memory");
    Cluster& cluster = *cta.cluster;
    const char* issue_key = &cluster.tma_key[cluster.tma_loads++ % 256];
    hb_release(issue_key);  // the issuing thread's earlier accesses (its wait on `empty`) before the box lands
    if (g_launch->landing.size() == kMaxLandings) fail("more TMA loads in flight than the emulation holds");
    g_launch->landing.push_back(Landing{&cta, m, to, bar_address, {c0, c1, c2, c3}, issue_key});
    changed();
}

void wgmma_ss(float* d, int n, uint64_t a_desc, uint64_t b_desc, bool accumulate, int trans_a, int trans_b, bool bf16) {
    WgmmaOp op;
    op.n = n;
    op.ss = true;
    op.bf16 = bf16;
    op.accumulate = accumulate;
    op.trans_a = trans_a;
    op.trans_b = trans_b;
    op.a_desc = a_desc;
    op.b_desc = b_desc;
    issue(op, d, nullptr);
}
void wgmma_rs(float* d, int n, const unsigned* a, uint64_t b_desc, bool accumulate, int trans_b, bool bf16) {
    WgmmaOp op;
    op.n = n;
    op.bf16 = bf16;
    op.accumulate = accumulate;
    op.trans_b = trans_b;
    op.b_desc = b_desc;
    issue(op, d, a);
}
void wgmma_commit() {
    Fiber& f = me();
    f.issued_at_commit[f.wgmma_committed++ % 64] = f.wgmma_issued;
    changed();
}
void wgmma_wait(int pending) {
    Fiber& f = me();
    Cta& cta = *f.cta;
    WarpgroupState& s = cta.warpgroups[f.tid / kWarpgroup];
    if (f.wgmma_committed < static_cast<uint64_t>(pending)) return;
    const uint64_t limit = f.wgmma_committed - static_cast<uint64_t>(pending);  // groups below must be done
    for (uint64_t number = s.first;; ++number) {
        auto find = [&] { return s.find(number); };
        WgmmaOp* op = find();
        if (number >= s.first && !op) break;
        if (!op || op->done) continue;
        if (op->group >= limit) break;
        while ((op = find()) && !op->done && op->issued < kWarpgroup)
            block("wgmma.wait_group (for the warpgroup's other threads to issue)");
        if (op && !op->done) run_issued(s, *op, number, cta);
    }
    // This thread's operands and accumulators of every wgmma the wait covers
    // (whoever executed it) are its own again.
    if (limit > 0) {
        const uint64_t covered = f.issued_at_commit[(limit - 1) % 64];
        for (; f.wgmma_acquired < covered; ++f.wgmma_acquired) hb_acquire(&s.done_key[f.wgmma_acquired % 64]);
    }
    while (s.first < s.end && s.ring[s.first % kWgmmaRing].done) ++s.first;
}

// ------------------------------------------------------------ the host side
cudaError_t launch(dim3 grid, dim3 block, size_t dynamic_smem, unsigned cluster, std::function<void()> body) {
    const unsigned threads = block.x * block.y * block.z, blocks = grid.x * grid.y * grid.z;
    if (threads == 0 || threads > 1024 || blocks == 0 || dynamic_smem > kMaxSharedBytes || cluster == 0 ||
        grid.x % cluster != 0) {
        std::fprintf(stderr, "cuda emulation: an invalid launch configuration\n");
        return g_last_error = cudaErrorInvalidConfiguration;
    }
    Launch L;
    L.grid = grid;
    L.block = block;
    L.threads_per_cta = threads;
    L.cluster_size = cluster;
    L.smem_bytes = dynamic_smem;
    L.body = std::move(body);
    if (const char* seed = std::getenv("SLAY_EMU_SEED")) {
        L.shuffle = true;
        L.rng.seed(static_cast<unsigned>(std::strtoul(seed, nullptr, 10)));
    }
    L.wgmma_early = std::getenv("SLAY_EMU_WGMMA_EARLY") != nullptr;
    L.landing.reserve(kMaxLandings);
    L.async_stores.reserve(kMaxAsyncStores);
    if (tsan_on()) L.tsan_scheduler = __tsan_get_current_fiber();
    g_launch = &L;
    for (unsigned b = 0; b < blocks && !L.failed; b += cluster) run_cluster(L, b);
    g_launch = nullptr;
    if (L.failed) {
        std::fprintf(stderr, "cuda emulation: the launch failed: %s\n", L.failure.c_str());
        return g_last_error = cudaErrorLaunchFailure;
    }
    return cudaSuccess;
}

namespace {
CUresult encode_tiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* base, const cuuint64_t* dims,
                      const cuuint64_t* strides, const cuuint32_t* box, const cuuint32_t* element_strides,
                      CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle, CUtensorMapL2promotion,
                      CUtensorMapFloatOOBfill fill) {
    uint32_t elem = 0;
    switch (type) {
        case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16:
        case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
        case CU_TENSOR_MAP_DATA_TYPE_UINT16: elem = 2; break;
        case CU_TENSOR_MAP_DATA_TYPE_FLOAT32: elem = 4; break;
        default: return CUDA_ERROR_INVALID_VALUE;
    }
    if (rank != 4 || !base || reinterpret_cast<uintptr_t>(base) % 16 != 0 ||
        interleave != CU_TENSOR_MAP_INTERLEAVE_NONE || fill != CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE ||
        (swizzle != CU_TENSOR_MAP_SWIZZLE_NONE && swizzle != CU_TENSOR_MAP_SWIZZLE_128B))
        return CUDA_ERROR_INVALID_VALUE;
    TensorMap m{};
    m.magic = kTensorMapMagic;
    m.base = static_cast<const unsigned char*>(base);
    m.rank = rank;
    m.elem_bytes = elem;
    m.swizzle_bytes = swizzle == CU_TENSOR_MAP_SWIZZLE_128B ? 128 : 0;
    for (uint32_t d = 0; d < rank; ++d) {
        if (dims[d] == 0 || box[d] == 0 || box[d] > 256 || element_strides[d] != 1) return CUDA_ERROR_INVALID_VALUE;
        m.dims[d] = dims[d];
        m.box[d] = box[d];
        m.strides[d] = d == 0 ? elem : strides[d - 1];
        if (d > 0 && m.strides[d] % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
    }
    if (m.swizzle_bytes && box[0] * elem != m.swizzle_bytes) return CUDA_ERROR_INVALID_VALUE;
    std::memset(map, 0, sizeof *map);
    std::memcpy(map, &m, sizeof m);
    return CUDA_SUCCESS;
}
char g_event_token;
}  // namespace

}  // namespace slay_emu

// ------------------------------------------------------------ the CUDA runtime calls of the workbenches
cudaError_t cudaMalloc(void** p, size_t bytes) {
    *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    if (!*p) return cudaErrorMemoryAllocation;
    std::memset(*p, 0xFF, bytes);
    return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
    std::free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
    std::memcpy(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
    std::memset(p, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
cudaError_t cudaGetLastError() {
    const cudaError_t e = slay_emu::g_last_error;
    slay_emu::g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return slay_emu::g_last_error; }
const char* cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess ? "no error" : "an emulated launch failed (the reason is printed above)";
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = reinterpret_cast<cudaEvent_t>(&slay_emu::g_event_token);
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
    *ms = 0.f;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaStreamCreate(cudaStream_t* s) {  // every launch runs in order here
    *s = reinterpret_cast<cudaStream_t>(&slay_emu::g_event_token);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
    std::memset(prop, 0, sizeof *prop);
    std::snprintf(prop->name, sizeof prop->name, "emulated sm_90a (CPU, tests/emu)");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 132;
    prop->sharedMemPerBlockOptin = slay_emu::kMaxSharedBytes;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}
cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** fn, unsigned int, unsigned long long,
                                             cudaDriverEntryPointQueryResult* status) {
    const bool known = std::strcmp(symbol, "cuTensorMapEncodeTiled") == 0;
    *fn = known ? reinterpret_cast<void*>(&slay_emu::encode_tiled) : nullptr;
    if (status) *status = known ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
    return cudaSuccess;
}
