// Helpers for the generated AXI-Stream testbench (hw/sim.py): width-agnostic bit-slice access to
// Verilator signals, a seeded xorshift random source, and hex beat I/O.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "verilated.h"

namespace tb {

// ---- bit slices on little-endian 32-bit word arrays --------------------------------------------
static inline uint32_t get_bit(const uint32_t* a, int i) { return (a[i >> 5] >> (i & 31)) & 1u; }

// dst[lo +: w] = src[0 +: w]
static inline void insert(uint32_t* dst, int lo, int w, const uint32_t* src) {
    for (int i = 0; i < w; i += 32) {
        int n = w - i < 32 ? w - i : 32;
        uint64_t m = (n == 32) ? 0xffffffffull : ((1ull << n) - 1);
        uint64_t v = src[i >> 5] & m;
        int pos = lo + i, wi = pos >> 5, sh = pos & 31;
        uint64_t cur = dst[wi];
        if (sh + n > 32) cur |= (uint64_t)dst[wi + 1] << 32;
        cur = (cur & ~(m << sh)) | (v << sh);
        dst[wi] = (uint32_t)cur;
        if (sh + n > 32) dst[wi + 1] = (uint32_t)(cur >> 32);
    }
}

// dst[0 +: w] = src[lo +: w]; the words of dst above w are cleared
static inline void extract(uint32_t* dst, int lo, int w, const uint32_t* src) {
    for (int i = 0; i < w; i += 32) {
        int n = w - i < 32 ? w - i : 32;
        int pos = lo + i, wi = pos >> 5, sh = pos & 31;
        uint64_t cur = src[wi];
        if (sh + n > 32) cur |= (uint64_t)src[wi + 1] << 32;
        uint64_t m = (n == 32) ? 0xffffffffull : ((1ull << n) - 1);
        dst[i >> 5] = (uint32_t)((cur >> sh) & m);
    }
}

// ---- Verilator signals (CData/SData/IData/QData/VlWide) as word arrays -------------------------
template <class T> struct Sig {  // scalar types: up to 64 bits
    static void load(const T& s, uint32_t* w) { uint64_t v = s; w[0] = (uint32_t)v; w[1] = (uint32_t)(v >> 32); }
    static void store(T& s, const uint32_t* w) { s = (T)((uint64_t)w[0] | ((uint64_t)w[1] << 32)); }
};
template <std::size_t N> struct Sig<VlWide<N>> {
    static void load(const VlWide<N>& s, uint32_t* w) { for (std::size_t i = 0; i < N; ++i) w[i] = s.m_storage[i]; }
    static void store(VlWide<N>& s, const uint32_t* w) { for (std::size_t i = 0; i < N; ++i) s.m_storage[i] = w[i]; }
};

template <class T> static inline void put_slice(T& s, int lo, int w, const uint32_t* v) {
    uint32_t buf[sizeof(T) / 4 + 2] = {0};
    Sig<T>::load(s, buf);
    insert(buf, lo, w, v);
    Sig<T>::store(s, buf);
}
template <class T> static inline void get_slice(const T& s, int lo, int w, uint32_t* v) {
    uint32_t buf[sizeof(T) / 4 + 2] = {0};
    Sig<T>::load(s, buf);
    extract(v, lo, w, buf);
}
template <class T> static inline void put_bit(T& s, int i, bool b) {
    uint32_t v = b;
    put_slice(s, i, 1, &v);
}
template <class T> static inline bool get_bit(const T& s, int i) {
    uint32_t v = 0;
    get_slice(s, i, 1, &v);
    return v & 1u;
}

// ---- random stalls -------------------------------------------------------------------------------
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) { if (!s) s = 1; next(); }
    uint64_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
    // true with probability p (p given as a threshold on 32 bits)
    bool hit(uint64_t thr) { return (next() >> 32) < thr; }
};

// ---- hex beat files ------------------------------------------------------------------------------
static inline int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Reads one hex number per line into `out` (nw words per beat). Returns the beat count or -1.
static inline long read_hex(const std::string& path, int nw, std::vector<uint32_t>& out) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return -1;
    std::string text;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
    long beats = 0;
    size_t i = 0;
    while (i < text.size()) {
        size_t e = text.find('\n', i);
        if (e == std::string::npos) e = text.size();
        if (e > i) {
            out.resize((beats + 1) * nw, 0);
            uint32_t* w = &out[beats * nw];
            int bit = 0;
            for (size_t k = e; k > i; --k) {
                int h = hexval(text[k - 1]);
                if (h < 0) continue;
                if (bit < nw * 32) w[bit >> 5] |= (uint32_t)h << (bit & 31);
                bit += 4;
            }
            ++beats;
        }
        i = e + 1;
    }
    return beats;
}

static inline void write_hex(FILE* f, const uint32_t* w, int nw) {
    int top = nw - 1;
    while (top > 0 && w[top] == 0) --top;
    std::fprintf(f, "%x", w[top]);
    for (int k = top - 1; k >= 0; --k) std::fprintf(f, "%08x", w[k]);
}

}  // namespace tb
