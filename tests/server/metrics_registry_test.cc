// MetricsRegistry renders the Prometheus text exposition format.
#include "server/metrics_registry.h"

#include <gtest/gtest.h>

namespace segrel::server {
namespace {

TEST(MetricsRegistry, RendersCountersGaugesAndCumulativeHistograms) {
  MetricsRegistry registry;
  MetricFamily& counter = registry.Counter("x_total", "Things.", {"kind"});
  MetricFamily& gauge = registry.Gauge("y", "Level.");
  MetricFamily& histogram = registry.Histogram("z_seconds", "Times.", {}, {1, 2});
  counter.Add({"a\"b"}, 2);
  counter.Add({"a\"b"});
  counter.Add({"a\"b"}, -5);  // counters never go down
  gauge.Set({}, 4);
  gauge.Add({}, -1.5);
  for (double value : {0.5, 1.0, 1.5, 7.0}) histogram.Observe({}, value);
  EXPECT_EQ(registry.Render(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{kind=\"a\\\"b\"} 3\n"
            "# HELP y Level.\n# TYPE y gauge\ny 2.5\n"
            "# HELP z_seconds Times.\n# TYPE z_seconds histogram\n"
            "z_seconds_bucket{le=\"1\"} 2\nz_seconds_bucket{le=\"2\"} 3\nz_seconds_bucket{le=\"+Inf\"} 4\n"
            "z_seconds_sum 10\nz_seconds_count 4\n");
}

TEST(MetricsRegistry, CollectorsSetTheirSeriesAtEveryRender) {
  MetricsRegistry registry;
  MetricFamily& gauge = registry.Gauge("free_bytes", "Read when scraped.");
  int reads = 0;
  registry.AddCollector([&] { gauge.Set({}, 100.0 * ++reads); });
  EXPECT_EQ(registry.Render(), "# HELP free_bytes Read when scraped.\n# TYPE free_bytes gauge\nfree_bytes 100\n");
  EXPECT_EQ(registry.Render(), "# HELP free_bytes Read when scraped.\n# TYPE free_bytes gauge\nfree_bytes 200\n");
}

TEST(MetricsRegistry, BucketHelpers) {
  EXPECT_EQ(ExponentialBuckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(LinearBuckets(0.5, 0.5, 3), (std::vector<double>{0.5, 1.0, 1.5}));
}

}  // namespace
}  // namespace segrel::server
