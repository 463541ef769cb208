#include "rl/schedule.h"

#include <doctest/doctest.h>

#include "core/error.h"
#include "rl/loss_scale.h"

// Last: LibTorch defines CHECK too.
#include "tests/support/doctest_last.h"

using namespace rlft::rl;

TEST_CASE("warm-up is linear, then cosine decays to the floor") {
  ScheduleOptions o;
  o.lr = 1.0;
  o.warmup_steps = 4;
  o.total_steps = 14;
  o.min_lr_ratio = 0.1;
  CHECK(learning_rate(o, 0) == doctest::Approx(0.25));
  CHECK(learning_rate(o, 3) == doctest::Approx(1.0));
  CHECK(learning_rate(o, 4) == doctest::Approx(1.0));
  CHECK(learning_rate(o, 9) == doctest::Approx(0.55));  // halfway: floor + (1 − floor)/2
  CHECK(learning_rate(o, 14) == doctest::Approx(0.1));
  CHECK(learning_rate(o, 100) == doctest::Approx(0.1));
  o.kind = "constant";
  CHECK(learning_rate(o, 9) == doctest::Approx(1.0));
  o.kind = "linear";
  CHECK_THROWS_WITH_AS(o.validate(), "kind = linear: known schedules are constant, cosine", rlft::Error);
}

TEST_CASE("dynamic loss scaling skips an overflowing step, backs off, and grows again") {
  LossScaleOptions o;
  o.init_scale = 1024;
  o.growth_interval = 3;
  DynamicLossScale s(o);
  CHECK(s.update(true));
  CHECK_FALSE(s.update(false));  // an injected inf: skipped
  CHECK(s.scale() == 512);
  CHECK(s.skipped_steps() == 1);
  CHECK(s.update(true));
  CHECK(s.update(true));
  CHECK(s.scale() == 512);
  CHECK(s.update(true));  // third good step in a row
  CHECK(s.scale() == 1024);
  for (int i = 0; i < 20; ++i) s.update(false);
  CHECK(s.scale() == 1.0);  // never below min_scale
}
