// A fixed-size array for large lookup tables, backed by huge pages where the OS offers them.
//
// Random reads over tens of MB miss the TLB on nearly every access with 4 KiB pages; with
// 2 MiB pages the page walks mostly go away. Linux hands out transparent huge pages for
// 2 MiB-aligned memory marked with madvise(MADV_HUGEPAGE); elsewhere this is a plain array.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace critic {

template <class T>
class LargeArray {
  static_assert(std::is_trivially_copyable<T>::value && std::is_trivially_destructible<T>::value,
                "LargeArray holds plain values");

 public:
  LargeArray() = default;
  LargeArray(size_t size, const T& value) : size_(size) {
    if (size == 0) return;
    constexpr size_t kHugePage = size_t{2} << 20;
    const size_t bytes = size * sizeof(T);
    if (bytes / sizeof(T) != size) throw std::bad_alloc();
    const size_t align = bytes >= kHugePage ? kHugePage : alignof(std::max_align_t);
    const size_t rounded = (bytes + align - 1) / align * align;
    void* memory = std::aligned_alloc(align < alignof(T) ? alignof(T) : align, rounded);
    if (memory == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHugePage) madvise(memory, rounded, MADV_HUGEPAGE);  // a hint; may be refused
#endif
    data_.reset(static_cast<T*>(memory));
    for (size_t i = 0; i < size; ++i) data_[i] = value;
  }

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T[], Free> data_;
  size_t size_ = 0;
};

}  // namespace critic
