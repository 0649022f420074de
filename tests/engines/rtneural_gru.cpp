// A GRU file the way AIDA-X plays it, for tests: RTNeural's own parseJson on AIDA-X's model
// JSON, then AIDA-X's loader steps (in_skip, in_gain and out_gain in dB, reset, 2048 samples
// of silence pre-rolled) and its per-sample run. The shared rtneural_tool plays LSTMs only.
//   rtneural_gru MODEL.json IN.f32 OUT.f32        (raw float32 mono in and out)
#include <RTNeural/RTNeural.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <variant>
#include <vector>

template <int H>
using GruModel = RTNeural::ModelT<float, 1, 1, RTNeural::GRULayerT<float, 1, H>, RTNeural::DenseT<float, H, 1>>;
using Model = std::variant<std::monostate, GruModel<8>, GruModel<16>, GruModel<24>, GruModel<40>>;

template <int H>
static bool make(int hidden, Model& model) {
  if (hidden != H) return false;
  model.emplace<GruModel<H>>();
  return true;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: rtneural_gru MODEL.json IN.f32 OUT.f32\n";
    return 1;
  }
  nlohmann::json j;
  std::ifstream(argv[1]) >> j;
  Model model;
  float in_gain = 1.f, out_gain = 1.f;
  bool skip = false;
  try {
    if (j.at("in_shape").back().get<int>() != 1) throw std::runtime_error("audio-only models here");
    if (j["in_skip"].is_number()) skip = j["in_skip"].get<int>() != 0;
    if (j["in_gain"].is_number()) in_gain = std::pow(10.f, j["in_gain"].get<float>() / 20.f);
    if (j["out_gain"].is_number()) out_gain = std::pow(10.f, j["out_gain"].get<float>() / 20.f);
    const auto& first = j.at("layers").at(0);
    const int hidden = first.at("shape").back().get<int>();
    if (first.at("type").get<std::string>() != "gru" ||
        !(make<8>(hidden, model) || make<16>(hidden, model) || make<24>(hidden, model) || make<40>(hidden, model)))
      throw std::runtime_error("not a GRU of 8, 16, 24 or 40 units");
    std::visit([&](auto& m) {
      if constexpr (!std::is_same_v<std::decay_t<decltype(m)>, std::monostate>) { m.parseJson(j, true); m.reset(); }
    }, model);
  } catch (const std::exception& e) {
    std::cerr << "LOAD ERROR: " << e.what() << "\n";
    return 2;
  }
  auto run = [&](std::vector<float>& buf) {
    std::visit([&](auto& m) {
      if constexpr (!std::is_same_v<std::decay_t<decltype(m)>, std::monostate>) {
        for (auto& s : buf) {
          s *= in_gain;
          s = ((skip ? s : 0.f) + m.forward(&s)) * out_gain;
        }
      }
    }, model);
  };
  std::vector<float> silence(2048, 0.f);
  run(silence);
  std::vector<float> x;
  std::ifstream in(argv[2], std::ios::binary);
  for (float v; in.read(reinterpret_cast<char*>(&v), sizeof v);) x.push_back(v);
  run(x);
  std::ofstream(argv[3], std::ios::binary).write(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
  return 0;
}
