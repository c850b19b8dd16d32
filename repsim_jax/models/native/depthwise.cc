// Depthwise 2-D convolution (stride 1, dilation 1, zero padding), NHWC float32, as an XLA FFI
// handler for the CPU; built and registered by repsim_jax/models/native/__init__.py.
//
// Work unit: one (image, block of 16 channels). Its zero-padded input plane [hp, wp, 16] and
// kernel block [kh*kw, 16] are copied into contiguous buffers (L2-resident at ConvNeXt's shapes),
// then each output row is computed in tiles of up to 8 pixels: the 8 accumulators and one kernel
// vector stay in registers while the row's inputs stream past, so each input vector loaded serves
// up to kw multiply-adds. Units are shared between the calling thread and XLA's intra-op pool.
// Sums run over kernel rows then columns, as layers._depthwise_taps; the compiler may contract
// them into FMAs (float32 rounding differences only).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kLanes = 16;  // channels per block: one 512-bit vector, two 256-bit, four 128-bit
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

struct Shape {
  int64_t b, h, w, c, kh, kw, ho, wo, pt, pl, hp, wp;
};

constexpr int kTile = 8;  // output pixels per register tile

// T output pixels of one row: acc[t] = sum_{i,j} rows[i*wp + t + j] * kern[i*kw + j].
template <int KW, int T>
inline void Tile(const Shape& s, const Vec* rows, const Vec* kern, float* out, int64_t nc) {
  const int kw = KW > 0 ? KW : static_cast<int>(s.kw);
  Vec acc[T] = {};
  for (int64_t i = 0; i < s.kh; ++i) {
    const Vec* row = rows + i * s.wp;
    const Vec* kr = kern + i * kw;
    for (int j = 0; j < kw; ++j) {
      const Vec kv = kr[j];
      for (int t = 0; t < T; ++t) acc[t] += row[t + j] * kv;
    }
  }
  for (int t = 0; t < T; ++t) {
    if (nc == kLanes) std::memcpy(out + t * s.c, &acc[t], sizeof(Vec));
    else std::memcpy(out + t * s.c, &acc[t], nc * sizeof(float));
  }
}

// One (batch, channel block): copy the zero-padded plane [hp, wp, 16] and the kernel block
// [kh*kw, 16] into contiguous buffers, then every output row from them.
template <int KW>
void Plane(const Shape& s, const float* x, const float* k, float* y, int64_t bi, int64_t c0,
           Vec* plane, Vec* kern) {
  const int64_t nc = std::min<int64_t>(kLanes, s.c - c0);
  const int kw = static_cast<int>(s.kw);
  std::memset(static_cast<void*>(plane), 0, sizeof(Vec) * s.hp * s.wp);
  for (int64_t r = 0; r < s.h; ++r) {
    const float* src = x + ((bi * s.h + r) * s.w) * s.c + c0;
    Vec* dst = plane + (r + s.pt) * s.wp + s.pl;
    if (nc == kLanes) {
      for (int64_t q = 0; q < s.w; ++q) std::memcpy(&dst[q], src + q * s.c, sizeof(Vec));
    } else {
      for (int64_t q = 0; q < s.w; ++q) std::memcpy(&dst[q], src + q * s.c, nc * sizeof(float));
    }
  }
  for (int64_t t = 0; t < s.kh * kw; ++t) {
    kern[t] = Vec{};
    std::memcpy(&kern[t], k + t * s.c + c0, nc * sizeof(float));
  }
  for (int64_t o = 0; o < s.ho; ++o) {
    float* out = y + ((bi * s.ho + o) * s.wo) * s.c + c0;
    const Vec* rows = plane + o * s.wp;
    int64_t q0 = 0;
    for (; q0 + kTile <= s.wo; q0 += kTile) Tile<KW, kTile>(s, rows + q0, kern, out + q0 * s.c, nc);
    switch (s.wo - q0) {
      case 1: Tile<KW, 1>(s, rows + q0, kern, out + q0 * s.c, nc); break;
      case 2: Tile<KW, 2>(s, rows + q0, kern, out + q0 * s.c, nc); break;
      case 3: Tile<KW, 3>(s, rows + q0, kern, out + q0 * s.c, nc); break;
      case 4: Tile<KW, 4>(s, rows + q0, kern, out + q0 * s.c, nc); break;
      case 5: Tile<KW, 5>(s, rows + q0, kern, out + q0 * s.c, nc); break;
      case 6: Tile<KW, 6>(s, rows + q0, kern, out + q0 * s.c, nc); break;
      case 7: Tile<KW, 7>(s, rows + q0, kern, out + q0 * s.c, nc); break;
      default: break;
    }
  }
}

struct Work {
  Shape s;
  const float* x;
  const float* k;
  float* y;
  int64_t units;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable cv;
};

void Drain(Work& wk) {
  const Shape& s = wk.s;
  std::vector<Vec> plane(s.hp * s.wp), kern(s.kh * s.kw);
  const int64_t blocks = (s.c + kLanes - 1) / kLanes;
  int64_t u;
  while ((u = wk.next.fetch_add(1)) < wk.units) {
    const int64_t bi = u / blocks, c0 = (u % blocks) * kLanes;
    if (s.kw == 7) Plane<7>(s, wk.x, wk.k, wk.y, bi, c0, plane.data(), kern.data());
    else if (s.kw == 3) Plane<3>(s, wk.x, wk.k, wk.y, bi, c0, plane.data(), kern.data());
    else Plane<0>(s, wk.x, wk.k, wk.y, bi, c0, plane.data(), kern.data());
    if (wk.done.fetch_add(1) + 1 == wk.units) {
      std::lock_guard<std::mutex> lock(wk.mu);
      wk.cv.notify_all();
    }
  }
}

ffi::Error DepthwiseImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                         ffi::ResultBuffer<ffi::F32> y, int64_t pad_top, int64_t pad_bottom,
                         int64_t pad_left, int64_t pad_right) {
  auto xd = x.dimensions(), kd = k.dimensions(), yd = y->dimensions();
  if (xd.size() != 4 || kd.size() != 3 || yd.size() != 4)
    return ffi::Error::InvalidArgument("depthwise: expects x [B,H,W,C], k [kh,kw,C], y [B,H',W',C]");
  Shape s{xd[0], xd[1], xd[2], xd[3], kd[0], kd[1], yd[1], yd[2], pad_top, pad_left,
          xd[1] + pad_top + pad_bottom, xd[2] + pad_left + pad_right};
  if (kd[2] != s.c || yd[0] != s.b || yd[3] != s.c || s.ho != s.hp - s.kh + 1 ||
      s.wo != s.wp - s.kw + 1 || pad_top < 0 || pad_bottom < 0 || pad_left < 0 || pad_right < 0)
    return ffi::Error::InvalidArgument("depthwise: inconsistent shapes or padding");
  if (s.b * s.ho * s.wo * s.c == 0) return ffi::Error::Success();
  auto wk = std::make_shared<Work>();
  wk->s = s;
  wk->x = x.typed_data();
  wk->k = k.typed_data();
  wk->y = y->typed_data();
  wk->units = s.b * ((s.c + kLanes - 1) / kLanes);
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), wk->units) - 1;
  // Helpers hold the work by shared_ptr: one that starts after all units are done finds none left
  // and returns; the caller only waits for units to be done, never for helpers to start.
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([wk] { Drain(*wk); });
  Drain(*wk);
  std::unique_lock<std::mutex> lock(wk->mu);
  wk->cv.wait(lock, [&] { return wk->done.load() == wk->units; });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RepsimDepthwiseConv, DepthwiseImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pad_top")
                                  .Attr<int64_t>("pad_bottom")
                                  .Attr<int64_t>("pad_left")
                                  .Attr<int64_t>("pad_right"));
