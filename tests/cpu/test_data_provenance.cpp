// config.json's "data": each file's MD5 judged against the published digest, for any data set's list.
#include <fstream>

#include <catch2/catch.hpp>

#include "apps/common/data_provenance.h"
#include "apps/common/md5.h"
#include "test_apps_util.h"

namespace fs = std::filesystem;
using sd::apps::DataFile;
using sd::apps::files_provenance;

TEST_CASE("files_provenance judges each file against its published MD5", "[apps]") {
  const sd::test::TempDir tmp;
  std::ofstream(tmp.path() / "a.bin") << "abc";
  std::ofstream(tmp.path() / "b.bin") << "message digest";
  const std::string a = "900150983cd24fb0d6963f7d28e17f72", b = "f96b697d7cb7938d525a2f31aaf161d0";

  const nlohmann::json ok = files_provenance("cifar100", tmp.path(), {{"a.bin", a}, {"b.bin", b}});
  CHECK(ok["source"] == "cifar100");
  CHECK(ok["dir"] == tmp.path().string());
  CHECK(ok["checksums"] == "official");
  CHECK(ok["md5"] == nlohmann::json{{"a.bin", a}, {"b.bin", b}});

  CHECK(files_provenance("x", tmp.path(), {{"a.bin", b}, {"b.bin", b}})["checksums"] == "differ: a.bin");
  CHECK(files_provenance("x", tmp.path(), {{"a.bin", a}, {"b.bin", ""}})["checksums"] == "no published MD5: b.bin");
  const nlohmann::json gone = files_provenance("x", tmp.path(), {{"a.bin", b}, {"c.bin", a}});
  CHECK(gone["checksums"] == "missing: c.bin");  // missing outranks differ
  CHECK(gone["md5"] == nlohmann::json{{"a.bin", a}});
}

TEST_CASE("data_provenance: CIFAR-10's six files from their folder or the one above, or the synthetic set", "[apps]") {
  const sd::test::TempDir tmp;
  const fs::path files = tmp.path() / "cifar-10-batches-bin";
  fs::create_directories(files);
  for (const DataFile& f : sd::apps::published_files("cifar10").files) {
    CHECK(f.published_md5.size() == 32);
    std::ofstream(files / f.name) << f.name;
  }
  sd::RunConfig run;
  for (const fs::path& dir : {tmp.path(), files}) {
    const nlohmann::json j = sd::apps::data_provenance(run, dir.string());
    CHECK(j["source"] == "cifar10");
    CHECK(j["dir"] == files.string());
    CHECK(j["md5"]["test_batch.bin"] == sd::apps::md5_hex("test_batch.bin"));
    CHECK(j["checksums"] ==
          "differ: data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, test_batch.bin");
  }
  run.synthetic = 64;
  CHECK(sd::apps::data_provenance(run, "nowhere") == nlohmann::json{{"source", "synthetic"}, {"images", 64}});
}

TEST_CASE("dataset_provenance: each data set's files and published MD5s, as fetch-data installs them", "[apps]") {
  const sd::test::TempDir tmp;
  const auto& svhn = sd::apps::published_files("svhn");
  CHECK(svhn.folder == "svhn");
  REQUIRE(svhn.files.size() == 3);
  CHECK(svhn.files[0].published_md5 == "e26dedcc434d2e4c54c9b2d4a06d8373");  // train_32x32.mat
  fs::create_directories(tmp.path() / "svhn");
  for (const DataFile& f : svhn.files) std::ofstream(tmp.path() / "svhn" / f.name) << f.name;
  const nlohmann::json s = sd::apps::dataset_provenance("svhn", tmp.path());
  CHECK(s["dir"] == (tmp.path() / "svhn").string());
  CHECK(s["checksums"] == "differ: train_32x32.mat, extra_32x32.mat, test_32x32.mat");

  // CIFAR-100: only the archive's MD5 is published; the files' digests are recorded, not judged.
  fs::create_directories(tmp.path() / "cifar-100-binary");
  for (const char* f : {"train.bin", "test.bin"}) std::ofstream(tmp.path() / "cifar-100-binary" / f) << f;
  const nlohmann::json c = sd::apps::dataset_provenance("cifar100", tmp.path() / "cifar-100-binary");
  CHECK(c["source"] == "cifar100");
  CHECK(c["checksums"] == "no published MD5: train.bin, test.bin");
  CHECK(c["md5"]["train.bin"] == sd::apps::md5_hex("train.bin"));

  CHECK_THROWS_WITH(sd::apps::published_files("mnist"), "no data set 'mnist' (cifar10, cifar100, svhn)");
}

TEST_CASE("config.json and scripts/fetch-data judge the files by the same published MD5s", "[apps]") {
  const std::string script = sd::test::read_file(fs::path(SD_SOURCE_DIR) / "scripts" / "fetch-data");
  REQUIRE(!script.empty());
  for (const char* dataset : {"cifar10", "svhn"})
    for (const DataFile& f : sd::apps::published_files(dataset).files) {
      INFO(dataset << " " << f.name);
      CHECK(script.find(f.published_md5 + "  " + f.name + "\n") != std::string::npos);
    }
}
