#pragma once
// Include LAST in a test that includes LibTorch: LibTorch built with glog defines CHECK, CHECK_EQ … (which
// abort instead of reporting); doctest's must be the ones in force.
#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#include <doctest/doctest.h>
