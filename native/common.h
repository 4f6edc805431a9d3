// Shared helpers for the native core. Each .cc registers its functions through an Init* hook.
#pragma once
#include <napi.h>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

namespace tuntap {

// Throws a JS Error carrying errno (number) and syscall; TypeScript turns it into a typed
// TuntapError with the errno name and a sentence for the user (src/errors.ts).
inline void ThrowErrno(Napi::Env env, const std::string& syscall, int err) {
  Napi::Error e = Napi::Error::New(env, syscall + " failed (errno " + std::to_string(err) + ")");
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

// Builds the same error object without throwing (for async callbacks).
inline Napi::Value ErrnoValue(Napi::Env env, const std::string& syscall, int err) {
  Napi::Error e = Napi::Error::New(env, syscall + " failed (errno " + std::to_string(err) + ")");
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e.Value();
}

// ---- arguments ----
// Every entry point treats what JS hands it as hostile. node-addon-api's As<T>() checks nothing
// in release builds, so a number where a Uint8Array belongs, or a Uint32Array shorter than a
// count, would reach memory. The checks below throw a TypeError or RangeError that names the
// function and the argument, and return false; the caller then returns at once.

// Raw bytes of a TypedArray, Buffer or DataView (the pointer already includes its offset).
struct ByteSpan {
  uint8_t* data = nullptr;
  size_t length = 0;
};

// The elements of a Uint32Array.
struct WordSpan {
  uint32_t* data = nullptr;
  size_t count = 0;
};

// [off, off + len) lies inside [0, limit), in arithmetic that cannot wrap.
inline bool Within(uint64_t off, uint64_t len, uint64_t limit) {
  return off <= limit && len <= limit - off;
}

// One N-API call per argument: the hot paths (a batch read or write) take several of these.
inline bool ToBytes(napi_env env, napi_value v, ByteSpan* out) {
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) == napi_ok) {
    size_t unit = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: unit = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: unit = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: unit = 8; break;
      default: break;
    }
    out->data = static_cast<uint8_t*>(data);
    out->length = length * unit;
    return true;
  }
  if (napi_get_dataview_info(env, v, &length, &data, nullptr, nullptr) == napi_ok) {
    out->data = static_cast<uint8_t*>(data);
    out->length = length;
    return true;
  }
  return false;
}

inline bool ToWords(napi_env env, napi_value v, WordSpan* out) {
  napi_typedarray_type type;
  size_t count;
  void* data;
  if (napi_get_typedarray_info(env, v, &type, &count, &data, nullptr, nullptr) != napi_ok || type != napi_uint32_array) return false;
  out->data = static_cast<uint32_t*>(data);
  out->count = count;
  return true;
}

inline bool IsNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_undefined || t == napi_null);
}

inline bool FailType(napi_env env, const char* fn, const std::string& what) {
  Napi::TypeError::New(env, std::string(fn) + ": " + what).ThrowAsJavaScriptException();
  return false;
}

inline bool FailRange(napi_env env, const char* fn, const std::string& what) {
  Napi::RangeError::New(env, std::string(fn) + ": " + what).ThrowAsJavaScriptException();
  return false;
}

// The arguments of one call, checked one by one: `Args a(info, "TunQueue.read")`, then
// `if (!a.U32(0, "max", &max)) return env.Undefined();`.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), env_(info.Env()), fn_(fn) {}

  napi_env env() const { return env_; }
  const char* fn() const { return fn_; }
  napi_value operator[](size_t i) const { return info_[i]; }
  bool Has(size_t i) const { return i < info_.Length() && !IsNullish(env_, info_[i]); }

  bool Type(const std::string& what) const { return FailType(env_, fn_, what); }
  bool Range(const std::string& what) const { return FailRange(env_, fn_, what); }

  // An integer number in [min, max]: NaN, Infinity, fractions and out-of-range values are refused.
  bool Int(size_t i, const char* name, int64_t min, int64_t max, int64_t* out) const {
    double d;
    if (napi_get_value_double(env_, info_[i], &d) != napi_ok) return Type(std::string(name) + " must be a number");
    if (!std::isfinite(d) || std::trunc(d) != d || d < static_cast<double>(min) || d > static_cast<double>(max)) {
      return Range(std::string(name) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
    *out = static_cast<int64_t>(d);
    return true;
  }

  bool U32(size_t i, const char* name, uint32_t* out, uint32_t max = UINT32_MAX) const {
    int64_t v;
    if (!Int(i, name, 0, max, &v)) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  }

  bool I32(size_t i, const char* name, int32_t* out, int32_t min = INT32_MIN, int32_t max = INT32_MAX) const {
    int64_t v;
    if (!Int(i, name, min, max, &v)) return false;
    *out = static_cast<int32_t>(v);
    return true;
  }

  // A file descriptor: an integer from 0 to INT_MAX (what the kernel does with it is its answer).
  bool Fd(size_t i, int* out) const { return I32(i, "fd", out, 0, INT32_MAX); }

  bool Bool(size_t i, const char* name, bool* out) const {
    if (napi_get_value_bool(env_, info_[i], out) != napi_ok) return Type(std::string(name) + " must be a boolean");
    return true;
  }

  // A string of at most maxBytes UTF-8 bytes without NUL (it becomes a C string).
  bool String(size_t i, const char* name, size_t maxBytes, std::string* out) const {
    size_t len;
    if (napi_get_value_string_utf8(env_, info_[i], nullptr, 0, &len) != napi_ok) return Type(std::string(name) + " must be a string");
    if (len > maxBytes) return Range(std::string(name) + " is longer than " + std::to_string(maxBytes) + " bytes");
    out->resize(len + 1);
    napi_get_value_string_utf8(env_, info_[i], &(*out)[0], len + 1, &len);
    out->resize(len);
    if (out->find('\0') != std::string::npos) return Range(std::string(name) + " contains a NUL character");
    return true;
  }

  // One of a few short names (a test's or a tool's switch); the error lists them.
  bool OneOf(size_t i, const char* name, std::initializer_list<const char*> names, std::string* out) const {
    if (!String(i, name, 16, out)) return false;
    std::string listed;
    size_t k = 0;
    for (const char* n : names) {
      if (*out == n) return true;
      if (k > 0) listed += k + 1 == names.size() ? " or " : ", ";
      listed += "'" + std::string(n) + "'";
      k++;
    }
    return Type(std::string(name) + " must be " + listed);
  }

  bool Bytes(size_t i, const char* name, ByteSpan* out) const {
    if (!ToBytes(env_, info_[i], out)) return Type(std::string(name) + " must be a Uint8Array or Buffer");
    return true;
  }

  // Absent (undefined/null) gives an empty span.
  bool OptionalBytes(size_t i, const char* name, ByteSpan* out) const {
    if (!Has(i)) { *out = ByteSpan(); return true; }
    return Bytes(i, name, out);
  }

  bool Words(size_t i, const char* name, WordSpan* out) const {
    if (!ToWords(env_, info_[i], out)) return Type(std::string(name) + " must be a Uint32Array");
    return true;
  }

  bool OptionalWords(size_t i, const char* name, WordSpan* out) const {
    if (!Has(i)) { *out = WordSpan(); return true; }
    return Words(i, name, out);
  }

  bool Function(size_t i, const char* name, Napi::Function* out) const {
    napi_valuetype t;
    if (napi_typeof(env_, info_[i], &t) != napi_ok || t != napi_function) return Type(std::string(name) + " must be a function");
    *out = Napi::Function(env_, info_[i]);
    return true;
  }

  bool Object(size_t i, const char* name, Napi::Object* out) const {
    napi_valuetype t;
    if (napi_typeof(env_, info_[i], &t) != napi_ok || t != napi_object) return Type(std::string(name) + " must be an object");
    *out = Napi::Object(env_, info_[i]);
    return true;
  }

 private:
  const Napi::CallbackInfo& info_;
  napi_env env_;
  const char* fn_;
};

// A typed array that native code keeps between calls (a receive area the kernel fills on a later
// wake-up). JS can detach its ArrayBuffer (transfer it) or shrink it (a resizable buffer) at any
// time, so the pointer is looked up again before each use, and a use finds nothing when fewer
// than the bytes it was held for remain.
class HeldView {
 public:
  // Holds `v` when it is a typed array of `type` with at least `need` bytes (else false).
  bool Hold(napi_env env, napi_value v, napi_typedarray_type type, size_t need) {
    napi_typedarray_type actual;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(env, v, &actual, &length, &data, nullptr, nullptr) != napi_ok || actual != type) return false;
    size_t unit = type == napi_uint32_array ? 4 : 1;
    if (length > SIZE_MAX / unit || length * unit < need) return false;
    ref_ = Napi::Persistent(Napi::Object(env, v));
    unit_ = unit;
    need_ = need;
    return true;
  }

  // The data pointer now, or nullptr when nothing is held or the array lost its bytes.
  void* Get(napi_env env) const {
    if (ref_.IsEmpty()) return nullptr;
    napi_value v = ref_.Value();
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok) return nullptr;
    if (data == nullptr || length > SIZE_MAX / unit_ || length * unit_ < need_) return nullptr;
    return data;
  }

  void Reset() { ref_.Reset(); need_ = 0; }

 private:
  Napi::ObjectReference ref_;
  size_t unit_ = 1;
  size_t need_ = 0;
};

// ---- wrapped classes ----
// node-addon-api hands a method whatever object JS called it on, cast to the class
// (`TunQueue.prototype.read.call(aUdpSocket)` would run on the wrong C++ type). Each class tags
// its objects when constructed and declares `static T* Unwrap(Napi::Object o) { return
// UnwrapTagged<T>(o, kTag, "T"); }`, which node-addon-api's method wrappers call (as T::Unwrap)
// before anything of the object is touched: a foreign `this` is a TypeError.
template <typename T>
T* UnwrapTagged(Napi::Object object, const napi_type_tag& tag, const char* cls) {
  bool ours = false;
  napi_env env = object.Env();
  if (napi_check_object_type_tag(env, object, &tag, &ours) != napi_ok || !ours) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) FailType(env, cls, "method called on an object that is not one");
    return nullptr;
  }
  return Napi::ObjectWrap<T>::Unwrap(object);
}

void InitNetns(Napi::Env env, Napi::Object exports);
void InitTun(Napi::Env env, Napi::Object exports);
void InitQueue(Napi::Env env, Napi::Object exports);
void InitNetlink(Napi::Env env, Napi::Object exports);
void InitUdp(Napi::Env env, Napi::Object exports);
void InitAead(Napi::Env env, Napi::Object exports);

}  // namespace tuntap
