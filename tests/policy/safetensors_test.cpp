// policy/checkpoint/safetensors.h: one file, written and read back bit for bit, and every
// kind of malformed file rejected with an error naming the file.

#include "policy/checkpoint/safetensors.h"

#include "tests/policy/checkpoint_test_util.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include "tests/support/text_util.h"

using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::read_all;

namespace ck = rlft::checkpoint;
using rlft::test::bitwise_equal;
using rlft::test::contains;
using rlft::test::error_of;
using rlft::test::TempDir;
using rlft::test::varied_tensor;

namespace {

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A file with this exact header text and `data_bytes` zero bytes of data.
std::string raw_file(const TempDir& dir, const std::string& name, const std::string& header, size_t data_bytes) {
  const uint64_t n = header.size();
  std::string bytes(reinterpret_cast<const char*>(&n), 8);
  bytes += header;
  bytes += std::string(data_bytes, '\0');
  const std::string path = dir.file(name);
  write_all(path, bytes);
  return path;
}

std::string open_error(const std::string& path) {
  return error_of([&] { ck::SafetensorsFile::open(path); });
}

const at::ScalarType kAllTypes[] = {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble, at::kLong,
                                    at::kInt,   at::kShort,    at::kChar, at::kByte,   at::kBool};

}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("a tensor of each dtype is written and read back bitwise identical") {
    TempDir dir;
    for (const at::ScalarType type : kAllTypes) {
      CAPTURE(c10::toString(type));
      ck::TensorMap tensors = {
          {"model.embed_tokens.weight", varied_tensor(type, {7, 5}, 1)},
          {"a.scalar", varied_tensor(type, {}, 2)},
          {"b.empty", varied_tensor(type, {0, 3}, 3)},
          {"c.vector", varied_tensor(type, {13}, 4)},
      };
      const std::string path = dir.file("t.safetensors");
      ck::write_safetensors(path, tensors, {{"format", "pt"}});
      ck::Metadata metadata;
      const ck::TensorMap back = ck::read_safetensors(path, {}, &metadata);
      CHECK(bitwise_equal(tensors, back));
      CHECK(metadata == ck::Metadata{{"format", "pt"}});
      CHECK(ck::SafetensorsFile::open(path).info("c.vector").dtype == ck::safetensors_dtype_name(type));
    }
  }

  TEST_CASE("the header is JSON padded with spaces to 8 bytes, tensors laid out in name order") {
    TempDir dir;
    const std::string path = dir.file("t.safetensors");
    ck::write_safetensors(path, {{"b", at::ones({3}, at::kFloat)}, {"a", at::zeros({2}, at::kHalf)}});
    const std::string bytes = read_all(path);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    CHECK(n % 8 == 0);
    const std::string header = bytes.substr(8, n);
    const size_t last = header.find_last_not_of(' ');
    CHECK(header[last] == '}');
    CHECK(header.size() - last - 1 < 8);  // only the padding follows the JSON
    const auto j = nlohmann::json::parse(header);
    CHECK(j["a"]["data_offsets"] == nlohmann::json::array({0, 4}));
    CHECK(j["b"]["data_offsets"] == nlohmann::json::array({4, 16}));
    CHECK(j["a"]["dtype"] == "F16");
    CHECK(!j.contains("__metadata__"));
    CHECK(bytes.size() == 8 + n + 16);
  }

  TEST_CASE("loading converts floating tensors to the requested dtype and leaves integers alone") {
    TempDir dir;
    const std::string path = dir.file("t.safetensors");
    const at::Tensor w = varied_tensor(at::kBFloat16, {4, 4}, 5);
    const at::Tensor ids = varied_tensor(at::kLong, {3}, 6);
    ck::write_safetensors(path, {{"w", w}, {"ids", ids}});
    ck::LoadOptions opts;
    opts.dtype = at::kFloat;
    const ck::TensorMap back = ck::read_safetensors(path, opts);
    CHECK((back.at("w").scalar_type() == at::kFloat));
    CHECK(bitwise_equal(back.at("w"), w.to(at::kFloat)));
    CHECK(bitwise_equal(back.at("ids"), ids));
    opts.dtype = at::kHalf;
    CHECK((ck::read_safetensors(path, opts).at("w").scalar_type() == at::kHalf));
  }

  TEST_CASE("non-contiguous tensors are written as their logical values") {
    TempDir dir;
    const std::string path = dir.file("t.safetensors");
    const at::Tensor t = at::arange(12, at::kFloat).view({3, 4}).t();
    ck::write_safetensors(path, {{"t", t}});
    CHECK(bitwise_equal(ck::read_safetensors(path).at("t"), t.contiguous()));
  }

  TEST_CASE("tensors outlive the file they were read from") {
    TempDir dir;
    const std::string path = dir.file("t.safetensors");
    ck::write_safetensors(path, {{"t", at::full({4}, 3.0f)}});
    at::Tensor t;
    { t = ck::SafetensorsFile::open(path).tensor("t"); }
    std::filesystem::remove(path);
    CHECK(t.sum().item<float>() == 12.0f);
  }

  TEST_CASE("a write replaces the file atomically and leaves no temp file") {
    TempDir dir;
    const std::string path = dir.file("t.safetensors");
    ck::write_safetensors(path, {{"t", at::zeros({2})}});
    ck::write_safetensors(path, {{"t", at::ones({2})}});
    CHECK(ck::read_safetensors(path).at("t").sum().item<float>() == 2.0f);
    int n_files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) n_files += e.is_regular_file();
    CHECK(n_files == 1);
  }

  TEST_CASE("a dtype the format cannot hold is an error naming the tensor") {
    TempDir dir;
    const std::string path = dir.file("t.safetensors");
    const std::string err = error_of([&] { ck::write_safetensors(path, {{"z", at::zeros({2}, at::kComplexFloat)}}); });
    CHECK(contains(err, path));
    CHECK(contains(err, "`z`"));
    CHECK(!std::filesystem::exists(path));
  }

  TEST_CASE("malformed files are clear errors naming the file") {
    TempDir dir;
    const std::string good = dir.file("good.safetensors");
    ck::write_safetensors(good, {{"a", at::ones({4, 4})}, {"b", at::ones({8}, at::kBFloat16)}});
    const std::string bytes = read_all(good);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);

    struct Case {
      const char* what;
      std::string path;
      const char* expect;
    };
    std::vector<Case> cases;
    auto corrupt = [&](const char* name, std::string b) {
      const std::string p = dir.file(name);
      write_all(p, b);
      return p;
    };
    cases.push_back({"empty file", corrupt("empty.safetensors", ""), "truncated"});
    cases.push_back({"shorter than the length field", corrupt("short.safetensors", bytes.substr(0, 5)), "truncated"});
    cases.push_back({"cut inside the header", corrupt("cut_header.safetensors", bytes.substr(0, 8 + n / 2)),
                     "past the end of the file"});
    cases.push_back({"cut inside the data", corrupt("cut_data.safetensors", bytes.substr(0, bytes.size() - 3)),
                     "past the end of the data section"});
    {
      std::string b = bytes;
      const uint64_t huge = 1ULL << 62;
      std::memcpy(b.data(), &huge, 8);
      cases.push_back({"header length past the end", corrupt("huge_len.safetensors", b), "past the end of the file"});
    }
    {
      std::string b = bytes;
      b[8 + 3] = '#';
      cases.push_back({"header not JSON", corrupt("not_json.safetensors", b), "not valid JSON"});
    }
    {
      std::string b = bytes;
      b.replace(8, 4, "[1, ");
      cases.push_back({"header not an object", corrupt("array.safetensors", b), "not a JSON object"});
    }
    cases.push_back({"trailing bytes", corrupt("trailing.safetensors", bytes + "xyz"), "trailing"});
    cases.push_back(
        {"offsets out of bounds",
         raw_file(
             dir, "oob.safetensors",
             R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
             24),
         "past the end of the data section"});
    cases.push_back(
        {"overlapping offsets",
         raw_file(
             dir, "overlap.safetensors",
             R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
             24),
         "overlap"});
    cases.push_back(
        {"gapped offsets",
         raw_file(
             dir, "gap.safetensors",
             R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})",
             24),
         "belong to no tensor"});
    cases.push_back(
        {"shape x dtype size differs from the byte range",
         raw_file(dir, "size.safetensors", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16),
         "needs 12 bytes"});
    cases.push_back({"shape overflows",
                     raw_file(dir, "overflow.safetensors",
                              R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16),
                     "too many"});
    cases.push_back(
        {"offsets reversed",
         raw_file(dir, "reversed.safetensors", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8),
         "end before they begin"});
    cases.push_back(
        {"negative dimension",
         raw_file(dir, "negdim.safetensors", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
         "non-negative integer"});
    cases.push_back({"missing data_offsets",
                     raw_file(dir, "nooffsets.safetensors", R"({"a":{"dtype":"F32","shape":[1]}})", 4),
                     "no `data_offsets`"});
    cases.push_back(
        {"an FP8 tensor",
         raw_file(dir, "fp8.safetensors", R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4),
         "dtype F8_E4M3, which rlft cannot read yet"});
    cases.push_back({"an unknown dtype",
                     raw_file(dir, "q9.safetensors", R"({"w":{"dtype":"Q9","shape":[4],"data_offsets":[0,4]}})", 4),
                     "unknown dtype `Q9`"});
    cases.push_back(
        {"a duplicate tensor name",
         raw_file(
             dir, "dup.safetensors",
             R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
             8),
         "appears twice"});
    cases.push_back({"metadata not strings",
                     raw_file(dir, "meta.safetensors",
                              R"({"__metadata__":{"step":3},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 4),
                     "must be a string"});
    cases.push_back(
        {"an entry not an object", raw_file(dir, "entry.safetensors", R"({"a":[1,2]})", 0), "not an object"});
    cases.push_back(
        {"invalid UTF-8 in the header",
         raw_file(dir, "utf8.safetensors", "{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0),
         "not valid JSON"});
    cases.push_back(
        {"a deeply nested entry",
         raw_file(dir, "nested.safetensors", "{\"a\":" + std::string(200000, '[') + std::string(200000, ']') + "}", 0),
         "not an object"});
    cases.push_back({"a header of binary garbage",
                     corrupt("garbage.safetensors", std::string("\x10\0\0\0\0\0\0\0", 8) + "\xff\xfe\x80"
                                                                                           "ghijklmnopqrs"),
                     "not a JSON object"});

    for (const auto& c : cases) {
      CAPTURE(c.what);
      const std::string err = open_error(c.path);
      CHECK_MESSAGE(contains(err, c.path), err);
      CHECK_MESSAGE(contains(err, c.expect), err);
    }
    CHECK(contains(open_error(dir.file("absent.safetensors")), "absent.safetensors"));
    CHECK(contains(open_error(dir.path()), "not a regular file"));
    CHECK(open_error(good).empty());
  }

  TEST_CASE("zero-length tensors may share an offset") {
    TempDir dir;
    const std::string p = raw_file(
        dir, "zeros.safetensors",
        R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F32","shape":[0,2],"data_offsets":[4,4]}})",
        4);
    const ck::TensorMap t = ck::read_safetensors(p);
    CHECK(t.size() == 3);
    CHECK(t.at("c").sizes() == at::IntArrayRef({0, 2}));
  }

  TEST_CASE("bool bytes other than 0 and 1 read as true") {
    TempDir dir;
    const std::string header = R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})";
    const uint64_t n = header.size();
    std::string bytes(reinterpret_cast<const char*>(&n), 8);
    bytes += header + std::string("\x00\x01\x07", 3);
    write_all(dir.file("b.safetensors"), bytes);
    const at::Tensor m = ck::read_safetensors(dir.file("b.safetensors")).at("m");
    CHECK((m.scalar_type() == at::kBool));
    CHECK(m.sum().item<int64_t>() == 2);
    CHECK(m[2].item<bool>());
  }
}
