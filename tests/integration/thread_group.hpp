// thread_group.hpp -- what the tests of include/slay/context_parallel.hpp
// share: ranks as threads of one process (a reusable barrier that a failing
// rank can abort, the ranks' send buffers of the current reduction, and the
// Communicator over host memory: the root sums the ranks' buffers in rank
// order, between two barriers, deterministic) and the relative L2 error of
// their comparisons.
#pragma once

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "slay/context_parallel.hpp"

namespace slay_test {

// Shared memory of a group of threads: a reusable barrier and each rank's
// send buffer of the current reduction. A rank that fails aborts the group:
// the others leave their barrier with an exception instead of waiting.
class ThreadGroup {
public:
    explicit ThreadGroup(int n)
        : n_(n), sends_(static_cast<std::size_t>(n)), byte_sends_(static_cast<std::size_t>(n)) {}
    int size() const { return n_; }
    void barrier() {
        std::unique_lock<std::mutex> lock(mutex_);
        const long generation = generation_;
        if (++waiting_ == n_) {
            waiting_ = 0;
            ++generation_;
            cv_.notify_all();
        } else {
            cv_.wait(lock, [&] { return generation_ != generation || aborted_; });
        }
        if (aborted_) throw std::runtime_error("another rank failed");
    }
    void abort() {
        std::lock_guard<std::mutex> lock(mutex_);
        aborted_ = true;
        cv_.notify_all();
    }
    std::vector<const float*>& sends() { return sends_; }
    std::vector<const void*>& byte_sends() { return byte_sends_; }

private:
    int n_, waiting_ = 0;
    long generation_ = 0;
    bool aborted_ = false;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<const float*> sends_;
    std::vector<const void*> byte_sends_;
};

// The Communicator of one thread: the root sums the ranks' buffers in rank
// order (deterministic), between two barriers.
class ThreadComm : public slay::cp::Communicator {
public:
    ThreadComm(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return group_.size(); }
    void reduce_sum(const float* send, float* recv, std::size_t count, int root, void* stream) override {
        if (stream != nullptr) throw std::runtime_error("a host-memory group takes no stream");
        group_.sends()[static_cast<std::size_t>(rank_)] = send;
        group_.barrier();
        if (rank_ == root) {
            std::fill(recv, recv + count, 0.f);
            for (const float* s : group_.sends())
                if (s != nullptr)
                    for (std::size_t i = 0; i < count; ++i) recv[i] += s[i];
        }
        group_.barrier();
    }
    void sendrecv(const void* send, void* recv, std::size_t bytes, int to, int from, void* stream) override {
        if (stream != nullptr) throw std::runtime_error("a host-memory group takes no stream");
        (void)to;  // every rank reads what `from` published: the ring's pairs match by construction
        group_.byte_sends()[static_cast<std::size_t>(rank_)] = send;
        group_.barrier();
        std::memcpy(recv, group_.byte_sends()[static_cast<std::size_t>(from)], bytes);
        group_.barrier();
    }

private:
    ThreadGroup& group_;
    int rank_;
};

// Runs rank_main(r) for r in [0, group.size()) on one thread each and
// rethrows the first rank's failure once all have joined (a failing rank
// aborts the group, so the others then fail too, because of it).
template <typename RankMain>
void run_ranks(ThreadGroup& group, RankMain rank_main) {
    const int n = group.size();
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
    std::mutex first_lock;
    int first = -1;
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r)
        threads.emplace_back([&, r] {
            try {
                rank_main(r);
            } catch (...) {
                {
                    std::lock_guard<std::mutex> lock(first_lock);
                    if (first < 0) first = r;
                }
                errors[static_cast<std::size_t>(r)] = std::current_exception();
                group.abort();
            }
        });
    for (std::thread& t : threads) t.join();
    if (first >= 0) std::rethrow_exception(errors[static_cast<std::size_t>(first)]);
}

// ||got - want|| / ||want|| in fp64; infinite when got has a NaN or Inf.
inline double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (!std::isfinite(got[i])) return INFINITY;
        num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        den += double(want[i]) * want[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace slay_test
