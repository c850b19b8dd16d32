// Convolutions that XLA:CPU compiles poorly, NHWC float32, as XLA FFI handlers for the CPU;
// built and registered by repsim_jax/models/native/__init__.py (see there for when each is used).
//
// Both kernels keep a register tile of output vectors (of the target's width: 16 float32 lanes with
// AVX-512, 8 with AVX, else 4) while the inputs stream past, and split their work units between
// the calling thread and XLA's intra-op thread pool. The compiler
// may contract multiply-adds into FMAs (float32 rounding differences only).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Vectors of the target's native width: GCC spills vector types wider than the target's registers
// to the stack on every operation.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;  // SSE, NEON
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

// --- work sharing ------------------------------------------------------------------------------

struct Units {
  int64_t count;
  std::function<void(int64_t)> fn;
  std::atomic<int64_t> next{0}, done{0};
  std::mutex mu;
  std::condition_variable cv;

  void Drain() {
    int64_t u;
    while ((u = next.fetch_add(1)) < count) {
      fn(u);
      if (done.fetch_add(1) + 1 == count) {
        std::lock_guard<std::mutex> lock(mu);
        cv.notify_all();
      }
    }
  }
};

// fn(0), ..., fn(count - 1), on this thread and up to num_threads - 1 pool threads. Helpers hold
// the units by shared_ptr: one that starts after all units are done finds none left and returns;
// the caller waits only for units to be done, never for helpers to start (no deadlock when this
// runs on a pool thread itself).
void ParallelFor(ffi::ThreadPool& pool, int64_t count, std::function<void(int64_t)> fn) {
  if (count <= 0) return;
  auto units = std::make_shared<Units>();
  units->count = count;
  units->fn = std::move(fn);
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), count) - 1;
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([units] { units->Drain(); });
  units->Drain();
  std::unique_lock<std::mutex> lock(units->mu);
  units->cv.wait(lock, [&] { return units->done.load() == units->count; });
}

inline Vec Broadcast(float a) { return Vec{} + a; }

// A row of n output pixels in register tiles: fn(q, Width<T>{}) for the tile of T pixels at q,
// T = Tile for whole tiles, then one tile of the n % Tile pixels left. The width is a type, so
// each tile's accumulators are a fixed-size array the compiler keeps in registers.
template <int T>
using Width = std::integral_constant<int, T>;

template <int T, typename F>
inline void LastTile(int64_t n, int64_t q, F& fn) {
  if constexpr (T > 0) {
    if (n == T) fn(q, Width<T>{});
    else LastTile<T - 1>(n, q, fn);
  }
}

template <int Tile, typename F>
inline void RowTiles(int64_t n, F&& fn) {
  int64_t q = 0;
  for (; q + Tile <= n; q += Tile) fn(q, Width<Tile>{});
  LastTile<Tile - 1>(n - q, q, fn);
}

inline void Store(float* out, const Vec& v, int64_t n) {
  std::memcpy(out, &v, (n < kLanes ? n : kLanes) * sizeof(float));
}

// --- depthwise: stride 1, zero padding ---------------------------------------------------------
//
// Work unit: one (image, block of kLanes channels). Its zero-padded input plane [hp, wp, kLanes]
// and kernel block [kh*kw, kLanes] are copied into contiguous per-thread buffers (L2-resident at ConvNeXt's
// shapes), then each output row is computed in tiles of up to 8 pixels: 8 accumulators and one
// kernel vector stay in registers and each input vector loaded serves up to kw multiply-adds.
// Sums run over kernel rows then columns, as layers._depthwise_taps.

struct DwShape {
  int64_t b, h, w, c, kh, kw, ho, wo, pt, pl, hp, wp;
};

constexpr int kDwTile = 8;

// T output pixels of one row: acc[t] = sum_{i,j} rows[i*wp + t + j] * kern[i*kw + j].
template <int KW, int T>
inline void DwTile(const DwShape& s, const Vec* rows, const Vec* kern, float* out, int64_t nc) {
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
  for (int t = 0; t < T; ++t) Store(out + t * s.c, acc[t], nc);
}

template <int KW>
void DwPlane(const DwShape& s, const float* x, const float* k, float* y, int64_t bi, int64_t c0) {
  thread_local std::vector<Vec> plane, kern;
  plane.assign(s.hp * s.wp, Vec{});
  kern.assign(s.kh * s.kw, Vec{});
  const int64_t nc = std::min<int64_t>(kLanes, s.c - c0);
  for (int64_t r = 0; r < s.h; ++r) {
    const float* src = x + ((bi * s.h + r) * s.w) * s.c + c0;
    Vec* dst = plane.data() + (r + s.pt) * s.wp + s.pl;
    for (int64_t q = 0; q < s.w; ++q) std::memcpy(&dst[q], src + q * s.c, nc * sizeof(float));
  }
  for (int64_t t = 0; t < s.kh * s.kw; ++t) std::memcpy(&kern[t], k + t * s.c + c0, nc * sizeof(float));
  for (int64_t o = 0; o < s.ho; ++o) {
    float* out = y + ((bi * s.ho + o) * s.wo) * s.c + c0;
    const Vec* rows = plane.data() + o * s.wp;
    RowTiles<kDwTile>(s.wo, [&](int64_t q, auto width) {
      DwTile<KW, decltype(width)::value>(s, rows + q, kern.data(), out + q * s.c, nc);
    });
  }
}

ffi::Error DepthwiseImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                         ffi::ResultBuffer<ffi::F32> y, int64_t pad_top, int64_t pad_bottom,
                         int64_t pad_left, int64_t pad_right) {
  auto xd = x.dimensions(), kd = k.dimensions(), yd = y->dimensions();
  if (xd.size() != 4 || kd.size() != 3 || yd.size() != 4)
    return ffi::Error::InvalidArgument("depthwise: expects x [B,H,W,C], k [kh,kw,C], y [B,H',W',C]");
  DwShape s{xd[0], xd[1], xd[2], xd[3], kd[0], kd[1], yd[1], yd[2], pad_top, pad_left,
            xd[1] + pad_top + pad_bottom, xd[2] + pad_left + pad_right};
  if (kd[2] != s.c || yd[0] != s.b || yd[3] != s.c || s.ho != s.hp - s.kh + 1 ||
      s.wo != s.wp - s.kw + 1 || pad_top < 0 || pad_bottom < 0 || pad_left < 0 || pad_right < 0)
    return ffi::Error::InvalidArgument("depthwise: inconsistent shapes or padding");
  if (s.ho * s.wo == 0) return ffi::Error::Success();
  const float* xp = x.typed_data();
  const float* kp = k.typed_data();
  float* yp = y->typed_data();
  const int64_t blocks = (s.c + kLanes - 1) / kLanes;
  ParallelFor(pool, s.b * blocks, [&](int64_t u) {
    const int64_t bi = u / blocks, c0 = (u % blocks) * kLanes;
    if (s.kw == 7) DwPlane<7>(s, xp, kp, yp, bi, c0);
    else if (s.kw == 3) DwPlane<3>(s, xp, kp, yp, bi, c0);
    else DwPlane<0>(s, xp, kp, yp, bi, c0);
  });
  return ffi::Error::Success();
}

// --- dense: groups 1, any stride, input already padded -----------------------------------------
//
// Work unit: one (image, output row, block of output channels). A register tile of T output
// pixels x V vectors of channels runs over the kernel rows; within a row, (kernel column, input
// channel) is one contiguous run of kw*cin values in both the input row (NHWC) and the kernel
// (HWIO), so each step broadcasts one input value per pixel against V kernel vectors. With
// AVX-512's 32 vector registers the tile is 14 x 2 (28 accumulators: each kernel vector loaded
// from L2 serves 14 pixels); elsewhere 6 x 2, which fits 16 registers. A row's last pixels get a
// tile of their own width.

#if defined(__AVX512F__)
constexpr int kDenseTile = 14, kDenseVecs = 2;
#else
constexpr int kDenseTile = 6, kDenseVecs = 2;
#endif

struct DenseShape {
  int64_t b, hp, wp, ci, kh, kw, co, ho, wo, stride;
};

template <int T, int V>
inline void DenseTile(const DenseShape& s, const float* x, const float* w, float* y) {
  const int64_t run = s.kw * s.ci;
  Vec acc[T][V] = {};
  for (int64_t i = 0; i < s.kh; ++i) {
    const float* xi = x + i * s.wp * s.ci;
    const float* wi = w + i * run * s.co;
    for (int64_t r = 0; r < run; ++r) {
      Vec wv[V];
      for (int v = 0; v < V; ++v) std::memcpy(&wv[v], wi + r * s.co + v * kLanes, sizeof(Vec));
      for (int t = 0; t < T; ++t) {
        const Vec xs = Broadcast(xi[t * s.stride * s.ci + r]);
        for (int v = 0; v < V; ++v) acc[t][v] += xs * wv[v];
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int v = 0; v < V; ++v) std::memcpy(y + t * s.co + v * kLanes, &acc[t][v], sizeof(Vec));
}

ffi::Error DenseImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                     ffi::ResultBuffer<ffi::F32> y, int64_t stride) {
  auto xd = x.dimensions(), kd = k.dimensions(), yd = y->dimensions();
  if (xd.size() != 4 || kd.size() != 4 || yd.size() != 4)
    return ffi::Error::InvalidArgument("dense: expects x [B,H,W,Ci], k [kh,kw,Ci,Co], y [B,H',W',Co]");
  DenseShape s{xd[0], xd[1], xd[2], xd[3], kd[0], kd[1], kd[3], yd[1], yd[2], stride};
  if (stride < 1 || kd[2] != s.ci || yd[0] != s.b || yd[3] != s.co ||
      s.ho != (s.hp - s.kh) / stride + 1 || s.wo != (s.wp - s.kw) / stride + 1)
    return ffi::Error::InvalidArgument("dense: inconsistent shapes or stride");
  if (s.ho * s.wo * s.co == 0) return ffi::Error::Success();
  constexpr int64_t kBlock = kDenseVecs * kLanes;
  // Every block is whole: no kernel reads past its end.
  if (s.co % kBlock)
    return ffi::Error::InvalidArgument("dense: output channels not a multiple of the block");
  const float* xp = x.typed_data();
  const float* kp = k.typed_data();
  float* yp = y->typed_data();
  const int64_t blocks = s.co / kBlock;
  ParallelFor(pool, s.b * s.ho * blocks, [&](int64_t u) {
    const int64_t c0 = (u % blocks) * kBlock, row = u / blocks;
    const int64_t bi = row / s.ho, o = row % s.ho;
    const float* in = xp + ((bi * s.hp + o * s.stride) * s.wp) * s.ci;
    float* out = yp + ((bi * s.ho + o) * s.wo) * s.co + c0;
    RowTiles<kDenseTile>(s.wo, [&](int64_t q, auto width) {
      DenseTile<decltype(width)::value, kDenseVecs>(s, in + q * s.stride * s.ci, kp + c0,
                                                    out + q * s.co);
    });
  });
  return ffi::Error::Success();
}

}  // namespace

// The dense kernel's tile, for layers.conv2d's choice: output pixels, and the output-channel
// multiple it needs (32 with AVX-512, 16 with AVX, 8 otherwise).
extern "C" int RepsimDenseTilePixels() { return kDenseTile; }
extern "C" int RepsimDenseChannelMultiple() { return kDenseVecs * kLanes; }

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

XLA_FFI_DEFINE_HANDLER_SYMBOL(RepsimDenseConv, DenseImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride"));
