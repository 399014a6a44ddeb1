// JobQueue: order, capacity, removal, holding and closing.
#include "server/job_queue.h"

#include <gtest/gtest.h>

#include <thread>

namespace segrel::server {
namespace {

std::shared_ptr<Job> MakeJob(const std::string& id, int priority = 0) {
  JobSpec spec;
  spec.id = id;
  spec.priority = priority;
  return std::make_shared<Job>(spec);
}

TEST(JobQueue, HigherPriorityFirstThenArrivalOrder) {
  JobQueue queue(8);
  for (const auto& [id, priority] : std::vector<std::pair<std::string, int>>{{"a", 0}, {"b", 1}, {"c", 0}, {"d", 1}}) {
    ASSERT_TRUE(queue.Enqueue(MakeJob(id, priority)).ok());
  }
  std::string order;
  for (int i = 0; i < 4; ++i) order += queue.Pop()->spec().id;
  EXPECT_EQ(order, "bdac");
}

TEST(JobQueue, FullQueueIsResourceExhaustedAndKeepsNothing) {
  JobQueue queue(2);
  ASSERT_TRUE(queue.Enqueue(MakeJob("a")).ok());
  ASSERT_TRUE(queue.Enqueue(MakeJob("b")).ok());
  const std::shared_ptr<Job> third = MakeJob("c");
  EXPECT_EQ(queue.Enqueue(third).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_FALSE(queue.Position(*third).has_value());
}

TEST(JobQueue, PositionsMoveWhenJobsLeave) {
  JobQueue queue(4);
  const auto a = MakeJob("a"), b = MakeJob("b"), c = MakeJob("c");
  for (const auto& job : {a, b, c}) ASSERT_TRUE(queue.Enqueue(job).ok());
  EXPECT_EQ(queue.Position(*c), 2u);
  EXPECT_TRUE(queue.Remove(*a));
  EXPECT_FALSE(queue.Remove(*a));
  EXPECT_EQ(queue.Position(*c), 1u);
  EXPECT_EQ(queue.Pop(), b);
  EXPECT_EQ(queue.Position(*c), 0u);
}

TEST(JobQueue, HeldQueueHandsOutNothingUntilReleased) {
  JobQueue queue(4);
  queue.SetHeld(true);
  ASSERT_TRUE(queue.Enqueue(MakeJob("a")).ok());
  std::shared_ptr<Job> popped;
  std::thread worker([&] { popped = queue.Pop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(queue.size(), 1u);  // the worker still waits
  queue.SetHeld(false);
  worker.join();
  ASSERT_NE(popped, nullptr);
  EXPECT_EQ(popped->spec().id, "a");
}

TEST(JobQueue, CloseReturnsQueuedJobsWakesWorkersAndRefusesMore) {
  JobQueue queue(4);
  queue.SetHeld(true);
  ASSERT_TRUE(queue.Enqueue(MakeJob("a")).ok());
  std::shared_ptr<Job> popped = MakeJob("sentinel");
  std::thread worker([&] { popped = queue.Pop(); });
  const std::vector<std::shared_ptr<Job>> left = queue.Close();
  worker.join();
  EXPECT_EQ(popped, nullptr);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]->spec().id, "a");
  EXPECT_EQ(queue.Enqueue(MakeJob("b")).code(), absl::StatusCode::kUnavailable);
}

TEST(Job, StateMovesForwardOnly) {
  Job job(JobSpec{});
  EXPECT_TRUE(job.SetStage("analyze", 0));
  EXPECT_EQ(job.Get().state, JobState::kRunning);
  EXPECT_TRUE(job.End(absl::CancelledError("stop")));
  EXPECT_EQ(job.Get().state, JobState::kCancelled);
  EXPECT_FALSE(job.End(absl::OkStatus()));
  EXPECT_FALSE(job.SetStage("write", 0.9));
  EXPECT_EQ(job.Get().state, JobState::kCancelled);
}

}  // namespace
}  // namespace segrel::server
