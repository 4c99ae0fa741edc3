//! The `extern "C"` functions and the handle types behind them: the crate's only `unsafe`.
//!
//! Thread-safety, for every function: handles have no internal locking. A model handle is
//! read-only after `tinymla_model_init`, so several threads may use one model at once, each
//! with its own cache, scratch, sampler and decoder. Any other handle must be used by one
//! thread at a time.
//!
//! Ownership, for every `*_init`: the handle lives at the start of `mem`, which the caller
//! owns and must keep alive, unmoved and otherwise unused for as long as the handle is used
//! (a copied or moved handle is detected and refused with `TINYMLA_STATUS_BAD_HANDLE`).
//! Nothing needs freeing: `tinymla_release` ends a handle explicitly (later calls with it are
//! refused), and reusing `mem` for something else ends it too.
#![allow(unsafe_code, reason = "the C ABI takes raw pointers; every use is checked here")]

use core::ffi::c_char;
use core::fmt;
use core::mem::{align_of, size_of};
use core::ptr;

use tinymla_core::vocab::{Utf8Stream, Vocab};
use tinymla_core::{
    CacheOptions, Gguf, LatentCache, ModelOptions, ModelWith, OverflowPolicy, Sampler,
    SamplerConfig, Scratch,
};

use crate::status::{message, TinymlaActivations, TinymlaCacheStorage, TinymlaStatus};
use crate::TINYMLA_ALIGN;

/// Layer slots in a model handle: DeepSeek-V3's 61 fit on a host; bare-metal targets keep the
/// handle (and the stack while loading) small.
#[cfg(not(target_os = "none"))]
const MAX_LAYERS: usize = 64;
#[cfg(target_os = "none")]
const MAX_LAYERS: usize = 8;

type Model = ModelWith<'static, MAX_LAYERS>;

/// A loaded model, as C sees it: opaque, only ever behind a pointer from `tinymla_model_init`.
pub struct ModelHandle {
    _opaque: [u8; 0],
}
/// A latent cache, as C sees it (opaque; from `tinymla_cache_init`).
pub struct CacheHandle {
    _opaque: [u8; 0],
}
/// Activation scratch and logits, as C sees it (opaque; from `tinymla_scratch_init`).
pub struct ScratchHandle {
    _opaque: [u8; 0],
}
/// A sampler, as C sees it (opaque; from `tinymla_sampler_init`).
pub struct SamplerHandle {
    _opaque: [u8; 0],
}
/// A streaming token decoder, as C sees it (opaque; from `tinymla_decoder_init`).
pub struct DecoderHandle {
    _opaque: [u8; 0],
}

/// The first fields of every handle: a per-type tag and the handle's own address.
#[repr(C)]
struct Header {
    magic: u64,
    this: usize,
}

impl Header {
    fn new(magic: u64, this: *const u8) -> Self {
        Header { magic, this: this as usize }
    }
}

/// A handle type: `#[repr(C)]` with a [`Header`] first.
trait Handle {
    const MAGIC: u64;
    /// The opaque type C sees.
    type Public;
}

/// A loaded model (opaque to C): weights borrowed from the caller's GGUF bytes.
#[repr(C)]
struct ModelObj {
    header: Header,
    model: Model,
    vocab: Option<Vocab<'static>>,
}

/// A latent cache (opaque to C); its rows follow the handle in the same memory.
#[repr(C)]
struct CacheObj {
    header: Header,
    model: *const ModelObj,
    cache: LatentCache<'static>,
}

/// Activation scratch (opaque to C), which also holds the latest logits.
#[repr(C)]
struct ScratchObj {
    header: Header,
    model: *const ModelObj,
    scratch: Scratch<'static>,
}

/// A sampler with its generator state and index buffer (opaque to C).
#[repr(C)]
struct SamplerObj {
    header: Header,
    model: *const ModelObj,
    sampler: Sampler,
    work: &'static mut [u32],
}

/// A streaming token-to-UTF-8 decoder (opaque to C).
#[repr(C)]
struct DecoderObj {
    header: Header,
    stream: Utf8Stream,
}

impl Handle for ModelObj {
    type Public = ModelHandle;
    const MAGIC: u64 = u64::from_le_bytes(*b"tmlaMODL");
}
impl Handle for CacheObj {
    type Public = CacheHandle;
    const MAGIC: u64 = u64::from_le_bytes(*b"tmlaCACH");
}
impl Handle for ScratchObj {
    type Public = ScratchHandle;
    const MAGIC: u64 = u64::from_le_bytes(*b"tmlaSCRT");
}
impl Handle for SamplerObj {
    type Public = SamplerHandle;
    const MAGIC: u64 = u64::from_le_bytes(*b"tmlaSAMP");
}
impl Handle for DecoderObj {
    type Public = DecoderHandle;
    const MAGIC: u64 = u64::from_le_bytes(*b"tmlaDECO");
}

const _: () = assert!(align_of::<ModelObj>() <= TINYMLA_ALIGN);
const _: () = assert!(align_of::<CacheObj>() <= TINYMLA_ALIGN);
const _: () = assert!(align_of::<ScratchObj>() <= TINYMLA_ALIGN);
const _: () = assert!(align_of::<SamplerObj>() <= TINYMLA_ALIGN);
const _: () = assert!(align_of::<DecoderObj>() <= TINYMLA_ALIGN);

// The documented thread-safety of a shared model rests on this.
const _: fn() = || {
    fn is_sync<T: Sync>() {}
    is_sync::<Model>();
    is_sync::<Vocab<'static>>();
};

/// Turns a status into a `Result` for `?`.
type Res<T> = Result<T, TinymlaStatus>;

fn done(r: Res<()>) -> TinymlaStatus {
    match r {
        Ok(()) => TinymlaStatus::Ok,
        Err(s) => s,
    }
}

/// `size_of::<H>()` rounded up to [`TINYMLA_ALIGN`], so what follows a handle is aligned.
const fn handle_bytes<H>() -> usize {
    size_of::<H>().div_ceil(TINYMLA_ALIGN) * TINYMLA_ALIGN
}

/// Checks `p` is a live handle of type `H`.
///
/// # Safety
/// `p` is NULL or points to at least 16 readable bytes (the header), and if the header
/// matches, to a live `H` made by its init function that nothing else borrows mutably.
unsafe fn check<H: Handle>(p: *const H::Public) -> Res<()> {
    if p.is_null() {
        return Err(TinymlaStatus::NullPointer);
    }
    if !(p as usize).is_multiple_of(TINYMLA_ALIGN) {
        return Err(TinymlaStatus::Misaligned);
    }
    // SAFETY: non-null and aligned (checked above); readable per this function's contract.
    // Read as plain integers, which every bit pattern is.
    let header = unsafe { ptr::read(p.cast::<Header>()) };
    if header.magic != H::MAGIC || header.this != p as usize {
        return Err(TinymlaStatus::BadHandle);
    }
    Ok(())
}

/// A shared reference to the handle at `p`.
///
/// # Safety
/// As [`check`].
unsafe fn get<'h, H: Handle>(p: *const H::Public) -> Res<&'h H> {
    // SAFETY: forwarded contract.
    unsafe { check::<H>(p)? };
    // SAFETY: `check` proved a live, aligned `H` made by its init function.
    Ok(unsafe { &*p.cast::<H>() })
}

/// An exclusive reference to the handle at `p`.
///
/// # Safety
/// As [`check`], and no other reference to `*p` exists during `'h`.
unsafe fn get_mut<'h, H: Handle>(p: *mut H::Public) -> Res<&'h mut H> {
    // SAFETY: forwarded contract.
    unsafe { check::<H>(p)? };
    // SAFETY: `check` proved a live, aligned `H`; exclusivity is the caller's contract.
    Ok(unsafe { &mut *p.cast::<H>() })
}

/// Writes `v` through `out`, or fails for NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, v: T) -> Res<()> {
    if out.is_null() {
        return Err(TinymlaStatus::NullPointer);
    }
    // SAFETY: non-null; valid for writes per this function's contract.
    unsafe { out.write(v) };
    Ok(())
}

/// Checks caller handle memory (`mem`, `mem_len`) for a handle of `needed` bytes.
fn check_mem(mem: *mut u8, mem_len: usize, needed: usize) -> Res<()> {
    if mem.is_null() {
        return Err(TinymlaStatus::NullPointer);
    }
    if !(mem as usize).is_multiple_of(TINYMLA_ALIGN) {
        return Err(TinymlaStatus::Misaligned);
    }
    if mem_len < needed {
        return Err(TinymlaStatus::BufferTooSmall);
    }
    Ok(())
}

/// The `mem_len - offset` bytes after a handle as a `'static` slice of `T`.
///
/// # Safety
/// `mem` is valid for reads and writes of `mem_len >= offset` bytes, aligned for `T` at
/// `offset`, unused by anything else for as long as the returned slice lives.
unsafe fn tail<T>(mem: *mut u8, mem_len: usize, offset: usize, n: usize) -> &'static mut [T] {
    debug_assert!(offset + n * size_of::<T>() <= mem_len);
    // SAFETY: in bounds per the contract; `T` is a plain number type for which zeroed bytes
    // are valid, and the region is exclusively the handle's.
    unsafe {
        let start = mem.add(offset);
        ptr::write_bytes(start, 0, n * size_of::<T>());
        core::slice::from_raw_parts_mut(start.cast::<T>(), n)
    }
}

/// Clears the out-handle pointer first, so a failed init never leaves a stale handle there.
///
/// # Safety
/// `out` is NULL or valid for a pointer write.
unsafe fn clear_out<T>(out: *mut *mut T) -> Res<()> {
    // SAFETY: forwarded contract.
    unsafe { put(out, ptr::null_mut()) }
}

// ---------------------------------------------------------------------------------------------
// Status text

/// The text of status `code` as a static NUL-terminated string; never NULL (unknown codes get a
/// generic text). Thread-safe; the string must not be freed or written.
#[no_mangle]
pub extern "C" fn tinymla_strerror(code: i32) -> *const c_char {
    message(code).as_ptr().cast()
}

// ---------------------------------------------------------------------------------------------
// Model

/// Bytes of handle memory `tinymla_model_init` needs (a few KiB; depends on the target).
#[no_mangle]
pub extern "C" fn tinymla_model_size() -> usize {
    handle_bytes::<ModelObj>()
}

/// Loads a DeepSeek-V2/V3 model from the GGUF bytes `gguf[0..gguf_len]` into the handle memory
/// `mem[0..mem_len]` (at least `tinymla_model_size()` bytes, `TINYMLA_ALIGN`-aligned) and
/// stores the handle in `*out_model` (set to NULL first, and left NULL on error).
///
/// Ownership: the model borrows the GGUF bytes without copying: keep them alive and unmodified
/// for as long as the model, or any cache, scratch or sampler made for it, is used. The
/// tokenizer vocabulary is read too if the file has one (`tinymla_decode` needs it).
///
/// Quantised products take their input vectors as int8 blocks (`TINYMLA_ACTIVATIONS_INT8`);
/// `tinymla_model_init_with` chooses.
///
/// Errors: `NULL_POINTER` (`mem`, `gguf` or `out_model`), `MISALIGNED`, `BUFFER_TOO_SMALL`,
/// `BAD_GGUF`, `UNSUPPORTED_MODEL` (including more layers than the handle holds: 64 on
/// hosted targets, 8 on bare metal), `BAD_TENSOR`, `SIZE_OVERFLOW`.
///
/// # Safety
/// `mem` is NULL or valid for writes of `mem_len` bytes; `gguf` is NULL or valid for reads of
/// `gguf_len` bytes that stay unmodified while the model is used; `out_model` is NULL or
/// valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_model_init(
    mem: *mut u8,
    mem_len: usize,
    gguf: *const u8,
    gguf_len: usize,
    out_model: *mut *mut ModelHandle,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, passed on.
    unsafe { tinymla_model_init_with(mem, mem_len, gguf, gguf_len, 0, out_model) }
}

/// `tinymla_model_init` with the precision of the input vectors of quantised matrix products:
/// `activations` is a `tinymla_activations` value (`TINYMLA_ACTIVATIONS_INT16` for logits
/// within about 1e-4 of f32 arithmetic, at twice the integer work).
///
/// Errors: as `tinymla_model_init`, and `INVALID_ARGUMENT` for an unknown `activations`.
///
/// # Safety
/// As `tinymla_model_init`.
#[no_mangle]
pub unsafe extern "C" fn tinymla_model_init_with(
    mem: *mut u8,
    mem_len: usize,
    gguf: *const u8,
    gguf_len: usize,
    activations: i32,
    out_model: *mut *mut ModelHandle,
) -> TinymlaStatus {
    // SAFETY: the caller's contract for `out_model`.
    done(unsafe { clear_out(out_model) }.and_then(|()| {
        check_mem(mem, mem_len, tinymla_model_size())?;
        if gguf.is_null() {
            return Err(TinymlaStatus::NullPointer);
        }
        // SAFETY: non-null, and readable and unmodified for the model's life per the contract.
        let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(gguf, gguf_len) };
        let file = Gguf::parse(bytes).map_err(tinymla_core::Error::from)?;
        let activations =
            TinymlaActivations::from_c(activations).ok_or(TinymlaStatus::InvalidArgument)?;
        let model = Model::from_gguf(&file, ModelOptions { activations, ..Default::default() })?;
        let vocab = Vocab::new(&file).ok();
        let handle = mem.cast::<ModelObj>();
        // SAFETY: `mem` is aligned and holds a `ModelHandle` (checked); the memory is the
        // caller's to give, so overwriting whatever was there is allowed.
        unsafe {
            handle.write(ModelObj { header: Header::new(ModelObj::MAGIC, mem), model, vocab });
            put(out_model, handle.cast())
        }
    }))
}

/// Stores the model's vocabulary size (number of logits) in `*out`. Thread-safe.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`.
///
/// # Safety
/// `model` is NULL or points to at least 16 readable bytes (a handle from `tinymla_model_init`
/// or anything else); `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_model_vocab_size(
    model: *const ModelHandle,
    out: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get` and `put` require.
    done(unsafe { get::<ModelObj>(model).and_then(|m| put(out, m.model.config().vocab_size)) })
}

/// Stores the model's trained context length (positions) in `*out`. Thread-safe.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`.
///
/// # Safety
/// As `tinymla_model_vocab_size`.
#[no_mangle]
pub unsafe extern "C" fn tinymla_model_context_length(
    model: *const ModelHandle,
    out: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get` and `put` require.
    done(unsafe { get::<ModelObj>(model).and_then(|m| put(out, m.model.config().context_length)) })
}

// ---------------------------------------------------------------------------------------------
// Cache

/// Stores in `*out` the bytes of memory `tinymla_cache_init` needs for `capacity` positions of
/// `model` with rows stored as `storage` (a `tinymla_cache_storage` value): the handle plus the
/// rows. Thread-safe.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`, `INVALID_ARGUMENT` (unknown storage),
/// `SIZE_OVERFLOW`.
///
/// # Safety
/// As `tinymla_model_vocab_size`.
#[no_mangle]
pub unsafe extern "C" fn tinymla_cache_bytes_needed(
    model: *const ModelHandle,
    capacity: usize,
    storage: i32,
    out: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get` and `put` require.
    done(unsafe { get::<ModelObj>(model) }.and_then(|m| {
        let n = cache_bytes(m, capacity, storage)?;
        // SAFETY: the caller's contract for `out`.
        unsafe { put(out, n) }
    }))
}

fn cache_bytes(m: &ModelObj, capacity: usize, storage: i32) -> Res<usize> {
    let storage = TinymlaCacheStorage::from_c(storage).ok_or(TinymlaStatus::InvalidArgument)?;
    LatentCache::bytes_needed(m.model.config(), capacity, storage)?
        .checked_add(handle_bytes::<CacheObj>())
        .ok_or(TinymlaStatus::SizeOverflow)
}

/// Makes an empty cache of `capacity` positions for `model` in `mem[0..mem_len]` (at least
/// `tinymla_cache_bytes_needed` bytes, `TINYMLA_ALIGN`-aligned) and stores the handle in
/// `*out_cache` (set to NULL first). A full cache refuses the next token with `CACHE_FULL`.
/// Calling it again on the same memory starts a fresh, empty cache.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BUFFER_TOO_SMALL`, `BAD_HANDLE` (model),
/// `INVALID_ARGUMENT` (capacity 0 or above `UINT32_MAX`, unknown storage), `SIZE_OVERFLOW`.
///
/// # Safety
/// `model` as in `tinymla_model_vocab_size`; `mem` is NULL or valid for writes of `mem_len`
/// bytes; `out_cache` is NULL or valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_cache_init(
    model: *const ModelHandle,
    capacity: usize,
    storage: i32,
    mem: *mut u8,
    mem_len: usize,
    out_cache: *mut *mut CacheHandle,
) -> TinymlaStatus {
    // SAFETY: the caller's contract for `out_cache` and `model`.
    done(unsafe { clear_out(out_cache) }.and_then(|()| unsafe { get::<ModelObj>(model) }).and_then(
        |m| {
            let needed = cache_bytes(m, capacity, storage)?;
            check_mem(mem, mem_len, needed)?;
            let offset = handle_bytes::<CacheObj>();
            // SAFETY: `mem` holds `needed` bytes (checked), the handle then the rows; the caller
            // gives the whole block to the cache.
            let rows: &'static mut [u8] = unsafe { tail(mem, mem_len, offset, needed - offset) };
            let options = CacheOptions {
                storage: TinymlaCacheStorage::from_c(storage)
                    .ok_or(TinymlaStatus::InvalidArgument)?,
                policy: OverflowPolicy::Error,
                allow_beyond_context: false,
            };
            let cache = LatentCache::new(m.model.config(), capacity, options, rows)?;
            let handle = mem.cast::<CacheObj>();
            // SAFETY: aligned, large enough (checked) and the caller's to give.
            unsafe {
                handle.write(CacheObj {
                    header: Header::new(CacheObj::MAGIC, mem),
                    model: ptr::from_ref(m),
                    cache,
                });
                put(out_cache, handle.cast())
            }
        },
    ))
}

/// Stores the number of positions the cache holds in `*out`.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`.
///
/// # Safety
/// `cache` is NULL or points to at least 16 readable bytes; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_cache_len(
    cache: *const CacheHandle,
    out: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get` and `put` require.
    done(unsafe { get::<CacheObj>(cache).and_then(|c| put(out, c.cache.len())) })
}

/// Empties the cache (the next token is position 0 again).
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`.
///
/// # Safety
/// `cache` is NULL or points to at least 16 readable bytes, and no other thread uses it.
#[no_mangle]
pub unsafe extern "C" fn tinymla_cache_clear(cache: *mut CacheHandle) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get_mut` requires.
    done(unsafe { get_mut::<CacheObj>(cache) }.map(|c| c.cache.clear()))
}

// ---------------------------------------------------------------------------------------------
// Scratch

/// Stores in `*out` the bytes of memory `tinymla_scratch_init` needs for `model` (the handle
/// plus the activations and logits) with a cache of `capacity` positions. Attention keeps
/// running per-head statistics per partition of the cache, so the size grows with `capacity`
/// only by the partitions' work areas (from 1,024 positions on, at most 8: bounded); a
/// scratch made for one capacity serves a cache of any other, with the same results.
/// Thread-safe.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`, `SIZE_OVERFLOW`.
///
/// # Safety
/// As `tinymla_model_vocab_size`.
#[no_mangle]
pub unsafe extern "C" fn tinymla_scratch_bytes_needed(
    model: *const ModelHandle,
    capacity: usize,
    out: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get` and `put` require.
    done(unsafe { get::<ModelObj>(model) }.and_then(|m| {
        let n = scratch_bytes(m, capacity)?.1;
        // SAFETY: the caller's contract for `out`.
        unsafe { put(out, n) }
    }))
}

/// (`f32` elements, total bytes with the handle).
fn scratch_bytes(m: &ModelObj, capacity: usize) -> Res<(usize, usize)> {
    let elems = m.model.config().scratch_elems(capacity)?;
    let bytes = elems
        .checked_mul(size_of::<f32>())
        .and_then(|b| b.checked_add(handle_bytes::<ScratchObj>()))
        .ok_or(TinymlaStatus::SizeOverflow)?;
    Ok((elems, bytes))
}

/// Makes activation scratch for `model` (and caches of any capacity; see
/// `tinymla_scratch_bytes_needed`) in
/// `mem[0..mem_len]` (at least `tinymla_scratch_bytes_needed` bytes, `TINYMLA_ALIGN`-aligned)
/// and stores the handle in `*out_scratch` (set to NULL first). The scratch also holds the
/// logits of the latest `tinymla_forward`.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BUFFER_TOO_SMALL`, `BAD_HANDLE` (model),
/// `SIZE_OVERFLOW`.
///
/// # Safety
/// As `tinymla_cache_init`.
#[no_mangle]
pub unsafe extern "C" fn tinymla_scratch_init(
    model: *const ModelHandle,
    capacity: usize,
    mem: *mut u8,
    mem_len: usize,
    out_scratch: *mut *mut ScratchHandle,
) -> TinymlaStatus {
    // SAFETY: the caller's contract for `out_scratch` and `model`.
    done(
        unsafe { clear_out(out_scratch) }
            .and_then(|()| unsafe { get::<ModelObj>(model) })
            .and_then(|m| {
                let (elems, needed) = scratch_bytes(m, capacity)?;
                check_mem(mem, mem_len, needed)?;
                // SAFETY: `mem` holds the handle then `elems` f32s (checked); the handle's size is a
                // multiple of TINYMLA_ALIGN, so the f32s are aligned.
                let buf: &'static mut [f32] =
                    unsafe { tail(mem, mem_len, handle_bytes::<ScratchObj>(), elems) };
                let scratch = Scratch::new(m.model.config(), capacity, buf)?;
                let handle = mem.cast::<ScratchObj>();
                // SAFETY: aligned, large enough (checked) and the caller's to give.
                unsafe {
                    handle.write(ScratchObj {
                        header: Header::new(ScratchObj::MAGIC, mem),
                        model: ptr::from_ref(m),
                        scratch,
                    });
                    put(out_scratch, handle.cast())
                }
            }),
    )
}

// ---------------------------------------------------------------------------------------------
// Forward

/// Runs `token` at the cache's next position, appends its latent rows to `cache`, and leaves
/// the next-token logits (`vocab_size` floats) in `scratch`. If `out_logits` is not NULL it
/// receives a pointer to them (valid until the next call that uses `scratch`); if `out_len` is
/// not NULL it receives their count. On error the cache is unchanged.
///
/// Thread-safety: `cache` and `scratch` must not be used by another thread meanwhile; `model`
/// may be.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE` (any handle, or a cache or scratch made
/// for another model), `TOKEN_OUT_OF_RANGE`, `CACHE_FULL`, `POSITION_BEYOND_CONTEXT`,
/// `BUFFER_TOO_SMALL` (scratch made for a smaller capacity than the cache).
///
/// # Safety
/// Each handle is NULL or points to at least 16 readable bytes; `cache` and `scratch` are not
/// used elsewhere during the call; `out_logits` and `out_len` are NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_forward(
    model: *const ModelHandle,
    cache: *mut CacheHandle,
    scratch: *mut ScratchHandle,
    token: u32,
    out_logits: *mut *const f32,
    out_len: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get` and `get_mut` require; the three handles have
    // distinct magic tags, so they are distinct objects.
    let r = unsafe {
        (get::<ModelObj>(model), get_mut::<CacheObj>(cache), get_mut::<ScratchObj>(scratch))
    };
    done((|| {
        let (m, c, s) = (r.0?, r.1?, r.2?);
        if !ptr::eq(c.model, m) || !ptr::eq(s.model, m) {
            return Err(TinymlaStatus::BadHandle);
        }
        let logits = m.model.forward(token, &mut c.cache, &mut s.scratch)?;
        if !out_logits.is_null() {
            // SAFETY: non-null, valid for a write per the contract.
            unsafe { out_logits.write(logits.as_ptr()) };
        }
        if !out_len.is_null() {
            // SAFETY: non-null, valid for a write per the contract.
            unsafe { out_len.write(logits.len()) };
        }
        Ok(())
    })())
}

// ---------------------------------------------------------------------------------------------
// Sampler

/// Stores in `*out` the bytes of memory `tinymla_sampler_init` needs for `model` (the handle
/// plus one `uint32_t` per vocabulary entry). Thread-safe.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`, `SIZE_OVERFLOW`.
///
/// # Safety
/// As `tinymla_model_vocab_size`.
#[no_mangle]
pub unsafe extern "C" fn tinymla_sampler_bytes_needed(
    model: *const ModelHandle,
    out: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get` and `put` require.
    done(unsafe { get::<ModelObj>(model) }.and_then(|m| {
        let n = sampler_bytes(m)?;
        // SAFETY: the caller's contract for `out`.
        unsafe { put(out, n) }
    }))
}

fn sampler_bytes(m: &ModelObj) -> Res<usize> {
    m.model
        .config()
        .vocab_size
        .checked_mul(size_of::<u32>())
        .and_then(|b| b.checked_add(handle_bytes::<SamplerObj>()))
        .ok_or(TinymlaStatus::SizeOverflow)
}

/// Makes a sampler for `model` in `mem[0..mem_len]` (at least `tinymla_sampler_bytes_needed`
/// bytes, `TINYMLA_ALIGN`-aligned) and stores the handle in `*out_sampler` (set to NULL
/// first). `temperature <= 0` is greedy (argmax); otherwise softmax at `temperature`, keeping
/// the `top_k` most likely tokens (0: all) and then the smallest set reaching probability
/// `top_p` (>= 1: all), drawn with a xorshift generator seeded by `seed` (reproducible on
/// every target).
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BUFFER_TOO_SMALL`, `BAD_HANDLE` (model),
/// `INVALID_ARGUMENT` (NaN temperature or top_p), `SIZE_OVERFLOW`.
///
/// # Safety
/// As `tinymla_cache_init`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn tinymla_sampler_init(
    model: *const ModelHandle,
    temperature: f32,
    top_k: u32,
    top_p: f32,
    seed: u64,
    mem: *mut u8,
    mem_len: usize,
    out_sampler: *mut *mut SamplerHandle,
) -> TinymlaStatus {
    // SAFETY: the caller's contract for `out_sampler` and `model`.
    done(
        unsafe { clear_out(out_sampler) }
            .and_then(|()| unsafe { get::<ModelObj>(model) })
            .and_then(|m| {
                if temperature.is_nan() || top_p.is_nan() {
                    return Err(TinymlaStatus::InvalidArgument);
                }
                let needed = sampler_bytes(m)?;
                check_mem(mem, mem_len, needed)?;
                let top_k = usize::try_from(top_k).map_err(|_| TinymlaStatus::InvalidArgument)?;
                // SAFETY: `mem` holds the handle then `vocab_size` u32s (checked), aligned as in
                // `tinymla_scratch_init`.
                let work: &'static mut [u32] = unsafe {
                    tail(mem, mem_len, handle_bytes::<SamplerObj>(), m.model.config().vocab_size)
                };
                let config =
                    SamplerConfig { temperature, top_k, top_p, seed, ..SamplerConfig::default() };
                let sampler = Sampler::new(config);
                let handle = mem.cast::<SamplerObj>();
                // SAFETY: aligned, large enough (checked) and the caller's to give.
                unsafe {
                    handle.write(SamplerObj {
                        header: Header::new(SamplerObj::MAGIC, mem),
                        model: ptr::from_ref(m),
                        sampler,
                        work,
                    });
                    put(out_sampler, handle.cast())
                }
            }),
    )
}

/// Picks the next token from the logits in `scratch` (those of the latest `tinymla_forward`)
/// and stores it in `*out_token`. The logits are overwritten (softmax in place) unless the
/// sampler is greedy.
///
/// Thread-safety: `sampler` and `scratch` must not be used by another thread meanwhile.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE` (either handle, or made for different
/// models), `INTERNAL`.
///
/// # Safety
/// Each handle is NULL or points to at least 16 readable bytes and is not used elsewhere
/// during the call; `out_token` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_sample(
    sampler: *mut SamplerHandle,
    scratch: *mut ScratchHandle,
    out_token: *mut u32,
) -> TinymlaStatus {
    // SAFETY: the caller's contract; distinct magic tags make them distinct objects.
    let r = unsafe { (get_mut::<SamplerObj>(sampler), get_mut::<ScratchObj>(scratch)) };
    done((|| {
        let (sa, sc) = (r.0?, r.1?);
        if out_token.is_null() {
            return Err(TinymlaStatus::NullPointer);
        }
        if !ptr::eq(sa.model, sc.model) {
            return Err(TinymlaStatus::BadHandle);
        }
        let t = sa.sampler.sample(sc.scratch.logits_mut(), sa.work)?;
        // SAFETY: non-null, valid for a write per the contract.
        unsafe { put(out_token, t) }
    })())
}

// ---------------------------------------------------------------------------------------------
// Token decoding

/// Bytes of handle memory `tinymla_decoder_init` needs.
#[no_mangle]
pub extern "C" fn tinymla_decoder_size() -> usize {
    handle_bytes::<DecoderObj>()
}

/// Makes a streaming decoder (no pending bytes) in `mem[0..mem_len]` (at least
/// `tinymla_decoder_size()` bytes, `TINYMLA_ALIGN`-aligned) and stores the handle in
/// `*out_decoder` (set to NULL first). It turns the bytes of successive tokens into whole,
/// valid UTF-8: a character split across tokens is held back until complete.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BUFFER_TOO_SMALL`.
///
/// # Safety
/// `mem` is NULL or valid for writes of `mem_len` bytes; `out_decoder` is NULL or valid for a
/// pointer write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_decoder_init(
    mem: *mut u8,
    mem_len: usize,
    out_decoder: *mut *mut DecoderHandle,
) -> TinymlaStatus {
    // SAFETY: the caller's contract for `out_decoder`.
    done(unsafe { clear_out(out_decoder) }.and_then(|()| {
        check_mem(mem, mem_len, tinymla_decoder_size())?;
        let handle = mem.cast::<DecoderObj>();
        // SAFETY: aligned, large enough (checked) and the caller's to give.
        unsafe {
            handle.write(DecoderObj {
                header: Header::new(DecoderObj::MAGIC, mem),
                stream: Utf8Stream::new(),
            });
            put(out_decoder, handle.cast())
        }
    }))
}

/// Stores in `*out` the text buffer size `tinymla_decode` needs for any token of `model`: room
/// for the token's raw bytes, the text they complete (invalid bytes become 3-byte U+FFFD) and a
/// NUL. Thread-safe.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`, `NO_VOCAB`, `SIZE_OVERFLOW`.
///
/// # Safety
/// As `tinymla_model_vocab_size`.
#[no_mangle]
pub unsafe extern "C" fn tinymla_decode_bytes_needed(
    model: *const ModelHandle,
    out: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get` and `put` require.
    done(unsafe { get::<ModelObj>(model) }.and_then(|m| {
        let n = decode_bytes(m)?.2;
        // SAFETY: the caller's contract for `out`.
        unsafe { put(out, n) }
    }))
}

/// (vocabulary, raw bytes, total buffer bytes): raw token bytes at the buffer's end, text
/// (at most 3 bytes per raw or pending byte) plus NUL at its start.
fn decode_bytes(m: &ModelObj) -> Res<(&Vocab<'static>, usize, usize)> {
    let vocab = m.vocab.as_ref().ok_or(TinymlaStatus::NoVocab)?;
    let raw = vocab.max_token_bytes();
    let total = raw
        .checked_add(3)
        .and_then(|n| n.checked_mul(3))
        .and_then(|n| n.checked_add(raw))
        .and_then(|n| n.checked_add(1))
        .ok_or(TinymlaStatus::SizeOverflow)?;
    Ok((vocab, raw, total))
}

/// `fmt::Write` into a byte slice; fails instead of overflowing.
struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl SliceWriter<'_> {
    /// Appends the NUL and returns the text length (without it).
    fn finish(self) -> Res<usize> {
        *self.buf.get_mut(self.len).ok_or(TinymlaStatus::BufferTooSmall)? = 0;
        Ok(self.len)
    }
}

/// Decodes `token` of `model` through `decoder` into `out[0..out_cap]` (at least
/// `tinymla_decode_bytes_needed` bytes): writes the UTF-8 text it completes (possibly empty,
/// e.g. for control tokens or half a character), NUL-terminated, and its length without the
/// NUL to `*out_len`. The whole buffer may be used as workspace. On error the decoder is
/// unchanged.
///
/// Thread-safety: `decoder` must not be used by another thread meanwhile; `model` may be.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`, `NO_VOCAB`, `TOKEN_OUT_OF_RANGE`,
/// `BUFFER_TOO_SMALL`.
///
/// # Safety
/// Handles as in `tinymla_forward`; `out` is NULL or valid for writes of `out_cap` bytes;
/// `out_len` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_decode(
    model: *const ModelHandle,
    decoder: *mut DecoderHandle,
    token: u32,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract; distinct magic tags make them distinct objects.
    let r = unsafe { (get::<ModelObj>(model), get_mut::<DecoderObj>(decoder)) };
    done((|| {
        let (m, d) = (r.0?, r.1?);
        if out.is_null() || out_len.is_null() {
            return Err(TinymlaStatus::NullPointer);
        }
        let (vocab, raw_cap, needed) = decode_bytes(m)?;
        if out_cap < needed {
            return Err(TinymlaStatus::BufferTooSmall);
        }
        // SAFETY: non-null and valid for writes of `out_cap` bytes per the contract.
        let buf = unsafe { core::slice::from_raw_parts_mut(out, out_cap) };
        let (text, raw) = out_cap
            .checked_sub(raw_cap)
            .and_then(|mid| buf.split_at_mut_checked(mid))
            .ok_or(TinymlaStatus::BufferTooSmall)?;
        let n = vocab.decode_token(token, raw)?;
        let mut stream = d.stream;
        let mut w = SliceWriter { buf: text, len: 0 };
        stream.push(raw.get(..n).unwrap_or(&[]), &mut w).map_err(|_| TinymlaStatus::Internal)?;
        let len = w.finish()?;
        d.stream = stream;
        // SAFETY: non-null, valid for a write per the contract.
        unsafe { put(out_len, len) }
    })())
}

/// Flushes the decoder at the end of a text: a held-back incomplete character becomes U+FFFD.
/// Writes that text, NUL-terminated, to `out[0..out_cap]` (at least
/// `TINYMLA_DECODER_FINISH_BYTES`) and its length to `*out_len`; the decoder is then empty
/// and can start a new text.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE`, `BUFFER_TOO_SMALL`.
///
/// # Safety
/// `decoder` as in `tinymla_decode`; `out` is NULL or valid for writes of `out_cap` bytes;
/// `out_len` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn tinymla_decoder_finish(
    decoder: *mut DecoderHandle,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> TinymlaStatus {
    // SAFETY: the caller's contract, as `get_mut` requires.
    let r = unsafe { get_mut::<DecoderObj>(decoder) };
    done((|| {
        let d = r?;
        if out.is_null() || out_len.is_null() {
            return Err(TinymlaStatus::NullPointer);
        }
        if out_cap < crate::TINYMLA_DECODER_FINISH_BYTES {
            return Err(TinymlaStatus::BufferTooSmall);
        }
        // SAFETY: non-null and valid for writes of `out_cap` bytes per the contract.
        let buf = unsafe { core::slice::from_raw_parts_mut(out, out_cap) };
        let mut stream = d.stream;
        let mut w = SliceWriter { buf, len: 0 };
        stream.finish(&mut w).map_err(|_| TinymlaStatus::Internal)?;
        let len = w.finish()?;
        d.stream = stream;
        // SAFETY: non-null, valid for a write per the contract.
        unsafe { put(out_len, len) }
    })())
}

// ---------------------------------------------------------------------------------------------
// Release

/// The tag a released handle's header carries instead of its type's.
const RELEASED: u64 = u64::from_le_bytes(*b"tmlaDEAD");

/// Ends a handle of any type (model, cache, scratch, sampler or decoder). Every later call
/// with it returns `BAD_HANDLE` (until its memory holds a new handle), and its memory is the
/// caller's again, to free or reuse. Caches, scratches and samplers made from a released model
/// are refused by every call that also takes the model; release them too. Releasing is
/// optional (reusing the memory ends a handle as well), but only a released handle is refused
/// for sure: stale bytes left in reused memory might still look like one.
///
/// Errors: `NULL_POINTER`, `MISALIGNED`, `BAD_HANDLE` (not a live handle, e.g. one released
/// already).
///
/// # Safety
/// `handle` is NULL or points to at least 16 readable and writable bytes, and no other call
/// uses the handle at the same time.
#[no_mangle]
pub unsafe extern "C" fn tinymla_release(handle: *mut core::ffi::c_void) -> TinymlaStatus {
    /// Drops the `H` at `p` and marks its header released, if `p` is a live `H`.
    ///
    /// # Safety
    /// As [`tinymla_release`].
    unsafe fn release<H: Handle>(p: *mut core::ffi::c_void) -> Res<()> {
        // SAFETY: forwarded contract.
        unsafe { check::<H>(p.cast())? };
        // SAFETY: `check` proved a live `H` made by its init function; the caller's contract
        // makes it unused during this call. After the drop only the header's plain integers
        // are written.
        unsafe {
            ptr::drop_in_place(p.cast::<H>());
            ptr::write(p.cast::<Header>(), Header { magic: RELEASED, this: 0 });
        }
        Ok(())
    }
    // SAFETY: the caller's contract, forwarded; each attempt only reads the header until one
    // matches its type.
    done(unsafe {
        release::<ModelObj>(handle)
            .or_else(|_| release::<CacheObj>(handle))
            .or_else(|_| release::<ScratchObj>(handle))
            .or_else(|_| release::<SamplerObj>(handle))
            .or_else(|_| release::<DecoderObj>(handle))
            .map_err(|_| match check::<ModelObj>(handle.cast()) {
                Err(e @ (TinymlaStatus::NullPointer | TinymlaStatus::Misaligned)) => e,
                _ => TinymlaStatus::BadHandle,
            })
    })
}
