/*
 * context_parallel_nccl.hpp -- the NCCL Communicator of context_parallel.hpp:
 * reduce_sum is one ncclReduce (fp32 sum) and sendrecv one grouped
 * ncclSend/ncclRecv on the caller's CUDA stream, so the context-parallel
 * calls never synchronize the host.
 * Needs nccl.h and libnccl (e.g. the NVIDIA NCCL wheel from PyPI,
 * nvidia-nccl-cu13, which ships both) and the CUDA runtime; libslay itself
 * does not link NCCL. Set NCCL_NVLS_ENABLE=0 on machines where NVLink
 * multicast is off.
 *
 *     ncclComm_t comm;                        // ncclCommInitRank(&comm, N, id, rank)
 *     slay::cp::NcclCommunicator group(comm, slay::cp::state_floats(plan, B));
 *     slay::cp::forward(group, plan, piece, exchange, prefix, ws, ws_bytes, stream);
 */
#ifndef SLAY_CONTEXT_PARALLEL_NCCL_HPP
#define SLAY_CONTEXT_PARALLEL_NCCL_HPP

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstddef>
#include <string>

#include "context_parallel.hpp"

namespace slay {
namespace cp {

class NcclCommunicator : public Communicator {
public:
    /* comm: an initialized communicator (not owned); max_floats: the largest
     * count reduce_sum will be asked for (state_floats(plan, B)). Allocates
     * max_floats zeros on the current device (what a rank that contributes
     * nothing sends), here and not in a call. Throws slay::Error (INTERNAL_ERROR
     * with NCCL's or CUDA's message) on failure. */
    NcclCommunicator(ncclComm_t comm, std::size_t max_floats) : comm_(comm), capacity_(max_floats) {
        nccl_check(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank");
        nccl_check(ncclCommCount(comm_, &size_), "ncclCommCount");
        cuda_check(cudaMalloc(&zeros_, capacity_ * sizeof(float) + 1), "cudaMalloc");
        const cudaError_t set = cudaMemset(zeros_, 0, capacity_ * sizeof(float) + 1);
        if (set != cudaSuccess) {
            cudaFree(zeros_);
            cuda_check(set, "cudaMemset");
        }
    }
    ~NcclCommunicator() override { cudaFree(zeros_); }
    NcclCommunicator(const NcclCommunicator&) = delete;
    NcclCommunicator& operator=(const NcclCommunicator&) = delete;

    int rank() const override { return rank_; }
    int size() const override { return size_; }

    void reduce_sum(const float* send, float* recv, std::size_t count, int root, void* stream) override {
        if (count > capacity_)
            throw Error(SLAY_STATUS_INVALID_VALUE, "NcclCommunicator: reduce of " + std::to_string(count) +
                                                       " floats exceeds the " + std::to_string(capacity_) +
                                                       " it was made for");
        nccl_check(ncclReduce(send ? static_cast<const void*>(send) : zeros_, recv, count, ncclFloat32, ncclSum,
                              root, comm_, static_cast<cudaStream_t>(stream)),
                   "ncclReduce");
    }

    /* ncclSend + ncclRecv in one group (a ring step needs both at once, or
     * the ranks would wait for each other's sends). */
    void sendrecv(const void* send, void* recv, std::size_t bytes, int to, int from, void* stream) override {
        const cudaStream_t s = static_cast<cudaStream_t>(stream);
        nccl_check(ncclGroupStart(), "ncclGroupStart");
        const ncclResult_t sent = ncclSend(send, bytes, ncclUint8, to, comm_, s);
        const ncclResult_t received = ncclRecv(recv, bytes, ncclUint8, from, comm_, s);
        nccl_check(ncclGroupEnd(), "ncclGroupEnd");  // closes the group whatever the two returned
        nccl_check(sent, "ncclSend");
        nccl_check(received, "ncclRecv");
    }

private:
    static void nccl_check(ncclResult_t r, const char* what) {
        if (r != ncclSuccess)
            throw Error(SLAY_STATUS_INTERNAL_ERROR, std::string(what) + ": " + ncclGetErrorString(r));
    }
    static void cuda_check(cudaError_t e, const char* what) {
        if (e != cudaSuccess) throw Error(SLAY_STATUS_INTERNAL_ERROR, std::string(what) + ": " + cudaGetErrorString(e));
    }

    ncclComm_t comm_;
    std::size_t capacity_;
    int rank_ = 0, size_ = 1;
    void* zeros_ = nullptr;
};

}  // namespace cp
}  // namespace slay

#endif /* SLAY_CONTEXT_PARALLEL_NCCL_HPP */
