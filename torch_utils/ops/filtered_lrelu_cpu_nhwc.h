// Channel-vectorised CPU kernel of filtered_lrelu (included by filtered_lrelu_cpu.cpp only).
//
// filtered_lrelu_cpu.cpp includes this file once per instruction set, each time inside its own
// namespace and `#pragma GCC target` region and with kVectorBytes defined there, so that one build
// carries AVX-512, AVX2 and baseline code and picks one at run time. It relies on the declarations
// made before the includes (Axis, NhwcStage, NhwcArgs, pos_mod).
//
// One task is one sample and a group of L consecutive channels, L = the lanes of one vector: every
// vector holds the same pixel of L channels, so the spatial filtering is plain scalar index arithmetic
// over whole vectors -- aligned loads, no shuffles, no partial vectors at the image borders, and
// zero-stuffed samples or discarded outputs are simply never visited. The planes stream through
// row buffers, one output row at a time:
//
//   input row --(bias, zero padding)--> ring of padded input rows --(stage 1 along H, then along W,
//   activation fused)--> ring of activated rows --(stage 2)--> output row,
//
// so the upsampled intermediate lives in a few rows of cache. A 2-D (non-separable) stage 1 filters
// both axes at once from the same ring; a 2-D stage 2 sums all its taps in registers. Stage 1 only upsamples and stage 2 only downsamples, which is what the forward
// pipeline (up stage, down stage) and the adjoint pipeline (adjoint of the down stage, adjoint of
// the up stage) both are.

template <typename T>
struct NhwcKernel {
    typedef T Vec __attribute__((vector_size(kVectorBytes)));
    typedef typename std::conditional<sizeof(T) == 8, int64_t, int32_t>::type Int;
    typedef Int IVec __attribute__((vector_size(kVectorBytes)));
    static constexpr int L = kVectorBytes / int(sizeof(T));
    typedef uint8_t CodeVec __attribute__((vector_size(L)));
    // Output pixels per register block: 32 vector registers with AVX-512 (enough for 12 accumulators,
    // 12 broadcast taps and the loads; 12 independent chains of multiply-adds hide their latency), 16 otherwise.
    static constexpr int NB = (kVectorBytes == 64) ? 12 : 4;

    // Mode of the epilogue applied to each value of stage 1 before it is stored.
    enum { kStore = 0, kActivateRecord = 1, kDerivative = 2, kActivate = 3 };

    struct Act {
        Vec gain, gain_neg, lim, neg_lim;
    };

    static inline Vec splat(T v)
    {
        Vec r = {};
        r[0] = v;
        return __builtin_shuffle(r, IVec{});
    }

    static inline Vec activate(Vec x, const Act& a, uint8_t* code)
    {
        const IVec pos = x > Vec{};
        const Vec y = x * (pos ? a.gain : a.gain_neg);
        const IVec hi = y > a.lim;
        const IVec lo = y < a.neg_lim;
        const Vec r = hi ? a.lim : (lo ? a.neg_lim : y);
        if (code != nullptr)
            store_codes(code, (pos & 1) | ((hi | lo) & 2));
        return r;
    }

    // The derivative codes of a vector, one byte per lane. GCC turns a generic conversion between a
    // byte vector and a 512-bit integer vector into one insert or extract per lane; with AVX-512 the
    // widening and narrowing moves do it in one instruction.
    template <typename U = T>
    static inline void store_codes(uint8_t* code, IVec c)
    {
#ifdef FILTERED_LRELU_X86
        if constexpr (kVectorBytes == 64) {
            __m512i w;
            std::memcpy(&w, &c, 64);
            if constexpr (sizeof(U) == 4) _mm_storeu_si128(reinterpret_cast<__m128i*>(code), _mm512_cvtepi32_epi8(w));
            else                          _mm_storel_epi64(reinterpret_cast<__m128i*>(code), _mm512_cvtepi64_epi8(w));
            return;
        }
#endif
        const CodeVec b = __builtin_convertvector(c, CodeVec);
        std::memcpy(code, &b, L);
    }

    template <typename U = T>
    static inline IVec load_codes(const uint8_t* code)
    {
#ifdef FILTERED_LRELU_X86
        if constexpr (kVectorBytes == 64) {
            const __m512i w = (sizeof(U) == 4) ? _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(code)))
                                               : _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(code)));
            IVec c;
            std::memcpy(&c, &w, 64);
            return c;
        }
#endif
        CodeVec b;
        std::memcpy(&b, code, L);
        return __builtin_convertvector(b, IVec);
    }

    static inline Vec derivative(Vec v, const Act& a, const uint8_t* code)
    {
        const IVec c = load_codes(code);
        const Vec d = (c & 1) ? a.gain : a.gain_neg;
        return (c & 2) ? Vec{} : v * d;
    }

    template <int MODE>
    static inline Vec epilogue(Vec v, const Act& a, uint8_t* code)
    {
        if (MODE == kActivateRecord) return activate(v, a, code);
        if (MODE == kActivate) return activate(v, a, nullptr);
        if (MODE == kDerivative) return derivative(v, a, code);
        return v;
    }

    // dst[(k0 + i) * dstride] = epilogue(sum_s sum_t coef[s * taps + t] * src[s][(k0 + i) * S + t]) for i < NBLK.
    // TAPS > 0 fixes the number of taps at compile time (the filters of StyleGAN3 have 6 per phase
    // and 12 in all): the tap loop then unrolls, and a vector loaded once serves every output of the
    // block that it is a tap of.
    //
    // With PAIRED, every source is the sum of two rows, src[s] + src2[s] (added as they are loaded):
    // a filter whose rows mirror each other then costs half the multiply-adds.
    template <int S, int NBLK, int MODE, int TAPS, bool PAIRED>
    __attribute__((always_inline)) static inline void block(Vec* __restrict dst, int64_t dstride, int64_t k0, const Vec* const* src, const Vec* const* src2,
                             int64_t nsrc, const T* coef, int64_t taps_rt, int64_t sstride, const Act& act, uint8_t* code)
    {
        const int64_t ss = S ? S : sstride;
        const int64_t taps = TAPS ? TAPS : taps_rt;
        // Unrolled on request, so that the accumulators live in registers (left as a loop, the
        // zeroing becomes a memset of a stack array, slower than the whole block for short filters).
        Vec acc[NBLK];
#pragma GCC unroll 16
        for (int i = 0; i < NBLK; i++)
            acc[i] = Vec{};
        for (int64_t s = 0; s < nsrc; s++) {
            const Vec* p = src[s] + k0 * ss;
            const Vec* q = PAIRED ? src2[s] + k0 * ss : p;
            const T* c = coef + s * taps;
            // Opaque to the optimiser from here on, so that every tap is a fixed displacement from p
            // rather than one more induction variable (of which there are not enough registers).
            asm("" : "+r"(p), "+r"(q), "+r"(c));
            if (TAPS > 0 && S > 0) {
                constexpr int kS = S > 0 ? S : 1;
                constexpr int kTaps = TAPS > 0 ? TAPS : 1;
                Vec cv[kTaps];
#pragma GCC unroll 16
                for (int t = 0; t < kTaps; t++)
                    cv[t] = splat(c[t]);
#pragma GCC unroll 64
                for (int m = 0; m < (NBLK - 1) * kS + kTaps; m++) {
                    const Vec v = PAIRED ? p[m] + q[m] : p[m];
#pragma GCC unroll 16
                    for (int i = 0; i < NBLK; i++) {
                        const int t = m - i * kS;
                        if (t >= 0 && t < kTaps)
                            acc[i] += cv[t] * v;
                    }
                }
                continue;
            }
            for (int64_t t = 0; t < taps; t++) {
                const T ct = c[t];
#pragma GCC unroll 16
                for (int i = 0; i < NBLK; i++)
                    acc[i] += ct * (PAIRED ? p[i * ss + t] + q[i * ss + t] : p[i * ss + t]);
            }
        }
#pragma GCC unroll 16
        for (int i = 0; i < NBLK; i++) {
            const int64_t k = (k0 + i) * dstride;
            dst[k] = epilogue<MODE>(acc[i], act, code == nullptr ? nullptr : code + k * L);
        }
    }

    template <int S, int MODE, int TAPS, bool PAIRED>
    static void correlate_t(Vec* dst, int64_t dstride, int64_t n, const Vec* const* src, const Vec* const* src2, int64_t nsrc,
                            const T* coef, int64_t taps, int64_t sstride, const Act& act, uint8_t* code)
    {
        int64_t k = 0;
        for (; k + NB <= n; k += NB)
            block<S, NB, MODE, TAPS, PAIRED>(dst, dstride, k, src, src2, nsrc, coef, taps, sstride, act, code);
        if (NB > 6 && k + 6 <= n) {
            block<S, (NB > 6 ? 6 : 1), MODE, TAPS, PAIRED>(dst, dstride, k, src, src2, nsrc, coef, taps, sstride, act, code);
            k += (NB > 6 ? 6 : 1);
        }
        for (; k + 2 <= n; k += 2)
            block<S, 2, MODE, TAPS, PAIRED>(dst, dstride, k, src, src2, nsrc, coef, taps, sstride, act, code);
        for (; k < n; k++)
            block<S, 1, MODE, TAPS, PAIRED>(dst, dstride, k, src, src2, nsrc, coef, taps, sstride, act, code);
    }

    template <int S, int MODE, bool PAIRED>
    static void correlate_s(Vec* dst, int64_t dstride, int64_t n, const Vec* const* src, const Vec* const* src2, int64_t nsrc,
                            const T* coef, int64_t taps, int64_t sstride, const Act& act, uint8_t* code)
    {
        if (S != 0 && taps == 1)       correlate_t<S, MODE, 1, PAIRED>(dst, dstride, n, src, src2, nsrc, coef, taps, sstride, act, code);
        else if (S != 0 && taps == 6)  correlate_t<S, MODE, 6, PAIRED>(dst, dstride, n, src, src2, nsrc, coef, taps, sstride, act, code);
        else if (S != 0 && taps == 12) correlate_t<S, MODE, 12, PAIRED>(dst, dstride, n, src, src2, nsrc, coef, taps, sstride, act, code);
        else                           correlate_t<S, MODE, 0, PAIRED>(dst, dstride, n, src, src2, nsrc, coef, taps, sstride, act, code);
    }

    // dst[k * dstride] = epilogue(sum_s sum_t coef[s * taps + t] * src[s][k * sstride + t]) for k < n:
    // every filtering step of the pipeline is one of these (a 1-D pass is nsrc = 1 or taps = 1).
    template <int MODE>
    static void correlate(Vec* dst, int64_t dstride, int64_t n, const Vec* const* src, int64_t nsrc,
                          const T* coef, int64_t taps, int64_t sstride, const Act& act, uint8_t* code)
    {
        if (sstride == 1)      correlate_s<1, MODE, false>(dst, dstride, n, src, nullptr, nsrc, coef, taps, 1, act, code);
        else if (sstride == 2) correlate_s<2, MODE, false>(dst, dstride, n, src, nullptr, nsrc, coef, taps, 2, act, code);
        else if (sstride == 4) correlate_s<4, MODE, false>(dst, dstride, n, src, nullptr, nsrc, coef, taps, 4, act, code);
        else                   correlate_s<0, MODE, false>(dst, dstride, n, src, nullptr, nsrc, coef, taps, sstride, act, code);
    }

    // The same with every source the sum src[s] + src2[s] (no epilogue).
    static void correlate_paired(Vec* dst, int64_t n, const Vec* const* src, const Vec* const* src2, int64_t nsrc,
                                 const T* coef, int64_t taps, int64_t sstride, const Act& act)
    {
        if (sstride == 1)      correlate_s<1, kStore, true>(dst, 1, n, src, src2, nsrc, coef, taps, 1, act, nullptr);
        else if (sstride == 2) correlate_s<2, kStore, true>(dst, 1, n, src, src2, nsrc, coef, taps, 2, act, nullptr);
        else if (sstride == 4) correlate_s<4, kStore, true>(dst, 1, n, src, src2, nsrc, coef, taps, 4, act, nullptr);
        else                   correlate_s<0, kStore, true>(dst, 1, n, src, src2, nsrc, coef, taps, sstride, act, nullptr);
    }

    template <int MODE>
    static void apply_epilogue(Vec* v, int64_t n, const Act& act, uint8_t* code)
    {
        for (int64_t k = 0; k < n; k++)
            v[k] = epilogue<MODE>(v[k], act, code == nullptr ? nullptr : code + k * L);
    }

    // Polyphase taps of an upsampling axis (down == 1): output k = up*q + r is the sum over t < taps[r]
    // of coefficient index j0[r] + up*t times input q + base[r] + t.
    struct UpAxis {
        int64_t up = 1, out_len = 0, lo = 0, hi = 0;
        std::vector<int64_t> j0, taps, base, count;
    };

    static UpAxis make_up_axis(const Axis& a, int64_t ntaps)
    {
        UpAxis u;
        u.up = a.up;
        u.out_len = a.out_len;
        bool any = false;
        for (int64_t r = 0; r < a.up; r++) {
            const int64_t j0 = pos_mod(a.pad0 - r, a.up);
            const int64_t taps = (r < a.out_len && j0 < ntaps) ? (ntaps - j0 + a.up - 1) / a.up : 0;
            const int64_t base = (r - a.pad0 + j0) / a.up;   // exact division
            const int64_t count = (r < a.out_len) ? (a.out_len - r + a.up - 1) / a.up : 0;
            u.j0.push_back(j0);
            u.taps.push_back(taps);
            u.base.push_back(base);
            u.count.push_back(count);
            if (taps > 0 && count > 0) {
                u.lo = any ? std::min(u.lo, base) : base;
                u.hi = any ? std::max(u.hi, base + count - 1 + taps - 1) : base + count - 1 + taps - 1;
                any = true;
            }
        }
        return u;
    }

    // A buffer of vectors, aligned, grown on demand, zero-filled when (re)allocated.
    struct Buffer {
        Vec* p = nullptr;
        int64_t n = 0;
        ~Buffer() { std::free(p); }
        Vec* get(int64_t count)
        {
            if (count > n) {
                std::free(p);
                p = static_cast<Vec*>(std::aligned_alloc(kVectorBytes, std::max<int64_t>(count, 1) * kVectorBytes));
                TORCH_CHECK(p != nullptr, "filtered_lrelu_cpu: out of memory");
                n = count;
            }
            std::memset(static_cast<void*>(p), 0, count * kVectorBytes);
            return p;
        }
    };

    const NhwcArgs<T>& A;
    const NhwcStage<T>& s1;
    const NhwcStage<T>& s2;
    UpAxis ux, uy;                 // stage 1
    int64_t in_w, in_h, mid_w, mid_h, out_w, out_h;
    int64_t xw;                    // padded input row: input columns [ux.lo, ux.hi]
    int64_t ring1;                 // rows of the stage-1 ring
    int64_t row_lo, row_hi;        // input rows relative to q that a stage-1 output row may read
    int64_t mlo, mw;               // activated rows: columns [mlo, mlo + mw)
    int64_t ring2;
    bool mirrored2;
    std::vector<T> coef_x, coef_y; // stage 1 separable: per phase, taps in order
    std::vector<int64_t> off_x, off_y;
    std::vector<T> coef_2d;        // stage 1 2-D: per (ry, rx) phase pair, [taps_y][taps_x]
    std::vector<int64_t> off_2d;
    Act act;
    int mode;

    NhwcKernel(const NhwcArgs<T>& args) : A(args), s1(args.st1), s2(args.st2)
    {
        in_w = s1.ax.in_len; in_h = s1.ay.in_len;
        mid_w = s1.ax.out_len; mid_h = s1.ay.out_len;
        out_w = s2.ax.out_len; out_h = s2.ay.out_len;
        const int64_t fx1 = s1.fx, fy1 = s1.fy;
        ux = make_up_axis(s1.ax, fx1);
        uy = make_up_axis(s1.ay, fy1);
        xw = ux.hi - ux.lo + 1;
        row_lo = std::numeric_limits<int64_t>::max();
        row_hi = std::numeric_limits<int64_t>::min();
        for (int64_t r = 0; r < uy.up; r++) {
            if (uy.taps[r] == 0) continue;
            row_lo = std::min(row_lo, uy.base[r]);
            row_hi = std::max(row_hi, uy.base[r] + uy.taps[r] - 1);
        }
        if (row_lo > row_hi) row_lo = row_hi = 0;
        ring1 = row_hi - row_lo + 2;

        if (s1.g2 == nullptr) {
            for (int64_t r = 0; r < ux.up; r++) {
                off_x.push_back(int64_t(coef_x.size()));
                for (int64_t t = 0; t < ux.taps[r]; t++) coef_x.push_back(s1.gx[ux.j0[r] + ux.up * t]);
            }
            off_x.push_back(int64_t(coef_x.size()));
            for (int64_t r = 0; r < uy.up; r++) {
                off_y.push_back(int64_t(coef_y.size()));
                for (int64_t t = 0; t < uy.taps[r]; t++) coef_y.push_back(s1.gy[uy.j0[r] + uy.up * t]);
            }
            off_y.push_back(int64_t(coef_y.size()));
        } else {
            for (int64_t ry = 0; ry < uy.up; ry++)
                for (int64_t rx = 0; rx < ux.up; rx++) {
                    off_2d.push_back(int64_t(coef_2d.size()));
                    for (int64_t ty = 0; ty < uy.taps[ry]; ty++)
                        for (int64_t tx = 0; tx < ux.taps[rx]; tx++)
                            coef_2d.push_back(s1.g2[(uy.j0[ry] + uy.up * ty) * fx1 + ux.j0[rx] + ux.up * tx]);
                }
            off_2d.push_back(int64_t(coef_2d.size()));
        }

        // Stage 2 reads activated columns D*o + j - pad0 and rows likewise; outside the image they are zero.
        const Axis& a2 = s2.ax;
        mlo = std::min<int64_t>(0, -a2.pad0);
        const int64_t mhi = std::max<int64_t>(mid_w - 1, a2.down * (out_w - 1) + s2.fx - 1 - a2.pad0);
        mw = mhi - mlo + 1;
        ring2 = s2.fy + 1;
        // A 2-D stage-2 filter whose rows mirror each other exactly (the radial filters of StyleGAN3-R
        // do) is applied to sums of mirrored rows.
        mirrored2 = s2.g2 != nullptr && s2.fy >= 2;
        for (int64_t j = 0; mirrored2 && j < s2.fy; j++)
            for (int64_t i = 0; i < s2.fx; i++)
                if (s2.g2[j * s2.fx + i] != s2.g2[(s2.fy - 1 - j) * s2.fx + i])
                    mirrored2 = false;

        const T lim = (A.clamp >= 0) ? T(A.clamp) : std::numeric_limits<T>::infinity();
        act.gain = splat(T(A.gain));
        act.gain_neg = splat(T(A.gain) * T(A.slope));
        act.lim = splat(lim);
        act.neg_lim = splat(-lim);
        mode = A.mode;
    }

    // Per-thread state of one task.
    struct Task {
        Buffer xrow, ring1, ring2, vrow, orow;
        // Row pointers of one filtering step (a std::vector would drop the vector attribute).
        const Vec** src = nullptr;
        const Vec** src2 = nullptr;
        int64_t nsrc = 0;
        Buffer zero;               // a row of zeros, the partner of a row without one
        ~Task() { std::free(src); std::free(src2); }
        void clear() { nsrc = 0; }
        void push(const Vec* p) { src[nsrc++] = p; }
        void push2(const Vec* p, const Vec* q) { src[nsrc] = p; src2[nsrc++] = q; }
        std::vector<int64_t> coef_rows;
        std::vector<T> coef;
        int64_t next_in = 0, next_mid = 0;
        const T* x = nullptr;      // this task's sample and first channel
        T* y = nullptr;
        uint8_t* code = nullptr;   // this task's codes, [mid_h][mid_w][L]
        int lanes = 0;
        Vec bias{};
    };

    // Padded input row `iy` (bias added to the real samples) into dst[0, xw).
    void load_row(const Task& t, int64_t iy, Vec* dst) const
    {
        const T* row = t.x + iy * A.x_stride[2];
        const int64_t sw = A.x_stride[3], sc = A.x_stride[1];
        const int64_t a = std::max<int64_t>(0, ux.lo), b = std::min<int64_t>(in_w, ux.hi + 1);
        for (int64_t i = 0; i < a - ux.lo && i < xw; i++) dst[i] = Vec{};
        for (int64_t i = a; i < b; i++) {
            Vec v;
            if (sc == 1 && t.lanes == L) {
                std::memcpy(&v, row + i * sw, sizeof(Vec));
            } else {
                T tmp[L] = {};
                for (int l = 0; l < t.lanes; l++) tmp[l] = row[i * sw + l * sc];
                std::memcpy(&v, tmp, sizeof(Vec));
            }
            dst[i - ux.lo] = v + t.bias;
        }
        for (int64_t i = std::max(b, ux.lo) - ux.lo; i < xw; i++) dst[i] = Vec{};
    }

    void store_row(const Task& t, int64_t oy, const Vec* src) const
    {
        T* row = t.y + oy * A.y_stride[2];
        const int64_t sw = A.y_stride[3], sc = A.y_stride[1];
        for (int64_t i = 0; i < out_w; i++) {
            if (sc == 1 && t.lanes == L) {
                std::memcpy(row + i * sw, &src[i], sizeof(Vec));
            } else {
                T tmp[L];
                std::memcpy(tmp, &src[i], sizeof(Vec));
                for (int l = 0; l < t.lanes; l++) row[i * sw + l * sc] = tmp[l];
            }
        }
    }

    Vec* ring1_row(Task& t, int64_t i) const { return t.ring1.p + pos_mod(i, ring1) * xw; }
    int64_t ring2_width() const { return s2.g2 == nullptr ? out_w : mw; }
    Vec* ring2_row(Task& t, int64_t k) const { return t.ring2.p + pos_mod(k, ring2) * ring2_width(); }

    // Makes input row `i` available in the stage-1 ring, padded.
    void input_row(Task& t, int64_t i) const
    {
        load_row(t, i, ring1_row(t, i));
    }

    // Computes activated row k of the intermediate image into the stage-2 ring.
    template <int MODE>
    void mid_row(Task& t, int64_t k) const
    {
        const int64_t ry = k % uy.up, q = k / uy.up;
        // Input rows q + base + tt for tt < taps, those inside the image.
        const int64_t first = q + uy.base[ry];
        int64_t t0 = std::max<int64_t>(0, -first), t1 = std::min<int64_t>(uy.taps[ry], in_h - first);
        if (t1 < t0) t1 = t0;
        while (t.next_in < std::min(in_h, first + t1)) {
            input_row(t, t.next_in);
            t.next_in++;
        }
        // A separable stage 2 filters each activated row along W at once, while it is in L1, and keeps
        // only the result (out_w wide) in the ring: the pass along H, which loads every vector for
        // one multiply-add only, then runs on the narrower rows.
        Vec* out = (s2.g2 == nullptr ? t.vrow.p : ring2_row(t, k)) - mlo;   // out[0] = column 0
        uint8_t* code = (MODE == kActivateRecord || MODE == kDerivative) ? t.code + k * mid_w * L : nullptr;
        mid_row_values<MODE>(t, k, ry, q, first, t0, t1, out, code);
        if (s2.g2 == nullptr) {
            const Vec* src = out - s2.ax.pad0;
            correlate<kStore>(ring2_row(t, k), 1, out_w, &src, 1, s2.gx, s2.fx, s2.ax.down, act, nullptr);
        }
    }

    template <int MODE>
    void mid_row_values(Task& t, int64_t k, int64_t ry, int64_t q, int64_t first, int64_t t0, int64_t t1, Vec* out, uint8_t* code) const
    {
        (void)k; (void)q;
        t.clear();
        if (s1.g2 == nullptr) {
            // Along H first, on the narrow input rows (one load per multiply-add, whatever the
            // blocking), then along W, where a register block reuses every load for several outputs,
            // with the activation applied to the results in registers.
            for (int64_t tt = t0; tt < t1; tt++) t.push(ring1_row(t, first + tt));
            Vec* v = t.xrow.p;
            correlate<kStore>(v, 1, xw, t.src, t.nsrc, coef_y.data() + off_y[ry] + t0, 1, 1, act, nullptr);
            for (int64_t rx = 0; rx < ux.up; rx++) {
                if (ux.count[rx] == 0) continue;
                const Vec* src = v + (ux.base[rx] - ux.lo);
                correlate<MODE>(out + rx, ux.up, ux.count[rx], &src, 1, coef_x.data() + off_x[rx], ux.taps[rx], 1, act,
                                code == nullptr ? nullptr : code + rx * L);
            }
            return;
        }
        for (int64_t rx = 0; rx < ux.up; rx++) {
            if (ux.count[rx] == 0) continue;
            t.clear();
            for (int64_t tt = t0; tt < t1; tt++) t.push(ring1_row(t, first + tt) + (ux.base[rx] - ux.lo));
            const T* c = coef_2d.data() + off_2d[ry * ux.up + rx] + t0 * ux.taps[rx];
            correlate<kStore>(out + rx, ux.up, ux.count[rx], t.src, t.nsrc, c, ux.taps[rx], 1, act, nullptr);
        }
        apply_epilogue<MODE>(out, mid_w, act, code);
    }

    // One output row of a task, computing the intermediate rows it needs first.
    template <int MODE>
    void output_row(Task& t, int64_t oy) const
    {
        const Axis& a2x = s2.ax;
        const Axis& a2y = s2.ay;
        Vec* orow = t.orow.p;
        const int64_t first = a2y.down * oy - a2y.pad0;
        int64_t j0 = std::max<int64_t>(0, -first), j1 = std::min<int64_t>(s2.fy, mid_h - first);
        if (j1 < j0) j1 = j0;
        while (t.next_mid < std::min(mid_h, first + j1)) {
            mid_row<MODE>(t, t.next_mid);
            t.next_mid++;
        }
        t.clear();
        if (mirrored2) {
            // Rows j and fy-1-j share their coefficients; a row outside the image is a row of zeros.
            const int64_t half = (s2.fy + 1) / 2;
            for (int64_t j = 0; j < half; j++) {
                const int64_t jm = s2.fy - 1 - j;
                const bool in_j = j >= j0 && j < j1, in_jm = jm != j && jm >= j0 && jm < j1;
                if (!in_j && !in_jm) continue;
                const Vec* a = in_j ? ring2_row(t, first + j) : t.zero.p;
                const Vec* b = in_jm ? ring2_row(t, first + jm) : t.zero.p;
                t.coef_rows[t.nsrc] = j;
                t.push2(a + (-a2x.pad0 - mlo), b + (-a2x.pad0 - mlo));
            }
            // Coefficient rows in the order of the pairs.
            T* c = t.coef.data();
            for (int64_t i = 0; i < t.nsrc; i++)
                std::memcpy(c + i * s2.fx, s2.g2 + t.coef_rows[i] * s2.fx, s2.fx * sizeof(T));
            correlate_paired(orow, out_w, t.src, t.src2, t.nsrc, c, s2.fx, a2x.down, act);
            store_row(t, oy, orow);
            return;
        }
        for (int64_t j = j0; j < j1; j++) t.push(ring2_row(t, first + j) + (-a2x.pad0 - mlo));
        if (s2.g2 != nullptr) {
            correlate<kStore>(orow, 1, out_w, t.src, t.nsrc, s2.g2 + j0 * s2.fx, s2.fx, a2x.down, act, nullptr);
        } else {
            // The rows are filtered along W already (mid_row): along H.
            for (int64_t i = 0; i < t.nsrc; i++) t.src[i] -= (-a2x.pad0 - mlo);
            correlate<kStore>(orow, 1, out_w, t.src, t.nsrc, s2.gy + j0, 1, 1, act, nullptr);
        }
        store_row(t, oy, orow);
    }

    // A bundle of tasks (neighbouring channel groups of one sample) steps through the rows in
    // lockstep: the groups of a pixel share its pages and neighbouring cache lines, so the strided
    // reads and writes of NHWC data cost one page walk per bundle, and the hardware prefetchers see
    // runs of neighbouring lines (one group alone reads one line per pixel, a whole pixel of
    // channels apart, and waits for memory at every pixel; software prefetching did not help).
    template <int MODE>
    void run_bundle(Task* tasks, int count) const
    {
        for (int g = 0; g < count; g++)
            tasks[g].next_in = tasks[g].next_mid = 0;
        for (int64_t oy = 0; oy < out_h; oy++)
            for (int g = 0; g < count; g++)
                output_row<MODE>(tasks[g], oy);
        // The backward reads the activation code of every intermediate sample, also of those no
        // output depends on.
        if (MODE == kActivateRecord)
            for (int g = 0; g < count; g++)
                for (Task& t = tasks[g]; t.next_mid < mid_h; t.next_mid++)
                    mid_row<MODE>(t, t.next_mid);
    }

    static constexpr int kBundle = 4;

    void run() const
    {
        const int64_t n = A.batch, c = A.channels;
        const int64_t groups = (c + L - 1) / L;
        const int64_t bundles_per_sample = (groups + kBundle - 1) / kBundle;
        const int64_t bundles = n * bundles_per_sample;
        // Threads take bundles one at a time, so that one slowed down (say by another process on
        // its core) leaves more of the work to the others instead of holding them up at the end.
        std::atomic<int64_t> next_bundle{0};
        const int64_t threads = std::min<int64_t>(at::get_num_threads(), bundles);
        at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
            for (int64_t thread = begin; thread < end; thread++) {
                // The margins of the activated rows and of vrow (columns outside the image) are never
                // written, so the zeros of the allocation serve every task.
                Task ts[kBundle];
                for (Task& t : ts) {
                    t.src = static_cast<const Vec**>(std::malloc(sizeof(const Vec*) * std::max<int64_t>({s1.fy, s2.fy, 1})));
                    t.src2 = static_cast<const Vec**>(std::malloc(sizeof(const Vec*) * std::max<int64_t>({s1.fy, s2.fy, 1})));
                    TORCH_CHECK(t.src != nullptr && t.src2 != nullptr, "filtered_lrelu_cpu: out of memory");
                    if (mirrored2) {
                        t.zero.get(mw);
                        t.coef_rows.resize(s2.fy);
                        t.coef.resize(s2.fy * s2.fx);
                    }
                    t.xrow.get(xw);
                    t.ring1.get(ring1 * xw);
                    t.ring2.get(ring2 * ring2_width());
                    t.vrow.get(mw);
                    t.orow.get(out_w);
                }
                for (int64_t bundle; (bundle = next_bundle.fetch_add(1)) < bundles;) {
                    const int64_t ni = bundle / bundles_per_sample;
                    const int64_t g0 = (bundle % bundles_per_sample) * kBundle;
                    const int count = int(std::min<int64_t>(kBundle, groups - g0));
                    for (int k = 0; k < count; k++) {
                        Task& t = ts[k];
                        const int64_t g = g0 + k, c0 = g * L;
                        t.lanes = int(std::min<int64_t>(L, c - c0));
                        t.x = A.x + ni * A.x_stride[0] + c0 * A.x_stride[1];
                        t.y = A.y + ni * A.y_stride[0] + c0 * A.y_stride[1];
                        t.code = (A.code != nullptr) ? A.code + (ni * groups + g) * mid_h * mid_w * L : nullptr;
                        T tmp[L] = {};
                        if (A.bias != nullptr)
                            for (int l = 0; l < t.lanes; l++) tmp[l] = A.bias[c0 + l];
                        std::memcpy(&t.bias, tmp, sizeof(Vec));
                    }
                    switch (mode) {
                        case kActivateRecord: run_bundle<kActivateRecord>(ts, count); break;
                        case kDerivative:     run_bundle<kDerivative>(ts, count); break;
                        default:              run_bundle<kActivate>(ts, count); break;
                    }
                }
            }
        });
    }
};

template <typename T>
void run_nhwc(const NhwcArgs<T>& args)
{
    NhwcKernel<T> kernel(args);
    kernel.run();
}

constexpr int lanes_float = kVectorBytes / 4;
constexpr int lanes_double = kVectorBytes / 8;
